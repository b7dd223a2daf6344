"""Public key sets that follow the question: keys the WHERE clause rules out are not released.

A public key set (declared values, every month between a date column's bounds, every bin between a
number's bounds) lists keys whether or not a row can reach them.  When the WHERE clause constrains the
key's column -- a range, an IN list, an equality, IS [NOT] NULL, TO_TIMESTAMP and casts of constants --
a key no row passing the filter can have is dropped: a 2025 time range releases the twelve months of
2025, `channel IN ('web')` releases 'web', and `order_date < '2026-01-01'` releases no bucket starting on
2026-01-01.  This reads only the question and the public metadata (post-processing of public
information), so it is free and depends on no row.

Conservative by construction: allowed() understands the top-level AND of the WHERE (and ORs of
conditions on the same column); a condition it does not understand constrains nothing, so a key is
dropped only when the filter certainly excludes it.  Keys are computed on the column clamped into its
bounds (keyexprs.py), so a range reaching beyond a bound keeps that bound's key.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import datetime as dt
from decimal import Decimal, InvalidOperation
import re

from .analyze import Query, function_operand
from .keyexprs import _next_unit
from .parse import ast
from .where import column_type
from pglast.enums import A_Expr_Kind, BoolExprType, NullTestType  # noqa: E402

EPOCH = dt.datetime(2000, 1, 1)
TEMPORAL = ("date", "timestamp", "timestamptz")
ORDERED = TEMPORAL + ("int", "numeric", "float")


@dataclass
class Allowed:
    """What the WHERE lets a column be: None for a part means "anything"."""
    values: frozenset | None = None       # allowed non-NULL values (canonical: Decimal, datetime, str, bool)
    excluded: frozenset = frozenset()
    lower: object = None
    lower_incl: bool = True
    upper: object = None
    upper_incl: bool = True
    null: bool = True                     # may NULL pass?
    nonnull: bool = True                  # may a non-NULL value pass?

    def intersect(self, other: "Allowed") -> "Allowed":
        values = self.values if other.values is None else (
            other.values if self.values is None else self.values & other.values)
        lower, lower_incl = self.lower, self.lower_incl
        if other.lower is not None and (lower is None or other.lower > lower
                                        or (other.lower == lower and not other.lower_incl)):
            lower, lower_incl = other.lower, other.lower_incl
        upper, upper_incl = self.upper, self.upper_incl
        if other.upper is not None and (upper is None or other.upper < upper
                                        or (other.upper == upper and not other.upper_incl)):
            upper, upper_incl = other.upper, other.upper_incl
        return Allowed(values, self.excluded | other.excluded, lower, lower_incl, upper, upper_incl,
                       self.null and other.null, self.nonnull and other.nonnull)

    def union(self, other: "Allowed") -> "Allowed":
        """The hull of two constraints (a superset of the union: conservative)."""
        values = None if self.values is None or other.values is None else self.values | other.values
        if not self.nonnull:
            values = other.values
        elif not other.nonnull:
            values = self.values
        lower = None if self.lower is None or other.lower is None else min(self.lower, other.lower)
        upper = None if self.upper is None or other.upper is None else max(self.upper, other.upper)
        if not self.nonnull:
            lower, upper = other.lower, other.upper
        elif not other.nonnull:
            lower, upper = self.lower, self.upper
        return Allowed(values, self.excluded & other.excluded, lower, True, upper, True,
                       self.null or other.null, self.nonnull or other.nonnull)

    def admits(self, v) -> bool:
        """Whether a non-NULL value v may pass."""
        if not self.nonnull or v in self.excluded:
            return False
        if self.values is not None and v not in self.values:
            return False
        try:
            if self.lower is not None and (v < self.lower or (v == self.lower and not self.lower_incl)):
                return False
            if self.upper is not None and (v > self.upper or (v == self.upper and not self.upper_incl)):
                return False
        except TypeError:
            return True
        return True

    def admits_span(self, start, end, discrete_step=None) -> bool:
        """Whether some value in [start, end) may pass (a date bucket: the days start .. end - 1 day)."""
        if not self.nonnull:
            return False
        if self.values is not None:
            return any(start <= v < end and self.admits(v) for v in self.values)
        try:
            lo, lo_incl, hi, hi_incl = self.lower, self.lower_incl, self.upper, self.upper_incl
            if discrete_step is not None:          # dates: the first and last day that may pass
                first = start if lo is None else max(start, _ceil_day(lo) if lo_incl else _floor_day(lo) + discrete_step)
                last = end - discrete_step
                if hi is not None:
                    last = min(last, _floor_day(hi) if hi_incl or hi != _floor_day(hi) else hi - discrete_step)
                return first <= last
            if lo is not None and not lo < end:
                return False
            if hi is not None and (start > hi or (start == hi and not hi_incl)):
                return False
            if lo is not None and hi is not None and (lo > hi or (lo == hi and not (lo_incl and hi_incl))):
                return False
        except TypeError:
            return True
        return True


def _floor_day(t: dt.datetime) -> dt.datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(t: dt.datetime) -> dt.datetime:
    d = _floor_day(t)
    return d if d == t else d + dt.timedelta(days=1)


# ------------------------------------------------------------------ reading the WHERE

def allowed(query: Query, meta, key_name: str, timezone: str) -> Allowed | None:
    """What the WHERE allows the column under key `key_name`, or None when it says nothing usable."""
    if query.where is None:
        return None
    key = query.key_exprs.get(key_name)
    column = key.column if key is not None else key_name
    if column is None or (key is not None and key.kind == "case") or column not in meta.columns:
        return None
    family = column_type(meta.columns[column]["type"])[0]
    reader = _Reader(query, column, family, timezone)
    result = reader.condition(query.where)
    return result


class _Reader:
    def __init__(self, query, column, family, timezone):
        self.query, self.column, self.family, self.timezone = query, column, family, timezone

    def condition(self, node) -> Allowed | None:
        if isinstance(node, ast.BoolExpr):
            parts = [self.condition(a) for a in node.args]
            if node.boolop == BoolExprType.AND_EXPR:
                known = [p for p in parts if p is not None]
                if not known:
                    return None
                out = known[0]
                for p in known[1:]:
                    out = out.intersect(p)
                return out
            if node.boolop == BoolExprType.OR_EXPR:
                if any(p is None for p in parts):
                    return None
                out = parts[0]
                for p in parts[1:]:
                    out = out.union(p)
                return out
            return self._negated(node.args[0])
        if isinstance(node, ast.NullTest):
            if not self._is_column(node.arg):
                return None
            if node.nulltesttype == NullTestType.IS_NULL:
                return Allowed(nonnull=False)
            return Allowed(null=False)
        if isinstance(node, ast.A_Expr):
            return self._expr(node)
        return None

    def _negated(self, node) -> Allowed | None:
        """NOT (col IN (...)), NOT (col = v): those values excluded (NULL excluded too); else nothing."""
        if isinstance(node, ast.A_Expr) and node.kind == A_Expr_Kind.AEXPR_IN and self._is_column(node.lexpr) \
                and [n.sval for n in node.name] == ["="]:
            values = [self.constant(c) for c in node.rexpr]
            if any(v is None for v in values):
                return None
            return Allowed(excluded=frozenset(values), null=False)
        if isinstance(node, ast.NullTest) and self._is_column(node.arg):
            return Allowed(nonnull=False) if node.nulltesttype == NullTestType.IS_NOT_NULL else Allowed(null=False)
        return None

    def _is_column(self, node) -> bool:
        return isinstance(node, ast.ColumnRef) and self.query.ref_name(node) == self.column

    def _expr(self, node: ast.A_Expr) -> Allowed | None:
        kind = node.kind
        ops = [n.sval for n in node.name]
        if kind == A_Expr_Kind.AEXPR_OP and len(ops) == 1:
            op = ops[0]
            if self._is_column(node.lexpr):
                value = self.constant(node.rexpr)
            elif self._is_column(node.rexpr):
                value, op = self.constant(node.lexpr), {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
            else:
                return None
            if value is None:
                return None
            if op == "=":
                return Allowed(values=frozenset([value]), null=False)
            if op in ("<>", "!="):
                return Allowed(excluded=frozenset([value]), null=False)
            if self.family not in ORDERED:
                return Allowed(null=False)
            if op in (">", ">="):
                return Allowed(lower=value, lower_incl=op == ">=", null=False)
            if op in ("<", "<="):
                return Allowed(upper=value, upper_incl=op == "<=", null=False)
            return None
        if kind == A_Expr_Kind.AEXPR_IN and self._is_column(node.lexpr):
            values = [self.constant(c) for c in node.rexpr]
            if ops == ["="]:
                known = [v for v in values if v is not None]
                if len(known) != len(values):
                    return Allowed(null=False)
                return Allowed(values=frozenset(known), null=False)
            if ops == ["<>"] and all(v is not None for v in values):
                return Allowed(excluded=frozenset(values), null=False)
            return Allowed(null=False)
        if kind == A_Expr_Kind.AEXPR_BETWEEN and self._is_column(node.lexpr) and self.family in ORDERED:
            lo, hi = (self.constant(c) for c in node.rexpr)
            if lo is None or hi is None:
                return Allowed(null=False)
            return Allowed(lower=lo, upper=hi, null=False)
        if kind in (A_Expr_Kind.AEXPR_NOT_BETWEEN, A_Expr_Kind.AEXPR_BETWEEN_SYM,
                    A_Expr_Kind.AEXPR_NOT_BETWEEN_SYM, A_Expr_Kind.AEXPR_LIKE, A_Expr_Kind.AEXPR_ILIKE) \
                and self._is_column(node.lexpr):
            return Allowed(null=False)
        return None

    # ---------------------------------------------------------- constants
    def constant(self, node):
        """A constant as a Python value of the column's family (None: not understood)."""
        call = function_operand(node)
        if call is not None and call[0] in ("to_timestamp", "to_date") and len(call[1]) == 2 \
                and all(isinstance(a, ast.A_Const) and isinstance(a.val, ast.String) for a in call[1]):
            if self.family not in TEMPORAL:
                return None
            value = _formatted(call[1][0].val.sval, call[1][1].val.sval)
            if value is None:
                return None
            return value if call[0] == "to_timestamp" else _floor_day(value)
        if isinstance(node, ast.TypeCast) and isinstance(node.arg, ast.A_Const):
            node = node.arg          # the cast's type is checked by analyze/where; the text decides the value
        if not isinstance(node, ast.A_Const) or node.isnull:
            return None
        v = node.val
        if self.family in ("int", "numeric", "float"):
            try:
                text = str(v.ival) if isinstance(v, ast.Integer) else (
                    v.fval.replace("_", "") if isinstance(v, ast.Float) else v.sval.strip())
                return Decimal(text)
            except (AttributeError, InvalidOperation, ValueError):
                return None
        if self.family in TEMPORAL:
            if not isinstance(v, ast.String):
                return None
            return _temporal(v.sval, self.timezone)
        if self.family == "bool":
            if isinstance(v, ast.Boolean):
                return bool(v.boolval)
            if isinstance(v, ast.String) and v.sval.strip().lower() in ("t", "true", "f", "false", "yes", "no"):
                return v.sval.strip().lower() in ("t", "true", "yes")
            return None
        if isinstance(v, ast.String):
            return v.sval
        if isinstance(v, ast.Integer):
            return str(v.ival)
        return None


_FORMAT = [("YYYY", "%Y"), ("MM", "%m"), ("DD", "%d"), ("HH24", "%H"), ("MI", "%M"), ("SS", "%S"), ("US", "%f")]


def _formatted(text: str, fmt: str) -> dt.datetime | None:
    """TO_TIMESTAMP/to_date of the formats BI tools write (YYYY-MM-DD HH24:MI:SS.US and its prefixes)."""
    pattern = fmt
    for token, code in _FORMAT:
        pattern = pattern.replace(token, code)
    if re.search(r"[A-Za-z]", re.sub(r"%[YmdHMSf]", "", pattern)):
        return None
    try:
        return dt.datetime.strptime(text.strip(), pattern)
    except ValueError:
        return None


def _temporal(text: str, timezone: str) -> dt.datetime | None:
    """A date/timestamp literal as the session's local wall clock (an offset converted to the zone)."""
    text = text.strip()
    if text.lower() in ("infinity", "-infinity", "now", "today", "tomorrow", "yesterday", "epoch", "allballs"):
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
    except ValueError:
        return None
    if value.tzinfo is not None:
        try:
            from zoneinfo import ZoneInfo
            value = value.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
        except Exception:
            return None
    return value


# ------------------------------------------------------------------ restricting a key set

def restrict(public: list | None, space, allowed_: Allowed | None) -> list | None:
    """The public key values that the WHERE allows (all of them when it says nothing usable).
    space(value text, allowed) says whether a key value may hold a row passing the filter."""
    if allowed_ is None or public is None:
        return public
    keep = []
    for v in public:
        if v is None:
            if allowed_.null:
                keep.append(v)
            continue
        try:
            ok = True if space is None else space(v, allowed_)
        except (ValueError, ArithmeticError, TypeError, OverflowError):
            ok = True
        if ok:
            keep.append(v)
    return keep


def space_for(query: Query, meta, key_name: str):
    """How to test a key's values against what its column may be, or None (keep every value)."""
    key = query.key_exprs.get(key_name)
    if key is None:
        return value_space(column_type(meta.columns[key_name]["type"])[0])
    if key.kind == "case" or key.column not in meta.columns:
        return None
    col = meta.columns[key.column]
    family = column_type(col["type"])[0]
    if key.kind in ("trunc", "extract") and family in TEMPORAL:
        if key.as_date and family != "date":
            return None
        bounds = _temporal_bounds(col, family)
        if key.kind == "trunc":
            return span_space(key.unit, family, bounds)
        if key.unit == "year":
            return span_space("year", family, bounds, to_text="year")
        return None
    if key.kind == "bin" and family in ("int", "numeric", "float"):
        c = key.consts
        w = _dec(c["w"])
        m = _dec(c["m"])
        a = _dec(c["a"]) if "a" in c else Decimal(0)
        if c.get("a_sign") == "+":
            a = -a
        b = _dec(c["b"]) if "b" in c else Decimal(0)
        if m != w or b != a:
            return None
        return bin_space(w, day_bounds(col))
    if key.kind == "bucket" and family in ("int", "numeric", "float"):
        c = key.consts
        return bucket_space(_dec(c["low"]), _dec(c["high"]), int(c["count"]))
    return None


def _dec(node) -> Decimal:
    v = node.val
    return Decimal(v.ival) if isinstance(v, ast.Integer) else Decimal(v.fval.replace("_", ""))


def _temporal_bounds(col, family):
    """The bounds keys are clamped to, as local wall clock: timestamptz bounds are UTC instants, which
    some zone reads up to 16 hours either side."""
    if family != "timestamptz":
        return day_bounds(col)
    lo, hi = col.get("lower"), col.get("upper")
    if lo is None or hi is None:
        return None
    try:
        slack = dt.timedelta(hours=16)
        return EPOCH + dt.timedelta(seconds=float(lo)) - slack, EPOCH + dt.timedelta(seconds=float(hi)) + slack
    except (OverflowError, ValueError):
        return None


def value_space(family: str):
    """A plain column's key: the value itself, parsed as the WHERE's constants are."""
    def check(text, allowed_):
        if family in ("int", "numeric", "float"):
            return allowed_.admits(Decimal(text))
        if family in TEMPORAL:
            v = _temporal(text, "UTC")
            return True if v is None else allowed_.admits(v)
        if family == "bool":
            return allowed_.admits(text in ("true", "t"))
        return allowed_.admits(text)
    return check


def clamp_allowed(allowed_: Allowed, low, high) -> Allowed:
    """What the clamped column may be when the column may be `allowed_`: rows beyond a bound count at it."""
    if low is None or high is None or not allowed_.nonnull:
        return allowed_
    out = replace(allowed_, values=None if allowed_.values is None else frozenset(
        min(max(v, low), high) for v in allowed_.values if _comparable(v, low)), excluded=frozenset())
    lo, hi = allowed_.lower, allowed_.upper
    try:
        if lo is not None and lo > high:
            out = replace(out, lower=high, lower_incl=True, upper=high, upper_incl=True)
            return out
        if hi is not None and hi < low:
            return replace(out, lower=low, lower_incl=True, upper=low, upper_incl=True)
        if lo is None or lo < low:
            out = replace(out, lower=None)
        if hi is None or hi > high:
            out = replace(out, upper=None)
    except TypeError:
        return Allowed(null=allowed_.null)
    return out


def _comparable(a, b) -> bool:
    try:
        a < b
        return True
    except TypeError:
        return False


def span_space(unit: str, family: str, bounds, to_text=None):
    """A temporal bucket key ('2025-01-01 00:00:00' or '2025-01-01', or a year for EXTRACT(YEAR)):
    kept when some value of [start, next start) may pass the (clamped) filter."""
    def check(text, allowed_):
        if to_text == "year":
            start = dt.datetime(int(Decimal(text)), 1, 1)
        else:
            start = dt.datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
        a = clamp_allowed(allowed_, *bounds) if bounds else allowed_
        step = dt.timedelta(days=1) if family == "date" else None
        return a.admits_span(start, _next_unit(start, unit), step)
    return check


def bin_space(width: Decimal, bounds):
    """A numeric bin key x of width w: kept when some value of [x, x + w) may pass."""
    def check(text, allowed_):
        start = Decimal(text)
        a = clamp_allowed(allowed_, *bounds) if bounds else allowed_
        return a.admits_span(start, start + width)
    return check


def bucket_space(low: Decimal, high: Decimal, count: int):
    """width_bucket(col, low, high, count): bucket i covers [low + (i-1)d, low + i d)."""
    def check(text, allowed_):
        i = int(text)
        if low >= high:
            return True
        d = (high - low) / count
        if i <= 0:
            return allowed_.lower is None or allowed_.lower < low
        if i > count:
            return allowed_.upper is None or allowed_.upper >= high
        return allowed_.admits_span(low + (i - 1) * d, low + i * d)
    return check


def day_bounds(col) -> tuple | None:
    """A column's declared bounds as the WHERE's values: dates/timestamps as naive datetimes
    (timestamptz: None, its local clock depends on the zone), numbers as Decimals."""
    lo, hi = col.get("lower"), col.get("upper")
    if lo is None or hi is None:
        return None
    family = column_type(col["type"])[0]
    try:
        if family == "date":
            return EPOCH + dt.timedelta(days=int(Decimal(lo))), EPOCH + dt.timedelta(days=int(Decimal(hi)))
        if family == "timestamp":
            return EPOCH + dt.timedelta(seconds=float(lo)), EPOCH + dt.timedelta(seconds=float(hi))
        if family in ("int", "numeric", "float"):
            return Decimal(lo), Decimal(hi)
    except (OverflowError, ValueError, ArithmeticError):
        return None
    return None
