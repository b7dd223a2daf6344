"""BI group keys, filters and aggregates in plain SQL and through dp.query, on a real server.

A restricted role (no SELECT on the table) sends the statements BI tools write;
the owner runs the same statements natively, and the DP answers must have the
same columns, types and keys (public key sets: every key, empty ones too), with
values within a bound that fails with probability far below 1e-9 (eps = 10 per
statement: discrete Laplace of scale 0.1 for a count; 30 scales for the rest).
"""

import datetime as dt
import json

import psycopg
import pytest
from datasets import asked_epsilon

EPS = 10


@pytest.fixture(scope="module", autouse=True)
def setup(conn, db):
    conn.execute(f'ALTER DATABASE "{db}" SET session_preload_libraries = \'pg_dp\'')
    conn.execute("""CREATE TABLE orders (id int PRIMARY KEY, created date NOT NULL, placed timestamptz NOT NULL,
                    amount numeric NOT NULL, age int NOT NULL, score float8, city text, name text NOT NULL)""")
    conn.execute("""INSERT INTO orders SELECT g, DATE '2021-01-01' + g % 365,
                    TIMESTAMPTZ '2021-01-01 00:00+00' + (g * 7 % 8760) * INTERVAL '1 hour', g % 500, g % 100,
                    (g % 1000) / 1000.0, CASE WHEN g % 10 = 0 THEN NULL ELSE (ARRAY['Paris','Lyon','Nice'])[1 + g % 3] END,
                    (ARRAY['Alice','bob','Carol','dave'])[1 + g % 4] || g FROM generate_series(1, 20000) g""")
    conn.execute("CREATE ROLE bi_keys LOGIN")
    conn.execute("SELECT dp.protect('orders')")
    conn.execute("SELECT dp.set_bounds('orders', 'created', '2021-01-01', '2021-12-31')")
    conn.execute("SELECT dp.set_bounds('orders', 'placed', '2021-01-01 00:00+00', '2021-12-31 23:00+00')")
    conn.execute("SELECT dp.set_bounds('orders', 'amount', 0, 500)")
    conn.execute("SELECT dp.set_bounds('orders', 'age', 0, 99)")
    conn.execute("SELECT dp.set_bounds('orders', 'score', 0, 1)")
    conn.execute("SELECT dp.grant_budget('bi_keys', 'orders', 100000, 1e-3)")
    # a dataset with a privacy unit and rows that make native PostgreSQL fail
    conn.execute("CREATE TABLE odd (id int, day date NOT NULL, v float8, label text)")
    conn.execute("""INSERT INTO odd SELECT g % 400, DATE '2022-01-01' + g % 30, g % 7, 'row' || g
                    FROM generate_series(1, 4000) g""")
    conn.execute("INSERT INTO odd VALUES (7777, '300000-01-01', 'NaN', 'far'), (7778, '2022-01-05', 1e308, 'big')")
    conn.execute("SELECT dp.protect('odd', privacy_unit => 'id')")
    conn.execute("SELECT dp.set_bounds('odd', 'v', 0, 10)")
    conn.execute("SELECT dp.grant_budget('bi_keys', 'odd', 100000, 1e-3)")
    yield
    conn.execute("DROP OWNED BY bi_keys")
    conn.execute("DROP ROLE bi_keys")


@pytest.fixture
def bi(pg, db):
    with pg.connect(db, user="bi_keys") as c:
        c.execute(f"SET pg_dp.epsilon = {EPS}")
        yield c


def spent(conn, dataset="orders"):
    return asked_epsilon(conn, "bi_keys", dataset)


def scales(bi, sql):
    """Noise scale per output column (dp.explain, free) of counts and sums; None for keys, means, spreads."""
    return [r[1] if r[0] in ("discrete Laplace", "Gaussian") else None
            for r in bi.execute("SELECT mechanism, noise_scale FROM dp.explain(%s, %s)", (sql, EPS)).fetchall()]


def native(conn, sql, zone="UTC"):
    conn.execute(f"SET TimeZone = '{zone}'")
    cur = conn.execute(sql)
    rows = cur.fetchall()
    conn.execute("RESET TimeZone")
    return [d.type_code for d in cur.description], rows


def check_close(nat_rows, dp_rows, key_idx, scale, public=True):
    """Same keys (the DP answer holds every native key; with public keys empty ones too) and values
    within 30 noise scales (counts, sums) or 5% (means and spreads)."""
    nat = {tuple(r[i] for i in key_idx): r for r in nat_rows}
    got = {tuple(r[i] for i in key_idx): r for r in dp_rows}
    assert len(got) == len(dp_rows), "a key is released twice"
    assert set(nat) <= set(got) if public else set(got) <= set(nat), (sorted(nat, key=str), sorted(got, key=str))
    for key, row in got.items():
        for j, value in enumerate(row):
            if j in key_idx:
                continue
            want = nat[key][j] if key in nat else 0
            if scale[j] is not None:
                assert abs(float(value) - float(want or 0)) <= 30 * scale[j], (key, j, value, want)
            else:
                assert abs(float(value) - float(want)) <= 0.05 * abs(float(want)) + 0.5, (key, j, value, want)


def ask_json(bi, sql):
    return [r[0] for r in bi.execute("SELECT * FROM dp.query_json(%s, %s)", (sql, EPS)).fetchall()]


# --- group keys -------------------------------------------------------------------------------

def test_date_trunc_month_every_key_native_types(bi, conn):
    sql = "SELECT date_trunc('month', created) AS m, count(*) FROM orders GROUP BY 1"
    types, nat = native(conn, sql)
    before = spent(conn)
    cur = bi.execute(sql)
    rows = cur.fetchall()
    assert [d.type_code for d in cur.description] == types == [1184, 20]     # timestamptz, bigint
    assert len(rows) == 12 and spent(conn) == before + EPS
    check_close(nat, rows, [0], scales(bi, sql))
    # the same through dp.query: the keys in the statement's own types
    typed = bi.execute("SELECT * FROM dp.query(%s, %s) AS t(m timestamptz, n bigint)", (sql, EPS)).fetchall()
    assert sorted(typed) == sorted(rows)         # the cached answer (same measurement), free


@pytest.mark.parametrize("sql, types", [
    ("SELECT CAST(date_trunc('month', created) AS date) AS m, count(*) FROM orders GROUP BY 1", [1082, 20]),
    ("SELECT date_trunc('quarter', created)::date AS q, count(*) FROM orders GROUP BY q", [1082, 20]),
    ("SELECT date_trunc('week', created) AS w, count(*) FROM orders GROUP BY date_trunc('week', created)",
     [1184, 20]),
    ("SELECT EXTRACT(MONTH FROM created) AS m, count(*) FROM orders GROUP BY 1", [1700, 20]),
    ("SELECT date_part('year', created), count(*) FROM orders GROUP BY 1", [701, 20]),
    ("SELECT EXTRACT(DOW FROM placed), count(*) FROM orders GROUP BY 1", [1700, 20]),
    ("SELECT floor(age / 10) * 10 AS decade, count(*) FROM orders GROUP BY 1", [701, 20]),
    ("SELECT floor(amount / 50.0) * 50.0, sum(age) FROM orders GROUP BY 1", [1700, 20]),
    ("SELECT width_bucket(score, 0, 1, 4) AS b, count(*) FROM orders GROUP BY b", [23, 20]),
    ("SELECT CASE WHEN age < 18 THEN 'minor' WHEN age < 65 THEN 'adult' ELSE 'senior' END AS band, count(*)"
     " FROM orders GROUP BY 1", [25, 20]),
])
def test_bi_group_keys_match_native(bi, conn, sql, types):
    want_types, nat = native(conn, sql)
    cur = bi.execute(sql)
    rows = cur.fetchall()
    assert [d.type_code for d in cur.description] == want_types == types
    check_close(nat, rows, [0], scales(bi, sql))
    # through dp.query: the same columns; JSON gives the keys as text or numbers
    answer = ask_json(bi, sql)
    assert len(answer) == len(rows) and set(answer[0]) == {d.name for d in cur.description}


def test_empty_public_keys_are_released(bi, conn):
    """Months the WHERE rules out on the key's own column are not released (keysets.py); empty months
    it leaves are (here: a filter on another column that no row passes)."""
    sql = "SELECT date_trunc('month', created)::date AS m, count(*) AS n FROM orders WHERE created < '2021-03-01' GROUP BY 1"
    rows = dict(bi.execute(sql).fetchall())
    assert sorted(rows) == [dt.date(2021, 1, 1), dt.date(2021, 2, 1)]
    assert all(abs(n - 20000 / 365 * (31 if m.month == 1 else 28)) < 200 for m, n in rows.items())
    sql = "SELECT date_trunc('month', created)::date AS m, count(*) AS n FROM orders WHERE score > 2 GROUP BY 1"
    rows = dict(bi.execute(sql).fetchall())
    assert len(rows) == 12
    assert all(0 <= n <= 30 * scales(bi, sql)[1] for n in rows.values())


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo"])
def test_timestamptz_keys_follow_the_session_time_zone(bi, conn, zone):
    """A timestamptz key means what it means natively in the analyst's session: truncated in its
    TimeZone, the same instant.  The answer is cached per zone (each zone is charged once)."""
    sql = "SELECT date_trunc('month', placed) AS m, count(*) AS n FROM orders GROUP BY 1"
    _, nat = native(conn, sql, zone)
    _, utc = native(conn, sql, "UTC")
    assert [n for _, n in sorted(nat)] != [n for _, n in sorted(utc)]     # the zone matters for this data
    bi.execute(f"SET TimeZone = '{zone}'")
    before = spent(conn)
    rows = bi.execute(sql).fetchall()
    check_close(nat, rows, [0], scales(bi, sql))
    assert spent(conn) == before + EPS
    assert {r[0] for r in rows} >= {r[0] for r in nat}
    # a date column's date_trunc (timestamptz) is local midnight in the session's zone, as natively
    d_sql = "SELECT date_trunc('year', created) AS y, count(*) FROM orders GROUP BY 1"
    _, d_nat = native(conn, d_sql, zone)
    assert sorted(r[0] for r in bi.execute(d_sql).fetchall()) == sorted(r[0] for r in d_nat)


def test_explain_describes_key_types_and_key_sets(bi):
    rows = bi.execute("SELECT column_name, data_type, note FROM dp.explain(%s)",
                      ("SELECT date_trunc('month', placed) AS m, width_bucket(score, 0, 1, 4) AS b, count(*) "
                       "FROM orders GROUP BY 1, 2",)).fetchall()
    assert rows[0][:2] == ("m", "timestamp with time zone") and "every month" in rows[0][2]
    assert "time zone" in rows[0][2]
    assert rows[1][:2] == ("b", "integer") and "0..5" in rows[1][2] and "NULL" in rows[1][2]


# --- shapes BI tools send ----------------------------------------------------------------------

BI_SHAPES = [
    # Metabase: qualified columns, the expression repeated in GROUP BY and ORDER BY
    'SELECT date_trunc(\'month\', "public"."orders"."created") AS "created", count(*) AS "count" '
    'FROM "public"."orders" GROUP BY date_trunc(\'month\', "public"."orders"."created") '
    'ORDER BY date_trunc(\'month\', "public"."orders"."created") ASC',
    # Metabase: auto-binning
    'SELECT ((floor((("public"."orders"."age" - 0.0) / 12.5)) * 12.5) + 0.0) AS "age", count(*) AS "count" '
    'FROM "public"."orders" GROUP BY ((floor((("public"."orders"."age" - 0.0) / 12.5)) * 12.5) + 0.0) '
    'ORDER BY ((floor((("public"."orders"."age" - 0.0) / 12.5)) * 12.5) + 0.0) ASC',
    # Metabase: a date filter with a zone-qualified literal
    'SELECT count(*) AS "count" FROM "public"."orders" WHERE ("public"."orders"."placed" >= '
    "timestamp with time zone '2021-03-01 00:00:00.000Z' AND \"public\".\"orders\".\"placed\" < "
    "timestamp with time zone '2021-04-01 00:00:00.000Z')",
    # Metabase: contains (case-insensitive), not empty
    'SELECT "public"."orders"."city" AS "city", count(*) AS "count" FROM "public"."orders" '
    'WHERE (lower("public"."orders"."name") LIKE \'%ali%\' AND "public"."orders"."city" IS NOT NULL) '
    'GROUP BY "public"."orders"."city" ORDER BY "public"."orders"."city" ASC',
    # Metabase: EXTRACT of a date, by year
    'SELECT extract(year from "public"."orders"."created") AS "created", sum("public"."orders"."amount") AS "sum" '
    'FROM "public"."orders" GROUP BY extract(year from "public"."orders"."created") '
    'ORDER BY extract(year from "public"."orders"."created") ASC',
    # Superset: time series with TO_TIMESTAMP bounds and a row limit
    "SELECT DATE_TRUNC('month', created) AS __timestamp, COUNT(*) AS count FROM public.orders "
    "WHERE created >= TO_TIMESTAMP('2021-02-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US') "
    "AND created < TO_TIMESTAMP('2021-06-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US') "
    "GROUP BY DATE_TRUNC('month', created) LIMIT 10000",
    # Superset: a bar chart over a text column, IN filter, ordered by the metric
    "SELECT city AS city, COUNT(*) AS count FROM public.orders WHERE city IN ('Paris', 'Lyon') "
    "GROUP BY city ORDER BY count DESC LIMIT 50",
    # Superset: ILIKE and COALESCE filters, SUM metric
    "SELECT SUM(amount) AS \"SUM(amount)\" FROM public.orders WHERE name ILIKE '%CAROL%' "
    "AND COALESCE(city, 'unknown') <> 'unknown'",
    # Superset: width_bucket histogram
    "SELECT width_bucket(score, 0, 1, 5) AS bucket, COUNT(*) AS count FROM public.orders "
    "GROUP BY width_bucket(score, 0, 1, 5) ORDER BY bucket LIMIT 100",
    # Tableau: month as a date, CAST of the column, table alias
    'SELECT CAST(DATE_TRUNC(\'MONTH\', CAST("orders"."created" AS DATE)) AS DATE) AS "tmn:created:ok", '
    'SUM("orders"."amount") AS "sum:amount:ok" FROM "public"."orders" "orders" GROUP BY 1',
    # Tableau: year as an integer
    'SELECT CAST(EXTRACT(YEAR FROM "orders"."created") AS INTEGER) AS "yr:created:ok", '
    'COUNT(*) AS "cnt:orders:ok" FROM "public"."orders" "orders" GROUP BY 1',
    # Tableau: a date range on CAST(... AS DATE), NOT LIKE with IS NULL
    'SELECT "orders"."city" AS "city", COUNT("orders"."city") AS "cnt:city:ok" FROM "public"."orders" "orders" '
    'WHERE ((CAST("orders"."created" AS DATE) >= DATE \'2021-06-01\') AND (CAST("orders"."created" AS DATE) '
    '<= DATE \'2021-08-31\') AND ("orders"."city" IS NULL OR "orders"."city" NOT LIKE \'N%\')) GROUP BY 1',
    # Tableau: CASE bins and an average
    'SELECT (CASE WHEN "orders"."age" < 30 THEN \'young\' WHEN "orders"."age" < 60 THEN \'mid\' ELSE \'old\' END)'
    ' AS "Calculation_1", AVG("orders"."amount") AS "avg:amount:ok" FROM "public"."orders" "orders" GROUP BY 1',
    # Metabase: BETWEEN on dates, several aggregates
    'SELECT count(*) AS "count", avg("public"."orders"."amount") AS "avg", stddev_samp("public"."orders"."age") '
    'AS "sd" FROM "public"."orders" WHERE "public"."orders"."created" BETWEEN date \'2021-01-01\' AND '
    'date \'2021-06-30\'',
    # Superset: a timestamp literal, by day of week (session zone)
    "SELECT EXTRACT(ISODOW FROM placed) AS dow, COUNT(*) AS count FROM public.orders "
    "WHERE placed >= TIMESTAMP '2021-06-01 00:00:00.000' GROUP BY EXTRACT(ISODOW FROM placed) ORDER BY dow",
    # Metabase: week of a timestamptz
    'SELECT date_trunc(\'week\', "public"."orders"."placed") AS "placed", count(*) AS "count" '
    'FROM "public"."orders" WHERE "public"."orders"."placed" < timestamp with time zone \'2021-03-01 00:00:00Z\' '
    'GROUP BY 1 ORDER BY 1 ASC',
]


@pytest.mark.parametrize("sql", BI_SHAPES)
def test_bi_tool_shapes_as_plain_sql_and_dp_query(bi, conn, sql):
    types, nat = native(conn, sql, "Europe/Paris")
    bi.execute("SET TimeZone = 'Europe/Paris'")
    cur = bi.execute(sql)
    rows = cur.fetchall()
    assert [d.type_code for d in cur.description] == types
    names = [d.name for d in cur.description]
    scale = scales(bi, sql)
    keys = _key_positions(bi, sql)
    public = "city" not in names            # city has no public values: DP partition selection
    check_close(nat, rows, keys, scale, public=public)
    tail = sql.rsplit("ORDER BY", 1)[-1]
    if "ORDER BY" in sql and "DESC" not in tail and keys == [0]:     # ordered by the key, ascending
        got = [r[0] for r in rows]
        assert got == sorted(got, key=lambda v: (v is None, v if v is not None else 0))
    answer = ask_json(bi, sql)       # the same question through dp.query: same columns, same rows count
    assert len(answer) == len(rows) and (not answer or set(answer[0]) == set(names))


def _key_positions(bi, sql):
    return [i for i, r in enumerate(bi.execute("SELECT mechanism FROM dp.explain(%s)", (sql,)).fetchall())
            if r[0] == "group key"]


def test_at_least_fifteen_bi_shapes():
    assert len(BI_SHAPES) >= 15


# --- filters ------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", [
    "name LIKE 'Alice%'", "name ILIKE 'alice1%'", "name NOT LIKE '%1'", "name NOT ILIKE 'BOB%'",
    "lower(name) = 'dave8'", "upper(name) LIKE 'CAROL2%'", "COALESCE(city, 'none') = 'none'",
    "COALESCE(score, 0) > 0.5", "city IS NULL", "city IS NOT NULL", "age BETWEEN 10 AND 20",
    "age NOT BETWEEN 10 AND 90", "city IN ('Nice', 'Lyon')", "created >= '2021-03-01'::date",
    "created >= CAST('2021-03-01' AS TIMESTAMP)", "created < DATE '2021-02-15'",
    "placed >= timestamp '2021-03-01 00:00:00.000'", "placed < TIMESTAMP WITH TIME ZONE '2021-03-01 00:00:00.000Z'",
    "placed < '2021-03-01'::date", "created >= TO_TIMESTAMP('2021-03-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US')",
    "created < to_date('2021-02-01', 'YYYY-MM-DD')", "CAST(placed AS DATE) = DATE '2021-05-05'",
    '"public"."orders"."age" > 50 AND "orders"."city" = \'Paris\'',
])
def test_filters_match_native_counts(bi, conn, where):
    sql = f"SELECT count(*) FROM orders WHERE {where}"
    _, nat = native(conn, sql, "America/New_York")
    bi.execute("SET TimeZone = 'America/New_York'")
    got = bi.execute(sql).fetchone()[0]
    assert abs(got - nat[0][0]) <= 3           # scale 0.1: P(|noise| > 3) = e^-30
    assert bi.execute("SELECT * FROM dp.query(%s, %s) AS t(n bigint)", (sql, EPS)).fetchone()[0] == got


# --- aggregates ---------------------------------------------------------------------------------

def test_aggregates_analysts_expect(bi, conn):
    sql = ("SELECT count(city) AS c, variance(age) AS v, var_pop(age) AS vp, stddev(age) AS s, "
           "stddev_pop(age) AS sp, var_samp(age) AS vs, percentile_cont(0.5) WITHIN GROUP (ORDER BY age) AS med "
           "FROM orders")
    types, nat = native(conn, sql)
    cur = bi.execute(sql)
    row = cur.fetchone()
    assert [d.type_code for d in cur.description] == types
    assert abs(row[0] - nat[0][0]) <= 30 * scales(bi, sql)[0]
    for got, want in zip(row[1:6], nat[0][1:6]):
        assert abs(float(got) - float(want)) < 0.05 * float(want)
    assert abs(float(row[6]) - float(nat[0][6])) <= 2       # a quantile on 1025 candidates over [0, 99]
    answer = ask_json(bi, sql)[0]                           # dp.query: the same measurements, cached
    assert abs(answer["c"] - row[0]) < 1e-9 and abs(answer["vp"] - float(row[2])) < 1e-6


def test_count_distinct_privacy_unit(bi, conn):
    sql = "SELECT count(DISTINCT id) AS units, count(*) FROM odd WHERE v < 5"
    _, nat = native(conn, sql)
    row = bi.execute(sql).fetchone()
    assert abs(row[0] - nat[0][0]) <= 3
    assert ask_json(bi, sql)[0]["units"] == row[0]
    for ask in (bi.execute, lambda q: ask_json(bi, q)):
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            ask("SELECT count(DISTINCT label) FROM odd")
        assert "privacy unit" in e.value.diag.message_hint


@pytest.mark.parametrize("sql, low, high", [("SELECT min(age) FROM orders", 0, 2),
                                             ("SELECT max(amount), count(*) FROM orders", 490, 500)])
def test_min_max_are_dp_quantiles_near_the_ends(bi, conn, sql, low, high):
    """min and max: the DP 0.01 and 0.99 quantiles (20,000 rows: the true ones are 0..2 and 494..499),
    of the column's own type, charged like any aggregate; dp.explain says so."""
    types, _ = native(conn, sql)
    before = spent(conn)
    cur = bi.execute(sql)
    row = cur.fetchone()
    assert [d.type_code for d in cur.description] == types
    assert low <= float(row[0]) <= high, row
    assert spent(conn) > before
    note = bi.execute("SELECT note FROM dp.explain(%s, %s)", (sql, EPS)).fetchone()[0]
    assert "quantile" in note


def test_released_sums_of_non_negative_columns_are_never_negative(bi):
    """Free post-processing: 53 empty groups, sum noise of scale 500/0.5 = 1000; without the clamp
    about half would be negative (P(none) = 2^-52)."""
    sql = ("SELECT width_bucket(score, 0, 1, 50) AS b, sum(amount) AS s, count(*) AS n, avg(age) AS a "
           "FROM orders WHERE amount > 1000 GROUP BY 1")
    rows = bi.execute("SELECT * FROM dp.query(%s, 1.5) AS t(b int, s numeric, n bigint, a numeric)", (sql,)).fetchall()
    assert len(rows) == 53          # buckets 0..51 and NULL (score is nullable)
    assert all(r[1] >= 0 and r[2] >= 0 and 0 <= r[3] <= 99 for r in rows)
    assert sum(1 for r in rows if r[1] == 0) >= 5       # the clamp was used (P(fewer) < 1e-9)
    bi.execute("SET pg_dp.epsilon = 1.5")                # plain SQL: the same question, cached
    plain = sorted(bi.execute(sql).fetchall(), key=lambda r: (r[0] is None, r[0] or 0))
    for p, q in zip(plain, sorted(rows, key=lambda r: (r[0] is None, r[0] or 0))):
        assert p[0] == q[0] and p[2] == q[2] and abs(p[1] - q[1]) < 1e-6 and abs(p[3] - q[3]) < 1e-6

# --- attacks: no chosen row can make the privileged query fail -----------------------------------

def test_attack_far_date_row_cannot_raise_in_date_trunc(bi, conn):
    """Natively date_trunc of a date beyond timestamp's range fails -- on that row only."""
    with pytest.raises(psycopg.errors.DatetimeFieldOverflow):
        conn.execute("SELECT date_trunc('month', day), count(*) FROM odd WHERE id = 7777 GROUP BY 1").fetchall()
    rows = bi.execute("SELECT date_trunc('month', day), count(*) FROM odd WHERE id = 7777 GROUP BY 1").fetchall()
    assert isinstance(rows, list)
    rows = bi.execute("SELECT EXTRACT(YEAR FROM day), count(*) FROM odd WHERE id = 7777 GROUP BY 1").fetchall()
    assert isinstance(rows, list)


def test_attack_nan_row_cannot_raise_in_width_bucket(bi, conn):
    with pytest.raises(psycopg.errors.InvalidArgumentForWidthBucketFunction):
        conn.execute("SELECT width_bucket(v, 0, 10, 5), count(*) FROM odd WHERE id = 7777 GROUP BY 1").fetchall()
    rows = bi.execute("SELECT width_bucket(v, 0, 10, 5) AS b, count(*) FROM odd WHERE id = 7777 GROUP BY 1").fetchall()
    assert [r[0] for r in rows] == [0, 1, 2, 3, 4, 5, 6, None]       # public buckets, NaN's among them


def test_attack_huge_value_cannot_overflow_a_bin(bi, conn):
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        conn.execute("SELECT floor(v / 0.001) * 0.001, count(*) FROM odd WHERE id = 7778 GROUP BY 1").fetchall()
    rows = bi.execute("SELECT floor(v / 0.5) * 0.5 AS b, count(*) FROM odd WHERE id = 7778 GROUP BY 1").fetchall()
    assert len(rows) == 22          # 0, 0.5, ..., 10 and NULL: the value clamped into its bounds


@pytest.mark.parametrize("sql, sqlstate", [
    ("SELECT count(*) FROM orders WHERE name LIKE 'Alice1\\'", "22025"),     # fails natively only on rows
    ("SELECT count(*) FROM orders WHERE created >= TO_TIMESTAMP('2021-13-45', 'YYYY-MM-DD')", "22008"),
    ("SELECT floor(age / 0) * 0, count(*) FROM orders GROUP BY 1", "22023"),
    ("SELECT floor(name / 2) * 2, count(*) FROM orders GROUP BY 1", "42883"),
    ("SELECT EXTRACT(HOUR FROM created), count(*) FROM orders GROUP BY 1", "0A000"),
    ("SELECT date_trunc('month', placed, 'UTC'), count(*) FROM orders GROUP BY 1", "0A000"),
])
def test_attack_row_dependent_errors_refused_before_the_charge(bi, conn, sql, sqlstate):
    before = spent(conn)
    with pytest.raises(psycopg.Error) as e:
        bi.execute(sql)
    assert e.value.sqlstate == sqlstate and e.value.diag.message_hint
    assert spent(conn) == before


def test_attack_like_pattern_error_depends_on_rows_natively(conn):
    """Why the pattern check exists: natively the error appears only when some row gets that far."""
    with pytest.raises(psycopg.errors.InvalidEscapeSequence):
        conn.execute("SELECT count(*) FROM orders WHERE name LIKE 'Alice1\\'").fetchall()
    assert conn.execute("SELECT count(*) FROM orders WHERE name LIKE 'Zed\\'").fetchone()[0] == 0


def test_attack_forged_time_zone_is_refused_before_the_charge(bi, conn):
    before = spent(conn)
    for zone in ["Mars/Olympus", "UTC'; SELECT 1; --"]:
        payload = json.dumps({"sql": "SELECT count(*) FROM orders", "epsilon": 1, "timezone": zone, "expect": [20]})
        with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
            bi.execute("SELECT dp_internal.executor_call('query', %s)", (payload,))
        assert "time zone" in e.value.diag.message_primary
    assert spent(conn) == before


def test_unit_bounded_copies_keep_expression_keys_and_zones_apart(bi, conn):
    """With a privacy unit, the third question on one key set reads a bounded copy built for it
    (bounded.py); a timestamptz key's copy is built per zone: asked from two zones, each gets the
    keys of its own zone."""
    conn.execute("CREATE TABLE trips (rider int NOT NULL, at timestamptz NOT NULL, km float8)")
    conn.execute("""INSERT INTO trips SELECT r, TIMESTAMPTZ '2022-03-01 00:00+00' + (r * 13 % 1440) * INTERVAL '1 hour',
                    r % 30 FROM generate_series(1, 3000) r""")      # one trip per rider: nothing is bounded away
    conn.execute("SELECT dp.protect('trips', privacy_unit => 'rider', max_rows_per_unit => 1)")
    conn.execute("SELECT dp.set_bounds('trips', 'at', '2022-03-01 00:00+00', '2022-04-30 00:00+00')")
    conn.execute("SELECT dp.set_bounds('trips', 'km', 0, 30)")
    conn.execute("SELECT dp.grant_budget('bi_keys', 'trips', 100000, 1e-3)")
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):        # +14 and -11
        bi.execute(f"SET TimeZone = '{zone}'")
        for i in range(3):
            sql = f"SELECT date_trunc('day', at) AS d, count(*) AS n FROM trips WHERE km > {-1 - i} GROUP BY 1"
            _, nat = native(conn, sql, zone)
            rows = bi.execute(sql).fetchall()
            check_close(nat, rows, [0], scales(bi, sql))
    copies = conn.execute("SELECT count(*) FROM dp_internal.bounded_copies WHERE relid = 'trips'::regclass "
                          "AND keys LIKE '%@Pacific/%' AND data_version >= 0").fetchone()[0]
    assert copies == 2


def test_numeric_avg_leaves_nulls_out(bi, conn):
    """GREATEST(NULL, 0) is 0 in PostgreSQL: the clamp of a numeric column must keep NULL a NULL, or
    an avg would count every NULL as the lower bound (here: 50 instead of 100)."""
    conn.execute("CREATE TABLE half (x numeric)")
    conn.execute("INSERT INTO half SELECT CASE WHEN g % 2 = 0 THEN 100 END FROM generate_series(1, 4000) g")
    conn.execute("SELECT dp.protect('half')")
    conn.execute("SELECT dp.set_bounds('half', 'x', 0, 100)")
    conn.execute("SELECT dp.grant_budget('bi_keys', 'half', 1000)")
    row = bi.execute("SELECT avg(x), count(x), sum(x) FROM half").fetchone()
    assert abs(float(row[0]) - 100) < 2 and abs(row[1] - 2000) <= 30 * 0.3 and abs(float(row[2]) - 200000) < 1000
