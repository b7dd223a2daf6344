"""Questions on tables that reach the privacy unit through foreign keys (issue 12, item 1).

customer (the unit, customer_id) <- invoice.customer_id <- line.invoice_id: a question on
`line` is bounded per customer, found along the path recorded by dp.protect, with line's
own max_rows_per_unit; the analyst never reads invoice.  Tail bounds used below: for
discrete Laplace noise of scale b, P(|X| >= t) <= 2 exp(-t/b) / (1 + exp(-1/b)) <= 2 exp(-t/b).

Data (per schema made by `shop`): customers 1..WHALES have one invoice of WHALE_LINES
'rock' lines at price 10; the other customers one invoice of two lines, a 'rock' and a
'jazz' one at price 0.  With k = K lines per customer (and 2 groups per customer), the
bounded counts are rock WHALES * K + (CUSTOMERS - WHALES), jazz CUSTOMERS - WHALES; without
the bound rock would be WHALES * WHALE_LINES + (CUSTOMERS - WHALES): far beyond the noise.
"""

from decimal import Decimal

import numpy as np
import psycopg
import pytest

import stats_helpers as H
from conftest import shared_data
from datasets import asked_epsilon, load_chinook

ROLE = "fk_analyst"
CUSTOMERS, WHALES, WHALE_LINES, K = 400, 10, 2000, 5
ROCK = WHALES * K + (CUSTOMERS - WHALES)          # 440
JAZZ = CUSTOMERS - WHALES                         # 390
UNBOUNDED_ROCK = WHALES * WHALE_LINES + (CUSTOMERS - WHALES)


def shop(conn, schema):
    """A customer -> invoice -> line schema in `schema`, protected as one dataset named like it."""
    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    conn.execute(f"CREATE SCHEMA {schema}")
    conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {ROLE}")
    conn.execute(f"CREATE TABLE {schema}.customer (customer_id int PRIMARY KEY, country text NOT NULL "
                 "CHECK (country IN ('fr', 'de')))")
    conn.execute(f"INSERT INTO {schema}.customer SELECT g, (ARRAY['fr','de'])[1 + g % 2] "
                 f"FROM generate_series(1, {CUSTOMERS}) g")
    conn.execute(f"CREATE TABLE {schema}.invoice (invoice_id int PRIMARY KEY, customer_id int NOT NULL "
                 f"REFERENCES {schema}.customer, total int NOT NULL)")
    conn.execute(f"INSERT INTO {schema}.invoice SELECT 1000 + g, g, g % 100 FROM generate_series(1, {CUSTOMERS}) g")
    conn.execute(f"CREATE TABLE {schema}.line (line_id int PRIMARY KEY, invoice_id int NOT NULL "
                 f"REFERENCES {schema}.invoice, genre text NOT NULL CHECK (genre IN ('jazz', 'rock')), "
                 "price int NOT NULL)")
    conn.execute(f"INSERT INTO {schema}.line SELECT row_number() OVER (), 1000 + c, 'rock', 10 "
                 f"FROM generate_series(1, {WHALES}) c, generate_series(1, {WHALE_LINES}) i")
    conn.execute(f"INSERT INTO {schema}.line SELECT 100000 + 2 * c + j, 1000 + c, (ARRAY['rock','jazz'])[1 + j], 0 "
                 f"FROM generate_series({WHALES + 1}, {CUSTOMERS}) c, generate_series(0, 1) j")
    conn.execute(f"SELECT dp.protect('{schema}.customer', dataset => '{schema}', privacy_unit => 'customer_id', "
                 "max_groups_per_unit => 2)")
    conn.execute(f"SELECT dp.protect('{schema}.invoice', dataset => '{schema}', max_rows_per_unit => 3)")
    conn.execute(f"SELECT dp.protect('{schema}.line', dataset => '{schema}', max_rows_per_unit => {K})")
    conn.execute(f"SELECT dp.set_bounds('{schema}.line', 'price', 0, 10)")
    conn.execute(f"SELECT dp.grant_budget('{ROLE}', '{schema}', 1000000)")   # pure epsilon: Laplace


@pytest.fixture(scope="module", autouse=True)
def setup(conn, db):
    conn.execute(f'ALTER DATABASE "{db}" SET session_preload_libraries = \'pg_dp\'')
    conn.execute("SET jit = off")
    conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
    conn.execute(f"CREATE ROLE {ROLE} LOGIN")
    shop(conn, "fk")
    yield
    conn.execute(f"DROP OWNED BY {ROLE}")
    conn.execute(f"DROP ROLE {ROLE}")


@pytest.fixture
def analyst(pg, db):
    with pg.connect(db, user=ROLE) as c:
        c.execute("SET jit = off")
        yield c


def spent(conn, dataset="fk"):
    return asked_epsilon(conn, ROLE, dataset)


def by_genre(analyst, sql, epsilon, columns="genre text, n bigint"):
    rows = analyst.execute(f"SELECT * FROM dp.query(%s, %s) AS t({columns})", [sql, epsilon]).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_the_path_table_is_answered_bounded_per_unit(conn, analyst):
    assert conn.execute("SELECT unit_path, max_rows_per_unit FROM dp.protected_tables "
                        "WHERE table_name = 'fk.line'::regclass").fetchone() == ('["invoice_id"] -> fk.invoice', K)
    before = spent(conn)
    # count at epsilon 2, one aggregate, g = 2: b = K * 2 / 2 = 5; |noise| >= 150 w.p. <= 2 e^-30 per group
    rows = by_genre(analyst, "SELECT genre, count(*) FROM fk.line GROUP BY genre", 2.0)
    assert set(rows) == {"jazz", "rock"}
    assert abs(rows["rock"][0] - ROCK) < 150 and abs(rows["jazz"][0] - JAZZ) < 150
    assert UNBOUNDED_ROCK - ROCK > 10000          # what a per-row (or no) bound would have said
    assert spent(conn) - before == Decimal("2.0")
    # sum at epsilon 2 (one aggregate, g = 2): b = K * 2 * 10 / 2 = 50; bounded rock sum 10 * K * 10 = 500,
    # unbounded 200,000: |noise| >= 1,500 w.p. <= 2 e^-30
    rows = by_genre(analyst, "SELECT genre, dp_sum(price, 0, 10) FROM fk.line GROUP BY genre", 2.0,
                    "genre text, s bigint")
    assert abs(rows["rock"][0] - WHALES * K * 10) < 1500 and abs(rows["jazz"][0]) < 1500
    # avg at epsilon 50: per group 25, the centred sum's scale K * 10 / 2 / 12.5 = 2, the count's 0.4:
    # sum -1700 +- 60, count 440 +- 12 (each w.p. >= 1 - 2 e^-30): avg in [0.89, 1.37]; unbounded 9.81
    rows = by_genre(analyst, "SELECT genre, avg(price) FROM fk.line GROUP BY genre", 50.0, "genre text, a float8")
    assert 0.5 < rows["rock"][0] < 2.0 and abs(rows["jazz"][0]) < 0.5
    # the unit found along the path can be counted distinct: CUSTOMERS of them (b = 1 / 2; within 30
    # w.p. <= 2 e^-60)
    n = analyst.execute("SELECT * FROM dp.query('SELECT count(DISTINCT customer_id) FROM fk.line', 2.0) "
                        "AS t(n bigint)").fetchone()[0]
    assert abs(n - CUSTOMERS) < 30
    # ... and filtered on: the whales' lines, K each (b = K / 2; within 100 w.p. <= 2 e^-40); unbounded 20,000
    before = spent(conn)
    sql = f"SELECT count(*) FROM fk.line WHERE customer_id <= {WHALES}"
    assert analyst.execute("SELECT epsilon_cost, cached FROM dp.cost(%s, 2.0)", [sql]).fetchone() == (Decimal(2), False)
    assert spent(conn) == before
    n = analyst.execute("SELECT * FROM dp.query(%s, 2.0) AS t(n bigint)", [sql]).fetchone()[0]
    assert abs(n - WHALES * K) < 100
    # dp.explain advertises the per-unit sensitivity
    scale = analyst.execute("SELECT noise_scale FROM dp.explain('SELECT genre, count(*) FROM fk.line GROUP BY genre', "
                            "2.0) WHERE column_name = 'count'").fetchone()[0]
    assert scale == pytest.approx(K * 2 / 2.0)
    note = analyst.execute("SELECT note FROM dp.explain('SELECT genre, count(*) FROM fk.line GROUP BY genre', "
                           "2.0) WHERE column_name = 'count'").fetchone()[0]
    assert note.startswith(f"per group; 2 groups, {K} rows per group per customer_id; about ") and \
        note.endswith("% of the rows dropped by bounding (DP estimate); each customer_id is found through "
                      "invoice_id -> fk.invoice")


def test_plain_sql_on_a_path_table_by_a_restricted_role(conn, analyst):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        analyst.execute("SELECT genre FROM fk.line")        # rows are never released
    before = spent(conn)
    sql = "SELECT genre, count(*) AS n FROM fk.line GROUP BY genre ORDER BY genre"
    cur = analyst.execute(sql)
    rows = cur.fetchall()
    assert [d.name for d in cur.description] == ["genre", "n"] and [r[0] for r in rows] == ["jazz", "rock"]
    # epsilon 1 (the default), g = 2: b = 10; |noise| >= 300 w.p. <= 2 e^-30 per group
    assert abs(rows[0][1] - JAZZ) < 300 and abs(rows[1][1] - ROCK) < 300
    assert spent(conn) - before == Decimal("1.0")
    assert analyst.execute(sql).fetchall() == rows and spent(conn) - before == Decimal("1.0")   # cached: free
    # a view of the analyst's (BI tools read it like a table): the same bounded answer
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ROLE} AUTHORIZATION {ROLE}")
    analyst.execute(f"SELECT dp.create_view('{ROLE}.by_genre', 'SELECT genre, count(*) AS n FROM fk.line "
                    "GROUP BY genre', 2.0)")
    view = dict(analyst.execute(f"SELECT genre, n FROM {ROLE}.by_genre").fetchall())
    assert abs(view["rock"] - ROCK) < 150 and abs(view["jazz"] - JAZZ) < 150       # b = 5, as above
    # the tables of the path stay closed
    for table in ("fk.invoice", "fk.customer"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            analyst.execute(f"SELECT customer_id FROM {table}")


def test_a_path_table_joins_its_parent_along_its_key_and_nothing_else(conn, analyst):
    before = spent(conn)
    for sql in ("SELECT count(*) FROM fk.line l JOIN fk.invoice i USING (customer_id)",
                "SELECT count(*) FROM fk.line l JOIN fk.customer c ON l.line_id = c.customer_id"):
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            analyst.execute("SELECT * FROM dp.query_json(%s)", [sql])
        assert "cannot be joined" in e.value.diag.message_primary
        assert "bounded per customer_id" in e.value.diag.message_hint
        assert "ON line.invoice_id = invoice.invoice_id" in e.value.diag.message_hint
    assert spent(conn) == before
    # along the key: each line meets its invoice once, bounded per customer with line's K.  The whales'
    # lines: K each, 10 x K = 50 (unbounded 20,000); epsilon 2, b = K / 2; within 100 w.p. >= 1 - 2 e^-40
    for sql in (f"SELECT count(*) FROM fk.line l JOIN fk.invoice i ON l.invoice_id = i.invoice_id "
                f"WHERE i.customer_id <= {WHALES}",
                f"SELECT count(*) FROM fk.invoice JOIN fk.line USING (invoice_id) WHERE customer_id <= {WHALES}"):
        n = analyst.execute("SELECT * FROM dp.query(%s, 2.0) AS t(n bigint)", [sql]).fetchone()[0]
        assert abs(n - WHALES * K) < 100
    # ... also as plain SQL (the default epsilon 1: b = K; within 200 w.p. >= 1 - 2 e^-40)
    n = analyst.execute(f"SELECT count(*) FROM fk.line JOIN fk.invoice ON line.invoice_id = invoice.invoice_id "
                        f"WHERE invoice.customer_id <= {WHALES}").fetchone()[0]
    assert abs(n - WHALES * K) < 200


# ---------------------------------------------------------------------------
# noise scale: released - bounded truth ~ discrete Laplace(K * g / eps_agg)
# ---------------------------------------------------------------------------

AGGS, EPS_STATEMENT, N_STATEMENTS = 10, 5.0, 300     # 300 statements x 10 counts x 2 keys = 6,000 draws


def test_path_table_counts_are_discrete_laplace_of_the_unit_scale(conn, analyst):
    """G test against DLap(b), b = K * 2 / 0.5 = 20; the same test must reject 0.7 b and 1.3 b (report()).
    A correct gateway fails with probability 1e-12 (stats_helpers.LOG10_REJECT).  A scale from one row per
    unit (b = 4) or a wrong bound (the truth 20390) fails far below that."""
    counts = ", ".join(f"count(*) AS c{j}" for j in range(AGGS))
    columns = "genre text, " + ", ".join(f"c{j} bigint" for j in range(AGGS))
    draws = {"rock": [], "jazz": []}
    before = spent(conn)
    for i in range(1, N_STATEMENTS + 1):
        sql = f"SELECT genre, {counts} FROM fk.line WHERE line_id > -{i} GROUP BY genre"
        for r in analyst.execute(f"SELECT * FROM dp.query(%s, {EPS_STATEMENT}) AS t({columns})", [sql]).fetchall():
            draws[r[0]].append(r[1:])
    assert spent(conn) - before == Decimal(str(EPS_STATEMENT)) * N_STATEMENTS     # every statement new
    b = K * 2 / (EPS_STATEMENT / AGGS)
    noise = np.concatenate([np.array(draws["rock"], dtype=float).ravel() - ROCK,
                            np.array(draws["jazz"], dtype=float).ravel() - JAZZ])
    assert len(noise) == N_STATEMENTS * AGGS * 2
    H.report(f"path table (k={K}, g=2), {len(noise)} counts (b = {b:g})", H.dlap_gof_with_power(noise, b))


# ---------------------------------------------------------------------------
# the data version covers the path; the bounded copy follows it
# ---------------------------------------------------------------------------

def test_a_write_to_the_middle_table_refreshes_answers_and_bounded_copies(conn, analyst):
    shop(conn, "fk_cache")
    sql = "SELECT genre, count(*) FROM fk_cache.line GROUP BY genre"
    # epsilon 3, g = 2: b = 10 / 3; |noise| >= 150 w.p. <= 2 e^-45
    first = by_genre(analyst, sql, 1.0)                        # bounded per query (first time: no copy)
    assert abs(first["jazz"][0] - JAZZ) < 600
    rows = by_genre(analyst, sql, 3.0)                         # builds the bounded copy
    assert abs(rows["jazz"][0] - JAZZ) < 150
    copy = conn.execute("SELECT relname, data_version FROM dp_internal.bounded_copies WHERE relid = "
                        "'fk_cache.line'::regclass AND data_version >= 0").fetchone()
    assert copy is not None
    before = spent(conn, "fk_cache")
    assert by_genre(analyst, sql, 3.0) == rows and spent(conn, "fk_cache") == before     # cached
    # every customer but the whales now owns one invoice each of customer 11: one unit with JAZZ jazz lines
    conn.execute(f"UPDATE fk_cache.invoice SET customer_id = 11 WHERE customer_id > {WHALES}")
    again = by_genre(analyst, sql, 3.0)
    assert spent(conn, "fk_cache") - before == Decimal("3.0")   # a new data version: a new question
    assert abs(again["jazz"][0] - K) < 150 and abs(again["rock"][0] - (WHALES + 1) * K) < 150
    version = conn.execute("SELECT data_version FROM dp_internal.datasets WHERE name = 'fk_cache'").fetchone()[0]
    rebuilt = conn.execute("SELECT data_version FROM dp_internal.bounded_copies WHERE relid = "
                           "'fk_cache.line'::regclass AND relname = %s", [copy[0]]).fetchone()
    assert rebuilt is not None and rebuilt[0] == version != copy[1]
    # the copy is readable by nobody but the extension owner
    for part in ("a", "b", "c"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            analyst.execute(f"SELECT count(*) FROM dp_internal.{copy[0]}_{part}")
    conn.execute("DROP SCHEMA fk_cache CASCADE")


def test_a_two_step_path_is_bounded_per_unit(conn, analyst):
    """line -> invoice -> account -> customer_id: invoice is itself a path table."""
    conn.execute("DROP SCHEMA IF EXISTS fk_two CASCADE")
    conn.execute("CREATE SCHEMA fk_two")
    conn.execute("CREATE TABLE fk_two.account (account_id int PRIMARY KEY, customer_id int NOT NULL)")
    conn.execute("INSERT INTO fk_two.account SELECT g, 1 + g % 50 FROM generate_series(1, 200) g")  # 4 per customer
    conn.execute("CREATE TABLE fk_two.invoice (invoice_id int PRIMARY KEY, "
                 "account_id int NOT NULL REFERENCES fk_two.account)")
    conn.execute("INSERT INTO fk_two.invoice SELECT g, 1 + g % 200 FROM generate_series(1, 1000) g")
    conn.execute("CREATE TABLE fk_two.line (line_id int PRIMARY KEY, invoice_id int NOT NULL REFERENCES fk_two.invoice)")
    conn.execute("INSERT INTO fk_two.line SELECT g, 1 + g % 1000 FROM generate_series(1, 20000) g")  # 400 per customer
    conn.execute("SELECT dp.protect('fk_two.account', dataset => 'fk_two', privacy_unit => 'customer_id')")
    conn.execute("SELECT dp.protect('fk_two.invoice', dataset => 'fk_two', max_rows_per_unit => 30)")
    conn.execute("SELECT dp.protect('fk_two.line', dataset => 'fk_two', max_rows_per_unit => 7)")
    conn.execute(f"GRANT USAGE ON SCHEMA fk_two TO {ROLE}")
    conn.execute(f"SELECT dp.grant_budget('{ROLE}', 'fk_two', 100)")
    assert conn.execute("SELECT unit_path FROM dp.protected_tables WHERE table_name = 'fk_two.line'::regclass"
                        ).fetchone()[0] == '["invoice_id"] -> fk_two.invoice -> ["account_id"] -> fk_two.account'
    # 50 customers: lines 50 x 7 = 350 (unbounded 20,000), invoices 50 x 20 = 1,000 (unbounded 1,000: each
    # customer has 20 <= 30). epsilon 2: b = 3.5 and 15; |noise| >= 200 / 800 w.p. <= 2 e^-53
    line = analyst.execute("SELECT * FROM dp.query('SELECT count(*) FROM fk_two.line', 2.0) AS t(n bigint)").fetchone()[0]
    invoice = analyst.execute("SELECT * FROM dp.query('SELECT count(*) FROM fk_two.invoice', 2.0) AS t(n bigint)"
                              ).fetchone()[0]
    assert abs(line - 350) < 200 and abs(invoice - 1000) < 800
    conn.execute("DROP SCHEMA fk_two CASCADE")


# ---------------------------------------------------------------------------
# attacks
# ---------------------------------------------------------------------------

def test_attack_path_through_an_unprotected_table_is_refused(conn, analyst):
    """Whoever may write the middle table decides whose lines are whose: with invoice unprotected and
    writable, an analyst gives each of a whale's lines a unit of its own... if the gateway followed the
    path.  It refuses, before any charge, naming the table and how to protect it."""
    shop(conn, "fk_open")
    conn.execute("SELECT dp.unprotect('fk_open.invoice')")
    conn.execute(f"GRANT SELECT, UPDATE ON fk_open.invoice TO {ROLE}")
    assert analyst.execute("SELECT count(*) FROM fk_open.invoice").fetchone()[0] == CUSTOMERS
    before = conn.execute("SELECT count(*) FROM dp.ledger").fetchone()[0]
    for how in ("SELECT * FROM dp.query_json('SELECT count(*) FROM fk_open.line', 1.0)",
                "SELECT count(*) FROM fk_open.line"):
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
            analyst.execute(how)
        assert "fk_open.invoice" in e.value.diag.message_primary and "not protected" in e.value.diag.message_primary
        assert "dp.protect('fk_open.invoice', dataset => 'fk_open')" in e.value.diag.message_hint
    assert conn.execute("SELECT count(*) FROM dp.ledger").fetchone()[0] == before
    # dp.doctor() tells the DBA, with the fix
    found = conn.execute("SELECT detail, fix FROM dp.doctor() WHERE table_name = 'fk_open.line'::regclass "
                         "AND issue = 'foreign-key path broken'").fetchall()
    assert len(found) == 1 and "fk_open.invoice" in found[0][0] and found[0][1].startswith("An administrator")
    # protected again (its writes bump the data version, its grants are revoked): answered
    conn.execute("SELECT dp.protect('fk_open.invoice', dataset => 'fk_open')")
    assert not conn.execute("SELECT 1 FROM dp.doctor() WHERE issue = 'foreign-key path broken'").fetchall()
    assert conn.execute(f"SELECT has_table_privilege('{ROLE}', 'fk_open.invoice', 'SELECT') OR "
                        f"has_table_privilege('{ROLE}', 'fk_open.invoice', 'UPDATE')").fetchone()[0] is False
    n = analyst.execute("SELECT * FROM dp.query('SELECT count(*) FROM fk_open.line', 2.0) AS t(n bigint)").fetchone()[0]
    # b = K * 1 / 2 = 2.5: within 100 of ROCK + JAZZ w.p. >= 1 - 2 e^-40
    assert abs(n - (ROCK + JAZZ)) < 100
    conn.execute("DROP SCHEMA fk_open CASCADE")


def test_attack_a_path_whose_foreign_key_was_dropped_is_refused(conn, analyst):
    shop(conn, "fk_gone")
    conn.execute("ALTER TABLE fk_gone.line DROP CONSTRAINT line_invoice_id_fkey")
    before = spent(conn, "fk_gone")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
        analyst.execute("SELECT * FROM dp.query_json('SELECT count(*) FROM fk_gone.line', 1.0)")
    assert "line_invoice_id_fkey" in e.value.diag.message_primary and "dp.protect" in e.value.diag.message_hint
    assert spent(conn, "fk_gone") == before
    conn.execute("DROP SCHEMA fk_gone CASCADE")


def test_attack_orphan_rows_and_null_keys_do_not_become_units(conn, analyst):
    """Rows whose key points nowhere (written under session_replication_role = replica, which skips the
    foreign-key triggers, or a key made nullable later) belong to no customer and are left out; they
    never count as units of their own, which would add up to 6,000 to a count of sensitivity K."""
    shop(conn, "fk_orphan")
    conn.execute("ALTER TABLE fk_orphan.line ALTER invoice_id DROP NOT NULL")
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute("INSERT INTO fk_orphan.line SELECT 500000 + g, 900000 + g, 'jazz', 0 "
                     "FROM generate_series(1, 3000) g")
    conn.execute("INSERT INTO fk_orphan.line SELECT 600000 + g, NULL, 'jazz', 0 FROM generate_series(1, 3000) g")
    # epsilon 2, g = 2: b = 5; |noise| >= 150 w.p. <= 2 e^-30
    rows = by_genre(analyst, "SELECT genre, count(*) FROM fk_orphan.line GROUP BY genre", 2.0)
    assert abs(rows["jazz"][0] - JAZZ) < 150 and abs(rows["rock"][0] - ROCK) < 150
    conn.execute("DROP SCHEMA fk_orphan CASCADE")


def test_attack_null_unit_in_the_middle_table_is_one_bounded_unit(conn, analyst):
    """Invoices whose customer_id is NULL: their lines are the NULL unit's, bounded to K like any unit's
    (as on invoice itself), never one unit per line."""
    shop(conn, "fk_null")
    conn.execute("ALTER TABLE fk_null.invoice ALTER customer_id DROP NOT NULL")
    conn.execute(f"UPDATE fk_null.invoice SET customer_id = NULL WHERE customer_id > {WHALES}")
    # epsilon 2, g = 2: b = 5; |noise| >= 150 w.p. <= 2 e^-30. Per line as units: jazz would be 390
    rows = by_genre(analyst, "SELECT genre, count(*) FROM fk_null.line GROUP BY genre", 2.0)
    assert abs(rows["jazz"][0] - K) < 150 and abs(rows["rock"][0] - (WHALES + 1) * K) < 150
    conn.execute("DROP SCHEMA fk_null CASCADE")


def test_chinook_invoice_lines_are_bounded_per_customer(conn, analyst):
    """Real data: Chinook's invoice_line reaches customer_id through invoice_line.invoice_id -> invoice."""
    conn.execute("DROP SCHEMA IF EXISTS chinook CASCADE")
    load_chinook(conn, shared_data("chinook", "Chinook_PostgreSql.sql"))
    conn.execute(f"GRANT USAGE ON SCHEMA chinook TO {ROLE}")
    conn.execute("SELECT dp.protect('chinook.customer', dataset => 'chinook', privacy_unit => 'customer_id')")
    conn.execute("SELECT dp.protect('chinook.invoice', dataset => 'chinook', max_rows_per_unit => 10)")
    conn.execute("SELECT dp.protect('chinook.invoice_line', dataset => 'chinook', max_rows_per_unit => 10)")
    conn.execute("SELECT dp.set_bounds('chinook.invoice_line', 'unit_price', 0, 2)")
    conn.execute(f"SELECT dp.grant_budget('{ROLE}', 'chinook', 100)")
    # the truth, as the DBA computes it: at most 10 lines per customer
    bounded, unbounded = conn.execute(
        "SELECT sum(least(n, 10)), sum(n) FROM (SELECT i.customer_id, count(*) AS n FROM chinook.invoice_line l "
        "JOIN chinook.invoice i USING (invoice_id) GROUP BY 1) c").fetchone()
    assert unbounded - bounded > 1000
    # plain SQL at the default epsilon 1, one count: b = 10; within 300 w.p. >= 1 - 2 e^-30
    n = analyst.execute("SELECT count(*) FROM chinook.invoice_line").fetchone()[0]
    assert abs(n - bounded) < 300 or pytest.fail(f"{n} lines, bounded {bounded}, unbounded {unbounded}")
    conn.execute("DROP SCHEMA chinook CASCADE")


def test_a_partitioned_path_table_and_its_partitions(conn, analyst):
    """line partitioned by genre: the parent and each partition are bounded per customer along the path
    (the partitions' foreign keys are the parent's, cloned)."""
    shop(conn, "fk_part")
    conn.execute("CREATE TABLE fk_part.pline (line_id int NOT NULL, invoice_id int NOT NULL REFERENCES fk_part.invoice, "
                 "genre text NOT NULL) PARTITION BY LIST (genre)")
    conn.execute("CREATE TABLE fk_part.pline_rock PARTITION OF fk_part.pline FOR VALUES IN ('rock')")
    conn.execute("CREATE TABLE fk_part.pline_jazz PARTITION OF fk_part.pline FOR VALUES IN ('jazz')")
    conn.execute("INSERT INTO fk_part.pline SELECT line_id, invoice_id, genre FROM fk_part.line")
    conn.execute(f"SELECT dp.protect('fk_part.pline', dataset => 'fk_part', max_rows_per_unit => {K})")
    # epsilon 2, no GROUP BY: b = K / 2; within 100 w.p. >= 1 - 2 e^-40 each.  Per customer: a whale has K rock
    # lines, the others 2 lines (one of each genre)
    for table, truth in (("pline", WHALES * K + 2 * JAZZ), ("pline_rock", ROCK), ("pline_jazz", JAZZ)):
        n = analyst.execute(f"SELECT * FROM dp.query('SELECT count(*) FROM fk_part.{table}', 2.0) AS t(n bigint)"
                            ).fetchone()[0]
        assert abs(n - truth) < 100, (table, n, truth)
    conn.execute("DROP SCHEMA fk_part CASCADE")
