"""DBA operations that need more than a SQL statement: protecting a table."""

import re

from . import db
from .errors import DPError

INVALID = "22023"


def _require_admin(action: str):
    db.execute("SELECT dp_internal.require_admin($1)", [action], ["text"])


def public_values_from_check(definition: str, column: str) -> list[str] | None:
    """Values v1..vn of a `CHECK (column IN (v1, ..., vn))` / `= ANY (ARRAY[...])` constraint."""
    from .query.parse import ast, pglast

    m = re.fullmatch(r"\s*CHECK\s*\((.*)\)\s*(NOT VALID)?\s*", definition, re.S)
    if not m:
        return None
    try:
        expr = pglast.parse_sql(f"SELECT {m.group(1)}")[0].stmt.targetList[0].val
    except Exception:
        return None
    if not isinstance(expr, ast.A_Expr) or not isinstance(expr.lexpr, ast.ColumnRef):
        return None
    if [f.sval for f in expr.lexpr.fields if isinstance(f, ast.String)] != [column]:
        return None
    items = None
    if expr.kind.name == "AEXPR_IN" and [n.sval for n in expr.name] == ["="]:
        items = expr.rexpr
    elif expr.kind.name == "AEXPR_OP_ANY" and [n.sval for n in expr.name] == ["="] \
            and isinstance(expr.rexpr, ast.A_ArrayExpr):
        items = expr.rexpr.elements
    if items is None:
        return None
    values = []
    for item in items:
        while isinstance(item, ast.TypeCast):
            item = item.arg
        if not isinstance(item, ast.A_Const) or item.isnull:
            return None
        v = item.val
        values.append(v.sval if isinstance(v, ast.String) else str(getattr(v, "ival", getattr(v, "fval", ""))))
    return values


def protect(table_oid, dataset, privacy_unit, max_rows_per_unit, max_groups_per_unit):
    _require_admin("protect a table")
    table_oid = db.regclass_oid(table_oid)
    rel = db.execute(
        "SELECT c.oid::int8 AS oid, n.nspname, c.relname, c.relkind, pg_catalog.pg_get_userbyid(c.relowner) AS owner "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = $1", [table_oid], ["oid"])[0]
    if rel["relkind"] not in ("r", "p"):
        raise DPError(f"{rel['nspname']}.{rel['relname']} is not a table",
                      hint="Protect the underlying table.", sqlstate="42809")
    qualified = f"{db.quote_ident(rel['nspname'])}.{db.quote_ident(rel['relname'])}"
    columns = {r["attname"]: r for r in db.execute(
        "SELECT a.attname, a.atttypid::int8 AS typid, t.typtype, a.attnotnull FROM pg_catalog.pg_attribute a "
        "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped", [table_oid], ["oid"])}
    if privacy_unit is not None and privacy_unit not in columns:
        raise DPError(f"column {privacy_unit!r} does not exist in {qualified}",
                      hint="privacy_unit names the column identifying a person (or other unit).",
                      sqlstate="42703")
    for name, value in (("max_rows_per_unit", max_rows_per_unit), ("max_groups_per_unit", max_groups_per_unit)):
        if value is not None and value < 1:
            raise DPError(f"{name} must be at least 1", hint="e.g. max_rows_per_unit => 10", sqlstate=INVALID)
    dataset = dataset or re.sub(r"[^a-z0-9_]", "_", rel["relname"].lower())[:63]
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", dataset):
        raise DPError(f"invalid dataset name {dataset!r}",
                      hint="Use lower-case letters, digits and underscores.", sqlstate=INVALID)

    existing = db.execute("SELECT privacy_unit FROM dp_internal.datasets WHERE name = $1", [dataset], ["text"])
    if existing:
        if existing[0]["privacy_unit"] != privacy_unit:
            raise DPError(f"dataset {dataset} has privacy unit {existing[0]['privacy_unit']!r}, not {privacy_unit!r}",
                          hint="Tables of one dataset share their privacy unit column name.", sqlstate=INVALID)
        if max_rows_per_unit is not None or max_groups_per_unit is not None:
            db.execute("UPDATE dp_internal.datasets SET max_rows_per_unit = coalesce($2, max_rows_per_unit), "
                       "max_groups_per_unit = coalesce($3, max_groups_per_unit) WHERE name = $1",
                       [dataset, max_rows_per_unit, max_groups_per_unit], ["text", "int4", "int4"])
    else:
        db.execute("INSERT INTO dp_internal.datasets (name, privacy_unit, max_rows_per_unit, max_groups_per_unit) "
                   "VALUES ($1, $2, coalesce($3, 1), coalesce($4, 1))",
                   [dataset, privacy_unit, max_rows_per_unit, max_groups_per_unit], ["text", "text", "int4", "int4"])
    db.execute("INSERT INTO dp_internal.protected_tables (relid, dataset, unit_column) VALUES ($1, $2, $3) "
               "ON CONFLICT (relid) DO UPDATE SET dataset = excluded.dataset, unit_column = excluded.unit_column",
               [table_oid, dataset, privacy_unit], ["oid", "text", "name"])

    found = _discover_public_values(table_oid, columns)

    revoked = [r["grantee"] for r in db.execute(
        "SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee) END AS grantee "
        "FROM pg_catalog.pg_class c, LATERAL pg_catalog.aclexplode(c.relacl) a "
        "WHERE c.oid = $1 AND a.grantee <> c.relowner ORDER BY 1", [table_oid], ["oid"])]
    column_grants = [r["grantee"] for r in db.execute(
        "SELECT DISTINCT CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(x.grantee) END AS grantee "
        "FROM pg_catalog.pg_attribute a, LATERAL pg_catalog.aclexplode(a.attacl) x "
        "WHERE a.attrelid = $1 AND a.attacl IS NOT NULL ORDER BY 1", [table_oid], ["oid"])]
    for grantee in sorted(set(revoked) | set(column_grants)):
        who = "PUBLIC" if grantee == "PUBLIC" else db.quote_ident(grantee)
        db.execute(f"REVOKE ALL ON TABLE {qualified} FROM {who}")
        if grantee in column_grants:
            cols = ", ".join(db.quote_ident(c) for c in columns)
            db.execute(f"REVOKE ALL ({cols}) ON TABLE {qualified} FROM {who}")

    if db.execute("SELECT count(*) AS n FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND tgname = 'dp_data_version'",
                  [table_oid], ["oid"])[0]["n"]:
        db.execute(f"DROP TRIGGER dp_data_version ON {qualified}")
    db.execute(f"CREATE TRIGGER dp_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {qualified} "
               "FOR EACH STATEMENT EXECUTE FUNCTION dp_internal.bump_data_version()")
    db.execute("UPDATE dp_internal.datasets SET data_version = data_version + 1 WHERE name = $1", [dataset], ["text"])

    message = f"table {qualified} is protected in dataset {dataset}"
    message += f", privacy unit {privacy_unit}" if privacy_unit else ", each row a privacy unit"
    if revoked or column_grants:
        message += "; revoked direct access from " + ", ".join(sorted(set(revoked) | set(column_grants)))
    if found:
        message += "; public values from " + ", ".join(f"{c} ({src})" for c, src in found)
    db.notice(message, hint="Set bounds with dp.set_bounds and grant budgets with dp.grant_budget.")


def _discover_public_values(table_oid, columns) -> list[tuple[str, str]]:
    """Public key sets implied by the schema: enum types, booleans, CHECK (col IN ...)."""
    found = []
    for name, col in columns.items():
        values, source = None, None
        if col["typtype"] == "e":
            values = [r["l"] for r in db.execute(
                "SELECT enumlabel AS l FROM pg_catalog.pg_enum WHERE enumtypid = $1 ORDER BY enumsortorder",
                [col["typid"]], ["oid"])]
            source = "enum"
        elif col["typid"] == 16:  # boolean
            values, source = ["false", "true"], "boolean"
        else:
            for r in db.execute(
                    "SELECT pg_catalog.pg_get_constraintdef(oid) AS d FROM pg_catalog.pg_constraint "
                    "WHERE conrelid = $1 AND contype = 'c' AND conkey = ARRAY[(SELECT attnum FROM "
                    "pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2)]::int2[]",
                    [table_oid, name], ["oid", "name"]):
                values = public_values_from_check(r["d"], name)
                if values:
                    source = "check"
                    break
        if values:
            db.execute(
                "INSERT INTO dp_internal.columns (relid, attname, public_values, values_source) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (relid, attname) DO UPDATE SET public_values = excluded.public_values, "
                "values_source = excluded.values_source WHERE dp_internal.columns.values_source IS DISTINCT FROM 'declared'",
                [table_oid, name, values, source], ["oid", "name", "text[]", "text"])
            found.append((name, source))
    return found


def add_constraint(table_name, dc_text):
    """Register a denial constraint on a protected table; its id."""
    from .synth import dc

    _require_admin("add a denial constraint")
    relid = db.regclass_oid(table_name)
    if not db.execute("SELECT 1 FROM dp_internal.protected_tables WHERE relid = $1", [relid], ["oid"]):
        raise DPError(f"table {table_name} is not protected by pg_dp",
                      hint=f"Protect it first: SELECT dp.protect('{table_name}');", sqlstate="42P01")
    columns = [r["attname"] for r in db.execute(
        "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
        [relid], ["oid"])]
    parsed = dc.parse(dc_text or "", columns)
    rows = db.execute("INSERT INTO dp_internal.denial_constraints (relid, dc) VALUES ($1, $2) "
                      "ON CONFLICT (relid, dc) DO UPDATE SET dc = excluded.dc RETURNING id",
                      [relid, parsed.text], ["oid", "text"])
    if parsed.kind == "general":
        db.notice(f"denial constraint {rows[0]['id']} is not a functional dependency or a two-column order: "
                  "synthetic rows that break it are dropped",
                  hint="Functional dependencies (EQ...&IQ) and orders (LT/GT on two columns) are repaired instead.")
    return rows[0]["id"]
