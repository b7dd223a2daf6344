"""Post-processing steps of pg_dp.synth.relational that need no server."""

from types import SimpleNamespace

import numpy as np

from pg_dp.synth import relational


def test_threshold_fanout_cuts_the_phantom_tail_and_keeps_small_real_cells():
    noisy = np.array([[900.0, 12.0, -3.0, 400.0, 5.0, 0.0, -7.0, 9.0]])
    out = relational.threshold_fanout(noisy, scale=10.0)
    # T(3) = 407 > 4 * 10 * sqrt(10) = 126; T(4) = 7 < 4 * 10 * sqrt(8): cut after k = 3
    assert out.tolist() == [[900.0, 12.0, 0.0, 400.0, 0.0, 0.0, 0.0, 0.0]]
    # nothing passes: the clipped histogram is kept rather than an empty one
    assert relational.threshold_fanout(np.array([1.0, -1.0, 2.0]), scale=10.0).tolist() == [1.0, 0.0, 2.0]


def test_threshold_fanout_phantom_tails_are_rare():
    """Real parents have 0..3 children (500 per cell), cells 4..127 are empty, Laplace noise of
    scale b = 5 in all 2 x 128 cells.  A tail T(k), k >= 4, is pure noise over m = 2 (128 - k)
    cells and must pass 4 b sqrt(2 m): for m = 2 that is P(L1 + L2 > 8 b) = e^-8 (2 + 8) / 4
    < 8.4e-4, and the longer tails (4 b sqrt(2 m) >= 11 b) add under 1e-3 together, so a draw
    keeps a phantom cell with p < 2e-3; more than 8 of 50 draws: p <= C(50, 9) (2e-3)^9 < 1e-14.
    The real cells (500 +- noise) are never cut: T(3) >= 900 passes with p > 1 - e^-100."""
    rng = np.random.default_rng()
    phantom = 0
    for _ in range(50):
        exact = np.zeros((2, 128))
        exact[:, :4] = 500
        out = relational.threshold_fanout(exact + rng.laplace(0, 5, exact.shape), 5.0)
        phantom += int(out[:, 4:].sum() > 0)
        assert np.all(out[:, :4] > 0)
    assert phantom <= 8


def test_numbers_within_a_parent_become_distinct_and_stay_in_bounds():
    col = SimpleNamespace(name="line", fam="integer", kind="numeric", lower=1.0, upper=7.0)
    run = SimpleNamespace(parent=SimpleNamespace(column="order", cols=["order"]),
                          t=SimpleNamespace(columns=[col], uniques=[["order", "line"]]))
    values = {"line": np.array([2, 2, 5, 7, 7, 7, 1, 3])}
    parents = np.array(["a", "a", "a", "b", "b", "b", "c", "a"], dtype=object)
    relational.distinct_within_parent(run, values, parents)
    assert values["line"].tolist() == [2, 3, 5, 5, 6, 7, 1, 4]
    for p in "abc":
        got = values["line"][parents == p]
        assert len(set(got)) == got.size and got.max() <= 7
    assert relational.numbering_limit(run) == 7


# ------------------------------------------------------------ children's sample of tau rows per unit
def test_rows_per_unit_compound_the_fan_outs_along_the_path():
    # one parent per unit with 1 or 2 children: the unit has 1 or 2 rows
    assert relational.compound(np.array([0, 1.0]), np.array([0, 0.5, 0.5]), 5).tolist() == [0, 0.5, 0.5, 0, 0, 0]
    # half the units have no parent; the others one with 1 or 2 children
    assert relational.compound(np.array([0.5, 0.5]), np.array([0, 1, 1]), 5).tolist() == [0.5, 0.25, 0.25, 0, 0, 0]
    # 2 parents of 3 children each: 6 rows, past the bound of 5 rows per unit: all at 5
    assert relational.compound(np.array([0, 0, 1.0]), np.array([0, 0, 0, 1.0]), 5).tolist() == [0, 0, 0, 0, 0, 1]
    out = relational.compound(np.array([0.2, 0.3, 0.5]), np.array([0.1, 0.6, 0.3]), 3)
    assert abs(out.sum() - 1) < 1e-12 and np.all(out >= 0)


def test_tau_is_the_median_rows_of_the_units_that_have_rows_and_never_past_the_bound():
    uniform = np.r_[0.3, np.ones(20) / 20 * 0.7]        # 30% of units without rows, the others 1..20
    assert relational.sample_size(uniform, 50) == 10
    assert relational.sample_size(uniform, 6) == 6
    assert relational.sample_size(np.r_[0, 1.0], 20) == 1     # one row per unit
    assert relational.sample_size(None, 350) == 350            # unknown: every row up to the bound
    assert relational.sample_size(np.r_[1.0, 0, 0], 7) == 1    # no unit has rows (noisily): 1, not the bound


def test_snapshot_of_a_child_bounds_each_unit_by_tau_and_returns_it_as_the_sensitivity(monkeypatch):
    """The accounting of a child's marginals: the rows measured are at most tau per unit
    (chosen by random() within each unit's own rows) and tau is the sensitivity handed to the
    count, the discovery and the method (run.Run.work stores snapshot's value in the table's
    state, where they read it), not max_rows."""
    from pg_dp.synth import discover

    sql = []
    monkeypatch.setattr(discover.db, "execute", lambda q, *a, **k: sql.append(q) or [{"q": "s.parent"}])
    monkeypatch.setattr(discover.db, "drop_table_if_present", lambda name: None)
    monkeypatch.setattr(discover.db, "quote_ident", lambda name: f'"{name}"')
    for t in (SimpleNamespace(path=[], unit="customer_id", max_rows=20, qualified="s.orders"),
              SimpleNamespace(path=[{"ref": 1, "cols": ["order_id"], "refcols": ["id"]}], path_unit="customer_id",
                              unit=None, max_rows=350, qualified="s.line")):
        sql.clear()
        assert discover.snapshot(t, 3) == (discover.SRC, 3)
        assert "ORDER BY random()" in sql[-1] and "pg_dp_rn <= 3" in sql[-1] and f"<= {t.max_rows}" not in sql[-1]
        assert discover.snapshot(t) == (discover.SRC, t.max_rows) and f"pg_dp_rn <= {t.max_rows}" in sql[-1]


# ------------------------------------------------------------ children matched to their parents
def test_match_pairs_equal_keys_each_child_once():
    rng = np.random.default_rng()
    slots = np.array([0, 0, 1, 2, 2, 2])
    children = np.array([2, 0, 2, 3, 0, 0, 0])
    chosen = relational.match(slots, children, rng)
    assert chosen[3:].tolist().count(-1) == 1                  # one child of key 2 for... two of three slots
    taken = chosen[chosen >= 0]
    assert len(set(taken.tolist())) == taken.size                # each child once
    assert np.all(children[taken] == slots[chosen >= 0])
    assert chosen[2] == -1                                       # key 1: no child


def _fake_child_run(seed=None):
    rng = np.random.default_rng(seed)
    cond = [SimpleNamespace(size=3, name="a"), SimpleNamespace(size=2, name="b")]
    slots = np.repeat(np.arange(198), 3)
    attrs = [np.arange(198) % 3, (np.arange(198) // 3) % 2]
    return SimpleNamespace(cond=cond, slots=SimpleNamespace(parents=slots, attrs=attrs), rng=rng,
                           phase=lambda m: None, plan=None, anchors=[])


def test_children_are_drawn_given_their_parents_attributes():
    """The model over-represents attribute 0 = 0 (80% of draws against a third of the slots):
    every slot still gets a child drawn with its own parent's attributes, from more draws.
    Deterministic: the fake model gives each combination a fixed share of every draw."""
    run = _fake_child_run()

    def draw(k):
        a = np.where(np.arange(k) % 20 < 16, 0, np.where(np.arange(k) % 20 < 18, 1, 2))
        b = (np.arange(k) // 20) % 2
        return {"pg_dp_parent_0": a, "pg_dp_parent_1": b, "x": 10 * a + b}

    codes, parents = relational.draw_children(run, draw, run.slots.parents.size)
    assert parents.tolist() == run.slots.parents.tolist()
    assert np.all(codes["x"] == 10 * run.slots.attrs[0][parents] + run.slots.attrs[1][parents])


def test_children_left_over_keep_the_parent_attribute_of_the_strongest_tie():
    """The child's model ties attribute 1 to a child column far more strongly than attribute 0
    (parent_strengths, from the measured 2-way marginals): slots the model never fills on both
    keep attribute 1 (an order's amount for its payments), not the first of the list."""
    run = _fake_child_run()
    weak = np.array([[60.0, 40.0], [40.0, 60.0], [50.0, 50.0]])         # dependence_z about 49
    strong = np.array([[150.0, 0.0], [0.0, 150.0]])                       # about 11,000
    run.plan = SimpleNamespace(two_way=[SimpleNamespace(clique=("pg_dp_parent_0", "x"), values=weak, stddev=1.0),
                                        SimpleNamespace(clique=("pg_dp_parent_1", "y"), values=strong, stddev=1.0)])
    assert relational.parent_strengths(run)[1] > relational.parent_strengths(run)[0] >= relational.DEPENDENCE_Z

    def draw(k):                       # attribute 0 is always 0: slots with 1 or 2 cannot be matched fully
        b = np.arange(k) % 2
        return {"pg_dp_parent_0": np.zeros(k, dtype=np.int64), "pg_dp_parent_1": b, "x": np.zeros(k, dtype=np.int64),
                "y": b}

    codes, parents = relational.draw_children(run, draw, run.slots.parents.size)
    assert np.all(codes["y"] == run.slots.attrs[1][parents])


def test_children_the_model_never_draws_for_a_combination_share_the_first_attributes():
    run = _fake_child_run()

    def draw(k):                       # attribute 1 is always 0: slots with 1 cannot be matched fully
        a = np.arange(k) % 3
        return {"pg_dp_parent_0": a, "pg_dp_parent_1": np.zeros(k, dtype=np.int64), "x": a}

    codes, parents = relational.draw_children(run, draw, run.slots.parents.size)
    assert np.all(codes["x"] == run.slots.attrs[0][parents])
    assert sorted(codes["x"].tolist()) == sorted(draw(run.slots.parents.size)["x"].tolist())   # no row made up


def test_a_child_date_is_its_parents_plus_the_offset_inside_declared_bounds():
    rng = np.random.default_rng()
    col = SimpleNamespace(nullable=False, source="declared bounds", lower=0.0, upper=100.0, sql_type="date", fam="date")
    out = relational.follow(col, np.array([10.0, 50.0, 90.0, np.nan]), np.array([5.0, np.nan, 30.0, 1.0]), rng)
    assert out[0] == 15 and out[2] == 100            # clipped into the declared bounds
    assert out[1] in (55.0, 80.0, 51.0)              # NOT NULL: another row's offset
    assert out[3] == 0                               # no parent date: the lower bound
    col.nullable, col.source = True, "DP bounds"       # the child column's own DP bounds hold too
    out = relational.follow(col, np.array([90.0, np.nan]), np.array([30.0, 1.0]), rng)
    assert out[0] == 100 and np.isnan(out[1])
    col.source = "no bounds"
    assert relational.follow(col, np.array([90.0]), np.array([30.0]), rng)[0] == 120


def test_a_child_date_keeps_its_offset_when_its_parents_dp_range_reaches_beyond_its_own():
    """Payments 0..9 days after their order, the payments' DP range ending at 100 and the
    orders' at 260 (two estimates): a payment of an order on day 250 stays 0..9 days after it
    (it was clipped to day 100, 150 days before its order), one that fits both stays in both."""
    rng = np.random.default_rng()
    col = SimpleNamespace(nullable=True, source="DP bounds", lower=0.0, upper=100.0, sql_type="date", fam="date")
    off = SimpleNamespace(source="DP bounds", lower=0.0, upper=9.0)
    out = relational.follow(col, np.array([250.0, 95.0, 50.0, np.nan, -30.0]),
                            np.array([4.0, 8.0, 3.0, 2.0, 5.0]), rng, off)
    assert out[0] == 250.0           # nearest offset in its bounds: 0 days (not day 100)
    assert out[1] == 100.0           # moved into both: 5 days after, within 0..9
    assert out[2] == 53.0 and np.isnan(out[3])
    assert out[4] == -21.0           # before the child's range: the offset's upper end (9)
    assert relational.follow(col, np.array([250.0]), np.array([4.0]), rng)[0] == 100.0   # no offset bounds


def test_fanout_choice_score_moves_under_four_per_row():
    """The report-noisy-max choosing the fan-out's parent attribute is calibrated to 4 per row
    (4 * rows per unit + 1 with the rounding): adding any one row to any table moves the score
    by less than 4."""
    rng = np.random.default_rng()
    for _ in range(300):
        joint = rng.integers(0, rng.choice([2, 50]), size=(rng.integers(1, 6), rng.integers(1, 6)))
        i, j = rng.integers(0, joint.shape[0]), rng.integers(0, joint.shape[1])
        more = joint.copy()
        more[i, j] += 1
        assert abs(relational.dependence_l1(more) - relational.dependence_l1(joint)) < 4
    assert relational.dependence_l1(np.array([[10, 0], [0, 10]])) == 20
    assert relational.dependence_l1(np.array([[5, 5], [5, 5]])) == 0


def test_dependence_beyond_noise_tells_noise_from_a_tie():
    """Independent attributes plus Gaussian noise of sd 200 on a 25 x 5 table of 150,000 rows:
    D's noise-only part is about chi-square(96) (sd 13.9) and the sampling part under
    N / sd^2 = 3.75, so D passes df + N/sd^2 + 6 sd with probability about 6e-7 per draw
    (Wilson-Hilferty); none of 1,000 seeded draws may pass (the generator is seeded: the
    test is deterministic).  A real tie (one attribute shifts the other's mode for a fifth
    of the rows) passes every time at this noise."""
    rng = np.random.default_rng(7)
    p_row, p_col = rng.dirichlet(np.ones(25)), rng.dirichlet(np.ones(5))
    passed = 0
    for _ in range(1000):
        real = rng.multinomial(150_000, np.outer(p_row, p_col).ravel()).reshape(25, 5)
        passed += relational.dependent_beyond_noise(real + rng.normal(0, 200, real.shape), 200.0)
    assert passed == 0
    tied = np.outer(p_row, p_col) * 0.8
    tied[np.arange(25), np.arange(25) % 5] += 0.2 * p_row
    for _ in range(50):
        real = rng.multinomial(150_000, tied.ravel()).reshape(25, 5)
        assert relational.dependent_beyond_noise(real + rng.normal(0, 200, real.shape), 200.0)
    assert not relational.dependent_beyond_noise(np.zeros((3, 3)), 1.0)
    assert not relational.dependent_beyond_noise(np.ones(4), 1.0)


def test_children_per_parent_are_scaled_to_the_tables_dp_count_only_when_far_from_it():
    """The fan-out drew 1,400 children where the DP count of the table's rows says 7,000
    (noise error 30): every parent's count is multiplied by 5 (randomized rounding), so the
    shape stays and the table has its rows; within 5% (or within the count's expected error)
    nothing moves; the cap holds; a count well below the drawn total scales it down alike."""
    rng = np.random.default_rng(7)
    k = np.repeat(np.array([0, 1, 2, 4]), 200)          # 1,400 children, mean 1.75
    out = relational.match_count(k, 7000, 30.0, 64, rng)
    assert abs(int(out.sum()) - 7000) < 0.02 * 7000
    assert np.all(out[k == 0] == 0) and np.all(out[k == 4] == 20)
    assert relational.match_count(k, 1450, 30.0, 64, rng) is k          # within 5%
    assert relational.match_count(k, 1600, 250.0, 64, rng) is k         # within the count's error
    assert relational.match_count(k, 7000, 30.0, 8, rng).max() == 8     # the cap
    down = relational.match_count(k, 700, 30.0, 64, rng)                # half the drawn total
    assert abs(int(down.sum()) - 700) < 0.05 * 700 and np.all(down[k == 0] == 0)


def test_a_draw_of_no_child_follows_a_count_beyond_its_error_one_each():
    """The thresholding can take the one bin of a 0/1 fan-out (TPC-DS returns per sale line):
    no child drawn for 28,752 parents where the count says 2,687.  The count, beyond its error,
    then gives one child each to parents chosen uniformly; within its error the draw stands."""
    rng = np.random.default_rng(5)
    zero = np.zeros(28752, dtype=np.int64)
    out = relational.match_count(zero, 2687, 1140.0, 1, rng)
    assert int(out.sum()) == 2687 and out.max() == 1
    assert relational.match_count(zero, 900, 1140.0, 1, rng) is zero
    assert int(relational.match_count(np.zeros(10, dtype=np.int64), 25, 3.0, 2, rng).sum()) == 20    # room: 2 each


def test_a_childs_relational_measurements_are_accounted_as_epsilon_not_rho():
    """The fan-out (20% of a child's epsilon), the count of its rows (15%) and, for a child
    holding the unit under a parent that holds it, the agreement check (2%) are Laplace
    measurements: budget.costs puts them in the epsilon part, and the model's rho is what the
    rest converts to.  They were carved out of the model's share after the charge and recorded
    inside its rho (e_model 0.95 of epsilon here): an epsilon-DP measurement costs epsilon^2 / 2
    in zCDP, far more than the rho its share converts to, so the budget's rho, summed over
    calls, understated them.  A path table without a parent: its fitted rows per unit (10%)."""
    from decimal import Decimal

    from pg_dp.synth import budget

    t = SimpleNamespace(needs_bounds=[], needs_values=[], unit=None, path=[{"conname": "k"}], own_max_rows=False,
                        columns=[], keys=[])
    child = SimpleNamespace(t=t, parent=SimpleNamespace(column="order_id"), rows=None, epsilon=Decimal("1"),
                            delta=Decimal("1e-6"))
    child.pure_share = relational.pure_share(child)
    e_disc, d_disc, e_model, d_model = budget.costs(child)
    assert child.pure_share == Decimal("0.35")
    assert e_disc == Decimal("0.40") and e_model == Decimal("0.60") and d_model == Decimal("1e-6")
    owner = SimpleNamespace(t=SimpleNamespace(**{**vars(t), "path": [], "unit": "customer_id"}),
                            parent=SimpleNamespace(column="order_id"), rows=None, epsilon=Decimal("1"),
                            delta=Decimal("1e-6"))
    assert relational.pure_share(owner) == Decimal("0.37")     # payments under their order: the check too
    path = SimpleNamespace(t=t, parent=None, rows=None, epsilon=Decimal("1"), delta=Decimal("1e-6"))
    path.pure_share = relational.pure_share(path)
    assert path.pure_share == Decimal("0.1")
    assert budget.costs(path)[0] == Decimal("0.15")        # its row count (Laplace, no Gaussian count) and the fit


def test_a_capped_fan_out_still_reaches_the_count():
    """Returns of sale lines: at most one a line (cap 1), 2,000 drawn over 10,000 lines where the
    count says 4,000.  Multiplying 0s and 1s by 2 and capping at 1 moved nothing (TPC-DS
    store_returns came to 0.53 of its rows in one run); the rows the cap holds back go to lines
    without a return."""
    rng = np.random.default_rng(3)
    k = (np.arange(10000) % 5 == 0).astype(np.int64)
    out = relational.match_count(k, 4000, 50.0, 1, rng)
    assert out.sum() == 4000 and out.max() == 1 and np.all(out[k == 1] == 1)
    assert relational.match_count(k, 20000, 50.0, 1, rng).sum() == 10000      # no room left: every line
