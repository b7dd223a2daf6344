"""Plain SQL on protected tables through the hook (src/sql_hook/hook.c), on a real server.

The database sets session_preload_libraries = 'pg_dp', so a restricted role's
SELECT over a protected table is answered by the gateway: DP answer, charged
once.  Other statements and roles that may read the table are left alone.
"""

from decimal import Decimal
import subprocess

import psycopg
import pytest


@pytest.fixture(scope="module", autouse=True)
def setup(conn, pg, db):
    conn.execute(f'ALTER DATABASE "{db}" SET session_preload_libraries = \'pg_dp\'')
    conn.execute("CREATE TABLE people (id int PRIMARY KEY, age int, sex text CHECK (sex IN ('F', 'M')) NOT NULL, "
                 "city text)")
    conn.execute("INSERT INTO people SELECT g, 18 + g % 70, CASE WHEN g % 3 = 0 THEN 'M' ELSE 'F' END, "
                 "'city' || (g % 5) FROM generate_series(1, 30000) g")
    conn.execute("CREATE TABLE open_data (k int)")
    conn.execute("INSERT INTO open_data VALUES (1), (2)")
    conn.execute("CREATE ROLE bi LOGIN")
    conn.execute("GRANT SELECT ON open_data TO bi")
    conn.execute("SELECT dp.protect('people')")
    conn.execute("SELECT dp.set_bounds('people', 'age', 0, 100)")
    conn.execute("SELECT dp.grant_budget('bi', 'people', 30, 1e-5)")
    yield
    conn.execute("DROP OWNED BY bi")
    conn.execute("DROP ROLE bi")


@pytest.fixture
def bi(pg, db):
    with pg.connect(db, user="bi") as c:
        yield c


def spent(conn):
    return conn.execute("SELECT epsilon_spent FROM dp.budgets WHERE role = 'bi'::regrole").fetchone()[0]


def test_plain_group_by_is_answered_with_dp(bi, conn):
    before = spent(conn)
    cur = bi.execute("SELECT sex, count(*), avg(age) FROM people GROUP BY sex")
    rows = sorted(cur.fetchall())
    assert [d.name for d in cur.description] == ["sex", "count", "avg"]
    assert [r[0] for r in rows] == ["F", "M"]
    assert abs(rows[0][1] - 20000) < 200 and abs(rows[1][1] - 10000) < 200
    assert spent(conn) == before + Decimal("1.0")
    # the same statement again: the cached answer, free
    assert sorted(bi.execute("SELECT sex, count(*), avg(age) FROM people GROUP BY sex").fetchall()) == rows
    assert spent(conn) == before + Decimal("1.0")


def test_plain_sql_in_psql_and_multi_statement_strings(pg, db, conn):
    out = pg.psql("SELECT count(*) AS n FROM people WHERE age > 50; SELECT k FROM open_data ORDER BY k",
                  dbname=db, user="bi")
    assert " n " in out.stdout and "(2 rows)" in out.stdout


def test_owner_and_open_tables_are_left_alone(bi, conn):
    assert conn.execute("SELECT count(*) FROM people").fetchone()[0] == 30000
    assert bi.execute("SELECT sum(k) FROM open_data").fetchone()[0] == 3


def test_refusals_read_like_postgresql(bi, conn):
    before = spent(conn)
    with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
        bi.execute("SELECT max(age) FROM people")
    assert "not supported" in e.value.diag.message_primary and e.value.diag.message_hint
    assert not e.value.diag.message_primary.startswith("plpy")
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
        bi.execute("SELECT age FROM people WHERE id = 7")
    assert "never released" in e.value.diag.message_primary and "dp_synthesize" in e.value.diag.message_hint
    assert spent(conn) == before


def test_attack_explain_of_a_protected_table(bi):
    for sql in ["EXPLAIN SELECT count(*) FROM people WHERE id = 7",
                "EXPLAIN (ANALYZE) SELECT count(*) FROM people WHERE id = 7"]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            bi.execute(sql)
        assert "EXPLAIN" in e.value.diag.message_primary


def test_sub_selects_and_ctes_are_measurements_row_reads_are_refused(bi, conn):
    """A row-level sub-select or CTE under an aggregate is part of the measurement, and a scalar
    sub-select is a measurement of its own (issue 19); rows are still never read: a row-level read
    in a sub-query of WHERE, a cursor, a view, COPY keep "permission denied" (no synthetic copy)."""
    before = spent(conn)
    # Laplace scale 1 at epsilon 1 (no unit): |noise| < 25 fails with probability e^-25 < 1.4e-11
    for sql, truth in [("SELECT count(*) FROM (SELECT * FROM people WHERE age > 40) s", 30000 - 23 * 30000 // 70),
                       ("WITH p AS (SELECT * FROM people) SELECT count(*) FROM p", 30000),
                       ("SELECT (SELECT count(*) FROM people WHERE id = 7)", 1)]:
        n = bi.execute(sql).fetchone()[0]
        assert abs(n - truth) < 25 + 430, sql
    assert spent(conn) == before + 3
    before = spent(conn)
    for sql in ["SELECT count(*) FROM open_data WHERE k IN (SELECT age FROM people)",
                "SELECT count(*) FROM people WHERE age IN (SELECT age FROM people WHERE id = 7)"]:
        with pytest.raises(psycopg.Error) as e:
            bi.execute(sql)
        assert e.value.diag.sqlstate in ("42501", "0A000") and e.value.diag.message_hint
    bi.execute("BEGIN")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        bi.execute("DECLARE c CURSOR FOR SELECT age FROM people WHERE id = 7")
    bi.execute("ROLLBACK")
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:     # refused when it is created
        bi.execute("CREATE TEMP VIEW v AS SELECT * FROM people")
    assert e.value.diag.message_hint
    with pytest.raises(psycopg.Error):
        bi.execute("COPY (SELECT age FROM people WHERE id = 7) TO STDOUT")
    assert spent(conn) == before


def test_attack_rollback_does_not_refund_plain_sql(pg, db, conn):
    before = spent(conn)
    with pg.connect(db, user="bi", autocommit=False) as c:
        c.execute("SELECT count(*) FROM people WHERE age > 61").fetchall()
        c.rollback()
    assert spent(conn) == before + Decimal("1.0")


def test_prepared_statement_without_parameters(bi, conn):
    before = spent(conn)
    for _ in range(6):      # psycopg prepares server-side after the 5th execution
        rows = bi.execute("SELECT sex, count(*) FROM people WHERE age > 70 GROUP BY sex", prepare=True).fetchall()
        assert len(rows) == 2
    assert spent(conn) == before + Decimal("1.0")


def test_native_result_types(bi):
    cur = bi.execute("SELECT sex, count(*), avg(age), sum(age) FROM people WHERE age > 20 GROUP BY sex")
    cur.fetchall()
    assert [d.type_code for d in cur.description] == [25, 20, 1700, 20]    # text, bigint, numeric, bigint


@pytest.mark.parametrize("sql", [
    # Superset: the chart's query wrapped as a virtual table, ordered and limited outside
    'SELECT sex AS sex, n AS n FROM (SELECT sex, count(*) AS n FROM people GROUP BY sex) AS virtual_table '
    'ORDER BY n DESC LIMIT 1000',
    # Metabase: a comment first, a sub-select, arithmetic over the noisy values
    '-- Metabase\nSELECT "source"."sex" AS "sex", "source"."n" * 2 AS "twice" FROM '
    '(SELECT "public"."people"."sex" AS "sex", count(*) AS "n" FROM "public"."people" '
    'GROUP BY "public"."people"."sex") AS "source" ORDER BY "source"."sex" ASC',
])
def test_bi_wrappers_are_post_processed_by_postgresql(bi, conn, sql):
    before = spent(conn)
    rows = bi.execute(sql).fetchall()
    assert len(rows) == 2
    assert spent(conn) - before in (Decimal("0"), Decimal("1.0"))
    if "DESC" in sql:
        assert rows[0][1] >= rows[1][1]
    else:
        assert [r[0] for r in rows] == ["F", "M"]


def test_row_preview_reads_the_synthetic_copy(bi, conn):
    """BI tools open a table with SELECT col, ... LIMIT n: answered from the synthetic copy."""
    conn.execute("CREATE TABLE pets (id int PRIMARY KEY, kind text CHECK (kind IN ('cat', 'dog')) NOT NULL, age int)")
    conn.execute("INSERT INTO pets SELECT g, CASE WHEN g % 3 = 0 THEN 'dog' ELSE 'cat' END, g % 15 "
                 "FROM generate_series(1, 400) g")
    conn.execute("SELECT dp.protect('pets')")
    conn.execute("SELECT dp.set_bounds('pets', 'age', 0, 15)")
    conn.execute("SELECT dp.grant_budget('bi', 'pets', 5, 1e-5)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        bi.execute("SELECT kind, age FROM pets LIMIT 10")
    bi.execute("CALL dp.dp_synthesize('public.pets', epsilon => 2)")
    notices = []
    bi.add_notice_handler(lambda d: notices.append(d.message_primary))
    rows = bi.execute("SELECT kind, age FROM pets LIMIT 10").fetchall()
    assert len(rows) == 10 and {r[0] for r in rows} <= {"cat", "dog"}
    assert any("synthetic copy" in n for n in notices)
    # bi's own copy, in its shadow schema (issue 17)
    # tools that drop NOTICEs: dp.explain and the copy's comment say the rows are synthetic
    lines = bi.execute("SELECT mechanism, note FROM dp.explain('SELECT kind, age FROM pets LIMIT 10')").fetchall()
    assert lines[0][0] == "synthetic copy" and "no row is a real one" in lines[0][1]
    assert "synthetic copy" in bi.execute("SELECT obj_description('dp_synthetic_bi.pets'::regclass)").fetchone()[0]
    # a row-level sub-select under a preview reads the copy too ...
    copy = conn.execute("SELECT id, kind, age FROM dp_synthetic_bi.pets ORDER BY id").fetchall()
    assert bi.execute("SELECT * FROM (SELECT * FROM pets) p ORDER BY id").fetchall() == copy
    # ... but under an aggregate it is part of a DP measurement of the real rows (a virtual dataset):
    # Laplace scale 1 (epsilon 1, no unit), |noise| < 30 fails with probability e^-30
    assert abs(bi.execute("SELECT count(*) FROM (SELECT * FROM pets) p").fetchone()[0] - 400) < 30


def test_epsilon_without_a_wrapper(bi, conn):
    """A BI tool passes no epsilon: the DBA sets the role's default and maximum per statement,
    and the analyst may choose within it with SET pg_dp.epsilon (every release is charged)."""
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        conn.execute("SELECT dp.set_query_epsilon('bi', 'people', 0.9, 0.5)")
    assert e.value.diag.message_hint
    conn.execute("SELECT dp.set_query_epsilon('bi', 'people', 0.2, 0.5)")
    try:
        before = spent(conn)
        bi.execute("SELECT count(*) FROM people WHERE age > 81").fetchall()
        assert spent(conn) == before + Decimal("0.2")
        bi.execute("SET pg_dp.epsilon = 0.4")
        bi.execute("SELECT count(*) FROM people WHERE age > 82").fetchall()
        assert spent(conn) == before + Decimal("0.6")
        bi.execute("SET pg_dp.epsilon = 0.9")
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded) as e:
            bi.execute("SELECT count(*) FROM people WHERE age > 83")
        assert "more than" in e.value.diag.message_primary
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded):   # an explicit epsilon is bounded too
            bi.execute("SELECT * FROM dp.query('SELECT count(*) FROM people WHERE age > 84', 3.0) AS t(n bigint)")
        assert spent(conn) == before + Decimal("0.6")
        assert bi.execute("SELECT default_epsilon, max_epsilon FROM dp.my_budget()").fetchone() is not None
    finally:
        bi.execute("RESET pg_dp.epsilon")
        conn.execute("SELECT dp.set_query_epsilon('bi', 'people', NULL, NULL)")


def test_an_empty_partition_selection_says_why(bi, conn):
    conn.execute("CREATE TABLE IF NOT EXISTS few (id int, city text)")
    conn.execute("INSERT INTO few VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    conn.execute("SELECT dp.protect('few')")
    conn.execute("SELECT dp.grant_budget('bi', 'few', 5, 1e-5)")
    notices = []
    bi.add_notice_handler(lambda d: notices.append((d.message_primary, d.message_hint)))
    assert bi.execute("SELECT city, count(*) FROM few GROUP BY city").fetchall() == []
    assert any("no group was released" in m and h for m, h in notices)


def test_parameters_of_the_extended_protocol(bi, conn):
    """psycopg sends $1 with its value (extended protocol): the value is a constant of the question."""
    before = spent(conn)
    first = bi.execute("SELECT sex, count(*) FROM people WHERE age > %s GROUP BY sex", [55]).fetchall()
    assert len(first) == 2 and spent(conn) == before + Decimal("1.0")
    assert bi.execute("SELECT sex, count(*) FROM people WHERE age > %s GROUP BY sex", [55]).fetchall() == first
    assert spent(conn) == before + Decimal("1.0")          # the same value: the same question, cached
    bi.execute("SELECT sex, count(*) FROM people WHERE age > %s GROUP BY sex", [56]).fetchall()
    assert spent(conn) == before + Decimal("2.0")          # another value: another question
    assert bi.execute("SELECT count(*) FROM people WHERE age > %s AND sex = %s", [30, None]).fetchone()[0] is not None


def test_prepared_statement_with_parameters(bi, conn):
    """psycopg prepares server-side from the 5th execution (JDBC likewise after prepareThreshold)."""
    before = spent(conn)
    answers = {tuple(bi.execute("SELECT sex, count(*) FROM people WHERE age BETWEEN %s AND %s GROUP BY sex",
                                [40, 44], prepare=True).fetchall()) for _ in range(7)}
    assert len(answers) == 1 and spent(conn) == before + Decimal("1.0")
    rows = bi.execute("SELECT sex, count(*) FROM people WHERE age BETWEEN %s AND %s GROUP BY sex",
                      [45, 49], prepare=True).fetchall()
    assert len(rows) == 2 and spent(conn) == before + Decimal("2.0")


def test_prepare_execute_and_cursors_in_psql(pg, db, conn):
    before = spent(conn)
    out = pg.psql("PREPARE q(int) AS SELECT count(*) AS n FROM people WHERE age > $1; "
                  "EXECUTE q(77); EXECUTE q(77); DEALLOCATE q", dbname=db, user="bi")
    assert out.stdout.count("(1 row)") == 2 and spent(conn) == before + Decimal("1.0")
    # psql's FETCH_COUNT reads answers through a cursor (DECLARE ... CURSOR FOR SELECT ...)
    out = subprocess_psql(pg, db, "SELECT sex, count(*) FROM people WHERE age > 78 GROUP BY sex", fetch_count=1)
    assert "(2 rows)" in out and spent(conn) == before + Decimal("2.0")


def subprocess_psql(pg, db, sql, fetch_count):
    out = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-v", f"FETCH_COUNT={fetch_count}",
                          "-h", pg.host, "-p", str(pg.port), "-U", "bi", "-d", db, "-c", sql],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_attack_session_settings_do_not_change_parameters(bi, conn):
    """A date or timestamptz parameter means the same day whatever the session's DateStyle and TimeZone."""
    conn.execute("CREATE TABLE IF NOT EXISTS stays (id int, day date, at timestamptz)")
    conn.execute("TRUNCATE stays")
    conn.execute("INSERT INTO stays SELECT g, DATE '2021-01-01' + g % 365, "
                 "TIMESTAMPTZ '2021-01-01 00:00+00' + g % 365 * INTERVAL '1 day' FROM generate_series(1, 3000) g")
    conn.execute("SELECT dp.protect('stays')")
    conn.execute("SELECT dp.grant_budget('bi', 'stays', 10, 1e-5)")
    import datetime as dt
    sql = "SELECT count(*) FROM stays WHERE day < %s AND at < %s"
    day, at = dt.date(2021, 2, 3), dt.datetime(2021, 2, 3, 12, tzinfo=dt.timezone.utc)
    first = bi.execute(sql, [day, at]).fetchone()[0]
    before = spent(conn)
    bi.execute("SET DateStyle = 'SQL, DMY'")
    bi.execute("SET TimeZone = 'Pacific/Kiritimati'")
    try:
        assert bi.execute(sql, [day, at]).fetchone()[0] == first      # the same question: cached, free
        assert spent(conn) == before
    finally:
        bi.execute("RESET DateStyle")
        bi.execute("RESET TimeZone")


def test_the_cache_is_keyed_by_what_is_released(bi, conn):
    """A dashboard refreshed with other aliases, column order, ORDER BY or LIMIT asks the same
    measurements: the same noisy values, at no cost."""
    before = spent(conn)
    first = dict((r[0], r[1:]) for r in bi.execute(
        "SELECT sex, count(*), avg(age) FROM people WHERE city = 'city3' GROUP BY sex").fetchall())
    assert spent(conn) == before + Decimal("1.0")
    again = bi.execute('SELECT avg(p.age) AS "Mean age", p.sex AS "Sex", count(*) AS n FROM public.people p '
                       "WHERE (p.city = 'city3') GROUP BY 2 ORDER BY 3 DESC LIMIT 1").fetchall()
    assert len(again) == 1 and first[again[0][1]] == (again[0][2], again[0][0])
    wrapped = bi.execute("SELECT * FROM (SELECT count(*) AS c, sex, avg(age) AS a FROM people "
                         "WHERE city = 'city3' GROUP BY sex) AS virtual_table ORDER BY sex").fetchall()
    assert {r[1]: (r[0], r[2]) for r in wrapped} == first
    assert spent(conn) == before + Decimal("1.0")


def test_psql_introspection_keeps_working_for_a_restricted_role(pg, db, conn):
    """psql's \\d, \\dt and \\df read the catalog, never the rows: they work as for any role;
    the planner's statistics of a protected table stay hidden."""
    for meta, expect in [("\\d people", "sex"), ("\\dt", "people"), ("\\df dp.*", "dp_count"),
                         ("\\d+ people", "age")]:
        out = pg.psql(meta, dbname=db, user="bi")
        assert expect in out.stdout, meta
    conn.execute("ANALYZE people")
    out = pg.psql("SELECT count(*) FROM pg_stats WHERE tablename = 'people'", dbname=db, user="bi")
    assert "     0" in out.stdout
    denied = pg.psql("SELECT * FROM pg_statistic LIMIT 1", dbname=db, user="bi", check=False)
    assert denied.returncode != 0 and "permission denied" in denied.stderr


@pytest.mark.parametrize("sql, check", [
    ("SELECT sex, count(*) AS n FROM people GROUP BY sex HAVING count(*) > 15000",
     lambda rows: [r[0] for r in rows] == ["F"]),
    ("SELECT sex, round(avg(age), 1) AS mean, sum(age) / count(*) AS ratio FROM people GROUP BY sex ORDER BY 2 DESC",
     lambda rows: len(rows) == 2 and all(0 <= r[1] <= 100 and isinstance(r[2], int) for r in rows)),
    ("SELECT sex FROM people GROUP BY sex ORDER BY count(*) DESC LIMIT 1", lambda rows: rows == [("F",)]),
    ("SELECT lower(sex) AS s, count(*)::int AS n FROM people GROUP BY sex ORDER BY s",
     lambda rows: [r[0] for r in rows] == ["f", "m"] and isinstance(rows[0][1], int)),
    ("SELECT count(*) * 2 AS twice, avg(age) - 1 AS less FROM people WHERE age > 50",
     lambda rows: abs(rows[0][0] - 2 * 15844) < 200),
    ("SELECT city, count(*) FROM people GROUP BY city HAVING avg(age) > 0 AND count(*) > 10 ORDER BY city",
     lambda rows: len(rows) == 5),
])
def test_post_processing_is_sql_over_the_released_rows(bi, conn, sql, check):
    """HAVING, round(), casts, arithmetic between aggregates, ORDER BY an aggregate not selected:
    PostgreSQL evaluates them over the DP core's noisy rows (src/sql_hook/hook.c split_level)."""
    before = spent(conn)
    rows = bi.execute(sql).fetchall()
    assert check(rows), rows
    assert spent(conn) - before <= Decimal("1.0")          # one charge for the whole statement at most
    assert bi.execute(sql).fetchall() == rows               # again: the same measurements, cached


def test_functions_and_do_blocks_answer_as_plain_sql(pg, db, bi, conn):
    """Inside PL/pgSQL (DO blocks, functions, variables as parameters) and SQL functions a statement
    is answered as at the prompt, for the current user: in a SECURITY DEFINER function its owner,
    who is charged (or, if the owner may read the table, reads it as PostgreSQL's rights say)."""
    before = spent(conn)
    notices = []
    bi.add_notice_handler(lambda d: notices.append(d.message_primary))
    bi.execute("DO $$ DECLARE n bigint; BEGIN SELECT count(*) INTO n FROM people WHERE age > 30; "
               "RAISE NOTICE 'n=%', n; END $$")
    n = int(next(m for m in notices if m.startswith("n="))[2:])
    assert abs(n - 30000 * 57 // 70) < 60            # Laplace scale 1: fails with probability < e^-35
    assert spent(conn) == before + 1
    bi.execute("CREATE FUNCTION pg_temp.older(min_age int) RETURNS bigint LANGUAGE plpgsql AS "
               "$$ DECLARE n bigint; BEGIN SELECT count(*) INTO n FROM people WHERE age > min_age; RETURN n; END $$")
    assert abs(bi.execute("SELECT pg_temp.older(80)").fetchone()[0] - 30000 * 7 // 70) < 60
    assert abs(bi.execute("SELECT pg_temp.older(80)").fetchone()[0] - 30000 * 7 // 70) < 60
    assert spent(conn) == before + 2                 # the variable is a parameter: the same question, cached
    bi.execute("CREATE FUNCTION pg_temp.total() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM people WHERE age <> 333'")
    assert abs(bi.execute("SELECT pg_temp.total()").fetchone()[0] - 30000) < 60
    assert spent(conn) == before + 3
    # a SECURITY DEFINER function runs as its owner: the owner's budget pays, the caller's does not
    conn.execute("CREATE ROLE fn_owner LOGIN")
    try:
        conn.execute("SELECT dp.grant_budget('fn_owner', 'people', 5, 1e-5)")
        conn.execute("CREATE FUNCTION public.owner_count() RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER AS "
                     "$$ DECLARE n bigint; BEGIN SELECT count(*) INTO n FROM people WHERE age < 25; RETURN n; END $$")
        conn.execute("ALTER FUNCTION public.owner_count() OWNER TO fn_owner")
        before = spent(conn)
        bi.execute("SELECT public.owner_count()").fetchone()
        assert spent(conn) == before
        assert conn.execute("SELECT epsilon_spent FROM dp.budgets WHERE role = 'fn_owner'::regrole").fetchone()[0] == 1
    finally:
        conn.execute("DROP FUNCTION IF EXISTS public.owner_count()")
        conn.execute("DROP OWNED BY fn_owner")
        conn.execute("DROP ROLE fn_owner")


def test_preview_of_a_partitioned_table_reads_its_copy(bi, conn):
    """Issue 17: the copy of a partitioned table is a plain table; reading it in the table's place
    used to keep the partitioned kind and return no row."""
    conn.execute("CREATE TABLE events (id int, day date NOT NULL, kind text CHECK (kind IN ('x', 'y')) NOT NULL) "
                 "PARTITION BY RANGE (day)")
    conn.execute("CREATE TABLE events_2021 PARTITION OF events FOR VALUES FROM ('2021-01-01') TO ('2022-01-01')")
    conn.execute("CREATE TABLE events_2022 PARTITION OF events FOR VALUES FROM ('2022-01-01') TO ('2023-01-01')")
    conn.execute("INSERT INTO events SELECT g, DATE '2021-01-01' + g % 700, CASE WHEN g % 3 = 0 THEN 'x' ELSE 'y' END "
                 "FROM generate_series(1, 2000) g")
    conn.execute("SELECT dp.protect('events')")
    conn.execute("SELECT dp.set_bounds('events', 'day', '2021-01-01', '2022-12-31')")
    conn.execute("SELECT dp.grant_budget('bi', 'events', 5, 1e-5)")
    bi.execute("CALL dp.dp_synthesize('public.events', epsilon => 1)")
    copy = conn.execute("SELECT count(*) FROM dp_synthetic_bi.events").fetchone()[0]     # bi's own copy
    assert copy > 1000
    rows = bi.execute("SELECT id, day, kind FROM events ORDER BY id, day, kind").fetchall()
    assert rows == conn.execute("SELECT id, day, kind FROM dp_synthetic_bi.events ORDER BY id, day, kind").fetchall()
    assert len(bi.execute("SELECT * FROM events LIMIT 10").fetchall()) == 10
