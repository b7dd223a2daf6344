"""BI tools' statements as plain SQL of a restricted role, through real clients.

psycopg (simple and extended protocol), SQLAlchemy reflection and pandas.read_sql,
and JDBC (Debian's libpostgresql-jdbc-java, run by a Java program against a server
listening on 127.0.0.1): every shape in bi_shapes.SHAPES is answered by the gateway,
with the column types the native statement has, and charged once however often a
dashboard runs it.
"""

import os
import shutil
import subprocess
from decimal import Decimal

import pytest

from bi_shapes import SHAPES
from pgserver import PgServer

HERE = os.path.dirname(os.path.abspath(__file__))
JDBC_JAR = "/usr/share/java/postgresql.jar"
IDS = [f"{tool}: {what}" for tool, what, _, _ in SHAPES]


@pytest.fixture(scope="module")
def server():
    """Its own server, on 127.0.0.1 (JDBC speaks TCP) and its Unix socket."""
    s = PgServer(settings={"listen_addresses": "'127.0.0.1'"})
    s.create_database("bi")
    with s.connect("bi") as c:
        c.execute("ALTER DATABASE bi SET session_preload_libraries = 'pg_dp'")
        create_orders(c)
        c.execute("CREATE ROLE analyst LOGIN")
        c.execute("SELECT dp.grant_budget('analyst', 'orders', 1000, 1e-3)")
    yield s
    s.stop()


def create_orders(c):
    c.execute("CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, created_at timestamp NOT NULL, "
              "status text NOT NULL CHECK (status IN ('pending', 'shipped', 'returned')), country text, "
              "quantity int, total numeric(10,2))")
    c.execute("INSERT INTO orders SELECT g, g % 5000, TIMESTAMP '2021-01-01' + (g % 730) * INTERVAL '1 day' "
              "+ (g % 24) * INTERVAL '1 hour', (ARRAY['pending', 'shipped', 'shipped', 'returned'])[1 + g % 4], "
              "(ARRAY['FR', 'DE', 'US', 'JP'])[1 + g % 4], 1 + g % 10, (g % 500) + 0.99 FROM generate_series(1, 40000) g")
    c.execute("SELECT dp.protect('orders', privacy_unit => 'customer_id', max_rows_per_unit => 10)")
    c.execute("SELECT dp.set_bounds('orders', 'quantity', 0, 20)")
    c.execute("SELECT dp.set_bounds('orders', 'total', 0, 500)")
    c.execute("SELECT dp.set_bounds('orders', 'created_at', '2021-01-01', '2023-01-01')")
    c.execute("SELECT dp.set_public_values('orders', 'country', ARRAY['FR', 'DE', 'US', 'JP'])")


def spent(server):
    with server.connect("bi") as c:
        return c.execute("SELECT epsilon_spent FROM dp.budgets WHERE role = 'analyst'::regrole").fetchone()[0]


def types_of(cur):
    return [d.type_code for d in cur.description]


@pytest.mark.parametrize("tool, what, sql, params", SHAPES, ids=IDS)
def test_psycopg_gets_dp_answers_with_native_types(server, tool, what, sql, params):
    with server.connect("bi") as owner, server.connect("bi", user="analyst") as analyst:
        native = owner.execute(sql, params or None)
        native.fetchall()
        before = spent(server)
        cur = analyst.execute(sql, params or None)
        rows = cur.fetchall()
        assert types_of(cur) == types_of(native), f"{tool} {what}: column types"
        assert [d.name for d in cur.description] == [d.name for d in native.description]
        assert rows, f"{tool} {what}: no rows"
        charged = spent(server) - before
        assert Decimal(0) <= charged <= Decimal(1)
        # a dashboard refresh, prepared server-side from the 5th execution: the same answer, free
        for _ in range(6):
            assert analyst.execute(sql, params or None, prepare=True).fetchall() == rows
        assert spent(server) - before == charged


def test_sqlalchemy_reflects_and_pandas_charts(server):
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pandas = pytest.importorskip("pandas")
    engine = sqlalchemy.create_engine(f"postgresql+psycopg://analyst@/bi?host={server.host}&port={server.port}")
    try:
        inspector = sqlalchemy.inspect(engine)
        assert "orders" in inspector.get_table_names(schema="public")
        assert [c["name"] for c in inspector.get_columns("orders", schema="public")] == \
            ["id", "customer_id", "created_at", "status", "country", "quantity", "total"]
        assert inspector.get_pk_constraint("orders", schema="public")["constrained_columns"] == ["id"]
        orders = sqlalchemy.Table("orders", sqlalchemy.MetaData(), autoload_with=engine, schema="public")
        chart = sqlalchemy.select(orders.c.status, sqlalchemy.func.count().label("n")).group_by(orders.c.status) \
            .order_by(orders.c.status)
        frame = pandas.read_sql(chart, engine)
        assert list(frame.columns) == ["status", "n"] and list(frame["status"]) == ["pending", "returned", "shipped"]
        assert abs(frame["n"].sum() - 40000) < 1000
        frame = pandas.read_sql(sqlalchemy.text("SELECT country, avg(quantity) AS q FROM orders GROUP BY country"),
                                engine)
        # country is nullable with public values: its NULL group is released too (empty, noisy mean)
        assert sorted(frame["country"].dropna()) == ["DE", "FR", "JP", "US"] and frame["q"].between(0, 20).all()
    finally:
        engine.dispose()


def _java():
    java = shutil.which("java")
    if java is None or not os.path.exists(JDBC_JAR):
        pytest.skip("Java or Debian's libpostgresql-jdbc-java is not installed (scripts/install-deps.sh installs them)")
    return java


def _run_jdbc(server, user, statements, tmp_path, runs):
    path = tmp_path / f"statements-{user}.txt"
    path.write_text("".join(sql.replace("%s", "?") + "".join("\t" + p for p in params) + "\n"
                            for sql, params in statements))
    out = subprocess.run([_java(), "-cp", JDBC_JAR, os.path.join(HERE, "..", "support", "java", "BiClient.java"),
                          f"jdbc:postgresql://127.0.0.1:{server.port}/bi", user, str(path), str(runs)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_jdbc_prepared_statements_get_dp_answers(server, tmp_path):
    statements = [(sql, params) for _, _, sql, params in SHAPES]
    native = _run_jdbc(server, "postgres", statements, tmp_path, 1)
    before = spent(server)
    first = _run_jdbc(server, "analyst", statements, tmp_path, 6)
    after_first = spent(server)
    again = _run_jdbc(server, "analyst", statements, tmp_path, 6)
    for shape, n, a, b in zip(IDS, native, first, again):
        assert a.startswith("OK "), f"{shape}: {a}"
        assert a.split()[2] == n.split()[2], f"{shape}: column types {a} vs native {n}"
        assert a.endswith(" true"), f"{shape}: not prepared server-side after 6 executions"
        assert b == a, f"{shape}: a second dashboard session sees the same answer"
    assert len(first) == len(SHAPES)
    assert spent(server) == after_first       # all cached: the second session costs nothing
    assert after_first - before <= len(SHAPES)


def test_catalog_shows_a_protected_tables_columns(server, tmp_path):
    """Names, types and comments of a protected table's columns, through JDBC's getColumns,
    information_schema.columns (Malloy's and Metabase's schema read) and SQLAlchemy's inspector,
    for a role that reads no row of it and holds no column privilege."""
    with server.connect("bi") as c:
        c.execute("COMMENT ON COLUMN orders.total IS 'order total in EUR'")
    expected = ["id", "customer_id", "created_at", "status", "country", "quantity", "total"]
    out = subprocess.run([_java(), "-cp", JDBC_JAR, os.path.join(HERE, "..", "support", "java", "BiColumns.java"),
                          f"jdbc:postgresql://127.0.0.1:{server.port}/bi", "analyst", "public", "orders"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [line.split() for line in out.stdout.splitlines()]
    assert [x[0] for x in lines] == expected
    assert lines[2][1] == "timestamp" and lines[6] == ["total", "numeric", "order_total_in_EUR"]
    with server.connect("bi", user="analyst") as a:
        rows = a.execute("SELECT column_name, data_type, col_description('public.orders'::regclass, ordinal_position::int) "
                         "FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'orders' "
                         "ORDER BY ordinal_position").fetchall()
        assert [r[0] for r in rows] == expected and rows[6] == ("total", "numeric", "order total in EUR")
        assert not a.execute("SELECT has_any_column_privilege('public.orders', 'SELECT, INSERT, UPDATE, REFERENCES')"
                             ).fetchone()[0]
