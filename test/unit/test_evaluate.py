"""Fidelity scores of synthetic tables (pg_dp.synth.evaluate), without a database."""

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path
import time

import numpy as np
import pytest

from pg_dp.synth import evaluate as ev

ADULT = Path(__file__).resolve().parents[3] / "shared" / "data" / "kamino" / "adult" / "adult.csv"
ADULT_NUMERIC = {"age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"}


def obj(*values):
    return np.array(values, dtype=object)


# ---------------------------------------------------------------- tvd

@pytest.mark.parametrize("p, q, expected", [
    ([1, 0], [0, 1], 1.0),
    ([1, 1], [1, 1], 0.0),
    ([2, 2], [5, 5], 0.0),                  # normalized: only the shape counts
    ([3, 1], [1, 1], 0.25),                 # 0.5 * (|.75-.5| + |.25-.5|)
    ([1, 2, 1], [0, 1, 3], 0.5),            # 0.5 * (.25 + .25 + .5)
    ([[1, 0], [0, 1]], [[0, 1], [1, 0]], 1.0),
])
def test_tvd_hand_computed(p, q, expected):
    assert ev.tvd(np.array(p), np.array(q)) == pytest.approx(expected)


def test_tvd_rejects_empty_and_mismatched():
    with pytest.raises(ValueError, match="empty"):
        ev.tvd(np.array([0, 0]), np.array([1, 1]))
    with pytest.raises(ValueError, match="shape"):
        ev.tvd(np.array([1, 1]), np.array([1, 1, 1]))


# ---------------------------------------------------------------- bin_columns

def test_numeric_bins_edges_out_of_range_and_null():
    real = {"x": np.arange(17.0)}                       # range 0..16, 16 bins of width 1
    synth = {"x": obj(-5.0, 0.0, 0.999, 1.0, 15.5, 16.0, 100.0, None, float("nan"))}
    rc, sc, sizes = ev.bin_columns(real, synth, {"x": "numeric"})
    assert sizes == {"x": 17}                           # 16 bins + NULL
    assert rc["x"].tolist() == list(range(16)) + [15]   # an edge opens its bin; the max is in the last
    assert sc["x"].tolist() == [0, 0, 0, 1, 15, 15, 15, 16, 16]


def test_numeric_bins_count_and_null_in_real():
    real = {"x": obj(0, 10, None, 4)}
    rc, sc, sizes = ev.bin_columns(real, {"x": obj(5, None)}, {"x": "numeric"}, bins=5)
    assert sizes["x"] == 6
    assert rc["x"].tolist() == [0, 4, 5, 2]
    assert sc["x"].tolist() == [2, 5]


def test_constant_real_column_is_one_bin():
    rc, sc, sizes = ev.bin_columns({"x": np.array([5, 5, 5])}, {"x": obj(1, 5, 9, None)}, {"x": "numeric"})
    assert sizes["x"] == 2
    assert rc["x"].tolist() == [0, 0, 0]
    assert sc["x"].tolist() == [0, 0, 0, 1]


def test_all_null_real_column():
    rc, sc, sizes = ev.bin_columns({"x": obj(None, None)}, {"x": obj(3.0)}, {"x": "numeric"})
    assert sizes["x"] == 2 and rc["x"].tolist() == [1, 1] and sc["x"].tolist() == [0]


def test_categorical_union_and_null():
    real = {"c": obj("a", "b", None, "a", float("nan"))}
    synth = {"c": obj("c", "a", None)}
    rc, sc, sizes = ev.bin_columns(real, synth, {"c": "categorical"})
    assert sizes["c"] == 4                              # a, b, c, NULL
    assert rc["c"].tolist() == [0, 1, 3, 0, 3]
    assert sc["c"].tolist() == [2, 0, 3]


def test_categorical_bools_and_string_arrays():
    rc, sc, sizes = ev.bin_columns({"b": np.array([True, False]), "s": np.array(["x", "y"])},
                                   {"b": obj(False, None), "s": np.array(["y", "z"])},
                                   {"b": "categorical", "s": "categorical"})
    assert sizes == {"b": 3, "s": 4}
    assert sc["b"].tolist() == [1, 2] and sc["s"].tolist() == [1, 2]


def test_temporal_dates_and_datetimes():
    days = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(17)]
    synth = obj(dt.date(2019, 6, 1), dt.datetime(2020, 1, 1, 12), dt.datetime(2020, 1, 9),
                "2020-01-09", dt.datetime(2020, 1, 9, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
                dt.date(2021, 1, 1), None)
    rc, sc, sizes = ev.bin_columns({"d": obj(*days)}, {"d": synth}, {"d": "temporal"})
    assert sizes["d"] == 17
    assert rc["d"].tolist() == list(range(16)) + [15]
    # before the range, mid-day of the first, the 9th as date / ISO text / 01:00+01:00, after the range, NULL
    assert sc["d"].tolist() == [0, 0, 8, 8, 8, 15, 16]


def test_temporal_timestamps_bin_by_time_of_day():
    real = obj(*(dt.datetime(2020, 1, 1) + dt.timedelta(hours=h) for h in (0, 6, 12, 18, 24)))
    rc, _, sizes = ev.bin_columns({"t": real}, {"t": real[:1]}, {"t": "temporal"}, bins=4)
    assert sizes["t"] == 5 and rc["t"].tolist() == [0, 1, 2, 3, 3]


def test_decimal_is_numeric():
    real = {"m": obj(Decimal("0"), Decimal("1.5"), Decimal("3"), None)}
    synth = {"m": obj(Decimal("1.4"), Decimal("NaN"), Decimal("-1"))}
    rc, sc, sizes = ev.bin_columns(real, synth, {"m": "numeric"}, bins=2)
    assert sizes["m"] == 3
    assert rc["m"].tolist() == [0, 1, 1, 2]
    assert sc["m"].tolist() == [0, 2, 0]


def test_bin_columns_validates():
    with pytest.raises(ValueError, match="different columns"):
        ev.bin_columns({"a": [1]}, {"b": [1]}, {"a": "numeric", "b": "numeric"})
    with pytest.raises(ValueError, match="kind"):
        ev.bin_columns({"a": [1]}, {"a": [1]}, {"a": "text"})
    with pytest.raises(ValueError, match="equal lengths"):
        ev.bin_columns({"a": [1, 2], "b": [1]}, {"a": [1], "b": [1]}, {"a": "numeric", "b": "numeric"})
    with pytest.raises(ValueError, match="bins"):
        ev.bin_columns({"a": [1]}, {"a": [1]}, {"a": "numeric"}, bins=0)


# ---------------------------------------------------------------- marginal TVDs

def correlated_table(rows: int, seed: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    table = {
        "x": x,
        "y": x + rng.normal(scale=0.3, size=rows),
        "sign": np.where(x > 0, "pos", "neg").astype(object),
        "noise": rng.choice(np.array(["a", "b", "c"], dtype=object), size=rows),
    }
    return table, {"x": "numeric", "y": "numeric", "sign": "categorical", "noise": "categorical"}


def test_marginal_tvds_keys_and_way():
    real, kinds = correlated_table(100, 0)
    rc, sc, sizes = ev.bin_columns(real, real, kinds)
    assert list(ev.marginal_tvds(rc, sc, sizes, 1)) == [("x",), ("y",), ("sign",), ("noise",)]
    pairs = ev.marginal_tvds(rc, sc, sizes, 2)
    assert len(pairs) == 6 and ("x", "y") in pairs and ("sign", "noise") in pairs
    with pytest.raises(ValueError):
        ev.marginal_tvds(rc, sc, sizes, 3)


def test_marginal_tvd_of_a_pair_hand_computed():
    real = {"a": obj("u", "u", "v", "v"), "b": obj("s", "t", "s", "t")}
    synth = {"a": obj("u", "u", "v", "v"), "b": obj("s", "s", "t", "t")}
    kinds = {"a": "categorical", "b": "categorical"}
    rc, sc, sizes = ev.bin_columns(real, synth, kinds)
    assert ev.marginal_tvds(rc, sc, sizes, 1) == {("a",): 0.0, ("b",): 0.0}
    # real: uniform over the 4 cells; synthetic: half on (u,s), half on (v,t)
    assert ev.marginal_tvds(rc, sc, sizes, 2) == {("a", "b"): pytest.approx(0.5)}


def test_average_tvd_with_itself_is_zero():
    real, kinds = correlated_table(2000, 1)
    scores = ev.average_tvd(real, real, kinds)
    assert scores["tvd_1way"] == 0.0 and scores["tvd_2way"] == 0.0
    assert len(scores["worst_2way"]) == 5 and all(t == 0.0 for _, t in scores["worst_2way"])


def test_independence_copy_and_baseline():
    real, kinds = correlated_table(20000, 2)
    rng = np.random.default_rng(3)
    shuffled = {column: rng.permutation(values) for column, values in real.items()}
    copy = ev.average_tvd(real, shuffled, kinds)
    assert copy["tvd_1way"] == 0.0                      # a permutation keeps every 1-way marginal
    assert copy["tvd_2way"] > 0.15
    worst = copy["worst_2way"]
    assert [t for _, t in worst] == sorted((t for _, t in worst), reverse=True)
    assert {pair for pair, _ in worst[:3]} == {("x", "y"), ("x", "sign"), ("y", "sign")}

    baseline = ev.independent_baseline(real, kinds, np.random.default_rng(4))
    assert 0 < baseline["tvd_1way"] < 0.02
    assert baseline["tvd_2way"] == pytest.approx(copy["tvd_2way"], abs=0.02)
    assert baseline == ev.independent_baseline(real, kinds, np.random.default_rng(4))


def test_average_tvd_of_a_single_column_has_no_pairs():
    scores = ev.average_tvd({"a": [1, 2]}, {"a": [1, 1]}, {"a": "numeric"})
    assert scores == {"tvd_1way": pytest.approx(0.5), "tvd_2way": None, "worst_2way": []}


# ---------------------------------------------------------------- ML utility

def labelled_table(rows: int, seed: int) -> tuple[dict, dict]:
    """'label' is a deterministic function of x; the other features are noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=rows)
    start = dt.date(2020, 1, 1)
    table = {
        "x": x,
        "z": rng.normal(size=rows),
        "when": np.array([start + dt.timedelta(days=int(d)) for d in rng.integers(0, 365, rows)], dtype=object),
        "color": rng.choice(np.array(["red", "green", "blue", None], dtype=object), size=rows),
        "label": np.where(x > 0.6, "hi", "lo").astype(object),
    }
    return table, {"x": "numeric", "z": "numeric", "when": "temporal", "color": "categorical",
                   "label": "categorical"}


def test_ml_utility_faithful_copy_matches_real():
    real, kinds = labelled_table(4000, 10)
    copy, _ = labelled_table(4000, 11)                  # a fresh draw of the same distribution
    result, color = ev.ml_utility(real, copy, kinds)     # default targets: the last column, then 'color'
    assert color["target"] == "color" and color["classes"] == ["blue", "green", "red"]
    assert color["accuracy_real"] < 0.45                # noise: nothing to learn
    assert result["target"] == "label" and result["classes"] == ["hi", "lo"]
    assert 0.55 < result["accuracy_majority"] < 0.65
    assert result["accuracy_real"] > 0.97
    assert result["accuracy_synthetic"] > 0.97
    assert abs(result["accuracy_synthetic"] - result["accuracy_real"]) < 0.02
    assert result["f1_macro_synthetic"] > 0.97 and result["f1_macro_real"] > 0.97


def test_ml_utility_shuffled_target_is_near_majority():
    real, kinds = labelled_table(4000, 12)
    copy, _ = labelled_table(4000, 13)
    copy["label"] = np.random.default_rng(14).permutation(copy["label"])
    [result] = ev.ml_utility(real, copy, kinds, targets=["label"])
    assert result["accuracy_real"] > 0.97
    assert abs(result["accuracy_synthetic"] - result["accuracy_majority"]) < 0.08
    assert result["accuracy_synthetic"] < result["accuracy_real"] - 0.3


def test_ml_utility_is_deterministic_and_subsamples():
    real, kinds = labelled_table(3000, 15)
    copy, _ = labelled_table(3000, 16)
    first = ev.ml_utility(real, copy, kinds, rng_seed=7, max_rows=1000)
    assert first == ev.ml_utility(real, copy, kinds, rng_seed=7, max_rows=1000)
    assert first[0]["accuracy_synthetic"] > 0.9


def test_ml_utility_skips_null_targets_and_handles_null_features():
    real, kinds = labelled_table(2000, 17)
    copy, _ = labelled_table(2000, 18)
    for table in (real, copy):
        table["label"][::7] = None
        table["x"] = table["x"].astype(object)
        table["x"][::11] = None
    [result] = ev.ml_utility(real, copy, kinds, targets=["label"])
    assert result["classes"] == ["hi", "lo"]
    assert result["accuracy_synthetic"] > 0.85 and result["accuracy_real"] > 0.85


def test_ml_utility_single_synthetic_class_predicts_it():
    real, kinds = labelled_table(2000, 19)
    copy, _ = labelled_table(2000, 20)
    copy["label"] = np.full(2000, "lo", dtype=object)
    [result] = ev.ml_utility(real, copy, kinds, targets=["label"])
    assert result["accuracy_synthetic"] == pytest.approx(result["accuracy_majority"])   # 'lo' is the majority


def test_ml_utility_synthetic_without_labels():
    real, kinds = labelled_table(500, 21)
    copy, _ = labelled_table(500, 22)
    copy["label"] = np.full(500, None, dtype=object)
    [result] = ev.ml_utility(real, copy, kinds, targets=["label"])
    assert result["accuracy_synthetic"] is None and result["f1_macro_synthetic"] is None
    assert result["accuracy_real"] > 0.9


def test_ml_utility_default_targets():
    rng = np.random.default_rng(23)
    rows = 300

    def pick(*values):
        return rng.choice(np.array(values, dtype=object), size=rows)

    table = {
        "five": pick("a", "b", "c", "d", "e"),
        "num": rng.normal(size=rows),
        "two": pick("x", "y"),
        "many": np.array([f"id{i}" for i in range(rows)], dtype=object),   # > 20 values
        "one": pick("only", None),                                          # 1 value
        "three": pick("p", "q", "r"),
        "last": pick("l", "m", "n", "o"),
    }
    kinds = {c: "categorical" for c in table} | {"num": "numeric"}
    assert [r["target"] for r in ev.ml_utility(table, table, kinds)] == ["last", "two", "three"]

    del table["last"]
    table["num2"] = rng.normal(size=rows)                                   # last column not eligible
    kinds["num2"] = "numeric"
    assert [r["target"] for r in ev.ml_utility(table, table, kinds)] == ["two", "three", "five"]

    for bad in ("many", "one", "num"):
        with pytest.raises(ValueError, match="2..20"):
            ev.ml_utility(table, table, kinds, targets=[bad])


# ---------------------------------------------------------------- the Adult census table

def load_adult() -> tuple[dict, dict]:
    with open(ADULT, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    table, kinds = {}, {}
    for i, column in enumerate(header):
        values = [row[i] for row in rows]
        if column in ADULT_NUMERIC:
            table[column] = np.array([np.nan if v == "" else float(v) for v in values])
            kinds[column] = "numeric"
        else:
            table[column] = np.array([None if v == "" else v for v in values], dtype=object)
            kinds[column] = "categorical"
    return table, kinds


@pytest.mark.skipif(not ADULT.exists(), reason=f"Adult data set not found at {ADULT}")
def test_adult_half_sample_vs_independent_baseline():
    table, kinds = load_adult()
    rows = len(table["age"])
    keep = np.random.default_rng(0).choice(rows, rows // 2, replace=False)
    half = {column: values[keep] for column, values in table.items()}

    started = time.perf_counter()
    sample = ev.average_tvd(table, half, kinds)
    baseline = ev.independent_baseline(table, kinds, np.random.default_rng(1))
    [income] = ev.ml_utility(table, half, kinds, targets=["income"])
    elapsed = time.perf_counter() - started
    print(f"\nadult: half-sample 2-way TVD {sample['tvd_2way']:.4f}, independent baseline "
          f"{baseline['tvd_2way']:.4f}; income {income}; {elapsed:.1f} s")

    assert sample["tvd_2way"] < 0.02
    assert baseline["tvd_2way"] > 0.04
    assert baseline["worst_2way"][0][0] == ("education", "education-num")   # one determines the other
    assert income["classes"] == ["<=50K", ">50K"]
    assert income["accuracy_real"] > income["accuracy_majority"] + 0.05
    assert income["accuracy_synthetic"] > income["accuracy_majority"] + 0.05
    assert abs(income["accuracy_synthetic"] - income["accuracy_real"]) < 0.03
