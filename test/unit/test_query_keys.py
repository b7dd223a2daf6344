"""BI group keys, filters and aggregates in the analyzer and planner, without a database."""


import pytest

from pg_dp.core.errors import DPError
from pg_dp.gateway.analyze import analyze
from pg_dp.gateway.parse import parse_select, pglast
from pg_dp.gateway import plan as planning
from pg_dp.gateway import answer as answering
from pg_dp.core import catalog
from pg_dp.gateway import explain as explaining
from pg_dp.gateway import where


def release(p, rows):
    return answering.present(p, answering.release_core(p, rows))


def col(type_, **kw):
    return dict(dict(type=type_, notnull=False, lower=None, upper=None, public_values=None), **kw)


DAY = 86400


def meta(unit=None):
    # 2021-01-01 is day 7671 after 2000-01-01; 2021-12-31 is day 8035
    return catalog.TableMeta(
        1, "public", "t", "ds", unit, 1, 1, 7,
        {"id": col("integer", notnull=True),
         "d": col("date", notnull=True, lower=7671, upper=8035),
         "dn": col("date"),
         "ts": col("timestamp without time zone", notnull=True, lower=7671 * DAY, upper=8035 * DAY),
         "tz": col("timestamp with time zone", notnull=True, lower=7671 * DAY, upper=8035 * DAY + 3600),
         "age": col("integer", notnull=True, lower=0, upper=99),
         "x": col("numeric", lower=-5, upper=37.5),
         "f": col("double precision", notnull=True, lower=0, upper=1),
         "r": col("real", lower=0, upper=1),
         "n": col("integer"),
         "city": col("text"),
         "g": col("text", notnull=True, public_values=["a", "b"])})


def plan_of(sql, m=None, zone="UTC", epsilon=1.0):
    return planning.make_plan(analyze(parse_select(sql)), m or meta(), epsilon, 1e-6, zone)


def refused(sql, sqlstate, m=None):
    with pytest.raises(DPError) as e:
        plan_of(sql, m)
    assert e.value.sqlstate == sqlstate and e.value.hint, (e.value.sqlstate, e.value.message)
    return e.value


def keys_of(p, i=0):
    return [k[i] for k in p.public_keys]


# --- key sets and types -------------------------------------------------------------------------

def test_date_trunc_month_of_a_date_is_timestamptz_with_every_month():
    p = plan_of("SELECT date_trunc('month', d) AS m, count(*) FROM t GROUP BY 1")
    assert p.columns[0] == ("m", "timestamp with time zone")
    assert keys_of(p) == [f"2021-{m:02d}-01 00:00:00" for m in range(1, 13)]
    assert not p.zone_dependent         # computed on the date; the analyst's backend reads local midnight


@pytest.mark.parametrize("sql, typ, first, count", [
    ("SELECT CAST(date_trunc('month', d) AS date), count(*) FROM t GROUP BY 1", "date", "2021-01-01", 12),
    ("SELECT date_trunc('quarter', d)::date, count(*) FROM t GROUP BY 1", "date", "2021-01-01", 4),
    ("SELECT date_trunc('year', ts), count(*) FROM t GROUP BY 1", "timestamp without time zone",
     "2021-01-01 00:00:00", 1),
    ("SELECT date_trunc('week', d), count(*) FROM t GROUP BY 1", "timestamp with time zone",
     "2020-12-28 00:00:00", 53),
    ("SELECT date_trunc('DAY', ts), count(*) FROM t GROUP BY 1", "timestamp without time zone",
     "2021-01-01 00:00:00", 365),
    # UTC bounds of a timestamptz: every local month of any zone (one more at each end at most)
    ("SELECT date_trunc('month', tz), count(*) FROM t GROUP BY 1", "timestamp with time zone",
     "2020-12-01 00:00:00", 13),
    ("SELECT EXTRACT(MONTH FROM d), count(*) FROM t GROUP BY 1", "numeric", "1", 12),
    ("SELECT date_part('dow', ts), count(*) FROM t GROUP BY 1", "double precision", "0", 7),
    ("SELECT EXTRACT(YEAR FROM d), count(*) FROM t GROUP BY 1", "numeric", "2021", 1),
    ("SELECT EXTRACT(ISOYEAR FROM d), count(*) FROM t GROUP BY 1", "numeric", "2020", 2),
    ("SELECT CAST(EXTRACT(YEAR FROM d) AS INTEGER), count(*) FROM t GROUP BY 1", "integer", "2021", 1),
    ("SELECT EXTRACT(HOUR FROM tz), count(*) FROM t GROUP BY 1", "numeric", "0", 24),
    ("SELECT date_trunc('month', CAST(ts AS DATE)), count(*) FROM t GROUP BY 1", "timestamp with time zone",
     "2021-01-01 00:00:00", 12),
    ("SELECT floor(age / 10) * 10, count(*) FROM t GROUP BY 1", "double precision", "0", 10),
    ("SELECT floor(x / 10.0) * 10.0, count(*) FROM t GROUP BY 1", "numeric", "-10.0", 6),       # and NULL
    ("SELECT floor(x / 10) * 10, count(*) FROM t GROUP BY 1", "numeric", "-10", 6),
    ("SELECT floor((age - 0.0) / 12.5) * 12.5 + 0.0, count(*) FROM t GROUP BY 1", "numeric", "0.0", 8),
    ("SELECT 5 * floor(f / 0.25), count(*) FROM t GROUP BY 1", "double precision", "0", 5),
    ("SELECT width_bucket(x, 0, 30, 3), count(*) FROM t GROUP BY 1", "integer", "0", 6),
    ("SELECT width_bucket(r, 0, 1, 4), count(*) FROM t GROUP BY 1", "integer", "0", 7),
    ("SELECT CASE WHEN age < 18 THEN 'minor' WHEN age < 65 THEN 'adult' ELSE 'senior' END, count(*)"
     " FROM t GROUP BY 1", "text", "minor", 3),
    ("SELECT CASE WHEN city = 'Paris' THEN 1 WHEN city LIKE 'L%' THEN 2 END, count(*) FROM t GROUP BY 1",
     "integer", "1", 3),
])
def test_public_key_sets_and_native_types(sql, typ, first, count):
    p = plan_of(sql)
    assert p.columns[0][1] == typ
    assert keys_of(p)[0] == first and len(p.public_keys) == count, keys_of(p)[:5]
    assert p.selection_epsilon == 0         # public: no partition selection, nothing spent on it


def test_nullable_columns_add_a_null_key_and_case_without_else_too():
    p = plan_of("SELECT width_bucket(x, 0, 30, 3) AS b, count(*) FROM t GROUP BY b")
    assert keys_of(p) == ["0", "1", "2", "3", "4", None]
    p = plan_of("SELECT CASE WHEN age < 18 THEN 'minor' END, count(*) FROM t GROUP BY 1")
    assert keys_of(p) == ["minor", None]
    note = explaining.explain(p)[0]["note"]
    assert "every CASE result" in note and "NULL" in note


def test_without_bounds_temporal_keys_use_partition_selection():
    p = plan_of("SELECT date_trunc('month', dn), count(*) FROM t GROUP BY 1")
    assert p.public_keys is None and p.selection_epsilon > 0
    # the value is still clamped (years 1..9999): no cast or truncation can leave its type's range
    assert "CAST('0001-01-01' AS pg_catalog.date)" in p.sql and "CAST('9999-12-31' AS pg_catalog.date)" in p.sql


def test_group_by_position_alias_and_expression_are_one_key():
    sqls = ["SELECT date_trunc('month', d) AS m, count(*) FROM t GROUP BY 1",
            "SELECT date_trunc('month', d) AS m, count(*) FROM t GROUP BY m",
            "SELECT date_trunc('month', d) AS m, count(*) FROM t GROUP BY date_trunc('month', d)",
            "SELECT date_trunc('month', \"public\".\"t\".\"d\") AS m, count(*) FROM public.t "
            "GROUP BY date_trunc('month', public.t.d) ORDER BY date_trunc('month', public.t.d)"]
    plans = [plan_of(s) for s in sqls]
    assert len({p.sql for p in plans}) == 1 and all(p.public_keys == plans[0].public_keys for p in plans)


def test_default_column_names_are_postgresqls():
    p = plan_of("SELECT date_trunc('month', d), EXTRACT(YEAR FROM d), date_part('month', d), floor(age / 10) * 10,"
                " width_bucket(age, 0, 100, 10), CASE WHEN age < 5 THEN 'a' END, CAST(date_trunc('year', d) AS date),"
                " count(*) FROM t GROUP BY 1, 2, 3, 4, 5, 6, 7")
    assert [c[0] for c in p.columns] == ["date_trunc", "extract", "date_part", "?column?", "width_bucket", "case",
                                         "date_trunc", "count"]


def test_timestamptz_keys_depend_on_the_zone_and_are_cached_per_zone():
    a = plan_of("SELECT date_trunc('month', tz), count(*) FROM t GROUP BY 1", zone="Europe/Paris")
    b = plan_of("SELECT date_trunc('month', tz), count(*) FROM t GROUP BY 1", zone="Asia/Tokyo")
    assert a.zone_dependent and a.cache_identity() != b.cache_identity() and a.key_set != b.key_set
    c = plan_of("SELECT date_trunc('month', d), count(*) FROM t GROUP BY 1", zone="Europe/Paris")
    d = plan_of("SELECT date_trunc('month', d), count(*) FROM t GROUP BY 1", zone="Asia/Tokyo")
    assert c.cache_identity() == d.cache_identity()
    assert "in time zone Europe/Paris" in explaining.explain(a)[0]["note"]


def test_release_matches_exact_keys_by_value():
    """PostgreSQL prints a float8 bin as 20 and Python as 20.0: one key, released once."""
    p = plan_of("SELECT floor(age / 10) * 10 AS b, count(*) AS n FROM t GROUP BY 1", epsilon=50.0)
    rows = release(p, [("20", 500, 500), ("90", 7, 7)])
    assert [r[0] for r in rows] == [str(v) for v in range(0, 100, 10)]
    got = {r[0]: r[1] for r in rows}
    assert abs(got["20"] - 500) < 3 and abs(got["90"] - 7) < 3 and abs(got["50"]) < 3
    p = plan_of("SELECT floor(x / 10.0) * 10.0 AS b, count(*) AS n FROM t GROUP BY 1", epsilon=50.0)
    rows = release(p, [("10.0", 300, 300)])
    assert {r[0]: r[1] for r in rows}["10.0"] > 290


# --- refusals -----------------------------------------------------------------------------------

@pytest.mark.parametrize("sql, sqlstate", [
    ("SELECT date_trunc('hour', d), count(*) FROM t GROUP BY 1", "0A000"),
    ("SELECT date_trunc('month', d, 'UTC'), count(*) FROM t GROUP BY 1", "0A000"),
    ("SELECT date_trunc('month', age), count(*) FROM t GROUP BY 1", "42883"),
    ("SELECT EXTRACT(HOUR FROM d), count(*) FROM t GROUP BY 1", "0A000"),      # fails on each row natively
    ("SELECT EXTRACT(EPOCH FROM tz), count(*) FROM t GROUP BY 1", "0A000"),
    ("SELECT date_trunc('month', d)::text, count(*) FROM t GROUP BY 1", "0A000"),
    ("SELECT floor(n / 10) * 10, count(*) FROM t GROUP BY 1", "22023"),         # no bounds: could overflow
    ("SELECT floor(age / 0) * 0, count(*) FROM t GROUP BY 1", "22023"),
    ("SELECT floor(age / -2) * 2, count(*) FROM t GROUP BY 1", "22023"),
    ("SELECT floor(r / 2) * 2, count(*) FROM t GROUP BY 1", "42883"),
    ("SELECT floor(city / 2) * 2, count(*) FROM t GROUP BY 1", "42883"),
    ("SELECT age + 1, count(*) FROM t GROUP BY 1", "0A000"),
    ("SELECT width_bucket(age, 0, 0, 3), count(*) FROM t GROUP BY 1", "22023"),
    ("SELECT width_bucket(age, 0, 10, 0), count(*) FROM t GROUP BY 1", "22023"),
    ("SELECT width_bucket(age, 0, n, 3), count(*) FROM t GROUP BY 1", "0A000"),
    ("SELECT CASE WHEN age < 5 THEN city END, count(*) FROM t GROUP BY 1", "0A000"),
    ("SELECT CASE WHEN 1/(age-5) > 0 THEN 'a' END, count(*) FROM t GROUP BY 1", "0A000"),
    ("SELECT CASE WHEN age < 5 THEN 'a' ELSE 1 END, count(*) FROM t GROUP BY 1", "42804"),
    ("SELECT date_trunc('month', d) AS d, count(*) FROM t GROUP BY d", None),   # the column, natively
    ("SELECT date_trunc('month', d) AS ts, count(*) FROM t GROUP BY ts", "42702"),
    ("SELECT date_trunc('month', d), count(*) FROM t", "0A000"),
    ("SELECT count(DISTINCT city) FROM t", "0A000"),
])
def test_refusals_name_the_part_and_hint(sql, sqlstate):
    if sqlstate is None:        # GROUP BY d names the column d: date_trunc(d) is then not a key
        with pytest.raises(DPError):
            plan_of(sql)
        return
    e = refused(sql, sqlstate)
    if "min(" in sql or "max(" in sql:
        assert "percentile_cont(0.01)" in e.hint and "percentile_cont(0.99)" in e.hint


# --- filters ------------------------------------------------------------------------------------

@pytest.mark.parametrize("where, fragment", [
    ("city LIKE 'Pa%'", "\"city\" OPERATOR(pg_catalog.~~) CAST('Pa%' AS pg_catalog.text)"),
    ("city ILIKE 'pa%'", "OPERATOR(pg_catalog.~~*)"),
    ("city NOT LIKE 'Pa%'", "OPERATOR(pg_catalog.!~~)"),
    ("city NOT ILIKE 'pa%'", "OPERATOR(pg_catalog.!~~*)"),
    ("lower(city) = 'paris'", "pg_catalog.lower(\"city\") OPERATOR(pg_catalog.=) 'paris'"),
    ("upper(city) LIKE 'P%'", "pg_catalog.upper(\"city\") OPERATOR(pg_catalog.~~)"),
    ("COALESCE(city, 'none') = 'none'", "COALESCE(\"city\", 'none')"),
    ("COALESCE(n, 0) > 3", "COALESCE(\"n\", 0) OPERATOR(pg_catalog.>) 3"),
    ("COALESCE(n, 0.5) > 3", "COALESCE(\"n\", 0.5)"),
    ("lower(city) IS NULL", "(pg_catalog.lower(\"city\") IS NULL)"),
    ("CAST(ts AS DATE) >= DATE '2021-06-01'", "CAST(\"ts\" AS pg_catalog.date) OPERATOR(pg_catalog.>=)"),
    ("d >= TO_TIMESTAMP('2021-01-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US')",
     "\"d\" OPERATOR(pg_catalog.>=) CAST(pg_catalog.to_timestamp(CAST('2021-01-01 00:00:00.000000' AS"
     " pg_catalog.text), CAST('YYYY-MM-DD HH24:MI:SS.US' AS pg_catalog.text)) AS pg_catalog.timestamp)"),
    ("tz >= timestamp with time zone '2021-01-01 00:00:00.000Z'",
     "\"tz\" OPERATOR(pg_catalog.>=) CAST('2021-01-01 00:00:00.000Z' AS pg_catalog.timestamptz)"),
    ("ts >= timestamp '2021-01-01 00:00:00.000'", "CAST('2021-01-01 00:00:00.000' AS pg_catalog.timestamp)"),
    ("d IN (DATE '2021-01-01', TIMESTAMPTZ '2021-01-02 00:00+00')", "ANY (ARRAY["),
])
def test_filters_bi_tools_write(where, fragment):
    p = plan_of(f"SELECT count(*) FROM t WHERE {where}")
    assert fragment in p.sql, p.sql


def test_to_timestamp_is_evaluated_before_the_charge():
    p = plan_of("SELECT count(*) FROM t WHERE tz < to_timestamp('2021-13-01', 'YYYY-MM-DD')")
    assert where.constant_checks(p) == [
        "SELECT pg_catalog.to_timestamp(CAST('2021-13-01' AS pg_catalog.text), CAST('YYYY-MM-DD' AS pg_catalog.text))"]
    assert p.zone_dependent


@pytest.mark.parametrize("where, sqlstate", [
    ("city LIKE 'Pa\\'", "22025"),             # PostgreSQL fails only when a row is matched that far
    ("city LIKE city", "0A000"),
    ("city LIKE 'a' ESCAPE '#'", "0A000"),
    ("age LIKE '1%'", "42883"),
    ("lower(age) = 'a'", "42883"),
    ("COALESCE(x, 1.5::float8) > 1", "42804"),  # numeric -> float8 would cast every row
    ("COALESCE(city, 1) = 'a'", "42804"),
    ("COALESCE(age, 'abc') = 1", "22P02"),
    ("COALESCE(age, n) = 1", "0A000"),
    ("CAST(age AS DATE) > '2021-01-01'", "42804"),
    ("CAST(city AS integer) > 1", "0A000"),
    ("to_timestamp(city, 'YYYY') > tz", "0A000"),
    ("length(city) > 3", "0A000"),
])
def test_attack_fallible_filters_refused(where, sqlstate):
    refused(f"SELECT count(*) FROM t WHERE {where}", sqlstate)


def test_like_pattern_with_escaped_backslashes_is_allowed():
    p = plan_of("SELECT count(*) FROM t WHERE city LIKE 'a\\\\%'")
    assert "~~" in p.sql


# --- the security rule for keys: nothing a row holds can make the rewrite fail ----------------------

def test_attack_key_values_are_clamped_and_nulls_stay_null():
    p = plan_of("SELECT date_trunc('month', d), floor(age / 10) * 10, count(*) FROM t GROUP BY 1, 2")
    assert ("(CASE WHEN \"d\" IS NULL THEN NULL ELSE LEAST(GREATEST(\"d\", CAST('2021-01-01' AS pg_catalog.date)),"
            " CAST('2021-12-31' AS pg_catalog.date)) END)") in p.sql
    assert ("(CASE WHEN \"age\" IS NULL THEN NULL ELSE LEAST(GREATEST(\"age\", CAST(0 AS pg_catalog.int4)),"
            " CAST(99 AS pg_catalog.int4)) END)") in p.sql
    # the generated statement is one SELECT that PostgreSQL's parser reads back
    assert len(pglast.parse_sql(p.sql)) == 1


def test_attack_width_bucket_nan_goes_to_the_last_bucket_instead_of_failing():
    p = plan_of("SELECT width_bucket(f, 0, 1, 4), count(*) FROM t GROUP BY 1")
    assert "WHEN \"f\" OPERATOR(pg_catalog.=) CAST('NaN' AS pg_catalog.float8) THEN 5" in p.sql


def test_attack_bins_that_overflow_within_the_bounds_refused():
    m = meta()
    m.columns["big"] = col("bigint", lower=-2**62, upper=2**62)
    plan_of("SELECT floor(big / 1) * 4, count(*) FROM t GROUP BY 1", m)    # floor(bigint) is float8: no overflow
    refused("SELECT floor((big - 9000000000000000000) / 1) * 1, count(*) FROM t GROUP BY 1", "22003", m)
    m.columns["huge"] = col("double precision", lower=0, upper=1e299)
    refused("SELECT floor(huge / 1e-10) * 1e-10, count(*) FROM t GROUP BY 1", "22003", m)


def test_attack_numeric_clamp_keeps_null_out_of_the_aggregate():
    """GREATEST(NULL, 0) is 0: without the NULL test an avg of a numeric column counted its NULLs."""
    p = plan_of("SELECT avg(x) FROM t")
    assert "CASE WHEN \"x\" IS NULL THEN NULL ELSE LEAST(GREATEST(\"x\"" in p.sql


# --- aggregates ---------------------------------------------------------------------------------

def test_count_distinct_of_the_privacy_unit_counts_units():
    p = plan_of("SELECT g, count(DISTINCT id) FROM t GROUP BY g", meta(unit="id"))
    assert p.measurements[0].func == "count_distinct" and 'pg_catalog.count(DISTINCT "id")' in p.sql
    assert p.columns[1] == ("count", "bigint")


def test_population_variance_and_stddev():
    # epsilon 1e7 (2.5e6 per aggregate, a third of it per moment): the noise is far below the
    # tolerances (each holds but with probability below 1e-12)
    p = plan_of("SELECT var_pop(age), stddev_pop(age), var_samp(age), stddev_samp(age) FROM t", epsilon=1e7)
    assert [m.func for m in p.measurements] == ["var_pop", "stddev_pop", "var", "stddev"]
    # 1000 rows with ages 0..9 each 100 times: population variance 8.25, sample 8.25 * 1000/999
    from pg_dp.dp import mechanisms
    gexp, lo, hi = mechanisms.grid(0.0, 99.0)
    units = [v * 2 ** -gexp for v in range(10)]
    s1, s2 = int(sum(units) * 100), int(sum(u * u for u in units) * 100)
    state = f"(1000,{s1},{s2},{lo},{hi},{gexp},0,0)"
    row = release(p, [(1000, state, state, state, state)])[0]
    assert abs(row[0] - 8.25) < 0.5 and abs(row[1] - 8.25 ** 0.5) < 0.1
    assert abs(row[2] - 8.25 * 1000 / 999) < 0.5


def test_released_sums_respect_the_sign_of_the_bounds():
    """Post-processing: a sum of values in [0, 99] is never negative, of values in [-5, 0] never positive.
    200 empty groups at a small epsilon: without the clamp about half the sums are negative."""
    m = meta()
    m.columns["neg"] = col("integer", lower=-5, upper=0)
    p = plan_of("SELECT width_bucket(age, 0, 100, 198) AS b, sum(age) AS s, sum(neg) AS t FROM t GROUP BY 1",
                m, epsilon=0.2)
    rows = release(p, [])
    assert len(rows) == 200
    assert all(r[1] >= 0 and r[2] <= 0 for r in rows)
    assert sum(1 for r in rows if r[1] == 0) > 40      # binomial(200, 1/2) below 40: p < 1e-18
    assert "never below 0" in explaining.explain(p)[1]["note"]


@pytest.mark.statistical
def test_count_distinct_noise_has_unit_sensitivity():
    """count(DISTINCT unit): a unit changes each group's count by at most one, whatever the rows it
    has (k = 5 here), so the noise is discrete Laplace of scale g / eps (g: groups per unit).  The
    G test accepts that scale (failure probability 1e-12) and rejects 0.7x and 1.3x -- and the
    k-fold scale of a count of rows by far."""
    import numpy as np
    import stats_helpers as H

    m = meta(unit="id")
    m.max_rows_per_unit, m.max_groups_per_unit = 5, 2
    p = plan_of("SELECT width_bucket(age, 0, 100, 9998) AS b, count(DISTINCT id) AS u FROM t GROUP BY 1",
                m, epsilon=1.0)
    assert len(p.public_keys) == 10000
    exact = [(str(i), 10_000, 1000) for i in range(10000)]
    draws = np.concatenate([[r[1] - 1000 for r in release(p, exact)] for _ in range(3)])
    b = 2 / p.measurements[0].budget           # its share of epsilon, less the bounds estimate's
    log10p = H.dlap_gof_with_power(draws, b)
    H.report("count(DISTINCT unit)", log10p)
    assert H.dlap_gof(draws, 5 * b) < H.LOG10_POWER


def test_qualified_and_bare_columns_are_one_key():
    p = plan_of("SELECT date_trunc('month', \"public\".\"t\".\"d\") AS m, count(*) FROM public.t "
                "GROUP BY date_trunc('month', d) ORDER BY date_trunc('month', t.d)")
    assert p.query.group_by == ["date_trunc('month', d)"] and p.query.order_by == [(0, False)]


def test_schema_qualified_columns_with_an_unqualified_from():
    p = plan_of('SELECT count(*) FROM t WHERE "public"."t"."age" > 50')
    assert '"age" OPERATOR(pg_catalog.>) 50' in p.sql
    refused('SELECT count(*) FROM t WHERE "other"."t"."age" > 50', "42P01")
    with pytest.raises(DPError, match="unknown table reference"):
        plan_of('SELECT count(*) FROM t WHERE "public"."u"."age" > 50')


def test_tableau_day_keys_and_measures():
    p = plan_of('SELECT CAST("t"."ts" AS DATE), COUNT(1), SUM(1), SUM(CAST("t"."age" AS BIGINT)),'
                ' AVG(CAST(x AS DOUBLE PRECISION)) FROM "public"."t" "t" GROUP BY 1')
    assert p.columns[0] == ("ts", "date") and len(p.public_keys) == 365 and p.public_keys[0] == ("2021-01-01",)
    assert [m.func for m in p.measurements] == ["count", "count", "sum", "avg"]
    assert [m.column for m in p.measurements] == [None, None, "age", "x"]
    # the analyst's cast is never run: the column is clamped, then summed exactly
    assert "CAST(\"x\" AS pg_catalog.float8)" not in p.sql.split("exact_sum(")[0]
    refused("SELECT SUM(2) FROM t", "0A000")
    refused("SELECT SUM(CAST(city AS integer)) FROM t", "0A000")


# --- keys BI tools write over other keys (issue 19) ---------------------------------------------

def test_epoch_buckets_and_to_timestamp_of_them():
    p = plan_of("SELECT floor(extract(epoch FROM ts) / 86400) * 86400 AS b, count(*) FROM t GROUP BY 1")
    assert p.columns[0] == ("b", "numeric") and len(p.public_keys) == 365
    assert keys_of(p)[:2] == ["1609459200", "1609545600"]          # 2021-01-01, 2021-01-02 UTC
    p = plan_of("SELECT to_timestamp(floor(extract(epoch FROM ts) / 3600) * 3600) AS h, count(*) FROM t GROUP BY 1")
    assert p.columns[0] == ("h", "timestamp with time zone") and not p.zone_dependent
    assert keys_of(p)[:2] == ["2021-01-01 00:00:00+00", "2021-01-01 01:00:00+00"]
    p = plan_of("SELECT floor(date_part('epoch', d) / 604800) * 604800 AS w, count(*) FROM t GROUP BY 1")
    assert p.columns[0] == ("w", "double precision")
    refused("SELECT floor(extract(epoch FROM ts) / 1.5) * 1.5, count(*) FROM t GROUP BY 1", "0A000")
    refused("SELECT floor(extract(epoch FROM city) / 60) * 60, count(*) FROM t GROUP BY 1", "42883")


def test_to_char_of_a_time_key():
    p = plan_of("SELECT to_char(date_trunc('month', d), 'YYYY-MM') AS m, count(*) FROM t GROUP BY 1")
    assert p.columns[0] == ("m", "text") and keys_of(p) == [f"2021-{m:02d}" for m in range(1, 13)]
    p = plan_of("SELECT to_char(date_trunc('month', ts), 'FMMonth YYYY') AS m, count(*) FROM t GROUP BY 1")
    assert keys_of(p)[:2] == ["January 2021", "February 2021"]
    p = plan_of("SELECT to_char(date_trunc('quarter', ts), 'YYYY-\"Q\"Q') AS q, count(*) FROM t GROUP BY 1")
    assert keys_of(p) == ["2021-Q1", "2021-Q2", "2021-Q3", "2021-Q4"]
    p = plan_of("SELECT to_char(ts, 'TZ') AS z, count(*) FROM t GROUP BY 1")       # no public set: selection
    assert p.public_keys is None and p.selection_epsilon > 0


def test_coalesce_nullif_and_text_functions_of_a_key():
    m = meta()
    m.columns["g"] = col("text", public_values=["a", "b"])                       # nullable: NULL is a key
    p = plan_of("SELECT COALESCE(g, 'none') AS g2, count(*) FROM t GROUP BY 1", m)
    assert keys_of(p) == ["a", "b", "none"]
    p = plan_of("SELECT NULLIF(g, 'a') AS g2, count(*) FROM t GROUP BY 1", m)
    assert keys_of(p) == [None, "b"]
    p = plan_of("SELECT upper(g) AS u, count(*) FROM t GROUP BY 1", m)
    assert keys_of(p) == ["A", "B", None]
    p = plan_of("SELECT substring(g, 1, 1) AS s, count(*) FROM t GROUP BY 1", m)
    assert keys_of(p) == ["a", "b", None]
    refused("SELECT COALESCE(g, 3) AS g2, count(*) FROM t GROUP BY 1", "42804", m)
    refused("SELECT substring(g, 1, -1) AS s, count(*) FROM t GROUP BY 1", "22011", m)
    m.columns["g"] = col("text", public_values=["é", "b"])
    assert plan_of("SELECT lower(g) AS l, count(*) FROM t GROUP BY 1", m).public_keys is None   # locale-dependent
