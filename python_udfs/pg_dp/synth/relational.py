"""Children under their parents: a child table generated under the synthetic rows of its parent.

The method (docs/synthesis.md, "Synthesizing a schema"), in the spirit of PrivLava (Cai et al. 2023)
and of Alimohammadi et al. 2024 (cross-table marginals over the parent-child join).
Which tables a call writes and in which order is pg_dp.synth.schema's; the budget split
and the one charge per dataset are pg_dp.synth.run's.  Functions here read a table's
TableState and return what they compute (Anchor, Fanout, Slots); the run stores it.

- a child whose foreign key lies on its privacy unit's path (invoice.customer_id ->
  customer, invoice_line.invoice_id -> invoice: a parent's children are the same person's)
  is generated under its synthetic parents:
  * fan-out: a noisy histogram (OpenDP Laplace, 20% of the child's epsilon) of the number of
    children per parent (up to the child's max_rows_per_unit, at most 128) over the parent's
    rows bounded per unit (its own tau, else its max_rows_per_unit: the sensitivity), against
    the parent attribute (or pair) that a report-noisy-max finds it depends on most, or none;
    every synthetic parent draws its number of children from it, given its own attributes,
    so heavy-tailed fan-outs stay heavy-tailed;
  * the child's marginals are measured over a uniform sample of at most tau rows per unit
    (sensitivity tau, not max_rows_per_unit), tau the median rows per unit that the noisy
    fan-outs along the path imply (post-processing);
  * dates: a child's date (timestamp) columns are modelled as offsets from its parent's first
    date (timestamp) column, which becomes a parent attribute; child date = parent date + offset;
  * child attributes: up to three parent attributes (those dates first, then the smallest
    domains) are joined to the child's rows and modelled with them (MST marginals over
    parent x child); children are drawn given their parent slot's attributes (rows drawn from
    the model fill the slots of matching parents, short ones from further draws);
  * path agreement: a child column that references what its parent's column references
    (invoice_line.customer_id next to invoice_line.invoice_id) takes the parent's value;
- other foreign keys to tables of the call draw parents uniformly (their rows may be
  other people's: conditioning on them would leak across units).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
import itertools
import math
from typing import NamedTuple

import numpy as np

from ..core import db
from ..dp import mechanisms
from . import budget, discover, keys
from . import domain as dom
from .methods.base import base_name
from .state import TableState
from .table import Target

MAX_FANOUT = 128
PARENT_ATTRIBUTES = 3
MAX_ATTRIBUTE_SIZE = 64
FANOUT_CONDITION_SIZE = 8
FANOUT_PAIR_SIZE = 4         # groups of each of two attributes the fan-out may be measured against
PARENT_SRC = "pg_dp_synth_src_parent"
SAMPLE_QUANTILE = 0.5     # tau: this quantile of rows per unit (see sample_size)
FANOUT_SELECT_SHARE = 0.2   # of the fan-out's epsilon: which parent attribute it is measured against
NONE_LEAD = 5              # noise scales the choice of no parent attribute starts ahead
MORE_ROUNDS = 3           # draws of children for parent slots left without a match
AGREEMENT_P = 1e-3        # chance that a second path's 'other' (or NULL) share without rows is kept: a few
                          # rows naming another unit where none do is an error like a share under the noise


class Anchor(NamedTuple):
    """A child date (timestamp) column computed as its parent's date plus a modelled offset."""
    child: str                  # the child's column
    parent: str                 # the parent's date column it follows
    offset: dom.Column          # pg_dp_after_i, modelled (days or seconds after the parent's date)


class Agreement(NamedTuple):
    """A child column that names what its parent's column names (a second path to the same table)."""
    column: str                 # the child's column (its link's)
    theirs: str                 # the parent's column referencing the same table
    flag: dom.Column | None     # None: takes the parent's value (the child's privacy unit: paths agree by
                                # construction); else a modelled 'same' / 'other' column (the paths may differ)


EXACT_FANOUT = 16            # children per parent measured one by one up to here, then in bins ~ x1.5


def fanout_edges(cap: int) -> np.ndarray:
    """Lower edges of the fan-out histogram's bins: 0, 1, ..., 15, then 16, 24, 32, 48, 64, 96, 128
    (each up to the next edge, the last up to cap).  Fewer cells than one per count (20 instead of
    129 up to 128): each empty cell adds noise, and a heavy tail needs its shape, not every count."""
    edges = list(range(min(cap, EXACT_FANOUT - 1) + 1))
    e = EXACT_FANOUT
    while e <= cap:
        edges.append(e)
        e = e + e // 2 if (e & (e - 1)) == 0 else 1 << e.bit_length()
    return np.array(edges, dtype=np.int64)


@dataclass
class Fanout:
    """The noisy number of children per parent (post-processed), by parent attribute group."""
    by: tuple | None            # ((parent column, groups), ...) the histogram is split by; None: one row
    hist: np.ndarray            # [group, bin] noisy counts of parents, thresholded and clipped
    cap: int
    edges: np.ndarray           # lower edge of each bin (fanout_edges)
    scale: float = 0.0          # the Laplace scale of its cells

    def row(self, group: int) -> np.ndarray:
        """The histogram a parent of this group draws from: its own row, or every group's together
        when its row is no more than clipped noise (under 3 noise scales a bin kept: parents whose
        attributes the real ones never had, a synthetic amount past the real ones)."""
        overall = self.hist.sum(axis=0)
        overall = overall if overall.sum() > 0 else np.ones_like(overall)
        if group >= self.hist.shape[0]:
            return overall
        own = self.hist[group]
        floor = 3 * self.scale * max(1, int(np.count_nonzero(overall)))
        return own if own.sum() > floor else overall

    def counts(self) -> np.ndarray:
        """Distribution of children per parent over 0..cap, each bin's mass spread evenly over its counts."""
        out = np.zeros(self.cap + 1)
        total = self.hist.sum(axis=0)
        for b, lo in enumerate(self.edges):
            hi = self.edges[b + 1] if b + 1 < len(self.edges) else self.cap + 1
            out[lo:hi] += total[b] / (hi - lo)
        return out

    def draw(self, row: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        """Children of `size` parents from one row of the histogram: a bin, then a count in it."""
        b = rng.choice(row.size, size=size, p=row / row.sum())
        hi = np.r_[self.edges[1:], self.cap + 1][b]
        return self.edges[b] + np.floor(rng.random(size) * (hi - self.edges[b])).astype(np.int64)


@dataclass
class Slots:
    """The synthetic parents, and one slot per child they get (post-processing of the fan-out)."""
    parents: np.ndarray         # for each child slot, the index of its parent
    keys: np.ndarray            # the parents' keys (text)
    attrs: list[np.ndarray]     # their codes of the child's parent attributes (TableState.cond)
    dates: dict[str, np.ndarray]    # the parent dates children's dates follow (number line, NaN = NULL)
    fanout_codes: np.ndarray    # their group of the fan-out histogram
    agreement: list[tuple[Agreement, dict]]   # second paths, and the parents' values (parent key -> value)
    columns: list[np.ndarray]   # the parents' values of each referenced column (text; the key's when it has one)


# ----------------------------------------------------------------- children under parents
def unit_column(t) -> str | None:
    """The column of a table that holds its privacy unit's value: the unit column itself, or
    the one-column foreign key of a one-step path to the unit table (TPC-H orders.o_custkey ->
    customer.c_custkey: the unit's value under another name)."""
    if t.unit is not None:
        return t.unit
    if len(t.path) == 1 and len(t.path[0]["cols"]) == 1 and list(t.path[0]["refcols"]) == [t.path_unit]:
        return t.path[0]["cols"][0]
    return None


def same_unit(child: Target, parent: Target, link) -> bool:
    """Is the parent's row the same privacy unit's as its children (the key lies on the unit's path)?

    - the child reaches the unit through this key (its recorded path starts with it), or its
      unit column is this key to the unit table (invoice.customer_id -> customer);
    - or the child holds the unit itself and names a parent that holds it too (payments.order_id
      -> orders next to payments.customer_id, orders.customer_id): the child is generated under
      that parent, its unit column takes the parent's (the two paths agree by construction), and
      the fan-out counts only children whose unit is their parent's, so that a unit still moves
      only its own parents' cells."""
    if unit_column(parent) is None:
        return False            # its rows are bounded per unit only when it holds the unit's value
    if child.path:
        return child.path[0]["conname"] == link.name
    if child.unit is None:
        return False
    return link.column == child.unit and link.refcol == parent.unit or link.column != child.unit


def _is_unit_table(t: Target) -> bool:
    return t.unit is not None and t.unit in t.keys


def choose_parent(t: Target, links: list):
    """The link the rows are generated under: a key to a table of the call on the unit's path,
    the most specific one (a parent that is not the unit table itself: payments under their
    order rather than their customer, whose value the order then gives)."""
    found = [k for k in links if k.parent is not None and same_unit(t, k.parent.t, k)]
    return next((k for k in found if not _is_unit_table(k.parent.t)), found[0] if found else None)


AGREE_SHARE = 0.02          # of a child's epsilon: does it name its parent's unit (parent_agrees)


def pure_share(st: TableState) -> Decimal:
    """The share of the table's epsilon its relational measurements take, planned before the
    charge: the fan-out, the count of its rows and the agreement check of a child, the fitted
    rows per unit of a path table without a parent.  They are pure DP (Laplace): accounted as
    epsilon, never carved out of the model's rho (an epsilon-DP measurement costs epsilon^2 / 2
    in zCDP, far more than the rho that epsilon's share of an (epsilon, delta) budget converts
    to: the ledger's rho, summed over calls, would understate them)."""
    if st.parent is not None:
        share = budget.FANOUT_SHARE + (0.0 if st.rows else TOTAL_SHARE) + (AGREE_SHARE if holds_unit_under(st) else 0.0)
    else:
        share = ROWS_SHARE if needs_rows_fit(st) else 0.0
    return Decimal(str(round(share, 6)))


def parent_join(link) -> str:
    """SQL: a child row s names the parent row p (every column of the key)."""
    return " AND ".join(f"p.{db.quote_ident(r)} = s.{db.quote_ident(c)}" for c, r in zip(link.cols, link.refcols))


def holds_unit_under(st: TableState) -> bool:
    """Is the child generated under a parent by the rule for a child holding the unit itself
    (same_unit: payments.order_id next to payments.customer_id), not by its path?"""
    return not st.t.path and st.t.unit is not None and st.parent.column != st.t.unit


def unit_parent(t: Target, links: list):
    """The link to the unit table itself (reviews.customer_id -> customers), if kept."""
    return next((k for k in links if k.parent is not None and _is_unit_table(k.parent.t)
                 and same_unit(t, k.parent.t, k)), None)


def parent_agrees(st: TableState, epsilon: float) -> bool:
    """Do most of the child's rows name their parent's unit?  One row of each unit (a uniform
    one), agreeing or not: a noisy 2-cell histogram (OpenDP Laplace, sensitivity 1: a unit is
    in one cell), then whether the agreeing cell holds more than half (post-processing).  A
    store's payments name their order's customer (5 of 16,049 do not); a review names its
    writer and someone else's sale: generated under the sale, every review whose writer is
    not the buyer was dropped from the fan-out (1 row written of 666)."""
    link, parent = st.parent, st.parent.parent
    unit, theirs = db.quote_ident(st.t.unit), db.quote_ident(unit_column(parent.t))
    on = parent_join(link)
    exact = {bool(r["a"]): int(r["n"]) for r in db.execute(
        f"SELECT a, count(*) AS n FROM (SELECT DISTINCT ON (s.{unit}) s.{unit} = p.{theirs} AS a "
        f"FROM {st.t.qualified} s JOIN {parent.t.qualified} p ON {on} WHERE s.{unit} IS NOT NULL "
        f"ORDER BY s.{unit}, random()) x WHERE a IS NOT NULL GROUP BY 1")}
    scale = mechanisms.integer_laplace_scale(1, epsilon)
    noise = mechanisms.integer_laplace_noise(scale, 2)
    agree, other = exact.get(True, 0) + noise[0], exact.get(False, 0) + noise[1]
    st.phase(f"measured how many rows name their {parent.t.name}'s {st.t.unit} (Laplace scale {scale:.3g})")
    return agree > other


def plan_agreements(t: Target, links: list, parent_link) -> list[Agreement]:
    """The child's other keys to protected tables that its parent references too (a second path
    to the same table).  The child's unit column takes its parent's value (the paths agree by
    construction); any other such key may legitimately differ (a return made by someone else
    than the buyer) and gets a modelled 'same' / 'other' column, measured with the child's
    other marginals; 'other' keeps a weight only when its noisy count stands above the noise."""
    if parent_link is None:
        return []
    out = []
    for other in links:
        if other is parent_link or other.kind not in ("synthetic parent (this call)", "synthetic parent"):
            continue
        theirs = next((k for k in parent_link.parent.links if k.ref == other.ref and len(k.cols) == 1), None)
        if theirs is None:
            continue
        flag = None
        # the unit's own column (or, on a path table, a repeated column of the unit's name that the
        # DBA declared not personal: payments.customer_id next to payments.order_id) takes the parent's
        if other.column != (t.unit or t.path_unit):
            flag = dom.Column(f"pg_dp_same_{len(out)}", "text", "text", t.column(other.column).nullable,
                              "categorical", values=["same", "other"],
                              source=f"{other.column} same as {parent_link.parent.t.name}.{theirs.column} or not")
        out.append(Agreement(other.column, theirs.column, flag))
    return out


def plan_anchors(t: Target, parent: TableState) -> list[Anchor]:
    """Before the charge, from the schema alone: each date (timestamp) column of a child is
    modelled as an offset from its parent's first date (timestamp) column, so that a line
    ships within days of its order whatever order it is attached to (TPC-H l_shipdate =
    o_orderdate + 1..121 days).  The offset gets DP bounds; the child column keeps its own
    bounds (declared, or estimated with DP), and values are clipped into them, so that no child
    date leaves the source's range.  Audit columns (Target.audit: last_update) neither follow
    nor are followed.  The offsets are added to the table's derived columns by pg_dp.synth.run;
    the child columns are not modelled."""
    anchors: list[Anchor] = []
    for c in t.columns:
        if c.kind != "numeric" or c.fam not in ("date", "timestamp") or c.name in t.keys or c.name in t.audit:
            continue
        # the parent's first date of the same type that records an event (not when its row was written)
        p = next((p for p in parent.t.columns if p.kind == "numeric" and p.fam == c.fam
                  and p.name not in parent.t.keys and p.name not in parent.t.audit), None)
        if p is None:
            continue
        date = c.fam == "date"
        offset = dom.Column(f"pg_dp_after_{len(anchors)}", "integer" if date else "double precision",
                            "integer" if date else "float", True, "numeric",
                            source=f"{'days' if date else 'seconds'} after {parent.t.name}.{p.name}")
        if c.name not in t.needs_bounds and p.name not in parent.t.needs_bounds:
            # a fallback only (DP bounds of the offset are estimated): what the declared bounds allow
            offset.lower, offset.upper = c.lower - p.upper, c.upper - p.lower
        anchors.append(Anchor(c.name, p.name, offset))
    return anchors


def useful_anchors(st: TableState) -> list[Anchor]:
    """After discovery (post-processing of the DP bounds): the anchors whose offset's range is
    narrower than the child column's own; a child date that spreads over its parent's date
    more widely than over its own range does not follow it (an order placed any time after the
    customer signed up) and is modelled on its own."""
    keep = []
    for a in st.anchors:
        child = st.t.column(a.child)
        if a.offset.source == "fallback bounds":
            st.phase(f"{a.child}: modelled on its own (no DP bounds of its offset from "
                     f"{st.parent.parent.t.name}.{a.parent})")
            continue
        if child.upper > child.lower and a.offset.upper - a.offset.lower >= child.upper - child.lower:
            st.phase(f"{a.child}: modelled on its own (its DP range is narrower than its offset from "
                     f"{st.parent.parent.t.name}.{a.parent})")
            continue
        keep.append(a)
    return keep


def anchored(st: TableState) -> set[str]:
    """Child columns computed from their parent's date and a modelled offset."""
    return {a.child for a in st.anchors}


def parent_attributes(st: TableState) -> list:
    """The parent attributes the child is modelled with: the dates its own dates follow first
    (so that what depends on the absolute date, TPC-H's l_linestatus, can follow it), then
    those the noisy fan-out was split by (st.fanout, post-processing: what tells how many
    children a parent has, an order's amount for its payments, tells most often what they are
    too, and matching children on it draws them from the parents' distribution rather than
    the child's sample of tau rows a unit, which under-represents heavy units), then the
    smallest domains; a constant tells nothing."""
    parent = st.parent.parent
    usable = [c for c in parent.modelled if not c.name.startswith("pg_dp_") and 1 < c.size <= MAX_ATTRIBUTE_SIZE
              and c.name not in parent.t.audit]
    names = list(dict.fromkeys([a.parent for a in st.anchors]
                               + [c.name for c, _ in (st.fanout.by if st.fanout and st.fanout.by else ())]))
    first = [c for name in names for c in usable if c.name == name]
    return (first + sorted((c for c in usable if c not in first), key=lambda c: c.size))[:PARENT_ATTRIBUTES]


def measure_fanout(st: TableState, epsilon: float) -> Fanout:
    """The noisy fan-out: children per parent row (capped), over the parent's rows bounded per
    unit (a uniform sample of at most the parent's own tau, else max_rows(parent): a unit
    moves at most that many of them), against the parent attribute that
    tells most about it: an OpenDP report-noisy-max (FANOUT_SELECT_SHARE of epsilon) over the
    parent's attributes (coarsened to FANOUT_CONDITION_SIZE groups), their pairs (FANOUT_PAIR_SIZE
    groups each: the shop's vip x country) and "none" (NONE_LEAD noise scales ahead), each scored by
    how far its joint with the fan-out (in the groups of coarse_fanout) is from independence (L1,
    under 4 per row) less the noise its extra cells would add (TPC-H: lines per order follow o_totalprice, not
    o_orderstatus).  Reads the tables themselves (not the child's sample)."""
    link, parent = st.parent, st.parent.parent
    cap = max(1, min(MAX_FANOUT, rows_limit(st.t), numbering_limit(st)))
    # the parent's rows: at most its own tau per unit (a uniform sample, as its marginals were)
    bound = int(parent.tau or parent.t.max_rows)
    attrs = [c for c in parent.modelled if not c.name.startswith("pg_dp_") and 1 < c.size <= MAX_ATTRIBUTE_SIZE
             and c.name not in parent.t.audit]         # when a row was written tells nothing of its children
    # one attribute in up to 8 groups, or two in up to 4 each (vip x country: 6)
    candidates = [((c, min(c.size, FANOUT_CONDITION_SIZE)),) for c in attrs] + \
        [((a, min(a.size, FANOUT_PAIR_SIZE)), (b, min(b.size, FANOUT_PAIR_SIZE))) for a, b in itertools.combinations(attrs, 2)]
    groups = [math.prod(g for _, g in cand) for cand in candidates]
    codes = "".join(f", {fanout_code(cand, 'p.')} AS g{i}" for i, cand in enumerate(candidates))
    names = ["k"] + [f"g{i}" for i in range(len(candidates))]
    sets = ", ".join(["(k)"] + [f"(k, g{i})" for i in range(len(candidates))])
    edges = fanout_edges(cap)
    bin_of = np.searchsorted(edges, np.arange(cap + 1), side="right") - 1
    exact = [np.zeros((g, edges.size), dtype=np.int64) for g in [1] + groups]
    unit = db.quote_ident(unit_column(parent.t))
    # a child holding the unit itself under a parent that holds it too: only the children whose
    # unit is their parent's count (so one unit's rows change only its own parents' cells)
    own = st.t.unit is not None and link.column != st.t.unit
    u_pick, u_join = (f", {db.quote_ident(st.t.unit)} AS u", f" AND f.u = p.{unit}") if own else ("", "")
    width = len(link.cols)
    picks = ", ".join(f"{db.quote_ident(c)} AS key{i}" for i, c in enumerate(link.cols))
    present = " AND ".join(f"{db.quote_ident(c)} IS NOT NULL" for c in link.cols)
    on = " AND ".join(f"f.key{i} = p.{db.quote_ident(r)}" for i, r in enumerate(link.refcols))
    for r in db.execute(
            f"SELECT {', '.join(names)}, count(*) AS n FROM ("
            f"SELECT least(coalesce(f.n, 0), {cap})::int AS k{codes} "
            f"FROM (SELECT x.*, row_number() OVER (PARTITION BY x.{unit} ORDER BY random()) AS pg_dp_rn "
            f"FROM {parent.t.qualified} x) p "
            f"LEFT JOIN (SELECT {picks}{u_pick}, count(*) AS n FROM {st.t.qualified} "
            f"WHERE {present} GROUP BY {', '.join(str(i + 1) for i in range(width + own))}) f "
            f"ON {on}{u_join} "
            f"WHERE p.pg_dp_rn <= {bound}) j GROUP BY GROUPING SETS ({sets})"):
        which = next((i for i in range(len(candidates)) if r[f"g{i}"] is not None), None)
        if which is None:
            exact[0][0, bin_of[int(r["k"])]] += int(r["n"])
        else:
            exact[which + 1][int(r[f"g{which}"]), bin_of[int(r["k"])]] += int(r["n"])
    e_select = epsilon * FANOUT_SELECT_SHARE if candidates else 0.0
    scale = mechanisms.integer_laplace_scale(bound, epsilon - e_select)
    pick = 0
    if candidates:
        # "none" starts NONE_LEAD noise scales ahead: where the noise swamps every score (59
        # customers), the fan-out is not split at random
        lead = NONE_LEAD * mechanisms.noisy_min_scale(4 * bound + 1, e_select)
        coarse = coarse_fanout(edges)
        cells = int(coarse.max()) + 1
        scores = [int(round(lead))] + [int(round(dependence_l1(_merge_bins(h, coarse))))
                                       - int(round((g - 1) * cells * scale)) for h, g in zip(exact[1:], groups)]
        pick = mechanisms.noisy_argmin([-x for x in scores], 4 * bound + 1, e_select)
    by = candidates[pick - 1] if pick else None
    chosen = exact[pick]
    noise = np.asarray(mechanisms.integer_laplace_noise(scale, chosen.size), dtype=np.float64).reshape(chosen.shape)
    st.phase(f"measured the fan-out per {parent.t.name} (Laplace scale {scale:.3g}, up to {cap} children)"
             + (", by " + " x ".join(f"{c.name} ({g} groups)" for c, g in by) if pick else ""))
    return Fanout(by, threshold_fanout(chosen + noise, scale), cap, edges, scale)


COARSE_FANOUT = (0, 1, 2, 3, 5, 9, 17)     # lower edges of the fan-out groups a candidate is scored over


def coarse_fanout(edges: np.ndarray) -> np.ndarray:
    """The coarse group of each bin of the fan-out histogram (0, 1, 2, 3-4, 5-8, 9-16, 17 and
    more children): a candidate attribute is scored by the dependence it shows over these few
    groups, against the noise its extra rows of them add (the support of a fan-out is a few
    of its bins: scored over all 23, every split looked noisier than the data could show)."""
    return np.searchsorted(np.array(COARSE_FANOUT), edges, side="right") - 1


def _merge_bins(joint: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = np.zeros((joint.shape[0], int(groups.max()) + 1), dtype=joint.dtype)
    np.add.at(out.T, groups, joint.T)
    return out


def fanout_code(condition, prefix: str = "") -> str:
    """SQL: the group of a parent row for the fan-out: each attribute's code coarsened to its
    number of groups (adjacent codes together), combined."""
    code = "0"
    for col, groups in condition:
        part = f"(({col.encode_sql(prefix + db.quote_ident(col.name))}) * {int(groups)} / {int(col.size)})"
        code = f"({code} * {int(groups)} + {part})"
    return code


def dependence_l1(joint: np.ndarray) -> float:
    """L1 distance of a table of counts from the product of its margins (adding one row moves it
    by under 4: 1 in the row's cell, under 3 in the product)."""
    joint = np.asarray(joint, dtype=np.float64)
    total = joint.sum()
    if total <= 0:
        return 0.0
    return float(np.abs(joint - np.outer(joint.sum(axis=1), joint.sum(axis=0)) / total).sum())


def unit_rows(st: TableState) -> np.ndarray | None:
    """Distribution of the child's rows per unit (0 .. max_rows), a post-processing of the noisy
    fan-outs along the path: a unit has one row of the unit table, and each row of a table has
    children by its noisy fan-out (the fan-outs of a unit's rows taken as independent).  None
    when the parent's rows per unit are unknown (a parent that is neither the unit table nor a
    child synthesized in this call)."""
    parent = st.parent.parent
    if parent.t.unit is not None and parent.t.unit in parent.t.keys:
        per_parent = np.array([0.0, 1.0])              # the unit table: one row per unit
    else:
        per_parent = parent.unit_rows
    if per_parent is None:
        return None
    return compound(per_parent, st.fanout.counts(), rows_limit(st.t))


def compound(per_unit: np.ndarray, fanout: np.ndarray, limit: int) -> np.ndarray:
    """Distribution of the number of children of a unit (0 .. limit, the mass past it at
    limit) when it has k parents with probability per_unit[k] and each parent has j children
    with probability fanout[j], independently."""
    per_unit = np.clip(np.asarray(per_unit, dtype=np.float64), 0, None)
    fanout = np.clip(np.asarray(fanout, dtype=np.float64), 0, None)
    if per_unit.sum() <= 0 or fanout.sum() <= 0:
        return np.r_[np.zeros(limit), 1.0]
    per_unit, fanout = per_unit / per_unit.sum(), fanout / fanout.sum()
    per_unit = per_unit[:int(np.flatnonzero(per_unit).max()) + 1]      # no convolution past the last unit size
    out = np.zeros(limit + 1)
    power = np.r_[1.0, np.zeros(limit)]                  # the sum of k parents' children, k = 0
    for k, p in enumerate(per_unit):
        if k:
            full = np.convolve(power, fanout)
            power = full[:limit + 1].copy()
            power[limit] += full[limit + 1:].sum()
        out += p * power
    return out


FITTED_ROWS = 4096          # rows per unit a child without a max_rows_per_unit of its own may have


def rows_limit(t: Target) -> int:
    """Most rows per unit of a child: its own max_rows_per_unit, or, when the DBA set none (the
    dataset's bound, often 1, is the unit table's), FITTED_ROWS: the rows per unit are then
    fitted with DP from the noisy fan-outs along the path (children per parent up to
    MAX_FANOUT; tau their median, see sample_size).  Neither is a sensitivity: the fan-out's is
    the parent's rows per unit, the child's marginals' is tau."""
    return int(t.max_rows) if t.own_max_rows else FITTED_ROWS


ROWS_SHARE = 0.1           # of a table's epsilon: its rows per unit, when it is on a path without a bound
ROWS_QUANTILE = 0.95       # ... the share of units whose rows all stay in the sample


def needs_rows_fit(st: TableState) -> bool:
    """A table that reaches the unit (it holds it, or through a path) but is not generated under
    a parent, with no max_rows_per_unit of its own (the dataset's, often 1, is the unit
    table's): its rows per unit are fitted with DP (fit_rows_per_unit)."""
    t = st.t
    return st.parent is None and not t.own_max_rows and bool(t.path or (t.unit and t.unit not in t.keys))


def fit_rows_per_unit(st: TableState, epsilon: float) -> int:
    """The rows per unit the table is measured over, fitted with DP: a noisy histogram (OpenDP
    Laplace, sensitivity 1: a unit is in one cell) of the units' row counts (0..MAX_FANOUT in
    the fan-out's bins, thresholded as a fan-out), then the count under which ROWS_QUANTILE of
    the units' rows fall (post-processing).  The rows of a unit are numbered in random order
    in the sample (discover.snapshot), so the rows with number k are the units with at least k."""
    cap = MAX_FANOUT
    src, _ = discover.snapshot(st.t, cap)
    tail = np.zeros(cap + 2)
    for r in db.execute(f"SELECT pg_dp_rn AS k, count(*) AS n FROM {src} GROUP BY 1"):
        tail[int(r["k"])] = int(r["n"])
    exact_k = tail[1:cap + 1] - tail[2:cap + 2]         # units with exactly k rows, k = 1..cap
    edges = fanout_edges(cap)
    bins = np.searchsorted(edges, np.arange(cap + 1), side="right") - 1
    hist = np.zeros(edges.size)
    np.add.at(hist, bins[1:], exact_k)
    scale = mechanisms.integer_laplace_scale(1, epsilon)
    noisy = hist + np.asarray(mechanisms.integer_laplace_noise(scale, edges.size), dtype=np.float64)
    noisy[0] = 0.0                                      # no unit of the sample has no row
    clean = threshold_fanout(noisy[None, :], scale)[0]
    per_unit = Fanout(None, clean[None, :], cap, edges).counts()
    rows = per_unit * np.arange(cap + 1)
    if rows.sum() <= 0:
        return 1
    bound = int(np.searchsorted(np.cumsum(rows) / rows.sum(), ROWS_QUANTILE - 1e-9)) or 1
    st.phase(f"fitted the rows per unit with DP (Laplace scale {scale:.3g}): at most {bound}, which hold "
             f"{ROWS_QUANTILE:.0%} of the rows")
    return max(1, bound)


def sample_size(per_unit: np.ndarray | None, max_rows: int) -> int:
    """tau, the rows per unit a child's marginals are measured over: the median number of rows
    of the units that have any (post-processing of DP output), at most max_rows_per_unit.

    A uniform sample of at most tau of each unit's rows bounds every marginal's sensitivity by
    tau instead of max_rows_per_unit.  Below the typical unit's row count a smaller tau costs
    few rows for much less noise (rows kept / tau stays near the number of units); above it,
    noise grows with tau and rows do not.  Units with more rows are under-represented: the
    children's attributes given the parent's are what the sample must get right, and the
    parents' attributes come from the parents and their fan-outs."""
    if per_unit is None:
        return int(max_rows)
    if len(per_unit) < 2 or per_unit[1:].sum() <= 0:
        return 1                # no unit has rows, as far as the noisy fan-outs tell
    some = np.cumsum(per_unit[1:]) / per_unit[1:].sum()
    return int(max(1, min(int(max_rows), int(np.searchsorted(some, SAMPLE_QUANTILE - 1e-9)) + 1)))


def join_parent(st: TableState) -> tuple[str, list]:
    """The child's measured rows with the chosen parent attributes and the date offsets
    (pg_dp_after_i: child date - parent date) joined in, as a TEMP table; returns its name
    and the extra modelled columns."""
    link, parent = st.parent, st.parent.parent
    attrs = st.cond
    extra = [replace(c, name=f"pg_dp_parent_{i}", nullable=True) for i, c in enumerate(attrs)]
    db.drop_table_if_present(f"pg_temp.{PARENT_SRC}")
    picks = "".join(f", p.{db.quote_ident(c.name)} AS pg_dp_parent_{i}" for i, c in enumerate(attrs))
    for a in st.agreements:
        if a.flag is not None:
            mine, theirs = db.quote_ident(a.column), db.quote_ident(a.theirs)
            picks += (f", CASE WHEN s.{mine} IS NULL THEN NULL WHEN s.{mine} = p.{theirs} THEN 'same' "
                      f"ELSE 'other' END AS {db.quote_ident(a.flag.name)}")
            extra.append(a.flag)
    for child, pcol, offset in st.anchors:
        fam = st.t.column(child).fam
        picks += (f", {dom.value_sql('s.' + db.quote_ident(child), fam)} - "
                  f"{dom.value_sql('p.' + db.quote_ident(pcol), fam)} AS {db.quote_ident(offset.name)}")
    db.execute(f"CREATE TEMP TABLE {PARENT_SRC} ON COMMIT DROP AS SELECT s.*{picks} FROM {st.src} s "
               f"LEFT JOIN {parent.t.qualified} p ON {parent_join(link)}")
    return PARENT_SRC, extra


FANOUT_WINDOWS = (1, 2, 4)  # adjacent bins a run of real fan-outs is tested over (gaps up to 3 bins)
FANOUT_Z = 4.0              # noise standard deviations the tail must pass ...
WINDOW_Z = 3.0              # ... and a window of 1, 2 or 4 bins (the first bin past the support passes with p < 1%)


def threshold_fanout(noisy: np.ndarray, scale: float) -> np.ndarray:
    """Post-processing of the noisy fan-out histogram (rows: parent attribute, columns: bins of
    0..cap children): the support is cut where the noisy counts stop being distinguishable
    from noise, and the parents past the cut keep their many children.

    Most cells of a fan-out histogram can be empty (up to 50 orders per customer when the
    real ones have at most 41); clipped at 0, the noise of each empty cell still adds
    scale / 2 of mass on average, a phantom tail.  From bin 1 on, the support continues
    while the next 1, 2 or 4 bins (FANOUT_WINDOWS, summed over the rows: m cells, noise sd
    scale * sqrt(2 m)) pass WINDOW_Z such sds or the whole tail past it FANOUT_Z; it ends at the
    first bin where none does (the first empty bin continues it with p < 1%, and adds a phantom
    bin of a few noise scales of parents, not a tail).  Testing the tail alone
    cut real cells whenever the tail's many empty cells made its noise larger than them (a
    return for 8% of orders, 900 parents, fell under the noise of 22 bins: no returns).

    The parents past the cut are not dropped: when the tail's noisy mass passes one sd, each
    row's (clipped at 0) moves to its last bin kept, so that heavy parents keep many children
    rather than being spread over small fan-outs (rows lost with them).  Where even the whole
    histogram is within the noise (a few hundred parents at a small epsilon), the support
    ends after the fullest bin."""
    noisy = np.asarray(noisy, dtype=np.float64)
    grid = noisy.reshape(-1, noisy.shape[-1])
    groups, bins = grid.shape
    column = grid.sum(axis=0)
    tail = np.cumsum(column[::-1])[::-1]
    out = np.clip(grid, 0, None)

    def sd(cells):
        return scale * math.sqrt(2 * groups * cells)

    if tail[0] < FANOUT_Z * sd(bins):
        cut = int(np.argmax(out.sum(axis=0))) + 1
        out[:, cut:] = 0
        return (out if out.sum() > 0 else np.clip(grid, 0, None)).reshape(noisy.shape)
    cut = bins
    for b in range(1, bins):
        widths = sorted({min(w, bins - b) for w in FANOUT_WINDOWS})
        if all(column[b:b + w].sum() < WINDOW_Z * sd(w) for w in widths) and tail[b] < FANOUT_Z * sd(bins - b):
            cut = b
            break
    if cut < bins:
        rest = grid[:, cut:].sum(axis=1)
        if tail[cut] > sd(bins - cut):
            out[:, cut - 1] += np.clip(rest, 0, None)
        out[:, cut:] = 0
    if out.sum() <= 0:
        out = np.clip(grid, 0, None)
    return out.reshape(noisy.shape)


def _numbering(st: TableState):
    """The integer column of each UNIQUE (parent key, integer column) of a child."""
    link = st.parent.cols
    numbers = {c.name: c for c in st.t.columns if c.fam == "integer" and c.kind == "numeric"}
    for cols in st.t.uniques:
        others = [c for c in cols if c not in link]
        if len(others) == 1 and len(cols) == len(link) + 1 and set(link) <= set(cols) and others[0] in numbers:
            yield numbers[others[0]]


def _choices(st: TableState):
    """The categorical column of each UNIQUE (parent key, categorical column) of a child: a link
    table's (order_id, tag_id), an order line's (order_id, product_id) over a small vocabulary."""
    link = st.parent.cols
    cats = {c.name: c for c in st.t.columns if c.kind == "categorical" and c.values and not c.other}
    for cols in st.t.uniques:
        others = [c for c in cols if c not in link]
        if len(others) == 1 and len(cols) == len(link) + 1 and set(link) <= set(cols) and others[0] in cats:
            yield cats[others[0]]


def numbering_limit(st: TableState) -> int:
    """Most children a parent can have under a UNIQUE (parent key, number) whose number has
    public bounds (l_linenumber 1..7: 7 lines per order), or a UNIQUE (parent key, categorical)
    (8 tags: 8 tags an order); the fan-out is measured up to it."""
    limits = [int(c.upper - c.lower) + 1 for c in _numbering(st) if c.upper >= c.lower]
    limits += [len(c.values) for c in _choices(st)]
    if one_each(st.t, st.parent):
        limits.append(1)        # the child's key is its parent's (a return of a sale line): one child each
    return max(1, min(limits)) if limits else MAX_FANOUT


def one_each(t: Target, link) -> bool:
    """Is a parent row named by at most one child row (a UNIQUE of the child within the key's columns)?"""
    return any(set(cols) <= set(link.cols) for cols in t.uniques)


def uniform_parents(st: TableState, link, n: int) -> dict[str, np.ndarray]:
    """A key of several columns to a parent of this call that the rows are not generated under:
    each row takes all the key's columns from one row of the parent copy, chosen uniformly
    (without replacement when the key is the child's own, so that it stays unique)."""
    rows = db.execute("SELECT " + ", ".join(f"{db.quote_ident(r)}::text AS k{i}" for i, r in enumerate(link.refcols))
                      + f" FROM {link.target}")
    if not rows:
        return {c: np.full(n, None, dtype=object) for c in link.cols}
    if one_each(st.t, link) and n <= len(rows):
        pick = st.rng.permutation(len(rows))[:n]
    else:
        pick = st.rng.integers(0, len(rows), size=n)
    # one array per column of the parent rows (read once), indexed by the picks
    return {c: np.array([r[f"k{i}"] for r in rows], dtype=object)[pick] for i, c in enumerate(link.cols)}


def _distinct_choices(v: np.ndarray, parents: np.ndarray, domain: list, rng: np.random.Generator) -> np.ndarray:
    """A parent's repeated values of a UNIQUE (parent key, categorical) column take values of the
    domain the parent does not have yet, uniformly (a parent with more children than values keeps
    its repeats: the UNIQUE check then drops them)."""
    out = np.array(v, dtype=object)
    order = np.argsort(parents.astype(str), kind="stable")
    keys = parents.astype(str)[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    for a, b in zip(starts, np.r_[starts[1:], keys.size]):
        rows = order[a:b]
        if rows.size < 2:
            continue
        seen, dup = set(), []
        for r in rows:
            if out[r] is None or out[r] not in seen:
                seen.add(out[r])
            else:
                dup.append(r)
        if dup:
            free = [x for x in domain if x not in seen]
            picks = rng.permutation(len(free))[:len(dup)]
            for r, p in zip(dup, picks):
                out[r] = free[p]
    return out


def distinct_within_parent(st: TableState, values: dict, parents: np.ndarray):
    """A UNIQUE (parent key, number) -- TPC-H's (l_orderkey, l_linenumber) -- is met by value
    re-assignment, not by dropping rows: within each parent, the sampled numbers are sorted and
    made strictly increasing (each at least the previous + 1, kept under the column's upper
    bound), so a parent's children keep distinct numbers close to the sampled ones."""
    for col in _choices(st):
        if col.name in values:
            values[col.name] = _distinct_choices(values[col.name], parents, col.values, st.rng)
    for col in _numbering(st):
        if col.name not in values:
            continue
        try:
            v = np.asarray(values[col.name], dtype=np.float64)
        except (TypeError, ValueError):          # NULLs among the numbers: left to the UNIQUE check
            continue
        if np.isnan(v).any() or not v.size:
            continue
        group = np.unique(parents.astype(str), return_inverse=True)[1]
        order = np.lexsort((v, group))
        g, x = group[order], np.round(v[order])
        start = np.r_[True, g[1:] != g[:-1]]
        first = np.flatnonzero(start)
        rank = np.arange(g.size) - np.repeat(first, np.diff(np.r_[first, g.size]))
        # strictly increasing within a group: x'_i = max over j <= i of (x_j - rank_j) + rank_i
        span = float(x.max() - x.min() + g.size + 1)     # groups apart: one running maximum serves all
        base = np.maximum.accumulate(x - rank + g * span) - g * span
        size = np.repeat(np.diff(np.r_[first, g.size]), np.diff(np.r_[first, g.size]))
        base = np.minimum(base, col.upper - size + 1)        # the last one stays under the upper bound
        out = np.empty_like(v)
        out[order] = base + rank
        values[col.name] = out.astype(np.int64)


def child_rows(st: TableState) -> Slots:
    """Draw every synthetic parent's number of children (post-processing of the noisy fan-out):
    the parents' keys, attributes, fan-out groups and dates are read from the parent's copy."""
    link, parent = st.parent, st.parent.parent
    codes = "".join(f", {c.encode_sql(db.quote_ident(c.name))} AS a{i}" for i, c in enumerate(st.cond))
    dates = list(dict.fromkeys(a.parent for a in st.anchors))
    values = "".join(f", {dom.value_sql(db.quote_ident(p), parent.t.column(p).fam)} AS d{j}"
                     for j, p in enumerate(dates))
    fan = fanout_code(st.fanout.by) if st.fanout.by else "0"
    rows = db.execute(f"SELECT {key_text(link.refcols)} AS key, "
                      + "".join(f"{db.quote_ident(r)}::text AS k{i}, " for i, r in enumerate(link.refcols))
                      + f"{fan} AS f{codes}{values} FROM {link.target} WHERE "
                      + " AND ".join(f"{db.quote_ident(r)} IS NOT NULL" for r in link.refcols))
    keys = np.array([r["key"] for r in rows], dtype=object)
    columns = [np.array([r[f"k{i}"] for r in rows], dtype=object) for i in range(len(link.refcols))]
    first = np.array([r["f"] for r in rows], dtype=np.int64)
    attrs = [np.array([r[f"a{i}"] for r in rows], dtype=np.int64) for i in range(len(st.cond))]
    slot_dates = {p: np.array([np.nan if r[f"d{j}"] is None else r[f"d{j}"] for r in rows], dtype=np.float64)
                  for j, p in enumerate(dates)}
    k = np.zeros(keys.size, dtype=np.int64)
    for a in np.unique(first):
        where = np.flatnonzero(first == a)
        k[where] = st.fanout.draw(st.fanout.row(int(a)), where.size, st.rng)
    total, error = st.full_count if st.full_count is not None else (st.counts.get("total"),
                                                                     budget.count_error(st, st.sensitivity))
    k = match_count(k, total, error, st.fanout.cap, st.rng)
    st.phase(f"drew {int(k.sum())} children for {keys.size} synthetic parents")
    return Slots(np.repeat(np.arange(keys.size), k), keys, attrs, slot_dates, first, _agreement(st), columns)


def match_count(k: np.ndarray, total, error: float, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Children per synthetic parent, scaled to the child table's DP row count (post-processing
    of two DP measurements).  The fan-out is measured over a sample of the parents' rows (at
    most tau per unit): where a unit's many parents have more children each (a shop's VIPs:
    more orders, more payments an order), it under-states them (store payments: 0.81 of the
    rows), and its thresholding loses the mass of bins under the noise.  The count
    (count_rows: every unit's rows up to a high bound) is the better estimate of the total:
    when the drawn total is off it by more than 5% and by more than its expected error, every
    parent's count is multiplied by the same ratio (randomized rounding, at most cap): the
    histogram's shape stays, its mean moves (rows the cap holds back go to parents with room).
    Within that, the draw is kept (the draw is an
    estimate too: TPC-DS store_returns' 0/1 fan-out has a Laplace scale of 217 a cell; with a
    gate of 3 count errors it kept 1.37 of the rows).  A draw of no child at all where the count
    says there are some beyond its error (the thresholding took the one bin of a 0/1 fan-out
    whose cells sit near the noise: 1 row written for 2,687) gives them one each to parents
    chosen uniformly."""
    drawn = int(k.sum())
    if total is None or (drawn == 0 and total <= error):
        return k
    gap = abs(drawn - total)
    if gap <= 0.05 * total or gap <= error:
        return k
    if drawn:
        scaled = k * (float(max(total, 0)) / drawn)
        out = np.floor(scaled).astype(np.int64)
        out += (rng.random(k.size) < scaled - out).astype(np.int64)
        out = np.minimum(out, cap)
    else:
        out = np.zeros_like(k, dtype=np.int64)
    # the cap holds parents back (a 0/1 fan-out, a return of a sale line: a ratio moves no 0 and
    # no 1): the rows still short go one each to parents with room, chosen uniformly
    short = int(total) - int(out.sum())
    while short > 0:
        room = np.flatnonzero(out < cap)
        if not room.size:
            break
        out[rng.choice(room, size=min(short, room.size), replace=False)] += 1
        short = int(total) - int(out.sum())
    return out


TOTAL_SHARE = 0.15          # of a child's epsilon: its rows, counted with each unit's clipped at a bound:
TOTAL_QUANTILE = 0.99       # twice the rows per unit under which this share of the rows fall by the fan-outs
TOTAL_MARGIN = 2            # (the noisy fan-outs thin a heavy tail: store payments, 20 for a real 80)


def count_rows(st: TableState, epsilon: float) -> tuple[int, float]:
    """(DP count of the child table's rows, its expected error): each unit's rows counted up to
    a bound L (the sensitivity; OpenDP Laplace): the table's max_rows_per_unit when the DBA set
    one, else twice the rows per unit under which TOTAL_QUANTILE of the rows fall by the noisy
    fan-outs along the path (st.unit_rows; post-processing), else MAX_FANOUT.  Unlike the count
    of the measured sample (at most tau rows per unit, a lower bound), it estimates the table's
    rows.  (A DP histogram of the units' row counts, thresholded, put the bound lower still:
    TPC-DS web_sales 13, 0.65 of the rows.)"""
    found = discover.unit_source(st.t)
    if found is None:
        return None, 0.0
    if st.t.own_max_rows:
        bound = int(st.t.max_rows)
    elif st.unit_rows is not None and np.sum(st.unit_rows[1:]) > 0:
        rows = np.clip(st.unit_rows, 0, None) * np.arange(st.unit_rows.size)
        bound = TOTAL_MARGIN * int(np.searchsorted(np.cumsum(rows) / rows.sum(), TOTAL_QUANTILE - 1e-9))
    else:
        bound = MAX_FANOUT
    bound = max(1, min(bound, rows_limit(st.t)))
    rows_sql, unit = found
    n = int(db.execute(f"SELECT coalesce(sum(least(n, {bound})), 0)::int8 AS n FROM "
                       f"(SELECT {unit} AS u, count(*) AS n FROM {rows_sql} GROUP BY 1) c")[0]["n"])
    noisy = max(0, mechanisms.laplace_integer(n, bound, epsilon))
    error = mechanisms.integer_laplace_scale(bound, epsilon)
    st.phase(f"counted the rows with at most {bound} a unit (DP, expected error {error:.3g})")
    return noisy, error


def _agreement(st: TableState) -> list[tuple[Agreement, dict]]:
    """The synthetic parents' values of the columns that second paths follow (parent key -> value)."""
    link = st.parent
    return [(a, {r["k"]: r["v"] for r in db.execute(
        f"SELECT {key_text(link.refcols)} AS k, {db.quote_ident(a.theirs)}::text AS v FROM {link.target}")})
        for a in st.agreements]


def key_text(refcols: list[str]) -> str:
    """SQL: one text per parent row for its key (the column's text; a key of several columns:
    their texts as a JSON array, so that no two keys share one)."""
    if len(refcols) == 1:
        return f"{db.quote_ident(refcols[0])}::text"
    return f"pg_catalog.json_build_array({', '.join(db.quote_ident(r) + '::text' for r in refcols)})::text"


def match(slot_keys: np.ndarray, child_keys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each slot, a child with the same key (its position in child_keys), each child used
    once, chosen at random among those of its key; -1 where the key has no child left."""
    chosen = np.full(slot_keys.size, -1, dtype=np.int64)
    child_order = np.lexsort((rng.random(child_keys.size), child_keys))
    slot_order = np.lexsort((rng.random(slot_keys.size), slot_keys))
    cs, ss = child_keys[child_order], slot_keys[slot_order]
    for t in np.intersect1d(cs, ss):
        c_lo, c_hi = np.searchsorted(cs, t), np.searchsorted(cs, t, side="right")
        s_lo, s_hi = np.searchsorted(ss, t), np.searchsorted(ss, t, side="right")
        m = min(c_hi - c_lo, s_hi - s_lo)
        chosen[slot_order[s_lo:s_lo + m]] = child_order[c_lo:c_lo + m]
    return chosen


def _combination(cond: list, codes: list[np.ndarray]) -> np.ndarray:
    """One integer per row for the codes of the first len(codes) parent attributes (cond)."""
    sizes = [c.size + 1 for c in cond[:len(codes)]]     # + the NULL code of the nullable copies
    return np.ravel_multi_index([np.minimum(np.asarray(a, dtype=np.int64), s - 1) for a, s in zip(codes, sizes)],
                                sizes)


DEPENDENCE_Z = 6.0          # standard deviations of the noise-only statistic a tie must pass


def dependence_z(noisy: np.ndarray, stddev: float) -> float:
    """How far a noisy 2-way marginal is from independence beyond what its noise and sampling
    explain, in standard deviations of the noise-only statistic (post-processing of DP counts).
    D = sum ((T - E) / sd)^2, E the product of T's margins: with independent attributes, D is
    about chi-square with (r-1)(c-1) degrees of freedom from the noise, plus under N / sd^2
    from the rows' own sampling variation; the result is D less those, over the chi-square's
    standard deviation (-inf for a marginal that cannot show a tie)."""
    t = np.clip(np.asarray(noisy, dtype=np.float64), 0, None)
    total = t.sum()
    if t.ndim != 2 or total <= 0 or min(t.shape) < 2:
        return -math.inf
    expected = np.outer(t.sum(axis=1), t.sum(axis=0)) / total
    d = float((((np.asarray(noisy, dtype=np.float64) - expected) / stddev) ** 2).sum())
    df = (t.shape[0] - 1) * (t.shape[1] - 1)
    return (d - df - total / stddev ** 2) / math.sqrt(2 * df)


def dependent_beyond_noise(noisy: np.ndarray, stddev: float) -> bool:
    """Is a noisy 2-way marginal further from independence than its noise and sampling explain?
    (dependence_z passes DEPENDENCE_Z.)"""
    return dependence_z(noisy, stddev) > DEPENDENCE_Z


def parent_strengths(st: TableState) -> list[float]:
    """How strongly the child's model ties each chosen parent attribute (st.cond) to a child
    column: the largest dependence_z of its measured 2-way marginals with child columns
    (DEPENDENCE_Z for a larger clique); 0 for an attribute tied to nothing beyond noise,
    which the children are not matched on.  Matching on an attribute whose measured ties are
    noise would plant that noise in the copy (TPC-H customer -> orders: no order column
    depends on its customer, and uniform attachment is the truth).  The dates the child's
    dates follow count, at DEPENDENCE_Z at least."""
    k = len(st.cond)
    plan = st.plan
    if plan is None:
        return [DEPENDENCE_Z] * k
    dates = {a.parent for a in st.anchors}
    strength = [DEPENDENCE_Z if c.name in dates else 0.0 for c in st.cond]
    for m in plan.two_way:
        names = [base_name(a) for a in m.clique]          # a coarse attribute stands for its column
        parents = [int(a.rsplit("_", 1)[1]) for a in names if a.startswith("pg_dp_parent_")]
        children = [a for a in names if not a.startswith("pg_dp_parent_")]
        if not parents or not children:
            continue
        z = dependence_z(m.values, m.stddev) if len(m.clique) == 2 else DEPENDENCE_Z
        if len(m.clique) == 2 and z <= DEPENDENCE_Z:        # not dependent_beyond_noise
            continue
        for i in parents:
            if i < k:
                strength[i] = max(strength[i], z)
    return strength


def draw_children(st: TableState, draw, n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Codes of one child per parent slot (n = the slots), each drawn given its parent's
    attributes: rows are drawn from the model, and each slot takes a row with its parent's
    attributes (conditional sampling, by post-processing).  Slots whose combination ran out
    get rows of fresh draws (up to MORE_ROUNDS), then rows left over that share the attributes
    of the strongest ties (parent_strengths: an order's amount before its date when the
    payments' amounts follow it more than their dates do), then any.  So the children's
    attributes follow the model's distribution given the parent's, while how many children
    each combination of parent attributes has comes from the synthetic parents and their
    fan-outs (the child's sample of tau rows per unit may under-represent some).
    Returns (codes in slot order, the parent of each row)."""
    slots = st.slots
    codes = draw(n)
    strength = parent_strengths(st)
    useful = [s > 0 for s in strength]
    if not any(useful):
        return codes, slots.parents[st.rng.permutation(n)]
    k = len(st.cond)
    # the strongest tie first: slots left over are matched on fewer attributes, the weakest dropped first
    order = sorted(range(k), key=lambda i: -strength[i])
    cond = [st.cond[i] for i in order]

    def attr(values, i):        # a parent attribute the model ties to nothing counts as one value
        return values if useful[i] else np.zeros(len(values), dtype=np.int64)

    def keys(rows, level=k):
        return _combination(cond, [attr(rows[f"pg_dp_parent_{i}"], i) for i in order[:level]])

    slot_attrs = [attr(slots.attrs[i][slots.parents], i) for i in order]
    slot_keys = _combination(cond, slot_attrs)
    chosen = match(slot_keys, keys(codes), st.rng)
    pools, drawn = [codes], n
    for _ in range(MORE_ROUNDS):
        short = np.flatnonzero(chosen < 0)
        if not short.size:
            break
        more = draw(int(min(max(1000, 4 * short.size), max(1000, n // 4))))
        got = match(slot_keys[short], keys(more), st.rng)
        hit = got >= 0
        pools.append({a: v[got[hit]] for a, v in more.items()})      # only the rows taken are kept
        chosen[short[hit]] = drawn + np.arange(int(hit.sum()))
        drawn += int(hit.sum())
    matched = int((chosen >= 0).sum())
    used = np.zeros(n, dtype=bool)
    used[chosen[(chosen >= 0) & (chosen < n)]] = True
    for level in range(k - 1, -1, -1):                 # rows left over: same first attributes, then any
        left = np.flatnonzero(chosen < 0)
        if not left.size:
            break
        free = np.flatnonzero(~used)
        if level:
            got = match(_combination(cond, [a[left] for a in slot_attrs[:level]]),
                        keys({f"pg_dp_parent_{i}": codes[f"pg_dp_parent_{i}"][free] for i in order[:level]}, level),
                        st.rng)
        else:
            got = st.rng.permutation(free.size)[:left.size]
        hit = got >= 0
        chosen[left[hit]] = free[got[hit]]
        used[free[got[hit]]] = True
    on = ", ".join(st.cond[i].name for i in order if useful[i])
    st.phase(f"matched {matched} of {n} children to parents with the same {on} "
             f"({len(pools) - 1} more draw(s)), the rest on fewer")
    out = {a: np.concatenate([p[a] for p in pools])[chosen] for a in codes} if len(pools) > 1 else \
        {a: v[chosen] for a, v in codes.items()}
    return out, slots.parents


def attach(st: TableState, values: dict, parents: np.ndarray | None, n: int):
    """Give every sampled child its parent (from draw_children; rows sampled again to replace
    broken ones take any parent), then what follows from the parent: numbers distinct within
    it, the columns that must agree with it, and the dates that follow its dates."""
    link, slots = st.parent, st.slots
    if not slots.keys.size:
        for c in link.cols:
            values[c] = np.array([None] * n, dtype=object)
        for a in st.anchors:
            values[a.child] = np.full(n, np.nan)
        return
    if parents is None or parents.size != n:
        parents = st.rng.integers(0, slots.keys.size, size=n)
    parent_keys = slots.keys[parents]
    for c, theirs in zip(link.cols, slots.columns):
        values[c] = theirs[parents]
    distinct_within_parent(st, values, parent_keys)
    for a, mapping in slots.agreement:
        theirs = np.array([mapping.get(k) for k in parent_keys], dtype=object)
        if a.flag is None:              # the child's unit: its parent's
            values[a.column] = theirs
            continue
        flag = values[a.flag.name]
        rare = keys.model_threshold(st, a.flag.name, AGREEMENT_P)
        # 'other' and NULL keep rows only when their noisy counts stand above the noise (a share
        # without rows passes with p <= AGREEMENT_P); otherwise those rows take the parent's value
        other = rare is not None and rare[0][1] >= rare[1]
        null = rare is not None and a.flag.nullable and rare[0][2] >= rare[1]
        is_null = np.array([v is None for v in flag], dtype=bool)
        same = (flag == "same") | ((flag == "other") & ~other) | (is_null & ~null)
        out = np.array(values[a.column], dtype=object)
        out[same] = theirs[same]
        out[is_null & null] = None
        values[a.column] = out
    for child, pcol, offset in st.anchors:
        values[child] = follow(st.t.column(child), slots.dates[pcol][parents], values[offset.name], st.rng,
                               offset)


def follow(col, parent: np.ndarray, offset: np.ndarray, rng: np.random.Generator, off=None) -> np.ndarray:
    """A child's dates: its parent's date plus the sampled offset, inside the child column's
    bounds when they are declared; a NOT NULL column whose parent date or offset is NULL takes
    another row's offset (or its parent's date).

    The child column's DP bounds (an estimate, like its parent's) give way to the relation: a
    row is moved into them only as far as its offset stays within the offset's own DP bounds
    `off` (a payment is never paid before its order because the orders' DP range reaches later
    than the payments'); where the two cannot both hold, the date keeps the nearest offset."""
    parent = np.asarray(parent, dtype=np.float64)
    out = parent + np.asarray(offset, dtype=np.float64)
    if not col.nullable:
        missing = np.isnan(out)
        if missing.any():
            known = np.asarray(offset, dtype=np.float64)[~np.isnan(offset)]
            step = known[rng.integers(0, known.size, size=int(missing.sum()))] if known.size else 0.0
            out[missing] = np.asarray(parent, dtype=np.float64)[missing] + step
            out[np.isnan(out)] = col.lower
    if col.source == "DP bounds" and off is not None and off.source == "DP bounds":
        lo, hi = parent + off.lower, parent + off.upper          # the offset's range, row by row
        a, b = np.maximum(lo, col.lower), np.minimum(hi, col.upper)
        fits = a <= b
        near = np.where(hi < col.lower, hi, lo)                  # no room in both: the nearest offset
        out = np.where(np.isnan(out) | np.isnan(parent), out,
                       np.where(fits, np.clip(out, a, np.where(fits, b, a)), near))
        out = np.where(np.isnan(out) | ~np.isnan(parent), out, np.clip(out, col.lower, col.upper))
    elif col.source in ("declared bounds", "DP bounds"):
        out = np.where(np.isnan(out), out, np.clip(out, col.lower, col.upper))
    low, high = dom.type_range(col.sql_type, col.fam)
    return np.where(np.isnan(out), out, np.clip(out, low, high))
