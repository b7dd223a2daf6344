"""Read a protected table's public metadata from the catalog."""

import json
from dataclasses import dataclass

from . import db, trust
from .errors import DPError


@dataclass
class TableMeta:
    """What the catalog says about a protected table (plain values, no plpy)."""
    relid: int
    schema: str
    table: str
    dataset: str
    unit_column: str | None
    max_rows_per_unit: int | None        # None: chosen per question (gateway/contributions.py)
    max_groups_per_unit: int | None
    data_version: int
    columns: dict            # name -> {"type", "notnull", "lower", "upper", "public_values"}
    source_sql: str | None = None   # a join, seen as one table whose columns are "alias.column"
    # a table reaching its unit through foreign keys: [{"schema", "table", "cols", "refcols", "ops"}, ...]
    # (catalog.resolve_path); unit_column then names the unit found at the path's end
    unit_path: list | None = None
    # a join with tables the caller may read (gateway/bind.py): how each join is bounded, for dp.explain
    joins: list | None = None


_caller: int | None = None


def set_caller(role: int):
    """The role a request of the executor is for (taken by the caller's backend, not from SQL)."""
    global _caller
    _caller = role
    _pins.clear()


# The relations the current request checked and reads: oid -> (schema, name, what was checked).
# The executor reads them by name, in the phase that checked them and in later phases (other
# transactions): whoever owns one could otherwise replace it in between (rename it and create a
# view of its name, turn it into a view with a rule, change a column's type or its type's
# casts), and the view's query or the cast's function would run as the extension owner.
_pins: dict = {}

_PIN_STATES = """
SELECT c.oid::int8 AS oid, n.nspname, c.relname,
       pg_catalog.concat_ws('|', c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
           (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(':', a.attnum, a.attname, a.atttypid, a.atttypmod,
                       (SELECT pg_catalog.count(*) FROM pg_catalog.pg_type t JOIN pg_catalog.pg_cast k
                          ON k.castsource IN (t.oid, t.typbasetype) OR k.casttarget IN (t.oid, t.typbasetype)
                        WHERE t.oid = a.atttypid AND t.oid >= 16384)), ',' ORDER BY a.attnum)
            FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
           (WITH RECURSIVE tree(oid) AS (SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = c.oid
                UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.oid)
            SELECT pg_catalog.string_agg(pg_catalog.concat_ws(':', k.oid, k.relkind, k.relpersistence,
                                                              k.relrowsecurity), ',' ORDER BY k.oid)
            FROM tree JOIN pg_catalog.pg_class k ON k.oid = tree.oid)) AS state
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = ANY ($1::oid[])
"""


def _lock_and_describe(oids: list) -> dict:
    db.execute("SELECT dp_internal.lock_relations($1::oid[])", [oids], ["oid[]"])
    return {int(r["oid"]): (r["nspname"], r["relname"], r["state"])
            for r in db.execute(_PIN_STATES, [oids], ["oid[]"])}


def _changed(what) -> DPError:
    return DPError(f"table {what} was altered while this request was being answered",
                   hint="Ask again (anything already charged for this request stands).", sqlstate="40001")


def pin(relid: int, name: tuple | None = None):
    """Lock a relation this request reads (ACCESS SHARE, its children too, until the transaction
    ends: DDL on it waits) BEFORE checking it, and remember what it is.  `name`: the (schema, name)
    it was found by, which must still be its name once locked.  A relation that no longer exists
    is left to the caller's lookup."""
    relid = int(relid)
    now = _lock_and_describe([relid]).get(relid)
    if now is None:
        return
    if name is not None and (name[0] is not None and now[0] != name[0] or now[1] != name[1]):
        raise _changed(f"{name[0]}.{name[1]}" if name[0] else name[1])
    if _pins.setdefault(relid, now) != now:
        raise _changed(f"{now[0]}.{now[1]}")


def check_pins():
    """At the start of every later phase of a request (a new transaction), and before a phase
    reads rows of what it checked: lock the request's relations again and refuse if one is no
    longer what was checked."""
    if not _pins:
        return
    now = _lock_and_describe(list(_pins))
    for relid, before in _pins.items():
        if now.get(relid) != before:
            raise _changed(f"{before[0]}.{before[1]}")


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
               p.unit_path::text AS unit_path, d.privacy_unit
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
    pin(r["relid"], (r["nspname"], r["relname"]))     # locked before it is checked
    require_bounded_references(int(r["relid"]), name, r["dataset"], r["privacy_unit"],
                               f"An administrator declares every reference but one not personal "
                               f"(SELECT dp.protect('{name}', dataset => '{r['dataset']}', not_personal => "
                               "ARRAY['<key or column>'])), or drops the extra foreign key.")
    # answering reads the table as the extension owner: refused, before any charge, while its column
    # types would run another role's code (a cast, a domain's CHECK on a constant of the column's type)
    trust.require_no_column_code(int(r["relid"]), name, "asked")
    path = resolve_path(r, name) if r["unit_path"] else None
    if r["unit_path"]:
        # a row reaches its unit through each table of its path: none of them may name the unit twice
        for step in json.loads(r["unit_path"]):
            through = db.execute("SELECT $1::regclass::text AS t", [int(step["ref"])], ["oid"])[0]["t"]
            require_bounded_references(int(step["ref"]), through, r["dataset"], r["privacy_unit"],
                                       f"{name} reaches its unit through {through}: an administrator declares every "
                                       f"reference of {through} but one not personal (dp.protect('{through}', "
                                       f"dataset => '{r['dataset']}', not_personal => ARRAY['<key or column>'])).")
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
    unit_column = r["unit_column"]
    if path is not None:
        steps, unit_type = path
        unit_column = r["privacy_unit"]
        if unit_column in columns and not _declared_repeat(int(r["relid"]), unit_column):
            raise DPError(f"table {name} has a column {unit_column} of its own now, but reaches its privacy unit "
                          "through foreign keys", sqlstate=PREREQUISITE,
                          hint=f"An administrator protects it again (SELECT dp.protect('{name}')) to decide which "
                               "one is the unit.")
        # the unit, found along the path: it may be counted distinct, grouped or filtered like a unit column
        columns[unit_column] = {"type": unit_type, "notnull": False, "lower": None, "upper": None,
                                "public_values": None}
    return TableMeta(int(r["relid"]), r["nspname"], r["relname"], r["dataset"], unit_column,
                     _bound(r["max_rows_per_unit"]), _bound(r["max_groups_per_unit"]), int(r["data_version"]),
                     columns, unit_path=None if path is None else path[0])


def recheck_code(query) -> None:
    """Just before the exact query (after the charge, in the next transaction): the tables'
    column types still run no other role's code (a cast or domain CHECK added since the plan)."""
    pairs = [(s, t) for s, t, _ in query.tables] if getattr(query, "tables", None) else [(query.schema, query.table)]
    for schema, table in pairs:
        for r in db.execute(
                "SELECT p.relid::int8 AS relid, p.relid::regclass::text AS name FROM dp_internal.protected_tables p "
                "JOIN pg_catalog.pg_class c ON c.oid = p.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = $1 AND ($2::text IS NULL OR n.nspname = $2)", [table, schema], ["text", "text"]):
            trust.require_no_column_code(int(r["relid"]), r["name"], "asked")


def _declared_repeat(relid: int, column: str) -> bool:
    """Whether the table's column of the unit's name is a foreign key the DBA declared not personal
    (a path table that also repeats its unit: the path decides, the column is an ordinary one)."""
    return bool(db.execute(
        "SELECT 1 FROM pg_catalog.pg_constraint k JOIN dp_internal.protected_tables p ON p.relid = k.conrelid "
        "WHERE k.conrelid = $1 AND k.contype = 'f' AND k.conname = ANY(coalesce(p.not_personal, '{}')) "
        "AND k.conkey = ARRAY[(SELECT a.attnum FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 "
        "                      AND a.attname = $2)]::int2[]", [relid, column], ["oid", "name"]))


PREREQUISITE = "55000"
TWICE = "0A000"


def root_table(relid: int) -> int:
    """The topmost parent of a partition or inheritance child (the table itself when it has none)."""
    r = db.execute("WITH RECURSIVE up(r, d) AS (SELECT $1::oid, 0 UNION ALL SELECT i.inhparent, u.d + 1 FROM up u "
                   "JOIN pg_catalog.pg_inherits i ON i.inhrelid = u.r WHERE u.d < 64) "
                   "SELECT r::int8 AS r FROM up ORDER BY d DESC LIMIT 1", [relid], ["oid"])
    return int(r[0]["r"])


def foreign_keys(relid: int) -> list[dict]:
    """The foreign keys of a table, including those declared only on its partitions or inheritance
    children (their rows are the table's rows): one entry per (columns, referenced columns, referenced
    table -- a partition's topmost parent), named by its first constraint (the table's own first),
    with every constraint name it goes by.  [{"conname", "names", "cols", "refcols", "confrelid",
    "target", "def", "declared_on", "own"}]"""
    keys: dict[tuple, dict] = {}
    for k in db.execute(
            "WITH RECURSIVE down(r, d) AS (SELECT $1::oid, 0 UNION ALL SELECT i.inhrelid, w.d + 1 FROM down w "
            "JOIN pg_catalog.pg_inherits i ON i.inhparent = w.r WHERE w.d < 64) "
            "SELECT k.conname::text AS conname, k.confrelid::int8 AS confrelid, "
            "pg_catalog.pg_get_constraintdef(k.oid) AS def, k.conrelid::regclass::text AS declared_on, "
            "k.conrelid = $1 AS own, "
            "ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(k.confkey) WITH ORDINALITY u(n, o) "
            "      JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.o) AS refcols, "
            "ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(k.conkey) WITH ORDINALITY u(n, o) "
            "      JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.o) AS cols "
            "FROM pg_catalog.pg_constraint k JOIN down ON down.r = k.conrelid "
            "WHERE k.contype = 'f' AND k.conparentid = 0 ORDER BY k.conrelid <> $1, k.conname", [relid], ["oid"]):
        ref = root_table(int(k["confrelid"]))
        ident = (tuple(k["cols"]), tuple(k["refcols"]), ref)
        if ident in keys:
            keys[ident]["names"].append(k["conname"])
        else:
            keys[ident] = {"conname": k["conname"], "names": [k["conname"]], "cols": list(k["cols"]),
                           "refcols": list(k["refcols"]), "confrelid": ref,
                           "target": db.execute("SELECT $1::regclass::text AS t", [ref], ["oid"])[0]["t"],
                           "def": k["def"], "declared_on": k["declared_on"], "own": bool(k["own"])}
    return list(keys.values())


def unit_references(relid: int, dataset: str, unit_column: str | None, declared: list[str] | None = None) -> list[dict]:
    """Every way a row of a table names a unit of its dataset: its unit column, when it holds one
    (dp_internal.protected_tables.unit_column: not a table reaching the unit through foreign keys),
    and each foreign key to a table of the dataset (or to the table itself) -- each of those rows
    is some unit's.  [{"conname" (None for the column), "cols", "target", "declared"}]; `declared`
    when the DBA said the key is not personal (dp.protect(..., not_personal => ...))."""
    refs = []
    own = db.execute("SELECT unit_column::text AS u FROM dp_internal.protected_tables WHERE relid = $1",
                     [relid], ["oid"])
    holds = bool(own and own[0]["u"] and own[0]["u"] == unit_column)
    if holds:
        refs.append({"conname": None, "cols": [unit_column], "target": None, "declared": False})
    row = db.execute("SELECT coalesce(p.not_personal, '{}') AS n FROM dp_internal.protected_tables p "
                     "WHERE p.relid = $1", [relid], ["oid"])
    not_personal = set(row[0]["n"]) if row else set()
    for k in foreign_keys(relid):
        if not (k["confrelid"] == relid or db.execute(
                "SELECT EXISTS (SELECT 1 FROM dp_internal.protected_tables p WHERE p.relid = $1 AND p.dataset = $2) AS e",
                [k["confrelid"], dataset], ["oid", "text"])[0]["e"]):
            continue
        target_holds = k["confrelid"] == relid or db.execute(
            "SELECT EXISTS (SELECT 1 FROM dp_internal.protected_tables p WHERE p.relid = $1 "
            "AND p.unit_column IS NOT NULL) AS e", [k["confrelid"]], ["oid"])[0]["e"]
        cols, refcols = k["cols"], k["refcols"]
        if holds and unit_column in cols and target_holds and refcols[cols.index(unit_column)] == unit_column:
            continue        # the unit column itself, pointing at the same unit's row: one reference
        names = set(k["names"])
        refs.append({"conname": k["conname"], "cols": cols, "target": k["target"],
                     "declared": bool(names & set(declared if declared is not None else not_personal))})
    return refs


def describe_reference(ref: dict) -> str:
    if ref["conname"] is None:
        return f"its column {ref['cols'][0]}"
    return f"foreign key {ref['conname']} ({', '.join(ref['cols'])} -> {ref['target']})"


def require_bounded_references(relid: int, name: str, dataset: str, unit: str | None, hint: str,
                               declared: list[str] | None = None):
    """Refuse a table whose rows name a unit of the dataset more than once, unless the DBA declared
    each reference but one not personal: the bound of one unit says nothing about the other's
    (one customer's 300 received transfers, bounded as 5 rows of their senders)."""
    if unit is None:
        return
    refs = [r for r in unit_references(relid, dataset, unit, declared) if not r["declared"]]
    if len(refs) > 1:
        raise DPError(f"table {name} names a unit of dataset {dataset} ({unit}) more than once: "
                      + " and ".join(describe_reference(r) for r in refs)
                      + "; a row can be bounded for one unit only", sqlstate=TWICE, hint=hint)


def _bound(value) -> int | None:
    return None if value is None else int(value)


def resolve_path(r, name: str):
    """The recorded foreign-key path of a table to its privacy unit, checked against today's catalog:
    ([{"schema", "table", "cols", "refcols", "ops"}, ...], the unit column's type).

    Every table on the path must still be protected in the table's dataset (its writes bump the
    data version, nobody but its owner reads or writes it: otherwise whoever may write it could
    decide whose rows are whose), every foreign key must still exist (so each row reaches at
    most one row of the next table: the referenced columns are unique), and the last table must
    still hold the unit.  The joins use the keys' own equality operators (conpfeqop)."""
    recorded = json.loads(r["unit_path"])
    steps, current, current_name = [], int(r["relid"]), name
    hint_again = (f"An administrator protects {name} again (SELECT dp.protect('{name}', dataset => "
                  f"'{r['dataset']}')) to record its path anew.")
    for i, step in enumerate(recorded):
        pin(step["ref"])
        found = db.execute(
            """
            SELECT n.nspname, c.relname, c.oid::regclass::text AS qname, p.dataset, p.unit_column,
                   (SELECT pg_catalog.array_agg(pg_catalog.format('OPERATOR(%I.%s)', on_.nspname, o.oprname)
                                                ORDER BY u.i)
                      FROM pg_catalog.unnest(k.conpfeqop) WITH ORDINALITY u(op, i)
                      JOIN pg_catalog.pg_operator o ON o.oid = u.op
                      JOIN pg_catalog.pg_namespace on_ ON on_.oid = o.oprnamespace) AS ops
            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN dp_internal.protected_tables p ON p.relid = c.oid
            LEFT JOIN LATERAL (
                SELECT k.conpfeqop FROM pg_catalog.pg_constraint k
                WHERE k.contype = 'f' AND k.conrelid = $2 AND k.confrelid = c.oid
                  AND ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(k.conkey) WITH ORDINALITY u(n, o)
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n
                            ORDER BY u.o) = $3::text[]
                  AND ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(k.confkey) WITH ORDINALITY u(n, o)
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n
                            ORDER BY u.o) = $4::text[]
                ORDER BY k.oid LIMIT 1) k ON true
            WHERE c.oid = $1
            """,
            [int(step["ref"]), current, list(step["cols"]), list(step["refcols"])],
            ["oid", "oid", "text[]", "text[]"])
        if not found:
            raise DPError(f"table {name} reaches its privacy unit through a table that no longer exists",
                          hint=hint_again, sqlstate=PREREQUISITE)
        f = found[0]
        if f["dataset"] != r["dataset"]:
            raise DPError(f"table {name} reaches its privacy unit through table {f['qname']}, which is not "
                          f"protected in dataset {r['dataset']}: its rows decide whose rows {name}'s are",
                          hint=f"An administrator protects it: SELECT dp.protect('{f['qname']}', dataset => "
                               f"'{r['dataset']}').", sqlstate=PREREQUISITE)
        if f["ops"] is None:
            raise DPError(f"the foreign key {step['conname']} of {current_name} to {f['qname']} on the path of "
                          f"{name} to its privacy unit no longer exists", hint=hint_again, sqlstate=PREREQUISITE)
        last = i == len(recorded) - 1
        if last and f["unit_column"] != r["privacy_unit"]:
            raise DPError(f"table {f['qname']} at the end of the path of {name} no longer holds the privacy unit "
                          f"{r['privacy_unit']}", hint=hint_again, sqlstate=PREREQUISITE)
        steps.append({"schema": f["nspname"], "table": f["relname"], "cols": list(step["cols"]),
                      "refcols": list(step["refcols"]), "ops": list(f["ops"])})
        current, current_name = int(step["ref"]), f["qname"]
    unit_type = db.execute(
        "SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) AS t FROM pg_catalog.pg_attribute a "
        "WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
        [current, r["privacy_unit"]], ["oid", "name"])
    if not unit_type:
        raise DPError(f"table {current_name} at the end of the path of {name} no longer has the column "
                      f"{r['privacy_unit']}", hint=hint_again, sqlstate=PREREQUISITE)
    return steps, unit_type[0]["t"]
