"""The schema-and-constraint suite, small (tests/schema_suite.py; full size and every figure:
`make test-synthesis-suite`, bench/suite.py).  What a DBA following the README met on schemas the
project was not tuned on, one check each."""

import psycopg
import pytest

import schema_suite as suite
from datasets import synthesize


@pytest.fixture(scope="module")
def store(conn):
    rows = suite.store(conn, customers=1500)
    conn.execute("SELECT dp.grant_budget('postgres', 'store', 100, 0.01)")
    notices = synthesize(conn, "store", epsilon=9.0)
    return rows, notices


def count(conn, sql):
    return conn.execute(sql).fetchone()[0]


def test_a_child_naming_its_order_and_its_customer_takes_the_orders_customer(conn, store):
    """Payments name their order and their customer, with the keys declared on the monthly
    partitions: the customer is the order's in every synthetic row (by construction; it was
    drawn independently before: 13,667 of 13,683 rows disagreed), and dp.evaluate_schema sees
    the keys declared on the partitions."""
    _, notices = store
    assert any("customer_id: orders.customer_id of its parent (the privacy unit" in n for n in notices)
    assert count(conn, "SELECT count(*) FROM dp_synthetic.payments p JOIN dp_synthetic.orders o USING (order_id) "
                       "WHERE o.customer_id IS DISTINCT FROM p.customer_id") == 0
    paths = conn.execute("SELECT value, detail FROM dp.evaluate_schema('store') WHERE table_name = 'payments' "
                         "AND metric = 'path_disagreements'").fetchall()
    assert paths and all(v == 0 for v, _ in paths)
    fks = {r[0] for r in conn.execute("SELECT subject FROM dp.evaluate_schema('store') WHERE table_name = 'payments' "
                                      "AND metric = 'orphans'")}
    assert any("order_id" in s for s in fks) and any("customer_id" in s for s in fks)


def test_child_tables_without_a_declared_bound_get_their_rows_per_unit_from_the_fanout(conn, store):
    """No max_rows_per_unit on payments: not one payment per order (the dataset's bound of the
    customer table), but the noisy fan-out's: real orders have 1 to 3 payments.  The histogram
    (Laplace scale 1/(0.2 * 0.8 * 1.8) about 3.5 over 23 bins per group, thousands of orders) puts
    more than 10% of the orders at 2 or more payments but with p < 1e-12."""
    _, notices = store
    assert any("payments: children's marginals measured over a uniform sample" in n and "not set" in n
               for n in notices)
    multi = conn.execute("SELECT avg((n >= 2)::int) FROM (SELECT order_id, count(*) AS n FROM dp_synthetic.payments "
                         "GROUP BY 1) s").fetchone()[0]
    assert multi > 0.1


def test_child_dates_follow_an_event_date_never_an_audit_column(conn, store):
    """Orders' last_update lies in 2025, their dates in 2023-2024: payments follow the order date,
    not the audit column (they followed the parent's first date column, last_update there, and
    fell 60% outside the real range), so a synthetic payment is paid 0..9 days after its
    synthetic order as a real one is.  The offset's DP bounds grow from the fullest noisy log2
    bucket (1..9 days: buckets 1 to 4) over adjacent passing buckets; an empty bucket passes
    with p <= 1e-5 next to the data and p <= 1e-10 anywhere (two in a row next to it: 1e-10),
    so offsets stay within [-1, 64] days but with p < 3e-10 (with no passing bucket at all, the
    date would be modelled on its own: the fullest bucket, 4..8 days, holds about 2,000 of the
    sampled payments against a weak threshold near 900 at noise scale about 95, p < 1e-9).  The
    returns' offsets likewise (5..40 days: within [-1, 128]) unless modelled on their own."""
    _, notices = store
    plans = [n for n in notices if n.startswith("plan for store.payments")]
    assert plans and "paid_on: orders.order_date plus an offset" in plans[0]
    assert not any("last_update plus an offset" in n for n in notices)
    lo, hi = conn.execute("SELECT min(p.paid_on - o.order_date), max(p.paid_on - o.order_date) "
                          "FROM dp_synthetic.payments p JOIN dp_synthetic.orders o USING (order_id)").fetchone()
    assert -1 <= lo and hi <= 64, (lo, hi)
    # about 400 returns: their offset may have no DP bounds, and then the return date is modelled
    # on its own (said in a NOTICE) rather than clipped into bounds that are not the data's
    lo, hi = conn.execute("SELECT min(r.returned_on - o.order_date), max(r.returned_on - o.order_date) "
                          "FROM dp_synthetic.returns r JOIN dp_synthetic.orders o USING (order_id)").fetchone()
    on_its_own = any("returned_on: modelled on its own" in n for n in notices)
    assert on_its_own or lo is None or (-1 <= lo and hi <= 128), (lo, hi)
    rows = conn.execute("SELECT detail FROM dp.evaluate_schema('store') WHERE metric = 'out_of_range' "
                        "AND table_name = 'payments' AND subject = 'paid_on'").fetchall()
    assert rows and "beyond_one_bin" in rows[0][0]


def test_a_link_table_keeps_its_key_and_the_figures_say_when_no_better_than_uniform(conn, store):
    """order_tag (order_id, tag_id) is a link table: tags are distinct within an order by value
    re-assignment, not dropped rows; every fan-out figure carries the uniform-baseline flag."""
    _, notices = store
    assert not any("order_tag" in n and "broke CHECK/UNIQUE" in n for n in notices)
    flags = conn.execute("SELECT detail ? 'no_better_than_baseline' FROM dp.evaluate_schema('store') "
                         "WHERE metric = 'fanout_tvd'").fetchall()
    assert flags and all(f for (f,) in flags)


def test_keys_of_a_narrow_type_fit_it(conn):
    """A varchar(5) customer key: new keys fit (base 36), the copy is written (it used to fail after
    the charge with a UniqueViolation on keys cut to five characters); employees, with names and
    phones, neither protected nor declared, are never copied."""
    suite.sales(conn, customers=120)
    conn.execute("SELECT dp.grant_budget('postgres', 'sales', 100, 0.01)")
    notices = synthesize(conn, "sales", epsilon=6.0)
    n, longest = conn.execute("SELECT count(*), max(length(customer_id)) FROM dp_synthetic.customers").fetchone()
    assert n > 0 and longest <= 5
    assert count(conn, "SELECT count(*) FROM dp_synthetic.orders o LEFT JOIN dp_synthetic.customers c "
                       "USING (customer_id) WHERE c.customer_id IS NULL") == 0
    assert count(conn, "SELECT count(*) FROM pg_class WHERE relname = 'employees' "
                       "AND relnamespace = 'dp_synthetic'::regnamespace") == 0
    assert any("employee_id_fkey is not kept" in n for n in notices)


def test_a_hard_constraint_holds_whatever_else_is_declared(conn):
    """The tax table's six hard constraints, with the salaries' grid declared as public values:
    "within a state, a higher salary never has a lower rate" is met on the salaries as numbers
    (it was met on their text and left 1,159,836 violations), and every row is written."""
    real = suite.tax(conn, rows=4000, table="tax", grid="values")
    conn.execute("SELECT dp.grant_budget('postgres', 'tax', 100, 0.01)")
    synthesize(conn, "public.tax", epsilon=1.0)
    rows = conn.execute("SELECT metric, value, detail FROM dp.evaluate_synthetic('public.tax', "
                        "targets => ARRAY['marital'])").fetchall()
    violations = [(d["dc"], v) for m, v, d in rows if m == "dc_violations"]
    assert len(violations) == 6 and all(v == 0 for _, v in violations), violations
    n = count(conn, "SELECT count(*) FROM dp_synthetic.tax")
    # every column declared: the row count is a Gaussian count of 2% of rho (epsilon 1, delta 1e-6:
    # sigma about 35); off by 400 (10%) with p < 1e-25
    assert abs(n - real) <= 0.1 * real


def test_declarations_are_checked_before_anything_is_charged(conn, store):
    before = count(conn, "SELECT count(*) FROM dp.ledger")
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        conn.execute("CALL dp_synthesize('store', epsilon => 1, delta => 1)")
    assert "delta" in str(e.value) and e.value.diag.message_hint
    with pytest.raises(psycopg.errors.UndefinedTable) as e:
        conn.execute("CALL dp_synthesize('store.custmers', epsilon => 1)")
    assert "store.customers" in e.value.diag.message_hint          # a real object, named
    assert count(conn, "SELECT count(*) FROM dp.ledger") == before
