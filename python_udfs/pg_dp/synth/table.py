"""One protected table as the catalog describes it: what dp_synthesize reads before the charge.

``load(relid)`` gathers the table's columns (each classified into how it is modelled, from
public metadata only: declared bounds and values, enums, CHECK lists, types), its keys,
CHECKs, multi-column UNIQUEs and unique indexes, foreign keys (those declared on its
partitions too), domains, serial and identity columns, denial constraints, its privacy
unit and the path of foreign keys to it.  What cannot be copied is listed in
``Target.refused`` (the run refuses it before the charge).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import math
import re

import numpy as np

from ..core import catalog, db
from ..core.errors import DPError
from . import dc as dcmod
from . import domain as dom
from . import schema

MAX_ROWS = 100_000_000                # rows a copy may ask for
# a date or timestamp column named as the columns that record a row's last change are
# (last_update, updated_at, modified, ...) tells when the row was written, not an event of the
# data: it is modelled on its own (a range with DP bounds), never as the date a child's dates
# follow.  A column whose default is the time of the write (now()) is such a column only when
# its name says so too: created_at DEFAULT now() is an order's own date.
AUDIT_NAME = re.compile(r"(^|_)(last_?update[ds]?|updated(_at|_on)?|last_?modified|modified(_at|_on)?|"
                        r"last_?changed|changed(_at|_on)|row_?version)$", re.IGNORECASE)


def is_audit(name: str, default_expr: str | None = None) -> bool:
    return bool(AUDIT_NAME.search(name))


@dataclass
class Target:
    relid: int
    schema: str
    name: str
    qualified: str
    dataset: str
    unit: str | None
    max_rows: int                 # rows per privacy unit (the table's own max_rows_per_unit, else the dataset's)
    data_version: int
    columns: list[dom.Column] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)          # single-column PRIMARY KEY / UNIQUE
    checks: list[str] = field(default_factory=list)
    uniques: list[list[str]] = field(default_factory=list)  # multi-column ones
    foreign_keys: list[dict] = field(default_factory=list)   # contype 'f' rows of pg_constraint
    dcs: list = field(default_factory=list)
    domains: dict = field(default_factory=dict)              # column -> its domain type (CHECKs checked when staged)
    serials: list[str] = field(default_factory=list)          # columns whose default takes a sequence's nextval
    identity_always: bool = False                             # a GENERATED ALWAYS AS IDENTITY column
    refused: list[str] = field(default_factory=list)          # what cannot be copied (refused before the charge)
    path: list[dict] = field(default_factory=list)            # foreign keys to the table holding the unit
    path_unit: str | None = None                              # the unit column at the end of the path
    opaque: dict = field(default_factory=dict)                # column -> type category (arrays 'A', json, inet ...)
    needs_bounds: list[str] = field(default_factory=list)
    needs_values: list[str] = field(default_factory=list)
    derived: list[dom.Column] = field(default_factory=list)   # modelled, not written: a child date's offset
    own_max_rows: bool = True                                 # max_rows_per_unit set for this table (not inherited)
    audit: list[str] = field(default_factory=list)            # last_update-style columns (see is_audit)

    def column(self, name: str) -> dom.Column:
        return next(c for c in self.columns + self.derived if c.name == name)


def load(relid: int) -> Target:
    catalog.pin(relid)          # locked before it is read; compared again after the charge
    r = db.execute(
        "SELECT n.nspname, c.relname, p.dataset, p.unit_column, "
        "d.data_version + dp_internal.distributed_writes(p.dataset) AS data_version, p.unit_path::text AS unit_path, "
        "coalesce(p.max_rows_per_unit, d.max_rows_per_unit, 1) AS max_rows_per_unit, d.privacy_unit, "
        "p.max_rows_per_unit IS NOT NULL AS own_max_rows "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN dp_internal.protected_tables p ON p.relid = c.oid "
        "LEFT JOIN dp_internal.datasets d ON d.name = p.dataset WHERE c.oid = $1", [relid], ["oid"])[0]
    qualified = f"{db.quote_ident(r['nspname'])}.{db.quote_ident(r['relname'])}"
    if r["dataset"] is None:
        raise DPError(f"table {qualified} is not protected by pg_dp",
                      hint=f"Protect it first: SELECT dp.protect('{qualified}'); then grant a budget on its dataset.",
                      sqlstate="42P01")
    t = Target(relid, r["nspname"], r["relname"], qualified, r["dataset"], r["unit_column"],
               int(r["max_rows_per_unit"]), int(r["data_version"]))
    t.own_max_rows = bool(r["own_max_rows"])
    if r["unit_path"]:
        t.path, t.path_unit = json.loads(r["unit_path"]), r["privacy_unit"]
    for k in db.execute(
            "SELECT contype, pg_catalog.pg_get_constraintdef(oid) AS def, "
            "ARRAY(SELECT a.attname::text FROM unnest(conkey) WITH ORDINALITY k(n, o) JOIN pg_catalog.pg_attribute a "
            "ON a.attrelid = conrelid AND a.attnum = k.n ORDER BY k.o) AS cols, "
            "ARRAY(SELECT a.attname::text FROM unnest(confkey) WITH ORDINALITY k(n, o) JOIN pg_catalog.pg_attribute a "
            "ON a.attrelid = confrelid AND a.attnum = k.n ORDER BY k.o) AS refcols, confrelid::int8 AS ref, conname "
            "FROM pg_catalog.pg_constraint WHERE conrelid = $1 ORDER BY conname", [relid], ["oid"]):
        if k["contype"] in ("p", "u") and len(k["cols"]) == 1:
            t.keys.append(k["cols"][0])
        elif k["contype"] in ("p", "u"):
            t.uniques.append(list(k["cols"]))
        elif k["contype"] == "c":
            t.checks.append(k["def"][len("CHECK "):] if k["def"].startswith("CHECK ") else k["def"])
        elif k["contype"] == "f":
            t.foreign_keys.append(k)
        elif k["contype"] == "x":
            t.refused.append(f"exclusion constraint {k['conname']}: synthetic rows cannot be made to meet it")
    # unique indexes that back no constraint are met like UNIQUE constraints
    for i in db.execute(
            "SELECT i.indexrelid::regclass::text AS name, i.indexprs IS NOT NULL OR i.indpred IS NOT NULL AS complex, "
            "ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) "
            "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) AS cols "
            "FROM pg_catalog.pg_index i WHERE i.indrelid = $1 AND i.indisunique AND NOT EXISTS "
            "(SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid) "
            "ORDER BY 1", [relid], ["oid"]):
        if i["complex"]:
            t.refused.append(f"unique index {i['name']} on an expression or with a WHERE clause: synthetic rows "
                             "cannot be made to meet it")
        elif len(i["cols"]) == 1 and i["cols"][0] not in t.keys:
            t.keys.append(i["cols"][0])
        elif len(i["cols"]) > 1 and list(i["cols"]) not in t.uniques:
            t.uniques.append(list(i["cols"]))
    for cols in schema.partition_keys(relid):
        # a key declared on every partition is a key of the whole copy (regenerated, unique overall)
        if len(cols) == 1 and cols[0] not in t.keys:
            t.keys.append(cols[0])
        elif len(cols) > 1 and cols not in t.uniques:
            t.uniques.append(cols)
        db.notice(f"key ({', '.join(cols)}) is declared on every partition of {qualified}: it is kept as a key "
                  "of the whole synthetic table")
    for c in db.execute(
            "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, "
            "pg_catalog.format_type(CASE WHEN t.typtype = 'd' THEN ub.oid ELSE a.atttypid END, NULL) AS base, "
            "pg_catalog.format_type(ub.oid, ub.mod) AS domain_base, "
            "CASE WHEN t.typtype = 'd' THEN b.typcategory ELSE t.typcategory END AS category, "
            "CASE WHEN t.typtype = 'd' THEN b.typtype ELSE t.typtype END AS base_typtype, "
            "t.typtype, a.attnotnull OR coalesce(ub.nn, false) AS attnotnull, a.attgenerated <> '' AS generated, "
            "a.attidentity, m.lower_bound, m.upper_bound, m.public_values, m.values_source, m.step, "
            "ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e WHERE e.enumtypid = "
            "CASE WHEN t.typtype = 'd' THEN ub.oid ELSE a.atttypid END ORDER BY e.enumsortorder) AS labels, "
            "EXISTS (SELECT 1 FROM pg_catalog.pg_attrdef d JOIN pg_catalog.pg_depend p "
            "ON p.classid = 'pg_catalog.pg_attrdef'::regclass AND p.objid = d.oid "
            "AND p.refclassid = 'pg_catalog.pg_class'::regclass "
            "JOIN pg_catalog.pg_class s ON s.oid = p.refobjid AND s.relkind = 'S' "
            "WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum) AS serial "
            "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
            "LEFT JOIN LATERAL (WITH RECURSIVE ch(oid, mod, depth, nn) AS (SELECT t.typbasetype, t.typtypmod, 1, "
            "t.typnotnull WHERE t.typtype = 'd' UNION ALL SELECT y.typbasetype, y.typtypmod, ch.depth + 1, y.typnotnull "
            "FROM ch JOIN pg_catalog.pg_type y ON y.oid = ch.oid WHERE y.typtype = 'd' AND ch.depth < 32) "
            "SELECT ch.oid, ch.mod, bool_or(ch.nn) OVER () AS nn FROM ch ORDER BY ch.depth DESC LIMIT 1) ub ON true "
            # a domain's last base (a domain over a domain is staged as it), and whether any is NOT NULL
            "LEFT JOIN pg_catalog.pg_type b ON b.oid = ub.oid "
            "LEFT JOIN dp_internal.columns m ON m.relid = a.attrelid AND m.attname = a.attname "
            "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", [relid], ["oid"]):
        if c["generated"]:
            t.generated.append(c["attname"])
            continue
        if c["serial"]:
            t.serials.append(c["attname"])
        if c["attidentity"] == "a":
            t.identity_always = True
        t.columns.append(_classify(t, c))
        if t.columns[-1].fam in ("date", "timestamp") and is_audit(c["attname"]):
            t.audit.append(c["attname"])
    for k in schema.partition_foreign_keys(relid, t.foreign_keys):
        db.notice(f"foreign key {k['conname']} is declared on {k['declared_on']}, a partition or child of "
                  f"{qualified}: it is kept for the whole synthetic table")
        t.foreign_keys.append(k)
    t.dcs = [dcmod.parse(r["dc"], [c.name for c in t.columns]) for r in db.execute(
        "SELECT dc FROM dp_internal.denial_constraints WHERE relid = $1 ORDER BY id", [relid], ["oid"])]
    return t


def _classify(t: Target, c) -> dom.Column:
    fam = dom.family(c["base"], c["base_typtype"])
    sql_type = c["type"]
    if c["typtype"] == "d":
        # staged as the base type; the domain's CHECKs are tested on the staged rows (rows that
        # break them are replaced like rows breaking a table CHECK), never on the copy
        sql_type = c["domain_base"]
        t.domains[c["attname"]] = c["type"]
    col = dom.Column(c["attname"], sql_type, fam, not c["attnotnull"], "identifier")
    opaque = fam == "text" and c["category"] != "S"        # arrays, json, inet, ...: no made-up text fits
    if c["attname"] in t.keys and fam not in ("integer", "numeric", "text", "uuid") or \
            c["attname"] in t.keys and opaque:
        t.refused.append(f"column {c['attname']} ({c['type']}) is a key, and keys are regenerated as numbers, "
                         "text or uuids only")
    if c["attname"] == t.unit:
        col.source = "privacy unit"
        if opaque:
            t.refused.append(f"privacy unit column {c['attname']} ({c['type']}) cannot be regenerated")
    elif c["attname"] in t.keys:
        col.source = "key"
    elif c["public_values"]:
        col.kind, col.values, col.source = "categorical", list(c["public_values"]), c["values_source"] or "declared"
    elif fam == "enum" and c["labels"]:
        col.kind, col.values, col.source = "categorical", list(c["labels"]), "enum"
    elif opaque:
        # modelled over the values found with DP (whatever share of rows they cover); when none is
        # found: an empty array for arrays, NULL when nullable; else it cannot be made up at all
        col.kind, col.source = "categorical", "opaque"
        t.needs_values.append(c["attname"])
        t.opaque[c["attname"]] = c["category"]
        if c["category"] != "A" and c["attnotnull"]:
            t.refused.append(f"column {c['attname']} ({c['type']}) is NOT NULL and has no public values: its "
                             "values cannot be made up when DP finds none")
    elif fam == "boolean":
        col.kind, col.values, col.source = "categorical", ["false", "true"], "boolean"
    elif fam in ("integer", "float", "numeric", "date", "timestamp"):
        col.kind = "numeric"
        if c["lower_bound"] is not None and c["upper_bound"] is not None:
            low, high = dom.type_range(c["type"], fam)
            col.lower = min(max(float(c["lower_bound"]), low), high - 1)
            col.upper = min(float(c["upper_bound"]), high)
            if col.upper < col.lower or (col.upper == col.lower and fam not in ("integer", "date")):
                col.upper = col.lower + 1       # bins need a width (whole numbers and dates: one exact value)
            col.source = "declared bounds"
        else:
            t.needs_bounds.append(c["attname"])
        if c["step"] is not None and fam in dom.NUMBER_FAMILIES:
            col.step = float(c["step"])         # the DBA's grid (dp.set_step); bounds move out to it
            if col.source == "declared bounds":
                col.set_step(col.step)
    elif fam == "uuid":
        col.source = "uuid"
    else:
        col.kind = "categorical"
        t.needs_values.append(c["attname"])
    return col


def key_values(table: str, column: str, limit: int | None = None) -> list[str]:
    """The distinct non-NULL values of a key column of a table (as text, sorted)."""
    q = db.quote_ident(column)
    return [r["v"] for r in db.execute(f"SELECT DISTINCT {q}::text AS v FROM {table} WHERE {q} IS NOT NULL ORDER BY 1"
                                       + (f" LIMIT {int(limit)}" if limit is not None else ""))]


def ref_info(relid: int) -> dict:
    """Name of a referenced table, and whether it is protected or declared public."""
    return db.execute(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS q, c.relname, "
        "EXISTS (SELECT 1 FROM dp_internal.protected_tables p WHERE p.relid = c.oid) AS protected, "
        "EXISTS (SELECT 1 FROM dp_internal.public_tables p WHERE p.relid = c.oid) AS declared "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        [relid], ["oid"])[0]


def value_count(c: dom.Column) -> float:
    """How many values a column can take in a copy (math.inf: unbounded for a unique DC)."""
    if c.kind == "categorical":
        return float(len(c.values))
    if c.kind == "numeric" and c.step:
        return math.floor((c.upper - c.lower) / c.step + 1e-9) + 1.0
    if c.kind == "numeric" and c.fam in ("integer", "date"):
        return c.upper - c.lower + 1
    if c.kind == "numeric" and c.fam == "numeric" and dom.numeric_scale(c.sql_type) is not None:
        return (c.upper - c.lower) * 10.0 ** dom.numeric_scale(c.sql_type) + 1
    if c.kind == "identifier" and c.choices:
        return float(len(c.choices))
    return math.inf


def repair_domain(c: dom.Column):
    """The values the repair may give a column besides the sampled ones (decoded form)."""
    if c.kind == "categorical":
        return np.array(c.values, dtype=object)
    if c.kind == "numeric" and c.exact:
        return c.lower + np.arange(c.value_codes, dtype=np.float64) * (c.step or 1.0)
    return None
