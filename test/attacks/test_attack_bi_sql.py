"""Attacks on the paths plain BI SQL opened: joins with tables other roles own, statements as trees
(CTEs, nesting, scalar sub-selects, sub-results joined inside measurements), the measurements'
own front door, catalog visibility and the synthetic-copy previews.

mallory: a login role with a budget on `orders` (protected, unit customer_id), SELECT on the
public dimension `products`, her own schema.  Every refusal comes before any charge and runs no
code of mallory's as the extension owner (mallory.leak records every call it gets, with the
role it ran as).
"""

from decimal import Decimal
import json

import psycopg
import pytest

BUDGET = Decimal(100)


@pytest.fixture(scope="module", autouse=True)
def setup(conn, db):
    conn.execute(f'ALTER DATABASE "{db}" SET session_preload_libraries = \'pg_dp\'')
    conn.execute("CREATE TABLE products (product_id int PRIMARY KEY, category text NOT NULL, price int)")
    conn.execute("INSERT INTO products SELECT p, (ARRAY['a', 'b'])[1 + p % 2], p FROM generate_series(1, 20) p")
    conn.execute("CREATE TABLE salaries (product_id int PRIMARY KEY, salary int NOT NULL)")
    conn.execute("INSERT INTO salaries SELECT p, 1000 * p + 7 FROM generate_series(1, 20) p")
    conn.execute("CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, product_id int, amount int)")
    conn.execute("INSERT INTO orders SELECT g, g % 500, 1 + g % 20, g % 50 FROM generate_series(1, 4000) g")
    conn.execute("SELECT dp.protect('orders', privacy_unit => 'customer_id', max_rows_per_unit => 10)")
    conn.execute("SELECT dp.set_bounds('orders', 'amount', 0, 50)")
    conn.execute("CREATE ROLE mallory LOGIN")
    conn.execute("CREATE ROLE bob LOGIN")
    conn.execute("CREATE SCHEMA mallory AUTHORIZATION mallory")
    conn.execute("GRANT SELECT ON products TO mallory, bob")
    conn.execute(f"SELECT dp.grant_budget('mallory', 'orders', {BUDGET}, 1e-3)")
    conn.execute("SELECT dp.grant_budget('bob', 'orders', 10, 1e-3)")
    conn.execute("SELECT dp.set_query_epsilon('mallory', 'orders', 0.5, 10)")
    conn.execute("CREATE TABLE mallory.calls (who name, v text)")
    conn.execute("ALTER TABLE mallory.calls OWNER TO mallory")
    conn.execute("GRANT INSERT ON mallory.calls TO PUBLIC")
    conn.execute("CREATE FUNCTION mallory.leak(anyelement) RETURNS boolean LANGUAGE plpgsql AS "
                 "$$ BEGIN INSERT INTO mallory.calls VALUES (current_user, $1::text); RETURN true; END $$")
    conn.execute("ALTER FUNCTION mallory.leak(anyelement) OWNER TO mallory")
    yield
    for role in ("mallory", "bob"):
        conn.execute(f"DROP OWNED BY {role} CASCADE")
        conn.execute(f"DROP ROLE {role}")


@pytest.fixture
def mallory(pg, db):
    with pg.connect(db, user="mallory") as c:
        c.execute("SET search_path = mallory, public")
        yield c


def spent(conn, role="mallory"):
    return conn.execute(f"SELECT epsilon_spent FROM dp.budgets WHERE role = '{role}'::regrole").fetchone()[0]


def calls(conn):
    return conn.execute("SELECT count(*) FROM mallory.calls").fetchone()[0]


def refused(c, sql, sqlstates=("42501", "0A000")):
    with pytest.raises(psycopg.Error) as e:
        c.execute(sql).fetchall()
    assert e.value.diag.sqlstate in sqlstates, (sql, e.value.diag.sqlstate, e.value.diag.message_primary)
    assert e.value.diag.message_hint, f"{sql}: every refusal carries a hint"
    return e.value


def test_attack_join_to_a_dimension_the_caller_cannot_read(mallory, conn):
    """Without the privilege check (relations.load_dimension), salaries' values would come back as
    the public key set of a GROUP BY on them, and a filter on them would count through them."""
    before = spent(conn)
    for sql in ["SELECT s.salary, count(*) FROM orders o JOIN salaries s ON o.product_id = s.product_id GROUP BY 1",
                "SELECT count(*) FROM orders o JOIN salaries s ON o.product_id = s.product_id WHERE s.salary = 5007",
                "SELECT count(*) FROM (SELECT o.* FROM orders o JOIN salaries s USING (product_id)) x",
                "WITH s AS (SELECT * FROM salaries) SELECT count(*) FROM orders o JOIN s ON o.product_id = s.product_id"]:
        e = refused(mallory, sql, ("42501",))
        assert "salaries" in e.diag.message_primary
    # a table mallory may SELECT in a schema she may not use: its rows are out of her reach too
    conn.execute("CREATE SCHEMA IF NOT EXISTS hidden")
    conn.execute("CREATE TABLE IF NOT EXISTS hidden.codes (k int PRIMARY KEY, code text)")
    conn.execute("GRANT SELECT ON hidden.codes TO mallory")
    e = refused(mallory, "SELECT * FROM dp.cost('SELECT h.code, count(*) FROM public.orders o JOIN hidden.codes h "
                         "ON o.product_id = h.k GROUP BY 1')", ("42501",))
    assert "hidden" in e.diag.message_primary
    assert spent(conn) == before


def test_attack_views_and_functions_on_the_dimension_side_never_run_as_the_owner(mallory, conn):
    """A view's query (mallory.leak in it) would run as the extension owner in the executor."""
    mallory.execute("CREATE VIEW mallory.pv AS SELECT product_id, category FROM public.products WHERE mallory.leak(product_id)")
    mallory.execute("CREATE MATERIALIZED VIEW mallory.mv AS SELECT product_id, category FROM public.products")
    before, seen = spent(conn), calls(conn)
    refused(mallory, "SELECT v.category, count(*) FROM orders o JOIN mallory.pv v ON o.product_id = v.product_id "
                     "GROUP BY 1", ("0A000",))
    refused(mallory, "SELECT count(*) FROM orders o JOIN products p ON o.product_id = p.product_id "
                     "WHERE mallory.leak(p.category)")
    refused(mallory, "SELECT mallory.leak(p.category) AS k, count(*) FROM orders o JOIN products p "
                     "ON o.product_id = p.product_id GROUP BY 1")
    refused(mallory, "WITH t AS (SELECT o.*, mallory.leak(o.amount) AS x FROM orders o) SELECT x, count(*) FROM t "
                     "GROUP BY x")
    refused(mallory, "SELECT count(*) FROM (SELECT * FROM orders WHERE mallory.leak(amount)) s")
    assert calls(conn) == seen and spent(conn) == before
    # a materialized view holds rows, runs nothing: mallory may join her own (her own data)
    rows = mallory.execute("SELECT m.category, count(*) FROM orders o JOIN mallory.mv m ON o.product_id = m.product_id "
                           "GROUP BY 1").fetchall()
    assert {r[0] for r in rows} >= {"a", "b"}


def test_attack_row_level_security_and_temp_tables_on_the_dimension_side(mallory, conn):
    """The owner would see rows row-level security hides from mallory; another session's temporary
    table lives in that session's buffers."""
    conn.execute("CREATE TABLE IF NOT EXISTS regions (product_id int PRIMARY KEY, region text)")
    conn.execute("ALTER TABLE regions ENABLE ROW LEVEL SECURITY")
    conn.execute("DROP POLICY IF EXISTS few ON regions")
    conn.execute("CREATE POLICY few ON regions FOR SELECT USING (product_id < 3)")
    conn.execute("GRANT SELECT ON regions TO mallory")
    mallory.execute("CREATE TEMP TABLE mine (product_id int PRIMARY KEY, tag text)")
    before = spent(conn)
    refused(mallory, "SELECT r.region, count(*) FROM orders o JOIN regions r ON o.product_id = r.product_id GROUP BY 1",
            ("0A000",))
    refused(mallory, "SELECT t.tag, count(*) FROM orders o JOIN mine t ON o.product_id = t.product_id GROUP BY 1",
            ("0A000",))
    assert spent(conn) == before


def test_attack_own_type_with_an_implicit_cast_in_a_join(mallory, conn):
    """A join on a column of mallory's type could resolve through her implicit cast, run as the owner."""
    mallory.execute("CREATE TYPE mallory.code AS (v int)")
    mallory.execute("CREATE FUNCTION mallory.code_int(mallory.code) RETURNS int LANGUAGE plpgsql AS "
                    "$$ BEGIN INSERT INTO mallory.calls VALUES (current_user, 'cast'); RETURN ($1).v; END $$")
    mallory.execute("CREATE CAST (mallory.code AS int) WITH FUNCTION mallory.code_int(mallory.code) AS IMPLICIT")
    mallory.execute("CREATE TABLE mallory.dim (k mallory.code, label text)")
    mallory.execute("INSERT INTO mallory.dim SELECT ROW(p)::mallory.code, 'x' || p FROM generate_series(1, 20) p")
    before, seen = spent(conn), calls(conn)
    refused(mallory, "SELECT d.label, count(*) FROM orders o JOIN mallory.dim d ON o.product_id = d.k GROUP BY 1")
    assert calls(conn) == seen and spent(conn) == before


@pytest.mark.parametrize("sql", [
    # a correlated sub-query would be a measurement per outer row
    "SELECT p.category, (SELECT count(*) FROM orders o WHERE o.product_id = p.product_id) FROM products p",
    # a measurement inside another one's filter, and rows of the table in a sub-query
    "SELECT count(*) FROM orders WHERE amount > (SELECT avg(amount) FROM orders)",
    "SELECT count(*) FROM orders WHERE product_id IN (SELECT product_id FROM orders WHERE id = 7)",
    # a sub-result aggregated again or joined on a non-key inside a measurement
    "SELECT count(*) FROM (SELECT customer_id, count(*) AS n FROM orders GROUP BY 1) a JOIN orders o "
    "ON o.customer_id = a.customer_id",
    "SELECT count(*) FROM orders o, LATERAL (SELECT * FROM orders i WHERE i.id = o.id) x",
    # window functions over protected rows (no aggregate: rows), ORDER BY/LIMIT samples of rows
    "SELECT amount, row_number() OVER (ORDER BY amount) FROM orders",
    "SELECT sum(amount) FROM (SELECT amount FROM orders ORDER BY amount DESC LIMIT 1) t",
    "WITH RECURSIVE r AS (SELECT id FROM orders WHERE id = 7 UNION SELECT id FROM r) SELECT count(*) FROM r",
])
def test_attack_tree_shapes_that_would_release_rows_or_exact_values(mallory, conn, sql):
    before = spent(conn)
    refused(mallory, sql, ("42501", "0A000", "42803", "42P01", "54001"))
    assert spent(conn) == before


def test_attack_measure_front_door_called_directly(mallory, conn):
    """dp_internal.measure is reachable by anyone; what it gets is a question like dp.query's,
    checked, planned and charged by the executor for the caller: no way around the checks."""
    statement = json.dumps({"cores": ["SELECT count(*) AS dp_a1 FROM public.orders AS o WHERE o.id = 7"],
                            "expect": [[20]]})
    before = spent(conn)
    n = mallory.execute("SELECT * FROM dp_internal.measure(%s, 1) AS t(n bigint)", [statement]).fetchone()[0]
    assert spent(conn) == before + Decimal("0.5")     # charged: a DP count (noise scale 20), not the exact 1
    assert isinstance(n, int)
    for cores in (["SELECT s.salary AS dp_k1, count(*) AS dp_a1 FROM public.orders AS o JOIN public.salaries AS s "
                   "ON o.product_id = s.product_id GROUP BY s.salary"],
                  ["SELECT o.amount AS dp_k1 FROM public.orders AS o"]):
        with pytest.raises(psycopg.Error):
            mallory.execute("SELECT * FROM dp_internal.measure(%s, 1) AS t(a int, b bigint)",
                            [json.dumps({"cores": cores, "expect": [[23, 20]]})]).fetchall()
    assert spent(conn) == before + Decimal("0.5")


def test_attack_per_statement_maximum_holds_for_the_whole_statement(mallory, conn):
    """Four sub-selects at the maximum epsilon are one statement: charged once, not four times."""
    sql = " UNION ALL ".join(f"SELECT * FROM (SELECT count(*) FROM orders WHERE amount > {i}) s{i}" for i in range(4))
    before = spent(conn)
    mallory.execute("SET pg_dp.epsilon = 10")     # mallory's maximum per statement
    try:
        mallory.execute(sql).fetchall()
    finally:
        mallory.execute("RESET pg_dp.epsilon")
    assert spent(conn) == before + 10              # split over the four measurements, charged once
    before = spent(conn)
    with pytest.raises(psycopg.errors.ConfigurationLimitExceeded):     # 53400, before anything is charged
        mallory.execute("SELECT * FROM (SELECT dp.dp_count(amount, 6.0) FROM orders) a, (SELECT dp.dp_count(amount, 6.0) FROM orders "
                        "WHERE amount > 1) b").fetchall()
    assert spent(conn) == before


def test_attack_information_schema_shows_columns_not_rows(mallory, conn):
    rows = mallory.execute("SELECT column_name, data_type FROM information_schema.columns "
                           "WHERE table_schema = 'public' AND table_name = 'orders' ORDER BY ordinal_position").fetchall()
    assert rows == [("id", "integer"), ("customer_id", "integer"), ("product_id", "integer"), ("amount", "integer")]
    # tables that are neither protected nor readable stay hidden, as PostgreSQL hides them
    assert mallory.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'salaries'"
                           ).fetchone()[0] == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege):       # still no row of the table
        mallory.execute("SELECT * FROM orders LIMIT 1").fetchall()


def test_attack_preview_reads_no_copy_another_analyst_made(pg, db, conn, mallory):
    """Budget holders read the copies an administrator made; a copy bob made is bob's
    (with any copy readable, bob's one-row copy would be what mallory's previews show)."""
    with pg.connect(db, user="bob") as b:
        b.execute("CALL dp.dp_synthesize('public.orders', epsilon => 1, rows => 5)")
    made_by_bob = conn.execute("SELECT count(*) FROM dp.synthetic_tables").fetchone()[0]
    assert made_by_bob >= 1
    refused(mallory, "SELECT * FROM orders LIMIT 3", ("42501",))
    conn.execute("SELECT dp.grant_budget('postgres', 'orders', 10, 1e-3)")
    conn.execute("CALL dp.dp_synthesize('public.orders', epsilon => 1, rows => 50)")
    notices = []
    mallory.add_notice_handler(lambda d: notices.append(d.message_primary))
    rows = mallory.execute("SELECT * FROM orders LIMIT 100").fetchall()
    assert len(rows) == 50 and any("synthetic copy" in n for n in notices)


def test_attack_preview_locks_the_shared_copy(pg, db, conn):
    """A preview reads the administrators' copy with its owner's rights (dp_shadow_writer's); with
    FOR UPDATE that was UPDATE too: mallory row-locked every row of the shared copy (blocking the
    writer's FK checks on it and the DBA's changes), with no privilege on it."""
    if conn.execute("SELECT to_regclass('dp_synthetic.orders')").fetchone()[0] is None:
        conn.execute("SELECT dp.grant_budget('postgres', 'orders', 10, 1e-3)")
        conn.execute("CALL dp.dp_synthesize('public.orders', epsilon => 1, rows => 50)")
    with pg.connect(db, user="mallory", autocommit=False) as m:
        for sql in ["SELECT * FROM orders FOR UPDATE", "SELECT * FROM orders FOR KEY SHARE SKIP LOCKED",
                    "SELECT * FROM (SELECT * FROM orders) s FOR NO KEY UPDATE"]:
            refused(m, sql, ("42501",))
            m.rollback()
        assert len(m.execute("SELECT * FROM orders LIMIT 3").fetchall()) == 3                 # plain reads stay
        # nothing of the copy is locked by her open transaction
        assert len(conn.execute("SELECT * FROM dp_synthetic.orders FOR UPDATE NOWAIT").fetchall()) == 50
        m.rollback()
