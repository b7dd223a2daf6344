"""Attacks on the gateway's trust boundary, without a database.

The rewritten SQL runs as a privileged worker: it must mean exactly what the
analyst's tree means whatever the session settings (quoting, search_path), it
must never make PostgreSQL cast a column in a way that can fail on a chosen row,
and refusing a hostile statement must be cheap.  Each test parses the generated
SQL back with pglast and checks the tree.
"""

import time

import pytest

from pg_dp.core.errors import DPError
from pg_dp.gateway.analyze import analyze
from pg_dp.gateway.parse import ast, parse_select, pglast
from pg_dp.gateway import parse as parsing
from pg_dp.gateway import plan as planning
from pg_dp.gateway import bind
from pg_dp.core import catalog
from pg_dp.gateway import rewrite
from pg_dp.synth import domain


def col(type_, **kw):
    return dict(dict(type=type_, notnull=False, lower=None, upper=None, public_values=None), **kw)


def meta(unit=None, rows=1, groups=1):
    return catalog.TableMeta(
        1, "public", "t", "ds", unit, rows, groups, 7,
        {"id": col("integer", notnull=True),
         "g": col("text", notnull=True, public_values=["a", "b"]),
         "city": col("text"),
         "x": col("numeric", lower=0, upper=100),
         "n": col("integer"),
         "s": col("smallint"),
         "f": col("double precision", lower=0, upper=1),
         "r": col("real"),
         "d": col("date"),
         "ts": col("timestamp without time zone"),
         "tz": col("timestamp with time zone"),
         "b": col("boolean"),
         "vc": col("character varying(10)"),
         "ch": col("character(3)"),
         "mood": col("mood")})


def plan_of(sql, m=None):
    return planning.make_plan(analyze(parse_select(sql)), m or meta(), 1.0, 1e-6)


def refused(sql, sqlstate, m=None):
    with pytest.raises(DPError) as e:
        plan_of(sql, m)
    assert e.value.sqlstate == sqlstate and e.value.hint, (e.value.sqlstate, e.value.message)
    return e.value


def tree(sql_text):
    statements = pglast.parse_sql(sql_text)
    assert len(statements) == 1 and isinstance(statements[0].stmt, ast.SelectStmt)
    return statements[0].stmt


def nodes(node, kind=ast.Node):
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        if isinstance(n, tuple):
            stack.extend(n)
        elif isinstance(n, ast.Node):
            if isinstance(n, kind):
                out.append(n)
            stack.extend(getattr(n, slot) for slot in n)
    return out


def where_of(sql, m=None):
    """The WHERE tree of the generated SQL (a table without a privacy unit: one level)."""
    return tree(plan_of(sql, m).sql).whereClause


def names(n):
    return tuple(s.sval for s in n)


def strings_with_backslash_are_e_strings(sql_text):
    """Every string token holding a backslash is E'...': the same under both
    standard_conforming_strings settings."""
    for tok in pglast.parser.scan(sql_text):
        if tok.name == "SCONST":
            text = sql_text[tok.start:tok.end + 1]
            if "\\" in text and not text[:2].upper() == "E'":
                return False
    return True


# --- class 2: quoting independent of session settings ------------------------------------

def test_attack_backslash_quote_keeps_two_plain_comparisons():
    sql = r"SELECT count(*) FROM t WHERE city = 'a\' AND city = ' OR f() --'"
    p = plan_of(sql)
    for text in (p.sql, rewrite.rewrite_on_copy(p, "dp_internal.copy")):
        where = tree(text).whereClause
        values = [c.rexpr.val.sval for c in nodes(where, ast.A_Expr)
                  if isinstance(c.lexpr, ast.ColumnRef) and names(c.lexpr.fields) == ("city",)]
        assert sorted(values) == [" OR f() --", "a\\"]
        assert not [fc for fc in nodes(tree(text), ast.FuncCall) if names(fc.funcname)[-1] == "f"]
        assert strings_with_backslash_are_e_strings(text)


def test_attack_backslash_quote_is_one_comparison_under_both_settings():
    # standard_conforming_strings=on: one comparison with  x\' OR n = 1 --
    # (=off would read  city = 'x''  OR n = 1: the rewrite must not let that happen)
    sql = r"SELECT count(*) FROM t WHERE city = 'x\'' OR n = 1 --'"
    where = where_of(sql)
    assert isinstance(where, ast.A_Expr) and where.rexpr.val.sval == "x\\' OR n = 1 --"
    assert strings_with_backslash_are_e_strings(plan_of(sql).sql)


def test_attack_deparse_writes_backslashes_as_e_strings():
    stmt = parse_select(r"SELECT count(*) FROM t WHERE city = 'a\' AND city = 'it''s'")
    text = parsing.deparse(stmt)
    assert strings_with_backslash_are_e_strings(text)
    assert [c.rexpr.val.sval for c in nodes(tree(text).whereClause, ast.A_Expr)] in (
        ["a\\", "it's"], ["it's", "a\\"])


@pytest.mark.parametrize("value", ["plain", "it's", "a\\", "a\\'b", "\\\\", "'; DROP TABLE x; --\\"])
def test_attack_synth_literal_valid_under_both_settings(value):
    literal = domain._literal(value)
    assert strings_with_backslash_are_e_strings(literal)
    stmt = tree(f"SELECT {literal}")
    assert stmt.targetList[0].val.val.sval == value


# --- class 3: types, functions and operators never resolved through the search_path -------

@pytest.mark.parametrize("cast", ['"double precision"', "public.mytype", "pg_temp.mydomain", "pg_temp.int4",
                                  'pg_catalog."double precision"', '"integer"', "int4[]"])
def test_attack_constant_type_not_resolved_to_user_type(cast):
    e = refused(f"SELECT count(*) FROM t WHERE n > '1'::{cast}", "0A000")
    assert "not allowed" in e.message


@pytest.mark.parametrize("sql, internal", [
    ("n > '1'::int4", "int4"), ("n > 1::integer", "int4"), ("n > 1::float8", "float8"),
    ("f > 1::double precision", "float8"), ("city = 'a'::text", "text"), ("city = 'a'::varchar", "varchar"),
    ("d > '2020-01-01'::date", "date"), ("d > date '2020-01-01'", "date"),
    ("ts > '2020-01-01'::timestamp", "timestamp"), ("tz > '2020-01-01 00:00+00'::timestamptz", "timestamptz"),
    ("b = 't'::boolean", "bool"), ("x > 1::pg_catalog.numeric", "numeric"), ("n > 1::bigint", "int8"),
])
def test_attack_constant_types_emitted_schema_qualified(sql, internal):
    casts = nodes(where_of(f"SELECT count(*) FROM t WHERE {sql}"), ast.TypeCast)
    assert casts and all(names(c.typeName.names) == ("pg_catalog", internal) for c in casts)


def test_attack_functions_operators_and_casts_schema_qualified():
    sql = ("SELECT g, count(*), count(n), sum(x), avg(f), stddev(x), percentile_cont(0.5) WITHIN GROUP (ORDER BY f)"
           " FROM t WHERE n BETWEEN 1 AND 5 AND n NOT BETWEEN 2 AND 3 AND city IN ('a', 'b') AND city NOT IN ('c')"
           " AND n IS DISTINCT FROM 4 AND NOT (s IS NOT DISTINCT FROM 2) AND d >= '2020-01-01' GROUP BY g")
    for m in (meta(), meta(unit="id", rows=2, groups=3)):
        p = plan_of(sql, m)
        for text in (p.sql, rewrite.rewrite_on_copy(p, "dp_internal.copy"), rewrite.bounded_copy_sql(p)):
            if text is None:
                continue
            t = tree(text)
            for fc in nodes(t, ast.FuncCall):
                assert names(fc.funcname)[0] in ("pg_catalog", "dp_internal"), names(fc.funcname)
            for e in nodes(t, ast.A_Expr):
                assert e.kind in (pglast.enums.A_Expr_Kind.AEXPR_OP, pglast.enums.A_Expr_Kind.AEXPR_OP_ANY,
                                  pglast.enums.A_Expr_Kind.AEXPR_OP_ALL), e.kind
                assert names(e.name)[0] == "pg_catalog", names(e.name)
            for c in nodes(t, ast.TypeCast):
                assert names(c.typeName.names)[0] == "pg_catalog", names(c.typeName.names)


def test_attack_join_condition_operator_schema_qualified():
    q = analyze(parse_select("SELECT p.g, count(*) FROM t p JOIN t2 v ON p.id = v.id WHERE v.n > 1 GROUP BY p.g"))
    m2 = meta(unit="id")
    m2.table = "t2"
    p = planning.make_plan(q, bind.bind_join(q, [meta(unit="id"), m2]), 1.0, 1e-6)
    for e in nodes(tree(p.sql), ast.A_Expr):
        assert names(e.name)[0] == "pg_catalog"


# --- class 10: a column is never cast by PostgreSQL in a way that can fail ----------------

def _single_comparison(sql):
    where = where_of(sql)
    assert isinstance(where, ast.A_Expr)
    return where


@pytest.mark.parametrize("const, value", [
    ("1.5::float8", "1.5"), ("'1.5'::float8", "1.5"), ("1.5::double precision", "1.5"),
    ("'-Infinity'::float8", "-Infinity"), ("'inf'::float8", "Infinity"), ("'NaN'::float8", "NaN"),
    ("0.1::real", "0.1"), ("1e300::float8", "1e+300"),
])
def test_attack_numeric_column_vs_float_constant_retargeted(const, value):
    where = _single_comparison(f"SELECT count(*) FROM t WHERE x < {const}")
    assert isinstance(where.lexpr, ast.ColumnRef)
    assert isinstance(where.rexpr, ast.TypeCast) and names(where.rexpr.typeName.names) == ("pg_catalog", "numeric")
    assert where.rexpr.arg.val.sval == value


def test_attack_numeric_column_vs_float_constant_in_lists_and_between():
    where = where_of("SELECT count(*) FROM t WHERE x IN (1.5::float8, 2) AND x BETWEEN 0 AND 1e3::float8"
                     " AND 2.5::float8 > x")
    casts = nodes(where, ast.TypeCast)
    assert casts and {names(c.typeName.names) for c in casts} == {("pg_catalog", "numeric")}


@pytest.mark.parametrize("sql, common", [
    ("r IN (0.2, 1)", "float4"), ("n IN (1, 2.5)", "numeric"), ("n IN (1, '2')", "int4"),
    ("s IN (1, 9999999999)", "int8"), ("x IN (1.5::float8, 2)", "numeric"), ("ch IN ('a', 'b'::text)", "text"),
    ("vc IN ('a', NULL)", "varchar"), ("d IN ('2020-01-01', '2020-01-02'::timestamp)", "timestamp"),
])
def test_attack_in_list_items_take_the_common_type(sql, common):
    # as PostgreSQL's own IN: one = ANY (ARRAY[...]), the items cast to the common type
    where = where_of(f"SELECT count(*) FROM t WHERE {sql}")
    assert where.kind == pglast.enums.A_Expr_Kind.AEXPR_OP_ANY and names(where.name) == ("pg_catalog", "=")
    assert all(isinstance(e, ast.TypeCast) and names(e.typeName.names) == ("pg_catalog", common)
               for e in where.rexpr.elements)


def test_attack_float_constant_out_of_range_refused():
    refused("SELECT count(*) FROM t WHERE x < 1e400::float8", "22003")
    refused("SELECT count(*) FROM t WHERE x < '1e-400'::float8", "22003")
    refused("SELECT count(*) FROM t WHERE x < '1e39'::real", "22003")


@pytest.mark.parametrize("sql", [
    "n < 1.5::float8", "n < 1.5", "n < 1.5::numeric", "s > 100000", "n = 3::bigint",
    "f < 1.5", "f < 1::numeric", "r < 1.5::float8", "x = 1::int", "x = 1.5",
    "city = 'a'::varchar", "vc = 'a'::text", "ch = 'a'::text", "d < '2020-01-01 10:00'::timestamp",
    "ts < '2020-01-01'::date", "n < x", "n < f", "vc = city", "d = ts",
])
def test_attack_infallible_column_casts_are_kept(sql):
    plan_of(f"SELECT count(*) FROM t WHERE {sql}")


@pytest.mark.parametrize("sql", [
    "x < f", "f > x", "x < r", "d < tz", "ts < tz", "tz > d",
    "city = 1", "n = 'a'::text", "b = 1", "d > 5", "mood = 1", "mood = 'a'::text", "n = mood",
    "x IN (1, 'a'::text)",
])
def test_attack_fallible_or_setting_dependent_comparisons_refused(sql):
    e = refused(f"SELECT count(*) FROM t WHERE {sql}", "42804")
    assert "compare" in e.hint.lower()


@pytest.mark.parametrize("sql, expected", [
    # a date or timestamp column against a timestamptz constant: the constant becomes the session
    # zone's wall-clock time (PostgreSQL would cast every row of the column, which fails on far dates)
    ("d < '2020-01-01'::timestamptz",
     '"d" OPERATOR(pg_catalog.<) CAST(CAST(\'2020-01-01\' AS pg_catalog.timestamptz) AS pg_catalog.timestamp)'),
    ("ts = '2020-01-01 00:00+00'::timestamptz",
     '"ts" OPERATOR(pg_catalog.=) CAST(CAST(\'2020-01-01 00:00+00\' AS pg_catalog.timestamptz) AS pg_catalog.timestamp)'),
    # a timestamptz column against a date or timestamp: PostgreSQL's cross-type operators, no cast
    ("tz > '2020-01-01'::date", '"tz" OPERATOR(pg_catalog.>) CAST(\'2020-01-01\' AS pg_catalog.date)'),
    ("tz > '2020-01-01'::timestamp", '"tz" OPERATOR(pg_catalog.>) CAST(\'2020-01-01\' AS pg_catalog.timestamp)'),
])
def test_attack_zone_dependent_comparisons_never_cast_the_column(sql, expected):
    """These depend on TimeZone: the exact query runs under the analyst's session zone, so they
    mean what they mean natively, and the answer is cached per zone."""
    p = plan_of(f"SELECT count(*) FROM t WHERE {sql}")
    assert expected in p.sql and p.zone_dependent
    assert 'CAST("' not in p.sql.split(" FROM ")[1]       # no column is cast in the WHERE


# --- class 12: parsing and checking are bounded -------------------------------------------

def _bounded(sql, sqlstate="54001"):
    start = time.monotonic()
    with pytest.raises(DPError) as e:
        plan_of(sql)
    assert time.monotonic() - start < 5
    assert e.value.sqlstate == sqlstate and e.value.hint, e.value.message
    return e.value


def test_attack_million_item_in_list_refused_before_parsing(monkeypatch):
    sql = "SELECT count(*) FROM t WHERE n IN (" + ",".join(["1"] * 1_000_000) + ")"
    monkeypatch.setattr(pglast, "parse_sql", lambda *_: pytest.fail("parsed a statement over the limit"))
    _bounded(sql)


def test_attack_long_in_list_refused():
    _bounded("SELECT count(*) FROM t WHERE n IN (" + ",".join(["1"] * 1001) + ")")
    plan_of("SELECT count(*) FROM t WHERE n IN (" + ",".join(["1"] * 1000) + ")")


def test_attack_too_many_where_nodes_refused():
    _bounded("SELECT count(*) FROM t WHERE " + " OR ".join(["n=1"] * 5000))


def test_attack_three_thousand_nested_nots_refused():
    _bounded("SELECT count(*) FROM t WHERE " + "NOT " * 3000 + "b")


def test_attack_deep_nesting_refused_and_shallow_accepted():
    _bounded("SELECT count(*) FROM t WHERE " + "NOT " * 100 + "b")
    plan_of("SELECT count(*) FROM t WHERE " + "NOT " * 20 + "b")
    _bounded("SELECT count(*) FROM t WHERE " + "(n = 1 AND (" * 70 + "n = 2" + "))" * 70)


def test_attack_recursion_error_becomes_54001(monkeypatch):
    def boom(*_):
        raise RecursionError("maximum recursion depth exceeded")
    monkeypatch.setattr(pglast, "parse_sql", boom)
    with pytest.raises(DPError) as e:
        parse_select("SELECT count(*) FROM t")
    assert e.value.sqlstate == "54001" and e.value.hint


# --- class 5: a literal of the wrong type is found before anything runs --------------------

@pytest.mark.parametrize("sql", ["n > 'abc'", "n IN (1, '2x')", "x = 'one'", "f BETWEEN 0 AND 'big'",
                                 "s = '1.5'", "n > ''"])
def test_attack_wrong_literal_type_refused_before_running(sql):
    refused(f"SELECT count(*) FROM t WHERE {sql}", "22P02")


@pytest.mark.parametrize("sql", ["n > '12'", "n > ' -3 '", "x = '1.5'", "x = 'NaN'", "f > '1e3'",
                                 "f > '-Infinity'", "city = 'abc'", "mood = 'happy'"])
def test_attack_well_typed_literals_accepted(sql):
    plan_of(f"SELECT count(*) FROM t WHERE {sql}")


def test_attack_rewrites_are_single_complete_statements():
    sql = "SELECT g, count(*), avg(x) FROM t WHERE n > 1 GROUP BY g"
    for m in (meta(), meta(unit="id", rows=2, groups=2)):
        p = plan_of(sql, m)
        tree(p.sql)
        tree(rewrite.rewrite_on_copy(p, 'dp_internal."copy"'))
