"""dp_synthesize: foreign keys to declared public tables (one column or several) and
self-references (pg_dp.synth.keys)."""

import re

import pytest

from conftest import shared_data
from datasets import analyst_module, load_chinook, synthesize

ANALYST = "keys_analyst"


@pytest.fixture(scope="module", autouse=True)
def setup(conn):
    yield from analyst_module(conn, ANALYST)


def sales(conn):
    """pk.product (2,000 keys, declared public); pk.sale (14,001 rows, no unit: one row a person):
    product 1 in 8,000 rows, product 2 in 4,000, products 3..1002 in 2 each, product 2000 in
    one row (a lone buyer), products 1003..1999 in none."""
    if conn.execute("SELECT to_regclass('pk.sale')").fetchone()[0]:
        return
    conn.execute("CREATE SCHEMA pk")
    conn.execute(f"GRANT USAGE ON SCHEMA pk TO {ANALYST}")
    conn.execute("CREATE TABLE pk.product (product_id int PRIMARY KEY, name text NOT NULL)")
    conn.execute("INSERT INTO pk.product SELECT g, 'product ' || g FROM generate_series(1, 2000) g")
    conn.execute("CREATE TABLE pk.sale (sale_id int PRIMARY KEY, product_id int NOT NULL REFERENCES pk.product, "
                 "qty int NOT NULL)")
    conn.execute("INSERT INTO pk.sale SELECT row_number() OVER (), p, 1 + p % 5 FROM ("
                 "SELECT 1 AS p FROM generate_series(1, 8000) UNION ALL SELECT 2 FROM generate_series(1, 4000) "
                 "UNION ALL SELECT p FROM generate_series(3, 1002) p, generate_series(1, 2) "
                 "UNION ALL SELECT 2000) s")
    conn.execute("SELECT dp.declare_public('pk.product')")
    conn.execute("SELECT dp.protect('pk.sale', dataset => 'pk_sale')")
    conn.execute("SELECT dp.set_bounds('pk.sale', 'qty', 1, 5)")
    conn.execute("SELECT dp.grant_budget('postgres', 'pk_sale', 20, 1e-3)")
    conn.execute(f"SELECT dp.grant_budget('{ANALYST}', 'pk_sale', 20, 1e-3)")


def shares(conn, table):
    rows = conn.execute(f"SELECT product_id, count(*) FROM {table} GROUP BY 1").fetchall()
    n = sum(c for _, c in rows)
    return {k: c for k, c in rows}, n


def test_key_to_a_public_table_keeps_frequent_keys_and_invents_no_rare_one(conn):
    """2,000 product keys (more than the 64 a model column holds): a DP histogram over the keys
    (discrete Gaussian, sensitivity 1, 10% of the model's rho at epsilon 2: scale about 7, so
    the rare-key threshold 7 sqrt(2 ln(2000 / 1e-10)) is about 56 rows).

    - Products 1 and 2 (8,000 and 4,000 rows) keep their shares 0.571 and 0.286 within 0.04:
      their noisy weights and the DP row count move a share by under 0.005 (each noise
      under 8 scales but with p < 1e-14), sampling n >= 12,000 rows (the DP count of 14,001,
      noise sd about 16) by under sqrt(ln(2e10) / (2 n)) = 0.032 (Hoeffding, p < 1e-10 each).
    - Rare keys get no weight of their own: a 2-row key passes the threshold with
      p < exp(-54**2 / (2 * 7.1**2)) < 3e-13 (< 3e-10 over the 1,000 such keys); otherwise the
      other 2,001 rows (a share under 0.15 with the noise above) are spread uniformly over
      the 1,998 keys without a weight: each synthetic row (n < 15,000) lands on a given one
      with p < 0.15 / 1,998, so a key gets 17 rows or more with p < 1e-14 (Binomial), < 2e-11
      over 2,000 keys.  Failure probability of the test < 1e-9.
    """
    sales(conn)
    notices = synthesize(conn, "pk.sale", epsilon=2.0)
    assert any("foreign key (product_id) -> dp_synthetic.product" in n and "DP histogram" in n for n in notices), notices
    got, n = shares(conn, "dp_synthetic.sale")
    assert n >= 12_000
    assert abs(got.get(1, 0) / n - 8000 / 14001) <= 0.04, (got.get(1), n)
    assert abs(got.get(2, 0) / n - 4000 / 14001) <= 0.04, (got.get(2), n)
    rare = {k: c for k, c in got.items() if k > 2}
    print("synthetic rows of rare keys: max", max(rare.values()), "keys used", len(rare))
    assert max(rare.values()) <= 16
    # never a key the public table lacks; the key is kept in the copy, pointing at the copied table
    assert set(got) <= set(range(1, 2001))
    assert conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'sale_product_id_fkey' "
                        "AND connamespace = 'dp_synthetic'::regnamespace").fetchone()[0] == \
        "FOREIGN KEY (product_id) REFERENCES dp_synthetic.product(product_id)"


def test_a_vocabulary_larger_than_a_chunk(conn):
    """300,000 public keys: their counts are noised 250,000 at a time (keys.CHUNK), and only
    the passing keys are kept.  Key 5 and key 299,995 (the second chunk) have 4,000 rows each
    of 10,000, the other 2,000 rows one key each among 10..2009.  The two keep their shares
    0.4 within 0.05 (noise scale about 7 against the threshold of about 60: they pass but
    with p < 1e-100; their weights and the DP count move a share by under 0.01, sampling
    n >= 9,000 rows by sqrt(ln(2e10) / (2 n)) < 0.037 but with p < 1e-10 each), so the
    second chunk's ranks are right."""
    sales(conn)
    conn.execute("CREATE TABLE pk.item (item_id int PRIMARY KEY)")
    conn.execute("INSERT INTO pk.item SELECT generate_series(1, 300000)")
    conn.execute("CREATE TABLE pk.pick (pick_id int PRIMARY KEY, item_id int NOT NULL REFERENCES pk.item)")
    conn.execute("INSERT INTO pk.pick SELECT g, CASE WHEN g <= 4000 THEN 5 WHEN g <= 8000 THEN 299995 "
                 "ELSE 10 + g % 2000 END FROM generate_series(1, 10000) g")
    conn.execute("SELECT dp.declare_public('pk.item')")
    conn.execute("SELECT dp.protect('pk.pick', dataset => 'pk_pick')")
    conn.execute("SELECT dp.grant_budget('postgres', 'pk_pick', 20, 1e-3)")
    notices = synthesize(conn, "pk.pick", epsilon=2.0)
    assert any("(300000 keys of pk.item" in m for m in notices), notices
    n, first, second = conn.execute("SELECT count(*), count(*) FILTER (WHERE item_id = 5), "
                                    "count(*) FILTER (WHERE item_id = 299995) FROM dp_synthetic.pick").fetchone()
    assert n >= 9_000
    assert abs(first / n - 0.4) <= 0.05 and abs(second / n - 0.4) <= 0.05, (first, second, n)


def test_attack_a_lone_buyer_of_a_public_key_is_not_singled_out(conn, pg, db):
    """The analyst knows the public product list and that one person, and only one, may have
    bought product 2000: the synthetic copy must not tell.  One row moves the key's count by
    1 against a threshold of about 56 (noise scale about 7), so the key gets no weight of its
    own (but with p < 3e-13) and the same uniform share as the 997 products nobody bought:
    at most 16 rows as in the test above (failure < 1e-9); no NOTICE gives a count of it."""
    sales(conn)
    with pg.connect(db, user=ANALYST) as analyst:
        notices = synthesize(analyst, "pk.sale", epsilon=2.0)
        got = analyst.execute(f"SELECT count(*) FROM dp_synthetic_{ANALYST}.sale WHERE product_id = 2000"
                              ).fetchone()[0]       # an analyst's copies are in a schema of its own
    assert got <= 16
    # the one NOTICE about the histogram: the public number of keys, the noise scale and how
    # many keys have a weight of their own (post-processing of the noisy counts)
    about = [m for m in notices if "sale_product_id_fkey" in m and "plan for" not in m]
    assert len(about) == 1 and re.search(r"measured the keys of sale_product_id_fkey \(2000 keys of pk.product, "
                                         r"noise scale [0-9.]+, 2 with a weight of their own\)", about[0]), about


def test_key_of_several_columns_to_a_public_table(conn):
    """pk.offer (product, shop) is public and references pk.product and pk.shop; pk.basket's
    (product_id, shop_id) references an offer, and each column its own public table; 20% of
    the baskets have neither.  The copy keeps all three keys (the DDL has them, so no orphan
    can exist), chooses offers (never a pair that is no offer), and keeps the NULL share
    within 0.1 (true 0.2: the NULL cell's noise, scale about 10 on 10,000 rows, and sampling
    n >= 9,000 rows, Hoeffding 0.037 with p < 1e-10)."""
    sales(conn)
    conn.execute("CREATE TABLE pk.shop (shop_id int PRIMARY KEY)")
    conn.execute("INSERT INTO pk.shop SELECT generate_series(1, 50)")
    conn.execute("CREATE TABLE pk.offer (product_id int REFERENCES pk.product, shop_id int REFERENCES pk.shop, "
                 "price int NOT NULL, PRIMARY KEY (product_id, shop_id))")
    conn.execute("INSERT INTO pk.offer SELECT p, 1 + (p * k) % 50, 10 FROM generate_series(1, 2000) p, "
                 "generate_series(1, 3) k ON CONFLICT DO NOTHING")
    conn.execute("CREATE TABLE pk.basket (basket_id int PRIMARY KEY, product_id int REFERENCES pk.product, "
                 "shop_id int REFERENCES pk.shop, qty int NOT NULL, "
                 "FOREIGN KEY (product_id, shop_id) REFERENCES pk.offer)")
    conn.execute("INSERT INTO pk.basket SELECT g, CASE WHEN g % 5 <> 0 THEN o.product_id END, "
                 "CASE WHEN g % 5 <> 0 THEN o.shop_id END, 1 + g % 3 FROM generate_series(1, 10000) g "
                 "JOIN (SELECT row_number() OVER (ORDER BY product_id, shop_id) AS r, * FROM pk.offer) o "
                 "ON o.r = 1 + (g * 7) % 600")
    for t in ("shop", "offer"):
        conn.execute(f"SELECT dp.declare_public('pk.{t}')")
    conn.execute("SELECT dp.protect('pk.basket', dataset => 'pk_basket')")
    conn.execute("SELECT dp.set_bounds('pk.basket', 'qty', 1, 3)")
    conn.execute("SELECT dp.grant_budget('postgres', 'pk_basket', 20, 1e-3)")
    notices = synthesize(conn, "pk.basket", epsilon=2.0)
    assert not [m for m in notices if "is not kept" in m], notices
    defs = lambda s: sorted(r[0] for r in conn.execute(
        "SELECT replace(pg_get_constraintdef(oid), %s, '') FROM pg_constraint WHERE conrelid = %s::regclass "
        "AND contype = 'f'", (f"{s}.", f"{s}.basket")).fetchall())
    assert defs("dp_synthetic") == defs("pk") and len(defs("pk")) == 3
    n, nulls, partial, not_offered = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE product_id IS NULL AND shop_id IS NULL), "
        "count(*) FILTER (WHERE (product_id IS NULL) <> (shop_id IS NULL)), "
        "count(*) FILTER (WHERE product_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pk.offer o "
        "WHERE o.product_id = b.product_id AND o.shop_id = b.shop_id)) FROM dp_synthetic.basket b").fetchone()
    assert partial == 0 and not_offered == 0
    assert n >= 9_000 and abs(nulls / n - 0.2) <= 0.1, (nulls, n)
    # the 600 offers baskets use have about 13 rows each, far under the rare-key threshold:
    # their rows are spread over every offer uniformly
    used = conn.execute("SELECT count(DISTINCT (product_id, shop_id)) FROM dp_synthetic.basket").fetchone()[0]
    print("distinct offers in the copy", used, "of", conn.execute("SELECT count(*) FROM pk.offer").fetchone()[0])


def employees(conn):
    """pk.emp: 3,000 employees, 30% without a boss; the others report to another employee."""
    conn.execute("CREATE TABLE pk.emp (emp_id int PRIMARY KEY, boss int REFERENCES pk.emp, "
                 "dept text NOT NULL CHECK (dept IN ('a', 'b', 'c')), grade int NOT NULL, CHECK (boss <> emp_id))")
    conn.execute("INSERT INTO pk.emp SELECT g, CASE WHEN g % 10 < 3 THEN NULL ELSE 1 + (g * 7) % 1000 END, "
                 "(ARRAY['a', 'b', 'c'])[1 + g % 3], g % 4 FROM generate_series(1, 3000) g")
    conn.execute("UPDATE pk.emp SET boss = NULL WHERE boss = emp_id")


def test_self_reference_is_kept(conn):
    """employee.boss -> employee.emp_id: the column takes keys of the same synthetic table,
    never the row's own, with the NULL share kept (true 0.3; within 0.1: a two-code column of
    the model, noise scale about 10 on 3,000 rows, sampling n >= 2,700 rows: Hoeffding 0.067
    with p < 1e-10);
    the copy has the self-referencing key and the CHECK (boss <> emp_id)."""
    sales(conn)
    employees(conn)
    conn.execute("SELECT dp.protect('pk.emp', dataset => 'pk_emp')")
    conn.execute("SELECT dp.set_bounds('pk.emp', 'grade', 0, 3)")
    conn.execute("SELECT dp.grant_budget('postgres', 'pk_emp', 20, 1e-3)")
    notices = synthesize(conn, "pk.emp", epsilon=2.0)
    assert not [m for m in notices if "is not kept" in m], notices
    assert any("foreign key (boss) -> the copy itself" in m for m in notices), notices
    n, nulls, own, orphans = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE boss IS NULL), count(*) FILTER (WHERE boss = emp_id), "
        "count(*) FILTER (WHERE boss IS NOT NULL AND NOT EXISTS (SELECT 1 FROM dp_synthetic.emp b "
        "WHERE b.emp_id = e.boss)) FROM dp_synthetic.emp e").fetchone()
    assert own == 0 and orphans == 0
    assert n >= 2_700 and abs(nulls / n - 0.3) <= 0.1, (nulls, n)
    assert conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'emp_boss_fkey' "
                        "AND connamespace = 'dp_synthetic'::regnamespace").fetchone()[0] == \
        "FOREIGN KEY (boss) REFERENCES dp_synthetic.emp(emp_id)"
    # still a working table: a new row may report to a synthetic one
    conn.execute("INSERT INTO dp_synthetic.emp (emp_id, boss, dept, grade) "
                 "SELECT max(emp_id) + 1, min(emp_id), 'a', 0 FROM dp_synthetic.emp")


def test_chinook_employee_self_reference_and_keys_to_public_tables(conn):
    """Chinook with its employee table protected (a dataset of its own, unit employee_id) next
    to customer -> invoice -> invoice_line: one call keeps employee.reports_to (a
    self-reference), customer.support_rep_id -> employee (a key to another dataset's table,
    drawn uniformly) and invoice_line.track_id -> track (3,503 public keys, a DP histogram),
    with no orphan (the copy has every key)."""
    load_chinook(conn, shared_data("chinook", "Chinook_PostgreSql.sql"))
    # reports_to names another employee: declared not personal (a manager's team size is not bounded)
    conn.execute("SELECT dp.protect('chinook.employee', dataset => 'chinook_staff', privacy_unit => 'employee_id', "
                 "not_personal => ARRAY['reports_to'])")
    conn.execute("SELECT dp.protect('chinook.customer', dataset => 'chinook', privacy_unit => 'customer_id')")
    conn.execute("SELECT dp.protect('chinook.invoice', dataset => 'chinook', max_rows_per_unit => 10)")
    conn.execute("SELECT dp.protect('chinook.invoice_line', dataset => 'chinook', max_rows_per_unit => 40)")
    for t in ("genre", "media_type", "artist", "album", "track", "playlist", "playlist_track"):
        conn.execute(f"SELECT dp.declare_public('chinook.{t}')")
    for d in ("chinook", "chinook_staff"):
        conn.execute(f"SELECT dp.grant_budget('postgres', '{d}', 20, 1e-3)")
    notices = synthesize(conn, "chinook", epsilon=4.0)
    assert not [m for m in notices if "is not kept" in m], notices
    fks = {r[0]: r[1] for r in conn.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                                            "WHERE contype = 'f' AND connamespace = 'dp_synthetic'::regnamespace")}
    assert fks["employee_reports_to_fkey"] == "FOREIGN KEY (reports_to) REFERENCES dp_synthetic.employee(employee_id)"
    assert fks["customer_support_rep_id_fkey"] == \
        "FOREIGN KEY (support_rep_id) REFERENCES dp_synthetic.employee(employee_id)"
    assert fks["invoice_line_track_id_fkey"] == "FOREIGN KEY (track_id) REFERENCES dp_synthetic.track(track_id)"
    assert conn.execute("SELECT count(*) FROM dp_synthetic.employee WHERE reports_to = employee_id").fetchone()[0] == 0
    rows = conn.execute("SELECT table_name, subject, value FROM dp.evaluate_schema('chinook') "
                        "WHERE metric = 'orphans'").fetchall()
    print(rows)
    assert rows and all(v == 0 for _, _, v in rows), rows
