-- The DBA's evaluation of a synthetic schema : per table 1-/2-way TVD
-- without clipping and the out-of-range share, per foreign key orphans, fan-out TVD and
-- parent x child TVD next to uniform attachment, and path disagreements.  It reads the
-- raw data: the executor refuses every role that is not a pg_dp administrator (42501).
-- The engine is pg_dp.synth.evaluate_schema; docs/synthesis.md, "Evaluating a synthetic schema".
CREATE FUNCTION dp.evaluate_schema(real_schema name, synthetic_schema name DEFAULT NULL)
RETURNS TABLE (table_name text, subject text, metric text, value double precision, baseline double precision,
               detail jsonb)
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.table_name, r.subject, r.metric, r.value, r.baseline, r.detail
    FROM pg_catalog.jsonb_to_recordset(dp_internal.executor_call('evaluate_schema', pg_catalog.json_build_object(
        'real_schema', real_schema, 'synthetic_schema', synthetic_schema)::text)::jsonb)
        AS r(table_name text, subject text, metric text, value double precision, baseline double precision, detail jsonb)
$$;
-- EXECUTE stays granted: the executor itself refuses a role that is not an administrator,
-- with a hint (a REVOKE alone would answer without one, and executor_call is callable anyway)
COMMENT ON FUNCTION dp.evaluate_schema(name, name) IS
    'DBA: fidelity of a synthetic shadow schema (reads the raw data): per-column 1-way TVD and out-of-range share, 2-way TVD vs independence, per foreign key orphans, fan-out TVD and parent x child TVD vs uniform attachment, path disagreements';
