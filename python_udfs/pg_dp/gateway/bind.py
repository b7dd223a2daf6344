"""Binding a question to the catalog: which protected table(s) it reads and how they join.

A join of two tables of one dataset on their privacy unit, or of a table reaching its unit through
foreign keys with the table its first key references, is seen as one table (a TableMeta whose
source_sql is the join) whose columns are "alias.column".
"""

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
        key.column = canonical(key.column) if key.column else None
        key.columns = [canonical(c) for c in key.columns]
        for cond, _ in key.whens:
            for ref in column_refs(cond):
                ref.fields = (ast.String(sval=canonical(query.ref_name(ref))),)
    query.group_by = [c if c in query.key_exprs else canonical(c) for c in query.group_by]
    for out in query.outputs:
        if out.group_column:
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
    return TableMeta(a.relid, a.schema, f"{a.table} JOIN {b.table}", a.dataset, unit, a.max_rows_per_unit,
                     a.max_groups_per_unit, a.data_version, columns, source_sql=source)


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
