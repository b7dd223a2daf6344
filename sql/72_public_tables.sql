-- Public tables: vocabularies (country, genre, film, ...) the DBA declares public.
-- Only declared tables are ever copied verbatim into the shadow schema by dp_synthesize
-- (with the foreign keys among them); a foreign key of a protected table to a table that
-- is neither protected nor declared is not followed (docs/synthesis.md).

CREATE TABLE dp_internal.public_tables (
    relid        oid PRIMARY KEY,
    declared_by  name NOT NULL,
    declared_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON dp_internal.public_tables FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('dp_internal.public_tables', '');

CREATE FUNCTION dp.declare_public(table_name regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind "char";
    missing text;
BEGIN
    PERFORM dp_internal.require_admin('declare a public table');
    SELECT c.relkind INTO kind FROM pg_catalog.pg_class c WHERE c.oid = table_name;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', table_name
            USING ERRCODE = 'wrong_object_type', HINT = 'Declare the underlying table public.';
    END IF;
    IF EXISTS (SELECT 1 FROM dp_internal.protected_tables p WHERE p.relid = table_name) THEN
        RAISE EXCEPTION 'table % is protected by pg_dp and cannot be declared public', table_name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'A public table is copied verbatim to the shadow schema; unprotect it first '
                         '(dp.unprotect) if its rows really are public.';
    END IF;
    DELETE FROM dp_internal.public_tables p
     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = p.relid);
    INSERT INTO dp_internal.public_tables (relid, declared_by) VALUES (table_name, current_user)
        ON CONFLICT (relid) DO NOTHING;
    SELECT string_agg(pg_catalog.format('%s -> %s', k.conname, k.confrelid::regclass), ', ' ORDER BY k.conname)
      INTO missing
      FROM pg_catalog.pg_constraint k
     WHERE k.conrelid = table_name AND k.contype = 'f' AND k.confrelid <> table_name::oid
       AND NOT EXISTS (SELECT 1 FROM dp_internal.public_tables p WHERE p.relid = k.confrelid);
    IF missing IS NOT NULL THEN
        RAISE NOTICE 'table % is declared public; its foreign keys % point at tables not declared public and are not copied',
                     table_name, missing
            USING HINT = 'Declare those tables public too to keep the keys in synthetic copies.';
    END IF;
END $$;

CREATE FUNCTION dp.undeclare_public(table_name regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dp_internal.require_admin('undeclare a public table');
    DELETE FROM dp_internal.public_tables p WHERE p.relid = table_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not declared public', table_name
            USING ERRCODE = 'undefined_object', HINT = 'See dp.public_tables for the declared tables.';
    END IF;
    RAISE NOTICE 'table % is no longer public: it is not copied by later dp_synthesize calls', table_name
        USING HINT = 'Copies already in the shadow schema stay; drop them there if they must go.';
END $$;

CREATE VIEW dp.public_tables AS
SELECT p.relid::regclass AS table_name, p.declared_by, p.declared_at
FROM dp_internal.public_tables p
WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = p.relid);
GRANT SELECT ON dp.public_tables TO PUBLIC;
REVOKE ALL ON FUNCTION dp.declare_public(regclass), dp.undeclare_public(regclass) FROM PUBLIC;

COMMENT ON TABLE dp_internal.public_tables IS 'Tables the DBA declared public: the only ones dp_synthesize copies verbatim';
COMMENT ON FUNCTION dp.declare_public(regclass) IS
    'DBA: declare a (vocabulary) table public: synthetic copies keep foreign keys to it, and it is copied verbatim to the shadow schema';
COMMENT ON FUNCTION dp.undeclare_public(regclass) IS 'DBA: a table is no longer public (later synthetic copies do not copy it nor keep keys to it)';
COMMENT ON VIEW dp.public_tables IS 'Tables declared public by the DBA (copied verbatim to the shadow schema by dp_synthesize)';
