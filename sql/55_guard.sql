-- The paths around a protected table, closed: partitions and inheritance children,
-- views and materialized views reading it, sequences it owns, later GRANTs, writes
-- that would keep a stale answer cache, and the per-table statistics counters.
-- dp.protect closes them once (python_udfs/pg_dp/admin.py); an event trigger keeps
-- them closed after later DDL; dp.doctor() (python_udfs/pg_dp/doctor.py) lists
-- whatever path remains.  Protected tables are few: every check here is a handful
-- of index lookups in the system catalogs.

-- Every relation whose privileges reach a protected table's rows:
--   table     a protected table (a row of dp_internal.protected_tables);
--   child     a partition or inheritance child (recursively) not recorded yet;
--   view      a view reading any of them, transitively (pg_depend on pg_rewrite);
--   matview   a materialized view reading any of them (it holds a copy of the rows);
--   sequence  a sequence owned by one of their columns (serial, identity).
-- root is the protected table it was reached from (the nearest, for a child).
CREATE VIEW dp_internal.guarded_relations AS
WITH RECURSIVE reach(relid, root, kind, depth) AS (
    SELECT p.relid, p.relid, 'table'::text, 0
    FROM dp_internal.protected_tables p
    WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = p.relid)
  UNION ALL
    SELECT n.relid, r.root, n.kind, r.depth + 1
    FROM reach r
    CROSS JOIN LATERAL (
        SELECT i.inhrelid AS relid, 'child'::text AS kind
        FROM pg_catalog.pg_inherits i
        WHERE i.inhparent = r.relid AND r.kind IN ('table', 'child')
      UNION ALL
        SELECT DISTINCT w.ev_class, CASE c.relkind WHEN 'm' THEN 'matview' ELSE 'view' END
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid
        JOIN pg_catalog.pg_class c ON c.oid = w.ev_class
        WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
          AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
          AND d.refobjid = r.relid AND w.ev_class <> r.relid AND c.relkind IN ('v', 'm')
      UNION ALL
        SELECT d.objid, 'sequence'
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
          AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
          AND d.refobjid = r.relid AND d.deptype IN ('a', 'i') AND r.kind IN ('table', 'child')
    ) n
    WHERE r.depth < 64
)
SELECT DISTINCT ON (relid) relid, root, kind
FROM reach
ORDER BY relid, kind <> 'table', depth;

-- Privileges on guarded relations held by anyone but the relation's owner, table-level
-- (column_name NULL) or column-level: dp.protect and the event trigger revoke them all.
CREATE VIEW dp_internal.open_grants AS
SELECT g.relid, g.root, g.kind, c.relkind, a.grantee, NULL::name AS column_name, a.privilege_type
FROM dp_internal.guarded_relations g
JOIN pg_catalog.pg_class c ON c.oid = g.relid
CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
WHERE a.grantee <> c.relowner
UNION ALL
SELECT g.relid, g.root, g.kind, c.relkind, a.grantee, att.attname, a.privilege_type
FROM dp_internal.guarded_relations g
JOIN pg_catalog.pg_class c ON c.oid = g.relid
JOIN pg_catalog.pg_attribute att ON att.attrelid = g.relid AND att.attnum > 0 AND NOT att.attisdropped
                                 AND att.attacl IS NOT NULL
CROSS JOIN LATERAL pg_catalog.aclexplode(att.attacl) a
WHERE a.grantee <> c.relowner;

-- Protected tables whose data-version trigger is missing, not ENABLE ALWAYS (a write
-- under session_replication_role = replica, as logical replication applies, would skip
-- it) or not pg_dp's.
CREATE VIEW dp_internal.version_trigger_gaps AS
SELECT p.relid, t.tgenabled, t.tgfoid
FROM dp_internal.protected_tables p
JOIN pg_catalog.pg_class c ON c.oid = p.relid
LEFT JOIN pg_catalog.pg_trigger t ON t.tgrelid = p.relid AND t.tgname = 'dp_data_version'
WHERE t.oid IS NULL OR t.tgenabled <> 'A'
   OR t.tgfoid <> 'dp_internal.bump_data_version()'::pg_catalog.regprocedure;

-- What the event trigger closes by itself: unrecorded children, grants, triggers.
CREATE VIEW dp_internal.open_paths AS
SELECT relid, 'child'::text AS path FROM dp_internal.guarded_relations WHERE kind = 'child'
UNION ALL
SELECT DISTINCT relid, 'grant' FROM dp_internal.open_grants
UNION ALL
SELECT relid, 'trigger' FROM dp_internal.version_trigger_gaps;

-- Foreign keys from a table that is not protected to a protected one (or a partition),
-- where a role that cannot read the protected table may write the referencing table:
-- a foreign-key violation then tells whether a key is in the protected table.
-- writers: the referencing table's owner and the holders of INSERT or UPDATE on it
-- (table or column level; PUBLIC), each unless it may read the protected table.
CREATE VIEW dp_internal.probing_foreign_keys AS
SELECT k.oid AS conoid, k.conname, k.conrelid, k.confrelid, g.root, w.writers
FROM pg_catalog.pg_constraint k
JOIN dp_internal.guarded_relations g ON g.relid = k.confrelid AND g.kind IN ('table', 'child')
JOIN pg_catalog.pg_class r ON r.oid = k.conrelid
CROSS JOIN LATERAL (
    SELECT pg_catalog.array_agg(DISTINCT CASE WHEN x.role = 0 THEN 'PUBLIC'
                                              ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(x.role)) END
                                ORDER BY CASE WHEN x.role = 0 THEN 'PUBLIC'
                                              ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(x.role)) END)
           AS writers
    FROM (SELECT r.relowner AS role
          UNION
          SELECT a.grantee FROM pg_catalog.aclexplode(r.relacl) a
          WHERE a.privilege_type IN ('INSERT', 'UPDATE')
          UNION
          SELECT a.grantee FROM pg_catalog.pg_attribute att, pg_catalog.aclexplode(att.attacl) a
          WHERE att.attrelid = r.oid AND att.attnum > 0 AND NOT att.attisdropped
            AND a.privilege_type IN ('INSERT', 'UPDATE')) x
    WHERE x.role = 0 OR NOT pg_catalog.has_table_privilege(x.role, k.confrelid, 'SELECT')
) w
WHERE k.contype = 'f' AND k.conparentid = 0
  AND NOT EXISTS (SELECT 1 FROM dp_internal.protected_tables p WHERE p.relid = k.conrelid)
  AND w.writers IS NOT NULL;

REVOKE ALL ON dp_internal.guarded_relations, dp_internal.open_grants, dp_internal.version_trigger_gaps,
    dp_internal.open_paths, dp_internal.probing_foreign_keys FROM PUBLIC;

-- Closes what dp_internal.open_paths lists (python_udfs/pg_dp/admin.py, close_paths):
-- records children in their parent's dataset, installs and enables the data-version
-- trigger, revokes every non-owner privilege; one NOTICE says what it did.
-- SECURITY DEFINER: the event trigger runs it after DDL by any role (the owner of a
-- protected table who is no pg_dp administrator may GRANT on it).  No arguments: it
-- acts only on what the catalog says is protected.
CREATE FUNCTION dp_internal.close_paths() RETURNS void
LANGUAGE plpython3u VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off  -- the catalog views' estimates are huge (JIT would compile), their cost tiny
AS $$
from pg_dp.core.db import call
from pg_dp.admin.protect import close_paths
return call(close_paths)
$$;

-- After DDL that can open a path (a GRANT, a new or attached partition or child, a
-- view, a disabled trigger), close it again.  Cheap when nothing is protected or
-- nothing is open; it never fails unrelated DDL: it acts only on protected relations.
-- Its own DDL (ALTER TABLE ... ENABLE ALWAYS TRIGGER) fires it again: close_paths
-- returns at once while it runs (a per-backend flag no SQL can set).
CREATE FUNCTION dp_internal.guard_ddl() RETURNS event_trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off  -- the catalog views' estimates are huge (JIT would compile), their cost tiny
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM dp_internal.protected_tables) THEN
        RETURN;
    END IF;
    -- ATTACH/DETACH PARTITION, INHERIT/NO INHERIT change what a protected table holds
    -- without a write: the cached answers of its dataset are stale
    UPDATE dp_internal.datasets d SET data_version = d.data_version + 1
    WHERE d.name IN (SELECT p.dataset FROM pg_catalog.pg_event_trigger_ddl_commands() c
                     JOIN dp_internal.protected_tables p ON p.relid = c.objid
                     WHERE c.command_tag IN ('ALTER TABLE', 'ALTER FOREIGN TABLE')
                       AND c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass);
    IF EXISTS (SELECT 1 FROM dp_internal.open_paths) THEN
        PERFORM dp_internal.close_paths();
    END IF;
END $$;

CREATE EVENT TRIGGER dp_guard ON ddl_command_end
    WHEN TAG IN ('GRANT', 'CREATE TABLE', 'ALTER TABLE', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE',
                 'CREATE VIEW', 'ALTER VIEW', 'CREATE MATERIALIZED VIEW', 'ALTER MATERIALIZED VIEW',
                 'CREATE RULE', 'DROP TRIGGER')
    EXECUTE FUNCTION dp_internal.guard_ddl();
-- also under session_replication_role = replica
ALTER EVENT TRIGGER dp_guard ENABLE ALWAYS;

-- Statistics counters --------------------------------------------------------------

-- The per-relation statistics functions: exact counters (live rows, rows read by
-- scans, rows fetched by index scans, blocks) of one table or index, which is what
-- pg_stat_*_tables, pg_stat_*_indexes and pg_statio_* show.  The rule: functions of
-- pg_catalog named pg_stat_get_*, of exactly one oid argument, returning one scalar
-- (no OUT columns, no set), except the database-wide (pg_stat_get_db_*) and function
-- (pg_stat_get_function_*, pg_stat_get_xact_function_*) ones.  Backend, activity,
-- bgwriter, WAL, replication and subscription functions take other arguments or
-- return rows, so pg_stat_activity and pg_stat_database keep working.
CREATE FUNCTION dp_internal.relation_stat_functions() RETURNS SETOF regprocedure
LANGUAGE sql STABLE SECURITY INVOKER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.oid::pg_catalog.regprocedure
    FROM pg_catalog.pg_proc p
    WHERE p.pronamespace = 'pg_catalog'::pg_catalog.regnamespace
      AND p.proname LIKE 'pg\_stat\_get\_%'
      AND p.pronargs = 1 AND p.proargtypes[0] = 'pg_catalog.oid'::pg_catalog.regtype
      AND p.proallargtypes IS NULL AND NOT p.proretset
      AND p.proname !~ '^pg_stat_get_(db|function|xact_function)_'
    ORDER BY p.proname
$$;

-- REVOKE EXECUTE FROM PUBLIC on those functions and GRANT it to pg_read_all_stats
-- (monitoring roles: pg_monitor is a member); the functions it changed.  Idempotent.
CREATE FUNCTION dp_internal.restrict_stat_functions() RETURNS text[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f regprocedure;
    changed text[] := '{}';
BEGIN
    FOR f IN
        SELECT s.s FROM dp_internal.relation_stat_functions() s(s)
        JOIN pg_catalog.pg_proc p ON p.oid = s.s
        WHERE p.proacl IS NULL
           OR EXISTS (SELECT 1 FROM pg_catalog.aclexplode(p.proacl) a WHERE a.grantee = 0)
    LOOP
        EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO pg_read_all_stats', f);
        changed := changed || f::oid::pg_catalog.regproc::text;
    END LOOP;
    RETURN changed;
END $$;

REVOKE ALL ON FUNCTION dp_internal.close_paths(), dp_internal.guard_ddl(),
    dp_internal.restrict_stat_functions() FROM PUBLIC;

-- closed from the start in this database (dp.protect checks again)
SELECT dp_internal.restrict_stat_functions();

-- dp.doctor ----------------------------------------------------------------------------

CREATE FUNCTION dp.doctor(known_limits boolean DEFAULT false)
RETURNS TABLE (table_name regclass, issue text, detail text, fix text)
LANGUAGE plpython3u STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off  -- the catalog views' estimates are huge (JIT would compile), their cost tiny
AS $$
from pg_dp.core.db import call
from pg_dp.admin.doctor import doctor
return call(doctor, known_limits)
$$;
REVOKE ALL ON FUNCTION dp.doctor(boolean) FROM PUBLIC;

COMMENT ON VIEW dp_internal.guarded_relations IS
    'Relations reaching protected rows: protected tables, unrecorded partitions/children, views and materialized views reading them, their sequences';
COMMENT ON VIEW dp_internal.open_grants IS 'Non-owner privileges (table or column level) on guarded relations: each is revoked';
COMMENT ON VIEW dp_internal.version_trigger_gaps IS 'Protected tables whose dp_data_version trigger is missing, not ENABLE ALWAYS or not pg_dp''s';
COMMENT ON VIEW dp_internal.open_paths IS 'What dp_internal.close_paths closes: unrecorded children, non-owner grants, data-version trigger gaps';
COMMENT ON VIEW dp_internal.probing_foreign_keys IS
    'Foreign keys from unprotected tables to protected ones that a role unable to read the protected table may probe by writing';
COMMENT ON FUNCTION dp_internal.close_paths() IS
    'Internal: record unrecorded partitions/children, enable the data-version triggers, revoke non-owner privileges on guarded relations';
COMMENT ON FUNCTION dp_internal.guard_ddl() IS 'Event trigger: after DDL that may open a path to protected rows, close it (dp_internal.close_paths)';
COMMENT ON EVENT TRIGGER dp_guard IS 'pg_dp: keeps the paths to protected tables closed after GRANT, new partitions and children, views (ENABLE ALWAYS)';
COMMENT ON FUNCTION dp_internal.relation_stat_functions() IS
    'The per-table/per-index statistics functions of pg_catalog (exact counters): pg_stat_get_*(oid) but database-wide and function ones';
COMMENT ON FUNCTION dp_internal.restrict_stat_functions() IS
    'Revokes EXECUTE on the per-relation statistics functions from PUBLIC and grants it to pg_read_all_stats; the functions changed';
COMMENT ON FUNCTION dp.doctor(boolean) IS
    'DBA: every remaining way a role could read a protected table or learn an exact statistic of it, each with the SQL that closes it (no rows: all closed); known_limits adds what cannot be closed';
