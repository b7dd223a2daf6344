"""Denial constraints (Kamino format): parse, count violations, repair synthetic rows.

A denial constraint (DC) is written ``t1&t2&OP(t1.a,t2.b)&...`` with OP one of EQ, IQ (not
equal), LT, GT, LTE, GTE; it forbids every ordered pair of distinct rows (t1, t2) for which
all its predicates hold.  Every predicate compares an attribute of t1 with one of t2 (no
constants, no predicate within one tuple).  NULL (``None`` or a float NaN) follows SQL: a
comparison with NULL is not true, so it never makes a predicate hold.

A table is ``dict[str, np.ndarray]`` (column name -> 1-D array, equal lengths).  Three kinds of
DC get fast exact algorithms; everything else is handled by brute force over row pairs:

* ``fd``: ``EQ(A1)&...&EQ(Ak)&IQ(Y)`` (each predicate on one attribute of both tuples), the
  functional dependency A1..Ak -> Y;
* ``order``: two strict comparisons LT/GT on two different attributes a and b, e.g.
  ``LT(a)&LT(b)`` forbids a_i < a_j together with b_i < b_j; repair changes b;
* ``general``: any other DC.
"""

from __future__ import annotations

import heapq
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from pg_dp.errors import DPError

OPS = ("EQ", "IQ", "LT", "GT", "LTE", "GTE")
_FLIP = {"EQ": "EQ", "IQ": "IQ", "LT": "GT", "GT": "LT", "LTE": "GTE", "GTE": "LTE"}
_NUMPY_OP = {"EQ": np.equal, "IQ": np.not_equal, "LT": np.less, "GT": np.greater,
             "LTE": np.less_equal, "GTE": np.greater_equal}
_ORDERED_OPS = frozenset({"LT", "GT", "LTE", "GTE"})
_HINT = ("a denial constraint reads t1&t2&OP(t1.attr,t2.attr)[&OP(...)...] "
         "with OP one of EQ, IQ, LT, GT, LTE, GTE, e.g. t1&t2&EQ(t1.zip,t2.zip)&IQ(t1.city,t2.city)")
_PREDICATE = re.compile(r"(?P<op>[A-Za-z]+)\s*\(\s*(?P<left>[^,()]*?)\s*,\s*(?P<right>[^,()]*?)\s*\)")
_OPERAND = re.compile(r"t(?P<tuple>\d+)\.(?P<attr>[^\s,()&]+)")
_PAIR_CHUNK = 1 << 22       # row pairs evaluated at once by the brute-force path
_LARGE_GROUP = 1024         # groups this large are checked in blocks of rows x later rows
_MAX_ROUNDS = 4             # passes of value repair before violators are dropped


# ---------------------------------------------------------------- parse

@dataclass(frozen=True)
class Predicate:
    """``op(t<left_tuple>.<left_attr>, t<right_tuple>.<right_attr>)``; the two tuples differ."""
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


def _parse_predicate(text: str, field: str) -> Predicate:
    match = _PREDICATE.fullmatch(field)
    if match is None:
        raise _syntax_error(text, f'"{field}" is not a predicate OP(t1.attr,t2.attr)')
    if match["op"] not in OPS:
        raise _syntax_error(text, f'unknown operator "{match["op"]}" in "{field}"')
    left_tuple, left_attr = _parse_operand(text, field, match["left"])
    right_tuple, right_attr = _parse_operand(text, field, match["right"])
    if left_tuple == right_tuple:
        raise _syntax_error(text, f'"{field}" compares t{left_tuple} with itself; a predicate compares t1 with t2')
    return Predicate(match["op"], left_tuple, left_attr, right_tuple, right_attr)


def _classify(predicates: tuple[Predicate, ...]) -> tuple[str, tuple[str, ...], str | None]:
    """(kind, determinants, dependent); see the module docstring for the kinds."""
    if not all(p.same_attribute for p in predicates):
        return "general", (), None
    ops = [p.op for p in predicates]
    if set(ops) <= {"EQ", "IQ"} and ops.count("IQ") == 1 and "EQ" in ops:
        determinants = tuple(dict.fromkeys(p.left_attr for p in predicates if p.op == "EQ"))
        dependent = next(p.left_attr for p in predicates if p.op == "IQ")
        return "fd", determinants, dependent
    if (len(predicates) == 2 and set(ops) <= {"LT", "GT"}
            and predicates[0].left_attr != predicates[1].left_attr):
        return "order", (), predicates[1].left_attr
    return "general", (), None


def parse(text: str, columns: Iterable[str] | None = None) -> DenialConstraint:
    """Parse one DC; with ``columns``, every attribute must be one of them (else SQLSTATE 42703)."""
    fields = [field.strip() for field in text.split("&")]
    if fields[:2] != ["t1", "t2"]:
        head = "&".join(fields[:2])
        raise _syntax_error(text, f'it must start with the tuple variables "t1&t2", not "{head}"')
    if len(fields) < 3:
        raise _syntax_error(text, "it has no predicate")
    predicates = tuple(_parse_predicate(text, field) for field in fields[2:])
    if columns is not None:
        known = set(columns)
        for attr in dict.fromkeys(a for p in predicates for a in (p.left_attr, p.right_attr)):
            if attr not in known:
                raise DPError(f'denial constraint "{text}": column "{attr}" does not exist',
                              hint=f"the table's columns are: {', '.join(sorted(known))}",
                              sqlstate="42703")
    kind, determinants, dependent = _classify(predicates)
    canonical = "&".join(["t1", "t2", *(p.text for p in predicates)])
    return DenialConstraint(canonical, predicates, kind, determinants, dependent)


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


def _group_modes(groups: np.ndarray, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The most frequent value of each group, indexed by group id; ties broken at random."""
    width = int(values.max()) + 1
    pairs, counts = np.unique(groups * width + values, return_counts=True)
    pair_groups, pair_values = pairs // width, pairs % width
    order = np.lexsort((rng.random(len(pairs)), counts, pair_groups))
    last = order[np.flatnonzero(np.append(np.diff(pair_groups[order]) != 0, True))]
    modes = np.full(int(groups.max()) + 1, -1, dtype=np.int64)
    modes[pair_groups[last]] = pair_values[last]
    return modes


def _repair_fd(codes: dict[str, np.ndarray], dc: DenialConstraint, rng: np.random.Generator) -> int:
    """Set the dependent Y of every row to the mode of Y within its determinant group.

    Afterwards each group of equal (non-NULL) determinants holds one non-NULL value of Y, so
    no two rows agree on X and differ on Y; rows with a NULL in X or Y cannot violate and
    are left alone.  Only Y changes.  Returns the number of values changed."""
    dependent = codes[dc.dependent]
    index, groups, values = _fd_groups(codes, dc, np.ones(len(dependent), dtype=bool))
    if len(index) == 0:
        return 0
    repaired = _group_modes(groups, values, rng)[groups]
    dependent[index] = repaired
    return int((repaired != values).sum())


def _fd_violators(codes: Mapping[str, np.ndarray], dc: DenialConstraint, keep: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """Mask of kept rows whose Y differs from their group's mode: without them the fd holds."""
    index, groups, values = _fd_groups(codes, dc, keep)
    bad = np.zeros(len(keep), dtype=bool)
    if len(index):
        bad[index] = _group_modes(groups, values, rng)[groups] != values
    return bad


def _fd_order(fds: list[DenialConstraint]) -> list[DenialConstraint]:
    """Topological order: a DC whose dependent is a determinant of another goes first.

    Repairing X -> Y changes only Y, so it cannot break a DC repaired earlier unless that DC
    mentions Y; in this order Y can only be the determinant of a later DC (or the dependent of
    another fd with the same Y, or part of a cycle: those are settled by repeated passes and,
    failing that, by dropping rows).  DCs in a cycle keep their given order."""
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
                rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(row indices, a codes, b codes, concordant) for the rows of ``rows`` (a mask) with
    non-NULL a and b.  The DC forbids a_i < a_j with b_i < b_j when concordant, a_i < a_j with
    b_i > b_j otherwise: ``GT(a)&GT(b)`` is ``LT(a)&LT(b)`` read with t1 and t2 swapped."""
    first, second = dc.predicates
    a, b = codes[first.left_attr], codes[second.left_attr]
    index = np.flatnonzero(rows & (a >= 0) & (b >= 0))
    return index, a[index], b[index], first.t1_op == second.t1_op


def _oriented(b: np.ndarray, concordant: bool) -> np.ndarray:
    """b codes turned so that the DC forbids a_i < a_j with b_i < b_j (an involution)."""
    return b if concordant else -b


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
    """A strict first predicate holds in at most one orientation of a pair, so the unordered
    count is the number of ordered pairs with a_i < a_j and b_i < b_j (b_i > b_j)."""
    _, a, b, concordant = _order_axes(codes, dc, np.ones(length, dtype=bool))
    return _count_dominance(a, _oriented(b, concordant))


def _bound_below(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each row, min{b_i : a_i < a} (the int64 maximum where no row has a smaller a)."""
    order = np.argsort(a, kind="stable")
    a_sorted = a[order]
    starts = np.flatnonzero(np.concatenate(([True], a_sorted[1:] != a_sorted[:-1])))
    group_min = np.minimum.reduceat(b[order], starts)
    smaller = np.concatenate(([np.iinfo(np.int64).max], np.minimum.accumulate(group_min)[:-1]))
    bound = np.empty(len(a), dtype=np.int64)
    bound[order] = np.repeat(smaller, np.diff(np.append(starts, len(a))))
    return bound


def _repair_order(codes: dict[str, np.ndarray], dc: DenialConstraint) -> int:
    """Clamp b so that it never increases with a (decreases, for a discordant DC).

    Concordant (``LT(a)&LT(b)``): b_j := min(b_j, M(a_j)) with M(a) = min{b_i : a_i < a} over
    the original values.  For a_i < a_j: b'_j <= b_i and b'_j <= M(a_j) <= M(a_i), so
    b'_j <= min(b_i, M(a_i)) = b'_i and b'_i < b'_j never holds.  (M is the same whether taken
    over original or clamped values, since clamping never goes below it.)  A discordant DC is
    the same with b negated, i.e. b_j := max(b_j, max{b_i : a_i < a_j}).  The new codes are
    codes of values already in the column; rows with NULL in a or b are untouched."""
    b_codes = codes[dc.dependent]
    index, a, b, concordant = _order_axes(codes, dc, np.ones(len(b_codes), dtype=bool))
    if len(index) == 0:
        return 0
    turned = _oriented(b, concordant)
    clamped = _oriented(np.minimum(turned, _bound_below(a, turned)), concordant)
    b_codes[index] = clamped
    return int((clamped != b).sum())


def _order_violators(codes: Mapping[str, np.ndarray], dc: DenialConstraint, keep: np.ndarray) -> np.ndarray:
    """Mask of kept rows j with some kept i, a_i < a_j and b_i < b_j (turned b), i.e. b_j > M(a_j).

    Without them the DC holds: every remaining row has b_j <= M(a_j), and M is computed over
    a superset of the remaining rows, so the argument of ``_repair_order`` applies."""
    index, a, b, concordant = _order_axes(codes, dc, keep)
    bad = np.zeros(len(keep), dtype=bool)
    if len(index):
        turned = _oriented(b, concordant)
        bad[index] = turned > _bound_below(a, turned)
    return bad


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


def _greedy_drop(first: np.ndarray, second: np.ndarray, length: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Mask of rows to drop so that no pair (first[k], second[k]) keeps both rows: repeatedly
    drop the row in most remaining pairs (ties at random) until every pair has lost a row."""
    degree = (np.bincount(first, minlength=length) + np.bincount(second, minlength=length)).tolist()
    source = np.concatenate((first, second))
    target = np.concatenate((second, first))
    order = np.argsort(source, kind="stable")
    target = target[order].tolist()
    starts = np.searchsorted(source[order], np.arange(length + 1)).tolist()
    tie = rng.random(length).tolist()
    heap = [(-degree[row], tie[row], row) for row in np.flatnonzero(np.array(degree)).tolist()]
    heapq.heapify(heap)
    dropped = np.zeros(length, dtype=bool)
    while heap:
        negative, _, row = heapq.heappop(heap)
        if dropped[row] or -negative != degree[row] or degree[row] == 0:
            continue
        dropped[row] = True
        for other in target[starts[row]:starts[row + 1]]:
            if not dropped[other]:
                degree[other] -= 1
                if degree[other]:
                    heapq.heappush(heap, (-degree[other], tie[other], other))
        degree[row] = 0
    return dropped


# ---------------------------------------------------------------- public

def count_violations(columns: dict[str, np.ndarray], dc: DenialConstraint) -> int:
    """Unordered pairs of distinct rows that violate ``dc`` in at least one orientation.

    fd and order DCs take O(n log n) (group counts; a dominance count); other DCs check every
    candidate pair, see ``_general_violations``."""
    length = _length(columns)
    if dc.kind == "fd":
        codes = {attr: _attr_codes(columns, attr, False) for attr in dc.attributes}
        return _count_fd(codes, dc, length)
    if dc.kind == "order":
        codes = {attr: _attr_codes(columns, attr, True) for attr in dc.attributes}
        return _count_order(codes, dc, length)
    everything = np.ones(length, dtype=bool)
    return sum(int(np.count_nonzero(hit)) for _, _, hit in _general_violations(columns, dc, everything))


def _value_rounds(codes: dict[str, np.ndarray], steps: list[DenialConstraint],
                  changed: dict[int, int], rng: np.random.Generator) -> tuple[int, bool]:
    """Repair values with the fd and order DCs ``steps``, in that order, in passes, at most
    ``_MAX_ROUNDS`` -> (passes, whether all hold).

    Each repair leaves its own DC with zero violations, so after a pass every DC holds unless
    a later repair in the pass changed one of its attributes; only then is another pass run."""
    for passes in range(1, _MAX_ROUNDS + 1):
        disturbed = False
        for k, dc in enumerate(steps):
            count = _repair_fd(codes, dc, rng) if dc.kind == "fd" else _repair_order(codes, dc)
            changed[id(dc)] += count
            disturbed |= count > 0 and any(dc.dependent in earlier.attributes for earlier in steps[:k])
        if not disturbed:
            return passes, True
    return _MAX_ROUNDS, False


def _decode(original: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The column with the values whose code changed replaced by a value of the new code."""
    changed = np.flatnonzero(before != after)
    if len(changed) == 0:
        return original
    valid = np.flatnonzero(before >= 0)
    holder = np.empty(int(before.max()) + 1, dtype=np.int64)
    holder[before[valid]] = valid
    result = original.copy()
    result[changed] = original[holder[after[changed]]]
    return result


def repair(columns: dict[str, np.ndarray], dcs: list[DenialConstraint],
           rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """Make ``dcs`` hold on synthetic rows -> (columns, keep mask, stats).

    1. Values: fd DCs in topological order (dependent := mode within its group), then order
       DCs (dependent clamped); passes repeat while a later repair broke an earlier DC (two
       fds with one dependent, an fd cycle, an order DC changing an fd attribute), at most
       ``_MAX_ROUNDS`` times.  New values are values already present in the column.
    2. Rows: if violations remain, each fd / order DC in turn drops its violating rows.
    3. Rows: each general DC drops rows greedily (the row in most violating pairs first); this
       enumerates violating pairs and is slow for large tables, see ``_general_violations``.
    Dropping rows never creates a violation, so once a DC holds it keeps holding through the
    later steps: on the kept rows every DC has zero violations.  Only ``rng`` breaks ties
    (modes, which row to drop), so a seeded generator gives a reproducible result.

    stats: ``changed_values`` (cells that differ from the input), ``dropped_rows``,
    ``rounds`` (value passes) and ``constraints``: per DC, in the given order, its text, kind
    and the values it changed (summed over passes) and rows it dropped."""
    length = _length(columns)
    fds = _fd_order([dc for dc in dcs if dc.kind == "fd"])
    orders = [dc for dc in dcs if dc.kind == "order"]
    ordered_attrs = {attr for dc in orders for attr in dc.attributes}
    value_attrs = dict.fromkeys(attr for dc in fds + orders for attr in dc.attributes)
    before = {attr: _attr_codes(columns, attr, attr in ordered_attrs) for attr in value_attrs}
    codes = {attr: values.copy() for attr, values in before.items()}
    changed = {id(dc): 0 for dc in dcs}
    dropped = {id(dc): 0 for dc in dcs}
    rounds, clean = _value_rounds(codes, fds + orders, changed, rng) if value_attrs else (0, True)

    keep = np.ones(length, dtype=bool)
    if not clean:
        for dc in fds + orders:
            bad = _fd_violators(codes, dc, keep, rng) if dc.kind == "fd" else _order_violators(codes, dc, keep)
            dropped[id(dc)] += int(bad.sum())
            keep &= ~bad

    result = dict(columns)
    for attr in value_attrs:
        result[attr] = _decode(np.asarray(columns[attr]), before[attr], codes[attr])
    for dc in (dc for dc in dcs if dc.kind == "general"):
        first, second = _violating_pairs(result, dc, keep)
        if len(first):
            bad = _greedy_drop(first, second, length, rng)
            dropped[id(dc)] += int(bad.sum())
            keep &= ~bad

    stats = {
        "changed_values": int(sum((before[attr] != codes[attr]).sum() for attr in value_attrs)),
        "dropped_rows": int(length - keep.sum()),
        "rounds": rounds,
        "constraints": [{"constraint": dc.text, "kind": dc.kind, "changed_values": changed[id(dc)],
                         "dropped_rows": dropped[id(dc)]} for dc in dcs],
    }
    return result, keep, stats
