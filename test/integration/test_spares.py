"""Warm spare executors (src/worker/spares.c): a new session adopts one instead of starting its
executor, and a spare never serves two sessions, blocks no DROP DATABASE, and leaves when
its slot is needed.  On a real server; the registry is read from the data directory."""

import os
import threading
import time

import psycopg
import pytest


@pytest.fixture(scope="module", autouse=True)
def setup(conn, db):
    conn.execute("CREATE TABLE people (id int PRIMARY KEY, g text NOT NULL CHECK (g IN ('a', 'b')), "
                 "v int NOT NULL)")
    conn.execute("INSERT INTO people SELECT i, (ARRAY['a', 'b'])[1 + i % 2], i % 100 FROM generate_series(1, 2000) i")
    conn.execute("SELECT dp.protect('people')")
    conn.execute("SELECT dp.set_bounds('people', 'v', 0, 100)")
    conn.execute("DROP ROLE IF EXISTS alice")
    conn.execute("CREATE ROLE alice LOGIN")
    conn.execute("SELECT dp.grant_budget('alice', 'people', 1000)")
    yield
    conn.execute("DROP OWNED BY alice")
    conn.execute("DROP ROLE alice")


def ask(c, sql="SELECT count(*) FROM people WHERE v > 10"):
    return c.execute("SELECT * FROM dp.query_json(%s, 0.5)", (sql,)).fetchall()


def spare_pids(pg, database_oid):
    """PIDs of the spares registered for a database (files "<oid>.<pid>")."""
    path = os.path.join(pg.data, "pg_dp_spares")
    if not os.path.isdir(path):
        return []
    pids = []
    for name in os.listdir(path):
        db, _, pid = name.partition(".")
        if db == str(database_oid) and pid.isdigit():
            pids.append(int(pid))
    return pids


def wait_for_spare(pg, database_oid, limit=30):
    deadline = time.time() + limit
    while time.time() < deadline:
        pids = spare_pids(pg, database_oid)
        if pids:
            return pids[0]
        time.sleep(0.05)
    raise AssertionError("no spare executor was registered")


def alive(conn, pid):
    return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0] == 1


def wait_gone(conn, pid, limit=10):
    deadline = time.time() + limit
    while time.time() < deadline and alive(conn, pid):
        time.sleep(0.05)
    return not alive(conn, pid)


def small_protected_db(pg, name):
    """A new database with a small protected table and a budget for postgres; its oid."""
    pg.create_database(name)
    with pg.connect(name) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY, v int)")
        c.execute("INSERT INTO t SELECT i, i % 10 FROM generate_series(1, 100) i")
        c.execute("SELECT dp.protect('t')")
        c.execute("SELECT dp.grant_budget('postgres', 't', 10)")
        return c.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]


@pytest.fixture
def oid(conn, db):
    return conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]


def test_new_session_adopts_the_warm_spare(pg, db, conn, oid):
    with pg.connect(db, user="alice") as first:
        assert ask(first)
        own = first.execute("SELECT dp_internal.executor_pid()").fetchone()[0]
        spare = wait_for_spare(pg, oid)
        assert spare != own
    with pg.connect(db, user="alice") as second:
        assert ask(second)
        assert second.execute("SELECT dp_internal.executor_pid()").fetchone()[0] == spare
        assert spare not in spare_pids(pg, oid)          # out of the registry once adopted
        assert conn.execute("SELECT backend_type, usename FROM pg_stat_activity WHERE pid = %s",
                            (spare,)).fetchone() == ("pg_dp executor", "postgres")
    assert wait_gone(conn, spare)                          # it ends with the session that adopted it


def test_attack_two_sessions_racing_for_one_spare(pg, db, conn, oid):
    """Sessions arriving together must never share an executor: each request of a session
    is answered by that session's own executor, spare or not."""
    with pg.connect(db, user="alice") as c:
        ask(c)
    wait_for_spare(pg, oid)
    pids, errors = {}, []
    barrier = threading.Barrier(4)

    def session(i):
        try:
            with pg.connect(db, user="alice") as c:
                barrier.wait()
                ask(c)
                first = c.execute("SELECT dp_internal.executor_pid()").fetchone()[0]
                ask(c, "SELECT count(*) FROM people WHERE v > 20")
                assert c.execute("SELECT dp_internal.executor_pid()").fetchone()[0] == first
                pids[i] = first
                barrier.wait()                             # all four hold their executors at once
        except Exception as e:                             # noqa: BLE001 (reported below)
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=session, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(pids.values())) == 4


def test_attack_cancel_stops_an_adopted_spare(pg, db, conn, oid):
    """An adopted spare is not the session's own background worker (no handle to terminate
    it by): a cancel must still stop it at once, before the synthesis it runs writes
    anything."""
    conn.execute("SELECT dp.grant_budget('postgres', 'people', 100, 0.5)")
    with pg.connect(db) as c:
        ask(c)
    spare = wait_for_spare(pg, oid)
    with pg.connect(db) as c, pg.connect(db) as killer:
        ask(c)
        assert c.execute("SELECT dp_internal.executor_pid()").fetchone()[0] == spare
        backend = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        fired = []

        def on_notice(d):
            if not fired:
                fired.append(time.monotonic())
                killer.execute("SELECT pg_cancel_backend(%s)", (backend,))

        c.add_notice_handler(on_notice)
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("CALL dp_synthesize('public.people', epsilon => 1.0)")
        assert fired
        stopped = wait_gone(conn, spare, limit=2)
        wait_gone(conn, spare, limit=60)
        # left running, it would have finished the copy and committed it
        assert conn.execute("SELECT to_regclass('dp_synthetic.people')").fetchone()[0] is None
        assert stopped
        assert ask(c)                                      # the next request starts a new executor


def test_drop_database_while_a_spare_waits(pg, conn):
    """A waiting spare holds a connection to its database; DROP DATABASE (without FORCE)
    must not fail with 'being accessed by other users' because of it."""
    oid = small_protected_db(pg, "spare_drop")
    with pg.connect("spare_drop") as c:
        ask(c, "SELECT count(*) FROM t")
    spare = wait_for_spare(pg, oid)
    assert alive(conn, spare)
    with pg.connect() as c:
        c.execute("DROP DATABASE spare_drop")
    assert not alive(conn, spare)
    assert spare_pids(pg, oid) == []


def test_spares_can_be_turned_off(pg, conn):
    oid = small_protected_db(pg, "spare_off")
    with pg.connect("spare_off") as c:
        c.execute("ALTER DATABASE spare_off SET pg_dp.executor_spares = 0")
    with pg.connect("spare_off") as c:
        ask(c, "SELECT count(*) FROM t")
        time.sleep(2)
        assert spare_pids(pg, oid) == []
        assert c.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_dp executor' "
                         "AND datname = 'spare_off'").fetchone()[0] == 1
    with pg.connect() as c:
        c.execute("DROP DATABASE spare_off WITH (FORCE)")


def test_attack_stale_and_forged_registry_entries(pg, db, conn, oid):
    """Entries that name no live spare (a crash leaves them; a segment handle of something
    else) are never adopted: the session starts or adopts a real executor and the stale
    entries are removed."""
    path = os.path.join(pg.data, "pg_dp_spares")
    os.makedirs(path, exist_ok=True)
    dead = 2 ** 22 + 12345                                  # above pid_max's default: no such process
    with open(os.path.join(path, f"{oid}.{dead}"), "w") as f:
        f.write("123456 42\n")
    # a live process that is no spare (the test's own connection's backend)
    other = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with open(os.path.join(path, f"{oid}.{other}"), "w") as f:
        f.write("654321 43\n")
    try:
        with pg.connect(db, user="alice") as c:
            assert ask(c)
            pid = c.execute("SELECT dp_internal.executor_pid()").fetchone()[0]
            assert pid not in (dead, other)
            assert conn.execute("SELECT backend_type FROM pg_stat_activity WHERE pid = %s",
                                (pid,)).fetchone()[0] == "pg_dp executor"
        assert not os.path.exists(os.path.join(path, f"{oid}.{dead}"))
    finally:
        for name in (f"{oid}.{dead}", f"{oid}.{other}"):
            if os.path.exists(os.path.join(path, name)):
                os.unlink(os.path.join(path, name))


def test_attack_warmup_request_from_a_session(pg, db, conn):
    """The spare's warm-up skips the engine's per-request checks (role, retiring the
    executor of a role without budget): a session sending that kind gets an error."""
    with pg.connect(db, user="alice") as c:
        with pytest.raises(psycopg.Error) as e:
            c.execute("SELECT dp_internal.executor_call('warmup', '')")
        assert e.value.diag.sqlstate in ("22023", "42501")
