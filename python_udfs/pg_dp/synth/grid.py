"""Values on a grid (salaries in steps of 5,000, prices in whole euros, discounts of 0.05):
found with DP, or declared by the DBA (dp.set_step), and kept in the copy.

A binned numeric column decodes a sampled bin to a value inside it, uniformly on the
type's grid (whole numbers, 10^-scale): a salary column whose real values are all
multiples of 5,000 comes out with 0.2% of them on that grid.  A column with a step (the
DBA's, or the one found here) is modelled on it: one code per grid point when they are at
most 128 between the bounds (domain.Column.exact), else each bin decodes to a grid point
inside it.

Detection (post-processing of one DP histogram per column, Gaussian noise in zCDP from
the model's rho; test/unit/test_synth_schema_rules.py adds it up): candidate steps are
public, m * 10^k for m in 1, 2, 2.5, 5, from twice the type's own step up to half the
column's range; each row is counted once, in the cell of the largest candidate its value
is a multiple of (a row moves one cell: L2 sensitivity = the rows one unit moves).  The
share of rows on a grid s is the noisy mass of the cells whose step s divides; the
largest s holding at least ON_GRID of the noisy total is the column's step.
"""

from __future__ import annotations

import numpy as np

from ..core import db
from ..dp import mechanisms
from . import domain as dom
from .state import TableState

ON_GRID = 0.98              # share of rows that must sit on a grid for the column to be put on it
MULTIPLIERS = (1.0, 2.0, 2.5, 5.0)
MIN_POINTS = 3              # a step leaves at least this many grid points between the bounds


def candidates(col: dom.Column) -> list[float]:
    """Public candidate steps of a column, largest first (none for a column already exact)."""
    if col.kind != "numeric" or col.fam not in dom.NUMBER_FAMILIES or col.step or col.exact \
            or not col.upper > col.lower:
        return []
    base = col.grid_step() or 0.0
    top = (col.upper - col.lower) / (MIN_POINTS - 1)
    low = max(2 * base, 1e-6)
    out = []
    for k in range(-6, 19):
        for m in MULTIPLIERS:
            s = float(f"{m}e{k}")
            if low <= s <= top and (not base or abs(s / base - round(s / base)) < 1e-9):
                out.append(s)
    return sorted(out, reverse=True)


def columns(st: TableState) -> list[dom.Column]:
    """The modelled columns whose grid is tested (binned numbers without a declared step)."""
    return [c for c in st.t.columns if c.name not in st.t.keys and candidates(c)]


def _on_grid_sql(column_sql: str, fam: str, step: float) -> str:
    if fam in ("integer", "numeric"):       # exact arithmetic
        return f"pg_catalog.mod(({column_sql})::numeric, {step!r}::numeric) = 0"
    u = f"({column_sql})::float8 / {step!r}"
    return f"abs({u} - round({u})) < 1e-6"


def divides(s: float, t: float) -> bool:
    """Is t a whole multiple of s (both candidate steps)?"""
    q = t / s
    return abs(q - round(q)) < 1e-9


def shares(noisy: np.ndarray, steps: list[float]) -> list[float]:
    """Noisy share of the rows on each candidate grid: cells[i] counts the rows whose largest
    candidate is steps[i] (the last cell: none); a row on the grid of t is on the grid of
    every candidate s dividing t."""
    cells = np.clip(np.asarray(noisy, dtype=np.float64), 0, None)
    total = cells.sum()
    if total <= 0:
        return [0.0] * len(steps)
    return [float(sum(cells[j] for j, t in enumerate(steps) if divides(s, t)) / total) for s in steps]


def choose(noisy: np.ndarray, steps: list[float]) -> float | None:
    """The largest candidate whose noisy share of rows reaches ON_GRID."""
    for s, share in zip(steps, shares(noisy, steps)):
        if share >= ON_GRID:
            return s
    return None


def detect(st: TableState, rho: float) -> dict[str, float]:
    """Find, with DP, the grid of each tested column; put the column on it (its bounds move out
    to the grid).  Returns {column: step} of those put on a grid."""
    cols = columns(st)
    if not cols or rho <= 0:
        return {}
    scale = mechanisms.gaussian_scale(st.sensitivity, rho / len(cols))
    found = {}
    for col in cols:
        steps = candidates(col)
        q = db.quote_ident(col.name)
        cases = " ".join(f"WHEN {_on_grid_sql(q, col.fam, s)} THEN {i}" for i, s in enumerate(steps))
        exact = np.zeros(len(steps) + 1, dtype=np.int64)
        for r in db.execute(f"SELECT CASE {cases} ELSE {len(steps)} END AS g, count(*) AS n FROM {st.src} "
                            f"WHERE {q} IS NOT NULL GROUP BY 1"):
            exact[int(r["g"])] += int(r["n"])
        noisy = mechanisms.gaussian_counts(exact, scale)
        step = choose(noisy, steps)
        if step is not None:
            col.set_step(step)
            found[col.name] = step
    st.phase(f"tested {len(cols)} column(s) for values on a grid (noise sd {scale:.3g})"
             + (": " + ", ".join(f"{n} in steps of {s:g}" for n, s in found.items()) if found else ""))
    return found
