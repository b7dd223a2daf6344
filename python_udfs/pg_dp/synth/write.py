"""The write path of dp_synthesize: every statement that creates or fills a shadow table.

Everything else in pg_dp.synth reads the source and computes rows; this module alone
writes to the shadow schema.  Its interface:

- ``foreign_code(relid)``: the functions of other roles that writing a copy of a table
  would run (asked before the charge; a table that has them is refused, a vocabulary
  that has them is not copied).
- ``TableWrite``: what writing one synthetic table needs, fixed by the plan before any
  row is sampled: where it goes, its columns and the SQL types they are staged as, the
  CHECKs, multi-column UNIQUEs and domains the rows must meet, serial and identity
  columns, the foreign keys the copy keeps, the declared public tables it references,
  and the role that gets SELECT on it.
- ``stage(w, rows, render)``: the sampled rows, rendered as text a chunk at a time by
  ``render(rows, first)`` (column -> list of text, keys numbered from ``first``), into
  a TEMP staging table with their sample index (``pg_dp_idx``).
- ``misfits(w)``: the staged rows that break a domain's constraints, a CHECK or a
  multi-column UNIQUE (the caller replaces them with new samples).
- ``swap(w, bad, n, provenance, after_insert)``: a new table built with the source's DDL
  (``LIKE ... INCLUDING``), its own sequences, the public tables it references copied
  (``copy_public``), the first n good staged rows inserted, ``after_insert(table)`` run
  (self-references), then the previous copy dropped and the new one renamed in its
  place, its foreign keys added, grants carried over, comments and provenance recorded.
  All of it in the executor's transaction: a failure leaves the previous copy in place.
- ``copy_public(relids, schema, caller)``: declared public tables copied verbatim, with
  the foreign keys among them (see below).

Public tables are declared, never guessed: only declared tables are ever copied (a table
that is neither protected nor declared is never read into the shadow schema, whoever
calls dp_synthesize: the DBA can read every table, so "the caller may read it" would copy
an employee table with names and phones next to the synthetic rows).  A public copy has
the source's columns, types, NOT NULL, PRIMARY KEY / UNIQUE constraints and comments, and
the foreign keys among declared public tables; CHECKs, defaults, generated columns and
index expressions are left out (they could run functions of the table's owner with the
extension owner's rights).  Rows are only added: a row already in the copy (by its keys)
stays, since synthetic children may point at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import datetime as dt
import json
from typing import Callable

import numpy as np

from ..core import db
from ..core.errors import DPError

STAGE = "pg_dp_synth_stage"
STAGE_CHUNK = 50_000                  # rows turned into text and sent to the server at a time


@dataclass
class ForeignKey:
    """A foreign key the copy keeps: its name, columns, and the referenced table and columns
    (target None: the copy itself, a self-reference)."""
    name: str
    cols: list[str]
    refcols: list[str]
    target: str | None


@dataclass
class TableWrite:
    """What writing one synthetic table needs (see the module's docstring)."""
    source: int                                   # oid of the protected table
    source_name: str                              # its qualified name
    schema: str                                   # the shadow schema (not quoted)
    name: str                                     # the copy's name there (not quoted)
    columns: list[tuple[str, str]]                # (name, SQL type the value is staged as), table order
    caller: str                                   # quoted role name that gets SELECT on the copy
    domains: dict[str, str] = field(default_factory=dict)     # column -> its domain type
    checks: list[str] = field(default_factory=list)           # CHECK expressions of the source
    uniques: list[list[str]] = field(default_factory=list)    # multi-column UNIQUEs
    serials: list[str] = field(default_factory=list)          # columns whose default takes nextval
    integers: set[str] = field(default_factory=set)           # integer columns (sequences set past them)
    identity_always: bool = False
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    vocabularies: list[int] = field(default_factory=list)     # declared public tables it references


def drop_temp(name: str):
    db.drop_table_if_present(f"pg_temp.{name}")


def foreign_code(relid: int) -> list[str]:
    """Functions of non-superusers that writing a copy of a table would run.

    CHECK constraints, defaults, generated columns, index expressions and the
    constraints of domain types of the table can call them; run by the executor
    they would run with the extension owner's rights, so a table that has them is
    refused before anything is charged (a vocabulary: its key is not kept).
    """
    return [r["f"] for r in db.execute(
        """
        WITH objects AS (
            SELECT 'pg_catalog.pg_constraint'::regclass AS classid, oid AS objid
            FROM pg_catalog.pg_constraint WHERE conrelid = $1
               OR contypid IN (SELECT atttypid FROM pg_catalog.pg_attribute
                               WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped)
            UNION ALL SELECT 'pg_catalog.pg_attrdef'::regclass, oid FROM pg_catalog.pg_attrdef WHERE adrelid = $1
            UNION ALL SELECT 'pg_catalog.pg_class'::regclass, indexrelid FROM pg_catalog.pg_index WHERE indrelid = $1)
        SELECT DISTINCT d.refobjid::regprocedure::text AS f
        FROM objects o JOIN pg_catalog.pg_depend d ON d.classid = o.classid AND d.objid = o.objid
        JOIN pg_catalog.pg_proc p ON p.oid = d.refobjid AND d.refclassid = 'pg_catalog.pg_proc'::regclass
        JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
        WHERE NOT r.rolsuper
        ORDER BY 1
        """, [relid], ["oid"])]


# ----------------------------------------------------------------- the synthetic rows
def stage(w: TableWrite, rows: np.ndarray, render: Callable[[np.ndarray, int], dict[str, list]]) -> int:
    """Write the given sample rows to a TEMP table, a chunk at a time (text is built per chunk)."""
    names = [c for c, _ in w.columns]
    drop_temp(STAGE)
    db.execute(f"CREATE TEMP TABLE {STAGE} ON COMMIT DROP AS SELECT "
               + ", ".join(f"{db.quote_ident(c)}::{t} AS {db.quote_ident(c)}" if c in w.domains
                           else db.quote_ident(c) for c, t in w.columns)
               + f", 0::int8 AS pg_dp_idx FROM {w.source_name} WITH NO DATA")
    casts = ", ".join(f"${i + 1}::text[]" for i in range(len(names)))
    cols = ", ".join(f"u.c{i}::{t}" for i, (_, t) in enumerate(w.columns))
    sql = (f"INSERT INTO {STAGE} SELECT {cols}, u.idx FROM unnest({casts}, ${len(names) + 1}::int8[]) "
           f"AS u({', '.join(f'c{i}' for i in range(len(names)))}, idx)")
    types = ["text[]"] * len(names) + ["int8[]"]
    for start in range(0, rows.size, STAGE_CHUNK):
        chunk = rows[start:start + STAGE_CHUNK]
        text = render(chunk, start + 1)
        db.execute(sql, [text[nm] for nm in names] + [list(range(start, start + chunk.size))], types)
        db.check_interrupts()
    return int(rows.size)


def misfits(w: TableWrite) -> set[int]:
    """Staged rows (pg_dp_idx) that break a domain's constraints, a CHECK or a multi-column UNIQUE."""
    bad = set()
    for name, domain in w.domains.items():
        bad |= {r["i"] for r in db.execute(
            "SELECT i FROM dp_internal.domain_misfits($1::regclass, $2, $3::regtype) i",
            [f"pg_temp.{STAGE}", name, domain], ["text", "name", "text"])}
    for check in w.checks:
        bad |= {r["i"] for r in db.execute(f"SELECT pg_dp_idx AS i FROM {STAGE} WHERE NOT coalesce(({check}), true)")}
    for cols in w.uniques:
        q = ", ".join(db.quote_ident(c) for c in cols)
        bad |= {r["i"] for r in db.execute(
            f"SELECT i FROM (SELECT pg_dp_idx AS i, row_number() OVER (PARTITION BY {q} ORDER BY pg_dp_idx) AS rn "
            f"FROM {STAGE} WHERE " + " AND ".join(f"{db.quote_ident(c)} IS NOT NULL" for c in cols)
            + ") s WHERE rn > 1")}
    return bad


def swap(w: TableWrite, bad: set[int], n: int, provenance: dict,
         after_insert: Callable[[str], None] = lambda table: None) -> int:
    """Build the copy under a temporary name from the staged rows, then swap it in (module docstring).
    `provenance` gets the rows written and the time, and is recorded in dp_internal.synthetic_tables."""
    schema, name = db.quote_ident(w.schema), db.quote_ident(w.name)
    fresh = db.quote_ident(f"{w.name[:40]}_pg_dp_new")
    if not db.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", [w.schema], ["text"]):
        db.execute(f"CREATE SCHEMA {schema}")
    old = db.execute(
        "SELECT c.oid::int8 AS oid, s.relid IS NOT NULL AS ours FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN dp_internal.synthetic_tables s ON s.relid = c.oid "
        "WHERE n.nspname = $1 AND c.relname = $2", [w.schema, w.name], ["text", "text"])
    if old and not old[0]["ours"]:
        raise DPError(f"{w.schema}.{w.name} exists and was not written by dp_synthesize",
                      hint="Drop or rename it, or choose another shadow schema with "
                           "dp.set_setting('synthetic_schema', ...).", sqlstate="42P07")
    db.drop_table_if_present(f"{schema}.{fresh}")
    db.execute(f"CREATE TABLE {schema}.{fresh} (LIKE {w.source_name} INCLUDING CONSTRAINTS "
               "INCLUDING INDEXES INCLUDING GENERATED INCLUDING COMMENTS INCLUDING DEFAULTS INCLUDING IDENTITY)")
    for column in w.serials:
        # a default taking the source's sequence would hand out (and tell) the source's next
        # keys: the copy gets a sequence of its own, set past its keys once they are written
        seq = f"{schema}.{db.quote_ident(f'{w.name[:24]}_{column[:20]}_pg_dp_new_seq')}"
        db.execute(f"DROP SEQUENCE IF EXISTS {seq}")
        db.execute(f"CREATE SEQUENCE {seq} OWNED BY {schema}.{fresh}.{db.quote_ident(column)}")
        db.execute(f"ALTER TABLE {schema}.{fresh} ALTER COLUMN {db.quote_ident(column)} SET DEFAULT "
                   f"pg_catalog.nextval({db.quote_literal(seq)}::pg_catalog.regclass)")
    copy_public(w.vocabularies, w.schema, w.caller)
    names = ", ".join(db.quote_ident(c) for c, _ in w.columns)
    skip = f"WHERE pg_dp_idx <> ALL ($1::int8[]) " if bad else ""
    overriding = " OVERRIDING SYSTEM VALUE" if w.identity_always else ""
    db.execute(f"INSERT INTO {schema}.{fresh} ({names}){overriding} SELECT {names} FROM {STAGE} {skip}"
               f"ORDER BY pg_dp_idx LIMIT {int(n)}", [sorted(bad)] if bad else [], ["int8[]"] if bad else [])
    after_insert(f"{schema}.{fresh}")
    written = db.execute(f"SELECT count(*) AS n FROM {schema}.{fresh}")[0]["n"]
    _advance_sequences(w, f"{schema}.{fresh}")
    grants = []
    if old:
        grants = db.execute(
            "SELECT a.privilege_type AS p, CASE WHEN a.grantee = 0 THEN 'PUBLIC' "
            "ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END AS g "
            "FROM pg_catalog.pg_class c, LATERAL pg_catalog.aclexplode(c.relacl) a "
            "WHERE c.oid = $1 AND a.grantee <> c.relowner", [old[0]["oid"]], ["oid"])
        dependents = [r["d"] for r in db.execute(
            "SELECT pg_catalog.format('%s on %s', conname, conrelid::regclass) AS d FROM pg_catalog.pg_constraint "
            "WHERE contype = 'f' AND confrelid = $1 AND conrelid <> $1", [old[0]["oid"]], ["oid"])]
        db.execute(f"DROP TABLE {schema}.{name} CASCADE")
        if dependents:
            db.notice("dropped foreign key(s) " + ", ".join(dependents) + " that referenced the previous copy",
                      hint="Synthesize the referencing tables again to restore them.")
    db.execute(f"ALTER TABLE {schema}.{fresh} RENAME TO {name}")
    for column in w.serials:
        db.execute(f"ALTER SEQUENCE {schema}.{db.quote_ident(f'{w.name[:24]}_{column[:20]}_pg_dp_new_seq')} "
                   f"RENAME TO {db.quote_ident(f'{w.name[:24]}_{column[:20]}_pg_dp_seq')}")
    for k in w.foreign_keys:
        cols = ", ".join(db.quote_ident(c) for c in k.cols)
        refcols = ", ".join(db.quote_ident(c) for c in k.refcols)
        db.execute(f"ALTER TABLE {schema}.{name} ADD CONSTRAINT {db.quote_ident(k.name)} FOREIGN KEY "
                   f"({cols}) REFERENCES {k.target or f'{schema}.{name}'} ({refcols})")
    db.execute(f"GRANT USAGE ON SCHEMA {schema} TO {w.caller}")
    db.execute(f"GRANT SELECT ON {schema}.{name} TO {w.caller}")
    for g in grants:
        db.execute(f"GRANT {g['p']} ON {schema}.{name} TO {g['g']}")
    relid = db.regclass_oid(f"{schema}.{name}")
    provenance = {**provenance, "rows": written,
                  "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    db.execute(f"COMMENT ON TABLE {schema}.{name} IS " + db.quote_literal(
        f"DP synthetic copy of {w.source_name} made by pg_dp dp_synthesize: epsilon {provenance['epsilon']}, "
        f"delta {provenance['delta']}, {provenance['method']}, {written} rows, {provenance['at']}"))
    db.execute("INSERT INTO dp_internal.synthetic_tables (relid, source, provenance) VALUES ($1, $2, $3::jsonb) "
               "ON CONFLICT (relid) DO UPDATE SET source = excluded.source, provenance = excluded.provenance",
               [relid, w.source, json.dumps(provenance)], ["oid", "oid", "text"])
    db.execute("DELETE FROM dp_internal.synthetic_tables s WHERE NOT EXISTS "
               "(SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = s.relid)")
    return written


def _advance_sequences(w: TableWrite, table: str):
    """Sequences of the copy (identity columns, its own serials) start past its keys, so
    that inserts into the copy that leave the key out still work."""
    for r in db.execute(
            "SELECT a.attname, pg_catalog.pg_get_serial_sequence($1, a.attname) AS seq "
            "FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 "
            "AND NOT a.attisdropped", [table], ["text"]):
        if r["seq"] and r["attname"] in w.integers:
            db.execute(f"SELECT pg_catalog.setval($1::regclass, coalesce((SELECT max({db.quote_ident(r['attname'])}) "
                       f"FROM {table}), 0) + 1, false)", [r["seq"]], ["text"])


# ----------------------------------------------------------------- declared public tables
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


def public_closure(relids: list[int]) -> tuple[list[int], list[str]]:
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


def copy_public(relids: list[int], schema: str, caller: str) -> dict[int, str]:
    """Copy the declared public tables `relids` and those their keys reach; returns source oid -> copy."""
    order, notes = public_closure(relids)
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
