"""The trust boundary of synthesis and bounding: least privilege for synthesis, every unit bounded,
nothing shared that should not be.  One test per attack, on a real server.

`app` owns a protected table and writes its own functions, operators, domains and casts (an
application owner: no superuser, no pg_dp administrator).  `mallory` is an analyst with a
budget; `eve` has none.  Every spy function records who ran it: it must never run as the
superuser that pg_dp's executor is.
"""

import hashlib
import itertools
from decimal import Decimal

import psycopg
import pytest

from datasets import synthesize

ROLES = ("tr_app", "tr_mallory", "tr_eve", "tr_bi")
APP, MALLORY, EVE, BI = ROLES


@pytest.fixture(scope="module", autouse=True)
def setup(conn):
    for role in ROLES:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    conn.execute(f"CREATE SCHEMA app AUTHORIZATION {APP}")
    conn.execute(f"GRANT USAGE ON SCHEMA app TO PUBLIC")
    conn.execute("CREATE TABLE public.ran_as (who text, super boolean)")
    conn.execute("GRANT INSERT ON public.ran_as TO PUBLIC")
    yield
    conn.execute("DROP SCHEMA app CASCADE")
    for schema in ("dp_synthetic", f"dp_synthetic_{MALLORY}", f"dp_synthetic_{EVE}"):
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    for role in ROLES:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


def login(pg, db, role):
    c = pg.connect(db, user=role)
    c.execute("SET search_path = public, dp")
    return c


@pytest.fixture(scope="module")
def app(pg, db):
    with login(pg, db, APP) as c:
        c.execute("""CREATE FUNCTION app.spy(int, int) RETURNS boolean LANGUAGE plpgsql AS $$
                     BEGIN INSERT INTO public.ran_as
                           SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;
                           RETURN true; END $$""")
        c.execute("CREATE FUNCTION app.spy1(int) RETURNS boolean LANGUAGE sql AS 'SELECT app.spy($1, 0)'")
        c.execute("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA app TO PUBLIC")
        c.execute("CREATE OPERATOR app.<~> (leftarg = int, rightarg = int, function = app.spy)")
        yield c


@pytest.fixture
def mallory(pg, db):
    with login(pg, db, MALLORY) as c:
        yield c


@pytest.fixture
def eve(pg, db):
    with login(pg, db, EVE) as c:
        yield c


def ran_as_superuser(conn):
    return conn.execute("SELECT count(*) FROM public.ran_as WHERE super").fetchone()[0]


def ledger(conn, role):
    return conn.execute("SELECT count(*), coalesce(sum(epsilon), 0) FROM dp.ledger WHERE role = %s::regrole",
                        (role,)).fetchone()


def ask(c, sql, epsilon=0.1):
    return c.execute("SELECT * FROM dp.query_json(%s, %s)", (sql, epsilon)).fetchall()


# -- 1, 2: the owner's rights never evaluate another role's expression ---------------------------

def test_attack_check_operator_of_the_table_owner_runs_as_superuser(conn, app):
    """Before: the copy was made with LIKE ... INCLUDING CONSTRAINTS and filled as the extension
    owner, so app's operator in a CHECK (and in a DEFAULT) ran ~1,300 times as the superuser.
    Now the copy carries only what pg_dp can vouch for, written by the powerless writer role."""
    app.execute("CREATE DOMAIN app.points AS int NOT NULL CHECK (VALUE BETWEEN 0 AND 9)")
    app.execute("""CREATE TABLE app.acct (id int PRIMARY KEY, age int NOT NULL CHECK (age OPERATOR(app.<~>) 0)
                   CHECK (age >= 0), kind text NOT NULL CHECK (kind IN ('a', 'b')),
                   note text DEFAULT (CASE WHEN 1 OPERATOR(app.<~>) 1 THEN 'x' END), points app.points)""")
    app.execute("COMMENT ON COLUMN app.acct.age IS 'years'")
    conn.execute("INSERT INTO app.acct SELECT g, 20 + g % 50, (ARRAY['a', 'b'])[1 + g % 2], NULL, g % 10 "
                 "FROM generate_series(1, 400) g")
    conn.execute("DELETE FROM public.ran_as")
    conn.execute("SELECT dp.protect('app.acct')")
    conn.execute("SELECT dp.set_bounds('app.acct', 'age', 20, 70)")
    conn.execute("SELECT dp.set_bounds('app.acct', 'points', -5, 15)")     # wider than the domain allows
    conn.execute("SELECT dp.set_public_values('app.acct', 'note', ARRAY['x'])")
    conn.execute("SELECT dp.grant_budget('postgres', 'acct', 10, 1e-4)")
    notices = synthesize(conn, "app.acct", epsilon=1.0)
    assert ran_as_superuser(conn) == 0
    assert conn.execute("SELECT count(*) FROM public.ran_as").fetchone()[0] == 0   # nor as anyone
    said = "\n".join(notices)
    assert "CHECK acct_age_check is left out" in said and "app.spy" in said and "default of column note" in said
    # what pg_dp could vouch for is kept: the other CHECKs, NOT NULL, the key, the comment
    checks = sorted(r[0] for r in conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'dp_synthetic.acct'::regclass "
        "AND contype = 'c'"))
    assert checks == sorted(["CHECK ((age >= 0))", "CHECK ((kind = ANY (ARRAY['a'::text, 'b'::text])))",
                             "CHECK (((points >= 0) AND (points <= 9)))"])
    # app's domain (app may ALTER it) is not the copy's type: its base type, NOT NULL and CHECK are
    assert conn.execute("SELECT format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
                        "WHERE attrelid = 'dp_synthetic.acct'::regclass AND attname = 'points'").fetchone() == \
        ("integer", True)
    assert conn.execute("SELECT count(*) FROM dp_synthetic.acct WHERE points NOT BETWEEN 0 AND 9").fetchone()[0] == 0
    assert conn.execute("SELECT col_description('dp_synthetic.acct'::regclass, 2)").fetchone()[0] == "years"
    owner, n = conn.execute("SELECT relowner::regrole::text, (SELECT count(*) FROM dp_synthetic.acct) "
                            "FROM pg_class WHERE oid = 'dp_synthetic.acct'::regclass").fetchone()
    assert owner == "dp_shadow_writer" and n > 100


def test_attack_domain_over_another_roles_domain(conn, app, mallory):
    """Before: a DBA-owned table whose column type is a domain over app's domain (whose CHECK
    calls app's function) had every staged value cast as the owner by domain_misfits (~1,800
    calls); the pre-charge check followed pg_depend one step only.  Now dp.protect, every
    question and dp_synthesize refuse it before any charge, whenever the domain got its CHECK."""
    app.execute("CREATE DOMAIN app.score AS int CHECK (VALUE >= 0)")
    app.execute("GRANT USAGE ON TYPE app.score TO PUBLIC")
    conn.execute("CREATE DOMAIN public.grade AS app.score CHECK (VALUE <= 100)")
    conn.execute("CREATE TABLE exams (id int, grade public.grade, subject text)")
    conn.execute("INSERT INTO exams SELECT g, g % 100, (ARRAY['m', 'p'])[1 + g % 2] FROM generate_series(1, 600) g")
    conn.execute("SELECT dp.protect('exams')")
    conn.execute("SELECT dp.set_bounds('exams', 'grade', 0, 100)")
    conn.execute("SELECT dp.set_public_values('exams', 'subject', ARRAY['m', 'p'])")
    conn.execute(f"SELECT dp.grant_budget('{MALLORY}', 'exams', 10, 1e-4)")
    conn.execute("SELECT dp.grant_budget('postgres', 'exams', 10, 1e-4)")
    assert len(ask(mallory, "SELECT count(*) FROM exams WHERE subject = 'm'")) == 1
    # later, app's domain (under the DBA's) calls app's function
    app.execute("ALTER DOMAIN app.score ADD CONSTRAINT spy CHECK (app.spy1(VALUE))")
    conn.execute("DELETE FROM public.ran_as")
    before, before_dba = ledger(conn, MALLORY), ledger(conn, "postgres")
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
        ask(mallory, "SELECT count(*) FROM exams WHERE subject = 'p'")
    assert "app.spy1(integer)" in e.value.diag.message_primary and e.value.diag.message_hint
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
        synthesize(conn, "public.exams", epsilon=1.0)
    assert "app.spy1(integer)" in e.value.diag.message_primary and "Nothing was charged" in e.value.diag.message_hint
    assert ran_as_superuser(conn) == 0
    assert ledger(conn, MALLORY) == before and ledger(conn, "postgres") == before_dba
    assert conn.execute("SELECT to_regclass('dp_synthetic.exams')").fetchone()[0] is None
    # and a table protected after it is refused at once
    conn.execute("CREATE TABLE exams2 (id int, grade public.grade)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT dp.protect('exams2')")
    assert conn.execute("SELECT count(*) FROM dp.protected_tables WHERE table_name = 'exams2'::regclass"
                        ).fetchone()[0] == 0


def test_attack_cast_from_the_owners_type_runs_as_superuser(conn, app, mallory):
    """pg_cast is not schema-scoped: app, owning an enum, creates a cast from it to text with its
    own function, and any `col::text` of the executor (encoding, keys) would run it as the
    superuser.  Refused by dp.protect, questions and dp_synthesize."""
    app.execute("CREATE TYPE app.mood AS ENUM ('calm', 'angry')")
    app.execute("GRANT USAGE ON TYPE app.mood TO PUBLIC")
    app.execute("CREATE TABLE app.moods (id int, mood app.mood)")
    app.execute("INSERT INTO app.moods SELECT g, (ARRAY['calm', 'angry'])[1 + g % 2]::app.mood "
                "FROM generate_series(1, 300) g")
    conn.execute("SELECT dp.protect('app.moods')")
    conn.execute(f"SELECT dp.grant_budget('{MALLORY}', 'moods', 10, 1e-4)")
    assert len(ask(mallory, "SELECT mood, count(*) FROM app.moods GROUP BY mood")) >= 2
    app.execute("""CREATE FUNCTION app.mood_text(app.mood) RETURNS text LANGUAGE sql
                   AS $$ SELECT CASE WHEN app.spy(1, 1) THEN 'x' END $$""")
    app.execute("CREATE CAST (app.mood AS text) WITH FUNCTION app.mood_text(app.mood)")
    conn.execute("DELETE FROM public.ran_as")
    before = ledger(conn, MALLORY)
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
        ask(mallory, "SELECT mood, count(*) FROM app.moods GROUP BY mood")
    assert "a cast from app.mood to text" in e.value.diag.message_primary
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        mallory.execute("CALL dp.dp_synthesize('app.moods', epsilon => 1)")
    assert ran_as_superuser(conn) == 0 and ledger(conn, MALLORY) == before
    rows = conn.execute("SELECT issue, fix FROM dp.doctor() WHERE table_name = 'app.moods'::regclass").fetchall()
    assert any("another role's code" in r[0] and "app.mood_text" in r[1] for r in rows)
    app.execute("DROP CAST (app.mood AS text)")


def test_attack_code_run_as_the_writer_cannot_regain_the_owner(conn):
    """Whatever still runs during a write runs as dp_shadow_writer in a security-restricted
    operation: no SET ROLE back to the owner, no temp objects for the owner to find later, no
    setting outliving the write, no pg_dp catalog, and nothing owned outside the shadow schema."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS dp_synthetic")
    conn.execute("GRANT USAGE, CREATE ON SCHEMA dp_synthetic TO dp_shadow_writer")
    run = "SELECT * FROM dp_internal.as_writer(%s)"
    assert conn.execute(run, (["SELECT count(*) FROM pg_catalog.pg_roles WHERE rolname = current_user "
                               "AND NOT rolsuper AND NOT rolcanlogin AND current_user = 'dp_shadow_writer'"],)
                        ).fetchall() == [(1,)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(run, (["SET ROLE postgres"],))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(run, (["SET SESSION AUTHORIZATION postgres"],))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(run, (["CREATE TEMP TABLE t (a int)"],))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(run, (["SELECT count(*) FROM dp_internal.budgets"],))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(run, (["SELECT dp_internal.as_writer(ARRAY['SELECT 1'])"],))
    path = conn.execute("SHOW search_path").fetchone()[0]
    conn.execute(run, (["SET search_path = dp_synthetic, public", "SELECT set_config('work_mem', '77MB', false)"],))
    assert conn.execute("SHOW search_path").fetchone()[0] == path
    assert conn.execute("SHOW work_mem").fetchone()[0] != "77MB"
    conn.execute(run, (["CREATE FUNCTION pg_temp.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'"],))
    strays = [r[0] for r in conn.execute("SELECT * FROM dp_internal.writer_strays()")]
    assert len(strays) == 1 and strays[0].endswith(".planted()")
    conn.execute("DROP FUNCTION pg_temp.planted()")
    # the role itself must stay powerless and alone: granted to someone, pg_dp writes nothing
    conn.execute(f"GRANT dp_shadow_writer TO {EVE}")
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            conn.execute(run, (["SELECT 1"],))
        assert "has members" in e.value.diag.message_primary
        assert any("writer role has members" in r[0] for r in conn.execute("SELECT issue FROM dp.doctor()"))
    finally:
        conn.execute(f"REVOKE dp_shadow_writer FROM {EVE}")
    # a role with CREATEROLE could grant it to itself (PostgreSQL 15): the doctor names it
    conn.execute(f"ALTER ROLE {EVE} CREATEROLE")
    try:
        assert any(r[0] == "role with CREATEROLE" and EVE in r[1] for r in
                   conn.execute("SELECT issue, detail FROM dp.doctor()"))
    finally:
        conn.execute(f"ALTER ROLE {EVE} NOCREATEROLE")


# -- 3: a row that names the unit twice ----------------------------------------------------------

def test_attack_transfer_names_two_customers(conn, mallory):
    """Before: dp.protect recorded one path (the first key by name), so one customer's 300
    received transfers came back as 302 with noise sized for 5 rows per unit.  Now a table that
    names the unit twice (two keys to it, or the unit column and a key) is refused by dp.protect
    and at question time, before any charge, until the DBA declares every reference but one."""
    conn.execute("CREATE TABLE customer (customer_id int PRIMARY KEY, region text)")
    conn.execute("INSERT INTO customer SELECT g, 'r' || g % 3 FROM generate_series(1, 500) g")
    conn.execute("CREATE TABLE transfer (id int PRIMARY KEY, sender_id int NOT NULL REFERENCES customer, "
                 "receiver_id int NOT NULL REFERENCES customer, amount int)")
    conn.execute("INSERT INTO transfer SELECT g, 1 + g % 500, CASE WHEN g <= 300 THEN 7 ELSE 1 + g % 499 END, "
                 "g % 100 FROM generate_series(1, 3000) g")
    conn.execute("CREATE TABLE referral (customer_id int NOT NULL, referred_by int REFERENCES customer)")
    conn.execute("SELECT dp.protect('customer', dataset => 'bank', privacy_unit => 'customer_id', "
                 "max_rows_per_unit => 5)")
    conn.execute(f"SELECT dp.grant_budget('{MALLORY}', 'bank', 10)")
    for table, words in (("transfer", ["transfer_receiver_id_fkey", "transfer_sender_id_fkey"]),
                         ("referral", ["its column customer_id", "referral_referred_by_fkey"])):
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            conn.execute(f"SELECT dp.protect('{table}', dataset => 'bank')")
        assert all(w in e.value.diag.message_primary for w in words) and "not_personal" in e.value.diag.message_hint
        assert conn.execute(f"SELECT count(*) FROM dp.protected_tables WHERE table_name = '{table}'::regclass"
                            ).fetchone()[0] == 0
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT dp.protect('transfer', dataset => 'bank', not_personal => ARRAY['amount'])")
    # declared: the receiver is not bounded here, and dp.protected_tables says so
    conn.execute("SELECT dp.protect('transfer', dataset => 'bank', not_personal => ARRAY['receiver_id'])")
    assert conn.execute("SELECT unit_path, not_personal FROM dp.protected_tables WHERE table_name = "
                        "'transfer'::regclass").fetchone() == ('["sender_id"] -> customer',
                                                               ["transfer_receiver_id_fkey"])
    assert len(ask(mallory, "SELECT count(*) FROM transfer")) == 1
    # a second key to the unit added later: refused at question time, before any charge
    conn.execute("ALTER TABLE transfer ADD COLUMN approver_id int REFERENCES customer")
    before = ledger(conn, MALLORY)
    with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
        ask(mallory, "SELECT count(*) FROM transfer WHERE amount > 3")
    assert "transfer_approver_id_fkey" in e.value.diag.message_primary and e.value.diag.message_hint
    with pytest.raises(psycopg.errors.FeatureNotSupported):
        mallory.execute("CALL dp.dp_synthesize('public.transfer', epsilon => 1)")
    assert ledger(conn, MALLORY) == before
    assert any("names the unit twice" in r[0] for r in
               conn.execute("SELECT issue FROM dp.doctor() WHERE table_name = 'transfer'::regclass"))
    conn.execute("ALTER TABLE transfer DROP COLUMN approver_id")
    # a table on two paths to the unit: the path through transfer and a key of its own
    conn.execute("CREATE TABLE dispute (id int, transfer_id int NOT NULL REFERENCES transfer, "
                 "customer_id int NOT NULL REFERENCES customer)")
    with pytest.raises(psycopg.errors.FeatureNotSupported):
        conn.execute("SELECT dp.protect('dispute', dataset => 'bank')")


# -- 4: copies are never replaced by another role ----------------------------------------------

def test_attack_analyst_replaces_the_dbas_copy(conn, pg, db, mallory):
    """Before: CALL dp_synthesize('public.t', epsilon => 0.001, rows => 1) by any budget holder
    dropped the DBA's copy, carried its grants to the new one, and BI previews served the
    attacker's row.  Now only administrators write the shared shadow schema; an analyst's copy
    goes to a schema of its own; every copy says who made it and when."""
    conn.execute("CREATE TABLE pets (id int PRIMARY KEY, kind text NOT NULL CHECK (kind IN ('cat', 'dog')), age int)")
    conn.execute("INSERT INTO pets SELECT g, CASE WHEN g % 3 = 0 THEN 'dog' ELSE 'cat' END, g % 15 "
                 "FROM generate_series(1, 300) g")
    conn.execute("SELECT dp.protect('pets')")
    conn.execute("SELECT dp.set_bounds('pets', 'age', 0, 15)")
    conn.execute("SELECT dp.grant_budget('postgres', 'pets', 10, 1e-4)")
    for role in (MALLORY, BI):
        conn.execute(f"SELECT dp.grant_budget('{role}', 'pets', 10, 1e-4)")
    synthesize(conn, "public.pets", epsilon=2.0)
    conn.execute(f"GRANT USAGE ON SCHEMA dp_synthetic TO {BI}")
    conn.execute(f"GRANT SELECT ON dp_synthetic.pets TO {BI}")
    dbas = conn.execute("SELECT count(*), obj_description('dp_synthetic.pets'::regclass) FROM dp_synthetic.pets"
                        ).fetchone()
    # the attack: a one-row copy over the DBA's
    mallory.execute("CALL dp.dp_synthesize('public.pets', epsilon => 0.5, \"rows\" => 1)")
    assert conn.execute("SELECT count(*), obj_description('dp_synthetic.pets'::regclass) FROM dp_synthetic.pets"
                        ).fetchone() == dbas
    assert conn.execute(f"SELECT count(*) FROM dp_synthetic_{MALLORY}.pets").fetchone()[0] == 1
    made = dict(conn.execute("SELECT synthetic_table::text, made_by::text FROM dp.synthetic_tables "
                             "WHERE source = 'pets'::regclass").fetchall())
    assert made == {"dp_synthetic.pets": "postgres", f"dp_synthetic_{MALLORY}.pets": MALLORY}
    assert "made by pg_dp dp_synthesize for role postgres at" in dbas[1]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        mallory.execute("CALL dp.dp_synthesize('public.pets', epsilon => 0.5, target_schema => 'dp_synthetic')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):      # nor does she read the DBA's copy
        mallory.execute("SELECT count(*) FROM dp_synthetic.pets")
    # the BI role's previews (plain SQL through the hook) keep coming from the DBA's copy
    conn.execute(f'ALTER ROLE {BI} IN DATABASE "{db}" SET session_preload_libraries = \'pg_dp\'')
    with login(pg, db, BI) as bi:
        preview = bi.execute("SELECT * FROM pets LIMIT 100000").fetchall()
    assert sorted(map(repr, preview)) == sorted(map(repr, conn.execute("SELECT * FROM dp_synthetic.pets").fetchall()))
    # a role that may create schemas cannot prepare another analyst's schema to own its copies
    conn.execute(f"GRANT CREATE ON DATABASE {db} TO {EVE}")
    conn.execute(f"SELECT dp.grant_budget('{EVE}', 'pets', 10, 1e-4)")
    with login(pg, db, EVE) as eve:
        eve.execute(f"CREATE SCHEMA dp_synthetic_{BI}")
    with login(pg, db, BI) as bi:
        before = ledger(conn, BI)
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            bi.execute("CALL dp.dp_synthesize('public.pets', epsilon => 0.5)")
        assert EVE in e.value.diag.message_primary and ledger(conn, BI) == before
    conn.execute(f"DROP SCHEMA dp_synthetic_{BI}")
    conn.execute(f"REVOKE CREATE ON DATABASE {db} FROM {EVE}")


# -- 5: a view charges its author ----------------------------------------------------------------

def test_attack_view_reader_pays_the_authors_question(conn, mallory, eve):
    """Before: mallory registered an epsilon 0.9 question about one patient and granted the view
    to eve; eve paid when reading, and mallory then read the answer free from the cache.  Now the
    author pays, as for a SECURITY DEFINER function: eve is never charged for it."""
    conn.execute("CREATE TABLE ward (id int PRIMARY KEY, age int)")
    conn.execute("INSERT INTO ward SELECT g, 20 + g % 60 FROM generate_series(1, 2000) g")
    conn.execute("SELECT dp.protect('ward')")
    conn.execute("SELECT dp.set_bounds('ward', 'age', 0, 100)")
    conn.execute(f"SELECT dp.grant_budget('{MALLORY}', 'ward', 5)")
    conn.execute(f"SELECT dp.grant_budget('{EVE}', 'ward', 5)")
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS tr_views AUTHORIZATION {MALLORY}")
    mallory.execute("SELECT dp.create_view('tr_views.one_patient', 'SELECT count(*) FROM ward WHERE id = 77', 0.9)")
    mallory.execute(f"GRANT USAGE ON SCHEMA tr_views TO {EVE}")
    mallory.execute(f"GRANT SELECT ON tr_views.one_patient TO {EVE}")
    eves, mallorys = ledger(conn, EVE), ledger(conn, MALLORY)
    assert len(eve.execute("SELECT * FROM tr_views.one_patient").fetchall()) == 1
    assert ledger(conn, EVE) == eves
    assert ledger(conn, MALLORY) == (mallorys[0] + 1, mallorys[1] + Decimal("0.9"))
    mallory.execute("SELECT * FROM tr_views.one_patient")           # cached: the same single charge
    assert ledger(conn, MALLORY) == (mallorys[0] + 1, mallorys[1] + Decimal("0.9"))
    conn.execute("DROP SCHEMA tr_views CASCADE")


# -- 7, 8, 10: exact statistics and other analysts' questions in public catalogs ---------------

def test_attack_data_version_counts_writes(conn, eve, mallory):
    """Before: dp.datasets.data_version (readable by PUBLIC) counted writes to a protected
    dataset exactly, as the revoked pg_stat_* counters did (and dp.ledger repeated it)."""
    conn.execute("CREATE TABLE wages (id int, pay int)")
    conn.execute("INSERT INTO wages SELECT g, g % 90 FROM generate_series(1, 500) g")
    conn.execute("SELECT dp.protect('wages')")
    conn.execute("SELECT dp.set_bounds('wages', 'pay', 0, 90)")
    conn.execute(f"SELECT dp.grant_budget('{MALLORY}', 'wages', 5)")
    ask(mallory, "SELECT count(*) FROM wages")
    seen = [c.execute("SELECT data_version, epsilon_spent FROM dp.datasets WHERE dataset = 'wages'").fetchone()
            for c in (eve, mallory)]
    for _ in range(3):
        conn.execute("UPDATE wages SET pay = pay WHERE id = 1")
    assert [c.execute("SELECT data_version, epsilon_spent FROM dp.datasets WHERE dataset = 'wages'").fetchone()
            for c in (eve, mallory)] == seen == [(None, None), (None, None)]
    assert mallory.execute("SELECT data_version FROM dp.ledger WHERE dataset = 'wages'").fetchall() == [(None,)]
    assert conn.execute("SELECT data_version > 1 FROM dp.datasets WHERE dataset = 'wages'").fetchone()[0]


def test_attack_bounded_copy_name_tells_the_group_by(conn, mallory, eve):
    """Before: a bounded copy was named bounded_<relid>_<sha256(relid:keys)[:12]>, so eve (no
    budget) recovered mallory's GROUP BY columns by hashing the candidates.  Now the name is a
    keyed digest under a secret only the extension owner reads, and names no table."""
    conn.execute("CREATE TABLE clinic (patient int, ward text, hiv_status text, sex text, cost int)")
    conn.execute("INSERT INTO clinic SELECT g % 400, (ARRAY['a', 'b'])[1 + g % 2], (ARRAY['n', 'p'])[1 + g % 7 / 6], "
                 "(ARRAY['f', 'm'])[1 + g % 2], g % 50 FROM generate_series(1, 2000) g")
    conn.execute("SELECT dp.protect('clinic', privacy_unit => 'patient', max_rows_per_unit => 5)")
    for column, values in (("ward", "a,b"), ("hiv_status", "n,p"), ("sex", "f,m")):
        conn.execute(f"SELECT dp.set_public_values('clinic', '{column}', string_to_array('{values}', ','))")
    conn.execute(f"SELECT dp.grant_budget('{MALLORY}', 'clinic', 10)")
    before = {r[0] for r in eve.execute("SELECT relname FROM pg_class WHERE relname LIKE 'bounded_%'")}
    for where in ("", "WHERE cost > 3 "):      # a copy is built the second time a key set is asked
        ask(mallory, f"SELECT ward, hiv_status, count(*) FROM clinic {where}GROUP BY ward, hiv_status", 0.1)
    names = {r[0] for r in eve.execute("SELECT relname FROM pg_class WHERE relname LIKE 'bounded_%'")} - before
    # one copy, in three tables (units within the bounds, kept rows of the others, the rest): one digest
    assert len(names) == 3 and len({n.rsplit("_", 1)[0] for n in names}) == 1, names
    names |= {n.rsplit("_", 1)[0] for n in names}
    relid = conn.execute("SELECT 'clinic'::regclass::oid").fetchone()[0]
    columns = ["patient", "ward", "hiv_status", "sex", "cost"]
    guesses = {f"bounded_{relid}_" + hashlib.sha256(f"{relid}:{','.join(keys)}".encode()).hexdigest()[:12]
               for n in (1, 2, 3) for keys in itertools.permutations(columns, n)}
    assert not names & guesses
    assert all(str(relid) not in name for name in names)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        eve.execute("SELECT * FROM dp_internal.secrets")


def test_attack_delete_from_a_table_the_protected_one_references(conn, mallory):
    """A protected table's key to a table another role may DELETE from: each delete of a key tells
    her whether a protected row references it (a violation, or a cascade that bumps the data
    version).  dp.protect refuses it until the DBA revokes, drops the key, or says force."""
    conn.execute("CREATE TABLE plan (code text PRIMARY KEY)")
    conn.execute("INSERT INTO plan VALUES ('basic'), ('hiv-care'), ('gold')")
    conn.execute(f"GRANT SELECT, DELETE ON plan TO {MALLORY}")
    conn.execute("CREATE TABLE member (id int, plan text REFERENCES plan)")
    conn.execute("INSERT INTO member SELECT g, (ARRAY['basic', 'gold'])[1 + g % 2] FROM generate_series(1, 100) g")
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
        conn.execute("SELECT dp.protect('member')")
    assert MALLORY in e.value.diag.message_primary and "DELETE" in e.value.diag.message_primary
    assert conn.execute("SELECT count(*) FROM dp.protected_tables WHERE table_name = 'member'::regclass"
                        ).fetchone()[0] == 0
    conn.execute("SELECT dp.protect('member', force => true)")
    assert any("foreign key to a writable table" in r[0] for r in
               conn.execute("SELECT issue FROM dp.doctor() WHERE table_name = 'member'::regclass"))


def test_attack_reltuples_and_relation_size_are_stated_by_the_doctor(conn):
    """reltuples, relpages and pg_relation_size() cannot be closed: dp.doctor(known_limits) says
    exactly what every role reads from them, with the current figures."""
    conn.execute("ANALYZE wages")
    rows = conn.execute("SELECT issue, detail FROM dp.doctor(known_limits => true) "
                        "WHERE table_name = 'wages'::regclass").fetchall()
    detail = next(d for i, d in rows if "reltuples" in i)
    size = conn.execute("SELECT pg_relation_size('wages')").fetchone()[0]
    assert "reltuples = 500," in detail and f"pg_relation_size() = {size} bytes" in detail
    assert "exact when ANALYZE read every row" in detail
    copies = [d for i, d in conn.execute("SELECT issue, detail FROM dp.doctor(known_limits => true)") if
              "bounded copies" in i]
    assert copies and "not which table nor which columns" in copies[0]


def test_attack_partition_keys_name_the_unit_twice(conn, mallory):
    """Before: dp.protect read the foreign keys declared on the table itself, so a partitioned table
    whose second key to the unit is declared on its partitions (as a store schema's payments are)
    was bounded for one unit.  Keys declared only on partitions count now, and one declaration by
    column covers every partition's key."""
    conn.execute("CREATE TABLE pcustomer (customer_id int PRIMARY KEY)")
    conn.execute("INSERT INTO pcustomer SELECT generate_series(1, 100)")
    conn.execute("CREATE TABLE preferral (customer_id int NOT NULL REFERENCES pcustomer, referred_by int, "
                 "day date NOT NULL) PARTITION BY RANGE (day)")
    for y in (2024, 2025):
        conn.execute(f"CREATE TABLE preferral_{y} PARTITION OF preferral FOR VALUES FROM ('{y}-01-01') TO ('{y + 1}-01-01')")
        conn.execute(f"ALTER TABLE preferral_{y} ADD FOREIGN KEY (referred_by) REFERENCES pcustomer")
    conn.execute("INSERT INTO preferral SELECT 1 + g % 100, 7, DATE '2024-01-01' + g % 700 FROM generate_series(1, 1000) g")
    conn.execute("SELECT dp.protect('pcustomer', dataset => 'pbank', privacy_unit => 'customer_id', "
                 "max_rows_per_unit => 5)")
    with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
        conn.execute("SELECT dp.protect('preferral', dataset => 'pbank')")
    assert "preferral_2024_referred_by_fkey" in e.value.diag.message_primary
    assert conn.execute("SELECT count(*) FROM dp.protected_tables WHERE table_name = 'preferral'::regclass"
                        ).fetchone()[0] == 0
    conn.execute("SELECT dp.protect('preferral', dataset => 'pbank', not_personal => ARRAY['referred_by'])")
    assert sorted(conn.execute("SELECT not_personal FROM dp.protected_tables WHERE table_name = "
                               "'preferral'::regclass").fetchone()[0]) == ["preferral_2024_referred_by_fkey",
                                                                           "preferral_2025_referred_by_fkey"]


def test_attack_a_role_named_after_anothers_oid_takes_no_schema_of_its(conn):
    """A role whose name is too long for the shadow schema's name gets dp_synthetic_oid<its oid>;
    a role *named* oid<that oid> (made by anyone with CREATEROLE) got the same schema, marked as its
    own once it synthesized first, and the long-named role's synthesis was then refused.  A name of
    the oid form now takes the oid form of its own oid: no two roles share a personal schema."""
    long_name = "tr_" + "l" * 58
    conn.execute(f"CREATE ROLE {long_name}")
    try:
        victim = conn.execute("SELECT oid FROM pg_roles WHERE rolname = %s", (long_name,)).fetchone()[0]
        conn.execute(f"CREATE ROLE oid{victim}")
        try:
            attacker = conn.execute("SELECT oid FROM pg_roles WHERE rolname = %s", (f"oid{victim}",)).fetchone()[0]
            schemas = [conn.execute("SELECT dp_internal.personal_schema(%s, 'dp_synthetic')", (r,)).fetchone()[0]
                       for r in (victim, attacker)]
            assert schemas == [f"dp_synthetic_oid{victim}", f"dp_synthetic_oid{attacker}"]
            assert conn.execute("SELECT dp_internal.personal_schema(%s, 'dp_synthetic')",
                                (conn.execute(f"SELECT '{MALLORY}'::regrole::oid").fetchone()[0],)
                                ).fetchone()[0] == f"dp_synthetic_{MALLORY}"      # other names unchanged
        finally:
            conn.execute(f"DROP ROLE oid{victim}")
    finally:
        conn.execute(f"DROP ROLE {long_name}")
