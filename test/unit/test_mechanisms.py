"""Engine unit tests: no database, plain pytest."""

import math

import pytest

from pg_dp.dp import mechanisms, release
from pg_dp.core.errors import DPError


def test_integer_laplace_scale_matches_opendp_map():
    # epsilon = sensitivity / scale for the discrete Laplace mechanism
    for sensitivity, epsilon in [(1, 1.0), (7, 0.5), (1 << 20, 0.1)]:
        scale = mechanisms.integer_laplace_scale(sensitivity, epsilon)
        assert scale == pytest.approx(sensitivity / epsilon, rel=1e-9)
        assert mechanisms._integer_laplace(scale).map(sensitivity) <= epsilon


@pytest.mark.parametrize("epsilon", [0.0, -1.0, math.nan, math.inf])
def test_bad_epsilon_is_refused(epsilon):
    with pytest.raises(DPError, match="epsilon"):
        mechanisms.laplace_integer(10, 1, epsilon)


def test_tiny_epsilon_is_refused_with_hint():
    with pytest.raises(DPError) as e:
        mechanisms.laplace_integer(10, 1 << 31, 1e-12)
    assert "too small" in e.value.message and e.value.hint


def test_zero_sensitivity_releases_exact_value():
    assert mechanisms.laplace_integer(42, 0, 1.0) == 42


def test_noise_is_integer_and_centred():
    draws = [mechanisms.laplace_integer(1000, 1, 1.0) - 1000 for _ in range(4000)]
    assert all(isinstance(d, int) for d in draws)
    # mean of Laplace(1) noise: |mean| < 6 sd/sqrt(n) with overwhelming probability
    assert abs(sum(draws) / len(draws)) < 6 * math.sqrt(2) / math.sqrt(len(draws))


def test_huge_statistics_are_coarsened_with_exact_accounting():
    sensitivity = (1 << 80) + 12345
    shift = mechanisms.coarsen(sensitivity)
    assert shift == 81 - mechanisms.SENSITIVITY_BITS
    value = 3 << 100
    out = mechanisms.laplace_integer(value, sensitivity, 1.0)
    assert out % (1 << shift) == 0
    # noise is about sensitivity/epsilon; 60 scales is astronomically unlikely
    assert abs(out - value) < 60 * sensitivity


def test_quantile_scores_and_sensitivity():
    scores, sensitivity = release.quantile_scores([2, 0, 3, 5], 0.5)
    # below/above per candidate: (0,8) (2,8) (2,5) (5,0)
    assert scores == [abs(5000 * 0 - 5000 * 8), abs(5000 * 2 - 5000 * 8),
                      abs(5000 * 2 - 5000 * 5), abs(5000 * 5 - 0)]
    assert sensitivity == 5000
    _, s90 = release.quantile_scores([1], 0.9)
    assert s90 == 9000


def test_noisy_argmin_finds_clear_minimum():
    scores = [10**9] * 50
    scores[17] = 0
    assert all(mechanisms.noisy_argmin(scores, 1, 1.0) == 17 for _ in range(20))


def test_release_kinds_are_accurate_at_large_n():
    n = 10**6
    # values all equal to 25 on a grid of 1 with bounds [0, 100]
    stats = [str(n), str(25 * n), str(625 * n), "0", "100"]
    assert abs(release.release("count", stats, [1.0, 0]) - n) < 60
    assert abs(release.release("sum", stats, [1.0, 0]) - 25 * n) < 100 * 60
    assert abs(release.release("avg", stats, [1.0, 0]) - 25) < 0.05
    assert release.release("var", stats, [1.0, 0]) < 0.5
    assert release.release("stddev", stats, [1.0, 0]) < 1


def test_release_respects_grid_exponent():
    # 1000 values of 0.75 on a grid of 2**-2 -> units of 3, bounds [0, 1] -> [0, 4]
    stats = ["1000", "3000", "0", "0", "4"]
    assert abs(release.release("sum", stats, [10.0, -2]) - 750) < 5
    assert abs(release.release("avg", stats, [10.0, -2]) - 0.75) < 0.01


def test_avg_and_var_stay_within_bounds_for_empty_input():
    stats = ["0", "0", "0", "0", "100"]
    for _ in range(200):
        assert 0 <= release.release("avg", stats, [0.1, 0]) <= 100
        assert 0 <= release.release("var", stats, [0.1, 0]) <= 2500


def test_quantile_release_on_grid():
    counts = [0] * 1025
    counts[512] = 10**5
    value = release.release("quantile", [str(sum(counts))] + [str(c) for c in counts], [1.0, 0.0, 100.0, 0.5])
    assert value == pytest.approx(50.0)


def test_unknown_kind():
    with pytest.raises(DPError):
        release.release("mode", ["0"] * 5, [1.0, 0])
