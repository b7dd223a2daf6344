-- Plain SQL from a restricted role through pg_dp's hook (session_preload_libraries), in psql.
-- Noisy values are shown only through predicates that hold with overwhelming probability.
\set SHOW_CONTEXT never
SET extra_float_digits = 0;
CREATE TABLE regress_visits (id int PRIMARY KEY, ward text NOT NULL CHECK (ward IN ('north', 'south')), days int);
INSERT INTO regress_visits SELECT g, CASE WHEN g % 4 = 0 THEN 'south' ELSE 'north' END, g % 30
FROM generate_series(1, 20000) g;
SELECT dp.protect('regress_visits', dataset => 'visits');
SELECT dp.set_bounds('regress_visits', 'days', 0, 30);
CREATE ROLE regress_bi LOGIN;
SELECT dp.grant_budget('regress_bi', 'visits', 5);
SELECT dp.set_query_epsilon('regress_bi', 'visits', 0.5, 1.0);
SELECT current_database() AS db, current_user AS dba \gset
ALTER DATABASE :"db" SET session_preload_libraries = 'pg_dp';
\c - regress_bi
-- a BI tool's chart: the DP core is answered by the gateway, the rest by PostgreSQL
SELECT ward, abs(n - CASE ward WHEN 'north' THEN 15000 ELSE 5000 END) < 200 AS n_ok,
       mean_days BETWEEN 13 AND 16 AS mean_ok, pg_typeof(n) AS n_type, pg_typeof(mean_days) AS mean_type
FROM (SELECT ward, count(*) AS n, avg(days) AS mean_days FROM regress_visits GROUP BY ward) AS virtual_table
ORDER BY ward;
SELECT epsilon_spent, epsilon_remaining, default_epsilon, max_epsilon FROM dp.my_budget();
-- a row-level CTE under an aggregate is part of the measurement (charged: 0.5)
WITH v AS (SELECT * FROM regress_visits) SELECT abs(count(*) - 20000) < 100 AS n_ok FROM v;
-- refusals, nothing charged
SELECT max(days) FROM regress_visits;
SELECT days FROM regress_visits WHERE id = 7;
SELECT count(*) FROM regress_visits WHERE id IN (SELECT id FROM regress_visits WHERE days = 3);
EXPLAIN SELECT count(*) FROM regress_visits WHERE id = 7;
SET pg_dp.epsilon = 2;
SELECT count(*) FROM regress_visits WHERE days > 3;
SET pg_dp.epsilon = 'lots';
RESET pg_dp.epsilon;
SELECT epsilon_spent FROM dp.my_budget();
-- post-processing by PostgreSQL: HAVING, round() and ORDER BY over the noisy values
SELECT ward FROM regress_visits GROUP BY ward HAVING count(*) > 10000;
SELECT ward, round(avg(days)) BETWEEN 13 AND 16 AS mean_ok FROM regress_visits GROUP BY ward ORDER BY count(*) DESC;
-- a prepared statement with a parameter, executed twice: charged once
PREPARE half(int) AS SELECT abs(count(*) - 10000) < 500 AS about_half FROM regress_visits WHERE days >= $1;
EXECUTE half(15);
EXECUTE half(15);
DEALLOCATE half;
SELECT epsilon_spent FROM dp.my_budget();
\c - :dba
ALTER DATABASE :"db" RESET session_preload_libraries;
DROP TABLE regress_visits;
DROP OWNED BY regress_bi;
DROP ROLE regress_bi;
