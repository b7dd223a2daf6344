-- Every error the aggregates raise: SQLSTATE, message and hint.
SET search_path = public, dp;
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE TABLE t (x float8, i int);
INSERT INTO t SELECT g, g FROM generate_series(1, 10) g;

-- epsilon
SELECT dp_count(x, 0) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_count(x, -1) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_sum(x, 0, 10, 'NaN') FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_avg(x, 0, 10, 'Infinity') FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_avg(x, 0, 10, 0) FROM t WHERE false;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_median(x, 0, 10, NULL) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- bounds
SELECT dp_sum(x, 10, 0) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_sum(i, 10, 0) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_avg(x, 'NaN', 10) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_var(x, 0, 'Infinity') FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_stddev(x, '-Infinity', 0) FROM t WHERE false;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_avg(x, NULL, 10) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_median(x, 10, 0) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_avg(x, 0, 1e-310) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- quantile
SELECT dp_quantile(x, 1.5, 0, 10) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_quantile(x, -0.1, 0, 10) FROM t WHERE false;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_quantile(x, 'NaN', 0, 10) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- parameters must not depend on the rows
SELECT dp_avg(x, 0, x) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_sum(x, 0, 10, x / 10) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_count(x, x) FROM t WHERE false;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_quantile(x, x / 100, 0, 10) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_avg(x, 0, (SELECT max(x) FROM t)) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_avg(x, 0, 10 * random()) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- no window use
SELECT dp_count(*) OVER () FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dp_avg(x, 0, 10) OVER (ORDER BY x) FROM t;
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- states are made by the aggregates, not typed in
SELECT 'garbage'::dp_internal.sum_state;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT '(1,2,3,10,0,0,1,1)'::dp_internal.sum_state;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT '(0,10,1,0.5,7;)'::dp_internal.hist_state;
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- the noise function is internal
CREATE ROLE regress_dp_analyst;
GRANT SELECT ON t TO regress_dp_analyst;
SET ROLE regress_dp_analyst;
SELECT dp_internal.release('count', ARRAY['1','0','0','0','0'], ARRAY[1.0, 0]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- ... while the aggregates, which call it internally, work for any role
SELECT dp_count(x, 1.0) BETWEEN 0 AND 100 AS ok FROM t;
RESET ROLE;
DROP TABLE t;
DROP ROLE regress_dp_analyst;
