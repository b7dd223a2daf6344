"""Synthetic rows of one table, from its fitted model (post-processing of DP output only).

- ``sample(st, n)``: n rows of every column but the keys: codes drawn from the method's
  model (a child's rows drawn given its parent slots' attributes, pg_dp.synth.relational),
  keys to public tables kept in the model with rare keys spread uniformly, every code
  decoded to a value; then regenerated identifiers, keys drawn from their DP histograms
  (pg_dp.synth.keys), and what a child takes from its parent.
- ``render(st, values, rows, first)``: the text of the given rows for the server, keys
  numbered from ``first`` (self-references staged as another staged row's key).
"""

from __future__ import annotations

import numpy as np

from ..core import db
from . import constraints, identifiers, keys, relational
from .state import TableState


def sample(st: TableState, n: int) -> dict[str, np.ndarray]:
    """n rows of every column but the keys (those are numbered when written)."""
    values, parents = {}, None
    if st.plan is not None:
        given = constraints.dependencies(st)        # hard dependencies: drawn conditioned on them

        def draw(k):
            return st.method.sample(st.model, st.plan, k, st.rng, tick=db.check_interrupts, given=given)
        if st.parent and n == st.slots.parents.size:
            codes, parents = relational.draw_children(st, draw, n)
        else:
            codes = draw(n)
        for link in st.links:
            found = keys.model_threshold(st, link.column) if link.in_model else None
            if found:           # keys with too few rows to tell from noise: uniform among them
                codes[link.column] = keys.spread_rare(codes[link.column], *found, st.rng,
                                                      st.t.column(link.column).null_code)
        for c in st.modelled:
            values[c.name] = c.decode(codes[c.name], st.rng)
    for c in st.t.columns:
        if c.kind != "identifier" or c.name in st.t.keys:
            continue
        if c.choices:
            values[c.name] = np.array(c.choices, dtype=object)[st.rng.integers(0, len(c.choices), size=n)]
            continue
        groups = [values[d.dependent] for d in st.t.dcs
                  if d.kind == "fd" and d.determinants == (c.name,) and d.dependent in values]
        distinct = min(st.counts.get(c.name, n), identifiers.capacity(c.fam, c.sql_type))
        values[c.name] = identifiers.assign_ids(n, distinct, st.rng, groups)
    for link in keys.histogram_links(st):
        values.update(keys.draw(st, link, n))
    for link in st.links:
        if link.kind == "synthetic parent (this call)" and len(link.cols) > 1 and link is not st.parent:
            values.update(relational.uniform_parents(st, link, n))
    if st.parent:
        relational.attach(st, values, parents, n)
    st.phase(f"sampled {n} rows")
    return values


def render(st: TableState, values: dict[str, np.ndarray], rows: np.ndarray, first: int) -> dict[str, list]:
    """Text of the given rows, keys numbered from `first`."""
    out = {}
    for c in st.t.columns:
        if c.name in st.t.keys:
            out[c.name] = identifiers.as_text(identifiers.key_values(rows.size, c.fam, first), c.fam, c.name,
                                              c.sql_type)
        elif c.kind == "identifier" and c.choices:
            out[c.name] = list(values[c.name][rows])
        elif c.kind == "identifier":
            out[c.name] = identifiers.as_text(values[c.name][rows], c.fam, c.name, c.sql_type)
        else:
            out[c.name] = c.to_text(values[c.name][rows])
    for link in st.links:
        if link.kind == "self":
            ref = st.t.column(link.refcol)
            spare = identifiers.as_text(identifiers.key_values(1, ref.fam, first + rows.size), ref.fam, ref.name,
                                        ref.sql_type)
            out[link.column] = keys.neighbour_keys([v is not None for v in values[link.column][rows]],
                                                   out[link.refcol], spare[0])
    return out
