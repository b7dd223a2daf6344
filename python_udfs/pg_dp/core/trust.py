"""Whose code can run when pg_dp touches a table (the SQL side: sql/45_trust.sql).

The executor is the extension owner.  A value of a type another role created can run that
role's code when pg_dp casts it (a cast's function), compares it with a constant of the
column's type (a domain's CHECKs) or writes it into a synthetic copy.  `column_code` lists
that code for a table's columns; dp.protect, every question and dp_synthesize refuse a table
that has any, before anything is charged (SQLSTATE 42501 and a hint naming each function).
"""

from . import db
from .errors import DPError

FOREIGN = "42501"
FIRST_USER_OID = 16384      # FirstNormalObjectId: every object below is built in


def column_code(relid: int) -> list[str]:
    """Untrusted functions that values of the table's columns can run ("f (owned by r): via")."""
    types = [int(r["t"]) for r in db.execute(
        "SELECT DISTINCT a.atttypid::int8 AS t FROM pg_catalog.pg_attribute a "
        "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped", [relid], ["oid"])]
    return type_code(types)


def type_code(types: list[int]) -> list[str]:
    if all(t < FIRST_USER_OID for t in types):
        return []           # built-in types: their functions and casts are the bootstrap superuser's
    return [f"{r['function']} (owned by {r['owner']}): {r['via']}" for r in db.execute(
        "SELECT function, owner, via FROM dp_internal.type_foreign_code($1::oid[])", [types], ["int8[]"])]


def require_no_column_code(relid: int, name: str, doing: str):
    """Refuse (42501) a table whose column types would run another role's code as the owner."""
    code = column_code(relid)
    if code:
        raise DPError(f"{name} cannot be {doing}: pg_dp reads it as the extension owner, and its column types "
                      f"would run functions of other roles: {'; '.join(code)}", sqlstate=FOREIGN,
                      hint="A superuser can take ownership of these functions (ALTER FUNCTION ... OWNER TO), "
                           "or drop the casts and domain constraints that call them.")
