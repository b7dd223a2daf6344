"""The exact query of a question, as native SQL over the protected rows.

It computes exact per-group statistics with native aggregates and pg_dp's exact C accumulators
(dp_internal.exact_*), over rows clamped to public bounds and, when the dataset has a privacy unit,
with each unit's contribution bounded (at most `max_rows_per_unit` rows per group and
`max_groups_per_unit` groups).  Nothing here adds noise: answer.py releases the statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.catalog import TableMeta
from .parse import cast
from .sqltext import operator, quote_ident
from .where import where_sql

if TYPE_CHECKING:
    from .plan import Plan


def bounded_copy_sql(plan: Plan) -> str | None:
    """SELECT building a table's bounded copy for this query's GROUP BY columns, or None.

    The copy holds every row with its rank within its (unit, keys) and, with a GROUP BY,
    the rank of its keys within its unit: the window functions of the rewrite, computed
    once per data version instead of once per query.  Queries then filter the copy on
    the ranks (and on their WHERE, applied after the bounding: a unit still contributes
    at most the bounded rows).  Joins are always bounded per query.
    """
    meta = plan.meta
    if not meta.unit_column or meta.source_sql:
        return None
    unit = quote_ident(meta.unit_column)
    keys = [kp.sql for kp in plan.keys]
    windows = _windows(unit, keys)
    return f"SELECT t.*, {', '.join(windows)} FROM {relation_sql(meta)} AS t"


def relation_sql(meta: TableMeta) -> str:
    """The FROM item of a protected table: the table, or, for a table reaching its privacy unit through
    foreign keys, a sub-select of its rows joined along the path with the unit as one more column
    (named as the unit).  Inner joins on the keys' own equality operators: each row reaches at most
    one row of the next table (the referenced columns are unique); a row whose key is NULL or points
    nowhere belongs to no unit and is left out, as synthesis does.  A NULL unit at the path's end is
    one unit, bounded like any other, as on the unit's own table."""
    table = f"{quote_ident(meta.schema)}.{quote_ident(meta.table)}"
    if not meta.unit_path:
        return table
    joins, previous = [], "dp_path0"
    for i, step in enumerate(meta.unit_path, 1):
        alias = f"dp_path{i}"
        on = " AND ".join(f"{alias}.{quote_ident(ref)} {op} {previous}.{quote_ident(col)}"
                          for col, ref, op in zip(step["cols"], step["refcols"], step["ops"]))
        joins.append(f" JOIN {quote_ident(step['schema'])}.{quote_ident(step['table'])} AS {alias} ON {on}")
        previous = alias
    unit = quote_ident(meta.unit_column)
    return f"(SELECT dp_path0.*, {previous}.{unit} AS {unit} FROM {table} AS dp_path0{''.join(joins)})"


def _windows(unit: str, keys: list[str]) -> list[str]:
    windows = [f"pg_catalog.row_number() OVER (PARTITION BY {', '.join([unit] + keys)}) AS dp_row"]
    if keys:
        windows.append(f"pg_catalog.dense_rank() OVER (PARTITION BY {unit} ORDER BY {', '.join(keys)}) AS dp_group")
    return windows


def _bounding(plan: Plan, keys: list[str]) -> list[str]:
    """The outer filter of a unit-bounded rewrite: the ranks computed by _windows."""
    where = [operator("dp_row", "<=", str(int(plan.rows_per_unit)))]
    if keys:
        where.append(operator("dp_group", "<=", str(int(plan.groups_per_unit))))
    return where


def _select_list(plan: Plan, keys: list[str]) -> str:
    items = [cast(k, "text") for k in keys] + ["pg_catalog.count(*)"] + [m.sql for m in plan.measurements]
    return ", ".join(f"{item} AS c{i}" for i, item in enumerate(items))


def rewrite_on_copy(plan: Plan, copy: str) -> str:
    """The rewrite of a unit-bounded query over its bounded copy (see bounded_copy_sql).

    `copy` is the copy's (quoted, qualified) name.  The statement is complete and has the
    same WHERE and aggregates as plan.sql, over a table with the same columns: preparing
    plan.sql validates it too.
    """
    q = plan.query
    alias = quote_ident(q.alias or plan.meta.table)
    keys = [kp.sql for kp in plan.keys]
    where = _bounding(plan, keys)
    if q.where is not None:
        where.append(f"({where_sql(q, plan.meta)})")
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    return f"SELECT {_select_list(plan, keys)} FROM {copy} AS {alias} WHERE {' AND '.join(where)}{group}"


def rewrite(plan: Plan) -> str:
    """The exact query of a plan, bounded per query (rewrite_on_copy reads a bounded copy instead)."""
    q, meta = plan.query, plan.meta
    if meta.source_sql:
        rel, alias = f"({meta.source_sql})", quote_ident("dp_join")
    else:
        rel, alias = relation_sql(meta), quote_ident(q.alias or meta.table)
    where = f" WHERE {where_sql(q, meta)}" if q.where is not None else ""
    keys = [kp.sql for kp in plan.keys]
    select = _select_list(plan, keys)
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    if not meta.unit_column:
        return f"SELECT {select} FROM {rel} AS {alias}{where}{group}"
    needed = sorted(q.columns_used() | {meta.unit_column})
    inner_cols = ", ".join(quote_ident(c) for c in needed)
    windows = _windows(quote_ident(meta.unit_column), keys)
    inner = f"SELECT {inner_cols}, {', '.join(windows)} FROM {rel} AS {alias}{where}"
    return f"SELECT {select} FROM ({inner}) AS {alias} WHERE {' AND '.join(_bounding(plan, keys))}{group}"
