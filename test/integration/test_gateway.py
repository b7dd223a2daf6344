"""The DBA flow and the analyst flow through the gateway, on a real server."""

import json
import math
from decimal import Decimal

import psycopg
import pytest


@pytest.fixture(scope="module", autouse=True)
def setup(conn):
    conn.execute("CREATE TYPE team AS ENUM ('sales', 'eng', 'ops', 'legal')")
    conn.execute("""CREATE TABLE staff (id int PRIMARY KEY, team team NOT NULL,
                    grade text CHECK (grade IN ('A', 'B', 'C')), salary numeric, age int, remote boolean,
                    city text)""")
    conn.execute("""INSERT INTO staff SELECT g, (ARRAY['sales','eng','ops'])[1 + g % 3]::team,
                    (ARRAY['A','B','C'])[1 + g % 3], 1000 + g % 5000, 20 + g % 40, g % 2 = 0,
                    CASE WHEN g = 1 THEN 'Atlantis' ELSE (ARRAY['Paris','Lyon'])[1 + g % 2] END
                    FROM generate_series(1, 20000) g""")
    conn.execute("CREATE ROLE gw_analyst LOGIN")
    conn.execute("CREATE ROLE gw_other LOGIN")
    conn.execute("GRANT SELECT ON staff TO gw_analyst")
    conn.execute("CREATE SCHEMA gw_analyst AUTHORIZATION gw_analyst")
    conn.execute("SELECT dp.protect('staff')")
    conn.execute("SELECT dp.set_bounds('staff', 'salary', 0, 10000)")
    conn.execute("SELECT dp.set_bounds('staff', 'age', 0, 100)")
    conn.execute("SELECT dp.grant_budget('gw_analyst', 'staff', 50.0, 1e-4)")
    # a dataset with a privacy unit: each patient has 6 visits
    conn.execute("CREATE TABLE visits (patient_id int, ward text NOT NULL, cost float8)")
    conn.execute("INSERT INTO visits SELECT p, (ARRAY['a','b'])[1 + p % 2], 100 FROM generate_series(1, 3000) p, "
                 "generate_series(1, 6)")
    conn.execute("SELECT dp.protect('visits', privacy_unit => 'patient_id', max_rows_per_unit => 2)")
    conn.execute("SELECT dp.set_public_values('visits', 'ward', ARRAY['a', 'b'])")
    conn.execute("SELECT dp.set_bounds('visits', 'cost', 0, 200)")
    conn.execute("SELECT dp.grant_budget('gw_analyst', 'visits', 10.0)")
    # a second table of the same dataset, joined on the privacy unit
    conn.execute("CREATE TABLE patients (patient_id int PRIMARY KEY, sex text NOT NULL CHECK (sex IN ('F', 'M')), age int)")
    conn.execute("INSERT INTO patients SELECT p, (ARRAY['F','M'])[1 + p % 2], 20 + p % 60 FROM generate_series(1, 3000) p")
    conn.execute("SELECT dp.protect('patients', dataset => 'visits', privacy_unit => 'patient_id')")
    conn.execute("SELECT dp.set_bounds('patients', 'age', 0, 100)")
    yield
    conn.execute("DROP VIEW IF EXISTS gw_analyst.grades")
    conn.execute("DROP SCHEMA gw_analyst CASCADE")
    conn.execute("DROP OWNED BY gw_analyst, gw_other")
    conn.execute("DROP ROLE gw_analyst")
    conn.execute("DROP ROLE gw_other")


@pytest.fixture
def analyst(pg, db):
    with pg.connect(db, user="gw_analyst") as c:
        yield c


def spent(conn, role="gw_analyst", dataset="staff"):
    """(epsilon the role's statements were charged at, delta of its partition selections): the ledger's
    asked_epsilon, the budget's basic_delta_spent.  (On budgets with delta, epsilon_spent grows by the zCDP
    conversion of the statements' rho: test_answers.py and test/unit/test_accountant.py check it.)"""
    return conn.execute("SELECT (SELECT coalesce(sum(asked_epsilon), 0) FROM dp.ledger l WHERE l.role = %s::regrole "
                        "AND l.dataset = %s), basic_delta_spent FROM dp_internal.budgets "
                        "WHERE role = %s::regrole AND dataset = %s", (role, dataset, role, dataset)).fetchone()


def ask(c, sql, epsilon=None):
    return [r[0] for r in c.execute("SELECT * FROM dp.query_json(%s, %s)", (sql, epsilon)).fetchall()]


def test_protect_revoked_select_and_found_public_values(conn, analyst):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        analyst.execute("SELECT count(*) FROM staff")
    rows = dict(conn.execute("SELECT column_name, values_source FROM dp.protected_columns "
                             "WHERE table_name = 'staff'::regclass AND values_source IS NOT NULL").fetchall())
    assert rows == {"team": "enum", "grade": "check", "remote": "boolean"}


def test_group_by_public_keys_releases_every_key(analyst, conn):
    before = spent(conn)[0]
    rows = ask(analyst, "SELECT team, count(*) AS n, avg(salary) FROM staff GROUP BY team ORDER BY team", 2.0)
    assert [r["team"] for r in rows] == ["sales", "eng", "ops", "legal"]  # enum order, empty 'legal' too
    counts = {r["team"]: r["n"] for r in rows}
    assert abs(counts["legal"]) < 40 and all(abs(counts[t] - 6667) < 40 for t in ("sales", "eng", "ops"))
    assert spent(conn)[0] - before == Decimal("2.0")


def test_typed_rows_and_cache(analyst, conn):
    sql = "SELECT grade, count(*) FROM staff WHERE age >= 30 GROUP BY grade"
    first = analyst.execute("SELECT * FROM dp.query(%s, 0.5) AS t(grade text, n bigint)", (sql,)).fetchall()
    after_first = spent(conn)[0]
    again = analyst.execute("SELECT * FROM dp.query(%s, 0.5) AS t(grade text, n bigint)", (sql,)).fetchall()
    assert first == again and spent(conn)[0] == after_first
    cost = analyst.execute("SELECT epsilon_cost, cached FROM dp.cost(%s, 0.5)", (sql,)).fetchone()
    assert cost == (Decimal(0), True)


def test_cost_and_explain_spend_nothing(analyst, conn):
    before = spent(conn)
    sql = "SELECT remote, count(*), stddev(age), percentile_cont(0.9) WITHIN GROUP (ORDER BY salary) FROM staff GROUP BY remote"
    dataset, eps, delta, cached, remaining, _ = analyst.execute("SELECT * FROM dp.cost(%s, 0.9)", (sql,)).fetchone()
    # the budget has a delta: the statement's rho adds to what was spent, its conversion grows by less than 0.9
    assert (dataset, delta, cached) == ("staff", Decimal(0), False) and Decimal(0) < eps < Decimal("0.9")
    rows = analyst.execute("SELECT column_name, data_type, mechanism, noise_scale, ci95, rho FROM dp.explain(%s, 0.9)",
                           (sql,)).fetchall()
    assert [r[:2] for r in rows] == [("remote", "boolean"), ("count", "bigint"), ("stddev", "double precision"),
                                     ("percentile_cont", "double precision")]
    import stats_helpers as H
    rho = H.zcdp_rho(0.9, 1e-4) / 3          # OpenDP's conversion at the budget's delta, a third per aggregate
    assert rows[1][2] == "Gaussian" and rows[1][5] == pytest.approx(rho, rel=1e-9)
    assert rows[1][3] == pytest.approx(1 / math.sqrt(2 * rho), rel=1e-6)
    assert rows[1][4] == pytest.approx(1.959964 / math.sqrt(2 * rho), rel=1e-5)
    assert spent(conn) == before


def test_partition_selection_hides_rare_groups(analyst, conn):
    before = spent(conn)
    rows = ask(analyst, "SELECT city, count(*) FROM staff GROUP BY city", 1.0)
    cities = {r["city"] for r in rows}
    assert cities == {"Paris", "Lyon"}  # 'Atlantis' has one row: below the threshold
    after = spent(conn)
    assert after[0] - before[0] == Decimal("1.0") and after[1] - before[1] == Decimal("0.000001")


def test_contribution_bounding_per_unit(analyst, conn):
    rows = ask(analyst, "SELECT ward, count(*), sum(cost) FROM visits GROUP BY ward ORDER BY ward", 2.0)
    # 1500 patients per ward, each bounded to 2 of their 6 visits
    for r in rows:
        assert abs(r["count"] - 3000) < 100
        assert abs(r["sum"] - 300000) < 30 * 2 * 200  # noise scale 2 rows x 200 / epsilon 1
    ledger = conn.execute("SELECT mechanism FROM dp.ledger WHERE dataset = 'visits' ORDER BY id DESC LIMIT 1").fetchone()
    assert "count" in ledger[0]


def test_dp_aggregates_inside_gateway_use_their_own_epsilon(analyst, conn):
    before = spent(conn)[0]
    rows = ask(analyst, "SELECT dp_avg(age, 0, 100, 0.3) AS a, dp_count(age, 0.2) AS n FROM staff WHERE remote")
    assert abs(rows[0]["a"] - 39.5) < 1 and abs(rows[0]["n"] - 10000) < 100
    assert spent(conn)[0] - before == Decimal("0.5")


def test_data_change_invalidates_cache(analyst, conn):
    sql = "SELECT count(*) FROM staff WHERE grade = 'A'"
    ask(analyst, sql, 0.1)
    before = spent(conn)[0]
    ask(analyst, sql, 0.1)
    assert spent(conn)[0] == before
    conn.execute("UPDATE staff SET age = age WHERE id = 1")
    ask(analyst, sql, 0.1)
    assert spent(conn)[0] == before + Decimal("0.1")


def test_create_view_is_typed_and_cached(analyst, conn):
    analyst.execute("SELECT dp.create_view('gw_analyst.grades', 'SELECT grade, count(*) AS n FROM staff GROUP BY grade', 0.4)")
    cols = analyst.execute("SELECT column_name, data_type FROM information_schema.columns "
                           "WHERE table_name = 'grades' ORDER BY ordinal_position").fetchall()
    assert cols == [("grade", "text"), ("n", "bigint")]
    first = analyst.execute("SELECT * FROM gw_analyst.grades ORDER BY grade").fetchall()
    after = spent(conn)[0]
    assert analyst.execute("SELECT * FROM gw_analyst.grades ORDER BY grade").fetchall() == first
    assert spent(conn)[0] == after
    assert [g for g, _ in first] == ["A", "B", "C", None]  # grade is nullable: NULL is a key too


def test_budget_views_show_only_own_rows(pg, db, conn):
    conn.execute("SELECT dp.grant_budget('gw_other', 'staff', 1.0)")
    with pg.connect(db, user="gw_other") as other:
        assert [r[0] for r in other.execute("SELECT role::text FROM dp.budgets").fetchall()] == ["gw_other"]
        assert other.execute("SELECT count(*) FROM dp.ledger").fetchone()[0] == 0
        assert other.execute("SELECT dataset, epsilon_remaining FROM dp.my_budget()").fetchall() == [("staff", Decimal("1.0"))]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            other.execute("SELECT * FROM dp_internal.budgets")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            other.execute("SELECT dp.grant_budget('gw_other', 'staff', 100)")


def test_refusal_when_budget_is_short(analyst, conn):
    before = spent(conn)
    with pytest.raises(psycopg.errors.ConfigurationLimitExceeded) as e:
        ask(analyst, "SELECT count(*) FROM staff WHERE age < 25", 1000)
    assert "insufficient budget" in str(e.value) and e.value.diag.message_hint
    assert spent(conn) == before


def test_no_budget_on_dataset(pg, db):
    with pg.connect(db, user="gw_other") as other:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no privacy budget"):
            ask(other, "SELECT count(*) FROM visits", 0.1)


def test_dummy_table_from_public_metadata(analyst):
    name = analyst.execute("SELECT dp.dummy('staff', 50, 7)").fetchone()[0]
    assert name == "pg_temp.staff"
    rows = analyst.execute("SELECT team::text, grade, salary, age FROM staff").fetchall()
    assert len(rows) == 50
    assert all(t in ("sales", "eng", "ops", "legal") and g in ("A", "B", "C") and 0 <= s <= 10000 and 0 <= a <= 100
               for t, g, s, a in rows)
    analyst.execute("DROP TABLE pg_temp.staff")


def test_psql_analyst_session(pg, db):
    out = pg.psql("SELECT * FROM dp.query('SELECT count(*) FROM staff WHERE age > 50', 0.2) AS t(n bigint)",
                  dbname=db, user="gw_analyst")
    n = int(out.stdout.split("\n")[2])
    assert abs(n - 4500) < 300


def test_json_rows_have_native_types(analyst):
    rows = ask(analyst, "SELECT remote, count(*) FROM staff GROUP BY remote ORDER BY remote", 0.2)
    assert [r["remote"] for r in rows] == [False, True, None] or [r["remote"] for r in rows] == [False, True]
    assert all(isinstance(r["count"], int) for r in rows)
    json.dumps(rows)


def test_join_on_the_privacy_unit(analyst):
    rows = ask(analyst, "SELECT p.sex, count(*) AS n, sum(v.cost) AS total FROM patients p "
                        "JOIN visits v ON p.patient_id = v.patient_id WHERE p.age >= 20 GROUP BY p.sex ORDER BY sex", 2.0)
    assert [r["sex"] for r in rows] == ["F", "M"]
    for r in rows:  # 1500 patients per sex, 6 visits each bounded to 2
        assert abs(r["n"] - 3000) < 100 and abs(r["total"] - 300000) < 30 * 2 * 200
    rows = ask(analyst, "SELECT ward, count(*) FROM patients JOIN visits USING (patient_id) GROUP BY ward", 1.0)
    assert len(rows) == 2


@pytest.mark.parametrize("sql, message", [
    ("SELECT count(*) FROM patients p JOIN visits v ON p.age = v.patient_id", "privacy unit"),
    ("SELECT count(*) FROM patients p LEFT JOIN visits v ON p.patient_id = v.patient_id", "inner JOIN"),
    ("SELECT count(*) FROM staff s JOIN visits v ON s.id = v.patient_id", "different datasets"),
    ("SELECT count(age) FROM patients p JOIN visits v USING (patient_id)", None),
])
def test_join_refusals(analyst, sql, message):
    if message is None:  # age exists only in patients: resolved, not refused
        assert ask(analyst, sql, 0.1)
        return
    with pytest.raises(psycopg.errors.FeatureNotSupported, match=message):
        ask(analyst, sql, 0.1)


def test_bounding_runs_on_a_bounded_copy_rebuilt_with_the_data(analyst, conn):
    """Contribution bounding is computed once per data version and GROUP BY columns, in a copy
    only the extension owner reads; answers stay bounded, and a write rebuilds the copy."""
    conn.execute("SELECT dp.grant_budget('gw_analyst', 'visits', 10.0)")
    rows = ask(analyst, "SELECT ward, count(*) FROM visits WHERE cost >= 0 GROUP BY ward ORDER BY ward", 1.0)
    assert all(abs(r["count"] - 3000) < 100 for r in rows)           # 2 of each patient's 6 visits
    copies = conn.execute("SELECT keys, relname, data_version FROM dp_internal.bounded_copies "
                          "WHERE relid = 'visits'::regclass AND keys LIKE '\"ward\"|%%'").fetchall()
    assert len(copies) == 1
    relname = copies[0][1]
    # another question on the same columns builds the copy (the first one asked is bounded on its own) or
    # reuses it; no GROUP BY gets its own
    ask(analyst, "SELECT ward, avg(cost) FROM visits GROUP BY ward", 1.0)
    version = conn.execute("SELECT data_version FROM dp_internal.bounded_copies WHERE relname = %s",
                           (relname,)).fetchone()[0]
    for part in ("a", "b", "c"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            analyst.execute(f"SELECT count(*) FROM dp_internal.{relname}_{part}")
    rows = ask(analyst, "SELECT count(*) FROM visits", 1.0)
    assert abs(rows[0]["count"] - 6000) < 100
    assert conn.execute("SELECT count(*) FROM dp_internal.bounded_copies WHERE relid = 'visits'::regclass "
                        "AND (keys LIKE '\"ward\"|%' OR keys LIKE '|%')").fetchone()[0] == 2
    # a write bumps the data version: the next question rebuilds the copy from the new rows
    conn.execute("INSERT INTO visits SELECT p, 'a', 50 FROM generate_series(3001, 4000) p, generate_series(1, 6)")
    rows = ask(analyst, "SELECT ward, count(*) FROM visits GROUP BY ward ORDER BY ward", 1.0)
    assert abs(rows[0]["count"] - 5000) < 100
    # the new version's contribution estimate may choose other bounds (a copy of its own, built when
    # asked a second time); the copy of the old version may still be listed: the newest one counts
    ask(analyst, "SELECT ward, sum(cost) FROM visits GROUP BY ward", 1.0)
    assert conn.execute("SELECT max(data_version) FROM dp_internal.bounded_copies WHERE keys LIKE '\"ward\"|%' "
                        "AND relid = 'visits'::regclass").fetchone()[0] > version
    conn.execute("DELETE FROM visits WHERE patient_id > 3000")
    # a new column (ALTER TABLE bumps no data version) rebuilds the copy too
    conn.execute("ALTER TABLE visits ADD COLUMN note text")
    try:
        rows = ask(analyst, "SELECT ward, count(*) FROM visits WHERE note IS NULL GROUP BY ward ORDER BY ward", 1.0)
        assert all(abs(r["count"] - 3000) < 100 for r in rows)
    finally:
        conn.execute("ALTER TABLE visits DROP COLUMN note")
    # with copies turned off every query bounds itself, with the same result
    conn.execute("SELECT dp.set_setting('bounded_copies', '0')")
    try:
        rows = ask(analyst, "SELECT ward, count(*) FROM visits WHERE cost > 1 GROUP BY ward ORDER BY ward", 1.0)
        assert all(abs(r["count"] - 3000) < 100 for r in rows)
    finally:
        conn.execute("SELECT dp.set_setting('bounded_copies', '4')")
