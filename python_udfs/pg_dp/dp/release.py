"""Final step of the dp_* aggregates: exact statistics of one group -> noisy answer.

Called from the C final functions (through dp_internal.release) once per group.  The
C side sends exact integers: every value was clamped to [lower, upper] and
put on a grid of 2**gexp, so sums are integers in grid units and the bounds
are `lower_units`, `upper_units`.  Nothing here runs SQL (final functions may
run in parallel workers).

Privacy, per release (add/remove one row):
  count     n + Lap(1/eps)
  sum       S + Lap(max(|L|,|H|)/eps)
  avg       noisy count (eps/2) and noisy centred sum (eps/2)
  var       noisy count, centred sum and centred sum of squares (eps/3 each)
  stddev    sqrt of var
  var_pop   the same noisy moments, divided by the noisy count instead of count - 1
  quantile  OpenDP noisy max over 1025 grid candidates (exponential mechanism)
"""

import math

from . import mechanisms
from ..core.errors import DPError

QUANTILE_DENOMINATOR = 10_000  # q is used with four decimals: alpha = num / 10_000


def release(kind: str, stats: list[str], params: list[float]) -> float:
    if kind == "quantile":
        return release_quantile([int(s) for s in stats], *params)
    n, s1, s2, lower_units, upper_units = (int(s) for s in stats)
    return release_stats(kind, n, s1, s2, lower_units, upper_units, int(params[1]), params[0])


def release_stats(kind, n, s1, s2, lower_units, upper_units, gexp, epsilon, contribution=1) -> float:
    """Noisy answer from exact statistics; `contribution` bounds the rows one unit adds."""
    grid = math.ldexp(1.0, gexp)
    m = int(contribution)
    if kind == "count":
        return float(max(0, mechanisms.laplace_integer(n, m, epsilon)))
    if kind == "sum":
        sensitivity = m * max(abs(lower_units), abs(upper_units))
        return _to_float(mechanisms.laplace_integer(s1, sensitivity, epsilon), gexp)
    if kind == "avg":
        return release_avg(n, s1, lower_units, upper_units, epsilon, grid, m)
    if kind in ("var", "stddev", "var_pop", "stddev_pop"):
        var = release_var(n, s1, s2, lower_units, upper_units, epsilon, grid, m, kind.endswith("_pop"))
        return math.sqrt(var) if kind.startswith("stddev") else var
    raise DPError(f"unknown release kind {kind!r}", sqlstate="XX000")


def _to_float(units: int, gexp: int) -> float:
    """units * 2**gexp as a float, saturating instead of overflowing."""
    try:
        return math.ldexp(float(units), gexp)
    except OverflowError:
        return math.copysign(math.inf, units)


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def release_avg(n, s1, lower_units, upper_units, epsilon, grid, contribution=1) -> float:
    """Mean as noisy centred sum / noisy count; the centred sum has sensitivity (H-L)/2."""
    width = upper_units - lower_units
    centre = lower_units + upper_units  # in half-units
    noisy_n = mechanisms.laplace_integer(n, contribution, epsilon / 2)
    centred = 2 * s1 - centre * n  # sum of (2q - L - H), each in [-(H-L), H-L]
    noisy_centred = mechanisms.laplace_integer(centred, contribution * width, epsilon / 2)
    lower, upper = lower_units * grid, upper_units * grid
    mean = centre * grid / 2 + (noisy_centred * grid / 2) / max(noisy_n, 1)
    return _clamp(mean, lower, upper)


def release_var(n, s1, s2, lower_units, upper_units, epsilon, grid, contribution=1, population=False) -> float:
    """Sample (or population) variance from noisy count, centred sum and centred sum of squares."""
    width = upper_units - lower_units
    centre = lower_units + upper_units
    noisy_n = mechanisms.laplace_integer(n, contribution, epsilon / 3)
    centred = 2 * s1 - centre * n
    squares = 4 * s2 - 4 * centre * s1 + n * centre * centre  # sum of (2q - L - H)^2
    noisy_centred = mechanisms.laplace_integer(centred, contribution * width, epsilon / 3)
    noisy_squares = mechanisms.laplace_integer(squares, contribution * width * width, epsilon / 3)
    if noisy_n < 2:
        return 0.0
    half = grid / 2
    mean_c = noisy_centred * half / noisy_n
    pop_var = noisy_squares * half * half / noisy_n - mean_c * mean_c
    var = pop_var if population else pop_var * noisy_n / (noisy_n - 1)
    return _clamp(var, 0.0, (width * grid) ** 2 / 4)


def quantile_scores(counts: list[int], q: float, contribution: int = 1) -> tuple[list[int], int]:
    """Integer scores |(1-a)#{x<c} - a#{x>c}| per candidate c, and their sensitivity.

    Adding or removing a row moves #{x<c} or #{x>c} (not both) by one, so each
    score moves by at most max(num, den - num) in units of 1/den.
    """
    num = round(q * QUANTILE_DENOMINATOR)
    den = QUANTILE_DENOMINATOR
    total = sum(counts)
    scores, below = [], 0
    for c in counts:
        above = total - below - c
        scores.append(abs((den - num) * below - num * above))
        below += c
    return scores, contribution * max(num, den - num)


def release_quantile(stats: list[int], epsilon, lower, upper, q, contribution=1) -> float:
    counts = stats[1:]
    scores, sensitivity = quantile_scores(counts, q, contribution)
    index = mechanisms.noisy_argmin(scores, sensitivity, epsilon)
    if len(counts) == 1:
        return lower
    return lower + (upper - lower) * index / (len(counts) - 1)
