"""Attacks that make the executor (connected as the extension owner, a superuser) run another
role's code: a relation replaced between the executor's checks and its reads, a protected column's
type given a cast by the table's owner, an expression index whose function the planner folds.

The executor checks a relation (the protected table, a dimension the caller may read) and reads it

The executor checks a relation (the protected table, a dimension the caller may read) and reads it
by name, later in that phase and in the phase after the charge (another transaction).  Whoever owns
the relation can make the executor wait for a lock on it (LOCK TABLE in an open transaction), and,
while it waits, replace it: rename it and create a view of its name whose query calls the owner's
function, or give its enum column a cast to text.  Without pins (core/catalog.py: pin,
src/worker/pins.c) the view's query and the cast's function ran as the extension owner (a
superuser): mallory.leak recorded `postgres` as current_user.

Other roles' types and functions: the executor refuses, before any charge, columns of types that
are not built-in nor enums without casts (gateway/plan.py), and fmgr in an executor process calls no
function of a role that is not a superuser (src/worker/trust.c).

mallory: a budget on `orders`, her own schema.  app: owns the protected table `app.acct`, no
pg_dp administrator, no budget; bob asks about it.
"""

import threading
import time

import psycopg
import pytest


@pytest.fixture(scope="module", autouse=True)
def setup(conn, db):
    conn.execute(f'ALTER DATABASE "{db}" SET session_preload_libraries = \'pg_dp\'')
    for sql in [
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, product_id int, amount int)",
        "INSERT INTO orders SELECT g, g % 300, 1 + g % 20, g % 50 FROM generate_series(1, 3000) g",
        "SELECT dp.protect('orders', privacy_unit => 'customer_id', max_rows_per_unit => 10)",
        "SELECT dp.set_bounds('orders', 'amount', 0, 50)",
        "CREATE ROLE mallory LOGIN", "CREATE ROLE bob LOGIN", "CREATE ROLE app LOGIN",
        "CREATE SCHEMA mallory AUTHORIZATION mallory", "CREATE SCHEMA app AUTHORIZATION app",
        "SELECT dp.grant_budget('mallory', 'orders', 100, 1e-3)",
        "CREATE TABLE mallory.calls (who name)", "ALTER TABLE mallory.calls OWNER TO mallory",
        "GRANT INSERT ON mallory.calls TO PUBLIC", "GRANT USAGE ON SCHEMA mallory TO PUBLIC",
        "CREATE FUNCTION mallory.leak(anyelement) RETURNS boolean LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO mallory.calls VALUES (current_user); RETURN true; END $$",
        "CREATE TYPE mallory.color AS ENUM ('red', 'blue')",
        "CREATE FUNCTION mallory.color_text(mallory.color) RETURNS text LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO mallory.calls VALUES (current_user); RETURN 'x'; END $$",
        "ALTER FUNCTION mallory.leak(anyelement) OWNER TO mallory",
        "ALTER FUNCTION mallory.color_text(mallory.color) OWNER TO mallory",
        "ALTER TYPE mallory.color OWNER TO mallory",
        "CREATE TABLE app.acct (id int, cid int, v int)",
        "INSERT INTO app.acct SELECT g, g % 100, g % 10 FROM generate_series(1, 1000) g",
        "ALTER TABLE app.acct OWNER TO app",
        "SELECT dp.protect('app.acct', privacy_unit => 'cid', max_rows_per_unit => 20)",
        "SELECT dp.set_bounds('app.acct', 'v', 0, 10)",
        "SELECT dp.grant_budget('bob', 'acct', 100, 1e-3)", "GRANT USAGE ON SCHEMA app TO bob",
    ]:
        conn.execute(sql)
    yield
    for role in ("mallory", "bob", "app"):
        conn.execute(f"DROP OWNED BY {role} CASCADE")
        conn.execute(f"DROP ROLE {role}")


@pytest.fixture(autouse=True)
def mallory_tables(conn):
    conn.execute("DO $$ DECLARE v regclass; BEGIN FOR v IN SELECT c.oid FROM pg_class c WHERE c.relkind = 'v' "
                 "AND c.relnamespace = 'mallory'::regnamespace LOOP EXECUTE 'DROP VIEW ' || v; END LOOP; END $$")
    conn.execute("DROP TABLE IF EXISTS mallory.d1, mallory.d1_old, mallory.d2, mallory.d2_old")
    conn.execute("DROP CAST IF EXISTS (mallory.color AS text)")
    conn.execute("CREATE TABLE mallory.d1 (product_id int PRIMARY KEY, c mallory.color)")
    conn.execute("INSERT INTO mallory.d1 SELECT p, (ARRAY['red', 'blue']::mallory.color[])[1 + p % 2] "
                 "FROM generate_series(1, 20) p")
    conn.execute("CREATE TABLE mallory.d2 (product_id int PRIMARY KEY, z int)")
    conn.execute("INSERT INTO mallory.d2 SELECT p, p FROM generate_series(1, 20) p")
    conn.execute("ALTER TABLE mallory.d1 OWNER TO mallory")
    conn.execute("ALTER TABLE mallory.d2 OWNER TO mallory")
    conn.execute("DELETE FROM mallory.calls")


def ask_in_background(pg, db, user, sql):
    """Run sql as user in a thread; returns (thread, outcome dict)."""
    out = {}

    def run():
        try:
            with pg.connect(db, user=user) as c:
                out["rows"] = c.execute(sql).fetchall()
        except psycopg.Error as e:
            out["error"] = e
    t = threading.Thread(target=run)
    t.start()
    return t, out


def wait_for_a_waiter(conn, relation, waiters=1):
    for _ in range(400):
        n = conn.execute("SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND NOT granted",
                         [relation]).fetchone()[0]
        if n >= waiters:
            return
        time.sleep(0.05)
    raise AssertionError(f"nobody waited for {relation}")


def owner_code_ran(conn):
    return conn.execute("SELECT count(*) FROM mallory.calls WHERE who <> 'mallory'").fetchone()[0]


def refused_as_changed(out):
    assert "error" in out, f"answered after the swap: {out}"
    assert out["error"].diag.sqlstate == "40001", out["error"]


def test_attack_dimension_replaced_by_a_view_while_the_question_waits(pg, db, conn):
    with pg.connect(db, user="mallory", autocommit=False) as a:
        a.execute("LOCK TABLE mallory.d2 IN ACCESS EXCLUSIVE MODE")
        t, out = ask_in_background(pg, db, "mallory", """SELECT * FROM dp.query($$SELECT b.z, count(*) FROM orders o
            JOIN mallory.d2 b ON o.product_id = b.product_id WHERE o.amount > 3 GROUP BY 1$$) AS t(z int, n bigint)""")
        wait_for_a_waiter(conn, "mallory.d2")
        a.execute("ALTER TABLE mallory.d2 RENAME TO d2_old")
        a.execute("CREATE VIEW mallory.d2 AS SELECT product_id, z FROM mallory.d2_old WHERE mallory.leak(z)")
        a.commit()
    t.join(60)
    assert owner_code_ran(conn) == 0
    refused_as_changed(out)


def test_attack_dimension_replaced_between_the_charge_and_the_read(pg, db, conn):
    """The first phase holds d1 (checked) and waits for d2; mallory queues an exclusive lock on d1
    behind it, which she gets when the first phase commits: she replaces d1 before the second phase
    (the exact query) reads it."""
    with pg.connect(db, user="mallory", autocommit=False) as a, pg.connect(db, user="mallory") as b:
        a.execute("LOCK TABLE mallory.d2 IN ACCESS EXCLUSIVE MODE")
        t, out = ask_in_background(pg, db, "mallory", """SELECT * FROM dp.query($$SELECT count(*) FROM orders o
            JOIN mallory.d1 x ON o.product_id = x.product_id JOIN mallory.d2 y ON o.product_id = y.product_id
            WHERE o.amount > 4$$) AS t(n bigint)""")
        wait_for_a_waiter(conn, "mallory.d2")
        swap = threading.Thread(target=lambda: b.execute(
            "BEGIN; LOCK TABLE mallory.d1 IN ACCESS EXCLUSIVE MODE; ALTER TABLE mallory.d1 RENAME TO d1_old; "
            "CREATE VIEW mallory.d1 AS SELECT * FROM mallory.d1_old WHERE mallory.leak(product_id); COMMIT"))
        swap.start()
        wait_for_a_waiter(conn, "mallory.d1")
        a.commit()
        swap.join(60)
    t.join(60)
    assert owner_code_ran(conn) == 0
    refused_as_changed(out)


def test_attack_enum_cast_added_while_the_question_waits(pg, db, conn):
    """d1.c is an enum without casts when checked; while the first phase waits for d2, mallory gives
    it a cast to text, which reading its values (a public key set) would call."""
    with pg.connect(db, user="mallory", autocommit=False) as a:
        a.execute("LOCK TABLE mallory.d2 IN ACCESS EXCLUSIVE MODE")
        t, out = ask_in_background(pg, db, "mallory", """SELECT * FROM dp.query($$SELECT y.z, x.c, count(*)
            FROM orders o JOIN mallory.d1 x ON o.product_id = x.product_id JOIN mallory.d2 y
            ON o.product_id = y.product_id GROUP BY 1, 2$$) AS t(z int, c text, n bigint)""")
        wait_for_a_waiter(conn, "mallory.d2")
        a.execute("CREATE CAST (mallory.color AS text) WITH FUNCTION mallory.color_text(mallory.color)")
        a.commit()
    t.join(60)
    assert owner_code_ran(conn) == 0
    refused_as_changed(out)


def test_attack_protected_table_replaced_by_its_owner_while_a_question_waits(pg, db, conn):
    """app owns a protected table but is no administrator: while bob's question waits for the
    table, app renames it and creates a view of its name."""
    with pg.connect(db, user="app", autocommit=False) as a:
        a.execute("LOCK TABLE app.acct IN ACCESS EXCLUSIVE MODE")
        t, out = ask_in_background(pg, db, "bob", "SELECT * FROM dp.query('SELECT count(*) FROM app.acct "
                                                  "WHERE v > 2') AS t(n bigint)")
        wait_for_a_waiter(conn, "app.acct")
        a.execute("ALTER TABLE app.acct RENAME TO acct_old")
        a.execute("CREATE VIEW app.acct AS SELECT * FROM app.acct_old WHERE mallory.leak(id)")
        a.commit()
    t.join(60)
    assert owner_code_ran(conn) == 0
    refused_as_changed(out)
    with pg.connect(db, user="app") as a:
        a.execute("DROP VIEW app.acct")
        a.execute("ALTER TABLE app.acct_old RENAME TO acct")


def outcome(c, sql):
    try:
        return c.execute(sql).fetchall()
    except psycopg.Error as e:
        return e


def spent(conn, role):
    return conn.execute("SELECT coalesce(sum(epsilon_spent), 0) FROM dp.budgets WHERE role = %s::regrole",
                        [role]).fetchone()[0]


def test_attack_protected_column_type_given_a_cast_by_the_table_owner(pg, db, conn):
    """app (the table's owner, no administrator) gives a column an enum type of its own with a cast to
    text; grouping by it cast the keys with app's function, as the extension owner."""
    with pg.connect(db, user="app") as a:
        a.execute("CREATE TYPE app.k AS ENUM ('a', 'b')")
        a.execute("ALTER TABLE app.acct ADD COLUMN k app.k")
        a.execute("UPDATE app.acct SET k = (ARRAY['a', 'b']::app.k[])[1 + id % 2]")
        a.execute("CREATE FUNCTION app.k_text(app.k) RETURNS text LANGUAGE plpgsql AS "
                  "$$ BEGIN INSERT INTO mallory.calls VALUES (current_user); RETURN 'a'; END $$")
        a.execute("CREATE CAST (app.k AS text) WITH FUNCTION app.k_text(app.k)")
    conn.execute("DELETE FROM mallory.calls")
    before = spent(conn, "bob")
    with pg.connect(db, user="bob") as b:
        for sql in ["SELECT * FROM dp.query($$SELECT k, count(*) FROM app.acct GROUP BY k$$) AS t(k text, n bigint)",
                    "SELECT * FROM dp.query($$SELECT count(*) FROM app.acct WHERE k = 'a'$$) AS t(n bigint)"]:
            e = outcome(b, sql)
            assert owner_code_ran(conn) == 0
            assert isinstance(e, psycopg.Error) and e.diag.sqlstate == "42501" and e.diag.message_hint, e
    assert spent(conn, "bob") == before
    with pg.connect(db, user="app") as a:
        a.execute("ALTER TABLE app.acct DROP COLUMN k")


def test_attack_expression_index_folded_when_the_executor_plans(pg, db, conn):
    """PostgreSQL folds an index's expressions (immutable functions of constants) when a query plans
    over the table: mallory's index on her dimension, or app's on its protected table, ran their
    function as the extension owner."""
    conn.execute("CREATE OR REPLACE FUNCTION mallory.imm(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS "
                 "$$ BEGIN PERFORM mallory.leak($1); RETURN $1; END $$")
    conn.execute("ALTER FUNCTION mallory.imm(int) OWNER TO mallory")
    with pg.connect(db, user="mallory") as m:
        m.execute("CREATE INDEX ON mallory.d2 ((z + mallory.imm(0)))")
    conn.execute("DELETE FROM mallory.calls")
    before = spent(conn, "mallory")
    with pg.connect(db, user="mallory") as m:
        e = outcome(m, """SELECT * FROM dp.query($$SELECT y.z, count(*) FROM orders o JOIN mallory.d2 y
                          ON o.product_id = y.product_id GROUP BY 1$$) AS t(z int, n bigint)""")
    assert owner_code_ran(conn) == 0
    assert isinstance(e, psycopg.Error) and e.diag.sqlstate == "42501", e
    assert spent(conn, "mallory") == before
    with pg.connect(db, user="app") as a:
        a.execute("CREATE INDEX acct_imm ON app.acct ((v + mallory.imm(1)))")
    conn.execute("DELETE FROM mallory.calls")
    before = spent(conn, "bob")
    with pg.connect(db, user="bob") as b:
        e = outcome(b, "SELECT * FROM dp.query('SELECT count(*) FROM app.acct WHERE v > 5') AS t(n bigint)")
    assert owner_code_ran(conn) == 0
    assert isinstance(e, psycopg.Error), e
    assert spent(conn, "bob") == before
    with pg.connect(db, user="app") as a:
        a.execute("DROP INDEX app.acct_imm")


def test_attack_protected_column_of_the_owners_domain(pg, db, conn):
    """A domain's CHECK runs wherever a value is read into it: app's, on a protected column, ran as
    the DBA in dp.set_public_values, and as bob when his plain-SQL answer's keys became rows of it."""
    with pg.connect(db, user="app") as a:
        a.execute("CREATE FUNCTION app.chk(text) RETURNS boolean LANGUAGE plpgsql AS "
                  "$$ BEGIN INSERT INTO mallory.calls VALUES (current_user); RETURN true; END $$")
        a.execute("CREATE DOMAIN app.label AS text CHECK (app.chk(VALUE))")
        a.execute("ALTER TABLE app.acct ADD COLUMN label app.label")
        a.execute("UPDATE app.acct SET label = 'l' || (id % 2)")
    conn.execute("DELETE FROM mallory.calls")
    e = outcome(conn, "SELECT dp.set_public_values('app.acct', 'label', ARRAY['l0', 'l1'])")
    assert owner_code_ran(conn) == 0
    assert isinstance(e, psycopg.Error) and e.diag.sqlstate == "42501", e
    with pg.connect(db, user="bob") as b:
        e = outcome(b, "SELECT label, count(*) FROM app.acct GROUP BY label")
    assert owner_code_ran(conn) == 0
    assert isinstance(e, psycopg.Error) and e.diag.sqlstate == "42501", e
    with pg.connect(db, user="app") as a:
        a.execute("ALTER TABLE app.acct DROP COLUMN label")
