"""dp_synthesize on a real server: the analyst flow, DDL round trip, atomic replacement,
budget refusal before any work, denial constraints, and the DBA's evaluation.

Every assertion on DP output holds but with a stated probability of at most 1e-9 (the
figures are next to each).  Two facts are used: discrete Laplace noise of scale b is at
least t in absolute value with probability at most 2 exp(-t / b); the DP row count has
scale max_rows_per_unit / (0.05 epsilon) (run.COUNT_SHARE) when discovery runs, and is
otherwise Gaussian with 2% of the rho (run.COUNT_RHO_SHARE; sigma 32 rows at epsilon 1,
delta 1e-6: off by 196 or more with probability < 1e-9), within the Laplace figures.
"""
import datetime as dt

from decimal import Decimal

import psycopg
import pytest

import datasets
from conftest import shared_data
from datasets import synthesize

ANALYST = "syn_analyst"
MINE = f"dp_synthetic_{ANALYST}"      # an analyst's copies go to a shadow schema of its own (issue 17)


@pytest.fixture(scope="module", autouse=True)
def setup(conn):
    shared_data("kamino", "a100", "adult100.csv")
    datasets.kamino_adult(conn, csv_file=datasets.path("kamino", "a100", "adult100.csv"))
    datasets.mixed(conn, 3000)
    conn.execute(f"CREATE ROLE {ANALYST} LOGIN")
    conn.execute(f"SELECT dp.grant_budget('{ANALYST}', 'adult', 5.0, 1e-4)")
    conn.execute(f"SELECT dp.grant_budget('{ANALYST}', 'mixed', 5.0, 1e-4)")
    conn.execute("SELECT dp.grant_budget('postgres', 'adult', 100.0, 1e-2)")
    yield
    conn.execute("DROP SCHEMA IF EXISTS dp_synthetic CASCADE")
    conn.execute(f"DROP SCHEMA IF EXISTS {MINE} CASCADE")
    conn.execute(f"DROP OWNED BY {ANALYST}")
    conn.execute(f"DROP ROLE {ANALYST}")


@pytest.fixture
def analyst(pg, db):
    with pg.connect(db, user=ANALYST) as c:
        yield c


def ledger_rows(conn, role=ANALYST):
    return conn.execute("SELECT statement, epsilon, delta FROM dp.ledger WHERE role = %s::regrole ORDER BY id",
                        (role,)).fetchall()


def columns(conn, table):
    return conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (table,)).fetchall()


def constraints(conn, table):
    return sorted(r[0] for r in conn.execute(
        "SELECT contype::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass",
        (table,)))


def test_analyst_synthesizes_without_select_and_reads_the_copy(conn, analyst):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        analyst.execute("SELECT count(*) FROM public.adult")
    before = len(ledger_rows(conn))
    notices = synthesize(analyst, "public.adult", epsilon=1.0)
    assert any("charged epsilon 1.0" in n for n in notices)
    assert any("fitted the graphical model" in n for n in notices)
    assert any(n.startswith("dp_synthesize adult: wrote") for n in notices)
    # the caller reads the copy freely; the source stays closed
    n = analyst.execute(f"SELECT count(*) FROM {MINE}.adult").fetchone()[0]
    # a DP count of 100 rows at epsilon 0.05 (b = 20): off by 430 or more with p <= 2 exp(-21.5) < 1e-9
    # (here nothing is discovered: a Gaussian count, sigma 32, off by 196 or more with p < 1e-9)
    assert 1 <= n <= 100 + 430
    rows = ledger_rows(conn)
    assert len(rows) == before + 1
    statement, eps, delta = rows[-1]
    assert statement.startswith("CALL dp_synthesize(public.adult") and eps == Decimal("1.0")
    assert delta == Decimal("0.000001")
    assert columns(conn, f"{MINE}.adult") == columns(conn, "public.adult")
    comment = conn.execute(f"SELECT obj_description('{MINE}.adult'::regclass)").fetchone()[0]
    assert "epsilon 1.0" in comment and "public.adult" in comment and "MST" in comment
    made = analyst.execute("SELECT source::text, epsilon, row_count FROM dp.synthetic_tables").fetchall()
    assert ("adult", Decimal("1.0"), n) in made
    # values come from the declared public sets and bounds
    assert analyst.execute(f"SELECT count(*) FROM {MINE}.adult WHERE age NOT BETWEEN 17 AND 90 "
                           "OR sex NOT IN ('Male', 'Female')").fetchone()[0] == 0


def test_hard_denial_constraints_hold_in_the_copy(conn):
    synthesize(conn, "public.adult", epsilon=2.0)
    # checked here in SQL, independently of the engine's own counter
    fd = conn.execute("SELECT count(*) FROM (SELECT education FROM dp_synthetic.adult GROUP BY education "
                      "HAVING count(DISTINCT education_num) > 1) x").fetchone()[0]
    order = conn.execute("""
        SELECT count(*) FROM (
            SELECT capital_loss, min(capital_loss) OVER (ORDER BY capital_gain
                RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS m FROM dp_synthetic.adult) x
        WHERE capital_loss > m""").fetchone()[0]
    assert (fd, order) == (0, 0)
    metrics = {(m, d["dc"]) if m == "dc_violations" else m: (v, d) for m, v, d in
               conn.execute("SELECT * FROM dp.evaluate_synthetic('public.adult')")}
    dcs = [k for k in metrics if isinstance(k, tuple)]
    assert len(dcs) == 2 and all(metrics[k][0] == 0 for k in dcs)
    assert 0 <= metrics["tvd_2way"][0] <= 1 and "independent_baseline" in metrics["tvd_2way"][1]
    assert any(str(k).startswith("ml_accuracy:") for k in metrics)


def test_every_common_type_round_trips_its_ddl(conn, analyst):
    synthesize(analyst, "public.mixed", epsilon=2.0)
    assert columns(conn, f"{MINE}.mixed") == columns(conn, "public.mixed")
    assert constraints(conn, f"{MINE}.mixed") == constraints(conn, "public.mixed")
    stats = conn.execute(f"""SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE visits IS NULL),
                            count(DISTINCT tier), count(DISTINCT region), min(joined), max(joined),
                            bool_or(active), bool_and(active) FROM {MINE}.mixed""").fetchone()
    n, ids, null_visits, tiers, regions, first, last, some, every = stats
    # the DP count of 3000 rows at epsilon 0.1 (b = 10) is under 1000 with p <= exp(-200)
    assert ids == n > 1000                       # keys regenerated, unique
    # NULL is a category of its own: 230 NULL visits, a marginal cell with noise sd ~28 at
    # this epsilon, is under 48 with p < 1e-10; the model then samples NULL with p >= 0.016 and
    # 1000+ rows hold none with p < exp(-16)
    assert null_visits > 0
    # the same for the ~750 rows of each tier, region and boolean value
    assert tiers >= 3 and regions == 4 and some and not every
    # DP bounds (log2 buckets from the largest passing one over adjacent passing ones, see
    # domain.bounds_from_buckets): the data (2015-01-01 .. 2023-03-19, days 5479..8478 since
    # 2000, buckets [4096, 8192) and [8192, 16384)) widen by more than one bucket a side
    # with p <= 2 * 1e-5**2 + 1e-10 (run.BOUNDS_NEAR_P, run.BOUNDS_FAR_P)
    epoch = dt.date(2000, 1, 1)
    assert first >= epoch + dt.timedelta(days=2048) and last <= epoch + dt.timedelta(days=32768)
    # the identifier column is regenerated, never copied (2250 distinct values of one row each:
    # DP partition selection releases any with p <= delta, and half of them are needed)
    assert conn.execute(f"SELECT count(*) FROM {MINE}.mixed s JOIN public.mixed m USING (referral)"
                        ).fetchone()[0] == 0


def test_failure_leaves_the_previous_copy_intact_and_the_charge_stands(conn):
    synthesize(conn, "public.adult", epsilon=1.0)
    before = conn.execute("SELECT count(*), obj_description('dp_synthetic.adult'::regclass) "
                          "FROM dp_synthetic.adult").fetchone()
    charges = len(ledger_rows(conn, "postgres"))
    conn.execute("""CREATE FUNCTION fail_new_synthetic() RETURNS event_trigger LANGUAGE plpgsql AS $$
                    BEGIN RAISE EXCEPTION 'injected failure'; END $$""")
    conn.execute("CREATE EVENT TRIGGER fail_synthetic ON ddl_command_end WHEN TAG IN ('CREATE TABLE') "
                 "EXECUTE FUNCTION fail_new_synthetic()")
    try:
        with pytest.raises(psycopg.errors.RaiseException, match="injected failure"):
            synthesize(conn, "public.adult", epsilon=1.0)
    finally:
        conn.execute("DROP EVENT TRIGGER fail_synthetic")
        conn.execute("DROP FUNCTION fail_new_synthetic()")
    after = conn.execute("SELECT count(*), obj_description('dp_synthetic.adult'::regclass) "
                         "FROM dp_synthetic.adult").fetchone()
    assert after == before
    assert conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE '%pg_dp_new'").fetchone()[0] == 0
    # the failed run had measured the data: its charge is kept, once
    assert len(ledger_rows(conn, "postgres")) == charges + 1


def test_cancel_stops_a_run_cleanly(conn):
    charges = len(ledger_rows(conn, "postgres"))
    before = conn.execute("SELECT count(*) FROM dp_synthetic.adult").fetchone()[0]
    conn.execute("SET statement_timeout = '1500ms'")
    try:
        with pytest.raises(psycopg.errors.QueryCanceled):
            synthesize(conn, "public.adult", epsilon=1.0)
    finally:
        conn.execute("RESET statement_timeout")
    assert conn.execute("SELECT count(*) FROM dp_synthetic.adult").fetchone()[0] == before
    assert len(ledger_rows(conn, "postgres")) == charges + 1


def test_short_budget_is_refused_before_any_work(conn, analyst):
    before = ledger_rows(conn)
    notices = []
    analyst.add_notice_handler(lambda d: notices.append(d.message_primary))
    with pytest.raises(psycopg.errors.ConfigurationLimitExceeded) as e:
        analyst.execute("CALL dp_synthesize('public.adult', epsilon => 50)")
    assert "budget" in str(e.value) and e.value.diag.message_hint
    assert ledger_rows(conn) == before
    assert not any("counted" in n or "encoded" in n or "measured" in n for n in notices)


def test_dry_run_tells_plan_and_cost_and_spends_nothing(conn, analyst):
    before = ledger_rows(conn)
    notices = synthesize(analyst, "public.mixed", epsilon=0.5, dry_run=True)
    text = "\n".join(notices)
    assert "dry run: would charge epsilon 0.5" in text and "remaining: epsilon" in text
    assert "id: regenerated (key)" in text and "joined: numeric, bounds estimated with DP" in text
    assert ledger_rows(conn) == before


@pytest.mark.parametrize("call,state,words", [
    ("CALL dp_synthesize('public.adult', epsilon => 1, target_schema => 'public')", "42501", "target schema"),
    ("CALL dp_synthesize('public.adult', epsilon => 0)", "22023", "epsilon"),
    ("CALL dp_synthesize('public.adult', epsilon => 1, delta => 0)", "22023", "delta"),
    ("CALL dp_synthesize('pg_catalog.pg_class', epsilon => 1)", "42P01", "not protected"),
    ("CALL dp_synthesize('public.adult', epsilon => 1, rows => 0)", "22023", "rows"),
])
def test_analyst_errors(analyst, call, state, words):
    with pytest.raises(psycopg.Error) as e:
        analyst.execute(call)
    assert e.value.sqlstate == state and words in str(e.value)
    assert e.value.diag.message_hint


@pytest.mark.parametrize("call", [
    "SELECT dp.add_constraint('public.adult', 't1&t2&EQ(t1.age,t2.age)')",
    "SELECT dp.drop_constraint(1)",
    "SELECT * FROM dp.evaluate_synthetic('public.adult')",   # it reads the raw data
])
def test_dba_functions_are_closed_to_analysts(analyst, call):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        analyst.execute(call)


@pytest.mark.parametrize("dc,state", [
    ("t1&t2&EQ(t1.age,t2.nope)", "42703"),
    ("t1&t2&XX(t1.age,t2.age)", "22023"),
    ("t1&t2", "22023"),
])
def test_add_constraint_rejects_bad_constraints(conn, dc, state):
    with pytest.raises(psycopg.Error) as e:
        conn.execute("SELECT dp.add_constraint('public.adult', %s)", (dc,))
    assert e.value.sqlstate == state and e.value.diag.message_hint


def test_a_table_written_by_someone_else_is_never_replaced(conn):
    conn.execute("CREATE SCHEMA IF NOT EXISTS dp_synthetic")
    conn.execute("CREATE TABLE dp_synthetic.mixed_copy_target (x int)")
    conn.execute("CREATE TABLE other_mixed AS SELECT * FROM mixed LIMIT 10")
    conn.execute("SELECT dp.protect('other_mixed', dataset => 'mixed')")
    conn.execute("ALTER TABLE dp_synthetic.mixed_copy_target RENAME TO other_mixed")
    conn.execute("SELECT dp.grant_budget('postgres', 'mixed', 10, 1e-3)")
    with pytest.raises(psycopg.errors.DuplicateTable) as e:
        conn.execute("CALL dp_synthesize('public.other_mixed', epsilon => 1)")
    assert e.value.diag.message_hint
    assert conn.execute("SELECT count(*) FROM dp_synthetic.other_mixed").fetchone()[0] == 0


def test_privacy_unit_tables_bound_contributions(conn):
    conn.execute("CREATE TABLE visits (patient text NOT NULL, ward text NOT NULL CHECK (ward IN ('a', 'b', 'c')), "
                 "cost integer NOT NULL)")
    conn.execute("INSERT INTO visits SELECT 'p' || (g % 500), (ARRAY['a','b','c'])[1 + g % 3], g % 100 "
                 "FROM generate_series(1, 5000) g")
    conn.execute("SELECT dp.protect('visits', privacy_unit => 'patient', max_rows_per_unit => 3)")
    conn.execute("SELECT dp.set_bounds('visits', 'cost', 0, 100)")
    conn.execute("SELECT dp.grant_budget('postgres', 'visits', 10, 1e-3)")
    notices = synthesize(conn, "public.visits", epsilon=2.0)
    assert any("counted distinct values of 1 regenerated column" in n for n in notices)
    n, units = conn.execute("SELECT count(*), count(DISTINCT patient) FROM dp_synthetic.visits").fetchone()
    # at most 3 rows per patient were measured: about 1,500 rows, not 5,000.  The row count
    # (sensitivity 3, epsilon 0.1: b = 30) is off by 700 with p <= 2 exp(-23.3) < 2e-10; the
    # unit count (sensitivity 1, epsilon 0.2: b = 5) by 150 with p <= 2 exp(-30); 800+ rows
    # drawn uniformly over 350+ ids then use about 315 or more of them (sd < 8)
    assert 800 < n < 2200 and 250 < units < 700
    provenance = conn.execute("SELECT provenance FROM dp_internal.synthetic_tables "
                              "WHERE relid = 'dp_synthetic.visits'::regclass").fetchone()[0]
    assert provenance["regenerated"] == ["patient"]


def test_foreign_keys_to_a_vocabulary_and_to_a_synthetic_parent(conn, analyst):
    conn.execute("CREATE TABLE wards (code text PRIMARY KEY, label text NOT NULL)")
    conn.execute("INSERT INTO wards VALUES ('a', 'Acute'), ('b', 'Burns'), ('c', 'Cardio'), ('d', 'Dialysis')")
    conn.execute("SELECT dp.declare_public('wards')")             # public: copied verbatim
    conn.execute("CREATE TABLE patients (id int PRIMARY KEY, age int NOT NULL)")
    conn.execute("INSERT INTO patients SELECT g, 20 + g % 60 FROM generate_series(1, 2000) g")
    conn.execute("CREATE TABLE stays (id int PRIMARY KEY, patient int NOT NULL REFERENCES patients, "
                 "ward text NOT NULL REFERENCES wards, days int NOT NULL)")
    conn.execute("INSERT INTO stays SELECT g, 1 + g % 2000, (ARRAY['a','b','c'])[1 + g % 3], "
                 "1 + (g % 3) * 5 + g % 2 FROM generate_series(1, 6000) g")
    for t in ("patients", "stays"):
        conn.execute(f"SELECT dp.protect('{t}', dataset => 'hospital')")
    conn.execute("SELECT dp.set_bounds('patients', 'age', 0, 100)")
    conn.execute("SELECT dp.set_bounds('stays', 'days', 0, 30)")
    conn.execute(f"SELECT dp.grant_budget('{ANALYST}', 'hospital', 10, 1e-4)")
    # the parent has no synthetic copy yet: the key is left out, and the NOTICE says why
    notices = synthesize(analyst, "public.stays", epsilon=1.0)
    assert any("has no synthetic copy" in n for n in notices)
    assert [r[0] for r in conn.execute("SELECT conname FROM pg_constraint WHERE contype = 'f' "
                                       f"AND conrelid = '{MINE}.stays'::regclass")] == ["stays_ward_fkey"]
    # the vocabulary is copied verbatim, and the copy's keys come from it
    assert conn.execute(f"SELECT * FROM {MINE}.wards ORDER BY code").fetchall() == \
        conn.execute("SELECT * FROM wards ORDER BY code").fetchall()
    assert analyst.execute(f"SELECT count(*) FROM {MINE}.stays s JOIN {MINE}.wards w "
                           "ON w.code = s.ward").fetchone()[0] == \
        analyst.execute(f"SELECT count(*) FROM {MINE}.stays").fetchone()[0]
    # parents first, then children: the key is kept, pointing at the synthetic parent
    synthesize(analyst, "public.patients", epsilon=1.0)
    synthesize(analyst, "public.stays", epsilon=1.0)
    fks = dict(conn.execute("SELECT conname, confrelid::regclass::text FROM pg_constraint WHERE contype = 'f' "
                            f"AND conrelid = '{MINE}.stays'::regclass").fetchall())
    assert fks == {"stays_ward_fkey": f"{MINE}.wards", "stays_patient_fkey": f"{MINE}.patients"}
    orphans = conn.execute(f"SELECT count(*) FROM {MINE}.stays s LEFT JOIN {MINE}.patients p "
                           "ON p.id = s.patient WHERE p.id IS NULL").fetchone()[0]
    assert orphans == 0
    # a new copy of the parent drops the child's key to the old one, and says so
    notices = synthesize(analyst, "public.patients", epsilon=1.0)
    assert any("stays_patient_fkey" in n for n in notices)
