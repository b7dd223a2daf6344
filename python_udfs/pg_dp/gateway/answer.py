"""Releasing an answer: exact per-group statistics in, noisy rows out (OpenDP, through dp.release).

release_core makes the released core (what the cache keeps: one row per released key, noisy
measurements); present turns a core, fresh or cached, into the statement's rows (its select list,
ORDER BY, LIMIT: post-processing).
"""

from __future__ import annotations

import json

from ..core.errors import DPError
from ..dp import mechanisms, release
from . import keyexprs
from .plan import QUANTILE_CANDIDATES, Measurement, Plan
from .where import column_type

def _parse_sum_state(text: str):
    n, s1, s2, lower_units, upper_units, gexp, _flags, _eps = text.strip("()").split(",")
    return int(n), int(s1), int(s2), int(lower_units), int(upper_units), int(gexp)


def _parse_hist_state(text: str) -> list[int]:
    head, body = text.strip("()").split(";")
    counts = [0] * QUANTILE_CANDIDATES
    for item in body.split():
        i, c = item.split(":")
        counts[int(i)] = int(c)
    return counts


def release_core(plan: Plan, rows: list[tuple]) -> list[list]:
    """The released core from the exact per-group statistics `rows` (keys..., count, stats...):
    one row per released key, its keys in core_groups() order, then the noisy measurements in
    core_order() -- what the cache keeps (see present)."""
    nkeys = len(plan.query.group_by)
    numeric = [kp.numeric for kp in plan.keys or ()] or [False] * nkeys

    def canon(key):
        return tuple(keyexprs.canonical(v, n) for v, n in zip(key, numeric))

    if plan.public_keys is not None:
        # the public set's texts are released; exact rows are matched by value (20 and 20.0 are one bin)
        exact = {canon(r[:nkeys]): r[nkeys:] for r in rows}
        keys = [tuple(None if v is None else str(v) for v in k) for k in plan.public_keys]
    else:
        exact = {tuple(r[:nkeys]): r[nkeys:] for r in rows}
        counts = {json.dumps(k): int(v[0]) for k, v in exact.items()}
        kept = mechanisms.select_partitions(counts, plan.groups_per_unit, plan.rows_per_unit,
                                            plan.selection_epsilon, plan.selection_delta)
        keys = sorted((tuple(json.loads(k)) for k in kept), key=_sort_key_tuple)
    groups, order = plan.core_groups(), plan.core_order()
    core = []
    for key in keys:
        stats = exact.get(canon(key) if plan.public_keys is not None else key)
        released = [_release_one(plan, plan.measurements[j], None if stats is None else stats[j + 1])
                    for j in order]
        core.append([key[plan.query.group_by.index(g)] for g in groups] + released)
    return core


def present(plan: Plan, core: list[list]) -> list[list]:
    """The statement's rows from a released core (fresh or cached): its select list, ORDER BY, LIMIT."""
    groups, order = plan.core_groups(), plan.core_order()
    position = {plan.measurements[j].output: len(groups) + i for i, j in enumerate(order)}
    answer = [[row[groups.index(out.group_column)] if out.group_column else row[position[i]]
               for i, out in enumerate(plan.query.outputs)] for row in core]
    return _order_and_limit(plan, answer)


def _release_one(plan: Plan, m: Measurement, stat):
    eps = m.epsilon / plan.groups_per_unit
    k = plan.rows_per_unit
    if m.func == "count":
        n = int(stat) if stat is not None else 0
        return int(release.release_stats("count", n, 0, 0, 0, 0, 0, eps, k))
    if m.func == "count_distinct":      # a unit adds at most one to the count of distinct units
        n = int(stat) if stat is not None else 0
        return int(release.release_stats("count", n, 0, 0, 0, 0, 0, eps, 1))
    if m.func == "quantile":
        counts = _parse_hist_state(stat) if stat is not None else [0] * QUANTILE_CANDIDATES
        return release.release_quantile([sum(counts)] + counts, eps, m.lower, m.upper, m.q, k)
    gexp, lower_units, upper_units = mechanisms.grid(m.lower, m.upper)
    if stat is None:
        n = s1 = s2 = 0
    else:
        n, s1, s2, lu, uu, ge = _parse_sum_state(stat)
        if (lu, uu, ge) != (lower_units, upper_units, gexp):
            raise DPError("internal error: grid mismatch between C and Python", sqlstate="XX000")
    value = release.release_stats(m.func, n, s1, s2, lower_units, upper_units, gexp, eps, k)
    if m.func == "sum":
        # free post-processing: a sum of values within [lower, upper] has the sign the bounds allow
        if m.lower >= 0:
            value = max(0.0, value)
        if m.upper <= 0:
            value = min(0.0, value)
    if m.result_type == "bigint":
        return int(round(value))
    return value


def _sort_key_value(v):
    if v is None:
        return (1, 0, "")
    if isinstance(v, (int, float)):
        return (0, v, "")
    try:
        return (0, float(v), "")
    except ValueError:
        return (0, 0, str(v))


def _sort_key_tuple(t):
    return tuple(_sort_key_value(v) for v in t)


def _output_sort_key(plan: Plan, index: int):
    """How an output column orders: a public key set in its own order (enum order), numbers as numbers."""
    out = plan.query.outputs[index]
    if out.group_column is not None and out.group_column not in plan.query.key_exprs:
        col = plan.meta.columns[out.group_column]
        # an enum orders as declared; a text column with a CHECK IN list orders as text, as natively
        if col.get("public_values") and column_type(col["type"])[0] == "other":
            rank = {v: i for i, v in enumerate(col["public_values"])}
            return lambda v: (1, 0, "") if v is None else (0, rank.get(v, len(rank)), str(v))
    return _sort_key_value


def _order_and_limit(plan: Plan, answer: list[list]) -> list[list]:
    for index, desc in reversed(plan.query.order_by):
        key = _output_sort_key(plan, index)
        answer.sort(key=lambda r: key(r[index]), reverse=desc)
    if plan.query.limit is not None:
        answer = answer[: plan.query.limit]
    return answer
