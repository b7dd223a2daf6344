"""Tables the DBA declared public (dp.declare_public), copied verbatim to the shadow schema.

Only declared tables are ever copied: a table that is neither protected nor declared
is never read into the shadow schema, whoever calls dp_synthesize (the DBA can read
every table, so "the caller may read it" would copy an employee table with names and
phones next to the synthetic rows, for every analyst of the shadow schema to read).

A copy has the source's columns, types, NOT NULL, PRIMARY KEY / UNIQUE constraints
and comments, and the foreign keys among declared public tables; CHECKs, defaults,
generated columns and index expressions are left out (they could run functions of the
table's owner with the extension owner's rights).  Rows are only added: a row already
in the copy (by its keys) stays, since synthetic children may point at it.
"""

from __future__ import annotations

import datetime as dt
import json

from ..core import db
from ..core.errors import DPError


def declared(relid: int) -> bool:
    return bool(db.execute("SELECT 1 FROM dp_internal.public_tables WHERE relid = $1", [relid], ["oid"]))


def _name(relid: int) -> dict:
    return db.execute(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS q, c.relname FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1", [relid], ["oid"])[0]


def _constraints(relid: int, kinds: str) -> list[dict]:
    return db.execute(
        "SELECT conname, contype, confrelid::int8 AS ref, "
        "ARRAY(SELECT a.attname::text FROM unnest(conkey) WITH ORDINALITY k(n, o) JOIN pg_catalog.pg_attribute a "
        "ON a.attrelid = conrelid AND a.attnum = k.n ORDER BY k.o) AS cols, "
        "ARRAY(SELECT a.attname::text FROM unnest(confkey) WITH ORDINALITY k(n, o) JOIN pg_catalog.pg_attribute a "
        "ON a.attrelid = confrelid AND a.attnum = k.n ORDER BY k.o) AS refcols "
        "FROM pg_catalog.pg_constraint WHERE conrelid = $1 AND contype = ANY($2::text[]) ORDER BY conname",
        [relid, list(kinds)], ["oid", "text[]"])


def closure(relids: list[int], foreign_code) -> tuple[list[int], list[str]]:
    """The declared public tables reachable from `relids` through foreign keys among
    declared tables (those first), and NOTICE lines for keys that are not followed."""
    order, notes, todo, seen = [], [], list(relids), set()
    while todo:
        relid = todo.pop()
        if relid in seen:
            continue
        seen.add(relid)
        order.append(relid)
        for fk in _constraints(relid, "f"):
            ref = int(fk["ref"])
            if ref == relid or ref in seen:
                continue
            if not declared(ref):
                notes.append(f"foreign key {fk['conname']} of public table {_name(relid)['q']} is not copied: "
                             f"{_name(ref)['q']} is not declared public")
            elif foreign_code(ref):
                notes.append(f"foreign key {fk['conname']} of public table {_name(relid)['q']} is not copied: "
                             f"{_name(ref)['q']} runs functions of other roles when written")
            else:
                todo.append(ref)
    return order, notes


def copy_all(relids: list[int], schema: str, caller: str, foreign_code) -> dict[int, str]:
    """Copy the declared public tables `relids` and those their keys reach; returns source oid -> copy."""
    order, notes = closure(relids, foreign_code)
    for line in notes:
        db.notice(line, hint="Declare the referenced table public (dp.declare_public) to keep the key.")
    targets = {r: f"{db.quote_ident(schema)}.{db.quote_ident(_name(r)['relname'])}" for r in order}
    for relid in order:
        _copy_rows(relid, targets[relid], caller)
    for relid in order:                     # keys among them once every table has its rows
        for fk in _constraints(relid, "f"):
            ref = int(fk["ref"])
            if ref not in targets or db.execute(
                    "SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = $1::regclass AND conname = $2",
                    [targets[relid], fk["conname"]], ["text", "name"]):
                continue
            _ensure_unique(targets[ref], fk["refcols"])
            cols = ", ".join(db.quote_ident(c) for c in fk["cols"])
            refcols = ", ".join(db.quote_ident(c) for c in fk["refcols"])
            db.execute(f"ALTER TABLE {targets[relid]} ADD CONSTRAINT {db.quote_ident(fk['conname'])} "
                       f"FOREIGN KEY ({cols}) REFERENCES {targets[ref]} ({refcols})")
    return targets


def _copy_rows(relid: int, target: str, caller: str):
    source = _name(relid)["q"]
    if db.relation_exists(target):
        if not db.execute("SELECT 1 FROM dp_internal.synthetic_tables WHERE relid = $1::regclass::oid",
                          [target], ["text"]):
            raise DPError(f"{target} exists and was not written by dp_synthesize",
                          hint="Drop or rename it: the public table is copied there.", sqlstate="42P07")
    else:
        # columns, types and NOT NULL only: CHECKs, defaults, generated columns and index
        # expressions of another role's table must not run here, as the extension owner
        db.execute(f"CREATE TABLE {target} (LIKE {source} INCLUDING COMMENTS)")
    for k in _constraints(relid, "pu"):
        _ensure_unique(target, k["cols"], primary=k["contype"] == "p")
    conflict = " ON CONFLICT DO NOTHING" if db.execute(
        "SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = $1::regclass AND indisunique", [target], ["text"]) else ""
    if conflict or not db.execute(f"SELECT 1 FROM {target} LIMIT 1"):
        db.execute(f"INSERT INTO {target} SELECT * FROM {source}{conflict}")
    db.execute(f"GRANT SELECT ON {target} TO {caller}")
    provenance = {"source": source, "method": "declared public table, copied verbatim",
                  "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    db.execute("INSERT INTO dp_internal.synthetic_tables (relid, source, provenance) "
               "VALUES ($1::regclass::oid, $2, $3::jsonb) ON CONFLICT (relid) DO NOTHING",
               [target, relid, json.dumps(provenance)], ["text", "oid", "text"])
    db.execute(f"COMMENT ON TABLE {target} IS " + db.quote_literal(
        f"Public table copied verbatim from {source} by pg_dp dp_synthesize (declared public with dp.declare_public)"))


def _ensure_unique(target: str, cols: list[str], primary: bool = False):
    """A unique constraint on exactly these columns (a foreign key needs one on its target)."""
    have = db.execute(
        "SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = $1::regclass AND i.indisunique "
        "AND i.indpred IS NULL AND i.indexprs IS NULL AND ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) "
        "WITH ORDINALITY k(n, o) JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n "
        "ORDER BY k.o) = $2::text[]", [target, list(cols)], ["text", "text[]"])
    if not have:
        what = "PRIMARY KEY" if primary and not db.execute(
            "SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = $1::regclass AND indisprimary", [target], ["text"]) \
            else "UNIQUE"
        db.execute(f"ALTER TABLE {target} ADD {what} ({', '.join(db.quote_ident(c) for c in cols)})")
