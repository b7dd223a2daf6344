"""Synthesis without a database: the accounting of a run (the whole rho is spent, selections
included), the AIM-style scores and the tree's model they use, the 3-way selection, and the
numpy sampler (junction-tree marginals, randomized rounding)."""

import itertools
import math

import numpy as np
import pytest

from pg_dp.dp import mechanisms
from pg_dp.synth.methods import base, mst, pgm
from test_synth import Recorder, counts_of as _counts_of

SEED = 20261202


def make_table(n=6000, seed=SEED):
    """a -> b -> c a chain; d with e (a triple dependence on (a, d, e)); f independent."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 3, n)
    b = np.where(rng.random(n) < 0.8, a, rng.integers(0, 4, n))
    c = np.where(rng.random(n) < 0.7, b % 2, rng.integers(0, 2, n))
    d = rng.integers(0, 2, n)
    e = np.where(rng.random(n) < 0.9, (a + d) % 3, rng.integers(0, 3, n))   # e depends on (a, d) jointly
    f = rng.choice(5, n, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    return {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f}


DOMAIN = {"a": 3, "b": 4, "c": 2, "d": 2, "e": 3, "f": 5}


def counts_of(data, clique, sizes):
    return _counts_of(data, clique, sizes)


class Ledger(Recorder):
    """test_synth's recorder of every zCDP mechanism a run invokes, over this table's domain."""

    def __init__(self, data, domain=DOMAIN):
        super().__init__(data, domain)

    def run(self, rho, options, sensitivity=1):
        return super().run(rho, sensitivity, options=options)


@pytest.fixture(scope="module")
def table():
    return make_table()


@pytest.mark.parametrize("options", [
    mst.Options(),
    mst.Options(triples=3),
    mst.Options(adaptive=False, penalty=False),
    mst.Options(extra=40, triples=10),        # more than the clique cap and the table allow
    mst.Options(extra=2, coarse=4, coarse_bins=2, coarse_min_size=2, coarse_min_cells=4),
    mst.Options(coarse_pool=True, coarse_bins=2, coarse_min_size=2, coarse_min_cells=4),
    mst.Options(one_way_power=2 / 3, cells_power=2 / 3),
])
@pytest.mark.parametrize("sensitivity", [1, 2])
def test_a_run_spends_exactly_its_rho(table, options, sensitivity):
    """The total zCDP of every noise draw and every selection, from OpenDP's own maps, is the
    budget: nothing is lost when the clique cap leaves pairs out, nothing is overspent."""
    ledger = Ledger(table)
    rho = 0.6
    plan = ledger.run(rho, options, sensitivity)
    assert ledger.spent(sensitivity) <= rho * (1 + 1e-9)
    assert ledger.spent(sensitivity) == pytest.approx(rho, rel=1e-6)
    # the plan's own account agrees with the ledger
    assert base.total_rho(plan) == pytest.approx(ledger.spent(sensitivity), rel=1e-6)
    assert plan.selection_rho == pytest.approx(
        sum(mechanisms._zcdp_max(mechanisms.exponential_scale(s, r)).map(float(s))
            for s, r in ledger.selections), rel=1e-9)


def test_a_run_spends_exactly_its_rho_when_the_clique_cap_binds():
    """Four columns of 40 codes: a pair that closes a cycle among them would need a 64,000-cell
    clique (over MAX_CLIQUE_CELLS), so most extra pairs are refused; their shares (and their
    selection rounds') go to the pairs chosen, and the run still spends exactly its rho."""
    rng = np.random.default_rng(SEED)
    domain = {"p": 40, "q": 40, "r": 40, "s": 40, "t": 3}
    n = 40_000
    p = rng.integers(0, 40, n)
    data = {"p": p, "q": (p + rng.integers(0, 3, n)) % 40, "r": rng.integers(0, 40, n),
            "s": rng.integers(0, 40, n), "t": rng.integers(0, 3, n)}
    ledger = Ledger(data, domain)
    rho = 2.0
    plan = ledger.run(rho, mst.Options(extra=6))
    sizes = {a: int(plan.compress[a].max()) + 1 for a in domain}
    assert sizes == domain                           # nothing merged: the cap is what binds
    assert len(plan.selected) < 4 + 6                # the tree's 4 edges and fewer than 6 extra pairs
    assert ledger.spent() == pytest.approx(rho, rel=1e-6)
    assert ledger.spent() <= rho * (1 + 1e-9)


def test_rho_for_is_opendp_tightest_conversion():
    """rho_for inverts OpenDP's zCDP -> (epsilon, delta) conversion (the optimal one of Canonne,
    Kamath and Steinke 2020), which at delta 1e-9 gives more rho than the textbook
    epsilon = rho + 2 sqrt(rho log(1/delta))."""
    import opendp.prelude as dp

    epsilon, delta = 0.95, 1e-9
    rho = mechanisms.rho_for(epsilon, delta)
    scale = mechanisms.gaussian_scale(1, rho)
    meas = dp.c.make_zCDP_to_approxDP(mechanisms._integer_gaussian(scale))
    assert meas.map(1).epsilon(delta) <= epsilon * (1 + 1e-9)
    textbook = (math.sqrt(math.log(1 / delta) + epsilon) - math.sqrt(math.log(1 / delta))) ** 2
    assert rho > 1.2 * textbook


def test_one_way_rho_is_shared_by_size(table):
    """1-way shares follow (codes) ** power (equal at power 0), add up to 1, and a run gives
    each 1-way the noise of its share: the larger column gets the smaller noise."""
    shares = mst.one_way_shares({"x": 8, "y": 1, "z": 27}, 2 / 3)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["x"] / shares["y"] == pytest.approx(4.0) and shares["z"] / shares["y"] == pytest.approx(9.0)
    assert set(mst.one_way_shares({"x": 8, "y": 1}, 0).values()) == {0.5}
    rho = 0.6
    plan = Ledger(table).run(rho, mst.Options(one_way_power=2 / 3))
    rho1 = mst.split_rho(rho, 1)[0]
    expected = mst.one_way_shares(DOMAIN, 2 / 3)
    for m in plan.one_way:
        assert 1 / (2 * m.stddev ** 2) == pytest.approx(rho1 * expected[m.clique[0]], rel=1e-6)
    assert plan.one_way[list(DOMAIN).index("f")].stddev < plan.one_way[list(DOMAIN).index("c")].stddev


def test_score_penalty_is_the_expected_noise_error():
    exact = np.array([[10, 0], [0, 10]])
    est = np.full((2, 2), 5.0)
    assert mst._score(exact, est, 3.0, False) == pytest.approx(20.0)
    assert mst._score(exact, est, 3.0, True) == pytest.approx(20.0 - math.sqrt(2 / math.pi) * 3.0 * 4)
    # the score moves by at most 1 when one row is added (sensitivity 1)
    for cell in itertools.product(range(2), range(2)):
        other = exact.copy()
        other[cell] += 1
        assert abs(mst._score(other, est, 3.0, True) - mst._score(exact, est, 3.0, True)) <= 1


def exact_plan(data, tree_edges, sizes):
    """A plan whose 'noisy' marginals are exact (to check the tree's algebra)."""
    plan = base.Plan(dict(sizes), 1.0, 1)
    n = len(next(iter(data.values())))
    for a in sizes:
        plan.one_way.append(base.NoisyMarginal((a,), counts_of(data, (a,), sizes).astype(float), 1.0))
        plan.compress[a] = np.arange(sizes[a])
    for e in tree_edges:
        plan.two_way.append(base.NoisyMarginal(e, counts_of(data, e, sizes).astype(float), 1.0, True))
    plan.total = float(n)
    return plan


def tree_joint(data, edges, sizes, root):
    """The tree distribution by brute force: P(root) * prod P(child | parent)."""
    attrs = list(sizes)
    n = len(data[root])
    joint = np.zeros([sizes[a] for a in attrs])
    p = {a: counts_of(data, (a,), sizes) / n for a in attrs}
    cond = {}
    for x, y in edges:
        j = counts_of(data, (x, y), sizes) / n
        cond[(x, y)] = j / j.sum(axis=1, keepdims=True)
        cond[(y, x)] = j.T / j.T.sum(axis=1, keepdims=True)
    parent, todo = {root: None}, [root]
    adj = {a: [b for e in edges for b in e if a in e and b != a] for a in attrs}
    while todo:
        u = todo.pop()
        for v in adj[u]:
            if v not in parent:
                parent[v] = u
                todo.append(v)
    for idx in itertools.product(*[range(sizes[a]) for a in attrs]):
        val = dict(zip(attrs, idx))
        prob = p[root][val[root]]
        for v, u in parent.items():
            if u is not None:
                prob *= cond[(u, v)][val[u], val[v]]
        joint[idx] = prob
    return joint


def test_tree_model_pairs_and_triples_match_brute_force(table):
    sizes = {a: DOMAIN[a] for a in ("a", "b", "c", "d", "e")}
    data = {a: table[a] for a in sizes}
    edges = [("a", "b"), ("b", "c"), ("a", "e"), ("e", "d")]
    tree = mst._TreeModel(exact_plan(data, edges, sizes), sizes)
    joint = tree_joint(data, edges, sizes, "a")
    attrs = list(sizes)
    for combo in itertools.combinations(attrs, 2):
        brute = joint.sum(axis=tuple(i for i, a in enumerate(attrs) if a not in combo))
        assert np.allclose(tree.pair(*combo), brute, atol=1e-6), combo
    for combo in itertools.combinations(attrs, 3):
        brute = joint.sum(axis=tuple(i for i, a in enumerate(attrs) if a not in combo))
        assert np.allclose(tree.triple(*combo), brute, atol=1e-6), combo


def test_triples_selected_where_the_tree_misses(table):
    """(a, d, e): e depends on a and d jointly, which no tree of pairs holds; at a large rho
    the 3-way selection picks a triple that holds it."""
    ledger = Ledger(table)
    plan = ledger.run(50.0, mst.Options(triples=2, extra=0))
    triples = [set(c) for c in plan.selected if len(c) == 3]
    assert triples and any({"a", "d", "e"} <= t for t in triples)
    assert all(len(m.clique) in (2, 3) for m in plan.two_way)


def test_coarse_map_groups_adjacent_codes_by_mass():
    p = np.array([0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    m = mst.coarse_map(p, 3)
    assert m.tolist() == sorted(m.tolist())                 # adjacent codes, in order
    assert m[0] == 0 and m[1] == 1                          # the heavy code has a bin of its own
    assert int(m.max()) + 1 <= 3
    assert mst.coarse_map(np.array([0.3, 0.7]), 8).tolist() == [0, 1]
    counts = np.arange(12).reshape(3, 4)
    coarse = mst._coarsen(counts, ("a", "b"), {"a": np.array([0, 0, 1]), "b": np.array([0, 1, 1, 1])})
    assert coarse.tolist() == [[0 + 4, 1 + 2 + 3 + 5 + 6 + 7], [8, 9 + 10 + 11]]
    assert mst._coarsen(counts, ("a", "b"), {"b": np.array([0, 0, 1, 1])}).tolist() == [[1, 5], [9, 13], [17, 21]]


def test_coarse_pairs_enter_the_model_as_attributes_of_their_own(table):
    """A coarse measurement is over a coarse attribute (a column's bins) tied to its column by a
    mapping constraint: at a large rho the fitted model's coarse marginal comes out close to the
    measured one, the model keeps the mapping (no mass outside it), and sampled rows are over
    the columns only."""
    ledger = Ledger(table)
    plan = ledger.run(200.0, mst.Options(extra=0, coarse=2, coarse_bins=2, coarse_min_size=2, coarse_min_cells=4))
    rough = [m for m in plan.two_way if any(a.endswith(base.COARSE) for a in m.clique)]
    assert rough
    model = pgm.fit(plan, iters=300)
    for m in rough:
        fitted = np.asarray(model.project(m.clique).datavector(flatten=False))
        assert np.abs(fitted - m.values).sum() / plan.total < 0.02
    drawn = pgm.generate(model, 2000, seed=0)       # the numpy sampler, coarse attributes included
    coarse = {a for m in rough for a in m.clique if a.endswith(base.COARSE)}
    assert coarse <= set(drawn)
    for a in coarse:
        assert (drawn[a] == plan.coarse[base.base_name(a)][drawn[base.base_name(a)]]).all()
    rows = pgm.sample(model, plan, 2000, np.random.default_rng(0))
    assert set(rows) == set(DOMAIN)


def test_large_pairs_compete_over_coarse_bins_once():
    """With coarse_pool, a large pair is a candidate both over its codes and over coarse bins,
    and is measured at most once; the coarse maps group adjacent codes."""
    rng = np.random.default_rng(SEED)
    n = 20_000
    p = rng.integers(0, 30, n)
    data = {"p": p, "q": np.clip(p + rng.integers(-3, 4, n), 0, 29), "r": (p // 10 + rng.integers(0, 2, n)) % 3,
            "s": rng.integers(0, 2, n)}
    domain = {"p": 30, "q": 30, "r": 3, "s": 2}
    plan = Ledger(data, domain).run(50.0, mst.Options(coarse_pool=True, coarse_bins=4, coarse_min_size=8,
                                                      coarse_min_cells=50))
    assert set(plan.coarse) == {"p", "q"}
    for a, m in plan.coarse.items():
        assert m.tolist() == sorted(m.tolist()) and int(m.max()) + 1 <= 4
    bases = [frozenset(base.base_name(a) for a in c) for c in plan.selected]
    assert len(bases) == len(set(bases))
    assert all(len(m.values.shape) == len(m.clique) for m in plan.two_way)


# ---- the numpy sampler ---------------------------------------------------------------

def random_factors(rng, sizes, cliques):
    return [(c, rng.normal(0, 1.5, [sizes[a] for a in c])) for c in cliques]


def brute_distribution(sizes, factors):
    attrs = list(sizes)
    logp = np.zeros([sizes[a] for a in attrs])
    for c, v in factors:
        logp = logp + pgm._align(c, v, tuple(attrs))
    p = np.exp(logp - logp.max())
    return p / p.sum()


@pytest.mark.parametrize("cliques", [
    [("a", "b"), ("b", "c"), ("c", "d")],                       # a chain
    [("a", "b", "c"), ("c", "d"), ("b", "d")],                  # a cycle closed by a triple
    [("a", "b"), ("c", "d")],                                   # two components
    [("a",), ("b", "d")],
])
def test_clique_marginals_match_brute_force(cliques):
    rng = np.random.default_rng(SEED)
    sizes = {"a": 3, "b": 2, "c": 4, "d": 3}
    factors = random_factors(rng, sizes, cliques)
    mbi = pgm._mbi()
    domain = mbi.Domain(list(sizes), list(sizes.values()))
    jtree, _ = mbi.junction_tree.make_junction_tree(domain, [c for c, _ in factors])
    nodes = [tuple(n) for n in jtree.nodes]
    probs = pgm.clique_marginals(sizes, factors, nodes)
    joint = brute_distribution(sizes, factors)
    attrs = list(sizes)
    for n in nodes:
        brute = pgm._sum_to(tuple(attrs), joint, n)
        assert np.allclose(probs[n], brute, atol=1e-10), n


def test_sampler_draws_from_the_model():
    """i.i.d. draws: every 3-way frequency within a Hoeffding bound of the model's probability
    (union bound over all cells: failure probability <= 1e-9)."""
    rng = np.random.default_rng(SEED)
    sizes = {"a": 3, "b": 2, "c": 4, "d": 3}
    factors = random_factors(rng, sizes, [("a", "b", "c"), ("c", "d"), ("b", "d")])
    joint = brute_distribution(sizes, factors)
    n = 200_000
    rows = pgm.sample_rows((sizes, factors), n, np.random.default_rng(1), "sample")
    attrs = list(sizes)
    cells = sum(math.prod(sizes[a] for a in c) for c in itertools.combinations(attrs, 3))
    bound = math.sqrt(math.log(2 * cells / 1e-9) / (2 * n))
    worst = 0.0
    for c in itertools.combinations(attrs, 3):
        freq = counts_of(rows, c, sizes) / n
        worst = max(worst, float(np.abs(freq - pgm._sum_to(tuple(attrs), joint, c)).max()))
    assert worst <= bound
    # and a wrong model is told apart: the same rows against independent columns
    indep = np.einsum("a,b,c->abc", *[joint.sum(axis=tuple(j for j in range(4) if j != i)) for i in range(3)])
    assert np.abs(counts_of(rows, ("a", "b", "c"), sizes) / n - indep).max() > 3 * bound


def test_rounding_sampler_keeps_group_totals_and_expected_counts():
    """method "round": the first attribute's counts are its expected counts rounded (within
    one), and within every group of earlier attributes each value's count is within one of
    the group's expected count."""
    rng = np.random.default_rng(SEED)
    sizes = {"a": 3, "b": 2, "c": 4}
    factors = random_factors(rng, sizes, [("a", "b"), ("b", "c")])
    joint = brute_distribution(sizes, factors)
    n = 10_007
    rows = pgm.sample_rows((sizes, factors), n, np.random.default_rng(2), "round")
    mbi = pgm._mbi()
    domain = mbi.Domain(list(sizes), list(sizes.values()))
    _, elimination = mbi.junction_tree.make_junction_tree(domain, [c for c, _ in factors])
    first = list(elimination)[::-1][0]
    expected = pgm._sum_to(("a", "b", "c"), joint, (first,)) * n
    assert np.all(np.abs(counts_of(rows, (first,), sizes) - expected) < 1 + 1e-9)
    # b is drawn given its neighbour drawn before it; within each group the counts round the expectation
    order = list(elimination)[::-1]
    for col in order[1:]:
        before = [a for a in order[:order.index(col)] if {a, col} in ({"a", "b"}, {"b", "c"})]
        if not before:
            continue
        g = before[0]
        pair = counts_of(rows, (g, col), sizes).astype(float)
        model = pgm._sum_to(("a", "b", "c"), joint, (g, col))
        cond = model / model.sum(axis=1, keepdims=True)
        expected = cond * pair.sum(axis=1, keepdims=True)
        assert np.all(np.abs(pair - expected) < 1 + 1e-9)


def test_sampler_rejects_an_unknown_method():
    sizes = {"a": 2}
    with pytest.raises(ValueError):
        pgm.sample_rows((sizes, [(("a",), np.zeros(2))]), 10, np.random.default_rng(0), "bogus")


def test_max_clique_cells_is_that_of_mbi_junction_tree():
    """The plain-Python junction-tree size check agrees with mbi's own junction tree (the one
    the model is fitted and sampled over) on random sets of cliques: trees, forests, cycles."""
    mbi = pgm._mbi()
    rng = np.random.default_rng(SEED)
    for trial in range(300):
        k = int(rng.integers(2, 10))
        sizes = {f"x{i}": int(rng.integers(1, 40)) for i in range(k)}
        names = list(sizes)
        cliques = [tuple(str(a) for a in rng.choice(names, size=int(rng.integers(2, min(k, 3) + 1)), replace=False))
                   for _ in range(int(rng.integers(1, 2 * k)))]
        if trial % 3 == 0:          # a spanning tree
            cliques = [(names[i], names[int(rng.integers(0, i))]) for i in range(1, k)]
        domain = mbi.Domain(names, [sizes[a] for a in names])
        jtree, _ = mbi.junction_tree.make_junction_tree(domain, cliques)
        expected = max(math.prod(sizes[a] for a in node) for node in jtree.nodes)
        assert pgm.max_clique_cells(sizes, cliques) == expected, (sizes, cliques)


def test_rows_drawn_given_dependencies_meet_them_and_follow_the_conditioned_model():
    """pgm.sample_rows with functional dependencies (hard denial constraints): the model is
    conditioned on y = f(x), f(x) the dependent value the model gives most mass with x; two
    dependencies on one column (zip -> state, area -> state) only draw combinations where they
    agree.  Every row meets them (by construction), and i.i.d. rows follow the conditioned
    model: each 3-way frequency within a Hoeffding bound of it (union bound, p <= 1e-9)."""
    rng = np.random.default_rng(SEED)
    sizes = {"zip": 6, "state": 3, "area": 4, "x": 3}
    factors = random_factors(rng, sizes, [("zip", "state"), ("area", "state"), ("state", "x")])
    given = [(("zip",), "state", {}), (("area",), "state", {})]
    n = 200_000
    rows = pgm.sample_rows((sizes, factors), n, np.random.default_rng(3), "sample", given=given)
    for det in ("zip", "area"):
        pairs = set(zip(rows[det].tolist(), rows["state"].tolist()))
        assert len(pairs) == len({d for d, _ in pairs})          # one state per zip, per area code
    joint = brute_distribution(sizes, factors)
    zs, as_ = joint.sum(axis=(2, 3)), joint.sum(axis=(0, 3))
    f_zip, f_area = zs.argmax(axis=1), as_.T.argmax(axis=1)
    mask = np.zeros_like(joint)
    for z, s, a, x in itertools.product(*[range(k) for k in sizes.values()]):
        mask[z, s, a, x] = f_zip[z] == s and f_area[a] == s
    cond = joint * mask / (joint * mask).sum()
    attrs = list(sizes)
    cells = sum(math.prod(sizes[a] for a in c) for c in itertools.combinations(attrs, 3))
    bound = math.sqrt(math.log(2 * cells / 1e-9) / (2 * n))
    for c in itertools.combinations(attrs, 3):
        assert np.abs(counts_of(rows, c, sizes) / n - pgm._sum_to(tuple(attrs), cond, c)).max() <= bound


def test_a_dependency_leaves_null_free_and_a_model_without_its_clique_alone():
    rng = np.random.default_rng(SEED)
    sizes = {"a": 3, "b": 3, "c": 2}
    factors = random_factors(rng, sizes, [("a", "b"), ("b", "c")])
    mbi = pgm._mbi()
    jtree, _ = mbi.junction_tree.make_junction_tree(mbi.Domain(list(sizes), list(sizes.values())),
                                                    [c for c, _ in factors])
    probs = pgm.clique_marginals(sizes, factors, [tuple(n) for n in jtree.nodes])
    # a -> b with code 2 of a and code 2 of b the NULLs: those stay allowed everywhere
    [(clique, logp)] = pgm.dependency_factors(sizes, probs, [(("a",), "b", {"a": 2, "b": 2})])
    allowed = np.isfinite(logp)
    assert clique == ("a", "b") and allowed[2].all() and allowed[:, 2].all()
    assert (allowed[:2, :2].sum(axis=1) == 1).all()
    # a -> c: no clique of the model holds both (left to the repair)
    assert pgm.dependency_factors(sizes, probs, [(("a",), "c", {})]) == []
