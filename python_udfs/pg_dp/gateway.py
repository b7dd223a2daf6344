"""The front door for analysts: SQL text in, DP answer out, budget charged once.

Order matters: parse, validate, plan and cost first (errors cost nothing);
then the answer cache (same statement, same data version: free); then the
charge, committed on its own before anything is computed; then the exact
statistics (run as the extension owner) and the noise.
"""

from decimal import Decimal
import hashlib
import json

from . import bounded, catalog, db, ledger
from .query.analyze import analyze
from .query.parse import parse_select
from .query import plan as planning


def _decimal_setting(key: str) -> Decimal:
    return Decimal(db.setting(key))


def make_plan(sql, epsilon=None, delta=None):
    query = analyze(parse_select(sql))
    if len(query.tables) > 1:
        meta = planning.bind_join(query, [catalog.load_table(s, t) for s, t, _ in query.tables])
    else:
        meta = catalog.load_table(query.schema, query.table)
    eps = Decimal(str(epsilon)) if epsilon is not None else _decimal_setting("default_epsilon")
    dlt = Decimal(str(delta)) if delta is not None else _decimal_setting("default_delta")
    return planning.make_plan(query, meta, eps, float(dlt))


def _cache_key(plan) -> str:
    return hashlib.sha256(plan.cache_identity().encode()).hexdigest()


def _cached(key: str):
    rows = db.execute("SELECT columns::text AS c, rows::text AS r FROM dp_internal.answers WHERE cache_key = $1",
                      [key], ["text"])
    if not rows:
        return None
    return json.loads(rows[0]["c"]), json.loads(rows[0]["r"])


def answer(sql, epsilon=None, delta=None):
    """(columns, rows) of the DP answer; charges the caller's budget unless cached."""
    plan = make_plan(sql, epsilon, delta)
    key = _cache_key(plan)
    cached = _cached(key)
    if cached is not None:
        return cached
    role = catalog.outer_role()
    ledger_id = ledger.charge(role, plan.meta.dataset, plan.epsilon, plan.delta, plan.query.normalized,
                              plan.mechanism, plan.meta.data_version, key)
    copy = bounded.copy_for(plan)
    sql = planning.rewrite_on_copy(plan, copy) if copy else plan.sql
    exact = db.execute_tuples(sql, len(plan.query.group_by) + 1 + len(plan.measurements))
    rows = planning.release_answer(plan, exact)
    columns = [[name, typ] for name, typ in plan.columns]
    ledger.store_answer(key, plan.meta.dataset, plan.meta.data_version, json.dumps(columns),
                        json.dumps(rows), ledger_id)
    return columns, rows


def query_rows(sql, epsilon=None, delta=None):
    return answer(sql, epsilon, delta)[1]


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


def query_json(sql, epsilon=None, delta=None):
    columns, rows = answer(sql, epsilon, delta)
    return [json.dumps({name: _json_value(value, typ) for (name, typ), value in zip(columns, row)})
            for row in rows]


def cost(sql, epsilon=None, delta=None):
    plan = make_plan(sql, epsilon, delta)
    cached = _cached(_cache_key(plan)) is not None
    remaining = catalog.remaining_budget(catalog.outer_role(), plan.meta.dataset) or (Decimal(0), Decimal(0))
    zero = Decimal(0)
    return (plan.meta.dataset, zero if cached else plan.epsilon, zero if cached else plan.delta, cached,
            remaining[0], remaining[1])


def explain(sql, epsilon=None, delta=None):
    plan = make_plan(sql, epsilon, delta)
    return [(r["column_name"], r["data_type"], r["mechanism"], Decimal(f"{r['epsilon']:.12g}"),
             Decimal(f"{r['delta']:.12g}"), r["noise_scale"], r["ci95"], r["note"])
            for r in planning.explain(plan)]
