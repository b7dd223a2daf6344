"""Foreign keys kept outside the parent x child model: keys to declared public tables (one
column or several) and self-references (docs/synthesis.md, "Synthesizing a schema").

- A key to a declared public table is a choice among that table's keys (its rows, for a key
  of several columns).  A vocabulary of at most MODEL_KEYS keys stays a categorical column
  of the MST model (it keeps its correlations: country x segment); a larger one, or any key
  of several columns, gets a histogram of its own over the referenced keys: OpenDP discrete
  Gaussian noise on every key's count (zCDP, a share of the model's rho; L2 sensitivity the
  table's rows per unit), plus a cell for NULL.  Both are post-processed the same way: a key
  whose noisy count is under rare_threshold (no key without rows reaches it but with
  probability RARE_P) gets no weight of its own; the rows left over (the DP row count less
  the passing keys and NULLs) are spread uniformly over the other keys, so a rare key is
  never made frequent by its noise.  The counts are read in chunks of CHUNK ranks and only
  the passing keys are kept: memory grows with the rows, not with the vocabulary.
- A key of several columns to a public table (TPC-H lineitem (l_partkey, l_suppkey) ->
  partsupp) is generated determinant first: a referenced row is chosen, and every column
  of the key takes that row's values, so the composite key exists in the copy; rows whose
  columns would break the child's single-column keys to other public tables (l_partkey ->
  part) are not offered, so those keys hold too.
- A self-reference (employee.reports_to -> employee.employee_id) takes the key of another
  row of the same synthetic table, uniformly, never the row's own; the column's NULL share
  is modelled (a two-code column of the model when nullable).  The in-degree is not
  measured: who reports to a row is other units' data (removing one unit changes the
  in-degree of rows of others), and conditioning on the referenced row would leak across
  units, as pg_dp.synth.relational says of keys off the unit's path.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from ..core import db
from ..dp import mechanisms

MODEL_KEYS = 64           # vocabularies up to this many keys stay categorical columns of the model
KEY_RHO_SHARE = 0.1       # of the model's rho, for each histogram of keys ...
KEY_RHO_MAX = 0.3         # ... and at most this share for all of them
RARE_P = 1e-10            # chance that any key without rows gets a weight of its own
CHUNK = 250_000           # referenced keys whose counts are noised at a time
SELF = "pg_dp_self"       # the code of a set self-reference, replaced by another row's key when written
COUNTS = "pg_dp_synth_keycounts"
RANKS = "pg_dp_synth_keyranks"


# ----------------------------------------------------------------- pure post-processing
def rare_threshold(sigma: float, cells: int, p: float = RARE_P) -> float:
    """Noisy count a key needs to keep a weight of its own: a discrete Gaussian of scale sigma
    exceeds sigma * sqrt(2 ln(cells / p)) with probability at most p / cells, so no key
    without rows passes but with probability p (union bound over the cells)."""
    return sigma * math.sqrt(2 * math.log(max(cells, 1) / p))


def key_weights(passing: np.ndarray, noisy_null: float | None, total: float, cells: int) -> tuple[float, float]:
    """(weight of the keys that did not pass, spread uniformly; weight of NULL) next to the
    passing keys' noisy counts, from the DP row count `total` (never from the noisy sum of
    the rare keys, whose noise would dwarf them)."""
    null = max(0.0, float(noisy_null)) if noisy_null is not None else 0.0
    rest = max(0.0, float(total) - float(np.sum(passing)) - null) if cells > len(passing) else 0.0
    if rest + null + float(np.sum(passing)) <= 0:
        rest = 1.0 if cells > len(passing) else 0.0
    return rest, null


def complement_ranks(passing: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Map draws uniform in [0, cells - len(passing)) to the ranks 0..cells-1 that are not in
    the sorted array `passing`: the draw-th rank left out of it."""
    passing = np.asarray(passing, dtype=np.int64)
    draws = np.asarray(draws, dtype=np.int64)
    if not passing.size:
        return draws
    # the j-th passing rank has passing[j] - j free ranks before it
    return draws + np.searchsorted(passing - np.arange(passing.size), draws, side="right")


def draw_ranks(n: int, model: dict, rng: np.random.Generator) -> np.ndarray:
    """n ranks of referenced keys (-1: NULL) from a post-processed key histogram."""
    passing, weights = model["passing"], model["weights"]
    parts = np.r_[weights, model["rest"], model["null"]].astype(np.float64)
    if parts.sum() <= 0:
        parts[-2] = 1.0
    pick = rng.choice(parts.size, size=n, p=parts / parts.sum())
    out = np.full(n, -1, dtype=np.int64)
    mine = pick < passing.size
    out[mine] = passing[pick[mine]]
    rest = np.flatnonzero(pick == passing.size)
    free = model["cells"] - passing.size
    if rest.size and free > 0:
        out[rest] = complement_ranks(passing, rng.integers(0, free, size=rest.size))
    elif rest.size:
        out[rest] = passing[rng.integers(0, passing.size, size=rest.size)] if passing.size else -1
    return out


def spread_rare(codes: np.ndarray, noisy: np.ndarray, threshold: float, rng: np.random.Generator,
                null_code: int | None = None) -> np.ndarray:
    """Codes of a key column of the model: rows sampled on a key whose noisy count is under
    the threshold are dealt uniformly over all such keys (their own weights were noise)."""
    codes = np.array(codes, dtype=np.int64)
    keys = np.arange(noisy.size) if null_code is None else np.flatnonzero(np.arange(noisy.size) != null_code)
    rare = keys[noisy[keys] < threshold]
    if not rare.size:
        return codes
    hit = np.flatnonzero(np.isin(codes, rare))
    codes[hit] = rare[rng.integers(0, rare.size, size=hit.size)]
    return codes


def other_rows(flags: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each row, the index of another row chosen uniformly (-1 where flags is False, or
    when there is no other row)."""
    flags = np.asarray(flags, dtype=bool)
    n = flags.size
    out = np.full(n, -1, dtype=np.int64)
    where = np.flatnonzero(flags)
    if n < 2 or not where.size:
        return out
    j = rng.integers(0, n - 1, size=where.size)
    out[where] = j + (j >= where)
    return out


# ----------------------------------------------------------------- measuring (after the charge)
@dataclass
class KeyHistogram:
    """A key's post-processed DP histogram over the referenced keys (see draw_ranks)."""
    ranks: str                  # TEMP table of the referenced keys by rank (read again when rows are drawn)
    cells: int                  # referenced keys
    passing: np.ndarray         # ranks whose noisy count passed rare_threshold
    weights: np.ndarray         # their noisy counts
    rest: float                 # weight of the other keys, spread uniformly
    null: float                 # weight of NULL
    scale: float                # the noise's scale

    def as_model(self) -> dict:
        return {"cells": self.cells, "passing": self.passing, "weights": self.weights, "rest": self.rest,
                "null": self.null}


def histogram_links(st) -> list:
    return [k for k in st.links if k.histogram]


def rho_share(st, rho: float, alone: bool) -> float:
    """The model's rho that the key histograms take (all of it when nothing else is modelled)."""
    k = len(histogram_links(st))
    if not k:
        return 0.0
    return rho if alone else rho * min(KEY_RHO_MAX, KEY_RHO_SHARE * k)


def measure(st, rho: float, sensitivity: int) -> dict[str, KeyHistogram]:
    """Noisy histograms of the keys of every histogram link (by link name), rho split evenly over them."""
    links = histogram_links(st)
    out = {}
    for i, link in enumerate(links):
        h = out[link.name] = _measure_one(st, link, f"{RANKS}_{i}", rho / len(links), sensitivity)
        st.phase(f"measured the keys of {link.name} ({h.cells} keys of {link.source}, "
                 f"noise scale {h.scale:.3g}, {h.passing.size} with a weight of their own)")
    return out


def _ref_sql(link) -> str:
    """The referenced keys offered: the referenced table's rows whose columns also meet the
    child's single-column keys to other public tables over the same columns."""
    refcols = [db.quote_ident(c) for c in link.refcols]
    where = [f"r.{c} IS NOT NULL" for c in refcols]
    for other in link.also:
        refcol = link.refcols[link.cols.index(other["column"])]
        where.append(f"EXISTS (SELECT 1 FROM {other['source']} x WHERE x.{db.quote_ident(other['refcol'])} "
                     f"= r.{db.quote_ident(refcol)})")
    return (f"SELECT DISTINCT {', '.join(f'r.{c}' for c in refcols)} FROM {link.source} r "
            f"WHERE {' AND '.join(where)}")


def _measure_one(st, link, ranks: str, rho: float, sensitivity: int) -> KeyHistogram:
    cols = [db.quote_ident(c) for c in link.cols]
    refs = [f"k{i}" for i in range(len(cols))]
    db.drop_table_if_present(f"pg_temp.{COUNTS}")
    db.drop_table_if_present(f"pg_temp.{ranks}")
    db.execute(f"CREATE TEMP TABLE {COUNTS} ON COMMIT DROP AS SELECT "
               + ", ".join(f"{c} AS k{i}" for i, c in enumerate(cols)) + ", count(*) AS n "
               f"FROM {st.src} WHERE " + " AND ".join(f"{c} IS NOT NULL" for c in cols) + " GROUP BY "
               + ", ".join(str(i + 1) for i in range(len(cols))))
    db.execute(f"CREATE TEMP TABLE {ranks} ON COMMIT DROP AS SELECT row_number() OVER (ORDER BY "
               + ", ".join(refs) + ") - 1 AS i, coalesce(c.n, 0) AS n, " + ", ".join(f"r.{k}" for k in refs)
               + f" FROM ({_ref_sql(link)}) r (" + ", ".join(refs) + f") LEFT JOIN {COUNTS} c USING ("
               + ", ".join(refs) + ")")
    db.execute(f"CREATE INDEX ON {ranks} (i)")
    cells = int(db.execute(f"SELECT count(*) AS n FROM {ranks}")[0]["n"])
    nulls = None
    if link.nullable:
        nulls = int(db.execute(f"SELECT count(*) AS n FROM {st.src} WHERE "
                               + " OR ".join(f"{c} IS NULL" for c in cols))[0]["n"])
    scale = mechanisms.gaussian_scale(sensitivity, rho)
    threshold = rare_threshold(scale, cells)
    passing, weights = [], []
    for start in range(0, cells, CHUNK):
        exact = np.array([r["n"] for r in db.execute(
            f"SELECT n FROM {ranks} WHERE i >= $1 AND i < $2 ORDER BY i", [start, start + CHUNK], ["int8", "int8"])],
            dtype=np.int64)
        noisy = mechanisms.gaussian_counts(exact, scale)
        keep = np.flatnonzero(noisy >= threshold)
        passing.append(start + keep)
        weights.append(noisy[keep])
        db.check_interrupts()
    noisy_null = float(mechanisms.gaussian_counts([nulls], scale)[0]) if nulls is not None else None
    passing = np.concatenate(passing) if passing else np.zeros(0, dtype=np.int64)
    weights = np.concatenate(weights) if weights else np.zeros(0)
    rest, null = key_weights(weights, noisy_null, st.counts["total"], cells)
    db.drop_table_if_present(f"pg_temp.{COUNTS}")
    return KeyHistogram(ranks, cells, passing.astype(np.int64), weights, rest, null, scale)


def draw(st, link, n: int) -> dict[str, np.ndarray]:
    """Values (text, None for NULL) of the link's columns for n rows: referenced rows chosen
    from the histogram, every column set from the same row."""
    h = st.key_models[link.name]
    ranks = draw_ranks(n, h.as_model(), st.rng)
    out = {c: np.full(n, None, dtype=object) for c in link.cols}
    wanted = np.unique(ranks[ranks >= 0])
    if wanted.size:
        refs = [f"k{i}" for i in range(len(link.cols))]
        rows = db.execute(f"SELECT i, " + ", ".join(f"{k}::text AS {k}" for k in refs)
                          + f" FROM {h.ranks} WHERE i = ANY($1::int8[])", [wanted.tolist()], ["int8[]"])
        at = np.searchsorted(wanted, ranks)
        order = np.searchsorted(wanted, np.array([r["i"] for r in rows], dtype=np.int64))
        for k, c in zip(refs, link.cols):
            column = np.empty(wanted.size, dtype=object)
            column[order] = [r[k] for r in rows]
            out[c][ranks >= 0] = column[at[ranks >= 0]]
    return out


def model_threshold(st, column: str, p: float = RARE_P) -> tuple[np.ndarray, float] | None:
    """(noisy 1-way counts, threshold) of a key column kept in the model (p: the chance that a
    cell without rows passes, over all cells)."""
    for m in st.plan.one_way if st.plan is not None else []:
        if m.clique == (column,):
            return np.asarray(m.values, dtype=np.float64), rare_threshold(m.stddev, m.values.size, p)
    return None


# ----------------------------------------------------------------- self-references (after the rows are written)
def neighbour_keys(flags, keys: list, spare=None) -> list:
    """Staged values of a self-reference: another staged row's key (the next one; `spare`, a key
    no row of a chunk of one holds) where set, NULL elsewhere.  Replaced by fill_self_references
    once the rows are in the copy (a staged row may still be dropped); staged so, they meet
    the copy's NOT NULL and a CHECK (boss <> id)."""
    n = len(keys)
    return [(keys[(i + 1) % n] if n > 1 else spare) if f else None for i, f in enumerate(flags)]


def fill_self_references(st, table: str, execute):
    """Every set self-reference of the written copy takes the key of another row, uniformly.
    `execute(sql, params)` changes the copy (as pg_dp's writer role: synth.write)."""
    for link in st.links:
        if link.kind != "self":
            continue
        col, ref = db.quote_ident(link.column), db.quote_ident(link.refcol)
        rows = db.execute(f"SELECT {ref}::text AS k, {col} IS NOT NULL AS f FROM {table} ORDER BY {ref}")
        keys = np.array([r["k"] for r in rows], dtype=object)
        target = other_rows(np.array([r["f"] for r in rows], dtype=bool), st.rng)
        set_ = np.flatnonzero(target >= 0)
        execute(f"UPDATE {table} t SET {col} = u.v::{st.t.column(link.column).sql_type} "
                f"FROM unnest($1::text[], $2::text[]) u (k, v) "
                f"WHERE t.{ref} = u.k::{st.t.column(link.refcol).sql_type}",
                [list(keys[set_]), list(keys[target[set_]])])
        if len(rows) == 1 and rows[0]["f"]:      # no other row to reference
            nullable = st.t.column(link.column).nullable
            st.notice(f"column {link.column} of the only row of the copy is "
                       + ("NULL" if nullable else "its own key") + ": there is no other row to reference")
            execute(f"UPDATE {table} SET {col} = " + (f"NULL" if nullable else ref))
