"""Post-processing steps of pg_dp.synth.relational that need no server."""

from types import SimpleNamespace

import numpy as np

from pg_dp.synth import relational


def test_threshold_fanout_cuts_the_phantom_tail_and_keeps_small_real_cells():
    noisy = np.array([[900.0, 12.0, -3.0, 400.0, 5.0, 0.0, -7.0, 9.0]])
    out = relational.threshold_fanout(noisy, scale=10.0)
    # T(3) = 407 > 4 * 10 * sqrt(10) = 126; T(4) = 7 < 4 * 10 * sqrt(8): cut after k = 3
    assert out.tolist() == [[900.0, 12.0, 0.0, 400.0, 0.0, 0.0, 0.0, 0.0]]
    # nothing passes: the clipped histogram is kept rather than an empty one
    assert relational.threshold_fanout(np.array([1.0, -1.0, 2.0]), scale=10.0).tolist() == [1.0, 0.0, 2.0]


def test_threshold_fanout_phantom_tails_are_rare():
    """Real parents have 0..3 children (500 per cell), cells 4..127 are empty, Laplace noise of
    scale b = 5 in all 2 x 128 cells.  A tail T(k), k >= 4, is pure noise over m = 2 (128 - k)
    cells and must pass 4 b sqrt(2 m): for m = 2 that is P(L1 + L2 > 8 b) = e^-8 (2 + 8) / 4
    < 8.4e-4, and the longer tails (4 b sqrt(2 m) >= 11 b) add under 1e-3 together, so a draw
    keeps a phantom cell with p < 2e-3; more than 8 of 50 draws: p <= C(50, 9) (2e-3)^9 < 1e-14.
    The real cells (500 +- noise) are never cut: T(3) >= 900 passes with p > 1 - e^-100."""
    rng = np.random.default_rng()
    phantom = 0
    for _ in range(50):
        exact = np.zeros((2, 128))
        exact[:, :4] = 500
        out = relational.threshold_fanout(exact + rng.laplace(0, 5, exact.shape), 5.0)
        phantom += int(out[:, 4:].sum() > 0)
        assert np.all(out[:, :4] > 0)
    assert phantom <= 8


def test_numbers_within_a_parent_become_distinct_and_stay_in_bounds():
    col = SimpleNamespace(name="line", fam="integer", kind="numeric", lower=1.0, upper=7.0)
    run = SimpleNamespace(parent={"column": "order"}, t=SimpleNamespace(columns=[col], uniques=[["order", "line"]]))
    values = {"line": np.array([2, 2, 5, 7, 7, 7, 1, 3])}
    parents = np.array(["a", "a", "a", "b", "b", "b", "c", "a"], dtype=object)
    relational.distinct_within_parent(run, values, parents)
    assert values["line"].tolist() == [2, 3, 5, 5, 6, 7, 1, 4]
    for p in "abc":
        got = values["line"][parents == p]
        assert len(set(got)) == got.size and got.max() <= 7
    assert relational.numbering_limit(run) == 7
