-- Whose code can run when pg_dp touches a table (docs/security.md, "Whose rights evaluate what").
--
-- The executor reads protected tables as the extension owner: it casts their values (a cast
-- from a type its owner created may call any function of theirs), compares them with
-- constants of the column's type (a domain's CHECKs run), and copies CHECKs and defaults into
-- synthetic copies.  These functions find the code of other roles that any of that would
-- run, so that pg_dp refuses it (dp.protect, each question, dp_synthesize: before any
-- charge) or leaves it out of a copy with a NOTICE.
--
-- A function is trusted when it is built in and cannot reach data or settings (immutable;
-- stable, but none of those that run SQL or read statistics; a few volatile ones defaults
-- use), or when a superuser owns it and it is not volatile.  Every other function -- any
-- function a non-superuser owns -- is foreign code.

CREATE FUNCTION dp_internal.trusted_function(f oid) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((
        SELECT CASE
            WHEN p.oid < 16384 THEN
                p.provolatile = 'i'
                OR (p.provolatile = 's'
                    AND p.proname !~ '(^(query|table|cursor|schema|database)_to_xml|^pg_stat_|^pg_cursor$|^pg_prepared_statement$|^pg_get_replication_slots$|^pg_show_all_settings$|^pg_settings_get_flags$|^pg_event_trigger|^ts_stat$|^pg_listening_channels$|^pg_current_snapshot$|^pg_get_publication_tables$)')
                OR p.proname IN ('random', 'gen_random_uuid', 'clock_timestamp', 'timeofday')
            ELSE r.rolsuper AND p.provolatile <> 'v'
        END
        FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
        WHERE p.oid = f), false)
$$;

-- Every type whose code a value of the given types can reach: domains' base types and the
-- types their CHECKs cast to, array elements, composite types' attributes, range subtypes.
CREATE FUNCTION dp_internal.type_closure(types oid[]) RETURNS SETOF oid
LANGUAGE sql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE closure(oid) AS (
        SELECT u FROM pg_catalog.unnest(types) u WHERE u IS NOT NULL AND u <> 0
        UNION
        SELECT n.oid FROM closure c CROSS JOIN LATERAL (
            SELECT t.typbasetype FROM pg_catalog.pg_type t WHERE t.oid = c.oid AND t.typbasetype <> 0
            UNION ALL
            SELECT t.typelem FROM pg_catalog.pg_type t WHERE t.oid = c.oid AND t.typelem <> 0
            UNION ALL
            SELECT a.atttypid FROM pg_catalog.pg_type t
            JOIN pg_catalog.pg_attribute a ON a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE t.oid = c.oid AND t.typrelid <> 0
            UNION ALL
            SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid = c.oid
            UNION ALL
            SELECT r.rngtypid FROM pg_catalog.pg_range r WHERE r.rngmultitypid = c.oid
            UNION ALL
            SELECT d.refobjid FROM pg_catalog.pg_constraint k
            JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass
                 AND d.objid = k.oid AND d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass
            WHERE k.contypid = c.oid
        ) n(oid)
    )
    SELECT oid FROM closure
$$;

-- The functions of the types' closure that are not trusted, and why they would run: the
-- types' input/output functions, range functions, casts from or to any of them (or their
-- arrays), and what the CHECKs of domains among them call (functions, operators).
CREATE FUNCTION dp_internal.type_foreign_code(types oid[])
RETURNS TABLE (function text, owner name, via text)
LANGUAGE sql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH t AS (SELECT c AS oid FROM dp_internal.type_closure(types) c WHERE c >= 16384),
    ta AS (SELECT oid FROM t UNION SELECT y.typarray FROM pg_catalog.pg_type y JOIN t ON t.oid = y.oid
           WHERE y.typarray <> 0),
    code(f, via) AS (
        SELECT u.f, pg_catalog.format('the %s function of type %s', u.what, y.oid::pg_catalog.regtype)
        FROM t JOIN pg_catalog.pg_type y ON y.oid = t.oid
        CROSS JOIN LATERAL (VALUES (y.typinput::oid, 'input'), (y.typoutput, 'output'), (y.typreceive, 'receive'),
                                   (y.typsend, 'send'), (y.typmodin, 'typmod input'), (y.typmodout, 'typmod output'),
                                   (y.typanalyze, 'analyze'), (y.typsubscript, 'subscript')) u(f, what)
        UNION ALL
        SELECT u.f, pg_catalog.format('the %s function of range type %s', u.what, r.rngtypid::pg_catalog.regtype)
        FROM t JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid
        CROSS JOIN LATERAL (VALUES (r.rngcanonical::oid, 'canonical'), (r.rngsubdiff::oid, 'subtype difference')) u(f, what)
        UNION ALL
        SELECT c.castfunc, pg_catalog.format('a cast from %s to %s', c.castsource::pg_catalog.regtype,
                                             c.casttarget::pg_catalog.regtype)
        FROM pg_catalog.pg_cast c WHERE c.castsource IN (SELECT oid FROM ta) OR c.casttarget IN (SELECT oid FROM ta)
        UNION ALL
        SELECT d.refobjid, pg_catalog.format('CHECK %s of domain %s', k.conname, k.contypid::pg_catalog.regtype)
        FROM t JOIN pg_catalog.pg_constraint k ON k.contypid = t.oid
        JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND d.objid = k.oid
             AND d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
        UNION ALL
        SELECT u.f, pg_catalog.format('operator %s in CHECK %s of domain %s', o.oid::pg_catalog.regoperator,
                                      k.conname, k.contypid::pg_catalog.regtype)
        FROM t JOIN pg_catalog.pg_constraint k ON k.contypid = t.oid
        JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND d.objid = k.oid
             AND d.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass
        JOIN pg_catalog.pg_operator o ON o.oid = d.refobjid
        CROSS JOIN LATERAL (VALUES (o.oprcode::oid), (o.oprrest::oid), (o.oprjoin::oid)) u(f)
    )
    SELECT DISTINCT code.f::pg_catalog.regprocedure::text, pg_catalog.pg_get_userbyid(p.proowner), code.via
    FROM code JOIN pg_catalog.pg_proc p ON p.oid = code.f
    WHERE code.f <> 0 AND NOT dp_internal.trusted_function(code.f)
    ORDER BY 1, 3
$$;

-- What a stored expression (a CHECK, a default, an index, a domain's CHECK: the object
-- classid/objid) references that pg_dp cannot vouch for: untrusted functions, operators
-- whose functions are untrusted, types with foreign code, and relations other than `self`
-- (a sequence, a regclass constant).  Empty: the expression may be written into a copy.
CREATE FUNCTION dp_internal.expression_foreign_code(classid oid, objid oid, self oid)
RETURNS TABLE (object text, via text)
LANGUAGE sql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH refs AS (
        SELECT d.refclassid, d.refobjid FROM pg_catalog.pg_depend d
        WHERE d.classid = expression_foreign_code.classid AND d.objid = expression_foreign_code.objid
          AND d.deptype IN ('n', 'a')
    )
    SELECT pg_catalog.format('function %s (owned by %s)', r.refobjid::pg_catalog.regprocedure,
                             pg_catalog.pg_get_userbyid(p.proowner)), 'called'
    FROM refs r JOIN pg_catalog.pg_proc p ON p.oid = r.refobjid
    WHERE r.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND NOT dp_internal.trusted_function(r.refobjid)
    UNION ALL
    SELECT pg_catalog.format('operator %s (function %s, owned by %s)', o.oid::pg_catalog.regoperator,
                             u.f::pg_catalog.regprocedure, pg_catalog.pg_get_userbyid(p.proowner)), 'called'
    FROM refs r JOIN pg_catalog.pg_operator o ON o.oid = r.refobjid
    CROSS JOIN LATERAL (VALUES (o.oprcode::oid), (o.oprrest::oid), (o.oprjoin::oid)) u(f)
    JOIN pg_catalog.pg_proc p ON p.oid = u.f
    WHERE r.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass AND NOT dp_internal.trusted_function(u.f)
    UNION ALL
    SELECT pg_catalog.format('function %s (owned by %s)', c.function, c.owner), c.via
    FROM dp_internal.type_foreign_code(ARRAY(SELECT r.refobjid FROM refs r
                                             WHERE r.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass)) c
    UNION ALL
    SELECT pg_catalog.format('relation %s', r.refobjid::pg_catalog.regclass), 'named'
    FROM refs r
    WHERE r.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND r.refobjid <> self
$$;

-- They read catalogs every role reads; administrators who are no superusers call them through dp.protect.
GRANT EXECUTE ON FUNCTION dp_internal.trusted_function(oid), dp_internal.type_closure(oid[]),
    dp_internal.type_foreign_code(oid[]), dp_internal.expression_foreign_code(oid, oid, oid) TO PUBLIC;
COMMENT ON FUNCTION dp_internal.trusted_function(oid) IS
    'Internal: whether pg_dp may let a function run on its privileged paths (built in and harmless, or a superuser''s and not volatile)';
COMMENT ON FUNCTION dp_internal.type_closure(oid[]) IS
    'Internal: the types whose code values of these types can reach (domain bases, elements, attributes, range subtypes, types domain CHECKs cast to)';
COMMENT ON FUNCTION dp_internal.type_foreign_code(oid[]) IS
    'Internal: untrusted functions that values of these types can run: I/O, range functions, casts, domain CHECKs';
COMMENT ON FUNCTION dp_internal.expression_foreign_code(oid, oid, oid) IS
    'Internal: what a stored expression references that pg_dp cannot vouch for (empty: it may be copied)';
