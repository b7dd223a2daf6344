"""Bind an analyzed query to the catalog, rewrite it to native SQL, release the answer.

The rewrite computes exact per-group statistics with native aggregates and
pg_dp's exact C accumulators (dp_internal.exact_*), over rows clamped to
public bounds and, when the dataset has a privacy unit, with each unit's
contribution bounded (at most `max_rows_per_unit` rows per group and
`max_groups_per_unit` groups).  The answer is then released in Python: one
OpenDP mechanism per aggregate and group, and DP partition selection when
the group keys are not public.

Every piece of generated SQL is written so that the session it runs in cannot
change its meaning: names double-quoted, strings by parse.sql_literal (E'' when
a backslash is present), types as pg_catalog.<internal name>, functions as
pg_catalog.f / dp_internal.f (least, greatest are keywords), comparison
operators as OPERATOR(pg_catalog.op), and IN, BETWEEN, IS DISTINCT FROM spelt
out with those operators (their own syntax looks "=" up by name).  The WHERE is
written from the validated tree by where_sql, never by re-tokenising the
analyst's text, with the column-type rule of analyze.py's docstring.
"""

import copy
import dataclasses
from dataclasses import dataclass
from decimal import Decimal
import itertools
import json
import math
import re
import struct

from .. import mechanisms, release
from ..errors import DPError
from .analyze import MAX_DEPTH, Query, column_refs, constant_type, function_operand
from . import keys as keyexprs
from .parse import ast, cast, pg_type, sql_literal, too_complex, visitors
from pglast.enums import A_Expr_Kind, BoolExprType, BoolTestType, NullTestType  # noqa: E402

INVALID = "22023"
NOT_SUPPORTED = "0A000"
UNDEFINED_COLUMN = "42703"
DATATYPE_MISMATCH = "42804"
INVALID_TEXT = "22P02"
OUT_OF_RANGE = "22003"
MAX_PUBLIC_GROUPS = 100_000
QUANTILE_CANDIDATES = 1025

INTEGER_TYPES = {"smallint", "integer", "bigint"}
FLOAT_TYPES = {"real", "double precision"}


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def operator(left: str, op: str, right: str) -> str:
    return f"{left} OPERATOR(pg_catalog.{op}) {right}"


def float_literal(x: float) -> str:
    return cast(sql_literal(repr(float(x))), "float8")


def numeric_literal(x: float) -> str:
    return cast(sql_literal(repr(float(x))), "numeric")


@dataclass
class TableMeta:
    """What the catalog says about a protected table (plain values, no plpy)."""
    relid: int
    schema: str
    table: str
    dataset: str
    unit_column: str | None
    max_rows_per_unit: int
    max_groups_per_unit: int
    data_version: int
    columns: dict            # name -> {"type", "notnull", "lower", "upper", "public_values"}
    source_sql: str | None = None   # a join, seen as one table whose columns are "alias.column"
    # a table reaching its unit through foreign keys: [{"schema", "table", "cols", "refcols", "ops"}, ...]
    # (catalog.resolve_path); unit_column then names the unit found at the path's end
    unit_path: list | None = None


@dataclass
class Measurement:
    output: int              # index in the select list
    func: str
    column: str | None
    epsilon: float           # for the whole aggregate (all groups)
    lower: float | None = None
    upper: float | None = None
    q: float | None = None
    result_type: str = "double precision"
    sql: str = ""


@dataclass
class Plan:
    query: Query
    meta: TableMeta
    sql: str
    measurements: list[Measurement]
    columns: list[tuple[str, str]]          # output (name, type)
    group_types: list[str]
    public_keys: list[tuple] | None         # every released key, when all keys are public
    selection_epsilon: float = 0.0
    selection_delta: float = 0.0
    rows_per_unit: int = 1
    groups_per_unit: int = 1
    epsilon: Decimal = Decimal(0)    # charged, exact
    delta: Decimal = Decimal(0)
    keys: list = None                # a keys.KeyPlan per GROUP BY key (plain columns too)
    timezone: str = "UTC"            # the analyst's session TimeZone, under which the exact query runs

    @property
    def zone_dependent(self) -> bool:
        """Whether the answer can depend on the session TimeZone: a timestamptz key, or a WHERE that
        reads a time in the zone (a timestamptz constant without an offset, TO_TIMESTAMP, a date or
        timestamp against a timestamptz).  A timestamptz compared with an instant does not."""
        return any(k.zone for k in self.keys or ()) or (
            self.query.where is not None and where_zone_dependent(self.query, self.meta))

    @property
    def key_set(self) -> str:
        """The GROUP BY keys as the bounded copies know them (with the zone where it matters)."""
        keys = ",".join(self.query.group_by)
        return f"{keys}@{self.timezone}" if any(k.zone for k in self.keys or ()) else keys

    @property
    def mechanism(self) -> str:
        parts = [f"{m.func}(eps={m.epsilon:g})" for m in self.measurements]
        if self.selection_epsilon:
            parts.append(f"partition_selection(eps={self.selection_epsilon:g},delta={self.selection_delta:g})")
        return "; ".join(parts)

    def cache_identity(self) -> str:
        """What is released, not how the statement is written (DESIGN.md #7): the data version, the
        tables, the filter, the set of group keys and the multiset of measurements (aggregate,
        column, bounds, epsilon), with how keys are chosen.  Aliases, the order of the select
        list, ORDER BY and LIMIT are post-processing, so a chart asked again in another spelling
        is the same question (and costs nothing)."""
        # written from the tree: qualifiers, spacing and redundant casts of constants are gone
        where = None
        if self.query.where is not None:
            where = where_sql(dataclasses.replace(self.query, where=_canonical_constants(self.query.where)), self.meta)
        return json.dumps([self.meta.dataset, self.meta.data_version, self.meta.schema, self.meta.table,
                           # a join's columns are named by their aliases; one table is meta's, however written
                           [list(t) for t in self.query.tables] if self.query.join_columns else None,
                           self.query.join_columns, where,
                           self.core_groups(), [list(_measured(self.measurements[j])) for j in self.core_order()],
                           self.selection_epsilon, self.selection_delta, self.rows_per_unit, self.groups_per_unit,
                           self.public_keys is not None,
                           # timestamptz keys and constants are read in the session's TimeZone
                           self.timezone if self.zone_dependent else None]
                          # a path table: whose rows are whose (re-protecting bumps the data version too)
                          + ([self.meta.unit_path] if self.meta.unit_path else []), sort_keys=True, default=str)

    def core_groups(self) -> list[str]:
        """The group keys in the released core's order (sorted: the order they are written in is free)."""
        return sorted(set(self.query.group_by))

    def core_order(self) -> list[int]:
        """Indexes of the measurements in the released core's order."""
        return sorted(range(len(self.measurements)), key=lambda j: json.dumps(_measured(self.measurements[j]),
                                                                             default=str))


class _CanonicalConstants(visitors.Visitor):
    """'x'::text and 'x'::varchar are 'x'; CAST('60' AS integer) (a bound $1, or PostgreSQL's own
    deparse of a sub-select) is 60: the same rows, so the same measurement."""

    TEXT = {"text", "varchar"}
    INTEGER = {"int2", "int4", "int8", "smallint", "integer", "bigint"}

    def visit_TypeCast(self, ancestors, node):
        arg, names = node.arg, [n.sval for n in node.typeName.names]
        if not isinstance(arg, ast.A_Const) or arg.isnull or not isinstance(arg.val, ast.String) \
                or node.typeName.arrayBounds or node.typeName.typmods or names[:-1] not in ([], ["pg_catalog"]):
            return None
        text = arg.val.sval
        if names[-1] in self.TEXT:
            return ast.A_Const(val=ast.String(sval=text))
        if names[-1] in self.INTEGER and re.fullmatch(r"-?[1-9][0-9]{0,17}|0", text):
            return ast.A_Const(val=ast.Integer(ival=int(text)))
        return None


def _canonical_constants(node):
    node = copy.deepcopy(node)
    return _CanonicalConstants()(node) or node


def _measured(m: "Measurement") -> tuple:
    return (m.func, m.column, m.epsilon, m.lower, m.upper, m.q, m.result_type)


def bind_join(query: Query, metas: list[TableMeta]) -> TableMeta:
    """See a join of two tables of one dataset, on their privacy unit, as one table.

    Columns become "alias.column"; bare names are resolved to the one table that
    has them.  `query` is changed in place to use those names.
    """
    (a, b), aliases = metas, [t[2] or t[1] for t in query.tables]
    if a.dataset != b.dataset:
        raise DPError(f"{a.table} and {b.table} belong to different datasets ({a.dataset}, {b.dataset})",
                      hint="Only tables of one dataset can be joined.", sqlstate=NOT_SUPPORTED)
    if not a.unit_column or not b.unit_column:
        raise DPError("tables can be joined only in a dataset with a privacy unit",
                      hint="Without one, a join could count a person several times.", sqlstate=NOT_SUPPORTED)
    if aliases[0] == aliases[1]:
        raise DPError("the two tables of a join need different aliases", hint="e.g. FROM t AS a JOIN t AS b",
                      sqlstate=NOT_SUPPORTED)
    child = _path_join(query, metas, aliases)
    if child is None:
        units = {f"{aliases[0]}.{a.unit_column}", f"{aliases[1]}.{b.unit_column}"}
        if set(query.join_columns) != units:
            raise DPError("a JOIN must be on the privacy unit of both tables",
                          hint=f"Write ON {' = '.join(sorted(units))}.", sqlstate=NOT_SUPPORTED)
    columns = {}
    for alias, meta in zip(aliases, metas):
        for name, col in meta.columns.items():
            columns[f"{alias}.{name}"] = col

    def canonical(name: str) -> str:
        if name in columns:
            return name
        owners = [f"{alias}.{name}" for alias, meta in zip(aliases, metas) if name in meta.columns]
        if name == a.unit_column == b.unit_column:
            owners = owners[:1]
        if len(owners) != 1:
            raise DPError(f"column {name!r} is {'ambiguous' if owners else 'unknown'} in the join",
                          hint="Qualify it with its table's alias.", sqlstate="42702" if owners else UNDEFINED_COLUMN)
        return owners[0]

    for key in query.key_exprs.values():
        key.column = canonical(key.column) if key.column else None
        key.columns = [canonical(c) for c in key.columns]
        for cond, _ in key.whens:
            for ref in column_refs(cond):
                ref.fields = (ast.String(sval=canonical(query.ref_name(ref))),)
    query.group_by = [c if c in query.key_exprs else canonical(c) for c in query.group_by]
    for out in query.outputs:
        if out.group_column:
            out.group_column = canonical(out.group_column)
        if out.aggregate and out.aggregate.column:
            out.aggregate.column = canonical(out.aggregate.column)
    for ref in column_refs(query.where) if query.where is not None else ():
        ref.fields = (ast.String(sval=canonical(query.ref_name(ref))),)
    query.join_columns = None  # names are now plain (virtual) column names
    if child is not None:
        return _path_join_meta(query, metas, aliases, child, columns)
    unit = f"{aliases[0]}.{a.unit_column}"
    select = _join_select(query, unit)
    source = (f"SELECT {select} FROM {quote_ident(a.schema)}.{quote_ident(a.table)} AS {quote_ident(aliases[0])} "
              f"JOIN {quote_ident(b.schema)}.{quote_ident(b.table)} AS {quote_ident(aliases[1])} "
              f"ON " + operator(f"{quote_ident(aliases[0])}.{quote_ident(a.unit_column)}", "=",
                                f"{quote_ident(aliases[1])}.{quote_ident(b.unit_column)}"))
    return TableMeta(a.relid, a.schema, f"{a.table} JOIN {b.table}", a.dataset, unit, a.max_rows_per_unit,
                     a.max_groups_per_unit, a.data_version, columns, source_sql=source)


def _join_select(query: Query, unit: str) -> str:
    """The select list of a join's source: every column the query uses and the unit, as "alias.column"."""
    return ", ".join(f"{quote_ident(c.split('.', 1)[0])}.{quote_ident(c.split('.', 1)[1])} AS {quote_ident(c)}"
                     for c in sorted(query.columns_used() | {unit}))


def _path_join(query: Query, metas: list[TableMeta], aliases: list[str]) -> int | None:
    """For a join of a path table with the table its first foreign key references, on that key
    (invoice_line JOIN invoice ON invoice_line.invoice_id = invoice.invoice_id): the path table's
    index.  None for a join without a path table; any other join of a path table is refused."""
    if not any(m.unit_path for m in metas):
        return None
    for i, meta in enumerate(metas):
        other = metas[1 - i]
        step = meta.unit_path[0] if meta.unit_path else None
        if step is None or (step["schema"], step["table"]) != (other.schema, other.table) or len(step["cols"]) != 1:
            continue
        if set(query.join_columns) == {f"{aliases[i]}.{step['cols'][0]}", f"{aliases[1 - i]}.{step['refcols'][0]}"}:
            return i
    meta = next(m for m in metas if m.unit_path)
    step = meta.unit_path[0]
    along = (f" or join it with {step['schema']}.{step['table']} on its key: ON {meta.table}.{step['cols'][0]} = "
             f"{step['table']}.{step['refcols'][0]}") if len(step["cols"]) == 1 else ""
    raise DPError(f"{meta.table} reaches its privacy unit through foreign keys and cannot be joined this way",
                  hint=f"Ask {meta.table} alone (its rows are bounded per {meta.unit_column} along the foreign keys; "
                       f"dp.protected_tables shows the path){along}.", sqlstate=NOT_SUPPORTED)


def _path_join_meta(query: Query, metas: list[TableMeta], aliases: list[str], child: int, columns: dict) -> TableMeta:
    """A path table joined with its parent along the first foreign key of its path, as one table.

    Each row of the path table meets at most one parent row (the key is unique), so the join has
    the path table's rows, with the parent's columns: bounded per unit with the path table's
    max_rows_per_unit, its unit found along the path as on the path table alone."""
    meta, parent = metas[child], metas[1 - child]
    ca, pa = quote_ident(aliases[child]), quote_ident(aliases[1 - child])
    step = meta.unit_path[0]
    unit = f"{aliases[child]}.{meta.unit_column}"
    select = _join_select(query, unit)
    source = (f"SELECT {select} FROM {relation_sql(meta)} AS {ca} "
              f"JOIN {quote_ident(parent.schema)}.{quote_ident(parent.table)} AS {pa} "
              f"ON {pa}.{quote_ident(step['refcols'][0])} {step['ops'][0]} {ca}.{quote_ident(step['cols'][0])}")
    return TableMeta(meta.relid, meta.schema, f"{meta.table} JOIN {parent.table}", meta.dataset, unit,
                     meta.max_rows_per_unit, meta.max_groups_per_unit, meta.data_version, columns,
                     source_sql=source, unit_path=meta.unit_path)


def make_plan(query: Query, meta: TableMeta, epsilon: float, delta: float, timezone: str = "UTC") -> Plan:
    """The plan of an analyzed query: measurements, exact charge and the rewrite (plan.sql).

    plan.sql is one complete SELECT that runs nothing but reads.  The caller must PREPARE it
    (without executing) before charging the budget: a wrong-typed constant (e.g. '2020-13-01'
    for a date column) or a missing operator then fails with an error that depends only on
    the statement, at no cost.  The WHERE's cheap checks (a '...' literal for a number
    column, columns compared with constants of other types) already raise here.
    rewrite_on_copy(plan, copy) has the same WHERE and aggregates over the bounded copy,
    whose columns are the table's: preparing plan.sql validates it too.
    """
    for column in sorted(query.columns_used()):
        if column not in meta.columns:
            raise DPError(f"column {column!r} does not exist in {meta.schema}.{meta.table}",
                          hint="Check \\d of the table or dp.protected_columns.", sqlstate=UNDEFINED_COLUMN)

    for schema in sorted(query.schema_refs):
        if schema != meta.schema:
            raise DPError(f"invalid reference to table {schema}.{meta.table}: the query reads {meta.schema}.{meta.table}",
                          hint="Qualify columns with the schema of the table in FROM, or with its name only.",
                          sqlstate="42P01")
    for name in sorted(query.alias_keys):
        if name in meta.columns:
            raise DPError(f"GROUP BY {name} names both a column of {meta.table} and an output alias",
                          hint="PostgreSQL would group by the column: write the expression or its position"
                               " (GROUP BY 1), or rename the alias.", sqlstate="42702")
    k = meta.max_rows_per_unit if meta.unit_column else 1
    g = meta.max_groups_per_unit if (meta.unit_column and query.group_by) else 1

    key_plans = [_key_plan(query, meta, c) for c in query.group_by]
    public_keys = _public_keys(query, meta, key_plans)
    needs_selection = bool(query.group_by) and public_keys is None

    implicit = sum(1 for o in query.outputs if o.aggregate and o.aggregate.epsilon is None) + needs_selection
    # shares are rounded down, so the noise never uses more than the charged epsilon
    share = math.nextafter(float(epsilon) / implicit, 0.0) if implicit else 0.0
    if implicit and not (math.isfinite(share) and share > 0):
        raise DPError("epsilon of the query must be a finite number greater than zero",
                      hint="Pass e.g. dp.query(sql, epsilon => 0.5).", sqlstate=INVALID)

    measurements = []
    for i, out in enumerate(query.outputs):
        if out.aggregate is None:
            continue
        measurements.append(_measurement(i, out.aggregate, meta, share))

    columns, group_types = [], []
    m_by_output = {m.output: m for m in measurements}
    for i, out in enumerate(query.outputs):
        if out.group_column is not None:
            columns.append((out.name, key_plans[query.group_by.index(out.group_column)].type))
        else:
            columns.append((out.name, m_by_output[i].result_type))
    group_types = [kp.type for kp in key_plans]

    plan = Plan(query, meta, "", measurements, columns, group_types, public_keys,
                rows_per_unit=k, groups_per_unit=g, keys=key_plans, timezone=timezone or "UTC")
    if needs_selection:
        plan.selection_epsilon = share
        plan.selection_delta = delta
        mechanisms.selection_parameters(g, k, share, delta)  # validates delta early
    explicit = [Decimal(repr(o.aggregate.epsilon)) for o in query.outputs
                if o.aggregate and o.aggregate.epsilon is not None]
    plan.epsilon = (Decimal(str(epsilon)) if implicit else Decimal(0)) + sum(explicit, Decimal(0))
    plan.delta = Decimal(str(delta)) if needs_selection else Decimal(0)
    plan.sql = _rewrite(plan)
    return plan


def _measurement(index, agg, meta: TableMeta, share: float) -> Measurement:
    eps = agg.epsilon if agg.epsilon is not None else share
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise DPError("epsilon of each aggregate must be a finite number greater than zero",
                      hint="e.g. dp_avg(age, 0, 100, 0.5)", sqlstate=INVALID)
    m = Measurement(index, agg.func, agg.column, float(eps), q=agg.q)
    if agg.func == "count_distinct":
        if agg.column != meta.unit_column:
            raise DPError(f"count(DISTINCT {agg.column}) is not supported: only the privacy unit"
                          f" ({meta.unit_column or 'none declared'}) can be counted distinct",
                          hint="count(DISTINCT <privacy unit>) counts the units; for other columns group by"
                               " them and count the groups.", sqlstate=NOT_SUPPORTED)
        m.result_type = "bigint"
        m.sql = f"pg_catalog.count(DISTINCT {quote_ident(agg.column)})"
        return m
    if agg.func == "count":
        m.result_type = "bigint"
        m.sql = "pg_catalog.count(*)" if agg.column is None else f"pg_catalog.count({quote_ident(agg.column)})"
        return m
    col = meta.columns[agg.column]
    if col["type"] not in INTEGER_TYPES | FLOAT_TYPES | {"numeric"}:
        raise DPError(f"{agg.func} of column {agg.column!r} ({col['type']}) is not supported",
                      hint="Only numeric columns can be summed, averaged or ranked.", sqlstate=NOT_SUPPORTED)
    lower = agg.lower if agg.lower is not None else col["lower"]
    upper = agg.upper if agg.upper is not None else col["upper"]
    if lower is None or upper is None:
        raise DPError(f"column {agg.column!r} has no bounds",
                      hint=f"An administrator can call dp.set_bounds('{meta.schema}.{meta.table}', "
                           f"'{agg.column}', lower, upper), or pass bounds: dp_{agg.func if agg.func != 'quantile' else 'quantile'}"
                           f"({agg.column}, lower, upper).",
                      sqlstate=INVALID)
    lower, upper = float(lower), float(upper)
    if not (math.isfinite(lower) and math.isfinite(upper)) or lower > upper:
        raise DPError(f"bounds of {agg.column!r} must be finite with lower <= upper",
                      hint="Swap or fix the bounds.", sqlstate=INVALID)
    if agg.q is not None and not (0 <= agg.q <= 1):
        raise DPError("the quantile must be between 0 and 1", hint="Use 0.5 for the median.", sqlstate=INVALID)
    m.lower, m.upper = lower, upper
    value = quote_ident(agg.column)
    if col["type"] == "numeric":
        # clamp in numeric first: a cast of a huge numeric to float8 would fail on that row
        # (NULL stays NULL: GREATEST and LEAST alone would turn it into the lower bound)
        value = keyexprs.clamp_sql(value, numeric_literal(lower), numeric_literal(upper))
    value = cast(value, "float8")
    bounds = f"{float_literal(lower)}, {float_literal(upper)}"
    if agg.func in ("sum", "avg"):
        m.sql = cast(f"dp_internal.exact_sum({value}, {bounds})", "text")
        if agg.func == "sum" and col["type"] in INTEGER_TYPES and lower.is_integer() and upper.is_integer():
            m.result_type = "bigint"
    elif agg.func in ("var", "stddev", "var_pop", "stddev_pop"):
        m.sql = cast(f"dp_internal.exact_var({value}, {bounds})", "text")
    else:
        m.sql = cast(f"dp_internal.exact_quantile({value}, {float_literal(agg.q)}, {bounds})", "text")
    return m


def _key_plan(query: Query, meta: TableMeta, name: str) -> "keyexprs.KeyPlan":
    """SQL, type and public values of one GROUP BY key (a column or an expression)."""
    if name in query.key_exprs:
        where = _Where(query, meta)
        kp = keyexprs.plan_key(query.key_exprs[name], meta.columns, column_type, quote_ident, where.sql,
                               MAX_PUBLIC_GROUPS)
        kp.zone = kp.zone or where.zone        # a CASE condition that reads a time in the zone
        return kp
    col = meta.columns[name]
    values = col.get("public_values")
    public = None
    if values is not None and name != meta.unit_column:
        public = [None if v is None else str(v) for v in values] + ([] if col["notnull"] else [None])
    return keyexprs.KeyPlan(quote_ident(name), col["type"], public,
                            note="public value set" if public is not None else "")


def _public_keys(query: Query, meta: TableMeta, key_plans):
    """Every combination of the keys' public values, or None if one has none."""
    if not query.group_by:
        return [()]
    sets = [kp.public for kp in key_plans]
    if any(s is None for s in sets):
        return None
    total = math.prod(len(s) for s in sets)
    if total > MAX_PUBLIC_GROUPS:
        raise DPError(f"the GROUP BY has {total} public key combinations, more than {MAX_PUBLIC_GROUPS}",
                      hint="Group by fewer columns.", sqlstate=NOT_SUPPORTED)
    return list(itertools.product(*sets))


def bounded_copy_sql(plan: Plan) -> str | None:
    """SELECT building a table's bounded copy for this query's GROUP BY columns, or None.

    The copy holds every row with its rank within its (unit, keys) and, with a GROUP BY,
    the rank of its keys within its unit: the window functions of the rewrite, computed
    once per data version instead of once per query.  Queries then filter the copy on
    the ranks (and on their WHERE, applied after the bounding: a unit still contributes
    at most the bounded rows).  Joins are always bounded per query.
    """
    q, meta = plan.query, plan.meta
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


def _rewrite(plan: Plan) -> str:
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


# ---------------------------------------------------------------------------
# WHERE: written from the validated tree, typed against the columns
# ---------------------------------------------------------------------------

# constant families PostgreSQL compares with a column of each family without casting the
# column, or casting it infallibly (int -> numeric/float8, bpchar/varchar -> text; date
# against timestamp has its own overflow-safe operators).  A plain '...' literal and NULL
# take the column's type and go with every family.  numeric against float is re-targeted.
_COMPARABLE = {
    "int": {"int", "numeric", "float"},
    "numeric": {"int", "numeric"},
    "float": {"int", "numeric", "float"},
    "text": {"text"},
    "bool": {"bool"},
    "date": {"date", "timestamp", "timestamptz"},       # timestamptz constants: re-targeted
    "timestamp": {"timestamp", "date", "timestamptz"},
    "timestamptz": {"timestamptz", "timestamp", "date"},   # cross-type operators, no cast of the column
    "time": {"time"},
    "interval": {"interval"},
    "other": set(),
}
# two columns of different types: the families whose mix PostgreSQL compares infallibly
_COLUMN_PAIRS = [{"int", "numeric"}, {"int", "float"}, {"date", "timestamp"}]
_INTERNAL_FAMILY = {
    "int2": "int", "int4": "int", "int8": "int", "numeric": "numeric", "float4": "float", "float8": "float",
    "text": "text", "varchar": "text", "bpchar": "text", "bool": "bool", "date": "date",
    "timestamp": "timestamp", "timestamptz": "timestamptz", "time": "time", "interval": "interval",
}
_COLUMN_TYPES = {
    "smallint": "int2", "integer": "int4", "bigint": "int8", "numeric": "numeric", "real": "float4",
    "double precision": "float8", "text": "text", "character varying": "varchar", "character": "bpchar",
    "boolean": "bool", "date": "date", "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz", "time without time zone": "time", "interval": "interval",
}
_INTEGER_TEXT = re.compile(r"\s*[+-]?\d+\s*", re.ASCII)
_DECIMAL_TEXT = re.compile(r"\s*([+-]?)((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)\s*", re.ASCII)
_HEX_FLOAT_TEXT = re.compile(r"\s*[+-]?0[xX][0-9a-fA-F.]+([pP][+-]?\d+)?\s*", re.ASCII)
_SPECIAL_FLOATS = {"nan": math.nan, "+nan": math.nan, "-nan": math.nan, "inf": math.inf, "+inf": math.inf,
                   "infinity": math.inf, "+infinity": math.inf, "-inf": -math.inf, "-infinity": -math.inf}


def column_type(sql_type: str) -> tuple[str, str | None]:
    """(family, internal name) of a column's type as format_type writes it; ("other", None)
    for every type the rule does not know (enums, domains, uuid, ...)."""
    base = re.sub(r"\(\d+(,\d+)?\)", "", sql_type.strip()).strip()
    internal = _COLUMN_TYPES.get(re.sub(r"\s+", " ", base))
    return (_INTERNAL_FAMILY[internal], internal) if internal else ("other", None)


@dataclass
class _Constant:
    sql: str                 # as written in the rewrite
    family: str              # an _INTERNAL_FAMILY value; "unknown" ('...'), "null"
    text: str | None = None  # the literal's text, for checks and re-targeting (None: NULL)
    internal: str | None = None   # the cast's type, if any
    typmods: tuple = ()


def _literal_sql(value) -> tuple[str, str, str | None]:
    """(sql, family, text) of an A_Const."""
    if value.isnull:
        return "NULL", "null", None
    v = value.val
    if isinstance(v, ast.Integer):
        return (f"({v.ival})" if v.ival < 0 else str(v.ival)), "int", str(v.ival)
    if isinstance(v, ast.Float):
        text = v.fval.replace("_", "")
        digits = text.lstrip("-")
        if digits[:2].lower() in ("0x", "0o", "0b"):
            text = str(int(text, 0))
        if not _DECIMAL_TEXT.fullmatch(text):
            raise DPError(f"the number {v.fval!r} is not understood", hint="Write a decimal number.",
                          sqlstate=INVALID_TEXT)
        return (f"({text})" if text.startswith("-") else text), "numeric", text
    if isinstance(v, ast.String):
        return sql_literal(v.sval), "unknown", v.sval
    if isinstance(v, ast.Boolean):
        return ("TRUE" if v.boolval else "FALSE"), "bool", ("true" if v.boolval else "false")
    raise DPError("bit-string constants are not supported in WHERE", hint="Compare with numbers or strings.",
                  sqlstate=NOT_SUPPORTED)


def _constant(node) -> _Constant:
    call = function_operand(node)
    if call is not None:        # to_timestamp('...', 'format'), to_date('...', 'format'): checked by analyze
        name, args = call
        internal = "timestamptz" if name == "to_timestamp" else "date"
        sql = f"pg_catalog.{name}({cast(sql_literal(args[0].val.sval), 'text')}, " \
              f"{cast(sql_literal(args[1].val.sval), 'text')})"
        return _Constant(sql, internal, None, internal)
    if isinstance(node, ast.A_Const):
        sql, family, text = _literal_sql(node)
        return _Constant(sql, family, text)
    internal, typmods = constant_type(node.typeName)   # a TypeCast of an A_Const (analyze checked)
    sql, family, text = _literal_sql(node.arg)
    return _Constant(cast(sql, internal, typmods), _INTERNAL_FAMILY[internal], text, internal, typmods)


def _float_value(text: str, internal: str) -> float:
    """The value PostgreSQL's float4in/float8in gives `text`; its errors, data-independent, here."""
    what = "real" if internal == "float4" else "double precision"
    special = _SPECIAL_FLOATS.get(text.strip().lower())
    if special is not None:
        return special
    m = _DECIMAL_TEXT.fullmatch(text)
    if m:
        value = float(m.group(1) + m.group(2))
    elif _HEX_FLOAT_TEXT.fullmatch(text):
        value = float.fromhex(text.strip())
    else:
        raise DPError(f"invalid input syntax for type {what}: {text!r}", hint="Write a decimal number.",
                      sqlstate=INVALID_TEXT)
    nonzero = any(c in "123456789abcdefABCDEF" for c in (m.group(3) if m else text.strip()[2:]))
    if internal == "float4" and math.isfinite(value):
        try:
            value = struct.unpack("f", struct.pack("f", value))[0]
        except OverflowError:
            value = math.inf
    if math.isinf(value) or (value == 0 and nonzero):
        raise DPError(f"{text.strip()!r} is out of range for type {what}",
                      hint=f"Write a constant within the range of {what}.", sqlstate=OUT_OF_RANGE)
    return value


def _as_numeric(c: _Constant) -> str:
    """A float constant compared with a numeric column, re-targeted to numeric: the shortest
    decimal that reads back as the same float; infinities and NaN as numeric's own."""
    if c.text is None:  # NULL
        return cast("NULL", "numeric")
    value = _float_value(c.text, c.internal)
    if math.isnan(value):
        text = "NaN"
    elif math.isinf(value):
        text = "Infinity" if value > 0 else "-Infinity"
    elif c.internal == "float4":
        text = next(t for t in (f"{value:.{p}g}" for p in range(1, 10))
                    if struct.unpack("f", struct.pack("f", float(t)))[0] == value)
    else:
        text = repr(value)
    return cast(sql_literal(text), "numeric")


def _check_literal(text: str, family: str, column: str):
    """A plain '...' literal takes the column's type: refuse now what its input function would."""
    ok = True
    if family == "int":
        ok = bool(_INTEGER_TEXT.fullmatch(text))
    elif family == "numeric":
        ok = bool(_DECIMAL_TEXT.fullmatch(text)) or text.strip().lower() in _SPECIAL_FLOATS
    elif family == "float":
        ok = bool(_DECIMAL_TEXT.fullmatch(text) or _HEX_FLOAT_TEXT.fullmatch(text)) \
            or text.strip().lower() in _SPECIAL_FLOATS
    if not ok:
        raise DPError(f"{text!r} is not a valid {family} value for column {column!r}",
                      hint="Compare with a constant of the column's type.", sqlstate=INVALID_TEXT)


# the implicit casts among built-in types of one category go one way, up these ranks
# (varchar and bpchar both cast to the other: the first, the column's, is kept)
_WIDENING = {
    "int2": ("n", 0), "int4": ("n", 1), "int8": ("n", 2), "numeric": ("n", 3), "float4": ("n", 4),
    "float8": ("n", 5), "varchar": ("s", 0), "bpchar": ("s", 0), "text": ("s", 1),
    "date": ("d", 0), "timestamp": ("d", 1), "timestamptz": ("d", 2),
    "bool": ("b", 0), "time": ("t", 0), "interval": ("i", 0),
}


def _literal_type(c: _Constant) -> str | None:
    """The type PostgreSQL gives a constant; None for '...' and NULL (they take the other side's)."""
    if c.internal:
        return c.internal
    if c.family == "int":
        return "int4"
    if c.family == "numeric":   # an integer too big for int4 is an int8 if it fits
        return "int8" if re.fullmatch(r"-?\d+", c.text) and -2**63 <= int(c.text) < 2**63 else "numeric"
    return "bool" if c.family == "bool" else None


def _mismatch(what: str, hint: str = "Compare with a constant of the column's type, e.g. CAST('...' AS <type>).") \
        -> DPError:
    return DPError(what, hint=hint, sqlstate=DATATYPE_MISMATCH)


class _Where:
    """SQL text of a validated WHERE tree (see analyze.py for the rules)."""

    def __init__(self, query: Query, meta: TableMeta):
        self.query, self.columns = query, meta.columns
        self.zone = False       # set when the SQL reads a time in the session's TimeZone

    def column(self, ref) -> tuple[str, str, str, str | None]:
        """(sql, name, family, internal type) of a column reference."""
        name = self.query.ref_name(ref)
        family, internal = column_type(self.columns[name]["type"])
        return quote_ident(name), name, family, internal

    def operand(self, node):
        if isinstance(node, ast.ColumnRef):
            return self.column(node)
        if isinstance(node, ast.TypeCast) and isinstance(node.arg, ast.ColumnRef):
            # CAST(col AS date) (analyze allows no other cast of a column): infallible from date and
            # timestamps (infinities stay infinite); of a timestamptz, the date in the session's zone
            sql, col, family, _ = self.column(node.arg)
            self.zone = self.zone or family == "timestamptz"
            if family not in ("date", "timestamp", "timestamptz"):
                raise _mismatch(f"CAST({col} AS date): column {col!r} ({self.columns[col]['type']}) is not a"
                                " date or timestamp", hint="Cast only date and timestamp columns to date.")
            return cast(sql, "date"), col, "date", "date"
        call = function_operand(node)
        if call is not None and call[0] in ("lower", "upper", "coalesce"):
            return self.function(*call)
        return _constant(node)

    def function(self, name, args):
        """lower(col), upper(col), COALESCE(col, constant): (sql, column name, family, internal)."""
        sql, col, family, internal = self.column(args[0])
        if name in ("lower", "upper"):
            if family != "text":
                raise DPError(f"{name}({col}): column {col!r} ({self.columns[col]['type']}) is not a string",
                              hint=f"{name} applies to text columns.", sqlstate="42883")
            return f"pg_catalog.{name}({sql})", col, "text", "text"
        c = _constant(args[1])
        allowed = {"int": {"int", "numeric"}, "numeric": {"int", "numeric"},
                   "float": {"int", "numeric", "float"}}.get(family, {family})
        if c.family != "unknown" and c.family not in allowed or family == "other" and c.family != "unknown":
            raise _mismatch(f"COALESCE({col}, {c.sql}): the constant must have the column's type"
                            f" ({self.columns[col]['type']}), so that the column is never cast")
        if c.family == "unknown":
            _check_literal(c.text, family, col)
        if family == "int" and c.family == "numeric":
            family, internal = "numeric", "numeric"
        return f"COALESCE({sql}, {c.sql})", col, family, internal

    def like(self, node) -> str:
        sql, col, family, _ = self.operand(node.lexpr)
        if family != "text":
            raise DPError(f"column {col!r} ({self.columns[col]['type']}) cannot be matched with LIKE",
                          hint="LIKE and ILIKE apply to text columns.", sqlstate="42883")
        op = node.name[-1].sval        # ~~, !~~, ~~*, !~~*
        return "(" + operator(sql, op, cast(sql_literal(node.rexpr.val.sval), "text")) + ")"

    def against(self, col, c: _Constant) -> str:
        """Constant `c`, as compared with column `col` (re-targeted when needed)."""
        _, name, family, _ = col
        read_in_zone = c.text is None or not _EXPLICIT_OFFSET.search(c.text)   # TO_TIMESTAMP: None
        if family == "timestamptz" and (c.family in ("date", "timestamp") or c.family == "unknown" and read_in_zone):
            self.zone = True    # a local time compared with an instant
        if c.family == "timestamptz" and read_in_zone:
            self.zone = True    # a timestamptz constant without an offset, TO_TIMESTAMP
        if c.family == "unknown":
            _check_literal(c.text, family, name)
            return c.sql
        if c.family == "null":
            return c.sql
        if family == "numeric" and c.family == "float":
            return _as_numeric(c)
        if family in ("date", "timestamp") and c.family == "timestamptz":
            # PostgreSQL would cast the column to timestamptz (which can fail on a far date):
            # the constant becomes the session zone's wall-clock time instead
            self.zone = True
            return cast(c.sql, "timestamp")
        if c.family not in _COMPARABLE[family]:
            kind = pg_type(c.internal) if c.internal else f"a {c.family} literal"
            raise _mismatch(f"column {name!r} ({self.columns[name]['type']}) cannot be compared with {kind}"
                            f" {c.sql}: PostgreSQL would cast the column, which can fail on a row or depends on"
                            " a session setting")
        return c.sql

    def pair(self, left, right) -> tuple[str, str]:
        """SQL of two compared operands (columns, constants)."""
        if isinstance(left, tuple) and isinstance(right, tuple):
            if self.columns[left[1]]["type"] != self.columns[right[1]]["type"] and not (
                    left[2] == right[2] != "other" or {left[2], right[2]} in _COLUMN_PAIRS):
                raise _mismatch(f"columns {left[1]!r} ({self.columns[left[1]]['type']}) and {right[1]!r}"
                                f" ({self.columns[right[1]]['type']}) cannot be compared: PostgreSQL would"
                                " cast one, which can fail on a row",
                                hint="Compare columns of the same type, or compare each with a constant.")
            return left[0], right[0]
        if isinstance(left, tuple):
            return left[0], self.against(left, right)
        if isinstance(right, tuple):
            return self.against(right, left), right[0]
        return left.sql, right.sql

    def compare(self, left, op: str, right) -> str:
        a, b = self.pair(left, right)
        return operator(a, "<>" if op == "!=" else op, b)

    def boolean(self, node) -> str:
        sql, name, family, _ = self.column(node)
        if family not in ("bool", "other"):
            raise _mismatch(f"column {name!r} ({self.columns[name]['type']}) is not a boolean",
                            hint="Compare it with a constant, e.g. column = 1.")
        return sql

    def sql(self, node, depth=0) -> str:
        if depth > MAX_DEPTH:
            raise too_complex(f"WHERE is nested more than {MAX_DEPTH} deep")
        if isinstance(node, ast.BoolExpr):
            parts = [self.sql(arg, depth + 1) for arg in node.args]
            if node.boolop == BoolExprType.NOT_EXPR:
                return f"(NOT {parts[0]})"
            return "(" + (" AND " if node.boolop == BoolExprType.AND_EXPR else " OR ").join(parts) + ")"
        if isinstance(node, ast.NullTest):
            test = "IS NULL" if node.nulltesttype == NullTestType.IS_NULL else "IS NOT NULL"
            return f"({self.operand(node.arg)[0]} {test})"
        if isinstance(node, ast.BooleanTest):
            test = {BoolTestType.IS_TRUE: "IS TRUE", BoolTestType.IS_NOT_TRUE: "IS NOT TRUE",
                    BoolTestType.IS_FALSE: "IS FALSE", BoolTestType.IS_NOT_FALSE: "IS NOT FALSE",
                    BoolTestType.IS_UNKNOWN: "IS UNKNOWN", BoolTestType.IS_NOT_UNKNOWN: "IS NOT UNKNOWN"}
            return f"({self.boolean(node.arg)} {test[node.booltesttype]})"
        if isinstance(node, ast.ColumnRef):
            return self.boolean(node)
        kind, op = node.kind, node.name[-1].sval
        if kind in (A_Expr_Kind.AEXPR_LIKE, A_Expr_Kind.AEXPR_ILIKE):
            return self.like(node)
        left = self.operand(node.lexpr)
        if kind == A_Expr_Kind.AEXPR_OP:
            return "(" + self.compare(left, op, self.operand(node.rexpr)) + ")"
        if kind in (A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_NOT_BETWEEN):
            low, high = (self.operand(n) for n in node.rexpr)
            if kind == A_Expr_Kind.AEXPR_BETWEEN:
                return f"({self.compare(left, '>=', low)} AND {self.compare(left, '<=', high)})"
            return f"({self.compare(left, '<', low)} OR {self.compare(left, '>', high)})"
        if kind in (A_Expr_Kind.AEXPR_DISTINCT, A_Expr_Kind.AEXPR_NOT_DISTINCT):
            a, b = self.pair(left, self.operand(node.rexpr))
            if kind == A_Expr_Kind.AEXPR_DISTINCT:
                return f"(({operator(a, '=', b)}) IS NOT TRUE AND ({a} IS NOT NULL OR {b} IS NOT NULL))"
            return f"(({operator(a, '=', b)}) IS TRUE OR ({a} IS NULL AND {b} IS NULL))"
        # IN / NOT IN (op is "=" or "<>")
        items = [self.operand(n) for n in node.rexpr]
        if isinstance(left, tuple) and left[3] and all(isinstance(i, _Constant) for i in items):
            # one ScalarArrayOp, as PostgreSQL makes of an IN list: the items cast to the common
            # type of the column and the items (select_common_type; '...' and NULL take it)
            typed = [(self.against(left, i),
                      "numeric" if left[2] == "numeric" and i.family == "float" else
                      "timestamp" if left[2] in ("date", "timestamp") and i.family == "timestamptz" else
                      _literal_type(i))
                     for i in items]
            common = left[3]
            for _, t in typed:
                if t and _WIDENING[t][0] == _WIDENING[common][0] and _WIDENING[t][1] > _WIDENING[common][1]:
                    common = t
            elements = ", ".join(cast(sql, common) for sql, _ in typed)
            return f"({operator(left[0], op, ('ANY' if op == '=' else 'ALL') + f' (ARRAY[{elements}])')})"
        ors = " OR ".join(self.compare(left, "=", i) for i in items)
        return f"({ors})" if op == "=" else f"(NOT ({ors}))"


def constant_checks(plan: Plan) -> list[str]:
    """SELECTs of the STABLE constant functions of the query (to_timestamp('...', 'fmt')): PostgreSQL
    evaluates them when a row is compared, so a bad format would fail only on chosen rows; the
    gateway runs these before the charge instead."""
    roots = [plan.query.where] if plan.query.where is not None else []
    for key in plan.query.key_exprs.values():
        roots.extend(cond for cond, _ in key.whens)
    checks, stack = [], list(roots)
    while stack:
        n = stack.pop()
        call = function_operand(n) if isinstance(n, ast.FuncCall) else None
        if call is not None and call[0] in ("to_timestamp", "to_date"):
            checks.append(f"SELECT {_constant(n).sql}")
            continue
        if isinstance(n, ast.Node):
            for slot in n:
                v = getattr(n, slot)
                stack.extend(v if isinstance(v, (tuple, list)) else (v,))
    return checks


# a time written with its offset (Z, +02, -05:30, +0530) reads the same in every zone
_EXPLICIT_OFFSET = re.compile(r"\d:\d\d(:\d\d(\.\d*)?)?\s*(Z|z|UTC|[+-]\d{1,2}(:?\d\d){0,2})\s*$")


def where_zone_dependent(query: Query, meta: TableMeta) -> bool:
    w = _Where(query, meta)
    w.sql(query.where)
    return w.zone


def where_sql(query: Query, meta: TableMeta) -> str:
    """The query's WHERE as SQL: from the tree, typed against meta's columns, schema-qualified."""
    return _Where(query, meta).sql(query.where)


# ---------------------------------------------------------------------------
# release
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# explain: noise per output column, without running anything
# ---------------------------------------------------------------------------

def _path_note(plan: Plan) -> str:
    """How a table reaching its unit through foreign keys is bounded, for dp.explain."""
    meta = plan.meta
    if not meta.unit_path:
        return ""
    path = " -> ".join(f"{', '.join(step['cols'])} -> {step['schema']}.{step['table']}" for step in meta.unit_path)
    return (f"; each {meta.unit_column} (found through {path}) counts at most {plan.rows_per_unit} rows"
            + (f" in at most {plan.groups_per_unit} groups" if plan.query.group_by else ""))


def explain(plan: Plan) -> list[dict]:
    out = []
    k, g = plan.rows_per_unit, plan.groups_per_unit
    ln20 = math.log(20)
    for i, (name, typ) in enumerate(plan.columns):
        q = plan.query.outputs[i]
        if q.group_column is not None:
            kp = plan.keys[plan.query.group_by.index(q.group_column)]
            how = (kp.note or "public value set") if plan.public_keys is not None else "DP partition selection"
            note = how if plan.public_keys is not None else (
                f"{how}: groups with fewer than about "
                f"{mechanisms.selection_parameters(g, k, plan.selection_epsilon, plan.selection_delta)[1]}"
                " contributing units are not released")
            if plan.public_keys is not None and None in kp.public:
                note += "; NULL is one of the groups (empty ones are released too)"
            elif plan.public_keys is not None and q.group_column in plan.query.key_exprs:
                note += " (empty ones are released too)"
            if kp.zone:
                note += f"; computed in time zone {plan.timezone}"
            out.append(dict(column_name=name, data_type=typ, mechanism="group key", epsilon=0.0, delta=0.0,
                            noise_scale=None, ci95=None, note=note))
            continue
        m = next(m for m in plan.measurements if m.output == i)
        eps = m.epsilon / g
        if m.func in ("count", "count_distinct"):
            scale = mechanisms.integer_laplace_scale(k if m.func == "count" else 1, eps)
            out.append(dict(column_name=name, data_type=typ, mechanism="discrete Laplace", epsilon=m.epsilon,
                            delta=0.0, noise_scale=scale, ci95=scale * ln20, note="per group" + _path_note(plan)))
        elif m.func == "sum":
            scale = k * max(abs(m.lower), abs(m.upper)) / eps
            out.append(dict(column_name=name, data_type=typ, mechanism="discrete Laplace", epsilon=m.epsilon,
                            delta=0.0, noise_scale=scale, ci95=scale * ln20,
                            note=f"values clamped to [{m.lower:g}, {m.upper:g}]"
                                 + ("; never below 0 (the bounds are non-negative)" if m.lower >= 0 else "")
                                 + ("; never above 0 (the bounds are non-positive)" if m.upper <= 0 else "")))
        elif m.func == "avg":
            scale = k * (m.upper - m.lower) / 2 / (eps / 2)
            out.append(dict(column_name=name, data_type=typ, mechanism="noisy sum / noisy count",
                            epsilon=m.epsilon, delta=0.0, noise_scale=scale, ci95=None,
                            note=f"noise of the centred sum; the mean's error is about that divided by the count;"
                                 f" values clamped to [{m.lower:g}, {m.upper:g}]"))
        elif m.func in ("var", "stddev", "var_pop", "stddev_pop"):
            out.append(dict(column_name=name, data_type=typ, mechanism="noisy moments", epsilon=m.epsilon,
                            delta=0.0, noise_scale=k * (m.upper - m.lower) ** 2 / 4 / (eps / 3), ci95=None,
                            note="noise of the centred sum of squares; divide by the count"))
        else:
            step = (m.upper - m.lower) / (QUANTILE_CANDIDATES - 1)
            out.append(dict(column_name=name, data_type=typ, mechanism="exponential mechanism (noisy max)",
                            epsilon=m.epsilon, delta=0.0, noise_scale=None, ci95=None,
                            note=f"q={m.q:g} over {QUANTILE_CANDIDATES} candidates {step:g} apart in "
                                 f"[{m.lower:g}, {m.upper:g}]"))
    return out
