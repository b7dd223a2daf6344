"""Parse analyst SQL with pglast (the real PostgreSQL parser).

Inside the server, libpg_query's copy of the parser collides with the
backend's own symbols (a segfault on the first parse); loading pglast's
extension module with RTLD_DEEPBIND makes it resolve its own symbols first
(DESIGN.md, known traps).

Parsing is bounded: a statement longer than MAX_STATEMENT_CHARS is refused
before pglast sees it, and a RecursionError anywhere in pglast's conversion
becomes the same "statement too complex" error (54001) as the limits that
analyze checks on the tree.

SQL generated from trees is quoted without depending on session settings:
identifiers are double-quoted (no escapes inside), and a string constant that
holds a backslash is written E'...' with the backslash doubled, which reads the
same whether standard_conforming_strings is on or off (sql_literal, deparse).
"""

import os
import sys

from ..core.errors import DPError


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
from pglast import visitors  # noqa: E402

SYNTAX_ERROR = "42601"
NOT_SUPPORTED = "0A000"
TOO_COMPLEX = "54001"          # statement_too_complex
MAX_STATEMENT_CHARS = 100_000


def too_complex(what: str) -> DPError:
    return DPError(f"the query is too complex: {what}",
                   hint="Split it into simpler queries (shorter IN lists, fewer and less nested conditions).",
                   sqlstate=TOO_COMPLEX)


def parse_one(sql: str):
    """The raw parse tree of the single statement in `sql`, or a clear error."""
    if not isinstance(sql, str) or not sql.strip():
        raise DPError("the query is empty", hint="Pass one SELECT statement.", sqlstate=SYNTAX_ERROR)
    if len(sql) > MAX_STATEMENT_CHARS:
        raise too_complex(f"{len(sql)} characters, more than {MAX_STATEMENT_CHARS}")
    try:
        statements = pglast.parse_sql(sql)
    except pglast.parser.ParseError as e:
        raise DPError(f"syntax error in query: {e.args[0]}", hint="Check the SQL text.", sqlstate=SYNTAX_ERROR)
    except RecursionError:
        raise too_complex("its expressions are nested too deeply") from None
    if len(statements) != 1:
        raise DPError(
            "the query must be exactly one statement",
            hint="Send one SELECT at a time.",
            sqlstate=NOT_SUPPORTED,
        )
    return statements[0].stmt


def parse_select(sql: str) -> ast.SelectStmt:
    """The single SELECT statement in `sql`, or a clear error."""
    stmt = parse_one(sql)
    if not isinstance(stmt, ast.SelectStmt):
        raise DPError(
            f"only SELECT statements can be answered, not {type(stmt).__name__}",
            hint="The gateway answers aggregate SELECT queries over protected tables.",
            sqlstate=NOT_SUPPORTED,
        )
    return stmt


def sql_literal(value: str) -> str:
    """A string constant that means `value` under either standard_conforming_strings.

    Without a backslash, '...' with quotes doubled reads the same under both
    settings; with one, E'...' (backslashes and quotes doubled) does.
    """
    value = str(value)
    if "\x00" in value:
        raise DPError("a string constant cannot contain a zero byte", hint="Remove it.", sqlstate="22021")
    body = value.replace("'", "''")
    if "\\" in value:
        return "E'" + body.replace("\\", "\\\\") + "'"
    return "'" + body + "'"


def pg_type(internal: str, typmods=()) -> str:
    """A built-in type, schema-qualified: pg_catalog.float8, pg_catalog.numeric(10,2)."""
    mods = f"({','.join(str(int(m)) for m in typmods)})" if typmods else ""
    return f"pg_catalog.{internal}{mods}"


def cast(expr: str, internal: str, typmods=()) -> str:
    return f"CAST({expr} AS {pg_type(internal, typmods)})"


class _Stream(RawStream):
    """pglast's printer, with string constants written by sql_literal."""

    def write_quoted_string(self, s):
        self.write(sql_literal(s))


def deparse(node) -> str:
    """Canonical SQL text of an AST node (normalizes spacing, case and quoting)."""
    try:
        return _Stream()(node)
    except RecursionError:
        raise too_complex("its expressions are nested too deeply") from None


UNDEFINED_PARAMETER = "42P02"


def type_name(sql_type: str) -> ast.TypeName:
    """The parse tree of a type name as format_type() writes it (trusted text, from the catalog)."""
    return pglast.parse_sql(f"SELECT CAST(NULL AS {sql_type})")[0].stmt.targetList[0].val.typeName


class _BindParams(visitors.Visitor):
    def __init__(self, params):
        super().__init__()
        self.params = params

    def visit_ParamRef(self, ancestors, node):
        if not 1 <= node.number <= len(self.params) or self.params[node.number - 1] is None:
            raise DPError(f"there is no parameter ${node.number}", hint="Pass a value for every $n of the statement.",
                          sqlstate=UNDEFINED_PARAMETER)
        typ, value = self.params[node.number - 1]
        const = ast.A_Const(isnull=True) if value is None else ast.A_Const(val=ast.String(sval=value))
        return ast.TypeCast(arg=const, typeName=type_name(typ))


def bind_params(stmt: ast.SelectStmt, params) -> ast.SelectStmt:
    """The statement with each $n replaced by CAST('<its value>' AS <its type>).

    params[n-1] is (format_type of $n's type, its text in ISO/UTC form or None for NULL), or
    None for a number the statement does not use.  The values were written by the caller's
    backend under pinned settings (src/worker/frontdoor.c), so they read the same here.
    """
    try:
        _BindParams(params)(stmt)
    except RecursionError:
        raise too_complex("its expressions are nested too deeply") from None
    return stmt

