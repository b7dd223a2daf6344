-- dp_count over a boolean: what Citus can distribute.  Citus runs a custom
-- aggregate as worker_partial_agg(agg, args) on the workers, which checks that
-- each argument's type is exactly the aggregate's declared one, so "any" (and
-- anyelement) never pass, and an aggregate without arguments (dp_count(*)) is not
-- distributed at all.  On a database with Citus, pg_dp's parse hook rewrites
-- dp_count(*) to dp_count(true) and dp_count(x) to
-- dp_count(NULLIF(x IS NOT NULL, false)), same count (src/citus.c).  Written by
-- hand they count the non-NULL values, as every dp_count does.

CREATE FUNCTION dp_internal.count_trans(dp_internal.sum_state, boolean) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_count_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp_internal.count_trans(dp_internal.sum_state, boolean, double precision) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_count_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE dp.dp_count(value boolean) (
    SFUNC = dp_internal.count_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.count_final, PARALLEL = SAFE);
CREATE AGGREGATE dp.dp_count(value boolean, epsilon double precision) (
    SFUNC = dp_internal.count_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.count_final, PARALLEL = SAFE);

COMMENT ON FUNCTION dp_internal.count_trans(dp_internal.sum_state, boolean) IS 'Internal: transition of dp_count(boolean)';
COMMENT ON FUNCTION dp_internal.count_trans(dp_internal.sum_state, boolean, double precision) IS 'Internal: transition of dp_count(boolean, epsilon)';
COMMENT ON AGGREGATE dp.dp_count(boolean) IS
    'DP count of non-NULL booleans (epsilon 1.0); the form Citus distributes (pg_dp rewrites dp_count(*) and dp_count(x) to it on Citus)';
COMMENT ON AGGREGATE dp.dp_count(boolean, double precision) IS
    'DP count of non-NULL booleans with the given epsilon; the form Citus distributes';
