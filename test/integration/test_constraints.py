"""Hard denial constraints in dp_synthesize on a real server: kept without dropping
rows, refused before the charge when no copy can meet them, bounded memory with a
high-cardinality dependency, and a prompt stop on cancel in every phase."""

import os
import time

import psycopg
import pytest

import datasets
from conftest import shared_data
from test_synthesis import synthesize


def charges(conn):
    return conn.execute("SELECT count(*) FROM dp.ledger").fetchone()[0]


def add_dcs(conn, table, ic_file):
    for line in open(ic_file):
        if line.strip():
            conn.execute("SELECT dp.add_constraint(%s, %s)", (table, line.strip().replace("-", "_")))


def fd_violations(conn, table, determinants, dependent):
    """Groups of equal determinants holding two values of the dependent (SQL, not the engine).
    NULL equals nothing in a denial constraint, so rows with a NULL determinant form no group."""
    keys = ", ".join(determinants)
    present = " AND ".join(f"{c} IS NOT NULL" for c in (*determinants, dependent))
    return conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {present} GROUP BY {keys} "
                        f"HAVING count(DISTINCT {dependent}) > 1) x").fetchone()[0]


def adult_copy(conn):
    """(rows, provenance comment) of the synthetic adult copy: an interrupted run leaves it as it was."""
    return conn.execute("SELECT count(*), obj_description('dp_synthetic.adult'::regclass) "
                        "FROM dp_synthetic.adult").fetchone()


def peak_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


# ---------------------------------------------------------------- Kamino adult, mined constraints made hard

@pytest.fixture(scope="module")
def adult(conn):
    shared_data("kamino", "adult", "adult.csv")
    table = datasets.kamino_adult(conn)
    conn.execute("SELECT dp.grant_budget('postgres', 'adult', 1000.0, 0.5)")
    return table


@pytest.mark.long      # minutes: make test-long
def test_kamino_adult2_hard_on_the_whole_table_keeps_every_row(conn, adult):
    """adult.ic's 2 DCs plus adult2's 2 mined ones (approximate in the data: thousands of
    violating pairs), all hard: 0 violations, counted in SQL, and the requested row count."""
    add_dcs(conn, "adult", shared_data("kamino", "adult", "approximateDC", "adult2.ic"))
    try:
        notices = synthesize(conn, "public.adult", epsilon=1.0, rows=32561)
        assert any("no row dropped" in n for n in notices)
        n = conn.execute("SELECT count(*) FROM dp_synthetic.adult").fetchone()[0]
        assert abs(n - 32561) <= 0.02 * 32561
        assert fd_violations(conn, "dp_synthetic.adult", ["age"], "education_num") == 0
        assert fd_violations(conn, "dp_synthetic.adult", ["education"], "education_num") == 0
        # IQ(native_country)&LT(capital_loss): no two rows differ on both (one of them is constant)
        countries, losses = conn.execute(
            "SELECT count(DISTINCT native_country), count(DISTINCT capital_loss) FROM dp_synthetic.adult "
            "WHERE native_country IS NOT NULL").fetchone()
        assert countries <= 1 or losses <= 1
        # LT(capital_gain)&LT(capital_loss): capital_loss never rises with capital_gain
        assert conn.execute("""
            SELECT count(*) FROM (SELECT capital_loss, min(capital_loss) OVER (ORDER BY capital_gain
                RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS m FROM dp_synthetic.adult) x
            WHERE capital_loss > m""").fetchone()[0] == 0
        metrics = [(v, d) for m, v, d in conn.execute("SELECT * FROM dp.evaluate_synthetic('public.adult')")
                   if m == "dc_violations"]
        assert len(metrics) == 4 and all(v == 0 for v, _ in metrics)
        assert any(d["real"] > 0 for _, d in metrics)              # they really are approximate
    finally:
        conn.execute("DELETE FROM dp_internal.denial_constraints WHERE relid = 'adult'::regclass "
                     "AND id > (SELECT min(id) + 1 FROM dp_internal.denial_constraints WHERE relid = 'adult'::regclass)")


def test_kamino_tpch_four_fds_hold_on_every_requested_row(conn):
    """Kamino's TPC-H customer x nation x orders with its 4 hard FDs (a chain: custkey ->
    nation name -> region): 0 violations counted in SQL, and the requested 19,951 rows."""
    shared_data("kamino", "tpch", "tpch_order.csv")
    table = datasets.kamino_tpch(conn)
    conn.execute("SELECT dp.grant_budget('postgres', %s, 100.0, 0.5)", (table,))
    notices = synthesize(conn, f"public.{table}", epsilon=1.0, rows=19951)
    assert any("no row dropped" in n for n in notices)
    assert conn.execute(f"SELECT count(*) FROM dp_synthetic.{table}").fetchone()[0] == 19951
    for determinant, dependent in (("c_custkey", "c_nationkey"), ("c_custkey", "c_mktsegment"),
                                   ("c_custkey", "n_name"), ("n_name", "n_regionkey")):
        assert fd_violations(conn, f"dp_synthetic.{table}", [determinant], dependent) == 0, (determinant, dependent)
    metrics = [v for m, v, d in conn.execute(f"SELECT * FROM dp.evaluate_synthetic('public.{table}')")
               if m == "dc_violations"]
    assert metrics == [0, 0, 0, 0]
    # customers with several orders stay (the determinant is not made unique to meet the FDs)
    assert conn.execute(f"SELECT count(*) > count(DISTINCT c_custkey) FROM dp_synthetic.{table}").fetchone()[0]


@pytest.mark.long      # minutes: make test-long
def test_kamino_adult64_hard_at_its_capacity_and_refused_above(conn, adult):
    """adult64 makes age a key (EQ(age)&EQ(hours_per_week) with age -> hours_per_week): at
    most 74 rows.  More is refused in dry_run and in a real call before the charge, naming
    the constraint; 70 rows are written with 0 violations of all 66 constraints."""
    add_dcs(conn, "adult", shared_data("kamino", "adult", "approximateDC", "adult64.ic"))
    try:
        before = charges(conn)
        for dry in (True, False):
            with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
                synthesize(conn, "public.adult", epsilon=1.0, rows=1000, dry_run=dry)
            assert "allows at most 74 rows" in e.value.diag.message_primary
            assert "EQ(t1.age,t2.age)" in e.value.diag.message_primary and e.value.diag.message_hint
        assert charges(conn) == before
        synthesize(conn, "public.adult", epsilon=1.0, rows=70)
        assert charges(conn) == before + 1
        assert conn.execute("SELECT count(*), count(DISTINCT age) FROM dp_synthetic.adult").fetchone() == (70, 70)
        metrics = [v for m, v, d in conn.execute("SELECT * FROM dp.evaluate_synthetic('public.adult')")
                   if m == "dc_violations"]
        assert len(metrics) == 66 and all(v == 0 for v in metrics)
    finally:
        conn.execute("DELETE FROM dp_internal.denial_constraints WHERE relid = 'adult'::regclass "
                     "AND id > (SELECT min(id) + 1 FROM dp_internal.denial_constraints WHERE relid = 'adult'::regclass)")


@pytest.mark.parametrize("name", ["adult128", "adult150"])
def test_kamino_sets_that_do_not_settle_are_refused_before_the_charge(conn, adult, name):
    """With 128 or 150 mined constraints the repairs undo each other on random rows of the
    declared domains: refused in dry_run and before the charge, naming what is left."""
    add_dcs(conn, "adult", shared_data("kamino", "adult", "approximateDC", f"{name}.ic"))
    try:
        before = charges(conn)
        for dry in (True, False):
            with pytest.raises(psycopg.errors.CheckViolation) as e:
                synthesize(conn, "public.adult", epsilon=1.0, rows=70, dry_run=dry)
            assert "cannot be met together" in e.value.diag.message_primary and "t1&t2&" in e.value.diag.message_primary
            assert e.value.diag.message_hint
        assert charges(conn) == before
    finally:
        conn.execute("DELETE FROM dp_internal.denial_constraints WHERE relid = 'adult'::regclass "
                     "AND id > (SELECT min(id) + 1 FROM dp_internal.denial_constraints WHERE relid = 'adult'::regclass)")


@pytest.mark.parametrize("dc", [
    "t1&t2&LTE(t1.age,t2.age)&LTE(t1.capital_gain,t2.capital_gain)",     # nothing strict: rows would go
    "t1&t2&EQ(t1.age,t2.hours_per_week)&IQ(t1.sex,t2.sex)",             # two different columns
])
def test_constraints_values_cannot_meet_are_refused_when_added(conn, adult, dc):
    with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
        conn.execute("SELECT dp.add_constraint('public.adult', %s)", (dc,))
    assert "without deleting rows" in e.value.diag.message_primary and e.value.diag.message_hint


# ---------------------------------------------------------------- a generated high-cardinality table

GEO_ROWS = datasets.GEO_ROWS


@pytest.fixture(scope="module")
def geo(conn):
    table = datasets.geo(conn)
    conn.execute("SELECT dp.grant_budget('postgres', (SELECT dataset FROM dp_internal.protected_tables "
                 "WHERE relid = 'geo'::regclass), 100.0, 0.1)")
    assert conn.execute("SELECT count(*) FROM geo").fetchone()[0] == GEO_ROWS
    return table


def test_high_cardinality_chain_and_order_within_groups(conn, geo):
    """0 violations in SQL, every requested row, and the executor's peak memory under 2 GB."""
    notices = synthesize(conn, "public.geo", epsilon=1.0, delta=1e-9, rows=GEO_ROWS)
    assert any("no row dropped" in n for n in notices)
    assert conn.execute("SELECT count(*) FROM dp_synthetic.geo").fetchone()[0] == GEO_ROWS
    assert fd_violations(conn, "dp_synthetic.geo", ["zip"], "city") == 0
    assert fd_violations(conn, "dp_synthetic.geo", ["city"], "state") == 0
    assert fd_violations(conn, "dp_synthetic.geo", ["state", "kind"], "tax") == 0
    assert conn.execute("""
        SELECT count(*) FROM (SELECT y, max(y) OVER (PARTITION BY g ORDER BY x
            RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS m FROM dp_synthetic.geo) s
        WHERE y < m""").fetchone()[0] == 0
    # values come from the declared lists, and the synthetic zip codes are many
    assert conn.execute("SELECT count(*) FROM dp_synthetic.geo WHERE zip !~ '^z[0-9]+$'").fetchone()[0] == 0
    assert conn.execute("SELECT count(DISTINCT zip) FROM dp_synthetic.geo").fetchone()[0] > 1000
    pid = conn.execute("SELECT dp_internal.executor_pid()").fetchone()[0]
    assert pid is not None
    assert peak_kb(pid) <= 2 * 1024 * 1024


# ---------------------------------------------------------------- cancel in every phase

# the progress NOTICE that opens each phase (the cancel lands just after it)
PHASES = [("marginals in SQL", "encoded"), ("selection", "one-way marginals"),
          ("model fit", "most dependent pairs"), ("sampling", "fitted the graphical model"),
          ("repair", ": sampled"), ("write", "repaired denial constraints")]
CANCEL_SECONDS = 2.0


def _phases(in_make_test, names_only=False):
    """PHASES as parameters; the phases not named run in `make test-long` only (each run is a
    synthesis of Adult): across the three ways to stop a run, `make test` still stops every phase once."""
    return [pytest.param(*((p,) if names_only else (p, o)), id=p,
                         marks=() if p in in_make_test else pytest.mark.long) for p, o in PHASES]


def _gone(pid, limit):
    """Seconds until process pid has exited (at most limit, then None)."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z":
            return time.monotonic() - start
        time.sleep(0.01)
    return None


@pytest.mark.parametrize("phase, opens", _phases({"marginals in SQL", "sampling"}))
def test_cancel_stops_the_executor_in_every_phase(pg, db, conn, adult, phase, opens):
    """pg_cancel_backend on the caller as the phase starts: the caller gets its error and the
    executor process (where the run happens) has exited within CANCEL_SECONDS; the previous
    copy is intact and the charge of the cancelled run is recorded."""
    if not conn.execute("SELECT to_regclass('dp_synthetic.adult') IS NOT NULL").fetchone()[0]:
        synthesize(conn, "public.adult", epsilon=1.0)
    before = adult_copy(conn)
    charged = charges(conn)
    with pg.connect(db) as caller, pg.connect(db) as killer:
        synthesize(caller, "public.adult", epsilon=1.0, dry_run=True)        # starts the executor
        worker = caller.execute("SELECT dp_internal.executor_pid()").fetchone()[0]
        backend = caller.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert worker is not None
        fired = {}

        def on_notice(d):
            if opens in d.message_primary and "at" not in fired:
                fired["at"] = time.monotonic()
                killer.execute("SELECT pg_cancel_backend(%s)", (backend,))

        caller.add_notice_handler(on_notice)
        with pytest.raises(psycopg.errors.QueryCanceled):
            caller.execute("CALL dp_synthesize('public.adult', epsilon => 1.0)")
        returned = time.monotonic() - fired["at"]
        exited = _gone(worker, 30)
    assert exited is not None
    print(f"{phase}: caller returned after {returned:.2f} s, executor gone after {returned + exited:.2f} s")
    assert returned <= CANCEL_SECONDS
    assert returned + exited <= CANCEL_SECONDS, f"{phase}: the executor ran on for {returned + exited:.2f} s"
    after = adult_copy(conn)
    assert after == before
    assert charges(conn) == charged + 1


@pytest.fixture(scope="module")
def phase_starts(pg, db, adult):
    """Seconds from the CALL to the NOTICE that opens each phase, in one full run (the statement
    timeouts below are set from them, so each lands in or near its phase)."""
    starts = {}
    with pg.connect(db) as c:
        synthesize(c, "public.adult", epsilon=1.0, dry_run=True)         # the executor is warm
        t0 = time.monotonic()

        def on_notice(d):
            for phase, opens in PHASES:
                if opens in d.message_primary and phase not in starts:
                    starts[phase] = time.monotonic() - t0
        c.add_notice_handler(on_notice)
        c.execute("CALL dp_synthesize('public.adult', epsilon => 1.0)")
    assert set(starts) == {p for p, _ in PHASES}
    return starts


@pytest.mark.parametrize("phase", _phases({"selection", "repair"}, names_only=True))
def test_statement_timeout_stops_the_run_in_every_phase(pg, db, adult, phase_starts, phase):
    """statement_timeout set to fall 0.3 s into the phase (as timed in a full run): the caller
    gets its error and the executor has exited within CANCEL_SECONDS of the timeout, whichever
    phase the run had reached; the previous copy stays and the charge is recorded.  A run that
    ends before its timeout (phases take longer or shorter from run to run on a loaded
    machine) is tried again with the timeout at 0.9 of that run's length."""
    timeout = phase_starts[phase] + 0.3
    for _ in range(3):
        with pg.connect(db) as caller:
            before = adult_copy(caller)
            charged = charges(caller)
            synthesize(caller, "public.adult", epsilon=1.0, dry_run=True)
            worker = caller.execute("SELECT dp_internal.executor_pid()").fetchone()[0]
            reached = []
            caller.add_notice_handler(lambda d: reached.extend(p for p, o in PHASES if o in d.message_primary))
            caller.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            start = time.monotonic()
            try:
                caller.execute("CALL dp_synthesize('public.adult', epsilon => 1.0)")
            except psycopg.errors.QueryCanceled:
                pass
            else:
                timeout = 0.9 * (time.monotonic() - start)
                continue
            returned = time.monotonic() - start
            waited = _gone(worker, 30)
            exited = None if waited is None else time.monotonic() - start
        break
    else:
        pytest.fail(f"three runs ended before their statement_timeout ({phase})")
    print(f"{phase}: timeout {timeout:.2f} s, in phase {reached[-1] if reached else 'start'}: caller returned "
          f"after {returned:.2f} s, executor gone after {exited} s")
    assert returned <= timeout + CANCEL_SECONDS, f"{phase}: the caller returned after {returned:.2f} s"
    assert exited is not None and exited <= timeout + CANCEL_SECONDS, \
        f"{phase}: the executor ran on until {exited} s (timeout {timeout:.2f} s, caller back at {returned:.2f} s)"
    with pg.connect(db) as c:
        after = adult_copy(c)
        assert after == before
        assert charges(c) == charged + 1


# ---------------------------------------------------------------- server shutdown in every phase

@pytest.fixture(scope="module")
def stopping():
    """A server of its own, with Kamino adult and a first synthetic copy: the test shuts it down."""
    shared_data("kamino", "adult", "adult.csv")
    from pgserver import PgServer

    server = PgServer()
    server.create_database("shutdown")
    with server.connect("shutdown") as c:
        datasets.kamino_adult(c)
        c.execute("SELECT dp.grant_budget('postgres', 'adult', 1000.0, 0.5)")
        synthesize(c, "public.adult", epsilon=1.0)
    yield server
    server.stop()


def _postmaster(server):
    with open(os.path.join(server.data, "postmaster.pid")) as f:
        return int(f.readline())


@pytest.mark.parametrize("phase, opens", _phases({"model fit", "write"}))
def test_server_shutdown_stops_the_run_in_every_phase(stopping, phase, opens):
    """A fast shutdown (pg_ctl stop -m fast) as the phase starts: the executor has exited and the
    whole server has stopped within CANCEL_SECONDS; started again, the previous copy is intact
    and the charge of the interrupted run is recorded."""
    with stopping.connect("shutdown") as c:
        before = adult_copy(c)
        charged = charges(c)
    postmaster = _postmaster(stopping)
    fired = {}
    with stopping.connect("shutdown") as caller:
        synthesize(caller, "public.adult", epsilon=1.0, dry_run=True)        # starts the executor
        worker = caller.execute("SELECT dp_internal.executor_pid()").fetchone()[0]
        assert worker is not None

        def on_notice(d):
            if opens in d.message_primary and "at" not in fired:
                fired["at"] = time.monotonic()
                fired["pg_ctl"] = stopping.shutdown("fast")

        caller.add_notice_handler(on_notice)
        with pytest.raises(psycopg.OperationalError):
            caller.execute("CALL dp_synthesize('public.adult', epsilon => 1.0)")
        waited = _gone(worker, 30)
        worker_s = None if waited is None else time.monotonic() - fired["at"]
        waited = _gone(postmaster, 30)
        server_s = None if waited is None else time.monotonic() - fired["at"]
    assert fired, f"the run never reached the {phase} phase"
    fired["pg_ctl"].wait()
    _gone(postmaster, 300)                  # stopped, however long it took, before starting again
    stopping.start()
    print(f"{phase}: executor gone after {worker_s} s, server stopped after {server_s} s")
    assert worker_s is not None and worker_s <= CANCEL_SECONDS, f"{phase}: the executor ran on for {worker_s} s"
    assert server_s is not None and server_s <= CANCEL_SECONDS, f"{phase}: the server took {server_s} s to stop"
    with stopping.connect("shutdown") as c:
        after = adult_copy(c)
        assert after == before
        assert charges(c) == charged + 1


# ---------------------------------------------------------------- orders within one row

@pytest.fixture(scope="module")
def shipments(conn):
    """20,000 order lines: shipped 1-120 days after the order, received 1-30 days after the
    shipment (dates declared 2020-01-01 .. 2023-12-31), and a status that follows nothing."""
    conn.execute("""
        CREATE TABLE shipments (id int PRIMARY KEY, ordered date NOT NULL, shipped date NOT NULL,
                                received date, status text NOT NULL);
        INSERT INTO shipments
        SELECT i, o, o + s, CASE WHEN i % 10 = 0 THEN NULL ELSE o + s + r END, (ARRAY['A','B','C'])[1 + i % 3]
        FROM generate_series(1, 20000) i,
             LATERAL (SELECT DATE '2020-01-01' + (hashint4(i) & 1023) AS o, 1 + (hashint4(i + 7) & 127) % 120 AS s,
                             1 + (hashint4(i + 13) & 63) % 30 AS r) x
    """)
    conn.execute("SELECT dp.protect('shipments')")
    for col in ("ordered", "shipped", "received"):
        conn.execute("SELECT dp.set_bounds('shipments', %s, '2020-01-01'::date, '2023-12-31'::date)", (col,))
    conn.execute("SELECT dp.set_public_values('shipments', 'status', ARRAY['A','B','C'])")
    conn.execute("SELECT dp.grant_budget('postgres', 'shipments', 100.0, 0.5)")
    return "shipments"


ROW_ORDERS = ["t1&GTE(t1.ordered,t1.shipped)", "t1&GT(t1.shipped,t1.received)"]   # ordered < shipped <= received


def test_orders_within_a_row_hold_without_dropping_rows(conn, shipments):
    for dc in ROW_ORDERS:
        conn.execute("SELECT dp.add_constraint('shipments', %s)", (dc,))
    notices = synthesize(conn, "public.shipments", epsilon=1.0, rows=20000)
    broken = conn.execute("SELECT count(*) FILTER (WHERE ordered >= shipped), count(*) FILTER (WHERE shipped > received), "
                          "count(*), count(*) FILTER (WHERE received IS NULL), min(ordered), max(received) "
                          "FROM dp_synthetic.shipments").fetchone()
    assert broken[:3] == (0, 0, 20000), notices
    # NULLs stay NULL: the 10% missing receipts (Gaussian noise of a 1-column marginal at
    # epsilon 1 is a few dozen rows; 1,000 is far past any plausible draw)
    assert abs(broken[3] - 2000) < 1000
    assert str(broken[4]) >= "2020-01-01" and str(broken[5]) <= "2023-12-31"
    assert any("no row dropped" in n for n in notices)
    assert not any("dropped" in n and "no row dropped" not in n for n in notices)
    conn.execute("SELECT dp.drop_constraint(id) FROM dp.denial_constraints WHERE table_name = 'public.shipments'::regclass")


@pytest.mark.parametrize("dc, sqlstate", [
    ("t1&GT(t1.status,t1.shipped)", "42804"),        # text against a date
    ("t1&GT(t1.shipped,t1.id)", "42804"),            # a date against a number
    ("t1&EQ(t1.shipped,t1.received)", "0A000"),      # not an order
    ("t1&GT(t1.shipped,t1.received)&GT(t1.ordered,t1.shipped)", "0A000"),
    ("t1&GT(t1.shipped,t2.received)", "22023"),      # t2 in a one-row constraint
])
def test_orders_within_a_row_that_cannot_be_kept_are_refused_when_added(conn, shipments, dc, sqlstate):
    with pytest.raises(psycopg.Error) as e:
        conn.execute("SELECT dp.add_constraint('shipments', %s)", (dc,))
    assert e.value.sqlstate == sqlstate and e.value.diag.message_hint


def test_orders_within_a_row_that_cannot_hold_are_refused_before_the_charge(conn, shipments):
    charged = charges(conn)
    ids = [conn.execute("SELECT dp.add_constraint('shipments', %s)", (dc,)).fetchone()[0] for dc in
           ("t1&GT(t1.shipped,t1.received)", "t1&t2&EQ(t1.status,t2.status)&IQ(t1.received,t2.received)")]
    with pytest.raises(psycopg.errors.FeatureNotSupported) as e:        # received in both kinds
        synthesize(conn, "public.shipments", epsilon=1.0, dry_run=True)
    assert "one kind only" in e.value.diag.message_primary and e.value.diag.message_hint
    conn.execute("SELECT dp.drop_constraint(%s)", (ids[1],))
    conn.execute("SELECT dp.set_bounds('shipments', 'shipped', '2023-06-01'::date, '2023-12-31'::date)")
    conn.execute("SELECT dp.set_bounds('shipments', 'received', '2020-01-01'::date, '2023-05-01'::date)")
    try:
        with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
            synthesize(conn, "public.shipments", epsilon=1.0)
        assert "leave no room" in e.value.diag.message_primary
    finally:
        for col in ("shipped", "received"):
            conn.execute("SELECT dp.set_bounds('shipments', %s, '2020-01-01'::date, '2023-12-31'::date)", (col,))
        conn.execute("SELECT dp.drop_constraint(%s)", (ids[0],))
    assert charges(conn) == charged


def test_attack_a_planted_row_breaking_an_order_neither_fails_the_run_nor_shows(conn, shipments):
    """Someone who can write the protected table plants a row that breaks the declared order by
    years, outside the declared bounds: the run must neither fail (an error would tell the
    analyst the row exists) nor let the row's values into the copy (declared bounds hold)."""
    conn.execute("SELECT dp.add_constraint('shipments', 't1&GT(t1.shipped,t1.received)')")
    conn.execute("INSERT INTO shipments VALUES (0, '2021-01-01', '2999-12-31', '0001-01-01', 'A')")
    try:
        synthesize(conn, "public.shipments", epsilon=1.0, rows=5000)
        low, high, broken = conn.execute(
            "SELECT least(min(ordered), min(shipped), min(received)), greatest(max(ordered), max(shipped), "
            "max(received)), count(*) FILTER (WHERE shipped > received) FROM dp_synthetic.shipments").fetchone()
        assert str(low) >= "2020-01-01" and str(high) <= "2023-12-31" and broken == 0
    finally:
        conn.execute("DELETE FROM shipments WHERE id = 0")
        conn.execute("SELECT dp.drop_constraint(id) FROM dp.denial_constraints "
                     "WHERE table_name = 'public.shipments'::regclass")
