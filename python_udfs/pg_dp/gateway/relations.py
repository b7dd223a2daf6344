"""The catalog as the caller sees it: names resolved with the caller's search_path, protected
tables closed to the caller, the tables a measurement may join (dimensions), synthetic copies.

Runs in the executor (the extension owner), for the caller's role (catalog.outer_role()).  Every
answer here is about the catalog or about tables the caller may read itself; nothing reads a
protected table.

A *dimension* is a table a DP measurement joins with a protected table (a star schema's products,
regions, ...).  The executor reads it as the extension owner, so it must hold what the caller's
own read would give and run nothing anybody wrote:
  * the caller may SELECT the columns used and use the table's schema (or the DBA declared the
    table public, dp.declare_public);
  * a plain or partitioned table or a materialized view, not a view (its query would run as the
    owner), a foreign table (its wrapper would), a temporary table (another session's buffers),
    nor a table with row-level security (the owner would see rows the caller cannot), nor one with
    inheritance children or partitions that are any of these;
  * the columns used have built-in types, or enums no cast leads from or to, so that no operator,
    cast or input function another role wrote can be chosen for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core import catalog as core_catalog, db
from ..core.errors import DPError

PRIVILEGE = "42501"
NOT_SUPPORTED = "0A000"
FIRST_NORMAL_OID = 16384
MAX_KEY_VALUES = 10_000


@dataclass
class Relation:
    oid: int
    schema: str
    name: str
    relkind: str
    persistence: str
    protected: bool
    closed: bool             # protected, and the caller may not SELECT it
    columns: list


class Catalog:
    """What statement.split needs, for one request (memoized)."""

    def __init__(self, role: int, search_path: list | None):
        self.role = int(role)
        self.search_path = [int(n) for n in (search_path or [])]
        self._rels = {}
        self._aggs = {}

    def relation(self, schema: str | None, name: str) -> Relation | None:
        key = (schema, name)
        if key not in self._rels:
            self._rels[key] = self._find(schema, name)
        return self._rels[key]

    def _find(self, schema, name):
        if schema == "pg_temp" or (schema is not None and schema.startswith("pg_temp")):
            namespaces, schema = [n for n in self._temp_namespaces()], None
        elif schema is None and not self.search_path:
            # no search_path (dp.explain, dp.cost): the protected table of that name, else the one
            # table of that name in a schema the caller may use
            found = db.execute(
                "SELECT n.oid::int8 AS oid, EXISTS (SELECT 1 FROM dp_internal.protected_tables p "
                "WHERE p.relid = c.oid) AS protected FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.relname = $1 AND n.nspname NOT LIKE 'pg\\_%' "
                "AND pg_catalog.has_schema_privilege($2::oid, n.oid, 'USAGE')", [name, self.role], ["text", "oid"])
            namespaces = [int(r["oid"]) for r in found if r["protected"]] or [int(r["oid"]) for r in found]
            if len(namespaces) > 1:
                raise DPError(f"table name {name} is ambiguous", hint="Qualify it with its schema: schema.table.",
                              sqlstate="42P09")
        elif schema is None:
            namespaces = self.search_path
        else:
            namespaces = None
        rows = db.execute(
            """
            SELECT c.oid::int8 AS oid, n.nspname, c.relname, c.relkind::text AS relkind,
                   c.relpersistence::text AS persistence, p.relid IS NOT NULL AS protected,
                   pg_catalog.has_table_privilege($3::oid, c.oid, 'SELECT') AS readable,
                   ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid
                         AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS columns
            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN dp_internal.protected_tables p ON p.relid = c.oid
            WHERE c.relname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
              AND (CASE WHEN $4::oid[] IS NULL THEN n.nspname = $2
                        ELSE n.oid = ANY ($4::oid[]) END)
            ORDER BY pg_catalog.array_position($4::oid[], n.oid) NULLS LAST
            LIMIT 1
            """,
            [name, schema, self.role, namespaces], ["text", "text", "oid", "oid[]"])
        if not rows:
            return None
        r = rows[0]
        return Relation(int(r["oid"]), r["nspname"], r["relname"], r["relkind"], r["persistence"],
                        bool(r["protected"]), bool(r["protected"]) and not r["readable"], list(r["columns"]))

    def _temp_namespaces(self):
        rows = db.execute("SELECT n.oid::int8 AS oid FROM pg_catalog.pg_namespace n "
                          "WHERE n.oid = ANY ($1::oid[]) AND n.nspname LIKE 'pg\\_temp\\_%'",
                          [self.search_path], ["oid[]"])
        return [int(r["oid"]) for r in rows]

    def is_aggregate(self, names: list) -> bool:
        key = tuple(names)
        if key not in self._aggs:
            schema = names[-2] if len(names) >= 2 else None
            rows = db.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc f JOIN pg_catalog.pg_namespace n "
                "ON n.oid = f.pronamespace WHERE f.proname = $1 AND f.prokind = 'a' AND "
                "(CASE WHEN $2::text IS NULL THEN n.oid = ANY ($3::oid[]) OR n.nspname = 'pg_catalog' "
                "ELSE n.nspname = $2 END)) AS a", [names[-1], schema, self.search_path], ["text", "text", "oid[]"])
            self._aggs[key] = bool(rows[0]["a"])
        return self._aggs[key]

    def synthetic_copy(self, rel: Relation) -> Relation | None:
        """The copy a row-level read of `rel` reads (see synthetic_copy_oid)."""
        oid = synthetic_copy_oid(rel.oid, self.role)
        if oid is None:
            return None
        rows = db.execute("SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                          "ON n.oid = c.relnamespace WHERE c.oid = $1", [oid], ["oid"])
        return Relation(oid, rows[0]["nspname"], rows[0]["relname"], "r", "p", False, False, [])


def synthetic_copy_oid(relid: int, role: int) -> int | None:
    """The synthetic copy of a protected table that a row-level read by `role` is answered from.

    Who reads a copy (docs/bi.md): a role the DBA granted SELECT on it (the role that made it has
    that grant), and every role with a budget on the table's dataset reads the copies an
    administrator made.  The role's own copy (in its shadow schema, dp_internal.personal_schema: only
    administrators write the shared one) is read first, else the newest such copy in the shared
    shadow schema; its columns must still be the table's (checked by the caller's backend)."""
    rows = db.execute(
        """
        SELECT s.relid::int8 AS oid
        FROM dp_internal.synthetic_tables s
        JOIN pg_catalog.pg_class c ON c.oid = s.relid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        JOIN dp_internal.protected_tables p ON p.relid = s.source
        LEFT JOIN dp_internal.ledger l ON l.id = (s.provenance->>'ledger_id')::int8
        WHERE s.source = $1 AND n.nspname IN ($2, dp_internal.personal_schema($3::oid, $2))
          AND (pg_catalog.has_table_privilege($3::oid, s.relid, 'SELECT')
               OR (EXISTS (SELECT 1 FROM dp_internal.budgets b WHERE b.role = $3::oid AND b.dataset = p.dataset)
                   AND l.role IS NOT NULL
                   AND pg_catalog.has_table_privilege(l.role, 'dp_internal.datasets', 'UPDATE')))
        ORDER BY n.nspname = $2, s.created_at DESC LIMIT 1     -- the role's own copy (issue 17) first
        """,
        [int(relid), db.setting("synthetic_schema") or "dp_synthetic", int(role)], ["oid", "text", "oid"])
    return int(rows[0]["oid"]) if rows else None


@dataclass
class Dimension:
    oid: int
    schema: str
    name: str
    columns: dict            # name -> {"type", "notnull", "lower", "upper", "public_values"}
    unique_sets: list        # column sets of its unique indexes (non-partial, no expressions)


def load_dimension(schema: str, name: str, used: set, role: int | None = None) -> Dimension:
    """A table a measurement joins, checked as the module docstring says (before any charge)."""
    role = core_catalog.outer_role() if role is None else role
    qualified = f"{schema}.{name}"
    # locked before it is checked, so that it is still what was checked when it is read
    pinned = db.execute("SELECT pg_catalog.to_regclass(pg_catalog.format('%I.%I', $1::text, $2::text))::int8 AS oid",
                        [schema, name], ["text", "text"])[0]["oid"]
    if pinned is not None:
        core_catalog.pin(pinned, (schema, name))
    rows = db.execute(
        """
        SELECT c.oid::int8 AS oid, c.relkind::text AS relkind, c.relpersistence::text AS persistence,
               c.relrowsecurity AS rls, pg_catalog.has_schema_privilege($3::oid, n.oid, 'USAGE') AS usage,
               EXISTS (SELECT 1 FROM dp_internal.public_tables t WHERE t.relid = c.oid) AS declared,
               EXISTS (SELECT 1 FROM dp_internal.protected_tables t WHERE t.relid = c.oid) AS protected,
               (WITH RECURSIVE tree(oid) AS (SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = c.oid
                  UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.oid)
                SELECT pg_catalog.count(*) FROM tree JOIN pg_catalog.pg_class k ON k.oid = tree.oid
                WHERE k.relkind NOT IN ('r', 'p') OR k.relrowsecurity OR k.relpersistence = 't') AS bad_children
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2
        """, [schema, name, int(role)], ["text", "text", "oid"])
    if not rows:
        raise DPError(f"relation \"{qualified}\" does not exist", hint="Check the name.", sqlstate="42P01")
    r = rows[0]
    oid = int(r["oid"])
    if pinned is None or int(pinned) != oid:
        raise DPError(f"table {qualified} was altered while this request was being answered",
                      hint="Ask again.", sqlstate="40001")
    if r["protected"]:
        raise DPError(f"table {qualified} is protected by pg_dp in another dataset, or cannot be joined this way",
                      hint="Join tables you may read, or protected tables of one dataset on their privacy unit.",
                      sqlstate=NOT_SUPPORTED)
    if r["persistence"] == "t":
        raise DPError(f"{qualified} is a temporary table: a DP measurement cannot join it",
                      hint="Join a permanent table.", sqlstate=NOT_SUPPORTED)
    if not r["usage"] and not r["declared"]:
        raise DPError(f"permission denied for schema {schema}",
                      hint="A DP measurement joins tables you may read yourself: ask for USAGE on the schema.",
                      sqlstate=PRIVILEGE)
    if r["relkind"] not in ("r", "p", "m"):
        kind = {"v": "a view", "f": "a foreign table"}.get(r["relkind"], "not a table")
        raise DPError(f"{qualified} is {kind}: a DP measurement joins only tables and materialized views",
                      hint="A view's query or a foreign table's wrapper would run with pg_dp's rights: join the "
                           "underlying tables, or ask the DBA for a table.", sqlstate=NOT_SUPPORTED)
    if r["rls"] or r["bad_children"]:
        raise DPError(f"{qualified} has row-level security, or partitions or children that are not plain tables: "
                      "a DP measurement cannot join it", hint="Join a plain table without row-level security.",
                      sqlstate=NOT_SUPPORTED)
    cols = db.execute(
        """
        SELECT a.attname::text AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
               pg_catalog.format_type(a.atttypid, NULL) AS base_type, a.attnotnull AS notnull,
               (a.atttypid < $3 OR (t.typtype = 'e' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_cast k
                    WHERE k.castsource = a.atttypid OR k.casttarget = a.atttypid))) AS safe_type,
               pg_catalog.has_column_privilege($2::oid, a.attrelid, a.attnum, 'SELECT') AS readable
        FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
        """, [oid, int(role), FIRST_NORMAL_OID], ["oid", "oid", "oid"])
    by_name = {c["name"]: c for c in cols}
    for col in sorted(used):
        if col not in by_name:
            raise DPError(f"column {col!r} does not exist in {qualified}", hint=f"Check \\d {qualified}.",
                          sqlstate="42703")
        if not by_name[col]["readable"] and not r["declared"]:
            raise DPError(f"permission denied for table {name}",
                          hint="A DP measurement joins tables you may read yourself (or that the DBA declared "
                               "public): ask for SELECT on it.", sqlstate=PRIVILEGE)
        if not by_name[col]["safe_type"]:
            raise DPError(f"column {qualified}.{col} ({by_name[col]['type']}) has a type a DP measurement cannot "
                          "join or filter on", hint="Join and filter on columns of built-in types (or enums).",
                          sqlstate=NOT_SUPPORTED)
    uniques = db.execute(
        """
        SELECT ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(i.indkey) k(n)
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n) AS cols
        FROM pg_catalog.pg_index i
        WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
        """, [oid], ["oid"])
    columns = {}
    for c in cols:
        if c["name"] not in used:
            continue
        columns[c["name"]] = {"type": c["base_type"] if c["base_type"] == "numeric" else c["type"],
                              "notnull": bool(c["notnull"]), "lower": None, "upper": None,
                              "public_values": None}
    return Dimension(oid, schema, name, columns, [list(u["cols"]) for u in uniques])


def key_values(dim: Dimension, column: str) -> list | None:
    """The distinct values of a dimension's column (public: the caller may read them), as text,
    NULL included when present; None when there are more than MAX_KEY_VALUES."""
    from .sqltext import quote_ident
    core_catalog.check_pins()       # its type (an enum's casts) is still what was checked
    rows = db.execute(f"SELECT DISTINCT {quote_ident(column)}::pg_catalog.text AS v FROM "
                      f"{quote_ident(dim.schema)}.{quote_ident(dim.name)} LIMIT {MAX_KEY_VALUES + 1}")
    if len(rows) > MAX_KEY_VALUES:
        return None
    values = sorted((r["v"] for r in rows if r["v"] is not None))
    return values + ([None] if any(r["v"] is None for r in rows) else [])
