"""Check that a parsed SELECT is in the DP subset and describe it.

The subset: one protected table in FROM; a select list of GROUP BY columns and
aggregates (count, sum, avg, variance, stddev, percentile_cont and their dp_*
forms); WHERE built only from comparisons, IN, BETWEEN, IS [NOT] NULL, IS
[NOT] TRUE/FALSE, AND/OR/NOT over columns and constants (nothing that can
raise an error on a chosen row); GROUP BY columns; ORDER BY and LIMIT, applied
to the noisy answer.  Everything else is refused with the offending part named.

Checking is bounded: WHERE may hold at most MAX_WHERE_NODES parse nodes, nested
at most MAX_DEPTH deep, and an IN list at most MAX_IN_ITEMS items; the tree is
walked with an explicit stack or depth counter, and each limit is checked
before the work it bounds (54001, statement_too_complex).

Constants: a literal, NULL, or a literal cast to a built-in type of
CONSTANT_TYPES.  The cast's type is matched on the parsed TypeName, exactly:
either a bare internal name (int4, float8, text, ...; the grammar turns
`integer`, `double precision`, ... into pg_catalog.int4, pg_catalog.float8)
or pg_catalog.<internal name>.  A quoted or other schema's name
("double precision", public.t, pg_temp.t) could resolve to a user's type and
is refused.  The rewrite writes every type as pg_catalog.<internal name>.

Comparisons and column types (enforced by plan.where_sql, which knows the
columns' types): PostgreSQL must never cast the *column* side of a comparison,
IN or BETWEEN in a way that can fail or that depends on a session setting,
because such an error would fire (and print the value) only on chosen rows.
  * Allowed as they are: constants of the column's type family (integers,
    exact numerics, floats, strings, booleans, ...), and mixes where
    PostgreSQL casts only the constant or casts the column infallibly:
    an integer column with a numeric or float constant (int -> numeric/float8
    never fails), a float column with an integer or numeric constant, any of
    text/varchar/char with one another, date with timestamp (PostgreSQL's
    cross-type operators compare them without converting, overflow included).
    A plain string literal ('...', no cast) takes the column's type, so only
    its own input function runs, on the constant: it is checked here when
    cheap (an integer, numeric or float column: 22P02 before anything runs);
    the executor's PREPARE of the rewrite catches the rest.  Date and time
    literals are read by PostgreSQL under the worker's pinned DateStyle and
    TimeZone; ISO 8601 with an explicit offset reads the same under any.
  * Re-targeted: a numeric column compared with a float constant (which would
    cast every row to float8 and fail on values beyond its range) is compared
    with CAST(<the float's shortest decimal> AS pg_catalog.numeric) instead;
    infinities and NaN become numeric's own; a float constant outside the
    float type's range is refused (22003), as PostgreSQL would.
  * Refused (42804, hint: compare with a constant of the column's type): other
    mixes, such as numeric with float columns, date or timestamp with
    timestamptz (the conversion depends on TimeZone), a string column with a
    number, or a column of another type (enum, domain, ...) with anything but
    a plain '...' literal or NULL.  Two columns of different types are allowed
    only when the cast between them is infallible, as above.
"""

import copy
from dataclasses import dataclass, field

from ..core.errors import DPError
from .parse import NOT_SUPPORTED, ast, deparse, too_complex  # first: loads pglast with RTLD_DEEPBIND
from . import keyexprs
from pglast.enums import A_Expr_Kind, BoolExprType, JoinType, SetOperation, SortByDir, SortByNulls  # noqa: E402

INVALID = "22023"

COMPARISON_OPERATORS = {"=", "<>", "!=", "<", "<=", ">", ">="}
# Constant casts allowed in WHERE: built-in types whose input functions are trusted, by
# internal name (what the grammar makes of `integer`, `double precision`, `boolean`, ...).
CONSTANT_TYPES = {
    "int2", "int4", "int8", "numeric", "float4", "float8", "text", "varchar", "bpchar",
    "bool", "date", "timestamp", "timestamptz", "time", "interval",
}
# types whose typmods are plain numbers (numeric(10,2), varchar(5), timestamp(3), ...)
TYPMOD_TYPES = {"numeric", "varchar", "bpchar", "timestamp", "timestamptz", "time"}
MAX_WHERE_NODES = 10_000
MAX_DEPTH = 64
MAX_IN_ITEMS = 1_000
PLAIN_AGGREGATES = {
    "count": "count", "sum": "sum", "avg": "avg", "variance": "var", "var_samp": "var",
    "stddev": "stddev", "stddev_samp": "stddev", "var_pop": "var_pop", "stddev_pop": "stddev_pop",
}
# min and max have no DP release here: a DP quantile near 0 or 1 is the documented substitute
MIN_MAX_HINT = ("min and max are not released (one row decides them); ask a DP quantile near the end instead:"
                " percentile_cont(0.01) WITHIN GROUP (ORDER BY col) for min, percentile_cont(0.99) ... for max.")
DP_AGGREGATES = {
    "dp_count": "count", "dp_sum": "sum", "dp_avg": "avg", "dp_var": "var",
    "dp_stddev": "stddev", "dp_quantile": "quantile", "dp_median": "quantile",
}


@dataclass
class Aggregate:
    func: str                      # count, sum, avg, var, stddev, quantile
    column: str | None             # None: count(*)
    lower: float | None = None     # explicit bounds (else the DBA's)
    upper: float | None = None
    q: float | None = None
    epsilon: float | None = None   # explicit epsilon (else a share of the statement's)


@dataclass
class Output:
    name: str
    group_column: str | None = None
    aggregate: Aggregate | None = None


@dataclass
class Query:
    schema: str | None
    table: str
    alias: str | None
    outputs: list[Output]
    group_by: list[str]
    where: object | None           # validated pglast node
    order_by: list[tuple[int, bool]] = field(default_factory=list)  # (output index, descending)
    limit: int | None = None
    normalized: str = ""
    # a join of two tables on their privacy unit: [(schema, table, alias), ...] and the
    # joined columns (qualified "alias.column" or bare); column names are then as written
    tables: list[tuple] = field(default_factory=list)
    join_columns: tuple | None = None
    # GROUP BY expressions (date_trunc, EXTRACT, bins, CASE): group_by holds their canonical text
    key_exprs: dict = field(default_factory=dict)
    alias_keys: set = field(default_factory=set)     # GROUP BY names that were select-list aliases
    schema_refs: set = field(default_factory=set)    # schemas of "s"."t"."col" with FROM t (unqualified)
    # a join of several tables (protected ones and tables the caller may read): the tree of
    # ("table", index into tables) and ("join", "inner"|"left"|"right", left, right, [(col, col), ...])
    join_tree: tuple | None = None

    def columns_used(self) -> set[str]:
        cols = {c for c in self.group_by if c not in self.key_exprs}
        for key in self.key_exprs.values():
            cols.update(key.columns)
            for cond, _ in key.whens:
                cols.update(self.ref_name(r) for r in column_refs(cond))
        cols.update(o.aggregate.column for o in self.outputs if o.aggregate and o.aggregate.column)
        if self.where is not None:
            cols.update(self.ref_name(r) for r in column_refs(self.where))
        return cols

    def ref_name(self, ref) -> str:
        """A WHERE column reference as the select list would name it."""
        names = [f.sval for f in ref.fields]
        return ".".join(names) if (self.join_columns or self.join_tree) and len(names) > 1 else names[-1]


def refuse(what: str, hint: str, sqlstate: str = NOT_SUPPORTED):
    raise DPError(what, hint=hint, sqlstate=sqlstate)


def analyze(stmt: ast.SelectStmt) -> Query:
    try:
        return _analyze(stmt)
    except RecursionError:  # a limit below should come first; this is the backstop
        raise too_complex("its expressions are nested too deeply") from None


def _analyze(stmt: ast.SelectStmt) -> Query:
    if stmt.op != SetOperation.SETOP_NONE:
        refuse("set operations (UNION, INTERSECT, EXCEPT) are not supported",
               "Ask each part as its own query.")
    if stmt.withClause is not None:
        refuse("WITH (common table expressions) is not supported",
               "Write the question as one SELECT over a protected table.")
    if stmt.valuesLists:
        refuse("VALUES lists are not supported", "Query a protected table.")
    if stmt.distinctClause:
        refuse("SELECT DISTINCT is not supported",
               "Use GROUP BY: its keys come from public value sets or DP partition selection.")
    if stmt.intoClause is not None:
        refuse("SELECT INTO is not supported", "Use dp.create_view to keep an answer.")
    if stmt.havingClause is not None:
        refuse("HAVING is not supported", "Filter the noisy answer in an outer query instead.")
    if stmt.windowClause:
        refuse("window functions are not supported", "Use GROUP BY.")
    if stmt.lockingClause:
        refuse("FOR UPDATE/SHARE is not supported", "Remove the locking clause.")

    tables, join_columns, join_tree = _from_clause(stmt.fromClause)
    schema, table, alias = tables[0]
    qualifiers = _Qualifiers()
    for sch, tab, ali in tables:
        qualifiers.add(ali or tab)
        if not ali and sch:
            qualifiers.add(f"{sch}.{tab}")
        elif not ali and len(tables) == 1:
            qualifiers.unqualified_table = tab     # "public"."t"."col" with FROM t: checked in plan
    if len(tables) > 1:
        qualifiers = _JoinQualifiers(qualifiers)
    group_by, key_exprs, alias_keys = _group_by(stmt.groupClause, stmt.targetList, qualifiers)
    outputs = [_output(i, t, group_by, qualifiers) for i, t in enumerate(stmt.targetList or ())]
    if not any(o.aggregate for o in outputs):
        refuse("the query has no aggregate",
               "Ask for aggregates such as count(*) or avg(column); single rows are never released.")
    names = [o.name for o in outputs]
    where = None
    if stmt.whereClause is not None:
        _check_where_size(stmt.whereClause)
        _check_where(stmt.whereClause, qualifiers)
        where = stmt.whereClause
    order_by = _order_by(stmt.sortClause, outputs, names, qualifiers)
    limit = _limit(stmt)
    return Query(schema, table, alias, outputs, group_by, where, order_by, limit, deparse(stmt),
                 tables, join_columns, key_exprs, alias_keys, getattr(qualifiers, "schemas", set()), join_tree)


class _Qualifiers(set):
    """The names a column may be qualified with; schemas: those of "schema"."table"."col" written
    with an unqualified FROM (make_plan checks them against the table's schema)."""
    unqualified_table = None

    def __init__(self, *args):
        super().__init__(*args)
        self.schemas = set()


class _JoinQualifiers(set):
    """Qualifiers of a join: column names keep their qualifier ("alias.column")."""


def _range_var(rv):
    if not isinstance(rv, ast.RangeVar):
        refuse(f"FROM must name protected tables (found {type(rv).__name__})",
               "Sub-queries are not supported: query protected tables.")
    if rv.catalogname:
        refuse("cross-database references are not supported", "Name the table as schema.table.")
    if not rv.inh:
        refuse("ONLY is not supported", "Remove ONLY.")
    if rv.alias is not None and rv.alias.colnames:
        refuse("column aliases in FROM are not supported", "Alias the output columns instead.")
    return rv.schemaname, rv.relname, rv.alias.aliasname if rv.alias is not None else None


def _from_clause(from_clause):
    """[(schema, table, alias)], for a join of two tables on one equality the two joined columns,
    and for a join the tree (Query.join_tree)."""
    if not from_clause:
        refuse("the query has no FROM clause", "Query a protected table.")
    if len(from_clause) != 1:
        refuse("FROM must name one protected table or one JOIN",
               "Join tables with JOIN ... ON a.key = b.key.")
    node = from_clause[0]
    if not isinstance(node, ast.JoinExpr):
        return [_range_var(node)], None, None
    tables = []
    tree = _join_tree(node, tables)
    join_columns = None
    if len(tables) == 2 and tree[1] == "inner" and len(tree[4]) == 1:
        join_columns = tree[4][0]
    return tables, join_columns, tree


JOIN_KINDS = {JoinType.JOIN_INNER: "inner", JoinType.JOIN_LEFT: "left", JoinType.JOIN_RIGHT: "right"}
MAX_JOINED_TABLES = 8


def _join_tree(node, tables):
    if not isinstance(node, ast.JoinExpr):
        tables.append(_range_var(node))
        if len(tables) > MAX_JOINED_TABLES:
            refuse(f"a DP question joins at most {MAX_JOINED_TABLES} tables", "Join fewer tables.")
        return ("table", len(tables) - 1)
    if node.jointype not in JOIN_KINDS or node.isNatural or node.alias is not None:
        refuse("only inner, LEFT and RIGHT joins (JOIN ... ON or USING) are supported",
               "Write t1 JOIN t2 ON t1.key = t2.key; FULL, CROSS and NATURAL joins are refused.")
    left = _join_tree(node.larg, tables)
    right = _join_tree(node.rarg, tables)
    if node.usingClause:
        if left[0] != "table" or right[0] != "table":
            refuse("JOIN USING is supported between two tables only", "Write JOIN ... ON a.key = b.key.")
        l, r = (tables[left[1]][2] or tables[left[1]][1]), (tables[right[1]][2] or tables[right[1]][1])
        conds = [(f"{l}.{c.sval}", f"{r}.{c.sval}") for c in node.usingClause]
    else:
        conds = _join_conditions(node.quals)
    return ("join", JOIN_KINDS[node.jointype], left, right, conds)


def _join_conditions(quals):
    """[(col, col)] of ON a.x = b.y [AND ...]: equalities of qualified columns only."""
    parts = quals.args if isinstance(quals, ast.BoolExpr) and quals.boolop == BoolExprType.AND_EXPR else [quals]
    conds = []
    for q in parts:
        if not (isinstance(q, ast.A_Expr) and q.kind == A_Expr_Kind.AEXPR_OP
                and [n.sval for n in q.name] == ["="]
                and isinstance(q.lexpr, ast.ColumnRef) and isinstance(q.rexpr, ast.ColumnRef)
                and len(q.lexpr.fields) == 2 and len(q.rexpr.fields) == 2
                and all(isinstance(f, ast.String) for f in q.lexpr.fields + q.rexpr.fields)):
            refuse("a JOIN condition must be equalities of qualified columns (a.x = b.y AND ...)",
                   "Join on keys: ON t1.key = t2.key; filter in WHERE.")
        conds.append(tuple(".".join(f.sval for f in c.fields) for c in (q.lexpr, q.rexpr)))
    return conds


def _column_name(node, qualifiers, where: str) -> str:
    """The column a ColumnRef names (optionally qualified by the table or its alias)."""
    if not isinstance(node, ast.ColumnRef):
        refuse(f"{where} must be a column, not {_describe(node)}", "Use a plain column name.")
    fields = node.fields
    if any(not isinstance(f, ast.String) for f in fields):
        refuse(f"{where}: * is not supported here", "Name the column.")
    names = [f.sval for f in fields]
    if len(names) == 1:
        return names[0]
    qualifier = ".".join(names[:-1])
    table = getattr(qualifiers, "unqualified_table", None)
    if qualifier not in qualifiers and table and len(names) == 3 and names[1] == table:
        qualifiers.schemas.add(names[0])
        return names[-1]
    if qualifier not in qualifiers:
        refuse(f"{where}: unknown table reference {qualifier!r}", "Qualify columns with the table's name or alias.")
    if isinstance(qualifiers, _JoinQualifiers):
        return f"{qualifier}.{names[-1]}"
    return names[-1]


def _describe(node) -> str:
    try:
        return repr(deparse(node))
    except Exception:  # pragma: no cover - deparse covers every node the parser makes
        return type(node).__name__


def _group_by(group_clause, targets, qualifiers):
    """(key names, {name: KeyExpr} of the expression keys, names that were aliases).

    A key is a column, a position in the select list (GROUP BY 1), a select-list
    alias of an expression, or one of the expressions of keys.py, written out."""
    columns, exprs, aliases = [], {}, set()
    targets = list(targets or ())
    by_alias = {t.name: t.val for t in targets
                if t.name and not (isinstance(t.val, ast.FuncCall) and _is_aggregate_call(t.val))}

    def check_condition(node):
        _check_where_size(node)
        _check_where(node, qualifiers)

    for node in group_clause or ():
        if isinstance(node, ast.A_Const) and isinstance(node.val, ast.Integer):
            pos = node.val.ival
            if not 1 <= pos <= len(targets):
                refuse(f"GROUP BY position {pos} is not in the select list", "Use a column name.")
            node = targets[pos - 1].val
            if isinstance(node, ast.FuncCall) and _is_aggregate_call(node):
                refuse(f"GROUP BY position {pos} is an aggregate", "Group by a key column or expression.")
        elif isinstance(node, ast.ColumnRef) and len(node.fields) == 1 and isinstance(node.fields[0], ast.String) \
                and node.fields[0].sval in by_alias:
            name, node = node.fields[0].sval, by_alias[node.fields[0].sval]
            if not (isinstance(node, ast.ColumnRef) and isinstance(node.fields[-1], ast.String)
                    and node.fields[-1].sval == name):      # SELECT city AS city ... GROUP BY city: the column
                aliases.add(name)
        if isinstance(node, (ast.GroupingSet,)):
            refuse("GROUPING SETS, ROLLUP and CUBE are not supported", "Ask one grouping at a time.")
        if isinstance(node, ast.ColumnRef):
            columns.append(_column_name(node, qualifiers, "a GROUP BY key"))
            continue
        key = keyexprs.parse_key(node, lambda n, what: _column_name(n, qualifiers, what), check_condition,
                                 lambda n: canonical_text(n, qualifiers))
        exprs[key.text] = key
        columns.append(key.text)
    if len(set(columns)) != len(columns):
        refuse("a GROUP BY key is repeated", "Name each key once.")
    return columns, exprs, aliases


def canonical_text(node, qualifiers) -> str:
    """An expression's identity: its SQL with every column written as the select list names it, so
    date_trunc('month', "public"."t"."d") in the select list and date_trunc('month', d) in
    GROUP BY are one key, as they are for PostgreSQL."""
    node = copy.deepcopy(node)
    for ref in column_refs(node):
        if all(isinstance(f, ast.String) for f in ref.fields):
            ref.fields = (ast.String(sval=_column_name(ref, qualifiers, "a column")),)
    return deparse(node)


def _is_aggregate_call(node: ast.FuncCall) -> bool:
    names = [n.sval for n in node.funcname]
    name = names[-1] if len(names) == 1 or names[0] in ("dp", "pg_catalog") else ""
    return name in PLAIN_AGGREGATES or name in DP_AGGREGATES or name in (
        "percentile_cont", "percentile_disc", "min", "max") or node.agg_star or bool(node.agg_within_group)


def _output(index, target, group_by, qualifiers) -> Output:
    node = target.val
    if isinstance(node, ast.ColumnRef):
        column = _column_name(node, qualifiers, "a selected column")
        if column not in group_by:
            refuse(f"column {column!r} must appear in GROUP BY",
                   "Only GROUP BY keys and aggregates can be selected.")
        return Output(target.name or column.rsplit(".", 1)[-1], group_column=column)
    if isinstance(node, ast.FuncCall) and _is_aggregate_call(node):
        aggregate, default_name = _aggregate(node, qualifiers)
        return Output(target.name or default_name, aggregate=aggregate)
    if isinstance(node, (ast.FuncCall, ast.TypeCast, ast.A_Expr, ast.CaseExpr, ast.CoalesceExpr)):
        text = canonical_text(node, qualifiers)
        if text in group_by:
            return Output(target.name or _default_name(node), group_column=text)
        if isinstance(node, ast.FuncCall):
            aggregate, default_name = _aggregate(node, qualifiers)     # refuses with its reason
            return Output(target.name or default_name, aggregate=aggregate)
        refuse(f"select-list item {index + 1} ({_describe(node)}) must appear in GROUP BY",
               "Group by the same expression (GROUP BY 1 or its alias), or select aggregates of it.")
    refuse(f"select-list item {index + 1} ({_describe(node)}) is not supported",
           "Select GROUP BY columns and aggregates such as count(*), sum(x), avg(x), dp_median(x, lo, hi).")


def _default_name(node) -> str:
    """The column name PostgreSQL gives an expression (FigureColname, for the key shapes)."""
    if isinstance(node, ast.TypeCast):
        return _default_name(node.arg) if not isinstance(node.arg, ast.A_Const) else node.typeName.names[-1].sval
    if isinstance(node, ast.FuncCall):
        return node.funcname[-1].sval
    if isinstance(node, ast.CaseExpr):
        return "case"
    if isinstance(node, ast.ColumnRef) and isinstance(node.fields[-1], ast.String):
        return node.fields[-1].sval
    return "?column?"


def _function_name(node: ast.FuncCall) -> str:
    names = [n.sval for n in node.funcname]
    if len(names) == 2 and names[0] in ("dp", "pg_catalog"):
        return names[1]
    if len(names) != 1:
        refuse(f"function {'.'.join(names)} is not supported", "Use the aggregates pg_dp knows, unqualified.")
    return names[0]


def _constant(node, what: str) -> float:
    """A numeric literal (possibly negative or cast), as a float."""
    value = node
    if isinstance(value, ast.TypeCast):
        value = value.arg
    negate = False
    if isinstance(value, ast.A_Expr) and value.kind == A_Expr_Kind.AEXPR_OP \
            and value.lexpr is None and [n.sval for n in value.name] == ["-"]:
        negate, value = True, value.rexpr
    if isinstance(value, ast.A_Const) and not value.isnull:
        v = value.val
        if isinstance(v, ast.Integer):
            number = float(v.ival)
        elif isinstance(v, ast.Float):
            number = float(v.fval)
        elif isinstance(v, ast.String):
            try:
                number = float(v.sval)
            except ValueError:
                refuse(f"{what} must be a number, not {v.sval!r}", "Write a numeric literal.", INVALID)
        else:
            refuse(f"{what} must be a number", "Write a numeric literal.", INVALID)
        return -number if negate else number
    refuse(f"{what} must be a numeric literal, not {_describe(node)}",
           "Privacy parameters must be constants.", INVALID)


def _aggregate(node: ast.FuncCall, qualifiers):
    name = _function_name(node)
    if node.over is not None:
        refuse(f"{name} cannot be used as a window function", "Use GROUP BY.")
    if name in ("min", "max"):
        refuse(f"{name} is not supported in a DP query", MIN_MAX_HINT)
    if node.agg_distinct:
        if name == "count" and len(node.args or ()) == 1 and node.agg_filter is None and node.over is None:
            column = _column_name(node.args[0], qualifiers, "the argument of count(DISTINCT ...)")
            return Aggregate("count_distinct", column), name     # plan checks: the privacy unit only
        refuse(f"{name}(DISTINCT ...) is not supported",
               "count(DISTINCT <privacy unit>) counts units; count other distinct values with GROUP BY"
               " and count over the groups.")
    if node.agg_filter is not None:
        refuse(f"FILTER on {name} is not supported", "Move the condition to WHERE.")
    if node.agg_order and not node.agg_within_group:
        refuse(f"ORDER BY inside {name} is not supported", "Remove it.")
    args = list(node.args or ())

    if name in ("percentile_cont", "percentile_disc"):
        if not node.agg_within_group or len(args) != 1 or len(node.agg_order or ()) != 1:
            refuse(f"{name} needs one fraction and WITHIN GROUP (ORDER BY column)",
                   "e.g. percentile_cont(0.5) WITHIN GROUP (ORDER BY income)")
        q = _constant(args[0], f"the fraction of {name}")
        column = _column_name(node.agg_order[0].node, qualifiers, f"the argument of {name}")
        return Aggregate("quantile", column, q=q), name
    if node.agg_within_group:
        refuse(f"{name} WITHIN GROUP is not supported", "Use percentile_cont or dp_quantile.")

    if name in PLAIN_AGGREGATES:
        func = PLAIN_AGGREGATES[name]
        if node.agg_star:
            if func != "count":
                refuse(f"{name}(*) is not valid", "Name a column.")
            return Aggregate("count", None), name
        if len(args) != 1:
            refuse(f"{name} takes one column", f"Write {name}(column).")
        arg = args[0]
        if isinstance(arg, ast.A_Const) and isinstance(arg.val, ast.Integer) and (
                func == "count" or (func == "sum" and arg.val.ival == 1)):
            return Aggregate("count", None), name       # COUNT(1), SUM(1) (Tableau): count(*)
        column = _column_name(_measure_column(arg), qualifiers, f"the argument of {name}")
        return Aggregate(func, column), name

    if name in DP_AGGREGATES:
        func = DP_AGGREGATES[name]
        if node.agg_star:
            if name != "dp_count":
                refuse(f"{name}(*) is not valid", "Name a column.")
            return Aggregate("count", None), name
        if not args:
            refuse(f"{name} needs arguments", "See \\da dp.*")
        column = _column_name(args[0], qualifiers, f"the first argument of {name}")
        rest = args[1:]
        if func == "count":
            if len(rest) > 1:
                refuse("dp_count takes (column) or (column, epsilon)", "e.g. dp_count(id, 0.5)")
            eps = _constant(rest[0], "epsilon of dp_count") if rest else None
            return Aggregate("count", column, epsilon=eps), name
        if name == "dp_quantile":
            if len(rest) not in (1, 3, 4):
                refuse("dp_quantile takes (column, q [, lower, upper [, epsilon]])",
                       "e.g. dp_quantile(income, 0.9, 0, 100000)")
            q = _constant(rest[0], "the quantile of dp_quantile")
            rest = rest[1:]
        else:
            q = 0.5 if func == "quantile" else None
            if len(rest) not in (0, 2, 3):
                refuse(f"{name} takes (column [, lower, upper [, epsilon]])", f"e.g. {name}(age, 0, 100)")
        lower = _constant(rest[0], f"the lower bound of {name}") if len(rest) >= 2 else None
        upper = _constant(rest[1], f"the upper bound of {name}") if len(rest) >= 2 else None
        eps = _constant(rest[2], f"epsilon of {name}") if len(rest) == 3 else None
        return Aggregate(func, column, lower, upper, q, eps), name

    refuse(f"function {name} is not supported in a DP query",
           "Use count, sum, avg, variance, stddev, percentile_cont or the dp_* aggregates.")


NUMBER_CASTS = {"int2", "int4", "int8", "numeric", "float4", "float8"}


def _measure_column(node):
    """The column of CAST(col AS <number type>) (Tableau's SUM(CAST(x AS BIGINT))), else node.

    The cast itself is never run: the rewrite clamps the column into its bounds and computes
    exactly, so a cast that could fail on a row (numeric to float8) cannot fail; the answer has
    the statement's own type (the plain-SQL hook casts it)."""
    if isinstance(node, ast.TypeCast) and isinstance(node.arg, ast.ColumnRef):
        names = [n.sval for n in node.typeName.names]
        if names[-1] in NUMBER_CASTS and names[:-1] in ([], ["pg_catalog"]) and not node.typeName.arrayBounds:
            return node.arg
    return node


def _check_where_size(node):
    """Refuse a WHERE over the node, depth or IN-list limits, visiting at most MAX_WHERE_NODES nodes."""
    count, stack = 0, [(node, 1)]
    while stack:
        n, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise too_complex(f"WHERE is nested more than {MAX_DEPTH} deep")
        if isinstance(n, ast.A_Expr) and n.kind == A_Expr_Kind.AEXPR_IN \
                and isinstance(n.rexpr, (tuple, list)) and len(n.rexpr) > MAX_IN_ITEMS:
            raise too_complex(f"an IN list has {len(n.rexpr)} items, more than {MAX_IN_ITEMS}")
        count += 1
        if count > MAX_WHERE_NODES:
            raise too_complex(f"WHERE has more than {MAX_WHERE_NODES} parts")
        for slot in n:
            v = getattr(n, slot)
            items = v if isinstance(v, (tuple, list)) else (v,)
            if len(items) > MAX_WHERE_NODES:
                raise too_complex(f"WHERE has more than {MAX_WHERE_NODES} parts")
            stack.extend((x, depth + 1) for x in items if isinstance(x, ast.Node))


def _check_where(node, qualifiers, depth=0):
    """Allow only predicates that cannot raise an error on any row."""
    if depth > MAX_DEPTH:  # _check_where_size came first; this keeps the recursion bounded anyway
        raise too_complex(f"WHERE is nested more than {MAX_DEPTH} deep")
    if isinstance(node, ast.BoolExpr):
        for arg in node.args:
            _check_where(arg, qualifiers, depth + 1)
        return
    if isinstance(node, ast.NullTest):
        _check_operand(node.arg, qualifiers, allow_const=False)
        return
    if isinstance(node, ast.BooleanTest):
        _check_operand(node.arg, qualifiers, allow_const=False)
        return
    if isinstance(node, ast.ColumnRef):
        _column_name(node, qualifiers, "a WHERE condition")
        return
    if isinstance(node, ast.A_Expr):
        kind = node.kind
        ops = [n.sval for n in node.name]
        if kind == A_Expr_Kind.AEXPR_OP:
            if len(ops) != 1 or ops[0] not in COMPARISON_OPERATORS or node.lexpr is None:
                refuse(f"operator {'.'.join(ops)} is not allowed in WHERE",
                       "WHERE may compare columns and constants with = <> < <= > >=, IN, BETWEEN, IS NULL;"
                       " arithmetic is refused because it can fail on a chosen row.")
            _check_operand(node.lexpr, qualifiers)
            _check_operand(node.rexpr, qualifiers)
            return
        if kind == A_Expr_Kind.AEXPR_IN:
            _check_operand(node.lexpr, qualifiers)
            for item in node.rexpr:
                _check_operand(item, qualifiers)
            return
        if kind in (A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_NOT_BETWEEN):
            _check_operand(node.lexpr, qualifiers)
            for item in node.rexpr:
                _check_operand(item, qualifiers)
            return
        if kind == A_Expr_Kind.AEXPR_DISTINCT or kind == A_Expr_Kind.AEXPR_NOT_DISTINCT:
            _check_operand(node.lexpr, qualifiers)
            _check_operand(node.rexpr, qualifiers)
            return
        if kind in (A_Expr_Kind.AEXPR_LIKE, A_Expr_Kind.AEXPR_ILIKE):
            _check_operand(node.lexpr, qualifiers, allow_const=False)
            if not (isinstance(node.rexpr, ast.A_Const) and isinstance(node.rexpr.val, ast.String)):
                refuse(f"the pattern of {_describe(node)} must be a string constant",
                       "e.g. name LIKE 'A%'; ESCAPE clauses and patterns from columns are refused.")
            check_like_pattern(node.rexpr.val.sval)
            return
    refuse(f"this WHERE condition is not allowed: {_describe(node)}",
           "WHERE may compare columns and constants with = <> < <= > >=, IN, BETWEEN, IS [NOT] NULL,"
           " IS [NOT] TRUE/FALSE, [I]LIKE 'pattern', AND, OR, NOT.")


def check_like_pattern(pattern: str):
    """PostgreSQL raises on a pattern that ends in its escape character -- only when a row is
    matched far enough, so on chosen rows: refused here, before anything runs."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            if i + 1 == len(pattern):
                refuse("LIKE pattern must not end with escape character",
                       "Double the final backslash to match a backslash.", "22025")
            i += 1
        i += 1


# functions of a column allowed as WHERE operands: they cannot fail on any value of their type
COLUMN_FUNCTIONS = {"lower", "upper"}
# functions of constants allowed as WHERE constants (Superset's TO_TIMESTAMP); evaluated
# before the charge (gateway) because they are STABLE: PostgreSQL evaluates them at run time
CONSTANT_FUNCTIONS = {"to_timestamp", "to_date"}


def function_operand(node):
    """(name, args) of lower(col)/upper(col)/COALESCE(col, constant), or None."""
    if isinstance(node, ast.CoalesceExpr):
        return "coalesce", list(node.args)
    if isinstance(node, ast.FuncCall) and not (node.agg_star or node.agg_distinct or node.over is not None
                                                or node.agg_filter is not None or node.agg_order):
        names = [n.sval for n in node.funcname]
        if len(names) == 1 or (len(names) == 2 and names[0] == "pg_catalog"):
            return names[-1], list(node.args or ())
    return None


def _check_operand(node, qualifiers, allow_const=True):
    if isinstance(node, ast.ColumnRef):
        _column_name(node, qualifiers, "a WHERE operand")
        return
    if allow_const and isinstance(node, ast.A_Const):
        return
    if allow_const and isinstance(node, ast.TypeCast) and isinstance(node.arg, ast.A_Const):
        constant_type(node.typeName)
        return
    if isinstance(node, ast.TypeCast) and isinstance(node.arg, ast.ColumnRef) \
            and [n.sval for n in node.typeName.names] in (["date"], ["pg_catalog", "date"]) \
            and not node.typeName.typmods and not node.typeName.arrayBounds:
        _column_name(node.arg, qualifiers, "the argument of CAST")     # Tableau: CAST(col AS DATE)
        return
    call = function_operand(node)
    if call is not None:
        name, args = call
        if name in COLUMN_FUNCTIONS and len(args) == 1 and isinstance(args[0], ast.ColumnRef):
            _column_name(args[0], qualifiers, f"the argument of {name}")
            return
        if name == "coalesce" and len(args) == 2 and isinstance(args[0], ast.ColumnRef):
            _column_name(args[0], qualifiers, "the argument of COALESCE")
            const = args[1]
            if isinstance(const, ast.TypeCast) and isinstance(const.arg, ast.A_Const):
                constant_type(const.typeName)
            elif not (isinstance(const, ast.A_Const) and not const.isnull):
                refuse(f"{_describe(node)}: the second argument of COALESCE must be a constant",
                       "e.g. COALESCE(city, 'unknown')")
            return
        if allow_const and name in CONSTANT_FUNCTIONS and len(args) == 2 and all(
                isinstance(a, ast.A_Const) and isinstance(a.val, ast.String) for a in args):
            return
    refuse(f"{_describe(node)} is not allowed in WHERE",
           "Compare plain columns with constants; functions, casts of columns, arithmetic and"
           " sub-queries can fail on a chosen row and are refused.")


def constant_type(type_name) -> tuple[str, tuple[int, ...]]:
    """(internal name, typmods) of a constant's cast, if the type is an allowed built-in one.

    Matched on the parsed names, exactly: pg_catalog.X or a bare X, X in CONSTANT_TYPES.
    """
    names = [n.sval if isinstance(n, ast.String) else None for n in type_name.names]
    shown = ".".join(str(n) for n in names)
    if not ((len(names) == 1 or (len(names) == 2 and names[0] == "pg_catalog"))
            and names[-1] in CONSTANT_TYPES):
        refuse(f"cast to {shown} is not allowed in WHERE",
               "Cast constants only to built-in types, unquoted (integer, numeric, double precision, text,"
               " date, timestamp, ...) or as pg_catalog.<name>; other schemas' types are refused.")
    if type_name.arrayBounds or type_name.setof or type_name.pct_type:
        refuse(f"cast to {shown}[] (or SETOF, %TYPE) is not allowed in WHERE", "Cast constants to scalar types.")
    typmods = []
    for m in type_name.typmods or ():
        if names[-1] not in TYPMOD_TYPES or not (isinstance(m, ast.A_Const) and isinstance(m.val, ast.Integer)):
            refuse(f"the type modifier of {shown} is not allowed in WHERE",
                   "Write the type without a modifier, e.g. interval instead of interval hour.")
        typmods.append(m.val.ival)
    return names[-1], tuple(typmods)


def column_refs(node):
    """Every ColumnRef node below `node` (an explicit stack: no recursion)."""
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.ColumnRef):
            out.append(n)
        elif isinstance(n, ast.Node):
            for slot in n:
                v = getattr(n, slot)
                if isinstance(v, (tuple, list)):
                    stack.extend(v)
                else:
                    stack.append(v)
    return out


def _order_by(sort_clause, outputs, names, qualifiers):
    order = []
    for sort in sort_clause or ():
        node = sort.node
        desc = sort.sortby_dir == SortByDir.SORTBY_DESC
        if sort.sortby_nulls != SortByNulls.SORTBY_NULLS_DEFAULT or sort.useOp:
            refuse("NULLS FIRST/LAST and USING are not supported in ORDER BY", "Use ASC or DESC.")
        if isinstance(node, ast.A_Const) and isinstance(node.val, ast.Integer):
            pos = node.val.ival
            if not 1 <= pos <= len(outputs):
                refuse(f"ORDER BY position {pos} is not in the select list", "Use an output column.")
            order.append((pos - 1, desc))
            continue
        if isinstance(node, ast.ColumnRef) and len(node.fields) == 1 and isinstance(node.fields[0], ast.String):
            name = node.fields[0].sval
            if name in names:
                order.append((names.index(name), desc))
                continue
            matches = [i for i, o in enumerate(outputs) if o.group_column == name]
            if matches:
                order.append((matches[0], desc))
                continue
        if isinstance(node, ast.ColumnRef) and len(node.fields) > 1:   # "public"."t"."city" (Metabase)
            name = _column_name(node, qualifiers, "an ORDER BY column")
            matches = [i for i, o in enumerate(outputs) if o.group_column == name]
            if matches:
                order.append((matches[0], desc))
                continue
        if not isinstance(node, ast.A_Const):
            text = canonical_text(node, qualifiers)
            matches = [i for i, o in enumerate(outputs) if o.group_column == text]
            if matches:         # ORDER BY date_trunc('month', col), as Metabase writes it
                order.append((matches[0], desc))
                continue
        refuse(f"ORDER BY {_describe(node)} is not supported",
               "Order by an output column's name or position; ordering applies to the noisy answer.")
    return order


def _limit(stmt):
    if stmt.limitOffset is not None:
        refuse("OFFSET is not supported", "Use ORDER BY and LIMIT on the answer.")
    if stmt.limitCount is None:
        return None
    node = stmt.limitCount
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.Integer) and node.val.ival >= 0:
        return node.val.ival
    if isinstance(node, ast.A_Const) and node.isnull:
        return None
    refuse("LIMIT must be a non-negative integer literal", "e.g. LIMIT 10")
