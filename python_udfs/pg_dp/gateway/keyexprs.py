"""GROUP BY keys that BI tools write: expressions over one column, with public key sets.

Accepted (the column's type in brackets; anything else is refused with a hint):
  date_trunc('day'|'week'|'month'|'quarter'|'year', col)     [date, timestamp, timestamptz]
  CAST(date_trunc(...) AS date), date_trunc(...)::date
  EXTRACT(field FROM col), date_part('field', col)           [date, timestamp, timestamptz]
      field: year, isoyear, quarter, month, week, day, dow, isodow, doy (+ hour for timestamps)
  floor((col [+|- a]) / w) * m [+ b]   (w > 0; also m * floor(...))  [integers, numeric, double]
  width_bucket(col, low, high, count)                         [integers, numeric, real, double]
  CASE WHEN <WHERE condition> THEN 'a' ... [ELSE 'z'] END     results: constants of one kind

Each is evaluated by the privileged worker on a *bounded* value, so that no row
can make it fail (the security rule of analyze.py):
  * date_trunc, EXTRACT, date_part and the numeric bins read the column clamped
    into its declared bounds (rows outside the bounds fall into the first or last
    key, as an aggregate clamps them); without bounds, temporal keys read it
    clamped into years 1..9999 (no cast or truncation can leave its type's range),
    and numeric bins are refused (the arithmetic could overflow on a chosen row).
    NULL stays NULL (GREATEST/LEAST alone would turn it into a bound).
  * width_bucket reads the column as it is; NaN, which width_bucket refuses with
    an error, goes to the last bucket (count + 1), where NaN sorts.
  * CASE conditions are WHERE conditions (same checks, same SQL writer).

Types are PostgreSQL's own: date_trunc of a date is timestamptz (PostgreSQL 15
resolves date_trunc(text, date) to the timestamptz version), of a timestamp a
timestamp; EXTRACT is numeric, date_part double precision, width_bucket integer,
floor(int / int) * int double precision, with a numeric constant numeric (the
scale of its constants), CASE the type of its results.

Time zones.  The analyst's session TimeZone is sent with dp.query and the worker
runs the exact query (and validates it) under that zone, so a timestamptz key
is computed as the analyst's own session would compute it.  Keys of timestamptz
type travel as zone-less local wall-clock text ('2021-07-01 00:00:00') that the
analyst's backend reads in that same zone: the same instant native PostgreSQL
gives.  A date column's date_trunc is computed on the date itself (no zone) and
read the same way.  Answers that depend on the zone are cached per zone.

Public key sets (then every key is released, empty ones too): every unit between
the truncated declared bounds (timestamptz bounds are UTC instants: the set covers
each local unit any zone can give them, at most one more at each end), every
EXTRACT value (month 1..12, ..., year and isoyear from the bounds), every bin
between the bounds, every width_bucket 0..count+1, every CASE result; NULL as well
when the column is nullable.  Otherwise (no bounds, or more than
MAX_PUBLIC_GROUPS keys) DP partition selection.
"""

from dataclasses import dataclass, field
import datetime as dt
from decimal import Decimal, ROUND_FLOOR, localcontext
import math

from ..core.errors import DPError
from .parse import NOT_SUPPORTED, ast, cast, deparse, sql_literal
from pglast.enums import A_Expr_Kind  # noqa: E402

INVALID = "22023"
TRUNC_UNITS = ("day", "week", "month", "quarter", "year")
DATE_FIELDS = {"year": None, "isoyear": None, "quarter": range(1, 5), "month": range(1, 13),
               "week": range(1, 54), "day": range(1, 32), "dow": range(0, 7), "isodow": range(1, 8),
               "doy": range(1, 367)}
TIMESTAMP_FIELDS = dict(DATE_FIELDS, hour=range(0, 24))
EPOCH = dt.datetime(2000, 1, 1)
MIN_TS, MAX_TS = dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59)
ZONE_SLACK = dt.timedelta(hours=16)      # PostgreSQL's UTC offsets stay within +-15:59
INT_RANGES = {"int2": 2**15, "int4": 2**31, "int8": 2**63}


def refuse(what: str, hint: str, sqlstate: str = NOT_SUPPORTED):
    raise DPError(what, hint=hint, sqlstate=sqlstate)


@dataclass
class KeyExpr:
    """A GROUP BY expression of the accepted shapes, as analyzed (no catalog yet)."""
    kind: str                   # trunc | extract | bin | bucket | case
    column: str | None          # the column it reads (case: None, see columns)
    text: str                   # canonical SQL of the analyst's expression (its identity)
    default_name: str
    unit: str = ""              # trunc unit, extract field
    func: str = ""              # extract | date_part
    to_date: bool = False
    consts: dict = field(default_factory=dict)   # bin: a, a_sign, w, m, b; bucket: low, high, count
    whens: list = field(default_factory=list)    # case: [(condition node, result A_Const)]
    default: object = None      # case: ELSE constant (None: no ELSE)
    columns: list = field(default_factory=list)  # every column it reads
    as_date: bool = False       # the column is read as CAST(col AS date) (Tableau)


def _temporal_arg(node, column_name, what):
    """(column, read as date) of col or CAST(col AS date)."""
    if isinstance(node, ast.TypeCast) and isinstance(node.arg, ast.ColumnRef):
        names = [n.sval for n in node.typeName.names]
        if names in (["date"], ["pg_catalog", "date"]) and not node.typeName.typmods \
                and not node.typeName.arrayBounds:
            return column_name(node.arg, what), True
    return column_name(node, what), False


def _names(func: ast.FuncCall) -> list[str]:
    return [n.sval for n in func.funcname]


def _func_name(func: ast.FuncCall) -> str | None:
    names = _names(func)
    if len(names) == 1 or (len(names) == 2 and names[0] == "pg_catalog"):
        return names[-1]
    return None


def _string_const(node, what: str) -> str:
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.String):
        return node.val.sval
    refuse(f"{what} must be a string constant, not {deparse(node)}", "e.g. date_trunc('month', created_at)")


def _number_const(node, what: str) -> ast.A_Const:
    if isinstance(node, ast.A_Const) and isinstance(node.val, (ast.Integer, ast.Float)):
        return node
    refuse(f"{what} must be a numeric constant, not {deparse(node)}", "e.g. floor(age / 10) * 10")


def const_decimal(node: ast.A_Const) -> Decimal:
    v = node.val
    return Decimal(v.ival) if isinstance(v, ast.Integer) else Decimal(v.fval.replace("_", ""))


def _is_op(node, op: str) -> bool:
    return (isinstance(node, ast.A_Expr) and node.kind == A_Expr_Kind.AEXPR_OP and node.lexpr is not None
            and [n.sval for n in node.name] == [op])


def parse_key(node, column_name, check_condition, text_of=deparse) -> KeyExpr | None:
    """The KeyExpr of a GROUP BY expression; None for a plain column reference.

    column_name(node, what) resolves a ColumnRef; check_condition(node) validates a
    CASE condition as a WHERE condition; text_of(node) is the expression's identity."""
    if isinstance(node, ast.ColumnRef):
        return None
    text = text_of(node)
    if isinstance(node, ast.TypeCast) and isinstance(node.arg, ast.FuncCall) \
            and _func_name(node.arg) == "date_trunc":
        names = [n.sval for n in node.typeName.names]
        if names not in (["date"], ["pg_catalog", "date"]) or node.typeName.typmods or node.typeName.arrayBounds:
            refuse(f"GROUP BY {text}: date_trunc can be cast to date only",
                   "Write CAST(date_trunc('month', col) AS date), or date_trunc(...) alone.")
        key = _trunc(node.arg, column_name, text)
        key.to_date = True
        return key
    if isinstance(node, ast.TypeCast) and isinstance(node.arg, ast.FuncCall) \
            and _func_name(node.arg) in ("extract", "date_part"):
        names = [n.sval for n in node.typeName.names]
        if names[-1] not in ("int4", "int8") or len(names) > 2 or len(names) == 2 and names[0] != "pg_catalog" \
                or node.typeName.typmods or node.typeName.arrayBounds:
            refuse(f"GROUP BY {text}: EXTRACT and date_part can be cast to integer or bigint only",
                   "Write CAST(EXTRACT(YEAR FROM col) AS INTEGER), or EXTRACT(...) alone.")
        key = parse_key(node.arg, column_name, check_condition, text_of)
        key.text, key.consts = text, {"cast": names[-1]}
        return key
    if isinstance(node, ast.TypeCast) and isinstance(node.arg, ast.ColumnRef) \
            and [n.sval for n in node.typeName.names] in (["date"], ["pg_catalog", "date"]) \
            and not node.typeName.typmods and not node.typeName.arrayBounds:
        # CAST(col AS DATE) (Tableau's day): date_trunc('day', col)::date; of a timestamptz, the zone's date
        column = column_name(node.arg, "the argument of CAST")
        return KeyExpr("trunc", column, text, node.arg.fields[-1].sval, unit="day", to_date=True, columns=[column])
    if isinstance(node, ast.FuncCall) and not node.agg_star and not node.agg_distinct and node.over is None \
            and node.agg_filter is None and not node.agg_order:
        name = _func_name(node)
        if name == "date_trunc":
            return _trunc(node, column_name, text)
        if name in ("extract", "date_part"):
            args = list(node.args or ())
            if len(args) != 2:
                refuse(f"GROUP BY {text}: {name} takes a field and a column", "e.g. EXTRACT(YEAR FROM col)")
            unit = _string_const(args[0], f"the field of {name}").lower()
            column, as_date = _temporal_arg(args[1], column_name, f"the argument of {name}")
            return KeyExpr("extract", column, text, name, unit=unit, func=name, columns=[column], as_date=as_date)
        if name == "width_bucket":
            args = list(node.args or ())
            if len(args) != 4:
                refuse(f"GROUP BY {text}: width_bucket takes (column, low, high, count)",
                       "e.g. width_bucket(age, 0, 100, 10)")
            column = column_name(args[0], "the argument of width_bucket")
            low, high = (_number_const(a, "a bound of width_bucket") for a in args[1:3])
            count = args[3]
            if not (isinstance(count, ast.A_Const) and isinstance(count.val, ast.Integer)):
                refuse(f"GROUP BY {text}: the count of width_bucket must be an integer constant",
                       "e.g. width_bucket(age, 0, 100, 10)")
            lo, hi, n = const_decimal(low), const_decimal(high), count.val.ival
            if not (0 < n <= 10_000):
                refuse(f"the count of width_bucket must be between 1 and 10000, not {n}",
                       "Use fewer buckets.", INVALID)
            if lo == hi or max(abs(lo), abs(hi)) > Decimal("1e300"):
                refuse("width_bucket needs two different, finite bounds", "e.g. width_bucket(age, 0, 100, 10)",
                       INVALID)
            return KeyExpr("bucket", column, text, "width_bucket", columns=[column],
                           consts=dict(low=low, high=high, count=n))
    if isinstance(node, ast.A_Expr) and node.kind == A_Expr_Kind.AEXPR_NULLIF:
        return _null_if(node, column_name, text)
    if isinstance(node, ast.A_Expr):
        return _bin(node, column_name, text)
    if isinstance(node, ast.CoalesceExpr):
        return _coalesce(node, column_name, text)
    if isinstance(node, ast.FuncCall) and not node.agg_star and not node.agg_distinct and node.over is None \
            and node.agg_filter is None and not node.agg_order:
        name = _func_name(node)
        args = list(node.args or ())
        if name == "to_timestamp" and len(args) == 1:
            key = parse_key(args[0], column_name, check_condition, text_of)
            if key is None or key.kind != "epoch":
                refuse(f"GROUP BY {text}: to_timestamp of a key must take an epoch bucket",
                       "e.g. to_timestamp(floor(extract(epoch FROM t) / 3600) * 3600)")
            key.text, key.default_name, key.consts = text, "to_timestamp", dict(key.consts, to_timestamp=True)
            return key
        if name == "to_char" and len(args) == 2:
            fmt = _string_const(args[1], "the format of to_char")
            inner = parse_key(args[0], column_name, check_condition, text_of)
            if inner is None:
                column, as_date = _temporal_arg(args[0], column_name, "the argument of to_char")
                inner = KeyExpr("trunc", column, text, "to_char", unit="", columns=[column], as_date=as_date)
            elif inner.kind != "trunc":
                refuse(f"GROUP BY {text}: to_char formats a date or timestamp column or a date_trunc key",
                       "e.g. to_char(date_trunc('month', t), 'YYYY-MM')")
            return KeyExpr("to_char", inner.column, text, "to_char", unit=fmt, columns=list(inner.columns),
                           consts={"inner": inner})
        if name in ("lower", "upper", "substring", "substr") and args:
            column = column_name(args[0], f"the argument of {name}")
            bounds = [_int_const(a, f"a position of {name}") for a in args[1:]]
            if name in ("lower", "upper") and bounds or name in ("substring", "substr") and len(bounds) not in (1, 2):
                refuse(f"GROUP BY {text}: {name} takes a column" + (" and integer constants"
                                                                    if name not in ("lower", "upper") else ""),
                       "e.g. lower(city), substring(code, 1, 2)")
            if len(bounds) == 2 and bounds[1] < 0:
                refuse("negative substring length not allowed", "Pass a length of 0 or more.", "22011")
            return KeyExpr("text", column, text, "substring" if name == "substr" else name, func=name,
                           columns=[column], consts={"bounds": bounds})
    if isinstance(node, ast.CaseExpr):
        return _case(node, column_name, check_condition, text)
    refuse(f"GROUP BY {text} is not supported",
           "Group by columns, date_trunc/EXTRACT/date_part of a date or timestamp column, floor(col / w) * w,"
           " width_bucket(col, low, high, count), or CASE WHEN ... THEN constant ... END.")


def _trunc(node: ast.FuncCall, column_name, text) -> KeyExpr:
    args = list(node.args or ())
    if len(args) != 2:
        refuse(f"GROUP BY {text}: date_trunc takes a unit and a column (no time zone argument)",
               "e.g. date_trunc('month', created_at); the session's TimeZone applies.")
    unit = _string_const(args[0], "the unit of date_trunc").lower()
    if unit not in TRUNC_UNITS:
        refuse(f"date_trunc unit {unit!r} is not supported in GROUP BY",
               f"Use one of {', '.join(TRUNC_UNITS)}.")
    column, as_date = _temporal_arg(args[1], column_name, "the argument of date_trunc")
    return KeyExpr("trunc", column, text, "date_trunc", unit=unit, columns=[column], as_date=as_date)


def _bin(node: ast.A_Expr, column_name, text) -> KeyExpr:
    """floor((col [+-] a) / w) * m [+ b], or m * floor(...) [+ b]."""
    bad = ("GROUP BY " + text + " is not supported",
           "Numeric bins are written floor(col / w) * w, floor((col - a) / w) * w + a, or width_bucket(col, lo, hi, n).")
    consts = {}
    expr = node
    if _is_op(expr, "+") and isinstance(expr.rexpr, ast.A_Const):
        consts["b"] = _number_const(expr.rexpr, "the offset of a bin")
        expr = expr.lexpr
    if not _is_op(expr, "*"):
        refuse(*bad)
    if isinstance(expr.lexpr, ast.FuncCall) and isinstance(expr.rexpr, ast.A_Const):
        floor, consts["m"] = expr.lexpr, _number_const(expr.rexpr, "the width of a bin")
    elif isinstance(expr.rexpr, ast.FuncCall) and isinstance(expr.lexpr, ast.A_Const):
        floor, consts["m"] = expr.rexpr, _number_const(expr.lexpr, "the width of a bin")
        consts["m_first"] = True
    else:
        refuse(*bad)
    if _func_name(floor) != "floor" or len(floor.args or ()) != 1 or floor.agg_star or floor.over is not None:
        refuse(*bad)
    div = floor.args[0]
    if not (_is_op(div, "/") and isinstance(div.rexpr, ast.A_Const)):
        refuse(*bad)
    consts["w"] = _number_const(div.rexpr, "the divisor of a bin")
    if const_decimal(consts["w"]) <= 0:
        refuse("the divisor of a bin must be greater than zero", "e.g. floor(age / 10) * 10", INVALID)
    inner = div.lexpr
    if (_is_op(inner, "-") or _is_op(inner, "+")) and isinstance(inner.rexpr, ast.A_Const):
        consts["a"] = _number_const(inner.rexpr, "the offset of a bin")
        consts["a_sign"] = inner.name[0].sval
        inner = inner.lexpr
    if isinstance(inner, ast.FuncCall) and _func_name(inner) in ("extract", "date_part") \
            and len(inner.args or ()) == 2 and isinstance(inner.args[0], ast.A_Const) \
            and isinstance(inner.args[0].val, ast.String) and inner.args[0].val.sval.lower() == "epoch":
        # floor(extract(epoch FROM t) / w) * w (Grafana's $__timeGroup): seconds, bucketed
        if "a" in consts:
            refuse(*bad)
        column, as_date = _temporal_arg(inner.args[1], column_name, "the argument of extract(epoch ...)")
        return KeyExpr("epoch", column, text, "?column?", func=_func_name(inner), consts=consts, columns=[column],
                       as_date=as_date)
    if not isinstance(inner, ast.ColumnRef):
        refuse(*bad)
    for c in consts.values():
        if isinstance(c, ast.A_Const) and abs(const_decimal(c)) > Decimal("1e300"):
            refuse("the constants of a bin are too large", "Use constants below 1e300.", INVALID)
    column = column_name(inner, "the argument of a bin")
    return KeyExpr("bin", column, text, "?column?", consts=consts, columns=[column])


def _case(node: ast.CaseExpr, column_name, check_condition, text) -> KeyExpr:
    if node.arg is not None:
        refuse(f"GROUP BY {text}: CASE <expression> WHEN ... is not supported",
               "Write CASE WHEN col < 10 THEN 'low' ... END.")
    whens, kinds = [], set()
    results = [w.result for w in node.args] + ([node.defresult] if node.defresult is not None else [])
    for r in results:
        if not (isinstance(r, ast.A_Const) and (r.isnull or isinstance(r.val, (ast.String, ast.Integer, ast.Float)))):
            refuse(f"GROUP BY {text}: CASE results must be constants", "e.g. THEN 'low'")
        if not r.isnull:
            kinds.add("text" if isinstance(r.val, ast.String) else "number")
    if len(kinds) > 1:
        refuse(f"GROUP BY {text}: CASE results must all be strings or all numbers",
               "Write every result as a string constant ('...').", "42804")
    if len(node.args) > 1000:
        refuse(f"GROUP BY {text}: too many WHEN branches", "Use at most 1000.", "54001")
    columns = []
    for w in node.args:
        check_condition(w.expr)
        whens.append((w.expr, w.result))
    return KeyExpr("case", None, text, "case", whens=whens, default=node.defresult, columns=columns)


def _int_const(node, what: str) -> int:
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.Integer):
        return node.val.ival
    if isinstance(node, ast.A_Expr) and node.kind == A_Expr_Kind.AEXPR_OP and node.lexpr is None \
            and [n.sval for n in node.name] == ["-"] and isinstance(node.rexpr, ast.A_Const) \
            and isinstance(node.rexpr.val, ast.Integer):
        return -node.rexpr.val.ival
    refuse(f"{what} must be an integer constant, not {deparse(node)}", "e.g. substring(code, 1, 2)")


def _key_const(node, what: str) -> ast.A_Const:
    if isinstance(node, ast.A_Const) and not node.isnull and isinstance(node.val, (ast.String, ast.Integer, ast.Float)):
        return node
    refuse(f"{what} must be a constant, not {deparse(node)}", "e.g. COALESCE(region, 'Unknown')")


def _coalesce(node: ast.CoalesceExpr, column_name, text) -> KeyExpr:
    args = list(node.args or ())
    if len(args) != 2:
        refuse(f"GROUP BY {text}: COALESCE of a key takes a column and a constant", "e.g. COALESCE(region, 'Unknown')")
    column = column_name(args[0], "the argument of COALESCE")
    return KeyExpr("coalesce", column, text, "coalesce", columns=[column],
                   consts={"const": _key_const(args[1], "the second argument of COALESCE")})


def _null_if(node: ast.A_Expr, column_name, text) -> KeyExpr:
    column = column_name(node.lexpr, "the argument of NULLIF")
    return KeyExpr("nullif", column, text, "nullif", columns=[column],
                   consts={"const": _key_const(node.rexpr, "the second argument of NULLIF")})


# ---------------------------------------------------------------------------
# planning: SQL, type and public key set of a key, given the column's metadata
# ---------------------------------------------------------------------------

@dataclass
class KeyPlan:
    sql: str                    # the key's value (any type; the rewrite casts it to text)
    type: str                   # output type, as format_type writes it
    public: list | None         # every key value as text (None: NULL), or None (not public)
    zone: bool = False          # depends on the session TimeZone
    numeric: bool = False       # compare values as numbers (text forms differ: 20 vs 20.0)
    note: str = ""


def _date_of(days) -> dt.date | None:
    try:
        return (EPOCH + dt.timedelta(days=int(Decimal(days).to_integral_value(ROUND_FLOOR)))).date()
    except (OverflowError, ValueError, ArithmeticError):
        return None


def _datetime_of(seconds) -> dt.datetime | None:
    try:
        return EPOCH + dt.timedelta(microseconds=int(Decimal(seconds) * 1_000_000))
    except (OverflowError, ValueError, ArithmeticError):
        return None


def _ts_text(t: dt.datetime) -> str:
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d} {t.hour:02d}:{t.minute:02d}:{t.second:02d}" + (
        f".{t.microsecond:06d}".rstrip("0") if t.microsecond else "")


def _trunc_py(t: dt.datetime, unit: str) -> dt.datetime:
    t = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "week":
        return t - dt.timedelta(days=t.weekday())
    if unit == "month":
        return t.replace(day=1)
    if unit == "quarter":
        return t.replace(month=(t.month - 1) // 3 * 3 + 1, day=1)
    if unit == "year":
        return t.replace(month=1, day=1)
    return t


def _next_unit(t: dt.datetime, unit: str) -> dt.datetime:
    if unit == "day":
        return t + dt.timedelta(days=1)
    if unit == "week":
        return t + dt.timedelta(days=7)
    step = {"month": 1, "quarter": 3, "year": 12}[unit]
    months = t.year * 12 + t.month - 1 + step
    return t.replace(year=months // 12, month=months % 12 + 1)


def _bounds(family, col):
    """The declared bounds as naive datetimes (timestamptz: UTC), or None."""
    lo, hi = col.get("lower"), col.get("upper")
    if lo is None or hi is None:
        return None
    if family == "date":
        a, b = _date_of(lo), _date_of(hi)
        if a is None or b is None:
            return None
        return dt.datetime.combine(a, dt.time()), dt.datetime.combine(b, dt.time())
    a, b = _datetime_of(lo), _datetime_of(hi)
    return None if a is None or b is None else (a, b)


def _local_range(family, col):
    """(first, last) local wall-clock datetimes the bounded column can take, or None."""
    span = _bounds(family, col)
    if span is None:
        return None
    a, b = span
    if family == "timestamptz":     # a UTC instant is, in some zone, up to 16 hours either side
        a, b = a - ZONE_SLACK, b + ZONE_SLACK
    if a < MIN_TS or b > MAX_TS or a > b:
        return None
    return a, b


def _literal_of(family: str, t: dt.datetime) -> str:
    """A constant of the column's type, read the same under any DateStyle and TimeZone."""
    if family == "date":
        return cast(sql_literal(f"{t.year:04d}-{t.month:02d}-{t.day:02d}"), "date")
    if family == "timestamp":
        return cast(sql_literal(_ts_text(t)), "timestamp")
    return cast(sql_literal(_ts_text(t) + "+00"), "timestamptz")


def clamp_sql(value: str, low: str, high: str) -> str:
    """value clamped into [low, high]; NULL stays NULL (GREATEST and LEAST skip NULLs)."""
    return f"(CASE WHEN {value} IS NULL THEN NULL ELSE LEAST(GREATEST({value}, {low}), {high}) END)"


def _temporal_clamp(family, col, ident):
    """The column clamped into its bounds, else into years 1..9999."""
    span = _bounds(family, col)
    if span is None or span[0] < MIN_TS or span[1] > MAX_TS:
        span = (MIN_TS, MAX_TS.replace(hour=0, minute=0, second=0) if family == "date" else MAX_TS)
    return clamp_sql(ident, _literal_of(family, span[0]), _literal_of(family, span[1]))


def plan_key(key: KeyExpr, meta_columns: dict, column_type, quote_ident, case_sql, max_keys: int) -> KeyPlan:
    """SQL, type and public key set of `key`; column_type(sql_type) -> (family, internal)."""
    if key.kind == "case":
        return _plan_case(key, case_sql)
    if key.kind == "to_char":
        inner = key.consts["inner"]
        inner_plan = plan_key(inner, meta_columns, column_type, quote_ident, case_sql, max_keys) \
            if inner.unit else _plan_temporal_column(inner, meta_columns, column_type, quote_ident)
        return _plan_to_char(key, inner_plan)
    if key.kind in ("coalesce", "nullif", "text"):
        return _plan_column_function(key, meta_columns[key.column], column_type, quote_ident(key.column))
    if key.kind == "epoch":
        col = meta_columns[key.column]
        family, _ = column_type(col["type"])
        if family not in ("date", "timestamp", "timestamptz"):
            refuse(f"{key.text}: column {key.column!r} ({col['type']}) is not a date or timestamp",
                   "extract(epoch FROM col) buckets date and timestamp columns.", "42883")
        return _plan_epoch(key, family, col, _temporal_clamp(family, col, quote_ident(key.column)),
                           not col["notnull"], max_keys)
    col = meta_columns[key.column]
    family, internal = column_type(col["type"])
    ident = quote_ident(key.column)
    nullable = not col["notnull"]
    if key.kind in ("trunc", "extract"):
        if family not in ("date", "timestamp", "timestamptz"):
            refuse(f"{key.text}: column {key.column!r} ({col['type']}) is not a date or timestamp",
                   "date_trunc, EXTRACT and date_part group date and timestamp columns.", "42883")
        value = _temporal_clamp(family, col, ident)
        zone = family == "timestamptz"
        if key.as_date and family != "date":    # CAST(col AS date): of a timestamptz, the session zone's date
            value, col, family = cast(value, "date"), _as_date_bounds(col, zone), "date"
        if key.kind == "trunc":
            return _plan_trunc(key, family, col, value, nullable, max_keys, zone)
        return _plan_extract(key, family, col, value, nullable, max_keys, zone)
    if key.kind == "bucket":
        return _plan_bucket(key, family, internal, col, ident, nullable)
    return _plan_bin(key, family, internal, col, ident, nullable, max_keys)


def _as_date_bounds(col, zone: bool):
    """A timestamp column's bounds as days (its dates; timestamptz: in any zone)."""
    lo, hi = col.get("lower"), col.get("upper")
    if lo is None or hi is None:
        return col
    slack = Decimal(ZONE_SLACK.total_seconds()) if zone else 0
    return dict(col, lower=(Decimal(lo) - slack) // 86400, upper=(Decimal(hi) + slack) // 86400)


def _with_null(values, nullable):
    return values + [None] if nullable else values


def _plan_trunc(key, family, col, value, nullable, max_keys, zone=False) -> KeyPlan:
    unit = sql_literal(key.unit)
    if family == "timestamp":
        trunc = f"pg_catalog.date_trunc({unit}, {value})"
    else:   # a date: on the date itself; timestamptz: the local wall clock of the session's zone
        trunc = f"pg_catalog.date_trunc({unit}, {cast(value, 'timestamp')})"
    zone = zone or family == "timestamptz"
    if key.to_date:
        sql, typ = cast(trunc, "date"), "date"
    else:
        sql = trunc
        typ = "timestamp without time zone" if family == "timestamp" else "timestamp with time zone"
    public = None
    span = _local_range(family, col)
    if span is not None:
        t, last, public = _trunc_py(span[0], key.unit), span[1], []
        while t <= last and len(public) <= max_keys:
            public.append(f"{t.year:04d}-{t.month:02d}-{t.day:02d}" if key.to_date else _ts_text(t))
            t = _next_unit(t, key.unit)
        public = None if len(public) > max_keys else _with_null(public, nullable)
    note = f"every {key.unit} between the column's bounds" if public is not None else ""
    return KeyPlan(sql, typ, public, zone=zone, note=note)


def _iso_year(t: dt.datetime) -> int:
    return t.isocalendar()[0]


def _plan_extract(key, family, col, value, nullable, max_keys, zone=False) -> KeyPlan:
    fields = DATE_FIELDS if family == "date" else TIMESTAMP_FIELDS
    if key.unit not in fields:
        refuse(f"{key.func} field {key.unit!r} is not supported for column {key.column!r} ({col['type']})",
               f"Use one of {', '.join(fields)}.")
    sql = f"pg_catalog.{key.func}({sql_literal(key.unit)}, {value})"
    typ = "numeric" if key.func == "extract" else "double precision"
    if key.consts.get("cast"):      # Tableau: CAST(EXTRACT(YEAR FROM col) AS INTEGER); the values are small
        sql, typ = cast(sql, key.consts["cast"]), "integer" if key.consts["cast"] == "int4" else "bigint"
    values = fields[key.unit]
    note = ""
    if values is None:       # year, isoyear: from the bounds
        span = _local_range(family, col)
        if span is None:
            return KeyPlan(sql, typ, None, zone=zone, numeric=True)
        first, last = span
        if key.unit == "isoyear":
            values = range(_iso_year(first), _iso_year(last) + 1)
        else:
            values = range(first.year, last.year + 1)
        note = f"every {key.unit} between the column's bounds"
    else:
        note = f"every {key.unit} ({values.start}..{values.stop - 1})"
    return KeyPlan(sql, typ, _with_null([str(v) for v in values], nullable), zone=zone or family == "timestamptz",
                   numeric=True, note=note)


def _plan_bucket(key, family, internal, col, ident, nullable) -> KeyPlan:
    if family not in ("int", "numeric", "float"):
        refuse(f"width_bucket: column {key.column!r} ({col['type']}) is not a number",
               "width_bucket groups numeric columns.", "42883")
    c = key.consts
    n = c["count"]
    args = f"{_const_sql(c['low'])}, {_const_sql(c['high'])}, {n}"
    sql = f"pg_catalog.width_bucket({ident}, {args})"
    if family in ("numeric", "float"):      # width_bucket raises on NaN: NaN sorts last, so the last bucket
        sql = (f"(CASE WHEN {ident} OPERATOR(pg_catalog.=) {cast(sql_literal('NaN'), internal)} "
               f"THEN {n + 1} ELSE {sql} END)")
    return KeyPlan(sql, "integer", _with_null([str(i) for i in range(0, n + 2)], nullable), numeric=True,
                   note=f"every bucket 0..{n + 1}")


def _kind(node: ast.A_Const) -> str:
    """"int" or "numeric": how PostgreSQL types a numeric literal (1.0, 1e3 and integers beyond
    int8 are numeric; the parser gives integers beyond int4 as Float nodes)."""
    if isinstance(node.val, ast.Integer):
        return "int"
    text = node.val.fval.replace("_", "")
    integral = "." not in text and "e" not in text.lower()
    return "int" if integral and abs(const_decimal(node)) < 2**63 else "numeric"


def _const_sql(node: ast.A_Const) -> str:
    v = node.val
    if isinstance(v, ast.Integer):
        return f"({v.ival})" if v.ival < 0 else str(v.ival)
    text = v.fval.replace("_", "")
    return f"({text})" if text.startswith("-") else text


class _Val:
    """A value of the bin arithmetic with PostgreSQL's type: int (exact, of a width), numeric
    (Decimal with its display scale), float (IEEE double)."""

    def __init__(self, kind, value, width="int4", scale=0):
        self.kind, self.value, self.width, self.scale = kind, value, width, scale


def _const_val(node: ast.A_Const) -> _Val:
    if _kind(node) == "int":
        v = int(const_decimal(node))
        return _Val("int", v, "int4" if -2**31 <= v < 2**31 else "int8")
    d = const_decimal(node)
    return _Val("numeric", d, scale=max(0, -d.as_tuple().exponent))


def _widen(a: _Val, b: _Val) -> str:
    for k in ("float", "numeric"):
        if k in (a.kind, b.kind):
            return k
    return "int"


def _as(v: _Val, kind: str):
    if kind == "float":
        return float(v.value)
    if kind == "numeric":
        return Decimal(v.value) if v.kind != "float" else Decimal(repr(v.value))
    return v.value


def _arith(a: _Val, op: str, b: _Val) -> _Val:
    kind = _widen(a, b)
    x, y = _as(a, kind), _as(b, kind)
    if kind == "int":
        width = "int8" if "int8" in (a.width, b.width) else "int4"
        if op == "+":
            r = x + y
        elif op == "-":
            r = x - y
        elif op == "*":
            r = x * y
        else:   # integer division truncates toward zero
            r = abs(x) // abs(y) * (1 if (x >= 0) == (y >= 0) else -1)
        if not -INT_RANGES[width] <= r < INT_RANGES[width]:
            raise OverflowError
        return _Val("int", r, width)
    if kind == "float":
        r = x + y if op == "+" else x - y if op == "-" else x * y if op == "*" else x / y
        if not math.isfinite(r) or abs(r) > 1e300:
            raise OverflowError
        return _Val("float", r)
    with localcontext() as ctx:
        ctx.prec = 60
        if op == "/":
            r = x / y
            scale = 20
        else:
            r = x + y if op == "+" else x - y if op == "-" else x * y
            scale = a.scale + b.scale if op == "*" else max(a.scale, b.scale)
    return _Val("numeric", r, scale=scale)


def _floor(v: _Val) -> _Val:
    if v.kind == "int":      # floor(integer) resolves to floor(double precision)
        return _Val("float", float(v.value))
    if v.kind == "float":
        return _Val("float", float(math.floor(v.value)))
    return _Val("numeric", v.value.to_integral_value(ROUND_FLOOR), scale=0)


def _bin_value(key: KeyExpr, x: _Val, k_override=None) -> tuple[_Val, _Val]:
    """(floor value, key value) of the bin expression at column value x (or at floor value k)."""
    c = key.consts
    if k_override is None:
        inner = x
        if "a" in c:
            inner = _arith(inner, c["a_sign"], _const_val(c["a"]))
        k = _floor(_arith(inner, "/", _const_val(c["w"])))
    else:
        k = k_override
    m = _const_val(c["m"])
    out = _arith(m, "*", k) if c.get("m_first") else _arith(k, "*", m)
    if "b" in c:
        out = _arith(out, "+", _const_val(c["b"]))
    return k, out


def _val_text(v: _Val) -> str:
    if v.kind == "int":
        return str(v.value)
    if v.kind == "float":
        return str(int(v.value)) if v.value.is_integer() and abs(v.value) < 1e15 else repr(v.value)
    q = Decimal(1).scaleb(-v.scale)
    with localcontext() as ctx:
        ctx.prec = 80
        return format(v.value.quantize(q), "f")


def _plan_bin(key, family, internal, col, ident, nullable, max_keys) -> KeyPlan:
    if family not in ("int", "numeric") and internal != "float8":
        refuse(f"{key.text}: column {key.column!r} ({col['type']}) cannot be binned",
               "Bins group integer, numeric and double precision columns; width_bucket takes real too.", "42883")
    lo, hi = col.get("lower"), col.get("upper")
    if lo is None or hi is None:
        refuse(f"{key.text}: column {key.column!r} has no bounds",
               "Bins are computed on values clamped into the column's bounds (so that no row can make the"
               " arithmetic overflow): an administrator can call dp.set_bounds, or use width_bucket.",
               INVALID)
    lo, hi = Decimal(lo), Decimal(hi)
    if family == "int":
        lo, hi = lo.to_integral_value(ROUND_FLOOR) + (0 if lo == lo.to_integral_value() else 1), \
            hi.to_integral_value(ROUND_FLOOR)
        width = {"smallint": "int2", "integer": "int4", "bigint": "int8"}.get(col["type"], "int4")
        lo, hi = max(int(lo), -INT_RANGES[width]), min(int(hi), INT_RANGES[width] - 1)
        if lo > hi:
            refuse(f"the bounds of {key.column!r} hold no integer", "Fix the bounds.", INVALID)
        ends = [_Val("int", lo, "int8" if width == "int8" else "int4"),
                _Val("int", hi, "int8" if width == "int8" else "int4")]
        low_sql, high_sql = cast(str(lo) if lo >= 0 else f"({lo})", internal), \
            cast(str(hi) if hi >= 0 else f"({hi})", internal)
    elif family == "numeric":
        ends = [_Val("numeric", lo, scale=0), _Val("numeric", hi, scale=0)]
        low_sql, high_sql = (cast("'" + format(d, "f") + "'", "numeric") for d in (lo, hi))
    else:
        ends = [_Val("float", float(lo)), _Val("float", float(hi))]
        low_sql, high_sql = (cast("'" + repr(float(d)) + "'", "float8") for d in (lo, hi))
    try:
        (k0, _), (k1, _) = (_bin_value(key, e) for e in ends)
    except (OverflowError, ArithmeticError):
        refuse(f"{key.text}: the bins of {key.column!r} overflow within its bounds",
               "Use a wider bin or smaller constants.", "22003")
    value = clamp_sql(ident, low_sql, high_sql)
    c = key.consts
    inner = value
    if "a" in c:
        inner = f"({inner} OPERATOR(pg_catalog.{c['a_sign']}) {_const_sql(c['a'])})"
    floor = f"pg_catalog.floor({inner} OPERATOR(pg_catalog./) {_const_sql(c['w'])})"
    sql = (f"({_const_sql(c['m'])} OPERATOR(pg_catalog.*) {floor})" if c.get("m_first")
           else f"({floor} OPERATOR(pg_catalog.*) {_const_sql(c['m'])})")
    if "b" in c:
        sql = f"({sql} OPERATOR(pg_catalog.+) {_const_sql(c['b'])})"
    _, sample = _bin_value(key, ends[0])
    typ = "numeric" if sample.kind == "numeric" else "double precision"
    first, last = sorted((k0.value, k1.value))
    count = int(last - first) + 1
    public = None
    if count <= max_keys:
        public = []
        for i in range(count):
            kv = first + i
            k = _Val("numeric", Decimal(kv), scale=0) if k0.kind == "numeric" else _Val("float", float(kv))
            try:
                public.append(_val_text(_bin_value(key, None, k)[1]))
            except (OverflowError, ArithmeticError):
                refuse(f"{key.text}: the bins of {key.column!r} overflow within its bounds",
                       "Use a wider bin or smaller constants.", "22003")
        public = _with_null(public, nullable)
    return KeyPlan(sql, typ, public, numeric=True,
                   note="every bin between the column's bounds (values clamped into them)" if public else "")


def _plan_case(key, case_sql) -> KeyPlan:
    results = [r for _, r in key.whens] + ([key.default] if key.default is not None else [])
    kinds = {("text" if isinstance(r.val, ast.String) else _kind(r)) for r in results if not r.isnull}
    typ = "text" if kinds == {"text"} or not kinds else ("integer" if kinds == {"int"} else "numeric")
    if typ == "integer" and any(abs(const_decimal(r)) >= 2**31 for r in results if not r.isnull):
        typ = "bigint"

    def result_sql(r):
        if r is None or r.isnull:
            return "NULL"
        if typ == "text":
            return cast(sql_literal(r.val.sval), "text")
        return _const_sql(r)

    parts = " ".join(f"WHEN {case_sql(cond)} THEN {result_sql(r)}" for cond, r in key.whens)
    sql = f"(CASE {parts} ELSE {result_sql(key.default)} END)"
    values, seen = [], set()
    for r in results:
        if r.isnull:
            v = None
        elif typ == "text":
            v = r.val.sval
        else:
            d = const_decimal(r)
            v = format(d, "f") if typ == "numeric" else str(int(d))
        if v not in seen:
            seen.add(v)
            values.append(v)
    if key.default is None and None not in seen:
        values.append(None)
    return KeyPlan(sql, typ, values, numeric=typ != "text", note="every CASE result")


def canonical(value: str | None, numeric: bool):
    """A key's value for matching the exact rows with the public set (20 and 20.0 are one key)."""
    if value is None or not numeric:
        return value
    try:
        d = Decimal(value)
    except ArithmeticError:
        return value
    return d.normalize() if d.is_finite() else d


# ---------------------------------------------------------------------------
# keys BI tools write over other keys: epoch buckets, COALESCE/NULLIF, to_char, lower/upper/substring

UNIX_EPOCH = dt.datetime(1970, 1, 1)


def _plan_epoch(key, family, col, value, nullable, max_keys) -> KeyPlan:
    """floor(extract(epoch FROM t) / w) * m [+ b] (numeric; date_part: double precision), or
    to_timestamp of it (timestamptz, travelling as the session zone's wall clock)."""
    c = key.consts
    if any(k in c for k in ("a",)) or _kind(c["w"]) != "int" or _kind(c["m"]) != "int" or "b" in c \
            and _kind(c["b"]) != "int":
        refuse(f"GROUP BY {key.text}: epoch buckets take integer widths", "e.g. floor(extract(epoch FROM t) / 3600) * 3600")
    if key.as_date or family == "date":
        value = cast(value, "timestamp")
    epoch = f"pg_catalog.{'extract' if key.func == 'extract' else 'date_part'}({cast(sql_literal('epoch'), 'text')}, {value})"
    w, m = int(const_decimal(c["w"])), int(const_decimal(c["m"]))
    b = int(const_decimal(c["b"])) if "b" in c else 0
    floor = f"pg_catalog.floor({epoch} OPERATOR(pg_catalog./) {_const_sql(c['w'])})"
    sql = (f"({_const_sql(c['m'])} OPERATOR(pg_catalog.*) {floor})" if c.get("m_first")
           else f"({floor} OPERATOR(pg_catalog.*) {_const_sql(c['m'])})")
    if "b" in c:
        sql = f"({sql} OPERATOR(pg_catalog.+) {_const_sql(c['b'])})"
    typ = "numeric" if key.func == "extract" else "double precision"
    zone = family == "timestamptz"
    public = None
    span = _bounds(family, col)
    steps = None
    if span is not None:
        lo, hi = ((t - UNIX_EPOCH).total_seconds() for t in span)
        first, last = math.floor(lo / w), math.floor(hi / w)
        if last - first + 1 <= max_keys:
            steps = [k * m + b for k in range(first, last + 1)]
    note = "every epoch bucket between the column's bounds" if steps is not None else ""
    if c.get("to_timestamp"):
        # an instant: it travels as UTC text with its offset, which reads the same in every zone
        instant = f"pg_catalog.timezone({cast(sql_literal('UTC'), 'text')}, pg_catalog.to_timestamp({cast(sql, 'float8')}))"
        text = (f"(pg_catalog.to_char({instant}, {cast(sql_literal('YYYY-MM-DD HH24:MI:SS'), 'text')}) "
                f"OPERATOR(pg_catalog.||) {cast(sql_literal('+00'), 'text')})")
        if steps is not None:
            try:
                public = _with_null([(UNIX_EPOCH + dt.timedelta(seconds=x)).strftime("%Y-%m-%d %H:%M:%S") + "+00"
                                     for x in steps], nullable)
            except (OverflowError, ValueError):
                public = None
        return KeyPlan(text, "timestamp with time zone", public, note=note if public else "")
    if steps is not None:
        public = _with_null([str(x) for x in steps], nullable)
    return KeyPlan(sql, typ, public, zone=zone, numeric=True, note=note)


def _plan_temporal_column(key, meta_columns, column_type, quote_ident) -> KeyPlan:
    col = meta_columns[key.column]
    family, _ = column_type(col["type"])
    if family not in ("date", "timestamp", "timestamptz"):
        refuse(f"{key.text}: column {key.column!r} ({col['type']}) is not a date or timestamp",
               "to_char formats date and timestamp columns here.", "42883")
    value = _temporal_clamp(family, col, quote_ident(key.column))
    if family == "timestamptz":
        value = cast(value, "timestamp")       # the session zone's wall clock, as to_char would print it
    return KeyPlan(value, col["type"], None, zone=family == "timestamptz")


_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _to_char(t: dt.datetime, fmt: str) -> str | None:
    """PostgreSQL's to_char for the common patterns; None if the format uses another one."""
    out, i, fill = [], 0, True
    tokens = [("HH24", lambda: f"{t.hour:02d}"), ("HH12", lambda: f"{(t.hour % 12) or 12:02d}"),
              ("YYYY", lambda: f"{t.year:04d}"), ("IYYY", lambda: f"{t.isocalendar()[0]:04d}"),
              ("MONTH", lambda: _MONTHS[t.month - 1].upper().ljust(9 if fill else 0)),
              ("Month", lambda: _MONTHS[t.month - 1].ljust(9 if fill else 0)),
              ("month", lambda: _MONTHS[t.month - 1].lower().ljust(9 if fill else 0)),
              ("DAY", lambda: _DAYS[t.weekday()].upper().ljust(9 if fill else 0)),
              ("Day", lambda: _DAYS[t.weekday()].ljust(9 if fill else 0)),
              ("day", lambda: _DAYS[t.weekday()].lower().ljust(9 if fill else 0)),
              ("MON", lambda: _MONTHS[t.month - 1][:3].upper()), ("Mon", lambda: _MONTHS[t.month - 1][:3]),
              ("mon", lambda: _MONTHS[t.month - 1][:3].lower()),
              ("DDD", lambda: f"{t.timetuple().tm_yday:03d}" if fill else str(t.timetuple().tm_yday)),
              ("DY", lambda: _DAYS[t.weekday()][:3].upper()), ("Dy", lambda: _DAYS[t.weekday()][:3]),
              ("dy", lambda: _DAYS[t.weekday()][:3].lower()),
              ("YY", lambda: f"{t.year % 100:02d}"), ("MM", lambda: f"{t.month:02d}" if fill else str(t.month)),
              ("DD", lambda: f"{t.day:02d}" if fill else str(t.day)), ("HH", lambda: f"{(t.hour % 12) or 12:02d}"),
              ("MI", lambda: f"{t.minute:02d}"), ("SS", lambda: f"{t.second:02d}"),
              ("IW", lambda: f"{t.isocalendar()[1]:02d}" if fill else str(t.isocalendar()[1])),
              ("WW", lambda: f"{(t.timetuple().tm_yday - 1) // 7 + 1:02d}" if fill
               else str((t.timetuple().tm_yday - 1) // 7 + 1)),
              ("ID", lambda: str(t.isoweekday())), ("Q", lambda: str((t.month - 1) // 3 + 1)),
              ("D", lambda: str(t.isoweekday() % 7 + 1))]
    while i < len(fmt):
        if fmt.startswith("FM", i) or fmt.startswith("fm", i):
            fill, i = False, i + 2
            continue
        if fmt[i] == '"':
            j = fmt.find('"', i + 1)
            if j < 0 or "\\" in fmt[i:j]:
                return None
            out.append(fmt[i + 1:j])
            i = j + 1
            continue
        for token, value in tokens:
            if fmt.startswith(token, i):
                out.append(value())
                i += len(token)
                fill = True
                break
        else:
            if fmt[i].isalpha() or fmt[i] == "\\":
                return None         # a pattern not written here: no public key set
            out.append(fmt[i])
            i += 1
    return "".join(out)


def _plan_to_char(key, inner: KeyPlan) -> KeyPlan:
    sql = f"pg_catalog.to_char({inner.sql}, {cast(sql_literal(key.unit), 'text')})"
    public = None
    if inner.public is not None:
        public, seen = [], set()
        for v in inner.public:
            if v is None:
                text = None
            else:
                try:
                    text = _to_char(dt.datetime.fromisoformat(v), key.unit)
                except ValueError:
                    text = None
                if text is None:
                    public = None
                    break
            if text not in seen:
                seen.add(text)
                public.append(text)
    return KeyPlan(sql, "text", public, zone=inner.zone,
                   note="every formatted key between the column's bounds" if public is not None else "")


def _plan_column_function(key, col, column_type, ident) -> KeyPlan:
    """COALESCE(col, c), NULLIF(col, c), lower/upper/substring(col ...): on the column's public values."""
    family, internal = column_type(col["type"])
    values = col.get("public_values")
    public = None if values is None else [None if v is None else str(v) for v in values] + \
        ([] if col["notnull"] else [None])
    if key.kind == "text":
        if family != "text":
            refuse(f"{key.text}: column {key.column!r} ({col['type']}) is not a string",
                   f"{key.func} groups text columns.", "42883")
        bounds = key.consts["bounds"]
        if key.func in ("lower", "upper"):
            sql = f"pg_catalog.{key.func}({ident})"
            if public is not None and all(v is None or v.isascii() for v in public):
                public = [None if v is None else (v.lower() if key.func == "lower" else v.upper()) for v in public]
            else:
                public = None       # case mapping beyond ASCII depends on the server's locale
        else:
            sql = f"pg_catalog.substring({ident}, {', '.join(f'({b})' for b in bounds)})"
            start = bounds[0]
            stop = None if len(bounds) == 1 else start + bounds[1]

            def cut(v):
                a = max(start - 1, 0)
                return v[a:] if stop is None else v[a:max(stop - 1, 0)]
            public = None if public is None else [None if v is None else cut(v) for v in public]
        typ, numeric = "text", False
    else:
        const = key.consts["const"]
        text_const = isinstance(const.val, ast.String)
        if family == "text" and text_const:
            const_sql, cvalue = sql_literal(const.val.sval), const.val.sval
        elif family in ("int", "numeric", "float") and not text_const and (
                family != "int" or isinstance(const.val, ast.Integer)):
            const_sql, cvalue = _const_sql(const), str(const_decimal(const))
        else:
            refuse(f"{key.text}: the constant must have the type of column {key.column!r} ({col['type']})",
                   "e.g. COALESCE(region, 'Unknown') for a text column, COALESCE(n, 0) for a number.", "42804")
        numeric = family != "text"

        def same(a, b):
            if numeric:
                try:
                    return Decimal(a) == Decimal(b)
                except ArithmeticError:
                    return False
            return a == b
        if key.kind == "coalesce":
            sql = f"COALESCE({ident}, {const_sql})"
            public = None if public is None else [cvalue if v is None else v for v in public]
        else:
            sql = f"NULLIF({ident}, {const_sql})"
            public = None if public is None else [None if v is not None and same(v, cvalue) else v for v in public]
        typ = col["type"]
    if public is not None:
        dedup, seen = [], set()
        for v in public:
            if v not in seen:
                seen.add(v)
                dedup.append(v)
        public = dedup
    return KeyPlan(sql, typ, public, numeric=numeric,
                   note=f"the column's public values, through {key.default_name}" if public is not None else "")
