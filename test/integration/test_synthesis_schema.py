"""dp_synthesize across a schema: public tables are declared, never guessed (issue 12)."""

import re
import psycopg
import pytest

from conftest import shared_data
from datasets import analyst_module, load_chinook, synthesize

ANALYST = "schema_analyst"


@pytest.fixture(scope="module", autouse=True)
def setup(conn):
    yield from analyst_module(conn, ANALYST)


@pytest.fixture
def analyst(pg, db):
    with pg.connect(db, user=ANALYST) as c:
        yield c


def relation(conn, name):
    return conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0]


def test_attack_undeclared_table_behind_a_foreign_key_is_never_copied(conn, analyst):
    """A store schema: sales (protected) reference staff, which holds names and phones and
    is neither protected nor declared public.  Synthesizing sales, as the DBA (who can read
    staff) or as an analyst given SELECT on it, must not put staff into the shadow schema,
    which every analyst of the shadow schema reads."""
    conn.execute("CREATE TABLE staff (id int PRIMARY KEY, name text NOT NULL, phone text NOT NULL)")
    conn.execute("INSERT INTO staff SELECT g, 'Employee ' || g, '+1-555-' || lpad(g::text, 4, '0') "
                 "FROM generate_series(1, 20) g")
    conn.execute("CREATE TABLE sales (id int PRIMARY KEY, staff_id int NOT NULL REFERENCES staff, "
                 "amount int NOT NULL)")
    conn.execute("INSERT INTO sales SELECT g, 1 + g % 20, g % 100 FROM generate_series(1, 2000) g")
    conn.execute("SELECT dp.protect('sales', dataset => 'store')")
    conn.execute("SELECT dp.set_bounds('sales', 'amount', 0, 100)")
    conn.execute("SELECT dp.set_bounds('sales', 'staff_id', 1, 20)")
    conn.execute("SELECT dp.grant_budget('postgres', 'store', 10, 1e-3)")
    conn.execute(f"SELECT dp.grant_budget('{ANALYST}', 'store', 10, 1e-3)")
    notices = synthesize(conn, "public.sales", epsilon=1.0)
    assert relation(conn, "dp_synthetic.staff") is None
    assert any("staff_id_fkey is not kept" in n and "neither protected nor declared public" in n for n in notices)
    # the column is still there, modelled on its own, and no key points anywhere
    assert conn.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
                        "AND conrelid = 'dp_synthetic.sales'::regclass").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FILTER (WHERE staff_id BETWEEN 1 AND 20) = count(*) "
                        "FROM dp_synthetic.sales").fetchone()[0]
    # an analyst who may read staff does not get it copied either
    conn.execute(f"GRANT SELECT ON staff TO {ANALYST}")
    synthesize(analyst, "public.sales", epsilon=1.0)
    assert relation(conn, "dp_synthetic.staff") is None
    assert relation(conn, f"dp_synthetic_{ANALYST}.staff") is None      # an analyst's own shadow schema
    # declaring it public asks for a confirmation: its names and phones look personal
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
        conn.execute("SELECT dp.declare_public('staff')")
    assert "phone (a phone number)" in str(e.value) and "confirm => true" in e.value.diag.message_hint
    assert conn.execute("SELECT count(*) FROM dp.public_tables WHERE table_name = 'staff'::regclass").fetchone()[0] == 0
    # once declared public (confirmed), it is copied verbatim and the key is kept
    conn.execute("SELECT dp.declare_public('staff', confirm => true)")
    synthesize(conn, "public.sales", epsilon=1.0)
    assert conn.execute("SELECT count(*) FROM dp_synthetic.staff").fetchone()[0] == 20
    assert conn.execute("SELECT confrelid::regclass::text FROM pg_constraint WHERE contype = 'f' "
                        "AND conrelid = 'dp_synthetic.sales'::regclass").fetchall() == [("dp_synthetic.staff",)]


def test_public_tables_are_copied_with_the_keys_among_them(conn):
    conn.execute("CREATE TABLE region (id int PRIMARY KEY, name text NOT NULL UNIQUE)")
    conn.execute("CREATE TABLE country (code text PRIMARY KEY, region_id int NOT NULL REFERENCES region, "
                 "capital_of int REFERENCES region (id))")
    conn.execute("CREATE TABLE secret_notes (id int PRIMARY KEY, note text)")
    conn.execute("ALTER TABLE region ADD COLUMN note_id int REFERENCES secret_notes")
    conn.execute("INSERT INTO secret_notes VALUES (1, 'do not copy')")
    conn.execute("INSERT INTO region VALUES (1, 'Europe', 1), (2, 'Asia', NULL)")
    conn.execute("INSERT INTO country VALUES ('fr', 1, NULL), ('de', 1, 1), ('jp', 2, 2)")
    conn.execute("CREATE TABLE visitors (id int PRIMARY KEY, country text NOT NULL REFERENCES country, "
                 "nights int NOT NULL)")
    conn.execute("INSERT INTO visitors SELECT g, (ARRAY['fr','de','jp'])[1 + g % 3], g % 10 "
                 "FROM generate_series(1, 1500) g")
    conn.execute("SELECT dp.protect('visitors', dataset => 'tourism')")
    conn.execute("SELECT dp.set_bounds('visitors', 'nights', 0, 10)")
    conn.execute("SELECT dp.grant_budget('postgres', 'tourism', 10, 1e-3)")
    for t in ("region", "country"):
        conn.execute(f"SELECT dp.declare_public('{t}')")
    assert sorted(r[0] for r in conn.execute("SELECT table_name::text FROM dp.public_tables")) >= ["country", "region"]
    notices = synthesize(conn, "public.visitors", epsilon=1.0)
    assert conn.execute("SELECT * FROM dp_synthetic.country ORDER BY 1").fetchall() == \
        conn.execute("SELECT * FROM country ORDER BY 1").fetchall()
    assert conn.execute("SELECT * FROM dp_synthetic.region ORDER BY 1").fetchall() == \
        conn.execute("SELECT * FROM region ORDER BY 1").fetchall()
    fks = sorted(conn.execute("SELECT conrelid::regclass::text, conname, confrelid::regclass::text FROM pg_constraint "
                              "WHERE contype = 'f' AND connamespace = 'dp_synthetic'::regnamespace "
                              "AND conrelid::regclass::text IN ('dp_synthetic.country', 'dp_synthetic.region', "
                              "'dp_synthetic.visitors')").fetchall())
    assert fks == [("dp_synthetic.country", "country_capital_of_fkey", "dp_synthetic.region"),
                   ("dp_synthetic.country", "country_region_id_fkey", "dp_synthetic.region"),
                   ("dp_synthetic.visitors", "visitors_country_fkey", "dp_synthetic.country")]
    # the key of a public table to an undeclared one is not followed
    assert relation(conn, "dp_synthetic.secret_notes") is None
    assert any("region_note_id_fkey" in n and "not declared public" in n for n in notices)
    # the copies keep their unique keys; a second run adds no duplicate rows
    synthesize(conn, "public.visitors", epsilon=1.0)
    assert conn.execute("SELECT count(*) FROM dp_synthetic.country").fetchone()[0] == 3
    assert ("u UNIQUE (name)",) in conn.execute(
        "SELECT contype::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'dp_synthetic.region'::regclass").fetchall()


def test_declare_public_refuses_protected_tables_and_analysts(conn, analyst):
    conn.execute("CREATE TABLE patients_p (id int PRIMARY KEY, age int)")
    conn.execute("SELECT dp.protect('patients_p')")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
        conn.execute("SELECT dp.declare_public('patients_p')")
    assert e.value.diag.message_hint
    conn.execute("CREATE TABLE genre (id int PRIMARY KEY, name text)")
    conn.execute("SELECT dp.declare_public('genre')")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
        conn.execute("SELECT dp.protect('genre')")
    assert "undeclare_public" in e.value.diag.message_hint
    conn.execute("CREATE VIEW genre_v AS SELECT * FROM genre")
    with pytest.raises(psycopg.errors.WrongObjectType):
        conn.execute("SELECT dp.declare_public('genre_v')")
    for call in ("SELECT dp.declare_public('genre')", "SELECT dp.undeclare_public('genre')"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            analyst.execute(call)
    conn.execute("SELECT dp.undeclare_public('genre')")
    with pytest.raises(psycopg.errors.UndefinedObject) as e:
        conn.execute("SELECT dp.undeclare_public('genre')")
    assert e.value.diag.message_hint
    assert "genre" not in [r[0] for r in analyst.execute("SELECT table_name::text FROM dp.public_tables")]


def test_small_table_row_count_is_a_dp_count_and_dry_run_says_too_small(conn):
    conn.execute("CREATE TABLE customer59 (id int PRIMARY KEY, age int NOT NULL, vip boolean NOT NULL)")
    conn.execute("INSERT INTO customer59 SELECT g, 20 + g % 60, g % 5 = 0 FROM generate_series(1, 59) g")
    conn.execute("SELECT dp.protect('customer59')")
    conn.execute("SELECT dp.set_bounds('customer59', 'age', 0, 100)")
    conn.execute("SELECT dp.grant_budget('postgres', 'customer59', 100, 1e-3)")
    before = conn.execute("SELECT count(*) FROM dp.ledger").fetchone()[0]
    notices = synthesize(conn, "public.customer59", epsilon=0.2, dry_run=True)
    # the row count's expected error: a Laplace count at 5% of epsilon has scale 100; with nothing
    # to discover it is a Gaussian count of 2% of rho composed in zCDP (delta 1e-6: sigma 145,
    # expected error 116 rows)
    assert any("too small to be useful at epsilon 0.2" in n
               and re.search(r"expected error (8\d|9\d|1[01]\d)(\.\d+)? rows", n) for n in notices)
    assert conn.execute("SELECT count(*) FROM dp.ledger").fetchone()[0] == before
    # run at that epsilon: the NOTICE comes with the DP count; it needs about 8 * 103 cells *
    # sd (> 10,000) rows, which a noisy count of 59 (b = 100) reaches with p <= exp(-99)
    notices = synthesize(conn, "public.customer59", epsilon=0.2)
    assert any("is too small to be useful" in n for n in notices)
    # the row count is a DP count of its own, not a sum of noisy marginals: at epsilon 20 its
    # scale is 1 (epsilon 1 for the count), so it is off by 22 with p <= 2 exp(-22) < 1e-9
    synthesize(conn, "public.customer59", epsilon=20.0)
    n = conn.execute("SELECT count(*) FROM dp_synthetic.customer59").fetchone()[0]
    assert 59 - 22 <= n <= 59 + 22


def test_columns_of_real_schemas_are_handled_before_the_charge(conn):
    """Unique indexes (one and several columns), a domain with a CHECK, an array, an enum,
    a serial key, an identity column and defaults: the copy is written (no 23505, 23514 or
    22P02 after the charge), keeps them, and inserts into it that leave the keys out work."""
    conn.execute("CREATE DOMAIN posint AS integer CHECK (VALUE > 0)")
    conn.execute("CREATE TYPE mood AS ENUM ('low', 'mid', 'high')")
    conn.execute("""CREATE TABLE shop_orders (
        id serial PRIMARY KEY, code text NOT NULL, a int NOT NULL, b int NOT NULL, qty posint NOT NULL,
        tags text[], feeling mood NOT NULL, seq int GENERATED ALWAYS AS IDENTITY,
        created date NOT NULL DEFAULT DATE '2024-01-01', note text DEFAULT 'none')""")
    conn.execute("CREATE UNIQUE INDEX shop_orders_code ON shop_orders (code)")
    conn.execute("CREATE UNIQUE INDEX shop_orders_ab ON shop_orders (a, b)")
    conn.execute("""INSERT INTO shop_orders (code, a, b, qty, tags, feeling, created, note)
        SELECT 'c' || g, g % 40, g / 40, 1 + g % 50, (ARRAY['{x}', '{x,y}', NULL])[1 + g % 3]::text[],
               (ARRAY['low', 'mid', 'high'])[1 + g % 3]::mood, DATE '2024-01-01' + g % 90, 'n' || g % 4
        FROM generate_series(1, 1200) g""")
    conn.execute("SELECT dp.protect('shop_orders')")
    for column, lo, hi in (("a", 0, 40), ("b", 0, 40), ("qty", -20, 50), ("seq", 0, 1300)):
        conn.execute("SELECT dp.set_bounds('shop_orders', %s, %s, %s)", (column, lo, hi))
    conn.execute("SELECT dp.set_bounds('shop_orders', 'created', '2024-01-01'::date, '2024-04-01'::date)")
    conn.execute("SELECT dp.grant_budget('postgres', 'shop_orders', 20, 1e-3)")
    synthesize(conn, "public.shop_orders", epsilon=3.0)
    copy = "dp_synthetic.shop_orders"
    # every unique index and the domain hold (checked here by the server itself)
    n, codes, pairs, bad_qty = conn.execute(
        f"SELECT count(*), count(DISTINCT code), count(DISTINCT (a, b)), count(*) FILTER (WHERE qty <= 0) "
        f"FROM {copy}").fetchone()
    assert n > 0 and codes == n and pairs == n and bad_qty == 0
    uniques = lambda t: sorted(r[0].split(" USING ")[1] for r in conn.execute(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s::regclass AND indisunique", (t,)))
    assert uniques(copy) == uniques("public.shop_orders")
    assert conn.execute(f"SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '{copy}'::regclass "
                        "AND attname = 'qty'").fetchone()[0] == "posint"
    # arrays come from the values found with DP (or are empty); enums from their labels
    assert conn.execute(f"SELECT count(*) FROM {copy} WHERE NOT (tags IS NULL OR tags IN ('{{x}}', '{{x,y}}', '{{}}'))"
                        ).fetchone()[0] == 0
    assert conn.execute(f"SELECT count(*) FROM {copy} WHERE feeling NOT IN ('low', 'mid', 'high')").fetchone()[0] == 0
    # defaults and sequences of the copy's own: an insert leaving keys and defaults out works
    new = conn.execute(f"INSERT INTO {copy} (code, a, b, qty, feeling) VALUES ('new', 99, 99, 1, 'low') "
                       "RETURNING id, seq, created, note").fetchone()
    assert new[0] > conn.execute(f"SELECT max(id) FROM {copy} WHERE code <> 'new'").fetchone()[0]
    assert new[1] is not None and str(new[2]) == "2024-01-01" and new[3] == "none"
    assert "public.shop_orders_id_seq" not in conn.execute(
        f"SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = '{copy}'::regclass").fetchall().__str__()
    # a second run replaces the copy (its own sequence goes with the old one)
    synthesize(conn, "public.shop_orders", epsilon=3.0)
    assert conn.execute(f"SELECT count(*) FROM {copy} WHERE code = 'new'").fetchone()[0] == 0


def test_what_cannot_be_met_is_refused_before_anything_is_spent(conn):
    conn.execute("CREATE TABLE tickets (id int PRIMARY KEY, email text NOT NULL, payload jsonb NOT NULL)")
    conn.execute("CREATE UNIQUE INDEX tickets_email_lower ON tickets (lower(email))")
    conn.execute("INSERT INTO tickets SELECT g, 'u' || g || '@x', '{}' FROM generate_series(1, 100) g")
    conn.execute("SELECT dp.protect('tickets')")
    conn.execute("SELECT dp.grant_budget('postgres', 'tickets', 20, 1e-3)")
    before = conn.execute("SELECT count(*) FROM dp.ledger").fetchone()[0]
    for dry in (True, False):
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            synthesize(conn, "public.tickets", epsilon=1.0, dry_run=dry)
        assert "tickets_email_lower" in str(e.value) and "payload" in str(e.value)
        assert e.value.diag.message_hint
    assert conn.execute("SELECT count(*) FROM dp.ledger").fetchone()[0] == before


def shop(conn, customers=300, prefix="shop"):
    """customer -> invoice (Zipf-like fan-out) -> invoice_line; the unit is customer_id."""
    conn.execute(f"CREATE TABLE {prefix}_customer (customer_id int PRIMARY KEY, country text NOT NULL "
                 "CHECK (country IN ('fr', 'de', 'jp')), vip boolean NOT NULL)")
    conn.execute(f"INSERT INTO {prefix}_customer SELECT g, (ARRAY['fr','de','jp'])[1 + g % 3], g % 4 = 0 "
                 f"FROM generate_series(1, {customers}) g")
    conn.execute(f"CREATE TABLE {prefix}_invoice (invoice_id int PRIMARY KEY, customer_id int NOT NULL "
                 f"REFERENCES {prefix}_customer, total int NOT NULL)")
    # the invoice total depends on the customer: vip customers spend 600..990, the others 0..390
    conn.execute(f"INSERT INTO {prefix}_invoice SELECT row_number() OVER (), c.customer_id, "
                 "10 * CASE WHEN c.vip THEN 60 + (c.customer_id * 7 + i) % 40 ELSE (c.customer_id * 7 + i) % 40 END "
                 f"FROM {prefix}_customer c, generate_series(1, CASE WHEN c.vip THEN 6 ELSE 1 + c.customer_id % 3 END) i")
    conn.execute(f"CREATE TABLE {prefix}_line (line_id int PRIMARY KEY, invoice_id int NOT NULL "
                 f"REFERENCES {prefix}_invoice, qty int NOT NULL)")
    conn.execute(f"INSERT INTO {prefix}_line SELECT row_number() OVER (), v.invoice_id, 1 + (v.invoice_id + i) % 5 "
                 f"FROM {prefix}_invoice v, generate_series(1, 1 + v.invoice_id % 4) i")
    conn.execute(f"SELECT dp.protect('{prefix}_customer', dataset => '{prefix}', privacy_unit => 'customer_id')")
    conn.execute(f"SELECT dp.protect('{prefix}_invoice', dataset => '{prefix}', max_rows_per_unit => 6)")
    conn.execute(f"SELECT dp.protect('{prefix}_line', dataset => '{prefix}', max_rows_per_unit => 24)")
    conn.execute(f"SELECT dp.set_bounds('{prefix}_invoice', 'total', 0, 1000)")
    conn.execute(f"SELECT dp.set_bounds('{prefix}_line', 'qty', 0, 6)")


def test_a_dataset_spans_tables_reaching_the_unit_through_foreign_keys(conn, analyst):
    shop(conn)
    rows = {r[0]: r[1:] for r in conn.execute(
        "SELECT table_name::text, privacy_unit, unit_path, max_rows_per_unit FROM dp.protected_tables "
        "WHERE dataset = 'shop'")}
    assert rows["shop_customer"] == ("customer_id", None, None)     # not fixed: chosen per question
    assert rows["shop_invoice"] == ("customer_id", None, 6)
    assert rows["shop_line"][0] == "customer_id" and "shop_invoice" in rows["shop_line"][1]
    # each table keeps its own bound: the later protects did not change the customer table's
    assert rows["shop_line"][2] == 24
    # the gateway answers a path table bounded per customer along the path (test/integration/test_fk_paths.py)
    conn.execute(f"SELECT dp.grant_budget('{ANALYST}', 'shop', 10, 1e-3)")
    # (the budget has a delta: Gaussian; 10% of the first question's budget estimates the share dropped)
    import math
    import stats_helpers as H
    rho = 0.9 * H.zcdp_rho(1.0, 1e-3)
    assert analyst.execute("SELECT noise_scale FROM dp.explain('SELECT count(*) FROM shop_line', 1.0)"
                           ).fetchone()[0] == pytest.approx(24.0 / math.sqrt(2 * rho), rel=1e-6)
    # a table with no path to the unit is refused
    conn.execute("CREATE TABLE shop_loose (id int PRIMARY KEY, x int)")
    with pytest.raises(psycopg.errors.UndefinedColumn) as e:
        conn.execute("SELECT dp.protect('shop_loose', dataset => 'shop')")
    assert e.value.diag.message_hint
    # synthesis of the line table bounds rows per customer along the path: 24 per customer
    # (at most 6 invoices of at most 4 lines here: all rows are kept); the DP count of the
    # rows (sensitivity 24, epsilon 0.05: b = 480) is within 10,300 of the truth with
    # p <= 2 exp(-21.4) < 1e-9; the rows are more than 10,300 only if the bounding failed
    conn.execute("SELECT dp.grant_budget('postgres', 'shop', 50, 1e-3)")
    notices = synthesize(conn, "public.shop_line", epsilon=1.0, dry_run=True)
    assert any("expected error 480 rows" in n for n in notices)


def fanout_tvd(conn, child, fk, parent, key):
    """TVD between the real and synthetic distributions of children per parent."""
    def dist(schema):
        rows = conn.execute(f"SELECT coalesce(n, 0) AS k, count(*) FROM {schema}.{parent} p LEFT JOIN "
                            f"(SELECT {fk}, count(*) AS n FROM {schema}.{child} GROUP BY 1) c ON c.{fk} = p.{key} "
                            "GROUP BY 1").fetchall()
        total = sum(r[1] for r in rows)
        return {k: v / total for k, v in rows}
    real, synth = dist("shopx"), dist("dp_synthetic")
    return 0.5 * sum(abs(real.get(k, 0) - synth.get(k, 0)) for k in set(real) | set(synth))


def test_one_call_synthesizes_a_schema_with_children_under_their_parents(conn):
    conn.execute("CREATE SCHEMA shopx")
    conn.execute("SET search_path = shopx, public, dp")
    try:
        shop(conn, customers=3000, prefix="s")
        # a denormalized path: lines also name their customer, which must be the invoice's
        conn.execute("ALTER TABLE s_line ADD COLUMN customer_id int REFERENCES s_customer")
        conn.execute("UPDATE s_line l SET customer_id = v.customer_id FROM s_invoice v WHERE v.invoice_id = l.invoice_id")
        # two paths to the customer: the DBA says the repeated key is not personal (the path decides)
        conn.execute("SELECT dp.protect('s_line', dataset => 's', not_personal => ARRAY['customer_id'])")
        conn.execute("CREATE TABLE s_country (code text PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO s_country VALUES ('fr', 'France'), ('de', 'Germany'), ('jp', 'Japan')")
        conn.execute("SELECT dp.declare_public('s_country')")
    finally:
        conn.execute("SET search_path = public, dp")
    conn.execute("SELECT dp.grant_budget('postgres', 's', 100, 1e-3)")
    before = conn.execute("SELECT count(*) FROM dp.ledger WHERE dataset = 's'").fetchone()[0]
    notices = synthesize(conn, "shopx", epsilon=9.0, dry_run=True)
    assert any("3 table(s) in this order: shopx.s_customer, shopx.s_invoice, shopx.s_line" in n for n in notices)
    assert any("children attached per parent" in n for n in notices)
    assert conn.execute("SELECT count(*) FROM dp.ledger WHERE dataset = 's'").fetchone()[0] == before
    notices = synthesize(conn, "shopx", epsilon=9.0)
    # one charge for the dataset, of the whole epsilon
    assert conn.execute("SELECT count(*), sum(asked_epsilon) FROM dp.ledger WHERE dataset = 's'").fetchone() == \
        (before + 1, 9)
    for t in ("s_customer", "s_invoice", "s_line", "s_country"):
        assert relation(conn, f"dp_synthetic.{t}") is not None
    # foreign keys kept (so 0 orphans), and the two paths to the customer agree
    fks = sorted(r[0] for r in conn.execute("SELECT conrelid::regclass::text || '->' || confrelid::regclass::text "
                                            "FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text "
                                            "LIKE 'dp\\_synthetic.s\\_%'"))
    assert fks == ["dp_synthetic.s_invoice->dp_synthetic.s_customer", "dp_synthetic.s_line->dp_synthetic.s_customer",
                   "dp_synthetic.s_line->dp_synthetic.s_invoice"]
    assert conn.execute("SELECT count(*) FROM dp_synthetic.s_line l JOIN dp_synthetic.s_invoice v USING (invoice_id) "
                        "WHERE v.customer_id IS DISTINCT FROM l.customer_id").fetchone()[0] == 0
    # fan-out kept: vip customers have 6 invoices, the others 1..3.  The noisy fan-out
    # histograms (Laplace scale 1/0.6 and 6/0.6 over 14 and 50 cells) move the TVD by under
    # 0.02 but with p < 1e-12; drawing 3,000 (8,700) parents' fan-outs from them stays within
    # 0.1 more but with p <= 2**25 exp(-2 * 3000 * 0.1**2) < 1e-17 (multinomial concentration);
    # the parents' attributes come from the parent's own model (vip: a 2-value column at
    # epsilon 3, off by under 0.02 but with p < 1e-12)
    tvd = fanout_tvd(conn, "s_invoice", "customer_id", "s_customer", "customer_id")
    lines = fanout_tvd(conn, "s_line", "invoice_id", "s_invoice", "invoice_id")
    print("fan-out TVD invoices per customer", tvd, "lines per invoice", lines)
    assert tvd <= 0.15 and lines <= 0.15
    # the child's attribute follows its parent's: 2-way TVD of vip x total (10 bins) over the
    # join, against what attaching invoices to customers uniformly gives (independence)
    def joint(schema):
        rows = conn.execute(f"SELECT c.vip, least(v.total / 100, 9), count(*) FROM {schema}.s_invoice v JOIN {schema}.s_customer c "
                            "USING (customer_id) GROUP BY 1, 2").fetchall()
        total = sum(r[2] for r in rows)
        return {(a, b): n / total for a, b, n in rows}
    real, synth = joint("shopx"), joint("dp_synthetic")
    pa, pb = {}, {}
    for (a, b), p in synth.items():
        pa[a], pb[b] = pa.get(a, 0) + p, pb.get(b, 0) + p
    uniform = {(a, b): pa[a] * pb[b] for a in pa for b in pb}
    tvd2 = 0.5 * sum(abs(real.get(k, 0) - synth.get(k, 0)) for k in set(real) | set(synth))
    base = 0.5 * sum(abs(real.get(k, 0) - uniform.get(k, 0)) for k in set(real) | set(uniform))
    print("parent x child TVD", tvd2, "uniform attachment", base)
    assert tvd2 <= base / 2
    vip = dict(conn.execute("SELECT c.vip, avg(n) FROM dp_synthetic.s_customer c JOIN (SELECT customer_id, count(*) n "
                            "FROM dp_synthetic.s_invoice GROUP BY 1) v USING (customer_id) GROUP BY 1").fetchall())
    assert vip[True] > vip[False] + 2


def test_chinook_in_one_call(conn):
    load_chinook(conn, shared_data("chinook", "Chinook_PostgreSql.sql"))
    conn.execute("SELECT dp.protect('chinook.customer', dataset => 'chinook', privacy_unit => 'customer_id')")
    conn.execute("SELECT dp.protect('chinook.invoice', dataset => 'chinook', max_rows_per_unit => 10)")
    conn.execute("SELECT dp.protect('chinook.invoice_line', dataset => 'chinook', max_rows_per_unit => 40)")
    for t in ("genre", "media_type", "artist", "album", "track", "playlist", "playlist_track"):
        conn.execute(f"SELECT dp.declare_public('chinook.{t}')")
    conn.execute("SELECT dp.grant_budget('postgres', 'chinook', 10, 1e-3)")
    notices = synthesize(conn, "chinook", epsilon=3.0)
    # the employee table (names, birth dates, addresses, phones) is neither protected nor
    # declared: never copied, and the customer's key to it is not kept
    assert relation(conn, "dp_synthetic.employee") is None
    assert any("customer_support_rep_id_fkey is not kept" in n for n in notices)
    for t in ("customer", "invoice", "invoice_line", "track", "album", "artist", "genre", "media_type",
              "playlist", "playlist_track"):
        assert relation(conn, f"dp_synthetic.{t}") is not None, t
    # the link table and its keys are copied verbatim; every key of the synthetic tables is kept
    assert conn.execute("SELECT count(*) FROM dp_synthetic.playlist_track").fetchone()[0] == \
        conn.execute("SELECT count(*) FROM chinook.playlist_track").fetchone()[0]
    fks = {r[0] for r in conn.execute("SELECT conname FROM pg_constraint WHERE contype = 'f' "
                                       "AND connamespace = 'dp_synthetic'::regnamespace")}
    assert {"invoice_customer_id_fkey", "invoice_line_invoice_id_fkey", "invoice_line_track_id_fkey",
            "playlist_track_playlist_id_fkey", "playlist_track_track_id_fkey", "track_album_id_fkey",
            "track_genre_id_fkey", "track_media_type_id_fkey", "album_artist_id_fkey"} <= fks
    for t in ("customer", "invoice", "invoice_line"):
        cols = lambda s: conn.execute("SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
                                      "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                                      (f"{s}.{t}",)).fetchall()
        assert cols("dp_synthetic") == cols("chinook")


def test_children_dates_follow_their_parents_and_marginals_use_tau_rows_per_unit(conn):
    """customer -> orders (dated over two years) -> lines shipped 1..30 days after their order,
    and a line status that follows the absolute date ('late' from 2021-07-01 on).  One call at
    epsilon 9 (3 per table).

    A line's ship date is modelled as an offset from its order's date (the schema pairs them:
    the parent's date column), so every synthetic line ships within the offset's DP bounds after
    its synthetic order.  Those bounds grow from the fullest noisy log2 bucket (16..31 days, about
    half of about 20,000 sampled rows, against a threshold near 600) over adjacent passing buckets;
    no bucket is empty within 1..31, and an empty bucket widens them only if it passes the
    threshold (p <= 1e-5 for the one next to the data, so two in a row: p <= 1e-10) or the far
    one (p <= 1e-10 for all of them together): the offsets lie in [-1, 64] but with p < 3e-10.
    Attached uniformly, about 5% of lines would.
    The lines' marginals are measured over at most tau rows per customer, tau the median rows per
    customer from the noisy fan-outs (real: 1..5 orders of 1..4 lines, median 6 or 7; the noise of
    both fan-outs moves it by at most 2 but with p < 1e-12), far under the declared bound of 40:
    the noise sd is tau's, not max_rows_per_unit's."""
    conn.execute("CREATE SCHEMA dated")
    conn.execute("CREATE TABLE dated.customer (customer_id int PRIMARY KEY, tier text NOT NULL "
                 "CHECK (tier IN ('a', 'b')))")
    conn.execute("INSERT INTO dated.customer SELECT g, (ARRAY['a','b'])[1 + g % 2] FROM generate_series(1, 3000) g")
    conn.execute("CREATE TABLE dated.orders (order_id int PRIMARY KEY, customer_id int NOT NULL "
                 "REFERENCES dated.customer, ordered date NOT NULL)")
    conn.execute("INSERT INTO dated.orders SELECT row_number() OVER (), c, DATE '2020-01-01' + (c * 37 + i * 101) % 730 "
                 "FROM generate_series(1, 3000) c, generate_series(1, 1 + c % 5) i")
    conn.execute("CREATE TABLE dated.line (line_id int PRIMARY KEY, order_id int NOT NULL REFERENCES dated.orders, "
                 "shipped date NOT NULL, status text NOT NULL CHECK (status IN ('early', 'late')))")
    conn.execute("INSERT INTO dated.line SELECT row_number() OVER (), o.order_id, o.ordered + 1 + (o.order_id * 13 + j * 7) % 30, "
                 "CASE WHEN o.ordered + 1 + (o.order_id * 13 + j * 7) % 30 >= DATE '2021-07-01' THEN 'late' ELSE 'early' END "
                 "FROM dated.orders o, generate_series(1, 1 + o.order_id % 4) j")
    conn.execute("SELECT dp.protect('dated.customer', dataset => 'dated', privacy_unit => 'customer_id')")
    conn.execute("SELECT dp.protect('dated.orders', dataset => 'dated', max_rows_per_unit => 10)")
    conn.execute("SELECT dp.protect('dated.line', dataset => 'dated', max_rows_per_unit => 40)")
    conn.execute("SELECT dp.set_bounds('dated.orders', 'ordered', '2020-01-01'::date, '2021-12-31'::date)")
    conn.execute("SELECT dp.grant_budget('postgres', 'dated', 100, 1e-3)")
    notices = synthesize(conn, "dated", epsilon=9.0, dry_run=True)
    assert any("shipped: orders.ordered plus an offset" in n for n in notices), notices
    notices = synthesize(conn, "dated", epsilon=9.0)
    tau = [int(m.group(1)) for n in notices
           for m in [re.search(r"line: children's marginals measured over a uniform sample of at most (\d+) rows", n)] if m]
    assert tau and 4 <= tau[0] <= 9, notices
    lo, hi, n = conn.execute("SELECT min(l.shipped - o.ordered), max(l.shipped - o.ordered), count(*) "
                             "FROM dp_synthetic.line l JOIN dp_synthetic.orders o USING (order_id)").fetchone()
    print("synthetic ship - order days:", lo, hi, "rows", n, "tau", tau)
    assert n == conn.execute("SELECT count(*) FROM dp_synthetic.line").fetchone()[0]
    assert -1 <= lo and hi <= 64
    rows = conn.execute("SELECT subject, value, baseline FROM dp.evaluate_schema('dated') "
                        "WHERE metric = 'parent_child_tvd' AND subject LIKE '%orders.ordered x line.%'").fetchall()
    for r in rows:
        print(r)


def test_a_grid_step_of_a_domain_over_a_domain_is_checked_against_its_base(conn):
    """wage is a domain over money2, a domain over numeric(10,2): dp.set_step and dp.set_bounds
    read the same base type (dp_internal.column_base_type).  set_step looked one domain deep and
    refused the column as 'of type money2: a grid step is for number columns'."""
    conn.execute("CREATE DOMAIN money2 AS numeric(10,2)")
    conn.execute("CREATE DOMAIN wage AS money2 CHECK (VALUE >= 0)")
    conn.execute("CREATE TABLE wages2 (id int PRIMARY KEY, w wage NOT NULL)")
    conn.execute("SELECT dp.protect('wages2')")
    conn.execute("SELECT dp.set_step('wages2', 'w', 0.5)")
    conn.execute("SELECT dp.set_bounds('wages2', 'w', 0, 1000)")
    assert conn.execute("SELECT lower_bound, upper_bound, step FROM dp_internal.columns "
                        "WHERE relid = 'wages2'::regclass AND attname = 'w'").fetchone() == (0, 1000, 0.5)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="finer than its values"):
        conn.execute("SELECT dp.set_step('wages2', 'w', 0.001)")
    conn.execute("DROP TABLE wages2")
    conn.execute("DROP DOMAIN wage")
    conn.execute("DROP DOMAIN money2")
