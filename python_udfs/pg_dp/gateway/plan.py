"""The plan of a question: its measurements, their epsilon and bounds, its group keys, its charge.

make_plan turns an analyzed query bound to a protected table (bind.py) into a Plan: one Measurement per
aggregate (epsilon, bounds, the exact C state it reads), a KeyPlan per GROUP BY key (keyexprs.py: SQL,
type, public key set), the exact charge, and the rewrite (rewrite.py).  The Plan's cache_identity is
what the answer cache is keyed by.
"""

import copy
import dataclasses
from dataclasses import dataclass
from decimal import Decimal
import itertools
import json
import math
import re

from ..core.catalog import TableMeta
from ..core.errors import DPError
from ..dp import mechanisms
from .analyze import Query
from . import keyexprs
from .parse import ast, cast, visitors
from .rewrite import rewrite as _rewrite
from .sqltext import float_literal, numeric_literal, quote_ident
from .where import _Where, column_type, where_sql, where_zone_dependent

INVALID = "22023"
NOT_SUPPORTED = "0A000"
UNDEFINED_COLUMN = "42703"
MAX_PUBLIC_GROUPS = 100_000
QUANTILE_CANDIDATES = 1025

INTEGER_TYPES = {"smallint", "integer", "bigint"}
FLOAT_TYPES = {"real", "double precision"}


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
                          + ([self.meta.unit_path] if self.meta.unit_path else [])
                          # a join with tables the caller may read (bind.bind_star): the join, and the key
                          # sets read from them (a new dimension value is a new question)
                          + ([self.meta.source_sql, self.public_keys] if self.meta.joins else []),
                          sort_keys=True, default=str)

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
