"""The security suite again, through the plain-SQL hook (src/sql_hook/hook.c).

Every attack that dp.query refuses must be refused as plain SQL too, and the hook
itself is attacked: parameters, prepared statements, cursors, views, CTEs,
functions, COPY, multi-statement strings, rollback and races.  mallory holds no
SELECT on `patients` and a budget; the database loads the hook.
"""

import threading
from decimal import Decimal

import psycopg
import pytest

from datasets import drop_role_with_schema, patients, protect_patients

BUDGET = Decimal("50")


@pytest.fixture(scope="module", autouse=True)
def setup(conn, db):
    conn.execute(f'ALTER DATABASE "{db}" SET session_preload_libraries = \'pg_dp\'')
    patients(conn, 30000)
    conn.execute("CREATE ROLE mallory LOGIN")
    conn.execute("CREATE SCHEMA mallory AUTHORIZATION mallory")
    protect_patients(conn)
    conn.execute(f"SELECT dp.grant_budget('mallory', 'patients', {BUDGET}, 1e-4)")
    conn.execute("SELECT dp.set_query_epsilon('mallory', 'patients', 0.1, 1.0)")
    yield
    drop_role_with_schema(conn, "mallory")


@pytest.fixture
def mallory(pg, db):
    with pg.connect(db, user="mallory") as c:
        c.execute("SET search_path = mallory, public")
        yield c


def spent(conn):
    return conn.execute("SELECT epsilon_spent FROM dp.budgets WHERE role = 'mallory'::regrole").fetchone()[0]


def refused(c, sql, params=None, error=psycopg.Error):
    with pytest.raises(error) as e:
        c.execute(sql, params)
    assert e.value.diag.message_hint, f"{sql}: every refusal carries a hint"
    assert not (e.value.diag.message_primary or "").startswith("plpy"), "no PL/Python prefix"
    assert "Traceback" not in (e.value.diag.context or ""), "no Python traceback"
    return e.value


# what dp.query refuses, asked as plain SQL
GATEWAY_REFUSALS = [
    "SELECT string_agg(diagnosis, ',') FROM patients",
    "SELECT count(DISTINCT age) FROM patients",
    "SELECT count(*) FROM patients WHERE 1 / age > 0",                      # division by zero on row 4242
    "SELECT count(*) FROM patients WHERE id = 4242 AND 1 / age > 0",
    "SELECT sum(100 / age) FROM patients",
    "SELECT count(*) FROM patients WHERE diagnosis::int > 0",                # a cast that fails on a row
    "SELECT count(*) FROM patients WHERE CAST(diagnosis AS date) > '2000-01-01'",
    "SELECT count(*) FROM patients WHERE mallory.leak(age)",                # a function of mallory's
    "SELECT count(*) FROM patients WHERE age = mallory.leak(age)::int",
    "SELECT count(*) FROM patients p JOIN patients q ON p.id = q.id",
    "SELECT count(*) FROM patients WHERE age IN (SELECT age FROM patients WHERE id = 4242)",
    "SELECT count(*) FROM patients WHERE EXISTS (SELECT 1 FROM patients WHERE id = 4242 AND age = 0)",
]


@pytest.mark.parametrize("sql", GATEWAY_REFUSALS)
def test_attack_gateway_refusals_hold_as_plain_sql(mallory, conn, sql):
    mallory.execute("CREATE TABLE IF NOT EXISTS mallory.seen (age int)")
    mallory.execute("CREATE OR REPLACE FUNCTION mallory.leak(a int) RETURNS boolean LANGUAGE plpgsql AS "
                    "$$ BEGIN INSERT INTO mallory.seen VALUES (a); RETURN true; END $$")
    before = spent(conn)
    refused(mallory, sql)
    assert spent(conn) == before
    assert mallory.execute("SELECT count(*) FROM mallory.seen").fetchone()[0] == 0


@pytest.mark.parametrize("sql", [
    "WITH p AS (SELECT * FROM patients WHERE id = 4242) SELECT count(*) FROM p",
    "SELECT (SELECT count(*) FROM patients WHERE id = 4243)",
    "SELECT n FROM (SELECT count(*) AS n FROM (SELECT * FROM patients) a WHERE a.id = 4244) b",
])
def test_attack_nested_questions_are_dp_measurements_charged_once(mallory, conn, sql):
    """A CTE, a scalar sub-select, nesting: the question about one row is a DP measurement
    (issue 19), charged the statement's epsilon once (0.1, mallory's default), and the same
    statement again is the same released answer, free -- no exact value and no averaging."""
    before = spent(conn)
    first = mallory.execute(sql).fetchall()
    assert spent(conn) == before + Decimal("0.1")
    assert mallory.execute(sql).fetchall() == first
    assert spent(conn) == before + Decimal("0.1")


@pytest.mark.parametrize("sql", [
    "EXPLAIN SELECT count(*) FROM patients WHERE id = 4242",
    "EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM patients WHERE age = 0",
    "EXPLAIN ANALYZE SELECT * FROM (SELECT count(*) FROM patients) s",
])
def test_attack_explain_through_the_hook(mallory, conn, sql):
    before = spent(conn)
    refused(mallory, sql, error=psycopg.errors.InsufficientPrivilege)
    assert spent(conn) == before


def test_attack_parameter_value_is_a_constant_not_sql(mallory, conn):
    """A parameter's text is quoted as one constant: no injection through $1."""
    n = mallory.execute("SELECT count(*) FROM patients WHERE diagnosis = %s",
                        ["flu' OR 'a' = 'a"]).fetchone()[0]
    assert n < 5000          # the count of a value nobody has (noise at epsilon 0.1: scale 10), not of all 30000
    before = spent(conn)
    # a parameter of the wrong type fails in parse analysis, before anything is charged
    with pytest.raises(psycopg.Error):
        mallory.execute("SELECT count(*) FROM patients WHERE age > %s::text", ["abc"])
    assert spent(conn) == before


def test_attack_prepared_statement_with_a_side_channel(mallory, conn):
    before = spent(conn)
    refused(mallory, "PREPARE q AS SELECT count(*) FROM patients WHERE id = 4242 AND 1 / age > 0")
    refused(mallory, "PREPARE r(int) AS SELECT count(*) FROM patients WHERE 100 / (age - $1) > 0")
    assert spent(conn) == before


def test_attack_prepared_plan_reused_after_the_data_changed(mallory, conn):
    """A prepared DP statement is a new question once the data changed: charged again, never stale."""
    mallory.execute("PREPARE n(int) AS SELECT count(*) FROM patients WHERE age > $1")
    before = spent(conn)
    mallory.execute("EXECUTE n(70)").fetchone()
    mallory.execute("EXECUTE n(70)").fetchone()
    assert spent(conn) == before + Decimal("0.1")
    conn.execute("INSERT INTO patients VALUES (999999, 75, 'flu', 1)")
    try:
        mallory.execute("EXECUTE n(70)").fetchone()
        assert spent(conn) == before + Decimal("0.2")
    finally:
        conn.execute("DELETE FROM patients WHERE id = 999999")
        mallory.execute("DEALLOCATE n")


def test_attack_row_reads_through_views_cursors_copy_and_functions(mallory, conn):
    before = spent(conn)
    for sql in ["CREATE TEMP VIEW v AS SELECT * FROM patients",
                "CREATE TEMP VIEW w AS SELECT count(*) FROM patients WHERE id = 4242",
                "COPY (SELECT age FROM patients WHERE id = 4242) TO STDOUT",
                "CREATE TEMP TABLE t AS SELECT count(*) FROM patients WHERE id = 4242",
                "SELECT age FROM patients WHERE id = 4242"]:
        with pytest.raises(psycopg.Error):
            mallory.execute(sql)
    # a SQL function's body is analysed with the hook too: its row read is refused when it is created
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        mallory.execute("CREATE FUNCTION mallory.ages() RETURNS SETOF int LANGUAGE sql "
                        "AS 'SELECT age FROM public.patients'")
    mallory.execute("SET check_function_bodies = off")
    mallory.execute("CREATE FUNCTION mallory.ages() RETURNS SETOF int LANGUAGE sql AS 'SELECT age FROM public.patients'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        mallory.execute("SELECT count(*) FROM mallory.ages()")
    mallory.execute("CREATE FUNCTION mallory.ages_plpgsql() RETURNS SETOF int LANGUAGE plpgsql "
                    "AS 'BEGIN RETURN QUERY SELECT age FROM public.patients; END'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        mallory.execute("SELECT count(*) FROM mallory.ages_plpgsql()")
    mallory.execute("BEGIN")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        mallory.execute("DECLARE c CURSOR FOR SELECT age FROM patients WHERE id = 4242")
    mallory.execute("ROLLBACK")
    assert spent(conn) == before


def test_attack_rollback_and_errors_after_the_answer_do_not_refund(pg, db, conn):
    before = spent(conn)
    with pg.connect(db, user="mallory", autocommit=False) as c:
        c.execute("SELECT count(*) FROM patients WHERE age > 71").fetchall()
        c.rollback()
    assert spent(conn) == before + Decimal("0.1")
    with pg.connect(db, user="mallory") as c:
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("SELECT count(*) FROM patients WHERE age > 72; SELECT 1 / 0")
    assert spent(conn) == before + Decimal("0.2")
    with pg.connect(db, user="mallory", autocommit=False) as c:      # a cursor, then rollback
        c.execute("DECLARE k CURSOR FOR SELECT count(*) FROM patients WHERE age > 73")
        c.execute("FETCH ALL FROM k").fetchall()
        c.rollback()
    assert spent(conn) == before + Decimal("0.3")


def test_attack_sixteen_sessions_race_for_the_last_epsilon(pg, db, conn):
    """16 sessions ask new plain-SQL questions at once on a budget of 0.5: at most 5 answered."""
    conn.execute("CREATE ROLE racer LOGIN")
    conn.execute("SELECT dp.grant_budget('racer', 'patients', 0.5, 1e-4)")
    conn.execute("SELECT dp.set_query_epsilon('racer', 'patients', 0.1, 0.1)")
    answered, refusals, start = [], [], threading.Barrier(16)

    def ask(i):
        with pg.connect(db, user="racer") as c:
            start.wait()
            try:
                c.execute(f"SELECT count(*) FROM patients WHERE age > {i} AND bill >= 0").fetchall()
                answered.append(i)
            except psycopg.Error as e:
                refusals.append(e.diag.sqlstate)

    try:
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = conn.execute("SELECT epsilon_spent FROM dp.budgets WHERE role = 'racer'::regrole").fetchone()[0]
        assert len(answered) == 5 and total == Decimal("0.5")
        assert len(refusals) == 11 and set(refusals) <= {"53400", "53300"}
    finally:
        conn.execute("DROP OWNED BY racer")
        conn.execute("DROP ROLE racer")
