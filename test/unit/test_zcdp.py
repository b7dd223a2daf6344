"""zCDP mechanisms of pg_dp.mechanisms (used by synthesis): calibration and noise distributions.

The distribution tests draw many values and compare them with the exact law of the
mechanism; each one is also run against a deliberately wrong noise scale, which it
must reject, so that the test can fail.  No database.
"""

import math

import numpy as np
import pytest
from scipy import stats

import opendp.prelude as dp

from pg_dp.dp import mechanisms
from pg_dp.core.errors import DPError

# A correct mechanism passes with probability 1 - P_ACCEPT; a wrong scale must give
# a p-value below P_REJECT.
P_ACCEPT = 1e-12
P_REJECT = 1e-20


# ---------------------------------------------------------------------------
# Gaussian: calibration
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("rho", [0.01, 0.1, 0.5, 1.0, 7.5])
def test_gaussian_scale_is_the_zcdp_scale(rho):
    scale = mechanisms.gaussian_scale(1, rho)
    # rho = sensitivity^2 / (2 sigma^2) for the (discrete) Gaussian mechanism
    assert scale == pytest.approx(math.sqrt(1 / (2 * rho)), rel=1e-9)
    assert mechanisms._integer_gaussian(scale).map(1) <= rho


@pytest.mark.parametrize("sensitivity", [1, 2, 3, 10, 1000])
def test_gaussian_scale_grows_linearly_with_sensitivity(sensitivity):
    rho = 0.25
    scale = mechanisms.gaussian_scale(sensitivity, rho)
    assert scale == pytest.approx(sensitivity * mechanisms.gaussian_scale(1, rho), rel=1e-9)
    assert mechanisms._integer_gaussian(scale).map(sensitivity) <= rho
    # tight: a slightly smaller scale would spend more than rho
    assert mechanisms._integer_gaussian(scale * (1 - 1e-6)).map(sensitivity) > rho


@pytest.mark.parametrize("rho", [0.0, -1.0, math.nan, math.inf])
def test_gaussian_scale_refuses_bad_rho(rho):
    with pytest.raises(DPError):
        mechanisms.gaussian_scale(1, rho)


def test_gaussian_scale_refuses_absurdly_small_rho():
    with pytest.raises(DPError, match="too small"):
        mechanisms.gaussian_scale(1, 1e-40)


# ---------------------------------------------------------------------------
# Gaussian: distribution of the noise
# ---------------------------------------------------------------------------

def discrete_gaussian_pmf(sigma: float, support: np.ndarray) -> np.ndarray:
    """Exact pmf of the discrete Gaussian on the integers, p(k) ∝ exp(-k²/(2σ²)).

    Normalised over +-60 sigma: the mass beyond is below 1e-700."""
    half = int(math.ceil(60 * sigma)) + 1
    ks = np.arange(-half, half + 1)
    norm = np.exp(-ks.astype(float) ** 2 / (2 * sigma**2)).sum()
    return np.exp(-support.astype(float) ** 2 / (2 * sigma**2)) / norm


def g_test_discrete_gaussian(draws: np.ndarray, sigma: float) -> float:
    """p-value of the G-test of `draws` against the discrete Gaussian(sigma).

    One bin per integer where at least 5 draws are expected; the two tails (all
    integers beyond, down to -inf and up to +inf) are pooled into one bin each."""
    n = draws.size
    # integers where at least 5 draws are expected, then fewer until each pooled
    # tail also expects at least 5
    kmax = int(math.ceil(60 * sigma))
    ks = np.arange(-kmax, kmax + 1)
    pmf = discrete_gaussian_pmf(sigma, ks)
    keep = pmf * n >= 5
    ks, pmf = ks[keep], pmf[keep]
    while (1 - pmf.sum()) / 2 * n < 5:
        ks, pmf = ks[1:-1], pmf[1:-1]
    tail = (1 - pmf.sum()) / 2     # symmetric
    expected = np.concatenate([[tail], pmf, [tail]]) * n
    observed = np.concatenate([[np.sum(draws < ks[0])],
                               [np.sum(draws == k) for k in ks],
                               [np.sum(draws > ks[-1])]]).astype(float)
    assert observed.sum() == n
    assert expected.min() >= 5
    # rescale for floating error in the sum (scipy checks that the totals agree)
    expected *= n / expected.sum()
    return stats.power_divergence(observed, expected, lambda_="log-likelihood").pvalue


@pytest.fixture(scope="module")
def gaussian_draws():
    sigma = 3.0
    draws = mechanisms.gaussian_counts(np.zeros(200_000, dtype=np.int64), sigma)
    return sigma, draws


@pytest.mark.statistical
def test_gaussian_counts_follow_the_discrete_gaussian(gaussian_draws):
    sigma, draws = gaussian_draws
    assert draws.dtype == np.float64
    assert np.all(draws == np.round(draws)), "discrete Gaussian noise is integer"
    assert g_test_discrete_gaussian(draws, sigma) > P_ACCEPT


@pytest.mark.statistical
@pytest.mark.parametrize("factor", [0.8, 1.2])
def test_gaussian_distribution_test_rejects_a_wrong_scale(gaussian_draws, factor):
    sigma, draws = gaussian_draws
    assert g_test_discrete_gaussian(draws, sigma * factor) < P_REJECT


@pytest.mark.statistical
def test_gaussian_variance_matches_scale(gaussian_draws):
    sigma, draws = gaussian_draws
    n = draws.size
    # sum of squares / sigma^2 is ~ chi2(n) (the discrete Gaussian's variance at
    # sigma = 3 equals sigma^2 to ~1e-80)
    ss = float(np.sum(draws**2)) / sigma**2
    assert stats.chi2.ppf(P_ACCEPT, n) < ss < stats.chi2.isf(P_ACCEPT, n)
    for wrong in (0.95, 1.05):
        ss_wrong = float(np.sum(draws**2)) / (sigma * wrong) ** 2
        assert not (stats.chi2.ppf(P_ACCEPT, n) < ss_wrong < stats.chi2.isf(P_ACCEPT, n))


@pytest.mark.statistical
def test_gaussian_counts_add_noise_around_the_input():
    sigma = 2.0
    counts = np.array([[0, 7, 1000], [-5, 123456, 3]], dtype=np.int64)
    reps = 4000
    tiled = np.broadcast_to(counts, (reps,) + counts.shape)
    noisy = mechanisms.gaussian_counts(tiled, sigma)
    assert noisy.shape == tiled.shape
    mean = noisy.mean(axis=0)
    # mean noise: |z| < 8 standard errors
    assert np.all(np.abs(mean - counts) < 8 * sigma / math.sqrt(reps))
    # not the exact values
    assert not np.array_equal(noisy[0], counts)
    # a single call on a 2-D array keeps its shape
    assert mechanisms.gaussian_counts(counts, sigma).shape == counts.shape


# ---------------------------------------------------------------------------
# Exponential mechanism (Gumbel report-noisy-max under zCDP)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("sensitivity,rho", [(1, 0.5), (1, 0.01), (3, 0.2), (2.5, 2.0)])
def test_exponential_scale_is_calibrated_with_opendp(sensitivity, rho):
    scale = mechanisms.exponential_scale(sensitivity, rho)
    meas = mechanisms._zcdp_max(scale)
    assert meas.map(float(sensitivity)) <= rho
    assert mechanisms._zcdp_max(scale * (1 - 1e-6)).map(float(sensitivity)) > rho
    # OpenDP's map for noisy max (scores may move in both directions): rho = (Δ/scale)²/2
    assert scale == pytest.approx(sensitivity / math.sqrt(2 * rho), rel=1e-9)


@pytest.mark.parametrize("rho", [0.0, -0.5, math.nan])
def test_exponential_scale_refuses_bad_rho(rho):
    with pytest.raises(DPError):
        mechanisms.exponential_scale(1.0, rho)


def softmax(scores, scale):
    s = np.asarray(scores, dtype=float) / scale
    e = np.exp(s - s.max())
    return e / e.sum()


def _argmax_draws(scores, sensitivity, rho, n):
    return np.array([mechanisms.exponential_argmax(scores, sensitivity, rho) for _ in range(n)])


@pytest.mark.statistical
def test_exponential_argmax_two_candidates_is_logistic():
    sensitivity, rho = 1.0, 0.5
    scale = mechanisms.exponential_scale(sensitivity, rho)
    gap = 2 * scale
    n = 20_000
    picks = _argmax_draws([0.0, gap], sensitivity, rho, n)
    assert set(np.unique(picks)) <= {0, 1}
    k = int(np.sum(picks == 1))

    def p_value(s):
        # Gumbel(scale) noise: P(argmax = 1) = 1 / (1 + exp(-(s1 - s0) / scale))
        p1 = 1 / (1 + math.exp(-gap / s))
        return stats.binomtest(k, n, p1).pvalue

    assert p_value(scale) > P_ACCEPT
    assert p_value(scale * 0.7) < P_REJECT
    assert p_value(scale * 1.3) < P_REJECT


@pytest.mark.statistical
def test_exponential_argmax_is_softmax_over_several_candidates():
    sensitivity, rho = 3.0, 0.2
    scale = mechanisms.exponential_scale(sensitivity, rho)
    scores = [10.0, 10.0 + scale, 10.0 - scale, 10.0 + 2 * scale]
    n = 20_000
    picks = _argmax_draws(scores, sensitivity, rho, n)
    observed = np.bincount(picks, minlength=len(scores)).astype(float)
    assert observed.sum() == n

    def p_value(s):
        expected = softmax(scores, s) * n
        return stats.chisquare(observed, expected).pvalue

    assert p_value(scale) > P_ACCEPT
    assert p_value(scale * 0.7) < P_REJECT
    assert p_value(scale * 1.3) < P_REJECT


def test_exponential_argmax_picks_a_clear_winner_and_accepts_ints():
    # 1000 scales of gap: the best index wins except with probability ~e^-1000
    scale = mechanisms.exponential_scale(1, 1.0)
    scores = [0, 0, int(1000 * scale) + 1, 0]
    assert all(mechanisms.exponential_argmax(scores, 1, 1.0) == 2 for _ in range(50))
    # and a single candidate is always chosen
    assert mechanisms.exponential_argmax([5.0], 1, 1.0) == 0


# ---------------------------------------------------------------------------
# rho for an (epsilon, delta) budget
# ---------------------------------------------------------------------------

def classical_rho(epsilon, delta):
    """rho solving epsilon = rho + 2 sqrt(rho ln(1/delta)) (Bun & Steinke's sufficient bound)."""
    log = math.log(1 / delta)
    return (math.sqrt(log + epsilon) - math.sqrt(log)) ** 2


def opendp_epsilon(rho, delta):
    """epsilon of OpenDP's zCDP -> (epsilon, delta) conversion for a mechanism with zCDP rho."""
    scale = math.sqrt(1 / (2 * rho))
    meas = dp.c.make_zCDP_to_approxDP(mechanisms._integer_gaussian(scale))
    return meas.map(1).epsilon(delta)


def test_rho_for_is_at_least_the_classical_bound():
    rho = mechanisms.rho_for(1.0, 1e-6)
    assert rho > 0
    assert rho >= classical_rho(1.0, 1e-6)
    # the classical bound at the returned rho is an (over-)estimate of epsilon
    assert rho + 2 * math.sqrt(rho * math.log(1 / 1e-6)) >= 1.0 - 1e-12


@pytest.mark.parametrize("epsilon,delta", [(1.0, 1e-6), (0.1, 1e-5), (5.0, 1e-9), (0.5, 0.01)])
def test_rho_for_is_sound_and_nearly_tight(epsilon, delta):
    rho = mechanisms.rho_for(epsilon, delta)
    assert rho >= classical_rho(epsilon, delta)
    # sound: a Gaussian calibrated to this rho satisfies (epsilon, delta)-DP by OpenDP's own map
    scale = mechanisms.gaussian_scale(1, rho)
    meas = dp.c.make_zCDP_to_approxDP(mechanisms._integer_gaussian(scale))
    assert meas.map(1).epsilon(delta) <= epsilon
    # the largest such rho (up to the bisection's tolerance): slightly more would not be
    assert opendp_epsilon(rho * (1 + 1e-6), delta) > epsilon


def test_rho_for_is_monotone():
    eps = [0.05, 0.1, 0.5, 1.0, 2.0, 8.0]
    by_eps = [mechanisms.rho_for(e, 1e-6) for e in eps]
    assert all(a < b for a, b in zip(by_eps, by_eps[1:]))
    deltas = [1e-12, 1e-9, 1e-6, 1e-3, 0.1]
    by_delta = [mechanisms.rho_for(1.0, d) for d in deltas]
    assert all(a < b for a, b in zip(by_delta, by_delta[1:]))


@pytest.mark.parametrize("epsilon,delta", [
    (0.0, 1e-6), (-1.0, 1e-6), (math.nan, 1e-6), (math.inf, 1e-6),
    (1.0, 0.0), (1.0, 1.0), (1.0, -1e-6), (1.0, 1.5), (1.0, math.nan),
])
def test_rho_for_refuses_bad_budgets(epsilon, delta):
    with pytest.raises(DPError):
        mechanisms.rho_for(epsilon, delta)


def test_rho_for_refuses_epsilon_too_small_for_delta():
    with pytest.raises(DPError, match="too small"):
        mechanisms.rho_for(1e-9, 1e-12)


def test_rho_for_tiny_epsilon_with_loose_delta_is_still_sound():
    # a tiny rho is already (0, delta)-DP when delta exceeds its total variation
    # (~sqrt(rho / pi)), so OpenDP's conversion allows a positive rho here
    rho = mechanisms.rho_for(1e-9, 1e-6)
    assert 0 < rho < 1e-11
    assert opendp_epsilon(rho, 1e-6) <= 1e-9
