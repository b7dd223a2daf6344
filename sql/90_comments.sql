-- Documentation of every SQL object (\df+ dp.*, \da dp.*).

COMMENT ON AGGREGATE dp.dp_count(*) IS
    'DP row count, epsilon = 1.0: count + discrete Laplace noise (OpenDP), never below 0';
COMMENT ON AGGREGATE dp.dp_count("any") IS
    'DP count of non-NULL values, epsilon = 1.0';
COMMENT ON AGGREGATE dp.dp_count("any", double precision) IS
    'DP count of non-NULL values with the given epsilon; dp_count(1, eps) counts rows';

COMMENT ON AGGREGATE dp.dp_sum(integer, integer, integer) IS
    'DP sum of values clamped to [lower, upper], epsilon = 1.0; noise scale max(|lower|,|upper|)/epsilon';
COMMENT ON AGGREGATE dp.dp_sum(integer, integer, integer, double precision) IS
    'DP sum of values clamped to [lower, upper] with the given epsilon; noise scale max(|lower|,|upper|)/epsilon';
COMMENT ON AGGREGATE dp.dp_sum(bigint, bigint, bigint) IS
    'DP sum of values clamped to [lower, upper], epsilon = 1.0';
COMMENT ON AGGREGATE dp.dp_sum(bigint, bigint, bigint, double precision) IS
    'DP sum of values clamped to [lower, upper] with the given epsilon';
COMMENT ON AGGREGATE dp.dp_sum(double precision, double precision, double precision) IS
    'DP sum of values clamped to [lower, upper] (exact fixed-point accumulation), epsilon = 1.0';
COMMENT ON AGGREGATE dp.dp_sum(double precision, double precision, double precision, double precision) IS
    'DP sum of values clamped to [lower, upper] (exact fixed-point accumulation) with the given epsilon';

COMMENT ON AGGREGATE dp.dp_avg(double precision, double precision, double precision) IS
    'DP mean of values clamped to [lower, upper], epsilon = 1.0 (half to the count, half to the centred sum)';
COMMENT ON AGGREGATE dp.dp_avg(double precision, double precision, double precision, double precision) IS
    'DP mean of values clamped to [lower, upper] with the given epsilon (half to the count, half to the centred sum)';

COMMENT ON AGGREGATE dp.dp_var(double precision, double precision, double precision) IS
    'DP sample variance of values clamped to [lower, upper], epsilon = 1.0 (a third each to count, sum, sum of squares)';
COMMENT ON AGGREGATE dp.dp_var(double precision, double precision, double precision, double precision) IS
    'DP sample variance of values clamped to [lower, upper] with the given epsilon';

COMMENT ON AGGREGATE dp.dp_stddev(double precision, double precision, double precision) IS
    'DP sample standard deviation (square root of dp_var), epsilon = 1.0';
COMMENT ON AGGREGATE dp.dp_stddev(double precision, double precision, double precision, double precision) IS
    'DP sample standard deviation (square root of dp_var) with the given epsilon';

COMMENT ON AGGREGATE dp.dp_quantile(double precision, double precision, double precision, double precision) IS
    'DP q-quantile: exponential mechanism (OpenDP noisy max) over 1025 grid points in [lower, upper], epsilon = 1.0';
COMMENT ON AGGREGATE dp.dp_quantile(double precision, double precision, double precision, double precision, double precision) IS
    'DP q-quantile: exponential mechanism (OpenDP noisy max) over 1025 grid points in [lower, upper] with the given epsilon';

COMMENT ON AGGREGATE dp.dp_median(double precision, double precision, double precision) IS
    'DP median: dp_quantile(value, 0.5, lower, upper), epsilon = 1.0';
COMMENT ON AGGREGATE dp.dp_median(double precision, double precision, double precision, double precision) IS
    'DP median: dp_quantile(value, 0.5, lower, upper) with the given epsilon';

-- support functions
COMMENT ON FUNCTION dp_internal.count_trans(dp_internal.sum_state) IS 'Internal: transition of dp_count(*)';
COMMENT ON FUNCTION dp_internal.count_trans(dp_internal.sum_state, "any") IS 'Internal: transition of dp_count(value)';
COMMENT ON FUNCTION dp_internal.count_trans(dp_internal.sum_state, "any", double precision) IS 'Internal: transition of dp_count(value, epsilon)';
COMMENT ON FUNCTION dp_internal.count_support(internal) IS 'Internal: planner support of dp_count(value)''s transition: on a Citus table, says that the session must load pg_dp before the statement (else Citus''s workers fail)';
COMMENT ON FUNCTION dp_internal.sum_trans(dp_internal.sum_state, integer, integer, integer) IS 'Internal: transition of dp_sum(integer)';
COMMENT ON FUNCTION dp_internal.sum_trans(dp_internal.sum_state, integer, integer, integer, double precision) IS 'Internal: transition of dp_sum(integer, epsilon)';
COMMENT ON FUNCTION dp_internal.sum_trans(dp_internal.sum_state, bigint, bigint, bigint) IS 'Internal: transition of dp_sum(bigint)';
COMMENT ON FUNCTION dp_internal.sum_trans(dp_internal.sum_state, bigint, bigint, bigint, double precision) IS 'Internal: transition of dp_sum(bigint, epsilon)';
COMMENT ON FUNCTION dp_internal.sum_trans(dp_internal.sum_state, double precision, double precision, double precision) IS 'Internal: transition of dp_sum(double precision)';
COMMENT ON FUNCTION dp_internal.sum_trans(dp_internal.sum_state, double precision, double precision, double precision, double precision) IS 'Internal: transition of dp_sum(double precision, epsilon)';
COMMENT ON FUNCTION dp_internal.avg_trans(dp_internal.sum_state, double precision, double precision, double precision) IS 'Internal: transition of dp_avg';
COMMENT ON FUNCTION dp_internal.avg_trans(dp_internal.sum_state, double precision, double precision, double precision, double precision) IS 'Internal: transition of dp_avg with epsilon';
COMMENT ON FUNCTION dp_internal.var_trans(dp_internal.sum_state, double precision, double precision, double precision) IS 'Internal: transition of dp_var';
COMMENT ON FUNCTION dp_internal.var_trans(dp_internal.sum_state, double precision, double precision, double precision, double precision) IS 'Internal: transition of dp_var with epsilon';
COMMENT ON FUNCTION dp_internal.stddev_trans(dp_internal.sum_state, double precision, double precision, double precision) IS 'Internal: transition of dp_stddev';
COMMENT ON FUNCTION dp_internal.stddev_trans(dp_internal.sum_state, double precision, double precision, double precision, double precision) IS 'Internal: transition of dp_stddev with epsilon';
COMMENT ON FUNCTION dp_internal.quantile_trans(dp_internal.hist_state, double precision, double precision, double precision, double precision) IS 'Internal: transition of dp_quantile';
COMMENT ON FUNCTION dp_internal.quantile_trans(dp_internal.hist_state, double precision, double precision, double precision, double precision, double precision) IS 'Internal: transition of dp_quantile with epsilon';
COMMENT ON FUNCTION dp_internal.median_trans(dp_internal.hist_state, double precision, double precision, double precision) IS 'Internal: transition of dp_median';
COMMENT ON FUNCTION dp_internal.median_trans(dp_internal.hist_state, double precision, double precision, double precision, double precision) IS 'Internal: transition of dp_median with epsilon';
COMMENT ON FUNCTION dp_internal.sum_state_combine(dp_internal.sum_state, dp_internal.sum_state) IS 'Internal: combines partial dp_internal.sum_state values (parallel and distributed aggregation)';
COMMENT ON FUNCTION dp_internal.hist_state_combine(dp_internal.hist_state, dp_internal.hist_state) IS 'Internal: combines partial dp_internal.hist_state values (parallel and distributed aggregation)';
COMMENT ON FUNCTION dp_internal.count_final(dp_internal.sum_state) IS 'Internal: final function of dp_count (adds noise)';
COMMENT ON FUNCTION dp_internal.sum_int_final(dp_internal.sum_state) IS 'Internal: final function of integer dp_sum (adds noise)';
COMMENT ON FUNCTION dp_internal.sum_float8_final(dp_internal.sum_state) IS 'Internal: final function of double precision dp_sum (adds noise)';
COMMENT ON FUNCTION dp_internal.avg_final(dp_internal.sum_state) IS 'Internal: final function of dp_avg (adds noise)';
COMMENT ON FUNCTION dp_internal.var_final(dp_internal.sum_state) IS 'Internal: final function of dp_var (adds noise)';
COMMENT ON FUNCTION dp_internal.stddev_final(dp_internal.sum_state) IS 'Internal: final function of dp_stddev (adds noise)';
COMMENT ON FUNCTION dp_internal.quantile_final(dp_internal.hist_state) IS 'Internal: final function of dp_quantile (exponential mechanism)';
COMMENT ON FUNCTION dp_internal.median_final(dp_internal.hist_state) IS 'Internal: final function of dp_median (exponential mechanism)';

COMMENT ON TYPE dp.cost_estimate IS 'Analyst: the row of dp.cost (the dataset charged, epsilon/delta cost, whether the answer is cached, the budget that would remain)';
COMMENT ON TYPE dp.explain_line IS 'Analyst: a row of dp.explain (per output column: mechanism, epsilon/delta share, noise scale, 95% interval)';
COMMENT ON TYPE dp.budget_line IS 'Analyst: a row of dp.my_budget (granted, spent and remaining epsilon/delta per dataset, default and maximum epsilon per statement)';
COMMENT ON FUNCTION dp_internal.synthesize_request(jsonb, double precision, double precision, text, bigint, boolean) IS
    'Internal: the request of every dp_synthesize overload, handed to the executor (the role charged is the current user)';
