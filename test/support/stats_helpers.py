"""Exact reference distributions and goodness-of-fit tests for test_statistical.py.

Nothing here imports pg_dp: every distribution is written down from the
mathematics of the mechanisms (src/aggregates/, python_udfs/pg_dp/release.py and
OpenDP's documentation), so the tests compare the extension with the theory,
not with itself.

Goodness of fit uses the likelihood-ratio (G) form of the chi-square test.
Its statistic is 2 * N * KL(observed || expected), whose tail follows the
chi-square law well even far out (large-deviation regime), whereas Pearson's
X^2 has a heavy right tail when a bin's expected count is small: at p = 1e-12
Pearson over-rejects by a factor of ~100 with expected counts of 100, and by
many orders of magnitude with expected counts of 5.
Bins are merged until each expects at least MIN_EXPECTED draws.
"""

import math
from functools import lru_cache

import numpy as np
from scipy import stats

# A correct mechanism is rejected with probability 1e-12 per test: never flakes.
LOG10_REJECT = -12.0
# A mis-scaled mechanism (x0.7, x1.3) must fall far below the rejection threshold.
LOG10_POWER = -20.0
# The scale errors every test must detect.
WRONG_SCALES = (0.7, 1.3)
MIN_EXPECTED = 20


def report(name, log10p):
    """Print the log10 p-values (correct scale and x0.7 / x1.3) and check them."""
    parts = ", ".join(f"x{f}: log10 p = {v:.1f}" for f, v in log10p.items())
    print(f"\n[statistical] {name}: {parts}")
    assert log10p[1.0] > LOG10_REJECT, f"{name}: correct scale rejected ({log10p[1.0]:.1f})"
    for factor in WRONG_SCALES:
        assert log10p[factor] < LOG10_POWER, (
            f"{name}: scale x{factor} not rejected (log10 p = {log10p[factor]:.1f})"
        )


# ---------------------------------------------------------------------------
# Discrete Laplace (two-sided geometric): P(k) = (1-p)/(1+p) * p^|k|, p = exp(-1/b)
# ---------------------------------------------------------------------------

def dlap_cdf(k, b):
    """P(X <= k) for X ~ discrete Laplace of scale b (k: integer-valued, any float array)."""
    k = np.asarray(k, dtype=float)
    denom = 1.0 + math.exp(-1.0 / b)
    with np.errstate(over="ignore"):
        upper = 1.0 - np.exp(-(np.maximum(k, 0.0) + 1.0) / b) / denom  # k >= 0
        lower = np.exp(np.minimum(k, -1.0) / b) / denom  # k <= -1
    return np.where(k >= 0, upper, lower)


def dlap_pmf(k, b):
    k = np.asarray(k, dtype=float)
    p = math.exp(-1.0 / b)
    return (1 - p) / (1 + p) * np.exp(-np.abs(k) / b)


def clamped_dlap_cdf(b):
    """CDF of max(0, X), X ~ discrete Laplace(b): what dp_count releases on an empty input."""
    def cdf(k):
        k = np.asarray(k, dtype=float)
        return np.where(k < 0, 0.0, dlap_cdf(k, b))
    return cdf


# ---------------------------------------------------------------------------
# Binning and the G test against an exact distribution
# ---------------------------------------------------------------------------

def _cdf_at(cdf, k):
    if k == -math.inf:
        return 0.0
    if k == math.inf:
        return 1.0
    return float(cdf(k))


def integer_bins(cdf, n, start, width, min_expected=MIN_EXPECTED):
    """Contiguous bins over the integers for a variable with this CDF, N = n draws.

    Bins are [edge_i, edge_{i+1} - 1]; the first starts at -inf and the last
    ends at +inf.  Bins of `width` integers are laid out upwards from `start`
    and downwards from start - 1, widened until each expects >= min_expected
    draws; what is left in each tail is merged into the outermost bin.
    Returns (edges, probabilities) with edges[0] = -inf.
    """
    def mass(a, c):  # P(a <= X <= c)
        return _cdf_at(cdf, c) - _cdf_at(cdf, a - 1)

    up = [start]
    cur = start
    while True:
        nxt = cur + width
        while n * mass(cur, nxt - 1) < min_expected and n * mass(nxt, math.inf) >= min_expected:
            nxt += width
        if n * mass(nxt, math.inf) < min_expected:
            break
        up.append(nxt)
        cur = nxt
    down = []
    cur = start  # the current bin below ends at cur - 1
    while n * mass(-math.inf, cur - 1) >= min_expected:
        lo = cur - width
        while n * mass(lo, cur - 1) < min_expected and n * mass(-math.inf, lo - 1) >= min_expected:
            lo -= width
        if n * mass(-math.inf, lo - 1) < min_expected:
            down.append(-math.inf)
            break
        down.append(lo)
        cur = lo
    if not down or down[-1] != -math.inf:
        # the lowest bin absorbs the (small or empty) lower tail
        if down:
            down[-1] = -math.inf
        else:
            up[0] = -math.inf
    edges = sorted(down) + up
    probs = np.array([mass(a, c - 1) for a, c in zip(edges, edges[1:] + [math.inf])])
    return np.array(edges, dtype=float), probs


def bin_counts(values, edges):
    """Counts of values in the contiguous bins whose lower edges are `edges` (edges[0] = -inf)."""
    idx = np.searchsorted(edges[1:], np.asarray(values, dtype=float), side="right")
    return np.bincount(idx, minlength=len(edges))


def log10_chi2_sf(stat, dof):
    """log10 of the chi-square upper tail: p-values far below 1e-300 stay measurable."""
    log_sf = stats.chi2.logsf(stat, dof)
    if not np.isfinite(log_sf):  # beyond scipy's range: sf(x) ~ pdf(x) * 2x / (x - dof + 2)
        log_sf = stats.chi2.logpdf(stat, dof) + math.log(2 * stat / (stat - dof + 2))
    return float(log_sf / math.log(10))


def g_test(observed, probs):
    """log10 p-value of the likelihood-ratio (G) chi-square goodness-of-fit test."""
    observed = np.asarray(observed, dtype=float)
    probs = np.asarray(probs, dtype=float)
    probs = probs / probs.sum()
    expected = observed.sum() * probs
    if np.any((expected == 0) & (observed > 0)):
        return -math.inf
    keep = expected > 0
    o, e = observed[keep], expected[keep]
    nz = o > 0
    stat = 2.0 * float(np.sum(o[nz] * np.log(o[nz] / e[nz])))
    return log10_chi2_sf(stat, int(keep.sum()) - 1)


def dlap_gof(values, b, n_bins=40, cdf=None, start=0):
    """G test of integer noise values against discrete Laplace(b) (or the given CDF).

    Returns log10 of the p-value; bins are about b*8/n_bins wide so that the bulk of the
    distribution (|k| < 4b) is resolved whatever the scale.
    """
    values = np.asarray(values, dtype=float)
    cdf = cdf if cdf is not None else (lambda k: dlap_cdf(k, b))
    width = max(1.0, float(math.floor(8.0 * b / n_bins)))
    edges, probs = integer_bins(cdf, len(values), start, width)
    return g_test(bin_counts(values, edges), probs)


def dlap_gof_with_power(values, b, cdf_factory=None, start=0):
    """log10 p-values of `values` against scale b and against the wrong scales 0.7b and 1.3b.

    Bins are laid out for the scale under test each time (the test is the same
    test, only the hypothesised scale changes).
    """
    out = {}
    for factor in (1.0,) + WRONG_SCALES:
        bb = b * factor
        cdf = cdf_factory(bb) if cdf_factory else None
        out[factor] = dlap_gof(values, bb, cdf=cdf, start=start)
    return out


# ---------------------------------------------------------------------------
# Two-sample comparison with a simulated reference
# ---------------------------------------------------------------------------

def quantile_edges(pilot, n_bins):
    """Lower bin edges (first -inf) at the pilot sample's quantiles; duplicate quantiles (atoms) merged."""
    qs = np.quantile(np.asarray(pilot, dtype=float), np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.concatenate([[-np.inf], np.unique(qs)])


def independence_g_test(table):
    """log10 p-value of the G test of independence of rows and columns of a contingency table."""
    table = np.asarray(table, dtype=float)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    nz = table > 0
    stat = 2.0 * float(np.sum(table[nz] * np.log(table[nz] / expected[nz])))
    dof = (table.shape[0] - 1) * (table.shape[1] - 1)
    return log10_chi2_sf(stat, dof)


def two_sample_g_test(sample, reference, edges):
    """log10 p-value of the G test of homogeneity of two samples binned on `edges`."""
    return independence_g_test(np.vstack([bin_counts(sample, edges), bin_counts(reference, edges)]))


# ---------------------------------------------------------------------------
# Reference simulations of the composite mechanisms of release.py
# ---------------------------------------------------------------------------

def sample_dlap(rng, b, size):
    """Discrete Laplace(b) draws: difference of two iid geometric variables with ratio exp(-1/b)."""
    q = -math.expm1(-1.0 / b)  # success probability 1 - exp(-1/b)
    return rng.geometric(q, size) - rng.geometric(q, size)


def simulate_avg(rng, values, lower, upper, epsilon, size, factor=1.0):
    """release_avg: mid + (centred sum + Lap) / max(n + DLap, 1), clamped to [lower, upper].

    count noise: sensitivity 1, epsilon/2 -> discrete Laplace(2/eps);
    centred sum (x - mid): sensitivity (upper-lower)/2, epsilon/2 -> Laplace((upper-lower)/eps).
    The centred sum lives on a lattice of 2^-34 * max(|lower|, |upper|) or finer,
    far below anything a test can resolve, so its noise is simulated continuous.
    """
    values = np.clip(np.asarray(values, dtype=float), lower, upper)
    n, mid = len(values), (lower + upper) / 2
    centred = float(np.sum(values - mid))
    noisy_n = n + sample_dlap(rng, factor * 2.0 / epsilon, size)
    noisy_c = centred + rng.laplace(0.0, factor * (upper - lower) / epsilon, size)
    mean = mid + noisy_c / np.maximum(noisy_n, 1)
    return np.clip(mean, lower, upper)


def simulate_var(rng, values, lower, upper, epsilon, size, factor=1.0):
    """release_var: count, centred sum, centred sum of squares, each at epsilon/3.

    sensitivities: 1, (upper-lower)/2, ((upper-lower)/2)^2.
    """
    values = np.clip(np.asarray(values, dtype=float), lower, upper)
    n, mid, half_width = len(values), (lower + upper) / 2, (upper - lower) / 2
    centred = float(np.sum(values - mid))
    squares = float(np.sum((values - mid) ** 2))
    noisy_n = n + sample_dlap(rng, factor * 3.0 / epsilon, size)
    noisy_c = centred + rng.laplace(0.0, factor * 3.0 * half_width / epsilon, size)
    noisy_s = squares + rng.laplace(0.0, factor * 3.0 * half_width ** 2 / epsilon, size)
    ok = noisy_n >= 2
    nn = np.where(ok, noisy_n, 2).astype(float)
    mean_c = noisy_c / nn
    pop_var = noisy_s / nn - mean_c ** 2
    var = pop_var * nn / (nn - 1)
    var = np.clip(var, 0.0, (upper - lower) ** 2 / 4)
    return np.where(ok, var, 0.0)


# ---------------------------------------------------------------------------
# Quantile: OpenDP make_noisy_max(negate=True), MaxDivergence
# ---------------------------------------------------------------------------

QUANTILE_CANDIDATES = 1025


def candidate_counts(values, lower, upper, ncand=QUANTILE_CANDIDATES):
    """Rows snapped to the nearest of ncand equally spaced candidates (src/aggregates/hist_state.c, dp_hist_trans)."""
    x = np.clip(np.asarray(values, dtype=float), lower, upper)
    idx = np.rint((x - lower) / (upper - lower) * (ncand - 1)).astype(int)
    return np.bincount(idx, minlength=ncand)


def quantile_scores(counts, q):
    """Score of each candidate c: |(1-a) #{x<c} - a #{x>c}| with a = q, in units of 1/10000.

    Returns (scores, sensitivity): one row moves #{x<c} or #{x>c} by one, so a
    score moves by at most max(a, 1-a) * 10000.
    """
    num = round(q * 10_000)
    den = 10_000
    counts = np.asarray(counts, dtype=np.int64)
    below = np.concatenate([[0], np.cumsum(counts)[:-1]])
    above = counts.sum() - below - counts
    return np.abs((den - num) * below - num * above), max(num, den - num)


@lru_cache(maxsize=8)
def gauss_legendre_01(n):
    """Gauss-Legendre nodes and weights on [0, 1], exact for polynomials of degree < 2n.

    Newton's method on the Legendre recurrence (numpy's leggauss solves an
    eigenproblem through a multi-threaded BLAS, which crawls on a busy 2-core box).
    """
    x = np.cos(np.pi * (np.arange(1, n + 1) - 0.25) / (n + 0.5))
    for _ in range(100):
        p_prev, p = np.ones_like(x), x.copy()
        for k in range(2, n + 1):
            p_prev, p = p, ((2 * k - 1) * x * p - (k - 1) * p_prev) / k
        dp = n * (x * p - p_prev) / (x * x - 1)
        step = p / dp
        x = x - step
        if np.max(np.abs(step)) < 1e-15:
            break
    p_prev, p = np.ones_like(x), x.copy()
    for k in range(2, n + 1):
        p_prev, p = p, ((2 * k - 1) * x * p - (k - 1) * p_prev) / k
    dp = n * (x * p - p_prev) / (x * x - 1)
    weights = 2 / ((1 - x * x) * dp * dp)
    return (1 - x) / 2, weights / 2


def noisy_max_probabilities(scores, scale, negate=True):
    """Exact selection probabilities of OpenDP's make_noisy_max under MaxDivergence.

    OpenDP 0.16 implements it as permute-and-flip (McKenna & Sheldon 2020,
    cited in make_noisy_max's documentation), which has the law of
    report-noisy-max with Exponential(scale) noise: visit the candidates in a
    uniformly random order and accept candidate i with probability
    p_i = exp(-(y_max - y_i) / scale), y = -scores when negate.  (Checked
    against the installed library with 2e5 draws; the exponential-mechanism
    law p_i / sum(p) is a different law and is clearly rejected.)
    Privacy map: epsilon = 2 * d_in / scale for the non-monotonic L-inf metric.
    Giving each candidate an independent uniform arrival time t:
        P(i) = p_i * integral_0^1 prod_{j != i} (1 - p_j t) dt,
    a polynomial of degree len(scores) - 1, integrated exactly by Gauss-Legendre.
    """
    y = -np.asarray(scores, dtype=float) if negate else np.asarray(scores, dtype=float)
    p = np.exp((y - y.max()) / scale)
    levels, inverse, mult = np.unique(p, return_inverse=True, return_counts=True)
    t, w = gauss_legendre_01(len(y) // 2 + 16)
    log_all = (mult[:, None] * np.log1p(-levels[:, None] * t[None, :])).sum(axis=0)
    per_level = np.array([
        lv * np.sum(w * np.exp(log_all - np.log1p(-lv * t))) for lv in levels
    ])
    probs = per_level[inverse]
    assert abs(probs.sum() - 1) < 1e-9, probs.sum()
    return probs


def index_bins(probs, n, min_expected=MIN_EXPECTED, max_run=64):
    """Group consecutive candidates into bins with >= min_expected expected draws.

    Consecutive candidates are merged only while they have the same probability
    (same score), up to max_run candidates, so that the bins test both the
    level probabilities and the uniformity within a level; small bins are then
    merged with their neighbour.  Returns an array mapping candidate -> bin.
    """
    groups = []  # lists of candidate indices
    for i, pi in enumerate(probs):
        if groups and probs[groups[-1][-1]] == pi and len(groups[-1]) < max_run:
            groups[-1].append(i)
        else:
            groups.append([i])
    # merge groups that expect too little with the following (then preceding) one
    merged = []
    acc = []
    for g in groups:
        acc = acc + g
        if n * probs[acc].sum() >= min_expected:
            merged.append(acc)
            acc = []
    if acc:
        if merged:
            merged[-1] = merged[-1] + acc
        else:
            merged.append(acc)
    mapping = np.empty(len(probs), dtype=int)
    for b, g in enumerate(merged):
        mapping[g] = b
    return mapping


def index_gof(indices, probs, mapping):
    """log10 p of the G test of chosen candidate indices against selection probabilities."""
    nb = mapping.max() + 1
    observed = np.bincount(mapping[np.asarray(indices, dtype=int)], minlength=nb)
    bin_probs = np.bincount(mapping, weights=probs, minlength=nb)
    return g_test(observed, bin_probs)
