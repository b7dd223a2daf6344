-- The role that writes synthetic copies (docs/security.md, "Whose rights evaluate what").
--
-- dp_synthesize runs in the executor as the extension owner, but every statement that
-- creates, fills, checks or changes a shadow table runs as dp_shadow_writer
-- (dp_internal.as_writer, src/writer/writer.c): a NOLOGIN role with no privilege but USAGE and
-- CREATE on the shadow schemas and what it is granted on the executor's staging tables, so
-- that a CHECK, default, domain check or cast of another role can never run with the
-- owner's rights.  Roles are shared by the databases of a cluster: an existing role of that
-- name is taken over only if it is as powerless and alone as this script makes it.

DO $do$
DECLARE
    r pg_catalog.pg_roles;
BEGIN
    SELECT * INTO r FROM pg_catalog.pg_roles WHERE rolname = 'dp_shadow_writer';
    IF NOT FOUND THEN
        CREATE ROLE dp_shadow_writer NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    ELSIF r.rolsuper OR r.rolcanlogin OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls
          OR EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
                     WHERE m.roleid = r.oid OR m.member = r.oid) THEN
        RAISE EXCEPTION 'role dp_shadow_writer exists and is not the powerless role pg_dp writes synthetic copies as'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'It must be NOLOGIN, no superuser, without CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS, '
                         'and neither hold nor grant a membership. Fix or drop it, then CREATE EXTENSION pg_dp again.';
    END IF;
END
$do$;
COMMENT ON ROLE dp_shadow_writer IS
    'pg_dp: writes synthetic copies (NOLOGIN, no privileges beyond the shadow schemas); never grant it to anyone';

CREATE FUNCTION dp_internal.as_writer(statements text[], params text[] DEFAULT NULL) RETURNS SETOF bigint
AS 'MODULE_PATHNAME', 'dp_as_writer'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION dp_internal.as_writer(text[], text[]) FROM PUBLIC;
COMMENT ON FUNCTION dp_internal.as_writer(text[], text[]) IS
    'Internal (executor): run statements as dp_shadow_writer, in a security-restricted operation with search_path pinned and every setting restored; the first column of the last statement''s rows';

-- What the writer owns outside the shadow schemas (pg_shdepend: ownership in this
-- database): after every batch of its statements this must be empty, or the executor
-- rolls the whole write back.  The shadow schemas are those pg_dp granted it CREATE on (not
-- through PUBLIC); the session's temp schema, where it may create too, is not one.
CREATE FUNCTION dp_internal.writer_strays() RETURNS SETOF text
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.pg_describe_object(s.classid, s.objid, s.objsubid)
    FROM pg_catalog.pg_shdepend s
    WHERE s.dbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
      AND s.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass
      AND s.refobjid = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = 'dp_shadow_writer')
      AND s.deptype = 'o'
      AND NOT (s.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
               AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                           WHERE c.oid = s.objid AND c.relkind IN ('r', 'S', 'i', 't')
                             AND (c.relkind = 't' OR (n.nspname !~ '^pg_'
                                  AND EXISTS (SELECT 1 FROM pg_catalog.aclexplode(n.nspacl) a
                                              WHERE a.grantee = s.refobjid AND a.privilege_type = 'CREATE')))))
$$;
REVOKE ALL ON FUNCTION dp_internal.writer_strays() FROM PUBLIC;
COMMENT ON FUNCTION dp_internal.writer_strays() IS
    'Internal: objects dp_shadow_writer owns in this database other than tables, sequences and indexes of the shadow schemas';

-- Where a role that is no pg_dp administrator gets its synthetic copies: a schema of its
-- own, next to the shared shadow schema (only administrators write that one).
CREATE FUNCTION dp_internal.personal_schema(role oid, shared text) RETURNS text
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    -- the role's name, or its oid where the name is too long or reads as the oid form itself (a
    -- role named oid16384 would otherwise get the schema of the long-named role of oid 16384)
    SELECT CASE WHEN pg_catalog.octet_length(shared || '_' || r.rolname) <= 63
                     AND r.rolname OPERATOR(pg_catalog.!~) '^oid[0-9]+$' THEN shared || '_' || r.rolname
                ELSE shared || '_oid' || role::text END
    FROM pg_catalog.pg_roles r WHERE r.oid = role
$$;
COMMENT ON FUNCTION dp_internal.personal_schema(oid, text) IS
    'Internal: the shadow schema of a role that is no pg_dp administrator (the shared one''s name, _, the role''s; _oid and the role''s oid for a name too long or of that form)';
