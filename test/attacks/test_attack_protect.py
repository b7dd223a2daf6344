"""Attacks around a protected table, one test per attack, on a real server.

The gateway's own suite (test_gateway_security.py) attacks the front door; these
tests attack the other doors a DBA may have left open: partitions and inheritance
children, views and materialized views, later GRANTs (also through default
privileges), REFERENCES and foreign keys, statistics counters, writes that keep a
stale answer cache.  dp.doctor() lists what dp.protect cannot close by itself, and
the DBA functions refuse bad input before writing anything.
"""

import contextlib
import time
from decimal import Decimal

import psycopg
import pytest

MALLORY = "ap_mallory"
BI = "ap_bi"


@pytest.fixture(scope="module", autouse=True)
def roles(conn):
    conn.execute(f"CREATE ROLE {MALLORY} LOGIN")
    conn.execute(f"CREATE ROLE {BI} LOGIN")
    conn.execute(f"CREATE SCHEMA {MALLORY} AUTHORIZATION {MALLORY}")
    yield
    conn.execute(f"DROP SCHEMA {MALLORY} CASCADE")
    conn.execute(f"DROP OWNED BY {MALLORY}, {BI}")
    conn.execute(f"DROP ROLE {MALLORY}")
    conn.execute(f"DROP ROLE {BI}")


@pytest.fixture
def mallory(pg, db):
    with pg.connect(db, user=MALLORY) as c:
        c.execute(f"SET search_path = {MALLORY}, public, dp")
        yield c


@pytest.fixture
def bi(pg, db):
    with pg.connect(db, user=BI) as c:
        yield c


@contextlib.contextmanager
def notices(conn):
    """The NOTICEs the server sends on conn while the block runs, as (message, hint)."""
    got = []

    def handler(diag):  # diag is valid during the call only
        got.append((diag.message_primary, diag.message_hint))

    conn.add_notice_handler(handler)
    try:
        yield got
    finally:
        conn.remove_notice_handler(handler)


def text_of(got):
    return "\n".join(f"{message} {hint or ''}" for message, hint in got)


def denied(c, sql):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        c.execute(sql)


def version(conn, dataset):
    return conn.execute("SELECT data_version FROM dp.datasets WHERE dataset = %s", (dataset,)).fetchone()[0]


def dataset_tables(conn, dataset):
    row = conn.execute("SELECT tables::text[] FROM dp.datasets WHERE dataset = %s", (dataset,)).fetchone()
    return set(row[0] or []) if row else set()


def foreign_acl(conn, *tables):
    """ACL entries on the tables (and their columns) that are not the owner's."""
    return conn.execute(
        "SELECT c.relname::text, a.grantee::regrole::text, a.privilege_type FROM pg_class c, "
        "LATERAL aclexplode(c.relacl) a WHERE c.relname = ANY(%s) AND a.grantee <> c.relowner "
        "UNION ALL SELECT c.relname::text || '.' || att.attname, a.grantee::regrole::text, a.privilege_type "
        "FROM pg_class c JOIN pg_attribute att ON att.attrelid = c.oid, LATERAL aclexplode(att.attacl) a "
        "WHERE c.relname = ANY(%s) AND a.grantee <> c.relowner", (list(tables), list(tables))).fetchall()


def trigger_state(conn, table):
    row = conn.execute("SELECT tgenabled FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = 'dp_data_version'",
                       (table,)).fetchone()
    return row[0] if row else None


def refused(conn, sql, error=psycopg.errors.InvalidParameterValue, match=None):
    with pytest.raises(error) as e:
        conn.execute(sql)
    assert e.value.diag.message_hint, f"{sql}: every refusal carries a hint"
    assert "Failing row" not in (e.value.diag.message_detail or ""), "no raw check violation"
    if match:
        assert match in e.value.diag.message_primary
    return e.value


# -- partitions and inheritance ---------------------------------------------------------------

def test_attack_read_partition_directly(conn, mallory):
    conn.execute("CREATE TABLE pv (id int, region text, amount int) PARTITION BY LIST (region)")
    conn.execute("CREATE TABLE pv_north PARTITION OF pv FOR VALUES IN ('north') PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE pv_north_1 PARTITION OF pv_north FOR VALUES FROM (0) TO (10000)")
    conn.execute("CREATE TABLE pv_south PARTITION OF pv FOR VALUES IN ('south')")
    conn.execute("INSERT INTO pv SELECT g, CASE WHEN g % 2 = 0 THEN 'north' ELSE 'south' END, g "
                 "FROM generate_series(1, 2000) g")
    conn.execute(f"GRANT SELECT ON pv, pv_north, pv_north_1, pv_south TO {MALLORY}")
    conn.execute(f"GRANT SELECT (amount) ON pv_south TO {MALLORY}")
    conn.execute("CREATE TABLE ih (id int, amount int)")
    conn.execute("CREATE TABLE ih_child (note text) INHERITS (ih)")
    conn.execute("INSERT INTO ih_child VALUES (1, 10, 'x')")
    conn.execute(f"GRANT SELECT ON ih, ih_child TO {MALLORY}")
    with notices(conn) as got:
        conn.execute("SELECT dp.protect('pv')")
        conn.execute("SELECT dp.protect('ih')")
    said = text_of(got)
    for name in ("pv_north_1", "pv_south", "ih_child", MALLORY):
        assert name in said
    for table in ("pv", "pv_north", "pv_north_1", "pv_south", "ONLY pv_south", "ih", "ih_child"):
        denied(mallory, f"SELECT count(*) FROM {table}")
    denied(mallory, "SELECT sum(amount) FROM pv_south")
    assert foreign_acl(conn, "pv", "pv_north", "pv_north_1", "pv_south", "ih", "ih_child") == []
    # the partitions belong to the parent's dataset: the gateway answers them and charges it
    assert dataset_tables(conn, "pv") == {"pv", "pv_north", "pv_north_1", "pv_south"}
    assert dataset_tables(conn, "ih") == {"ih", "ih_child"}


def test_partition_is_asked_through_the_gateway_on_the_parents_dataset(conn, mallory):
    conn.execute("CREATE TABLE gq (id int, region text) PARTITION BY LIST (region)")
    conn.execute("CREATE TABLE gq_a PARTITION OF gq FOR VALUES IN ('a')")
    conn.execute("CREATE TABLE gq_b PARTITION OF gq FOR VALUES IN ('b')")
    conn.execute("INSERT INTO gq SELECT g, CASE WHEN g <= 3000 THEN 'a' ELSE 'b' END FROM generate_series(1, 4000) g")
    conn.execute("SELECT dp.protect('gq')")
    conn.execute(f"SELECT dp.grant_budget('{MALLORY}', 'gq', 2.0)")
    rows = mallory.execute("SELECT * FROM dp.query_json('SELECT count(*) AS n FROM gq_a', 1.0)").fetchall()
    assert abs(rows[0][0]["n"] - 3000) < 60
    assert conn.execute("SELECT epsilon_spent FROM dp.budgets WHERE dataset = 'gq'").fetchone()[0] == Decimal("1.0")


def test_attack_write_partition_keeps_stale_cache(pg, db, conn):
    conn.execute("CREATE TABLE wp (id int, v int) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE wp_1 PARTITION OF wp FOR VALUES FROM (0) TO (100) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE wp_1a PARTITION OF wp_1 FOR VALUES FROM (0) TO (50)")
    conn.execute("CREATE TABLE wi (id int, v int)")
    conn.execute("CREATE TABLE wi_1 () INHERITS (wi)")
    conn.execute("SELECT dp.protect('wp')")
    conn.execute("SELECT dp.protect('wi')")
    for table, dataset in [("wp", "wp"), ("wp_1", "wp"), ("wp_1a", "wp"), ("wi", "wi"), ("wi_1", "wi")]:
        assert trigger_state(conn, table) == "A", f"{table}: ENABLE ALWAYS"
        v0 = version(conn, dataset)
        conn.execute(f"INSERT INTO {table} VALUES (1, 1)")
        assert version(conn, dataset) > v0, f"a write into {table} bumps the data version"
    v0 = version(conn, "wp")
    conn.execute("TRUNCATE wp_1a")
    assert version(conn, "wp") > v0
    # logical replication's apply worker writes as session_replication_role = replica
    with pg.connect(db) as replica:
        replica.execute("SET session_replication_role = replica")
        for table, dataset in [("wp", "wp"), ("wp_1a", "wp"), ("wi", "wi"), ("wi_1", "wi")]:
            v0 = version(conn, dataset)
            replica.execute(f"INSERT INTO {table} VALUES (2, 2)")
            replica.execute(f"UPDATE {table} SET v = v + 1")
            assert version(conn, dataset) > v0, f"a replica write into {table} bumps the data version"


def test_attack_attach_partition_later(conn, mallory):
    conn.execute("CREATE TABLE ap (id int, v int) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE ap_1 PARTITION OF ap FOR VALUES FROM (0) TO (100)")
    conn.execute("SELECT dp.protect('ap')")
    # a table mallory may read, attached later
    conn.execute("CREATE TABLE ap_2 (id int, v int)")
    conn.execute("INSERT INTO ap_2 VALUES (150, 1)")
    conn.execute(f"GRANT SELECT, INSERT ON ap_2 TO {MALLORY}")
    with notices(conn) as got:
        conn.execute("ALTER TABLE ap ATTACH PARTITION ap_2 FOR VALUES FROM (100) TO (200)")
    assert "ap_2" in text_of(got) and MALLORY in text_of(got)
    # created as a partition while default privileges grant SELECT to mallory
    conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {MALLORY}")
    try:
        with notices(conn) as got:
            conn.execute("CREATE TABLE ap_3 PARTITION OF ap FOR VALUES FROM (200) TO (300) PARTITION BY RANGE (id)")
            conn.execute("CREATE TABLE ap_3a PARTITION OF ap_3 FOR VALUES FROM (200) TO (250)")
        assert "ap_3a" in text_of(got)
        # inheritance: CREATE TABLE ... INHERITS and ALTER TABLE ... INHERIT
        conn.execute("CREATE TABLE ai (id int, v int)")
        conn.execute("SELECT dp.protect('ai')")
        conn.execute("CREATE TABLE ai_1 () INHERITS (ai)")
        conn.execute("CREATE TABLE ai_2 (id int, v int)")
        conn.execute("ALTER TABLE ai_2 INHERIT ai")
    finally:
        conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM {MALLORY}")
    for table, dataset in [("ap_2", "ap"), ("ap_3", "ap"), ("ap_3a", "ap"), ("ai_1", "ai"), ("ai_2", "ai")]:
        denied(mallory, f"SELECT * FROM {table}")
        assert table in dataset_tables(conn, dataset)
        assert trigger_state(conn, table) == "A"
        v0 = version(conn, dataset)
        conn.execute(f"UPDATE {table} SET v = v")
        assert version(conn, dataset) > v0
    denied(mallory, "INSERT INTO ap_2 VALUES (151, 1)")
    assert foreign_acl(conn, "ap_2", "ap_3", "ap_3a", "ai_1", "ai_2") == []


def test_unprotect_takes_the_partitions_along(conn):
    conn.execute("CREATE TABLE up (id int) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE up_1 PARTITION OF up FOR VALUES FROM (0) TO (10)")
    conn.execute("SELECT dp.protect('up')")
    e = refused(conn, "SELECT dp.unprotect('up_1')", match="up")
    assert e.diag.sqlstate == "22023"
    assert dataset_tables(conn, "up") == {"up", "up_1"}
    with notices(conn) as got:
        conn.execute("SELECT dp.unprotect('up')")
    assert "up_1" in text_of(got)
    assert dataset_tables(conn, "up") == set()
    assert trigger_state(conn, "up") is None and trigger_state(conn, "up_1") is None
    # nothing protects it any more: a new partition is left alone
    conn.execute("CREATE TABLE up_2 PARTITION OF up FOR VALUES FROM (10) TO (20)")
    assert trigger_state(conn, "up_2") is None


# -- views and materialized views --------------------------------------------------------------

def test_attack_view_over_protected_table(conn, mallory, bi):
    conn.execute("CREATE TABLE vt (id int, secret int)")
    conn.execute("INSERT INTO vt SELECT g, g FROM generate_series(1, 100) g")
    conn.execute("CREATE VIEW vt_all AS SELECT * FROM vt")
    conn.execute("CREATE VIEW vt_nested AS SELECT id FROM vt_all WHERE secret > 10")
    conn.execute("CREATE VIEW vt_barrier WITH (security_barrier) AS SELECT count(*) AS n FROM vt")
    conn.execute(f"GRANT SELECT ON vt_all, vt_nested, vt_barrier TO {MALLORY}")
    conn.execute(f"GRANT SELECT (id) ON vt_all TO {BI}")
    with notices(conn) as got:
        conn.execute("SELECT dp.protect('vt')")
    said = text_of(got)
    for name in ("vt_all", "vt_nested", "vt_barrier"):
        assert name in said
        denied(mallory, f"SELECT * FROM {name}")
    denied(bi, "SELECT id FROM vt_all")
    assert foreign_acl(conn, "vt_all", "vt_nested", "vt_barrier") == []
    # the owner (a DBA) still reads them
    assert conn.execute("SELECT count(*) FROM vt_nested").fetchone()[0] == 90
    # a view the DBA makes later is theirs; a GRANT on it is taken back
    conn.execute("CREATE VIEW vt_later AS SELECT id FROM vt")
    with notices(conn) as got:
        conn.execute(f"GRANT SELECT ON vt_later TO {MALLORY}")
    assert "vt_later" in text_of(got) and "dp.grant_budget" in text_of(got)
    denied(mallory, "SELECT * FROM vt_later")


def test_attack_matview_copy(conn, mallory):
    conn.execute("CREATE TABLE mt (id int, secret int)")
    conn.execute("INSERT INTO mt SELECT g, g FROM generate_series(1, 100) g")
    conn.execute("CREATE MATERIALIZED VIEW mt_copy AS SELECT * FROM mt")
    conn.execute("CREATE VIEW mt_over_copy AS SELECT * FROM mt_copy")
    conn.execute(f"GRANT SELECT ON mt_copy, mt_over_copy TO {MALLORY}")
    with notices(conn) as got:
        conn.execute("SELECT dp.protect('mt')")
    said = text_of(got)
    assert "mt_copy" in said and "copy" in said and "mt_over_copy" in said
    denied(mallory, "SELECT * FROM mt_copy")
    denied(mallory, "SELECT * FROM mt_over_copy")
    conn.execute("REFRESH MATERIALIZED VIEW mt_copy")
    conn.execute(f"GRANT SELECT ON mt_copy TO {MALLORY}")
    denied(mallory, "SELECT * FROM mt_copy")


# -- later GRANTs ------------------------------------------------------------------------------

def test_attack_late_grant_on_all_tables(pg, db, conn, mallory, bi):
    conn.execute("CREATE TABLE lg (id int, v int) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE lg_1 PARTITION OF lg FOR VALUES FROM (0) TO (100)")
    conn.execute("CREATE SEQUENCE lg_seq OWNED BY lg.id")
    conn.execute("INSERT INTO lg SELECT g, g FROM generate_series(1, 99) g")
    conn.execute("CREATE VIEW lg_v AS SELECT * FROM lg")
    conn.execute("SELECT dp.protect('lg')")
    with notices(conn) as got:
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {MALLORY}")
    said = text_of(got)
    assert all(name in said for name in ("lg", "lg_1", "lg_v", MALLORY)) and "dp.grant_budget" in said
    for table in ("lg", "lg_1", "lg_v"):
        denied(mallory, f"SELECT * FROM {table}")
    # every kind of privilege, to anyone, with or without grant option, on columns too
    conn.execute(f"GRANT SELECT (id), REFERENCES (id), UPDATE (v) ON lg_1 TO {MALLORY}")
    conn.execute("GRANT ALL ON lg TO PUBLIC")
    conn.execute(f"GRANT SELECT ON lg TO {BI} WITH GRANT OPTION")
    conn.execute(f"GRANT SELECT, USAGE ON ALL SEQUENCES IN SCHEMA public TO {MALLORY}")
    denied(bi, "SELECT * FROM lg")
    denied(mallory, "SELECT id FROM lg_1")
    denied(mallory, "UPDATE lg_1 SET v = 0 WHERE id = 7")
    denied(mallory, "SELECT last_value FROM lg_seq")
    assert foreign_acl(conn, "lg", "lg_1", "lg_v", "lg_seq") == []
    # the owner of a protected table who is no pg_dp administrator grants: taken back all the same
    conn.execute("CREATE ROLE ap_owner LOGIN")
    try:
        conn.execute("CREATE TABLE lg_owned (id int)")
        conn.execute("ALTER TABLE lg_owned OWNER TO ap_owner")
        conn.execute("SELECT dp.protect('lg_owned')")
        with pg.connect(db, user="ap_owner") as owner:
            owner.execute(f"GRANT SELECT ON lg_owned TO {MALLORY}")
            assert owner.execute("SELECT count(*) FROM lg_owned").fetchone()[0] == 0
        denied(mallory, "SELECT * FROM lg_owned")
    finally:
        conn.execute("SELECT dp.unprotect('lg_owned')")
        conn.execute("DROP TABLE lg_owned")
        conn.execute("DROP ROLE ap_owner")
    # default privileges: a view made later over the table gets none
    conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {MALLORY}")
    try:
        conn.execute("CREATE VIEW lg_later AS SELECT id FROM lg")
        conn.execute("CREATE TABLE lg_unrelated (x int)")
    finally:
        conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM {MALLORY}")
    denied(mallory, "SELECT * FROM lg_later")
    assert mallory.execute("SELECT count(*) FROM lg_unrelated").fetchone()[0] == 0, "unrelated tables keep theirs"


def test_unrelated_ddl_is_left_alone(mallory, conn):
    with notices(mallory) as got:
        mallory.execute("CREATE TABLE own (id int)")
        mallory.execute(f"GRANT SELECT ON own TO {BI}")
        mallory.execute("CREATE VIEW own_v AS SELECT * FROM own")
        mallory.execute("ALTER TABLE own ADD COLUMN v int")
        mallory.execute("CREATE TABLE own_p (id int) PARTITION BY RANGE (id)")
        mallory.execute("CREATE TABLE own_p1 PARTITION OF own_p FOR VALUES FROM (0) TO (10)")
        mallory.execute("DROP VIEW own_v")
        mallory.execute("DROP TABLE own, own_p")
    assert got == []


# -- REFERENCES and foreign keys ---------------------------------------------------------------

def test_attack_references_membership(conn, mallory):
    conn.execute("CREATE TABLE rt (id int PRIMARY KEY, v int)")
    conn.execute("INSERT INTO rt SELECT g, g FROM generate_series(1, 100) g WHERE g <> 42")
    conn.execute(f"GRANT REFERENCES ON rt TO {MALLORY}")
    mallory.execute("CREATE TABLE probe (id int REFERENCES public.rt)")
    # refused while someone else may probe it, saying exactly what they learn
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
        conn.execute("SELECT dp.protect('rt')")
    assert "probe_id_fkey" in e.value.diag.message_primary and "membership" in e.value.diag.message_primary
    assert "force" in e.value.diag.message_hint
    assert conn.execute("SELECT count(*) FROM dp.protected_tables WHERE table_name = 'rt'::regclass").fetchone()[0] == 0
    with notices(conn) as got:
        conn.execute("SELECT dp.protect('rt', force => true)")
    said = text_of(got)
    assert "probe_id_fkey" in said and f"{MALLORY}.probe" in said
    # the key stays an oracle (insert 42: violation = not a member) until the DBA drops it
    rows = conn.execute("SELECT issue, detail, fix FROM dp.doctor() WHERE table_name = 'rt'::regclass").fetchall()
    fk = [r for r in rows if "probe_id_fkey" in r[1]]
    assert fk and "foreign key" in fk[0][0]
    conn.execute(fk[0][2])
    mallory.execute("INSERT INTO probe VALUES (42)")  # no longer checked against rt
    # REFERENCES is gone, and a late GRANT of it is taken back
    denied(mallory, "ALTER TABLE probe ADD FOREIGN KEY (id) REFERENCES public.rt")
    conn.execute(f"GRANT REFERENCES (id) ON rt TO {MALLORY}")
    denied(mallory, "CREATE TABLE probe2 (id int REFERENCES public.rt)")


# -- statistics counters -----------------------------------------------------------------------

def test_attack_stat_counters_n_live_tup(conn, mallory, bi):
    conn.execute("CREATE TABLE st (id int PRIMARY KEY, v int)")
    conn.execute("INSERT INTO st SELECT g, g FROM generate_series(1, 1234) g")
    conn.execute("SELECT dp.protect('st')")
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")
    deadline = time.time() + 15
    while conn.execute("SELECT pg_stat_clear_snapshot(), n_live_tup FROM pg_stat_user_tables "
                       "WHERE relname = 'st'").fetchone()[1] != 1234 and time.time() < deadline:
        time.sleep(0.2)
    for sql in ["SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'st'",
                "SELECT * FROM pg_stat_all_tables",
                "SELECT seq_tup_read, idx_tup_fetch FROM pg_stat_user_tables",
                "SELECT * FROM pg_stat_xact_user_tables",
                "SELECT idx_tup_read FROM pg_stat_user_indexes",
                "SELECT * FROM pg_statio_user_tables",
                "SELECT * FROM pg_statio_user_indexes",
                "SELECT pg_stat_get_live_tuples('st'::regclass)",
                "SELECT pg_stat_get_tuples_returned('st'::regclass)",
                "SELECT pg_stat_get_xact_tuples_returned('st'::regclass)",
                "SELECT pg_stat_get_xact_tuples_fetched('st_pkey'::regclass)"]:
        denied(mallory, sql)
    # what psql and BI tools read about the server still works
    mallory.execute("SELECT count(*) FROM pg_stat_activity")
    mallory.execute("SELECT * FROM pg_stat_database")
    mallory.execute("SELECT * FROM pg_stat_bgwriter")
    # monitoring roles keep the counters
    conn.execute(f"GRANT pg_read_all_stats TO {BI}")
    try:
        assert bi.execute("SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'st'").fetchone()[0] == 1234
    finally:
        conn.execute(f"REVOKE pg_read_all_stats FROM {BI}")


def test_stat_functions_rule_covers_the_statistics_views(conn):
    listed = {r[0] for r in conn.execute("SELECT p::regproc::text FROM dp_internal.relation_stat_functions() p")}
    used = {r[0] for r in conn.execute(
        "SELECT DISTINCT m[1] FROM pg_class c, regexp_matches(pg_get_viewdef(c.oid), '(pg_stat_get_[a-z_]+)\\(', 'g') m "
        "WHERE c.relnamespace = 'pg_catalog'::regnamespace "
        "AND c.relname ~ '^pg_stat(io)?_(xact_)?all_(tables|indexes|sequences)$'")}
    assert used and used <= listed
    assert not {f for f in listed if f.startswith(("pg_stat_get_db_", "pg_stat_get_backend", "pg_stat_get_activity"))}


def test_protect_revokes_reopened_stat_functions(conn):
    conn.execute("GRANT EXECUTE ON FUNCTION pg_stat_get_live_tuples(oid), pg_stat_get_numscans(oid) TO PUBLIC")
    conn.execute("CREATE TABLE st2 (id int)")
    with notices(conn) as got:
        conn.execute("SELECT dp.protect('st2')")
    said = text_of(got)
    assert "pg_stat_get_live_tuples" in said and "pg_read_all_stats" in said
    assert conn.execute("SELECT has_function_privilege('public', 'pg_stat_get_live_tuples(oid)', 'EXECUTE')"
                        " OR has_function_privilege('public', 'pg_stat_get_numscans(oid)', 'EXECUTE')"
                        ).fetchone()[0] is False
    with notices(conn) as got:
        conn.execute("SELECT dp.protect('st2')")
    assert "pg_stat_get" not in text_of(got), "once is enough"


# -- dp.doctor ---------------------------------------------------------------------------------

def test_doctor_lists_each_path(pg):
    name = pg.create_database("ap_doctor")
    try:
        with pg.connect(name) as c:
            _doctor_scenario(pg, name, c)
    finally:
        with pg.connect() as c:
            c.execute(f"DROP DATABASE {name} WITH (FORCE)")
            c.execute("DROP ROLE IF EXISTS ap_dd_owner")


def _doctor_scenario(pg, name, c):
    c.execute("CREATE TABLE dd (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)")
    c.execute("CREATE TABLE dd_a PARTITION OF dd FOR VALUES IN ('a')")
    c.execute("INSERT INTO dd SELECT g, 'a', g FROM generate_series(1, 50) g")
    c.execute("CREATE VIEW dd_v AS SELECT id, v FROM dd")
    c.execute(f"CREATE SCHEMA m AUTHORIZATION {MALLORY}")
    c.execute(f"GRANT SELECT, REFERENCES ON dd TO {MALLORY}")
    with pg.connect(name, user=MALLORY) as m:
        m.execute("CREATE TABLE m.probe (id int, region text, FOREIGN KEY (id, region) REFERENCES public.dd)")
        m.execute("CREATE MATERIALIZED VIEW m.mine AS SELECT * FROM public.dd")
    c.execute("CREATE ROLE ap_dd_owner")
    c.execute("CREATE TABLE dd_owned (id int)")
    c.execute("ALTER TABLE dd_owned OWNER TO ap_dd_owner")
    c.execute("SELECT dp.protect('dd', dataset => 'dd', force => true)")
    c.execute("SELECT dp.protect('dd_owned', dataset => 'dd')")
    # what only the doctor sees: DDL while pg_dp's event trigger was off, and paths no GRANT opens
    c.execute("ALTER EVENT TRIGGER dp_guard DISABLE")
    c.execute(f"GRANT SELECT ON dd_v TO {BI}")
    c.execute(f"GRANT REFERENCES (id) ON dd TO {BI}")
    c.execute(f"GRANT SELECT ON dd_a TO {BI}")
    c.execute("ALTER TABLE dd_a ENABLE TRIGGER dp_data_version")
    c.execute("CREATE TABLE dd_b PARTITION OF dd FOR VALUES IN ('b')")
    c.execute("GRANT EXECUTE ON FUNCTION pg_stat_get_live_tuples(oid) TO PUBLIC")
    c.execute("CREATE FUNCTION dd_total() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'SELECT sum(v) FROM public.dd'")
    c.execute(f"GRANT ap_dd_owner TO {BI}")
    rows = c.execute("SELECT table_name::text, issue, detail, fix FROM dp.doctor()").fetchall()
    report = "\n".join(" | ".join(str(x) for x in r) for r in rows)
    expected = [  # (table, words in issue or detail)
        ("dd", ["view", "dd_v", BI]),
        ("dd", ["REFERENCES", BI]),
        ("dd_a", ["dd_a", BI]),
        ("dd_a", ["dd_a", "ENABLE ALWAYS"]),
        ("dd", ["dd_b", "not protected"]),
        ("dd", ["foreign key", "m.probe"]),
        ("dd", ["m.mine", MALLORY]),
        ("dd", ["dd_total", "SECURITY DEFINER"]),
        ("dd_owned", ["ap_dd_owner", BI]),
        (None, ["pg_stat_get_live_tuples"]),
        (None, ["dp_guard"]),
    ]
    for table, words in expected:
        assert any(r[0] == table and all(w in f"{r[1]} {r[2]}" for w in words) for r in rows), \
            f"{table} {words} missing from:\n{report}"
    assert all(r[3] for r in rows), report
    with pg.connect(name, user=BI) as b:
        b.execute("SELECT * FROM dd_v")  # the doctor's rows are real paths
    for r in rows:
        c.execute(r[3])
    after = c.execute("SELECT table_name::text, issue, detail, fix FROM dp.doctor()").fetchall()
    assert after == [], after
    with pg.connect(name, user=BI) as b:
        denied(b, "SELECT * FROM dd_v")
        denied(b, "SELECT * FROM dd_owned")
    # known limits are listed only when asked for
    limits = c.execute("SELECT issue, fix FROM dp.doctor(known_limits => true)").fetchall()
    assert any("reltuples" in r[0] for r in limits)


def test_doctor_is_for_administrators(mallory):
    denied(mallory, "SELECT * FROM dp.doctor()")


# -- DBA input validation ----------------------------------------------------------------------

def settings(conn):
    return dict(conn.execute("SELECT key, value FROM dp_internal.settings").fetchall())


def test_set_setting_validates_each_key(conn):
    before = settings(conn)
    lock_timeout = conn.execute("SHOW lock_timeout").fetchone()[0]
    bad = {
        "default_epsilon": ["0", "-1", "abc", "Infinity", "NaN", ""],
        "default_delta": ["1", "-0.1", "x", "NaN", "2"],
        "bounded_copies": ["-1", "1.5", "many", "99999999999"],
        "lock_timeout": ["soon", "-5s", "10 parsecs"],
        "synthetic_schema": ["dp", "dp_internal", "pg_shadow", "", "Bad Name", "information_schema", "pg_catalog"],
    }
    for key, values in bad.items():
        if key not in before:
            continue
        for value in values:
            e = refused(conn, f"SELECT dp.set_setting('{key}', '{value}')")
            assert key in e.diag.message_primary
    refused(conn, "SELECT dp.set_setting('default_epsilon', NULL)")
    assert settings(conn) == before
    good = {"default_epsilon": "0.5", "default_delta": "0", "bounded_copies": "0", "lock_timeout": "250ms",
            "synthetic_schema": "bi_shadow"}
    try:
        for key, value in good.items():
            if key in before:
                conn.execute("SELECT dp.set_setting(%s, %s)", (key, value))
                assert settings(conn)[key] == value
    finally:
        for key, value in before.items():
            conn.execute("UPDATE dp_internal.settings SET value = %s WHERE key = %s", (value, key))
    assert conn.execute("SHOW lock_timeout").fetchone()[0] == lock_timeout, "the check leaves the session alone"


def test_set_bounds_refuses_text_and_infinity(conn):
    conn.execute("CREATE TABLE vb (id int, amount numeric, note text, day date, at timestamptz, f real, s smallint)")
    conn.execute("SELECT dp.protect('vb')")
    conn.execute("SELECT dp.set_bounds('vb', 'amount', 0, 100)")
    e = refused(conn, "SELECT dp.set_bounds('vb', 'note', 0, 1)", psycopg.errors.DatatypeMismatch, match="note")
    assert e.diag.sqlstate == "42804"
    for lower, upper in [("'Infinity'", "'10'"), ("'0'", "'Infinity'"), ("'-Infinity'::numeric", "0"), ("NULL", "10"),
                         ("0", "NULL"), ("'NaN'::float8", "1"), ("5", "1"), ("'Infinity'::float8", "1")]:
        refused(conn, f"SELECT dp.set_bounds('vb', 'amount', {lower}, {upper})")
    for column in ("f", "s"):
        conn.execute(f"SELECT dp.set_bounds('vb', '{column}', 0, 10)")
    for column in ("day", "at"):     # a date or timestamp column takes values of its type, not numbers
        e = refused(conn, f"SELECT dp.set_bounds('vb', '{column}', 0, 10)", psycopg.errors.DatatypeMismatch)
        assert "dp.set_bounds" in e.diag.message_hint
    assert conn.execute("SELECT lower_bound, upper_bound FROM dp.protected_columns WHERE table_name = 'vb'::regclass "
                        "AND column_name = 'amount'").fetchone() == (0, 100)
    assert conn.execute("SELECT count(*) FROM dp_internal.columns WHERE relid = 'vb'::regclass "
                        "AND attname = 'note'").fetchone()[0] == 0


def test_set_bounds_takes_dates_and_timestamps(conn):
    conn.execute("CREATE TABLE vdt (id int, day date, at timestamp, atz timestamptz)")
    conn.execute("SELECT dp.protect('vdt')")
    conn.execute("SET TimeZone = 'America/New_York'")    # the DBA's session zone changes nothing stored
    conn.execute("SELECT dp.set_bounds('vdt', 'day', date '2011-01-01', date '2023-12-31')")
    conn.execute("SELECT dp.set_bounds('vdt', 'at', '2020-01-01 00:00', '2020-01-02 12:00')")
    conn.execute("SELECT dp.set_bounds('vdt', 'atz', timestamptz '2020-01-01 00:00+00', timestamptz '2021-01-01 00:00+00')")
    rows = dict((r[0], r[1:]) for r in conn.execute(
        "SELECT column_name, lower_bound, upper_bound, lower_value, upper_value FROM dp.protected_columns "
        "WHERE table_name = 'vdt'::regclass AND lower_bound IS NOT NULL"))
    conn.execute("RESET TimeZone")
    assert rows["day"] == (4018, 8765, "2011-01-01", "2023-12-31")      # days since 2000-01-01
    assert rows["at"] == (631152000, 631281600, "2020-01-01 00:00:00", "2020-01-02 12:00:00")
    assert rows["atz"][2:] == ("2020-01-01 00:00:00+00", "2021-01-01 00:00:00+00")
    conn.execute("SELECT dp.set_bounds('vdt', 'day', timestamp '2011-01-01 10:00', timestamp '2012-01-01 10:00')")
    assert conn.execute("SELECT lower_value, upper_value FROM dp.protected_columns WHERE table_name = 'vdt'::regclass "
                        "AND column_name = 'day'").fetchone() == ("2011-01-01", "2012-01-02")   # widened to whole days
    for call in ("'vdt', 'atz', date '2020-01-01', date '2021-01-01'",     # a date has no zone
                 "'vdt', 'day', 'infinity', '2020-01-01'", "'vdt', 'day', 'soon', 'later'",
                 "'vdt', 'day', date '2021-01-01', date '2020-01-01'"):
        refused(conn, f"SELECT dp.set_bounds({call})", psycopg.Error)
    assert conn.execute("SELECT lower_value FROM dp.protected_columns WHERE table_name = 'vdt'::regclass "
                        "AND column_name = 'day'").fetchone() == ("2011-01-01",)


def test_set_bounds_null_clears_them(conn):
    conn.execute("CREATE TABLE vc (id int, amount numeric) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE vc_1 PARTITION OF vc FOR VALUES FROM (0) TO (10)")
    conn.execute("SELECT dp.protect('vc')")
    conn.execute("SELECT dp.set_bounds('vc', 'amount', 0, 100)")
    bounds = "SELECT lower_bound, upper_bound FROM dp.protected_columns WHERE table_name = %s::regclass " \
             "AND column_name = 'amount'"
    assert conn.execute(bounds, ("vc_1",)).fetchone() == (0, 100), "a parent's bounds hold for its partitions"
    conn.execute("SELECT dp.set_bounds('vc', 'amount', NULL, NULL)")
    assert conn.execute(bounds, ("vc",)).fetchone() == (None, None)
    assert conn.execute(bounds, ("vc_1",)).fetchone() == (None, None)


def test_set_public_values_checks_the_column_type(conn):
    conn.execute("CREATE TYPE ap_color AS ENUM ('red', 'green')")
    conn.execute("CREATE TABLE vp (id int, code int, day date, color ap_color, name varchar(10))")
    conn.execute("SELECT dp.protect('vp')")
    conn.execute("SELECT dp.set_public_values('vp', 'code', ARRAY['1', '2'])")
    for column, values, first_bad in [("code", "ARRAY['1', 'two', 'three']", "two"),
                                      ("day", "ARRAY['2020-01-01', '2020-13-45']", "2020-13-45"),
                                      ("color", "ARRAY['red', 'blue']", "blue"),
                                      ("code", "ARRAY['1', '99999999999']", "99999999999")]:
        e = refused(conn, f"SELECT dp.set_public_values('vp', '{column}', {values})", psycopg.errors.InvalidTextRepresentation)
        assert first_bad in e.diag.message_primary
    assert conn.execute("SELECT public_values FROM dp.protected_columns WHERE table_name = 'vp'::regclass "
                        "AND column_name = 'code'").fetchone()[0] == ["1", "2"]
    conn.execute("SELECT dp.set_public_values('vp', 'day', ARRAY['2020-01-01'])")
    conn.execute("SELECT dp.set_public_values('vp', 'code', NULL)")
    assert conn.execute("SELECT public_values, values_source FROM dp.protected_columns WHERE table_name = 'vp'::regclass "
                        "AND column_name = 'code'").fetchone() == (None, None)


def test_set_dataset_cap_validates(conn):
    conn.execute("CREATE TABLE vd (id int)")
    conn.execute("SELECT dp.protect('vd')")
    conn.execute("SELECT dp.set_dataset_cap('vd', 5, 1e-5)")
    for epsilon, delta in [("-1", "NULL"), ("'NaN'", "NULL"), ("'Infinity'", "NULL"), ("1", "-0.1"),
                           ("1", "1.5"), ("1", "'NaN'"), ("1", "'Infinity'")]:
        refused(conn, f"SELECT dp.set_dataset_cap('vd', {epsilon}, {delta})")
    caps = "SELECT epsilon_cap, delta_cap FROM dp.datasets WHERE dataset = 'vd'"
    assert conn.execute(caps).fetchone() == (5, Decimal("0.00001"))
    conn.execute("SELECT dp.set_dataset_cap('vd', NULL, NULL)")
    assert conn.execute(caps).fetchone() == (None, None)


def test_grant_budget_refuses_delta_one_and_infinite_epsilon(conn):
    conn.execute("CREATE TABLE vg (id int)")
    conn.execute("SELECT dp.protect('vg')")
    conn.execute(f"SELECT dp.grant_budget('{MALLORY}', 'vg', 1, 0.4)")
    for epsilon, delta in [("'Infinity'", "0"), ("1", "1"), ("'NaN'", "0"), ("1", "'NaN'"), ("1", "0.6")]:
        refused(conn, f"SELECT dp.grant_budget('{MALLORY}', 'vg', {epsilon}, {delta})")
    assert conn.execute("SELECT epsilon_granted, delta_granted FROM dp.budgets WHERE dataset = 'vg'").fetchone() \
        == (1, Decimal("0.4"))
