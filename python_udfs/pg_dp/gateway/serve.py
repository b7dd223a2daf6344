"""The front door for analysts: SQL text in, DP answer out, budget charged once.

Runs in the privileged executor (pg_dp.executor), for the caller's role.
Order matters:
1. parse, validate, plan, cost, and PREPARE the rewritten SQL (so a literal of
   the wrong type, an unknown type or operator fails here), all before any
   charge: errors cost nothing;
2. the answer cache (same measurement, same data version: free) -- for roles
   that hold a budget on the dataset;
3. the charge; the executor commits it (the `yield`) before anything is computed;
4. the contribution bounds (fixed, or chosen from a DP estimate of the key set: contributions.py),
   the exact statistics -- filtered first, then bounded (rewrite.py) --, with statistics counters
   off (no pg_stat_* counter moves because of a question), then OpenDP noise;
5. the released answer is stored for the cache, with counters on again, and recorded for the
   analyst (dp.my_answers), with a NOTICE when bounding dropped a large share of the rows.
A question whose keys are all public and that asks no aggregate (a filter drop-down) reads no data
and costs nothing.
A plain-SQL statement of several measurements (statement_reply) follows the same order: every
measurement planned before anything is charged, one charge per dataset for the measurements not
cached (their Costs composed by the accountant), then each computed by _compute, as answer() does.
"""

from decimal import Decimal
import hashlib
import json
import math

from ..core import catalog, db
from ..core.encode import json_safe, text_value
from ..core.errors import DPError
from ..dp import accountant, ledger, mechanisms
from . import answer as answering, bounded, contributions, explain as explaining, relations, rewrite, statement
from . import where
from . import plan as planning
from .analyze import analyze
from .bind import bind
from .parse import ast, bind_params, parse_one, parse_select
from .sqltext import quote_ident

NO_BUDGET = "42501"
INSUFFICIENT = "53400"


def _decimal_setting(key: str) -> Decimal:
    value = db.setting(key)
    try:
        number = Decimal(value)
    except ArithmeticError:
        number = Decimal("NaN")
    if not number.is_finite() or number < 0:
        raise DPError(f"the pg_dp setting {key} is invalid ({value!r})",
                      hint=f"An administrator can fix it: dp.set_setting('{key}', '...').", sqlstate="22023")
    return number


def _typed_params(params):
    """[(type name, value text or None) or None] from the caller's [[type oid, value or null] or null]."""
    if params is None:
        return []
    if not isinstance(params, list) or len(params) > 1000 or not all(
            p is None or (isinstance(p, list) and len(p) == 2 and isinstance(p[0], int)
                          and (p[1] is None or isinstance(p[1], str))) for p in params):
        raise DPError("malformed pg_dp request", sqlstate="22023")
    oids = [p[0] for p in params if p is not None]
    names = {r["oid"]: r["name"] for r in db.execute(
        "SELECT t.oid::int8 AS oid, pg_catalog.format_type(t.oid, NULL) AS name FROM pg_catalog.pg_type t "
        "WHERE t.oid = ANY($1::oid[]) AND t.typtype <> 'p'", [oids], ["int8[]"])}
    typed = []
    for p in params:
        if p is not None and p[0] not in names:
            raise DPError(f"a parameter of type oid {p[0]} cannot be passed", hint="Cast it to a plain type.",
                          sqlstate="42804")
        typed.append(None if p is None else (names[p[0]], p[1]))
    return typed


def plan_question(sql, epsilon=None, delta=None, session_epsilon=None, params=None, timezone=None):
    """The plan of a question; epsilon: the argument, else the session's pg_dp.epsilon, else the
    role's default on the dataset (dp.set_query_epsilon), else the setting default_epsilon.
    params: the values of $1, $2, ... (prepared statements of the plain-SQL hook), which become
    typed constants of the statement, so the same values are the same question.
    A statement costing more than the role's maximum is refused here, before any charge."""
    query = analyze(bind_params(parse_select(sql), _typed_params(params)))
    meta = bind(query)
    role = catalog.outer_role()
    limits = catalog.query_epsilon(role, meta.dataset)
    budget = ledger.budget(role, meta.dataset)
    if epsilon is not None:
        eps = _number(epsilon, "epsilon")
    elif session_epsilon is not None:
        eps = _number(session_epsilon, "pg_dp.epsilon")
    elif limits and limits[0] is not None:
        eps = Decimal(limits[0])
    else:
        eps = _decimal_setting("default_epsilon")
    dlt = _number(delta, "delta") if delta is not None else _decimal_setting("default_delta")
    plan = planning.make_plan(query, _unique_unit(meta), eps, float(dlt), timezone=timezone or "UTC",
                              accounting=planning.Accounting.of(budget.delta_granted if budget else 0),
                              ceilings=(_int_setting("auto_max_rows_per_unit", planning.AUTO_ROWS_CEILING),
                                        _int_setting("auto_max_groups_per_unit", planning.AUTO_GROUPS_CEILING)),
                              estimates=contributions.lookup)
    if limits and limits[1] is not None and plan.epsilon > Decimal(limits[1]):
        raise DPError(f"this statement costs epsilon {plan.epsilon}, more than the {limits[1]} a statement "
                      f"may cost you on dataset {meta.dataset}",
                      hint="Ask with a smaller epsilon (SET pg_dp.epsilon = ..., or dp.query(sql, epsilon)).",
                      sqlstate=INSUFFICIENT)
    _validate(plan)
    return plan


def _int_setting(key: str, default: int) -> int:
    try:
        return max(1, int(db.setting(key) or default))
    except ValueError:
        return default


def _unique_unit(meta):
    """A table whose privacy unit column is unique (its own key) has one row per unit: the bounds
    chosen per question are 1 (public schema information, no estimate needed)."""
    if not meta.unit_column or meta.unit_path or meta.source_sql or (
            meta.max_rows_per_unit is not None and meta.max_groups_per_unit is not None):
        return meta
    unique = db.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = $1 AND i.indisunique "
        "AND i.indnatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = $2) AS u",
        [meta.relid, meta.unit_column], ["oid", "name"])[0]["u"]
    if not unique:
        return meta
    import dataclasses
    return dataclasses.replace(meta, max_rows_per_unit=meta.max_rows_per_unit or 1,
                               max_groups_per_unit=meta.max_groups_per_unit or 1)


def _number(value, name) -> Decimal:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x) or x < 0:
        raise DPError(f"{name} of the query must be a finite number, not negative",
                      hint=f"e.g. dp.query(sql, {name} => 0.5)", sqlstate="22023")
    return Decimal(str(x))


def _validate(plan):
    """Parse-analyse and plan the rewrite (nothing runs), under the analyst's time zone, and evaluate its
    STABLE constants (to_timestamp): errors of the analyst's constants surface before the charge."""
    try:
        with db.subtransaction():
            set_time_zone(plan.timezone)
            db.prepare(plan.sql)
            # planned too (nothing runs): the planner folds the tables' index expressions and
            # predicates, which may call another role's function -- refused here, before the charge
            # (src/worker/trust.c), not after it
            db.execute("EXPLAIN (COSTS OFF) " + plan.sql)
            for check in where.constant_checks(plan):
                db.execute(check)
            set_time_zone("UTC")
    except Exception as e:
        if not db.is_spi_error(e):
            raise
        raise DPError(f"the query cannot be answered: {getattr(e, 'args', [''])[0]}",
                      hint="Check the constants and their types against the table's columns (\\d).",
                      sqlstate=db.sqlstate(e) or "42804")


def set_time_zone(zone: str):
    """The exact query runs under the analyst's session TimeZone (timestamptz keys and constants mean
    what they mean natively); everything else in the worker stays in UTC.  Transaction-local."""
    try:
        with db.subtransaction():
            db.execute("SELECT pg_catalog.set_config('TimeZone', $1, true)", [zone], ["text"])
    except Exception as e:
        if not db.is_spi_error(e):
            raise
        raise DPError(f"invalid time zone {zone!r}", hint="SET TimeZone to a zone PostgreSQL knows.",
                      sqlstate="22023")


def _cache_key(plan) -> str:
    return hashlib.sha256(plan.cache_identity().encode()).hexdigest()


def _cached(key: str):
    """The released core of a measurement set asked before on this data version, or None."""
    rows = db.execute("SELECT rows::text AS r FROM dp_internal.answers WHERE cache_key = $1", [key], ["text"])
    return json.loads(rows[0]["r"]) if rows else None


def _require_budget(role: int, dataset: str):
    """Answers, cached or not, and whether one is cached, go only to roles with a budget on the dataset."""
    if catalog.remaining_budget(role, dataset) is None:
        raise DPError(f"you have no privacy budget on dataset {dataset}",
                      hint="Ask an administrator: dp.grant_budget(role, dataset, epsilon).", sqlstate=NO_BUDGET)


def answer(sql, epsilon=None, delta=None, expect=None, session_epsilon=None, params=None, timezone=None):
    """Generator (executor phases) returning (columns, rows) of the DP answer; charges unless cached."""
    plan = plan_question(sql, epsilon, delta, session_epsilon, params, timezone)
    check_expected(plan, expect)
    role = catalog.outer_role()
    columns = [[name, typ] for name, typ in plan.columns]
    if plan.free:               # the public key set itself: no data read, nothing spent
        core = answering.release_core(plan, [])
        ledger.record_answer(role, plan.meta.dataset, plan.query.normalized, "public", None, _detail(plan),
                             alone=True)
        return columns, answering.present(plan, core)
    _require_budget(role, plan.meta.dataset)
    key = _cache_key(plan)
    cached = _cached(key)
    if cached is not None:
        ledger.record_answer(role, plan.meta.dataset, plan.query.normalized, "cache", ledger.cached_ledger_id(key),
                             _cached_detail(key, plan), alone=True)
        return columns, answering.present(plan, cached)
    ledger_id = ledger.charge(role, plan.meta.dataset, plan.cost, plan.query.normalized,
                              plan.mechanism, plan.meta.data_version, key, asked=plan.epsilon)
    yield                                   # the executor commits the charge
    core = _compute(plan, key, ledger_id, columns)
    # what leaves is what a cached answer gives: the stored core, presented
    return columns, answering.present(plan, core)


def _compute(plan, key, ledger_id, columns):
    """After the charge, for one measurement (dp.query's question, or one of a statement's): the
    contribution bounds, the exact statistics (filtered first, then bounded; over a bounded copy where
    one fits), with statistics counters off; OpenDP noise; the released core stored for the cache and
    recorded for the analyst (dp.my_answers).  Returns the stored core (what a cached answer gives)."""
    try:
        db.execute("SELECT pg_catalog.set_config('track_counts', 'off', true)")
        catalog.recheck_code(plan.query)        # no cast or domain CHECK of another role added since the plan
        set_time_zone(plan.timezone)
        _choose_bounds(plan, ledger_id)
        copy = bounded.copy_for(plan)
        width = len(plan.query.group_by) + 1 + len(plan.measurements)
        exact = _on_copy(plan, copy, width) if copy else db.execute_tuples(rewrite.rewrite(plan), width)
        set_time_zone("UTC")
    except Exception as e:
        if not db.is_spi_error(e):
            raise
        # never pass on what the data made the server say
        db.log(f"pg_dp: exact query of ledger entry {ledger_id} failed: {e}")
        raise DPError("the answer could not be computed; the charge stands",
                      hint="An administrator finds the cause in the server log.", sqlstate="XX000")
    core = answering.release_core(plan, exact)
    if plan.public_keys is None and not core:
        threshold = mechanisms.selection_parameters(plan.groups_per_unit, plan.rows_per_unit,
                                                    plan.selection_epsilon, plan.selection_delta)[1]
        db.notice(f"no group was released: DP partition selection keeps only groups of more than about "
                  f"{threshold} units at this epsilon and delta (the charge stands)",
                  hint="Ask with a larger epsilon, group by a column with public values "
                       "(dp.set_public_values), or group less finely.")
    detail = _detail(plan)
    _notice_dropped(plan, detail)
    # counters on again for the catalog (decided when a relation is opened, so autovacuum sees the writes)
    db.execute("SELECT pg_catalog.set_config('track_counts', 'on', true)")
    ledger.store_answer(key, plan.meta.dataset, plan.meta.data_version, json.dumps(columns),
                        json.dumps(core, default=_json_default), ledger_id)
    ledger.record_answer(catalog.outer_role(), plan.meta.dataset, plan.query.normalized, "fresh", ledger_id, detail)
    return json.loads(json.dumps(core, default=_json_default))


def _on_copy(plan, copy: str, width: int) -> list[tuple]:
    """The exact statistics over a bounded copy: with a WHERE, one scan when it disturbs no unit's kept
    rows; else ranking again only the units it disturbs."""
    first = rewrite.first_pass_on_copy(plan, copy)
    if first is None:
        return db.execute_tuples(rewrite.rewrite_on_copy(plan, copy), width)
    rows = db.execute_tuples(first, width + 1)
    if not any(r[-1] for r in rows):
        # groups that only rejected rows reached are not groups of the question (filter first)
        return [r[:-1] for r in rows if r[len(plan.query.group_by)]]
    disturbed = [int(r[0]) for r in db.execute_tuples(rewrite.disturbed_units_sql(plan, copy), 1)]
    if len(disturbed) > rewrite.MAX_RANKED_UNITS:
        disturbed = None
    return db.execute_tuples(rewrite.rewrite_on_copy(plan, copy, disturbed), width)


def _choose_bounds(plan, ledger_id: int):
    """After the charge: the dataset's seed, and the contribution estimate (kept, or measured now with
    the share of the budget the plan set aside) and the bounds it chooses."""
    b = plan.bounds
    if b.mode == "none":
        return
    contributions.ensure_seed(plan.meta.dataset)
    if b.estimate is None:
        b.estimate = contributions.compute(plan, ledger_id)
        b.rows, b.groups = b.estimate.bounds(b)


def _detail(plan) -> dict:
    """What dp.my_answers shows of an answer (post-processing of the plan and the released estimate)."""
    lines = explaining.explain(plan)
    return {"mechanism": plan.mechanism, "bounds": plan.bounds.describe(plan.meta.unit_column, bool(plan.query.group_by))
            if plan.bounds.mode != "none" else None,
            "dropped_share": explaining.dropped_share(plan),
            "columns": [{k: r[k] for k in ("column_name", "mechanism", "noise_scale", "ci95")} for r in lines
                        if r["mechanism"] != "group key"]}


def _cached_detail(key: str, plan) -> dict:
    """The record of the fresh answer a cached one repeats (its bounds and share dropped), else the plan's."""
    rows = db.execute("SELECT a.detail::text AS d FROM dp_internal.answer_log a JOIN dp_internal.answers c "
                      "ON c.ledger_id = a.ledger_id WHERE c.cache_key = $1 AND a.origin = 'fresh' "
                      "ORDER BY a.id LIMIT 1", [key], ["text"])
    return json.loads(rows[0]["d"]) if rows else _detail(plan)


def _notice_dropped(plan, detail: dict):
    share = detail.get("dropped_share")
    if share is None or share <= contributions.NOTICE_SHARE:
        return
    fix = ("let each question choose its bounds (dp.set_contribution_bounds(dataset, NULL, NULL)) or raise them"
           if plan.bounds.mode == "fixed" else "ask an administrator to raise auto_max_rows_per_unit / "
           "auto_max_groups_per_unit")
    db.notice(f"bounding dropped about {100 * share:.0f}% of the rows of this answer ({detail['bounds']}): "
              "its values are that much smaller than the data's",
              hint=f"Group by coarser keys (a month instead of a day), or {fix}.")


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def column_list(columns) -> str:
    """A column definition list: "name" type, ... (names quoted, types as format_type writes them)."""
    return ", ".join(f"{quote_ident(n)} {t}" for n, t in columns).replace("\n", " ")


def encode_rows(columns, rows) -> str:
    """The reply of dp.query (src/worker/frontdoor.c): a header line, then each value length-prefixed.

    Header: the number of columns and their list as "name type, ..." (for error hints).
    Values, row after row: N (NULL) or V<characters>:<value> (characters: the server's
    encoding may not be UTF-8).
    """
    parts = [f"{len(columns)} {column_list(columns)}\n"]
    for row in rows:
        for value in row:
            text = text_value(value)
            parts.append("N" if text is None else f"V{len(text)}:{text}")
    return "".join(parts)


NUMBERS = {"smallint", "integer", "bigint", "numeric", "real", "double precision"}
INTEGERS = {"smallint", "integer", "bigint"}
TEXTS = {"text", "character varying", "character", "name"}


def _fits(ours: str, theirs: str) -> bool:
    """Whether a value of our type reads as the caller's declared type (by its text form)."""
    base, wanted = ours.split("(")[0], theirs.split("(")[0]
    if ours == theirs or base == wanted or theirs in TEXTS:
        return True
    if base in INTEGERS:            # a count or an integer sum reads as any number
        return wanted in NUMBERS
    return base in NUMBERS and wanted in NUMBERS - INTEGERS    # a noisy mean is no integer


def check_expected(plan, expect):
    """Refuse a column definition list that does not fit the answer -- before anything is charged."""
    if expect is None:
        return
    expect = [r["t"] for r in db.execute("SELECT pg_catalog.format_type(t, NULL) AS t "
                                         "FROM pg_catalog.unnest($1::oid[]) WITH ORDINALITY AS u(t, i) ORDER BY i",
                                         [[int(t) for t in expect]], ["oid[]"])]
    wanted = column_list(plan.columns)
    if len(expect) != len(plan.columns) or not all(_fits(t, e) for (_, t), e in zip(plan.columns, expect)):
        raise DPError(f"the column definition list ({', '.join(expect)}) does not fit the answer ({wanted})",
                      hint=f"Write AS t({wanted}).", sqlstate="42804")


def query_reply(sql, epsilon=None, delta=None, expect=None, session_epsilon=None, params=None, timezone=None):
    columns, rows = yield from answer(sql, epsilon, delta, expect, session_epsilon, params, timezone)
    return encode_rows(columns, rows)


def _json_value(value, typ: str):
    """Group keys travel as text; give JSON its own numbers and booleans."""
    if not isinstance(value, str):
        return value
    if typ in ("smallint", "integer", "bigint"):
        return int(value)
    if typ in ("real", "double precision", "numeric") or typ.startswith("numeric("):
        return float(value)
    if typ == "boolean":
        return value in ("true", "t")
    return value


def query_json_reply(sql, epsilon=None, delta=None, session_epsilon=None, timezone=None):
    columns, rows = yield from answer(sql, epsilon, delta, session_epsilon=session_epsilon, timezone=timezone)
    return json.dumps([json_safe({name: _json_value(value, typ) for (name, typ), value in zip(columns, row)})
                       for row in rows], default=_json_default)


def _is_one_level(sql) -> bool:
    """Whether dp.query reads the statement as it is: one SELECT without sub-selects or CTEs."""
    stmt = _parse_statement(sql)
    nested = []
    statement._walk([stmt.fromClause, stmt.targetList, stmt.whereClause, stmt.havingClause],
                    lambda n: nested.append(n) if isinstance(n, (ast.RangeSubselect, ast.SubLink)) else None)
    return stmt.withClause is None and not nested and stmt.op == 0


def _statement_plans(sql, epsilon, delta, session_epsilon, params, timezone):
    """[(plan, names or None)]: the statement's measurements (dp.cost and dp.explain of any statement)."""
    if _is_one_level(sql):
        return [(plan_question(sql, epsilon, delta, session_epsilon, params, timezone), None)]
    s = split_statement(sql)
    if not s.measurements:
        raise DPError("the statement asks no DP measurement", hint="Aggregate a protected table.",
                      sqlstate="0A000")
    plans = plan_statement([m.sql for m in s.measurements], epsilon, delta, session_epsilon, params, timezone)
    return [(p, m.names) for p, m in zip(plans, s.measurements)]


def _preview_lines(sql) -> list:
    """dp.explain lines of the row-level reads of a statement: which synthetic copy they read."""
    try:
        copies = split_statement(sql).copies
    except DPError:
        return []
    lines = []
    for source, copy in copies:
        made = db.execute("SELECT s.provenance->>'epsilon' AS e, s.provenance->>'at' AS at, "
                          "s.provenance->>'method' AS m FROM dp_internal.synthetic_tables s WHERE s.relid = $1",
                          [copy.oid], ["oid"])
        what = f" (epsilon {made[0]['e']}, {made[0]['m']}, made {made[0]['at']})" if made else ""
        lines.append({"column_name": f"(rows of {source.name})", "data_type": None, "mechanism": "synthetic copy",
                      "epsilon": "0", "delta": "0", "noise_scale": None, "ci95": None,
                      "note": f"rows come from the DP synthetic copy {copy.schema}.{copy.name}{what}: no row is a "
                              "real one; reading it costs nothing", "rho": None, "bounds": None,
                      "dropped_share": None})
    return lines


def cost_reply(sql, epsilon=None, delta=None, session_epsilon=None, timezone=None):
    plans = [p for p, _ in _statement_plans(sql, epsilon, delta, session_epsilon, None, timezone)]
    role = catalog.outer_role()
    for plan in plans:
        if not plan.free:
            _require_budget(role, plan.meta.dataset)
    dataset = plans[0].meta.dataset
    todo = [p for p in plans if not p.free and p.meta.dataset == dataset and _cached(_cache_key(p)) is None]
    b = ledger.budget(role, dataset)
    zero = Decimal(0)
    eps, dlt = zero, zero
    if todo and b is not None:     # what the statement's one charge would add on this dataset
        c = accountant.charge(b.spent, (b.epsilon_spent, b.delta_spent), _statement_cost(todo),
                              (b.epsilon_granted, b.delta_granted), check=False)
        eps, dlt = c.epsilon, c.delta
    remaining = (b.epsilon_granted - b.epsilon_spent, b.delta_granted - b.delta_spent) if b else (zero, zero)
    return json.dumps({"dataset": dataset, "epsilon_cost": str(eps), "delta_cost": str(dlt),
                       "cached": not todo, "epsilon_remaining": str(remaining[0]),
                       "delta_remaining": str(remaining[1])})


def _statement_cost(plans) -> "accountant.Cost":
    """The Cost of several measurements charged together (zCDP parts add as rho, the rest as (epsilon, delta))."""
    total = accountant.Cost()
    for p in plans:
        total = total + p.cost
    return total


def explain_reply(sql, epsilon=None, delta=None, columns_only=False, session_epsilon=None, params=None,
                  timezone=None):
    if columns_only:        # the answer's column types, one a line
        plan = plan_question(sql, epsilon, delta, session_epsilon, params, timezone)
        return "\n".join(t for _, t in plan.columns)
    out = _preview_lines(sql)
    plans = _statement_plans(sql, epsilon, delta, session_epsilon, params, timezone) if not out or \
        split_statement(sql).measurements else []
    for i, (plan, names) in enumerate(plans, 1):
        prefix = f"measurement {i}: " if len(plans) > 1 else ""
        for r in explaining.explain(plan):
            name = names.get(r["column_name"], r["column_name"]) if names is not None else r["column_name"]
            out.append({"column_name": prefix + name, "data_type": r["data_type"], "mechanism": r["mechanism"],
                        "epsilon": f"{r['epsilon']:.12g}", "delta": f"{r['delta']:.12g}",
                        "noise_scale": r["noise_scale"], "ci95": r["ci95"], "note": r["note"], "rho": r["rho"],
                        "bounds": r["bounds"], "dropped_share": r["dropped_share"]})
        for note in plan.meta.joins or ():
            out.append({"column_name": prefix + "(join)", "data_type": None, "mechanism": "join", "epsilon": "0",
                        "delta": "0", "noise_scale": None, "ci95": None, "note": note, "rho": None,
                        "bounds": None, "dropped_share": None})
    return json.dumps(out)


def synthetic_copy_reply(relid):
    """The synthetic copy of a protected table that the caller's row-level reads read ('' if none;
    who reads which copy: relations.synthetic_copy_oid)."""
    role = catalog.outer_role()
    oid = relations.synthetic_copy_oid(int(relid), role)
    if oid is None:
        return ""
    source = db.execute("SELECT dataset FROM dp_internal.protected_tables WHERE relid = $1", [int(relid)], ["oid"])
    if source:
        ledger.record_answer(role, source[0]["dataset"], f"rows of {int(relid)}::regclass", "synthetic", None,
                             {"mechanism": "DP synthetic copy", "copy": int(oid)})
    return str(oid)


# ---------------------------------------------------------------------------------------------
# Whole statements (the plain-SQL hook): DP measurements at the leaves, SQL above them.

def _parse_statement(sql):
    return statement.unwrap(parse_one(sql))


def split_statement(sql, search_path=None):
    """statement.split of the caller's statement, names resolved with the caller's search_path."""
    return statement.split(_parse_statement(sql), relations.Catalog(catalog.outer_role(), search_path))


def _implicit_slots(plan) -> int:
    """How many shares of the statement's epsilon a plan uses (aggregates without their own, selection)."""
    return sum(1 for o in plan.query.outputs if o.aggregate and o.aggregate.epsilon is None) \
        + (1 if plan.selection_epsilon else 0)


def plan_statement(cores, epsilon=None, delta=None, session_epsilon=None, params=None, timezone=None):
    """The plans of a statement's measurements.  The statement's epsilon (the argument, else the
    session's pg_dp.epsilon, else the role's default, else default_epsilon) is split over all of
    them, in proportion to the shares each uses, so one statement costs what one question costs;
    the DBA's per-statement maximum is checked for the whole statement (per dataset)."""
    if not isinstance(cores, list) or not cores or not all(isinstance(c, str) for c in cores) or len(cores) > 64:
        raise DPError("malformed pg_dp request", sqlstate="22023")
    first = [plan_question(c, epsilon, delta, session_epsilon, params, timezone) for c in cores]
    if len(first) == 1:
        plans = first
    else:
        by_dataset = {}
        for p in first:
            by_dataset.setdefault(p.meta.dataset, []).append(p)
        plans = []
        for p in first:
            group = by_dataset[p.meta.dataset]
            total = sum(_implicit_slots(q) for q in group)
            slots = _implicit_slots(p)
            implicit_eps = p.epsilon - sum((Decimal(repr(o.aggregate.epsilon)) for o in p.query.outputs
                                            if o.aggregate and o.aggregate.epsilon is not None), Decimal(0))
            if slots == 0 or total == slots:
                plans.append(p)
                continue
            share = (implicit_eps * slots / total).quantize(Decimal("1e-12"), rounding="ROUND_DOWN")
            plans.append(plan_question(cores[first.index(p)], float(share), delta, None, params, timezone))
    for dataset in {p.meta.dataset for p in plans}:
        limits = catalog.query_epsilon(catalog.outer_role(), dataset)
        total = sum((p.epsilon for p in plans if p.meta.dataset == dataset), Decimal(0))
        if limits and limits[1] is not None and total > Decimal(limits[1]):
            raise DPError(f"this statement costs epsilon {total}, more than the {limits[1]} a statement may cost "
                          f"you on dataset {dataset}",
                          hint="Ask with a smaller epsilon (SET pg_dp.epsilon = ...), or fewer measurements.",
                          sqlstate=INSUFFICIENT)
    return plans


def _field(text: str) -> str:
    return f"V{len(text)}:{text}"


def split_reply(sql, params=None, search_path=None, timezone=None, session_epsilon=None):
    """For the plain-SQL hook, at parse analysis (nothing is charged): the outer statement, each
    measurement's marker and core SQL, and the synthetic copies its row-level reads may read.
    Every measurement is planned here, so what cannot be answered is refused before anything runs."""
    s = split_statement(sql, search_path)
    if s.measurements:
        plans = plan_statement([m.sql for m in s.measurements], None, None, session_epsilon, params, timezone)
        for p in plans:
            if not p.free:
                _require_budget(catalog.outer_role(), p.meta.dataset)
    for source, copy in s.copies:
        db.notice(f"rows of {source.name} come from its DP synthetic copy {copy.schema}.{copy.name}",
                  hint="Synthetic rows look like the table's, but no row is a real one; ask aggregates for DP "
                       "answers on the real data.")
    fields = [s.sql, str(len(s.measurements))]
    for m in s.measurements:
        fields += [m.marker, m.sql]
    fields.append(str(len(s.copies)))
    fields += [f"{source.oid}:{copy.oid}" for source, copy in s.copies]
    return "".join(_field(f) for f in fields)


def statement_reply(cores, expect=None, params=None, session_epsilon=None, timezone=None):
    """Generator: the answers of all the measurements of one statement, charged once (one ledger
    entry per dataset, for the measurements not already answered on this data version).  Reply:
    one field per measurement, each as dp.query's reply (encode_rows)."""
    if isinstance(cores, list) and len(cores) == 1 and isinstance(cores[0], str):
        # one measurement: exactly dp.query's question (its charge, cache and record)
        if expect is not None and (not isinstance(expect, list) or len(expect) != 1):
            raise DPError("malformed pg_dp request", sqlstate="22023")
        columns, rows = yield from answer(cores[0], expect=None if expect is None else expect[0],
                                         session_epsilon=session_epsilon, params=params, timezone=timezone)
        return _field(encode_rows(columns, rows))
    plans = plan_statement(cores, None, None, session_epsilon, params, timezone)
    if expect is not None:
        if not isinstance(expect, list) or len(expect) != len(plans):
            raise DPError("malformed pg_dp request", sqlstate="22023")
        for plan, e in zip(plans, expect):
            check_expected(plan, e)
    role = catalog.outer_role()
    for plan in plans:
        if not plan.free:
            _require_budget(role, plan.meta.dataset)
    keys = [None if plan.free else _cache_key(plan) for plan in plans]
    cached = [None if plan.free else _cached(k) for plan, k in zip(plans, keys)]
    ledger_ids = {}
    for dataset in sorted({p.meta.dataset for p in plans}):
        todo = [(p, k) for p, k, c in zip(plans, keys, cached)
                if not p.free and c is None and p.meta.dataset == dataset]
        if not todo:
            continue
        # one charge for the statement on this dataset: the accountant composes the measurements' Costs
        # (rho adds up under zCDP), and the ledger shows the epsilon the statement was asked at
        text = " ; ".join(p.query.normalized for p, _ in todo)
        mechanism = " ; ".join(p.mechanism for p, _ in todo)
        key = hashlib.sha256("".join(k for _, k in todo).encode()).hexdigest() if len(todo) > 1 else todo[0][1]
        ledger_ids[dataset] = ledger.charge(role, dataset, _statement_cost([p for p, _ in todo]), text, mechanism,
                                            todo[0][0].meta.data_version, key,
                                            asked=sum((p.epsilon for p, _ in todo), Decimal(0)))
    if ledger_ids:
        yield                               # the executor commits the charge
    parts = []
    for plan, key, core in zip(plans, keys, cached):
        columns = [[name, typ] for name, typ in plan.columns]
        if plan.free:           # the public key set itself: no data read, nothing spent
            core = answering.release_core(plan, [])
            ledger.record_answer(role, plan.meta.dataset, plan.query.normalized, "public", None, _detail(plan))
        elif core is not None:
            ledger.record_answer(role, plan.meta.dataset, plan.query.normalized, "cache",
                                 ledger.cached_ledger_id(key), _cached_detail(key, plan))
        else:
            core = _compute(plan, key, ledger_ids[plan.meta.dataset], columns)
        parts.append(encode_rows(columns, answering.present(plan, core)))
    return "".join(_field(p) for p in parts)
