"""Which tables one dp_synthesize call writes, and in which order.

A call names one table, a schema (its protected tables), a dataset, or a list of tables;
partitions and inheritance children go with their root table, and foreign keys declared
on partitions count for their table.  Tables are synthesized parents first.
"""

from __future__ import annotations

from ..core import catalog, db
from ..core.errors import DPError


def resolve(schema: str | None, dataset: str | None, sources: list | None) -> list[int]:
    """Protected tables of a schema or a dataset, or the given ones (partitions go with their table)."""
    root = ("NOT c.relispartition AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i JOIN "
            "dp_internal.protected_tables q ON q.relid = i.inhparent WHERE i.inhrelid = p.relid)")
    if schema is not None:
        rows = db.execute("SELECT p.relid::int8 AS r FROM dp_internal.protected_tables p JOIN pg_catalog.pg_class c "
                          "ON c.oid = p.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                          f"WHERE n.nspname = $1 AND {root} ORDER BY 1", [schema], ["text"])
        what = f"schema {schema}"
    elif dataset is not None:
        rows = db.execute("SELECT p.relid::int8 AS r FROM dp_internal.protected_tables p JOIN pg_catalog.pg_class c "
                          f"ON c.oid = p.relid WHERE p.dataset = $1 AND {root} ORDER BY 1", [dataset], ["text"])
        what = f"dataset {dataset}"
    else:
        rows = [{"r": int(r)} for r in dict.fromkeys(sources or [])]
        what = "the tables given"
    relids = [int(r["r"]) for r in rows]
    if not relids:
        raise DPError(f"{what} has no protected table to synthesize", sqlstate="42P01",
                      hint="Protect tables first (dp.protect); dp.protected_tables lists them.")
    return relids


def _root(relid: int) -> int:
    return catalog.root_table(relid)


def order(relids: list[int]) -> tuple[list[int], list[str]]:
    """Parents first (keys declared on partitions count for their table); cycles broken with a note."""
    wanted = set(relids)
    needs = {r: set() for r in relids}
    for r in relids:
        for k in db.execute(
                "WITH RECURSIVE down(r, d) AS (SELECT $1::oid, 0 UNION ALL SELECT i.inhrelid, w.d + 1 FROM down w "
                "JOIN pg_catalog.pg_inherits i ON i.inhparent = w.r WHERE w.d < 64) "
                "SELECT DISTINCT k.confrelid::int8 AS ref FROM pg_catalog.pg_constraint k JOIN down ON down.r = k.conrelid "
                "WHERE k.contype = 'f'", [r], ["oid"]):
            ref = _root(int(k["ref"]))
            if ref in wanted and ref != r:
                needs[r].add(ref)
    done, notes = [], []
    while len(done) < len(relids):
        ready = [r for r in relids if r not in done and needs[r] <= set(done)]
        if not ready:
            r = next(r for r in relids if r not in done)
            notes.append(f"foreign keys form a cycle through {name(r)}: it is synthesized before some of its parents")
            ready = [r]
        done += ready
    return done, notes


def name(relid: int) -> str:
    return db.execute("SELECT $1::oid::regclass::text AS n", [relid], ["oid"])[0]["n"]


def partition_foreign_keys(relid: int, own: list[dict]) -> list[dict]:
    """Foreign keys declared on partitions (or children) of a table, not on the table itself."""
    seen = {(tuple(k["cols"]), _root(int(k["ref"]))) for k in own}
    found = []
    for k in catalog.foreign_keys(relid):
        key = (tuple(k["cols"]), k["confrelid"])
        if k["own"] or key in seen:
            continue
        seen.add(key)
        found.append({"contype": "f", "def": k["def"], "conname": k["conname"], "ref": k["confrelid"],
                      "cols": k["cols"], "refcols": k["refcols"], "declared_on": k["declared_on"]})
    return found


def partition_keys(relid: int) -> list[list[str]]:
    """Keys declared on the partitions (or inheritance children) of a table and not on the table
    itself: the column lists that every leaf holds a PRIMARY KEY, UNIQUE constraint or plain
    unique index on (payments partitioned by quarter with PRIMARY KEY (payment_id) on each
    quarter).  Regenerated keys are unique in the whole copy, which meets every partition's."""
    leaves = [int(r["r"]) for r in db.execute(
        "WITH RECURSIVE down(r, d) AS (SELECT i.inhrelid, 1 FROM pg_catalog.pg_inherits i WHERE i.inhparent = $1 "
        "UNION ALL SELECT i.inhrelid, w.d + 1 FROM down w JOIN pg_catalog.pg_inherits i ON i.inhparent = w.r "
        "WHERE w.d < 64) "
        "SELECT r::int8 AS r FROM down WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhparent = "
        "down.r) ORDER BY 1", [relid], ["oid"])]
    if not leaves:
        return []
    common = None
    for leaf in leaves:
        found = {tuple(r["cols"]) for r in db.execute(
            "SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) "
            "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) AS cols "
            "FROM pg_catalog.pg_index i WHERE i.indrelid = $1 AND i.indisunique AND i.indexprs IS NULL "
            "AND i.indpred IS NULL", [leaf], ["oid"])}
        common = found if common is None else common & found
        if not common:
            return []
    own = {tuple(r["cols"]) for r in db.execute(
        "SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) "
        "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) AS cols "
        "FROM pg_catalog.pg_index i WHERE i.indrelid = $1 AND i.indisunique", [relid], ["oid"])}
    return [list(c) for c in sorted(common - own)]
