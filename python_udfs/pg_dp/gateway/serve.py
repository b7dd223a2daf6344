"""The front door for analysts: SQL text in, DP answer out, budget charged once.

Runs in the privileged executor (pg_dp.executor), for the caller's role.
Order matters:
1. parse, validate, plan, cost, and PREPARE the rewritten SQL (so a literal of
   the wrong type, an unknown type or operator fails here), all before any
   charge: errors cost nothing;
2. the answer cache (same measurement, same data version: free) -- for roles
   that hold a budget on the dataset;
3. the charge; the executor commits it (the `yield`) before anything is computed;
4. the exact statistics, with statistics counters off (no pg_stat_* counter
   moves because of a question), then OpenDP noise;
5. the released answer is stored for the cache, with counters on again.
"""

from decimal import Decimal
import hashlib
import json
import math

from ..core import catalog, db
from ..core.encode import json_safe, text_value
from ..core.errors import DPError
from ..dp import ledger, mechanisms
from . import answer as answering, bounded, explain as explaining, rewrite, where
from . import plan as planning
from .analyze import analyze
from .bind import bind_join
from .parse import bind_params, parse_select
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
    if len(query.tables) > 1:
        meta = bind_join(query, [catalog.load_table(s, t) for s, t, _ in query.tables])
    else:
        meta = catalog.load_table(query.schema, query.table)
    limits = catalog.query_epsilon(catalog.outer_role(), meta.dataset)
    if epsilon is not None:
        eps = _number(epsilon, "epsilon")
    elif session_epsilon is not None:
        eps = _number(session_epsilon, "pg_dp.epsilon")
    elif limits and limits[0] is not None:
        eps = Decimal(limits[0])
    else:
        eps = _decimal_setting("default_epsilon")
    dlt = _number(delta, "delta") if delta is not None else _decimal_setting("default_delta")
    plan = planning.make_plan(query, meta, eps, float(dlt), timezone=timezone or "UTC")
    if limits and limits[1] is not None and plan.epsilon > Decimal(limits[1]):
        raise DPError(f"this statement costs epsilon {plan.epsilon}, more than the {limits[1]} a statement "
                      f"may cost you on dataset {meta.dataset}",
                      hint="Ask with a smaller epsilon (SET pg_dp.epsilon = ..., or dp.query(sql, epsilon)).",
                      sqlstate=INSUFFICIENT)
    _validate(plan)
    return plan


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
    """Parse-analyse the rewrite (nothing runs), under the analyst's time zone, and evaluate its
    STABLE constants (to_timestamp): errors of the analyst's constants surface before the charge."""
    try:
        with db.subtransaction():
            set_time_zone(plan.timezone)
            db.prepare(plan.sql)
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
    _require_budget(role, plan.meta.dataset)
    key = _cache_key(plan)
    columns = [[name, typ] for name, typ in plan.columns]
    cached = _cached(key)
    if cached is not None:
        return columns, answering.present(plan, cached)
    ledger_id = ledger.charge(role, plan.meta.dataset, plan.epsilon, plan.delta, plan.query.normalized,
                              plan.mechanism, plan.meta.data_version, key)
    yield                                   # the executor commits the charge
    try:
        db.execute("SELECT pg_catalog.set_config('track_counts', 'off', true)")
        catalog.recheck_code(plan.query)        # no cast or domain CHECK of another role added since the plan
        set_time_zone(plan.timezone)
        copy = bounded.copy_for(plan)
        exact_sql = rewrite.rewrite_on_copy(plan, copy) if copy else plan.sql
        exact = db.execute_tuples(exact_sql, len(plan.query.group_by) + 1 + len(plan.measurements))
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
    # counters on again for the catalog (decided when a relation is opened, so autovacuum sees the writes)
    db.execute("SELECT pg_catalog.set_config('track_counts', 'on', true)")
    ledger.store_answer(key, plan.meta.dataset, plan.meta.data_version, json.dumps(columns),
                        json.dumps(core, default=_json_default), ledger_id)
    # what leaves is what a cached answer gives: the stored core, presented
    return columns, answering.present(plan, json.loads(json.dumps(core, default=_json_default)))


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


def cost_reply(sql, epsilon=None, delta=None, session_epsilon=None, timezone=None):
    plan = plan_question(sql, epsilon, delta, session_epsilon, timezone=timezone)
    role = catalog.outer_role()
    _require_budget(role, plan.meta.dataset)
    cached = _cached(_cache_key(plan)) is not None
    remaining = catalog.remaining_budget(role, plan.meta.dataset)
    zero = Decimal(0)
    return json.dumps({"dataset": plan.meta.dataset,
                       "epsilon_cost": str(zero if cached else plan.epsilon),
                       "delta_cost": str(zero if cached else plan.delta), "cached": cached,
                       "epsilon_remaining": str(remaining[0]), "delta_remaining": str(remaining[1])})


def explain_reply(sql, epsilon=None, delta=None, columns_only=False, session_epsilon=None, params=None,
                  timezone=None):
    plan = plan_question(sql, epsilon, delta, session_epsilon, params, timezone)
    if columns_only:        # the answer's column types, one a line, for the plain-SQL hook (src/sql_hook/hook.c)
        return "\n".join(t for _, t in plan.columns)
    return json.dumps([
        {"column_name": r["column_name"], "data_type": r["data_type"], "mechanism": r["mechanism"],
         "epsilon": f"{r['epsilon']:.12g}", "delta": f"{r['delta']:.12g}",
         "noise_scale": r["noise_scale"], "ci95": r["ci95"], "note": r["note"]}
        for r in explaining.explain(plan)])


def synthetic_copy_reply(relid):
    """The synthetic copy of a protected table that the caller may read ('' if none): the plain-SQL
    hook answers row-level reads (BI tools' previews) from it."""
    rows = db.execute(
        "SELECT s.relid::int8 AS oid FROM dp_internal.synthetic_tables s "
        "JOIN pg_catalog.pg_class c ON c.oid = s.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE s.source = $1 AND n.nspname IN ($2, dp_internal.personal_schema($3, $2)) "
        "AND pg_catalog.has_table_privilege($3, s.relid, 'SELECT') "
        "ORDER BY n.nspname = $2, s.created_at DESC LIMIT 1",      # the caller's own copy first
        [int(relid), db.setting("synthetic_schema") or "dp_synthetic", catalog.outer_role()], ["oid", "text", "oid"])
    return str(rows[0]["oid"]) if rows else ""
