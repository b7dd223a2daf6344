-- DP aggregates: behaviour that holds whatever the noise draws.
-- Each predicate fails with probability far below 1e-9.
SET search_path = public, dp;
SET extra_float_digits = 0;

CREATE TABLE people (id int, age int, income float8, score numeric, dept text);
INSERT INTO people
SELECT g, 18 + g % 60, (g % 1000) * 100.0, (g % 7)::numeric, (ARRAY['a','b','c'])[1 + g % 3]
FROM generate_series(1, 30000) g;
INSERT INTO people VALUES (30001, NULL, NULL, NULL, 'a');

-- result types
SELECT pg_typeof(dp_count(*)) AS count_star, pg_typeof(dp_count(age)) AS count_x,
       pg_typeof(dp_sum(age, 0, 100)) AS sum_int, pg_typeof(dp_sum(id::bigint, 0, 100)) AS sum_bigint,
       pg_typeof(dp_sum(income, 0, 1e5)) AS sum_float, pg_typeof(dp_sum(score, 0, 10)) AS sum_numeric,
       pg_typeof(dp_avg(age, 0, 100)) AS avg, pg_typeof(dp_median(age, 0, 100)) AS median
FROM people;

-- accuracy at a generous epsilon: the noise is far smaller than the tolerance
SELECT abs(dp_count(1, 1.0) - 30001) < 60 AS count_rows FROM people;
SELECT abs(dp_count(1, 1.0) - 30001) < 60 AS count_rows,
       abs(dp_count(age, 1.0) - 30000) < 60 AS count_skips_nulls,
       abs(dp_count(age) - 30000) < 60 AS default_epsilon
FROM people;
SELECT abs(dp_sum(age, 0, 100, 1.0) - (SELECT sum(age) FROM people)) < 100 * 60 AS sum_int,
       abs(dp_sum(income, 0, 1e5, 1.0) - (SELECT sum(income) FROM people)) < 1e5 * 60 AS sum_float,
       abs(dp_avg(age, 0, 100, 1.0) - (SELECT avg(age) FROM people)) < 0.5 AS avg,
       abs(dp_var(age, 0, 100, 1.0) - (SELECT var_samp(age) FROM people)) < 15 AS var,
       abs(dp_stddev(age, 0, 100, 1.0) - (SELECT stddev_samp(age) FROM people)) < 0.5 AS stddev,
       abs(dp_median(age, 0, 100, 1.0) - 47.5) < 3 AS median,
       abs(dp_quantile(income, 0.9, 0, 1e5, 1.0) - 90000) < 2000 AS p90
FROM people;

-- clamping: values outside the bounds count as the nearest bound
SELECT dp_avg(age, 0, 10, 1.0) BETWEEN 9 AND 10 AS clamped_high,
       dp_avg(age, 200, 300, 1.0) BETWEEN 200 AND 201 AS clamped_low,
       dp_median(age, 0, 10, 1.0) BETWEEN 9 AND 10 AS median_clamped
FROM people;

-- averages and quantiles never leave [lower, upper]; variances never go below 0
SELECT min(a) >= 0 AND max(a) <= 100 AS avg_in_bounds,
       min(m) >= 0 AND max(m) <= 100 AS median_in_bounds,
       min(v) >= 0 AS var_non_negative
FROM (SELECT g, dp_avg(age, 0, 100, 0.01) AS a, dp_median(age, 0, 100, 0.01) AS m,
             dp_var(age, 0, 100, 0.01) AS v
      FROM people, generate_series(1, 5) g WHERE id % 50 = 0 GROUP BY g) s;

-- GROUP BY: one noisy answer per group
SELECT dept, abs(dp_count(1, 1.0) - 10000) < 60 AS count_ok,
       abs(dp_avg(age, 0, 100, 1.0) - avg(age)) < 0.5 AS avg_ok
FROM people WHERE age IS NOT NULL GROUP BY dept ORDER BY dept;

-- empty input still releases a noisy value (an empty answer would reveal emptiness)
SELECT dp_count(*) IS NOT NULL AS count_empty, dp_count(*) >= 0 AS count_non_negative,
       dp_sum(age, 0, 100) IS NOT NULL AS sum_empty,
       dp_avg(age, 0, 100) BETWEEN 0 AND 100 AS avg_empty,
       dp_median(age, 0, 100) BETWEEN 0 AND 100 AS median_empty
FROM people WHERE false;

-- every value NULL behaves like empty input
SELECT abs(dp_count(age, 1.0)) < 60 AS all_null_count, dp_avg(age, 0, 100) BETWEEN 0 AND 100 AS all_null_avg
FROM people WHERE age IS NULL;

-- NaN is ignored like NULL, infinities are clamped
SELECT dp_avg(x, 0, 10, 1.0) BETWEEN 4 AND 6 AS nan_ignored
FROM (SELECT CASE WHEN g % 2 = 0 THEN 'NaN'::float8 ELSE 5 END AS x FROM generate_series(1, 20000) g) s;
SELECT dp_avg(x, 0, 10, 1.0) BETWEEN 9 AND 10 AS inf_clamped
FROM (SELECT 'Infinity'::float8 AS x FROM generate_series(1, 20000)) s;

-- repeated evaluation draws fresh noise (final functions are volatile)
SELECT count(DISTINCT s) > 1 AS fresh_noise
FROM (SELECT g, dp_sum(income, 0, 1e5, 0.1) AS s FROM people, generate_series(1, 3) g
      WHERE id < 100 GROUP BY g) t;

-- parameters may be client parameters in a prepared statement
PREPARE q(float8, float8, float8) AS SELECT abs(dp_avg(age, $1, $2, $3) - 47.5) < 1 AS ok FROM people;
EXECUTE q(0, 100, 1.0);
EXECUTE q(0, 100, 1.0);
DEALLOCATE q;
SET plan_cache_mode = force_generic_plan;
PREPARE q(float8) AS SELECT abs(dp_count(age, $1) - 30000) < 60 AS ok FROM people WHERE id < $1 * 1e9;
EXECUTE q(1.0);
DEALLOCATE q;
RESET plan_cache_mode;

-- parallel query: partial aggregation in workers, combine + noise in the leader
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT dp_count(*), dp_avg(age, 0, 100), dp_median(age, 0, 100) FROM people;
SELECT abs(dp_count(1, 1.0) - 30001) < 60 AS count_ok,
       abs(dp_avg(age, 0, 100, 1.0) - 47.5) < 1 AS avg_ok,
       abs(dp_median(age, 0, 100, 1.0) - 47.5) < 3 AS median_ok
FROM people;
SELECT dp_count(*) >= 0 AS empty_ok, dp_avg(age, 0, 100) BETWEEN 0 AND 100 AS empty_avg_ok
FROM people WHERE false;
SELECT dept, abs(dp_count(1, 1.0) - 10000) < 60 AS count_ok FROM people
WHERE age IS NOT NULL GROUP BY dept ORDER BY dept;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- partial states have an exact text form (distributed engines move them as text)
SELECT dp_internal.sum_state_out(dp_internal.sum_state_in('(3,-12,48,-10,10,0,1,0.5)'));
SELECT '(0,100,1,0.5,1025;0:2 1024:3)'::dp_internal.hist_state;
