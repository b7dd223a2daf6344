"""dp.evaluate_schema: how close a synthetic shadow schema is to the real one (DBA only).

It reads the raw data, so it runs in the privileged executor and refuses every role that
is not a pg_dp administrator.  It is an evaluation, not a release: nothing is noised or
charged, and the baselines use numpy's RNG (seeded, so a second run gives the same rows).

For every table of the real schema that has a table of the same name in the synthetic
schema (the shadow copy written by dp_synthesize):

- per synthesized (protected) table, per column, the 1-way TVD and the share of synthetic values outside what the real
  column holds ('out_of_range': below its minimum or above its maximum for numbers and
  times, values the real column never takes for the others); synthetic values are
  **never clipped into the real range**: numbers and times fall into 16 equal-width bins
  over the real min..max plus one bin below and one above, so mass outside counts in
  the TVD; categorical columns keep their 32 most frequent real values, one 'other' code
  and NULL; for numbers and times, detail.beyond_one_bin counts the synthetic values further
  than one bin (1/16 of the real range) outside it;
- per table, the mean 1-way and 2-way TVD, the 2-way TVD next to the independence
  baseline (the real 1-way marginals multiplied: what a synthesizer ignoring every
  correlation scores), and the worst pair;

for every foreign key from a synthesized (protected) table to another table of both schemas:

- 'orphans': synthetic child rows whose key names no row of the synthetic parent;
- 'fanout_tvd': TVD of the number of children per parent (exact up to 63, then by power of
  2), real vs synthetic, next to
  uniform attachment (the same synthetic children given uniformly random synthetic parents);
- 'parent_child_tvd': 2-way TVD of (parent attribute, child attribute) over the join, per
  pair (detail.real_dependence: how far the real joint is from independence), and its mean,
  next to uniform attachment; the mean's detail repeats both over the dependent pairs only
  (real_dependence at least 0.05 and at least twice what sampling alone gives independent
  columns over as many rows, detail.sampling_floor): pairs independent in the real data score
  alike whatever the attachment;

and for every protected table that reaches its privacy-unit table through two foreign-key
paths, every pair of them, 'path_disagreements': rows whose two paths end at two different
unit rows (detail.real: the same count in the real data).  Foreign keys declared only on a
table's partitions count for the table.  'fanout_tvd' and 'parent_child_tvd_mean' carry
detail.no_better_than_baseline: true when the copy does no better than uniform attachment.

Columns compared are those that carry data: keys (single-column PRIMARY KEY/UNIQUE),
columns dp_synthesize regenerated, and foreign-key columns to tables that are not declared
public (their values are regenerated keys) are left out of the TVDs.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np

from ..core import catalog, db, trust
from ..core.encode import json_safe
from ..core.errors import DPError
from . import schema

BINS = 16
TOP_VALUES = 32
MAX_PATH = 4                 # foreign keys followed from a table towards its unit table
SEED = 0
DEPENDENT = 0.05            # a parent x child pair whose real joint is this far from independence ...
SAMPLING_MARGIN = 2.0       # ... and this many times what sampling alone gives independent columns
NUMERIC = ("smallint", "integer", "bigint", "real", "double precision", "numeric")
TEMPORAL = ("date", "timestamp without time zone", "timestamp with time zone")


# ------------------------------------------------------------------ arithmetic (no database)
def tvd(p_counts, q_counts) -> float:
    """0.5 * sum |p - q| of two histograms of the same cells, each normalised (0 when both are empty)."""
    p = np.asarray(p_counts, dtype=float).ravel()
    q = np.asarray(q_counts, dtype=float).ravel()
    if p.shape != q.shape:
        raise ValueError(f"histograms differ in shape: {p.shape} vs {q.shape}")
    if p.sum() <= 0 and q.sum() <= 0:
        return 0.0
    if p.sum() <= 0 or q.sum() <= 0:
        return 1.0
    return float(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())


def counts(codes: list[np.ndarray], sizes: list[int]) -> np.ndarray:
    """The joint histogram of one or more code columns of equal length."""
    flat = np.ravel_multi_index(tuple(np.asarray(c, dtype=np.int64) for c in codes), tuple(sizes))
    return np.bincount(flat, minlength=math.prod(sizes))


def independence_tvd(a: np.ndarray, b: np.ndarray, size_a: int, size_b: int) -> float:
    """TVD between the joint histogram of (a, b) and the product of its two marginals."""
    joint = counts([a, b], [size_a, size_b]).reshape(size_a, size_b).astype(float)
    total = joint.sum()
    if total <= 0:
        return 0.0
    product = np.outer(joint.sum(axis=1), joint.sum(axis=0)) / total
    return tvd(joint, product)


def sampling_floor(joint: np.ndarray) -> float:
    """Expected TVD from the product of its margins of a joint drawn from independent columns
    with these margins over as many rows: 0.5 * sum sqrt(2 e / pi) / N over the cells'
    expected counts e (a cell's count is about normal around e; E|X - e| = sd * sqrt(2/pi)),
    times sqrt((r-1)(c-1) / rc) since the margins are estimated from the same rows.
    A sparse joint (16 x 16 bins over 1,500 joined rows: about 0.17) is that far from
    independence by chance: a pair no further is not dependent (store: customers.signup x
    payments.amount, 0.056, counted as dependent at a fixed 0.05)."""
    joint = np.asarray(joint, dtype=float)
    total = joint.sum()
    if total <= 0:
        return 0.0
    rows, cols = joint.sum(axis=1), joint.sum(axis=0)
    expected = np.outer(rows, cols) / total
    r, c = int(np.count_nonzero(rows)), int(np.count_nonzero(cols))
    # the margins are the data's own: (r - 1)(c - 1) of the r c deviations are free
    free = math.sqrt((r - 1) * (c - 1) / (r * c)) if r > 1 and c > 1 else 0.0
    return float(0.5 * free * np.sqrt(2 * expected * (1 - expected / total) / math.pi).sum() / total)


EXACT_FANOUT = 64            # children per parent compared exactly up to here, then in powers of 2


def fanout_histogram(children_per_parent) -> dict[int, int]:
    """{k: number of parents with k children}; k >= 64 by power-of-2 bucket (64..127 -> 64, ...),
    so that large fan-outs (lines per supplier) compare by size, not by exact count."""
    k = np.asarray(children_per_parent, dtype=np.int64)
    big = k >= EXACT_FANOUT
    k = np.where(big, 2 ** np.floor(np.log2(np.maximum(k, 1))).astype(np.int64), k)
    values, n = np.unique(k, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, n)}


def dict_tvd(p: dict, q: dict) -> float:
    """TVD of two histograms given as {cell: count}."""
    cells = sorted(set(p) | set(q))
    return tvd([p.get(c, 0) for c in cells], [q.get(c, 0) for c in cells])


def uniform_attachment(n_children: int, n_parents: int, rng: np.random.Generator) -> np.ndarray:
    """Parent positions for n_children children drawn uniformly (with replacement) among n_parents."""
    if n_parents <= 0:
        return np.zeros(0, dtype=np.int64)
    return rng.integers(0, n_parents, size=n_children)


def join_codes(parent_codes: np.ndarray, parent_index: np.ndarray) -> np.ndarray:
    """The parent's code of every child that has a parent (parent_index >= 0), in child order."""
    return np.asarray(parent_codes)[parent_index[parent_index >= 0]]


# ------------------------------------------------------------------ the catalog
def _tables(real: str, synthetic: str) -> list[dict]:
    """Tables of the real schema (not partitions) with a table of the same name in the synthetic schema."""
    return [dict(r) for r in db.execute(
        "SELECT c.oid::int8 AS real, s.oid::int8 AS synth, c.relname::text AS name, "
        "pg_catalog.format('%I.%I', n.nspname, c.relname) AS rq, pg_catalog.format('%I.%I', m.nspname, s.relname) AS sq, "
        "EXISTS (SELECT 1 FROM dp_internal.public_tables p WHERE p.relid = c.oid) AS public, "
        "(SELECT p.dataset FROM dp_internal.protected_tables p WHERE p.relid = c.oid) AS dataset, "
        # the privacy-unit table: one row per unit (its unit column is a key of its own)
        "EXISTS (SELECT 1 FROM dp_internal.protected_tables p JOIN dp_internal.datasets d ON d.name = p.dataset "
        "JOIN pg_catalog.pg_index i ON i.indrelid = p.relid AND i.indisunique AND i.indnatts = 1 "
        "JOIN pg_catalog.pg_attribute a ON a.attrelid = p.relid AND a.attnum = i.indkey[0] "
        "WHERE p.relid = c.oid AND p.unit_path IS NULL AND a.attname = coalesce(p.unit_column, d.privacy_unit)) "
        "AS unit_table "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_catalog.pg_class s ON s.relname = c.relname AND s.relkind IN ('r', 'p') "
        "JOIN pg_catalog.pg_namespace m ON m.oid = s.relnamespace "
        "WHERE n.nspname = $1 AND m.nspname = $2 AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "ORDER BY c.relname", [real, synthetic], ["text", "text"])]


def _columns(relid: int) -> list[tuple[str, str]]:
    """(name, kind) of every column, kind 'numeric', 'temporal' or 'categorical' (domains by their base type)."""
    rows = db.execute(
        "SELECT a.attname::text AS n, pg_catalog.format_type(coalesce(nullif(t.typbasetype, 0), a.atttypid), NULL) AS t "
        "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", [relid], ["oid"])
    return [(r["n"], "numeric" if r["t"] in NUMERIC else "temporal" if r["t"] in TEMPORAL else "categorical")
            for r in rows]


def _foreign_keys(relid: int) -> list[dict]:
    """Foreign keys of a real table: name, columns, referenced table and columns; keys declared
    only on its partitions (or inheritance children) count for the table, as dp_synthesize
    keeps them (a payments table partitioned by month with its keys on the partitions)."""
    own = _own_foreign_keys(relid)
    return own + [{"name": k["conname"], "ref": int(k["ref"]), "cols": list(k["cols"]), "refcols": list(k["refcols"])}
                  for k in schema.partition_foreign_keys(relid, own)]


def _own_foreign_keys(relid: int) -> list[dict]:
    return [dict(r) for r in db.execute(
        "SELECT k.conname::text AS name, k.confrelid::int8 AS ref, "
        "ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY c(n, o) JOIN pg_catalog.pg_attribute a "
        "ON a.attrelid = k.conrelid AND a.attnum = c.n ORDER BY c.o) AS cols, "
        "ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY c(n, o) JOIN pg_catalog.pg_attribute a "
        "ON a.attrelid = k.confrelid AND a.attnum = c.n ORDER BY c.o) AS refcols "
        "FROM pg_catalog.pg_constraint k WHERE k.conrelid = $1 AND k.contype = 'f' ORDER BY k.conname",
        [relid], ["oid"])]


def _left_out(table: dict, fks: list[dict], public: set[int]) -> set[str]:
    """Columns that hold keys rather than data (see the module's docstring)."""
    keys = {r["n"] for r in db.execute(
        "SELECT a.attname::text AS n FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = $1 AND i.indisunique "
        "AND i.indnatts = 1 AND i.indexprs IS NULL AND i.indpred IS NULL", [table["real"]], ["oid"])}
    for fk in fks:
        if fk["ref"] not in public:
            keys.update(fk["cols"])
    regenerated = db.execute("SELECT coalesce(provenance->'regenerated', '[]')::text AS r "
                             "FROM dp_internal.synthetic_tables WHERE relid = $1", [table["synth"]], ["oid"])
    if regenerated:
        keys.update(json.loads(regenerated[0]["r"]))
    return keys


# ------------------------------------------------------------------ codes, computed in SQL
def _value(column: str, kind: str) -> str:
    q = db.quote_ident(column)
    if kind == "numeric":
        return f"({q})::float8"
    if kind == "temporal":
        return f"pg_catalog.date_part('epoch', {q})::float8"
    return f"({q})::text"


class Codebook:
    """How one column's values (of the real and the synthetic table alike) become codes."""

    def __init__(self, column: str, kind: str, real_table: str):
        self.column, self.kind = column, kind
        value = _value(column, kind)
        if kind == "categorical":
            self.values = [r["v"] for r in db.execute(
                f"SELECT {value} AS v FROM {real_table} WHERE {db.quote_ident(column)} IS NOT NULL "
                f"GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT {TOP_VALUES}")]
            self.size = len(self.values) + 2            # + other + NULL
        else:
            r = db.execute(f"SELECT min({value}) AS lo, max({value}) AS hi FROM {real_table}")[0]
            self.lo, self.hi = r["lo"], r["hi"]
            self.bins = BINS if self.lo is not None and self.hi > self.lo else 1
            self.size = self.bins + 3                   # + below + above + NULL

    def sql(self) -> str:
        """A SQL expression of the column's code, 0 .. size-1 (the last one is NULL)."""
        q, value = db.quote_ident(self.column), _value(self.column, self.kind)
        null = self.size - 1
        if self.kind == "categorical":
            if not self.values:
                return f"(CASE WHEN {q} IS NULL THEN {null} ELSE 0 END)"
            literal = "ARRAY[" + ", ".join(db.quote_literal(v) for v in self.values) + "]::text[]"
            return (f"(CASE WHEN {q} IS NULL THEN {null} ELSE "
                    f"coalesce(pg_catalog.array_position({literal}, {value}) - 1, {len(self.values)}) END)")
        if self.lo is None:                             # an all-NULL real column: every value is out of range
            return f"(CASE WHEN {q} IS NULL THEN {null} ELSE {self.bins + 1} END)"
        lo, hi = repr(float(self.lo)), repr(float(self.hi))
        width = repr((float(self.hi) - float(self.lo)) / self.bins) if self.bins > 1 else "1"
        inside = (f"1 + least({self.bins - 1}, pg_catalog.floor(({value} - {lo}) / {width})::int)"
                  if self.bins > 1 else "1")
        return (f"(CASE WHEN {q} IS NULL THEN {null} WHEN {value} < {lo} THEN 0 "
                f"WHEN {value} > {hi} THEN {self.bins + 1} ELSE {inside} END)")

    def out_of_range(self, codes: np.ndarray) -> tuple[int, int] | None:
        """(synthetic values outside the real range, non-NULL synthetic values); None for categories."""
        if self.kind == "categorical":
            return None
        present = codes != self.size - 1
        return int(np.count_nonzero(present & ((codes == 0) | (codes == self.bins + 1)))), int(present.sum())


def _versus(value, baseline) -> dict:
    """A figure no better than its uniform-attachment baseline is flagged: the copy's relationship
    is then no better than attaching children to parents at random."""
    if value is None or baseline is None:
        return {}
    return {"no_better_than_baseline": bool(value >= baseline)}


def _beyond(book: "Codebook", synth_table: str) -> int:
    """Synthetic values further than one bin (1/16 of the real range) outside the real min..max:
    what a DP range may add at its edges, and no more."""
    if book.lo is None:
        return 0
    lo, hi = float(book.lo), float(book.hi)
    width = (hi - lo) / BINS if hi > lo else 1.0
    value = _value(book.column, book.kind)
    return int(db.execute(f"SELECT count(*) AS n FROM {synth_table} WHERE {value} < {lo - width!r} "
                          f"OR {value} > {hi + width!r}")[0]["n"])


def _unseen(column: str, real_table: str, synth_table: str) -> tuple[int, int]:
    """(synthetic values the real column never takes, non-NULL synthetic values) of a categorical column."""
    q = db.quote_ident(column)
    r = db.execute(f"SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM {real_table} r WHERE r.{q}::text = s.{q}::text)) "
                   f"AS out, count(*) AS n FROM {synth_table} s WHERE s.{q} IS NOT NULL")[0]
    return int(r["out"]), int(r["n"])


def _key(alias: str, columns: list[str]) -> str:
    """A text key of one or several columns (NULL when any is NULL, as a foreign key reads it)."""
    cols = [f"{alias}.{db.quote_ident(c)}" for c in columns]
    if len(cols) == 1:
        return f"{cols[0]}::text"
    return (f"(CASE WHEN " + " OR ".join(f"{c} IS NULL" for c in cols) + " THEN NULL ELSE pg_catalog.concat_ws(E'\\x1f', "
            + ", ".join(f"{c}::text" for c in cols) + ") END)")


def _read(table: str, books: list[Codebook], keys: list[list[str]]) -> tuple[list[np.ndarray], list[list]]:
    """Codes of the columns and text keys of the column lists, aligned row by row (one scan)."""
    parts = [f"pg_catalog.array_agg({b.sql()})::int2[] AS c{i}" for i, b in enumerate(books)]
    parts += [f"pg_catalog.array_agg({_key('t', k)}) AS k{i}" for i, k in enumerate(keys)]
    if not parts:
        return [], []
    row = db.execute(f"SELECT {', '.join(parts)} FROM {table} t")[0]
    codes = [np.asarray(row[f"c{i}"] or [], dtype=np.int64) for i in range(len(books))]
    return codes, [list(row[f"k{i}"] or []) for i in range(len(keys))]


# ------------------------------------------------------------------ the evaluation
class _Side:
    """One table, real or synthetic: codes of its compared columns and the keys it joins on."""

    def __init__(self, table: str, books: list[Codebook], keys: list[tuple[str, ...]]):
        self.keys = list(dict.fromkeys(keys))
        codes, values = _read(table, books, [list(k) for k in self.keys])
        self.codes = {b.column: c for b, c in zip(books, codes)}
        self.key = dict(zip(self.keys, values))
        self.rows = len(values[0]) if values else (len(codes[0]) if codes else 0)


def _parent_index(child_keys: list, parent_keys: list) -> np.ndarray:
    """Position of each child's parent row (-1: NULL key or no such parent)."""
    where = {k: i for i, k in enumerate(parent_keys) if k is not None}
    return np.array([where.get(k, -1) if k is not None else -1 for k in child_keys], dtype=np.int64)


def evaluate(real_schema: str, synthetic_schema: str | None = None) -> list[dict]:
    if not catalog.is_admin(catalog.outer_role()):
        raise DPError("permission denied to evaluate a synthetic schema",
                      hint="Only a pg_dp administrator can: the evaluation reads the raw data.", sqlstate="42501")
    synthetic_schema = synthetic_schema or db.setting("synthetic_schema") or "dp_synthetic"
    for schema in (real_schema, synthetic_schema):
        if not db.execute("SELECT 1 AS x FROM pg_catalog.pg_namespace WHERE nspname = $1", [schema], ["text"]):
            raise DPError(f"schema {schema} does not exist", sqlstate="3F000",
                          hint="Name the real schema and the synthetic one (dp_synthetic unless dp_synthesize was told otherwise).")
    if real_schema == synthetic_schema:
        raise DPError("the real and the synthetic schema are the same", sqlstate="22023",
                      hint="Compare a schema with its shadow copy, e.g. dp.evaluate_schema('public', 'dp_synthetic').")
    tables = _tables(real_schema, synthetic_schema)
    if not tables:
        raise DPError(f"no table of schema {real_schema} has a copy in schema {synthetic_schema}", sqlstate="42P01",
                      hint="Run CALL dp_synthesize(...) first; copies keep their table's name.")
    for t in tables:              # read as the extension owner: no other role's casts or domain CHECKs
        for relid in (t["real"], t["synth"]):
            trust.require_no_column_code(relid, db.execute("SELECT $1::regclass::text AS t", [relid], ["oid"])[0]["t"],
                                         "evaluated")
    rng = np.random.default_rng(SEED)
    public = {int(r["r"]) for r in db.execute("SELECT relid::int8 AS r FROM dp_internal.public_tables")}
    by_oid = {t["real"]: t for t in tables}
    fks = {t["real"]: [k for k in _foreign_keys(t["real"]) if k["ref"] in by_oid] for t in tables}
    out: list[dict] = []

    def row(table, subject, metric, value, baseline=None, detail=None):
        out.append({"table_name": table, "subject": subject, "metric": metric,
                    "value": None if value is None else float(value),
                    "baseline": None if baseline is None else float(baseline), "detail": detail or {}})

    # which keys each table is read by: its own foreign keys, and the referenced columns as a parent
    wanted: dict[int, list[tuple[str, ...]]] = {t["real"]: [] for t in tables}
    for t in tables:
        for k in fks[t["real"]]:
            wanted[t["real"]].append(tuple(k["cols"]))
            wanted[k["ref"]].append(tuple(k["refcols"]))
    books, real, synth = {}, {}, {}
    for t in tables:
        skip = _left_out(t, fks[t["real"]], public)
        synth_columns = {c for c, _ in _columns(t["synth"])}
        books[t["real"]] = [Codebook(c, kind, t["rq"]) for c, kind in _columns(t["real"])
                            if c not in skip and c in synth_columns]
        real[t["real"]] = _Side(t["rq"], books[t["real"]], wanted[t["real"]])
        synth[t["real"]] = _Side(t["sq"], books[t["real"]], wanted[t["real"]])
        db.check_interrupts()

    for t in tables:
        rid, name, bs = t["real"], t["name"], books[t["real"]]
        r, s = real[rid], synth[rid]
        row(name, None, "rows", s.rows, None, {"real_rows": r.rows,
                                                "copied_verbatim" if t["public"] else "synthesized": True})
        if t["dataset"] is None or not bs or not r.rows or not s.rows:
            continue
        one = []
        for b in bs:
            value = tvd(counts([r.codes[b.column]], [b.size]), counts([s.codes[b.column]], [b.size]))
            one.append(value)
            row(name, b.column, "tvd_1way", value)
            outside = b.out_of_range(s.codes[b.column]) or _unseen(b.column, t["rq"], t["sq"])
            row(name, b.column, "out_of_range", outside[0] / outside[1] if outside[1] else 0.0, None,
                {"outside": outside[0], "non_null": outside[1], "kind": b.kind,
                 **({"beyond_one_bin": _beyond(b, t["sq"])} if b.kind != "categorical" else {})})
        row(name, None, "tvd_1way_mean", float(np.mean(one)), None, {"columns": len(bs)})
        pairs = []
        for a, b in itertools.combinations(bs, 2):
            sizes = [a.size, b.size]
            value = tvd(counts([r.codes[a.column], r.codes[b.column]], sizes),
                        counts([s.codes[a.column], s.codes[b.column]], sizes))
            base = independence_tvd(r.codes[a.column], r.codes[b.column], a.size, b.size)
            pairs.append((f"{a.column}, {b.column}", value, base))
        if pairs:
            worst = max(pairs, key=lambda p: p[1])
            row(name, None, "tvd_2way_mean", np.mean([p[1] for p in pairs]), np.mean([p[2] for p in pairs]),
                {"pairs": len(pairs), "baseline": "independent columns (product of the real 1-way marginals)"})
            row(name, worst[0], "tvd_2way_worst", worst[1], worst[2])
        db.check_interrupts()

    for t in tables:
        child = t["real"]
        if t["dataset"] is None:
            continue                    # a table copied verbatim (or not synthesized): its keys are the real ones
        for k in fks[child]:
            parent = by_oid[k["ref"]]
            subject = f"{k['name']} ({', '.join(k['cols'])}) -> {parent['name']}"
            pc, pr = tuple(k["cols"]), tuple(k["refcols"])
            rs, rp, ss, sp = real[child], real[parent["real"]], synth[child], synth[parent["real"]]
            s_index = _parent_index(ss.key[pc], sp.key[pr])
            with_key = sum(1 for v in ss.key[pc] if v is not None)
            orphans = int(np.count_nonzero(s_index < 0)) - (len(s_index) - with_key)
            r_index = _parent_index(rs.key[pc], rp.key[pr])
            real_orphans = int(np.count_nonzero(r_index < 0)) - sum(1 for v in rs.key[pc] if v is None)
            row(t["name"], subject, "orphans", orphans, None,
                {"child_rows_with_a_key": with_key, "real_orphans": real_orphans})
            real_fan = fanout_histogram(np.bincount(r_index[r_index >= 0], minlength=rp.rows))
            synth_fan = fanout_histogram(np.bincount(s_index[s_index >= 0], minlength=sp.rows))
            attached = np.count_nonzero(s_index >= 0)
            uniform = uniform_attachment(attached, sp.rows, rng)
            base_fan = fanout_histogram(np.bincount(uniform, minlength=sp.rows))
            fan_value = dict_tvd(real_fan, synth_fan) if sp.rows else None
            fan_base = dict_tvd(real_fan, base_fan) if sp.rows else None
            row(t["name"], subject, "fanout_tvd", fan_value, fan_base,
                {**_versus(fan_value, fan_base), "real_mean": float(np.count_nonzero(r_index >= 0)) / max(rp.rows, 1),
                 "synthetic_mean": float(attached) / max(sp.rows, 1),
                 "real_max": max(real_fan) if real_fan else 0, "synthetic_max": max(synth_fan) if synth_fan else 0})
            # parent attribute x child attribute over the join; baseline: the same synthetic
            # children (those with a parent) attached to uniformly random synthetic parents
            pb, cb = books[parent["real"]], [b for b in books[child] if b.column not in k["cols"]]
            pairs = []
            if attached and sp.rows and (r_index >= 0).any():
                for a, b in itertools.product(pb, cb):
                    sizes = [a.size, b.size]
                    real_joint = counts([join_codes(rp.codes[a.column], r_index), rs.codes[b.column][r_index >= 0]], sizes)
                    synth_child = ss.codes[b.column][s_index >= 0]
                    value = tvd(real_joint, counts([join_codes(sp.codes[a.column], s_index), synth_child], sizes))
                    base = tvd(real_joint, counts([sp.codes[a.column][uniform], synth_child], sizes))
                    joint = real_joint.reshape(sizes).astype(float)
                    dependence = tvd(joint, np.outer(joint.sum(axis=1), joint.sum(axis=0)))
                    floor = sampling_floor(joint)
                    pairs.append((a.column, b.column, value, base,
                                  dependence >= max(DEPENDENT, SAMPLING_MARGIN * floor)))
                    row(t["name"], f"{k['name']}: {parent['name']}.{a.column} x {t['name']}.{b.column}",
                        "parent_child_tvd", value, base, {"real_dependence": dependence, "sampling_floor": floor})
            if pairs:
                # pairs independent in the real data score alike under any attachment: the mean
                # over the dependent ones (real joint further from its marginals' product than
                # DEPENDENT and than SAMPLING_MARGIN times sampling alone would put it) too
                dependent = [p for p in pairs if p[4]]
                row(t["name"], subject, "parent_child_tvd_mean", np.mean([p[2] for p in pairs]),
                    np.mean([p[3] for p in pairs]),
                    {**_versus(np.mean([p[2] for p in pairs]), np.mean([p[3] for p in pairs])),
                     "pairs": len(pairs), "dependent_pairs": len(dependent),
                     "dependent_mean": float(np.mean([p[2] for p in dependent])) if dependent else None,
                     "dependent_baseline": float(np.mean([p[3] for p in dependent])) if dependent else None})
            db.check_interrupts()

    for t in tables:
        if t["dataset"] is None:
            continue
        units = [u for u in tables if u["dataset"] == t["dataset"] and u["unit_table"] and u["real"] != t["real"]]
        for unit in units:
            paths = _paths(t["real"], unit["real"], fks)
            if len(paths) == 1:
                row(t["name"], f"{' -> '.join(k['name'] for k in paths[0])} -> {unit['name']}", "path_disagreements",
                    0, None, {"paths": 1, "note": "one foreign-key path to the unit table: nothing can disagree"})
            for p1, p2 in itertools.combinations(paths, 2):
                if p1[0]["name"] == p2[0]["name"]:
                    continue            # the same first key: a disagreement of the parent's, counted there
                described = [" -> ".join(f"{k['name']}" for k in p) for p in (p1, p2)]
                synth_bad, checked = _disagreements(t["sq"], p1, p2, by_oid, "sq")
                real_bad, _ = _disagreements(t["rq"], p1, p2, by_oid, "rq")
                row(t["name"], f"{described[0]} | {described[1]} -> {unit['name']}", "path_disagreements",
                    synth_bad, None, {"rows_reaching_both": checked, "real": real_bad})
    return out


def _paths(start: int, end: int, fks: dict[int, list[dict]]) -> list[list[dict]]:
    """Foreign-key paths (at most MAX_PATH keys, no table twice) from one table to another."""
    found = []

    def walk(at: int, path: list[dict], seen: set[int]):
        for k in fks.get(at, []):
            if k["ref"] == end:
                found.append(path + [k])
            elif k["ref"] not in seen and len(path) + 1 < MAX_PATH:
                walk(k["ref"], path + [k], seen | {k["ref"]})

    walk(start, [], {start})
    return found


def _disagreements(table: str, p1: list[dict], p2: list[dict], by_oid: dict, which: str) -> tuple[int, int]:
    """(rows whose two paths reach two different rows of the end table, rows that reach it both ways)."""
    joins, ends = [], []
    for name, path in (("a", p1), ("b", p2)):
        at = "t"
        for i, k in enumerate(path):
            alias = f"{name}{i}"
            on = " AND ".join(f"{alias}.{db.quote_ident(rc)} = {at}.{db.quote_ident(c)}"
                              for c, rc in zip(k["cols"], k["refcols"]))
            joins.append(f"LEFT JOIN {by_oid[k['ref']][which]} {alias} ON {on}")
            at = alias
        ends.append(f"{at}.ctid")
    r = db.execute(f"SELECT count(*) FILTER (WHERE {ends[0]} <> {ends[1]}) AS bad, count(*) AS n FROM {table} t "
                   + " ".join(joins) + f" WHERE {ends[0]} IS NOT NULL AND {ends[1]} IS NOT NULL")[0]
    return int(r["bad"]), int(r["n"])


def evaluate_reply(real_schema, synthetic_schema=None):
    """The executor's handler of dp.evaluate_schema."""
    return json.dumps(json_safe(evaluate(str(real_schema), None if synthetic_schema is None else str(synthetic_schema))))
