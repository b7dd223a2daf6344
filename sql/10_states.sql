-- Aggregate states.  Fixed layouts (not "internal") with text I/O, so that
-- parallel query and distributed engines can move partial states around.

CREATE TYPE dp_internal.sum_state;

CREATE FUNCTION dp_internal.sum_state_in(cstring) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_sum_state_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION dp_internal.sum_state_out(dp_internal.sum_state) RETURNS cstring
    AS 'MODULE_PATHNAME', 'dp_sum_state_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE dp_internal.sum_state (
    INPUT = dp_internal.sum_state_in,
    OUTPUT = dp_internal.sum_state_out,
    INTERNALLENGTH = 80,
    ALIGNMENT = double,
    STORAGE = plain
);

CREATE TYPE dp_internal.hist_state;

CREATE FUNCTION dp_internal.hist_state_in(cstring) RETURNS dp_internal.hist_state
    AS 'MODULE_PATHNAME', 'dp_hist_state_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION dp_internal.hist_state_out(dp_internal.hist_state) RETURNS cstring
    AS 'MODULE_PATHNAME', 'dp_hist_state_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE dp_internal.hist_state (
    INPUT = dp_internal.hist_state_in,
    OUTPUT = dp_internal.hist_state_out,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = plain
);

COMMENT ON TYPE dp_internal.sum_state IS 'Exact partial state of dp_count/dp_sum/dp_avg/dp_var/dp_stddev (count, 128-bit fixed-point sums, parameters)';
COMMENT ON TYPE dp_internal.hist_state IS 'Partial state of dp_quantile/dp_median: counts of rows snapped to 1025 candidate points between the bounds';
COMMENT ON FUNCTION dp_internal.sum_state_in(cstring) IS 'Input function of dp_internal.sum_state';
COMMENT ON FUNCTION dp_internal.sum_state_out(dp_internal.sum_state) IS 'Output function of dp_internal.sum_state';
COMMENT ON FUNCTION dp_internal.hist_state_in(cstring) IS 'Input function of dp_internal.hist_state';
COMMENT ON FUNCTION dp_internal.hist_state_out(dp_internal.hist_state) IS 'Output function of dp_internal.hist_state';
