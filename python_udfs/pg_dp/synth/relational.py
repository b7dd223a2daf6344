"""Several tables in one dp_synthesize call: order, budget split, and children under parents.

The method (README "Synthesizing a schema"), in the spirit of PrivLava (Cai et al. 2023)
and of Alimohammadi et al. 2024 (cross-table marginals over the parent-child join):

- tables are synthesized parents first (foreign keys among the protected tables of the
  call, those declared on partitions included); the charged epsilon and delta are split
  evenly over the tables, and each dataset is charged once, before anything is read;
- a child whose foreign key lies on its privacy unit's path (invoice.customer_id ->
  customer, invoice_line.invoice_id -> invoice: a parent's children are the same person's)
  is generated under its synthetic parents:
  * fan-out: a noisy histogram (OpenDP Laplace, 20% of the child's epsilon) of the number of
    children per parent (up to the child's max_rows_per_unit, at most 128) against the
    parent's smallest-domain attribute (when it has at most 8 values), over the parent's rows bounded per unit
    (sensitivity: the parent's max_rows_per_unit); every synthetic parent draws its number of
    children from it, given its own attribute, so heavy-tailed fan-outs stay heavy-tailed;
  * child attributes: up to three parent attributes (the smallest domains) are joined to
    the child's rows and modelled with them (MST marginals over parent x child); each
    sampled child goes to a parent slot whose attributes match, the rest at random;
  * path agreement: a child column that references what its parent's column references
    (invoice_line.customer_id next to invoice_line.invoice_id) takes the parent's value;
- other foreign keys to tables of the call draw parents uniformly (their rows may be
  other people's: conditioning on them would leak across units).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import numpy as np

from .. import db, mechanisms
from ..errors import DPError

MAX_FANOUT = 128
PARENT_ATTRIBUTES = 3
MAX_ATTRIBUTE_SIZE = 64
FANOUT_CONDITION_SIZE = 8
PARENT_SRC = "pg_dp_synth_src_parent"


# ----------------------------------------------------------------- which tables, in which order
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
    r = db.execute("WITH RECURSIVE up(r, d) AS (SELECT $1::oid, 0 UNION ALL SELECT i.inhparent, u.d + 1 FROM up u "
                   "JOIN pg_catalog.pg_inherits i ON i.inhrelid = u.r WHERE u.d < 64) "
                   "SELECT r::int8 AS r FROM up ORDER BY d DESC LIMIT 1", [relid], ["oid"])
    return int(r[0]["r"])


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
            notes.append(f"foreign keys form a cycle through {_name(r)}: it is synthesized before some of its parents")
            ready = [r]
        done += ready
    return done, notes


def _name(relid: int) -> str:
    return db.execute("SELECT $1::oid::regclass::text AS n", [relid], ["oid"])[0]["n"]


def partition_foreign_keys(relid: int, own: list[dict]) -> list[dict]:
    """Foreign keys declared on partitions (or children) of a table, not on the table itself."""
    seen = {(tuple(k["cols"]), _root(int(k["ref"]))) for k in own}
    found = []
    for k in db.execute(
            "WITH RECURSIVE down(r, d) AS (SELECT i.inhrelid, 1 FROM pg_catalog.pg_inherits i WHERE i.inhparent = $1 "
            "UNION ALL SELECT i.inhrelid, w.d + 1 FROM down w JOIN pg_catalog.pg_inherits i ON i.inhparent = w.r "
            "WHERE w.d < 64) "
            "SELECT k.contype, pg_catalog.pg_get_constraintdef(k.oid) AS def, k.conname, k.confrelid::int8 AS ref, "
            "ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY c(n, o) JOIN pg_catalog.pg_attribute a "
            "ON a.attrelid = k.conrelid AND a.attnum = c.n ORDER BY c.o) AS cols, "
            "ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY c(n, o) JOIN pg_catalog.pg_attribute a "
            "ON a.attrelid = k.confrelid AND a.attnum = c.n ORDER BY c.o) AS refcols, "
            "k.conrelid::regclass::text AS declared_on "
            "FROM pg_catalog.pg_constraint k JOIN down ON down.r = k.conrelid WHERE k.contype = 'f' "
            "ORDER BY k.conname", [relid], ["oid"]):
        ref = _root(int(k["ref"]))
        key = (tuple(k["cols"]), ref)
        if key in seen:
            continue
        seen.add(key)
        k = dict(k)
        k["ref"] = ref
        found.append(k)
    return found


# ----------------------------------------------------------------- children under parents
def unit_column(t) -> str | None:
    """The column of a table that holds its privacy unit's value: the unit column itself, or
    the one-column foreign key of a one-step path to the unit table (TPC-H orders.o_custkey ->
    customer.c_custkey: the unit's value under another name)."""
    if t.unit is not None:
        return t.unit
    if len(t.path) == 1 and len(t.path[0]["cols"]) == 1 and list(t.path[0]["refcols"]) == [t.path_unit]:
        return t.path[0]["cols"][0]
    return None


def same_unit(child, parent, fk, column: str, refcol: str) -> bool:
    """Is the parent's row the same privacy unit's as its children (the key lies on the unit's path)?"""
    if unit_column(parent.t) is None:
        return False            # its rows are bounded per unit only when it holds the unit's value
    if child.t.path:
        return child.t.path[0]["conname"] == fk["conname"]
    return child.t.unit is not None and column == child.t.unit and refcol == parent.t.unit


def prepare_child(run, epsilon: float) -> list:
    """Join the chosen parent attributes to the child's measured rows, and measure the fan-out."""
    link, parent = run.parent, run.parent["run"]
    attrs = sorted((c for c in parent.modelled
                    if not c.name.startswith("pg_dp_") and 1 < c.size <= MAX_ATTRIBUTE_SIZE),   # a constant tells nothing
                   key=lambda c: c.size)[:PARENT_ATTRIBUTES]
    run.cond = attrs
    extra = [replace(c, name=f"pg_dp_parent_{i}", nullable=True) for i, c in enumerate(attrs)]
    db.drop_table_if_present(f"pg_temp.{PARENT_SRC}")
    picks = "".join(f", p.{db.quote_ident(c.name)} AS pg_dp_parent_{i}" for i, c in enumerate(attrs))
    db.execute(f"CREATE TEMP TABLE {PARENT_SRC} ON COMMIT DROP AS SELECT s.*{picks} FROM {run.src} s "
               f"LEFT JOIN {parent.t.qualified} p ON p.{db.quote_ident(link['refcol'])} = s.{db.quote_ident(link['column'])}")
    run.src = PARENT_SRC
    # fan-out: children per parent row (capped), against the first parent attribute, over the
    # parent's rows bounded per unit: a unit moves at most max_rows(parent) counts
    cap = max(1, min(MAX_FANOUT, run.t.max_rows, numbering_limit(run)))
    # conditioned on a small attribute only: the histogram's noise grows with its cells
    first = attrs[0] if attrs and attrs[0].size <= FANOUT_CONDITION_SIZE else None
    size = first.size if first else 1
    code = first.encode_sql(f"p.{db.quote_ident(first.name)}") if first else "0"
    unit = db.quote_ident(unit_column(parent.t))
    exact = np.zeros((size, cap + 1), dtype=np.int64)
    for r in db.execute(
            f"SELECT {code} AS a, least(coalesce(f.n, 0), {cap})::int AS k, count(*) AS n "
            f"FROM (SELECT x.*, row_number() OVER (PARTITION BY x.{unit}) AS pg_dp_rn FROM {parent.t.qualified} x) p "
            f"LEFT JOIN (SELECT {db.quote_ident(link['column'])} AS key, count(*) AS n FROM {run.t.qualified} "
            f"WHERE {db.quote_ident(link['column'])} IS NOT NULL GROUP BY 1) f ON f.key = p.{db.quote_ident(link['refcol'])} "
            f"WHERE p.pg_dp_rn <= {int(parent.t.max_rows)} GROUP BY 1, 2"):
        exact[int(r["a"]), int(r["k"])] += int(r["n"])
    scale = mechanisms.integer_laplace_scale(int(parent.t.max_rows), epsilon)
    noise = np.asarray(mechanisms.integer_laplace_noise(scale, exact.size), dtype=np.float64).reshape(exact.shape)
    run.fanout = threshold_fanout(exact + noise, scale)
    run.fanout_cap = cap
    run.phase(f"measured the fan-out per {parent.t.name} (Laplace scale {scale:.3g}, up to {cap} children)"
              + (f", by {first.name}" if first else ""))
    return extra


def threshold_fanout(noisy: np.ndarray, scale: float) -> np.ndarray:
    """Post-processing of the noisy fan-out histogram (rows: parent attribute, columns: 0..cap
    children): the support is cut where the noisy tail stops being distinguishable from noise.

    Most cells of a fan-out histogram can be empty (up to 50 orders per customer when the
    real ones have at most 41); clipped at 0, the noise of each empty cell still adds
    scale / 2 of mass on average, a phantom tail.  The tail mass T(k) (all parents with >= k
    children, summed over the rows) carries noise of sd scale * sqrt(2 m) over its m cells;
    cells past the last k whose T(k) exceeds 4 such sd are set to 0, the others clipped at 0."""
    noisy = np.asarray(noisy, dtype=np.float64)
    grid = noisy.reshape(-1, noisy.shape[-1])
    tail = np.cumsum(grid.sum(axis=0)[::-1])[::-1]
    cells = grid.shape[0] * np.arange(grid.shape[1], 0, -1)
    passed = np.flatnonzero(tail >= 4 * scale * np.sqrt(2 * cells))
    out = np.clip(grid, 0, None)
    if passed.size:
        out[:, passed.max() + 1:] = 0
    if out.sum() <= 0:
        out = np.clip(grid, 0, None)
    return out.reshape(noisy.shape)


def _numbering(run):
    """(column, cols) of each UNIQUE (parent key, integer column) of a child."""
    link = run.parent["column"]
    numbers = {c.name: c for c in run.t.columns if c.fam == "integer" and c.kind == "numeric"}
    for cols in run.t.uniques:
        others = [c for c in cols if c != link]
        if len(cols) == 2 and link in cols and others[0] in numbers:
            yield numbers[others[0]]


def numbering_limit(run) -> int:
    """Most children a parent can have under a UNIQUE (parent key, number) whose number has
    public bounds (l_linenumber 1..7: 7 lines per order); the fan-out is measured up to it."""
    limits = [int(c.upper - c.lower) + 1 for c in _numbering(run) if c.upper >= c.lower]
    return max(1, min(limits)) if limits else MAX_FANOUT


def distinct_within_parent(run, values: dict, parents: np.ndarray):
    """A UNIQUE (parent key, number) -- TPC-H's (l_orderkey, l_linenumber) -- is met by value
    re-assignment, not by dropping rows: within each parent, the sampled numbers are sorted and
    made strictly increasing (each at least the previous + 1, kept under the column's upper
    bound), so a parent's children keep distinct numbers close to the sampled ones."""
    for col in _numbering(run):
        if col.name not in values:
            continue
        try:
            v = np.asarray(values[col.name], dtype=np.float64)
        except (TypeError, ValueError):          # NULLs among the numbers: left to the UNIQUE check
            continue
        if np.isnan(v).any() or not v.size:
            continue
        group = np.unique(parents.astype(str), return_inverse=True)[1]
        order = np.lexsort((v, group))
        g, x = group[order], np.round(v[order])
        start = np.r_[True, g[1:] != g[:-1]]
        first = np.flatnonzero(start)
        rank = np.arange(g.size) - np.repeat(first, np.diff(np.r_[first, g.size]))
        # strictly increasing within a group: x'_i = max over j <= i of (x_j - rank_j) + rank_i
        span = float(x.max() - x.min() + g.size + 1)     # groups apart: one running maximum serves all
        base = np.maximum.accumulate(x - rank + g * span) - g * span
        size = np.repeat(np.diff(np.r_[first, g.size]), np.diff(np.r_[first, g.size]))
        base = np.minimum(base, col.upper - size + 1)        # the last one stays under the upper bound
        out = np.empty_like(v)
        out[order] = base + rank
        values[col.name] = out.astype(np.int64)


def _parent_rows(run) -> tuple[np.ndarray, list[np.ndarray]]:
    """Keys of the synthetic parents (as text) and their codes of the chosen attributes."""
    link, parent = run.parent, run.parent["run"]
    codes = "".join(f", {c.encode_sql(db.quote_ident(c.name))} AS a{i}" for i, c in enumerate(run.cond))
    rows = db.execute(f"SELECT {db.quote_ident(link['refcol'])}::text AS key{codes} FROM {link['target']} "
                      f"WHERE {db.quote_ident(link['refcol'])} IS NOT NULL")
    keys = np.array([r["key"] for r in rows], dtype=object)
    return keys, [np.array([r[f"a{i}"] for r in rows], dtype=np.int64) for i in range(len(run.cond))]


def child_rows(run) -> int:
    """Draw every synthetic parent's number of children (post-processing of the noisy fan-out)."""
    keys, attrs = _parent_rows(run)
    hist = run.fanout
    overall = hist.sum(axis=0)
    overall = overall if overall.sum() > 0 else np.ones_like(overall)
    first = attrs[0] if attrs and run.fanout.shape[0] > 1 else np.zeros(keys.size, dtype=np.int64)
    k = np.zeros(keys.size, dtype=np.int64)
    for a in np.unique(first):
        where = np.flatnonzero(first == a)
        row = hist[a] if a < hist.shape[0] and hist[a].sum() > 0 else overall
        k[where] = run.rng.choice(row.size, size=where.size, p=row / row.sum())
    run.slots = np.repeat(np.arange(keys.size), k)
    run.slot_keys, run.slot_attrs = keys, attrs
    run.agreement = _agreement(run)
    run.phase(f"drew {int(k.sum())} children for {keys.size} synthetic parents")
    return max(1, int(k.sum()))


def _agreement(run) -> list[tuple[str, dict]]:
    """Child columns that must equal their parent's: both reference the same table."""
    link, parent = run.parent, run.parent["run"]
    out = []
    for other in run.links:
        if other is link:
            continue
        for theirs in parent.links:
            if theirs["ref"] == other["ref"]:
                values = {r["k"]: r["v"] for r in db.execute(
                    f"SELECT {db.quote_ident(link['refcol'])}::text AS k, {db.quote_ident(theirs['column'])}::text AS v "
                    f"FROM {link['target']}")}
                out.append((other["column"], values))
                break
    return out


def attach(run, values: dict, codes: dict, n: int):
    """Give every sampled child a parent: a slot of a parent with the same attributes if one is left."""
    slots, link = run.slots, run.parent
    if not run.slot_keys.size:
        values[link["column"]] = np.array([None] * n, dtype=object)
        return
    if n != slots.size:                      # rows sampled again to replace broken ones: any parent
        parent = run.rng.integers(0, run.slot_keys.size, size=n)
    else:
        chosen = np.full(n, -1, dtype=np.int64)
        used = np.zeros(slots.size, dtype=bool)
        if run.cond:
            sizes = [c.size + 1 for c in run.cond]       # + the NULL code of the nullable copies
            child = np.ravel_multi_index([np.minimum(codes[f"pg_dp_parent_{i}"], s - 1)
                                          for i, s in enumerate(sizes)], sizes)
            slot = np.ravel_multi_index([np.minimum(a[slots], s - 1) for a, s in zip(run.slot_attrs, sizes)], sizes)
            child_order = np.lexsort((run.rng.random(n), child))
            slot_order = np.lexsort((run.rng.random(slots.size), slot))
            cs, ss = child[child_order], slot[slot_order]
            for t in np.intersect1d(cs, ss):
                c_lo, c_hi = np.searchsorted(cs, t), np.searchsorted(cs, t, side="right")
                s_lo, s_hi = np.searchsorted(ss, t), np.searchsorted(ss, t, side="right")
                m = min(c_hi - c_lo, s_hi - s_lo)
                chosen[child_order[c_lo:c_lo + m]] = slot_order[s_lo:s_lo + m]
                used[slot_order[s_lo:s_lo + m]] = True
        free = np.flatnonzero(~used)
        run.rng.shuffle(free)
        left = np.flatnonzero(chosen < 0)
        chosen[left] = free[:left.size]
        parent = slots[chosen]
    parent_keys = run.slot_keys[parent]
    values[link["column"]] = parent_keys
    distinct_within_parent(run, values, parent_keys)
    for column, mapping in run.agreement:
        values[column] = np.array([mapping.get(k) for k in parent_keys], dtype=object)


# ----------------------------------------------------------------- one call
def synthesize_many(make_run, relids: list[int], epsilon, delta, dry_run: bool, label: str, schema: str | None):
    """The handler's phases for several tables: plan (and dry run), one charge per dataset, then
    every table in order in one transaction, so that the shadow schema changes all at once."""
    ordered, notes = order(relids)
    share_e = Decimal(str(float(epsilon))) / len(ordered)
    share_d = (Decimal(str(float(delta))) if delta is not None else Decimal(db.setting("default_delta"))) / len(ordered)
    runs: dict[int, object] = {}
    for relid in ordered:
        runs[relid] = make_run(relid, share_e, share_d, dict(runs))
    first = runs[ordered[0]]
    for line in notes:
        first.notice(line, hint="Break the cycle with a nullable key; its children then attach uniformly.")
    per_dataset: dict[str, list] = {}
    for relid in ordered:
        per_dataset.setdefault(runs[relid].t.dataset, []).append(runs[relid])
    first.notice(f"plan for {label}: {len(ordered)} table(s) in this order: "
                 + ", ".join(runs[r].t.qualified for r in ordered)
                 + f"; epsilon {float(share_e):.6g} and delta {float(share_d):.3g} each; total "
                 + "; ".join(f"dataset {d}: epsilon {sum(r.epsilon for r in rs)}, delta {sum(r.delta for r in rs)}"
                             for d, rs in per_dataset.items()))
    for relid in ordered:
        runs[relid].plan_notice()
    if dry_run:
        for relid in ordered:
            runs[relid].dry_run_notices()
        return
    statement = f"CALL dp_synthesize({label}, epsilon => {epsilon}" + (f", delta => {delta}" if delta else "") + ")"
    ledger_ids = {d: rs[0].charge(d, sum(r.epsilon for r in rs), sum(r.delta for r in rs), statement)
                  for d, rs in per_dataset.items()}
    yield                                       # the charges are committed before any row is read
    for relid in ordered:
        runs[relid].work(ledger_ids[runs[relid].t.dataset])
    if schema is not None:
        from . import public, run as runmod
        declared = [int(r["r"]) for r in db.execute(
            "SELECT p.relid::int8 AS r FROM dp_internal.public_tables p JOIN pg_catalog.pg_class c ON c.oid = p.relid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 ORDER BY 1",
            [schema], ["text"])]
        if declared:
            public.copy_all(declared, first.schema, first.caller, runmod.foreign_code)
    first.notice(f"dp_synthesize {label}: wrote {len(ordered)} synthetic table(s) to {first.schema}")

