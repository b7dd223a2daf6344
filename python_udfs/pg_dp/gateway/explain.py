"""dp.explain: per output column, the noise it carries, the bounds used and what bounding drops.

Nothing runs: the scales come from the plan (each aggregate's entry in dp/aggregates.py), the bounds
from the DBA or from the kept estimate of the key set (contributions.py; before the first question of
a key set, the most the chosen bounds can be), the share dropped from that estimate.
"""

from __future__ import annotations

from ..dp import mechanisms
from .plan import ESTIMATE_SHARE, Plan


def _path_note(plan: Plan) -> str:
    """How a table reaching its unit through foreign keys is bounded, for dp.explain."""
    meta = plan.meta
    if not meta.unit_path:
        return ""
    path = " -> ".join(f"{', '.join(step['cols'])} -> {step['schema']}.{step['table']}" for step in meta.unit_path)
    return f"; each {meta.unit_column} is found through {path}"


def dropped_share(plan: Plan) -> float | None:
    """The estimated share of the question's rows that bounding drops (None: not known yet, or no unit)."""
    b = plan.bounds
    if b.mode == "none" or b.estimate is None:
        return None
    return b.estimate.dropped(b.rows, b.groups)


def bounds_note(plan: Plan) -> str:
    b = plan.bounds
    if b.mode == "none":
        return ""
    text = b.describe(plan.meta.unit_column, bool(plan.query.group_by))
    share = dropped_share(plan)
    if share is not None:
        text += f"; about {100 * share:.0f}% of the rows dropped by bounding (DP estimate)"
    elif b.estimate is not None:
        text += "; the share of rows dropped is not known (too few units for its estimate)"
    elif b.mode == "auto":
        text += f"; chosen when first asked, from a DP estimate ({100 * ESTIMATE_SHARE:g}% of that question's budget)"
    return text + _path_note(plan)


def explain(plan: Plan) -> list[dict]:
    out = []
    b = plan.bounds
    k = b.rows                  # auto bounds not chosen yet: the ceilings, the most they can be
    bounds = bounds_note(plan)
    share = dropped_share(plan)
    rho = plan.accounting.mode == "zcdp"
    for i, (name, typ) in enumerate(plan.columns):
        q = plan.query.outputs[i]
        if q.group_column is not None:
            index = plan.query.group_by.index(q.group_column)
            kp = plan.keys[index]
            how = (kp.note or "public value set") if plan.public_keys is not None else "DP partition selection"
            if plan.public_keys is not None:
                note = how
                filtered = plan.key_filters[index] if plan.key_filters else None
                released = {key[index] for key in plan.public_keys}
                if filtered is not None and len(released) < len(kp.public):
                    note += f", within the WHERE: {len(released)} of {len(kp.public)} keys"
                if None in released:
                    note += "; NULL is one of the groups (empty ones are released too)"
                elif q.group_column in plan.query.key_exprs:
                    note += " (empty ones are released too)"
                if plan.free:
                    note += "; no data is read, nothing is spent"
            else:
                threshold = mechanisms.selection_parameters(b.groups, k, plan.selection_epsilon,
                                                            plan.selection_delta)[1]
                note = f"{how}: groups with fewer than about {threshold} contributing units are not released"
            if kp.zone:
                note += f"; computed in time zone {plan.timezone}"
            out.append(dict(column_name=name, data_type=typ, mechanism="group key", epsilon=0.0, delta=0.0,
                            rho=None, noise_scale=None, ci95=None, note=note, bounds=None, dropped_share=None))
            continue
        m = next(m for m in plan.measurements if m.output == i)
        noise = plan.noise(m)
        scale, ci95, extra = m.spec.explain(m, noise, k)
        label = noise.name + (f": {m.spec.label}" if m.spec.label else "")
        notes = [n for n in (m.spec.note(m), extra, "per group" if plan.query.group_by and m.func != "count" else "",
                             bounds) if n]
        if not b.chosen:
            notes.insert(0, "noise at most this")
        out.append(dict(column_name=name, data_type=typ, mechanism=label, epsilon=m.epsilon, delta=0.0,
                        rho=m.budget if rho else None, noise_scale=scale, ci95=ci95, note="; ".join(notes),
                        bounds=b.describe(plan.meta.unit_column, bool(plan.query.group_by)) if b.mode != "none" else None,
                        dropped_share=share))
    return out
