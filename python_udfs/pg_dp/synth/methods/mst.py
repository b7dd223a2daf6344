"""Select - measure - generate (the MST recipe of McKenna, Miklau & Sheldon, 2021, extended).

1. Measure every 1-way marginal with Gaussian noise (20% of rho, shared in proportion
   to (declared codes) ** 2/3: a column of 85 codes gets more than one of 2).
2. Compress each attribute: values whose noisy count is below 3 sigma are merged
   into one (a post-processing of the noisy 1-ways), so sparse tails cost no noise.
3. Select a maximum spanning tree over the attributes, one edge at a time with
   the exponential mechanism; an edge's score is how badly the independent model
   built from the noisy 1-ways misses its true 2-way marginal (L1), less the L1 error
   the marginal's own noise would bring (AIM's penalty).  Edges the caller requires
   (the attributes of denial constraints) are part of the tree from the start and
   cost nothing to select.  Then select 1.5 d more pairs the same way (a tree alone
   misses too much), scored against the distribution the measured tree implies,
   keeping the model's cliques small.  A pair of a large column (more than 16 codes
   left) is also a candidate over 8 coarse bins of that column (mass-balanced groups
   of adjacent codes): far fewer cells, so far less noise; each pair is taken once,
   fine or coarse.  All selections share 10% of rho.
4. Measure the selected and required marginals (the other 70%; what the clique cap
   leaves unused goes to the pairs chosen, so the whole rho is spent).
5. Fit a graphical model to all noisy marginals with mbi (a coarse column is an
   attribute of its own, tied to its column by a mapping constraint), and sample
   rows from it in numpy (randomized rounding within groups).

Options (off by default, measured in bench/RESULTS.md): 3-way marginals scored
against the tree, rounds of their own for coarse pairs, multi-way rho shared by cells.

The exact counts come from a `measure` callback (SQL GROUP BY inside the database,
or numpy in the unit tests): this module never sees a row.
"""

from __future__ import annotations

from dataclasses import dataclass
import itertools
import math
from typing import Callable, Sequence

import numpy as np

from ...dp import mechanisms
from . import pgm
from .base import COARSE, Clique, Measure, MAX_MEASURE_CELLS, NoisyMarginal, Plan, base_name, coarse_name

def _noisy(counts: np.ndarray, scale: float) -> np.ndarray:
    return mechanisms.gaussian_counts(counts, scale)


def one_way_shares(domain: dict[str, int], power: float) -> dict[str, float]:
    """Each attribute's share of the 1-ways' rho: in proportion to (declared codes) ** power.
    The L1 error of a marginal of k cells at noise sd sigma is about k sigma, so the total
    error for a given rho is least at power 2/3 (sigma ~ k ** -1/3); 0 is an equal split."""
    weights = {a: float(k) ** power for a, k in domain.items()}
    total = sum(weights.values())
    return {a: w / total for a, w in weights.items()}


def compression_map(noisy: np.ndarray, threshold: float) -> np.ndarray:
    """original code -> compressed code: codes at or above the threshold keep a code each, the rest share one."""
    keep = noisy >= threshold
    mapping = np.empty(noisy.size, dtype=np.int64)
    mapping[keep] = np.arange(int(keep.sum()))
    if (~keep).any():
        mapping[~keep] = int(keep.sum())
    return mapping


def _compress_counts(counts: np.ndarray, clique: Clique, compress: dict[str, np.ndarray]) -> np.ndarray:
    """Exact counts over original codes -> counts over compressed codes (sums over merged codes)."""
    out = counts
    for axis, attr in enumerate(clique):
        m = compress[attr]
        size = int(m.max()) + 1
        moved = np.moveaxis(out, axis, 0)
        summed = np.zeros((size,) + moved.shape[1:], dtype=moved.dtype)
        np.add.at(summed, m, moved)
        out = np.moveaxis(summed, 0, axis)
    return out


def _normalized_1way(m: NoisyMarginal, compress: np.ndarray) -> np.ndarray:
    size = int(compress.max()) + 1
    p = np.zeros(size)
    np.add.at(p, compress, np.clip(m.values, 0, None))
    s = p.sum()
    return p / s if s > 0 else np.full(size, 1.0 / size)


class _Components:
    def __init__(self, attrs):
        self.parent = {a: a for a in attrs}

    def find(self, a):
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a, b) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[ra] = rb
        return True


SPLIT = (0.2, 0.1, 0.7)


def split_rho(rho: float, selection_rounds: int, split=SPLIT) -> tuple[float, float, float]:
    """rho for the 1-ways, the selection and the multi-way marginals (no selection, no selection share)."""
    one, sel, multi = split
    if selection_rounds == 0:
        sel = 0.0
    total = one + sel + multi
    return rho * one / total, rho * sel / total, rho * multi / total


@dataclass
class Options:
    """How a run spends and selects (the defaults are what bench/RESULTS.md measured best)."""
    split: tuple = SPLIT
    extra: int | None = None        # pairs beyond the tree (None: 1.5 d with coarse_pool, else d; d attributes)
    penalty: float = 1.0            # times each candidate's expected noise error, taken from its score (AIM)
    adaptive: bool = True           # score the extra pairs against the tree's model, not independence
    sampler: str = "round"          # "round" (randomized rounding per group) or "sample" (i.i.d. draws)
    triples: int = 0                # 3-way marginals measured after the pairs (scored against the tree)
    triple_cells: int = 1000        # largest compressed 3-way marginal that may be chosen
    coarse: int = 0                 # rounds of their own for large pairs over coarse bins (mass-balanced groups)
    coarse_pool: bool = True        # large pairs over coarse bins compete with the fine ones for the extra rounds
    coarse_bins: int = 8            # bins of a large column in a coarse pair
    coarse_min_size: int = 16       # columns with more compressed codes than this are large
    coarse_min_cells: int = 300     # only pairs with more compressed cells than this are coarsened
    compress_sigmas: float = 3.0    # codes whose noisy count is under this many sigma are merged
    one_way_power: float = 2 / 3    # 1-way rho in proportion to (codes) ** this (one_way_shares)
    cells_power: float = 0.0        # multi-way rho in proportion to (compressed cells) ** this


OPTIONS = Options()


def run(domain: dict[str, int], measure: Measure, rho: float, sensitivity: int = 1,
        required: Sequence[Clique] = (), progress: Callable[[str], None] = lambda s: None,
        split=None, extra: int | None = None, options: Options | None = None) -> Plan:
    """Measure and select; the returned plan holds every noisy marginal (nothing exact)."""
    opt = options or OPTIONS
    split = opt.split if split is None else split
    extra = opt.extra if extra is None else extra
    attrs = list(domain)
    if extra is None:
        # 1.5 d pairs beyond the tree.  Fine pairs only: on Adult (raw codes, eps 1) 7, 14, 21 and
        # 28 gave avg 2-way TVD 0.041, 0.037, 0.037, 0.037; with large pairs over coarse bins in
        # the pool (cheap: 8 x 16 cells), 14 and 21 gave 0.0348 and 0.0335 (bench/RESULTS.md)
        extra = round(1.5 * len(attrs)) if opt.coarse_pool else len(attrs)
    plan = Plan(dict(domain), rho, int(sensitivity))
    required = _model_fits([tuple(c) for c in required if len(c) >= 2], domain)
    plan.required = required

    comps = _Components(attrs)
    for c in required:
        for a, b in zip(c, c[1:]):
            comps.union(a, b)
    rounds = len({comps.find(a) for a in attrs}) - 1
    # extra pairs beyond the tree: only when there is a tree to select, and no more than are left
    pairs_left = len(attrs) * (len(attrs) - 1) // 2 - rounds - len({frozenset(p) for c in required
                                                                     for p in itertools.combinations(c, 2)})
    extra = max(0, min(extra, pairs_left)) if rounds else 0
    triples = max(0, int(opt.triples)) if rounds else 0
    coarse = max(0, int(opt.coarse)) if rounds else 0
    rho1, rho_sel, rho2 = split_rho(rho, rounds + extra + triples + coarse, split)
    if not required and rounds == 0:
        rho1 = rho   # a single attribute: its 1-way is all there is

    # 1. one-way marginals
    exact_1 = measure([(a,) for a in attrs])
    shares = one_way_shares(domain, opt.one_way_power)
    for a, counts in zip(attrs, exact_1):
        sigma1 = mechanisms.gaussian_scale(plan.sensitivity, rho1 * shares[a])
        plan.one_way.append(NoisyMarginal((a,), _noisy(counts, sigma1), sigma1))
    plan.measurements += len(attrs)
    plan.total = max(1.0, float(np.mean([m.values.sum() for m in plan.one_way])))
    progress(f"measured {len(attrs)} one-way marginals (noise sd {_sd_range(plan.one_way)})")

    # 2. compression
    for m in plan.one_way:
        plan.compress[m.clique[0]] = compression_map(m.values, opt.compress_sigmas * m.stddev)

    sizes = {a: int(plan.compress[a].max()) + 1 for a in attrs}
    required = _fitting(required, sizes)
    plan.required = required

    # the noise of every multi-way marginal is known before any is selected
    n_multi = len(dict.fromkeys(required)) + (rounds + extra + triples + coarse if rounds else 0)
    sigma2 = mechanisms.gaussian_scale(plan.sensitivity, rho2 / n_multi) if n_multi else 0.0

    # 3. selection
    if rounds:
        p1 = {m.clique[0]: _normalized_1way(m, plan.compress[m.clique[0]]) for m in plan.one_way}
        candidates = [(a, b) for a, b in itertools.combinations(attrs, 2)
                      if sizes[a] * sizes[b] <= MAX_MEASURE_CELLS]
        exact_2 = dict(zip(candidates, measure(candidates, plan.compress)))
        scores = {}
        for (a, b), counts in exact_2.items():
            est = np.outer(p1[a], p1[b]) * plan.total
            scores[(a, b)] = _score(counts, est, sigma2, opt.penalty)
        rho_round = rho_sel / (rounds + extra + triples + coarse)
        for _ in range(rounds):
            options = [e for e in candidates if comps.find(e[0]) != comps.find(e[1])]
            if not options:         # the rest only pairs with marginals too large to measure
                break
            pick = options[mechanisms.exponential_argmax([scores[e] for e in options], plan.sensitivity,
                                                         rho_round)]
            comps.union(*pick)
            plan.selected.append(pick)
            plan.selection_rho += rho_round
        progress(f"selected {len(plan.selected)} pairs of columns to measure")

    # 4. the selected and required marginals
    cliques = list(dict.fromkeys(plan.selected + required))
    if cliques:
        _measure_into(plan, cliques, measure(cliques, plan.compress),
                      rho2 * len(cliques) / n_multi, opt.cells_power)
        progress(f"measured {len(cliques)} multi-way marginals (noise sd {_sd_range(plan.two_way)})")

    # 5. beyond the tree: more of the most dependent pairs (a tree alone misses
    #    too much: on Adult at epsilon 1, avg 2-way TVD 0.035 with the tree, 0.026
    #    with 1.5 d more pairs), as long as the model's cliques stay small
    if rounds and (extra or triples or coarse):
        options = [e for e in candidates if e not in plan.selected and e[::-1] not in plan.selected]
        # how badly the tree just measured (a post-processing of its noisy marginals) misses
        # each pair: what is left to learn, not the dependence the tree carries
        tree = _TreeModel(plan, sizes)
        if opt.adaptive:
            scores = {e: _score(exact_2[e], tree.pair(*e) * plan.total, sigma2, opt.penalty) for e in options}
        # large pairs over coarse bins: where a pair has too many cells to be measured cell by
        # cell (age x hours-per-week: 1,500 cells, each noisier than its count), its coarse shape
        # (the young work fewer hours) still stands above the noise.  A large column's bins are
        # an attribute of the model of their own, tied to the column by a mapping constraint,
        # so the model stays over the fine codes and its cliques stay small
        rough: dict[Clique, np.ndarray] = {}
        if coarse or opt.coarse_pool:
            p1c = {m.clique[0]: _normalized_1way(m, plan.compress[m.clique[0]]) for m in plan.one_way}
            plan.coarse = {a: coarse_map(p1c[a], opt.coarse_bins) for a in attrs
                           if sizes[a] > max(opt.coarse_bins, opt.coarse_min_size)}
            for e in options:
                if sizes[e[0]] * sizes[e[1]] <= opt.coarse_min_cells or not set(e) & set(plan.coarse):
                    continue
                clique = tuple(coarse_name(a) if a in plan.coarse else a for a in e)
                rough[clique] = _coarsen(exact_2[e], e, plan.coarse)
                scores[clique] = _score(rough[clique], _coarsen(tree.pair(*e) * plan.total, e, plan.coarse),
                                        sigma2, opt.penalty)
        model_sizes = {**sizes, **{coarse_name(a): int(m.max()) + 1 for a, m in plan.coarse.items()}}
        pool = options + (list(rough) if opt.coarse_pool else [])
        n_before = len(plan.selected)
        more = _select_some(plan, pool, scores, extra, required, model_sizes, rho_round)
        plan.selected.extend(more)
        # 6. a few 3-way marginals of small attributes, where the tree misses most
        chosen: list[Clique] = []
        if triples:
            three = [t for t in itertools.combinations(attrs, 3)
                     if math.prod(sizes[a] for a in t) <= opt.triple_cells]
            exact_3 = dict(zip(three, measure(three, plan.compress))) if three else {}
            score3 = {t: _score(exact_3[t], tree.triple(*t) * plan.total, sigma2, opt.penalty) for t in three}
            chosen = _select_some(plan, three, score3, triples, required, model_sizes, rho_round)
            plan.selected.extend(chosen)
        # 7. rounds of their own for coarse pairs (of the pairs not taken above)
        if coarse:
            taken = {_base_set(c) for c in plan.selected}
            left = [c for c in rough if _base_set(c) not in taken]
            plan.selected.extend(_select_some(plan, left, scores, coarse, required, model_sizes, rho_round))
        picked = plan.selected[n_before:]
        if picked:
            # what is left of rho goes to the marginals chosen: the shares of those (and their
            # selection rounds) that the clique cap left out too, so that the whole budget is
            # spent whatever the cap allowed (the count is known before any is measured)
            left_rho = rho - rho1 - plan.selection_rho - rho2 * len(cliques) / n_multi
            fine = [c for c in picked if c not in rough]
            exact = dict(zip(fine, measure(fine, plan.compress))) if fine else {}
            exact.update({c: rough[c] for c in picked if c in rough})
            _measure_into(plan, picked, [exact[c] for c in picked], left_rho, opt.cells_power)
        n_rough = sum(c in rough for c in picked)
        progress(f"measured {len(picked) - len(chosen) - n_rough} more of the most dependent pairs, "
                 f"{len(chosen)} triples and {n_rough} pairs over coarse bins")
    return plan


def _select_some(plan: Plan, pool: list[Clique], scores: dict, k: int, required: list[Clique],
                 sizes: dict[str, int], rho_round: float) -> list[Clique]:
    """Up to k cliques of the pool, one exponential-mechanism round (rho_round) each, among
    those that keep the junction tree within pgm.MAX_CLIQUE_CELLS with what is chosen so far."""
    pool, picked = list(pool), []
    for _ in range(k):
        pool = [e for e in pool if pgm.max_clique_cells(sizes, _linked(plan.selected + required + picked + [e]))
                <= pgm.MAX_CLIQUE_CELLS]
        if not pool:
            break
        picked.append(pool.pop(mechanisms.exponential_argmax([scores[e] for e in pool], plan.sensitivity,
                                                             rho_round)))
        plan.selection_rho += rho_round
        pool = [e for e in pool if _base_set(e) != _base_set(picked[-1])]   # a pair once, fine or coarse
    return picked



def _base_set(clique: Clique) -> frozenset:
    return frozenset(base_name(a) for a in clique)


def _linked(cliques: list[Clique]) -> list[Clique]:
    """The cliques with, for each coarse attribute among them, the clique tying it to its column."""
    links = {(base_name(a), a) for c in cliques for a in c if a.endswith(COARSE)}
    return list(cliques) + sorted(links)


def _coarsen(counts: np.ndarray, clique: Clique, maps: dict[str, np.ndarray]) -> np.ndarray:
    """Counts over compressed codes -> counts over the coarse bins of the attributes in maps."""
    out = counts
    for axis, attr in enumerate(clique):
        if attr in maps:
            moved = np.moveaxis(out, axis, 0)
            summed = np.zeros((int(maps[attr].max()) + 1,) + moved.shape[1:], dtype=moved.dtype)
            np.add.at(summed, maps[attr], moved)
            out = np.moveaxis(summed, 0, axis)
    return out


def coarse_map(p: np.ndarray, bins: int) -> np.ndarray:
    """code -> bin: adjacent codes grouped into at most `bins` bins of about equal mass
    (p: the noisy 1-way shares, a post-processing); a code with a large share gets a bin of its own."""
    if p.size <= bins:
        return np.arange(p.size)
    before = np.concatenate([[0.0], np.cumsum(p)[:-1]]) / max(p.sum(), 1e-12)
    groups = np.minimum(bins - 1, np.floor(before * bins)).astype(np.int64)
    _, mapping = np.unique(groups, return_inverse=True)
    return mapping.astype(np.int64)


def _score(exact: np.ndarray, estimate: np.ndarray, sigma: float, penalty: float) -> float:
    """L1 distance of a marginal's exact counts to an estimate made from released data only
    (sensitivity 1: one row moves one cell by one); with the penalty, minus the L1 error the
    marginal's own noise would bring (sqrt(2/pi) sigma per cell, times `penalty`), a public
    number, as AIM does:
    a large marginal is worth measuring only when its dependence stands above its noise."""
    score = float(np.abs(exact.astype(np.float64) - estimate).sum())
    return score - float(penalty) * math.sqrt(2 / math.pi) * sigma * exact.size


class _TreeModel:
    """The distribution a tree (forest) of noisy 2-way marginals implies, over compressed codes:
    P(x, y) along the path from x to y, by products of conditionals.  Only released
    marginals enter (post-processing)."""

    def __init__(self, plan: Plan, sizes: dict[str, int]):
        self.joint: dict[tuple[str, str], np.ndarray] = {}
        self.adj: dict[str, list[str]] = {a: [] for a in sizes}
        self.p1 = {m.clique[0]: _normalized_1way(m, plan.compress[m.clique[0]]) for m in plan.one_way}
        for m in plan.two_way:
            if len(m.clique) != 2:
                continue
            a, b = m.clique
            p = np.clip(m.values, 0, None) + 1e-9
            p = p / p.sum()
            self.joint[(a, b)], self.joint[(b, a)] = p, p.T
            self.adj[a].append(b)
            self.adj[b].append(a)

    def _path(self, x: str, y: str) -> list[str] | None:
        prev = {x: None}
        todo = [x]
        while todo:
            u = todo.pop()
            for v in self.adj[u]:
                if v not in prev:
                    prev[v] = u
                    todo.append(v)
        if y not in prev:
            return None
        path = [y]
        while path[-1] != x:
            path.append(prev[path[-1]])
        return path[::-1]

    def triple(self, x: str, y: str, z: str) -> np.ndarray:
        """P(x, y, z) in the tree: sum over the node m where the paths between them meet of
        P(m) P(x | m) P(y | m) P(z | m) (x, y and z are independent given m)."""
        paths = [self._path(x, y), self._path(x, z), self._path(y, z)]
        if any(p is None for p in paths):
            pxy = self.pair(x, y) if paths[0] is not None else np.outer(self.p1[x], self.p1[y])
            return pxy[:, :, None] * self.p1[z][None, None, :]
        meet = next(m for m in paths[0] if m in paths[1] and m in paths[2])
        conds = []
        for v in (x, y, z):
            if v == meet:
                conds.append(None)
                continue
            j = self.pair(meet, v)
            conds.append(j / np.where(j.sum(axis=1, keepdims=True) > 0, j.sum(axis=1, keepdims=True), 1.0))
        pm = (self.pair(meet, x if x != meet else y)).sum(axis=1)
        k = pm.size
        mats = [np.eye(k) if c is None else c for c in conds]
        return np.einsum("m,ma,mb,mc->abc", pm, *mats)

    def pair(self, x: str, y: str) -> np.ndarray:
        path = self._path(x, y)
        if path is None:
            return np.outer(self.p1[x], self.p1[y])
        out = self.joint[(path[0], path[1])]
        for u, v in zip(path[1:], path[2:]):
            j = self.joint[(u, v)]
            cond = j / j.sum(axis=1, keepdims=True)          # P(v | u)
            out = out @ cond
        return out


def _measure_into(plan: Plan, cliques: list[Clique], exact: list[np.ndarray], rho: float, power: float) -> None:
    """Noisy marginals over the compressed codes: one noise draw per compressed cell (noise on
    every original cell, summed over merged codes, would add up).  They share rho in
    proportion to (cells) ** power (see one_way_shares; 0: equal shares)."""
    weights = [float(counts.size) ** power for counts in exact]
    for c, counts, w in zip(cliques, exact, weights):
        sigma = mechanisms.gaussian_scale(plan.sensitivity, rho * w / sum(weights))
        plan.two_way.append(NoisyMarginal(c, _noisy(counts, sigma), sigma, compressed=True))
    plan.measurements += len(cliques)


def _sd_range(marginals: list[NoisyMarginal]) -> str:
    low, high = min(m.stddev for m in marginals), max(m.stddev for m in marginals)
    return f"{low:.3g}" if math.isclose(low, high) else f"{low:.3g}-{high:.3g}"


def _model_fits(required: Sequence[Clique], sizes: dict[str, int]) -> list[Clique]:
    """The required cliques (cut to pairs where too large, see ``_fitting``) that the model can
    hold together: added smallest first while the junction tree's largest clique stays within
    MAX_MEASURE_CELLS (over the declared domains, before any compression, so that the number
    of selection rounds, and the split of rho, are known before anything is measured).  Many
    overlapping constraints (Kamino's 128 mined ones on Adult) would otherwise make one clique
    of every column; the ones left out are still met by the repair."""
    kept: list[Clique] = []
    for c in sorted(_fitting(required, sizes), key=lambda c: math.prod(sizes[a] for a in c)):
        if pgm.max_clique_cells(sizes, kept + [c]) <= MAX_MEASURE_CELLS:
            kept.append(c)
    return kept


def _fitting(required: Sequence[Clique], sizes: dict[str, int]) -> list[Clique]:
    """The required cliques whose compressed marginal fits MAX_MEASURE_CELLS; a larger one is
    replaced by the pairs of its attributes that fit (a dependency whose determinant has tens
    of thousands of values is then kept by the repair, determinant first, not by a dense table)."""
    out: list[Clique] = []
    for c in required:
        if math.prod(sizes[a] for a in c) <= MAX_MEASURE_CELLS:
            out.append(tuple(c))
        else:
            out += [p for p in itertools.combinations(c, 2) if sizes[p[0]] * sizes[p[1]] <= MAX_MEASURE_CELLS]
    return list(dict.fromkeys(out))



class MST:
    """The MST recipe behind pg_dp.synth.methods.base.Method (see the module docstring)."""
    name = "mst"
    description = "MST (select-measure-generate), mbi graphical model"
    mechanism = "MST (Gaussian marginals, exponential selection)"

    def __init__(self, options: Options | None = None):
        self.options = options or OPTIONS

    def select_and_measure(self, domain, measure, rho, sensitivity, required=(), progress=lambda s: None) -> Plan:
        return run(domain, measure, rho, sensitivity, required=required, progress=progress, options=self.options)

    def fit(self, plan: Plan, total: float | None = None, tick=lambda: None):
        return pgm.fit(plan, iters=pgm.fit_iterations(plan), tick=tick, total=total)

    def sample(self, model, plan: Plan, rows: int, rng: np.random.Generator, tick=lambda: None, given=()):
        return pgm.sample(model, plan, rows, rng, tick=tick, method=self.options.sampler, given=given)

    def one_way_noise(self, sizes: dict[str, int], rho: float, sensitivity: int) -> tuple[float, int]:
        """(noise sd of a 1-way cell of the largest attribute, its cells) when the 1-ways get
        their share of rho (all of it for a single attribute)."""
        if not sizes:
            return 0.0, 0
        rho1 = split_rho(rho, len(sizes) - 1, self.options.split)[0] if len(sizes) > 1 else rho
        largest = max(sizes, key=sizes.get)
        share = one_way_shares(sizes, self.options.one_way_power)[largest]
        return mechanisms.gaussian_scale(sensitivity, rho1 * share), sizes[largest]

    def preload(self, tick=lambda: None) -> None:
        pgm.preload(tick)
