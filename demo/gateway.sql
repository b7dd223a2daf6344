-- The DBA opens public.adult to an analyst through the gateway, with a budget.
\pset footer off
\set SHOW_CONTEXT never
\set VERBOSITY terse
\echo
\echo '== DBA: protect the table, declare public bounds, grant the analyst epsilon 3'
SELECT dp.protect('adult');
SELECT dp.set_bounds('adult', 'age', 17, 90);
SELECT dp.set_bounds('adult', 'hours_per_week', 1, 99);
SELECT dp.set_public_values('adult', 'sex', ARRAY['Female', 'Male']);
SELECT dp.set_public_values('adult', 'income', ARRAY['<=50K', '>50K']);
CREATE ROLE demo_analyst;
SELECT dp.grant_budget('demo_analyst', 'adult', 3.0, 1e-5);
\echo '== Analyst: no access to rows ...'
SET ROLE demo_analyst;
SELECT age, sex FROM adult LIMIT 5;
\echo '== ... but plain SQL aggregates get DP answers (pg_dp hook, session_preload_libraries), epsilon 1.0'
SELECT sex, count(*), avg(age) FROM adult GROUP BY sex;
\echo '== ... but DP questions, priced before they are asked'
SELECT * FROM dp.cost('SELECT sex, income, count(*), avg(hours_per_week) FROM adult GROUP BY sex, income', 1.0);
SELECT * FROM dp.query('SELECT sex, income, count(*), avg(hours_per_week) FROM adult GROUP BY sex, income ORDER BY sex, income', 1.0)
         AS t(sex text, income text, people bigint, mean_hours float8);
\echo '== Asking again returns the same (cached) answer, at no cost'
SELECT * FROM dp.query('SELECT sex, income, count(*), avg(hours_per_week) FROM adult GROUP BY sex, income ORDER BY sex, income', 1.0)
         AS t(sex text, income text, people bigint, mean_hours float8);
\echo '== Occupations are not a public list: DP partition selection picks the groups (costs delta)'
SELECT * FROM dp.query_json('SELECT occupation, count(*) AS people FROM adult GROUP BY occupation ORDER BY people DESC LIMIT 5', 0.5);
\echo '== The budget has a delta: questions add up in zCDP (2.5 asked so far, less spent)'
SELECT dataset, epsilon_spent, epsilon_remaining, delta_spent FROM dp.my_budget();
\echo '== Filter drop-downs (public values) are free; min and max are DP quantiles near the ends'
SELECT DISTINCT sex FROM adult ORDER BY 1;
SELECT min(age), max(age) FROM adult;
\echo '== Over budget: refused before anything is computed'
SELECT * FROM dp.query_json('SELECT avg(age) FROM adult', 3.0);
\echo '== Not in the DP subset: refused with the reason'
SELECT * FROM dp.query_json('SELECT max(age) FROM adult WHERE 1 / hours_per_week > 0');
SELECT statement, epsilon, delta FROM dp.ledger ORDER BY id;
RESET ROLE;
