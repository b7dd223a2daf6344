"""Rules synthesis takes from a real schema, without a server (issue 21): which parent a child is
generated under and which second paths agree, audit columns, keys that fit their type, numeric
public values ordered as numbers in the repair, the fan-out's bins, bounds without [0, 1]."""

from types import SimpleNamespace

import numpy as np
import pytest

from pg_dp.synth import constraints, dc, identifiers, relational, table
from pg_dp.synth import domain as dom
from pg_dp.synth.links import SIBLING, Link


def target(name, unit=None, keys=(), path=(), columns=()):
    t = table.Target(1, "s", name, f"s.{name}", "d", unit, 1, 1)
    t.keys, t.path, t.path_unit = list(keys), list(path), "customer_id"
    t.columns = [dom.Column(c, "integer", "integer", True, "identifier") for c in columns]
    return t


def parent_state(t, links=()):
    return SimpleNamespace(t=t, links=list(links))


def test_a_child_holding_the_unit_is_generated_under_its_order_and_takes_the_orders_customer():
    """store.payments (order_id, customer_id): under the order, not the customer; the customer is the
    order's (paths agree by construction), where both keys used to be drawn independently."""
    customers = target("customers", unit="customer_id", keys=["customer_id"], columns=["customer_id"])
    orders = target("orders", unit="customer_id", keys=["order_id"], columns=["order_id", "customer_id"])
    orders_to_customer = Link("o_c", SIBLING, "customer_id", "customer_id", ["customer_id"], ["customer_id"],
                              "s.customers", "x.customers", 10, parent=parent_state(customers))
    payments = target("payments", unit="customer_id", columns=["payment_id", "order_id", "customer_id"])
    by_order = Link("p_o", SIBLING, "order_id", "order_id", ["order_id"], ["order_id"], "s.orders", "x.orders", 11,
                    parent=parent_state(orders, [orders_to_customer]))
    by_customer = Link("p_c", SIBLING, "customer_id", "customer_id", ["customer_id"], ["customer_id"],
                       "s.customers", "x.customers", 10, parent=parent_state(customers))
    links = [by_customer, by_order]
    assert relational.choose_parent(payments, links) is by_order
    agreements = relational.plan_agreements(payments, links, by_order)
    assert [(a.column, a.theirs, a.flag) for a in agreements] == [("customer_id", "customer_id", None)]


def test_a_path_table_repeating_the_units_column_declared_not_personal_takes_the_parents():
    """line(invoice_id -> invoice, customer_id -> customer) with customer_id declared not personal
    (dp.protect's rule for a row naming the unit twice): the line reaches its customer through its
    invoice, and its customer_id is the invoice's by construction, not a modelled same/other column
    (which would let the paths disagree)."""
    customers = target("customers", unit="customer_id", keys=["customer_id"], columns=["customer_id"])
    invoice = target("invoice", unit="customer_id", keys=["invoice_id"], columns=["invoice_id", "customer_id"])
    to_customer = Link("i_c", SIBLING, "customer_id", "customer_id", ["customer_id"], ["customer_id"],
                       "s.customers", "x.customers", 10, parent=parent_state(customers))
    line = target("line", path=[{"conname": "l_i", "ref": 11, "cols": ["invoice_id"], "refcols": ["invoice_id"]}],
                  columns=["line_id", "invoice_id", "customer_id"])
    by_invoice = Link("l_i", SIBLING, "invoice_id", "invoice_id", ["invoice_id"], ["invoice_id"], "s.invoice",
                      "x.invoice", 11, parent=parent_state(invoice, [to_customer]))
    by_customer = Link("l_c", SIBLING, "customer_id", "customer_id", ["customer_id"], ["customer_id"],
                       "s.customers", "x.customers", 10, parent=parent_state(customers))
    assert relational.choose_parent(line, [by_customer, by_invoice]) is by_invoice
    (a,) = relational.plan_agreements(line, [by_customer, by_invoice], by_invoice)
    assert (a.column, a.theirs, a.flag) == ("customer_id", "customer_id", None)


def test_a_second_path_that_may_differ_is_a_modelled_same_or_other_column():
    """store.returns (order_id -> orders, returned_by -> customers): the returner may be someone else."""
    customers = target("customers", unit="customer_id", keys=["customer_id"], columns=["customer_id"])
    orders = target("orders", unit="customer_id", keys=["order_id"], columns=["order_id", "customer_id"])
    to_customer = Link("o_c", SIBLING, "customer_id", "customer_id", ["customer_id"], ["customer_id"],
                       "s.customers", "x.customers", 10, parent=parent_state(customers))
    returns = target("returns", path=[{"conname": "r_o", "ref": 11, "cols": ["order_id"], "refcols": ["order_id"]}],
                     columns=["return_id", "order_id", "returned_by"])
    by_order = Link("r_o", SIBLING, "order_id", "order_id", ["order_id"], ["order_id"], "s.orders", "x.orders", 11,
                    parent=parent_state(orders, [to_customer]))
    by_returner = Link("r_c", SIBLING, "returned_by", "customer_id", ["returned_by"], ["customer_id"],
                       "s.customers", "x.customers", 10, parent=parent_state(customers))
    assert relational.choose_parent(returns, [by_returner, by_order]) is by_order
    (a,) = relational.plan_agreements(returns, [by_returner, by_order], by_order)
    assert a.column == "returned_by" and a.theirs == "customer_id"
    assert a.flag.kind == "categorical" and a.flag.values == ["same", "other"] and a.flag.nullable


def test_audit_columns_are_told_by_their_names():
    assert [n for n in ("last_update", "updated_at", "modified", "lastUpdated", "row_version", "created_at",
                        "order_date", "shipped", "update_count") if table.is_audit(n)] == \
        ["last_update", "updated_at", "modified", "lastUpdated", "row_version"]


def test_keys_fit_their_type_and_length():
    """A varchar(5) key: ids as '<column>_<n>' when they fit, else base 36; never cut (distinct ids
    stay distinct) and at most 36^5 - 1 of them (the plan caps the rows there)."""
    ids = np.arange(1, 70_001)
    text = identifiers.as_text(ids, "text", "customer_id", "character varying(5)")
    assert len(set(text)) == ids.size and max(len(x) for x in text) <= 5
    assert identifiers.as_text(np.array([1, 2]), "text", "id", "character varying(10)") == ["id_1", "id_2"]
    assert identifiers.as_text(np.array([7]), "text", "customer_id", "text") == ["customer_id_7"]
    assert identifiers.capacity("text", "character varying(5)") == 36 ** 5 - 1
    assert identifiers.capacity("text", "character(3)") == 36 ** 3 - 1
    assert identifiers.capacity("integer", "smallint") == 32767
    assert identifiers.capacity("numeric", "numeric(4,0)") == 9999
    assert identifiers.capacity("text", "text") == float("inf")


def test_numeric_public_values_are_ordered_as_numbers_by_the_repair():
    """Salaries declared as public values on an int column are text in the sample; ordered as text,
    '95000' > '100000', and "within a state a higher salary never has a lower rate" would be met
    on the wrong order (1,159,836 violations in the copy)."""
    t = SimpleNamespace(columns=[dom.Column("salary", "integer", "integer", False, "categorical",
                                            values=[str(5000 * k) for k in range(1, 41)]),
                                 dom.Column("rate", "integer", "integer", False, "numeric", lower=0, upper=45),
                                 dom.Column("state", "text", "text", False, "categorical", values=["a", "b"])])
    d = dc.parse("t1&t2&EQ(t1.state,t2.state)&GT(t1.salary,t2.salary)&LT(t1.rate,t2.rate)", ["salary", "rate", "state"])
    conv = constraints._on_the_line(t, [d])
    rng = np.random.default_rng()
    n = 400
    values = {"salary": np.array([str(5000 * k) for k in rng.integers(1, 41, n)], dtype=object),
              "rate": rng.integers(0, 46, n).astype(float), "state": np.array(["a", "b"], dtype=object)[rng.integers(0, 2, n)]}
    fixed, _, _ = dc.repair(constraints._to_line(values, conv), [d], rng,
                            constraints._to_line({"salary": np.array(t.columns[0].values, dtype=object)}, conv))
    fixed = constraints._from_line(fixed, conv)
    assert set(fixed["salary"]) <= set(t.columns[0].values)
    as_numbers = {"salary": fixed["salary"].astype(float), "rate": fixed["rate"], "state": fixed["state"]}
    assert dc.count_violations(as_numbers, d) == 0
    assert sorted(fixed["rate"]) == sorted(values["rate"])          # the rates are re-assigned, not changed


def test_the_fanout_bins_keep_a_heavy_tail_in_few_cells():
    edges = relational.fanout_edges(128)
    assert edges.tolist() == list(range(16)) + [16, 24, 32, 48, 64, 96, 128]
    assert relational.fanout_edges(7).tolist() == list(range(8))
    hist = np.zeros((1, edges.size))
    hist[0, 1], hist[0, -2] = 50, 50               # half with 1 child, half with 96..127
    f = relational.Fanout(None, hist, 128, edges)
    counts = f.counts()
    assert counts.sum() == 100 and counts[1] == 50 and np.allclose(counts[96:128], 50 / 32)
    k = f.draw(hist[0], 2000, np.random.default_rng())
    assert set(np.unique(k[k > 1])) <= set(range(96, 128)) and 0.4 < np.mean(k == 1) < 0.6


def test_a_link_tables_values_are_distinct_within_each_parent():
    parents = np.array(["a", "a", "a", "b", "b", "c"], dtype=object)
    tags = np.array(["t1", "t1", "t2", "t3", "t3", "t1"], dtype=object)
    out = relational._distinct_choices(tags, parents, ["t1", "t2", "t3", "t4"], np.random.default_rng())
    for p in "abc":
        got = out[parents == p]
        assert len(set(got)) == got.size
    assert out[0] == "t1" and out[2] == "t2" and out[3] == "t3"     # first occurrences kept


def test_bounds_without_a_passing_bucket_take_the_fullest_ones_never_zero_to_one():
    """discover._bounds: no bucket passes the usual thresholds (a child's column at a small share
    of epsilon); the fullest bucket and its neighbours passing the weak one (an empty bucket
    reaches it with p <= 1%) give the bounds: an amount's magnitude, not [0, 1]."""
    noisy = {b: 0.0 for b in dom.all_buckets()}
    noisy[14], noisy[15] = 900.0, 700.0                  # 8,192..32,768: an id or an amount
    assert dom.bounds_from_buckets(noisy, 1000.0) is None
    assert dom.bounds_from_buckets(noisy, 600.0) == (dom.bucket_edges(14)[0], dom.bucket_edges(15)[1])


def test_discovery_spends_exactly_its_share_refined_date_bounds_included(monkeypatch):
    """The DP bounds of a date column start from 4-year blocks and are refined (zoomed) inside
    them, dates weighing 3 numbers; bounds are measured over one row per unit (sensitivity 1,
    where the row count's is 3).  Every Laplace draw of the discovery, mapped by OpenDP's own
    measurement at the d_in it was calibrated for, adds up to at most the discovery's epsilon:
    exactly, less the refinement levels the data did not need."""
    from decimal import Decimal

    from pg_dp.dp import mechanisms
    from pg_dp.synth import budget, discover

    t = SimpleNamespace(needs_bounds=["paid_on", "amount"], needs_values=[], unit=None, keys=[], path=[], audit=[],
                        qualified="s.payments", opaque={}, columns=[
                            dom.Column("paid_on", "date", "date", False, "numeric"),
                            dom.Column("amount", "numeric(10,2)", "numeric", False, "numeric")])
    t.column = lambda n: next(c for c in t.columns if c.name == n)
    st = SimpleNamespace(t=t, src="x", sensitivity=3, epsilon=Decimal("1"), delta=Decimal("1e-6"), anchors=[],
                         parent=None, pure_share=Decimal(0), notice=lambda *a, **k: None, phase=lambda m: None,
                         method=SimpleNamespace(one_way_noise=lambda *a: (0.0, 0)))
    spent, calibrated = [], {}

    def execute(sql, *args, **kw):
        if "count(*) AS n FROM x\"" in sql or sql.startswith("SELECT count(*) AS n FROM x"):
            return [{"n": 9000}]
        assert "pg_dp_rn = 1" in sql            # bounds: one row per unit
        if "::int8 AS b" in sql:                # the 4-year blocks: 2020-2023 (block 5)
            return [{"b": 5, "n": 9000}]
        if "floor((" in sql:                    # the refinement's equal-width bins: data in bins 5..8
            return [{"b": b, "n": 9000} for b in range(5, 9)]
        return [{"b": 9, "n": 9000}]

    monkeypatch.setattr(discover.db, "execute", execute)
    monkeypatch.setattr(discover.db, "quote_ident", lambda n: f'"{n}"')
    scale_of = mechanisms.integer_laplace_scale

    def scale(sensitivity, epsilon):
        out = scale_of(sensitivity, epsilon)
        calibrated[out] = sensitivity
        return out

    monkeypatch.setattr(mechanisms, "integer_laplace_scale", scale)
    # every draw is recorded with its privacy cost; its value is 0, so that what the refinement keeps is
    # the data's (an empty neighbour bin passes its threshold with p 1e-2 under real noise: a flaky test)
    monkeypatch.setattr(mechanisms, "integer_laplace_noise", lambda s, size: spent.append(
        mechanisms._integer_laplace(s).map(calibrated[s])) or [0] * size)
    e_disc, d_disc, _, _ = budget.costs(st)
    counts = discover.discover(st, float(e_disc), float(d_disc))
    assert counts["total"] > 0
    # the row count (5% of epsilon, sensitivity 3), then the rest for the bounds (no column needs
    # a distinct count), split over two columns: the date's (3 shares) in its 4-year blocks and
    # its refinement levels (half of its share, a third a level; the data spans 4 of 16 bins at
    # the first level, so it stops there), the amount's (1 share) in its log2 histogram
    e_count = float(st.epsilon * budget.COUNT_SHARE)
    share = (float(e_disc) - e_count) / (1 + discover.DATE_WEIGHT)       # a number's; a date's is 3x
    date = discover.DATE_WEIGHT * share
    level = date * discover.REFINE_SHARE * discover.REFINE_LEVELS[0]
    assert sorted(spent) == pytest.approx(sorted([e_count, date * (1 - discover.REFINE_SHARE), level, share]),
                                          rel=1e-6)
    assert sum(spent) + date * discover.REFINE_SHARE * sum(discover.REFINE_LEVELS[1:]) == pytest.approx(float(e_disc), rel=1e-6)
    lo, hi = t.column("paid_on").lower, t.column("paid_on").upper
    block = dom.date_block("date")
    assert 5 * block < lo and hi < 6 * block and abs(hi - lo - 4 * block / 16) <= 1     # refined in the block
