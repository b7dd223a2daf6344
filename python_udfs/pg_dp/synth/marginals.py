"""Counting in SQL, and the method's measurements and model: no row ever reaches Python.

Every modelled column becomes a small integer code in a TEMP table (its ``encode_sql``), and
the method's ``measure`` callback counts the marginals it asks for with GROUP BY GROUPING
SETS over it (over compressed codes mapped in SQL when the method merged rare values), so
the work grows with the number of marginals, not with the rows.  The attributes of every
denial constraint are measured together when the model can hold them (``required``).  The
key histograms (pg_dp.synth.keys) take their share of the model's rho first.
"""

from __future__ import annotations

import math

import numpy as np

from ..core import db
from ..dp import mechanisms
from . import budget, keys
from . import domain as dom
from .state import TableState
from .write import drop_temp

CODES = "pg_dp_synth_codes"
COMPRESSED = "pg_dp_synth_compressed"


def model(st: TableState, modelled: list[dom.Column], epsilon: float, delta: float, spent_rho: float = 0.0):
    """(the method's plan, its fitted model, the key histograms by link name) for the modelled
    columns of st.src at this (epsilon, delta), less ``spent_rho`` (the grid tests, measured
    before); (None, None, histograms) when nothing is modelled."""
    sensitivity = st.sensitivity
    rho = mechanisms.rho_for(epsilon, delta) - (budget.count_rho(st) or 0.0) - spent_rho
    if not modelled:
        histograms = {}
        if keys.histogram_links(st):      # the key histograms take the whole model's rho
            histograms = keys.measure(st, keys.rho_share(st, rho, alone=True), sensitivity)
        return None, None, histograms
    drop_temp(CODES)
    db.execute(f"CREATE TEMP TABLE {CODES} ON COMMIT DROP AS SELECT "
               + ", ".join(f"{c.encode_sql(db.quote_ident(c.name))} AS c{i}" for i, c in enumerate(modelled))
               + f" FROM {st.src}")
    st.phase(f"encoded {len(modelled)} column(s)")
    st.method.preload(db.check_interrupts)
    index = {c.name: i for i, c in enumerate(modelled)}
    sizes = {c.name: c.size for c in modelled}
    cache: dict = {}
    made: dict = {}

    def measure(cliques, compress=None):
        table, shape = CODES, sizes
        if compress is not None:
            if id(compress) not in made:        # one table per compression (there is one per run)
                made.clear()
                made[id(compress)] = _compressed_codes(modelled, index, compress)
            table, shape = made[id(compress)], {a: int(m.max()) + 1 for a, m in compress.items()}
        todo = [c for c in cliques if (c, table) not in cache]
        if todo:
            cache.update({(c, table): v for c, v in _grouping_sets(todo, index, shape, table).items()})
            db.check_interrupts()
        return [cache[(c, table)] for c in cliques]

    required = []
    for d in st.t.dcs:
        attrs = tuple(a for a in d.attributes if a in index)
        if len(attrs) >= 2 and math.prod(sizes[a] for a in attrs) <= 10 ** 5:
            required.append(attrs)
        elif len(attrs) >= 2:
            required += [p for p in zip(attrs, attrs[1:])]
    rho_keys = keys.rho_share(st, rho, alone=False)
    histograms = keys.measure(st, rho_keys, sensitivity)
    plan = st.method.select_and_measure(sizes, measure, rho - rho_keys, sensitivity, required=required,
                                        progress=st.phase)
    cache.clear()
    # the model's total is the DP row count, not the marginals' sums
    fitted = st.method.fit(plan, float(st.counts["total"]), tick=db.check_interrupts)
    st.phase("fitted the graphical model")
    return plan, fitted, histograms


def _compressed_codes(modelled, index, compress) -> str:
    """A TEMP table of the compressed codes (mapped in SQL, so that GROUP BY returns at most as
    many groups as the compressed marginal has cells, never one per original combination)."""
    drop_temp(COMPRESSED)
    names = [c.name for c in modelled]
    db.execute(f"CREATE TEMP TABLE {COMPRESSED} ON COMMIT DROP AS SELECT "
               + ", ".join(f"(${k + 1}::int[])[c{index[n]} + 1] AS c{index[n]}" for k, n in enumerate(names))
               + f" FROM {CODES}", [compress[n].tolist() for n in names], ["int[]"] * len(names))
    return COMPRESSED


def _grouping_sets(cliques, index, sizes, table=None) -> dict:
    """Exact counts of several marginals in one scan of the codes table."""
    used = sorted({index[a] for c in cliques for a in c})
    sets = ", ".join("(" + ", ".join(f"c{index[a]}" for a in c) + ")" for c in cliques)
    rows = db.execute_tuples(
        f"SELECT count(*) AS c0, " + ", ".join(f"c{i} AS c{k + 1}" for k, i in enumerate(used))
        + f" FROM {table or CODES} GROUP BY GROUPING SETS ({sets})", len(used) + 1)
    pos = {i: k + 1 for k, i in enumerate(used)}
    out = {c: np.zeros([sizes[a] for a in c], dtype=np.int64) for c in cliques}
    by_pattern = {frozenset(index[a] for a in c): c for c in cliques}
    for row in rows:
        present = frozenset(i for i in used if row[pos[i]] is not None)
        c = by_pattern[present]
        out[c][tuple(row[pos[index[a]]] for a in c)] += row[0]
    return out

