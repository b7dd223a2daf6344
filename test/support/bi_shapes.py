"""Statements that BI tools send for charts of one table, written from what they emit.

Each is (tool, what the chart is, SQL, parameters).  The table is `orders` (see
test_bi_clients.create_orders): a restricted role asks them as plain SQL, through
psycopg and JDBC, and each must be answered (DP, charged once) with the columns a
native answer would have.  %s marks a parameter (psycopg); JDBC uses ? in its place.
"""

SHAPES = [
    # Metabase (its query processor quotes and schema-qualifies every column)
    ("metabase", "count of rows", 'SELECT count(*) AS "count" FROM "public"."orders"', []),
    ("metabase", "count by a category",
     'SELECT "public"."orders"."status" AS "status", count(*) AS "count" FROM "public"."orders" '
     'GROUP BY "public"."orders"."status" ORDER BY "public"."orders"."status" ASC', []),
    ("metabase", "sum with a filter",
     'SELECT sum("public"."orders"."total") AS "sum" FROM "public"."orders" '
     "WHERE \"public\".\"orders\".\"status\" = 'shipped'", []),
    ("metabase", "average", 'SELECT avg("public"."orders"."quantity") AS "avg" FROM "public"."orders"', []),
    ("metabase", "count by month",
     "SELECT date_trunc('month', \"public\".\"orders\".\"created_at\") AS \"created_at\", count(*) AS \"count\" "
     "FROM \"public\".\"orders\" GROUP BY date_trunc('month', \"public\".\"orders\".\"created_at\") "
     "ORDER BY date_trunc('month', \"public\".\"orders\".\"created_at\") ASC", []),
    ("metabase", "a date range filter",
     'SELECT count(*) AS "count" FROM "public"."orders" '
     "WHERE (\"public\".\"orders\".\"created_at\" >= timestamp '2021-01-01 00:00:00.000' "
     "AND \"public\".\"orders\".\"created_at\" < timestamp '2022-01-01 00:00:00.000')", []),
    ("metabase", "a question as a source, sorted and limited",
     'SELECT "source"."status" AS "status", "source"."count" AS "count" FROM (SELECT "public"."orders"."status" '
     'AS "status", count(*) AS "count" FROM "public"."orders" GROUP BY "public"."orders"."status") AS "source" '
     'ORDER BY "source"."count" DESC, "source"."status" ASC LIMIT 10', []),
    ("metabase", "a text filter with a parameter",
     'SELECT count(*) AS "count" FROM "public"."orders" WHERE "public"."orders"."country" = %s', ["FR"]),
    ("metabase", "count by a case bucket",
     "SELECT CASE WHEN \"public\".\"orders\".\"quantity\" < 5 THEN 'small' ELSE 'large' END AS \"size\", "
     "count(*) AS \"count\" FROM \"public\".\"orders\" GROUP BY 1 ORDER BY 1 ASC", []),
    # Superset (SQLAlchemy's PostgreSQL dialect; LIMIT on every chart)
    ("superset", "count by a category, top first",
     "SELECT status AS status, COUNT(*) AS count FROM public.orders GROUP BY status ORDER BY count DESC LIMIT 10000",
     []),
    ("superset", "big number with a time range",
     'SELECT SUM(total) AS "SUM(total)" FROM public.orders '
     "WHERE created_at >= TO_TIMESTAMP('2021-01-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US') "
     "AND created_at < TO_TIMESTAMP('2021-07-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US') LIMIT 50000", []),
    ("superset", "time series by day",
     "SELECT DATE_TRUNC('day', created_at) AS __timestamp, COUNT(*) AS count FROM public.orders "
     "WHERE created_at >= '2021-03-01 00:00:00.000000' AND created_at < '2021-03-08 00:00:00.000000' "
     "GROUP BY DATE_TRUNC('day', created_at) LIMIT 10000", []),
    ("superset", "a wrapped virtual dataset",
     'SELECT country AS country, "AVG(quantity)" AS "AVG(quantity)" FROM (SELECT country, AVG(quantity) '
     'AS "AVG(quantity)" FROM public.orders GROUP BY country) AS virtual_table ORDER BY "AVG(quantity)" DESC '
     "LIMIT 1000", []),
    ("superset", "median", 'SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total) AS "MEDIAN(total)" '
     "FROM public.orders", []),
    # Tableau (its PostgreSQL connector: aliases, CAST, GROUP BY positions)
    ("tableau", "count as SUM(1)",
     'SELECT "orders"."status" AS "status", SUM(1) AS "cnt:orders:ok" FROM "public"."orders" "orders" GROUP BY 1',
     []),
    ("tableau", "sum of a cast measure",
     'SELECT "orders"."country" AS "country", SUM(CAST("orders"."quantity" AS BIGINT)) AS "sum:quantity:ok" '
     'FROM "public"."orders" "orders" GROUP BY 1', []),
    ("tableau", "average by year",
     'SELECT EXTRACT(YEAR FROM "orders"."created_at") AS "yr:created_at:ok", '
     'AVG(CAST("orders"."total" AS DOUBLE PRECISION)) AS "avg:total:ok" FROM "public"."orders" "orders" GROUP BY 1',
     []),
    ("tableau", "count by day as a date",
     'SELECT CAST("orders"."created_at" AS DATE) AS "day:created_at:ok", COUNT(1) AS "cnt:orders:ok" '
     'FROM "public"."orders" "orders" WHERE ("orders"."created_at" >= CAST(\'2021-06-01\' AS DATE) AND '
     '"orders"."created_at" < CAST(\'2021-06-08\' AS DATE)) GROUP BY 1', []),
    ("tableau", "a LIKE filter",
     'SELECT COUNT(1) AS "cnt:orders:ok" FROM "public"."orders" "orders" WHERE ("orders"."status" LIKE \'sh%\')',
     []),
]
