-- DP synthetic data: denial constraints, dp_synthesize, and the DBA's evaluation.
-- The engine is pg_dp.synth (python_udfs/pg_dp/synth/); see docs/synthesis.md.

INSERT INTO dp_internal.settings VALUES
    ('synthetic_schema', 'dp_synthetic');      -- where dp_synthesize writes its tables

CREATE TABLE dp_internal.denial_constraints (
    id        serial PRIMARY KEY,
    relid     oid NOT NULL REFERENCES dp_internal.protected_tables ON DELETE CASCADE,
    dc        text NOT NULL,                   -- Kamino format, normalized
    added_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (relid, dc)
);

CREATE TABLE dp_internal.synthetic_tables (
    relid       oid PRIMARY KEY,               -- the table in the shadow schema
    source      oid NOT NULL,                  -- the protected table it copies
    provenance  jsonb NOT NULL,                -- epsilon, delta, method, rows, time, ledger id
    made_by     oid,                           -- the role whose dp_synthesize wrote it
    created_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON dp_internal.denial_constraints, dp_internal.synthetic_tables FROM PUBLIC;
REVOKE ALL ON SEQUENCE dp_internal.denial_constraints_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('dp_internal.denial_constraints', '');
SELECT pg_catalog.pg_extension_config_dump('dp_internal.denial_constraints_id_seq', '');

CREATE FUNCTION dp.add_constraint(table_name regclass, dc text) RETURNS integer
LANGUAGE plpython3u VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
from pg_dp.core.db import call
from pg_dp.admin.protect import add_constraint
return call(add_constraint, table_name, dc)
$$;

CREATE FUNCTION dp.drop_constraint(id integer) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dp_internal.require_admin('drop a denial constraint');
    DELETE FROM dp_internal.denial_constraints d WHERE d.id = drop_constraint.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'denial constraint % does not exist', id
            USING ERRCODE = 'undefined_object', HINT = 'See dp.denial_constraints for their ids.';
    END IF;
END $$;

CREATE VIEW dp.denial_constraints AS
SELECT d.id, d.relid::regclass AS table_name, d.dc, d.added_at
FROM dp_internal.denial_constraints d;

CREATE VIEW dp.synthetic_tables AS
SELECT s.relid::regclass AS synthetic_table, s.source::regclass AS source,
       (s.provenance->>'epsilon')::numeric AS epsilon, (s.provenance->>'delta')::numeric AS delta,
       (s.provenance->>'rows')::bigint AS row_count, s.provenance->>'method' AS method,
       (s.provenance->>'at')::timestamptz AS made_at, s.made_by::regrole AS made_by
FROM dp_internal.synthetic_tables s
WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = s.relid);
GRANT SELECT ON dp.denial_constraints, dp.synthetic_tables TO PUBLIC;

-- The request of every dp_synthesize overload: what to synthesize (`what`: source,
-- sources, schema or dataset) and the common arguments, handed to the executor.
CREATE FUNCTION dp_internal.synthesize_request(what jsonb, epsilon double precision, delta double precision,
                                               target_schema text, "rows" bigint, dry_run boolean)
RETURNS text
LANGUAGE sql VOLATILE SECURITY INVOKER PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT dp_internal.executor_call('synthesize', (pg_catalog.jsonb_build_object(
        'epsilon', epsilon, 'delta', delta, 'target_schema', target_schema, 'rows', "rows", 'dry_run', dry_run)
        OPERATOR(pg_catalog.||) what)::text)
$$;
GRANT EXECUTE ON FUNCTION dp_internal.synthesize_request(jsonb, double precision, double precision, text, bigint,
                                                         boolean) TO PUBLIC;

-- Runs in the privileged executor (one transaction for the charge, one for the
-- copy): the caller's session only hands over the request and relays the NOTICEs.
CREATE PROCEDURE dp.dp_synthesize(source regclass, epsilon double precision,
                                  delta double precision DEFAULT NULL, target_schema text DEFAULT NULL,
                                  "rows" bigint DEFAULT NULL, dry_run boolean DEFAULT false)
LANGUAGE sql SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT dp_internal.synthesize_request(pg_catalog.jsonb_build_object('source', source::oid),
                                          epsilon, delta, target_schema, "rows", dry_run)
$$;
GRANT EXECUTE ON PROCEDURE dp.dp_synthesize(regclass, double precision, double precision, text, bigint, boolean)
    TO PUBLIC;

CREATE FUNCTION dp.evaluate_synthetic(source regclass, synthetic regclass DEFAULT NULL, targets text[] DEFAULT NULL)
RETURNS TABLE (metric text, value double precision, detail jsonb)
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.metric, r.value, r.detail
    FROM pg_catalog.jsonb_to_recordset(dp_internal.executor_call('evaluate', pg_catalog.json_build_object(
        'source', source::oid, 'synthetic', synthetic::oid, 'targets', targets)::text)::jsonb)
        AS r(metric text, value double precision, detail jsonb)
$$;
REVOKE ALL ON FUNCTION dp.add_constraint(regclass, text), dp.drop_constraint(integer),
    dp.evaluate_synthetic(regclass, regclass, text[]) FROM PUBLIC;

COMMENT ON TABLE dp_internal.denial_constraints IS 'Denial constraints (Kamino format) that synthetic copies of a table must satisfy';
COMMENT ON TABLE dp_internal.synthetic_tables IS 'Tables written by dp_synthesize, with their source and provenance';
COMMENT ON COLUMN dp_internal.synthetic_tables.made_by IS 'The role whose dp_synthesize wrote it: only it or an administrator replaces it';
COMMENT ON SEQUENCE dp_internal.denial_constraints_id_seq IS 'Ids of dp_internal.denial_constraints rows';
COMMENT ON FUNCTION dp.add_constraint(regclass, text) IS
    'DBA: register a denial constraint, e.g. t1&t2&EQ(t1.zip,t2.zip)&IQ(t1.city,t2.city), or an order within one row, e.g. t1&GT(t1.shipped,t1.received); synthetic copies satisfy it without dropping rows';
COMMENT ON FUNCTION dp.drop_constraint(integer) IS 'DBA: remove a denial constraint (by id, see dp.denial_constraints)';
COMMENT ON VIEW dp.denial_constraints IS 'Denial constraints registered for protected tables';
COMMENT ON VIEW dp.synthetic_tables IS 'Synthetic tables written by dp_synthesize: source, epsilon, delta, rows, method, when and by whom (a copy is replaced only by its maker or an administrator)';
COMMENT ON PROCEDURE dp.dp_synthesize(regclass, double precision, double precision, text, bigint, boolean) IS
    'Write a DP synthetic copy of a protected table to the shadow schema (same DDL); charges epsilon/delta once; dry_run tells the plan and cost';
COMMENT ON FUNCTION dp.evaluate_synthetic(regclass, regclass, text[]) IS
    'DBA: fidelity of a synthetic table (reads the raw data): 1-/2-way TVD, denial-constraint violations, ML utility';

-- One call for several tables.  A name given as text is read in the caller's search_path
-- (no search_path is pinned here: this runs with the caller's rights and only resolves the
-- name; everything it calls is schema-qualified): a table, else a schema (every protected
-- table in it, its declared public tables copied too), else a dataset.
CREATE PROCEDURE dp.dp_synthesize(source text, epsilon double precision,
                                  delta double precision DEFAULT NULL, target_schema text DEFAULT NULL,
                                  "rows" bigint DEFAULT NULL, dry_run boolean DEFAULT false)
LANGUAGE plpgsql SECURITY INVOKER
AS $$
DECLARE
    rel regclass := pg_catalog.to_regclass(source);
    request json;
    known text;
BEGIN
    IF rel IS NOT NULL THEN
        request := pg_catalog.json_build_object('source', rel::oid);
    ELSIF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) source) THEN
        -- compared as a name, not parsed: to_regnamespace() raises "invalid name syntax" on a
        -- mistyped schema-qualified table name, where the caller needs the hint below
        request := pg_catalog.json_build_object('schema', source);
    ELSIF EXISTS (SELECT 1 FROM dp.datasets d WHERE d.dataset OPERATOR(pg_catalog.=) source) THEN
        request := pg_catalog.json_build_object('dataset', source);
    ELSE
        SELECT pg_catalog.string_agg(x.n, ', ' ORDER BY x.n) INTO known FROM (
            (SELECT p.table_name::text AS n FROM dp.protected_tables p ORDER BY 1 LIMIT 12)
            UNION ALL (SELECT 'dataset ' OPERATOR(pg_catalog.||) d.dataset FROM dp.datasets d ORDER BY 1 LIMIT 4)) x;
        RAISE EXCEPTION 'no table, schema or dataset named %', source
            USING ERRCODE = 'undefined_table',
                  HINT = CASE WHEN known IS NULL
                              THEN 'No table is protected yet: protect one first (dp.protect).'
                              ELSE 'Name a protected table, a schema holding protected tables, or a dataset; '
                                   OPERATOR(pg_catalog.||) 'some of those you may name: ' OPERATOR(pg_catalog.||) known
                                   OPERATOR(pg_catalog.||) ' (dp.protected_tables, dp.datasets).' END;
    END IF;
    PERFORM dp_internal.synthesize_request(request::jsonb, epsilon, delta, target_schema, "rows", dry_run);
END $$;

CREATE PROCEDURE dp.dp_synthesize(tables regclass[], epsilon double precision,
                                  delta double precision DEFAULT NULL, target_schema text DEFAULT NULL,
                                  "rows" bigint DEFAULT NULL, dry_run boolean DEFAULT false)
LANGUAGE sql SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT dp_internal.synthesize_request(pg_catalog.jsonb_build_object('sources', tables::oid[]),
                                          epsilon, delta, target_schema, "rows", dry_run)
$$;
GRANT EXECUTE ON PROCEDURE dp.dp_synthesize(text, double precision, double precision, text, bigint, boolean),
    dp.dp_synthesize(regclass[], double precision, double precision, text, bigint, boolean) TO PUBLIC;
COMMENT ON PROCEDURE dp.dp_synthesize(text, double precision, double precision, text, bigint, boolean) IS
    'Synthesize a protected table, every protected table of a schema (parents first, children under their parents, public tables copied), or of a dataset, in one call and one charge per dataset';
COMMENT ON PROCEDURE dp.dp_synthesize(regclass[], double precision, double precision, text, bigint, boolean) IS
    'Synthesize several protected tables in one call: parents first, children under their parents, one charge per dataset, written at once';
