"""A star schema asked in plain SQL by a role without SELECT on its protected tables.

orders (protected fact) -> customers (protected unit table, same dataset), products and stores
(public dimensions the analyst may read).  Every statement is answered by DP measurements with
PostgreSQL's SQL above them, checked against the truth (the same statement run by the owner)
within the noise's stated tolerance, with failure probability <= 1e-9 per test, and charged once
per statement.

The data makes bounding exact: each customer has 1..5 orders (max_rows_per_unit 5), all of one
product, one store and one day, so a customer falls into one group of every grouping used here
(max_groups_per_unit 1 drops nothing) and the truth is the native answer.
"""

import math
from decimal import Decimal

import psycopg
import pytest

EPSILON = 8          # each statement's epsilon (the analyst's default), split over its aggregates
K = 5                # max_rows_per_unit
AMOUNT = (0, 100)    # the declared bounds of orders.amount
FAIL = 1e-9


@pytest.fixture(scope="module", autouse=True)
def star(conn, db):
    conn.execute(f'ALTER DATABASE "{db}" SET session_preload_libraries = \'pg_dp\'')
    conn.execute("CREATE TABLE customers (customer_id int PRIMARY KEY, region text NOT NULL "
                 "CHECK (region IN ('north', 'south', 'east', 'west')), age int)")
    conn.execute("INSERT INTO customers SELECT c, (ARRAY['north', 'south', 'east', 'west'])[1 + c % 4], 20 + c % 50 "
                 "FROM generate_series(0, 3999) c")
    conn.execute("CREATE TABLE products (product_id int PRIMARY KEY, category text NOT NULL, price numeric)")
    conn.execute("INSERT INTO products SELECT p, (ARRAY['books', 'games', 'tools', 'toys'])[1 + p % 4], p "
                 "FROM generate_series(1, 40) p")
    conn.execute("CREATE TABLE stores (store_id int PRIMARY KEY, city text NOT NULL)")
    conn.execute("INSERT INTO stores VALUES (1, 'Lyon'), (2, 'Nantes'), (3, 'Lille'), (4, 'Lyon'), (5, 'Nantes'), "
                 "(6, 'Lille')")
    conn.execute("CREATE TABLE orders (order_id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, "
                 "product_id int REFERENCES products, store_id int REFERENCES stores, created_at timestamp NOT NULL, "
                 "amount numeric)")
    conn.execute("INSERT INTO orders SELECT c * 10 + i, c, 1 + c % 40, 1 + c % 6, "
                 "TIMESTAMP '2022-01-01' + (c % 12) * INTERVAL '1 month' + (c % 28) * INTERVAL '1 day' + i * INTERVAL '1 hour', "
                 "10 + (c * 7 + i) % 90 FROM generate_series(0, 3999) c, generate_series(0, 4) i WHERE i <= c % 5")
    conn.execute("SELECT dp.protect('customers', privacy_unit => 'customer_id', dataset => 'shop', "
                 "max_rows_per_unit => 1)")
    conn.execute("SELECT dp.protect('orders', privacy_unit => 'customer_id', dataset => 'shop', "
                 f"max_rows_per_unit => {K})")
    conn.execute(f"SELECT dp.set_bounds('orders', 'amount', {AMOUNT[0]}, {AMOUNT[1]})")
    conn.execute("SELECT dp.set_bounds('orders', 'created_at', '2022-01-01', '2022-12-31')")
    conn.execute("CREATE ROLE shopper LOGIN")
    conn.execute("GRANT SELECT ON products, stores TO shopper")
    conn.execute("SELECT dp.grant_budget('shopper', 'shop', 100000, 1e-3)")
    conn.execute(f"SELECT dp.set_query_epsilon('shopper', 'shop', {EPSILON}, 1000)")
    yield
    conn.execute("DROP OWNED BY shopper")
    conn.execute("DROP ROLE shopper")


@pytest.fixture(scope="module")
def shopper(pg, db):
    with pg.connect(db, user="shopper") as c:
        yield c


def spent(conn):
    return conn.execute("SELECT epsilon_spent FROM dp.budgets WHERE role = 'shopper'::regrole").fetchone()[0]


def entries(conn):
    return conn.execute("SELECT count(*) FROM dp_internal.ledger WHERE role = 'shopper'::regrole").fetchone()[0]


def tol(scale, values):
    """|Laplace(scale)| <= tol for all `values` draws but with probability <= FAIL (union bound;
    the discrete Laplace tail P(|X| >= t) <= 2 exp(-t / scale) too)."""
    return scale * math.log(2 * values / FAIL)


def count_tol(aggregates, values):
    return tol(K / (EPSILON / aggregates), values)


def sum_tol(aggregates, values):
    return tol(K * max(map(abs, AMOUNT)) / (EPSILON / aggregates), values)


def ask(conn, shopper, sql, keys=1, charged=True):
    """(DP rows, true rows) by their first `keys` columns; the statement costs EPSILON once (none
    if charged is False: each of its measurements was released before, unchanged data)."""
    before, ledger = spent(conn), entries(conn)
    dp = {tuple(r[:keys]): r[keys:] for r in shopper.execute(sql).fetchall()}
    assert spent(conn) == before + (EPSILON if charged else 0), sql
    assert entries(conn) == ledger + (1 if charged else 0), "one ledger entry per statement"
    truth = {tuple(r[:keys]): r[keys:] for r in conn.execute(sql).fetchall()}
    assert set(truth) <= set(dp), f"{sql}: every true group is released"
    return dp, truth


def close(dp, truth, tolerances, default=0):
    for key, row in dp.items():
        exact = truth.get(key, [default] * len(row))
        for value, true, t in zip(row, exact, tolerances):
            if t is None:
                continue
            assert abs(float(value) - float(true or 0)) <= t, f"{key}: {value} vs {true} (tolerance {t:.1f})"


def test_join_to_a_dimension_group_by_its_column(conn, shopper):
    dp, truth = ask(conn, shopper, "SELECT p.category, count(*) AS n, sum(o.amount) AS total FROM orders o "
                                   "JOIN products p ON o.product_id = p.product_id GROUP BY p.category")
    assert sorted(dp) == [("books",), ("games",), ("tools",), ("toys",)]
    close(dp, truth, [count_tol(2, 8), sum_tol(2, 8)])


def test_filter_on_a_dimension_group_by_month(conn, shopper):
    dp, truth = ask(conn, shopper, "SELECT date_trunc('month', o.created_at) AS month, count(*) FROM orders o "
                                   "JOIN stores s ON o.store_id = s.store_id WHERE s.city = 'Lyon' GROUP BY 1")
    assert len(dp) == 12                     # every month between the bounds, empty ones too
    close(dp, truth, [count_tol(1, 12)])


def test_both_dimensions_using_and_positions(conn, shopper):
    dp, truth = ask(conn, shopper, "SELECT p.category, s.city, count(*) FROM orders o JOIN products p USING "
                                   "(product_id) JOIN stores s USING (store_id) GROUP BY 1, 2", keys=2)
    assert len(dp) == 12                     # 4 categories x 3 cities, all public
    close(dp, truth, [count_tol(1, 12)])


@pytest.mark.parametrize("sql", [
    "SELECT c.region, count(*) FROM orders o JOIN customers c ON o.customer_id = c.customer_id GROUP BY 1",
    "SELECT c.region, count(*) FROM customers c JOIN orders o ON c.customer_id = o.customer_id GROUP BY 1",
])
def test_fact_and_unit_table_either_direction(conn, shopper, sql):
    dp, truth = ask(conn, shopper, sql)
    close(dp, truth, [count_tol(1, 4)])


def test_cte_malloy_stage_and_order(conn, shopper):
    sql = ("WITH t AS (SELECT p.category AS cat, o.amount FROM orders o JOIN products p ON o.product_id = "
           "p.product_id) SELECT cat, sum(amount) AS total FROM t GROUP BY cat ORDER BY 2 DESC")
    dp, truth = ask(conn, shopper, sql)
    close(dp, truth, [sum_tol(1, 4)])


def test_three_levels_of_nesting(conn, shopper):
    sql = ("SELECT * FROM (SELECT x.cat, x.n FROM (SELECT cat, count(*) AS n FROM (SELECT p.category AS cat "
           "FROM orders o JOIN products p ON o.product_id = p.product_id) r GROUP BY cat) x) y ORDER BY cat")
    dp, truth = ask(conn, shopper, sql)
    close(dp, truth, [count_tol(1, 4)])


def test_join_of_two_dp_sub_results_is_one_charge(conn, shopper):
    sql = ("SELECT a.category, a.n, b.total FROM (SELECT p.category, count(*) AS n FROM orders o JOIN products p "
           "ON o.product_id = p.product_id GROUP BY 1) a JOIN (SELECT p.category, sum(o.amount) AS total FROM "
           "orders o JOIN products p ON o.product_id = p.product_id GROUP BY 1) b ON a.category = b.category")
    dp, truth = ask(conn, shopper, sql)          # epsilon split over the two measurements
    close(dp, truth, [count_tol(2, 8), sum_tol(2, 8)])


def test_window_over_released_rows(conn, shopper):
    sql = ("SELECT month, n, sum(n) OVER (ORDER BY month) AS running FROM (SELECT date_trunc('month', created_at) "
           "AS month, count(*) AS n FROM orders GROUP BY 1) s")
    dp, truth = ask(conn, shopper, sql)
    t = count_tol(1, 12)
    close(dp, truth, [t, 12 * t])
    running = 0
    for month in sorted(dp):                     # the window is SQL over the released counts
        running += dp[month][0]
        assert dp[month][1] == running


def test_a_derived_key_in_a_sub_select_is_the_same_measurement(conn, shopper):
    dp, truth = ask(conn, shopper, "SELECT * FROM (SELECT to_char(date_trunc('month', created_at), 'YYYY-MM') AS m, "
                                   "count(*) FROM orders GROUP BY 1) s")
    close(dp, truth, [count_tol(1, 12)])
    again, _ = ask(conn, shopper, "SELECT to_char(date_trunc('month', created_at), 'YYYY-MM') AS m, count(*) "
                                  "FROM orders GROUP BY 1", charged=False)
    assert again == dp


@pytest.mark.parametrize("sql, keys", [
    ("SELECT b, n FROM (SELECT floor(extract(epoch FROM created_at) / 86400) * 86400 AS b, count(*) AS n FROM orders "
     "WHERE created_at < '2022-01-08' GROUP BY 1) s", 365),
    ("SELECT CASE WHEN p.price < 20 THEN 'cheap' ELSE 'dear' END AS band, count(*) FROM orders o JOIN products p "
     "ON o.product_id = p.product_id GROUP BY 1", 2),
    ("SELECT COALESCE(s.city, 'none') AS city, count(*) FROM orders o LEFT JOIN stores s ON o.store_id = s.store_id "
     "GROUP BY 1", 4),
    ("SELECT upper(c.region) AS r, count(*) FROM customers c JOIN orders o ON c.customer_id = o.customer_id "
     "GROUP BY 1", 4),
])
def test_derived_keys_inside_and_outside_sub_selects(conn, shopper, sql, keys):
    dp, truth = ask(conn, shopper, sql)
    close(dp, truth, [count_tol(1, keys)])


def test_superset_series_limit(conn, shopper):
    sql = ("SELECT p.category AS category, DATE_TRUNC('month', o.created_at) AS __timestamp, SUM(o.amount) AS total "
           "FROM orders o JOIN products p ON o.product_id = p.product_id JOIN (SELECT p.category AS category__, "
           "SUM(o.amount) AS mme_inner__ FROM orders o JOIN products p ON o.product_id = p.product_id GROUP BY "
           "p.category ORDER BY mme_inner__ DESC LIMIT 2) AS series_limit ON p.category = series_limit.category__ "
           "GROUP BY p.category, DATE_TRUNC('month', o.created_at) LIMIT 10000")
    before = spent(conn)
    dp = {tuple(r[:2]): r[2:] for r in shopper.execute(sql).fetchall()}
    # one charge: EPSILON split over the two measurements (the inner one may have been released before)
    assert spent(conn) - before in (EPSILON, EPSILON / 2)
    assert len({k[0] for k in dp}) == 2      # the top two categories by their noisy totals
    for key, row in dp.items():              # truth restricted to the categories DP chose
        exact = conn.execute("SELECT sum(o.amount) FROM orders o JOIN products p ON o.product_id = p.product_id "
                             "WHERE p.category = %s AND date_trunc('month', o.created_at) = %s", key).fetchone()[0]
        assert abs(float(row[0]) - float(exact or 0)) <= sum_tol(2, 26)


def test_having_and_arithmetic_over_released_values(conn, shopper):
    sql = ("SELECT p.category, round(sum(o.amount) / count(o.amount), 2) AS mean FROM orders o JOIN products p "
           "ON o.product_id = p.product_id GROUP BY 1 HAVING count(o.amount) > 100")
    before = spent(conn)
    rows = shopper.execute(sql).fetchall()
    assert spent(conn) == before + EPSILON and len(rows) == 4
    assert all(40 < r[1] < 70 for r in rows)      # true means about 55; noise is far smaller


def test_cached_statement_is_free_and_the_same(conn, shopper):
    sql = "SELECT p.category, count(*) FROM orders o JOIN products p ON o.product_id = p.product_id GROUP BY 1"
    first = sorted(shopper.execute(sql).fetchall())
    before = spent(conn)
    assert sorted(shopper.execute(sql).fetchall()) == first
    assert spent(conn) == before


def test_explain_says_how_each_join_is_bounded(shopper):
    rows = shopper.execute("SELECT * FROM dp.explain('SELECT p.category, count(*) FROM orders o JOIN products p "
                           "ON o.product_id = p.product_id GROUP BY 1')").fetchall()
    notes = " ".join(r[7] or "" for r in rows)
    assert "many-to-one" in notes and "product_id is unique" in notes
