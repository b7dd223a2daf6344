"""How one table's (epsilon, delta) is spent, and what noise that gives (before the charge).

The charged (epsilon, delta) of a table splits into
- discovery (pure DP, Laplace): the row count (COUNT_SHARE of epsilon) and, when the public
  metadata is not enough, DP bounds, text values (partition selection, half of delta) and
  distinct counts (DISCOVERY_SHARE, or VALUES_SHARE when text values must be found);
- a child's fan-out (FANOUT_SHARE of its epsilon, Laplace; pg_dp.synth.relational), the
  count of its rows (relational.TOTAL_SHARE) and, for a child holding the unit under a parent
  that holds it too, whether its rows name their parent's unit (relational.AGREE_SHARE); a
  path table's fitted rows per unit (relational.ROWS_SHARE): pure DP, accounted with
  discovery as epsilon (relational.pure_share);
- the model: the rest, converted to rho-zCDP for the method's Gaussian marginals (and the
  key histograms, and GRID_RHO_SHARE of it for the grid tests of binned numbers).  When nothing is discovered and the table is not a child, the row count is
  a Gaussian count of COUNT_RHO_SHARE of that rho instead, composed with the model in zCDP.
tests/unit/test_synth_select.py adds OpenDP's maps of every draw up to these shares.
"""

from __future__ import annotations

from decimal import Decimal
import math

from ..dp import mechanisms
from . import domain as dom
from . import grid
from .state import TableState
from .table import Target

COUNT_SHARE = Decimal("0.05")         # of epsilon: the DP row count (Laplace), when discovery runs
COUNT_RHO_SHARE = 0.02                # of rho otherwise: the row count as a Gaussian, composed in zCDP
GRID_RHO_SHARE = 0.02                 # of the model's rho: the grids of binned numbers (pg_dp.synth.grid)
FANOUT_SHARE = 0.2                    # of a child's epsilon: the fan-out per parent, by parent attribute
DISCOVERY_SHARE = Decimal("0.1")      # of epsilon, when discovery is needed at all, plus ...
BOUNDS_SHARE = Decimal("0.02")        # ... this much a column of DP bounds past the third (at most ...
DISCOVERY_MAX = Decimal("0.25")       # ... this share in all): a child's many dates and amounts
VALUES_SHARE = Decimal("0.25")        # ... or when text values must be found (partition selection is costly)


def discovers(t: Target) -> bool:
    """Does the table need a pure-DP discovery step (bounds, values, distinct counts, units)?"""
    return bool(t.needs_bounds or t.needs_values or t.unit
                or any(c.kind == "identifier" and c.name not in t.keys and not c.choices for c in t.columns))


def count_rho(st: TableState) -> float | None:
    """rho of the row count when it is a Gaussian count composed with the model in zCDP:
    when nothing is discovered (no pure-DP step) and the table is not a child.  One
    (epsilon, delta) conversion of the model's rho plus this one then covers both, where
    a Laplace count of 5% of epsilon would cost about 8% of the model's rho at delta 1e-9."""
    if discovers(st.t) or st.parent is not None or st.pure_share:
        return None
    return COUNT_RHO_SHARE * mechanisms.rho_for(float(st.epsilon), float(st.delta))


def grid_rho(st: TableState, epsilon: float, delta: float) -> float:
    """rho of the grid tests (pg_dp.synth.grid), taken from the model's rho at (epsilon, delta),
    when a column is tested (known after discovery: its bounds)."""
    return GRID_RHO_SHARE * mechanisms.rho_for(epsilon, delta) if grid.columns(st) else 0.0


def costs(st: TableState) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(epsilon, delta) of discovery and of the model; they add up to what is charged
    (the model's share includes the row count when count_rho() says so)."""
    if count_rho(st) is not None:
        return Decimal(0), Decimal(0), st.epsilon, st.delta
    share = VALUES_SHARE if st.t.needs_values else \
        min(DISCOVERY_MAX, DISCOVERY_SHARE + BOUNDS_SHARE * max(0, len(st.t.needs_bounds) - 3))
    # the row count is always a DP count of its own (never a sum of noisy marginals); the
    # relational measurements (pure DP) are accounted with it, as epsilon
    e_disc = st.epsilon * COUNT_SHARE + (st.epsilon * share if discovers(st.t) else Decimal(0)) \
        + st.epsilon * st.pure_share
    d_disc = st.delta / 2 if st.t.needs_values else Decimal(0)
    return e_disc, d_disc, st.epsilon - e_disc, st.delta - d_disc


def count_error(st: TableState, sensitivity: int) -> float:
    """Expected absolute error of the DP row count (mean |discrete Laplace|, about its scale;
    for the Gaussian count, sqrt(2/pi) sigma)."""
    rho = count_rho(st)
    if rho is not None:
        return mechanisms.gaussian_scale(sensitivity, rho) * math.sqrt(2 / math.pi)
    return mechanisms.integer_laplace_scale(sensitivity, float(st.epsilon * COUNT_SHARE))


def cell_noise(st: TableState, epsilon: float, delta: float, sensitivity: int) -> tuple[float, int]:
    """(noise sd of a 1-way marginal cell, largest number of cells of a column) at this budget."""
    modelled = [c for c in st.t.columns if c.kind != "identifier"]
    sizes = {c.name: dom.DEFAULT_BINS + 2 if c.name in st.t.needs_bounds
             else c.size if c.kind == "numeric" or c.values else 32 for c in modelled}
    return st.method.one_way_noise(sizes, mechanisms.rho_for(epsilon, delta), sensitivity)


def useful_rows(st: TableState, epsilon: float, delta: float, sensitivity: int) -> tuple[int, float, float, int]:
    """Rows a table needs for its 1-way marginals to come out within about 0.05 TVD
    (0.4 * cells * sd / rows, Gaussian noise on every cell), with the figures behind it."""
    sd, cells = cell_noise(st, epsilon, delta, sensitivity)
    error = count_error(st, sensitivity)
    return int(math.ceil(max(8 * cells * sd, 20 * error))), sd, error, cells


def warn_small(st: TableState, total: int, epsilon: float, delta: float, sensitivity: int):
    need, sd, error, cells = useful_rows(st, epsilon, delta, sensitivity)
    if total < need:
        st.notice(f"{st.t.qualified} is too small to be useful at epsilon {st.epsilon}: about {total} rows "
                  f"(DP count, expected error {error:.3g}), noise sd {sd:.3g} per marginal cell "
                  f"(up to {cells} cells a column); expected 1-way TVD of the widest column about "
                  f"{min(1.0, 0.4 * cells * sd / max(total, 1)):.2f}",
                  hint=f"Spend more epsilon, or declare bounds and public values; about {need} rows are "
                       "needed at this epsilon.")
