"""Final step of the dp_* aggregates: exact statistics of one group -> noisy answer.

Called from the C final functions (through dp_internal.release) once per group.  The
C side sends exact integers: every value was clamped to [lower, upper] and
put on a grid of 2**gexp, so sums are integers in grid units and the bounds
are `lower_units`, `upper_units`.  Nothing here runs SQL (final functions may
run in parallel workers).

Privacy, per release (add/remove one row; `contribution` rows for a privacy unit):
  count     n + noise of sensitivity 1
  sum       S + noise of sensitivity max(|L|,|H|)
  avg       noisy count (budget/2) and noisy centred sum (budget/2)
  var       noisy count, centred sum and centred sum of squares (budget/3 each)
  stddev    sqrt of var
  var_pop   the same noisy moments, divided by the noisy count instead of count - 1
  quantile  OpenDP noisy max over 1025 grid candidates (exponential mechanism)

The noise is a Noise: discrete Laplace for a budget epsilon (pure epsilon-DP; the dp_* aggregates
and budgets granted without delta), or discrete Gaussian for a budget rho (zCDP; the gateway on
budgets with delta, accounted in dp.accountant).  A plain float budget means Laplace.
"""

from dataclasses import dataclass
import math

from . import mechanisms
from ..core.errors import DPError

QUANTILE_DENOMINATOR = 10_000  # q is used with four decimals: alpha = num / 10_000
LN20 = math.log(20)            # P(|discrete Laplace| > b ln 20) <= 1/20
Z95 = 1.959963984540054        # the normal 97.5% point


@dataclass(frozen=True)
class Noise:
    """How one statistic is noised: ("laplace", epsilon) or ("gaussian", rho)."""
    kind: str
    budget: float

    @staticmethod
    def of(budget) -> "Noise":
        return budget if isinstance(budget, Noise) else Noise("laplace", float(budget))

    def split(self, parts: int) -> "Noise":
        """The same mechanism with the budget shared by `parts` statistics (or groups)."""
        return Noise(self.kind, self.budget / parts)

    def integer(self, value: int, sensitivity: int) -> int:
        if self.kind == "gaussian":
            return mechanisms.gaussian_integer(value, sensitivity, self.budget)
        return mechanisms.laplace_integer(value, sensitivity, self.budget)

    def scale(self, sensitivity: int) -> float:
        """The noise scale of a statistic of this sensitivity (b of Laplace, sigma of the Gaussian),
        as the release uses it (coarsened statistics included)."""
        shift, coarse = mechanisms.coarse_sensitivity(sensitivity)
        if coarse == 0:
            return 0.0
        if self.kind == "gaussian":
            return mechanisms.release_gaussian_scale(coarse, self.budget) * 2 ** shift
        return mechanisms.integer_laplace_scale(coarse, self.budget) * 2 ** shift

    def ci95(self, sensitivity: int) -> float:
        """Half-width of the 95% interval of the noise of a statistic of this sensitivity."""
        scale = self.scale(sensitivity)
        return scale * (Z95 if self.kind == "gaussian" else LN20)

    def argmin_scale(self, sensitivity: int) -> float:
        """The temperature of argmin: a score that much higher is e times less likely to be chosen."""
        if self.kind == "gaussian":
            return mechanisms.zcdp_min_scale(float(sensitivity), self.budget)
        return mechanisms.noisy_min_scale(sensitivity, self.budget)

    def argmin(self, scores: list[int], sensitivity: int) -> int:
        if self.kind == "gaussian":
            return mechanisms.zcdp_argmin(scores, sensitivity, self.budget)
        return mechanisms.noisy_argmin(scores, sensitivity, self.budget)

    @property
    def name(self) -> str:
        return "Gaussian" if self.kind == "gaussian" else "discrete Laplace"


def release(kind: str, stats: list[str], params: list[float]) -> float:
    if kind == "quantile":
        return release_quantile([int(s) for s in stats], *params)
    n, s1, s2, lower_units, upper_units = (int(s) for s in stats)
    return release_stats(kind, n, s1, s2, lower_units, upper_units, int(params[1]), params[0])


def release_stats(kind, n, s1, s2, lower_units, upper_units, gexp, epsilon, contribution=1) -> float:
    """Noisy answer from exact statistics; `epsilon` is a Noise or a Laplace epsilon; `contribution`
    bounds the rows one unit adds."""
    noise = Noise.of(epsilon)
    grid = math.ldexp(1.0, gexp)
    m = int(contribution)
    if kind == "count":
        return float(max(0, noise.integer(n, m)))
    if kind == "sum":
        sensitivity = m * max(abs(lower_units), abs(upper_units))
        return _to_float(noise.integer(s1, sensitivity), gexp)
    if kind == "avg":
        return release_avg(n, s1, lower_units, upper_units, noise, grid, m)
    if kind in ("var", "stddev", "var_pop", "stddev_pop"):
        var = release_var(n, s1, s2, lower_units, upper_units, noise, grid, m, kind.endswith("_pop"))
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
    noise = Noise.of(epsilon).split(2)
    width = upper_units - lower_units
    centre = lower_units + upper_units  # in half-units
    noisy_n = noise.integer(n, contribution)
    centred = 2 * s1 - centre * n  # sum of (2q - L - H), each in [-(H-L), H-L]
    noisy_centred = noise.integer(centred, contribution * width)
    lower, upper = lower_units * grid, upper_units * grid
    mean = centre * grid / 2 + (noisy_centred * grid / 2) / max(noisy_n, 1)
    return _clamp(mean, lower, upper)


def release_var(n, s1, s2, lower_units, upper_units, epsilon, grid, contribution=1, population=False) -> float:
    """Sample (or population) variance from noisy count, centred sum and centred sum of squares."""
    noise = Noise.of(epsilon).split(3)
    width = upper_units - lower_units
    centre = lower_units + upper_units
    noisy_n = noise.integer(n, contribution)
    centred = 2 * s1 - centre * n
    squares = 4 * s2 - 4 * centre * s1 + n * centre * centre  # sum of (2q - L - H)^2
    noisy_centred = noise.integer(centred, contribution * width)
    noisy_squares = noise.integer(squares, contribution * width * width)
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
    index = Noise.of(epsilon).argmin(scores, sensitivity)
    if len(counts) == 1:
        return lower
    return lower + (upper - lower) * index / (len(counts) - 1)
