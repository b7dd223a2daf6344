"""DBA operations that need more than a SQL statement: protecting a table."""

import contextlib
import json
import re

from ..core import catalog, db, trust
from ..core.errors import DPError

INVALID = "22023"


def _require_admin(action: str):
    db.execute("SELECT dp_internal.require_admin($1)", [action], ["text"])


def public_values_from_check(definition: str, column: str) -> list[str] | None:
    """Values v1..vn of a `CHECK (column IN (v1, ..., vn))` / `= ANY (ARRAY[...])` constraint."""
    from ..gateway.parse import ast, pglast

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


def _not_personal(table_oid, qualified: str, names) -> list[str] | None:
    """The foreign keys (by name, or by their one column) a DBA declared not personal, as
    constraint names; None when none were given (a later dp.protect keeps earlier ones)."""
    if names is None:
        return None
    keys = catalog.foreign_keys(table_oid)      # with the keys declared only on partitions
    out = []
    for name in names:
        found = [k for k in keys if name in k["names"] or k["cols"] == [name]]
        if len(found) != 1:
            listed = ", ".join(f"{k['conname']} ({', '.join(k['cols'])})" for k in keys) or "none"
            raise DPError(f"{name!r} names no single foreign key of {qualified}" if not found else
                          f"{name!r} names several foreign keys of {qualified}: "
                          f"{', '.join(k['conname'] for k in found)}",
                          hint=f"not_personal takes foreign keys by name or by their column; {qualified} has: "
                               f"{listed}.", sqlstate="42704")
        out.extend(found[0]["names"])         # a key declared on each partition goes by several names
    return sorted(set(out))


TWICE_HINT = ("A row bounded for one unit tells the other's activity almost exactly. Declare every reference but one "
              "not personal -- dp.protect('{t}', dataset => '{d}', not_personal => ARRAY['<key or its column>']) -- "
              "when the rows it references are not people's, or are always the row's own unit's: a question about "
              "the declared key's unit is then bounded by the row's other unit only (docs/dba.md, \"A row that "
              "names two units\"). Or drop the extra foreign key.")


def protect(table_oid, dataset, privacy_unit, max_rows_per_unit, max_groups_per_unit, not_personal=None, force=False):
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
    declared = _not_personal(table_oid, qualified, not_personal)
    again = bool(db.execute("SELECT 1 FROM dp_internal.protected_tables WHERE relid = $1", [table_oid], ["oid"]))
    if db.execute("SELECT 1 FROM dp_internal.public_tables WHERE relid = $1", [table_oid], ["oid"]):
        raise DPError(f"table {qualified} is declared public", sqlstate="55000",
                      hint=f"Public tables are copied verbatim by dp_synthesize: SELECT dp.undeclare_public("
                           f"'{qualified}') first if its rows are sensitive.")
    # the executor reads the table as the extension owner: its column types must not run another role's code
    trust.require_no_column_code(table_oid, qualified, "protected")
    columns = {r["attname"]: r for r in db.execute(
        "SELECT a.attname, a.atttypid::int8 AS typid, t.typtype, a.attnotnull FROM pg_catalog.pg_attribute a "
        "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped", [table_oid], ["oid"])}
    for name, value in (("max_rows_per_unit", max_rows_per_unit), ("max_groups_per_unit", max_groups_per_unit)):
        if value is not None and value < 1:
            raise DPError(f"{name} must be at least 1", hint="e.g. max_rows_per_unit => 10", sqlstate=INVALID)
    dataset = dataset or re.sub(r"[^a-z0-9_]", "_", rel["relname"].lower())[:63]
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", dataset):
        raise DPError(f"invalid dataset name {dataset!r}",
                      hint="Use lower-case letters, digits and underscores.", sqlstate=INVALID)

    existing = db.execute("SELECT privacy_unit, max_rows_per_unit FROM dp_internal.datasets WHERE name = $1",
                          [dataset], ["text"])
    if existing and privacy_unit is None:
        privacy_unit = existing[0]["privacy_unit"]      # a table joining a dataset takes its unit
    if existing and existing[0]["privacy_unit"] != privacy_unit:
        raise DPError(f"dataset {dataset} has privacy unit {existing[0]['privacy_unit']!r}, not {privacy_unit!r}",
                      hint="Tables of one dataset share their privacy unit column name.", sqlstate=INVALID)
    if declared is None:
        declared = list(db.execute("SELECT coalesce(not_personal, '{}') AS n FROM dp_internal.protected_tables "
                                   "WHERE relid = $1", [table_oid], ["oid"])[0]["n"]) if again else []
    path = None
    # a column of the unit's name whose foreign key the DBA declared not personal does not hold the
    # unit: the table reaches it through its other keys (a path table that repeats its customer)
    repeats = privacy_unit in columns and bool(db.execute(
        "SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conrelid = $1 AND k.contype = 'f' AND k.conname = ANY($3) "
        "AND k.conkey = ARRAY[(SELECT a.attnum FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 "
        "                      AND a.attname = $2)]::int2[]", [table_oid, privacy_unit, declared],
        ["oid", "name", "text[]"]))
    if privacy_unit is not None and (privacy_unit not in columns or repeats):
        path = unit_path(table_oid, dataset, set(declared)) if existing else None
        if path is None and not existing:
            raise DPError(f"column {privacy_unit!r} does not exist in {qualified}",
                          hint="privacy_unit names the column identifying a person (or other unit).",
                          sqlstate="42703")
        if path is None:
            raise DPError(f"column {privacy_unit!r} does not exist in {qualified}, and no foreign-key path leads "
                          f"from it to a table of dataset {dataset} that has it",
                          hint="privacy_unit names the column identifying a person (or other unit). Protect the "
                               "table holding it first; then tables that reach it through foreign keys join its "
                               "dataset.", sqlstate="42703")
    if existing:
        if max_groups_per_unit is not None:
            db.execute("UPDATE dp_internal.datasets SET max_groups_per_unit = $2 WHERE name = $1",
                       [dataset, max_groups_per_unit], ["text", "int4"])
    else:
        db.execute("INSERT INTO dp_internal.datasets (name, privacy_unit, max_rows_per_unit, max_groups_per_unit) "
                   "VALUES ($1, $2, $3, $4)",      # NULL: chosen per question
                   [dataset, privacy_unit, max_rows_per_unit, max_groups_per_unit], ["text", "text", "int4", "int4"])
    # the table's own bound, or NULL: the dataset's, which a later dp.protect never changes (readers
    # take coalesce(table's, dataset's)); synthesis fits the rows per unit of a child with NULL
    # with DP instead of inheriting the unit table's bound (pg_dp.synth.relational.rows_limit)
    own_bound = max_rows_per_unit
    unit_column = privacy_unit if path is None else None
    db.execute("INSERT INTO dp_internal.protected_tables (relid, dataset, unit_column, unit_path, max_rows_per_unit, "
               "not_personal) VALUES ($1, $2, $3, $4::jsonb, $5, $6) ON CONFLICT (relid) DO UPDATE SET "
               "dataset = excluded.dataset, unit_column = excluded.unit_column, unit_path = excluded.unit_path, "
               "max_rows_per_unit = coalesce($5, dp_internal.protected_tables.max_rows_per_unit), "
               "not_personal = excluded.not_personal",
               [table_oid, dataset, unit_column, json.dumps(path) if path else None, own_bound, declared or None],
               ["oid", "text", "name", "text", "int4", "text[]"])
    # every reference of a row to the dataset's unit is bounded: this table's, and those of the
    # dataset's tables that reference it (their keys to it name a unit from now on)
    if privacy_unit is not None:
        catalog.require_bounded_references(table_oid, qualified, dataset, privacy_unit,
                                           TWICE_HINT.format(t=qualified, d=dataset))
        for r in db.execute(
                "SELECT DISTINCT k.conrelid::int8 AS relid, k.conrelid::regclass::text AS name "
                "FROM pg_catalog.pg_constraint k JOIN dp_internal.protected_tables p ON p.relid = k.conrelid "
                "WHERE k.contype = 'f' AND k.confrelid = $1 AND k.conrelid <> $1 AND p.dataset = $2 "
                "AND k.conparentid = 0 ORDER BY 2", [table_oid, dataset], ["oid", "text"]):
            catalog.require_bounded_references(int(r["relid"]), r["name"], dataset, privacy_unit,
                                               TWICE_HINT.format(t=r["name"], d=dataset))

    children = _descendants(table_oid)
    for child in children:
        db.execute("INSERT INTO dp_internal.protected_tables (relid, dataset, unit_column, unit_path, max_rows_per_unit, "
                   "not_personal) SELECT $1, dataset, unit_column, unit_path, max_rows_per_unit, not_personal "
                   "FROM dp_internal.protected_tables "
                   "WHERE relid = $2 ON CONFLICT (relid) DO UPDATE SET dataset = excluded.dataset, "
                   "unit_column = excluded.unit_column, unit_path = excluded.unit_path, "
                   "max_rows_per_unit = excluded.max_rows_per_unit, not_personal = excluded.not_personal",
                   [child["relid"], table_oid], ["oid", "oid"])

    found = _discover_public_values(table_oid, columns)
    for child in children:
        _mirror_columns(child["relid"], table_oid)

    closed = _close() or Closed()
    family = {table_oid} | {c["relid"] for c in children}
    probes = db.execute(
        "SELECT f.conname, f.conrelid::regclass::text AS rel, f.confrelid::regclass::text AS target, f.writers, "
        "ARRAY(SELECT a.attname::text FROM pg_catalog.pg_constraint k CROSS JOIN LATERAL pg_catalog.unnest(k.confkey) "
        "      u(n) JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n "
        "      WHERE k.oid = f.conoid) AS refcols "
        "FROM dp_internal.probing_foreign_keys f WHERE f.confrelid = ANY($1::oid[]) ORDER BY 2, 1",
        [sorted(family)], ["int8[]"])
    # the other way round: a key of the table to one others may DELETE/UPDATE/TRUNCATE
    probes += [{"text": f"foreign key {r['conname']} of {r['rel']} references {r['target']}, which {r['who']} may "
                        f"{r['privs']}: each such write tells them whether a row of {r['rel']} references the key they "
                        "touch (a violation, or rows deleted or changed by a cascade)",
                "fix": f"Revoke DELETE, UPDATE and TRUNCATE on {r['target']} from {r['who']}, or drop the key"}
               for r in db.execute(
                   "SELECT k.conname, k.conrelid::regclass::text AS rel, k.confrelid::regclass::text AS target, "
                   "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid("
                   "a.grantee)) END AS who, pg_catalog.string_agg(DISTINCT a.privilege_type, ', ') AS privs "
                   "FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class t ON t.oid = k.confrelid "
                   "CROSS JOIN LATERAL pg_catalog.aclexplode(t.relacl) a "
                   "WHERE k.conrelid = ANY($1::oid[]) AND k.contype = 'f' AND k.conparentid = 0 "
                   "AND a.privilege_type IN ('DELETE', 'UPDATE', 'TRUNCATE') AND a.grantee <> t.relowner "
                   "AND NOT EXISTS (SELECT 1 FROM dp_internal.protected_tables q WHERE q.relid = k.confrelid) "
                   "AND (a.grantee = 0 OR NOT (pg_catalog.has_table_privilege(a.grantee, k.conrelid, 'SELECT') "
                   "     OR pg_catalog.has_table_privilege(a.grantee, 'dp_internal.datasets', 'UPDATE'))) "
                   "GROUP BY 1, 2, 3, 4 ORDER BY 2, 1, 4", [sorted(family)], ["int8[]"])]
    if probes and not force and not again:      # protecting it again (dp.doctor's fixes): the NOTICE only
        fk = probes[0]
        raise DPError(_probe_text(fk), sqlstate="42501",
                      hint=_probe_fix(fk) + f"; or pass force => true to protect {qualified} all the same (dp.doctor() "
                           "then lists the key). Nothing was changed.")
    db.execute("UPDATE dp_internal.datasets SET data_version = data_version + 1 WHERE name = $1", [dataset], ["text"])

    message = f"table {qualified} is protected in dataset {dataset}"
    message += f", privacy unit {privacy_unit}" if privacy_unit else ", each row a privacy unit"
    if path:
        message += " reached through " + " -> ".join(
            f"{', '.join(step['cols'])} -> {step['table']}" for step in path)
    if children:
        kind = "partitions" if all(c["relispartition"] for c in children) else "partitions and inheritance children"
        message += f" with its {kind} " + ", ".join(c["name"] for c in children)
    direct = sorted({who for r in closed.revoked if r["relid"] in family for who in r["grants"]})
    if direct:
        message += "; revoked direct access from " + ", ".join(direct)
    readers = _readers(family)
    views = [v for v in readers if v["kind"] == "view"]
    if views:
        message += "; revoked access to views reading it: " + ", ".join(_with_grantees(v, closed) for v in views)
    copies = [v for v in readers if v["kind"] == "matview"]
    if copies:
        message += ("; materialized views hold a copy of its rows: " + ", ".join(_with_grantees(v, closed) for v in copies)
                    + ": drop them if they are not needed")
    others = [line for r, line in closed.lines() if r not in family and r not in {v["relid"] for v in readers}]
    if others:
        message += "; also closed: " + "; ".join(others)
    if found:
        message += "; public values from " + ", ".join(f"{c} ({src})" for c, src in found)
    db.notice(message, hint="Set bounds with dp.set_bounds and grant budgets with dp.grant_budget.")

    for fk in probes:
        db.notice(_probe_text(fk), hint=_probe_fix(fk) + ". dp.doctor() lists such keys.")

    stats = db.execute("SELECT dp_internal.restrict_stat_functions() AS f")[0]["f"] or []
    if stats:
        db.notice(f"revoked EXECUTE on {len(stats)} per-table statistics functions ({', '.join(stats)}) from PUBLIC "
                  "and granted them to pg_read_all_stats: they show exact row counts of protected tables "
                  "(pg_stat_user_tables.n_live_tup)",
                  hint="Monitoring roles keep them through pg_read_all_stats (pg_monitor is a member).")


def _probe_text(fk) -> str:
    if "text" in fk:
        return fk["text"]
    return (f"foreign key {fk['conname']} of {fk['rel']} references protected table {fk['target']}: "
            f"{', '.join(fk['writers'])} may write {fk['rel']}, and each write tells them exactly whether the "
            f"value they try is a {', '.join(fk['refcols'])} of {fk['target']} (a foreign-key violation or none): "
            "membership of any key they can guess, without a budget")


def _probe_fix(fk) -> str:
    if "fix" in fk:
        return fk["fix"]
    return (f"Drop the key (ALTER TABLE {fk['rel']} DROP CONSTRAINT {db.quote_ident(fk['conname'])}), protect that "
            "table too, or revoke INSERT and UPDATE on it")


def unit_path(table_oid, dataset, skip: set = frozenset()) -> list[dict] | None:
    """The shortest path of foreign keys (NOT NULL columns) from a table, through protected
    tables of the dataset, to one holding the privacy unit column itself; None if there is none.
    The table's keys in `skip` (declared not personal) are not followed."""
    frontier, seen = [(int(table_oid), [])], {int(table_oid)}
    for _ in range(6):
        following = []
        for relid, steps in frontier:
            for fk in db.execute(
                    "SELECT k.conname, k.confrelid::int8 AS ref, k.confrelid::regclass::text AS tname, "
                    "p.unit_column IS NOT NULL AS holds, "
                    "ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY c(n, o) JOIN pg_catalog.pg_attribute a "
                    "ON a.attrelid = k.conrelid AND a.attnum = c.n ORDER BY c.o) AS cols, "
                    "ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY c(n, o) JOIN pg_catalog.pg_attribute a "
                    "ON a.attrelid = k.confrelid AND a.attnum = c.n ORDER BY c.o) AS refcols, "
                    "NOT EXISTS (SELECT 1 FROM unnest(k.conkey) c(n) JOIN pg_catalog.pg_attribute a "
                    "ON a.attrelid = k.conrelid AND a.attnum = c.n WHERE NOT a.attnotnull) AS notnull "
                    "FROM pg_catalog.pg_constraint k JOIN dp_internal.protected_tables p ON p.relid = k.confrelid "
                    "WHERE k.contype = 'f' AND k.conrelid = $1 AND p.dataset = $2 ORDER BY k.conname",
                    [relid, dataset], ["oid", "text"]):
                ref = int(fk["ref"])
                if ref in seen or not fk["notnull"] or (relid == int(table_oid) and fk["conname"] in skip):
                    continue
                step = {"conname": fk["conname"], "cols": list(fk["cols"]), "ref": ref, "table": fk["tname"],
                        "refcols": list(fk["refcols"])}
                if fk["holds"]:
                    return steps + [step]
                seen.add(ref)
                following.append((ref, steps + [step]))
        frontier = following
    return None


def _descendants(table_oid) -> list[dict]:
    """Partitions and inheritance children of a table, recursively, parents first."""
    return db.execute(
        "WITH RECURSIVE d(relid, depth) AS (SELECT inhrelid, 1 FROM pg_catalog.pg_inherits WHERE inhparent = $1 "
        "UNION SELECT i.inhrelid, d.depth + 1 FROM d JOIN pg_catalog.pg_inherits i ON i.inhparent = d.relid "
        "WHERE d.depth < 64) "
        "SELECT DISTINCT ON (d.relid) d.relid::int8 AS relid, d.relid::regclass::text AS name, c.relispartition, d.depth "
        "FROM d JOIN pg_catalog.pg_class c ON c.oid = d.relid ORDER BY d.relid, d.depth",
        [table_oid], ["oid"])


def _mirror_columns(child_oid, parent_oid):
    """A partition or child answers with its parent's bounds and public values."""
    db.execute(
        "INSERT INTO dp_internal.columns (relid, attname, lower_bound, upper_bound, public_values, values_source) "
        "SELECT $1, c.attname, c.lower_bound, c.upper_bound, c.public_values, c.values_source "
        "FROM dp_internal.columns c WHERE c.relid = $2 AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a "
        "WHERE a.attrelid = $1 AND a.attname = c.attname AND a.attnum > 0 AND NOT a.attisdropped) "
        "ON CONFLICT (relid, attname) DO UPDATE SET lower_bound = excluded.lower_bound, "
        "upper_bound = excluded.upper_bound, public_values = excluded.public_values, "
        "values_source = excluded.values_source",
        [child_oid, parent_oid], ["oid", "oid"])


def _readers(family) -> list[dict]:
    """Views and materialized views reading the tables (transitively)."""
    return db.execute(
        "SELECT g.relid::int8 AS relid, g.relid::regclass::text AS name, g.kind, "
        "pg_catalog.pg_get_userbyid(c.relowner) AS owner FROM dp_internal.guarded_relations g "
        "JOIN pg_catalog.pg_class c ON c.oid = g.relid "
        "WHERE g.kind IN ('view', 'matview') AND g.root = ANY($1::oid[]) ORDER BY 2",
        [sorted(family)], ["int8[]"])


def _with_grantees(view, closed) -> str:
    grantees = sorted({who for r in closed.revoked if r["relid"] == view["relid"] for who in r["grants"]})
    text = view["name"]
    if view["kind"] == "matview":
        text += f" (owned by {view['owner']}" + (f"; revoked from {', '.join(grantees)})" if grantees else ")")
    elif grantees:
        text += f" (from {', '.join(grantees)})"
    return text


# -- closing the paths around protected tables ----------------------------------------------

GUARD_HINT = "Analysts ask protected tables through dp.query: grant a budget with dp.grant_budget instead."
_PRIVILEGE_ORDER = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "USAGE"]
_KIND_TEXT = {"child": "partition or child of", "view": "view reading", "matview": "materialized view copying",
              "sequence": "sequence of"}
_closing = False


class Closed:
    """What one pass of _close did."""

    def __init__(self):
        self.children = []   # {"relid", "name", "root", "dataset", "relispartition"}
        self.revoked = []    # {"relid", "name", "kind", "root", "grants": {grantee: "SELECT, UPDATE (v)"}}
        self.triggers = []   # {"relid", "name", "action"}

    def __bool__(self):
        return bool(self.children or self.revoked or self.triggers)

    def lines(self) -> list[tuple[int, str]]:
        out = []
        for c in self.children:
            what = "partition" if c["relispartition"] else "inheritance child"
            out.append((c["relid"], f"{c['name']} ({what} of {c['root']}) is protected in dataset {c['dataset']}"))
        for r in self.revoked:
            what = f" ({_KIND_TEXT[r['kind']]} {r['root']})" if r["kind"] in _KIND_TEXT else ""
            for who, privs in sorted(r["grants"].items()):
                out.append((r["relid"], f"revoked {privs} on {r['name']}{what} from {who}"))
        for t in self.triggers:
            out.append((t["relid"], f"{t['action']} the data-version trigger of {t['name']} (ENABLE ALWAYS)"))
        return out


def close_paths():
    """The event trigger's pass: close what dp_internal.open_paths lists, say so in one NOTICE."""
    closed = _close()
    if closed:
        db.notice("pg_dp closed access to protected data: " + "; ".join(line for _, line in closed.lines()),
                  hint=GUARD_HINT)


def _close() -> Closed | None:
    """Record unrecorded partitions and children, revoke every non-owner privilege on what
    reaches protected rows, and make every data-version trigger present and ENABLE ALWAYS.

    Its own DDL fires the event trigger again, which calls back here: the flag (per
    backend, out of reach of SQL) makes that inner call return at once."""
    global _closing
    if _closing:
        return None
    _closing = True
    try:
        closed = Closed()
        _record_children(closed)
        _revoke_grants(closed)
        _fix_triggers(closed)
        return closed
    finally:
        _closing = False


def _vanished(e) -> bool:
    """A relation dropped by another session since we read the catalog."""
    return db.is_spi_error(e) and getattr(e, "sqlstate", None) in ("42P01", "42704")


def _record_children(closed: Closed):
    for r in db.execute(
            "SELECT g.relid::int8 AS relid, g.relid::regclass::text AS name, g.root::int8 AS root_oid, "
            "g.root::regclass::text AS root, p.dataset, p.unit_column, c.relispartition "
            "FROM dp_internal.guarded_relations g JOIN dp_internal.protected_tables p ON p.relid = g.root "
            "JOIN pg_catalog.pg_class c ON c.oid = g.relid WHERE g.kind = 'child' ORDER BY 1"):
        db.execute("INSERT INTO dp_internal.protected_tables (relid, dataset, unit_column, unit_path, max_rows_per_unit) "
                   "SELECT $1, dataset, unit_column, unit_path, max_rows_per_unit FROM dp_internal.protected_tables "
                   "WHERE relid = $2 ON CONFLICT (relid) DO NOTHING", [r["relid"], r["root_oid"]], ["oid", "oid"])
        _mirror_columns(r["relid"], r["root_oid"])
        # its rows joined the dataset without a write
        db.execute("UPDATE dp_internal.datasets SET data_version = data_version + 1 WHERE name = $1",
                   [r["dataset"]], ["text"])
        closed.children.append(r)


def _revoke_grants(closed: Closed):
    rows = db.execute(
        "SELECT o.relid::int8 AS relid, o.relid::regclass::text AS name, o.root::regclass::text AS root, o.kind, "
        "o.relkind, o.grantee::int8 AS grantee, o.column_name, o.privilege_type "
        "FROM dp_internal.open_grants o ORDER BY 2, 6, 7 NULLS FIRST")
    by_relation: dict = {}
    for r in rows:
        rel = by_relation.setdefault(r["relid"], {"relid": r["relid"], "name": r["name"], "root": r["root"],
                                                  "kind": r["kind"], "relkind": r["relkind"], "who": {}})
        entry = rel["who"].setdefault(r["grantee"], {"table": set(), "columns": {}})
        if r["column_name"] is None:
            entry["table"].add(r["privilege_type"])
        else:
            entry["columns"].setdefault(r["privilege_type"], []).append(r["column_name"])
    for rel in by_relation.values():
        on = "SEQUENCE" if rel["relkind"] == "S" else "TABLE"
        grants = {}
        try:
            with db.subtransaction():
                for grantee, entry in rel["who"].items():
                    who = "PUBLIC" if grantee == 0 else db.quote_ident(_role_name(grantee))
                    if entry["table"]:
                        db.execute(f"REVOKE ALL ON {on} {rel['name']} FROM {who} CASCADE")
                    if entry["columns"]:
                        cols = sorted({c for cs in entry["columns"].values() for c in cs})
                        db.execute(f"REVOKE ALL ({', '.join(db.quote_ident(c) for c in cols)}) ON TABLE {rel['name']} "
                                   f"FROM {who} CASCADE")
                    grants[who] = _privileges_text(entry)
        except Exception as e:
            if not _vanished(e):
                raise
            continue
        closed.revoked.append({"relid": rel["relid"], "name": rel["name"], "kind": rel["kind"], "root": rel["root"],
                               "grants": grants})


def _role_name(oid) -> str:
    return db.execute("SELECT pg_catalog.pg_get_userbyid($1) AS n", [oid], ["oid"])[0]["n"]


def _privileges_text(entry) -> str:
    parts = [p for p in _PRIVILEGE_ORDER if p in entry["table"]]
    parts += [p for p in sorted(entry["table"]) if p not in _PRIVILEGE_ORDER]
    parts += [f"{p} ({', '.join(cols)})" for p, cols in sorted(entry["columns"].items(),
                                                                key=lambda kv: _PRIVILEGE_ORDER.index(kv[0])
                                                                if kv[0] in _PRIVILEGE_ORDER else 99)]
    return ", ".join(parts)


def version_trigger_sql(name: str, relkind: str, citus: bool = False) -> str:
    """The data-version trigger of a protected table (foreign tables have no TRUNCATE triggers).

    On a Citus table the trigger is copied to every shard, except a TRUNCATE trigger, which
    Citus keeps off the shards: writes are counted per shard, a TRUNCATE (always run
    through the coordinator's table) by a second trigger, dp_data_version_truncate."""
    events = "INSERT OR UPDATE OR DELETE" + ("" if relkind == "f" or citus else " OR TRUNCATE")
    alter = "ALTER FOREIGN TABLE" if relkind == "f" else "ALTER TABLE"
    sql = (f"CREATE TRIGGER dp_data_version AFTER {events} ON {name} FOR EACH STATEMENT "
           f"EXECUTE FUNCTION dp_internal.bump_data_version(); {alter} {name} ENABLE ALWAYS TRIGGER dp_data_version")
    if citus:
        sql += (f"; DROP TRIGGER IF EXISTS dp_data_version_truncate ON {name}"
                f"; CREATE TRIGGER dp_data_version_truncate AFTER TRUNCATE ON {name} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION dp_internal.bump_data_version()"
                f"; {alter} {name} ENABLE ALWAYS TRIGGER dp_data_version_truncate")
    return sql


@contextlib.contextmanager
def _citus_triggers(relid):
    """Citus refuses triggers on its tables unless citus.enable_unsafe_triggers is on; then it
    creates them on every shard too, where the data-version trigger counts the shard's writes
    (dp_internal.count_shard_write).  The setting is restored afterwards."""
    if not db.execute("SELECT dp_internal.is_citus_table($1) AS c", [relid], ["oid"])[0]["c"]:
        yield False
        return
    before = db.execute("SELECT pg_catalog.current_setting('citus.enable_unsafe_triggers') AS v")[0]["v"]
    db.execute("SELECT pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true)")
    try:
        yield True
    finally:
        db.execute("SELECT pg_catalog.set_config('citus.enable_unsafe_triggers', $1, true)", [before], ["text"])


def _fix_triggers(closed: Closed):
    for r in db.execute(
            "SELECT g.relid::int8 AS relid, g.relid::regclass::text AS name, g.tgenabled, c.relkind, "
            "g.tgfoid IS NOT NULL AND g.tgfoid <> 'dp_internal.bump_data_version()'::pg_catalog.regprocedure AS alien "
            "FROM dp_internal.version_trigger_gaps g JOIN pg_catalog.pg_class c ON c.oid = g.relid ORDER BY 2"):
        alter = "ALTER FOREIGN TABLE" if r["relkind"] == "f" else "ALTER TABLE"
        try:
            with db.subtransaction():
                if r["alien"]:
                    db.execute(f"DROP TRIGGER dp_data_version ON {r['name']}")
                if r["tgenabled"] is None or r["alien"]:
                    with _citus_triggers(r["relid"]) as citus:
                        for statement in version_trigger_sql(r["name"], r["relkind"], citus).split("; "):
                            db.execute(statement)
                    action = "installed"
                else:
                    with _citus_triggers(r["relid"]):
                        db.execute(f"{alter} {r['name']} ENABLE ALWAYS TRIGGER dp_data_version")
                    action = "re-enabled"
        except Exception as e:
            if not _vanished(e):
                raise
            continue
        closed.triggers.append({"relid": r["relid"], "name": r["name"], "action": action})


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
    from ..synth import dc

    _require_admin("add a denial constraint")
    relid = db.regclass_oid(table_name)
    if not db.execute("SELECT 1 FROM dp_internal.protected_tables WHERE relid = $1", [relid], ["oid"]):
        raise DPError(f"table {table_name} is not protected by pg_dp",
                      hint=f"Protect it first: SELECT dp.protect('{table_name}');", sqlstate="42P01")
    from ..synth import domain

    types = {r["attname"]: domain.family(r["base"], r["typtype"]) for r in db.execute(
        "SELECT a.attname, pg_catalog.format_type(coalesce(nullif(t.typbasetype, 0), a.atttypid), NULL) AS base, "
        "coalesce(b.typtype, t.typtype)::text AS typtype FROM pg_catalog.pg_attribute a "
        "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid LEFT JOIN pg_catalog.pg_type b ON b.oid = t.typbasetype "
        "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped", [relid], ["oid"])}
    parsed = dc.parse(dc_text or "", list(types))
    why = dc.unsupported(parsed)
    if why:
        raise DPError(f'denial constraint "{parsed.text}" cannot be kept without deleting rows: {why}',
                      hint="Hard constraints are met by changing values: EQs with one IQ/LT/GT (a functional "
                           "dependency), only EQs (unique), EQs with two LT/GT/LTE/GTE (an order within groups), "
                           "any mix with a strict comparison or IQ on a column used once, or, within one row, "
                           "one order between two columns (t1&GT(t1.a,t1.b)).", sqlstate="0A000")
    if parsed.kind == "row order" and not domain.comparable(types[parsed.key], types[parsed.dependent]):
        raise DPError(f'denial constraint "{parsed.text}" orders columns that cannot be compared: {parsed.key} '
                      f"({types[parsed.key]}) and {parsed.dependent} ({types[parsed.dependent]})", sqlstate="42804",
                      hint="An order within a row compares two numbers, two dates or two timestamps.")
    rows = db.execute("INSERT INTO dp_internal.denial_constraints (relid, dc) VALUES ($1, $2) "
                      "ON CONFLICT (relid, dc) DO UPDATE SET dc = excluded.dc RETURNING id",
                      [relid, parsed.text], ["oid", "text"])
    return rows[0]["id"]
