"""Read a protected table's public metadata from the catalog."""

from . import db
from .errors import DPError
from .query.plan import TableMeta


_caller: int | None = None


def set_caller(role: int):
    """The role a request of the executor is for (taken by the caller's backend, not from SQL)."""
    global _caller
    _caller = role


def outer_role() -> int:
    """Whose request this is: the role that is checked and charged.

    In the executor this is the caller's role; current_user there is the
    extension owner and must never be taken for the caller.
    """
    if _caller is None:
        raise DPError("internal error: pg_dp request without a caller", sqlstate="XX000")
    return _caller


def is_admin(role: int) -> bool:
    return bool(db.execute("SELECT pg_catalog.has_table_privilege($1::oid, 'dp_internal.datasets', 'UPDATE') AS a",
                           [role], ["int8"])[0]["a"])


def may_keep_executor(role: int) -> bool:
    """Whether the role's session keeps its executor between requests: a budget holder or an administrator."""
    return bool(db.execute("SELECT EXISTS (SELECT 1 FROM dp_internal.budgets WHERE role = $1) AS k",
                           [role], ["oid"])[0]["k"]) or is_admin(role)


def query_epsilon(role: int, dataset: str):
    """(default, maximum) epsilon per statement the DBA set for the role on the dataset, or None."""
    rows = db.execute("SELECT default_epsilon AS d, max_epsilon AS m FROM dp_internal.budgets "
                      "WHERE role = $1 AND dataset = $2", [role, dataset], ["oid", "text"])
    return (rows[0]["d"], rows[0]["m"]) if rows else None


def remaining_budget(role: int, dataset: str):
    """(epsilon, delta) the role has left on the dataset, or None without a budget."""
    rows = db.execute("SELECT epsilon_granted - epsilon_spent AS e, delta_granted - delta_spent AS d "
                      "FROM dp_internal.budgets WHERE role = $1 AND dataset = $2",
                      [role, dataset], ["oid", "text"])
    return (rows[0]["e"], rows[0]["d"]) if rows else None


def load_table(schema: str | None, table: str) -> TableMeta:
    rows = db.execute(
        """
        SELECT p.relid::int8 AS relid, n.nspname, c.relname, p.dataset, p.unit_column,
               coalesce(p.max_rows_per_unit, d.max_rows_per_unit) AS max_rows_per_unit,
               d.max_groups_per_unit, d.data_version + dp_internal.distributed_writes(p.dataset) AS data_version,
               p.unit_path IS NOT NULL AS via_path
        FROM dp_internal.protected_tables p
        JOIN pg_catalog.pg_class c ON c.oid = p.relid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        JOIN dp_internal.datasets d ON d.name = p.dataset
        WHERE c.relname = $1 AND ($2::text IS NULL OR n.nspname = $2)
        """,
        [table, schema], ["text", "text"])
    name = f"{schema}.{table}" if schema else table
    if not rows:
        raise DPError(f"table {name} is not protected by pg_dp",
                      hint="Ask an administrator to protect it: SELECT dp.protect('schema.table').",
                      sqlstate="42P01")
    if len(rows) > 1:
        raise DPError(f"table name {name} is ambiguous",
                      hint="Qualify it with its schema: schema.table.", sqlstate="42P09")
    r = rows[0]
    if r["via_path"]:
        # its rows would count as units of their own: refused, never answered with the wrong sensitivity
        raise DPError(f"table {name} reaches its privacy unit through foreign keys: DP questions on it are not "
                      "supported yet", sqlstate="0A000",
                      hint="Synthesize it (CALL dp_synthesize) and query the synthetic copy, or ask about the "
                           "table that holds the privacy unit.")
    cols = db.execute(
        """
        SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
               pg_catalog.format_type(a.atttypid, NULL) AS base_type, a.attnotnull,
               c.lower_bound, c.upper_bound, c.public_values
        FROM pg_catalog.pg_attribute a
        LEFT JOIN dp_internal.columns c ON c.relid = a.attrelid AND c.attname = a.attname
        WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        [r["relid"]], ["oid"])
    columns = {
        c["attname"]: {
            "type": c["base_type"] if c["base_type"] in ("numeric",) else c["type"],
            "notnull": c["attnotnull"],
            "lower": c["lower_bound"], "upper": c["upper_bound"],
            "public_values": c["public_values"],
        }
        for c in cols
    }
    return TableMeta(int(r["relid"]), r["nspname"], r["relname"], r["dataset"], r["unit_column"],
                     int(r["max_rows_per_unit"]), int(r["max_groups_per_unit"]), int(r["data_version"]),
                     columns)
