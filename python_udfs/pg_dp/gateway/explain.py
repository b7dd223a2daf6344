"""dp.explain: the noise of each output column, without running anything."""

from __future__ import annotations

import math

from ..dp import mechanisms
from .plan import QUANTILE_CANDIDATES, Plan

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
