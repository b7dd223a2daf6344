"""dp.evaluate_schema: the DBA's evaluation of a synthetic shadow schema."""

import psycopg
import pytest

from datasets import ZIPF_MAX_ORDERS, analyst_module, synthesize, zipf_schema

ANALYST = "evalschema_analyst"


@pytest.fixture(scope="module", autouse=True)
def setup(conn):
    yield from analyst_module(conn, ANALYST)


def known(conn):
    """ev.customer (300) -> ev.invoice (1..3 per customer) -> ev.line (1..4 per invoice); lines
    also name their customer (a second path to the unit).  ev_copy holds an exact copy."""
    if conn.execute("SELECT to_regnamespace('ev')").fetchone()[0]:
        return
    conn.execute("CREATE SCHEMA ev")
    conn.execute("CREATE TABLE ev.customer (customer_id int PRIMARY KEY, country text NOT NULL, vip boolean NOT NULL, "
                 "joined date NOT NULL)")
    conn.execute("INSERT INTO ev.customer SELECT g, (ARRAY['fr','de','jp'])[1 + g % 3], g % 4 = 0, "
                 "DATE '2020-01-01' + g FROM generate_series(1, 300) g")
    conn.execute("CREATE TABLE ev.invoice (invoice_id int PRIMARY KEY, customer_id int NOT NULL "
                 "REFERENCES ev.customer, total int NOT NULL)")
    conn.execute("INSERT INTO ev.invoice SELECT row_number() OVER (), c.customer_id, "
                 "CASE WHEN c.vip THEN 600 ELSE 0 END + (c.customer_id * 7 + i) % 40 * 10 "
                 "FROM ev.customer c, generate_series(1, 1 + c.customer_id % 3) i")
    conn.execute("CREATE TABLE ev.line (line_id int PRIMARY KEY, invoice_id int NOT NULL REFERENCES ev.invoice, "
                 "customer_id int REFERENCES ev.customer, qty int NOT NULL)")
    conn.execute("INSERT INTO ev.line SELECT row_number() OVER (), v.invoice_id, v.customer_id, 1 + (v.invoice_id + i) % 5 "
                 "FROM ev.invoice v, generate_series(1, 1 + v.invoice_id % 4) i")
    conn.execute("SELECT dp.protect('ev.customer', dataset => 'ev', privacy_unit => 'customer_id')")
    conn.execute("SELECT dp.protect('ev.invoice', dataset => 'ev', max_rows_per_unit => 3)")
    # a line names its customer twice (its column, and through its invoice): the path is declared not personal
    conn.execute("SELECT dp.protect('ev.line', dataset => 'ev', max_rows_per_unit => 12, not_personal => "
                 "ARRAY['invoice_id'])")
    conn.execute("CREATE SCHEMA ev_copy")
    for t in ("customer", "invoice", "line"):
        conn.execute(f"CREATE TABLE ev_copy.{t} AS SELECT * FROM ev.{t}")


def evaluate(conn, real, synthetic):
    rows = conn.execute("SELECT table_name, subject, metric, value, baseline, detail FROM dp.evaluate_schema(%s, %s)",
                        (real, synthetic)).fetchall()
    return rows


def pick(rows, metric, table=None, subject=None):
    found = [r for r in rows if r[2] == metric and (table is None or r[0] == table)
             and (subject is None or (r[1] or "").startswith(subject))]
    assert found, (metric, table, subject)
    return found


def test_an_exact_copy_scores_zero_everywhere(conn):
    known(conn)
    rows = evaluate(conn, "ev", "ev_copy")
    tables = {r[0] for r in rows}
    assert tables == {"customer", "invoice", "line"}
    for metric in ("tvd_1way", "out_of_range", "tvd_1way_mean", "tvd_2way_mean", "orphans", "fanout_tvd",
                   "parent_child_tvd", "path_disagreements"):
        for r in pick(rows, metric):
            assert r[3] == 0, r
    # keys are left out of the TVDs; the data columns are in
    assert sorted(r[1] for r in pick(rows, "tvd_1way", "customer")) == ["country", "joined", "vip"]
    assert sorted(r[1] for r in pick(rows, "tvd_1way", "line")) == ["qty"]
    # line -> customer directly and line -> invoice -> customer: both paths checked, they agree
    paths = pick(rows, "path_disagreements", "line")
    lines = conn.execute("SELECT count(*) FROM ev.line").fetchone()[0]
    assert len(paths) == 1 and paths[0][5]["rows_reaching_both"] == lines and paths[0][5]["real"] == 0
    # the baselines: attaching invoices uniformly changes the fan-out (1..3 per customer) and
    # loses vip x total (vip customers' totals are 600..990)
    fan = pick(rows, "fanout_tvd", "invoice")[0]
    assert fan[4] > 0.2
    vip_total = pick(rows, "parent_child_tvd", "invoice", "invoice_customer_id_fkey: customer.vip x invoice.total")[0]
    assert vip_total[3] == 0 and vip_total[4] > 0.2
    # the 2-way TVD of a table sits next to its independent-columns baseline
    assert pick(rows, "tvd_2way_mean", "customer")[0][4] > 0


def test_broken_copy_gives_the_exact_counts(conn):
    known(conn)
    conn.execute("DROP SCHEMA IF EXISTS ev_broken CASCADE")
    conn.execute("CREATE SCHEMA ev_broken")
    for t in ("customer", "invoice", "line"):
        conn.execute(f"CREATE TABLE ev_broken.{t} AS SELECT * FROM ev.{t}")
    n_invoices = conn.execute("SELECT count(*) FROM ev.invoice").fetchone()[0]
    # 1 invoice in 10 points at a customer that is not there: orphans
    orphans = conn.execute("UPDATE ev_broken.invoice SET customer_id = customer_id + 100000 "
                           "WHERE invoice_id % 10 = 0").rowcount
    # 1 line in 7 names another customer than its invoice's: path disagreements (only lines
    # whose invoice still reaches a customer count)
    conn.execute("UPDATE ev_broken.line SET customer_id = 1 + customer_id % 300 WHERE line_id % 7 = 0")
    disagree = conn.execute("SELECT count(*) FROM ev_broken.line l JOIN ev_broken.invoice v USING (invoice_id) "
                            "JOIN ev_broken.customer c ON c.customer_id = v.customer_id "
                            "WHERE l.customer_id <> v.customer_id").fetchone()[0]
    # 30 totals above the real maximum (990) and 12 countries never seen: out of range, not clipped
    conn.execute("UPDATE ev_broken.invoice SET total = total + 5000 WHERE invoice_id <= 30")
    conn.execute("UPDATE ev_broken.customer SET country = 'xx' WHERE customer_id <= 12")
    rows = evaluate(conn, "ev", "ev_broken")
    assert pick(rows, "orphans", "invoice")[0][3] == orphans
    assert pick(rows, "orphans", "line", "line_invoice_id_fkey")[0][3] == 0
    assert pick(rows, "path_disagreements", "line")[0][3] == disagree > 0
    total = pick(rows, "out_of_range", "invoice", "total")[0]
    assert total[3] == pytest.approx(30 / n_invoices) and total[5]["outside"] == 30
    # not clipped into the real range: the 30 moved values leave their bins for the 'above'
    # bin, so the 1-way TVD is exactly their share (clipping would leave some in the top bin)
    assert pick(rows, "tvd_1way", "invoice", "total")[0][3] == pytest.approx(30 / n_invoices)
    country = pick(rows, "out_of_range", "customer", "country")[0]
    assert country[3] == pytest.approx(12 / 300)
    assert pick(rows, "tvd_1way", "customer", "country")[0][3] == pytest.approx(12 / 300)
    # the orphaned invoices have no parent: the fan-out of customers changes
    assert pick(rows, "fanout_tvd", "invoice")[0][3] > 0


def test_attack_analyst_cannot_evaluate_a_schema(conn, pg, db):
    """The evaluation reads the raw data: an analyst (even one with a budget, so holding an
    executor) is refused with 42501 and a hint, through the function and through the
    executor's entry point directly."""
    known(conn)
    conn.execute(f"SELECT dp.grant_budget('{ANALYST}', 'ev', 10, 1e-3)")
    with pg.connect(db, user=ANALYST) as analyst:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            analyst.execute("SELECT * FROM dp.evaluate_schema('ev', 'ev_copy')")
        assert e.value.diag.message_hint
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            analyst.execute("""SELECT dp_internal.executor_call('evaluate_schema',
                               '{"real_schema": "ev", "synthetic_schema": "ev_copy"}')""")


def test_bad_arguments_are_refused_with_a_hint(conn):
    known(conn)
    for args, state in ((("nope", "ev_copy"), "3F000"), (("ev", "ev"), "22023"), (("ev", "pg_catalog"), "42P01")):
        with pytest.raises(psycopg.Error) as e:
            evaluate(conn, *args)
        assert e.value.diag.sqlstate == state and e.value.diag.message_hint


def test_zipf_schema_in_one_call(conn):
    """A heavy-tailed schema (test/support/datasets.py zipf_schema): 40,000 customers with 1..20
    orders each (Zipf, about 60,000 orders), channel and amount depending on the customer's
    segment.  One call at epsilon 3 (1.5 per table), then dp.evaluate_schema.

    Fan-out TVD <= 0.05: the noisy fan-out histogram (integer Laplace, scale 1/0.24, over
    at most 4 x 21 cells) moves the distribution by at most sum|noise| / 40,000; that sum (at
    most a Gamma(84, 4.17), mean 350) exceeds 700 with p <= exp(-84 (1 - ln 2)) < 1e-11,
    so <= 0.0175; drawing 40,000 synthetic fan-outs from it adds E <= 0.5 sqrt(21 / 40,000) =
    0.0115 plus 0.017 with p <= exp(-2 * 40,000 * 0.017**2) < 1e-10 (McDiarmid: one draw
    moves the TVD by 1/40,000); the customers' segment marginal (4 cells, epsilon 1.5) and
    the DP row count move it by under 0.002 but with p < 1e-12.  Total <= 0.046, failure
    probability < 1e-9 (0.048 in all).
    The orders' marginals are measured over one order per customer (tau = 1: the median of
    orders per customer with any, from the noisy fan-out; real: 70% have one, and the noise
    above cannot move the 8,000 customers it would take), sensitivity 1 instead of 20.
    Segment x channel over the join <= half the uniform-attachment baseline (0.33 here, a
    property of the data): children are modelled with their parent's segment (MST marginals
    of ~40,000 sampled rows over 8 cells, sensitivity 1, noise ~1e-3) and drawn given the
    segment of their parent slot; sampling 60,000 children moves the 8-cell TVD by E <= 0.006
    plus 0.014 with p < 1e-10; the slots per segment come from the fan-out above (<= 0.046)
    when it is measured by segment, so the TVD stays under 0.07 < 0.16.  (Were "none" chosen
    for the fan-out -- segment scores about 4,000 against none's lead of 5 report-noisy-max
    scales of 167: p < 1e-8 -- the slots per segment would follow the customers' (25% each
    against about 33% of the orders for segment a): under 0.1 off, still < 0.16.)  Segment x amount (16 bins) carries the binning error of the
    model (about 0.1, systematic at this size) against a baseline of about 0.42."""
    customers, orders = zipf_schema(conn)
    conn.execute("SELECT dp.grant_budget('postgres', 'zipf', 10, 1e-3)")
    notices = synthesize(conn, "zipf", epsilon=3.0)
    assert any("orders: children's marginals measured over a uniform sample of at most 1 rows per unit "
               "(sensitivity 1; max_rows_per_unit 20)" in n for n in notices), notices
    rows = evaluate(conn, "zipf", "dp_synthetic")
    assert pick(rows, "orphans", "orders")[0][3] == 0
    fan = pick(rows, "fanout_tvd", "orders")[0]
    print("zipf fan-out TVD", fan[3], "uniform attachment", fan[4], fan[5])
    assert fan[3] <= 0.05
    assert fan[5]["synthetic_max"] >= ZIPF_MAX_ORDERS // 2       # the heavy tail is kept, not flattened
    pair = pick(rows, "parent_child_tvd", "orders", "orders_customer_id_fkey: customer.segment x orders.channel")[0]
    print("zipf segment x channel TVD", pair[3], "uniform attachment", pair[4])
    assert pair[4] > 0.25                  # a method ignoring the parent visibly fails
    assert pair[3] <= pair[4] / 2
    amount = pick(rows, "parent_child_tvd", "orders", "orders_customer_id_fkey: customer.segment x orders.amount")[0]
    print("zipf segment x amount TVD", amount[3], "uniform attachment", amount[4])
    assert amount[3] <= amount[4] / 2
    # values outside the real range (0..990) are reported, but stay inside the declared bounds
    outside = pick(rows, "out_of_range", "orders", "amount")[0]
    assert outside[5]["outside"] == conn.execute("SELECT count(*) FROM dp_synthetic.orders "
                                                 "WHERE amount NOT BETWEEN 0 AND 990").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM dp_synthetic.orders WHERE amount NOT BETWEEN 0 AND 1000").fetchone()[0] == 0


def test_tpch_small_scale_in_one_call(conn):
    """TPC-H at SF 0.01 (1,500 customers, 15,000 orders, 60,000 lines), generated now with
    DuckDB's TPC-H extension: one call, then dp.evaluate_schema.  Structure only (the
    fidelity figures at SF 0.1 are in bench/RESULTS.md): no orphans, no path
    disagreement, lineitem's (l_orderkey, l_linenumber) key met without dropping rows, its
    declared order within a row (shipped before received) on every line,
    the public tables copied verbatim and every key of the real schema in the copy."""
    from datasets import tpch_extension, tpch_schema

    if tpch_extension() is None:
        pytest.skip("duckdb and duckdb-ext-tpch are not installed (scripts/install-deps.sh installs them)")
    tpch_schema(conn, sf=0.01)
    conn.execute("SELECT dp.grant_budget('postgres', 'tpch', 10, 1e-3)")
    notices = synthesize(conn, "tpch", epsilon=3.0)
    assert not [n for n in notices if n.startswith("dropped") and "sampled row" in n], notices
    rows = evaluate(conn, "tpch", "dp_synthetic")
    for r in pick(rows, "orphans"):
        assert r[3] == 0, r
    for r in pick(rows, "path_disagreements"):
        assert r[3] == 0, r
    fan = {r[1].split(" ")[0] for r in pick(rows, "fanout_tvd")}
    assert {"orders_o_custkey_fkey", "lineitem_l_orderkey_fkey", "customer_c_nationkey_fkey"} <= fan
    for r in pick(rows, "fanout_tvd") + pick(rows, "parent_child_tvd_mean"):
        print(r[0], r[1], r[2], round(r[3], 4), "uniform", round(r[4], 4))
    for r in pick(rows, "out_of_range"):
        if r[3]:
            print("out of range", r[0], r[1], round(r[3], 4))
    print(conn.execute("SELECT min(l_discount), max(l_discount), count(DISTINCT l_discount) FROM dp_synthetic.lineitem").fetchone())
    # the declared order within a row (datasets.TPCH_ROW_ORDERS) holds on every line
    assert conn.execute("SELECT count(*) FROM dp_synthetic.lineitem WHERE l_shipdate >= l_receiptdate").fetchone()[0] == 0
    keys = lambda s: sorted(conn.execute(
        "SELECT conrelid::regclass::text, contype::text, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = %s::regnamespace AND contype IN ('p', 'f', 'u') ORDER BY 1, 3", (s,)).fetchall())
    real = [(t.replace("tpch.", ""), c, d.replace("tpch.", "")) for t, c, d in keys("tpch")]
    copy = [(t.replace("dp_synthetic.", ""), c, d.replace("dp_synthetic.", "")) for t, c, d in keys("dp_synthetic")]
    assert real == copy
    for t in ("region", "nation", "supplier"):
        assert conn.execute(f"SELECT count(*) FROM (SELECT * FROM tpch.{t} EXCEPT SELECT * FROM dp_synthetic.{t}) d"
                            ).fetchone()[0] == 0
    check_lines_per_supplier_and_part(conn, notices)


def _shares(conn, sql):
    rows = conn.execute(sql).fetchall()
    total = sum(n for _, n in rows)
    return {k: n / total for k, n in rows}


def _tvd(p, q):
    return 0.5 * sum(abs(p.get(k, 0) - q.get(k, 0)) for k in set(p) | set(q))


def check_lines_per_supplier_and_part(conn, notices):
    """Lines per supplier and per part (lineitem's (l_partkey, l_suppkey) -> partsupp, a DP
    histogram over partsupp's rows; each column set from the chosen row).  At SF 0.01 the
    noise (scale in the NOTICE, about 1.5e3: tau, some 55 lines per customer) dwarfs every
    row's count (c_max, at most a few dozen): a key passes the rare-key threshold scale *
    sqrt(2 ln(K / 1e-10)) with p <= 1e-10 / K * exp(c_max * threshold / scale**2) (checked
    below to be under 2e-10 / K), so with p > 1 - 2e-10 every line picks a partsupp row uniformly.
    Then the synthetic shares of a column are n independent draws from its share among
    partsupp's rows (p_u): TVD(real, synthetic) <= TVD(real, p_u) + E + t, with E <= 0.5
    sqrt(K / n) over the column's K values and t = sqrt(ln(1e10) / (2 n)) (McDiarmid: one
    line moves the TVD by 1 / n), exceeded with p < 1e-10.  The old model (a categorical
    column whose rare keys took weights of noise) gave 0.57 (suppliers) and 0.68 (parts) here."""
    import math
    import re

    found = [re.search(r"measured the keys of lineitem_l_partkey_l_suppkey_fkey \((\d+) keys of tpch.partsupp, "
                       r"noise scale ([0-9.e+]+),", m) for m in notices]
    found = [f for f in found if f]
    assert len(found) == 1, notices
    cells, scale = int(found[0].group(1)), float(found[0].group(2))
    c_max = conn.execute("SELECT max(n) FROM (SELECT count(*) AS n FROM tpch.lineitem GROUP BY l_partkey, l_suppkey) c"
                         ).fetchone()[0]
    assert c_max * scale * math.sqrt(2 * math.log(cells / 1e-10)) / scale ** 2 <= math.log(2)
    n = conn.execute("SELECT count(*) FROM dp_synthetic.lineitem").fetchone()[0]
    for column, ps in (("l_suppkey", "ps_suppkey"), ("l_partkey", "ps_partkey")):
        real = _shares(conn, f"SELECT {column}, count(*) FROM tpch.lineitem GROUP BY 1")
        offered = _shares(conn, f"SELECT {ps}, count(*) FROM tpch.partsupp GROUP BY 1")
        synthetic = _shares(conn, f"SELECT {column}, count(*) FROM dp_synthetic.lineitem GROUP BY 1")
        bound = _tvd(real, offered) + 0.5 * math.sqrt(len(offered) / n) + math.sqrt(math.log(1e10) / (2 * n))
        print(f"lines per {column}: TVD {_tvd(real, synthetic):.4f} (bound {bound:.4f}, uniform over partsupp "
              f"{_tvd(real, offered):.4f})")
        assert _tvd(real, synthetic) <= bound


def test_declared_bounds_narrower_than_one_are_kept(conn):
    """TPC-H's l_discount is declared 0..0.10 and o_shippriority 0..0: the synthetic values
    stay inside (they were widened to 0..1 before, and 89% of synthetic discounts, as
    dp.evaluate_schema's out_of_range showed, fell outside the real range)."""
    conn.execute("CREATE TABLE narrow (x numeric(15,2) NOT NULL, y int NOT NULL, z int NOT NULL)")
    conn.execute("INSERT INTO narrow SELECT (g % 11) / 100.0, g % 7, 0 FROM generate_series(1, 5000) g")
    conn.execute("SELECT dp.protect('narrow')")
    conn.execute("SELECT dp.set_bounds('narrow', 'x', 0, 0.1)")
    conn.execute("SELECT dp.set_bounds('narrow', 'y', 0, 6)")
    conn.execute("SELECT dp.set_bounds('narrow', 'z', 0, 0)")
    conn.execute("SELECT dp.grant_budget('postgres', 'narrow', 10, 1e-3)")
    notices = synthesize(conn, "public.narrow", epsilon=1.0)
    assert any("x: numeric on [0, 0.1]" in n for n in notices)
    n, x_out, z_out = conn.execute("SELECT count(*), count(*) FILTER (WHERE x NOT BETWEEN 0 AND 0.1), "
                                   "count(*) FILTER (WHERE z <> 0) FROM dp_synthetic.narrow").fetchone()
    assert n > 0 and x_out == 0 and z_out == 0
