"""Orders within one row (``t1&GT(t1.a,t1.b)``): parsing, counting and the repair that swaps
values instead of dropping rows (pg_dp.synth.dc); no database."""

import math

import numpy as np
import pytest

from pg_dp.core.errors import DPError
from pg_dp.synth import dc as dcm


@pytest.mark.parametrize("text, low, high, strict", [
    ("t1&GT(t1.ship,t1.receipt)", "ship", "receipt", False),     # ship > receipt forbidden: ship <= receipt
    ("t1&GTE(t1.ship,t1.receipt)", "ship", "receipt", True),     # ship < receipt
    ("t1&LT(t1.receipt,t1.ship)", "ship", "receipt", False),
    ("t1&LTE(t1.receipt,t1.ship)", "ship", "receipt", True),
    (" t1 & GT( t1.ship , t1.receipt ) ", "ship", "receipt", False),
])
def test_parse_one_order_within_a_row(text, low, high, strict):
    dc = dcm.parse(text, ["ship", "receipt", "other"])
    assert dc.kind == "row order" and dc.one_row
    assert (dc.key, dc.dependent, dc.strict_key) == (low, high, strict)
    assert dc.text == text.replace(" ", "")
    assert dcm.unsupported(dc) is None


@pytest.mark.parametrize("text, message", [
    ("t1&EQ(t1.a,t1.b)", "only one order"),
    ("t1&GT(t1.a,t1.a)", "only one order"),
    ("t1&GT(t1.a,t1.b)&GT(t1.b,t1.c)", "only one order"),
])
def test_other_constraints_within_a_row_are_refused(text, message):
    dc = dcm.parse(text)
    assert message in dcm.unsupported(dc)
    with pytest.raises(DPError) as e:
        dcm.repair({"a": np.zeros(3), "b": np.zeros(3), "c": np.zeros(3)}, [dc], np.random.default_rng(0))
    assert e.value.sqlstate == "0A000"


def test_parse_errors_within_a_row():
    with pytest.raises(DPError, match='"t1&t2"'):
        dcm.parse("t1&GT(t1.a,t2.b)")
    with pytest.raises(DPError) as e:
        dcm.parse("t1")
    assert e.value.sqlstate == "22023"
    with pytest.raises(DPError) as e:
        dcm.parse("t1&GT(t1.a,t1.zz)", ["a", "b"])
    assert e.value.sqlstate == "42703"


def test_count_rows_breaking_the_order_nulls_never_do():
    dc = dcm.parse("t1&GT(t1.a,t1.b)")
    table = {"a": np.array([1.0, 5.0, 3.0, np.nan, 7.0]), "b": np.array([2.0, 4.0, 3.0, 0.0, np.nan])}
    assert dcm.count_violations(table, dc) == 1
    assert dcm.count_violations(table, dcm.parse("t1&GTE(t1.a,t1.b)")) == 2    # 3 = 3 breaks the strict one


def _table(n, rng):
    return {"a": np.round(rng.uniform(0, 100, n)), "b": np.round(rng.uniform(0, 100, n)),
            "c": np.round(rng.uniform(0, 100, n)), "x": rng.integers(0, 5, n).astype(float)}


@pytest.mark.parametrize("strict", [False, True])
def test_repair_swaps_values_and_keeps_every_row_and_value(strict):
    rng = np.random.default_rng(1)
    table = _table(5000, rng)
    table["a"][:50] = np.nan
    dc = dcm.parse("t1&GTE(t1.a,t1.b)" if strict else "t1&GT(t1.a,t1.b)")
    bounds = {"a": (0.0, 100.0, 1.0), "b": (0.0, 100.0, 1.0)}
    fixed, keep, stats = dcm.repair(table, [dc], rng, bounds=bounds)
    assert keep.all() and stats["dropped_rows"] == 0
    assert dcm.count_violations(fixed, dc) == 0
    a, b = fixed["a"], fixed["b"]
    assert np.isnan(a[:50]).all() and np.array_equal(b[:50], table["b"][:50])     # NULL rows untouched
    assert ((a >= 0) & (a <= 100) | np.isnan(a)).all() and ((b >= 0) & (b <= 100)).all()
    assert np.array_equal(fixed["x"], table["x"])
    if not strict:
        # a swap keeps each row's pair of values: the multiset of all values is the same
        both = np.sort(np.concatenate([table["a"], table["b"]]))
        assert np.array_equal(np.sort(np.concatenate([a, b])), both, equal_nan=True)
    assert stats["constraints"][0]["changed_values"] == int(np.sum(table["a"] > table["b"] - strict))
    assert stats["changed_values"] > 0


def test_repair_a_chain_settles_and_respects_bounds_and_steps():
    rng = np.random.default_rng(2)
    table = _table(4000, rng)
    dcs = [dcm.parse("t1&GTE(t1.a,t1.b)"), dcm.parse("t1&GT(t1.b,t1.c)")]      # a < b <= c
    bounds = {"a": (0.0, 100.0, 1.0), "b": (0.0, 100.0, 1.0), "c": (0.0, 100.0, 1.0)}
    fixed, _, _ = dcm.repair(table, dcs, rng, bounds=bounds)
    assert all(dcm.count_violations(fixed, d) == 0 for d in dcs)
    for k in "abc":
        assert (fixed[k] == np.round(fixed[k])).all() and fixed[k].min() >= 0 and fixed[k].max() <= 100


def test_repair_with_different_bounds_and_floats():
    rng = np.random.default_rng(3)
    n = 3000
    table = {"lo": rng.uniform(5, 50, n), "hi": rng.uniform(0, 20, n)}      # mostly broken
    dc = dcm.parse("t1&GTE(t1.lo,t1.hi)")                                   # lo < hi, floats
    bounds = {"lo": (5.0, 50.0, 0.0), "hi": (0.0, 20.0, 0.0)}
    fixed, _, _ = dcm.repair(table, [dc], rng, bounds=bounds)
    assert dcm.count_violations(fixed, dc) == 0
    assert fixed["lo"].min() >= 5 and fixed["lo"].max() <= 50
    assert fixed["hi"].min() >= 0 and fixed["hi"].max() <= 20
    assert (fixed["lo"] < fixed["hi"]).all()


def test_infeasible_bounds_and_cycles_are_refused():
    rng = np.random.default_rng(4)
    dc = dcm.parse("t1&GTE(t1.a,t1.b)")
    assert not dcm.row_order_feasible(dc, {"a": (10.0, 20.0, 1.0), "b": (0.0, 10.0, 1.0)})
    assert dcm.row_order_feasible(dc, {"a": (9.0, 20.0, 1.0), "b": (0.0, 10.0, 1.0)})
    with pytest.raises(DPError) as e:
        dcm.repair({"a": np.array([15.0]), "b": np.array([5.0])}, [dc], rng,
                   bounds={"a": (10.0, 20.0, 1.0), "b": (0.0, 10.0, 1.0)})
    assert e.value.sqlstate == "23514"
    cycle = [dcm.parse("t1&GTE(t1.a,t1.b)"), dcm.parse("t1&GTE(t1.b,t1.a)")]     # a < b and b < a
    with pytest.raises(DPError) as e:
        dcm.repair({"a": np.array([1.0, 2.0]), "b": np.array([2.0, 1.0])}, cycle, rng,
                   bounds={"a": (0.0, 9.0, 1.0), "b": (0.0, 9.0, 1.0)})
    assert e.value.sqlstate == "23514" and "contradict" in e.value.hint


def test_a_column_in_both_kinds_is_refused():
    dcs = [dcm.parse("t1&GT(t1.a,t1.b)"), dcm.parse("t1&t2&EQ(t1.x,t2.x)&IQ(t1.a,t2.a)")]
    assert "column a" in dcm.conflict(dcs)
    with pytest.raises(DPError) as e:
        dcm.repair({"a": np.zeros(2), "b": np.zeros(2), "x": np.zeros(2)}, dcs, np.random.default_rng(0))
    assert e.value.sqlstate == "0A000"
    assert dcm.conflict([dcs[0], dcm.parse("t1&t2&EQ(t1.x,t2.x)&IQ(t1.c,t2.c)")]) is None


def test_row_orders_next_to_pair_constraints():
    rng = np.random.default_rng(5)
    table = _table(3000, rng)
    dcs = [dcm.parse("t1&t2&EQ(t1.x,t2.x)&IQ(t1.c,t2.c)"), dcm.parse("t1&GT(t1.a,t1.b)")]
    fixed, keep, stats = dcm.repair(table, dcs, rng, bounds={"a": (0.0, 100.0, 1.0), "b": (0.0, 100.0, 1.0)})
    assert keep.all() and all(dcm.count_violations(fixed, d) == 0 for d in dcs)
    assert [c["kind"] for c in stats["constraints"]] == ["fd", "row order"]
    assert not math.isnan(stats["changed_values"])
