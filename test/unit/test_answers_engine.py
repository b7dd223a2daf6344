"""The parts of trustworthy answers that need no server: key sets cut by the WHERE (keysets.py), the
contribution estimate's choices and its share dropped (contributions.py), the cache identity of
spellings PostgreSQL treats as equal, and refusals that come before any charge (issue 17, item 11)."""

from decimal import Decimal

import pytest

from pg_dp.core.catalog import TableMeta
from pg_dp.core.errors import DPError
from pg_dp.dp.release import Noise
from pg_dp.gateway import contributions, plan as planning
from pg_dp.gateway.analyze import analyze
from pg_dp.gateway.parse import parse_select

DAY = 86400


def meta(unit=None, rows=None, groups=None):
    cols = {
        "id": dict(type="integer", notnull=True, lower=None, upper=None, public_values=None),
        "d": dict(type="date", notnull=True, lower=Decimal(8766), upper=Decimal(9497), public_values=None),
        "ts": dict(type="timestamp without time zone", notnull=False, lower=Decimal(8766 * DAY),
                   upper=Decimal(9497 * DAY), public_values=None),
        "channel": dict(type="text", notnull=False, lower=None, upper=None, public_values=["phone", "store", "web"]),
        "amount": dict(type="numeric", notnull=True, lower=Decimal(0), upper=Decimal(500), public_values=None),
        "n": dict(type="integer", notnull=True, lower=Decimal(0), upper=Decimal(99), public_values=None),
    }
    return TableMeta(1, "public", "t", "ds", unit, rows, groups, 1, cols)


def plan_of(sql, m=None, epsilon=1.0, **kw):
    return planning.make_plan(analyze(parse_select(sql)), m or meta(), epsilon, 1e-6, **kw)


def keys(sql, m=None, timezone="UTC"):
    return [k[0] for k in plan_of(sql, m, timezone=timezone).public_keys]


# ---------------------------------------------------------------------- key sets follow the WHERE

def test_a_date_range_keeps_the_months_inside_it():
    # bounds 2024-01-01 .. 2026-01-01: 25 months without a filter
    assert len(keys("SELECT date_trunc('month', d), count(*) FROM t GROUP BY 1")) == 25
    inside = keys("SELECT date_trunc('month', d), count(*) FROM t WHERE d >= '2025-01-01' AND d < '2026-01-01' "
                  "GROUP BY 1")
    assert inside == [f"2025-{m:02d}-01 00:00:00" for m in range(1, 13)]
    # an exclusive upper bound on the first day of a month: that month holds no row
    assert keys("SELECT date_trunc('month', d), count(*) FROM t WHERE d < '2026-01-01' GROUP BY 1")[-1] \
        == "2025-12-01 00:00:00"
    # inclusive: it does
    assert keys("SELECT date_trunc('month', d), count(*) FROM t WHERE d <= '2026-01-01' GROUP BY 1")[-1] \
        == "2026-01-01 00:00:00"


def test_superset_and_metabase_constants_cut_the_key_set():
    for where in ["d >= TO_TIMESTAMP('2024-07-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US') AND "
                  "d < TO_TIMESTAMP('2024-10-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US')",
                  "d BETWEEN CAST('2024-07-01' AS DATE) AND '2024-09-30'::date",
                  "ts >= timestamp '2024-07-01 00:00:00.000' AND ts < timestamp '2024-10-01 00:00:00.000'"]:
        column = "ts" if where.startswith("ts") else "d"
        assert keys(f"SELECT date_trunc('month', {column}), count(*) FROM t WHERE {where} GROUP BY 1") == \
            ["2024-07-01 00:00:00", "2024-08-01 00:00:00", "2024-09-01 00:00:00"], where


def test_a_range_beyond_the_bounds_keeps_the_bucket_of_the_bound():
    """Keys are computed on the clamped column: rows after the upper bound count in its bucket."""
    assert keys("SELECT date_trunc('month', d), count(*) FROM t WHERE d >= '2030-01-01' GROUP BY 1") == \
        ["2026-01-01 00:00:00"]


def test_in_lists_equalities_and_nulls():
    assert keys("SELECT channel, count(*) FROM t WHERE channel IN ('web') GROUP BY channel") == ["web"]
    assert keys("SELECT channel, count(*) FROM t WHERE channel = 'web' OR channel = 'phone' GROUP BY channel") \
        == ["phone", "web"]
    assert keys("SELECT channel, count(*) FROM t GROUP BY channel") == ["phone", "store", "web", None]
    assert keys("SELECT channel, count(*) FROM t WHERE channel IS NOT NULL GROUP BY channel") == \
        ["phone", "store", "web"]
    assert keys("SELECT channel, count(*) FROM t WHERE channel IS NULL GROUP BY channel") == [None]
    assert keys("SELECT channel, count(*) FROM t WHERE channel NOT IN ('web') GROUP BY channel") == \
        ["phone", "store"]
    # conditions on other columns, and ORs across columns, say nothing about the key
    assert len(keys("SELECT channel, count(*) FROM t WHERE n > 3 OR channel = 'web' GROUP BY channel")) == 4


def test_bins_within_a_range():
    assert keys("SELECT floor(n / 10) * 10, count(*) FROM t WHERE n >= 20 AND n < 50 GROUP BY 1") == \
        ["20", "30", "40"]
    assert keys("SELECT width_bucket(n, 0, 100, 10), count(*) FROM t WHERE n >= 55 GROUP BY 1") == \
        [str(i) for i in range(6, 12)]


# ---------------------------------------------------------------------- the contribution estimate

def exact_estimate(units_by_cell, m_bins, rows=(256, 1024)):
    """An Estimate made of exact counts (no noise) to test the post-processing."""
    g_edges, a_edges = contributions.edges(rows[1]), contributions.fine_edges(rows[0])
    ga = [[0] * len(a_edges) for _ in g_edges]
    for (gi, ai), n in units_by_cell.items():
        ga[gi][ai] = n
    return contributions.Estimate(g_edges, a_edges, contributions.edges(rows[0]), ga, 1e-9, "laplace",
                                  g_index=0, m_index=0)


def test_the_share_dropped_is_what_random_groups_drop():
    # 20,000 units with 10 groups (bin (8, 12], representative 10.5) of one row (A = 1): g = 4 keeps 4 of 10.5
    est = exact_estimate({(6, 0): 20000}, {0: 20000})
    assert est.g_edges[6] == 12
    assert est.dropped(20, 4) == pytest.approx(1 - 4 / 10.5)
    assert est.dropped(20, 12) == 0.0
    # two rows per group on average, one kept
    est = exact_estimate({(0, 6): 1000}, {0: 1000})
    assert est.a_edges[6] == 2 and est.dropped(1, 1) == pytest.approx(1 - 1 / 1.875)


def test_the_quantile_bin_reaches_the_quantile_and_no_further():
    """Exponential mechanism with a penalty of one temperature per bin: with a million units the chosen
    bin is never below the 0.9 quantile's, and (probability e^-20 per draw) never 20 bins past it."""
    noise = Noise("gaussian", 0.01)
    counts = [0] * 22
    counts[3], counts[6] = 50_000, 950_000         # 5% of units in bin 3, 95% in bin 6
    for _ in range(50):
        assert 6 <= contributions._quantile_bin(counts, noise) <= 26
    counts = [0] * 22
    counts[2], counts[9] = 200_000, 800_000        # 20% beyond: the 0.9 quantile is bin 9
    assert all(contributions._quantile_bin(counts, noise) >= 9 for _ in range(50))


def test_auto_bounds_under_the_ceilings_and_fixed_ones_kept():
    b = planning.Bounds("auto", 256, 1024, 256, 1024, False, False)
    est = exact_estimate({}, {})
    est.g_index, est.m_index = 6, len(est.m_edges) - 1
    assert est.bounds(b) == (256, 12)                    # k capped at the ceiling
    b = planning.Bounds("auto", 20, 1024, 20, 1024, True, False)
    assert est.bounds(b) == (20, 12)                     # the DBA's fixed rows stay


# ---------------------------------------------------------------------- cache, charge, refusals

def test_date_trunc_spellings_are_one_question():
    base = plan_of("SELECT date_trunc('month', d) AS m, count(*) FROM t GROUP BY date_trunc('month', d)")
    for sql in ["SELECT DATE_TRUNC('MONTH', d) AS __timestamp, COUNT(*) AS cnt FROM t GROUP BY DATE_TRUNC('MONTH', d)",
                "select count(*) as c, date_trunc('month'::text, d) as x from t group by date_trunc('Month', d)",
                "SELECT date_trunc('month', d), count(*) FROM t GROUP BY 1 ORDER BY 1 LIMIT 5"]:
        assert plan_of(sql).cache_identity() == base.cache_identity(), sql
    assert plan_of("SELECT date_trunc('year', d), count(*) FROM t GROUP BY 1").cache_identity() \
        != base.cache_identity()


def test_attack_tiny_epsilon_is_refused_before_the_charge():
    """Before: epsilon 1e-300 was charged, then the release failed ("epsilon is too small for these
    bounds").  Every noise of the plan is calibrated while planning now: the refusal costs nothing."""
    for sql, m in [("SELECT count(*) FROM t", meta()), ("SELECT sum(amount) FROM t", meta()),
                   ("SELECT channel, avg(amount) FROM t GROUP BY channel", meta(unit="id", rows=3, groups=2)),
                   ("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) FROM t", meta())]:
        for accounting in (planning.Accounting(), planning.Accounting("zcdp", Decimal("0.000001"))):
            with pytest.raises(DPError) as e:
                plan_of(sql, m, epsilon=1e-300, accounting=accounting)
            assert "epsilon" in e.value.message, (sql, e.value.message)


def test_filter_drop_downs_cost_nothing_and_distinct_is_group_by():
    p = plan_of("SELECT channel AS channel FROM t GROUP BY channel ORDER BY channel ASC LIMIT 1000")
    assert p.free and p.epsilon == 0 and not p.measurements
    q = plan_of("SELECT DISTINCT channel FROM t")
    assert q.free and q.public_keys == p.public_keys
    # a key without public values: DP partition selection, all of the epsilon
    r = plan_of("SELECT DISTINCT id FROM t", meta(), epsilon=0.5)
    assert not r.free and r.selection_epsilon > 0 and r.epsilon == Decimal("0.5")


def test_min_and_max_are_quantiles_of_the_column_type():
    p = plan_of("SELECT min(n), max(amount) FROM t")
    assert [(m.func, m.q, m.result_type) for m in p.measurements] == [("min", 0.01, "integer"),
                                                                      ("max", 0.99, "numeric")]
