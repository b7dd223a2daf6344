"""How each foreign key of a table is kept in its synthetic copy (decided before the charge).

- to a table the DBA declared public (dp.declare_public, a vocabulary): the table is copied
  verbatim to the shadow schema, and the column is a choice among its keys whose
  distribution is measured with DP (pg_dp.synth.keys; a key of several columns chooses a
  referenced row and takes all its columns from it);
- to the table itself (employee.reports_to): another row of the copy (keys);
- to a protected table synthesized earlier in the same call: the parent copy's keys (a key of
  several columns takes all its columns from one parent row); along the privacy unit's path
  each child is attached to a synthetic parent (pg_dp.synth.relational), other keys draw
  parents uniformly;
- to a protected table that already has a synthetic copy in the shadow schema: the column
  takes that copy's key values, uniformly;
- otherwise (neither protected nor declared public) the key is not followed: the table is
  never read nor copied, and the column is modelled as a column of its own (NOTICE).

``plan(t, schema, siblings, notice)`` returns the kept keys as ``Link``s and sets the
domains of their columns (a key column's values are known from the plan: no DP bounds or
values are looked for).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..core import db
from . import keys, write
from .table import Target, key_values, ref_info

VOCABULARY = "vocabulary"
SELF = "self"
SIBLING = "synthetic parent (this call)"
COPY = "synthetic parent"


@dataclass
class Link:
    """A foreign key the copy keeps, and how its columns are generated."""
    name: str                     # the constraint's name (kept in the copy)
    kind: str                     # VOCABULARY, SELF, SIBLING or COPY
    column: str                   # the (first) referencing column
    refcol: str                   # the (first) referenced column
    cols: list[str]
    refcols: list[str]
    source: str                   # the referenced table, qualified
    target: str | None            # its copy in the shadow schema (None: the copy itself)
    ref: int                      # the referenced table's oid
    in_model: bool = False        # a vocabulary of at most keys.MODEL_KEYS keys: a categorical column of the model
    histogram: bool = False       # a DP histogram of its own over the referenced keys (rows)
    implied: bool = False         # set from the row a key of several columns chooses
    nullable: bool = False        # (histogram) the key may be NULL: a cell of its own
    also: list[dict] = field(default_factory=list)    # (several columns) keys of its columns to other public tables
    parent: Any = None            # SIBLING: the parent table's TableState (pg_dp.synth.state)

    def describe(self, attached: bool = False) -> str:
        """How the key is generated (dry run and plan NOTICE)."""
        if self.kind == SELF:
            return "another row of the copy, uniformly, never the row itself; the NULL share modelled"
        if self.implied:
            return "set from the row chosen for a key of several columns"
        if self.histogram:
            what = "referenced rows" if len(self.cols) > 1 else "keys"
            return (f"public table, copied; a choice among its {what} from a DP histogram (rare ones spread uniformly)"
                    + ("; every column from the chosen row" if len(self.cols) > 1 else ""))
        if self.in_model:
            return "public table, copied; a categorical column of the model over its keys"
        return self.kind + (", children attached per parent" if attached else "")


def plan(t: Target, schema: str, siblings: dict, notice: Callable[..., None]) -> list[Link]:
    """The kept foreign keys of t (keys of several columns first), in the order they are planned."""
    links: list[Link] = []
    for fk in sorted(t.foreign_keys, key=lambda k: -len(k["cols"])):
        link = _link(t, schema, siblings, notice, fk, links)
        if link:
            links.append(link)
    _number_free_keys(t, notice)
    return links


def _number_free_keys(t: Target, notice):
    """A key of several columns with a whole-number column that nothing else constrains (no
    bounds, no public values, not a foreign key's) and no parent key to be numbered within:
    TPC-DS's (ss_item_sk, ss_ticket_number).
    Drawn from the model, such a column's values repeat (its DP bounds may even be a few
    buckets wide) and nearly every row breaks the key; the last such column is regenerated as
    a key of the copy instead (fresh numbers, one per row), so the key holds by construction.
    Decided once the keys are planned: a column a kept key sets (a return's (ticket, item) from
    its sale line) is not free."""
    kept, parents = set(), set()
    for k in t.foreign_keys:
        info = ref_info(int(k["ref"]))
        if len(k["cols"]) == 1 or info["declared"]:
            kept.update(k["cols"])
        if len(k["cols"]) == 1 and info["protected"]:
            parents.update(k["cols"])
    for cols in t.uniques:
        if parents & set(cols):     # numbered within its parent (relational.distinct_within_parent)
            continue
        free = [c for c in cols if c not in kept and c != t.unit and c not in t.keys
                and t.column(c).fam == "integer" and t.column(c).kind == "numeric" and c in t.needs_bounds]
        if not free:
            continue
        col = t.column(free[-1])
        t.keys.append(col.name)
        t.needs_bounds.remove(col.name)
        col.kind, col.source = "identifier", "key"
        notice(f"column {col.name} of the key ({', '.join(cols)}) of {t.qualified} is regenerated as a key of its "
               "own (fresh numbers, one per row): nothing else bounds its values",
               hint=f"Declare its bounds (dp.set_bounds('{t.qualified}', '{col.name}', lower, upper)) to have it "
                    "modelled instead.")


def _set_domain(t: Target, column: str, kind: str, source: str, values=None, choices=None):
    """A key column's domain is known from the plan: no DP bounds or values to find for it."""
    col = t.column(column)
    col.kind, col.source = kind, source
    if values is not None:
        col.values, col.other = values, False
    if choices is not None:
        col.choices = choices
    for needs in (t.needs_bounds, t.needs_values):
        if column in needs:
            needs.remove(column)


def _link(t: Target, schema: str, siblings: dict, notice, fk, links: list[Link]) -> Link | None:
    ref = int(fk["ref"])
    if len(fk["cols"]) != 1 and ref in siblings and ref != t.relid:
        return _sibling_link(t, schema, notice, fk, list(fk["cols"]), list(fk["refcols"]), siblings[ref])
    if len(fk["cols"]) != 1:
        return _composite_link(t, schema, notice, fk, links)
    column, refcol = fk["cols"][0], fk["refcols"][0]
    if ref == t.relid:
        return _self_link(t, notice, fk, column, refcol)
    if ref in siblings:
        if any(column in k.cols for k in links if k.kind == SIBLING):
            notice(f"foreign key {fk['conname']} is not kept: its column {column} is set from the parent row "
                   f"a key of several columns chooses", hint="A column takes one parent's value.")
            return None
        return _sibling_link(t, schema, notice, fk, [column], [refcol], siblings[ref])
    if column in t.keys:
        notice(f"foreign key {fk['conname']} is not kept: its column {column} is also a key, "
               "and keys are regenerated", hint="Keys of a synthetic copy are new values.")
        return None
    info = ref_info(ref)
    if not info["protected"] and not info["declared"]:
        # never read, never copied: an undeclared table may hold anything (names, phones)
        notice(f"foreign key {fk['conname']} is not kept: {info['q']} is neither protected nor declared "
               f"public; column {column} is modelled on its own",
               hint=f"If its rows are public, declare it: SELECT dp.declare_public('{info['q']}'); "
                    "if they are sensitive, protect it in this dataset.")
        return None
    if not info["protected"] and write.foreign_code(ref):
        notice(f"foreign key {fk['conname']} is not kept: {info['q']} runs functions of other roles "
               "when written", hint="Its copy would run them with the extension owner's rights.")
        return None
    if not info["protected"]:          # declared public
        target = f"{db.quote_ident(schema)}.{db.quote_ident(info['relname'])}"
        link = Link(fk["conname"], VOCABULARY, column, refcol, [column], [refcol], info["q"], target, ref)
        if any(column in k.cols for k in links if k.histogram or k.kind == SIBLING):
            link.implied = True         # set from the row a key of several columns chooses
            return link
        return _public_link(t, link)
    copy = db.execute(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS q FROM dp_internal.synthetic_tables s "
        "JOIN pg_catalog.pg_class c ON c.oid = s.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE s.source = $1 AND n.nspname = $2", [ref, schema], ["oid", "text"])
    if not copy:
        notice(f"foreign key {fk['conname']} is not kept: {info['q']} has no synthetic copy in "
               f"{schema} yet", hint=f"Synthesize {info['q']} first, then this table.")
        return None
    target = copy[0]["q"]
    _set_domain(t, column, "identifier", f"foreign key to {target}", choices=key_values(target, refcol))
    return Link(fk["conname"], COPY, column, refcol, [column], [refcol], info["q"], target, ref)


def _public_link(t: Target, link: Link) -> Link:
    """A key to a declared public table: a small vocabulary stays a categorical column of the
    model; a larger one gets a DP histogram of its own."""
    column, col = link.column, t.column(link.column)
    if col.kind == "identifier":        # the privacy unit: regenerated, the key drawn uniformly
        _set_domain(t, column, "identifier", f"foreign key to {link.source}",
                    choices=key_values(link.source, link.refcol))
        return link
    values = key_values(link.source, link.refcol, limit=keys.MODEL_KEYS + 1)
    if len(values) <= keys.MODEL_KEYS:
        _set_domain(t, column, "categorical", f"foreign key to {link.source}", values=values)
        link.in_model = True
        return link
    _set_domain(t, column, "identifier", f"foreign key to {link.source}, DP histogram over its keys", choices=[None])
    link.histogram, link.nullable = True, col.nullable
    return link


def _composite_link(t: Target, schema: str, notice, fk, links: list[Link]) -> Link | None:
    """A key of several columns: kept when it references a declared public table and none of
    its columns is generated otherwise (a key, the unit, a key to a protected table)."""
    cols, ref = list(fk["cols"]), int(fk["ref"])
    info = ref_info(ref)
    others = {c for k in t.foreign_keys if len(k["cols"]) == 1 and int(k["ref"]) != ref
              and not ref_info(int(k["ref"]))["declared"] for c in k["cols"]}
    taken = {c for k in links if k.histogram for c in k.cols}
    clash = [c for c in cols if c in t.keys or c == t.unit or c in others or c in taken]
    if not info["declared"] or write.foreign_code(ref) or clash:
        why = (f"{', '.join(clash)} " + ("is" if len(clash) == 1 else "are") + " generated otherwise" if clash
               else f"{info['q']} is not declared public" if not info["declared"]
               else f"{info['q']} runs functions of other roles when written")
        notice(f"foreign key {fk['conname']} ({', '.join(cols)}) is not kept: {why}; its columns are "
               "modelled on their own",
               hint=f"Declare {info['q']} public (dp.declare_public) to keep a key of several columns.")
        return None
    target = f"{db.quote_ident(schema)}.{db.quote_ident(info['relname'])}"
    also = []
    for k in t.foreign_keys:   # single-column keys of these columns to other public tables
        if len(k["cols"]) == 1 and k["cols"][0] in cols and int(k["ref"]) != ref:
            other = ref_info(int(k["ref"]))
            also.append({"column": k["cols"][0], "refcol": k["refcols"][0], "source": other["q"]})
    for c in cols:
        _set_domain(t, c, "identifier", f"foreign key {fk['conname']} to {info['q']}, DP histogram over its rows",
                    choices=[None])
    return Link(fk["conname"], VOCABULARY, cols[0], fk["refcols"][0], cols, list(fk["refcols"]), info["q"], target,
                ref, histogram=True, also=also, nullable=all(t.column(c).nullable for c in cols))


def _self_link(t: Target, notice, fk, column: str, refcol: str) -> Link | None:
    """A self-reference: another row of the copy (pg_dp.synth.keys); the NULL share is modelled."""
    if column in t.keys or column == t.unit or refcol not in t.keys:
        notice(f"foreign key {fk['conname']} is not kept: it references the table itself"
               + (f" and {column} is regenerated" if column in t.keys or column == t.unit
                  else f" through {refcol}, which is not a regenerated key")
               + f"; column {column} is modelled on its own",
               hint="A self-reference is kept when it references the table's single-column key.")
        return None
    if t.column(column).nullable:    # set or NULL: a two-code column of the model
        _set_domain(t, column, "categorical", "self-reference (set or NULL)", values=[keys.SELF])
    else:
        _set_domain(t, column, "identifier", "self-reference", choices=[keys.SELF])
    return Link(fk["conname"], SELF, column, refcol, [column], [refcol], t.qualified, None, t.relid)


def _sibling_link(t: Target, schema: str, notice, fk, cols: list[str], refcols: list[str], parent) -> Link | None:
    """A key (of one column or several) to a table synthesized earlier in the same call: the
    columns take the values of one row of the parent copy (read when the child is written:
    pg_dp.synth.run); whether children are attached per parent is pg_dp.synth.relational's
    choice.  TPC-DS store_returns (sr_item_sk, sr_ticket_number) -> store_sales: every
    return names a synthetic sale, both columns from it."""
    regenerated = [c for c in cols if c in t.keys]
    if regenerated:
        notice(f"foreign key {fk['conname']} is not kept: its column {regenerated[0]} is also a key, "
               "and keys are regenerated", hint="Keys of a synthetic copy are new values.")
        return None
    target = f"{db.quote_ident(schema)}.{db.quote_ident(parent.t.name)}"
    for c in cols:
        _set_domain(t, c, "identifier", f"foreign key to {target}", choices=[None])
    return Link(fk["conname"], SIBLING, cols[0], refcols[0], list(cols), list(refcols), parent.t.qualified, target,
                parent.t.relid, parent=parent)
