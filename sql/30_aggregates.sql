-- DP aggregates.  Transition and combine functions are C (per-row work at
-- native speed); final functions are C too and call dp_internal.release once per group.
-- PostgreSQL does not accept named notation or defaults for aggregates, so each
-- aggregate comes in two forms: without epsilon (epsilon = 1.0) and with it as
-- the last argument.
-- The support functions are named after the aggregate's row in the C table of
-- aggregates (src/aggregates/layout.c): <kind>_trans, <kind>_final (count, sum,
-- avg, var, stddev, quantile, median); the C functions behind them read their
-- parameters' positions from that row.

-- transition, combine and final functions ------------------------------------

CREATE FUNCTION dp_internal.count_trans(dp_internal.sum_state) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_count_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
-- dp_count(x) on a Citus table needs pg_dp's parse hook: its planner support says so
-- when the session had not loaded pg_dp (src/citus/citus.c, dp_citus_count_support).
CREATE FUNCTION dp_internal.count_support(internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'dp_citus_count_support' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION dp_internal.count_trans(dp_internal.sum_state, "any") RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_count_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE
    SUPPORT dp_internal.count_support;
CREATE FUNCTION dp_internal.count_trans(dp_internal.sum_state, "any", double precision) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_count_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE
    SUPPORT dp_internal.count_support;

CREATE FUNCTION dp_internal.sum_trans(dp_internal.sum_state, integer, integer, integer) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp_internal.sum_trans(dp_internal.sum_state, integer, integer, integer, double precision) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp_internal.sum_trans(dp_internal.sum_state, bigint, bigint, bigint) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp_internal.sum_trans(dp_internal.sum_state, bigint, bigint, bigint, double precision) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp_internal.sum_trans(dp_internal.sum_state, double precision, double precision, double precision) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp_internal.sum_trans(dp_internal.sum_state, double precision, double precision, double precision, double precision) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION dp_internal.avg_trans(dp_internal.sum_state, double precision, double precision, double precision) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp_internal.avg_trans(dp_internal.sum_state, double precision, double precision, double precision, double precision) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp_internal.stddev_trans(dp_internal.sum_state, double precision, double precision, double precision) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp_internal.stddev_trans(dp_internal.sum_state, double precision, double precision, double precision, double precision) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp_internal.var_trans(dp_internal.sum_state, double precision, double precision, double precision) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp_internal.var_trans(dp_internal.sum_state, double precision, double precision, double precision, double precision) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION dp_internal.quantile_trans(dp_internal.hist_state, double precision, double precision, double precision, double precision) RETURNS dp_internal.hist_state
    AS 'MODULE_PATHNAME', 'dp_hist_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp_internal.quantile_trans(dp_internal.hist_state, double precision, double precision, double precision, double precision, double precision) RETURNS dp_internal.hist_state
    AS 'MODULE_PATHNAME', 'dp_hist_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp_internal.median_trans(dp_internal.hist_state, double precision, double precision, double precision) RETURNS dp_internal.hist_state
    AS 'MODULE_PATHNAME', 'dp_hist_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp_internal.median_trans(dp_internal.hist_state, double precision, double precision, double precision, double precision) RETURNS dp_internal.hist_state
    AS 'MODULE_PATHNAME', 'dp_hist_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION dp_internal.sum_state_combine(dp_internal.sum_state, dp_internal.sum_state) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_state_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp_internal.hist_state_combine(dp_internal.hist_state, dp_internal.hist_state) RETURNS dp_internal.hist_state
    AS 'MODULE_PATHNAME', 'dp_hist_state_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- Final functions add noise: VOLATILE, so the planner never folds or reuses them.
CREATE FUNCTION dp_internal.count_final(dp_internal.sum_state) RETURNS bigint
    AS 'MODULE_PATHNAME', 'dp_sum_state_final' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp_internal.sum_int_final(dp_internal.sum_state) RETURNS bigint
    AS 'MODULE_PATHNAME', 'dp_sum_state_final' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp_internal.sum_float8_final(dp_internal.sum_state) RETURNS double precision
    AS 'MODULE_PATHNAME', 'dp_sum_state_final' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp_internal.avg_final(dp_internal.sum_state) RETURNS double precision
    AS 'MODULE_PATHNAME', 'dp_sum_state_final' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp_internal.var_final(dp_internal.sum_state) RETURNS double precision
    AS 'MODULE_PATHNAME', 'dp_sum_state_final' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp_internal.stddev_final(dp_internal.sum_state) RETURNS double precision
    AS 'MODULE_PATHNAME', 'dp_sum_state_final' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp_internal.quantile_final(dp_internal.hist_state) RETURNS double precision
    AS 'MODULE_PATHNAME', 'dp_hist_state_final' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp_internal.median_final(dp_internal.hist_state) RETURNS double precision
    AS 'MODULE_PATHNAME', 'dp_hist_state_final' LANGUAGE C VOLATILE PARALLEL SAFE;

-- aggregates ----------------------------------------------------------------

CREATE AGGREGATE dp.dp_count(*) (
    SFUNC = dp_internal.count_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.count_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_count(value "any") (
    SFUNC = dp_internal.count_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.count_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_count(value "any", epsilon double precision) (
    SFUNC = dp_internal.count_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.count_final, PARALLEL = SAFE);

CREATE AGGREGATE dp.dp_sum(value integer, lower integer, upper integer) (
    SFUNC = dp_internal.sum_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.sum_int_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_sum(value integer, lower integer, upper integer, epsilon double precision) (
    SFUNC = dp_internal.sum_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.sum_int_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_sum(value bigint, lower bigint, upper bigint) (
    SFUNC = dp_internal.sum_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.sum_int_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_sum(value bigint, lower bigint, upper bigint, epsilon double precision) (
    SFUNC = dp_internal.sum_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.sum_int_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_sum(value double precision, lower double precision, upper double precision) (
    SFUNC = dp_internal.sum_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.sum_float8_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_sum(value double precision, lower double precision, upper double precision, epsilon double precision) (
    SFUNC = dp_internal.sum_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.sum_float8_final, PARALLEL = SAFE);

CREATE AGGREGATE dp.dp_avg(value double precision, lower double precision, upper double precision) (
    SFUNC = dp_internal.avg_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.avg_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_avg(value double precision, lower double precision, upper double precision, epsilon double precision) (
    SFUNC = dp_internal.avg_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.avg_final, PARALLEL = SAFE);

CREATE AGGREGATE dp.dp_var(value double precision, lower double precision, upper double precision) (
    SFUNC = dp_internal.var_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.var_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_var(value double precision, lower double precision, upper double precision, epsilon double precision) (
    SFUNC = dp_internal.var_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.var_final, PARALLEL = SAFE);

CREATE AGGREGATE dp.dp_stddev(value double precision, lower double precision, upper double precision) (
    SFUNC = dp_internal.stddev_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.stddev_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_stddev(value double precision, lower double precision, upper double precision, epsilon double precision) (
    SFUNC = dp_internal.stddev_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.stddev_final, PARALLEL = SAFE);

CREATE AGGREGATE dp.dp_quantile(value double precision, q double precision, lower double precision, upper double precision) (
    SFUNC = dp_internal.quantile_trans, STYPE = dp_internal.hist_state,
    COMBINEFUNC = dp_internal.hist_state_combine, FINALFUNC = dp_internal.quantile_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_quantile(value double precision, q double precision, lower double precision, upper double precision, epsilon double precision) (
    SFUNC = dp_internal.quantile_trans, STYPE = dp_internal.hist_state,
    COMBINEFUNC = dp_internal.hist_state_combine, FINALFUNC = dp_internal.quantile_final, PARALLEL = SAFE);

CREATE AGGREGATE dp.dp_median(value double precision, lower double precision, upper double precision) (
    SFUNC = dp_internal.median_trans, STYPE = dp_internal.hist_state,
    COMBINEFUNC = dp_internal.hist_state_combine, FINALFUNC = dp_internal.median_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_median(value double precision, lower double precision, upper double precision, epsilon double precision) (
    SFUNC = dp_internal.median_trans, STYPE = dp_internal.hist_state,
    COMBINEFUNC = dp_internal.hist_state_combine, FINALFUNC = dp_internal.median_final, PARALLEL = SAFE);
