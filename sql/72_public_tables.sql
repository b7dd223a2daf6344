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

-- Columns that look personal: a table holding them is declared public only with confirm => true
-- (its rows are copied verbatim, for every reader of the shadow schema).  By name (names, emails,
-- phones, addresses, birth dates and identifying numbers, passwords and their hashes, free-text
-- notes) and by content, over up to 1,000 rows drawn at random from the whole table, blanks and
-- placeholders ('', '-', 'n/a', 'none', 'null', 'unknown', '?') left out: more than 10% of values
-- that look like emails, phone numbers or password hashes, or free text (most values longer than
-- 40 characters, with spaces).  Personal values behind a first page of blanks are seen.
CREATE FUNCTION dp_internal.personal_columns(table_name regclass) RETURNS TABLE (column_name name, why text)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a record;
    hits record;
BEGIN
    FOR a IN SELECT t.attname, ty.typcategory FROM pg_catalog.pg_attribute t
             JOIN pg_catalog.pg_type ty ON ty.oid = t.atttypid
             WHERE t.attrelid = table_name AND t.attnum > 0 AND NOT t.attisdropped ORDER BY t.attnum LOOP
        column_name := a.attname;
        why := CASE
            WHEN a.attname ~* '(^|_)(first|last|middle|given|family|full|contact|maiden|user|customer|employee)_?name$'
                 OR a.attname ~* '^(surname|forename|username|login)$' THEN 'a person''s name'
            WHEN a.attname ~* 'e_?mail' THEN 'an email address'
            WHEN a.attname ~* '(phone|mobile|fax)' THEN 'a phone number'
            WHEN a.attname ~* '(address|street|postal_?code|zip_?code|post_?code)' THEN 'an address'
            WHEN a.attname ~* '(birth|(^|_)dob$|ssn|social_?sec|passport|national_?id|tax_?id|iban|card_?(no|num))'
                THEN 'an identifying number or a birth date'
            WHEN a.attname ~* '(passw|passwd|pwd|secret|token|salt|hash)' THEN 'a password, a secret or a hash'
            WHEN a.attname ~* '(^|_)(note|notes|comment|comments|remark|remarks|bio|message)$' THEN 'free text'
            END;
        IF why IS NULL AND a.typcategory = 'S' THEN
            EXECUTE pg_catalog.format($q$
                SELECT pg_catalog.count(*) AS n,
                       pg_catalog.count(*) FILTER (WHERE v ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$') AS email,
                       pg_catalog.count(*) FILTER (WHERE v ~ '^\+?[0-9 ().-]{7,}$'
                           AND pg_catalog.length(pg_catalog.regexp_replace(v, '[^0-9]', '', 'g')) >= 7) AS phone,
                       pg_catalog.count(*) FILTER (WHERE v ~ '^\$(2[abxy]?|argon2[a-z]*|pbkdf2[^$]*|[156])\$'
                           OR v ~ '^[0-9a-fA-F]{32,}$') AS hash,
                       pg_catalog.count(*) FILTER (WHERE pg_catalog.length(v) > 40 AND v ~ ' ') AS prose
                FROM (SELECT v FROM (SELECT pg_catalog.btrim(%I::text) AS v FROM %s) r
                      WHERE v IS NOT NULL AND pg_catalog.lower(v) <> ALL (ARRAY['', '-', 'n/a', 'na', 'none', 'null',
                                                                               'unknown', '?'])
                      ORDER BY pg_catalog.random() LIMIT 1000) s$q$,
                a.attname, table_name) INTO hits;
            IF hits.n > 0 THEN
                why := CASE WHEN hits.email * 10 > hits.n THEN 'values that look like email addresses'
                            WHEN hits.phone * 10 > hits.n THEN 'values that look like phone numbers'
                            WHEN hits.hash * 10 > hits.n THEN 'values that look like password hashes'
                            WHEN hits.prose * 2 > hits.n THEN 'free text' END;
            END IF;
        END IF;
        IF why IS NOT NULL THEN
            RETURN NEXT;
        END IF;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION dp_internal.personal_columns(regclass) FROM PUBLIC;

CREATE FUNCTION dp.declare_public(table_name regclass, confirm boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind "char";
    missing text;
    personal text;
    copied text;
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
    SELECT string_agg(pg_catalog.format('%I (%s)', p.column_name, p.why), ', ')
      INTO personal FROM dp_internal.personal_columns(table_name) p;
    IF personal IS NOT NULL AND NOT coalesce(confirm, false) THEN
        RAISE EXCEPTION 'table % has columns that look personal: %', table_name, personal
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = pg_catalog.format('A public table is copied verbatim into the shadow schema, for every '
                         'reader of it. If these rows really are public, confirm: SELECT dp.declare_public(%L, '
                         'confirm => true); if they are about people, protect the table instead (dp.protect).',
                         table_name::text);
    END IF;
    DELETE FROM dp_internal.public_tables p
     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = p.relid);
    INSERT INTO dp_internal.public_tables (relid, declared_by) VALUES (table_name, current_user)
        ON CONFLICT (relid) DO NOTHING;
    SELECT string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO copied
      FROM pg_catalog.pg_attribute a WHERE a.attrelid = table_name AND a.attnum > 0 AND NOT a.attisdropped;
    RAISE NOTICE 'table % is declared public: every row of its columns % is copied verbatim into the shadow schema by dp_synthesize',
                 table_name, copied
        USING HINT = CASE WHEN personal IS NULL THEN 'dp.undeclare_public takes it back for later calls.'
                          ELSE 'Confirmed although these columns look personal: ' || personal || '.' END;
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
REVOKE ALL ON FUNCTION dp.declare_public(regclass, boolean), dp.undeclare_public(regclass) FROM PUBLIC;

COMMENT ON TABLE dp_internal.public_tables IS 'Tables the DBA declared public: the only ones dp_synthesize copies verbatim';
COMMENT ON FUNCTION dp.declare_public(regclass, boolean) IS
    'DBA: declare a (vocabulary) table public: synthetic copies keep foreign keys to it, and it is copied verbatim to the shadow schema; a table with columns that look personal needs confirm => true';
COMMENT ON FUNCTION dp_internal.personal_columns(regclass) IS
    'Columns of a table that look personal (by name, and by the content of up to 1,000 random rows): dp.declare_public asks for confirmation';
COMMENT ON FUNCTION dp.undeclare_public(regclass) IS 'DBA: a table is no longer public (later synthetic copies do not copy it nor keep keys to it)';
COMMENT ON VIEW dp.public_tables IS 'Tables declared public by the DBA (copied verbatim to the shadow schema by dp_synthesize)';
