"""Noise from OpenDP: the only source of randomness for released values.

Statistics arrive as exact Python integers (sums of values on a power-of-two
grid), so every mechanism here is an integer mechanism with an exact
sensitivity.  Noise scales are calibrated with OpenDP's own privacy maps, not
with a formula of ours, so the guarantee is the one OpenDP proves.
"""

from functools import lru_cache
import math

# OpenDP's core modules, not opendp.prelude: the prelude loads opendp.extras.sklearn,
# about 0.9 s of imports (scikit-learn) in every fresh executor (DESIGN.md #9).
from opendp import combinators as _combinators, domains as _domains, measurements as _measurements
from opendp import measures as _measures, metrics as _metrics, mod as _mod


class _Core:
    """dp.m, dp.c and the prelude's top-level names, from the core modules only."""
    m = _measurements
    c = _combinators

    def __getattr__(self, name):
        for module in (_domains, _metrics, _measures, _mod):
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(name)


dp = _Core()

from ..core.errors import DPError

dp.enable_features("contrib")

# Sensitivities are brought below 2**SENSITIVITY_BITS units before noising, so
# noise fits comfortably in OpenDP's 64-bit integers for any sane epsilon.
SENSITIVITY_BITS = 32
# Largest noise scale accepted (integer units); beyond it 64-bit noise could saturate.
MAX_SCALE = 2.0**56


def _check_epsilon(epsilon: float) -> None:
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise DPError(
            "epsilon must be a finite number greater than zero",
            hint="Pass the privacy loss you accept for this release, e.g. 0.1 or 1.0.",
        )


def _calibrate(build, d_in, budget: float, power: int = 1,
               too_small=("epsilon is too small for these bounds", "Use a larger epsilon or narrower bounds.")) -> float:
    """Smallest scale whose OpenDP map gives at most `budget`.

    The map falls with scale**power (1: epsilon of Laplace-type noise; 2: rho of
    Gaussian-type noise under zCDP), which gives the first guess from the map at
    scale 1; the scale is then nudged up until OpenDP's own map agrees.
    """
    scale = (build(1.0).map(d_in) / budget) ** (1 / power)
    if scale > MAX_SCALE:
        raise DPError(too_small[0], hint=too_small[1])
    for _ in range(64):
        if build(scale).map(d_in) <= budget:
            return scale
        scale = math.nextafter(scale, math.inf) * (1 + 1e-15)
    raise AssertionError("could not calibrate noise scale")  # pragma: no cover


@lru_cache(maxsize=1024)
def _integer_laplace(scale: float):
    return dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=scale
    )


@lru_cache(maxsize=1024)
def integer_laplace_scale(sensitivity: int, epsilon: float) -> float:
    """Scale of discrete Laplace noise giving epsilon-DP for an integer query of this sensitivity."""
    _check_epsilon(epsilon)
    return _calibrate(_integer_laplace, int(sensitivity), float(epsilon))


# Each call into OpenDP costs ~60-80 us whatever it draws, and a draw ~7 us in a
# batch, so draws are made in batches and handed out one by one.  A pooled draw
# is used exactly once and never shown to anyone but the release it noises, so
# the releases get the same independent noise as with one call each.
_POOL_BATCH = 256
_POOL_SCALES = 64
_pools: dict[float, list[int]] = {}


def _pooled(pools: dict[float, list[int]], sampler, scale: float, size: int) -> list[int]:
    """`size` draws of sampler(scale), taken from (and refilling) the pool of that scale."""
    pool = pools.pop(scale, [])
    if len(pool) < size:
        pool.extend(sampler(scale)([0] * max(_POOL_BATCH, size - len(pool))))
    draws, rest = pool[:size], pool[size:]
    if len(pools) >= _POOL_SCALES:
        pools.pop(next(iter(pools)))
    pools[scale] = rest
    return draws


def integer_laplace_noise(scale: float, size: int) -> list[int]:
    """`size` independent discrete Laplace draws (OpenDP's exact sampler)."""
    return _pooled(_pools, _integer_laplace, scale, size)


def coarsen(sensitivity: int) -> int:
    """Shift s such that the statistic in units of 2**s has sensitivity below 2**SENSITIVITY_BITS."""
    return max(0, int(sensitivity).bit_length() - SENSITIVITY_BITS)


def laplace_integer(value: int, sensitivity: int, epsilon: float) -> int:
    """Release an exact integer statistic with epsilon-DP (discrete Laplace).

    Huge statistics (e.g. sums of squares on a fine grid) are first rounded to
    units of 2**s; rounding adds at most one unit to the sensitivity, which is
    accounted for exactly.
    """
    value, sensitivity = int(value), int(sensitivity)
    if sensitivity < 0:
        raise ValueError("sensitivity must be non-negative")
    if sensitivity == 0:
        _check_epsilon(epsilon)
        return value
    coarse, coarse_sensitivity, shift = _coarsened(value, sensitivity)
    scale = integer_laplace_scale(coarse_sensitivity, epsilon)
    noisy = coarse + integer_laplace_noise(scale, 1)[0]
    return noisy << shift


def _coarsened(value: int, sensitivity: int) -> tuple[int, int, int]:
    """(value rounded to units of 2**shift, its sensitivity in those units -- one more for the
    rounding --, shift); shift 0 when the sensitivity is small enough (coarsen)."""
    shift = coarsen(sensitivity)
    if not shift:
        return value, sensitivity, 0
    return (value + (1 << (shift - 1))) >> shift, -(-sensitivity >> shift) + 1, shift


@lru_cache(maxsize=256)
def _noisy_min(scale: float):
    return dp.m.make_noisy_max(
        dp.vector_domain(dp.atom_domain(T="i64")),
        dp.linf_distance(T="i64"),
        dp.max_divergence(),
        scale=scale,
        negate=True,
    )


@lru_cache(maxsize=256)
def noisy_min_scale(sensitivity: int, epsilon: float) -> float:
    _check_epsilon(epsilon)
    return _calibrate(_noisy_min, int(sensitivity), float(epsilon))


def noisy_argmin(scores: list[int], sensitivity: int, epsilon: float) -> int:
    """Index of a low score, chosen with epsilon-DP (OpenDP report-noisy-max on negated scores)."""
    scale = noisy_min_scale(sensitivity, epsilon)
    return int(_noisy_min(scale)([int(s) for s in scores]))


# ---------------------------------------------------------------------------
# DP partition selection (groups whose keys are not public)
# ---------------------------------------------------------------------------

@lru_cache(maxsize=256)
def _threshold(scale: float, threshold: int):
    return dp.m.make_laplace_threshold(
        dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T="i64")),
        dp.l01inf_distance(dp.absolute_distance(T="i64")),
        scale=scale,
        threshold=threshold,
    )


@lru_cache(maxsize=256)
def selection_parameters(max_groups: int, max_rows: int, epsilon: float, delta: float) -> tuple[float, int]:
    """Noise scale and threshold of Laplace thresholding for (epsilon, delta), from OpenDP's map.

    One unit changes at most `max_groups` group counts, each by at most `max_rows`.
    """
    _check_epsilon(epsilon)
    if not (0 < delta < 1):
        raise DPError(
            "delta of partition selection must be between 0 and 1",
            hint="Use a small delta such as 1e-6, or give the GROUP BY column a public value set.",
        )
    d_in = (int(max_groups), int(max_groups) * int(max_rows), int(max_rows))
    big = 1 << 40
    scale = _calibrate(lambda s: _ThresholdEps(s, big), d_in, epsilon)
    low, high = int(max_rows), int(max_rows) + 1
    while _threshold(scale, high).map(d_in)[1] > delta:
        low, high = high, high * 2
        if high > big:
            raise DPError("delta is too small for partition selection", hint="Use a larger delta.")
    while high - low > 1:
        mid = (low + high) // 2
        if _threshold(scale, mid).map(d_in)[1] <= delta:
            high = mid
        else:
            low = mid
    # OpenDP 0.16 keeps a key whose noisy count is >= the threshold, while its map
    # leaves out the probability at exactly the threshold (opendp/opendp#2922):
    # one more unit makes the delta we charge an upper bound again.
    return scale, high + 1


class _ThresholdEps:
    """Adapter: the epsilon part of the threshold mechanism's map, for _calibrate."""

    def __init__(self, scale, threshold):
        self.measurement = _threshold(scale, threshold)

    def map(self, d_in):
        return self.measurement.map(d_in)[0]


def select_partitions(counts: dict[str, int], max_groups: int, max_rows: int,
                      epsilon: float, delta: float) -> dict[str, int]:
    """The keys that survive Laplace thresholding, with their noisy counts."""
    if not counts:
        return {}
    scale, threshold = selection_parameters(max_groups, max_rows, epsilon, delta)
    return dict(_threshold(scale, threshold)({k: int(v) for k, v in counts.items()}))


# ---------------------------------------------------------------------------
# The grid of the C accumulators (src/aggregates/sum_state.c, grid_exponent), reproduced so that
# groups no row reached get exactly the bounds the others were clamped to.
# ---------------------------------------------------------------------------

GRID_BITS = 40


def grid(lower: float, upper: float) -> tuple[int, int, int]:
    """(gexp, lower_units, upper_units) of float bounds, exactly as the C code computes them."""
    m = max(abs(lower), abs(upper))
    if m == 0:
        return 0, 0, 0
    _, e = math.frexp(m)
    gexp = e - GRID_BITS
    return gexp, round(math.ldexp(lower, -gexp)), round(math.ldexp(upper, -gexp))


# ---------------------------------------------------------------------------
# zero-concentrated DP (rho-zCDP), used by synthesis: Gaussian noise on marginal
# counts and the exponential mechanism (Gumbel report-noisy-max) for selection.
# A synthesis run is charged (epsilon, delta); the rho it may spend is found from
# OpenDP's own zCDP -> approximate-DP conversion.
# ---------------------------------------------------------------------------

def _calibrate_zcdp(build, d_in, rho: float) -> float:
    """Smallest scale whose OpenDP map gives at most rho (rho falls with the square of the scale)."""
    if not (math.isfinite(rho) and rho > 0):
        raise DPError("the privacy budget of this step is not positive",
                      hint="Use a larger epsilon.")
    return _calibrate(build, d_in, rho, power=2,
                      too_small=("epsilon is too small for this synthesis", "Use a larger epsilon."))


@lru_cache(maxsize=256)
def _integer_gaussian(scale: float):
    return dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="i64"), scale=scale)


@lru_cache(maxsize=1024)
def gaussian_scale(sensitivity: int, rho: float) -> float:
    """Scale of discrete Gaussian noise giving rho-zCDP for an integer vector of this L2 sensitivity."""
    return _calibrate_zcdp(_integer_gaussian, int(sensitivity), float(rho))


_gaussian_pools: dict[float, list[int]] = {}


def integer_gaussian_noise(scale: float, size: int) -> list[int]:
    """`size` independent discrete Gaussian draws (OpenDP's exact sampler), pooled like Laplace's."""
    return _pooled(_gaussian_pools, _integer_gaussian, scale, size)


def gaussian_integer(value: int, sensitivity: int, rho: float) -> int:
    """Release an exact integer statistic with rho-zCDP (discrete Gaussian), coarsened like
    laplace_integer when the sensitivity is huge (the rounding is accounted for exactly)."""
    value, sensitivity = int(value), int(sensitivity)
    if sensitivity < 0:
        raise ValueError("sensitivity must be non-negative")
    if not (math.isfinite(rho) and rho > 0):
        raise DPError("the privacy budget of this release is not positive", hint="Use a larger epsilon.")
    if sensitivity == 0:
        return value
    coarse, coarse_sensitivity, shift = _coarsened(value, sensitivity)
    scale = release_gaussian_scale(coarse_sensitivity, rho)
    return (coarse + integer_gaussian_noise(scale, 1)[0]) << shift


@lru_cache(maxsize=1024)
def release_gaussian_scale(sensitivity: int, rho: float) -> float:
    """Scale of discrete Gaussian noise giving rho-zCDP for an integer statistic of this sensitivity
    (the gateway's releases: its error names bounds and epsilon, not synthesis)."""
    if not (math.isfinite(rho) and rho > 0):
        raise DPError("epsilon must be a finite number greater than zero",
                      hint="Pass the privacy loss you accept for this release, e.g. 0.1 or 1.0.")
    return _calibrate(_integer_gaussian, int(sensitivity), float(rho), power=2)


def coarse_sensitivity(sensitivity: int) -> tuple[int, int]:
    """(shift, sensitivity in units of 2**shift) as laplace_integer and gaussian_integer use them."""
    shift = coarsen(int(sensitivity))
    return shift, (-(-int(sensitivity) >> shift) + 1 if shift else int(sensitivity))


@lru_cache(maxsize=256)
def zcdp_min_scale(sensitivity: float, rho: float) -> float:
    if not (math.isfinite(rho) and rho > 0):
        raise DPError("epsilon must be a finite number greater than zero",
                      hint="Pass the privacy loss you accept for this release, e.g. 0.1 or 1.0.")
    return _calibrate(_zcdp_max, float(sensitivity), float(rho), power=2)


def zcdp_argmin(scores, sensitivity: float, rho: float) -> int:
    """Index of a low score, chosen with rho-zCDP (OpenDP Gumbel report-noisy-max on negated scores)."""
    scale = zcdp_min_scale(float(sensitivity), float(rho))
    return int(_zcdp_max(scale)([-float(s) for s in scores]))


def gaussian_counts(counts, scale: float):
    """Noisy copies of integer counts (OpenDP's exact discrete Gaussian sampler)."""
    import numpy as np

    flat = np.asarray(counts, dtype=np.int64).ravel()
    noisy = _integer_gaussian(scale)([int(v) for v in flat])
    return np.asarray(noisy, dtype=np.float64).reshape(np.shape(counts))


@lru_cache(maxsize=256)
def _zcdp_max(scale: float):
    return dp.m.make_noisy_max(dp.vector_domain(dp.atom_domain(T="f64", nan=False)), dp.linf_distance(T="f64"),
                               dp.zero_concentrated_divergence(), scale=scale)


@lru_cache(maxsize=256)
def exponential_scale(sensitivity: float, rho: float) -> float:
    return _calibrate_zcdp(_zcdp_max, float(sensitivity), float(rho))


def exponential_argmax(scores, sensitivity: float, rho: float) -> int:
    """Index of a high score, chosen with rho-zCDP (OpenDP Gumbel report-noisy-max)."""
    scale = exponential_scale(sensitivity, rho)
    return int(_zcdp_max(scale)([float(s) for s in scores]))


@lru_cache(maxsize=256)
def rho_for(epsilon: float, delta: float) -> float:
    """The largest rho whose zCDP guarantee implies (epsilon, delta)-DP, by OpenDP's conversion."""
    _check_epsilon(epsilon)
    if not (0 < delta < 1):
        raise DPError("delta must be between 0 and 1 for synthesis",
                      hint="Synthesis adds Gaussian noise, which needs a small delta such as 1e-6.")

    def eps_at(scale: float) -> float:
        meas = dp.c.make_zCDP_to_approxDP(_integer_gaussian(scale))
        return meas.map(1).epsilon(delta)

    low, high = 1e-3, 1e6          # scales: eps_at(low) is huge, eps_at(high) tiny
    if eps_at(high) > epsilon:
        raise DPError("epsilon is too small for this delta", hint="Use a larger epsilon or delta.")
    for _ in range(100):
        mid = math.sqrt(low * high)
        if eps_at(mid) <= epsilon:
            high = mid
        else:
            low = mid
        if high / low < 1 + 1e-9:
            break
    return float(_integer_gaussian(high).map(1))
