"""The rows a table's synthesis measures, and what DP finds out about them before the model.

- ``snapshot``: every row, or at most max_rows_per_unit rows per privacy unit (a child: a
  uniform sample of at most tau of each unit's rows); the unit is found along the path of
  foreign keys when the table does not hold it.  Returns the sensitivity.
- ``discover``: the DP row count, then (when the public metadata is not enough) DP bounds
  of numbers, dates and timestamps (noisy log2 buckets), frequent text values (partition
  selection) and distinct counts of regenerated columns; their shares are pg_dp.synth.budget's.
  Bounds and values found are set on the table's columns.
"""

from __future__ import annotations

import math

import numpy as np

from ..core import db
from ..dp import mechanisms
from . import budget
from . import domain as dom
from .state import TableState
from .table import Target
from .write import drop_temp

SRC = "pg_dp_synth_src"
VALUES_PART = 0.6                     # of the discovery share, for the text values
COVERAGE = 0.5                        # discovered values must cover this share of rows to be modelled
BOUNDS_NEAR_P = 1e-5                  # DP bounds: chance that an empty bucket next to the data widens them
BOUNDS_FAR_P = 1e-10                  # ... and that any empty bucket far away does (see _bounds)
WEAK_P = 0.01                         # ... and that any bucket (or window of them) gives the weakest bounds
NEXT_P = 0.05                         # ... and that an empty bucket next to a number's bounds widens them (dom.widen_run)


def snapshot(t: Target, tau: int | None = None) -> tuple[str, int]:
    """The rows measured: every row, or at most max_rows per privacy unit (a child: a uniform
    sample of at most tau of each unit's rows, chosen by random() in each unit's own rows, so
    that a unit still moves at most tau rows).  Returns (the table measured, the sensitivity)."""
    bound = int(tau) if tau is not None else t.max_rows
    pick = " ORDER BY random()" if tau is not None else ""
    drop_temp(SRC)
    found = unit_source(t)
    if found is None:
        return t.qualified, 1
    rows, unit = found
    db.execute(f"CREATE TEMP TABLE {SRC} ON COMMIT DROP AS SELECT * FROM (SELECT s.*, "
               f"row_number() OVER (PARTITION BY {unit}{pick}) AS pg_dp_rn FROM {rows}) b WHERE pg_dp_rn <= {bound}")
    return SRC, bound


def unit_source(t: Target) -> tuple[str, str] | None:
    """(FROM clause of the table's rows as s, SQL of each row's privacy unit), or None when each
    row is a unit.  On a path, the unit is found along its foreign keys (rows whose path ends
    nowhere have none and are left out)."""
    if t.path:
        joins, alias = [], "s"
        for i, step in enumerate(t.path):
            ref = db.execute("SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS q FROM pg_catalog.pg_class c "
                             "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                             [step["ref"]], ["oid"])[0]["q"]
            on = " AND ".join(f"{alias}.{db.quote_ident(a)} = j{i}.{db.quote_ident(b)}"
                              for a, b in zip(step["cols"], step["refcols"]))
            joins.append(f"JOIN {ref} j{i} ON {on}")
            alias = f"j{i}"
        return f"{t.qualified} s " + " ".join(joins), f"{alias}.{db.quote_ident(t.path_unit)}"
    if t.unit:
        return f"{t.qualified} s", f"s.{db.quote_ident(t.unit)}"
    return None


def discover(st: TableState, epsilon: float, delta: float) -> dict:
    """Noisy row count, bounds, frequent values, then distinct counts of regenerated columns."""
    sensitivity = st.sensitivity
    e_count = float(st.epsilon * budget.COUNT_SHARE)
    rest = max(0.0, epsilon - e_count)
    values = rest * VALUES_PART if st.t.needs_values else 0.0
    # bounds and distinct counts share what is left; all of it goes to the bounds when no column
    # needs a distinct count (known before the values are found only when none must be found)
    counting = bool(st.t.needs_values or _distinct_names(st))
    share = (rest - values) / (1 + bool(st.t.needs_bounds and counting))
    total = db.execute(f"SELECT count(*) AS n FROM {st.src}")[0]["n"]
    # rows (at most max_rows per unit: sensitivity max_rows); the units are counted with
    # the other regenerated columns (sensitivity 1), so rows per unit = rows / units
    rho = budget.count_rho(st)
    if rho is not None:         # composed with the model in zCDP (its rho is taken from the model's)
        noisy = mechanisms.gaussian_counts([total], mechanisms.gaussian_scale(sensitivity, rho))[0]
        counts = {"total": max(1, int(round(noisy)))}
        st.phase(f"counted rows (DP, expected error {budget.count_error(st, sensitivity):.3g})")
        return counts
    counts = {"total": max(1, mechanisms.laplace_integer(total, sensitivity, e_count))}
    st.phase(f"counted rows (DP, expected error {budget.count_error(st, sensitivity):.3g})")
    if not rest:
        return counts
    if st.t.needs_bounds:
        _bounds(st, share, sensitivity)
    if st.t.needs_values:
        _values(st, values, delta, sensitivity, counts["total"])
    counts.update(_distinct(st, share, sensitivity))
    return counts


def _distinct_names(st: TableState) -> list[str]:
    """The regenerated (non-key) columns whose number of distinct values is counted."""
    return [c.name for c in st.t.columns if c.kind == "identifier" and c.name not in st.t.keys and not c.choices]


def _distinct(st: TableState, epsilon: float, sensitivity: int) -> dict:
    """Noisy numbers of distinct values of the regenerated (non-key) columns."""
    names = _distinct_names(st)
    if not names:
        return {}
    exact = db.execute("SELECT " + ", ".join(f"count(DISTINCT {db.quote_ident(n)}) AS d{i}"
                                             for i, n in enumerate(names)) + f" FROM {st.src}")[0]
    eps = epsilon / len(names)
    out = {n: max(1, mechanisms.laplace_integer(exact[f"d{i}"], 1 if n == st.t.unit else sensitivity, eps))
           for i, n in enumerate(names)}
    st.phase(f"counted distinct values of {len(names)} regenerated column(s)")
    return out


REFINE_BINS = 16              # equal-width bins the coarse bounds are refined over (dates, timestamps)
REFINE_SHARE = 0.5            # of a date's bounds epsilon: the refinement (split over its levels)
REFINE_LEVELS = (0.6, 0.2, 0.2)   # each zoom's part of it: 4 years -> 91 days -> 6 days -> 8 hours
REFINE_P = 1e-2               # chance that an empty bin next to the data widens the refined bounds
REFINE_MASS = 0.75            # share of the noisy mass a refined run must hold to replace the bounds
DATE_WEIGHT = 3               # a date's share of the bounds epsilon against a number's


def bounds_rows(st: TableState) -> tuple[str, int]:
    """The rows DP bounds are measured over, and their sensitivity: one row of each privacy unit
    (a uniform one for a child's sample: the first of each unit's rows in random order), so
    that a unit moves one row whatever its bound.  The fullest bucket of N units' rows at
    sensitivity 1 stands further above the noise than that of up to tau rows per unit at
    sensitivity tau (rows / tau <= units): a child's dates at a small share of epsilon."""
    if st.sensitivity > 1 and st.src != st.t.qualified:
        return f"(SELECT * FROM {st.src} WHERE pg_dp_rn = 1) pg_dp_one", 1
    return st.src, st.sensitivity


def _refine(src: str, col, name: str, epsilon: float, sensitivity: int) -> tuple[float, float, int] | None:
    """Tighter bounds inside coarse ones (a date's 4-year block, a timestamp's day): a noisy
    histogram of REFINE_BINS equal-width bins over them (Laplace, the same sensitivity), grown
    from its fullest bin over the adjacent bins whose noisy count passes a threshold an empty
    bin reaches with p <= REFINE_P (an empty bin next to the data widens the bounds by one bin;
    one further away cannot).  (lower, upper, bins of the run), or None when the fullest bin
    does not pass or the run holds under REFINE_MASS of the noisy mass (outside the run, what
    each bin's noisy count holds past one noise scale: data spread over bins that do not all
    pass, where a run of one of them would cut the range to a quarter)."""
    scale = mechanisms.integer_laplace_scale(sensitivity, epsilon)
    width = (col.upper - col.lower) / REFINE_BINS
    u = dom.value_sql(db.quote_ident(name), col.fam)
    exact = {r["b"]: r["n"] for r in db.execute(
        f"SELECT least({REFINE_BINS - 1}, greatest(0, floor(({u} - {col.lower!r}) / {width!r})))::int AS b, "
        f"count(*) AS n FROM {src} WHERE {db.quote_ident(name)} IS NOT NULL GROUP BY 1")}
    noisy = np.array([exact.get(b, 0) for b in range(REFINE_BINS)], dtype=np.float64) + \
        np.asarray(mechanisms.integer_laplace_noise(scale, REFINE_BINS), dtype=np.float64)
    threshold = scale * math.log(1 / REFINE_P)
    low = high = int(np.argmax(noisy))
    if noisy[low] < threshold:
        return None
    while low > 0 and noisy[low - 1] >= threshold:
        low -= 1
    while high < REFINE_BINS - 1 and noisy[high + 1] >= threshold:
        high += 1
    # the mass outside the run: each bin's noisy count past one noise scale (an empty bin's noise
    # adds 0.18 scales on average, where summed as it is, 15 empty bins' noise has a standard
    # deviation of 5.5 scales: a run of all 5,000 rows at a scale of 333 failed it one time in five)
    inside = noisy[low:high + 1].sum()
    outside = np.clip(np.r_[noisy[:low], noisy[high + 1:]] - scale, 0, None).sum()
    if inside < REFINE_MASS * (inside + outside):
        return None             # data spread thinner than the noise shows: the coarser bounds stand
    return col.lower + low * width, col.lower + (high + 1) * width, high - low + 1


def _zoom(st: TableState, src: str, col, name: str, epsilon: float, sensitivity: int):
    """Refine a date's (timestamp's) bounds level after level (the first with most of epsilon, see
    REFINE_LEVELS): while the data's run is at most 2 of the 16 bins (the bounds are still far wider than the
    data: an audit column's few hours in a 4-year block), the next level zooms into it; the
    first level whose fullest bin does not pass keeps the bounds found before it.  True when
    a level stopped it so (the data may be far narrower than the bounds: the noise hid it)."""
    for part in REFINE_LEVELS:
        found = _refine(src, col, name, epsilon * part, sensitivity)
        if found is None:
            return True
        col.lower, col.upper, run = found
        smallest = 1.0 if col.fam == "date" else 1e-3        # a day; a millisecond
        if run > 2 or (col.upper - col.lower) / REFINE_BINS < smallest:
            return False
    return False


def _linear_buckets(st: TableState, src: str, col, name: str, scale: float) -> tuple[dict[int, float], object]:
    """Noisy counts (Laplace of this scale) of a date's (timestamp's) 4-year blocks from 1900 to
    2100, and of the two blocks before and after them (to the type's limits): 52 blocks, every
    one with noise, empty or not.  Returns them and the edges of a block."""
    width = dom.date_block(col.fam)
    low, high = dom.type_range(col.sql_type, col.fam)
    first, last = dom.date_blocks(col.fam)
    u = dom.value_sql(db.quote_ident(name), col.fam)
    exact = {int(r["b"]): r["n"] for r in db.execute(
        f"SELECT least(greatest(floor({u} / {width!r}), {first - 1}), {last + 1})::int8 AS b, count(*) AS n "
        f"FROM {src} WHERE {db.quote_ident(name)} IS NOT NULL GROUP BY 1")}
    noise = mechanisms.integer_laplace_noise(scale, last - first + 3)
    noisy = {b: exact.get(b, 0) + v for b, v in zip(range(first - 1, last + 2), noise)}

    def edges(b):
        return (low if b < first else b * width, high if b > last else (b + 1) * width)
    return noisy, edges


def _bounds(st: TableState, epsilon: float, sensitivity: int):
    src, sensitivity = bounds_rows(st)
    dates = {n for n in st.t.needs_bounds if st.t.column(n).fam in ("date", "timestamp")
             and not n.startswith("pg_dp_")}
    # dates (refined) and a child date's offsets from its parent's weigh DATE_WEIGHT numbers
    offsets = {n for n in st.t.needs_bounds if n.startswith("pg_dp_after_")}
    eps = epsilon / (len(st.t.needs_bounds) + (DATE_WEIGHT - 1) * len(dates | offsets))   # a number's share
    scale = mechanisms.integer_laplace_scale(sensitivity, eps)
    scale_dates = mechanisms.integer_laplace_scale(sensitivity, DATE_WEIGHT * eps * (1 - REFINE_SHARE))
    scale_offsets = mechanisms.integer_laplace_scale(sensitivity, DATE_WEIGHT * eps)
    for name in st.t.needs_bounds:
        col = st.t.column(name)
        s = scale_dates if name in dates else scale_offsets if name in offsets else scale
        if name in dates:
            # dates on the line in blocks of 4 years (log2 buckets of days since 2000 split
            # 1996-1998 over two of them, and hold decades after 2000)
            noisy, edges = _linear_buckets(st, src, col, name, s)
        else:
            u = dom.value_sql(db.quote_ident(name), col.fam)
            exact = {r["b"]: r["n"] for r in db.execute(
                f"SELECT {dom.bucket_sql(u)} AS b, count(*) AS n FROM {src} WHERE {db.quote_ident(name)} IS NOT NULL "
                "GROUP BY 1")}
            noisy = dict(zip(dom.all_buckets(), mechanisms.integer_laplace_noise(s, len(dom.all_buckets()))))
            noisy = {b: exact.get(b, 0) + v for b, v in noisy.items()}
            edges = dom.bucket_edges
        # P(discrete Laplace noise >= t) <= exp(-t / scale): an empty bucket next to the data
        # passes `near` with probability <= BOUNDS_NEAR_P, any of them passes `far` with <=
        # BOUNDS_FAR_P; the fullest bucket stands for the data when no empty bucket reaches
        # `weak` but with p <= 1%
        near, far, weak = (s * math.log(1 / BOUNDS_NEAR_P), s * math.log(len(noisy) / BOUNDS_FAR_P),
                           s * math.log(len(noisy) / WEAK_P))
        # a number's bounds take the bucket next to them that may hold rows (dom.widen_run)
        lenient = None if name in dates else s * math.log(1 / NEXT_P)

        def widened(r):
            return dom.widen_run(noisy, r, lenient) if r and lenient is not None else r
        run = widened(dom.run_from_buckets(noisy, near, far))
        found = None if run is None else (edges(run[0])[0], edges(run[1])[1])
        # without any: a child date's offset keeps what its declared bounds allow; any other
        # column takes the fullest noisy bucket and its neighbours that pass the weak threshold
        # (an empty bucket reaches it with p <= 1%), never fixed bounds such as [0, 1]
        weak_run = None if found or col.upper > col.lower else \
            widened(dom.run_from_buckets(noisy, weak) or dom.window_run(noisy, s, WEAK_P))
        weakly = None if weak_run is None else (edges(weak_run[0])[0], edges(weak_run[1])[1])
        col.lower, col.upper = found if found else (col.lower, col.upper) if col.upper > col.lower \
            else weakly or dom.fallback_bounds(col.fam)
        low, high = dom.type_range(col.sql_type, col.fam)
        col.lower, col.upper = max(col.lower, low), min(col.upper, high)
        if col.lower >= col.upper:          # a bucket outside the type's range: nothing usable
            col.lower, col.upper = dom.fallback_bounds(col.fam)
        coarse = False
        if name in dates and (found or weakly):     # the other half of its epsilon: tighter bounds inside
            coarse = _zoom(st, src, col, name, DATE_WEIGHT * eps * REFINE_SHARE, sensitivity)
        if col.fam in ("integer", "date"):
            col.lower, col.upper = math.floor(col.lower), math.ceil(col.upper)
        if col.step:                        # a declared grid (dp.set_step): the bounds move out to it
            col.set_step(col.step)
        # bounds no bucket stood for (fixed ones) are not the data's: nothing is clipped into them,
        # and a child date's offset with such bounds is not followed (relational.useful_anchors)
        col.source = "DP bounds" if found or weakly else "fallback bounds"
        using = f"[{col.to_text(np.array([col.lower]))[0]}, {col.to_text(np.array([col.upper]))[0]}]"
        if coarse and not col.step:         # post-processing: where the zoom stopped, not the data
            st.notice(f"column {name}: DP bounds {using} are as fine as the noise allows at this epsilon; "
                      "the synthetic values spread over them, however narrower the real ones are",
                      hint=f"Declare bounds: dp.set_bounds('{st.t.qualified}', '{name}', lower, upper).")
        if not found:
            anchor = next((a for a in st.anchors if a.offset.name == name), None)
            if anchor is not None:          # an offset: the hint names the columns the DBA can declare
                parent = st.parent.parent.t
                st.notice(f"column {anchor.child}: too few values to estimate with DP how long after "
                          f"{parent.name}.{anchor.parent} it falls; using {using} "
                          + ("days" if col.fam == "integer" else "seconds"),
                          hint=f"Declare bounds of both dates: dp.set_bounds('{st.t.qualified}', '{anchor.child}', "
                               f"lower, upper) and dp.set_bounds('{parent.qualified}', '{anchor.parent}', lower, upper).")
            else:
                st.notice(f"column {name}: too few values to estimate bounds with DP; using {using}",
                          hint=f"Declare bounds: dp.set_bounds('{st.t.qualified}', '{name}', lower, upper).")
    st.phase(f"estimated bounds of {len(st.t.needs_bounds)} column(s)")


def _values(st: TableState, epsilon: float, delta: float, sensitivity: int, total: int):
    names = st.t.needs_values
    counts = {}
    for i, name in enumerate(names):
        for r in db.execute(f"SELECT {db.quote_ident(name)}::text AS v, count(*) AS n FROM {st.src} "
                            f"WHERE {db.quote_ident(name)} IS NOT NULL GROUP BY 1"):
            counts[f"{i}\x1f{r['v']}"] = r["n"]
    # a unit's (at most `sensitivity`) rows touch up to that many values in each column
    kept = mechanisms.select_partitions(counts, len(names) * sensitivity, sensitivity, epsilon, delta)
    for i, name in enumerate(names):
        col = st.t.column(name)
        found = sorted(((k.split("\x1f", 1)[1], v) for k, v in kept.items() if k.startswith(f"{i}\x1f")),
                       key=lambda kv: -kv[1])
        covered = sum(v for _, v in found)
        if name in st.t.opaque and not found:
            # nothing to draw from, and no made-up text fits the type
            empty = "{}" if st.t.opaque[name] == "A" else None
            col.kind, col.source, col.choices = "identifier", "no values found with DP", [empty]
            st.notice(f"column {name}: no value is frequent enough to release; every synthetic row gets "
                        + ("an empty array" if empty else "NULL"),
                        hint=f"Declare public values: dp.set_public_values('{st.t.qualified}', '{name}', "
                             "ARRAY[...]).")
        elif found and (covered >= COVERAGE * total or name in st.t.opaque):
            col.kind, col.values, col.other = "categorical", [v for v, _ in found], True
            col.other_weights = [float(v) for _, v in found]
            col.source = "DP partition selection"
        else:
            col.kind, col.source = "identifier", "too many distinct values to model"
            st.notice(f"column {name}: values are too many or too rare to release; "
                        "synthetic values are generated identifiers",
                        hint=f"Declare public values: dp.set_public_values('{st.t.qualified}', '{name}', ARRAY[...]).")
    st.phase(f"found frequent values of {len(names)} column(s)")

