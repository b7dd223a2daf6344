"""Writing SQL that the session it runs in cannot reinterpret.

Names double-quoted, strings by parse.sql_literal (E'' when a backslash is present), types as
pg_catalog.<internal name>, functions as pg_catalog.f / dp_internal.f, comparison operators as
OPERATOR(pg_catalog.op).  Every piece of SQL the executor runs for a question is written with these.
"""

from .parse import cast, sql_literal

def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def operator(left: str, op: str, right: str) -> str:
    return f"{left} OPERATOR(pg_catalog.{op}) {right}"


def float_literal(x: float) -> str:
    return cast(sql_literal(repr(float(x))), "float8")


def numeric_literal(x: float) -> str:
    return cast(sql_literal(repr(float(x))), "numeric")

