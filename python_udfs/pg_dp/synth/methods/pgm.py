"""Graphical models of noisy marginals (mbi): fit, and sample rows in numpy.

Shared by the marginal-based methods (MST today; AIM would use it as it is): ``fit``
gives an mbi model of a Plan's noisy marginals (mirror descent), ``sample`` draws rows
from it over the original codes, and ``max_clique_cells`` tells a selection how large
the model's junction tree gets with the cliques chosen so far.
"""

from __future__ import annotations

import itertools
import math
import threading
from typing import Callable, Sequence

import numpy as np

from .base import COARSE, Clique, Plan, base_name

def _mbi():
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_enable_compilation_cache", False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mbi
    return mbi


def preload(tick: Callable[[], None] = lambda: None) -> None:
    """Import mbi and JAX (1-3 s, once per process) in the helper thread, so that a cancel
    arriving meanwhile is seen (see ``interruptible``)."""
    interruptible(_mbi, tick)


# Largest junction-tree clique (cells) that extra pairs may create: sampling and
# fitting cost grows with it.
MAX_CLIQUE_CELLS = 20000


def max_clique_cells(sizes: dict[str, int], cliques: list[Clique]) -> int:
    """Cells of the largest clique of the junction tree mbi makes for these cliques (as
    mbi.junction_tree.make_junction_tree: a tree's edges as they are, otherwise the greedy
    elimination order, least cells first, ties to the first attribute), in plain Python sets:
    the selection asks this of every candidate in every round (1,500 times on Adult: 7 s
    through mbi and networkx, a tenth of that here)."""
    near = {a: set() for a in sizes}
    for c in cliques:
        for a in c:
            near[a].update(b for b in c if b != a)
    edges = sum(len(v) for v in near.values()) // 2
    if edges and edges == len(sizes) - 1 and _connected(near):
        return max(sizes[a] * sizes[b] for a in near for b in near[a])
    largest, left = 0, list(sizes)
    while left:
        cost = {a: math.prod(sizes[b] for b in near[a]) * sizes[a] for a in left}
        a = min(left, key=cost.__getitem__)
        largest = max(largest, cost[a])
        for b in near[a]:
            near[b].discard(a)
            near[b].update(c for c in near[a] if c != b)
        left.remove(a)
    return largest


def _connected(near: dict[str, set]) -> bool:
    start = next(iter(near))
    seen, todo = {start}, [start]
    while todo:
        for b in near[todo.pop()]:
            if b not in seen:
                seen.add(b)
                todo.append(b)
    return len(seen) == len(near)


def generate(model, rows: int, seed: int, tick: Callable[[], None] = lambda: None,
             method: str | None = None, given: Sequence[tuple] = ()) -> dict[str, np.ndarray]:
    """Rows sampled from the fitted model (compressed codes), in numpy (``sample_rows``).

    mbi's own sampler evaluates its marginals with JAX, one compiled program per shape
    (about 200 on Adult: 10-20 s of compiling for 48,842 rows); the numpy one takes
    well under a second.  The rows are a post-processing of the noisy marginals, so
    their randomness carries no privacy weight (all of that is OpenDP's noise on the
    counts): a numpy generator seeded here draws them.  It runs in a thread while this
    one calls ``tick`` (see ``interruptible``); ``given``: dependencies the rows are drawn
    conditioned on (see ``sample_rows``)."""
    def draw():
        rng = np.random.default_rng(seed)
        return sample_rows(model_factors(model), rows, rng, method or "round", given=given)

    return interruptible(draw, tick)


def model_factors(model) -> tuple[dict[str, int], list[tuple[Clique, np.ndarray]]]:
    """(attribute sizes, [(clique, log-potential as a numpy array)]) of an mbi model."""
    sizes = dict(zip(model.domain.attributes, model.domain.shape))
    factors = []
    for cl in model.potentials.cliques:
        f = model.potentials[cl]
        factors.append((tuple(f.domain.attributes), np.asarray(f.values, dtype=np.float64)))
    for c in getattr(model, "constraints", ()):     # -inf outside a mapping (coarse attributes)
        f = c.potential
        factors.append((tuple(f.domain.attributes), np.asarray(f.values, dtype=np.float64)))
    return sizes, factors


def _align(attrs: Clique, values: np.ndarray, target: Clique) -> np.ndarray:
    """values over attrs, laid out over target's axes (missing ones of size 1)."""
    order = [attrs.index(a) for a in target if a in attrs]
    arr = np.transpose(values, order)
    shape, k = [], 0
    for a in target:
        if a in attrs:
            shape.append(arr.shape[k])
            k += 1
        else:
            shape.append(1)
    return arr.reshape(shape)


def _logsumexp_to(attrs: Clique, values: np.ndarray, keep: Clique) -> np.ndarray:
    """log of the sum of exp(values) over the axes not in keep, laid out in keep's order."""
    axes = tuple(i for i, a in enumerate(attrs) if a not in keep)
    if axes:
        top = np.max(values, axis=axes, keepdims=True)
        top = np.where(np.isfinite(top), top, 0.0)
        with np.errstate(divide="ignore"):      # a slice of -inf only (outside a mapping constraint)
            values = np.log(np.sum(np.exp(values - top), axis=axes, keepdims=True)) + top
        values = np.squeeze(values, axis=axes)
    rest = tuple(a for a in attrs if a in keep)
    return np.transpose(values, [rest.index(a) for a in keep])


def clique_marginals(sizes: dict[str, int], factors, cliques: list[Clique]) -> dict[Clique, np.ndarray]:
    """Probabilities over each node of a junction tree of the model (sum-product message
    passing in log space, numpy): the model's distribution is exp(sum of log-potentials)."""
    import networkx as nx

    nodes = list(cliques)
    logp = {n: np.zeros([sizes[a] for a in n]) for n in nodes}
    for attrs, values in factors:
        host = next(n for n in nodes if set(attrs) <= set(n))
        logp[host] = logp[host] + _align(attrs, values, host)
    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from((a, b) for a, b in itertools.combinations(nodes, 2) if set(a) & set(b))
    tree = nx.maximum_spanning_tree(nx.Graph([(a, b, {"weight": len(set(a) & set(b))})
                                              for a, b in graph.edges]) if graph.edges else graph)
    tree.add_nodes_from(nodes)
    messages: dict[tuple[Clique, Clique], np.ndarray] = {}

    def send(u, v):
        sep = tuple(a for a in v if a in u)
        total = logp[u].copy()
        for w in tree.neighbors(u):
            if w != v:
                total = total + _align(tuple(a for a in u if a in w), messages[(w, u)], u)
        messages[(u, v)] = _logsumexp_to(u, total, sep)

    for component in nx.connected_components(tree):
        root = next(iter(component))
        order = list(nx.dfs_preorder_nodes(tree, root))
        parent = {root: None}
        for u, v in nx.dfs_edges(tree, root):
            parent[v] = u
        for u in reversed(order):           # leaves to the root
            if parent[u] is not None:
                send(u, parent[u])
        for u in order:                     # the root to the leaves
            for w in tree.neighbors(u):
                if w != parent[u]:
                    send(u, w)
    out = {}
    for n in nodes:
        belief = logp[n].copy()
        for w in tree.neighbors(n):
            belief = belief + _align(tuple(a for a in n if a in w), messages[(w, n)], n)
        belief = np.exp(belief - belief.max())
        out[n] = belief / belief.sum()
    return out


def sample_rows(model: tuple[dict[str, int], list], rows: int, rng: np.random.Generator,
                method: str = "round", given: Sequence[tuple] = ()) -> dict[str, np.ndarray]:
    """`rows` records drawn from the model, one attribute at a time in a perfect elimination
    order of its junction tree, each from its distribution given the attributes drawn before it
    that share a clique with it (they lie in one clique of the junction tree).

    method "round": within each group of rows that share those attributes, the counts of each
    value are the group's expected counts, rounded at random (the fractions decide which values
    get one more), and shuffled over the group's rows: less sampling noise than i.i.d. draws.
    "sample": i.i.d. draws.

    ``given``: functional dependencies (determinants, dependent, free codes) the rows must meet
    (hard denial constraints): the model is conditioned on them before anything is drawn (see
    ``dependency_factors``), so that the rows meet them by construction and keep the model's
    distribution given them, instead of being overwritten afterwards."""
    mbi = _mbi()
    sizes, factors = model
    attrs = list(sizes)
    domain = mbi.Domain(attrs, [sizes[a] for a in attrs])
    jtree, elimination = mbi.junction_tree.make_junction_tree(domain, [a for a, _ in factors])
    nodes = [tuple(n) for n in jtree.nodes]
    probs = clique_marginals(sizes, factors, nodes)
    hard = dependency_factors(sizes, probs, given)
    if hard:
        conditioned = clique_marginals(sizes, list(factors) + hard, nodes)
        if all(np.isfinite(p).all() for p in conditioned.values()):
            probs = conditioned             # else no row meets them all: the repair alone keeps them
    data: dict[str, np.ndarray] = {}
    for col in list(elimination)[::-1] + [a for a in attrs if a not in elimination]:
        near = set().union(*[set(n) for n in nodes if col in n]) - {col}
        parents = tuple(a for a in attrs if a in data and a in near)
        host = next((n for n in nodes if set(parents) | {col} <= set(n)), None)
        if host is None:                     # not a perfect elimination order: cannot happen
            raise RuntimeError(f"no junction-tree clique holds {parents + (col,)}")
        joint = _sum_to(host, probs[host], parents + (col,))
        k = sizes[col]
        if parents:
            groups = np.ravel_multi_index([data[a] for a in parents], [sizes[a] for a in parents])
            table = joint.reshape(-1, k)
        else:
            groups = np.zeros(rows, dtype=np.int64)
            table = joint.reshape(1, k)
        cond = table / np.where(table.sum(axis=1, keepdims=True) > 0, table.sum(axis=1, keepdims=True), 1.0)
        empty = cond.sum(axis=1) == 0
        cond[empty] = 1.0 / k                # a combination the model gives no mass: uniform
        data[col] = _draw(groups, cond, rng, method)
    return {a: data[a].astype(np.int64) for a in attrs}


def dependency_factors(sizes: dict[str, int], probs: dict[Clique, np.ndarray],
                       given: Sequence[tuple]) -> list[tuple[Clique, np.ndarray]]:
    """Hard factors (log-potential 0 or -inf) that make each dependency X -> Y hold on the
    model's codes: each combination x of the determinants keeps one value of Y, the one the
    model gives most mass with x, f(x) = argmax_y P(x, y) (post-processing of the model).
    Conditioning the model on y = f(x) for every dependency at once (the factors join the
    model's junction tree: X and Y lie in one of its cliques, a measured marginal) keeps the
    model's distribution given the constraints: several dependencies on one column (zip ->
    state, area code -> state) draw only combinations where they agree, where overwriting
    one after the other made them pull the column different ways.  A dependency whose
    columns no clique of the model holds is left to the repair.  ``free``: attribute -> a code
    that never breaks a dependency (NULL): combinations with a free determinant, and the free
    value of the dependent, stay allowed."""
    out = []
    for determinants, dependent, free in given:
        clique = tuple(determinants) + (dependent,)
        if len(set(clique)) != len(clique) or not all(a in sizes for a in clique):
            continue
        host = next((n for n in probs if set(clique) <= set(n)), None)
        if host is None:
            continue
        joint = _sum_to(host, probs[host], clique)
        k = sizes[dependent]
        table = joint.reshape(-1, k)
        keep = np.zeros_like(table, dtype=bool)
        keep[np.arange(table.shape[0]), np.argmax(table, axis=1)] = True
        keep[table.sum(axis=1) <= 0] = True            # combinations the model never draws
        keep = keep.reshape(joint.shape)
        for axis, a in enumerate(determinants):         # a NULL determinant: any value
            if a in free:
                np.moveaxis(keep, axis, 0)[free[a]] = True
        if dependent in free:                           # NULL never breaks it
            keep[..., free[dependent]] = True
        with np.errstate(divide="ignore"):
            out.append((clique, np.log(keep.astype(np.float64))))
    return out


def _sum_to(attrs: Clique, values: np.ndarray, keep: Clique) -> np.ndarray:
    axes = tuple(i for i, a in enumerate(attrs) if a not in keep)
    summed = values.sum(axis=axes) if axes else values
    rest = tuple(a for a in attrs if a in keep)
    return np.transpose(summed, [rest.index(a) for a in keep])


def _draw(groups: np.ndarray, cond: np.ndarray, rng: np.random.Generator, method: str) -> np.ndarray:
    """One value per row from cond[group of the row]."""
    n, k = groups.size, cond.shape[1]
    if method == "sample":
        cdf = np.cumsum(cond, axis=1)
        u = rng.random(n) * cdf[groups, -1]
        return np.minimum((u[:, None] >= cdf[groups]).sum(axis=1), k - 1)
    if method != "round":
        raise ValueError(f"unknown sampler {method!r}")
    # every group at once: expected counts, rounded by systematic sampling (one uniform per
    # group: value j gets one more with probability equal to its fraction, and the group's
    # total comes out exact), then the values are dealt to the group's rows in random order
    present, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    expected = cond[present] * sizes[:, None]
    floor = np.floor(expected)
    frac = np.clip(expected - floor, 0.0, None)
    # the fractions of a group add up to a whole number (its size minus the floors)
    short = np.rint(sizes - floor.sum(axis=1))
    scale = np.where(frac.sum(axis=1) > 0, short / np.where(frac.sum(axis=1) > 0, frac.sum(axis=1), 1.0), 0.0)
    cum = np.cumsum(frac * scale[:, None], axis=1)
    u = rng.random(present.size)[:, None]
    ups = np.floor(cum + u) - np.floor(np.concatenate([np.zeros((present.size, 1)), cum[:, :-1]], axis=1) + u)
    counts = (floor + ups).astype(np.int64)
    # rounding error can leave a group one off: the most likely value takes it
    diff = sizes - counts.sum(axis=1)
    counts[np.arange(present.size), np.argmax(cond[present], axis=1)] += diff
    values = np.repeat(np.tile(np.arange(k), present.size), counts.ravel())
    order = np.lexsort((rng.random(n), inverse))       # rows by group, shuffled within it
    out = np.empty(n, dtype=np.int64)
    out[order] = values
    return out


TICK_SECONDS = 0.1


def interruptible(work: Callable[[], object], tick: Callable[[], None]):
    """``work()`` in a helper thread, with ``tick()`` called from this thread every
    TICK_SECONDS until it is done.

    PL/Python sees a cancel, a statement timeout or a shutdown only when it calls into the
    server (``tick`` is db.check_interrupts, which does), and JAX's compiling and mbi's
    sampling are single calls of many seconds: run there, they would hold the executor for
    all that time.  In the thread they release this one (JAX and numpy give up the GIL in
    their long C++ loops, mostly), so a terminated executor exits at the next tick; the
    helper thread dies with the process.  ``work`` must not call the server."""
    box: dict = {}

    def target():
        try:
            box["value"] = work()
        except BaseException as e:      # handed to the caller's thread
            box["error"] = e

    helper = threading.Thread(target=target, name="pg_dp synthesis", daemon=True)
    helper.start()
    while helper.is_alive():
        helper.join(TICK_SECONDS)
        tick()
    if "error" in box:
        raise box["error"]
    return box["value"]


def fit(plan: Plan, iters: int = 1000, tick: Callable[[], None] = lambda: None, total: float | None = None):
    """An mbi graphical model fitted to the plan's noisy marginals (over compressed codes).

    A coarse attribute measured (a large column's bins) is an attribute of the model too,
    tied to its column by mbi's mapping constraint (a functional dependency, -inf
    potentials outside it): its pairs cost no clique over the column's fine codes."""
    mbi = _mbi()
    sizes = {a: int(plan.compress[a].max()) + 1 for a in plan.domain}
    used = sorted({a for m in plan.two_way for a in m.clique if a.endswith(COARSE)})
    sizes.update({a: int(plan.coarse[base_name(a)].max()) + 1 for a in used})
    domain = mbi.Domain(list(sizes), [sizes[a] for a in sizes])
    orig = mbi.Domain(list(plan.domain), [plan.domain[a] for a in plan.domain])
    constraints = [mbi.Constraint(mbi.Domain([base_name(a), a], [sizes[base_name(a)], sizes[a]]),
                                  mapping=np.asarray(plan.coarse[base_name(a)])) for a in used]
    measurements = []
    for m in plan.one_way + plan.two_way:
        lm = mbi.LinearMeasurement(m.values.ravel(), m.clique, stddev=m.stddev)
        measurements.append(lm if m.compressed else lm.compress({a: plan.compress[a] for a in m.clique}, orig))
    estimator = mbi.estimation.MirrorDescent()
    known = plan.total if total is None else total
    model = interruptible(lambda: estimator.estimate(domain, measurements, known_total=known, iters=iters,
                                                     constraints=constraints), tick)
    _release_compiler_memory()
    return model


def _release_compiler_memory():
    """XLA leaves ~1 GB of freed compiler memory in the heap after a fit; hand it back to
    the system (glibc malloc_trim) so that sampling and writing start from ~0.5 GB."""
    import ctypes
    import gc

    import jax

    jax.clear_caches()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def sample(model, plan: Plan, rows: int, rng: np.random.Generator,
           tick: Callable[[], None] = lambda: None, method: str = "round",
           given: Sequence[tuple[Clique, str]] = ()) -> dict[str, np.ndarray]:
    """`rows` synthetic records over the ORIGINAL codes (``given``: dependencies the rows are
    drawn conditioned on, see ``sample_rows``).

    A compressed code that stands for several original codes is expanded in
    proportion to their noisy 1-way counts (post-processing of noisy data).
    """
    hard = [(tuple(d.determinants), d.dependent,
             {a: int(plan.compress[a][c]) for a, c in d.nulls.items() if a in plan.compress and c is not None})
            for d in given]
    data = generate(model, rows, seed=int(rng.integers(2**31)), tick=tick, method=method, given=hard)
    out = {}
    for m in plan.one_way:
        a = m.clique[0]
        mapping = plan.compress[a]
        codes = np.asarray(data[a], dtype=np.int64)
        result = np.empty(codes.size, dtype=np.int64)
        for c in range(int(mapping.max()) + 1):
            members = np.flatnonzero(mapping == c)
            where = codes == c
            n = int(where.sum())
            if not n:
                continue
            if members.size == 1:
                result[where] = members[0]
            else:
                w = np.clip(m.values[members], 0, None) + 1e-9
                result[where] = rng.choice(members, size=n, p=w / w.sum())
        out[a] = result
    return out


def fit_iterations(plan: Plan) -> int:
    """Mirror descent steps: on Adult, 1,000 and 3,000 give the same fidelity (0.026 avg 2-way TVD)."""
    return 1000
