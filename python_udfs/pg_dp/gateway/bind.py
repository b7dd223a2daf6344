"""Binding a question to the catalog: which protected table(s) it reads and how they join.

A join of two tables of one dataset on their privacy unit, or of a table reaching its unit through
foreign keys with the table its first key references, is seen as one table (a TableMeta whose
source_sql is the join) whose columns are "alias.column".
"""

from ..core import catalog, db
from ..core.catalog import TableMeta
from ..core.errors import DPError
from .analyze import Query, column_refs
from .parse import ast
from .rewrite import relation_sql
from .sqltext import operator, quote_ident

NOT_SUPPORTED = "0A000"
UNDEFINED_COLUMN = "42703"


def bind_join(query: Query, metas: list[TableMeta]) -> TableMeta:
    """See a join of two tables of one dataset, on their privacy unit, as one table.

    Columns become "alias.column"; bare names are resolved to the one table that
    has them.  `query` is changed in place to use those names.
    """
    (a, b), aliases = metas, [t[2] or t[1] for t in query.tables]
    if a.dataset != b.dataset:
        raise DPError(f"{a.table} and {b.table} belong to different datasets ({a.dataset}, {b.dataset})",
                      hint="Only tables of one dataset can be joined.", sqlstate=NOT_SUPPORTED)
    if not a.unit_column or not b.unit_column:
        raise DPError("tables can be joined only in a dataset with a privacy unit",
                      hint="Without one, a join could count a person several times.", sqlstate=NOT_SUPPORTED)
    if aliases[0] == aliases[1]:
        raise DPError("the two tables of a join need different aliases", hint="e.g. FROM t AS a JOIN t AS b",
                      sqlstate=NOT_SUPPORTED)
    child = _path_join(query, metas, aliases)
    if child is None:
        units = {f"{aliases[0]}.{a.unit_column}", f"{aliases[1]}.{b.unit_column}"}
        if set(query.join_columns) != units:
            raise DPError("a JOIN must be on the privacy unit of both tables",
                          hint=f"Write ON {' = '.join(sorted(units))}.", sqlstate=NOT_SUPPORTED)
    columns = {}
    for alias, meta in zip(aliases, metas):
        for name, col in meta.columns.items():
            columns[f"{alias}.{name}"] = col

    def canonical(name: str) -> str:
        if name in columns:
            return name
        owners = [f"{alias}.{name}" for alias, meta in zip(aliases, metas) if name in meta.columns]
        if name == a.unit_column == b.unit_column:
            owners = owners[:1]
        if len(owners) != 1:
            raise DPError(f"column {name!r} is {'ambiguous' if owners else 'unknown'} in the join",
                          hint="Qualify it with its table's alias.", sqlstate="42702" if owners else UNDEFINED_COLUMN)
        return owners[0]

    for key in query.key_exprs.values():
        inner = key.consts.get("inner") if isinstance(key.consts, dict) else None
        if inner is not None:
            inner.column = canonical(inner.column) if inner.column else None
            inner.columns = [canonical(c) for c in inner.columns]
        key.column = canonical(key.column) if key.column else None
        key.columns = [canonical(c) for c in key.columns]
        for cond, _ in key.whens:
            for ref in column_refs(cond):
                ref.fields = (ast.String(sval=canonical(query.ref_name(ref))),)
    query.group_by = [c if c in query.key_exprs else canonical(c) for c in query.group_by]
    for out in query.outputs:
        if out.group_column and out.group_column not in query.key_exprs:
            out.group_column = canonical(out.group_column)
        if out.aggregate and out.aggregate.column:
            out.aggregate.column = canonical(out.aggregate.column)
    for ref in column_refs(query.where) if query.where is not None else ():
        ref.fields = (ast.String(sval=canonical(query.ref_name(ref))),)
    query.join_columns = None  # names are now plain (virtual) column names
    if child is not None:
        return _path_join_meta(query, metas, aliases, child, columns)
    unit = f"{aliases[0]}.{a.unit_column}"
    select = _join_select(query, unit)
    source = (f"SELECT {select} FROM {quote_ident(a.schema)}.{quote_ident(a.table)} AS {quote_ident(aliases[0])} "
              f"JOIN {quote_ident(b.schema)}.{quote_ident(b.table)} AS {quote_ident(aliases[1])} "
              f"ON " + operator(f"{quote_ident(aliases[0])}.{quote_ident(a.unit_column)}", "=",
                                f"{quote_ident(aliases[1])}.{quote_ident(b.unit_column)}"))
    # the rewrite bounds a unit's joined rows after the join, by the larger of the two tables' bounds
    # (either order of the tables: a unit table with one row per unit joined with its facts keeps
    # the facts' bound)
    k = max(a.max_rows_per_unit, b.max_rows_per_unit)
    note = (f"{a.table} JOIN {b.table} on their privacy unit {a.unit_column}: each unit's joined rows are bounded "
            f"after the join (at most {k}, the larger of the two tables' bounds)")
    return TableMeta(a.relid, a.schema, f"{a.table} JOIN {b.table}", a.dataset, unit, k,
                     a.max_groups_per_unit, a.data_version, columns, source_sql=source, joins=[note])


def _join_select(query: Query, unit: str) -> str:
    """The select list of a join's source: every column the query uses and the unit, as "alias.column"."""
    return ", ".join(f"{quote_ident(c.split('.', 1)[0])}.{quote_ident(c.split('.', 1)[1])} AS {quote_ident(c)}"
                     for c in sorted(query.columns_used() | {unit}))


def _path_join(query: Query, metas: list[TableMeta], aliases: list[str]) -> int | None:
    """For a join of a path table with the table its first foreign key references, on that key
    (invoice_line JOIN invoice ON invoice_line.invoice_id = invoice.invoice_id): the path table's
    index.  None for a join without a path table; any other join of a path table is refused."""
    if not any(m.unit_path for m in metas):
        return None
    for i, meta in enumerate(metas):
        other = metas[1 - i]
        step = meta.unit_path[0] if meta.unit_path else None
        if step is None or (step["schema"], step["table"]) != (other.schema, other.table) or len(step["cols"]) != 1:
            continue
        if set(query.join_columns) == {f"{aliases[i]}.{step['cols'][0]}", f"{aliases[1 - i]}.{step['refcols'][0]}"}:
            return i
    meta = next(m for m in metas if m.unit_path)
    step = meta.unit_path[0]
    along = (f" or join it with {step['schema']}.{step['table']} on its key: ON {meta.table}.{step['cols'][0]} = "
             f"{step['table']}.{step['refcols'][0]}") if len(step["cols"]) == 1 else ""
    raise DPError(f"{meta.table} reaches its privacy unit through foreign keys and cannot be joined this way",
                  hint=f"Ask {meta.table} alone (its rows are bounded per {meta.unit_column} along the foreign keys; "
                       f"dp.protected_tables shows the path){along}.", sqlstate=NOT_SUPPORTED)


def _path_join_meta(query: Query, metas: list[TableMeta], aliases: list[str], child: int, columns: dict) -> TableMeta:
    """A path table joined with its parent along the first foreign key of its path, as one table.

    Each row of the path table meets at most one parent row (the key is unique), so the join has
    the path table's rows, with the parent's columns: bounded per unit with the path table's
    max_rows_per_unit, its unit found along the path as on the path table alone."""
    meta, parent = metas[child], metas[1 - child]
    ca, pa = quote_ident(aliases[child]), quote_ident(aliases[1 - child])
    step = meta.unit_path[0]
    unit = f"{aliases[child]}.{meta.unit_column}"
    select = _join_select(query, unit)
    source = (f"SELECT {select} FROM {relation_sql(meta)} AS {ca} "
              f"JOIN {quote_ident(parent.schema)}.{quote_ident(parent.table)} AS {pa} "
              f"ON {pa}.{quote_ident(step['refcols'][0])} {step['ops'][0]} {ca}.{quote_ident(step['cols'][0])}")
    return TableMeta(meta.relid, meta.schema, f"{meta.table} JOIN {parent.table}", meta.dataset, unit,
                     meta.max_rows_per_unit, meta.max_groups_per_unit, meta.data_version, columns,
                     source_sql=source, unit_path=meta.unit_path)


def bind(query: Query) -> TableMeta:
    """The table a question reads: one protected table, two protected tables of one dataset joined
    on their unit (or along a foreign-key path: bind_join), or a protected table joined with
    tables the caller may read (bind_star)."""
    if len(query.tables) == 1:
        return catalog.load_table(query.schema, query.table)
    protected = [_is_protected(s, t) for s, t, _ in query.tables]
    if all(protected) and len(query.tables) == 2:
        if query.join_columns is None:
            raise DPError("two protected tables are joined with an inner JOIN on one equality only",
                          hint="Write t1 JOIN t2 ON t1.unit = t2.unit (or USING (unit)).", sqlstate=NOT_SUPPORTED)
        return bind_join(query, [catalog.load_table(s, t) for s, t, _ in query.tables])
    if sum(protected) != 1:
        raise DPError("a DP question joins one protected table with tables you may read, or two protected "
                      "tables of one dataset on their privacy unit",
                      hint="Ask each protected table in its own sub-select and join the released rows on their "
                           "keys in an outer query.", sqlstate=NOT_SUPPORTED)
    return bind_star(query, protected.index(True))


def _is_protected(schema, table) -> bool:
    return bool(db.execute(
        "SELECT EXISTS (SELECT 1 FROM dp_internal.protected_tables p JOIN pg_catalog.pg_class c ON c.oid = p.relid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = $1 "
        "AND ($2::text IS NULL OR n.nspname = $2)) AS p", [table, schema], ["text", "text"])[0]["p"])


def _dimension_schema(schema, table) -> str:
    """The schema of a joined table named without one (dp.query): the one schema with such a table
    that the caller may use."""
    if schema is not None:
        return schema
    rows = db.execute(
        "SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname = $1 AND c.relkind IN ('r', 'p', 'm', 'v', 'f') AND n.nspname NOT LIKE 'pg\\_%' "
        "AND pg_catalog.has_schema_privilege($2::oid, n.oid, 'USAGE')", [table, catalog.outer_role()],
        ["text", "oid"])
    if len(rows) != 1:
        raise DPError(f"relation \"{table}\" does not exist" if not rows else f"table name {table} is ambiguous",
                      hint="Qualify it with its schema: schema.table.", sqlstate="42P01" if not rows else "42P09")
    return rows[0]["nspname"]


_PAIRS = [{"int", "numeric"}, {"int", "float"}, {"date", "timestamp"}]


def bind_star(query: Query, fact_index: int) -> TableMeta:
    """A protected table joined with tables the caller may read (dimensions), seen as one table.

    Columns become "alias.column".  The exact query reads the join (rewrite.py bounds the joined
    rows per privacy unit, after the WHERE); a dimension joined on one of its unique keys meets each
    row at most once (many-to-one: the protected table's bounds hold as they are); otherwise a row
    may meet several and the rows after the join are bounded per unit.  A GROUP BY key that is a
    dimension's column takes the dimension's values as its public key set (the caller may read
    them): every value is released, empty groups too."""
    from . import relations
    aliases = [t[2] or t[1] for t in query.tables]
    if len(set(aliases)) != len(aliases):
        raise DPError("the tables of a join need different aliases", hint="e.g. FROM t AS a JOIN u AS b",
                      sqlstate="42712")
    fact_alias = aliases[fact_index]
    schema, table, _ = query.tables[fact_index]
    fact = catalog.load_table(schema, table)
    if not fact.unit_column:
        raise DPError(f"{fact.table} can be joined only in a dataset with a privacy unit",
                      hint="Without one, a join could count a person several times.", sqlstate=NOT_SUPPORTED)
    conds = []
    _collect_conditions(query.join_tree, conds)
    used = {a: set() for a in aliases}

    def owner(name: str) -> str:
        if "." in name:
            alias, col = name.split(".", 1)
            if alias in used:
                return name
        raise DPError(f"column {name!r} must be qualified with its table's alias in a join",
                      hint="Write alias.column.", sqlstate=UNDEFINED_COLUMN)

    names = {owner(c) for c in query.columns_used()} | {owner(c) for pair in conds for c in pair}
    for name in names:
        alias, col = name.split(".", 1)
        used[alias].add(col)
    dims = {}
    for i, (s, t, _) in enumerate(query.tables):
        if i != fact_index:
            dims[aliases[i]] = relations.load_dimension(_dimension_schema(s, t), t, used[aliases[i]])
    columns = {f"{fact_alias}.{c}": col for c, col in fact.columns.items()}
    for alias, dim in dims.items():
        for c, col in dim.columns.items():
            columns[f"{alias}.{c}"] = dict(col)
    for name in sorted(names):
        if name not in columns:
            raise DPError(f"column {name!r} does not exist", hint="Check the columns of the joined tables.",
                          sqlstate=UNDEFINED_COLUMN)
    # the join conditions: both sides' types must compare without casting a column (where.py's rule)
    from .where import column_type
    for a, b in conds:
        ta, tb = columns[a]["type"], columns[b]["type"]
        fa, fb = column_type(ta)[0], column_type(tb)[0]
        if ta != tb and not (fa == fb != "other" or {fa, fb} in _PAIRS):
            raise DPError(f"{a} ({ta}) and {b} ({tb}) cannot be joined: PostgreSQL would cast one, which can "
                          "fail on a row", hint="Join columns of the same type.", sqlstate="42804")
    preserved = _check_outer_joins(query.join_tree, aliases, fact_index)
    notes = []
    for alias, dim in dims.items():
        theirs = {b.split(".", 1)[1] for a, b in conds if b.startswith(alias + ".") and not a.startswith(alias + ".")}
        theirs |= {a.split(".", 1)[1] for a, b in conds if a.startswith(alias + ".") and not b.startswith(alias + ".")}
        unique = next((u for u in dim.unique_sets if set(u) <= theirs), None)
        if unique is not None:
            notes.append(f"{fact.table} -> {dim.schema}.{dim.name} on {', '.join(sorted(theirs))}: many-to-one "
                         f"({', '.join(unique)} is unique), each row meets at most one row; the bounds of "
                         f"{fact.table} hold (at most {fact.max_rows_per_unit} rows per {fact.unit_column})")
        else:
            notes.append(f"{fact.table} -> {dim.schema}.{dim.name} on {', '.join(sorted(theirs)) or '-'}: a row may "
                         f"meet several; the joined rows are bounded per {fact.unit_column} (at most "
                         f"{fact.max_rows_per_unit} each)")
        for c in dim.columns:
            if alias in preserved:
                columns[f"{alias}.{c}"]["notnull"] = False
    # a plain dimension column as a GROUP BY key: its values are public
    for key in query.group_by:
        if key in query.key_exprs or key.split(".", 1)[0] not in dims:
            continue
        alias, col = key.split(".", 1)
        values = relations.key_values(dims[alias], col)
        if values is not None and alias in preserved and None not in values:
            values.append(None)
        columns[key]["public_values"] = values
    unit = f"{fact_alias}.{fact.unit_column}"
    query.join_columns = None
    select = _join_select(query, unit)
    source = f"SELECT {select} FROM {_tree_sql(query.join_tree, query.tables, aliases, fact_index, fact)}"
    return TableMeta(fact.relid, fact.schema, f"{fact.table} JOIN " + " JOIN ".join(d.name for d in dims.values()),
                     fact.dataset, unit, fact.max_rows_per_unit, fact.max_groups_per_unit, fact.data_version,
                     columns, source_sql=source, unit_path=fact.unit_path, joins=notes)


def _collect_conditions(tree, out):
    if tree[0] == "join":
        _collect_conditions(tree[2], out)
        _collect_conditions(tree[3], out)
        out.extend(tree[4])


def _tree_aliases(tree, aliases) -> set:
    if tree[0] == "table":
        return {aliases[tree[1]]}
    return _tree_aliases(tree[2], aliases) | _tree_aliases(tree[3], aliases)


def _check_outer_joins(tree, aliases, fact_index) -> set:
    """The aliases on the nullable side of a LEFT/RIGHT join (their columns may be NULL); the
    protected table must be on the preserved side (a row of a dimension alone belongs to no unit)."""
    nullable = set()
    if tree[0] == "table":
        return nullable
    nullable |= _check_outer_joins(tree[2], aliases, fact_index)
    nullable |= _check_outer_joins(tree[3], aliases, fact_index)
    kind = tree[1]
    if kind != "inner":
        other = tree[3] if kind == "left" else tree[2]
        side = _tree_aliases(other, aliases)
        if aliases[fact_index] in side:
            raise DPError("the protected table must be on the preserved side of an outer join",
                          hint="Write protected LEFT JOIN dimension (rows of a dimension alone belong to nobody).",
                          sqlstate=NOT_SUPPORTED)
        nullable |= side
    for a, b in tree[4]:
        for c in (a, b):
            if c.split(".", 1)[0] not in _tree_aliases(tree, aliases):
                raise DPError(f"invalid reference to {c} in a JOIN condition",
                              hint="A join condition may name the tables of its two sides only.", sqlstate="42P01")
    return nullable


def _tree_sql(tree, tables, aliases, fact_index, fact) -> str:
    if tree[0] == "table":
        i = tree[1]
        schema, table, _ = tables[i]
        rel = relation_sql(fact) if i == fact_index else \
            f"{quote_ident(_dimension_schema(schema, table))}.{quote_ident(table)}"
        return f"{rel} AS {quote_ident(aliases[i])}"
    kind = {"inner": "JOIN", "left": "LEFT JOIN", "right": "RIGHT JOIN"}[tree[1]]
    on = " AND ".join(operator(".".join(quote_ident(p) for p in a.split(".", 1)), "=",
                               ".".join(quote_ident(p) for p in b.split(".", 1))) for a, b in tree[4])
    left = _tree_sql(tree[2], tables, aliases, fact_index, fact)
    right = _tree_sql(tree[3], tables, aliases, fact_index, fact)
    return f"({left} {kind} {right} ON {on})"
