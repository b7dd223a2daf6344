"""pg_dp.synth.keys: the post-processing of key histograms and self-references (no server)."""

import math

import numpy as np

from pg_dp.dp import mechanisms
from pg_dp.synth import keys


def test_rare_threshold_is_the_union_bound_of_the_gaussian_tail():
    assert keys.rare_threshold(1.0, 1000, 1e-10) == math.sqrt(2 * math.log(1000 / 1e-10))
    assert keys.rare_threshold(2.0, 10) == 2 * keys.rare_threshold(1.0, 10)
    assert keys.rare_threshold(1.0, 10_000) > keys.rare_threshold(1.0, 10)
    # OpenDP's discrete Gaussian of scale 3 passes the one-cell threshold at p = 1e-3 (about 3.7
    # scales, where the tail is about 1e-4) in about 10 of 100,000 draws; 200 or more would
    # need a tail 20 times the bound: P(Binomial(1e5, 1e-3) >= 200) < 1e-15
    noise = mechanisms.gaussian_counts(np.zeros(100_000, dtype=np.int64), 3.0)
    assert int((noise >= keys.rare_threshold(3.0, 1, 1e-3)).sum()) < 200


def test_key_weights_take_the_rest_from_the_dp_row_count():
    rest, null = keys.key_weights(np.array([600.0, 300.0]), 50.0, 1000, cells=10)
    assert (rest, null) == (50.0, 50.0)
    # noisy NULL count below zero: no NULLs; passing keys above the total: nothing left over
    assert keys.key_weights(np.array([900.0, 300.0]), -20.0, 1000, cells=10) == (0.0, 0.0)
    # every key passed: the rest has nowhere to go
    assert keys.key_weights(np.array([10.0, 10.0]), None, 1000, cells=2) == (0.0, 0.0)
    # nothing passed and a count of 0: uniform over the keys
    assert keys.key_weights(np.array([]), None, 0, cells=5) == (1.0, 0.0)


def test_complement_ranks_skip_the_passing_ones():
    rng = np.random.default_rng(7)
    for _ in range(200):
        cells = int(rng.integers(1, 60))
        passing = np.sort(rng.choice(cells, size=int(rng.integers(0, cells)), replace=False))
        free = np.setdiff1d(np.arange(cells), passing)
        assert keys.complement_ranks(passing, np.arange(free.size)).tolist() == free.tolist()


def test_draw_ranks_follow_the_weights_and_spread_the_rest_uniformly():
    """100,000 draws; each of the 11 shares is within 0.012 of its expectation but with
    probability 2 exp(-2 * 1e5 * 0.012**2) < 1e-12 (Hoeffding), so < 1e-10 for all."""
    model = {"passing": np.array([3, 7]), "weights": np.array([100.0, 50.0]), "rest": 40.0, "null": 10.0,
             "cells": 10}
    ranks = keys.draw_ranks(100_000, model, np.random.default_rng())
    got = np.bincount(ranks + 1, minlength=11) / ranks.size      # index 0: NULL
    want = np.full(11, 0.2 / 8)
    want[0], want[4], want[8] = 0.05, 0.5, 0.25
    assert np.abs(got - want).max() <= 0.012, got
    assert ranks.min() >= -1 and ranks.max() < 10


def test_draw_ranks_with_every_key_passing_or_none():
    rng = np.random.default_rng()
    every = {"passing": np.array([0, 1]), "weights": np.array([1.0, 1.0]), "rest": 0.0, "null": 0.0, "cells": 2}
    assert set(keys.draw_ranks(1000, every, rng).tolist()) <= {0, 1}
    none = {"passing": np.zeros(0, dtype=np.int64), "weights": np.zeros(0), "rest": 0.0, "null": 0.0, "cells": 3}
    assert set(keys.draw_ranks(1000, none, rng).tolist()) <= {0, 1, 2}


def test_spread_rare_moves_only_rows_on_rare_keys():
    """Codes 0 and 1 are frequent, 2..5 rare (noisy counts under 10), 6 is NULL.  Rows on rare
    codes are dealt uniformly over 2..5: 40,000 such rows, each share within 0.02 of 1/4 but
    with p < 2 exp(-2 * 40,000 * 0.02**2) < 3e-14 (Hoeffding), < 2e-13 for the four."""
    noisy = np.array([500.0, 300.0, 9.0, -3.0, 0.0, 2.0, 50.0])
    codes = np.r_[np.zeros(1000), np.ones(1000), np.full(40_000, 2), np.full(500, 6)].astype(np.int64)
    out = keys.spread_rare(codes, noisy, 10.0, np.random.default_rng(), null_code=6)
    assert (out[:2000] == codes[:2000]).all() and (out[-500:] == 6).all()
    rare = out[2000:-500]
    assert set(rare.tolist()) <= {2, 3, 4, 5}
    assert np.abs(np.bincount(rare, minlength=6)[2:] / rare.size - 0.25).max() <= 0.02
    # nothing rare: unchanged
    assert (keys.spread_rare(codes, np.full(7, 100.0), 10.0, np.random.default_rng()) == codes).all()


def test_other_rows_never_point_at_themselves():
    rng = np.random.default_rng()
    flags = np.arange(10_000) % 3 != 0
    out = keys.other_rows(flags, rng)
    assert (out[~flags] == -1).all()
    assert (out[flags] >= 0).all() and (out[flags] < flags.size).all()
    assert not (out == np.arange(flags.size)).any()
    assert keys.other_rows(np.array([True]), rng).tolist() == [-1]
    assert keys.other_rows(np.array([True, True]), rng).tolist() == [1, 0]


def test_neighbour_keys_stage_another_rows_key():
    assert keys.neighbour_keys([True, False, True], ["1", "2", "3"]) == ["2", None, "1"]
    assert keys.neighbour_keys([True], ["9"], "10") == ["10"]      # a chunk of one row: a key it does not hold


def test_key_histograms_take_a_bounded_share_of_the_models_rho():
    """10% of the model's rho per histogram, at most 30% for all; the MST gets the rest
    (run.py passes rho - share to mst.run), so the charge covers both."""
    from types import SimpleNamespace

    run = lambda k: SimpleNamespace(links=[SimpleNamespace(histogram=True)] * k + [SimpleNamespace(histogram=False)])
    assert keys.rho_share(run(0), 1.0, alone=False) == 0.0
    assert keys.rho_share(run(1), 1.0, alone=False) == 0.1
    assert keys.rho_share(run(2), 1.0, alone=False) == 0.2
    assert keys.rho_share(run(5), 1.0, alone=False) == 0.3
    assert keys.rho_share(run(2), 1.0, alone=True) == 1.0       # nothing else is modelled
