"""Contribution bounds that fit the question, and the share of rows bounding drops: a DP estimate.

How much one privacy unit contributes decides both the noise (a unit in g groups of k rows) and what
bounding drops (its rows beyond them).  Where the DBA has not fixed max_rows_per_unit /
max_groups_per_unit, each question's bounds are chosen from a DP estimate of the per-unit contribution
distribution of its key set (the reference designs: Tumult Analytics' get_bounds, a noisy histogram
over geometric bins; Google's per-partition contribution bounding); a DBA's fixed value is kept, and
caps what is chosen in the other dimension's ceiling (settings auto_max_rows_per_unit,
auto_max_groups_per_unit).

The estimate: for every unit, over the key set's rows of the table (before any WHERE, so that one
estimate serves every filter of a dashboard), its number of groups G, its mean rows per group A and
its largest group M, on geometric bins (1, 2, 3, 4, 6, 8, 12, 16, ..., and finer for A near 1).  Three
releases share ESTIMATE_SHARE of the question's budget equally (plan.py), each of sensitivity one unit,
Laplace or Gaussian like the question:
  * g = a bin edge of G chosen with the exponential mechanism (OpenDP's noisy max, like the DP
    quantiles) for the QUANTILE of the units' G: score |(1 - q) #{G <= edge} - q #{G > edge}|, plus a
    penalty of TIE_BREAK mechanism temperatures per bin, which breaks ties towards the smaller edge
    (every edge past the largest G scores the same); k = the same for M;
  * a noisy histogram of (G, A); the share of rows dropped by (k, g), post-processing of it:
    1 - sum n (min(G, g) min(A, k)) / sum n G A over the cells
    whose noisy count clears a threshold that an empty cell's noise passes with probability
    FALSE_CELLS / cells (a unit with G > g keeps g random groups; its groups have A rows on average,
    of which k are kept): an estimate, never exact.
The estimate is kept per (table, key set, data version) in dp_internal.contribution_estimates and
reused, free, by later questions on that key set (as cached answers are); with fixed bounds it still
gives the share dropped, which the answer, dp.explain and dp.my_answers show.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import json
import math

from ..core import db
from ..dp.release import Noise
from . import rewrite

QUANTILE = 0.9                 # bounds keep this share of the units whole
FALSE_CELLS = 1e-3             # expected number of empty cells taken for non-empty (dropped share)
NOTICE_SHARE = 0.2             # an answer that dropped more than this gets a NOTICE with the fix


def edges(limit: int) -> list[int]:
    """Geometric bin edges 1, 2, 3, 4, 6, 8, 12, 16, ... up to at least `limit`."""
    out, e = [1, 2, 3, 4], 4
    while out[-1] < limit:
        out += [e * 3 // 2, e * 2]
        e *= 2
    return out


def fine_edges(limit: float) -> list[float]:
    """Edges for a unit's mean rows per group (>= 1, continuous), finer near 1 where most units are."""
    out = [1, 1.1, 1.2, 1.35, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8]
    e = 8
    while out[-1] < limit:
        out += [e * 1.25, e * 1.5, e * 1.75, e * 2]
        e *= 2
    return out


def _thresholds(e: list[int]) -> list[float]:
    """width_bucket thresholds putting v in bin i when e[i-1] < v <= e[i] (the last bin: above)."""
    return [x + 1e-9 for x in e[:-1]]


def _representative(e: list[int], i: int, continuous: bool = False) -> float:
    lo = e[i - 1] if i > 0 else 0
    if continuous:
        return 1.0 if i == 0 else (lo + e[i]) / 2
    return (lo + 1 + e[i]) / 2


@dataclass
class Estimate:
    g_edges: list
    a_edges: list
    m_edges: list
    ga: list            # noisy unit counts [G bin][A bin]
    scale: float        # noise scale of a cell
    kind: str = "laplace"
    g_index: int = 0    # the bins chosen for G and M (exponential mechanism)
    m_index: int = 0

    def floor(self, cells: int | None = None) -> float:
        """The count an empty cell's noise exceeds with probability FALSE_CELLS / cells (the 2-D
        histogram's cells unless told)."""
        cells = max(1, cells if cells is not None else len(self.ga) * len(self.ga[0]))
        p = FALSE_CELLS / cells
        if self.kind == "gaussian":
            low, high = 0.0, 40.0          # P(Z > t) = erfc(t / sqrt 2) / 2
            for _ in range(60):
                mid = (low + high) / 2
                low, high = (mid, high) if math.erfc(mid / math.sqrt(2)) / 2 > p else (low, mid)
            return high * self.scale
        return self.scale * math.log(1 / (2 * p))   # discrete Laplace: P(X > t) <= exp(-t / b) / 2

    def bounds(self, b) -> tuple[int, int]:
        """(rows, groups) for plan.Bounds b: its fixed values, else the estimate's under the ceilings."""
        rows = b.rows if b.rows_fixed else max(1, min(self.m_edges[self.m_index], b.rows_ceiling))
        groups = b.groups if b.groups_fixed else max(1, min(self.g_edges[self.g_index], b.groups_ceiling))
        return int(rows), int(groups)

    def dropped(self, rows: int, groups: int) -> float | None:
        """Estimated share of the key set's rows that bounding to (rows, groups) drops (None: too few
        units for the estimate to tell)."""
        floor = self.floor()
        kept = total = 0.0
        for i, row in enumerate(self.ga):
            g = _representative(self.g_edges, i)
            for j, n in enumerate(row):
                if n <= floor:
                    continue
                a = _representative(self.a_edges, j, continuous=True)
                total += n * g * a
                kept += n * min(g, groups) * min(a, rows)
        return None if total <= 0 else max(0.0, min(1.0, 1 - kept / total))

    def to_json(self) -> str:
        return json.dumps({"g_edges": self.g_edges, "a_edges": self.a_edges, "m_edges": self.m_edges,
                           "ga": self.ga, "scale": self.scale, "kind": self.kind, "g_index": self.g_index,
                           "m_index": self.m_index})

    @staticmethod
    def from_json(text: str) -> "Estimate":
        d = json.loads(text)
        return Estimate(d["g_edges"], d["a_edges"], d["m_edges"], d["ga"], d["scale"], d["kind"], d["g_index"],
                        d["m_index"])


Q_SCALE = 10                 # quantile scores in tenths of a unit: q = 0.9 makes them integers
TIE_BREAK = 2.0              # temperatures of penalty per bin: the next bin of a tie is e^2 less likely


def _quantile_bin(counts: list, noise: Noise) -> int:
    """The bin of the QUANTILE of units (counts: exact units per bin), by the exponential mechanism.

    Score of bin i: |(1 - q) #{<= bin i} - q #{> bin i}| (in tenths), which one unit moves by at most
    max(q, 1 - q); plus i times TIE_BREAK temperatures of the mechanism, so that of equally good bins
    (all those past the last unit) the smallest is the likeliest by far (86%).  The penalty depends
    on no row."""
    q = round(QUANTILE * Q_SCALE)
    total, below, scores = sum(counts), 0, []
    for c in counts:
        below += c
        scores.append(abs((Q_SCALE - q) * below - q * (total - below)))
    sensitivity = max(q, Q_SCALE - q)
    step = TIE_BREAK * noise.argmin_scale(sensitivity)
    return noise.argmin([s + int(math.ceil(i * step)) for i, s in enumerate(scores)], sensitivity)


def _identity(plan) -> tuple[int, str, str]:
    """(relid, source, keys) an estimate is kept under: the rows (a path, a join) and the key set."""
    meta = plan.meta
    source = json.dumps([meta.unit_column, meta.unit_path, meta.source_sql], sort_keys=True, default=str)
    return meta.relid, hashlib.sha256(source.encode()).hexdigest(), plan.key_set


def lookup(plan) -> Estimate | None:
    """The estimate kept for this question's rows and key set on this data version, or None."""
    relid, source, keys = _identity(plan)
    rows = db.execute("SELECT estimate::text AS e FROM dp_internal.contribution_estimates "
                      "WHERE relid = $1 AND source = $2 AND keys = $3 AND data_version = $4",
                      [relid, source, keys, plan.meta.data_version], ["oid", "text", "text", "int8"])
    return Estimate.from_json(rows[0]["e"]) if rows else None


def ensure_seed(dataset: str):
    """The dataset's secret seed for the choice of kept rows (made once, from pg_strong_random)."""
    db.execute("INSERT INTO dp_internal.dataset_secrets (dataset, seed) SELECT $1, CAST(CAST(pg_catalog.concat("
               "'x', pg_catalog.substr(pg_catalog.md5(CAST(pg_catalog.gen_random_uuid() AS pg_catalog.text)), 1, 16)"
               ") AS bit(64)) AS pg_catalog.int8) ON CONFLICT (dataset) DO NOTHING", [dataset], ["text"])


def compute(plan, ledger_id: int) -> Estimate:
    """Measure and release the estimate of this question's key set (its budget: plan.bounds.estimate_budget),
    keep it, and return the one kept (a concurrent question may have kept one first)."""
    b = plan.bounds
    # the histograms reach beyond fixed bounds: what they drop is what is measured
    rows_range, groups_range = (max(c, 2 * v) for c, v in zip(b.auto_ceilings, (b.rows, b.groups)))
    g_edges = edges(groups_range)
    a_edges = fine_edges(rows_range)
    m_edges = edges(rows_range)
    exact = db.execute_tuples(rewrite.contribution_sql(plan, (_thresholds(g_edges), _thresholds(a_edges),
                                                              _thresholds(m_edges))), 4)
    ga = [[0] * len(a_edges) for _ in g_edges]
    m = [0] * len(m_edges)
    for gb, ab, mb, n in exact:
        ga[int(gb)][int(ab)] += int(n)
        m[int(mb)] += int(n)
    noise = Noise(plan.accounting.noise, b.estimate_budget).split(3)     # three releases, a unit in each
    est = Estimate(g_edges, a_edges, m_edges, [[noise.integer(n, 1) for n in row] for row in ga],
                   noise.scale(1), noise.kind, _quantile_bin([sum(row) for row in ga], noise), _quantile_bin(m, noise))
    relid, source, keys = _identity(plan)
    db.execute("DELETE FROM dp_internal.contribution_estimates WHERE relid = $1 AND data_version <> $2",
               [relid, plan.meta.data_version], ["oid", "int8"])
    db.execute("INSERT INTO dp_internal.contribution_estimates (relid, source, keys, data_version, estimate, ledger_id) "
               "VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT DO NOTHING",
               [relid, source, keys, plan.meta.data_version, est.to_json(), ledger_id],
               ["oid", "text", "text", "int8", "text", "int8"])
    return lookup(plan) or est
