"""The write path of dp_synthesize: every statement that creates or fills a shadow table.

Everything else in pg_dp.synth reads the source and computes rows; this module alone
writes to the shadow schema, and it never does so with the extension owner's rights.

**Whose rights.**  The executor is the extension owner (a superuser).  A copy carries
expressions taken from the source's catalog (CHECKs, defaults, domains' CHECKs) and values
cast to the source's types, and any of them may be code another role wrote.  So:

1. every statement that creates, fills, checks or changes a shadow table runs as the
   NOLOGIN role dp_shadow_writer (``as_writer``: dp_internal.as_writer, src/writer/writer.c), in a
   security-restricted operation with search_path pinned and every setting restored after;
   it holds USAGE and CREATE on the shadow schemas and what it is granted on the executor's
   staging tables (synthetic rows only), nothing else; after each batch the writer must own
   nothing outside the shadow schemas (``dp_internal.writer_strays``), else all is rolled back;
2. the copy's DDL is pg_dp's own (``plan_copy``): base types (a domain becomes its base
   type, unless only superusers may change it and its CHECKs are trusted), NOT NULL, PRIMARY KEY / UNIQUE, plain-column indexes, identity, and only those
   CHECKs and defaults -- the table's, and its domains' CHECKs rewritten on the column --
   whose every function, operator and type pg_dp can vouch for
   (dp_internal.expression_foreign_code: built in and harmless, or a superuser's and not
   volatile); the others are left out, with a NOTICE, before anything is charged;
3. before any charge (``check_source``), a table whose column types would run foreign code
   (casts, I/O, domains: pg_dp.core.trust), or whose generated columns would, is refused
   (42501); the fresh copy is checked again after it is created and after it is filled, in
   the same transaction, so that a function or domain changed meanwhile rolls it all back.

**Who replaces what.**  A copy records who made it (``dp.synthetic_tables.made_by``, its
comment).  It is replaced only by the role that made it, or by a pg_dp administrator
(without the previous copy's grants: grants never move to a copy someone else made); anyone
else is refused before the charge.

Its interface:

- ``foreign_code(relid)``: why a table cannot be written or copied at all (asked before the
  charge; a vocabulary that has any is not copied).
- ``check_source(relid, schema, name)``: before the charge, refuse what cannot be written
  (``foreign_code``, a copy made by another role) and say what the copy leaves out.
- ``TableWrite``: what writing one synthetic table needs, fixed by the plan before any row
  is sampled (where it goes, its columns, serial and identity columns, the foreign keys the
  copy keeps, the declared public tables it references, the role that gets SELECT).
- ``stage(w, rows, render)``: the sampled rows, rendered as text a chunk at a time by
  ``render(rows, first)`` (column -> list of text, keys numbered from ``first``), into a
  TEMP staging table with their sample index (``pg_dp_idx``), cast to the copy's types by
  the writer.
- ``misfits(w)``: the staged rows that break a kept CHECK (the table's, or a domain's) or a
  multi-column UNIQUE (the caller replaces them with new samples).
- ``swap(w, bad, n, provenance, after_insert)``: the copy built under a temporary name from
  ``plan_copy``, its own sequences, the public tables it references copied
  (``copy_public``), the first n good staged rows inserted, ``after_insert(table, execute)``
  run (self-references; ``execute(sql, params)`` runs as the writer), then the previous copy
  dropped and the new one renamed in its place, its foreign keys added, grants carried
  over when the same role made both, comments and provenance recorded.  All of it in the
  executor's transaction: a failure leaves the previous copy in place.
- ``copy_public(relids, schema, caller)``: declared public tables copied verbatim, with the
  foreign keys among them (see below).

Public tables are declared, never guessed: only declared tables are ever copied (a table
that is neither protected nor declared is never read into the shadow schema, whoever
calls dp_synthesize: the DBA can read every table, so "the caller may read it" would copy
an employee table with names and phones next to the synthetic rows).  A public copy has
the source's columns (base types), NOT NULL, PRIMARY KEY / UNIQUE constraints and comments,
and the foreign keys among declared public tables; CHECKs, defaults, generated expressions
and index expressions are left out.  Rows are only added: a row already in the copy (by its
keys) stays, since synthetic children may point at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import datetime as dt
import json
import re
from typing import Callable

import numpy as np

from ..core import catalog, db, trust
from ..core.errors import DPError

STAGE = "pg_dp_synth_stage"
STAGE_TEXT = "pg_dp_synth_stage_text"
PUBLIC_STAGE = "pg_dp_public_stage"
STAGE_CHUNK = 50_000                  # rows turned into text and sent to the server at a time
WRITER = "dp_shadow_writer"
FOREIGN = "42501"


@dataclass
class ForeignKey:
    """A foreign key the copy keeps: its name, columns, and the referenced table and columns
    (target None: the copy itself, a self-reference)."""
    name: str
    cols: list[str]
    refcols: list[str]
    target: str | None


@dataclass
class Column:
    """A column of a copy, as pg_dp writes it."""
    name: str
    type: str                       # SQL of its type: the base type, or a superuser's trusted domain
    base: str = ""                  # SQL of its base type (staged as it: the domain's CHECKs are misfits)
    collate: str | None = None      # COLLATE clause, when not the type's default
    notnull: bool = False
    default: str | None = None      # a checked default expression
    generated: str | None = None    # a checked generation expression (STORED)
    identity: str = ""              # 'a' (ALWAYS), 'd' (BY DEFAULT) or ''
    serial: bool = False            # its default takes a sequence: the copy gets a sequence of its own
    comment: str | None = None


@dataclass
class CopyDdl:
    """The DDL pg_dp writes for a copy (plan_copy): only what it generated or checked."""
    columns: list[Column] = field(default_factory=list)
    checks: list[tuple[str, str]] = field(default_factory=list)      # (name, expression)
    value_checks: list[tuple[str, str]] = field(default_factory=list)  # a kept domain's, on the column: misfits only
    keys: list[tuple[str, list[str], bool]] = field(default_factory=list)   # ('p'|'u', columns, NULLS NOT DISTINCT)
    indexes: list[tuple[bool, str, list[str], bool]] = field(default_factory=list)  # (unique, method, cols, nnd)
    left_out: list[str] = field(default_factory=list)                 # NOTICE lines: what the copy leaves out
    refused: list[str] = field(default_factory=list)                  # why the table cannot be written

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@dataclass
class TableWrite:
    """What writing one synthetic table needs (see the module's docstring)."""
    source: int                                   # oid of the protected table
    source_name: str                              # its qualified name
    schema: str                                   # the shadow schema (not quoted)
    name: str                                     # the copy's name there (not quoted)
    columns: list[tuple[str, str]]                # (name, SQL type the value is rendered for), table order
    caller: str                                   # quoted role name that gets SELECT on the copy
    domains: dict[str, str] = field(default_factory=dict)     # column -> its domain type (informative)
    checks: list[str] = field(default_factory=list)           # the source's CHECKs (informative: plan_copy decides)
    uniques: list[list[str]] = field(default_factory=list)    # multi-column UNIQUEs
    serials: list[str] = field(default_factory=list)          # columns whose default takes nextval
    integers: set[str] = field(default_factory=set)           # integer columns (sequences set past them)
    identity_always: bool = False
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    vocabularies: list[int] = field(default_factory=list)     # declared public tables it references
    ddl: CopyDdl | None = None                                # plan_copy's, computed once per write


def drop_temp(name: str):
    db.drop_table_if_present(f"pg_temp.{name}")


# ----------------------------------------------------------------- the writer
def as_writer(statements: list[str], params: list | None = None) -> list[int]:
    """Run statements as dp_shadow_writer (module docstring); the first column of the last
    one's rows.  Afterwards the writer must own nothing outside the shadow schemas."""
    rows = db.execute("SELECT i FROM dp_internal.as_writer($1::text[], $2::text[]) i",
                      [list(statements), None if params is None else [_param(p) for p in params]],
                      ["text[]", "text[]"])
    strays = [r["s"] for r in db.execute("SELECT s FROM dp_internal.writer_strays() s")]
    if strays:
        raise DPError("a synthetic copy's code created objects outside the shadow schema: " + ", ".join(strays),
                      hint="Nothing was written. An expression of the source ran code that creates objects; "
                           "dp.doctor() and the table's CHECKs, defaults and domains show which.",
                      sqlstate=FOREIGN)
    return [r["i"] for r in rows]


def _param(value) -> str | None:
    """A parameter of the writer's statements, as text: a list becomes an array literal
    (cast it in SQL: $1::text[], $2::int8[])."""
    if value is None:
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return "{" + ",".join("NULL" if v is None else
                              '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value) + "}"
    return str(value)


def _array(values) -> list[int]:
    return [int(v) for v in values]


def writer_execute(sql: str, params: list | None = None):
    """One statement as the writer, with parameters $1..$n passed as text (lists as array
    literals: write $1::text[] in the statement): after_insert's `execute`."""
    as_writer([sql], params)


def shadow_schema(role: int, admin: bool) -> str:
    """Where a role's dp_synthesize writes: the shared shadow schema (the synthetic_schema setting)
    for a pg_dp administrator, a schema of its own for anyone else (dp_internal.personal_schema),
    so that nobody but an administrator writes what other roles read."""
    shared = db.setting("synthetic_schema") or "dp_synthetic"
    if admin:
        return shared
    return db.execute("SELECT dp_internal.personal_schema($1, $2) AS s", [role, shared], ["oid", "text"])[0]["s"]


def _personal_mark(role: int) -> str:
    return f"pg_dp: synthetic copies made by role oid {int(role)}"


def check_schema(schema: str):
    """A shadow schema that exists must be pg_dp's: owned by a superuser or a pg_dp administrator
    (whoever owns a schema may drop and replace the tables in it), and a personal one must be the
    caller's (pg_dp marks it when it creates it)."""
    rows = db.execute(
        "SELECT pg_catalog.pg_get_userbyid(n.nspowner) AS owner, r.rolsuper OR "
        "pg_catalog.has_table_privilege(n.nspowner, 'dp_internal.datasets', 'UPDATE') AS trusted, "
        "pg_catalog.obj_description(n.oid, 'pg_namespace') AS mark FROM pg_catalog.pg_namespace n "
        "JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner WHERE n.nspname = $1", [schema], ["text"])
    if not rows:
        return
    if not rows[0]["trusted"]:
        raise DPError(f"schema {schema} is owned by {rows[0]['owner']}, who could drop or replace the synthetic "
                      "copies in it", sqlstate=FOREIGN,
                      hint="Nothing was charged. A superuser makes it pg_dp's (ALTER SCHEMA ... OWNER TO) or drops it; "
                           "or an administrator sets another shadow schema (dp.set_setting('synthetic_schema', ...)).")
    role = catalog.outer_role()
    if schema != (db.setting("synthetic_schema") or "dp_synthetic") and not catalog.is_admin(role) \
            and rows[0]["mark"] != _personal_mark(role):
        raise DPError(f"schema {schema} exists and is not the shadow schema pg_dp made for you", sqlstate=FOREIGN,
                      hint="Nothing was charged. An administrator renames or drops that schema.")


def ensure_schema(schema: str):
    """The shadow schema exists (created by the owner; a personal one readable by its role only)
    and the writer may use it."""
    q = db.quote_ident(schema)
    check_schema(schema)
    if not db.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", [schema], ["text"]):
        db.execute(f"CREATE SCHEMA {q}")
        role = catalog.outer_role()
        if schema != (db.setting("synthetic_schema") or "dp_synthetic") and not catalog.is_admin(role):
            db.execute(f"COMMENT ON SCHEMA {q} IS {db.quote_literal(_personal_mark(role))}")
    db.execute(f"GRANT USAGE, CREATE ON SCHEMA {q} TO {WRITER}")


# ----------------------------------------------------------------- what a copy may carry
def foreign_code(relid: int) -> list[str]:
    """Why a copy of the table cannot be written at all: the owner would run another role's
    code reading it (its column types: casts, I/O, domain CHECKs), or its generated
    columns' expressions cannot be vouched for.  Asked before anything is charged."""
    ddl = plan_copy(relid)
    return ddl.refused


def plan_copy(relid: int) -> CopyDdl:
    """The copy's DDL, from the catalog: base types, NOT NULL, keys, plain-column indexes,
    identity; CHECKs (the table's, and its domains' rewritten on the column) and defaults
    only when dp_internal.expression_foreign_code finds nothing in them."""
    ddl = CopyDdl()
    for code in trust.column_code(relid):
        ddl.refused.append(f"its column types would run {code}")
    cols = db.execute(
        """
        WITH RECURSIVE chain AS (
            SELECT a.attnum, a.atttypid AS t, a.atttypmod AS mod, 0 AS depth
            FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
            UNION ALL
            SELECT c.attnum, y.typbasetype, y.typtypmod, c.depth + 1 FROM chain c
            JOIN pg_catalog.pg_type y ON y.oid = c.t WHERE y.typtype = 'd' AND c.depth < 32
        ), elem AS (   -- an array of a domain: the chain of its element
            SELECT a.attnum, e.oid AS t, 0 AS depth FROM pg_catalog.pg_attribute a
            JOIN pg_catalog.pg_type y ON y.oid = a.atttypid JOIN pg_catalog.pg_type e ON e.oid = y.typelem
            WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND y.typcategory = 'A' AND e.typtype = 'd'
        ), echain AS (
            SELECT attnum, t, depth FROM elem
            UNION ALL
            SELECT c.attnum, y.typbasetype, c.depth + 1 FROM echain c
            JOIN pg_catalog.pg_type y ON y.oid = c.t WHERE y.typtype = 'd' AND c.depth < 32
        )
        SELECT a.attnum, a.attname::text AS name, a.attnotnull, a.attidentity::text AS identity,
               a.attgenerated::text AS generated, a.atttypid::regtype::text AS declared,
               (SELECT pg_catalog.format_type(c.t, c.mod) FROM chain c WHERE c.attnum = a.attnum
                ORDER BY c.depth DESC LIMIT 1) AS base,
               (SELECT pg_catalog.format_type(b.typarray, NULL) FROM echain c JOIN pg_catalog.pg_type b ON b.oid = c.t
                WHERE c.attnum = a.attnum ORDER BY c.depth DESC LIMIT 1) AS base_array,
               ARRAY(SELECT c.t::int8 FROM chain c JOIN pg_catalog.pg_type y ON y.oid = c.t
                     WHERE c.attnum = a.attnum AND y.typtype = 'd' ORDER BY c.depth) AS domains,
               ARRAY(SELECT c.t::int8 FROM echain c JOIN pg_catalog.pg_type y ON y.oid = c.t
                     WHERE c.attnum = a.attnum AND y.typtype = 'd' ORDER BY c.depth) AS element_domains,
               EXISTS (SELECT 1 FROM chain c JOIN pg_catalog.pg_type y ON y.oid = c.t
                       WHERE c.attnum = a.attnum AND y.typtype = 'd' AND y.typnotnull) AS domain_notnull,
               pg_catalog.format_type(a.atttypid, a.atttypmod) AS declared_sql, a.atttypid::int8 AS typid,
               NOT EXISTS (SELECT 1 FROM (SELECT t FROM chain c WHERE c.attnum = a.attnum
                                          UNION ALL SELECT t FROM echain c WHERE c.attnum = a.attnum) d
                           JOIN pg_catalog.pg_type y ON y.oid = d.t JOIN pg_catalog.pg_roles r ON r.oid = y.typowner
                           WHERE y.typtype = 'd' AND NOT r.rolsuper) AS superusers_domains,
               CASE WHEN a.attcollation <> 0 AND a.attcollation <> (
                        SELECT y.typcollation FROM chain c JOIN pg_catalog.pg_type y ON y.oid = c.t
                        WHERE c.attnum = a.attnum ORDER BY c.depth DESC LIMIT 1)
                    THEN pg_catalog.format('%I.%I', cn.nspname, co.collname) END AS collate,
               d.oid::int8 AS attrdef, pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS expr,
               EXISTS (SELECT 1 FROM pg_catalog.pg_depend p WHERE p.classid = 'pg_catalog.pg_attrdef'::regclass
                       AND p.objid = d.oid AND p.refclassid = 'pg_catalog.pg_class'::regclass
                       AND p.refobjid IN (SELECT s.oid FROM pg_catalog.pg_class s WHERE s.relkind = 'S')) AS serial,
               pg_catalog.col_description($1, a.attnum) AS comment
        FROM pg_catalog.pg_attribute a
        LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
        LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
        LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
        """, [relid], ["oid"])
    for c in cols:
        base = c["base_array"] or c["base"]
        col = Column(c["name"], base, base, c["collate"], bool(c["attnotnull"] or c["domain_notnull"]),
                     identity=c["identity"] or "", serial=bool(c["serial"]), comment=c["comment"])
        # a domain only superusers may change, whose CHECKs pg_dp can vouch for, stays the column's type
        # (its CHECKs are met by resampling, evaluated by the writer); any other becomes its base type
        if (c["domains"] or c["element_domains"]) and c["superusers_domains"] \
                and not trust.type_code([int(c["typid"])]):
            col.type, col.notnull = c["declared_sql"], bool(c["attnotnull"])
            for domain in c["domains"]:
                _domain_checks(ddl, c["name"], int(domain), ddl.value_checks)
        elif c["domains"]:
            ddl.left_out.append(f"column {c['name']} is of domain {c['declared']}: the copy's column is of its base "
                                f"type {col.type}, with the domain's CHECKs and NOT NULL on the column")
            for domain in c["domains"]:
                _domain_checks(ddl, c["name"], int(domain), ddl.checks)
        if c["element_domains"] and col.type == base:
            ddl.left_out.append(f"column {c['name']} is an array of domain {c['declared']}: the copy's column is "
                                f"{col.type}, without the CHECKs of its elements")
        if c["attrdef"] is not None and c["generated"] == "s":
            code = _expression_code("pg_attrdef", c["attrdef"], relid)
            if code:
                ddl.refused.append(f"generated column {c['name']} would run {code}")
            col.generated = c["expr"]
        elif c["attrdef"] is not None and not col.serial:
            code = _expression_code("pg_attrdef", c["attrdef"], relid)
            if code:
                ddl.left_out.append(f"the default of column {c['name']} is left out: it would run {code}")
            else:
                col.default = c["expr"]
        ddl.columns.append(col)
    for k in db.execute(
            "SELECT k.oid::int8 AS oid, k.conname::text AS name, k.contype::text AS kind, "
            "pg_catalog.pg_get_constraintdef(k.oid) AS def, coalesce(i.indnullsnotdistinct, false) AS nnd, "
            "ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, o) JOIN pg_catalog.pg_attribute a "
            "ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.o) AS cols "
            "FROM pg_catalog.pg_constraint k LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = k.conindid "
            "WHERE k.conrelid = $1 AND k.contype IN ('c', 'p', 'u') ORDER BY k.contype, k.conname", [relid], ["oid"]):
        if k["kind"] in ("p", "u"):
            ddl.keys.append((k["kind"], list(k["cols"]), bool(k["nnd"])))
            continue
        code = _expression_code("pg_constraint", k["oid"], relid)
        expression = _check_expression(k["def"])
        if code:
            ddl.left_out.append(f"CHECK {k['name']} is left out: it would run {code}")
        elif expression is None:
            ddl.left_out.append(f"CHECK {k['name']} is left out: pg_dp cannot read it back")
        else:
            ddl.checks.append((k["name"], expression))
    for i in db.execute(
            "SELECT i.indexrelid::regclass::text AS name, i.indisunique AS is_unique, m.amname::text AS method, "
            "i.indexprs IS NOT NULL OR i.indpred IS NOT NULL AS complex, i.indnullsnotdistinct AS nnd, "
            "EXISTS (SELECT 1 FROM unnest(i.indclass::oid[]) u(c) JOIN pg_catalog.pg_opclass o ON o.oid = u.c "
            "        WHERE NOT o.opcdefault) AS special, "
            "ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(n, o) "
            "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.n "
            "WHERE u.o <= i.indnkeyatts ORDER BY u.o) AS cols "
            "FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_catalog.pg_am m ON m.oid = c.relam WHERE i.indrelid = $1 AND NOT EXISTS "
            "(SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid) "
            "ORDER BY 1", [relid], ["oid"]):
        if i["complex"] or i["special"]:
            ddl.left_out.append(f"index {i['name']} is left out (an expression, a WHERE clause or an operator "
                                "class of its own)")
        else:
            ddl.indexes.append((bool(i["is_unique"]), i["method"], list(i["cols"]), bool(i["nnd"])))
    return ddl


def _expression_code(catalog_name: str, objid: int, relid: int) -> str | None:
    """What a stored expression calls that pg_dp cannot vouch for ('' / None: nothing)."""
    rows = db.execute(
        f"SELECT object, via FROM dp_internal.expression_foreign_code('pg_catalog.{catalog_name}'::regclass, $1, $2)",
        [objid, relid], ["oid", "oid"])
    if not rows:
        return None
    return "; ".join(f"{r['object']}" + (f" ({r['via']})" if r["via"] not in ("called", "named") else "")
                     for r in rows)


_CHECK = re.compile(r"\s*CHECK\s*\((.*)\)(\s+NO INHERIT)?(\s+NOT VALID)?\s*", re.S)


def _check_expression(definition: str) -> str | None:
    m = _CHECK.fullmatch(definition or "")
    return m.group(1) if m else None


def _domain_checks(ddl: CopyDdl, column: str, domain: int, into: list):
    """A domain's CHECKs as CHECKs on the column (VALUE -> the column), when they can be vouched for."""
    for k in db.execute(
            "SELECT k.oid::int8 AS oid, k.conname::text AS name, k.contypid::regtype::text AS domain, "
            "pg_catalog.pg_get_constraintdef(k.oid) AS def FROM pg_catalog.pg_constraint k "
            "WHERE k.contypid = $1 AND k.contype = 'c' ORDER BY k.conname", [domain], ["oid"]):
        code = _expression_code("pg_constraint", k["oid"], 0)
        expression = _check_expression(k["def"])
        rewritten = None if expression is None else _on_column(expression, column)
        if code:
            ddl.left_out.append(f"CHECK {k['name']} of domain {k['domain']} is left out: it would run {code}")
        elif rewritten is None:
            ddl.left_out.append(f"CHECK {k['name']} of domain {k['domain']} is left out: pg_dp cannot rewrite it "
                                f"on column {column}")
        else:
            into.append((f"{column[:30]}_{k['name'][:30]}", rewritten))


# a deparsed expression's tokens: quoted identifiers, string constants (E'...' with escapes),
# and words; VALUE is the domain's value only as the bare upper-case word pg_get_constraintdef writes
_TOKENS = re.compile(r"""("(?:[^"]|"")*")|([Ee]'(?:[^'\\]|\\.|'')*')|('(?:[^']|'')*')|([A-Za-z_][A-Za-z0-9_$]*)""", re.S)


def _on_column(expression: str, column: str) -> str | None:
    """A domain CHECK's expression with VALUE replaced by the (quoted) column."""
    quoted = db.quote_ident(column)
    out, found, pos = [], False, 0
    for m in _TOKENS.finditer(expression):
        out.append(expression[pos:m.start()])
        token = m.group(0)
        if m.group(4) == "VALUE":
            out.append(f"({quoted})")
            found = True
        else:
            out.append(token)
        pos = m.end()
    out.append(expression[pos:])
    return "".join(out) if found else None


def copy_maker(schema: str, name: str) -> dict | None:
    """The existing table schema.name: its oid, whether dp_synthesize wrote it, who made it and when."""
    rows = db.execute(
        "SELECT c.oid::int8 AS oid, s.relid IS NOT NULL AS ours, s.made_by::int8 AS made_by, "
        "pg_catalog.pg_get_userbyid(s.made_by) AS maker, s.created_at::text AS made_at, "
        "pg_catalog.pg_get_userbyid(c.relowner) AS owner FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN dp_internal.synthetic_tables s ON s.relid = c.oid "
        "WHERE n.nspname = $1 AND c.relname = $2", [schema, name], ["text", "text"])
    return rows[0] if rows else None


def _may_replace(old: dict | None, schema: str, name: str):
    """A copy is replaced only by the role that made it, or by a pg_dp administrator."""
    if old is None:
        return
    if not old["ours"]:
        raise DPError(f"{schema}.{name} exists and was not written by dp_synthesize",
                      hint="Drop or rename it, or choose another shadow schema with "
                           "dp.set_setting('synthetic_schema', ...).", sqlstate="42P07")
    role = catalog.outer_role()
    if old["made_by"] != role and not catalog.is_admin(role):
        maker = old["maker"] or "an unknown role"
        raise DPError(f"{schema}.{name} is a synthetic copy made by {maker} ({old['made_at']}); "
                      "only they or a pg_dp administrator may replace it", sqlstate=FOREIGN,
                      hint="Nothing was charged. Read that copy if you are granted it, or ask an administrator.")


def check_source(relid: int, schema: str, name: str, notice: Callable[[str], None]) -> CopyDdl:
    """Before the charge: refuse what cannot be written, and say what the copy leaves out."""
    ddl = plan_copy(relid)
    if ddl.refused:
        table = db.execute("SELECT $1::regclass::text AS t", [relid], ["oid"])[0]["t"]
        raise DPError(f"{table} cannot be synthesized: " + "; ".join(ddl.refused), sqlstate=FOREIGN,
                      hint="Nothing was charged. pg_dp never runs another role's functions with its own rights: a "
                           "superuser can take ownership of them (ALTER FUNCTION ... OWNER TO), or drop the casts, "
                           "domain constraints and generated columns that call them.")
    check_schema(schema)
    _may_replace(copy_maker(schema, name), schema, name)
    if ddl.left_out:
        notice("the copy leaves out: " + "; ".join(ddl.left_out))
    return ddl


# ----------------------------------------------------------------- the synthetic rows
def _plan(w: TableWrite) -> CopyDdl:
    if w.ddl is None:
        w.ddl = plan_copy(w.source)
        if w.ddl.refused:
            raise DPError(f"{w.source_name} cannot be synthesized: " + "; ".join(w.ddl.refused), sqlstate=FOREIGN,
                          hint="It changed since the plan; nothing was written.")
    return w.ddl


def stage(w: TableWrite, rows: np.ndarray, render: Callable[[np.ndarray, int], dict[str, list]]) -> int:
    """Write the given sample rows to a TEMP table, a chunk at a time (text is built per chunk).

    The owner writes text only; the writer casts it to the copy's types (a type's input
    function or a cast is code its owner may have written)."""
    ddl = _plan(w)
    names = [c for c, _ in w.columns]
    types = [ddl.column(c).base for c in names]
    drop_temp(STAGE)
    drop_temp(STAGE_TEXT)
    db.execute(f"CREATE TEMP TABLE {STAGE} (" + ", ".join(f"{db.quote_ident(c)} {t}" for c, t in zip(names, types))
               + ", pg_dp_idx int8) ON COMMIT DROP")
    db.execute(f"CREATE TEMP TABLE {STAGE_TEXT} (" + ", ".join(f"c{i} text" for i in range(len(names)))
               + ", idx int8) ON COMMIT DROP")
    db.execute(f"GRANT SELECT, INSERT ON pg_temp.{STAGE} TO {WRITER}")
    db.execute(f"GRANT SELECT ON pg_temp.{STAGE_TEXT} TO {WRITER}")
    casts = ", ".join(f"${i + 1}::text[]" for i in range(len(names)))
    load = (f"INSERT INTO pg_temp.{STAGE_TEXT} SELECT * FROM unnest({casts}, ${len(names) + 1}::int8[])")
    convert = (f"INSERT INTO pg_temp.{STAGE} SELECT " + ", ".join(f"c{i}::{t}" for i, t in enumerate(types))
               + f", idx FROM pg_temp.{STAGE_TEXT}")
    for start in range(0, rows.size, STAGE_CHUNK):
        chunk = rows[start:start + STAGE_CHUNK]
        text = render(chunk, start + 1)
        db.execute(load, [text[nm] for nm in names] + [list(range(start, start + chunk.size))],
                   ["text[]"] * len(names) + ["int8[]"])
        as_writer([convert])
        db.execute(f"TRUNCATE pg_temp.{STAGE_TEXT}")
        db.check_interrupts()
    return int(rows.size)


def misfits(w: TableWrite) -> set[int]:
    """Staged rows (pg_dp_idx) that break a kept CHECK (the table's or a domain's, rewritten on
    the column) or a multi-column UNIQUE; the writer evaluates them."""
    ddl = _plan(w)
    staged = {c for c, _ in w.columns}
    bad: set[int] = set()
    checks = [e for _, e in ddl.checks + ddl.value_checks]
    if checks:
        bad |= set(as_writer([f"SELECT pg_dp_idx FROM pg_temp.{STAGE} WHERE NOT ("
                              + " AND ".join(f"coalesce(({e}), true)" for e in checks) + ")"]))
    uniques = [list(u) for u in w.uniques] + [cols for kind, cols, _ in ddl.keys if len(cols) > 1] + \
        [cols for unique, _, cols, _ in ddl.indexes if unique and len(cols) > 1]
    seen = set()
    for cols in uniques:
        if tuple(cols) in seen or not set(cols) <= staged:
            continue
        seen.add(tuple(cols))
        q = ", ".join(db.quote_ident(c) for c in cols)
        bad |= set(as_writer([
            f"SELECT i FROM (SELECT pg_dp_idx AS i, row_number() OVER (PARTITION BY {q} ORDER BY pg_dp_idx) AS rn "
            f"FROM pg_temp.{STAGE} WHERE " + " AND ".join(f"{db.quote_ident(c)} IS NOT NULL" for c in cols)
            + ") s WHERE rn > 1"]))
    return bad


def _create_sql(ddl: CopyDdl, table: str) -> list[str]:
    """CREATE TABLE and its indexes and comments: the copy's DDL as pg_dp writes it."""
    parts = []
    for c in ddl.columns:
        sql = f"{db.quote_ident(c.name)} {c.type}"
        if c.collate:
            sql += f" COLLATE {c.collate}"
        if c.generated is not None:
            sql += f" GENERATED ALWAYS AS ({c.generated}) STORED"
        elif c.identity:
            sql += " GENERATED " + ("ALWAYS" if c.identity == "a" else "BY DEFAULT") + " AS IDENTITY"
        elif c.default is not None:
            sql += f" DEFAULT {c.default}"
        if c.notnull:
            sql += " NOT NULL"
        parts.append(sql)
    for name, expression in ddl.checks:
        parts.append(f"CONSTRAINT {db.quote_ident(name)} CHECK ({expression})")
    for kind, cols, nnd in ddl.keys:
        parts.append(("PRIMARY KEY" if kind == "p" else "UNIQUE" + (" NULLS NOT DISTINCT" if nnd else ""))
                     + " (" + ", ".join(db.quote_ident(c) for c in cols) + ")")
    out = [f"CREATE TABLE {table} (" + ", ".join(parts) + ")"]
    for unique, method, cols, nnd in ddl.indexes:
        out.append(f"CREATE {'UNIQUE ' if unique else ''}INDEX ON {table} USING {db.quote_ident(method)} ("
                   + ", ".join(db.quote_ident(c) for c in cols) + ")" + (" NULLS NOT DISTINCT" if nnd else ""))
    for c in ddl.columns:
        if c.comment is not None:
            out.append(f"COMMENT ON COLUMN {table}.{db.quote_ident(c.name)} IS {db.quote_literal(c.comment)}")
    return out


def verify_copy(table: str, source_name: str):
    """The written copy references nothing pg_dp cannot vouch for (checked after it is created
    and after it is filled: a function or domain changed meanwhile rolls the write back)."""
    relid = db.regclass_oid(table)
    found = []
    for r in db.execute(
            "SELECT x.what, c.object FROM ("
            "  SELECT 'pg_catalog.pg_constraint'::regclass AS classid, oid AS objid, 'constraint ' || conname AS what "
            "  FROM pg_catalog.pg_constraint WHERE conrelid = $1 AND contype <> 'f' "   # keys: built-in equality
            "  UNION ALL SELECT 'pg_catalog.pg_attrdef'::regclass, oid, 'a default' FROM pg_catalog.pg_attrdef "
            "  WHERE adrelid = $1 "
            "  UNION ALL SELECT 'pg_catalog.pg_class'::regclass, indexrelid, 'an index' FROM pg_catalog.pg_index "
            "  WHERE indrelid = $1) x, "
            "LATERAL dp_internal.expression_foreign_code(x.classid, x.objid, $1) c "
            "WHERE NOT (c.object LIKE 'relation %' AND x.what = 'a default')", [relid], ["oid"]):
        found.append(f"{r['what']}: {r['object']}")
    found += trust.column_code(relid)
    if found:
        raise DPError(f"the synthetic copy of {source_name} would run code pg_dp cannot vouch for: "
                      + "; ".join(found), sqlstate=FOREIGN,
                      hint="The source's functions, domains or casts changed during the run; nothing was written. "
                           "Run dp_synthesize again.")


def swap(w: TableWrite, bad: set[int], n: int, provenance: dict,
         after_insert: Callable[[str, Callable], None] = lambda table, execute: None) -> int:
    """Build the copy under a temporary name from the staged rows, then swap it in (module docstring).
    `provenance` gets the rows written, the time and the maker, and is recorded in
    dp_internal.synthetic_tables."""
    ddl = _plan(w)
    schema, name = db.quote_ident(w.schema), db.quote_ident(w.name)
    fresh_name = f"{w.name[:40]}_pg_dp_new"
    fresh = f"{schema}.{db.quote_ident(fresh_name)}"
    ensure_schema(w.schema)
    old = copy_maker(w.schema, w.name)
    _may_replace(old, w.schema, w.name)
    role = catalog.outer_role()
    left = copy_maker(w.schema, fresh_name)
    if left is not None:            # a temporary table left by an older pg_dp: only ever ours
        db.execute(f"DROP TABLE {fresh}")
    statements = _create_sql(ddl, fresh)
    for column in w.serials:
        # a default taking the source's sequence would hand out (and tell) the source's next
        # keys: the copy gets a sequence of its own, set past its keys once they are written
        seq = f"{schema}.{db.quote_ident(f'{w.name[:24]}_{column[:20]}_pg_dp_new_seq')}"
        statements += [f"DROP SEQUENCE IF EXISTS {seq}",
                       f"CREATE SEQUENCE {seq} OWNED BY {fresh}.{db.quote_ident(column)}",
                       f"ALTER TABLE {fresh} ALTER COLUMN {db.quote_ident(column)} SET DEFAULT "
                       f"pg_catalog.nextval({db.quote_literal(seq)}::pg_catalog.regclass)"]
    as_writer(statements)
    verify_copy(fresh, w.source_name)
    copy_public(w.vocabularies, w.schema, w.caller)
    names = ", ".join(db.quote_ident(c) for c, _ in w.columns)
    skip = "WHERE pg_dp_idx <> ALL ($1::int8[]) " if bad else ""
    overriding = " OVERRIDING SYSTEM VALUE" if w.identity_always else ""
    as_writer([f"INSERT INTO {fresh} ({names}){overriding} SELECT {names} FROM pg_temp.{STAGE} {skip}"
               f"ORDER BY pg_dp_idx LIMIT {int(n)}"], [_array(sorted(bad))] if bad else None)
    after_insert(fresh, writer_execute)
    written = db.execute(f"SELECT count(*) AS n FROM {fresh}")[0]["n"]
    _advance_sequences(w, fresh)
    grants, dropped_grants = [], []
    if old:
        acl = db.execute(
            "SELECT a.privilege_type AS p, CASE WHEN a.grantee = 0 THEN 'PUBLIC' "
            "ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END AS g "
            "FROM pg_catalog.pg_class c, LATERAL pg_catalog.aclexplode(c.relacl) a "
            "WHERE c.oid = $1 AND a.grantee <> c.relowner", [old["oid"]], ["oid"])
        if old["made_by"] == role:
            grants = acl        # grants never move to a copy someone else made
        else:
            dropped_grants = sorted({f"{g['p']} to {g['g']}" for g in acl})
        dependents = [r["d"] for r in db.execute(
            "SELECT pg_catalog.format('%s on %s', conname, conrelid::regclass) AS d FROM pg_catalog.pg_constraint "
            "WHERE contype = 'f' AND confrelid = $1 AND conrelid <> $1", [old["oid"]], ["oid"])]
        if old["owner"] == WRITER:
            as_writer([f"DROP TABLE {schema}.{name} CASCADE"])
        else:                       # a copy written before pg_dp had its writer role
            db.execute(f"DROP TABLE {schema}.{name} CASCADE")
        if dependents:
            db.notice("dropped foreign key(s) " + ", ".join(dependents) + " that referenced the previous copy",
                      hint="Synthesize the referencing tables again to restore them.")
        if old["made_by"] != role:
            db.notice(f"replaced {w.schema}.{w.name}, made by {old['maker'] or 'an unknown role'} at "
                      f"{old['made_at']}" + (f"; its grants ({', '.join(dropped_grants)}) were not carried over"
                                             if dropped_grants else ""),
                      hint="Grants never move to a copy another role made: grant the new copy again if needed.")
    statements = [f"ALTER TABLE {fresh} RENAME TO {name}"]
    for column in w.serials:
        statements.append(f"ALTER SEQUENCE {schema}.{db.quote_ident(f'{w.name[:24]}_{column[:20]}_pg_dp_new_seq')} "
                          f"RENAME TO {db.quote_ident(f'{w.name[:24]}_{column[:20]}_pg_dp_seq')}")
    for k in w.foreign_keys:
        if k.target:
            _adopt(k.target)
        cols = ", ".join(db.quote_ident(c) for c in k.cols)
        refcols = ", ".join(db.quote_ident(c) for c in k.refcols)
        statements.append(f"ALTER TABLE {schema}.{name} ADD CONSTRAINT {db.quote_ident(k.name)} FOREIGN KEY "
                          f"({cols}) REFERENCES {k.target or f'{schema}.{name}'} ({refcols})")
    statements.append(f"GRANT SELECT ON {schema}.{name} TO {w.caller}")
    statements += [f"GRANT {g['p']} ON {schema}.{name} TO {g['g']}" for g in grants]
    provenance = {**provenance, "rows": written, "made_by": db.execute(
        "SELECT pg_catalog.pg_get_userbyid($1) AS r", [role], ["oid"])[0]["r"],
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    statements.append(f"COMMENT ON TABLE {schema}.{name} IS " + db.quote_literal(
        f"DP synthetic copy of {w.source_name} made by pg_dp dp_synthesize for role {provenance['made_by']} at "
        f"{provenance['at']}: epsilon {provenance['epsilon']}, delta {provenance['delta']}, {provenance['method']}, "
        f"{written} rows"))
    as_writer(statements)
    db.execute(f"GRANT USAGE ON SCHEMA {schema} TO {w.caller}")
    verify_copy(f"{schema}.{name}", w.source_name)
    relid = db.regclass_oid(f"{schema}.{name}")
    db.execute("INSERT INTO dp_internal.synthetic_tables (relid, source, provenance, made_by) "
               "VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (relid) DO UPDATE SET source = excluded.source, "
               "provenance = excluded.provenance, made_by = excluded.made_by, created_at = pg_catalog.now()",
               [relid, w.source, json.dumps(provenance), role], ["oid", "oid", "text", "oid"])
    db.execute("DELETE FROM dp_internal.synthetic_tables s WHERE NOT EXISTS "
               "(SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = s.relid)")
    return written


def _advance_sequences(w: TableWrite, table: str):
    """Sequences of the copy (identity columns, its own serials) start past its keys, so
    that inserts into the copy that leave the key out still work."""
    statements = []
    for r in db.execute(
            "SELECT a.attname, pg_catalog.pg_get_serial_sequence($1, a.attname) AS seq "
            "FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 "
            "AND NOT a.attisdropped", [table], ["text"]):
        if r["seq"] and r["attname"] in w.integers:
            statements.append(f"SELECT pg_catalog.setval({db.quote_literal(r['seq'])}::pg_catalog.regclass, "
                              f"coalesce((SELECT max({db.quote_ident(r['attname'])}) FROM {table}), 0) + 1, false)")
    if statements:
        as_writer(statements)


# ----------------------------------------------------------------- declared public tables
def declared(relid: int) -> bool:
    return bool(db.execute("SELECT 1 FROM dp_internal.public_tables WHERE relid = $1", [relid], ["oid"]))


def _name(relid: int) -> dict:
    return db.execute(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS q, c.relname FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1", [relid], ["oid"])[0]


def _constraints(relid: int, kinds: str) -> list[dict]:
    return db.execute(
        "SELECT conname, contype, confrelid::int8 AS ref, "
        "ARRAY(SELECT a.attname::text FROM unnest(conkey) WITH ORDINALITY k(n, o) JOIN pg_catalog.pg_attribute a "
        "ON a.attrelid = conrelid AND a.attnum = k.n ORDER BY k.o) AS cols, "
        "ARRAY(SELECT a.attname::text FROM unnest(confkey) WITH ORDINALITY k(n, o) JOIN pg_catalog.pg_attribute a "
        "ON a.attrelid = confrelid AND a.attnum = k.n ORDER BY k.o) AS refcols "
        "FROM pg_catalog.pg_constraint WHERE conrelid = $1 AND contype = ANY($2::text[]) ORDER BY conname",
        [relid, list(kinds)], ["oid", "text[]"])


def public_closure(relids: list[int]) -> tuple[list[int], list[str]]:
    """The declared public tables reachable from `relids` through foreign keys among
    declared tables (those first), and NOTICE lines for keys that are not followed."""
    order, notes, todo, seen = [], [], list(relids), set()
    while todo:
        relid = todo.pop()
        if relid in seen:
            continue
        seen.add(relid)
        order.append(relid)
        for fk in _constraints(relid, "f"):
            ref = int(fk["ref"])
            if ref == relid or ref in seen:
                continue
            if not declared(ref):
                notes.append(f"foreign key {fk['conname']} of public table {_name(relid)['q']} is not copied: "
                             f"{_name(ref)['q']} is not declared public")
            elif foreign_code(ref):
                notes.append(f"foreign key {fk['conname']} of public table {_name(relid)['q']} is not copied: "
                             f"{_name(ref)['q']} runs functions of other roles when written")
            else:
                todo.append(ref)
    return order, notes


def copy_public(relids: list[int], schema: str, caller: str) -> dict[int, str]:
    """Copy the declared public tables `relids` and those their keys reach; returns source oid -> copy."""
    order, notes = public_closure(relids)
    for line in notes:
        db.notice(line, hint="Declare the referenced table public (dp.declare_public) to keep the key.")
    if order:
        ensure_schema(schema)
    targets = {r: f"{db.quote_ident(schema)}.{db.quote_ident(_name(r)['relname'])}" for r in order}
    for relid in order:
        _copy_rows(relid, targets[relid], caller)
    for relid in order:                     # keys among them once every table has its rows
        for fk in _constraints(relid, "f"):
            ref = int(fk["ref"])
            if ref not in targets or db.execute(
                    "SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = $1::regclass AND conname = $2",
                    [targets[relid], fk["conname"]], ["text", "name"]):
                continue
            _ensure_unique(targets[ref], fk["refcols"])
            cols = ", ".join(db.quote_ident(c) for c in fk["cols"])
            refcols = ", ".join(db.quote_ident(c) for c in fk["refcols"])
            as_writer([f"ALTER TABLE {targets[relid]} ADD CONSTRAINT {db.quote_ident(fk['conname'])} "
                       f"FOREIGN KEY ({cols}) REFERENCES {targets[ref]} ({refcols})"])
    return targets


def _copy_rows(relid: int, target: str, caller: str):
    source = _name(relid)["q"]
    ddl = plan_copy(relid)
    if ddl.refused:
        raise DPError(f"public table {source} cannot be copied: " + "; ".join(ddl.refused), sqlstate=FOREIGN,
                      hint="It changed since the plan; nothing was written.")
    if db.relation_exists(target):
        if not db.execute("SELECT 1 FROM dp_internal.synthetic_tables WHERE relid = $1::regclass::oid",
                          [target], ["text"]):
            raise DPError(f"{target} exists and was not written by dp_synthesize",
                          hint="Drop or rename it: the public table is copied there.", sqlstate="42P07")
        _adopt(target)
    else:
        # columns (base types), NOT NULL and comments only: no CHECK, default, generated
        # expression or index expression of the source is copied
        as_writer([f"CREATE TABLE {target} (" + ", ".join(
            f"{db.quote_ident(c.name)} {c.type}" + (f" COLLATE {c.collate}" if c.collate else "")
            + (" NOT NULL" if c.notnull else "") for c in ddl.columns) + ")"]
            + [f"COMMENT ON COLUMN {target}.{db.quote_ident(c.name)} IS {db.quote_literal(c.comment)}"
               for c in ddl.columns if c.comment is not None])
    for k in _constraints(relid, "pu"):
        _ensure_unique(target, k["cols"], primary=k["contype"] == "p")
    conflict = " ON CONFLICT DO NOTHING" if db.execute(
        "SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = $1::regclass AND indisunique", [target], ["text"]) else ""
    if conflict or not db.execute(f"SELECT 1 FROM {target} LIMIT 1"):
        # the owner reads the rows (as base types: no code of the types' owners runs), the writer writes them
        drop_temp(PUBLIC_STAGE)
        db.execute(f"CREATE TEMP TABLE {PUBLIC_STAGE} ON COMMIT DROP AS SELECT "
                   + ", ".join(f"{db.quote_ident(c.name)}::{c.base} AS {db.quote_ident(c.name)}" for c in ddl.columns)
                   + f" FROM {source}")
        db.execute(f"GRANT SELECT ON pg_temp.{PUBLIC_STAGE} TO {WRITER}")
        as_writer([f"INSERT INTO {target} SELECT * FROM pg_temp.{PUBLIC_STAGE}{conflict}"])
        drop_temp(PUBLIC_STAGE)
    role = catalog.outer_role()
    as_writer([f"GRANT SELECT ON {target} TO {caller}",
               f"COMMENT ON TABLE {target} IS " + db.quote_literal(
                   f"Public table copied verbatim from {source} by pg_dp dp_synthesize (declared public with "
                   "dp.declare_public)")])
    provenance = {"source": source, "method": "declared public table, copied verbatim",
                  "made_by": db.execute("SELECT pg_catalog.pg_get_userbyid($1) AS r", [role], ["oid"])[0]["r"],
                  "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    db.execute("INSERT INTO dp_internal.synthetic_tables (relid, source, provenance, made_by) "
               "VALUES ($1::regclass::oid, $2, $3::jsonb, $4) ON CONFLICT (relid) DO NOTHING",
               [target, relid, json.dumps(provenance), role], ["text", "oid", "text", "oid"])


def _adopt(table: str):
    """A copy written by a pg_dp that had no writer role yet (owned by the extension owner): the
    writer takes it over, so that it may add rows to it or reference it."""
    if db.execute("SELECT 1 FROM pg_catalog.pg_class c JOIN dp_internal.synthetic_tables s ON s.relid = c.oid "
                  "WHERE c.oid = $1::regclass AND c.relowner = "
                  "(SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)", [table], ["text"]):
        db.execute(f"ALTER TABLE {table} OWNER TO {WRITER}")


def _ensure_unique(target: str, cols: list[str], primary: bool = False):
    """A unique constraint on exactly these columns (a foreign key needs one on its target)."""
    have = db.execute(
        "SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = $1::regclass AND i.indisunique "
        "AND i.indpred IS NULL AND i.indexprs IS NULL AND ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) "
        "WITH ORDINALITY k(n, o) JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n "
        "ORDER BY k.o) = $2::text[]", [target, list(cols)], ["text", "text[]"])
    if not have:
        what = "PRIMARY KEY" if primary and not db.execute(
            "SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = $1::regclass AND indisprimary", [target], ["text"]) \
            else "UNIQUE"
        as_writer([f"ALTER TABLE {target} ADD {what} ({', '.join(db.quote_ident(c) for c in cols)})"])
