-- Catalog visibility: information_schema.columns lists a column only to roles with a privilege
-- on it, so an analyst without SELECT saw no column of a protected table there, and BI tools that
-- read their schema from it (Malloy, Metabase) failed.  Granting a column privilege is no answer:
-- SELECT reads rows, and INSERT, UPDATE or REFERENCES probe values (a unique violation, a foreign
-- key check).  Instead pg_dp keeps a copy of the view that also lists the columns of protected
-- tables -- their names, types, defaults and comments are public in pg_attribute anyway -- and the
-- plain-SQL hook (src/sql_hook/hook.c) makes queries of information_schema.columns read the copy.  The copy
-- is made from this server's own definition of the view at CREATE EXTENSION time.

CREATE FUNCTION dp_internal.column_visible(relid oid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT EXISTS (SELECT 1 FROM dp_internal.protected_tables p WHERE p.relid = $1) $$;
GRANT EXECUTE ON FUNCTION dp_internal.column_visible(oid) TO PUBLIC;

DO $do$
DECLARE
    definition text := pg_catalog.pg_get_viewdef('information_schema.columns'::pg_catalog.regclass);
    needle text := 'has_column_privilege(c.oid, a.attnum, ''SELECT, INSERT, UPDATE, REFERENCES''::text)';
BEGIN
    IF pg_catalog.strpos(definition, needle) = 0 THEN
        RAISE EXCEPTION 'pg_dp: information_schema.columns has a definition pg_dp does not know'
            USING HINT = 'This PostgreSQL version is not supported by pg_dp''s catalog visibility.';
    END IF;
    EXECUTE 'CREATE VIEW dp_internal.information_schema_columns AS '
        || pg_catalog.replace(definition, needle,
                              '(' || needle || ' OR dp_internal.column_visible(c.oid))');
END
$do$;
GRANT SELECT ON dp_internal.information_schema_columns TO PUBLIC;

COMMENT ON FUNCTION dp_internal.column_visible(oid) IS
    'Internal: whether information_schema.columns (pg_dp''s copy) lists the columns of a table: those of protected tables';
COMMENT ON VIEW dp_internal.information_schema_columns IS
    'Internal: information_schema.columns, also listing the columns of protected tables (names, types, comments: no rows); read instead of it by the plain-SQL hook';
