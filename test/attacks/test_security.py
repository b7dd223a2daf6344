"""Attacks on the aggregates themselves (the budget gateway has its own suite)."""

import psycopg
import pytest


@pytest.fixture(scope="module", autouse=True)
def table(conn):
    conn.execute("CREATE TABLE secret AS SELECT g AS id, (g % 97)::float8 AS salary FROM generate_series(1, 5000) g")
    conn.execute("CREATE ROLE attacker LOGIN")
    conn.execute("GRANT SELECT ON secret TO attacker")
    yield
    conn.execute("DROP OWNED BY attacker")
    conn.execute("DROP ROLE attacker")


def test_setseed_does_not_make_noise_repeatable(conn):
    draws = []
    for _ in range(3):
        conn.execute("SELECT setseed(0.42)")
        draws.append(conn.execute("SELECT dp_sum(salary, 0, 100, 0.1) FROM secret").fetchone()[0])
    assert len(set(draws)) == 3


def test_data_dependent_parameters_are_refused(conn):
    for sql in [
        "SELECT dp_avg(salary, 0, CASE WHEN id = 7 THEN 1e9 ELSE 100 END) FROM secret",
        "SELECT dp_count(salary, CASE WHEN salary > 50 THEN 100 ELSE 0.1 END) FROM secret",
        "SELECT dp_sum(salary, 0, (SELECT max(salary) FROM secret)) FROM secret",
        "SELECT dp_median(salary, 0, 100, random()) FROM secret",
    ]:
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="must be a constant"):
            conn.execute(sql)


def test_server_side_parameters_are_accepted(pg, db):
    # psycopg sends %s as $n parameters: a generic plan keeps them as Params
    with pg.connect(db) as c:
        c.execute("SET plan_cache_mode = force_generic_plan")
        for _ in range(3):
            (v,) = c.execute("SELECT dp_avg(salary, %s, %s, %s) FROM secret", (0.0, 100.0, 1.0)).fetchone()
            assert 0 <= v <= 100


def test_invalid_parameters_report_sqlstate(conn):
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        conn.execute("SELECT dp_avg(salary, 100, 0) FROM secret")
    assert e.value.diag.message_hint == "Swap the two bounds: dp_avg(x, lower, upper)."
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SELECT dp_count(salary, 0) FROM secret WHERE false")


def test_noise_function_is_not_callable_by_users(pg, db):
    with pg.connect(db, user="attacker") as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT dp_internal.release('count', ARRAY['5000','0','0','0','0'], ARRAY[1e9, 0])")
    with pg.connect(db, user="attacker") as c:
        (n,) = c.execute("SELECT dp.dp_count(salary, 1.0) FROM secret").fetchone()
        assert abs(n - 5000) < 60


def test_window_use_is_refused(conn):
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="window"):
        conn.execute("SELECT dp_sum(salary, 0, 100) OVER (ORDER BY id) FROM secret")


def test_every_extension_object_is_documented(conn):
    rows = conn.execute(
        """
        SELECT pg_describe_object(d.classid, d.objid, 0)
        FROM pg_depend d
        JOIN pg_extension e ON d.refobjid = e.oid AND d.refclassid = 'pg_extension'::regclass
        WHERE e.extname = 'pg_dp' AND d.deptype = 'e'
          AND obj_description(d.objid, (SELECT relname FROM pg_class WHERE oid = d.classid)) IS NULL
        """
    ).fetchall()
    assert rows == []


def test_noisy_functions_are_volatile_and_states_not_internal(conn):
    rows = conn.execute(
        """
        SELECT a.aggfnoid::regprocedure, f.provolatile, a.aggtranstype::regtype, a.aggcombinefn <> 0
        FROM pg_aggregate a JOIN pg_proc f ON f.oid = a.aggfinalfn
        JOIN pg_proc p ON p.oid = a.aggfnoid JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'dp'
        """
    ).fetchall()
    assert len(rows) == 19
    for agg, volatility, state, combine in rows:
        assert volatility == "v", agg
        assert state in ("dp_internal.sum_state", "dp_internal.hist_state"), agg
        assert combine, agg
