"""Denial constraints of a table: refused before the charge when no values can meet them,
and met after sampling by changing values, never by dropping rows (pg_dp.synth.dc).

- ``capacity(st)``: refuses, before anything is charged, constraints that no value change
  can meet, sets that conflict, orders within a row whose columns cannot hold them, and a
  row count over what the unique ones allow; runs the repair on random rows of the declared
  domains (a set that does not settle is refused); returns the most rows allowed (or None).
- ``repair(st, values)``: the sampled values with every constraint met.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from ..core import db
from ..core.errors import DPError
from . import dc as dcmod
from . import domain as dom
from . import identifiers
from .methods.base import Dependency
from .state import TableState
from .table import MAX_ROWS, Target, repair_domain, value_count

TRIALS = 5                            # random tables the trial repairs (each must settle)
TRIAL_ROWS = 1_000                    # rows of the pre-charge trial of the denial-constraint repair


def to_repair(t: Target) -> list:
    """Denial constraints over sampled columns (keys are distinct: an EQ on one never holds)."""
    return [d for d in t.dcs if not set(d.attributes) & set(t.keys)]


def _on_the_line(t: Target, dcs) -> dict:
    """Categorical columns of constraints whose values are numbers or dates (public values declared
    on a numeric column: a salary on a grid): the repair must order them as numbers, not as text
    ('95000' > '100000'), or an order "within a state, a higher salary never has a lower rate"
    would be met on the wrong order and broken in the copy."""
    names = {a for d in dcs for a in d.attributes}
    out = {}
    for c in t.columns:
        if c.name in names and c.kind == "categorical" and c.fam in ("integer", "float", "numeric", "date"):
            def number(v, fam=c.fam):
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    return math.nan
                return float((dt.date.fromisoformat(str(v)) - dom.EPOCH).days) if fam == "date" else float(v)
            out[c.name] = (number, {number(v): v for v in c.values})
    return out


def _to_line(values: dict, conv: dict) -> dict:
    return {k: np.array([conv[k][0](x) for x in v], dtype=np.float64) if k in conv else v for k, v in values.items()}


def _from_line(values: dict, conv: dict) -> dict:
    return {k: np.array([None if math.isnan(x) else conv[k][1].get(x, str(x)) for x in v], dtype=object)
            if k in conv else v for k, v in values.items()}


def repair(st: TableState, values: dict[str, np.ndarray]):
    """(values with every constraint met, rows kept: all of them)."""
    dcs = to_repair(st.t)
    if not dcs:
        return values, np.ones(len(next(iter(values.values()))), dtype=bool)
    domains = {c.name: repair_domain(c) for c in st.t.columns if repair_domain(c) is not None}
    conv = _on_the_line(st.t, dcs)
    fixed, keep, stats = dcmod.repair(_to_line(values, conv), dcs, st.rng, _to_line(domains, conv),
                                      tick=db.check_interrupts, bounds=order_bounds(st.t))
    fixed = _from_line(fixed, conv)
    st.phase(f"repaired denial constraints: {stats.get('changed_values', 0)} value(s) changed "
             f"in {stats.get('rounds', 0)} pass(es), no row dropped")
    return fixed, keep


def dependencies(st: TableState) -> list[Dependency]:
    """The functional dependencies (X -> Y, EQs and one IQ/LT/GT) among the table's modelled
    columns: the rows are drawn conditioned on them (methods.base.Dependency), so that the
    repair has (almost) nothing left to overwrite."""
    modelled = {c.name: c for c in st.modelled}
    out = []
    for d in to_repair(st.t):
        if d.kind == "fd" and d.dependent in modelled and all(a in modelled for a in d.determinants):
            names = tuple(d.determinants) + (d.dependent,)
            out.append(Dependency(tuple(d.determinants), d.dependent,
                                  {a: modelled[a].null_code for a in names if modelled[a].nullable}))
    return out


def order_bounds(t: Target) -> dict[str, tuple[float, float, float]]:
    """(lower, upper, step) of the numeric columns in an order within a row (see dc.repair)."""
    out = {}
    for d in to_repair(t):
        if d.kind == "row order":
            for c in (t.column(a) for a in d.attributes):
                step = c.grid_step() or (1e-6 if c.fam == "timestamp" else 0.0)
                out[c.name] = (c.lower, c.upper, step)
    return out


def capacity(st: TableState) -> tuple[int | None, str]:
    """Refuse, before anything is charged, denial constraints that no values can meet, and a
    row count over what the unique ones (all EQ) or the regenerated keys' types (a varchar(5)
    key: 36^5 - 1 new keys) can hold; (the most rows they allow, why)."""
    t, rows = st.t, st.rows
    dcs = to_repair(t)
    hint = "Drop it with dp.drop_constraint(id) (ids in dp.denial_constraints)."
    for d in dcs:
        why = dcmod.unsupported(d)
        if why:
            raise DPError(f'denial constraint "{d.text}" cannot be kept without deleting rows: {why}',
                          hint=hint, sqlstate="0A000")
    why = dcmod.conflict(dcs)
    if why:
        raise DPError(f"these denial constraints cannot be kept together: {why}", hint=hint, sqlstate="0A000")
    unknown = set(t.needs_bounds) | set(t.needs_values)     # found after the charge
    bounds = order_bounds(t)
    for d in (d for d in dcs if d.kind == "row order"):
        low, high = t.column(d.key), t.column(d.dependent)
        if low.kind != "numeric" or high.kind != "numeric" or not dom.comparable(low.fam, high.fam):
            raise DPError(f'denial constraint "{d.text}" orders {low.name} and {high.name}, which are not both '
                          "numbers, dates or timestamps modelled on the number line", hint=hint, sqlstate="42804")
        if not {low.name, high.name} & unknown and not dcmod.row_order_feasible(d, bounds):
            raise DPError(f'denial constraint "{d.text}" cannot hold in any row: the bounds of {low.name} '
                          f"and {high.name} leave no room for the order", sqlstate="22023",
                          hint="Declare bounds that allow it (dp.set_bounds), or drop the constraint.")
    sizes = {c.name: math.inf if c.name in unknown else value_count(c) for c in t.columns}
    limits = sorted(((cap, d) for d, cap in dcmod.capacity(dcs, sizes)), key=lambda x: x[0])
    _trial_repair(t, dcs, unknown, int(min(rows or TRIAL_ROWS, limits[0][0] if limits else math.inf, TRIAL_ROWS)))
    reasons = [(cap, f'denial constraint "{d.text}" allows at most {int(cap)} rows (distinct values of '
                + ", ".join(dcmod.free_attributes(d, dcs)) + ")") for cap, d in limits[:1]]
    # a regenerated key holds one new value per row: its type and length bound the rows
    for c in t.columns:
        room = identifiers.capacity(c.fam, c.sql_type) if c.name in t.keys else math.inf
        if math.isfinite(room):
            reasons.append((room, f"key {c.name} ({c.sql_type}) holds at most {int(room)} distinct new values"))
    reasons = sorted((r for r in reasons if math.isfinite(r[0])), key=lambda r: r[0])
    if not reasons:
        return None, ""
    cap, reason = reasons[0]
    if rows is not None and rows > cap:
        raise DPError(f"{rows} rows cannot meet {reason}",
                      hint=f"Ask for at most {int(cap)} rows, declare larger domains, or drop the constraint.",
                      sqlstate="22023")
    if rows is None and cap < MAX_ROWS:
        st.notice(f"at most {int(cap)} rows will be written: {reason}")
    return int(cap), reason


def _trial_repair(t: Target, dcs, unknown: set, n: int):
    """Run the repair on TRIALS tables drawn from the declared domains alone (no data is read):
    a set of constraints that pull the same columns different ways until no pass settles
    is refused here, before the charge, rather than after it."""
    attrs = sorted({a for d in dcs for a in d.attributes})
    if not dcs or n < 2 or set(attrs) & unknown:
        return
    domains = {a: repair_domain(t.column(a)) for a in attrs if repair_domain(t.column(a)) is not None}
    bounds = order_bounds(t)
    for seed in range(TRIALS):          # public inputs only: nothing here is released
        rng = np.random.default_rng(seed)
        values = {}
        for name in attrs:
            c = t.column(name)
            if c.kind == "categorical":
                values[name] = np.array(c.values, dtype=object)[rng.integers(0, len(c.values), n)]
            elif c.kind == "numeric":
                u = rng.uniform(c.lower, c.upper, n)
                values[name] = np.round(u) if c.fam in ("integer", "date") else u
            else:
                values[name] = np.array([f"id{k}" for k in rng.integers(0, n, n)], dtype=object)
        try:
            conv = _on_the_line(t, dcs)
            dcmod.repair(_to_line(values, conv), dcs, rng, _to_line(domains, conv), tick=db.check_interrupts,
                         bounds=bounds)
        except DPError as e:
            raise DPError(f"these denial constraints cannot be met together: {e.message}",
                          hint="A trial on random rows of the declared domains did not settle; drop some of "
                               "them (dp.drop_constraint) or ask for fewer rows.", sqlstate="23514") from None
