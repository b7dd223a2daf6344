"""gateway/statement.py without a server: which parts of a statement are DP measurements, what
the outer statement PostgreSQL evaluates over the released rows looks like, and what is refused."""

from dataclasses import dataclass

import pytest

from pg_dp.core.errors import DPError
from pg_dp.gateway.parse import pglast
from pg_dp.gateway.statement import split, unwrap, figure_colname


@dataclass
class Rel:
    schema: str
    name: str
    columns: list
    closed: bool
    oid: int = 0


TABLES = {
    "orders": Rel("public", "orders", ["id", "customer_id", "product_id", "created_at", "status", "amount", "category"],
                  True, 1),
    "products": Rel("public", "products", ["product_id", "category", "name", "price"], False, 2),
    "regions": Rel("public", "regions", ["region_id", "name"], False, 3),
    "customers": Rel("public", "customers", ["customer_id", "region_id", "age"], True, 4),
}
AGGREGATES = {"count", "sum", "avg", "min", "max", "string_agg", "percentile_cont", "stddev"}


class Catalog:
    copies = {}

    def relation(self, schema, name):
        rel = next((c for c in self.copies.values() if (c.schema, c.name) == (schema, name)), None) or TABLES.get(name)
        if rel is None or schema not in (None, rel.schema):
            return None
        return rel

    def is_aggregate(self, names):
        return names[-1] in AGGREGATES and names[:-1] in ([], ["pg_catalog"])

    def synthetic_copy(self, rel):
        return self.copies.get(rel.name)


def run(sql):
    stmt = unwrap(pglast.parse_sql(sql)[0].stmt)
    return split(stmt, Catalog(), nonce="n")


def cores(sql):
    return [m.sql for m in run(sql).measurements]


def test_one_level_is_one_measurement_and_post_processing():
    s = run("SELECT status, count(*) AS n, round(avg(amount), 1) FROM orders GROUP BY status "
            "HAVING count(*) > 10 ORDER BY n DESC LIMIT 3")
    assert [m.sql for m in s.measurements] == [
        "SELECT orders.status AS dp_k1, count(*) AS dp_a1, avg(orders.amount) AS dp_a2 "
        "FROM public.orders AS orders GROUP BY orders.status"]
    assert s.sql == ("SELECT dp_m.dp_k1 AS status, dp_m.dp_a1 AS n, round(dp_m.dp_a2, 1) AS round "
                     "FROM (SELECT 'dpm_n_1') AS dp_m WHERE dp_m.dp_a1 > 10 ORDER BY n DESC LIMIT 3")


def test_malloy_stage_cte():
    s = run("WITH __stage0 AS (SELECT base.status as status, COUNT(1) as c FROM public.orders AS base "
            "GROUP BY 1 ORDER BY 2 desc NULLS LAST) SELECT row_to_json(finalStage) as row FROM __stage0 AS finalStage")
    assert [m.sql for m in s.measurements] == [
        "SELECT base.status AS dp_k1, count(1) AS dp_a1 FROM public.orders AS base GROUP BY base.status"]
    assert s.sql.startswith("WITH __stage0 AS (SELECT dp_m.dp_k1 AS status, dp_m.dp_a1 AS c FROM (SELECT 'dpm_n_1')"
                            " AS dp_m ORDER BY 2 DESC NULLS LAST) SELECT row_to_json(finalstage)")


def test_power_bi_nesting_and_virtual_tables():
    assert cores('select "_"."x", "_"."C1" from (select "rows"."status" as "x", count(1) as "C1" from '
                 '(select "_"."status" from "public"."orders" "_") "rows" group by "status") "_"') == [
        'SELECT _.status AS dp_k1, count(1) AS dp_a1 FROM public.orders AS _ GROUP BY _.status']
    assert cores("SELECT status, count(*) FROM (SELECT * FROM orders WHERE amount > 5) AS virtual_table "
                 "GROUP BY status") == [
        "SELECT orders.status AS dp_k1, count(*) AS dp_a1 FROM public.orders AS orders "
        "WHERE orders.amount > 5 GROUP BY orders.status"]


def test_row_level_cte_is_inlined_three_levels():
    s = run("WITH v AS (SELECT status AS s, amount FROM orders) SELECT * FROM (SELECT * FROM "
            "(SELECT s, sum(amount) AS total FROM v GROUP BY s) a) b ORDER BY total")
    assert [m.sql for m in s.measurements] == [
        "SELECT orders.status AS dp_k1, sum(orders.amount) AS dp_a1 FROM public.orders AS orders "
        "GROUP BY orders.status"]
    assert "WITH" not in s.sql


def test_star_schema_join_inside_the_measurement():
    assert cores("SELECT p.category, sum(o.amount) FROM orders o JOIN products p ON o.product_id = p.product_id "
                 "WHERE p.price > 3 GROUP BY 1") == [
        "SELECT p.category AS dp_k1, sum(o.amount) AS dp_a1 FROM public.orders AS o INNER JOIN public.products AS p "
        "ON o.product_id = p.product_id WHERE p.price > 3 GROUP BY p.category"]


def test_series_limit_is_lifted_above_the_measurement():
    s = run("SELECT category AS category, DATE_TRUNC('month', created_at) AS __timestamp, SUM(amount) AS s "
            "FROM public.orders JOIN (SELECT category AS category__, SUM(amount) AS mme_inner__ FROM public.orders "
            "GROUP BY category ORDER BY mme_inner__ DESC LIMIT 3) AS series_limit ON category = category__ "
            "GROUP BY category, DATE_TRUNC('month', created_at) LIMIT 10000")
    assert len(s.measurements) == 2
    assert "INNER JOIN (SELECT dp_m" in s.sql and "ON dp_m.dp_k1 = series_limit.category__" in s.sql


def test_two_measurements_joined_and_a_window():
    s = run("SELECT a.status, a.n, b.total, sum(a.n) OVER (ORDER BY a.status) FROM "
            "(SELECT status, count(*) AS n FROM orders GROUP BY status) a JOIN "
            "(SELECT status, sum(amount) AS total FROM orders GROUP BY status) b ON a.status = b.status")
    assert len(s.measurements) == 2
    s = run("SELECT date_trunc('month', created_at) AS m, count(*), sum(count(*)) OVER (ORDER BY "
            "date_trunc('month', created_at)) FROM orders GROUP BY 1")
    assert "sum(dp_m.dp_a1) OVER (ORDER BY dp_m.dp_k1)" in s.sql


def test_scalar_sub_select_is_a_measurement():
    s = run("SELECT (SELECT count(*) FROM orders) AS n")
    assert len(s.measurements) == 1


def test_preview_reads_the_synthetic_copy():
    Catalog.copies = {"orders": Rel("dp_synthetic", "orders", [], False, 9)}
    try:
        s = run("SELECT * FROM orders LIMIT 10")
        # the name stays; the caller's backend reads the copy in its place (src/sql_hook/hook.c)
        assert s.sql == "SELECT * FROM orders LIMIT 10" and [c.name for _, c in s.copies] == ["orders"]
        s = run("SELECT *, (SELECT count(*) FROM orders) AS n FROM orders LIMIT 10")
        assert len(s.measurements) == 1 and len(s.copies) == 1
    finally:
        Catalog.copies = {}
    with pytest.raises(DPError) as e:
        run("SELECT * FROM orders LIMIT 10")
    assert e.value.sqlstate == "42501"


@pytest.mark.parametrize("sql, sqlstate", [
    ("SELECT count(*) FROM orders WHERE amount > (SELECT avg(amount) FROM orders)", "0A000"),
    ("SELECT count(*) FROM orders WHERE id IN (SELECT id FROM orders)", "0A000"),
    ("SELECT sum(n) FROM (SELECT status, count(*) AS n FROM orders GROUP BY status) s", None),
    ("SELECT count(*) FROM (SELECT status, count(*) AS n FROM orders GROUP BY status) s JOIN orders o "
     "ON o.status = s.status", "0A000"),
    ("SELECT status, amount FROM orders GROUP BY status", "42803"),
    ("SELECT o.id, count(*) FROM orders o GROUP BY o.status", "42803"),
    ("SELECT count(*) FROM orders, LATERAL (SELECT * FROM products WHERE price > orders.amount) x", "0A000"),
])
def test_refusals(sql, sqlstate):
    if sqlstate is None:        # answered: the outer aggregate is over released rows
        run(sql)
        return
    with pytest.raises(DPError) as e:
        run(sql)
    assert e.value.sqlstate == sqlstate and e.value.hint


def test_figure_colname():
    stmt = pglast.parse_sql("SELECT count(*), t.x, CAST(y AS int), 1 + 2, CASE WHEN a THEN 1 END, "
                            "EXTRACT(YEAR FROM d), COALESCE(a, 'b') FROM t")[0].stmt
    assert [figure_colname(t.val) for t in stmt.targetList] == [
        "count", "x", "y", "?column?", "case", "extract", "coalesce"]


def test_distinct_is_a_measurement_of_its_keys():
    s = run("SELECT DISTINCT status FROM orders ORDER BY status LIMIT 1000")
    assert [m.sql for m in s.measurements] == [
        "SELECT orders.status AS dp_k1 FROM public.orders AS orders GROUP BY orders.status"]
    assert s.sql == "SELECT DISTINCT dp_m.dp_k1 AS status FROM (SELECT 'dpm_n_1') AS dp_m ORDER BY status LIMIT 1000"
