"""Gateway engine without a database: parse -> analyze -> plan -> release."""

import pytest

from pg_dp.core.errors import DPError
from pg_dp.gateway.analyze import analyze
from pg_dp.gateway.parse import parse_select
from pg_dp.gateway import plan as planning
from pg_dp.gateway import answer as answering
from pg_dp.gateway import bind
from pg_dp.core import catalog
from pg_dp.gateway import rewrite


def meta(unit=None, rows=1, groups=1):
    return catalog.TableMeta(
        1, "public", "t", "ds", unit, rows, groups, 7,
        {"id": dict(type="integer", notnull=True, lower=None, upper=None, public_values=None),
         "g": dict(type="text", notnull=True, lower=None, upper=None, public_values=["a", "b", "c"]),
         "city": dict(type="text", notnull=False, lower=None, upper=None, public_values=None),
         "x": dict(type="numeric", notnull=False, lower=0, upper=100, public_values=None),
         "n": dict(type="integer", notnull=False, lower=None, upper=None, public_values=None)})


def plan_of(sql, m=None, epsilon=1.0, delta=1e-6):
    return planning.make_plan(analyze(parse_select(sql)), m or meta(), epsilon, delta)


@pytest.mark.parametrize("sql, fragment", [
    ("SELECT count(*) FROM t WHERE 1/(x-5) > 0", "not allowed in WHERE"),
    ("SELECT count(*) FROM t WHERE length(g) = 1", "not allowed"),
    ("SELECT x FROM t", "must appear in GROUP BY"),
    ("SELECT max(x) FROM t", "not supported"),
    ("SELECT count(*) FROM t GROUP BY ROLLUP (g)", "GROUPING SETS"),
    ("SELECT count(*) FROM t OFFSET 3", "OFFSET"),
    ("SELECT count(*) OVER () FROM t", "window"),
    ("SELECT dp_sum(x, 0, n) FROM t", "numeric literal"),
    ("SELECT g FROM t GROUP BY g", "no aggregate"),
])
def test_refusals_name_the_part_and_hint(sql, fragment):
    with pytest.raises(DPError) as e:
        analyze(parse_select(sql))
    assert fragment in e.value.message and e.value.hint


def test_epsilon_split_and_exact_charge():
    p = plan_of("SELECT g, count(*), avg(x), dp_sum(x, 0, 10, 0.25) FROM t GROUP BY g", epsilon=0.3)
    eps = [m.epsilon for m in p.measurements]
    assert eps[0] == eps[1] <= 0.15 and eps[2] == 0.25
    assert str(p.epsilon) == "0.55" and p.delta == 0
    assert p.public_keys == [("a",), ("b",), ("c",)]


def test_partition_selection_when_keys_are_not_public():
    p = plan_of("SELECT city, count(*) FROM t GROUP BY city", epsilon=1.0, delta=1e-6)
    assert p.public_keys is None and p.selection_epsilon == pytest.approx(0.5) and str(p.delta) == "0.000001"


def test_rewrite_clamps_numeric_before_casting_and_bounds_units():
    p = plan_of("SELECT g, sum(x) FROM t WHERE n > 3 GROUP BY g", meta(unit="id", rows=3, groups=2))
    assert ('LEAST(GREATEST("x", CAST(\'0.0\' AS pg_catalog.numeric)), CAST(\'100.0\' AS pg_catalog.numeric))'
            in p.sql)
    assert 'pg_catalog.row_number() OVER (PARTITION BY "id", "g")' in p.sql
    assert "dp_row OPERATOR(pg_catalog.<=) 3" in p.sql and "dp_group OPERATOR(pg_catalog.<=) 2" in p.sql
    assert 'WHERE ("n" OPERATOR(pg_catalog.>) 3)' in p.sql


def test_missing_bounds_and_unknown_columns():
    with pytest.raises(DPError, match="has no bounds"):
        plan_of("SELECT sum(n) FROM t")
    with pytest.raises(DPError, match="does not exist"):
        plan_of("SELECT count(nope) FROM t")


def test_release_fills_empty_public_groups_and_orders():
    p = plan_of("SELECT g, count(*) AS c FROM t GROUP BY g ORDER BY g DESC", epsilon=100.0)
    rows = answering.present(p, answering.release_core(p, [("a", 1000, 1000), ("c", 10, 10)]))
    assert [r[0] for r in rows] == ["c", "b", "a"]
    counts = {r[0]: r[1] for r in rows}
    assert abs(counts["a"] - 1000) < 5 and abs(counts["b"]) < 5 and abs(counts["c"] - 10) < 5


def test_release_selects_partitions():
    p = plan_of("SELECT city, count(*) FROM t GROUP BY city", epsilon=2.0)
    rows = answering.present(p, answering.release_core(p, [("Paris", 5000, 5000), ("Atlantis", 1, 1)]))
    assert [r[0] for r in rows] == ["Paris"]


def test_cache_identity_is_what_is_released_not_how_it_is_written():
    """Aliases, select-list order, ORDER BY and LIMIT are post-processing: the same measurements."""
    assert plan_of("SELECT count(*) FROM t").cache_identity() == plan_of("SELECT count(*) AS n FROM t t1").cache_identity()
    base = plan_of("SELECT g, count(*), avg(x) FROM t WHERE n > 3 GROUP BY g")
    for sql in ["SELECT avg(x) AS mean, g AS grp, count(*) AS cnt FROM t WHERE n > 3 GROUP BY 2 ORDER BY 3 DESC LIMIT 2",
                "SELECT t.g, count(*) AS c, avg(t.x) FROM t WHERE (t.n > 3) GROUP BY t.g ORDER BY g",
                # PostgreSQL's deparse of a sub-select, and a bound $1
                "SELECT g, count(*), avg(x) FROM public.t WHERE n > CAST('3' AS integer) GROUP BY g"]:
        assert plan_of(sql).cache_identity() == base.cache_identity(), sql
    for sql in ["SELECT g, count(*), avg(x) FROM t WHERE n > 4 GROUP BY g",      # another filter
                "SELECT g, count(*), sum(x) FROM t WHERE n > 3 GROUP BY g",      # another aggregate
                "SELECT g, count(*) FROM t WHERE n > 3 GROUP BY g",              # another epsilon share
                "SELECT count(*), avg(x) FROM t WHERE n > 3",                     # no groups
                "SELECT g, count(*), avg(x) FROM t WHERE n > CAST('03' AS integer) GROUP BY g"]:  # not folded
        assert plan_of(sql).cache_identity() != base.cache_identity(), sql
    assert plan_of("SELECT g, count(*), avg(x) FROM t WHERE n > 3 GROUP BY g", epsilon=2.0).cache_identity() \
        != base.cache_identity()


def test_a_core_is_presented_in_each_statements_select_list_and_order():
    spelled = plan_of("SELECT avg(x) AS mean, count(*) AS cnt, g FROM t GROUP BY g ORDER BY g DESC LIMIT 2")
    order = [spelled.measurements[j].func for j in spelled.core_order()]
    core = [["a", *[{"count": 11, "avg": 1.5}[f] for f in order]],
            ["b", *[{"count": 22, "avg": 2.5}[f] for f in order]],
            ["c", *[{"count": 33, "avg": 3.5}[f] for f in order]]]
    assert answering.present(spelled, core) == [[3.5, 33, "c"], [2.5, 22, "b"]]


def test_join_is_bound_as_one_table():
    q = analyze(parse_select("SELECT p.g, count(*) FROM t p JOIN t2 v ON p.id = v.id WHERE v.n > 1 GROUP BY p.g"))
    m2 = meta(unit="id")
    m2.table = "t2"
    joined = bind.bind_join(q, [meta(unit="id"), m2])
    assert q.group_by == ["p.g"] and joined.unit_column == "p.id"
    p = planning.make_plan(q, joined, 1.0, 1e-6)
    assert 'JOIN "public"."t2" AS "v" ON "p"."id" OPERATOR(pg_catalog.=) "v"."id"' in p.sql
    assert '"v.n" OPERATOR(pg_catalog.>) 1' in p.sql


def path_meta():
    """A line table reaching its unit (customer_id) through line.invoice_id -> invoice -> account."""
    m = meta(unit="customer_id", rows=5, groups=2)
    m.table = "line"
    m.columns["customer_id"] = dict(type="integer", notnull=False, lower=None, upper=None, public_values=None)
    m.unit_path = [{"schema": "shop", "table": "invoice", "cols": ["invoice_id"], "refcols": ["id"],
                    "ops": ["OPERATOR(pg_catalog.=)"]},
                   {"schema": "shop", "table": "account", "cols": ["account_id", "region"],
                    "refcols": ["id", "region"], "ops": ["OPERATOR(pg_catalog.=)", "OPERATOR(pg_catalog.=)"]}]
    return m


def test_a_path_table_is_bounded_per_unit_found_along_its_path():
    p = plan_of("SELECT g, count(*) FROM line GROUP BY g", path_meta())
    source = ('(SELECT dp_path0.*, dp_path2."customer_id" AS "customer_id" FROM "public"."line" AS dp_path0 '
              'JOIN "shop"."invoice" AS dp_path1 ON dp_path1."id" OPERATOR(pg_catalog.=) dp_path0."invoice_id" '
              'JOIN "shop"."account" AS dp_path2 ON dp_path2."id" OPERATOR(pg_catalog.=) dp_path1."account_id" '
              'AND dp_path2."region" OPERATOR(pg_catalog.=) dp_path1."region")')
    assert source in p.sql and 'PARTITION BY "customer_id", "g"' in p.sql
    assert p.rows_per_unit == 5 and p.groups_per_unit == 2
    copy = rewrite.bounded_copy_sql(p)
    assert copy.startswith("SELECT t.*, ") and copy.endswith(f"FROM {source} AS t")
    # another path is another question (and another bounded copy: bounded.copy_for)
    other = path_meta()
    other.unit_path = other.unit_path[:1]
    assert p.cache_identity() != plan_of("SELECT g, count(*) FROM line GROUP BY g", other).cache_identity()
    # a table holding its unit keeps its cache identity (no path in it)
    assert "dp_path" not in plan_of("SELECT g, count(*) FROM t GROUP BY g", meta(unit="id")).sql


def test_a_path_table_joins_only_its_parent_on_its_key():
    q = analyze(parse_select("SELECT count(*) FROM line l JOIN t p ON l.customer_id = p.id"))
    with pytest.raises(DPError) as e:
        bind.bind_join(q, [path_meta(), meta(unit="id")])
    assert e.value.sqlstate == "0A000" and "bounded per customer_id" in e.value.hint
    parent = meta(unit="customer_id")
    parent.schema, parent.table = "shop", "invoice"
    q = analyze(parse_select("SELECT i.g, count(*) FROM line l JOIN shop.invoice i ON i.id = l.invoice_id GROUP BY i.g"))
    joined = bind.bind_join(q, [path_meta(), parent])
    assert joined.unit_column == "l.customer_id" and joined.max_rows_per_unit == 5
    p = planning.make_plan(q, joined, 1.0, 1e-6)
    assert 'JOIN "shop"."invoice" AS "i" ON "i"."id" OPERATOR(pg_catalog.=) "l"."invoice_id"' in p.sql
    assert 'PARTITION BY "l.customer_id", "i.g"' in p.sql and rewrite.bounded_copy_sql(p) is None
