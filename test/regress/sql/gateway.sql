-- The DBA flow and the analyst flow of the query gateway, in psql.
-- Noisy values are shown only through predicates that hold with overwhelming probability.
\set SHOW_CONTEXT never
SET search_path = public, dp;
SET extra_float_digits = 0;

-- DBA: a table, a protected dataset, bounds, an analyst with a budget
CREATE TYPE regress_team AS ENUM ('sales', 'eng', 'ops', 'legal');
CREATE TABLE regress_staff (id int PRIMARY KEY, team regress_team NOT NULL,
                            grade text NOT NULL CHECK (grade IN ('A', 'B', 'C')),
                            salary numeric, age int NOT NULL, city text);
INSERT INTO regress_staff
SELECT g, (ARRAY['sales','eng','ops'])[1 + g % 3]::regress_team, (ARRAY['A','B','C'])[1 + g % 3],
       1000 + g % 5000, 20 + g % 40, CASE WHEN g = 1 THEN 'Atlantis' ELSE 'Paris' END
FROM generate_series(1, 20000) g;
CREATE ROLE regress_analyst;
GRANT SELECT ON regress_staff TO regress_analyst;
SELECT dp.protect('regress_staff', dataset => 'staff');
SELECT dp.set_bounds('regress_staff', 'salary', 0, 10000);
SELECT dp.set_bounds('regress_staff', 'age', 0, 100);
SELECT dp.grant_budget('regress_analyst', 'staff', 3.0, 1e-5);
SELECT dataset, privacy_unit, max_rows_per_unit, tables FROM dp.datasets;
SELECT column_name, data_type, lower_bound, upper_bound, public_values, values_source
FROM dp.protected_columns ORDER BY column_name;

-- DBA errors
SELECT dp.protect('regress_staff', privacy_unit => 'nope');
SELECT dp.set_bounds('regress_staff', 'age', 10, 0);
SELECT dp.set_bounds('regress_staff', 'nope', 0, 1);
SELECT dp.set_bounds('pg_class', 'relpages', 0, 1);
SELECT dp.grant_budget('regress_analyst', 'nope', 1);
SELECT dp.grant_budget('regress_analyst', 'staff', -1);
SELECT dp.set_public_values('regress_staff', 'city', '{}');
SELECT dp.set_setting('nope', '1');
SELECT dp.revoke_budget('regress_analyst', 'nope');

-- analyst
SET ROLE regress_analyst;
SELECT count(*) FROM regress_staff;
SELECT * FROM dp.my_budget();
SELECT dataset, epsilon_cost, delta_cost, cached FROM dp.cost('SELECT team, count(*), avg(salary) FROM regress_staff GROUP BY team');
SELECT column_name, data_type, mechanism, epsilon, round(noise_scale::numeric, 3) AS noise_scale, note
FROM dp.explain('SELECT team, count(*) AS n, avg(salary) FROM regress_staff GROUP BY team');
SELECT team, abs(n - CASE WHEN team = 'legal' THEN 0 ELSE 6667 END) < 60 AS n_ok, team = 'legal' OR avg_salary BETWEEN 3400 AND 3600 AS avg_ok
FROM dp.query('SELECT team, count(*) AS n, avg(salary) FROM regress_staff GROUP BY team ORDER BY team')
     AS t(team regress_team, n bigint, avg_salary float8);
SELECT epsilon_spent, epsilon_remaining FROM dp.my_budget();
-- the same question again: the cached answer, free
SELECT count(*) FROM dp.query('SELECT team, count(*) AS n, avg(salary) FROM regress_staff GROUP BY team ORDER BY team')
     AS t(team regress_team, n bigint, avg_salary float8);
SELECT epsilon_spent FROM dp.my_budget();
-- JSON rows; partition selection hides the city with one person
SELECT r->>'city' AS city, (r->>'n')::int BETWEEN 19800 AND 20200 AS n_ok
FROM dp.query_json('SELECT city, count(*) AS n FROM regress_staff GROUP BY city', 0.5) r;
SELECT epsilon_spent, delta_spent FROM dp.my_budget();
SELECT statement, mechanism, epsilon, delta FROM dp.ledger ORDER BY id;

-- analyst errors: each names the offending part and gives a hint
SELECT * FROM dp.query_json('SELECT max(age) FROM regress_staff');
SELECT * FROM dp.query_json('SELECT age FROM regress_staff');
SELECT * FROM dp.query_json('SELECT count(*) FROM regress_staff WHERE 1 / age > 0');
SELECT * FROM dp.query_json('SELECT count(*) FROM regress_staff WHERE city::int > 0');
SELECT * FROM dp.query_json('SELECT count(*) FROM (SELECT * FROM regress_staff) s');
SELECT * FROM dp.query_json('WITH s AS (SELECT 1) SELECT count(*) FROM s');
SELECT * FROM dp.query_json('SELECT count(*) FROM regress_staff; SELECT 1');
SELECT * FROM dp.query_json('DELETE FROM regress_staff');
SELECT * FROM dp.query_json('SELECT count(*) FROM pg_class');
SELECT * FROM dp.query_json('SELECT count(nope) FROM regress_staff');
SELECT * FROM dp.query_json('SELECT sum(id) FROM regress_staff');
SELECT * FROM dp.query_json('SELECT count(*) FROM regress_staff HAVING count(*) > 1');
SELECT * FROM dp.query_json('SELECT count(*) FROM regress_staff', 0);
SELECT * FROM dp.query_json('SELECT count(*) FROM regress_staff', 100);
SELECT * FROM dp.query_json('SELECT count(*) FROM regress_staff WHERE age >');
SELECT dp.grant_budget('regress_analyst', 'staff', 100);
RESET ROLE;

-- a write changes the data version: the cached answer is not reused
SELECT data_version AS v0 FROM dp.datasets WHERE dataset = 'staff' \gset
UPDATE regress_staff SET age = age WHERE id = 1;
SELECT data_version > :v0 AS bumped FROM dp.datasets WHERE dataset = 'staff';

-- clean up
SELECT dp.unprotect('regress_staff');
DROP TABLE regress_staff;
DROP TYPE regress_team;
DELETE FROM dp_internal.budgets WHERE role = 'regress_analyst'::regrole;
DROP ROLE regress_analyst;
