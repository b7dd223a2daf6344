-- DP aggregates.  Transition and combine functions are C (per-row work at
-- native speed); final functions are C too and call dp._release once per group.
-- PostgreSQL does not accept named notation or defaults for aggregates, so each
-- aggregate comes in two forms: without epsilon (epsilon = 1.0) and with it as
-- the last argument.

-- transition, combine and final functions ------------------------------------

CREATE FUNCTION dp._count_trans(dp.sum_state) RETURNS dp.sum_state
    AS 'MODULE_PATHNAME', 'dp_count_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp._count_trans(dp.sum_state, "any") RETURNS dp.sum_state
    AS 'MODULE_PATHNAME', 'dp_count_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp._count_trans(dp.sum_state, "any", double precision) RETURNS dp.sum_state
    AS 'MODULE_PATHNAME', 'dp_count_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION dp._sum_trans(dp.sum_state, integer, integer, integer) RETURNS dp.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_int4_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp._sum_trans(dp.sum_state, integer, integer, integer, double precision) RETURNS dp.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_int4_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp._sum_trans(dp.sum_state, bigint, bigint, bigint) RETURNS dp.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_int8_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp._sum_trans(dp.sum_state, bigint, bigint, bigint, double precision) RETURNS dp.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_int8_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp._sum_trans(dp.sum_state, double precision, double precision, double precision) RETURNS dp.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_float8_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp._sum_trans(dp.sum_state, double precision, double precision, double precision, double precision) RETURNS dp.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_float8_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION dp._avg_trans(dp.sum_state, double precision, double precision, double precision) RETURNS dp.sum_state
    AS 'MODULE_PATHNAME', 'dp_avg_float8_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp._avg_trans(dp.sum_state, double precision, double precision, double precision, double precision) RETURNS dp.sum_state
    AS 'MODULE_PATHNAME', 'dp_avg_float8_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp._stddev_trans(dp.sum_state, double precision, double precision, double precision) RETURNS dp.sum_state
    AS 'MODULE_PATHNAME', 'dp_stddev_float8_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp._stddev_trans(dp.sum_state, double precision, double precision, double precision, double precision) RETURNS dp.sum_state
    AS 'MODULE_PATHNAME', 'dp_stddev_float8_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp._var_trans(dp.sum_state, double precision, double precision, double precision) RETURNS dp.sum_state
    AS 'MODULE_PATHNAME', 'dp_var_float8_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp._var_trans(dp.sum_state, double precision, double precision, double precision, double precision) RETURNS dp.sum_state
    AS 'MODULE_PATHNAME', 'dp_var_float8_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION dp._quantile_trans(dp.hist_state, double precision, double precision, double precision, double precision) RETURNS dp.hist_state
    AS 'MODULE_PATHNAME', 'dp_quantile_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp._quantile_trans(dp.hist_state, double precision, double precision, double precision, double precision, double precision) RETURNS dp.hist_state
    AS 'MODULE_PATHNAME', 'dp_quantile_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp._median_trans(dp.hist_state, double precision, double precision, double precision) RETURNS dp.hist_state
    AS 'MODULE_PATHNAME', 'dp_median_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp._median_trans(dp.hist_state, double precision, double precision, double precision, double precision) RETURNS dp.hist_state
    AS 'MODULE_PATHNAME', 'dp_median_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION dp._sum_state_combine(dp.sum_state, dp.sum_state) RETURNS dp.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_state_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp._hist_state_combine(dp.hist_state, dp.hist_state) RETURNS dp.hist_state
    AS 'MODULE_PATHNAME', 'dp_hist_state_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- Final functions add noise: VOLATILE, so the planner never folds or reuses them.
CREATE FUNCTION dp._count_final(dp.sum_state) RETURNS bigint
    AS 'MODULE_PATHNAME', 'dp_count_final' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp._sum_int_final(dp.sum_state) RETURNS bigint
    AS 'MODULE_PATHNAME', 'dp_sum_int_final' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp._sum_float8_final(dp.sum_state) RETURNS double precision
    AS 'MODULE_PATHNAME', 'dp_sum_float8_final' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp._avg_final(dp.sum_state) RETURNS double precision
    AS 'MODULE_PATHNAME', 'dp_avg_final' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp._var_final(dp.sum_state) RETURNS double precision
    AS 'MODULE_PATHNAME', 'dp_var_final' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp._stddev_final(dp.sum_state) RETURNS double precision
    AS 'MODULE_PATHNAME', 'dp_stddev_final' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp._quantile_final(dp.hist_state) RETURNS double precision
    AS 'MODULE_PATHNAME', 'dp_quantile_final' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp._median_final(dp.hist_state) RETURNS double precision
    AS 'MODULE_PATHNAME', 'dp_median_final' LANGUAGE C VOLATILE PARALLEL SAFE;

-- aggregates ----------------------------------------------------------------

CREATE AGGREGATE dp.dp_count(*) (
    SFUNC = dp._count_trans, STYPE = dp.sum_state,
    COMBINEFUNC = dp._sum_state_combine, FINALFUNC = dp._count_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_count(value "any") (
    SFUNC = dp._count_trans, STYPE = dp.sum_state,
    COMBINEFUNC = dp._sum_state_combine, FINALFUNC = dp._count_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_count(value "any", epsilon double precision) (
    SFUNC = dp._count_trans, STYPE = dp.sum_state,
    COMBINEFUNC = dp._sum_state_combine, FINALFUNC = dp._count_final, PARALLEL = SAFE);

CREATE AGGREGATE dp.dp_sum(value integer, lower integer, upper integer) (
    SFUNC = dp._sum_trans, STYPE = dp.sum_state,
    COMBINEFUNC = dp._sum_state_combine, FINALFUNC = dp._sum_int_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_sum(value integer, lower integer, upper integer, epsilon double precision) (
    SFUNC = dp._sum_trans, STYPE = dp.sum_state,
    COMBINEFUNC = dp._sum_state_combine, FINALFUNC = dp._sum_int_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_sum(value bigint, lower bigint, upper bigint) (
    SFUNC = dp._sum_trans, STYPE = dp.sum_state,
    COMBINEFUNC = dp._sum_state_combine, FINALFUNC = dp._sum_int_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_sum(value bigint, lower bigint, upper bigint, epsilon double precision) (
    SFUNC = dp._sum_trans, STYPE = dp.sum_state,
    COMBINEFUNC = dp._sum_state_combine, FINALFUNC = dp._sum_int_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_sum(value double precision, lower double precision, upper double precision) (
    SFUNC = dp._sum_trans, STYPE = dp.sum_state,
    COMBINEFUNC = dp._sum_state_combine, FINALFUNC = dp._sum_float8_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_sum(value double precision, lower double precision, upper double precision, epsilon double precision) (
    SFUNC = dp._sum_trans, STYPE = dp.sum_state,
    COMBINEFUNC = dp._sum_state_combine, FINALFUNC = dp._sum_float8_final, PARALLEL = SAFE);

CREATE AGGREGATE dp.dp_avg(value double precision, lower double precision, upper double precision) (
    SFUNC = dp._avg_trans, STYPE = dp.sum_state,
    COMBINEFUNC = dp._sum_state_combine, FINALFUNC = dp._avg_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_avg(value double precision, lower double precision, upper double precision, epsilon double precision) (
    SFUNC = dp._avg_trans, STYPE = dp.sum_state,
    COMBINEFUNC = dp._sum_state_combine, FINALFUNC = dp._avg_final, PARALLEL = SAFE);

CREATE AGGREGATE dp.dp_var(value double precision, lower double precision, upper double precision) (
    SFUNC = dp._var_trans, STYPE = dp.sum_state,
    COMBINEFUNC = dp._sum_state_combine, FINALFUNC = dp._var_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_var(value double precision, lower double precision, upper double precision, epsilon double precision) (
    SFUNC = dp._var_trans, STYPE = dp.sum_state,
    COMBINEFUNC = dp._sum_state_combine, FINALFUNC = dp._var_final, PARALLEL = SAFE);

CREATE AGGREGATE dp.dp_stddev(value double precision, lower double precision, upper double precision) (
    SFUNC = dp._stddev_trans, STYPE = dp.sum_state,
    COMBINEFUNC = dp._sum_state_combine, FINALFUNC = dp._stddev_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_stddev(value double precision, lower double precision, upper double precision, epsilon double precision) (
    SFUNC = dp._stddev_trans, STYPE = dp.sum_state,
    COMBINEFUNC = dp._sum_state_combine, FINALFUNC = dp._stddev_final, PARALLEL = SAFE);

CREATE AGGREGATE dp.dp_quantile(value double precision, q double precision, lower double precision, upper double precision) (
    SFUNC = dp._quantile_trans, STYPE = dp.hist_state,
    COMBINEFUNC = dp._hist_state_combine, FINALFUNC = dp._quantile_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_quantile(value double precision, q double precision, lower double precision, upper double precision, epsilon double precision) (
    SFUNC = dp._quantile_trans, STYPE = dp.hist_state,
    COMBINEFUNC = dp._hist_state_combine, FINALFUNC = dp._quantile_final, PARALLEL = SAFE);

CREATE AGGREGATE dp.dp_median(value double precision, lower double precision, upper double precision) (
    SFUNC = dp._median_trans, STYPE = dp.hist_state,
    COMBINEFUNC = dp._hist_state_combine, FINALFUNC = dp._median_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_median(value double precision, lower double precision, upper double precision, epsilon double precision) (
    SFUNC = dp._median_trans, STYPE = dp.hist_state,
    COMBINEFUNC = dp._hist_state_combine, FINALFUNC = dp._median_final, PARALLEL = SAFE);
