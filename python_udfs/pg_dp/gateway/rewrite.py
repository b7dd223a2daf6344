"""The exact query of a question, as native SQL over the protected rows: filter first, then bound.

It computes exact per-group statistics with native aggregates and pg_dp's exact C accumulators
(dp_internal.exact_*), over rows clamped to public bounds and, when the dataset has a privacy unit,
with each unit's contribution bounded: at most k rows per group and g groups (plan.bounds).

Filter first.  The WHERE clause is applied to the rows before anything is bounded, so a unit's
kept rows are chosen among the rows the question is about (a 2025 chart keeps each customer's 2025
orders, not its first ones).

Unbiased bounding.  When a unit has more than g groups (or a group more than k rows), the groups (rows)
it keeps are chosen uniformly at random, never by key or physical order: each group of a unit gets the
priority hashtextextended(unit || keys, seed) and each row hashtextextended(its ctid, seed) (a join's
row: its text), and a unit keeps its g groups and k rows of lowest priority.  The seed is the
dataset's secret (dp_internal.dataset_secrets, readable by the extension owner only, read by the
query itself so it never appears in a statement's text): no analyst can predict or steer the
choice, and it is stable while the data is unchanged (a question asked again keeps the same rows).
The choice shapes bounding only; it is never released (the noise comes from OpenDP).  A kept group
is any group with probability min(1, g / groups of its unit), so every group loses the same expected
share: the share dropped is estimated by contributions.py and shown with the answer.

Bounded copies (bounded.py) hold, per key set and data version, every row with its priorities, its
ranks within its unit when nothing is filtered (dp_row, dp_group), and its unit's group count and
largest group (dp_groups, dp_maxrows).  A question without WHERE keeps the rows ranked within the
bounds (native speed); with a WHERE, units within the bounds keep every row that passes, units beyond
them whose kept rows all pass keep those (one scan finds the others), and only the remaining units are
ranked again over their filtered rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.catalog import TableMeta
from .parse import cast, sql_literal
from .sqltext import operator, quote_ident
from .where import where_sql

if TYPE_CHECKING:
    from .plan import Plan

ROW_ID = "dp_ctid"          # a path table's row identity, carried by relation_sql


def relation_sql(meta: TableMeta) -> str:
    """The FROM item of a protected table: the table, or, for a table reaching its privacy unit through
    foreign keys, a sub-select of its rows joined along the path with the unit as one more column
    (named as the unit) and the row's identity (dp_ctid).  Inner joins on the keys' own equality
    operators: each row reaches at most one row of the next table (the referenced columns are unique);
    a row whose key is NULL or points nowhere belongs to no unit and is left out, as synthesis does.
    A NULL unit at the path's end is one unit, bounded like any other, as on the unit's own table."""
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
    return (f"(SELECT dp_path0.*, {previous}.{unit} AS {unit}, dp_path0.ctid AS {ROW_ID} "
            f"FROM {table} AS dp_path0{''.join(joins)})")


def _source(plan: Plan) -> tuple[str, str]:
    """(FROM item, its alias) of the question's rows."""
    q, meta = plan.query, plan.meta
    if meta.source_sql:
        return f"({meta.source_sql})", quote_ident("dp_join")
    return relation_sql(meta), quote_ident(q.alias or meta.table)


def seed_sql(dataset: str) -> str:
    """The dataset's secret seed, read by the query (an InitPlan: once per statement)."""
    return (f"(SELECT s.seed FROM dp_internal.dataset_secrets s WHERE s.dataset "
            f"OPERATOR(pg_catalog.=) {cast(sql_literal(dataset), 'text')})")


def _priorities(plan: Plan, alias: str, keys: list[str]) -> list[str]:
    """The group and row priorities (keyed hashes) of the rows of `alias`."""
    meta = plan.meta
    seed = seed_sql(meta.dataset)
    unit = quote_ident(meta.unit_column)
    parts = ", ".join([cast(unit, "text")] + [f"'|', {cast(k, 'text')}" for k in keys])
    group = f"pg_catalog.hashtextextended(pg_catalog.concat({parts}), {seed}) AS dp_gp"
    if meta.source_sql:
        identity = cast(alias, "text")               # a join's row: its text (equal rows are interchangeable)
    elif meta.unit_path:
        identity = cast(f"{alias}.{ROW_ID}", "text")
    else:
        identity = cast(f"{alias}.ctid", "text")
    row = f"pg_catalog.hashtextextended({identity}, {seed}) AS dp_rp"
    return [group, row]


def _ranks(unit: str, keys: list[str]) -> list[str]:
    """A row's rank within its (unit, keys) and its group's rank within its unit, by priority."""
    ranks = [f"pg_catalog.row_number() OVER (PARTITION BY {', '.join([unit] + keys)} ORDER BY dp_rp) AS dp_row"]
    if keys:
        ranks.append(f"pg_catalog.dense_rank() OVER (PARTITION BY {unit} ORDER BY {', '.join(['dp_gp'] + keys)})"
                     " AS dp_group")
    return ranks


def _bounding(plan: Plan, keys: list[str]) -> list[str]:
    """The outer filter of a unit-bounded rewrite: the ranks computed by _ranks."""
    where = [operator("dp_row", "<=", str(int(plan.bounds.rows)))]
    if keys:
        where.append(operator("dp_group", "<=", str(int(plan.bounds.groups))))
    return where


def _select_list(plan: Plan, keys: list[str], only: str | None = None) -> str:
    """Keys as text, the rows, each measurement's exact state (of the rows where `only`, if given)."""
    count = f"pg_catalog.count(*) FILTER (WHERE {only})" if only else "pg_catalog.count(*)"
    items = [cast(k, "text") for k in keys] + [count] + [m.sql(only) for m in plan.measurements]
    return ", ".join(f"{item} AS c{i}" for i, item in enumerate(items))


def _needed(plan: Plan) -> list[str]:
    unit = {plan.meta.unit_column} if plan.meta.unit_column else set()
    return [quote_ident(c) for c in sorted(plan.query.columns_used() | unit)]


def rewrite(plan: Plan) -> str:
    """The exact query of a plan, filtered then bounded per query (rewrite_on_copy reads a copy)."""
    q, meta = plan.query, plan.meta
    rel, alias = _source(plan)
    where = f" WHERE {where_sql(q, meta)}" if q.where is not None else ""
    keys = [kp.sql for kp in plan.keys]
    select = _select_list(plan, keys)
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    if not meta.unit_column:
        return f"SELECT {select} FROM {rel} AS {alias}{where}{group}"
    needed = ", ".join(_needed(plan))
    unit = quote_ident(meta.unit_column)
    inner = f"SELECT {needed}, {', '.join(_priorities(plan, alias, keys))} FROM {rel} AS {alias}{where}"
    ranked = f"SELECT {needed}, {', '.join(_ranks(unit, keys))} FROM ({inner}) AS {alias}"
    return f"SELECT {select} FROM ({ranked}) AS {alias} WHERE {' AND '.join(_bounding(plan, keys))}{group}"


def bounded_copy_sql(plan: Plan) -> str | None:
    """SELECT building a table's bounded copy for this question's key set, or None (joins, no unit).

    Every row with its priorities (dp_gp, dp_rp), its ranks within its unit on the whole table
    (dp_row, dp_group), the rows of its group (dp_n), and its unit's number of groups and largest
    group (dp_groups, dp_maxrows): computed once per data version; questions filter on them."""
    meta = plan.meta
    if not meta.unit_column or meta.source_sql:
        return None
    unit = quote_ident(meta.unit_column)
    keys = [kp.sql for kp in plan.keys]
    partition = ", ".join([unit] + keys)
    base = f"SELECT t.*, {', '.join(_priorities(plan, 't', keys))} FROM {relation_sql(meta)} AS t"
    group_rank = (f"pg_catalog.dense_rank() OVER (PARTITION BY {unit} ORDER BY {', '.join(['b.dp_gp'] + keys)})"
                  if keys else cast("1", "int8"))
    ranked = (f"SELECT b.*, pg_catalog.row_number() OVER (PARTITION BY {partition} ORDER BY b.dp_rp) AS dp_row, "
              f"pg_catalog.count(*) OVER (PARTITION BY {partition}) AS dp_n, {group_rank} AS dp_group "
              f"FROM ({base}) AS b")
    return (f"SELECT s.*, pg_catalog.max(s.dp_group) OVER (PARTITION BY {unit}) AS dp_groups, "
            f"pg_catalog.max(s.dp_n) OVER (PARTITION BY {unit}) AS dp_maxrows, "
            f"pg_catalog.hashtextextended(pg_catalog.concat(CAST({unit} AS pg_catalog.text)), 0) AS dp_uh "
            f"FROM ({ranked}) AS s")


MAX_RANKED_UNITS = 10_000      # units ranked again by name; beyond, every unit beyond the bounds is
PARTS = ("a", "b", "c")        # a bounded copy's tables: see copy_parts_sql


def _within(plan: Plan) -> tuple[str, str]:
    """(unit within the bounds on the whole table, row kept on the whole table) over a copy's columns."""
    k, g = str(int(plan.bounds.rows)), str(int(plan.bounds.groups))
    within = f"({operator('dp_groups', '<=', g)} AND {operator('dp_maxrows', '<=', k)})"
    kept = f"({operator('dp_row', '<=', k)} AND {operator('dp_group', '<=', g)})"
    return within, kept


def copy_table(name: str, part: str) -> str:
    """The qualified name of one table of the bounded copy `name` (bounded.py's relname)."""
    return f"dp_internal.{quote_ident(f'{name}_{part}')}"


def copy_parts_sql(plan: Plan, name: str) -> list[tuple[str, str]]:
    """(table, SELECT) splitting the copy's rows (bounded_copy_sql, kept in its table "all") into its three
    tables, for the plan's bounds: a, the rows of units within the bounds (all kept, whatever the filter);
    b, the rows kept of the units beyond them; c, their other rows.  A question reads the parts it needs."""
    within, kept = _within(plan)
    source = copy_table(name, "all")
    return [(copy_table(name, "a"), f"SELECT * FROM {source} WHERE {within}"),
            (copy_table(name, "b"), f"SELECT * FROM {source} WHERE NOT {within} AND {kept}"),
            (copy_table(name, "c"), f"SELECT * FROM {source} WHERE NOT {within} AND NOT {kept}")]


def first_pass_on_copy(plan: Plan, name: str) -> str | None:
    """With a WHERE: one scan that answers the question when no unit beyond the bounds has a kept row
    the WHERE rejects (the usual case for a filter on what units are, or none): the statistics of the
    rows that pass, among the rows of units within the bounds and the kept rows of the others, and in
    a last column the kept rows that do not pass.  That column is 0 everywhere, or the question needs
    the units it names ranked again (disturbed_units_sql, rewrite_on_copy)."""
    if plan.query.where is None or not plan.meta.unit_column:
        return None
    q = plan.query
    alias = quote_ident(q.alias or plan.meta.table)
    keys = [kp.sql for kp in plan.keys]
    where = f"({where_sql(q, plan.meta)})"
    needed = ", ".join(_needed(plan))
    a, b = copy_table(name, "a"), copy_table(name, "b")
    rows = (f"SELECT {needed}, TRUE AS dp_pass FROM {a} AS {alias} WHERE {where} UNION ALL "
            f"SELECT {needed}, {where} IS TRUE AS dp_pass FROM {b} AS {alias}")
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    extra = len(keys) + 1 + len(plan.measurements)
    return (f"SELECT {_select_list(plan, keys, 'dp_pass')}, pg_catalog.count(*) FILTER (WHERE NOT dp_pass) "
            f"AS c{extra} FROM ({rows}) AS {alias}{group}")


def disturbed_units_sql(plan: Plan, name: str) -> str | None:
    """Units beyond the bounds whose rows kept on the whole table do not all pass the WHERE: only those
    must be ranked again over their filtered rows (at most MAX_RANKED_UNITS + 1 of them, as dp_uh)."""
    if plan.query.where is None or not plan.meta.unit_column:
        return None
    where = where_sql(plan.query, plan.meta)
    return (f"SELECT DISTINCT dp_uh AS c0 FROM {copy_table(name, 'b')} AS {quote_ident(plan.query.alias or plan.meta.table)} "
            f"WHERE ({where}) IS NOT TRUE LIMIT {MAX_RANKED_UNITS + 1}")


def rewrite_on_copy(plan: Plan, name: str, disturbed: list[int] | None = None) -> str:
    """The rewrite of a unit-bounded question over its bounded copy (bounded_copy_sql, copy_parts_sql).

    `name` is the copy's name (bounded.py); `disturbed`: the units disturbed_units_sql found (None: not
    looked for, or too many).  The statement has the same WHERE and aggregates as plan.sql, over tables
    with the same columns (and more): preparing plan.sql validates it.

    Filter first, per unit: a unit within the bounds on the whole table keeps every row that passes;
    a unit beyond them whose kept rows all pass keeps exactly those (they are still its lowest-priority
    groups and rows among the rows that pass); the others are ranked again over the rows that pass."""
    q = plan.query
    alias = quote_ident(q.alias or plan.meta.table)
    keys = [kp.sql for kp in plan.keys]
    select = _select_list(plan, keys)
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    needed = ", ".join(_needed(plan))
    a, b, c = (copy_table(name, p) for p in PARTS)
    if not plan.meta.unit_column:       # copies are made for units only; a row is its own unit
        where = f" WHERE ({where_sql(q, plan.meta)})" if q.where is not None else ""
        return f"SELECT {select} FROM {a} AS {alias}{where}{group}"
    if q.where is None:         # the ranks on the whole table are the ranks of the question's rows
        return f"SELECT {select} FROM (SELECT {needed} FROM {a} UNION ALL SELECT {needed} FROM {b}) AS {alias}{group}"
    where = f"({where_sql(q, plan.meta)})"
    if disturbed is not None and not disturbed:
        return (f"SELECT {select} FROM (SELECT {needed} FROM {a} AS {alias} WHERE {where} UNION ALL "
                f"SELECT {needed} FROM {b} AS {alias} WHERE {where}) AS {alias}{group}")
    unit = quote_ident(plan.meta.unit_column)
    one = cast("1", "int8")
    ranks = _ranks(unit, keys)
    if not keys:
        ranks.append(f"{one} AS dp_group")
    parts = [f"SELECT {needed}, {one} AS dp_row, {one} AS dp_group FROM {a} AS {alias} WHERE {where}"]
    if disturbed is None:       # every unit beyond the bounds is ranked again over its rows that pass
        again = f"SELECT {needed}, dp_rp, dp_gp FROM {b} AS {alias} WHERE {where} UNION ALL " \
                f"SELECT {needed}, dp_rp, dp_gp FROM {c} AS {alias} WHERE {where}"
    else:
        listed = cast(sql_literal("{" + ",".join(str(int(u)) for u in disturbed) + "}"), "int8[]")
        parts.append(f"SELECT {needed}, {one} AS dp_row, {one} AS dp_group FROM {b} AS {alias} "
                     f"WHERE {where} AND NOT dp_uh OPERATOR(pg_catalog.=) ANY ({listed})")
        again = " UNION ALL ".join(
            f"SELECT {needed}, dp_rp, dp_gp FROM {t} AS {alias} WHERE dp_uh OPERATOR(pg_catalog.=) ANY ({listed}) "
            f"AND {where}" for t in (b, c))
    parts.append(f"SELECT {needed}, {', '.join(ranks)} FROM ({again}) AS {alias}")
    return (f"SELECT {select} FROM ({' UNION ALL '.join(parts)}) AS {alias} "
            f"WHERE {' AND '.join(_bounding(plan, keys))}{group}")


def contribution_sql(plan: Plan, thresholds: tuple[list, list, list]) -> str:
    """Per unit over the key set's rows (not filtered): its number of groups, its mean rows per group
    and its largest group, as bin numbers of the estimate's histograms (width_bucket over
    `thresholds`), counted: c0..c3 = (groups bin, mean bin, largest bin, units)."""
    rel, alias = _source(plan)
    meta = plan.meta
    unit = quote_ident(meta.unit_column)
    keys = [kp.sql for kp in plan.keys]
    group = ", ".join([unit] + keys)
    per_group = f"SELECT {unit} AS dp_unit, pg_catalog.count(*) AS n FROM {rel} AS {alias} GROUP BY {group}"
    per_unit = ("SELECT pg_catalog.count(*) AS ng, pg_catalog.sum(a.n) AS nr, pg_catalog.max(a.n) AS nm "
                f"FROM ({per_group}) AS a GROUP BY a.dp_unit")
    g, a, m = (cast(sql_literal("{" + ",".join(repr(float(x)) for x in t) + "}"), "float8[]") for t in thresholds)
    return ("SELECT pg_catalog.width_bucket(CAST(b.ng AS pg_catalog.float8), " + g + ") AS c0, "
            "pg_catalog.width_bucket(CAST(b.nr AS pg_catalog.float8) OPERATOR(pg_catalog./) "
            "CAST(b.ng AS pg_catalog.float8), " + a + ") AS c1, "
            "pg_catalog.width_bucket(CAST(b.nm AS pg_catalog.float8), " + m + ") AS c2, "
            f"pg_catalog.count(*) AS c3 FROM ({per_unit}) AS b GROUP BY 1, 2, 3")
