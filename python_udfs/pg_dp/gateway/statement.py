"""A statement as a tree: DP measurements at the leaves, ordinary SQL above them.

The plain-SQL hook (src/sql_hook/hook.c) sends every statement that reads a protected table the role may
not read here, before anything runs.  `split` walks PostgreSQL's own parse tree (pglast) and
returns

* the measurements: each SELECT level that aggregates protected rows becomes one DP question,
  its *core* -- `SELECT <keys> AS dp_k1.., <aggregates> AS dp_a1.. FROM <tables> WHERE <filter>
  GROUP BY <keys>` -- with every row-level sub-select and CTE it reads through inlined
  (`FROM (SELECT * FROM t WHERE ...) AS virtual_table`, Power BI's nesting, Malloy's stages),
  every table schema-qualified and every column qualified by its table's alias;
* the outer statement: the analyst's statement with each measurement level replaced by
  `SELECT <its select list over dp_m.*> FROM (<marker>) AS dp_m WHERE <HAVING> ORDER BY ...`:
  HAVING, arithmetic over aggregates, window functions, DISTINCT, ORDER BY, LIMIT, CTEs,
  joins of released sub-results -- everything above the measurements -- stay SQL, which the
  caller's backend evaluates, with the caller's rights, over the released rows only;
* row-level reads that no aggregate is above (a BI tool's preview) read the table's DP
  synthetic copy instead, if the caller may read one.

A sub-select whose rows are released (a measurement) joined inside another measurement on that
measurement's group keys (Superset's series limit: `FROM t JOIN (SELECT k, sum(x) ... LIMIT 5)
AS series_limit ON k = k__`) is lifted above it: filtering on group keys commutes with grouping.
Anything else that would read protected rows in a place this model does not answer is refused
with a hint, before anything is charged.

The module only rewrites trees; the catalog (which names are tables, which are protected and
closed to the caller, their columns, which functions are aggregates, which synthetic copy a
role reads) comes from a `catalog` object (gateway/relations.py in the executor).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field

from ..core.errors import DPError
from .parse import NOT_SUPPORTED, ast, deparse, too_complex
from pglast.enums import JoinType, LimitOption, SetOperation, SubLinkType  # noqa: E402

PRIVILEGE = "42501"
GROUPING = "42803"
UNDEFINED_COLUMN = "42703"
AMBIGUOUS_COLUMN = "42702"
UNDEFINED_TABLE = "42P01"
MAX_LEVELS = 64
MAX_MEASUREMENTS = 32

# the ANSI/SQL functions whose raw parse tree is a FuncCall but that are not aggregates
_NOT_AGGREGATES = {"coalesce", "nullif", "greatest", "least"}


def refuse(what: str, hint: str, sqlstate: str = NOT_SUPPORTED):
    raise DPError(what, hint=hint, sqlstate=sqlstate)


@dataclass
class Measurement:
    core: ast.SelectStmt
    marker: str
    sql: str = ""
    names: dict = field(default_factory=dict)     # core column -> the analyst's name for it, where one is


@dataclass
class Split:
    outer: ast.SelectStmt
    measurements: list = field(default_factory=list)
    copies: list = field(default_factory=list)       # [(protected relation, copy relation)]
    sql: str = ""


def unwrap(stmt):
    """The SELECT of a statement: itself, PREPARE ... AS <it>, DECLARE ... CURSOR FOR <it>."""
    if isinstance(stmt, ast.PrepareStmt):
        stmt = stmt.query
    elif isinstance(stmt, ast.DeclareCursorStmt):
        stmt = stmt.query
    if not isinstance(stmt, ast.SelectStmt):
        refuse(f"only SELECT statements can be answered, not {type(stmt).__name__}",
               "The gateway answers aggregate SELECT queries over protected tables.")
    return stmt


def split(stmt: ast.SelectStmt, catalog, nonce: str | None = None) -> Split:
    """The measurements and the outer statement of a SELECT (see the module docstring)."""
    d = _Decomposer(catalog, nonce or os.urandom(8).hex())
    try:
        outer = d.process(stmt, {}, 0)
        if d.reaches_closed(outer, {}):
            rel = d.first_closed(outer, {})
            refuse(f"permission denied for table {rel.name}: the protected table is read where no DP "
                   "measurement answers it",
                   "Aggregate it (count, sum, avg, ... GROUP BY keys) in a SELECT of its own, a sub-select in "
                   "FROM or a CTE; it cannot be read row by row in a sub-query of WHERE or a function's "
                   "arguments.", PRIVILEGE)
    except RecursionError:
        raise too_complex("its sub-selects are nested too deeply") from None
    result = Split(outer, d.measurements, d.copies)
    for m in d.measurements:
        m.sql = deparse(m.core)
    result.sql = deparse(outer)
    return result


# ---------------------------------------------------------------------------------------------
# small tree helpers

def _walk(node, visit, into_sublinks=False):
    """Call visit(n) for every node below `node` (pre-order); visit returns False to skip the
    children.  Sub-selects of SubLinks are entered only with into_sublinks."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (list, tuple)):
            stack.extend(n)
            continue
        if not isinstance(n, ast.Node):
            continue
        if visit(n) is False:
            continue
        for slot in n:
            if isinstance(n, ast.SubLink) and slot == "subselect" and not into_sublinks:
                continue
            v = getattr(n, slot)
            if isinstance(v, (ast.Node, list, tuple)):
                stack.append(v)


class _Replace:
    """Rebuild an expression tree, replacing the nodes f maps to something else (not None)."""

    def __init__(self, f):
        self.f = f

    def __call__(self, node, depth=0):
        if depth > 500:
            raise too_complex("its expressions are nested too deeply")
        if isinstance(node, (list, tuple)):
            return tuple(self(n, depth + 1) for n in node)
        if not isinstance(node, ast.Node):
            return node
        new = self.f(node)
        if new is not None:
            return new
        for slot in node:
            if isinstance(node, ast.SubLink) and slot == "subselect":
                continue
            v = getattr(node, slot)
            if isinstance(v, (ast.Node, list, tuple)):
                setattr(node, slot, self(v, depth + 1))
        return node


def _colref(*names) -> ast.ColumnRef:
    return ast.ColumnRef(fields=tuple(ast.String(sval=n) for n in names))


def _ref_names(ref: ast.ColumnRef):
    """The names of a column reference, or None for `*` forms."""
    if any(not isinstance(f, ast.String) for f in ref.fields):
        return None
    return [f.sval for f in ref.fields]


def figure_colname(node) -> str:
    """The name PostgreSQL gives a select-list item without AS (FigureColname)."""
    name, _ = _figure(node)
    return name


def _figure(node):
    if isinstance(node, ast.ColumnRef):
        names = _ref_names(node)
        return (names[-1], 2) if names else ("?column?", 0)
    if isinstance(node, ast.A_Indirection):
        for ind in reversed(node.indirection or ()):
            if isinstance(ind, ast.String):
                return ind.sval, 2
        return _figure(node.arg)
    if isinstance(node, ast.FuncCall):
        return node.funcname[-1].sval, 2
    if isinstance(node, ast.A_Expr):
        from pglast.enums import A_Expr_Kind
        if node.kind == A_Expr_Kind.AEXPR_NULLIF:
            return "nullif", 2
        return "?column?", 0
    if isinstance(node, ast.TypeCast):
        name, strength = _figure(node.arg)
        if strength <= 1 and node.typeName is not None:
            return node.typeName.names[-1].sval, 1
        return name, strength
    if isinstance(node, ast.CollateClause):
        return _figure(node.arg)
    if isinstance(node, ast.GroupingFunc):
        return "grouping", 2
    if isinstance(node, ast.SubLink):
        if node.subLinkType == SubLinkType.EXISTS_SUBLINK:
            return "exists", 2
        if node.subLinkType == SubLinkType.ARRAY_SUBLINK:
            return "array", 2
        if node.subLinkType in (SubLinkType.EXPR_SUBLINK, SubLinkType.MULTIEXPR_SUBLINK):
            sub = node.subselect
            if isinstance(sub, ast.SelectStmt) and sub.targetList:
                t = sub.targetList[0]
                if t.name:
                    return t.name, 2
        return "?column?", 0
    if isinstance(node, ast.CaseExpr):
        name, strength = _figure(node.defresult) if node.defresult is not None else ("?column?", 0)
        return (name, strength) if strength > 1 else ("case", 1)
    if isinstance(node, ast.A_ArrayExpr):
        return "array", 2
    if isinstance(node, ast.RowExpr):
        return "row", 2
    if isinstance(node, ast.CoalesceExpr):
        return "coalesce", 2
    if isinstance(node, ast.MinMaxExpr):
        from pglast.enums import MinMaxOp
        return ("greatest" if node.op == MinMaxOp.IS_GREATEST else "least"), 2
    if isinstance(node, ast.SQLValueFunction):
        from pglast.enums import SQLValueFunctionOp as op
        names = {op.SVFOP_CURRENT_DATE: "current_date", op.SVFOP_CURRENT_TIME: "current_time",
                 op.SVFOP_CURRENT_TIME_N: "current_time", op.SVFOP_CURRENT_TIMESTAMP: "current_timestamp",
                 op.SVFOP_CURRENT_TIMESTAMP_N: "current_timestamp", op.SVFOP_LOCALTIME: "localtime",
                 op.SVFOP_LOCALTIME_N: "localtime", op.SVFOP_LOCALTIMESTAMP: "localtimestamp",
                 op.SVFOP_LOCALTIMESTAMP_N: "localtimestamp", op.SVFOP_CURRENT_ROLE: "current_role",
                 op.SVFOP_CURRENT_USER: "current_user", op.SVFOP_USER: "user",
                 op.SVFOP_SESSION_USER: "session_user", op.SVFOP_CURRENT_CATALOG: "current_catalog",
                 op.SVFOP_CURRENT_SCHEMA: "current_schema"}
        return names.get(node.op, "?column?"), 2
    if isinstance(node, ast.BooleanTest) or isinstance(node, ast.NullTest):
        return "?column?", 0
    return "?column?", 0


# ---------------------------------------------------------------------------------------------
# scopes: what the names of one SELECT level's FROM mean


@dataclass
class _Item:
    """One table or released sub-result of a measurement's FROM: its alias and columns."""
    alias: str
    columns: list
    relation: object = None       # a catalog relation (tables), None for a lifted sub-result
    exprs: dict | None = None     # an inlined sub-select: output name -> its expression
    hidden: bool = False          # a table inside an inlined sub-select: not visible by name here


class _Scope:
    def __init__(self):
        self.items: list[_Item] = []

    def names(self):
        return {i.alias for i in self.items}

    def add(self, item: _Item):
        self.items.append(item)


# ---------------------------------------------------------------------------------------------


class _Decomposer:
    def __init__(self, catalog, nonce):
        self.catalog = catalog
        self.nonce = nonce
        self.measurements: list[Measurement] = []
        self.copies: list = []
        self._aliases = 0

    # -- what reads what ----------------------------------------------------------------------

    def _lookup(self, rv: ast.RangeVar, env):
        """('cte', CommonTableExpr) or ('rel', relation) for a RangeVar in FROM."""
        if rv.schemaname is None and rv.catalogname is None and rv.relname in env:
            return "cte", env[rv.relname]
        if rv.catalogname:
            refuse("cross-database references are not supported", "Name the table as schema.table.")
        rel = self.catalog.relation(rv.schemaname, rv.relname)
        if rel is None:
            name = f"{rv.schemaname}.{rv.relname}" if rv.schemaname else rv.relname
            refuse(f"relation \"{name}\" does not exist", "Check the name and your search_path.", UNDEFINED_TABLE)
        return "rel", rel

    def _closed_in(self, node, env, found, seen_ctes):
        """Append the closed protected relations read anywhere below `node` to found."""
        def visit(n):
            if isinstance(n, ast.SelectStmt):
                inner = dict(env)
                if n.withClause is not None:
                    for cte in n.withClause.ctes:
                        inner[cte.ctename] = cte
                for slot in n:
                    v = getattr(n, slot)
                    if slot == "withClause" and v is not None:
                        for cte in v.ctes:
                            if id(cte) not in seen_ctes:
                                seen_ctes.add(id(cte))
                                self._closed_in(cte.ctequery, inner, found, seen_ctes)
                    elif isinstance(v, (ast.Node, list, tuple)):
                        self._closed_in(v, inner, found, seen_ctes)
                return False
            if isinstance(n, ast.RangeVar):
                kind, what = self._lookup(n, env)
                if kind == "cte":
                    if id(what) not in seen_ctes:
                        seen_ctes.add(id(what))
                        self._closed_in(what.ctequery, env, found, seen_ctes)
                elif what.closed and all(c[0].oid != what.oid for c in self.copies):
                    found.append(what)
                return False
            if isinstance(n, ast.RangeSubselect) and self._is_marker(n.subquery):
                return False
            return None

        _walk(node, visit, into_sublinks=True)

    def reaches_closed(self, node, env) -> bool:
        found = []
        self._closed_in(node, env, found, set())
        return bool(found)

    def first_closed(self, node, env):
        found = []
        self._closed_in(node, env, found, set())
        return found[0]

    def _is_marker(self, sub) -> bool:
        """The stand-in of a measurement in the outer statement: (SELECT 'dpm_<nonce>_<n>')."""
        if not (isinstance(sub, ast.SelectStmt) and sub.fromClause is None and sub.targetList
                and len(sub.targetList) == 1):
            return False
        v = sub.targetList[0].val
        return isinstance(v, ast.A_Const) and isinstance(v.val, ast.String) \
            and v.val.sval.startswith(f"dpm_{self.nonce}_")

    def aggregates_here(self, s: ast.SelectStmt) -> bool:
        """Whether the level aggregates: GROUP BY, HAVING, or an aggregate in its select list,
        HAVING or ORDER BY (not in sub-selects, not window functions)."""
        if s.groupClause or s.havingClause is not None or s.distinctClause == (None,):
            return True         # SELECT DISTINCT is a GROUP BY of its select list
        return bool(self._aggregate_calls([s.targetList, s.sortClause]))

    def _is_aggregate(self, call: ast.FuncCall) -> bool:
        if call.over is not None:
            return False
        if call.agg_star or call.agg_within_group or call.agg_distinct or call.agg_filter is not None \
                or call.agg_order:
            return True
        names = [n.sval for n in call.funcname]
        if len(names) == 1 and names[0] in _NOT_AGGREGATES:
            return False
        return self.catalog.is_aggregate(names)

    def _aggregate_calls(self, roots) -> list:
        calls = []

        def visit(n):
            if isinstance(n, ast.FuncCall) and self._is_aggregate(n):
                calls.append(n)
                return False
            return None

        _walk(roots, visit)
        return calls

    def _from_kinds(self, from_clause, env) -> set:
        """Kinds of the leaves of a FROM clause: 'closed' (a protected table closed to the
        caller), 'open' (another relation), 'rows' (a sub-select or CTE reading protected rows
        row by row), 'released' (one whose rows are DP answers), 'plain' (reads nothing protected)."""
        kinds = set()
        for item in from_clause or ():
            for leaf in self._leaves(item):
                kinds.add(self._leaf_kind(leaf, env))
        return kinds

    def _leaves(self, item):
        if isinstance(item, ast.JoinExpr):
            return self._leaves(item.larg) + self._leaves(item.rarg)
        return [item]

    def _leaf_kind(self, leaf, env) -> str:
        if isinstance(leaf, ast.RangeVar):
            kind, what = self._lookup(leaf, env)
            if kind == "rel":
                return "closed" if what.closed else "open"
            return self.level_kind(what.ctequery, env)
        if isinstance(leaf, ast.RangeSubselect):
            if self._is_marker(leaf.subquery):
                return "released"
            return self.level_kind(leaf.subquery, env)
        return "plain" if not self.reaches_closed(leaf, env) else "other"

    def level_kind(self, s, env) -> str:
        """plain | rows | agg | post (see _from_kinds; post: over released rows only)."""
        if not isinstance(s, ast.SelectStmt):
            return "plain"
        if not self.reaches_closed(s, env):
            return "plain"
        if s.op != SetOperation.SETOP_NONE or s.valuesLists:
            return "post"
        inner = self._with_env(s, env)
        kinds = self._from_kinds(s.fromClause, inner)
        if kinds & {"closed", "rows"}:
            return "agg" if self.aggregates_here(s) else "rows"
        return "post"

    def _with_env(self, s, env):
        if s.withClause is None:
            return env
        inner = dict(env)
        for cte in s.withClause.ctes:
            inner[cte.ctename] = cte
        return inner

    # -- the rewrite --------------------------------------------------------------------------

    def process(self, s, env, depth):
        """The outer statement of one SELECT (a new tree; measurements are collected)."""
        if depth > MAX_LEVELS:
            raise too_complex(f"its sub-selects are nested more than {MAX_LEVELS} deep")
        if not isinstance(s, ast.SelectStmt):
            return s
        env = self._process_with(s, env, depth)
        if s.op != SetOperation.SETOP_NONE:
            s.larg = self.process(s.larg, env, depth + 1)
            s.rarg = self.process(s.rarg, env, depth + 1)
            return s
        if not self.reaches_closed(s, env):
            return s
        kind = self.level_kind(s, env)
        if kind == "agg":
            return self.measure(s, env, depth)
        # measurements below this level first (sub-selects, scalar sub-queries), then the rows
        # this level reads itself, from synthetic copies
        self._process_from(s.fromClause, env, depth)
        self._process_sublinks(s, env, depth)
        if kind == "rows":
            s = self.preview(s, env, depth)
        return s

    def _process_with(self, s, env, depth):
        """CTEs: those reading protected rows row by row are inlined where they are used (and
        dropped here); those that aggregate them (or post-process DP answers) are rewritten."""
        if s.withClause is None:
            return env
        if s.withClause.recursive and self.reaches_closed(s.withClause, env):
            refuse("a recursive WITH over a protected table is not supported",
                   "Write the question without RECURSIVE.")
        inner = dict(env)
        ctes = list(s.withClause.ctes)
        for cte in ctes:
            inner[cte.ctename] = cte
        rows = [c for c in ctes if isinstance(c.ctequery, ast.SelectStmt)
                and self.level_kind(c.ctequery, inner) == "rows"]
        for cte in rows:
            if cte.ctematerialized == 1:       # MATERIALIZED
                refuse(f"WITH {cte.ctename} AS MATERIALIZED over a protected table is not supported",
                       "Remove MATERIALIZED.")
            later = [c for c in ctes[ctes.index(cte) + 1:]]
            for c in later:
                c.ctequery = _substitute_cte(c.ctequery, cte)
            for slot in ("fromClause", "targetList", "whereClause", "havingClause", "sortClause",
                         "distinctClause", "windowClause", "limitCount", "limitOffset"):
                v = getattr(s, slot)
                if v is not None:
                    setattr(s, slot, _substitute_cte(v, cte))
            del inner[cte.ctename]
        kept = [c for c in ctes if c not in rows]
        for cte in kept:
            if not isinstance(cte.ctequery, ast.SelectStmt):
                if self.reaches_closed(cte.ctequery, inner):
                    refuse("a data-modifying WITH over a protected table is not supported", "Use a SELECT.")
                continue
            if self.level_kind(cte.ctequery, inner) in ("agg", "post"):
                cte.ctequery = self.process(cte.ctequery, inner, depth + 1)
        if kept:
            s.withClause.ctes = tuple(kept)
        else:
            s.withClause = None
        return inner

    def _process_from(self, from_clause, env, depth):
        for item in from_clause or ():
            for leaf in self._leaves(item):
                if isinstance(leaf, ast.RangeSubselect) and not self._is_marker(leaf.subquery):
                    leaf.subquery = self.process(leaf.subquery, env, depth + 1)
                elif isinstance(leaf, ast.RangeFunction) and self.reaches_closed(leaf, env):
                    self._process_sublinks_in(leaf, env, depth)
            self._joins_sublinks(item, env, depth)

    def _joins_sublinks(self, item, env, depth):
        if isinstance(item, ast.JoinExpr):
            if item.quals is not None:
                self._process_sublinks_in(item.quals, env, depth)
            self._joins_sublinks(item.larg, env, depth)
            self._joins_sublinks(item.rarg, env, depth)

    def _process_sublinks(self, s, env, depth):
        for slot in ("targetList", "whereClause", "havingClause", "sortClause", "distinctClause",
                     "windowClause", "limitCount", "limitOffset"):
            v = getattr(s, slot)
            if v is not None:
                self._process_sublinks_in(v, env, depth)

    def _process_sublinks_in(self, node, env, depth):
        def visit(n):
            if isinstance(n, ast.SubLink) and isinstance(n.subselect, ast.SelectStmt):
                n.subselect = self.process(n.subselect, env, depth + 1)
                return False
            return None
        _walk(node, visit)

    # -- row-level reads: synthetic copies ----------------------------------------------------

    def preview(self, s, env, depth):
        """A level that reads protected rows without aggregating them: from synthetic copies."""
        def f(node):
            if isinstance(node, ast.RangeVar):
                kind, what = self._lookup(node, env)
                if kind == "rel" and what.closed:
                    copy_rel = self.catalog.synthetic_copy(what)
                    if copy_rel is None:
                        refuse(f"rows of the protected table {what.name} are never released",
                               f"Ask aggregates (count, avg, ...) instead, or read a DP synthetic copy: "
                               f"CALL dp.dp_synthesize('{what.schema}.{what.name}', epsilon => 1) makes one in "
                               "the shadow schema.", PRIVILEGE)
                    # the name stays: the caller's backend reads the copy in its place (src/sql_hook/hook.c),
                    # with the copy owner's rights where the gateway says the caller may read it
                    if all(c[0].oid != what.oid for c in self.copies):
                        self.copies.append((what, copy_rel))
                return node
            if isinstance(node, ast.RangeSubselect):
                kind = self.level_kind(node.subquery, env)
                if kind == "rows":
                    node.subquery = self.preview(node.subquery, env, depth + 1)
                    self._process_sublinks(node.subquery, env, depth + 1)
                return node
            return None
        s.fromClause = _Replace(f)(s.fromClause)
        return s

    # -- a measurement ------------------------------------------------------------------------

    def _fresh_alias(self, taken, base):
        name = base
        while name in taken:
            self._aliases += 1
            name = f"{base}_{self._aliases}"
        return name

    def measure(self, s, env, depth):
        if len(self.measurements) >= MAX_MEASUREMENTS:
            raise too_complex(f"more than {MAX_MEASUREMENTS} DP measurements in one statement")
        if s.lockingClause:
            refuse("FOR UPDATE/SHARE is not supported", "Remove the locking clause.")
        if s.intoClause is not None:
            refuse("SELECT INTO is not supported", "Use dp.create_view to keep an answer.")
        if s.groupDistinct:
            refuse("GROUP BY DISTINCT is not supported", "Write GROUP BY.")
        if not s.fromClause:
            refuse("the query has no FROM clause", "Query a protected table.")
        # 1. released sub-results joined on this level's keys: lifted above the measurement
        lifted = []
        from_clause = list(s.fromClause)
        while len(from_clause) == 1 and isinstance(from_clause[0], ast.JoinExpr):
            j = from_clause[0]
            sides = [(j.rarg, j.larg), (j.larg, j.rarg)]
            for released, other in sides:
                if self._leaf_released(released, env):
                    if j.jointype != JoinType.JOIN_INNER or j.usingClause or j.isNatural or j.quals is None \
                            or j.alias is not None:
                        refuse("a DP sub-result can be joined inside another measurement only with an inner "
                               "JOIN ... ON its keys",
                               "e.g. FROM t JOIN (SELECT k AS k__, sum(x) FROM t GROUP BY k ORDER BY 2 DESC "
                               "LIMIT 5) AS top ON t.k = top.k__ (Superset's series limit).")
                    lifted.append((released, j.quals))
                    from_clause = [other]
                    break
            else:
                break
        # 2. the measurement's own FROM: tables, with row-level sub-selects inlined
        scope = _Scope()
        conditions = []
        flat = [self._flatten(item, env, scope, conditions, depth) for item in from_clause]
        lifted_items = []
        for released, quals in lifted:
            released = self._released_item(released, env, depth)
            alias = released.alias.aliasname if released.alias is not None else None
            if alias is None:
                refuse("a sub-select in FROM must have an alias", "e.g. (SELECT ...) AS top")
            names = [c.sval for c in released.alias.colnames] if released.alias.colnames else \
                self._output_names(released.subquery)
            lifted_items.append((released, quals, _Item(alias, names)))
        # 3. every column reference written as alias.column of the tables
        resolve = _Resolver(scope, [li[2] for li in lifted_items])
        where = resolve.expr(copy.deepcopy(s.whereClause)) if s.whereClause is not None else None
        for cond in conditions:
            where = cond if where is None else ast.BoolExpr(boolop=_AND, args=(cond, where))
        targets = [copy.deepcopy(t) for t in s.targetList or ()]
        for t in targets:
            if t.name is None:
                t.name = figure_colname(t.val)
            if isinstance(t.val, ast.ColumnRef) and _ref_names(t.val) is None:
                refuse("SELECT * is not supported with aggregates", "Name the keys and aggregates.")
        out_names = [t.name for t in targets]
        tvals = [resolve.expr(t.val) for t in targets]
        having = resolve.expr(copy.deepcopy(s.havingClause)) if s.havingClause is not None else None
        # 4. the group keys
        keys = []
        for g in s.groupClause or ():
            keys.append(self._key(g, targets, tvals, resolve))
        if s.distinctClause == (None,) and not s.groupClause and not self._aggregate_calls([tvals]):
            keys = [copy.deepcopy(v) for v in tvals]     # SELECT DISTINCT a, b: the keys a, b
        key_texts = []
        for k in keys:
            text = deparse(k)
            if text not in key_texts:
                key_texts.append(text)
        keys = [next(k for k in keys if deparse(k) == t) for t in key_texts]
        # 5. the aggregates (select list, HAVING, ORDER BY), each once
        sort = [copy.deepcopy(x) for x in s.sortClause or ()]
        sort_nodes = []
        for x in sort:
            if self._sort_is_output(x.node, out_names, resolve):
                continue
            x.node = resolve.expr(x.node)
            sort_nodes.append(x.node)
        distinct = s.distinctClause
        if distinct and distinct != (None,) and any(d is not None for d in distinct):
            distinct = tuple(resolve.expr(copy.deepcopy(d)) for d in distinct)
        windows = tuple(resolve.expr(copy.deepcopy(w)) for w in s.windowClause or ())
        aggs = []
        agg_texts = []
        for call in self._aggregate_calls([tvals, having, sort_nodes]):
            text = deparse(call)
            if text not in agg_texts:
                agg_texts.append(text)
                aggs.append(call)
        if not aggs and not keys:
            refuse("the query has no aggregate",
                   "Ask for aggregates such as count(*) or avg(column); single rows are never released.")
        # 6. the core and the outer level
        index = len(self.measurements) + 1
        marker = f"dpm_{self.nonce}_{index}"
        key_name = {t: f"dp_k{i + 1}" for i, t in enumerate(key_texts)}
        agg_name = {t: f"dp_a{i + 1}" for i, t in enumerate(agg_texts)}
        core_targets = [ast.ResTarget(name=key_name[t], val=copy.deepcopy(k)) for t, k in zip(key_texts, keys)] + \
            [ast.ResTarget(name=agg_name[t], val=copy.deepcopy(a)) for t, a in zip(agg_texts, aggs)]
        core = ast.SelectStmt(targetList=tuple(core_targets), fromClause=tuple(flat), whereClause=where,
                              groupClause=tuple(copy.deepcopy(k) for k in keys) or None,
                              limitOption=LimitOption.LIMIT_OPTION_DEFAULT, op=SetOperation.SETOP_NONE)
        self.measurements.append(Measurement(core, marker))
        dp_alias = self._fresh_alias(scope.names() | {li[2].alias for li in lifted_items}, "dp_m")
        outer_ref = _OuterRef(dp_alias, key_name, agg_name, resolve)
        marker_stmt = ast.SelectStmt(targetList=(ast.ResTarget(val=ast.A_Const(val=ast.String(sval=marker))),),
                                     limitOption=LimitOption.LIMIT_OPTION_DEFAULT, op=SetOperation.SETOP_NONE)
        from_item = ast.RangeSubselect(subquery=marker_stmt, alias=ast.Alias(aliasname=dp_alias))
        for released, quals, item in lifted_items:
            quals = outer_ref.lifted(resolve.expr(copy.deepcopy(quals)), item)
            from_item = ast.JoinExpr(jointype=JoinType.JOIN_INNER, larg=from_item, rarg=released, quals=quals)
        outer_targets = tuple(ast.ResTarget(name=t.name, val=outer_ref(v)) for t, v in zip(targets, tvals))
        for t in outer_targets:
            names = _ref_names(t.val) if isinstance(t.val, ast.ColumnRef) else None
            if names and len(names) == 2 and names[0] == dp_alias:
                self.measurements[-1].names.setdefault(names[1], t.name)
        outer = ast.SelectStmt(
            targetList=outer_targets,
            fromClause=(from_item,),
            whereClause=outer_ref(having) if having is not None else None,
            sortClause=tuple(ast.SortBy(node=x.node if self._sort_is_output(x.node, out_names, resolve)
                                        else outer_ref(x.node), sortby_dir=x.sortby_dir,
                                        sortby_nulls=x.sortby_nulls, useOp=x.useOp) for x in sort) or None,
            distinctClause=(tuple(outer_ref(d) if d is not None else None for d in distinct)
                            if distinct else None),
            windowClause=tuple(outer_ref(w) for w in windows) or None,
            limitCount=s.limitCount, limitOffset=s.limitOffset, limitOption=s.limitOption,
            withClause=s.withClause, op=SetOperation.SETOP_NONE)
        # sub-selects left in the post-processing (a scalar sub-select in HAVING, ...)
        self._process_sublinks(outer, env, depth)
        return outer

    def _leaf_released(self, leaf, env) -> bool:
        if isinstance(leaf, ast.RangeSubselect):
            return self._is_marker(leaf.subquery) or self.level_kind(leaf.subquery, env) in ("agg", "post")
        if isinstance(leaf, ast.RangeVar):
            kind, what = self._lookup(leaf, env)
            return kind == "cte" and self.level_kind(what.ctequery, env) in ("agg", "post")
        return False

    def _released_item(self, leaf, env, depth):
        """A lifted sub-result as a sub-select of the outer statement (its own measurements)."""
        if isinstance(leaf, ast.RangeVar):      # a CTE of DP answers: still a CTE of the outer statement
            return ast.RangeSubselect(subquery=ast.SelectStmt(
                targetList=(ast.ResTarget(val=ast.ColumnRef(fields=(ast.A_Star(),))),),
                fromClause=(ast.RangeVar(relname=leaf.relname, inh=True, relpersistence="p"),),
                limitOption=0, op=SetOperation.SETOP_NONE),
                alias=leaf.alias or ast.Alias(aliasname=leaf.relname))
        leaf.subquery = self.process(leaf.subquery, env, depth + 1)
        return leaf

    def _output_names(self, sub) -> list:
        if not isinstance(sub, ast.SelectStmt):
            return []
        while sub.op != SetOperation.SETOP_NONE:
            sub = sub.larg
        return [t.name or figure_colname(t.val) for t in sub.targetList or ()]

    def _sort_is_output(self, node, out_names, resolve) -> bool:
        """ORDER BY 2, or ORDER BY <an output name> (PostgreSQL prefers output names here)."""
        if isinstance(node, ast.A_Const):
            return True
        if isinstance(node, ast.ColumnRef):
            names = _ref_names(node)
            return names is not None and len(names) == 1 and names[0] in out_names
        return False

    def _key(self, g, targets, tvals, resolve):
        if isinstance(g, ast.A_Const) and isinstance(g.val, ast.Integer):
            pos = g.val.ival
            if not 1 <= pos <= len(targets):
                refuse(f"GROUP BY position {pos} is not in select list", "Use a column name.", GROUPING)
            return copy.deepcopy(tvals[pos - 1])
        if isinstance(g, ast.ColumnRef):
            names = _ref_names(g)
            if names and len(names) == 1 and not resolve.is_input_column(names[0]):
                for t, v in zip(targets, tvals):
                    if t.name == names[0]:
                        return copy.deepcopy(v)
        if isinstance(g, (ast.GroupingSet,)):
            refuse("GROUPING SETS, ROLLUP and CUBE are not supported", "Ask one grouping at a time.")
        return resolve.expr(copy.deepcopy(g))

    # -- FROM of a measurement ----------------------------------------------------------------

    def _flatten(self, item, env, scope, conditions, depth):
        """The FROM item with row-level sub-selects inlined; tables are added to scope."""
        if isinstance(item, ast.JoinExpr):
            if item.isNatural:
                refuse("NATURAL JOIN is not supported in a DP measurement", "Write JOIN ... ON a.key = b.key.")
            if item.alias is not None:
                refuse("an alias of a JOIN is not supported in a DP measurement", "Alias the tables instead.")
            outer = item.jointype in (JoinType.JOIN_LEFT, JoinType.JOIN_RIGHT, JoinType.JOIN_FULL)
            left_conditions, right_conditions = [], []
            item.larg = self._flatten(item.larg, env, scope, left_conditions, depth)
            item.rarg = self._flatten(item.rarg, env, scope, right_conditions, depth)
            if item.usingClause:
                item.quals = _using_quals(item, scope)
                item.usingClause = None
            if item.quals is not None:
                item.quals = _Resolver(scope, []).expr(item.quals)
            for side, conds in (("left", left_conditions), ("right", right_conditions)):
                if not conds:
                    continue
                preserved = item.jointype == JoinType.JOIN_FULL or (
                    side == "left" and item.jointype == JoinType.JOIN_LEFT) or (
                    side == "right" and item.jointype == JoinType.JOIN_RIGHT)
                if not outer or not preserved:
                    conditions.extend(conds)
                else:
                    refuse("a filtered sub-select on the preserved side of an outer join is not supported "
                           "in a DP measurement", "Filter in WHERE, or use an inner JOIN.")
            return item
        if isinstance(item, ast.RangeVar):
            kind, what = self._lookup(item, env)
            if kind == "cte":
                if not isinstance(what.ctequery, ast.SelectStmt) or \
                        self.level_kind(what.ctequery, env) not in ("rows", "plain"):
                    refuse(f"the CTE {item.relname} holds DP answers and cannot be aggregated again inside a "
                           "measurement", "Aggregate its released rows in an outer query, or join it on keys.")
                alias = item.alias or ast.Alias(aliasname=item.relname)
                if what.aliascolnames and not alias.colnames:
                    alias = ast.Alias(aliasname=alias.aliasname, colnames=what.aliascolnames)
                return self._inline(ast.RangeSubselect(subquery=copy.deepcopy(what.ctequery), alias=alias),
                                    env, scope, conditions, depth)
            if item.catalogname:
                refuse("cross-database references are not supported", "Name the table as schema.table.")
            alias = item.alias.aliasname if item.alias is not None else item.relname
            if item.alias is not None and item.alias.colnames:
                refuse("column aliases in FROM are not supported in a DP measurement",
                       "Alias the output columns instead.")
            if alias in scope.names():
                refuse(f"table name \"{alias}\" specified more than once", "Give each table its own alias.",
                       "42712")
            scope.add(_Item(alias, list(what.columns), what))
            return ast.RangeVar(schemaname=what.schema, relname=what.name, inh=item.inh,
                                relpersistence="p", alias=ast.Alias(aliasname=alias))
        if isinstance(item, ast.RangeSubselect):
            return self._inline(item, env, scope, conditions, depth)
        refuse(f"{type(item).__name__} in the FROM of a DP measurement is not supported",
               "Aggregate protected tables, joined with tables you may read, in FROM.")

    def _inline(self, item: ast.RangeSubselect, env, scope, conditions, depth):
        """A row-level sub-select (a view of the tables: projections and filters) in the FROM of a
        measurement: its tables join the measurement, its filter joins WHERE, its select list
        becomes the meaning of its output names."""
        sub = item.subquery
        if item.lateral:
            refuse("LATERAL sub-selects are not supported in a DP measurement", "Remove LATERAL.")
        if item.alias is None:
            refuse("a sub-select in FROM must have an alias", "e.g. (SELECT ...) AS virtual_table")
        if not isinstance(sub, ast.SelectStmt) or sub.op != SetOperation.SETOP_NONE or sub.valuesLists:
            refuse("a UNION, INTERSECT, EXCEPT or VALUES under an aggregate is not supported",
                   "Ask each part as its own question.")
        kind = self.level_kind(sub, env)
        if kind in ("agg", "post"):
            refuse("a DP sub-result cannot be aggregated again inside a measurement",
                   "Aggregate the released rows in an outer query (SELECT sum(n) FROM (SELECT k, count(*) AS n "
                   "... GROUP BY k) s is answered: the outer sum is over released rows), or join it on keys.")
        problems = [("DISTINCT", sub.distinctClause), ("LIMIT", sub.limitCount), ("OFFSET", sub.limitOffset),
                    ("a window", sub.windowClause), ("FOR UPDATE", sub.lockingClause),
                    ("GROUP BY", sub.groupClause), ("HAVING", sub.havingClause)]
        for what, present in problems:
            if present:
                refuse(f"a sub-select with {what} under an aggregate is not supported",
                       "A sub-select in the FROM of a DP question may select, rename and filter columns only.")
        inner_env = self._process_with(sub, env, depth + 1) if sub.withClause is not None else env
        if not sub.fromClause:
            refuse("a sub-select without FROM under an aggregate is not supported", "Query a table.")
        inner_scope = _Scope()
        inner_conditions = []
        taken = scope.names()
        flat = []
        for f in sub.fromClause:
            flat.append(self._flatten(f, inner_env, inner_scope, inner_conditions, depth + 1))
        # the sub-select's table aliases must not clash with the measurement's
        renames = {}
        for it in inner_scope.items:
            new = self._fresh_alias(taken | set(renames.values()), it.alias)
            if new != it.alias:
                renames[it.alias] = new
        inner_resolve = _Resolver(inner_scope, [])
        outputs = []
        for t in sub.targetList or ():
            if isinstance(t.val, ast.ColumnRef) and _ref_names(t.val) is None:
                names = [f.sval for f in t.val.fields[:-1]]
                items = inner_scope.items if not names else [inner_resolve.item(names)]
                for it in items:
                    for col in it.columns:
                        outputs.append((col, inner_resolve.column(it, col)))
                continue
            if self._aggregate_calls([t.val]):
                refuse("an aggregate in a sub-select of a DP measurement's FROM", "Aggregate once.")
            outputs.append((t.name or figure_colname(t.val), inner_resolve.expr(copy.deepcopy(t.val))))
        where = inner_resolve.expr(sub.whereClause) if sub.whereClause is not None else None
        for cond in inner_conditions:
            where = cond if where is None else ast.BoolExpr(boolop=_AND, args=(cond, where))
        if renames:
            rename = _Replace(lambda n: _rename_ref(n, renames))
            outputs = [(name, rename(expr)) for name, expr in outputs]
            where = rename(where) if where is not None else None
            flat = [rename(_rename_tables(f, renames)) for f in flat]
            for it in inner_scope.items:
                it.alias = renames.get(it.alias, it.alias)
        colnames = [c.sval for c in item.alias.colnames] if item.alias.colnames else None
        if colnames:
            if len(colnames) > len(outputs):
                refuse(f"table \"{item.alias.aliasname}\" has {len(outputs)} columns available but "
                       f"{len(colnames)} columns specified", "Name fewer columns.", "42P10")
            outputs = [(colnames[i] if i < len(colnames) else n, e) for i, (n, e) in enumerate(outputs)]
        if where is not None:
            conditions.append(where)
        for it in inner_scope.items:
            it.hidden = True
            scope.add(it)
        scope.add(_Item(item.alias.aliasname, [n for n, _ in outputs], None, exprs=dict(reversed(outputs))))
        if len(flat) == 1:
            return flat[0]
        result = flat[0]
        for f in flat[1:]:
            result = ast.JoinExpr(jointype=JoinType.JOIN_INNER, larg=result, rarg=f,
                                  quals=ast.A_Const(val=ast.Boolean(boolval=True)))
        return result


from pglast.enums import BoolExprType  # noqa: E402

_AND = BoolExprType.AND_EXPR


def _substitute_cte(node, cte, depth=0):
    """`node` with every reference to the CTE replaced by a sub-select of its query (into
    sub-queries too, except where a nested WITH defines the same name)."""
    if depth > 2000:
        raise too_complex("its sub-selects are nested too deeply")
    if isinstance(node, (list, tuple)):
        return tuple(_substitute_cte(n, cte, depth + 1) for n in node)
    if not isinstance(node, ast.Node):
        return node
    if isinstance(node, ast.RangeVar) and node.schemaname is None and node.catalogname is None \
            and node.relname == cte.ctename:
        alias = node.alias or ast.Alias(aliasname=node.relname)
        if cte.aliascolnames and not alias.colnames:
            alias = ast.Alias(aliasname=alias.aliasname, colnames=cte.aliascolnames)
        return ast.RangeSubselect(subquery=copy.deepcopy(cte.ctequery), alias=alias)
    if isinstance(node, ast.SelectStmt) and node.withClause is not None \
            and any(c.ctename == cte.ctename for c in node.withClause.ctes):
        return node
    for slot in node:
        v = getattr(node, slot)
        if isinstance(v, (ast.Node, list, tuple)):
            setattr(node, slot, _substitute_cte(v, cte, depth + 1))
    return node


def _rename_ref(n, renames):
    if isinstance(n, ast.ColumnRef):
        names = _ref_names(n)
        if names and len(names) == 2 and names[0] in renames:
            return _colref(renames[names[0]], names[1])
        return n
    return None


def _rename_tables(item, renames):
    if isinstance(item, ast.JoinExpr):
        item.larg = _rename_tables(item.larg, renames)
        item.rarg = _rename_tables(item.rarg, renames)
        return item
    if isinstance(item, ast.RangeVar) and item.alias is not None and item.alias.aliasname in renames:
        item.alias = ast.Alias(aliasname=renames[item.alias.aliasname])
    return item


def _using_quals(join: ast.JoinExpr, scope: _Scope):
    """JOIN ... USING (c): l.c = r.c for the tables of each side that have c."""
    left = _side_aliases(join.larg)
    right = _side_aliases(join.rarg)
    quals = []
    for c in join.usingClause:
        name = c.sval
        ls = [i for i in scope.items if i.alias in left and name in i.columns]
        rs = [i for i in scope.items if i.alias in right and name in i.columns]
        if len(ls) != 1 or len(rs) != 1:
            refuse(f"column \"{name}\" specified in USING clause does not exist in both tables (or is ambiguous)",
                   "Write JOIN ... ON a.key = b.key.", UNDEFINED_COLUMN)
        quals.append(ast.A_Expr(kind=0, name=(ast.String(sval="="),), lexpr=_colref(ls[0].alias, name),
                                rexpr=_colref(rs[0].alias, name)))
    if len(quals) == 1:
        return quals[0]
    return ast.BoolExpr(boolop=_AND, args=tuple(quals))


def _side_aliases(item) -> set:
    if isinstance(item, ast.JoinExpr):
        return _side_aliases(item.larg) | _side_aliases(item.rarg)
    if isinstance(item, ast.RangeVar):
        return {item.alias.aliasname if item.alias is not None else item.relname}
    return set()


class _Resolver:
    """Column references of a measurement level, written as "alias"."column" of its tables (or the
    expression of an inlined sub-select's output)."""

    def __init__(self, scope: _Scope, lifted: list):
        self.scope = scope
        self.lifted = lifted

    def visible(self):
        return [i for i in self.scope.items if not i.hidden] + self.lifted

    def is_input_column(self, name) -> bool:
        return any(name in i.columns for i in self.visible())

    def item(self, qualifier: list) -> _Item:
        q = qualifier[-1]
        found = [i for i in self.visible() if i.alias == q]
        if len(qualifier) >= 2:     # schema.table.col: the table's own name (no alias)
            found = [i for i in found if i.relation is None or i.relation.schema == qualifier[-2]
                     or i.alias != i.relation.name]
        if not found:
            refuse(f"missing FROM-clause entry for table \"{'.'.join(qualifier)}\"",
                   "Qualify columns with a table (or alias) of the same SELECT; a DP measurement cannot read "
                   "columns of an outer query.", UNDEFINED_TABLE)
        return found[-1]

    def column(self, item: _Item, name: str):
        if item.exprs is not None:
            if name not in item.exprs:
                refuse(f"column {item.alias}.{name} does not exist", "Check the sub-select's columns.",
                       UNDEFINED_COLUMN)
            return copy.deepcopy(item.exprs[name])
        if item.relation is not None and name not in item.columns:
            refuse(f"column {item.alias}.{name} does not exist", "Check \\d of the table.", UNDEFINED_COLUMN)
        return _colref(item.alias, name)

    def ref(self, ref: ast.ColumnRef):
        names = _ref_names(ref)
        if names is None:
            refuse("* is not supported here", "Name the columns.")
        if len(names) == 1:
            owners = [i for i in self.visible() if names[0] in i.columns]
            if not owners:
                refuse(f"column \"{names[0]}\" does not exist", "Check the columns of the tables in FROM.",
                       UNDEFINED_COLUMN)
            if len(owners) > 1:
                refuse(f"column reference \"{names[0]}\" is ambiguous", "Qualify it with its table's alias.",
                       AMBIGUOUS_COLUMN)
            return self.column(owners[0], names[0])
        if len(names) > 4:
            refuse(f"improper qualified name: {'.'.join(names)}", "Write table.column.", "42601")
        return self.column(self.item(names[:-1]), names[-1])

    def expr(self, node):
        def f(n):
            if isinstance(n, ast.ColumnRef):
                return self.ref(n)
            if isinstance(n, ast.SubLink):
                refuse("a sub-query inside a DP measurement is not supported",
                       "Join the table you read in the sub-query (JOIN ... ON), or filter with constants.")
            return None
        return _Replace(f)(node)


class _OuterRef:
    """The outer level's expressions: keys and aggregates of the core become columns of dp_m."""

    def __init__(self, alias, key_name, agg_name, resolve):
        self.alias, self.key_name, self.agg_name, self.resolve = alias, key_name, agg_name, resolve
        self.lifted_aliases = {i.alias for i in resolve.lifted}

    def __call__(self, node):
        def f(n):
            if isinstance(n, ast.Node) and not isinstance(n, (ast.A_Const, ast.SortBy, ast.WindowDef,
                                                                ast.ResTarget)):
                try:
                    text = deparse(n)
                except Exception:
                    text = None
                if text in self.agg_name:
                    return _colref(self.alias, self.agg_name[text])
                if text in self.key_name:
                    return _colref(self.alias, self.key_name[text])
            if isinstance(n, ast.ColumnRef):
                names = _ref_names(n)
                if names and len(names) == 2 and names[0] in self.lifted_aliases:
                    return n
                refuse(f"column \"{'.'.join(names or ['*'])}\" must appear in the GROUP BY clause or be used in an "
                       "aggregate function", "Select GROUP BY keys and aggregates (arithmetic over them is fine).",
                       GROUPING)
            return None
        return _Replace(f)(node)

    def lifted(self, quals, item: _Item):
        """The ON of a lifted sub-result: this level's side must be its group keys."""
        try:
            return self(quals)
        except DPError as e:
            if e.sqlstate != GROUPING:
                raise
            refuse(f"a DP sub-result ({item.alias}) can be joined inside a measurement only on the measurement's "
                   "GROUP BY keys", "Group by the joined column too (the join then filters released groups), or "
                   "join the released rows in an outer query.")
