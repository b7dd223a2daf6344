"""Attacks on the gateway and the budget, one test per attack, on a real server.

Each test names the attack it tries.  The analyst role holds no SELECT on the
protected table and a budget of BUDGET epsilon.
"""

import subprocess
import threading
import time
from decimal import Decimal

import psycopg
import pytest

from datasets import drop_role_with_schema, epsilon_spent, patients, protect_patients, session

BUDGET = Decimal("20")


@pytest.fixture(scope="module", autouse=True)
def setup(conn):
    patients(conn, 30000)
    conn.execute("CREATE ROLE mallory LOGIN")
    conn.execute("CREATE SCHEMA mallory AUTHORIZATION mallory")
    conn.execute("GRANT SELECT ON patients TO mallory")
    protect_patients(conn)
    conn.execute(f"SELECT dp.grant_budget('mallory', 'patients', {BUDGET})")
    yield
    drop_role_with_schema(conn, "mallory")


@pytest.fixture
def mallory(pg, db):
    with session(pg, db, "mallory", "mallory, public, dp") as c:
        yield c


def spent(conn, dataset="patients"):
    return epsilon_spent(conn, "mallory", dataset)


def ledger_total(conn, dataset="patients"):
    return conn.execute("SELECT coalesce(sum(epsilon), 0) FROM dp.ledger WHERE role = 'mallory'::regrole "
                        "AND dataset = %s", (dataset,)).fetchone()[0]


def ask(c, sql, epsilon=0.1):
    return c.execute("SELECT * FROM dp.query_json(%s, %s)", (sql, epsilon)).fetchall()


def refused(c, sql, match=None):
    with pytest.raises(psycopg.Error) as e:
        ask(c, sql)
    if match:
        assert match in str(e.value)
    assert e.value.diag.message_hint, "every refusal carries a hint"
    return e.value


def test_direct_select(mallory):
    for sql in ["SELECT * FROM patients", "SELECT count(*) FROM patients", "SELECT age FROM patients WHERE id = 4242",
                "COPY patients TO STDOUT"]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            mallory.execute(sql)


def test_non_dp_aggregates(mallory, conn):
    before = spent(conn)
    # (min and max are answered, as DP quantiles near the ends: test_answers.py, test_bi_keys.py)
    for sql in ["SELECT string_agg(diagnosis, ',') FROM patients", "SELECT bool_and(age > 3) FROM patients",
                "SELECT age FROM patients", "SELECT count(DISTINCT age) FROM patients"]:
        refused(mallory, sql)
    assert spent(conn) == before


def test_subqueries_and_ctes(mallory):
    refused(mallory, "SELECT count(*) FROM (SELECT * FROM patients) s", "FROM must name")
    refused(mallory, "WITH p AS (SELECT * FROM patients) SELECT count(*) FROM p", "WITH")
    refused(mallory, "SELECT count(*) FROM patients WHERE age IN (SELECT age FROM patients WHERE id = 4242)")
    refused(mallory, "SELECT count(*) FROM patients WHERE EXISTS (SELECT 1)")
    refused(mallory, "SELECT count(*) FROM patients UNION ALL SELECT count(*) FROM patients", "set operations")
    refused(mallory, "SELECT count(*) FROM patients p JOIN patients q ON p.id = q.id")


def test_user_defined_function_in_where(mallory, conn):
    mallory.execute("CREATE TABLE mallory.seen (age int)")
    mallory.execute("""CREATE FUNCTION mallory.leak(a int) RETURNS boolean LANGUAGE plpgsql AS
                       $$ BEGIN INSERT INTO mallory.seen VALUES (a); RETURN true; END $$""")
    refused(mallory, "SELECT count(*) FROM patients WHERE mallory.leak(age)", "not allowed")
    refused(mallory, "SELECT count(*) FROM patients WHERE leak(age)", "not allowed")
    refused(mallory, "SELECT count(*) FROM patients WHERE age = leak(age)::int")
    assert conn.execute("SELECT count(*) FROM mallory.seen").fetchone()[0] == 0


def test_division_by_zero_side_channel(mallory, conn):
    # an error that fires only if row 4242 has age 0 would reveal it
    before = spent(conn)
    refused(mallory, "SELECT count(*) FROM patients WHERE 1 / age > 0", "not allowed in WHERE")
    refused(mallory, "SELECT count(*) FROM patients WHERE id = 4242 AND 1 / age > 0")
    refused(mallory, "SELECT sum(100 / age) FROM patients")
    assert spent(conn) == before


def test_cast_error_side_channel(mallory):
    refused(mallory, "SELECT count(*) FROM patients WHERE diagnosis::int > 0", "not allowed")
    refused(mallory, "SELECT count(*) FROM patients WHERE CAST(diagnosis AS date) > '2000-01-01'")
    refused(mallory, "SELECT count(*) FROM patients WHERE age > '1'::mallory_type")


def test_explain_analyze(mallory):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        mallory.execute("EXPLAIN ANALYZE SELECT count(*) FROM patients WHERE age = 0")
    refused(mallory, "EXPLAIN ANALYZE SELECT count(*) FROM patients", "only SELECT")


def test_pg_stats_hidden(conn, mallory):
    conn.execute("ANALYZE patients")
    assert conn.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'patients'").fetchone()[0] > 0
    assert mallory.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'patients'").fetchone()[0] == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        mallory.execute("SELECT * FROM pg_statistic")


def test_search_path_hijack_with_malicious_dp_count(mallory, conn):
    mallory.execute("CREATE TABLE mallory.stolen (v text)")
    for fn, args in [("dp_count", "anyelement"), ("count", "anyelement"), ("exact_sum", "float8, float8, float8")]:
        mallory.execute(f"""CREATE FUNCTION mallory.{fn}({args}) RETURNS bigint LANGUAGE plpgsql AS
                            $$ BEGIN INSERT INTO mallory.stolen VALUES ('called'); RETURN 0; END $$""")
    mallory.execute("CREATE TABLE mallory.patients (age int)")  # a decoy with the protected table's name
    mallory.execute("SET search_path = mallory, public, dp, pg_catalog")
    rows = ask(mallory, "SELECT dp_count(age) AS a, count(*) AS b, sum(age) AS c FROM patients", 1.0)
    assert abs(rows[0][0]["b"] - 30000) < 100
    assert conn.execute("SELECT count(*) FROM mallory.stolen").fetchone()[0] == 0


def test_identifier_injection(mallory, conn):
    with pytest.raises(psycopg.Error):
        conn.execute("SELECT dp.protect('patients; DROP TABLE patients')")
    with pytest.raises(psycopg.Error):
        conn.execute("SELECT dp.set_bounds('patients', 'age\"; DROP TABLE patients; --', 0, 1)")
    refused(mallory, 'SELECT count(*) FROM "patients; DROP TABLE patients"', "not protected")
    refused(mallory, 'SELECT count("age"" FROM patients; --") FROM patients', "does not exist")
    refused(mallory, "SELECT count(*) FROM patients; DROP TABLE patients", "exactly one statement")
    assert conn.execute("SELECT count(*) FROM patients").fetchone()[0] == 30000


def test_averaging_attack_gets_the_cached_answer(mallory, conn):
    sql = "SELECT count(*) FROM patients WHERE age = 0"
    first = ask(mallory, sql, 0.5)
    after_first = spent(conn)
    answers = [ask(mallory, sql, 0.5) for _ in range(20)]
    assert all(a == first for a in answers)
    assert spent(conn) == after_first
    # re-spelling the same question is the same normalized statement
    assert ask(mallory, "select   COUNT(*) from PATIENTS where AGE=0", 0.5) == first


def test_setseed_does_not_fix_the_noise(mallory):
    answers = set()
    for i in range(3):
        mallory.execute("SELECT setseed(0.5)")
        answers.add(ask(mallory, f"SELECT sum(bill) FROM patients WHERE id > -{i + 100}", 0.1)[0][0]["sum"])
    assert len(answers) == 3


def test_rollback_does_not_refund(pg, db, conn):
    before = spent(conn)
    with pg.connect(db, user="mallory", autocommit=False) as c:
        ask(c, "SELECT count(*) FROM patients WHERE age > 30", 0.3)
        c.rollback()
    assert spent(conn) == before + Decimal("0.3")
    assert spent(conn) == ledger_total(conn)


def test_error_later_in_multi_statement_string_does_not_refund(pg, db, conn):
    before = spent(conn)
    out = pg.psql("SELECT * FROM dp.query_json('SELECT count(*) FROM patients WHERE age > 31', 0.2); SELECT 1/0;",
                  dbname=db, user="mallory", check=False)
    assert "division by zero" in out.stderr
    assert spent(conn) == before + Decimal("0.2")


def run_and_interrupt_after_the_charge(query, watch, dataset, interrupt):
    """Run a long DP query in a thread; call interrupt() once its charge is in the ledger."""
    result = {}

    def run():
        try:
            result["rows"] = query()
        except psycopg.Error as e:
            result["error"] = e

    t = threading.Thread(target=run)
    t.start()
    deadline = time.time() + 30
    while time.time() < deadline:
        if watch.execute("SELECT count(*) FROM dp.ledger WHERE dataset = %s", (dataset,)).fetchone()[0]:
            interrupt()
            break
        time.sleep(0.002)
    t.join()
    return result


def test_cancel_after_the_charge_does_not_refund(pg, db, conn):
    conn.execute("CREATE TABLE big (id int, v int)")
    conn.execute("INSERT INTO big SELECT g, g % 100 FROM generate_series(1, 3000000) g")
    conn.execute("SELECT dp.protect('big')")
    conn.execute("SELECT dp.set_bounds('big', 'v', 0, 100)")
    conn.execute("SELECT dp.grant_budget('mallory', 'big', 5)")
    with pg.connect(db, user="mallory") as c:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        result = run_and_interrupt_after_the_charge(
            lambda: ask(c, "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v), avg(v) FROM big", 1.0),
            conn, "big", lambda: conn.execute("SELECT pg_cancel_backend(%s)", (pid,)))
    charged = conn.execute("SELECT epsilon_spent FROM dp.budgets WHERE dataset = 'big'").fetchone()[0]
    assert charged == Decimal("1.0"), "the charge committed before the answer was computed"
    assert "error" in result and isinstance(result["error"], psycopg.errors.QueryCanceled)


def test_concurrent_sessions_race_for_the_last_epsilon(pg, db, conn):
    conn.execute("CREATE TABLE race (id int, v int)")
    conn.execute("INSERT INTO race SELECT g, g % 10 FROM generate_series(1, 1000) g")
    conn.execute("SELECT dp.protect('race')")
    conn.execute("SELECT dp.grant_budget('mallory', 'race', 1.0)")
    ok, refusals, errors = [], [], []
    barrier = threading.Barrier(16)

    def client(i):
        with pg.connect(db, user="mallory") as c:
            barrier.wait()
            for j in range(3):
                try:
                    ask(c, f"SELECT count(*) FROM race WHERE id > -{i * 10 + j}", 0.1)
                    ok.append(i)
                except psycopg.errors.ConfigurationLimitExceeded:
                    refusals.append(i)
                except psycopg.Error as e:  # pragma: no cover - reported below
                    errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(ok) == 10 and len(refusals) == 38
    row = conn.execute("SELECT epsilon_spent, epsilon_granted FROM dp.budgets WHERE dataset = 'race'").fetchone()
    total = conn.execute("SELECT sum(epsilon), count(*) FROM dp.ledger WHERE dataset = 'race'").fetchone()
    assert row == (Decimal("1.0"), Decimal("1.0")) and total == (Decimal("1.0"), 10)


def test_server_restart_mid_query_keeps_the_charge():
    from pgserver import PgServer, PGBIN, _as_postgres

    server = PgServer()
    try:
        server.create_database("restart")
        with server.connect("restart") as c:
            c.execute("CREATE TABLE t (id int, v int)")
            c.execute("INSERT INTO t SELECT g, g % 100 FROM generate_series(1, 3000000) g")
            c.execute("SELECT dp.protect('t')")
            c.execute("SELECT dp.set_bounds('t', 'v', 0, 100)")
            c.execute("CREATE ROLE victim LOGIN")
            c.execute("SELECT dp.grant_budget('victim', 't', 3)")

        def query():
            with server.connect("restart", user="victim") as a:
                return ask(a, "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v), avg(v) FROM t", 1.0)

        def restart():
            subprocess.run(_as_postgres([f"{PGBIN}/pg_ctl", "-D", server.data, "-m", "immediate", "-w", "restart",
                                         "-l", server.log]), check=True, stdout=subprocess.DEVNULL)

        with server.connect("restart") as watch:
            result = run_and_interrupt_after_the_charge(query, watch, "t", restart)
        assert "error" in result
        with server.connect("restart") as c:
            assert c.execute("SELECT epsilon_spent FROM dp.budgets").fetchone()[0] == Decimal("1.0")
            assert c.execute("SELECT sum(epsilon) FROM dp.ledger").fetchone()[0] == Decimal("1.0")
    finally:
        server.stop()


def test_internal_functions_are_not_callable(mallory):
    for sql in [
        "SELECT dp_internal.charge(1, 'patients', -100, 0, 0, 0, 0, 'x', 'x', 1, 'x', -100, -100)",
        # the seed of the random choice of kept rows, the contribution estimates, others' answers
        "SELECT * FROM dp_internal.dataset_secrets",
        "SELECT * FROM dp_internal.contribution_estimates",
        "SELECT * FROM dp_internal.answer_log",
        "SELECT dp_internal.exact_sum(age, 0, 100) FROM patients",
        "SELECT dp.grant_budget('mallory', 'patients', 1000)",
        "SELECT dp.set_bounds('patients', 'age', 0, 1)",
        "UPDATE dp_internal.budgets SET epsilon_granted = 1000",
        "SELECT * FROM dp_internal.answers",
    ]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            mallory.execute(sql)


def test_budget_is_never_exceeded(conn):
    row = conn.execute("SELECT epsilon_spent <= epsilon_granted FROM dp.budgets WHERE dataset = 'patients'"
                       " AND role = 'mallory'::regrole").fetchone()
    assert row == (True,)
    assert spent(conn) == ledger_total(conn)
