"""Denial constraints (Kamino format): parse, count violations, repair synthetic rows.

A denial constraint (DC) is written ``t1&t2&OP(t1.a,t2.b)&...`` with OP one of EQ, IQ (not
equal), LT, GT, LTE, GTE; it forbids every ordered pair of distinct rows (t1, t2) for which
all its predicates hold.  Every predicate compares an attribute of t1 with one of t2 (no
constants).  A DC of one tuple, ``t1&GT(t1.a,t1.b)``, forbids every row for which its
predicate holds: an order between two columns of the same row (a ship date never after its
receipt date).  NULL (``None`` or a float NaN) follows SQL: a comparison with NULL is not
true, so it never makes a predicate hold.

A table is ``dict[str, np.ndarray]`` (column name -> 1-D array, equal lengths).  Pairs are
read in both orientations, so a strict LT/GT on one attribute next to symmetric predicates
only is IQ.  Kinds (each with an exact repair that changes values, never deletes rows):

* ``fd``: ``EQ(A1)&...&EQ(Ak)&IQ(Y)`` (k >= 0), the functional dependency A1..Ak -> Y;
* ``unique``: only EQs (or EQs and one LTE/GTE): no two rows share the EQ attributes;
* ``order``: EQs (the groups) and two ordered comparisons on two attributes, the
  dependent's strict, e.g. ``EQ(g)&GT(x)&LT(y)``; repair re-assigns y in x's order;
* ``general``: any other DC; repaired through a "breaker" attribute (see ``breakers``),
  refused (``unsupported``) when it has none;
* ``row order``: one tuple, one LT/GT/LTE/GTE between two columns; ``key`` is the column
  that must be the lower, ``dependent`` the higher (``strict_key``: strictly).  Repair swaps
  the two values of a row that breaks it (the row keeps its values, each column's bounds
  kept), then moves the higher one up (or the lower one down) by a step where the order
  is strict and they are equal (see ``_repair_row_order``).
Counting is exact for all (O(n log n) for the first three, over candidate pairs else).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..core.errors import DPError

OPS = ("EQ", "IQ", "LT", "GT", "LTE", "GTE")
_FLIP = {"EQ": "EQ", "IQ": "IQ", "LT": "GT", "GT": "LT", "LTE": "GTE", "GTE": "LTE"}
_NUMPY_OP = {"EQ": np.equal, "IQ": np.not_equal, "LT": np.less, "GT": np.greater,
             "LTE": np.less_equal, "GTE": np.greater_equal}
_ORDERED_OPS = frozenset({"LT", "GT", "LTE", "GTE"})
_HINT = ("a denial constraint reads t1&t2&OP(t1.attr,t2.attr)[&OP(...)...] "
         "with OP one of EQ, IQ, LT, GT, LTE, GTE, e.g. t1&t2&EQ(t1.zip,t2.zip)&IQ(t1.city,t2.city); "
         "within one row: t1&GT(t1.a,t1.b)")
_PREDICATE = re.compile(r"(?P<op>[A-Za-z]+)\s*\(\s*(?P<left>[^,()]*?)\s*,\s*(?P<right>[^,()]*?)\s*\)")
_OPERAND = re.compile(r"t(?P<tuple>\d+)\.(?P<attr>[^\s,()&]+)")
_PAIR_CHUNK = 1 << 22       # row pairs evaluated at once by the brute-force path
_LARGE_GROUP = 1024         # groups this large are checked in blocks of rows x later rows


# ---------------------------------------------------------------- parse

@dataclass(frozen=True)
class Predicate:
    """``op(t<left_tuple>.<left_attr>, t<right_tuple>.<right_attr>)``; the two tuples differ,
    but in a DC of one tuple (both t1)."""
    op: str
    left_tuple: int
    left_attr: str
    right_tuple: int
    right_attr: str

    @property
    def text(self) -> str:
        return f"{self.op}(t{self.left_tuple}.{self.left_attr},t{self.right_tuple}.{self.right_attr})"

    @property
    def t1_op(self) -> str:
        """The operator read as ``t1.x OP t2.y`` (``GT(t2.a,t1.a)`` is ``LT(t1.a,t2.a)``)."""
        return self.op if self.left_tuple == 1 else _FLIP[self.op]

    @property
    def same_attribute(self) -> bool:
        return self.left_attr == self.right_attr


@dataclass(frozen=True)
class DenialConstraint:
    """A parsed DC: ``text`` is the canonical form (no spaces); ``determinants`` are the X of
    an fd X -> Y (else ()); ``dependent`` is the Y of an fd or the attribute an order DC's
    repair changes (its second predicate's), else None."""
    text: str
    predicates: tuple[Predicate, ...]
    kind: str
    determinants: tuple[str, ...]
    dependent: str | None
    key: str | None = None          # order: the attribute the dependent must follow
    strict_key: bool = True         # order: False when the key's predicate is LTE/GTE

    @property
    def one_row(self) -> bool:
        """A DC of one tuple (``t1&OP(t1.a,t1.b)``): it forbids rows, not pairs of rows."""
        return all(p.left_tuple == p.right_tuple for p in self.predicates)

    @property
    def attributes(self) -> tuple[str, ...]:
        """Every attribute the DC mentions, in order of first appearance."""
        seen = dict.fromkeys(a for p in self.predicates for a in (p.left_attr, p.right_attr))
        return tuple(seen)


def _syntax_error(text: str, message: str) -> DPError:
    return DPError(f'denial constraint "{text}": {message}', hint=_HINT, sqlstate="22023")


def _parse_operand(text: str, field: str, operand: str) -> tuple[int, str]:
    match = _OPERAND.fullmatch(operand)
    if match is None:
        raise _syntax_error(text, f'operand "{operand}" in "{field}" is not t1.<attribute> or t2.<attribute>')
    tuple_number = int(match["tuple"])
    if tuple_number not in (1, 2):
        raise _syntax_error(text, f'tuple variable "t{match["tuple"]}" in "{field}" is not t1 or t2')
    return tuple_number, match["attr"]


def _parse_predicate(text: str, field: str, one_tuple: bool = False) -> Predicate:
    match = _PREDICATE.fullmatch(field)
    if match is None:
        raise _syntax_error(text, f'"{field}" is not a predicate OP(t1.attr,t2.attr)')
    if match["op"] not in OPS:
        raise _syntax_error(text, f'unknown operator "{match["op"]}" in "{field}"')
    left_tuple, left_attr = _parse_operand(text, field, match["left"])
    right_tuple, right_attr = _parse_operand(text, field, match["right"])
    if left_tuple == right_tuple and not one_tuple:
        raise _syntax_error(text, f'"{field}" compares t{left_tuple} with itself; a predicate compares t1 with t2')
    if one_tuple and (left_tuple, right_tuple) != (1, 1):
        raise _syntax_error(text, f'"{field}" names t2: a constraint over pairs of rows starts with "t1&t2"')
    return Predicate(match["op"], left_tuple, left_attr, right_tuple, right_attr)


def _classify(predicates: tuple[Predicate, ...]) -> tuple[str, tuple[str, ...], str | None, str | None, bool]:
    """(kind, determinants, dependent, key, strict key); see the module docstring for the kinds.

    Every pair is checked in both orientations, so a strict LT/GT on one attribute next to
    symmetric predicates only (EQ, IQ) is the same as IQ on it: ``EQ(age)&LT(edu)`` is the fd
    age -> edu."""
    if not all(p.same_attribute for p in predicates):
        return "general", (), None, None, True
    eqs = tuple(dict.fromkeys(p.left_attr for p in predicates if p.op == "EQ"))
    rest = [p for p in predicates if p.op != "EQ"]
    if any(p.left_attr in eqs for p in rest) or len({p.left_attr for p in rest}) != len(rest):
        return "general", (), None, None, True
    if not rest:
        return "unique", eqs, None, None, True
    if len(rest) == 1 and rest[0].op in ("LTE", "GTE"):
        # one orientation of every pair of non-NULL values holds: EQ(g)&LTE(x) makes g unique
        # among the rows with a value of x (kept as the "dependent": rows without one are free)
        return "unique", eqs, rest[0].left_attr, None, True
    if len(rest) == 1 and rest[0].op in ("IQ", "LT", "GT"):
        return "fd", eqs, rest[0].left_attr, None, True
    if len(rest) == 2 and all(p.op in _ORDERED_OPS for p in rest):
        first, second = rest
        if second.op not in ("LT", "GT"):          # the dependent must be the strict one
            first, second = second, first
        if second.op in ("LT", "GT"):
            return "order", eqs, second.left_attr, first.left_attr, first.op in ("LT", "GT")
    return "general", (), None, None, True


# forbidden t1.a OP t1.b -> (the column that must be the lower, the higher, strictly)
_ROW_ORDER = {"GT": (0, 1, False), "GTE": (0, 1, True), "LT": (1, 0, False), "LTE": (1, 0, True)}


def _classify_row(predicates: tuple[Predicate, ...]) -> tuple[str, tuple[str, ...], str | None, str | None, bool]:
    """A DC of one tuple: a ``row order`` when it is one order between two columns, else
    ``general`` (which ``unsupported`` refuses: nothing else within a row is kept yet)."""
    if len(predicates) == 1 and predicates[0].op in _ROW_ORDER and not predicates[0].same_attribute:
        p = predicates[0]
        low, high, strict = _ROW_ORDER[p.op]
        attrs = (p.left_attr, p.right_attr)
        return "row order", (), attrs[high], attrs[low], strict
    return "general", (), None, None, True


def parse(text: str, columns: Iterable[str] | None = None) -> DenialConstraint:
    """Parse one DC; with ``columns``, every attribute must be one of them (else SQLSTATE 42703)."""
    fields = [field.strip() for field in text.split("&")]
    one_tuple = fields[:1] == ["t1"] and len(fields) > 1 and "(" in fields[1]
    if fields[:2] != ["t1", "t2"] and not one_tuple:
        head = "&".join(fields[:2])
        raise _syntax_error(text, f'it must start with the tuple variables "t1&t2" (or "t1" for a constraint '
                                  f'within one row), not "{head}"')
    tuples = 1 if one_tuple else 2
    if len(fields) <= tuples:
        raise _syntax_error(text, "it has no predicate")
    predicates = tuple(_parse_predicate(text, field, one_tuple) for field in fields[tuples:])
    if columns is not None:
        known = set(columns)
        for attr in dict.fromkeys(a for p in predicates for a in (p.left_attr, p.right_attr)):
            if attr not in known:
                raise DPError(f'denial constraint "{text}": column "{attr}" does not exist',
                              hint=f"the table's columns are: {', '.join(sorted(known))}",
                              sqlstate="42703")
    kind, determinants, dependent, key, strict_key = (_classify_row(predicates) if one_tuple
                                                      else _classify(predicates))
    canonical = "&".join(["t1", "t2"][:tuples] + [p.text for p in predicates])
    return DenialConstraint(canonical, predicates, kind, determinants, dependent, key, strict_key)


# ---------------------------------------------------------------- encoding

def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _column(columns: Mapping[str, np.ndarray], attr: str) -> np.ndarray:
    if attr not in columns:
        raise DPError(f'column "{attr}" of a denial constraint is not in the table', sqlstate="42703")
    return np.asarray(columns[attr])


def _length(columns: Mapping[str, np.ndarray]) -> int:
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise ValueError("columns of a table must have equal lengths")
    return lengths.pop() if lengths else 0


def _numpy_codes(joined: np.ndarray) -> np.ndarray:
    """Dense ranks of a numeric / string / datetime array, -1 for NaN or NaT."""
    if joined.dtype.kind == "f":
        null = np.isnan(joined)
    elif joined.dtype.kind in "mM":
        null = np.isnat(joined)
    else:
        null = np.zeros(len(joined), dtype=bool)
    codes = np.full(len(joined), -1, dtype=np.int64)
    codes[~null] = np.unique(joined[~null], return_inverse=True)[1].reshape(-1)
    return codes


def _object_codes(values: list, ordered: bool, what: str) -> np.ndarray:
    """Codes of Python values by hashing; ranks in value order when the values can be sorted.

    The loops over rows run in C (dict.fromkeys, map); only distinct values are tested for
    NULL (each NaN object is its own key, as NaN != NaN) and sorted."""
    uniques = list(dict.fromkeys(values))
    position = {value: k for k, value in enumerate(uniques)}
    raw = np.fromiter(map(position.__getitem__, values), dtype=np.int64, count=len(values))
    present = [k for k, value in enumerate(uniques) if not _is_null(value)]
    try:
        present.sort(key=uniques.__getitem__)
    except TypeError:
        if ordered:
            raise DPError(f"the values of {what} cannot be ordered", sqlstate="42804") from None
    rank = np.full(len(uniques), -1, dtype=np.int64)
    rank[np.array(present, dtype=np.int64)] = np.arange(len(present), dtype=np.int64)
    return rank[raw]


def _encode(arrays: Sequence[np.ndarray], ordered: bool, what: str) -> list[np.ndarray]:
    """int64 codes on one scale shared by all ``arrays``: equal values get equal codes, NULL
    gets -1, and codes follow the value order (required when ``ordered``)."""
    kinds = {a.dtype.kind for a in arrays}
    if kinds <= set("biuf") or (len(kinds) == 1 and kinds <= set("USmM")):
        joined = _numpy_codes(np.concatenate(arrays))
    else:
        joined = _object_codes([v for a in arrays for v in a.tolist()] if len(arrays) > 1
                                else arrays[0].tolist(), ordered, what)
    return np.split(joined, np.cumsum([len(a) for a in arrays])[:-1])


def _attr_codes(columns: Mapping[str, np.ndarray], attr: str, ordered: bool) -> np.ndarray:
    return _encode([_column(columns, attr)], ordered, f'column "{attr}"')[0]


def _group_ids(code_arrays: Sequence[np.ndarray], length: int) -> np.ndarray:
    """An id per row, equal exactly when the rows agree on every code array (all codes >= 0);
    ids lie in 0..max(length, largest code) (no arrays -> one group, id 0)."""
    if not code_arrays:
        return np.zeros(length, dtype=np.int64)
    ids = np.asarray(code_arrays[0], dtype=np.int64)
    for codes in code_arrays[1:]:
        combined = ids * (int(codes.max(initial=0)) + 1) + codes
        ids = np.unique(combined, return_inverse=True)[1].reshape(-1)
    return ids


# ---------------------------------------------------------------- fd

def _fd_groups(codes: Mapping[str, np.ndarray], dc: DenialConstraint,
               rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row indices, determinant group ids, dependent codes) of the rows that can violate the
    fd: those in ``rows`` (a mask) with no NULL among determinants and dependent."""
    valid = rows & (codes[dc.dependent] >= 0)
    for attr in dc.determinants:
        valid &= codes[attr] >= 0
    index = np.flatnonzero(valid)
    groups = _group_ids([codes[attr][index] for attr in dc.determinants], len(index))
    return index, groups, codes[dc.dependent][index]


def _count_fd(codes: Mapping[str, np.ndarray], dc: DenialConstraint, length: int) -> int:
    """Pairs with equal determinants: C(size, 2) per group, minus pairs that also agree on Y."""
    _, groups, dependent = _fd_groups(codes, dc, np.ones(length, dtype=bool))
    if len(groups) < 2:
        return 0
    same_x = np.bincount(groups)
    same_xy = np.bincount(_group_ids([groups, dependent], len(groups)))
    return int((same_x * (same_x - 1) // 2).sum() - (same_xy * (same_xy - 1) // 2).sum())


def _fd_choices(groups: np.ndarray, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One value per determinant group (indexed by group id) that keeps the column's marginal.

    A group holding one value keeps it.  The others, largest first, take the value that
    scores best on (rows of the group holding it) x (share of that value's rows still to
    give out): the group's majority while the value has room, so the dependent's overall
    distribution stays close to the sampled one instead of collapsing onto the modes (on
    Adult, age -> education-num by modes moves half of the column)."""
    width = int(values.max()) + 1
    pairs, counts = np.unique(groups * width + values, return_counts=True)
    g, v = pairs // width, pairs % width
    size = int(groups.max()) + 1
    kinds = np.bincount(g, minlength=size)
    target = np.bincount(values, minlength=width).astype(np.float64)
    remaining = target.copy()
    choice = np.full(size, -1, dtype=np.int64)
    pure = kinds[g] == 1
    choice[g[pure]] = v[pure]
    np.subtract.at(remaining, v[pure], counts[pure])
    starts = np.searchsorted(g, np.arange(size))
    ends = np.searchsorted(g, np.arange(size), side="right")
    mixed = np.flatnonzero(kinds > 1)
    totals = np.bincount(groups, minlength=size)
    noise = rng.random(size)
    for group in mixed[np.lexsort((noise[mixed], -totals[mixed]))].tolist():
        vs, ns = v[starts[group]:ends[group]], counts[starts[group]:ends[group]]
        score = ns * np.clip(remaining[vs], 1e-9, None) / target[vs] * (1 + 1e-6 * rng.random(len(vs)))
        pick = int(vs[np.argmax(score)])
        choice[group] = pick
        remaining[pick] -= totals[group]
    return choice


def _repair_fd(codes: dict[str, np.ndarray], dc: DenialConstraint, rng: np.random.Generator) -> int:
    """Give every determinant group one value of the dependent Y (see ``_fd_choices``).

    Afterwards each group of equal (non-NULL) determinants holds one non-NULL value of Y, so
    no two rows agree on X and differ on Y; rows with a NULL in X or Y cannot violate and
    are left alone.  Only Y changes.  Returns the number of values changed.  The rows are
    generated determinant first: Y follows X, whatever X was sampled."""
    dependent = codes[dc.dependent]
    index, groups, values = _fd_groups(codes, dc, np.ones(len(dependent), dtype=bool))
    if len(index) == 0:
        return 0
    repaired = _fd_choices(groups, values, rng)[groups]
    dependent[index] = repaired
    return int((repaired != values).sum())


def _fd_order(fds: list[DenialConstraint]) -> list[DenialConstraint]:
    """Topological order: a DC whose dependent is a determinant of another goes first.

    Repairing X -> Y changes only Y, so it cannot break a DC repaired earlier unless that DC
    mentions Y; in this order Y can only be the determinant of a later DC (or the dependent of
    another fd with the same Y, or part of a cycle: those are settled by repeated passes, which
    only ever merge groups).  DCs in a cycle keep their given order."""
    pending = list(fds)
    ordered: list[DenialConstraint] = []
    while pending:
        ready = [dc for dc in pending
                 if not any(other is not dc and other.dependent in dc.determinants for other in pending)]
        step = ready[0] if ready else pending[0]
        ordered.append(step)
        pending.remove(step)
    return ordered


# ---------------------------------------------------------------- order

def _order_axes(codes: Mapping[str, np.ndarray], dc: DenialConstraint,
                rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """(row indices, group ids, key codes x, turned dependent codes t, sign) for the rows of
    ``rows`` (a mask) with no NULL in the DC's attributes, such that the DC forbids, within
    a group, x_i < x_j (x_i <= x_j for a non-strict key) together with t_i > t_j: the
    dependent must not fall (t = sign * y) as the key rises."""
    key_op = next(p.t1_op for p in dc.predicates if p.left_attr == dc.key)
    dep_op = next(p.t1_op for p in dc.predicates if p.left_attr == dc.dependent)
    if key_op in ("GT", "GTE"):                 # read with t1 and t2 swapped
        key_op, dep_op = _FLIP[key_op], _FLIP[dep_op]
    sign = -1 if dep_op in ("LT", "LTE") else 1
    valid = rows & (codes[dc.key] >= 0) & (codes[dc.dependent] >= 0)
    for attr in dc.determinants:
        valid &= codes[attr] >= 0
    index = np.flatnonzero(valid)
    groups = _group_ids([codes[attr][index] for attr in dc.determinants], len(index))
    return index, groups, codes[dc.key][index], sign * codes[dc.dependent][index], sign


def _count_dominance(x: np.ndarray, y: np.ndarray) -> int:
    """Pairs (i, j) with x_i < x_j and y_i < y_j (integer codes), O(n log² n).

    A pair with x_i < x_j is counted at exactly one bit k, the highest where x_i and x_j
    differ: there x_i has 0, x_j has 1 and both agree on the bits above k.  At each k the
    rows with bit 0 are sorted by (bits above k, y) and every row with bit 1 counts those in
    its block with a strictly smaller y by binary search."""
    if len(x) < 2:
        return 0
    x, y = x - x.min(), y - y.min()
    width = int(y.max()) + 1
    total = 0
    for k in range(int(x.max()).bit_length()):
        high = ((x >> k) & 1).astype(bool)
        block = x >> (k + 1)
        low_keys = np.sort(block[~high] * width + y[~high])
        base = block[high] * width
        total += int((np.searchsorted(low_keys, base + y[high]) - np.searchsorted(low_keys, base)).sum())
    return total


def _count_order(codes: Mapping[str, np.ndarray], dc: DenialConstraint, length: int) -> int:
    """Within each group: pairs with x_i < x_j and t_i > t_j (a dominance count; the strict
    key holds in one orientation only), plus, for a non-strict key, pairs of equal x and
    different t (they violate in one orientation)."""
    _, groups, x, t, _ = _order_axes(codes, dc, np.ones(length, dtype=bool))
    if len(groups) < 2:
        return 0
    # one group after another on the x axis: a pair from two groups is never x_i < x_j with
    # t_i > t_j once t is also shifted up by group (later groups above earlier ones)
    x_span = int(x.max() - x.min()) + 1
    t_span = int(t.max() - t.min()) + 1
    total = _count_dominance(groups * x_span + (x - x.min()), -(groups * t_span + (t - t.min())))
    # rows of two groups g < h: x_g < x_h and -t_g > -t_h... shifted t makes t_g < t_h, so
    # (i in g, j in h) has t_i < t_j: not counted.  Only pairs within a group remain.
    if not dc.strict_key:
        same_x = np.bincount(_group_ids([groups, x], len(x)))
        same_xt = np.bincount(_group_ids([groups, x, t - t.min()], len(x)))
        total += int((same_x * (same_x - 1) // 2).sum() - (same_xt * (same_xt - 1) // 2).sum())
    return total


def _repair_order(codes: dict[str, np.ndarray], dc: DenialConstraint) -> int:
    """Re-assign the dependent's sampled values within each group in the key's order.

    The rows of a group, sorted by (x, t), receive the group's own t values sorted: t never
    falls as x rises, so no pair violates, and the column keeps exactly the values it had
    (its marginal, and its marginal within every group, are unchanged).  Rows tied on x get
    a consecutive run of values in the order of their own t (the association with the other
    columns is kept as far as the constraint allows).  A non-strict key also forbids two
    rows of equal x with different t: such a run takes the value at its middle."""
    dependent = codes[dc.dependent]
    index, groups, x, t, sign = _order_axes(codes, dc, np.ones(len(dependent), dtype=bool))
    if len(index) < 2:
        return 0
    by_key = np.lexsort((t, x, groups))
    by_value = np.lexsort((t, groups))
    new_t = np.empty_like(t)
    new_t[by_key] = t[by_value]
    if not dc.strict_key:
        g, xs = groups[by_key], x[by_key]
        starts = np.flatnonzero(np.concatenate(([True], (g[1:] != g[:-1]) | (xs[1:] != xs[:-1]))))
        sizes = np.diff(np.append(starts, len(g)))
        middle = new_t[by_key][starts + sizes // 2]
        new_t[by_key] = np.repeat(middle, sizes)
    repaired = sign * new_t
    changed = int((repaired != dependent[index]).sum())
    dependent[index] = repaired
    return changed


# ---------------------------------------------------------------- unique

def _unique_groups(codes: Mapping[str, np.ndarray], attrs: Sequence[str], length: int,
                   also: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    valid = np.ones(length, dtype=bool)
    for attr in [*attrs, *([also] if also else [])]:
        valid &= codes[attr] >= 0
    index = np.flatnonzero(valid)
    return index, _group_ids([codes[attr][index] for attr in attrs], len(index))


def _count_unique(codes: Mapping[str, np.ndarray], dc: DenialConstraint, length: int) -> int:
    _, groups = _unique_groups(codes, dc.determinants, length, dc.dependent)
    same = np.bincount(groups) if len(groups) else np.zeros(0, dtype=np.int64)
    return int((same * (same - 1) // 2).sum())


def _repair_unique(codes: dict[str, np.ndarray], dc: DenialConstraint, free: Sequence[str],
                   candidates: Mapping[str, np.ndarray], rng: np.random.Generator,
                   dependents: set[str] = frozenset(), tick: Callable[[], None] = lambda: None) -> int:
    """Make the rows distinct on ``free`` (the attributes of ``dc`` that the fds do not
    determine, see ``free_attributes``; distinct there, they are distinct on all of ``dc``,
    whatever the fds then do to the others).  Every row that repeats another's combination
    gets a new value of one attribute (not the dependent of an fd when possible) that no row
    with its other values holds, drawn by the attribute's frequency among the rows (values
    seen only in the domain get weight 1); when all of those are taken, a new combination."""
    length = len(codes[dc.attributes[0]])
    attrs = list(free) or list(dc.determinants)
    index, groups = _unique_groups(codes, attrs, length, dc.dependent)
    if len(index) < 2:
        return 0
    order = rng.permutation(len(index))
    first = np.zeros(len(index), dtype=bool)
    first[order[np.unique(groups[order], return_index=True)[1]]] = True
    if first.all():
        return 0
    free = attrs
    change = max(attrs, key=lambda a: (a not in dependents, len(candidates[a])))
    others = [a for a in attrs if a != change]
    rest = _group_ids([codes[a][index] for a in others], len(index))
    used: dict[int, set] = {}
    combos = set()
    for r, v in zip(rest[first].tolist(), codes[change][index[first]].tolist()):
        used.setdefault(r, set()).add(v)
    for row in index[first].tolist():
        combos.add(tuple(int(codes[a][row]) for a in attrs))
    values = candidates[change]
    weight = np.bincount(np.searchsorted(values, codes[change][index]), minlength=len(values)) + 1.0
    changed = 0
    for r, row in zip(rest[~first].tolist(), index[~first].tolist()):
        taken = used.setdefault(r, set())
        allowed = ~np.isin(values, np.fromiter(taken, dtype=np.int64, count=len(taken)))
        if allowed.any():
            w = weight * allowed
            v = int(values[rng.choice(len(values), p=w / w.sum())])
            codes[change][row] = v
            taken.add(v)
        else:                                   # every value of `change` is taken here
            for _ in range(10_000):
                combo = {a: int(rng.choice(candidates[a])) if a in free else int(codes[a][row]) for a in attrs}
                if tuple(combo[a] for a in attrs) not in combos:
                    break
            else:
                raise DPError(f'denial constraint "{dc.text}" cannot hold on {length} rows: '
                              "too few distinct combinations of its columns", sqlstate="22023",
                              hint="Ask for fewer rows (rows => ...), or declare larger domains.")
            for a in attrs:
                codes[a][row] = combo[a]
        combos.add(tuple(int(codes[a][row]) for a in attrs))
        changed += 1
        if changed % 2000 == 0:
            tick()
    return changed


# ---------------------------------------------------------------- general

def breakers(dc: DenialConstraint) -> tuple[str, ...]:
    """Attributes of a general DC that can break every violation: those in one predicate only,
    a strict comparison or IQ of the attribute with itself, outside the EQ groups.  Within a
    group of rows equal on the EQ attributes, one value of such an attribute makes that
    predicate false for every pair."""
    eqs = {p.left_attr for p in dc.predicates if p.op == "EQ" and p.same_attribute}
    uses: dict[str, list[Predicate]] = {}
    for p in dc.predicates:
        for attr in dict.fromkeys((p.left_attr, p.right_attr)):
            uses.setdefault(attr, []).append(p)
    return tuple(a for a, ps in uses.items() if a not in eqs and len(ps) == 1
                 and ps[0].same_attribute and ps[0].op in ("IQ", "LT", "GT"))


def _group_mode_counts(groups: np.ndarray, values: np.ndarray, size: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(mode, count of the mode) per group id in 0..size-1 (-1, 0 for groups without rows)."""
    modes = np.full(size, -1, dtype=np.int64)
    counts = np.zeros(size, dtype=np.int64)
    if len(values):
        width = int(values.max()) + 1
        pairs, n = np.unique(groups * width + values, return_counts=True)
        g, v = pairs // width, pairs % width
        order = np.lexsort((rng.random(len(pairs)), n, g))
        last = order[np.flatnonzero(np.append(np.diff(g[order]) != 0, True))]
        modes[g[last]], counts[g[last]] = v[last], n[last]
    return modes, counts


def _code_view(codes: Mapping[str, np.ndarray], attrs: Iterable[str]) -> dict[str, np.ndarray]:
    """Codes as floats with NaN for NULL, for the pair enumerator (same order, same equality)."""
    return {a: np.where(codes[a] >= 0, codes[a], np.nan) for a in attrs}


def _repair_general(codes: dict[str, np.ndarray], dc: DenialConstraint, rng: np.random.Generator,
                    tick: Callable[[], None] = lambda: None) -> int:
    """In each group of rows equal on the DC's EQ attributes that holds a violating pair, give
    one breaker attribute (see ``breakers``) a single value: the group's most frequent one,
    for the breaker that changes the fewest values there.  Rows with NULL in the breaker
    cannot violate through it and keep it."""
    length = len(codes[dc.attributes[0]])
    view = _code_view(codes, dc.attributes)
    involved = np.zeros(length, dtype=bool)
    for first, second, hit in _general_violations(view, dc, np.ones(length, dtype=bool)):
        involved[np.broadcast_to(first, hit.shape)[hit]] = True
        involved[np.broadcast_to(second, hit.shape)[hit]] = True
        tick()                                  # a chunk of about _PAIR_CHUNK pairs
    if not involved.any():
        return 0
    eqs = tuple(dict.fromkeys(p.left_attr for p in dc.predicates if p.op == "EQ" and p.same_attribute))
    valid = np.ones(length, dtype=bool)
    for a in eqs:
        valid &= codes[a] >= 0
    index = np.flatnonzero(valid)
    groups = _group_ids([codes[a][index] for a in eqs], len(index))
    size = int(groups.max(initial=-1)) + 1
    bad = np.zeros(size, dtype=bool)
    bad[groups[involved[index]]] = True
    options = []
    for b in breakers(dc):
        present = codes[b][index] >= 0
        modes, counts = _group_mode_counts(groups[present], codes[b][index][present], size, rng)
        cost = np.bincount(groups[present], minlength=size) - counts
        options.append((b, modes, cost))
    costs = np.stack([cost for _, _, cost in options])
    pick = np.argmin(costs + rng.random(costs.shape) * 0.5, axis=0)
    changed = 0
    for k, (b, modes, cost) in enumerate(options):
        target = bad[groups] & (pick[groups] == k) & (codes[b][index] >= 0)
        rows = index[target]
        new = modes[groups[target]]
        changed += int((codes[b][rows] != new).sum())
        codes[b][rows] = new
    return changed


# ---------------------------------------------------------------- general

def _operand_codes(columns: Mapping[str, np.ndarray],
                   dc: DenialConstraint) -> list[tuple[Predicate, np.ndarray, np.ndarray]]:
    """(predicate, left codes, right codes) as int32, both sides on one scale per predicate;
    an attribute compared with itself is encoded once (the same array on both sides)."""
    encoded: dict[tuple[str, str, bool], list[np.ndarray]] = {}
    result = []
    for p in dc.predicates:
        key = (p.left_attr, p.right_attr, p.op in _ORDERED_OPS)
        if key not in encoded:
            arrays = [_column(columns, p.left_attr)]
            if not p.same_attribute:
                arrays.append(_column(columns, p.right_attr))
            what = " and ".join(f'column "{attr}"' for attr in dict.fromkeys(key[:2]))
            encoded[key] = [codes.astype(np.int32) for codes in _encode(arrays, key[2], what)]
        codes = encoded[key]
        result.append((p, codes[0], codes[-1]))
    return result


def _small_group_pairs(groups: np.ndarray, rows: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """All unordered pairs of ``rows`` (sorted by ``groups``) within equal groups, in chunks
    of about ``_PAIR_CHUNK`` pairs, as two arrays of row indices."""
    ends = np.searchsorted(groups, groups, side="right")
    partners = ends - np.arange(len(rows)) - 1          # later positions in the same group
    cumulative = np.cumsum(partners)
    start = 0
    while start < len(rows):
        done = int(cumulative[start - 1]) if start else 0
        stop = max(int(np.searchsorted(cumulative, done + _PAIR_CHUNK, side="right")), start + 1)
        counts = partners[start:stop]
        first = np.repeat(np.arange(start, stop), counts)
        offset = np.arange(len(first)) - np.repeat(np.cumsum(counts) - counts, counts)
        yield rows[first], rows[first + 1 + offset]
        start = stop


def _large_group_blocks(rows: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The pairs of one group as blocks: (block rows as a column, later rows as a row, mask
    of the cells above the diagonal); the two index arrays broadcast to the block's shape."""
    step = max(1, _PAIR_CHUNK // len(rows))
    for start in range(0, len(rows) - 1, step):
        stop = min(start + step, len(rows))
        upper = np.arange(start, len(rows))[None, :] > np.arange(start, stop)[:, None]
        yield rows[start:stop, None], rows[None, start:], upper


def _holds_either_way(operands: list[tuple[Predicate, np.ndarray, np.ndarray]],
                      first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Whether all predicates hold for (t1, t2) = (first, second) or (second, first), where
    ``first`` and ``second`` are row indices that broadcast against each other.

    Each operand gives the codes of t1's and of t2's attribute; a NULL code (-1) fails the
    comparison, except that same-attribute operands were filtered to non-NULL rows already."""
    gathered: dict[tuple[int, bool], np.ndarray] = {}

    def at(codes: np.ndarray, use_first: bool) -> np.ndarray:
        key = (id(codes), use_first)
        if key not in gathered:
            gathered[key] = codes[first if use_first else second]
        return gathered[key]

    shape = np.broadcast_shapes(first.shape, second.shape)
    forward = np.ones(shape, dtype=bool)
    backward = np.ones(shape, dtype=bool)
    for p, t1_codes, t2_codes in operands:
        compare = _NUMPY_OP[p.t1_op]
        for result, x, y in ((forward, at(t1_codes, True), at(t2_codes, False)),
                             (backward, at(t1_codes, False), at(t2_codes, True))):
            result &= compare(x, y)
            if not p.same_attribute:
                result &= (x >= 0) & (y >= 0)
    return forward | backward


def _general_violations(columns: Mapping[str, np.ndarray], dc: DenialConstraint,
                        rows: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The violating unordered pairs among ``rows`` (a mask), chunk by chunk, as
    (first rows, second rows, hit): the pairs are those of the broadcast row indices where
    the mask ``hit`` is true (see ``_violating_pairs``).

    Rows are first grouped by the attributes of the DC's ``EQ(t1.A,t2.A)`` predicates (only
    rows agreeing on them, none NULL, can violate); the other predicates are then checked in
    both orientations on every pair within a group, vectorized: explicit pair lists across
    small groups, row blocks against the later rows in a large group.  This is exact but
    costs one evaluation per candidate pair (a few ns): a DC without such an EQ on n rows
    checks n(n-1)/2 pairs, about 1.25e9 for n = 50,000 (several seconds)."""
    grouping, rest = [], []
    valid = rows.copy()
    for p, left, right in _operand_codes(columns, dc):
        if p.same_attribute:
            valid &= left >= 0              # t1.A op t2.A never holds for a row with NULL A
        if p.op == "EQ" and p.same_attribute:
            grouping.append(left)
        else:
            rest.append((p, *((left, right) if p.left_tuple == 1 else (right, left))))
    index = np.flatnonzero(valid)
    groups = _group_ids([codes[index] for codes in grouping], len(index))
    order = np.argsort(groups, kind="stable")
    groups, index = groups[order], index[order]
    starts = np.flatnonzero(np.concatenate(([True], groups[1:] != groups[:-1]))[:len(groups)])
    sizes = np.diff(np.append(starts, len(index)))
    small = np.repeat(sizes < _LARGE_GROUP, sizes)
    for first, second in _small_group_pairs(groups[small], index[small]):
        yield first, second, _holds_either_way(rest, first, second)
    for start, size in zip(starts[sizes >= _LARGE_GROUP].tolist(), sizes[sizes >= _LARGE_GROUP].tolist()):
        for first, second, upper in _large_group_blocks(index[start:start + size]):
            yield first, second, _holds_either_way(rest, first, second) & upper


def _violating_pairs(columns: Mapping[str, np.ndarray], dc: DenialConstraint,
                     rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The violating unordered pairs among ``rows`` (a mask) as two arrays of row indices."""
    firsts, seconds = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
    for first, second, hit in _general_violations(columns, dc, rows):
        firsts.append(np.broadcast_to(first, hit.shape)[hit])
        seconds.append(np.broadcast_to(second, hit.shape)[hit])
    return np.concatenate(firsts), np.concatenate(seconds)


# ---------------------------------------------------------------- public

def count_violations(columns: dict[str, np.ndarray], dc: DenialConstraint) -> int:
    """Unordered pairs of distinct rows that violate ``dc`` in at least one orientation.

    fd, unique and order DCs take O(n log n) (group counts; a dominance count); other DCs
    check every candidate pair, see ``_general_violations``."""
    length = _length(columns)
    if dc.kind == "row order":
        return _count_row_order(columns, dc)
    if dc.kind in ("fd", "unique", "order"):
        ordered = {dc.key, dc.dependent} if dc.kind == "order" else set()
        codes = {attr: _attr_codes(columns, attr, attr in ordered) for attr in dc.attributes}
        return _count_codes(codes, dc, length)
    everything = np.ones(length, dtype=bool)
    return sum(int(np.count_nonzero(hit)) for _, _, hit in _general_violations(columns, dc, everything))


def _count_codes(codes: Mapping[str, np.ndarray], dc: DenialConstraint, length: int,
                 tick: Callable[[], None] = lambda: None) -> int:
    if dc.kind == "fd":
        return _count_fd(codes, dc, length)
    if dc.kind == "unique":
        return _count_unique(codes, dc, length)
    if dc.kind == "order":
        return _count_order(codes, dc, length)
    view = _code_view(codes, dc.attributes)
    total = 0
    for _, _, hit in _general_violations(view, dc, np.ones(length, dtype=bool)):
        total += int(np.count_nonzero(hit))
        tick()
    return total


def unsupported(dc: DenialConstraint) -> str | None:
    """Why ``dc`` cannot be met by changing values (None when it can)."""
    if dc.kind != "general":
        return None
    if dc.one_row:
        return ("within one row, only one order between two different columns is kept "
                "(t1&GT(t1.a,t1.b): a is never above b)")
    if not all(p.same_attribute for p in dc.predicates):
        return "it compares two different columns; hard constraints compare a column with itself"
    if not breakers(dc):
        return ("no predicate of it can be made false for every pair by changing values: it needs a strict "
                "comparison (LT, GT) or IQ on a column that appears once in it, outside its EQ predicates")
    return None


def determined(dcs: Sequence[DenialConstraint]) -> set[str]:
    """Attributes that the fds make functions of others (given every fd's determinants)."""
    return {dc.dependent for dc in dcs if dc.kind == "fd"}


def free_attributes(dc: DenialConstraint, dcs: Sequence[DenialConstraint]) -> tuple[str, ...]:
    """The attributes of a unique DC that are not functions of its other ones through the fds:
    how many distinct combinations it can hold is the product of their domain sizes."""
    fds = [d for d in dcs if d.kind == "fd"]
    free = list(dc.determinants)
    changed = True
    while changed:
        changed = False
        for fd in fds:
            if fd.dependent in free and set(fd.determinants) <= set(free) - {fd.dependent}:
                free.remove(fd.dependent)
                changed = True
    return tuple(free)


def capacity(dcs: Sequence[DenialConstraint], sizes: Mapping[str, float]) -> list[tuple[DenialConstraint, float]]:
    """(unique DC, the most rows it allows) for every unique DC, given the number of values
    each attribute can take (``sizes``; math.inf for a continuous one)."""
    return [(dc, math.prod(float(sizes.get(a, math.inf)) for a in free_attributes(dc, dcs)))
            for dc in dcs if dc.kind == "unique"]


def _encode_with(original: np.ndarray, extra: Sequence | None, ordered: bool,
                 what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row codes, candidate codes, table code -> value) of a column and the domain values
    ``extra`` the repair may also use."""
    joined = original
    if extra is not None and len(extra):
        joined = np.concatenate([original, np.asarray(list(extra), dtype=original.dtype)])
    codes = _encode([joined], ordered, what)[0]
    valid = np.flatnonzero(codes >= 0)
    table = np.empty(int(codes.max(initial=-1)) + 1, dtype=joined.dtype)
    table[codes[valid]] = joined[valid]
    return codes[:len(original)].copy(), np.unique(codes[valid]), table


MAX_ROUNDS = 24             # passes over every DC before the repair gives up
ESCALATE = 6                # passes after which a DC still broken gets a constant column


def _freeze(codes: dict[str, np.ndarray], dc: DenialConstraint, frozen: set[str],
            rng: np.random.Generator, keys: set[str] = frozenset()) -> int:
    """Give one attribute that breaks every violation of ``dc`` (the dependent of an fd or an
    order, a breaker of a general DC) its most frequent value in every row, and remember it:
    no later repair changes it, and no pair can violate ``dc`` through it any more."""
    if dc.kind in ("fd", "order"):
        options = [dc.dependent]
    elif dc.kind == "general":
        options = list(breakers(dc))
    else:
        return 0
    options = ([a for a in options if a in frozen] or [a for a in options if a not in keys]
               or options)          # a constant column of a unique DC would shrink what it can hold
    best, best_cost, best_mode = None, None, None
    for a in options:
        present = codes[a][codes[a] >= 0]
        if not len(present):
            continue
        counts = np.bincount(present)
        mode = int(np.argmax(counts + rng.random(len(counts)) * 0.5))
        cost = len(present) - counts[mode]
        if best is None or cost < best_cost:
            best, best_cost, best_mode = a, cost, mode
    if best is None:
        return 0
    frozen.add(best)
    column = codes[best]
    changed = int(((column >= 0) & (column != best_mode)).sum())
    column[column >= 0] = best_mode
    return changed


def repair(columns: dict[str, np.ndarray], dcs: list[DenialConstraint], rng: np.random.Generator,
           domains: Mapping[str, Sequence] | None = None,
           tick: Callable[[], None] = lambda: None,
           bounds: Mapping[str, tuple[float, float, float]] | None = None,
           ) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """Make ``dcs`` hold on synthetic rows by changing values, never by deleting rows ->
    (columns, keep mask (all true), stats): the DCs over pairs of rows (``_repair_pairs``),
    then the orders within a row (``_repair_row_orders``; ``bounds``: a column's lower and
    upper bound and its step, the smallest difference between two of its values, 0 for
    floats).  A column in an order within a row is in no DC over pairs (``conflict``)."""
    why = conflict(dcs)
    if why:
        raise DPError(f"these denial constraints cannot be kept together: {why}",
                      hint="Drop one of them with dp.drop_constraint(id).", sqlstate="0A000")
    rows = [dc for dc in dcs if dc.kind == "row order"]
    pairs = [dc for dc in dcs if dc.kind != "row order"]
    result, keep, stats = _repair_pairs(columns, pairs, rng, domains, tick)
    changed = _repair_row_orders(result, rows, bounds or {}) if rows else {}
    before = {a for dc in rows for a in dc.attributes}
    stats["changed_values"] += int(sum(int(np.count_nonzero(_moved(columns[a], result[a]))) for a in before))
    by_id = {id(dc): entry for dc, entry in zip(pairs, stats["constraints"])}
    stats["constraints"] = [by_id.get(id(dc)) or {"constraint": dc.text, "kind": dc.kind,
                                                  "changed_values": changed.get(id(dc), 0), "dropped_rows": 0}
                            for dc in dcs]
    return result, keep, stats


def conflict(dcs: Sequence[DenialConstraint]) -> str | None:
    """Why a set of DCs cannot be repaired one kind after the other (None when it can)."""
    rows = {a for dc in dcs if dc.kind == "row order" for a in dc.attributes}
    pairs = {a for dc in dcs if dc.kind != "row order" for a in dc.attributes}
    shared = sorted(rows & pairs)
    if shared:
        return (f"column {shared[0]} is in an order within a row and in a constraint over pairs of rows; "
                "a column may be in one kind only")
    return None


def _moved(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Cells of a numeric column (NaN = NULL) that the row-order repair changed."""
    a, b = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    return ~((a == b) | (np.isnan(a) & np.isnan(b)))


def _count_row_order(columns: Mapping[str, np.ndarray], dc: DenialConstraint) -> int:
    """Rows whose lower column is above its higher one (or equal, when strict), compared as
    codes on one ordered scale (-1: NULL)."""
    low, high = _encode([_column(columns, dc.key), _column(columns, dc.dependent)], True,
                        f'columns "{dc.key}" and "{dc.dependent}"')
    present = (low >= 0) & (high >= 0)
    broken = low >= high if dc.strict_key else low > high
    return int(np.count_nonzero(present & broken))


ROW_ORDER_ROUNDS = 64       # passes over the orders within a row (a chain of k columns needs about k)


def row_order_feasible(dc: DenialConstraint, bounds: Mapping[str, tuple[float, float, float]]) -> bool:
    """Can any row meet ``dc`` within the columns' bounds (the lower column's lower bound, plus a
    step when strict, at most the higher column's upper bound)?"""
    lo_low = bounds.get(dc.key, (-math.inf, math.inf, 0.0))[0]
    hi_high = bounds.get(dc.dependent, (-math.inf, math.inf, 0.0))[1]
    if dc.strict_key:
        return _up(lo_low, bounds.get(dc.dependent, (0, 0, 0.0))[2]) <= hi_high
    return lo_low <= hi_high


def _up(value, step: float):
    """The next value after ``value`` on a column whose values lie ``step`` apart (0: floats)."""
    return value + step if step > 0 else np.nextafter(value, np.inf)


def _down(value, step: float):
    return value - step if step > 0 else np.nextafter(value, -np.inf)


def _repair_row_order(columns: dict[str, np.ndarray], dc: DenialConstraint,
                      bounds: Mapping[str, tuple[float, float, float]]) -> int:
    """One pass of ``dc`` over the rows (numbers, NaN = NULL): a row whose lower column is above
    its higher one has the two values swapped (each then clipped to its own column's bounds);
    where the order still fails (equal under a strict order, or a clip), the higher value moves
    up to the lower one's next value, at most to its upper bound, then the lower one down.
    Returns the rows changed."""
    low = np.asarray(columns[dc.key], dtype=np.float64).copy()
    high = np.asarray(columns[dc.dependent], dtype=np.float64).copy()
    l_lo, l_hi, _ = bounds.get(dc.key, (-math.inf, math.inf, 0.0))
    h_lo, h_hi, h_step = bounds.get(dc.dependent, (-math.inf, math.inf, 0.0))

    def broken(a, b):
        return ~np.isnan(a) & ~np.isnan(b) & ((a >= b) if dc.strict_key else (a > b))

    rows = np.flatnonzero(broken(low, high))
    if not rows.size:
        return 0
    a, b = low[rows], high[rows]
    a, b = np.clip(np.minimum(a, b), l_lo, l_hi), np.clip(np.maximum(a, b), h_lo, h_hi)
    need = _up(a, h_step) if dc.strict_key else a
    b = np.where(b < need, np.minimum(need, h_hi), b)
    top = _down(b, h_step) if dc.strict_key else b
    a = np.where(a > top, np.maximum(top, l_lo), a)
    low[rows], high[rows] = a, b
    columns[dc.key], columns[dc.dependent] = low, high
    return int(rows.size)


def _repair_row_orders(columns: dict[str, np.ndarray], dcs: Sequence[DenialConstraint],
                       bounds: Mapping[str, tuple[float, float, float]]) -> dict[int, int]:
    """Every order within a row, pass after pass until none changes a row (chains such as
    order <= ship <= receipt settle like a bubble sort); {id(dc): rows changed}."""
    for dc in dcs:
        if not row_order_feasible(dc, bounds):
            raise DPError(f'denial constraint "{dc.text}" cannot hold in any row: {dc.key} can never be below '
                          f"{dc.dependent} within their bounds", sqlstate="23514",
                          hint="Declare bounds that allow the order (dp.set_bounds), or drop the constraint.")
    changed = {id(dc): 0 for dc in dcs}
    for _ in range(ROW_ORDER_ROUNDS):
        moved = 0
        for dc in dcs:
            count = _repair_row_order(columns, dc, bounds)
            changed[id(dc)] += count
            moved += count
        if not moved:
            return changed
    left = [dc.text for dc in dcs if _count_row_order(columns, dc)]
    raise DPError(f"orders within a row could not all be met after {ROW_ORDER_ROUNDS} passes: {', '.join(left)}",
                  hint="These orders contradict each other (a cycle, or bounds too narrow); drop one of them.",
                  sqlstate="23514")


def _repair_pairs(columns: dict[str, np.ndarray], dcs: list[DenialConstraint], rng: np.random.Generator,
                  domains: Mapping[str, Sequence] | None = None,
                  tick: Callable[[], None] = lambda: None) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """Make the DCs over pairs of rows hold by changing values, never by deleting rows ->
    (columns, keep mask (all true), stats).

    Passes, each over every DC in this order, until a pass finds nothing to change:
    1. unique DCs (all EQ): a row repeating a combination gets a new value of a free
       attribute (see ``_repair_unique``), from the column or from ``domains``;
    2. fds in topological order: the dependent takes its determinant group's mode, so it is
       generated determinant first (chains, overlaps and multi-column determinants);
    3. orders (within groups): the dependent's values re-assigned in the key's order;
    4. other DCs: one breaker attribute made constant in each violating group.
    A repair leaves its own DC without violations, so a pass only fails to settle when a
    later repair changed an attribute of an earlier DC.  ``tick`` is called after each step
    (the server checks for a cancel there).  Only ``rng`` breaks ties, so a seeded
    generator gives a reproducible result.

    stats: ``changed_values`` (cells that differ from the input), ``dropped_rows`` (0),
    ``rounds`` (passes) and ``constraints``: per DC, in the given order, its text, kind and
    the values it changed (summed over passes)."""
    length = _length(columns)
    for dc in dcs:
        why = unsupported(dc)
        if why:
            raise DPError(f'denial constraint "{dc.text}" cannot be kept without deleting rows: {why}',
                          hint="Remove it with dp.drop_constraint, or rewrite it.", sqlstate="0A000")
    ordered_attrs = {a for dc in dcs for p in dc.predicates if p.op in _ORDERED_OPS for a in (p.left_attr,)}
    attrs = list(dict.fromkeys(a for dc in dcs for a in dc.attributes))
    domains = domains or {}
    codes, candidates, tables, before = {}, {}, {}, {}
    for a in attrs:
        extra = domains.get(a)
        codes[a], candidates[a], tables[a] = _encode_with(_column(columns, a), extra, a in ordered_attrs,
                                                          f'column "{a}"')
        before[a] = codes[a].copy()
    steps = ([dc for dc in dcs if dc.kind == "unique"] + _fd_order([dc for dc in dcs if dc.kind == "fd"])
             + [dc for dc in dcs if dc.kind == "order"] + [dc for dc in dcs if dc.kind == "general"])
    free = {id(dc): free_attributes(dc, dcs) for dc in steps if dc.kind == "unique"}
    dependents = determined(dcs)
    keys = {a for dc in dcs if dc.kind == "unique" for a in dc.attributes}
    changed = {id(dc): 0 for dc in dcs}
    rounds, clean, frozen = 0, not steps, set()
    while not clean and rounds < MAX_ROUNDS:
        rounds += 1
        moved = 0
        for dc in steps:
            if dc.kind == "unique":
                count = _repair_unique(codes, dc, free[id(dc)], candidates, rng, dependents | frozen, tick)
            elif dc.kind == "fd":
                count = _repair_fd(codes, dc, rng)
            elif dc.kind == "order":
                count = _repair_order(codes, dc)
            else:
                count = _repair_general(codes, dc, rng, tick)
            changed[id(dc)] += count
            moved += count
            tick()
        left = [dc for dc in steps if _count_codes(codes, dc, length, tick)] if moved else []
        clean = not left
        if left and rounds >= ESCALATE:
            # the repairs keep undoing each other: settle each DC still broken for good by
            # giving one of its attributes a single value in the whole table
            for dc in left:
                count = _freeze(codes, dc, frozen, rng, keys)
                changed[id(dc)] += count
    if not clean:
        left = [dc.text for dc in steps if _count_codes(codes, dc, length)]
        raise DPError(f"denial constraints could not all be met after {rounds} passes: {', '.join(left)}",
                      hint="These constraints pull the same columns different ways; drop one of them.",
                      sqlstate="23514")
    result = dict(columns)
    for a in attrs:
        moved = np.flatnonzero(before[a] != codes[a])
        if len(moved):
            column = np.asarray(columns[a]).copy()
            column[moved] = tables[a][codes[a][moved]]
            result[a] = column
    stats = {
        "changed_values": int(sum((before[a] != codes[a]).sum() for a in attrs)),
        "dropped_rows": 0,
        "rounds": rounds,
        "constraints": [{"constraint": dc.text, "kind": dc.kind, "changed_values": changed[id(dc)],
                         "dropped_rows": 0} for dc in dcs],
    }
    return result, np.ones(length, dtype=bool), stats
