"""The WHERE clause: written from the validated tree, typed against the table's columns.

A filter is applied to the rows before anything else (see rewrite.py).  It is written from the tree
analyze.py validated, never by re-tokenising the analyst's text, with the column-type rule of
analyze.py's docstring: a constant is compared with a column without casting the column (which could
fail on a chosen row), IN, BETWEEN and IS DISTINCT FROM are spelt out with OPERATOR(pg_catalog.op).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import re
import struct
from typing import TYPE_CHECKING

from ..core.catalog import TableMeta
from ..core.errors import DPError
from .analyze import MAX_DEPTH, Query, constant_type, function_operand
from .parse import ast, cast, pg_type, sql_literal, too_complex
from .sqltext import operator, quote_ident
from pglast.enums import A_Expr_Kind, BoolExprType, BoolTestType, NullTestType  # noqa: E402

if TYPE_CHECKING:
    from .plan import Plan

INVALID = "22023"
NOT_SUPPORTED = "0A000"
DATATYPE_MISMATCH = "42804"
INVALID_TEXT = "22P02"
OUT_OF_RANGE = "22003"

# constant families PostgreSQL compares with a column of each family without casting the
# column, or casting it infallibly (int -> numeric/float8, bpchar/varchar -> text; date
# against timestamp has its own overflow-safe operators).  A plain '...' literal and NULL
# take the column's type and go with every family.  numeric against float is re-targeted.
_COMPARABLE = {
    "int": {"int", "numeric", "float"},
    "numeric": {"int", "numeric"},
    "float": {"int", "numeric", "float"},
    "text": {"text"},
    "bool": {"bool"},
    "date": {"date", "timestamp", "timestamptz"},       # timestamptz constants: re-targeted
    "timestamp": {"timestamp", "date", "timestamptz"},
    "timestamptz": {"timestamptz", "timestamp", "date"},   # cross-type operators, no cast of the column
    "time": {"time"},
    "interval": {"interval"},
    "other": set(),
}
# two columns of different types: the families whose mix PostgreSQL compares infallibly
_COLUMN_PAIRS = [{"int", "numeric"}, {"int", "float"}, {"date", "timestamp"}]
_INTERNAL_FAMILY = {
    "int2": "int", "int4": "int", "int8": "int", "numeric": "numeric", "float4": "float", "float8": "float",
    "text": "text", "varchar": "text", "bpchar": "text", "bool": "bool", "date": "date",
    "timestamp": "timestamp", "timestamptz": "timestamptz", "time": "time", "interval": "interval",
}
_COLUMN_TYPES = {
    "smallint": "int2", "integer": "int4", "bigint": "int8", "numeric": "numeric", "real": "float4",
    "double precision": "float8", "text": "text", "character varying": "varchar", "character": "bpchar",
    "boolean": "bool", "date": "date", "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz", "time without time zone": "time", "interval": "interval",
}
_INTEGER_TEXT = re.compile(r"\s*[+-]?\d+\s*", re.ASCII)
_DECIMAL_TEXT = re.compile(r"\s*([+-]?)((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)\s*", re.ASCII)
_HEX_FLOAT_TEXT = re.compile(r"\s*[+-]?0[xX][0-9a-fA-F.]+([pP][+-]?\d+)?\s*", re.ASCII)
_SPECIAL_FLOATS = {"nan": math.nan, "+nan": math.nan, "-nan": math.nan, "inf": math.inf, "+inf": math.inf,
                   "infinity": math.inf, "+infinity": math.inf, "-inf": -math.inf, "-infinity": -math.inf}


def column_type(sql_type: str) -> tuple[str, str | None]:
    """(family, internal name) of a column's type as format_type writes it; ("other", None)
    for every type the rule does not know (enums, domains, uuid, ...)."""
    base = re.sub(r"\(\d+(,\d+)?\)", "", sql_type.strip()).strip()
    internal = _COLUMN_TYPES.get(re.sub(r"\s+", " ", base))
    return (_INTERNAL_FAMILY[internal], internal) if internal else ("other", None)


@dataclass
class _Constant:
    sql: str                 # as written in the rewrite
    family: str              # an _INTERNAL_FAMILY value; "unknown" ('...'), "null"
    text: str | None = None  # the literal's text, for checks and re-targeting (None: NULL)
    internal: str | None = None   # the cast's type, if any
    typmods: tuple = ()


def _literal_sql(value) -> tuple[str, str, str | None]:
    """(sql, family, text) of an A_Const."""
    if value.isnull:
        return "NULL", "null", None
    v = value.val
    if isinstance(v, ast.Integer):
        return (f"({v.ival})" if v.ival < 0 else str(v.ival)), "int", str(v.ival)
    if isinstance(v, ast.Float):
        text = v.fval.replace("_", "")
        digits = text.lstrip("-")
        if digits[:2].lower() in ("0x", "0o", "0b"):
            text = str(int(text, 0))
        if not _DECIMAL_TEXT.fullmatch(text):
            raise DPError(f"the number {v.fval!r} is not understood", hint="Write a decimal number.",
                          sqlstate=INVALID_TEXT)
        return (f"({text})" if text.startswith("-") else text), "numeric", text
    if isinstance(v, ast.String):
        return sql_literal(v.sval), "unknown", v.sval
    if isinstance(v, ast.Boolean):
        return ("TRUE" if v.boolval else "FALSE"), "bool", ("true" if v.boolval else "false")
    raise DPError("bit-string constants are not supported in WHERE", hint="Compare with numbers or strings.",
                  sqlstate=NOT_SUPPORTED)


def _constant(node) -> _Constant:
    call = function_operand(node)
    if call is not None:        # to_timestamp('...', 'format'), to_date('...', 'format'): checked by analyze
        name, args = call
        internal = "timestamptz" if name == "to_timestamp" else "date"
        sql = f"pg_catalog.{name}({cast(sql_literal(args[0].val.sval), 'text')}, " \
              f"{cast(sql_literal(args[1].val.sval), 'text')})"
        return _Constant(sql, internal, None, internal)
    if isinstance(node, ast.A_Const):
        sql, family, text = _literal_sql(node)
        return _Constant(sql, family, text)
    internal, typmods = constant_type(node.typeName)   # a TypeCast of an A_Const (analyze checked)
    sql, family, text = _literal_sql(node.arg)
    return _Constant(cast(sql, internal, typmods), _INTERNAL_FAMILY[internal], text, internal, typmods)


def _float_value(text: str, internal: str) -> float:
    """The value PostgreSQL's float4in/float8in gives `text`; its errors, data-independent, here."""
    what = "real" if internal == "float4" else "double precision"
    special = _SPECIAL_FLOATS.get(text.strip().lower())
    if special is not None:
        return special
    m = _DECIMAL_TEXT.fullmatch(text)
    if m:
        value = float(m.group(1) + m.group(2))
    elif _HEX_FLOAT_TEXT.fullmatch(text):
        value = float.fromhex(text.strip())
    else:
        raise DPError(f"invalid input syntax for type {what}: {text!r}", hint="Write a decimal number.",
                      sqlstate=INVALID_TEXT)
    nonzero = any(c in "123456789abcdefABCDEF" for c in (m.group(3) if m else text.strip()[2:]))
    if internal == "float4" and math.isfinite(value):
        try:
            value = struct.unpack("f", struct.pack("f", value))[0]
        except OverflowError:
            value = math.inf
    if math.isinf(value) or (value == 0 and nonzero):
        raise DPError(f"{text.strip()!r} is out of range for type {what}",
                      hint=f"Write a constant within the range of {what}.", sqlstate=OUT_OF_RANGE)
    return value


def _as_numeric(c: _Constant) -> str:
    """A float constant compared with a numeric column, re-targeted to numeric: the shortest
    decimal that reads back as the same float; infinities and NaN as numeric's own."""
    if c.text is None:  # NULL
        return cast("NULL", "numeric")
    value = _float_value(c.text, c.internal)
    if math.isnan(value):
        text = "NaN"
    elif math.isinf(value):
        text = "Infinity" if value > 0 else "-Infinity"
    elif c.internal == "float4":
        text = next(t for t in (f"{value:.{p}g}" for p in range(1, 10))
                    if struct.unpack("f", struct.pack("f", float(t)))[0] == value)
    else:
        text = repr(value)
    return cast(sql_literal(text), "numeric")


def _check_literal(text: str, family: str, column: str):
    """A plain '...' literal takes the column's type: refuse now what its input function would."""
    ok = True
    if family == "int":
        ok = bool(_INTEGER_TEXT.fullmatch(text))
    elif family == "numeric":
        ok = bool(_DECIMAL_TEXT.fullmatch(text)) or text.strip().lower() in _SPECIAL_FLOATS
    elif family == "float":
        ok = bool(_DECIMAL_TEXT.fullmatch(text) or _HEX_FLOAT_TEXT.fullmatch(text)) \
            or text.strip().lower() in _SPECIAL_FLOATS
    if not ok:
        raise DPError(f"{text!r} is not a valid {family} value for column {column!r}",
                      hint="Compare with a constant of the column's type.", sqlstate=INVALID_TEXT)


# the implicit casts among built-in types of one category go one way, up these ranks
# (varchar and bpchar both cast to the other: the first, the column's, is kept)
_WIDENING = {
    "int2": ("n", 0), "int4": ("n", 1), "int8": ("n", 2), "numeric": ("n", 3), "float4": ("n", 4),
    "float8": ("n", 5), "varchar": ("s", 0), "bpchar": ("s", 0), "text": ("s", 1),
    "date": ("d", 0), "timestamp": ("d", 1), "timestamptz": ("d", 2),
    "bool": ("b", 0), "time": ("t", 0), "interval": ("i", 0),
}


def _literal_type(c: _Constant) -> str | None:
    """The type PostgreSQL gives a constant; None for '...' and NULL (they take the other side's)."""
    if c.internal:
        return c.internal
    if c.family == "int":
        return "int4"
    if c.family == "numeric":   # an integer too big for int4 is an int8 if it fits
        return "int8" if re.fullmatch(r"-?\d+", c.text) and -2**63 <= int(c.text) < 2**63 else "numeric"
    return "bool" if c.family == "bool" else None


def _mismatch(what: str, hint: str = "Compare with a constant of the column's type, e.g. CAST('...' AS <type>).") \
        -> DPError:
    return DPError(what, hint=hint, sqlstate=DATATYPE_MISMATCH)


class _Where:
    """SQL text of a validated WHERE tree (see analyze.py for the rules)."""

    def __init__(self, query: Query, meta: TableMeta):
        self.query, self.columns = query, meta.columns
        self.zone = False       # set when the SQL reads a time in the session's TimeZone

    def column(self, ref) -> tuple[str, str, str, str | None]:
        """(sql, name, family, internal type) of a column reference."""
        name = self.query.ref_name(ref)
        family, internal = column_type(self.columns[name]["type"])
        return quote_ident(name), name, family, internal

    def operand(self, node):
        if isinstance(node, ast.ColumnRef):
            return self.column(node)
        if isinstance(node, ast.TypeCast) and isinstance(node.arg, ast.ColumnRef):
            # CAST(col AS date) (analyze allows no other cast of a column): infallible from date and
            # timestamps (infinities stay infinite); of a timestamptz, the date in the session's zone
            sql, col, family, _ = self.column(node.arg)
            self.zone = self.zone or family == "timestamptz"
            if family not in ("date", "timestamp", "timestamptz"):
                raise _mismatch(f"CAST({col} AS date): column {col!r} ({self.columns[col]['type']}) is not a"
                                " date or timestamp", hint="Cast only date and timestamp columns to date.")
            return cast(sql, "date"), col, "date", "date"
        call = function_operand(node)
        if call is not None and call[0] in ("lower", "upper", "coalesce"):
            return self.function(*call)
        return _constant(node)

    def function(self, name, args):
        """lower(col), upper(col), COALESCE(col, constant): (sql, column name, family, internal)."""
        sql, col, family, internal = self.column(args[0])
        if name in ("lower", "upper"):
            if family != "text":
                raise DPError(f"{name}({col}): column {col!r} ({self.columns[col]['type']}) is not a string",
                              hint=f"{name} applies to text columns.", sqlstate="42883")
            return f"pg_catalog.{name}({sql})", col, "text", "text"
        c = _constant(args[1])
        allowed = {"int": {"int", "numeric"}, "numeric": {"int", "numeric"},
                   "float": {"int", "numeric", "float"}}.get(family, {family})
        if c.family != "unknown" and c.family not in allowed or family == "other" and c.family != "unknown":
            raise _mismatch(f"COALESCE({col}, {c.sql}): the constant must have the column's type"
                            f" ({self.columns[col]['type']}), so that the column is never cast")
        if c.family == "unknown":
            _check_literal(c.text, family, col)
        if family == "int" and c.family == "numeric":
            family, internal = "numeric", "numeric"
        return f"COALESCE({sql}, {c.sql})", col, family, internal

    def like(self, node) -> str:
        sql, col, family, _ = self.operand(node.lexpr)
        if family != "text":
            raise DPError(f"column {col!r} ({self.columns[col]['type']}) cannot be matched with LIKE",
                          hint="LIKE and ILIKE apply to text columns.", sqlstate="42883")
        op = node.name[-1].sval        # ~~, !~~, ~~*, !~~*
        return "(" + operator(sql, op, cast(sql_literal(node.rexpr.val.sval), "text")) + ")"

    def against(self, col, c: _Constant) -> str:
        """Constant `c`, as compared with column `col` (re-targeted when needed)."""
        _, name, family, _ = col
        read_in_zone = c.text is None or not _EXPLICIT_OFFSET.search(c.text)   # TO_TIMESTAMP: None
        if family == "timestamptz" and (c.family in ("date", "timestamp") or c.family == "unknown" and read_in_zone):
            self.zone = True    # a local time compared with an instant
        if c.family == "timestamptz" and read_in_zone:
            self.zone = True    # a timestamptz constant without an offset, TO_TIMESTAMP
        if c.family == "unknown":
            _check_literal(c.text, family, name)
            return c.sql
        if c.family == "null":
            return c.sql
        if family == "numeric" and c.family == "float":
            return _as_numeric(c)
        if family in ("date", "timestamp") and c.family == "timestamptz":
            # PostgreSQL would cast the column to timestamptz (which can fail on a far date):
            # the constant becomes the session zone's wall-clock time instead
            self.zone = True
            return cast(c.sql, "timestamp")
        if c.family not in _COMPARABLE[family]:
            kind = pg_type(c.internal) if c.internal else f"a {c.family} literal"
            raise _mismatch(f"column {name!r} ({self.columns[name]['type']}) cannot be compared with {kind}"
                            f" {c.sql}: PostgreSQL would cast the column, which can fail on a row or depends on"
                            " a session setting")
        return c.sql

    def pair(self, left, right) -> tuple[str, str]:
        """SQL of two compared operands (columns, constants)."""
        if isinstance(left, tuple) and isinstance(right, tuple):
            if self.columns[left[1]]["type"] != self.columns[right[1]]["type"] and not (
                    left[2] == right[2] != "other" or {left[2], right[2]} in _COLUMN_PAIRS):
                raise _mismatch(f"columns {left[1]!r} ({self.columns[left[1]]['type']}) and {right[1]!r}"
                                f" ({self.columns[right[1]]['type']}) cannot be compared: PostgreSQL would"
                                " cast one, which can fail on a row",
                                hint="Compare columns of the same type, or compare each with a constant.")
            return left[0], right[0]
        if isinstance(left, tuple):
            return left[0], self.against(left, right)
        if isinstance(right, tuple):
            return self.against(right, left), right[0]
        return left.sql, right.sql

    def compare(self, left, op: str, right) -> str:
        a, b = self.pair(left, right)
        return operator(a, "<>" if op == "!=" else op, b)

    def boolean(self, node) -> str:
        sql, name, family, _ = self.column(node)
        if family not in ("bool", "other"):
            raise _mismatch(f"column {name!r} ({self.columns[name]['type']}) is not a boolean",
                            hint="Compare it with a constant, e.g. column = 1.")
        return sql

    def sql(self, node, depth=0) -> str:
        if depth > MAX_DEPTH:
            raise too_complex(f"WHERE is nested more than {MAX_DEPTH} deep")
        if isinstance(node, ast.BoolExpr):
            parts = [self.sql(arg, depth + 1) for arg in node.args]
            if node.boolop == BoolExprType.NOT_EXPR:
                return f"(NOT {parts[0]})"
            return "(" + (" AND " if node.boolop == BoolExprType.AND_EXPR else " OR ").join(parts) + ")"
        if isinstance(node, ast.NullTest):
            test = "IS NULL" if node.nulltesttype == NullTestType.IS_NULL else "IS NOT NULL"
            return f"({self.operand(node.arg)[0]} {test})"
        if isinstance(node, ast.BooleanTest):
            test = {BoolTestType.IS_TRUE: "IS TRUE", BoolTestType.IS_NOT_TRUE: "IS NOT TRUE",
                    BoolTestType.IS_FALSE: "IS FALSE", BoolTestType.IS_NOT_FALSE: "IS NOT FALSE",
                    BoolTestType.IS_UNKNOWN: "IS UNKNOWN", BoolTestType.IS_NOT_UNKNOWN: "IS NOT UNKNOWN"}
            return f"({self.boolean(node.arg)} {test[node.booltesttype]})"
        if isinstance(node, ast.ColumnRef):
            return self.boolean(node)
        kind, op = node.kind, node.name[-1].sval
        if kind in (A_Expr_Kind.AEXPR_LIKE, A_Expr_Kind.AEXPR_ILIKE):
            return self.like(node)
        left = self.operand(node.lexpr)
        if kind == A_Expr_Kind.AEXPR_OP:
            return "(" + self.compare(left, op, self.operand(node.rexpr)) + ")"
        if kind in (A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_NOT_BETWEEN):
            low, high = (self.operand(n) for n in node.rexpr)
            if kind == A_Expr_Kind.AEXPR_BETWEEN:
                return f"({self.compare(left, '>=', low)} AND {self.compare(left, '<=', high)})"
            return f"({self.compare(left, '<', low)} OR {self.compare(left, '>', high)})"
        if kind in (A_Expr_Kind.AEXPR_DISTINCT, A_Expr_Kind.AEXPR_NOT_DISTINCT):
            a, b = self.pair(left, self.operand(node.rexpr))
            if kind == A_Expr_Kind.AEXPR_DISTINCT:
                return f"(({operator(a, '=', b)}) IS NOT TRUE AND ({a} IS NOT NULL OR {b} IS NOT NULL))"
            return f"(({operator(a, '=', b)}) IS TRUE OR ({a} IS NULL AND {b} IS NULL))"
        # IN / NOT IN (op is "=" or "<>")
        items = [self.operand(n) for n in node.rexpr]
        if isinstance(left, tuple) and left[3] and all(isinstance(i, _Constant) for i in items):
            # one ScalarArrayOp, as PostgreSQL makes of an IN list: the items cast to the common
            # type of the column and the items (select_common_type; '...' and NULL take it)
            typed = [(self.against(left, i),
                      "numeric" if left[2] == "numeric" and i.family == "float" else
                      "timestamp" if left[2] in ("date", "timestamp") and i.family == "timestamptz" else
                      _literal_type(i))
                     for i in items]
            common = left[3]
            for _, t in typed:
                if t and _WIDENING[t][0] == _WIDENING[common][0] and _WIDENING[t][1] > _WIDENING[common][1]:
                    common = t
            elements = ", ".join(cast(sql, common) for sql, _ in typed)
            return f"({operator(left[0], op, ('ANY' if op == '=' else 'ALL') + f' (ARRAY[{elements}])')})"
        ors = " OR ".join(self.compare(left, "=", i) for i in items)
        return f"({ors})" if op == "=" else f"(NOT ({ors}))"


def constant_checks(plan: Plan) -> list[str]:
    """SELECTs of the STABLE constant functions of the query (to_timestamp('...', 'fmt')): PostgreSQL
    evaluates them when a row is compared, so a bad format would fail only on chosen rows; the
    gateway runs these before the charge instead."""
    roots = [plan.query.where] if plan.query.where is not None else []
    for key in plan.query.key_exprs.values():
        roots.extend(cond for cond, _ in key.whens)
    checks, stack = [], list(roots)
    while stack:
        n = stack.pop()
        call = function_operand(n) if isinstance(n, ast.FuncCall) else None
        if call is not None and call[0] in ("to_timestamp", "to_date"):
            checks.append(f"SELECT {_constant(n).sql}")
            continue
        if isinstance(n, ast.Node):
            for slot in n:
                v = getattr(n, slot)
                stack.extend(v if isinstance(v, (tuple, list)) else (v,))
    return checks


# a time written with its offset (Z, +02, -05:30, +0530) reads the same in every zone
_EXPLICIT_OFFSET = re.compile(r"\d:\d\d(:\d\d(\.\d*)?)?\s*(Z|z|UTC|[+-]\d{1,2}(:?\d\d){0,2})\s*$")


def where_zone_dependent(query: Query, meta: TableMeta) -> bool:
    w = _Where(query, meta)
    w.sql(query.where)
    return w.zone


def where_sql(query: Query, meta: TableMeta) -> str:
    """The query's WHERE as SQL: from the tree, typed against meta's columns, schema-qualified."""
    return _Where(query, meta).sql(query.where)
