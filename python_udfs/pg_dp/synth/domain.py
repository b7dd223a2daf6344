"""How each column of a table becomes a small discrete attribute, and back.

A column is one of:
- categorical: a list of values (public: enum labels, CHECK IN, booleans, values the
  DBA declared; or discovered with DP partition selection), plus NULL when the
  column is nullable, plus "other" for discovered lists (values too rare to release);
- numeric: integers, floats, numerics, dates and timestamps on the line between
  a lower and an upper bound (the DBA's, or estimated with DP).  Small integer
  ranges get one code per value; otherwise a point code at each bound (clamped
  values and spikes such as 0 sit there), and `bins` equal-width bins between;
- identifier: keys and other columns whose values are too many to model (names,
  ids): not modelled; regenerated after sampling (see pg_dp.synth.identifiers).

`encode_sql` gives the SQL expression mapping a column to its code, so that
marginals are counted by GROUP BY in the server; `decode` maps sampled codes
back to values (as text, cast to the column's type by the server on insert).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import datetime as dt
import json
import math

import numpy as np

LOOKUP_VALUES = 64            # categorical lists longer than this are encoded by a jsonb lookup
EXACT_INTEGER_RANGE = 128     # integer ranges up to this many values get one code per value
DEFAULT_BINS = 32
LOG_SPAN = 1024               # DP bounds reaching this far from 0 get log-scale bins
EPOCH = dt.date(2000, 1, 1)   # dates are days since this day, timestamps seconds since its midnight (UTC)
EPOCH_SECONDS = 946684800     # EPOCH's midnight in seconds since 1970-01-01

INTEGER_TYPES = ("smallint", "integer", "bigint")
FLOAT_TYPES = ("real", "double precision")
TIMESTAMP_TYPES = ("timestamp without time zone", "timestamp with time zone")


def family(base_type: str, typtype: str) -> str:
    """'integer' | 'float' | 'numeric' | 'date' | 'timestamp' | 'boolean' | 'enum' | 'uuid' | 'text'."""
    if typtype == "e":
        return "enum"
    if base_type in INTEGER_TYPES:
        return "integer"
    if base_type in FLOAT_TYPES:
        return "float"
    if base_type == "numeric":
        return "numeric"
    if base_type == "date":
        return "date"
    if base_type in TIMESTAMP_TYPES:
        return "timestamp"
    if base_type == "boolean":
        return "boolean"
    if base_type == "uuid":
        return "uuid"
    return "text"


NUMBER_FAMILIES = frozenset({"integer", "float", "numeric"})


def comparable(fam: str, other: str) -> bool:
    """Can values of the two families be ordered against each other on the number line (as
    the synthesizer holds them: numbers, days since EPOCH for dates, seconds for timestamps)?"""
    return fam == other in ("date", "timestamp") or (fam in NUMBER_FAMILIES and other in NUMBER_FAMILIES)


def type_range(sql_type: str, fam: str) -> tuple[float, float]:
    """The values a column's type can hold, on the number line (DP bounds are clipped to it)."""
    if sql_type == "smallint":
        return -32768.0, 32767.0
    if sql_type == "integer":
        return -2147483648.0, 2147483647.0
    if sql_type == "bigint":
        return -9.2e18, 9.2e18
    if fam == "numeric" and sql_type.startswith("numeric("):
        precision = int(sql_type[len("numeric("):-1].split(",")[0])
        top = 10.0 ** (precision - (numeric_scale(sql_type) or 0)) - 10.0 ** -(numeric_scale(sql_type) or 0)
        return -top, top
    if fam == "date":       # what both PostgreSQL and Python's datetime can hold
        return float((dt.date(1, 1, 1) - EPOCH).days), float((dt.date(9999, 12, 31) - EPOCH).days)
    if fam == "timestamp":
        return (dt.date(1, 1, 1) - EPOCH).days * 86400.0, (dt.date(9999, 12, 31) - EPOCH).days * 86400.0
    return -1e300, 1e300


def numeric_scale(sql_type: str) -> int | None:
    """Digits after the point of numeric(p,s); None when unconstrained."""
    if not sql_type.startswith("numeric("):
        return None
    parts = sql_type[len("numeric("):-1].split(",")
    return int(parts[1]) if len(parts) == 2 else 0


def value_sql(column_sql: str, fam: str) -> str:
    """The column as a double on the number line (dates: days, timestamps: seconds since EPOCH)."""
    if fam == "date":
        # infinite dates cannot be subtracted (an error would tell of them): map them to +-infinity
        return (f"(CASE WHEN pg_catalog.isfinite({column_sql}) THEN ({column_sql} - DATE '{EPOCH.isoformat()}')::float8 "
                f"WHEN {column_sql} > DATE '{EPOCH.isoformat()}' THEN 'Infinity'::float8 ELSE '-Infinity'::float8 END)")
    if fam == "timestamp":
        # timestamptz: seconds since EPOCH in UTC; timestamp: nominal seconds (no time zone involved)
        return f"(extract(epoch FROM {column_sql})::float8 - {EPOCH_SECONDS})"
    if fam == "numeric":
        # clamp in numeric first: a huge value would make the cast fail, and the error tell of it
        return f"least(greatest({column_sql}, -1e300), 1e300)::float8"
    return f"({column_sql})::float8"


@dataclass
class Column:
    name: str
    sql_type: str                 # format_type with typmod, e.g. numeric(10,2)
    fam: str                      # see family()
    nullable: bool
    kind: str                     # 'categorical' | 'numeric' | 'identifier'
    values: list[str] = field(default_factory=list)     # categorical
    other: bool = False           # categorical: an 'other' code for undiscovered values
    other_weights: list[float] = field(default_factory=list)   # noisy counts of the values, to decode 'other'
    lower: float = 0.0            # numeric bounds on the number line
    upper: float = 0.0
    bins: int = DEFAULT_BINS
    source: str = ""              # where the domain came from (for NOTICEs and provenance)
    choices: list[str] = field(default_factory=list)   # identifier: the values it may take (foreign keys)
    step: float = 0.0             # numeric: a grid its values sit on (declared, or found with DP); 0: none

    # ---- codes ----------------------------------------------------------
    @property
    def exact(self) -> bool:
        """One code per value: whole numbers and dates over up to EXACT_INTEGER_RANGE values, or
        the points of the column's grid (``step``) between its bounds when they are that few."""
        if self.step:
            return round((self.upper - self.lower) / self.step) + 1 <= EXACT_INTEGER_RANGE
        return self.fam in ("integer", "date") and self.upper - self.lower + 1 <= EXACT_INTEGER_RANGE

    def set_step(self, step: float):
        """Put the column on a grid of ``step``: its bounds move out to the grid's points."""
        self.step = float(step)
        self.lower = math.floor(self.lower / self.step + 1e-9) * self.step
        self.upper = math.ceil(self.upper / self.step - 1e-9) * self.step

    @property
    def value_codes(self) -> int:
        if self.kind == "categorical":
            return len(self.values) + (1 if self.other else 0)
        if self.exact:
            return int(round((self.upper - self.lower) / (self.step or 1.0))) + 1
        return self.bins + 2 + self.zero_point

    @property
    def zero_point(self) -> bool:
        """A code of its own for exactly 0 inside a binned range (zero-inflated columns keep
        their spike: 95% zeros in a bin of width 4,000 would otherwise decode uniformly)."""
        return (self.kind == "numeric" and not self.exact and self.fam in ("integer", "float", "numeric")
                and self.lower < 0 < self.upper)

    @property
    def log_scale(self) -> bool:
        """Bins of equal width in log2(1 + |u|) (with u's sign) instead of u: for bounds
        estimated with DP, which are powers of two around the data, so a long tail keeps its
        shape instead of one bin holding almost every row."""
        return (self.kind == "numeric" and not self.exact and self.source == "DP bounds"
                and self.fam in ("integer", "float", "numeric") and max(abs(self.lower), abs(self.upper)) >= LOG_SPAN)

    @property
    def null_code(self) -> int | None:
        return self.value_codes if self.nullable else None

    @property
    def size(self) -> int:
        return self.value_codes + (1 if self.nullable else 0)

    def encode_sql(self, column_sql: str) -> str:
        """SQL int expression: the code of the column's value (never NULL)."""
        null = self.null_code
        if self.kind == "categorical":
            miss = len(self.values) if self.other else 0
            fallback = f"CASE WHEN {column_sql} IS NULL THEN {null} ELSE {miss} END" if null is not None else str(miss)
            if len(self.values) > LOOKUP_VALUES:
                # a jsonb object of value -> code: a binary search per row, where array_position
                # would compare with every value (20,000 zip codes x 30,000 rows: 6e8 comparisons)
                codes: dict[str, int] = {}
                for k, v in enumerate(self.values):
                    codes.setdefault(str(v), k)
                lookup = _literal(json.dumps(codes, ensure_ascii=False))
                return f"coalesce((({lookup})::jsonb ->> ({column_sql})::text)::int, {fallback})"
            array = "ARRAY[" + ",".join(_literal(v) for v in self.values) + "]::text[]"
            return f"coalesce(pg_catalog.array_position({array}, ({column_sql})::text) - 1, {fallback})"
        u = value_sql(column_sql, self.fam)
        lo, hi = _num(self.lower), _num(self.upper)
        if self.exact and self.step:
            code = f"least(greatest(round(({u} - {lo}) / {_num(self.step)}), 0), {self.value_codes - 1})::int"
        elif self.exact:
            code = f"(least(greatest(round({u}), {lo}), {hi}) - {lo})::int"
        else:
            zero = f"WHEN {u} = 0 THEN {self.bins + 2} " if self.zero_point else ""
            if self.log_scale:
                t_lo, t_hi = _log2p(self.lower), _log2p(self.upper)
                width = _num((t_hi - t_lo) / self.bins)
                t = f"(sign({u}) * ln(1 + abs({u})) / ln(2.0::float8))"
                position = f"({t} - {_num(t_lo)}) / {width}"
            else:
                width = _num((self.upper - self.lower) / self.bins)
                position = f"({u} - {lo}) / {width}"
            code = (f"(CASE WHEN {u} <= {lo} THEN 0 WHEN {u} >= {hi} THEN {self.bins + 1} {zero}"
                    f"ELSE 1 + least({self.bins - 1}, floor({position}))::int END)")
        if null is not None:
            return f"(CASE WHEN {column_sql} IS NULL THEN {null} ELSE {code} END)"
        return code

    # ---- values ---------------------------------------------------------
    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Values of sampled codes: floats on the number line (NaN = NULL) for numeric
        columns, an object array of text (None = NULL) for categorical ones."""
        codes = np.asarray(codes, dtype=np.int64)
        null = codes == self.null_code if self.nullable else np.zeros(codes.size, dtype=bool)
        if self.kind == "categorical":
            values = np.array(self.values + [None], dtype=object)
            picked = values[np.minimum(codes, len(self.values))]
            if self.other and self.values:
                where = np.flatnonzero((codes == len(self.values)) & ~null)
                if where.size:
                    w = np.clip(np.asarray(self.other_weights, dtype=float), 0, None) + 1e-9
                    picked[where] = values[rng.choice(len(self.values), size=where.size, p=w / w.sum())]
            picked[null] = None
            return picked
        u = self._decode_numbers(codes, rng)
        u[null] = np.nan
        return u

    def to_text(self, values: np.ndarray) -> list[str | None]:
        """Text of decoded values, ready for `::type` in the server."""
        if self.kind == "categorical":
            return list(values)
        values = np.asarray(values, dtype=np.float64)
        text = _format(np.nan_to_num(values), self.fam, self.sql_type)
        return [None if math.isnan(v) else t for v, t in zip(values, text)]

    def _decode_numbers(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A value inside each code's bin: uniform over the bin, on the column's grid (whole
        numbers for integers and dates, 10**-scale for numeric(p,s)) so it encodes back to the bin."""
        lo, hi = self.lower, self.upper
        if self.exact:
            u = lo + codes.astype(np.float64) * (self.step or 1.0)
            return np.round(u, self._decimals(self.step)) if self.step and self.step < 1 else u
        k = np.clip(codes, 1, self.bins) - 1
        if self.log_scale:
            t_lo, t_hi = _log2p(lo), _log2p(hi)
            t_width = (t_hi - t_lo) / self.bins
            start, end = _exp2m(t_lo + k * t_width), _exp2m(t_lo + (k + 1) * t_width)
        else:
            width = (hi - lo) / self.bins
            start = lo + k * width
            end = start + width
        step = self.grid_step()
        if step is None and self.log_scale:
            u = _exp2m(t_lo + (k + rng.random(codes.size)) * t_width)     # log-uniform in the bin
        elif step is None:
            u = start + rng.random(codes.size) * (end - start)
        else:
            first = np.maximum(np.ceil(start / step - 1e-9), math.floor(lo / step + 1e-9) + 1)
            last = np.minimum(np.ceil(end / step - 1e-9) - 1, math.ceil(hi / step - 1e-9) - 1)
            last = np.maximum(last, first)
            pick = first + np.floor(rng.random(codes.size) * (last - first + 1))
            if self.zero_point:         # 0 has its own code: a bin around it takes a neighbour
                pick = np.where(pick == 0, np.where(last >= 1, 1, -1), pick)
            u = pick * step
            if step < 1:
                u = np.round(u, self._decimals(step))
        if self.zero_point:
            u = np.where(codes == self.bins + 2, 0.0, u)
        return np.where(codes == 0, lo, np.where(codes == self.bins + 1, hi, u))

    def _decimals(self, step: float) -> int:
        """Digits after the point that values on a grid of ``step`` need (numeric(p,s): s)."""
        scale = numeric_scale(self.sql_type)
        return scale if scale is not None else max(0, int(math.ceil(-math.log10(step) - 1e-9))) + 1

    def grid_step(self) -> float | None:
        """The difference between two neighbouring values of the column (None: continuous)."""
        if self.step:
            return self.step
        if self.fam in ("integer", "date"):
            return 1.0
        if self.fam == "numeric" and numeric_scale(self.sql_type) is not None:
            return 10.0 ** -numeric_scale(self.sql_type)
        return None


def _format(u: np.ndarray, fam: str, sql_type: str) -> np.ndarray:
    if fam == "integer":
        return np.array([str(int(v)) for v in np.round(u)], dtype=object)
    if fam == "date":
        return np.array([(EPOCH + dt.timedelta(days=int(v))).isoformat() for v in np.round(u)], dtype=object)
    if fam == "timestamp":
        base = dt.datetime(EPOCH.year, EPOCH.month, EPOCH.day)
        suffix = "+00" if sql_type == "timestamp with time zone" else ""
        return np.array([(base + dt.timedelta(microseconds=round(v * 1e6))).isoformat(sep=" ") + suffix
                         for v in u], dtype=object)
    if fam == "numeric":
        scale = numeric_scale(sql_type)
        digits = 6 if scale is None else scale
        return np.array([f"{v:.{digits}f}" for v in u], dtype=object)
    return np.array([repr(float(v)) for v in u], dtype=object)


def _log2p(x):
    """sign(x) * log2(1 + |x|): the axis of log-scale bins (as the SQL of encode_sql)."""
    return np.sign(x) * np.log1p(np.abs(x)) / math.log(2.0)


def _exp2m(t):
    """The inverse of _log2p."""
    return np.sign(t) * np.expm1(np.abs(t) * math.log(2.0))


def _num(x: float) -> str:
    return repr(float(x))


def _literal(value: str) -> str:
    """A string constant meaning `value` under either standard_conforming_strings: '...' with
    quotes doubled, or E'...' with backslashes doubled too when one is present (as
    pg_dp.query.parse.sql_literal, without importing pglast here)."""
    body = str(value).replace("'", "''")
    if "\\" in body:
        return "E'" + body.replace("\\", "\\\\") + "'"
    return "'" + body + "'"


def bounds_from_buckets(noisy: dict[int, float], threshold: float,
                        far: float | None = None) -> tuple[float, float] | None:
    """Bounds from a noisy histogram of log2 buckets (see bucket_sql); None if no bucket passes
    (see run_from_buckets)."""
    run = run_from_buckets(noisy, threshold, far)
    return None if run is None else (bucket_edges(run[0])[0], bucket_edges(run[1])[1])


def run_from_buckets(noisy: dict[int, float], threshold: float, far: float | None = None) -> tuple[int, int] | None:
    """The first and last bucket of the data's run in a noisy histogram (numbered buckets,
    adjacent numbers adjacent on the line); None if no bucket passes.

    From the passing bucket with the largest noisy count, out over the adjacent buckets
    that pass `threshold` (the first bucket that fails stops it), widened to any bucket
    whose noisy count passes `far` (set so that no empty bucket of all reaches it but with
    negligible probability).  An empty bucket passing `threshold` by chance then widens
    the bounds only when it touches the data's range, by one bucket, instead of reaching
    anywhere on the line (year 1 for a 2015-2023 date column)."""
    passing = {b for b, c in noisy.items() if c >= threshold}
    if not passing:
        return None
    mode = max(passing, key=lambda b: (noisy[b], -abs(b)))
    low = high = mode
    while low - 1 in passing:
        low -= 1
    while high + 1 in passing:
        high += 1
    if far is not None:
        wide = [b for b, c in noisy.items() if c >= far]
        low, high = min([low] + wide), max([high] + wide)
    return low, high


def widen_run(noisy: dict[int, float], run: tuple[int, int], threshold: float) -> tuple[int, int]:
    """The run of a noisy histogram widened by the bucket next to it on either side whose noisy
    count passes ``threshold`` (one bucket a side at most, never a chain).  Bounds are found at
    thresholds an empty bucket passes with p <= 1e-5; the bucket next to them that fails one
    holds up to about 11 noise scales of real rows, which the bounds would clip onto their
    edge.  Clipping a tenth of the rows moves them all (1-way TVD 0.1 at least); one log2
    bucket more doubles the range the model's log-scale bins cover, which costs a little
    resolution.  So a lenient threshold decides the bucket next to the run.  It never takes
    bucket 0 ([-1, 1]) next to a run of one sign: the bounds of a positive column would then
    reach below zero (a quantity of -1) on noise alone."""
    low, high = run
    if low - 1 != 0 and noisy.get(low - 1, -math.inf) >= threshold:
        low -= 1
    if high + 1 != 0 and noisy.get(high + 1, -math.inf) >= threshold:
        high += 1
    return low, high


def laplace_sum_threshold(k: int, scale: float, p: float) -> float:
    """A t with P(sum of k independent Laplace(scale) draws >= t) <= p (Chernoff: the bound
    e^(-lambda t) / (1 - lambda^2 scale^2)^k at its best lambda on a grid)."""
    best = math.inf
    for i in range(1, 200):
        lam = i / 200 / scale
        # smallest t with e^(-lam t) (1 - lam^2 s^2)^-k <= p
        t = (math.log(1 / p) - k * math.log(1 - (lam * scale) ** 2)) / lam
        best = min(best, t)
    return best


WINDOWS = (1, 2, 4, 8)        # adjacent buckets the weakest bounds may be taken over


def window_run(noisy: dict[int, float], scale: float, p: float) -> tuple[int, int] | None:
    """The weakest bounds: the adjacent buckets (1, 2, 4 or 8 of them) whose noisy sum passes a
    threshold that a sum of as many empty buckets reaches with probability <= p over all
    windows; the fullest such window, narrowest first.  Data split over a few buckets (600
    units of 1..9, prices of 5..200: no one bucket holds enough) still gets bounds of its
    magnitude, never [0, 1]; None when no window passes."""
    keys = sorted(noisy)
    for w in WINDOWS:
        if w > len(keys):
            break
        sums = {keys[i]: sum(noisy[b] for b in keys[i:i + w]) for i in range(len(keys) - w + 1)
                if keys[i + w - 1] - keys[i] == w - 1}
        threshold = laplace_sum_threshold(w, scale, p / max(1, len(sums)))
        passing = [b for b, v in sums.items() if v >= threshold]
        if passing:
            start = max(passing, key=lambda b: sums[b])
            return start, start + w - 1
    return None


DATE_BLOCK_DAYS = 1461        # dates and timestamps: DP bounds start from blocks of 4 years on the line


def date_blocks(fam: str) -> tuple[int, int]:
    """The first and last 4-year block of 1900-01-01 .. 2100-01-01 (a date's or timestamp's DP
    bounds start from them; before and after them, one block each reaches the type's limits)."""
    width = date_block(fam)
    start = (dt.date(1900, 1, 1) - EPOCH).days * (86400.0 if fam == "timestamp" else 1.0)
    end = (dt.date(2100, 1, 1) - EPOCH).days * (86400.0 if fam == "timestamp" else 1.0)
    return math.floor(start / width), math.ceil(end / width) - 1


def date_block(fam: str) -> float:
    """Width of a date (days) or timestamp (seconds) column's first buckets: 4 years."""
    return DATE_BLOCK_DAYS * (86400.0 if fam == "timestamp" else 1.0)


def fallback_bounds(fam: str) -> tuple[float, float]:
    """Bounds when DP finds nothing at all (the noise swamps every bucket): fixed, never from the
    data; dates and timestamps from 2000-01-01 to today."""
    if fam in ("date", "timestamp"):
        days = float((dt.date.today() - EPOCH).days)
        return (0.0, days) if fam == "date" else (0.0, days * 86400.0)
    return 0.0, 1.0


BUCKET_MAX = 62


def bucket_sql(u_sql: str) -> str:
    """SQL: the log2 bucket of a number: 0 for |u| < 1, else sign(u) * (floor(log2 |u|) + 1), capped."""
    # least() before the cast: NaN and infinity land in the top bucket instead of raising an
    # error (an error would tell the caller that such a value exists)
    return (f"(CASE WHEN abs({u_sql}) < 1 THEN 0 ELSE (CASE WHEN {u_sql} < 0 THEN -1 ELSE 1 END) * "
            f"(least({BUCKET_MAX - 1}, floor(ln(abs({u_sql})) / ln(2.0::float8) + 1e-9))::int + 1) END)")


def bucket_edges(b: int) -> tuple[float, float]:
    if b == 0:
        return -1.0, 1.0
    if b > 0:
        return float(2 ** (b - 1)), float(2 ** b)
    return -float(2 ** (-b)), -float(2 ** (-b - 1))


def all_buckets() -> list[int]:
    return list(range(-BUCKET_MAX, BUCKET_MAX + 1))
