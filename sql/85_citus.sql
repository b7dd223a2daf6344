-- dp_count over a boolean (dp_internal.count_bool): what Citus can distribute.  Citus runs a custom
-- aggregate as worker_partial_agg(agg, args) on the workers, which checks that
-- each argument's type is exactly the aggregate's declared one, so "any" (and
-- anyelement) never pass, and an aggregate without arguments (dp_count(*)) is not
-- distributed at all.  On a database with Citus, pg_dp's parse hook rewrites
-- dp_count(*) to dp_count(true) and dp_count(x) to
-- dp_count(NULLIF(x IS NOT NULL, false)), same count, as calls of these
-- (src/citus/citus.c).  They live in dp_internal so that no user's dp_count call
-- resolves differently.

CREATE FUNCTION dp_internal.count_trans(dp_internal.sum_state, boolean) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_count_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION dp_internal.count_trans(dp_internal.sum_state, boolean, double precision) RETURNS dp_internal.sum_state
    AS 'MODULE_PATHNAME', 'dp_count_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE dp_internal.count_bool(value boolean) (
    SFUNC = dp_internal.count_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.count_final, PARALLEL = SAFE);
CREATE AGGREGATE dp_internal.count_bool(value boolean, epsilon double precision) (
    SFUNC = dp_internal.count_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, FINALFUNC = dp_internal.count_final, PARALLEL = SAFE);

COMMENT ON FUNCTION dp_internal.count_trans(dp_internal.sum_state, boolean) IS 'Internal: transition of dp_count(boolean)';
COMMENT ON FUNCTION dp_internal.count_trans(dp_internal.sum_state, boolean, double precision) IS 'Internal: transition of dp_count(boolean, epsilon)';
COMMENT ON AGGREGATE dp_internal.count_bool(boolean) IS
    'Internal: dp_count of non-NULL booleans (epsilon 1.0), the form Citus distributes (pg_dp rewrites dp_count(*) and dp_count(x) to it on Citus)';
COMMENT ON AGGREGATE dp_internal.count_bool(boolean, double precision) IS
    'Internal: dp_count of non-NULL booleans with the given epsilon, the form Citus distributes';

-- Data version of distributed tables.  Citus runs writes on the shards, where
-- the data-version trigger (propagated to every shard: dp.protect creates it with
-- citus.enable_unsafe_triggers) finds no protected table; it counts the write
-- per shard, on the node holding the shard, in the writing transaction.  The
-- coordinator's version of a dataset is its own counter plus those of the
-- shards of its tables (dp_internal.distributed_writes): both only grow.
CREATE TABLE dp_internal.shard_writes (
    shardid bigint PRIMARY KEY,
    writes  bigint NOT NULL
);
REVOKE ALL ON dp_internal.shard_writes FROM PUBLIC;

CREATE FUNCTION dp_internal.count_shard_write(p_shardid bigint) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO dp_internal.shard_writes AS w (shardid, writes) VALUES (p_shardid, 1)
    ON CONFLICT (shardid) DO UPDATE SET writes = w.writes + 1;
$$;
REVOKE ALL ON FUNCTION dp_internal.count_shard_write(bigint) FROM PUBLIC;

CREATE FUNCTION dp_internal.distributed_writes(p_dataset text) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shards text;
    total  bigint := 0;
    r      record;
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_shard') IS NULL THEN
        RETURN 0;                       -- no Citus here
    END IF;
    EXECUTE 'SELECT pg_catalog.string_agg(s.shardid::text, '','' ORDER BY s.shardid) '
            'FROM pg_catalog.pg_dist_shard s JOIN dp_internal.protected_tables p ON p.relid = s.logicalrelid '
            'WHERE p.dataset = $1' INTO shards USING p_dataset;
    IF shards IS NULL THEN
        RETURN 0;
    END IF;
    FOR r IN EXECUTE 'SELECT nodeid, success, result FROM pg_catalog.run_command_on_all_nodes($1)'
             USING pg_catalog.format('SELECT COALESCE(pg_catalog.sum(writes), 0) '
                                     'FROM dp_internal.shard_writes WHERE shardid IN (%s)', shards)
    LOOP
        IF NOT r.success THEN
            RAISE EXCEPTION 'cannot read the data version of dataset % on node %', p_dataset, r.nodeid
                USING ERRCODE = '08006',
                      HINT = 'Every Citus node must be up and have pg_dp installed; answers are cached per data version.';
        END IF;
        total := total + r.result::bigint;
    END LOOP;
    RETURN total;
END $$;
REVOKE ALL ON FUNCTION dp_internal.distributed_writes(text) FROM PUBLIC;

-- Whether a relation is a Citus table (distributed, reference or managed local).
CREATE FUNCTION dp_internal.is_citus_table(p_relid oid) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found boolean;
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)'
        INTO found USING p_relid;
    RETURN found;
END $$;

COMMENT ON TABLE dp_internal.shard_writes IS 'Writes per Citus shard of a protected table, counted on the node holding the shard (part of the data version)';
COMMENT ON FUNCTION dp_internal.count_shard_write(bigint) IS 'Internal: the data-version trigger on a Citus shard counts a write';
COMMENT ON FUNCTION dp_internal.distributed_writes(text) IS 'Internal: writes counted on every Citus node for the shards of a dataset''s tables (0 without Citus)';
COMMENT ON FUNCTION dp_internal.is_citus_table(oid) IS 'Internal: whether a relation is a Citus table (false without Citus)';

-- Native-aggregate form of dp_count, dp_sum and dp_avg on Citus (src/citus/citus.c, src/aggregates/native.c):
-- the workers run native count/sum over values on the aggregate's grid, the noise is
-- added per group by these functions, with the statistics the final functions pass.
CREATE FUNCTION dp_internal.grid_units(double precision, double precision, double precision) RETURNS bigint
    AS 'MODULE_PATHNAME', 'dp_grid_units_float8' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION dp_internal.grid_units(bigint, bigint, bigint) RETURNS bigint
    AS 'MODULE_PATHNAME', 'dp_grid_units_int8' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION dp_internal.native_count(bigint, double precision) RETURNS bigint
    AS 'MODULE_PATHNAME', 'dp_native_count' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp_internal.native_sum_int(bigint, numeric, bigint, bigint, double precision) RETURNS bigint
    AS 'MODULE_PATHNAME', 'dp_native_sum_int' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp_internal.native_sum_float8(bigint, numeric, double precision, double precision, double precision) RETURNS double precision
    AS 'MODULE_PATHNAME', 'dp_native_sum_float8' LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION dp_internal.native_avg(bigint, numeric, double precision, double precision, double precision) RETURNS double precision
    AS 'MODULE_PATHNAME', 'dp_native_avg' LANGUAGE C VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION dp_internal.grid_units(double precision, double precision, double precision) IS 'Internal: a value clamped and put on the grid of dp_sum/dp_avg(x, lower, upper) (NULL for NaN)';
COMMENT ON FUNCTION dp_internal.grid_units(bigint, bigint, bigint) IS 'Internal: an integer clamped to the bounds of dp_sum(x, lower, upper)';
COMMENT ON FUNCTION dp_internal.native_count(bigint, double precision) IS 'Internal: dp_count released from a native count (Citus rewrite; adds noise)';
COMMENT ON FUNCTION dp_internal.native_sum_int(bigint, numeric, bigint, bigint, double precision) IS 'Internal: integer dp_sum released from native count/sum (Citus rewrite; adds noise)';
COMMENT ON FUNCTION dp_internal.native_sum_float8(bigint, numeric, double precision, double precision, double precision) IS 'Internal: float dp_sum released from native count/sum of grid units (Citus rewrite; adds noise)';
COMMENT ON FUNCTION dp_internal.native_avg(bigint, numeric, double precision, double precision, double precision) IS 'Internal: dp_avg released from native count/sum of grid units (Citus rewrite; adds noise)';
