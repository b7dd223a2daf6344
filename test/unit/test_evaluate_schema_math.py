"""The arithmetic of dp.evaluate_schema (pg_dp.synth.evaluate_schema), without a server."""

import numpy as np
import pytest

from pg_dp.synth import evaluate_schema as es


def test_tvd_of_histograms():
    assert es.tvd([1, 1, 0], [1, 1, 0]) == 0
    assert es.tvd([1, 0], [0, 5]) == 1
    assert es.tvd([3, 1], [1, 3]) == pytest.approx(0.5)
    assert es.tvd([0, 0], [0, 0]) == 0
    with pytest.raises(ValueError):
        es.tvd([1], [1, 2])


def test_independence_baseline_is_zero_for_independent_columns_and_large_for_copies():
    a = np.repeat([0, 1], 50)
    b = np.tile([0, 1], 50)
    assert es.independence_tvd(a, b, 2, 2) == pytest.approx(0)
    assert es.independence_tvd(a, a, 2, 2) == pytest.approx(0.5)


def test_fanout_histogram_counts_parents_without_children():
    assert es.fanout_histogram(np.bincount([0, 0, 2], minlength=4)) == {0: 2, 1: 1, 2: 1}
    assert es.fanout_histogram([63, 64, 100, 127, 128, 700]) == {63: 1, 64: 3, 128: 1, 512: 1}
    assert es.dict_tvd({0: 2, 1: 2}, {0: 2, 1: 2}) == 0
    assert es.dict_tvd({1: 4}, {2: 4}) == 1


def test_parent_index_and_join():
    index = es._parent_index(["a", None, "z", "b"], ["b", "a"])
    assert index.tolist() == [1, -1, -1, 0]
    assert es.join_codes(np.array([7, 9]), index).tolist() == [9, 7]


def test_uniform_attachment_is_uniform():
    """50,000 children over 10 parents: each parent's share is within 0.02 of 0.1, with
    probability >= 1 - 20 exp(-2 * 50,000 * 0.02**2) > 1 - 1e-16 (Hoeffding), whatever the seed."""
    got = es.uniform_attachment(50000, 10, np.random.default_rng())
    shares = np.bincount(got, minlength=10) / got.size
    assert np.all(np.abs(shares - 0.1) <= 0.02)
    assert es.uniform_attachment(3, 0, np.random.default_rng()).size == 0


def test_joint_counts_cover_every_cell():
    h = es.counts([np.array([0, 1, 1]), np.array([2, 0, 0])], [2, 3])
    assert h.tolist() == [0, 0, 1, 2, 0, 0]


def test_paths_to_the_unit_table():
    fks = {1: [{"name": "via_invoice", "ref": 2}, {"name": "direct", "ref": 3}], 2: [{"name": "inv_cust", "ref": 3}]}
    paths = es._paths(1, 3, fks)
    assert sorted([k["name"] for k in p] for p in paths) == [["direct"], ["via_invoice", "inv_cust"]]
    cyclic = {1: [{"name": "a", "ref": 2}], 2: [{"name": "b", "ref": 1}]}
    assert es._paths(1, 3, cyclic) == []


def test_the_sampling_floor_is_what_independent_columns_show_by_chance():
    """Independent columns over 1,500 rows in 16 x 16 cells are about 0.17 from independence by
    chance alone (the mean over 200 draws is within 5% of sampling_floor: its sd over 200 draws
    is under 1%); a pair at the old fixed 0.05 is not dependent, a column copied from the other
    (distance 0.8) is, far above twice the floor."""
    rng = np.random.default_rng(11)
    p = rng.dirichlet(np.ones(16) * 2)
    q = rng.dirichlet(np.ones(16) * 2)
    seen = []
    for _ in range(200):
        a, b = rng.choice(16, 1500, p=p), rng.choice(16, 1500, p=q)
        seen.append(es.independence_tvd(a, b, 16, 16))
    joint = es.counts([rng.choice(16, 1500, p=p), rng.choice(16, 1500, p=q)], [16, 16]).reshape(16, 16)
    floor = es.sampling_floor(joint)
    assert 0.1 < floor < 0.25
    assert abs(np.mean(seen) - floor) < 0.05 * floor
    a = rng.choice(16, 1500, p=p)
    copied = es.counts([a, a], [16, 16]).reshape(16, 16)
    assert es.independence_tvd(a, a, 16, 16) > 2 * es.sampling_floor(copied)
