"""Parse analyst SQL with pglast (the real PostgreSQL parser).

Inside the server, libpg_query's copy of the parser collides with the
backend's own symbols (a segfault on the first parse); loading pglast's
extension module with RTLD_DEEPBIND makes it resolve its own symbols first
(DESIGN.md, known traps).
"""

import os
import sys

from ..errors import DPError


def _import_pglast():
    flags = sys.getdlopenflags()
    try:
        sys.setdlopenflags(os.RTLD_NOW | os.RTLD_DEEPBIND)
        import pglast.parser  # noqa: F401  (the C extension, loaded with DEEPBIND)
    finally:
        sys.setdlopenflags(flags)
    import pglast

    return pglast


pglast = _import_pglast()
from pglast import ast  # noqa: E402
from pglast.stream import RawStream  # noqa: E402

SYNTAX_ERROR = "42601"
NOT_SUPPORTED = "0A000"


def parse_select(sql: str) -> ast.SelectStmt:
    """The single SELECT statement in `sql`, or a clear error."""
    if not isinstance(sql, str) or not sql.strip():
        raise DPError("the query is empty", hint="Pass one SELECT statement.", sqlstate=SYNTAX_ERROR)
    try:
        statements = pglast.parse_sql(sql)
    except pglast.parser.ParseError as e:
        raise DPError(f"syntax error in query: {e.args[0]}", hint="Check the SQL text.", sqlstate=SYNTAX_ERROR)
    if len(statements) != 1:
        raise DPError(
            "the query must be exactly one statement",
            hint="Send one SELECT at a time.",
            sqlstate=NOT_SUPPORTED,
        )
    stmt = statements[0].stmt
    if not isinstance(stmt, ast.SelectStmt):
        raise DPError(
            f"only SELECT statements can be answered, not {type(stmt).__name__}",
            hint="The gateway answers aggregate SELECT queries over protected tables.",
            sqlstate=NOT_SUPPORTED,
        )
    return stmt


def deparse(node) -> str:
    """Canonical SQL text of an AST node (normalizes spacing, case and quoting)."""
    return RawStream()(node)
