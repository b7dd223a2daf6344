"""The gateway's aggregates, one table: adding an aggregate is one AggregateSpec (plus its SQL and tests).

For each aggregate the table says how the analyst writes it (plain SQL names, dp_* names and their
argument layouts), what is measured exactly (the SQL of the per-group state the rewrite computes),
how it is released (which statistics get noise, their sensitivity per row, how the answer is
computed from them), what dp.explain says about its noise, and the type of its answer.  The
gateway's stages read it: analyze (names, layouts), plan (state SQL, result type, bounds),
answer (release), explain (noise and notes); dp.release draws the noise.

The C side has its own table for the dp_* aggregates run in SQL (src/: state layout and release
parameters); the exact states named here (dp_internal.exact_*) are that code's transition functions.

A spec's `release` gets the exact state (the text the SQL returns, or None for a group no row
reached), the measurement (bounds, q), a Noise for the whole aggregate in that group, and the rows
a unit may add to a group (k).  Its `explain` gets the same and returns (scale, ci95, note).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..core.errors import DPError
from . import mechanisms, release as rel

QUANTILE_CANDIDATES = 1025
INTEGER_TYPES = {"smallint", "integer", "bigint"}
FLOAT_TYPES = {"real", "double precision"}
NUMBER_TYPES = INTEGER_TYPES | FLOAT_TYPES | {"numeric"}


def parse_sum_state(text: str):
    """(n, s1, s2, lower units, upper units, grid exponent) of dp_internal.sum_state's text."""
    n, s1, s2, lower_units, upper_units, gexp, _flags, _eps = text.strip("()").split(",")
    return int(n), int(s1), int(s2), int(lower_units), int(upper_units), int(gexp)


def parse_hist_state(text: str) -> list[int]:
    """The candidate counts of dp_internal.hist_state's text."""
    head, body = text.strip("()").split(";")
    counts = [0] * QUANTILE_CANDIDATES
    for item in body.split():
        i, c = item.split(":")
        counts[int(i)] = int(c)
    return counts


@dataclass(frozen=True)
class AggregateSpec:
    func: str                                  # the measurement's name (the ledger's, the cache's)
    kind: str                                  # how it is released: count, sum, avg, var, stddev, ..., quantile
    sql_names: tuple = ()                      # plain SQL spellings (count, sum, variance, ...)
    dp_names: tuple = ()                       # dp_* spellings
    dp_layouts: tuple = ()                     # accepted dp_* arguments after the column
    star: bool = False                         # name(*) is valid
    bounded: bool = True                       # needs the column's [lower, upper] (numeric columns)
    fixed_q: float | None = None               # min / max / median: the quantile they release
    per_unit: bool = False                     # count(DISTINCT unit): a unit adds one to a group, whatever k
    statistics: int = 1                        # noisy statistics per group (share the aggregate's budget)
    state: str = ""                            # SQL of the exact per-group state ({value}: the clamped float8
                                               # column, {bounds}: lower, upper, {q}, {column}: the column)
    result: Callable = None                    # (column type, lower, upper) -> the answer's SQL type
    label: str = ""                            # dp.explain's mechanism, after the noise's name
    note: Callable = None                      # (measurement) -> dp.explain's note
    release: Callable = None                   # (measurement, state text | None, Noise, k) -> value
    explain: Callable = None                   # (measurement, Noise, k) -> (scale, ci95, extra note)
    hint: str = field(default="", compare=False)


# ------------------------------------------------------------------ releases

def _count_release(m, stat, noise, k):
    n = int(stat) if stat is not None else 0
    return int(rel.release_stats("count", n, 0, 0, 0, 0, 0, noise, 1 if SPECS[m.func].per_unit else k))


def _moments_release(m, stat, noise, k):
    gexp, lower_units, upper_units = mechanisms.grid(m.lower, m.upper)
    if stat is None:
        n = s1 = s2 = 0
    else:
        n, s1, s2, lu, uu, ge = parse_sum_state(stat)
        if (lu, uu, ge) != (lower_units, upper_units, gexp):
            raise DPError("internal error: grid mismatch between C and Python", sqlstate="XX000")
    value = rel.release_stats(SPECS[m.func].kind, n, s1, s2, lower_units, upper_units, gexp, noise, k)
    if m.func == "sum":
        # free post-processing: a sum of values within [lower, upper] has the sign the bounds allow
        if m.lower >= 0:
            value = max(0.0, value)
        if m.upper <= 0:
            value = min(0.0, value)
    if m.result_type in INTEGER_TYPES:
        return int(round(value))
    return value


def _quantile_release(m, stat, noise, k):
    counts = parse_hist_state(stat) if stat is not None else [0] * QUANTILE_CANDIDATES
    value = rel.release_quantile([sum(counts)] + counts, noise, m.lower, m.upper, m.q, k)
    if m.result_type in INTEGER_TYPES:
        return int(round(value))
    return value


# ------------------------------------------------------------------ dp.explain entries

def _grid_units(m):
    return mechanisms.grid(m.lower, m.upper)


def _count_explain(m, noise, k):
    sens = 1 if SPECS[m.func].per_unit else k
    return noise.scale(sens), noise.ci95(sens), ""


def _sum_explain(m, noise, k):
    gexp, lu, uu = _grid_units(m)
    sens = k * max(abs(lu), abs(uu))
    return noise.scale(sens) * 2.0 ** gexp, noise.ci95(sens) * 2.0 ** gexp, ""


def _avg_explain(m, noise, k):
    gexp, lu, uu = _grid_units(m)
    part = noise.split(2)
    return part.scale(k * (uu - lu)) * 2.0 ** gexp / 2, None, \
        "noise of the centred sum; the mean's error is about that divided by the count"


def _var_explain(m, noise, k):
    gexp, lu, uu = _grid_units(m)
    part = noise.split(3)
    return part.scale(k * (uu - lu) ** 2) * 4.0 ** gexp / 4, None, \
        "noise of the centred sum of squares; divide by the count"


def _quantile_explain(m, noise, k):
    # calibrate now: an epsilon too small for the mechanism is refused before anything is charged
    scores, sens = rel.quantile_scores([0], m.q, k)
    if noise.kind == "gaussian":
        mechanisms.zcdp_min_scale(float(sens), noise.budget)
    else:
        mechanisms.noisy_min_scale(sens, noise.budget)
    step = (m.upper - m.lower) / (QUANTILE_CANDIDATES - 1)
    return None, None, f"q={m.q:g} over {QUANTILE_CANDIDATES} candidates {step:g} apart in [{m.lower:g}, {m.upper:g}]"


# ------------------------------------------------------------------ result types

def _bigint(*_):
    return "bigint"


def _double(*_):
    return "double precision"


def _sum_type(col_type, lower, upper):
    integral = lower is not None and float(lower).is_integer() and float(upper).is_integer()
    return "bigint" if col_type in INTEGER_TYPES and integral else "double precision"


def _column_type(col_type, lower, upper):
    """min / max: the column's own type, as natively (integers rounded to the nearest candidate)."""
    return col_type if col_type in NUMBER_TYPES else "double precision"


def _bounds_note(m):
    return f"values clamped to [{m.lower:g}, {m.upper:g}]"


def _sum_note(m):
    return (_bounds_note(m) + ("; never below 0 (the bounds are non-negative)" if m.lower >= 0 else "")
            + ("; never above 0 (the bounds are non-positive)" if m.upper <= 0 else ""))


MOMENTS = "dp_internal.exact_sum({value}, {bounds})"
SQUARES = "dp_internal.exact_var({value}, {bounds})"
QUANTILE = "dp_internal.exact_quantile({value}, {q}, {bounds})"
DP_BOUNDS = ((), ("lower", "upper"), ("lower", "upper", "epsilon"))

_SPECS = [
    AggregateSpec("count", "count", sql_names=("count",), dp_names=("dp_count",), dp_layouts=((), ("epsilon",)),
                  star=True, bounded=False, result=_bigint, label="", note=lambda m: "per group",
                  release=_count_release, explain=_count_explain),
    AggregateSpec("count_distinct", "count", bounded=False, per_unit=True, result=_bigint,
                  note=lambda m: "per group; a unit adds one", release=_count_release, explain=_count_explain),
    AggregateSpec("sum", "sum", sql_names=("sum",), dp_names=("dp_sum",), dp_layouts=DP_BOUNDS, state=MOMENTS,
                  result=_sum_type, note=_sum_note, release=_moments_release, explain=_sum_explain),
    AggregateSpec("avg", "avg", sql_names=("avg",), dp_names=("dp_avg",), dp_layouts=DP_BOUNDS, state=MOMENTS,
                  statistics=2, result=_double, label="noisy sum / noisy count", note=_bounds_note,
                  release=_moments_release, explain=_avg_explain),
    AggregateSpec("var", "var", sql_names=("variance", "var_samp"), dp_names=("dp_var",), dp_layouts=DP_BOUNDS,
                  state=SQUARES, statistics=3, result=_double, label="noisy moments", note=_bounds_note,
                  release=_moments_release, explain=_var_explain),
    AggregateSpec("stddev", "stddev", sql_names=("stddev", "stddev_samp"), dp_names=("dp_stddev",),
                  dp_layouts=DP_BOUNDS, state=SQUARES, statistics=3, result=_double, label="noisy moments",
                  note=_bounds_note, release=_moments_release, explain=_var_explain),
    AggregateSpec("var_pop", "var_pop", sql_names=("var_pop",), state=SQUARES, statistics=3, result=_double,
                  label="noisy moments", note=_bounds_note, release=_moments_release, explain=_var_explain),
    AggregateSpec("stddev_pop", "stddev_pop", sql_names=("stddev_pop",), state=SQUARES, statistics=3,
                  result=_double, label="noisy moments", note=_bounds_note, release=_moments_release,
                  explain=_var_explain),
    AggregateSpec("quantile", "quantile", dp_names=("dp_quantile",),
                  dp_layouts=(("q",), ("q", "lower", "upper"), ("q", "lower", "upper", "epsilon")),
                  state=QUANTILE, result=_double, label="exponential mechanism (noisy max)",
                  note=lambda m: "", release=_quantile_release, explain=_quantile_explain),
    AggregateSpec("median", "quantile", dp_names=("dp_median",), dp_layouts=DP_BOUNDS, fixed_q=0.5,
                  state=QUANTILE, result=_double, label="exponential mechanism (noisy max)",
                  note=lambda m: "", release=_quantile_release, explain=_quantile_explain),
    # min and max: one row decides them, so they are released as DP quantiles near the ends
    AggregateSpec("min", "quantile", sql_names=("min",), fixed_q=0.01, state=QUANTILE, result=_column_type,
                  label="exponential mechanism (noisy max): the DP 0.01 quantile",
                  note=lambda m: "min is released as the DP 0.01 quantile (one row decides a true min)",
                  release=_quantile_release, explain=_quantile_explain),
    AggregateSpec("max", "quantile", sql_names=("max",), fixed_q=0.99, state=QUANTILE, result=_column_type,
                  label="exponential mechanism (noisy max): the DP 0.99 quantile",
                  note=lambda m: "max is released as the DP 0.99 quantile (one row decides a true max)",
                  release=_quantile_release, explain=_quantile_explain),
]

SPECS = {s.func: s for s in _SPECS}
# plain SQL name -> measurement (count, sum, variance, ..., min, max); percentile_cont is analyze's own shape
PLAIN_NAMES = {name: s.func for s in _SPECS for name in s.sql_names}
DP_NAMES = {name: s.func for s in _SPECS for name in s.dp_names}


def spec(func: str) -> AggregateSpec:
    if func not in SPECS:
        raise DPError(f"unknown aggregate {func!r}", sqlstate="XX000")
    return SPECS[func]
