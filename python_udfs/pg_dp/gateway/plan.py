"""The plan of a question: its measurements, their budgets and bounds, its group keys, its charge.

make_plan turns an analyzed query bound to a protected table (bind.py) into a Plan: one Measurement per
aggregate (its spec in dp/aggregates.py, its share of the budget, bounds, the exact C state it reads), a
KeyPlan per GROUP BY key (keyexprs.py: SQL, type, public key set, intersected with what the WHERE allows:
keysets.py), the contribution bounds per privacy unit (fixed by the DBA, or chosen per question from a DP
estimate: contributions.py), the cost in the accountant's terms (dp/accountant.py) and the rewrite
(rewrite.py).  Everything that can refuse a question refuses here, before any charge: the noise of every
measurement is calibrated (an epsilon too small for the bounds is refused now, not after the charge).
The Plan's cache_identity is what the answer cache is keyed by.

Budgets.  The statement's epsilon is split evenly over the aggregates without an epsilon of their own
and DP partition selection (when keys are not public); when contribution bounds are to be estimated and
no estimate of this key set is cached, ESTIMATE_SHARE of every part goes to the estimate.  On a budget
granted with delta > 0 the measurements (and the estimate) are Gaussian: their epsilons become one rho,
the rho whose zCDP -> (epsilon, delta) conversion at the budget's delta is their sum, shared in the same
proportions; partition selection stays Laplace thresholding (epsilon, delta).  On a budget without delta
everything is pure epsilon (Laplace), as the dp_* aggregates are.
"""

import copy
import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
import itertools
import json
import math
import re

from ..core.catalog import TableMeta
from ..core.errors import DPError
from ..dp import accountant, aggregates, mechanisms
from ..dp.release import Noise
from .analyze import Query
from . import keyexprs, keysets
from .parse import ast, cast, visitors
from .rewrite import rewrite as _rewrite
from .sqltext import float_literal, numeric_literal, quote_ident
from .where import _Where, column_type, where_sql, where_zone_dependent

INVALID = "22023"
NOT_SUPPORTED = "0A000"
UNDEFINED_COLUMN = "42703"
MAX_PUBLIC_GROUPS = 100_000
QUANTILE_CANDIDATES = aggregates.QUANTILE_CANDIDATES
ESTIMATE_SHARE = 0.1           # of a question's budget, for a DP estimate of its contribution bounds
AUTO_ROWS_CEILING = 256        # chosen bounds never exceed these (settings auto_max_rows/groups_per_unit)
AUTO_GROUPS_CEILING = 1024

INTEGER_TYPES = aggregates.INTEGER_TYPES
FLOAT_TYPES = aggregates.FLOAT_TYPES


@dataclass
class Accounting:
    """How the asking role's budget accounts: "pure" (delta 0: Laplace, epsilons add up) or "zcdp"
    (Gaussian noise, rho adds up, converted at the budget's delta)."""
    mode: str = "pure"
    delta: Decimal = Decimal(0)

    @staticmethod
    def of(delta_granted) -> "Accounting":
        if accountant.uses_zcdp(delta_granted):
            return Accounting("zcdp", Decimal(delta_granted))
        return Accounting()

    @property
    def noise(self) -> str:
        return "gaussian" if self.mode == "zcdp" else "laplace"


@dataclass
class Bounds:
    """How much one privacy unit may contribute: `rows` per group, `groups` groups.
    mode "none": no privacy unit (a row is a unit); "fixed": the DBA's values; "auto": chosen per key
    set from a DP estimate (contributions.py), never above the ceilings (a DBA's fixed value is one)."""
    mode: str = "none"
    rows: int = 1
    groups: int = 1
    rows_ceiling: int = 1
    groups_ceiling: int = 1
    rows_fixed: bool = True
    groups_fixed: bool = True
    estimate: object = None          # a contributions.Estimate once known (cached or fresh)
    estimate_budget: float = 0.0     # epsilon or rho this question spends on a fresh estimate
    auto_ceilings: tuple = (AUTO_ROWS_CEILING, AUTO_GROUPS_CEILING)   # the settings' (the estimate's range)

    @property
    def chosen(self) -> bool:
        return self.mode != "auto" or self.estimate is not None

    def describe(self, unit: str | None, grouped: bool) -> str:
        if self.mode == "none":
            return "one row per unit"
        how = "" if self.chosen else "at most "
        rows = f"{how}{self.rows} rows" + (" per group" if grouped else "")
        text = (f"{how}{self.groups} groups, {rows}" if grouped else rows) + f" per {unit}"
        return text + (" (chosen for this question)" if self.mode == "auto" and self.chosen else "")


@dataclass
class Measurement:
    output: int              # index in the select list
    func: str                # its aggregate spec (dp/aggregates.py)
    column: str | None
    epsilon: float           # its share of the statement's epsilon (all groups), as asked
    lower: float | None = None
    upper: float | None = None
    q: float | None = None
    result_type: str = "double precision"
    agg: str = ""            # the aggregate call of its exact state (rewrite.py may add a FILTER)
    text: bool = False       # its state is read as text (the C states)
    budget: float = 0.0      # what its noise is calibrated to: epsilon (Laplace) or rho (Gaussian), all groups

    @property
    def spec(self):
        return aggregates.spec(self.func)

    def sql(self, only: str | None = None) -> str:
        """Its exact state in the rewrite's select list (counting only rows where `only`, if given)."""
        call = f"{self.agg} FILTER (WHERE {only})" if only else self.agg
        return cast(call, "text") if self.text else call


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
    bounds: Bounds = field(default_factory=Bounds)
    epsilon: Decimal = Decimal(0)    # the statement's epsilon as asked (nominal; the charge: cost)
    delta: Decimal = Decimal(0)
    keys: list = None                # a keys.KeyPlan per GROUP BY key (plain columns too)
    timezone: str = "UTC"            # the analyst's session TimeZone, under which the exact query runs
    accounting: Accounting = field(default_factory=Accounting)
    cost: accountant.Cost = field(default_factory=accountant.Cost)
    key_filters: list = None         # per key: what the WHERE allows (keysets.Allowed), for explain

    @property
    def rows_per_unit(self) -> int:
        return self.bounds.rows

    @property
    def groups_per_unit(self) -> int:
        return self.bounds.groups

    @property
    def free(self) -> bool:
        """Keys only, all public: the answer is the public key set, no data is read, nothing is spent."""
        return not self.measurements and self.public_keys is not None

    def noise(self, m: Measurement) -> Noise:
        """The noise of measurement m in one group: its budget shared by the groups a unit may reach."""
        return Noise(self.accounting.noise, m.budget).split(self.bounds.groups if self.query.group_by else 1)

    @property
    def zone_dependent(self) -> bool:
        """Whether the answer can depend on the session TimeZone: a timestamptz key, or a WHERE that
        reads a time in the zone (a timestamptz constant without an offset, TO_TIMESTAMP, a date or
        timestamp against a timestamptz).  A timestamptz compared with an instant does not."""
        return any(k.zone for k in self.keys or ()) or (
            self.query.where is not None and where_zone_dependent(self.query, self.meta))

    @property
    def key_set(self) -> str:
        """The GROUP BY keys as the bounded copies and estimates know them (their SQL, with the zone
        where it matters): date_trunc('MONTH', d) and date_trunc('month', d) are one key set."""
        keys = ",".join(kp.sql for kp in self.keys or ())
        return f"{keys}@{self.timezone}" if any(k.zone for k in self.keys or ()) else keys

    @property
    def mechanism(self) -> str:
        kind = "gaussian" if self.accounting.mode == "zcdp" else "laplace"
        budget = "rho" if self.accounting.mode == "zcdp" else "eps"
        parts = [f"{m.func}({kind} {budget}={m.budget:g})" for m in self.measurements]
        if self.selection_epsilon:
            parts.append(f"partition_selection(eps={self.selection_epsilon:g},delta={self.selection_delta:g})")
        if self.bounds.estimate_budget:
            parts.append(f"contribution_estimate({kind} {budget}={self.bounds.estimate_budget:g})")
        return "; ".join(parts)

    def cache_identity(self) -> str:
        """What is released, not how the statement is written (DESIGN.md #7): the data version, the
        tables, the filter, the set of group keys (by their SQL: date_trunc('MONTH', d) is
        date_trunc('month', d)) and the multiset of measurements (aggregate, column, bounds, epsilon as
        asked), the accounting (Laplace, or Gaussian at the budget's delta), the contribution bounds
        (fixed values, or "auto" under the ceilings: an estimate is per data version), with how keys are
        chosen.  Aliases, the order of the select list, ORDER BY and LIMIT are post-processing, so a
        chart asked again in another spelling is the same question (and costs nothing)."""
        # written from the tree: qualifiers, spacing and redundant casts of constants are gone
        where = None
        if self.query.where is not None:
            where = where_sql(dataclasses.replace(self.query, where=_canonical_constants(self.query.where)), self.meta)
        b = self.bounds
        bounds = [b.mode, b.rows if b.rows_fixed else "auto", b.groups if b.groups_fixed else "auto",
                  b.rows_ceiling, b.groups_ceiling]
        return json.dumps([self.meta.dataset, self.meta.data_version, self.meta.schema, self.meta.table,
                           # a join's columns are named by their aliases; one table is meta's, however written
                           [list(t) for t in self.query.tables] if self.query.join_columns else None,
                           self.query.join_columns, where,
                           self.core_groups_identity(), [list(_measured(self.measurements[j])) for j in self.core_order()],
                           self.selection_epsilon, self.selection_delta, bounds,
                           self.public_keys is not None,
                           [self.accounting.mode, str(self.accounting.delta)],
                           # timestamptz keys and constants are read in the session's TimeZone
                           self.timezone if self.zone_dependent else None]
                          # a path table: whose rows are whose (re-protecting bumps the data version too)
                          + ([self.meta.unit_path] if self.meta.unit_path else [])
                          + ([self.meta.source_sql] if self.meta.source_sql else [])
                          # a join with tables the caller may read (bind.bind_star): the key sets read from
                          # them (a new dimension value is a new question)
                          + ([self.public_keys] if self.meta.joins else []),
                          sort_keys=True, default=str)

    def core_groups(self) -> list[str]:
        """The group keys in the released core's order (sorted: the order they are written in is free)."""
        return sorted(set(self.query.group_by), key=self._key_identity)

    def core_groups_identity(self) -> list[str]:
        return [self._key_identity(g) for g in self.core_groups()]

    def _key_identity(self, name: str) -> str:
        kp = self.keys[self.query.group_by.index(name)]
        return f"{kp.sql}::{kp.type}"

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


class _HasCast(visitors.Visitor):
    found = False

    def visit_TypeCast(self, ancestors, node):
        self.found = True


def _canonical_constants(node):
    """The node with its constants' casts made canonical; the node itself when it has no cast (a copy of
    a pglast tree costs about a millisecond, most of a cached answer's Python time)."""
    probe = _HasCast()
    probe(node)
    if not probe.found:
        return node
    node = copy.deepcopy(node)
    return _CanonicalConstants()(node) or node


def _measured(m: "Measurement") -> tuple:
    return (m.func, m.column, m.epsilon, m.lower, m.upper, m.q, m.result_type)


def make_plan(query: Query, meta: TableMeta, epsilon: float, delta: float, timezone: str = "UTC",
              accounting: Accounting | None = None, ceilings: tuple[int, int] | None = None,
              estimates=None) -> Plan:
    """The plan of an analyzed query: measurements, bounds, cost and the rewrite (plan.sql).

    accounting: the asking role's (Accounting.of its budget's delta); ceilings: the most rows and
    groups per unit chosen bounds may reach; estimates(plan): the kept contribution estimate of the
    plan's key set (contributions.lookup), or None -- then this question pays ESTIMATE_SHARE of its
    budget for one (none is looked up without `estimates`).

    plan.sql is one complete SELECT that runs nothing but reads.  The caller must PREPARE it
    (without executing) before charging the budget: a wrong-typed constant (e.g. '2020-13-01'
    for a date column) or a missing operator then fails with an error that depends only on
    the statement, at no cost.  The WHERE's cheap checks (a '...' literal for a number
    column, columns compared with constants of other types) already raise here.
    rewrite_on_copy(plan, copy) has the same WHERE and aggregates over the bounded copy,
    whose columns are the table's: preparing plan.sql validates it too.
    """
    accounting = accounting or Accounting()
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

    key_plans = [_key_plan(query, meta, c) for c in query.group_by]
    key_filters = [keysets.allowed(query, meta, c, timezone) for c in query.group_by]
    public_keys = _public_keys(query, meta, key_plans, key_filters)
    needs_selection = bool(query.group_by) and public_keys is None
    bounds = _bounds(meta, bool(query.group_by), ceilings)

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

    columns = []
    m_by_output = {m.output: m for m in measurements}
    for i, out in enumerate(query.outputs):
        if out.group_column is not None:
            columns.append((out.name, key_plans[query.group_by.index(out.group_column)].type))
        else:
            columns.append((out.name, m_by_output[i].result_type))
    group_types = [kp.type for kp in key_plans]

    plan = Plan(query, meta, "", measurements, columns, group_types, public_keys, bounds=bounds,
                keys=key_plans, timezone=timezone or "UTC", accounting=accounting, key_filters=key_filters)
    explicit = [Decimal(repr(o.aggregate.epsilon)) for o in query.outputs
                if o.aggregate and o.aggregate.epsilon is not None]
    plan.epsilon = (Decimal(str(epsilon)) if implicit else Decimal(0)) + sum(explicit, Decimal(0))
    if plan.free:
        plan.epsilon = Decimal(0)
        plan.sql = _rewrite(plan)
        return plan
    selection = share if needs_selection else 0.0
    estimate = estimates(plan) if estimates is not None and bounds.mode != "none" else None
    _budgets(plan, selection, delta if needs_selection else 0.0, estimate)
    if needs_selection:
        plan.selection_epsilon = selection * (1 - ESTIMATE_SHARE if plan.bounds.estimate_budget else 1)
        plan.selection_delta = delta
        mechanisms.selection_parameters(bounds.groups_ceiling if not bounds.groups_fixed else bounds.groups,
                                        bounds.rows_ceiling if not bounds.rows_fixed else bounds.rows,
                                        plan.selection_epsilon, delta)  # validates delta early
    plan.delta = Decimal(str(delta)) if needs_selection else Decimal(0)
    _calibrate(plan)
    plan.sql = _rewrite(plan)
    return plan


def _bounds(meta: TableMeta, grouped: bool, ceilings) -> Bounds:
    """The contribution bounds of a question: none without a privacy unit; the DBA's fixed values; or
    chosen per question (auto) under the ceilings (a DBA's fixed value is the ceiling of its dimension)."""
    if not meta.unit_column:
        return Bounds()
    rows_ceiling, groups_ceiling = ceilings or (AUTO_ROWS_CEILING, AUTO_GROUPS_CEILING)
    rows_fixed = meta.max_rows_per_unit is not None
    groups_fixed = meta.max_groups_per_unit is not None or not grouped
    rows = meta.max_rows_per_unit if rows_fixed else rows_ceiling
    groups = (meta.max_groups_per_unit if meta.max_groups_per_unit is not None else groups_ceiling) if grouped else 1
    mode = "fixed" if rows_fixed and groups_fixed else "auto"
    return Bounds(mode, int(rows), int(groups), int(rows if rows_fixed else rows_ceiling),
                  int(groups if groups_fixed else groups_ceiling), rows_fixed, groups_fixed,
                  auto_ceilings=(int(rows_ceiling), int(groups_ceiling)))


def _budgets(plan: Plan, selection: float, selection_delta: float, estimate):
    """Each measurement's budget (epsilon or rho), the estimate's, and the question's cost."""
    b = plan.bounds
    if b.mode != "none":
        b.estimate = estimate
        if estimate is not None:
            b.rows, b.groups = estimate.bounds(b)
    fresh_estimate = b.mode != "none" and estimate is None
    scale = 1 - ESTIMATE_SHARE if fresh_estimate else 1.0
    parts = [m.epsilon * scale for m in plan.measurements]
    estimate_eps = ESTIMATE_SHARE * (sum(m.epsilon for m in plan.measurements) + selection) if fresh_estimate else 0.0
    selection_eps = selection * scale
    if plan.accounting.mode == "zcdp":
        zcdp_eps = sum(parts) + estimate_eps
        conversion_delta = float(plan.accounting.delta) - selection_delta
        if conversion_delta <= 0:
            raise DPError(f"this question needs delta {selection_delta} for partition selection, all of the "
                          f"delta {plan.accounting.delta} your budget has",
                          hint="Give the GROUP BY column public values (dp.set_public_values), or ask an "
                               "administrator for more delta.", sqlstate="53400")
        rho = accountant.rho_for(zcdp_eps, conversion_delta) if zcdp_eps > 0 else 0.0
        for m, part in zip(plan.measurements, parts):
            m.budget = rho * part / zcdp_eps
        b.estimate_budget = rho * estimate_eps / zcdp_eps if estimate_eps else 0.0
        plan.cost = accountant.Cost(rho=rho, epsilon=selection_eps,
                                    delta=Decimal(str(selection_delta)) if selection else Decimal(0))
    else:
        for m, part in zip(plan.measurements, parts):
            m.budget = part
        b.estimate_budget = estimate_eps
        # pure epsilon: the charge is the statement's epsilon as asked (the shares are rounded down)
        plan.cost = accountant.Cost(epsilon=plan.epsilon,
                                    delta=Decimal(str(selection_delta)) if selection else Decimal(0))


def _calibrate(plan: Plan):
    """Calibrate every noise now (with the largest bounds the question may use): an epsilon too small
    for the bounds is refused before the charge, not after it."""
    b = plan.bounds
    k = b.rows if b.chosen else b.rows_ceiling
    g = b.groups if b.chosen else b.groups_ceiling
    groups = g if plan.query.group_by else 1
    for m in plan.measurements:
        noise = Noise(plan.accounting.noise, m.budget).split(groups)
        m.spec.explain(m, noise, k)
        if m.spec.statistics > 1 or m.func == "sum":
            gexp, lu, uu = mechanisms.grid(m.lower, m.upper)
            noise.split(m.spec.statistics).scale(k * max(abs(lu), abs(uu), uu - lu) ** 2
                                                 if m.spec.statistics == 3 else k * max(abs(lu), abs(uu), uu - lu))
    if b.estimate_budget:
        Noise(plan.accounting.noise, b.estimate_budget).split(3).scale(1)


def _measurement(index, agg, meta: TableMeta, share: float) -> Measurement:
    eps = agg.epsilon if agg.epsilon is not None else share
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise DPError("epsilon of each aggregate must be a finite number greater than zero",
                      hint="e.g. dp_avg(age, 0, 100, 0.5)", sqlstate=INVALID)
    spec = aggregates.spec(agg.func)
    m = Measurement(index, agg.func, agg.column, float(eps), q=agg.q)
    if agg.func == "count_distinct":
        if agg.column != meta.unit_column:
            raise DPError(f"count(DISTINCT {agg.column}) is not supported: only the privacy unit"
                          f" ({meta.unit_column or 'none declared'}) can be counted distinct",
                          hint="count(DISTINCT <privacy unit>) counts the units; for other columns group by"
                               " them and count the groups.", sqlstate=NOT_SUPPORTED)
        m.result_type = spec.result(None, None, None)
        m.agg = f"pg_catalog.count(DISTINCT {quote_ident(agg.column)})"
        return m
    if not spec.bounded:
        m.result_type = spec.result(None, None, None)
        m.agg = "pg_catalog.count(*)" if agg.column is None else f"pg_catalog.count({quote_ident(agg.column)})"
        return m
    col = meta.columns[agg.column]
    if col["type"] not in aggregates.NUMBER_TYPES:
        raise DPError(f"{agg.func} of column {agg.column!r} ({col['type']}) is not supported",
                      hint="Only numeric columns can be summed, averaged, ranked or have a DP min/max.",
                      sqlstate=NOT_SUPPORTED)
    lower = agg.lower if agg.lower is not None else col["lower"]
    upper = agg.upper if agg.upper is not None else col["upper"]
    if lower is None or upper is None:
        shown = {"quantile": "dp_quantile", "median": "dp_median"}.get(agg.func, f"dp_{agg.func}")
        raise DPError(f"column {agg.column!r} has no bounds",
                      hint=f"An administrator can call dp.set_bounds('{meta.schema}.{meta.table}', "
                           f"'{agg.column}', lower, upper), or pass bounds: {shown}({agg.column}, lower, upper).",
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
    m.result_type = spec.result(col["type"], lower, upper)
    m.agg = spec.state.format(value=value, bounds=bounds, q=float_literal(agg.q) if agg.q is not None else "NULL")
    m.text = True
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


def _public_keys(query: Query, meta: TableMeta, key_plans, key_filters):
    """Every combination of the keys' public values that the WHERE allows, or None if a key has none.
    (keysets.py: a month bucket outside the filtered range, or a value the IN list excludes, cannot
    hold a row, so it is not released: post-processing of the question itself, free.)"""
    if not query.group_by:
        return [()]
    sets = []
    for name, kp, allowed in zip(query.group_by, key_plans, key_filters):
        if kp.public is None:
            return None
        sets.append(keysets.restrict(kp.public, keysets.space_for(query, meta, name), allowed))
    total = math.prod(len(s) for s in sets)
    if total > MAX_PUBLIC_GROUPS:
        raise DPError(f"the GROUP BY has {total} public key combinations, more than {MAX_PUBLIC_GROUPS}",
                      hint="Group by fewer columns.", sqlstate=NOT_SUPPORTED)
    return list(itertools.product(*sets))
