-- make demo, part 3: a DP synthetic copy of Adult that BI tools can read freely.
\set SHOW_CONTEXT never
\set VERBOSITY terse
\echo
\echo '== DBA: public domains (UCI publishes the category lists and ranges) and two hard denial constraints'
SELECT dp.set_bounds('adult', c, lo, hi)
FROM (VALUES ('fnlwgt', 0, 1500000), ('education_num', 1, 16), ('capital_gain', 0, 100000),
             ('capital_loss', 0, 5000)) AS b(c, lo, hi);
SELECT dp.set_public_values('adult', c, (SELECT array_agg(DISTINCT v) FROM (
           SELECT CASE c WHEN 'workclass' THEN workclass WHEN 'education' THEN education
                         WHEN 'marital_status' THEN marital_status WHEN 'occupation' THEN occupation
                         WHEN 'relationship' THEN relationship WHEN 'race' THEN race
                         ELSE native_country END AS v FROM adult) x WHERE v IS NOT NULL))
FROM unnest(ARRAY['workclass', 'education', 'marital_status', 'occupation', 'relationship', 'race',
                  'native_country']) AS c;
SELECT dp.add_constraint('adult', 't1&t2&EQ(t1.education,t2.education)&IQ(t1.education_num,t2.education_num)');
SELECT dp.add_constraint('adult', 't1&t2&LT(t1.capital_gain,t2.capital_gain)&LT(t1.capital_loss,t2.capital_loss)');
SELECT dp.grant_budget('demo_analyst', 'adult', 1.0, 1e-5);
\echo '== Analyst: what would a synthetic copy cost? (nothing is spent)'
SET ROLE demo_analyst;
CALL dp.dp_synthesize('adult', epsilon => 1.0, dry_run => true);
\echo '== ... then make it (progress is reported as it goes)'
CALL dp.dp_synthesize('adult', epsilon => 1.0);
\echo '== The copy (in the analyst''s own shadow schema) has the same columns and types, and is free to query'
\d dp_synthetic_demo_analyst.adult
SELECT sex, income, count(*) AS people, round(avg(hours_per_week), 1) AS mean_hours
FROM dp_synthetic_demo_analyst.adult GROUP BY sex, income ORDER BY sex, income;
SELECT synthetic_table, source, epsilon, delta, row_count, method, made_by FROM dp.synthetic_tables;
RESET ROLE;
\echo '== DBA: how faithful is it? (reads the raw data: administrators only)'
SELECT metric, round(value::numeric, 4) AS value,
       CASE WHEN metric LIKE 'tvd%' THEN 'independent-columns baseline ' || round((detail->>'independent_baseline')::numeric, 4)
            WHEN metric = 'dc_violations' THEN detail->>'dc'
            ELSE 'trained on real rows: ' || round((detail->>'accuracy_real')::numeric, 3) || ', majority class: '
                 || round((detail->>'accuracy_majority')::numeric, 3) END AS compared_with
FROM dp.evaluate_synthetic('adult');
