-- DBA API: protect tables, describe columns, grant budgets.  These run with the
-- caller's rights (SECURITY INVOKER) and refuse anyone who is not a pg_dp
-- administrator (who may update dp_internal.datasets).

-- Writes to a protected table bump its dataset's data version, which keys the answer cache.
CREATE FUNCTION dp_internal.bump_data_version() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE dp_internal.datasets d SET data_version = d.data_version + 1
    FROM dp_internal.protected_tables p
    WHERE p.relid = TG_RELID AND d.name = p.dataset;
    IF NOT FOUND AND TG_TABLE_NAME ~ '_[0-9]+$' THEN
        -- a shard of a protected Citus table (<table>_<shardid>), on the node that holds it
        PERFORM dp_internal.count_shard_write(pg_catalog.substring(TG_TABLE_NAME, '_([0-9]+)$')::bigint);
    END IF;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION dp_internal.bump_data_version() FROM PUBLIC;

-- A protected table and its protected partitions and inheritance children (recursively):
-- what dp.set_bounds, dp.set_public_values and dp.unprotect apply to together.
CREATE FUNCTION dp_internal.protected_family(table_name regclass) RETURNS SETOF oid
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE down(relid, depth) AS (
        SELECT table_name::oid, 0
      UNION ALL
        SELECT i.inhrelid, d.depth + 1 FROM down d JOIN pg_catalog.pg_inherits i ON i.inhparent = d.relid
        WHERE d.depth < 64)
    SELECT DISTINCT d.relid FROM down d JOIN dp_internal.protected_tables p ON p.relid = d.relid
$$;

CREATE FUNCTION dp.protect(
    table_name regclass,
    dataset text DEFAULT NULL,
    privacy_unit name DEFAULT NULL,
    max_rows_per_unit integer DEFAULT NULL,
    max_groups_per_unit integer DEFAULT NULL,
    not_personal text[] DEFAULT NULL,
    force boolean DEFAULT false)
RETURNS void
LANGUAGE plpython3u VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off  -- the catalog views' estimates are huge (JIT would compile), their cost tiny
AS $$
from pg_dp.core.db import call
from pg_dp.admin.protect import protect
return call(protect, table_name, dataset, privacy_unit, max_rows_per_unit, max_groups_per_unit, not_personal, force)
$$;

CREATE FUNCTION dp_internal.drop_bounded_copies(table_name regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    copy name;
BEGIN
    FOR copy IN DELETE FROM dp_internal.bounded_copies WHERE relid = table_name RETURNING relname LOOP
        EXECUTE format('DROP TABLE IF EXISTS dp_internal.%I, dp_internal.%I, dp_internal.%I, dp_internal.%I',
                       copy || '_a', copy || '_b', copy || '_c', copy || '_all');     -- gateway/bounded.py
    END LOOP;
END $$;

CREATE FUNCTION dp.unprotect(table_name regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    parent regclass;
    family regclass[];
    children text;
    rel regclass;
BEGIN
    PERFORM dp_internal.require_admin('unprotect a table');
    IF NOT EXISTS (SELECT 1 FROM dp_internal.protected_tables WHERE relid = table_name) THEN
        RAISE EXCEPTION 'table % is not protected by pg_dp', table_name
            USING ERRCODE = 'invalid_parameter_value', HINT = 'See dp.datasets for the protected tables.';
    END IF;
    WITH RECURSIVE up(relid, depth) AS (
        SELECT i.inhparent, 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = table_name
      UNION ALL
        SELECT i.inhparent, u.depth + 1 FROM up u JOIN pg_catalog.pg_inherits i ON i.inhrelid = u.relid
        WHERE u.depth < 64)
    SELECT u.relid::regclass INTO parent
    FROM up u JOIN dp_internal.protected_tables p ON p.relid = u.relid ORDER BY u.depth LIMIT 1;
    IF parent IS NOT NULL THEN
        RAISE EXCEPTION 'table % is a partition or child of protected table %', table_name, parent
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Unprotect ' || parent::text || ' instead: its partitions and children go with it.';
    END IF;
    SELECT array_agg(f::regclass ORDER BY f::regclass::text) INTO family FROM dp_internal.protected_family(table_name) f;
    SELECT string_agg(f::text, ', ' ORDER BY f::text) INTO children FROM unnest(family) f WHERE f <> table_name;
    -- forgotten first: dropping a trigger fires pg_dp's event trigger, which puts it back on a protected table
    DELETE FROM dp_internal.protected_tables WHERE relid = ANY(family::oid[]);
    FOREACH rel IN ARRAY family LOOP
        IF dp_internal.is_citus_table(rel) THEN
            PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
        END IF;
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = rel AND tgname = 'dp_data_version') THEN
            EXECUTE format('DROP TRIGGER dp_data_version ON %s', rel);
        END IF;
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = rel AND tgname = 'dp_data_version_truncate') THEN
            EXECUTE format('DROP TRIGGER dp_data_version_truncate ON %s', rel);
        END IF;
        PERFORM dp_internal.drop_bounded_copies(rel);
    END LOOP;
    IF children IS NULL THEN
        RAISE NOTICE 'table % is no longer protected; its privileges were not changed', table_name
            USING HINT = 'GRANT SELECT again to the roles that should read it directly.';
    ELSE
        RAISE NOTICE 'table % is no longer protected, nor its partitions and children %; their privileges were not changed',
                     table_name, children
            USING HINT = 'GRANT SELECT again to the roles that should read them directly.';
    END IF;
END $$;

-- Bounds of a column, stored on the number line synthesis and the gateway share: numbers as
-- they are, dates as days since 2000-01-01, timestamps as seconds since 2000-01-01 00:00
-- (UTC for timestamptz).  The DBA passes values of the column's type (one overload per kind);
-- NULL, NULL clears them.  A protected table's partitions and children get them too.
-- given: 'number', 'date', 'timestamp' or 'timestamptz', the kind of value the DBA passed.
CREATE FUNCTION dp_internal.set_bounds(table_name regclass, column_name name, lower numeric, upper numeric, given text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    typ oid;
    kind text;
BEGIN
    PERFORM dp_internal.require_admin('set bounds');
    PERFORM dp_internal.check_protected_column(table_name, column_name);
    typ := (dp_internal.column_base_type(table_name, column_name)).typ;
    kind := CASE WHEN typ IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'real'::regtype,
                              'double precision'::regtype, 'numeric'::regtype) THEN 'number'
                 WHEN typ = 'date'::regtype THEN 'date'
                 WHEN typ = 'timestamp without time zone'::regtype THEN 'timestamp'
                 WHEN typ = 'timestamp with time zone'::regtype THEN 'timestamptz' END;
    IF kind IS NULL THEN
        RAISE EXCEPTION 'column %.% is of type %: bounds are for integer, numeric, float, date and timestamp columns',
                        table_name, column_name, typ::regtype
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'Declare the GROUP BY keys of a categorical column with dp.set_public_values instead.';
    END IF;
    -- a date column takes dates or timestamps (converted without a time zone), a timestamp column
    -- likewise; a timestamptz column only timestamptz values, so no session time zone is involved
    IF NOT (kind = given OR (kind IN ('date', 'timestamp') AND given IN ('date', 'timestamp'))) THEN
        RAISE EXCEPTION 'column %.% is of type %: its bounds must be values of that type, not %',
                        table_name, column_name, typ::regtype,
                        CASE given WHEN 'number' THEN 'numbers' ELSE given || ' values' END
            USING ERRCODE = 'datatype_mismatch',
                  HINT = CASE kind
                      WHEN 'number' THEN 'Pass two numbers, e.g. dp.set_bounds(''t'', ''c'', 0, 100).'
                      WHEN 'timestamptz' THEN format('Pass two timestamptz values with their zone, e.g. dp.set_bounds(%L, %L, timestamptz ''2020-01-01 00:00+00'', timestamptz ''2025-01-01 00:00+00'').', table_name::text, column_name)
                      ELSE format('Pass two values of the column''s type, e.g. dp.set_bounds(%L, %L, date ''2020-01-01'', date ''2024-12-31'').', table_name::text, column_name) END;
    END IF;
    IF kind = 'date' AND given = 'timestamp' THEN    -- the days of the timestamps, on the date line
        lower := pg_catalog.floor(lower / 86400);
        upper := pg_catalog.ceil(upper / 86400);
    ELSIF kind = 'timestamp' AND given = 'date' THEN
        lower := lower * 86400;
        upper := upper * 86400;
    END IF;
    IF lower IS NULL AND upper IS NULL THEN
        UPDATE dp_internal.columns c SET lower_bound = NULL, upper_bound = NULL
        WHERE c.relid IN (SELECT dp_internal.protected_family(table_name)) AND c.attname = column_name;
        RETURN;
    END IF;
    IF lower IS NULL OR upper IS NULL THEN
        RAISE EXCEPTION 'bounds of %.% must be two numbers, or both NULL to clear them', table_name, column_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Choose them from public knowledge of the domain, never from the data.';
    END IF;
    IF lower IN ('Infinity', '-Infinity') OR upper IN ('Infinity', '-Infinity') THEN
        RAISE EXCEPTION 'bounds of %.% must be finite', table_name, column_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'An infinite bound clamps nothing and makes the noise infinite: choose the domain''s limits.';
    END IF;
    IF lower > upper OR lower = 'NaN' OR upper = 'NaN' THEN
        RAISE EXCEPTION 'bounds of %.% must be numbers with lower <= upper', table_name, column_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Choose them from public knowledge of the domain, never from the data.';
    END IF;
    INSERT INTO dp_internal.columns (relid, attname, lower_bound, upper_bound)
    SELECT f, column_name, lower, upper FROM dp_internal.protected_family(table_name) f
    ON CONFLICT (relid, attname) DO UPDATE SET lower_bound = excluded.lower_bound,
                                               upper_bound = excluded.upper_bound;
END $$;

-- A grid the values of a number column sit on (salaries in steps of 5,000, prices in whole
-- euros): synthesis keeps its copy on it (without a declaration, it looks for one with DP).
-- Public knowledge of the domain, never read from the data; NULL clears it.
CREATE FUNCTION dp.set_step(table_name regclass, column_name name, step numeric)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    typ regtype;
    typmod int;
BEGIN
    PERFORM dp_internal.require_admin('set a grid step');
    PERFORM dp_internal.check_protected_column(table_name, column_name);
    SELECT b.typ, b.typmod INTO typ, typmod FROM dp_internal.column_base_type(table_name, column_name) b;
    IF typ NOT IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'real'::regtype,
                   'double precision'::regtype, 'numeric'::regtype) THEN
        RAISE EXCEPTION 'column %.% is of type %: a grid step is for number columns', table_name, column_name, typ
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'Declare bounds (dp.set_bounds) or public values (dp.set_public_values) instead.';
    END IF;
    IF step IS NULL THEN
        UPDATE dp_internal.columns c SET step = NULL
        WHERE c.relid IN (SELECT dp_internal.protected_family(table_name)) AND c.attname = column_name;
        RETURN;
    END IF;
    IF step <= 0 OR step = 'NaN' OR step IN ('Infinity', '-Infinity') THEN
        RAISE EXCEPTION 'the grid step of %.% must be a finite number greater than zero', table_name, column_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('e.g. dp.set_step(%L, %L, 5000) for values in steps of 5,000; NULL clears it.',
                                table_name::text, column_name);
    END IF;
    IF typ IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype) AND step <> pg_catalog.trunc(step) THEN
        RAISE EXCEPTION 'column %.% holds whole numbers: its grid step must be a whole number, not %',
                        table_name, column_name, step
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Choose a whole step, e.g. 5 or 1000.';
    END IF;
    IF typ = 'numeric'::regtype AND typmod >= 4 AND pg_catalog.scale(step) > ((typmod - 4) & 65535) THEN
        RAISE EXCEPTION 'column %.% (%) keeps % digit(s) after the point: a step of % is finer than its values',
                        table_name, column_name, pg_catalog.format_type(typ, typmod), (typmod - 4) & 65535, step
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Choose a step that is a multiple of the type''s own (0.01 for numeric(10,2)).';
    END IF;
    INSERT INTO dp_internal.columns (relid, attname, step)
    SELECT f, column_name, step FROM dp_internal.protected_family(table_name) f
    ON CONFLICT (relid, attname) DO UPDATE SET step = excluded.step;
END $$;

-- The DBA's bounds in the column's own type: numbers for number columns, dates or timestamps
-- for date and timestamp columns, timestamptz values for timestamptz columns; a quoted literal
-- ('2020-01-01') is read as a value of the column's type.
CREATE FUNCTION dp.set_bounds(table_name regclass, column_name name, lower anycompatible, upper anycompatible)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    given regtype := pg_catalog.pg_typeof(lower);
    typ regtype;
BEGIN
    PERFORM dp_internal.require_admin('set bounds');
    PERFORM dp_internal.check_protected_column(table_name, column_name);
    typ := (dp_internal.column_base_type(table_name, column_name)).typ;
    IF given IN ('text'::regtype, 'unknown'::regtype) THEN     -- a literal: a value of the column's type
        BEGIN
            IF typ = 'date'::regtype THEN
                PERFORM dp_internal.set_bounds(table_name, column_name, dp_internal.date_line(lower::text::date),
                                               dp_internal.date_line(upper::text::date), 'date');
            ELSIF typ = 'timestamp without time zone'::regtype THEN
                PERFORM dp_internal.set_bounds(table_name, column_name, dp_internal.timestamp_line(lower::text::timestamp),
                                               dp_internal.timestamp_line(upper::text::timestamp), 'timestamp');
            ELSIF typ = 'timestamp with time zone'::regtype THEN
                PERFORM dp_internal.set_bounds(table_name, column_name, dp_internal.timestamptz_line(lower::text::timestamptz),
                                               dp_internal.timestamptz_line(upper::text::timestamptz), 'timestamptz');
            ELSE
                PERFORM dp_internal.set_bounds(table_name, column_name, lower::text::numeric, upper::text::numeric, 'number');
            END IF;
        EXCEPTION WHEN invalid_text_representation OR invalid_datetime_format OR datetime_field_overflow THEN
            RAISE EXCEPTION 'bounds of %.% must be values of its type %', table_name, column_name, typ
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Write them as literals of that type, e.g. ''2020-01-01'' for a date, 0 and 100 for a number.';
        END;
    ELSIF given IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'numeric'::regtype,
                    'real'::regtype, 'double precision'::regtype) THEN
        PERFORM dp_internal.set_bounds(table_name, column_name, lower::numeric, upper::numeric, 'number');
    ELSIF given = 'date'::regtype THEN
        PERFORM dp_internal.set_bounds(table_name, column_name, dp_internal.date_line(lower::date),
                                       dp_internal.date_line(upper::date), 'date');
    ELSIF given = 'timestamp without time zone'::regtype THEN
        PERFORM dp_internal.set_bounds(table_name, column_name, dp_internal.timestamp_line(lower::timestamp),
                                       dp_internal.timestamp_line(upper::timestamp), 'timestamp');
    ELSIF given = 'timestamp with time zone'::regtype THEN
        PERFORM dp_internal.set_bounds(table_name, column_name, dp_internal.timestamptz_line(lower::timestamptz),
                                       dp_internal.timestamptz_line(upper::timestamptz), 'timestamptz');
    ELSE
        RAISE EXCEPTION 'bounds of type % are not supported', given
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'Pass numbers, dates or timestamps of the column''s type.';
    END IF;
END $$;

-- The public GROUP BY keys of a column; NULL clears them.  Each must be a value of the
-- column's type.  A protected table's partitions and children get them too.
CREATE FUNCTION dp.set_public_values(table_name regclass, column_name name, public_values text[])
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    typ text;
    candidate text;
BEGIN
    PERFORM dp_internal.require_admin('set public values');
    PERFORM dp_internal.check_protected_column(table_name, column_name);
    IF public_values IS NULL THEN
        UPDATE dp_internal.columns c SET public_values = NULL, values_source = NULL
        WHERE c.relid IN (SELECT dp_internal.protected_family(table_name)) AND c.attname = column_name;
        RETURN;
    END IF;
    IF cardinality(public_values) = 0 OR array_position(public_values, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'public values of %.% must be a non-empty array without NULLs', table_name, column_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'NULL is added by itself when the column is nullable.';
    END IF;
    SELECT format_type(a.atttypid, a.atttypmod) INTO typ
    FROM pg_catalog.pg_attribute a WHERE a.attrelid = table_name AND a.attname = column_name;
    -- casting the values would run the type's casts or domain CHECKs with the caller's rights
    IF EXISTS (SELECT 1 FROM dp_internal.type_foreign_code(ARRAY(
                   SELECT a.atttypid FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = table_name AND a.attname = column_name))) THEN
        RAISE EXCEPTION 'column %.% is of a type whose casts or checks run functions of other roles', table_name,
                        column_name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'See dp_internal.type_foreign_code; a superuser can take over those functions.';
    END IF;
    FOREACH candidate IN ARRAY public_values LOOP
        BEGIN
            EXECUTE format('SELECT %L::%s', candidate, typ);
        EXCEPTION WHEN data_exception THEN
            RAISE EXCEPTION 'public value % of %.% is not a valid %', quote_literal(candidate), table_name, column_name, typ
                USING ERRCODE = 'invalid_text_representation', DETAIL = SQLERRM,
                      HINT = 'Every public value must be a value of the column''s type.';
        END;
    END LOOP;
    INSERT INTO dp_internal.columns (relid, attname, public_values, values_source)
    SELECT f, column_name, ARRAY(SELECT DISTINCT v FROM unnest(public_values) v ORDER BY 1), 'declared'
    FROM dp_internal.protected_family(table_name) f
    ON CONFLICT (relid, attname) DO UPDATE SET public_values = excluded.public_values,
                                               values_source = excluded.values_source;
END $$;

-- From a public table (a dimension or vocabulary table the DBA declares public).
CREATE FUNCTION dp.set_public_values(table_name regclass, column_name name,
                                     source_table regclass, source_column name)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    vals text[];
BEGIN
    PERFORM dp_internal.require_admin('set public values');
    IF EXISTS (SELECT 1 FROM dp_internal.protected_tables WHERE relid = source_table) THEN
        RAISE EXCEPTION 'table % is protected: its values are not public', source_table
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Take public values from a public table.';
    END IF;
    -- the values are cast to text here: no cast or domain CHECK of another role may run
    IF EXISTS (SELECT 1 FROM dp_internal.type_foreign_code(ARRAY(
                   SELECT a.atttypid FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = source_table AND a.attname = source_column))) THEN
        RAISE EXCEPTION 'column %.% is of a type whose casts or checks run functions of other roles', source_table,
                        source_column
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'See dp_internal.type_foreign_code; a superuser can take over those functions.';
    END IF;
    EXECUTE format('SELECT array_agg(DISTINCT %I::text) FROM %s WHERE %I IS NOT NULL',
                   source_column, source_table, source_column) INTO vals;
    PERFORM dp.set_public_values(table_name, column_name, coalesce(vals, '{}'));
    UPDATE dp_internal.columns SET values_source = 'table ' || source_table::text
    WHERE relid IN (SELECT dp_internal.protected_family(table_name)) AND attname = column_name;
END $$;

CREATE FUNCTION dp_internal.check_protected_column(table_name regclass, column_name name)
RETURNS void
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM dp_internal.protected_tables WHERE relid = table_name) THEN
        RAISE EXCEPTION 'table % is not protected by pg_dp', table_name
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Call dp.protect(''' || table_name::text || ''') first.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = table_name AND attname = column_name
                   AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'column "%" of % does not exist', column_name, table_name
            USING ERRCODE = 'undefined_column', HINT = 'See \d ' || table_name::text;
    END IF;
END $$;

-- The type a column's values have under its domains (a domain over a domain: the last base), and
-- that base's type modifier: what set_bounds and set_step check the DBA's values against.
CREATE FUNCTION dp_internal.column_base_type(table_name regclass, column_name name, OUT typ regtype, OUT typmod int)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT a.atttypid, a.atttypmod INTO typ, typmod FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = table_name AND a.attname = column_name;
    WHILE (SELECT t.typtype FROM pg_catalog.pg_type t WHERE t.oid = typ) = 'd' LOOP
        SELECT t.typbasetype, t.typtypmod INTO typ, typmod FROM pg_catalog.pg_type t WHERE t.oid = typ;
    END LOOP;
END $$;

CREATE FUNCTION dp.grant_budget(role regrole, dataset text, epsilon numeric, delta numeric DEFAULT 0)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    granted numeric;
BEGIN
    PERFORM dp_internal.require_admin('grant a budget');
    IF NOT EXISTS (SELECT 1 FROM dp_internal.datasets d WHERE d.name = grant_budget.dataset) THEN
        RAISE EXCEPTION 'dataset "%" does not exist', dataset
            USING ERRCODE = 'invalid_parameter_value', HINT = 'See dp.datasets; dp.protect creates datasets.';
    END IF;
    IF epsilon IS NULL OR epsilon < 0 OR epsilon = 'NaN' OR delta IS NULL OR delta < 0 OR delta > 1 THEN
        RAISE EXCEPTION 'epsilon must be >= 0 and delta between 0 and 1'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'e.g. dp.grant_budget(''analyst'', ''adult'', 1.0, 1e-6)';
    END IF;
    IF epsilon = 'Infinity' THEN
        RAISE EXCEPTION 'epsilon must be finite'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'An infinite budget is no privacy: grant a number, and more later if needed.';
    END IF;
    SELECT b.delta_granted INTO granted FROM dp_internal.budgets b
    WHERE b.role = grant_budget.role AND b.dataset = grant_budget.dataset;
    IF coalesce(granted, 0) + delta >= 1 THEN
        RAISE EXCEPTION 'delta must stay below 1: role % would hold delta % on dataset "%"',
                        role, coalesce(granted, 0) + delta, dataset
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'delta >= 1 allows releasing rows as they are; grant much less than 1 / rows, e.g. 1e-6.';
    END IF;
    INSERT INTO dp_internal.budgets (role, dataset, epsilon_granted, delta_granted)
    VALUES (role, dataset, epsilon, delta)
    ON CONFLICT ON CONSTRAINT budgets_pkey DO UPDATE
        SET epsilon_granted = budgets.epsilon_granted + excluded.epsilon_granted,
            delta_granted = least(1, budgets.delta_granted + excluded.delta_granted);
END $$;

-- Statements that give no epsilon (plain SQL from a BI tool) cost the role's default;
-- no statement may cost more than the role's maximum (BigQuery's max_epsilon_per_query).
CREATE FUNCTION dp.set_query_epsilon(role regrole, dataset text, default_epsilon numeric,
                                     max_epsilon numeric DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dp_internal.require_admin('set a role''s query epsilon');
    IF (default_epsilon IS NOT NULL AND NOT (default_epsilon > 0 AND default_epsilon < 'Infinity'))
       OR (max_epsilon IS NOT NULL AND NOT (max_epsilon > 0 AND max_epsilon < 'Infinity'))
       OR default_epsilon > max_epsilon THEN
        RAISE EXCEPTION 'default and maximum epsilon must be finite numbers > 0, the default not above the maximum'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'e.g. dp.set_query_epsilon(''analyst'', ''adult'', 0.1, 0.5); NULL leaves the global default.';
    END IF;
    UPDATE dp_internal.budgets b SET default_epsilon = set_query_epsilon.default_epsilon,
                                     max_epsilon = set_query_epsilon.max_epsilon
    WHERE b.role = set_query_epsilon.role AND b.dataset = set_query_epsilon.dataset;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role % has no budget on dataset "%"', role, dataset
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Grant one first: dp.grant_budget(role, dataset, epsilon).';
    END IF;
END $$;

CREATE FUNCTION dp.revoke_budget(role regrole, dataset text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dp_internal.require_admin('revoke a budget');
    UPDATE dp_internal.budgets b SET epsilon_granted = b.epsilon_spent, delta_granted = b.delta_spent
    WHERE b.role = revoke_budget.role AND b.dataset = revoke_budget.dataset;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role % has no budget on dataset "%"', role, dataset
            USING ERRCODE = 'invalid_parameter_value', HINT = 'See dp.budgets.';
    END IF;
END $$;

CREATE FUNCTION dp.set_dataset_cap(dataset text, epsilon numeric, delta numeric DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dp_internal.require_admin('set a dataset cap');
    IF (epsilon IS NOT NULL AND (epsilon < 0 OR epsilon IN ('NaN', 'Infinity')))
       OR (delta IS NOT NULL AND (delta < 0 OR delta > 1 OR delta = 'NaN')) THEN
        RAISE EXCEPTION 'a dataset cap needs a finite epsilon >= 0 and a delta between 0 and 1'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'NULL leaves it uncapped, e.g. dp.set_dataset_cap(''adult'', 20.0, 1e-5).';
    END IF;
    UPDATE dp_internal.datasets d SET epsilon_cap = epsilon, delta_cap = delta
    WHERE d.name = set_dataset_cap.dataset;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dataset "%" does not exist', dataset
            USING ERRCODE = 'invalid_parameter_value', HINT = 'See dp.datasets.';
    END IF;
END $$;

-- Each known setting's value is checked before it is written.
CREATE FUNCTION dp.set_setting(key text, value text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    number numeric;
    copies integer;
    expected text;
    example text;
BEGIN
    PERFORM dp_internal.require_admin('change a setting');
    IF NOT EXISTS (SELECT 1 FROM dp_internal.settings s WHERE s.key = set_setting.key) THEN
        RAISE EXCEPTION 'unknown pg_dp setting "%"', key
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Settings: ' || (SELECT string_agg(s.key, ', ' ORDER BY s.key) FROM dp_internal.settings s);
    END IF;
    IF value IS NULL THEN
        RAISE EXCEPTION 'pg_dp setting % cannot be NULL', key
            USING ERRCODE = 'invalid_parameter_value', HINT = 'See dp_internal.settings for the current values.';
    END IF;
    IF key IN ('default_epsilon', 'default_delta') THEN
        BEGIN
            number := value::numeric;
        EXCEPTION WHEN invalid_text_representation THEN
            number := NULL;
        END;
        IF key = 'default_epsilon' AND (number IS NULL OR number <= 0 OR number IN ('NaN', 'Infinity')) THEN
            expected := 'a finite number greater than 0';
            example := 'dp.set_setting(''default_epsilon'', ''1.0'')';
        ELSIF key = 'default_delta' AND (number IS NULL OR number < 0 OR number >= 1 OR number = 'NaN') THEN
            expected := 'a number at least 0 and below 1';
            example := 'dp.set_setting(''default_delta'', ''1e-6'')';
        END IF;
    ELSIF key IN ('bounded_copies', 'auto_max_rows_per_unit', 'auto_max_groups_per_unit') THEN
        BEGIN
            copies := value::integer;
        EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
            copies := NULL;
        END;
        IF key = 'bounded_copies' AND (copies IS NULL OR copies < 0) THEN
            expected := 'a whole number at least 0';
            example := 'dp.set_setting(''bounded_copies'', ''4'')';
        ELSIF key <> 'bounded_copies' AND (copies IS NULL OR copies < 1) THEN
            expected := 'a whole number at least 1';
            example := format('dp.set_setting(%L, ''100'')', key);
        END IF;
    ELSIF key = 'lock_timeout' THEN
        -- what SET lock_timeout accepts; the subtransaction's rollback undoes the trial
        BEGIN
            PERFORM set_config('lock_timeout', value, true);
            RAISE EXCEPTION USING ERRCODE = 'PDPOK';
        EXCEPTION
            WHEN SQLSTATE 'PDPOK' THEN
                NULL;
            WHEN invalid_parameter_value THEN
                expected := 'a duration that SET lock_timeout accepts';
                example := 'dp.set_setting(''lock_timeout'', ''10s'')';
        END;
    ELSIF key = 'synthetic_schema' THEN
        IF value !~ '^[a-z_][a-z0-9_]*$' OR octet_length(value) > 63
           OR value IN ('dp', 'dp_internal', 'information_schema') OR value LIKE 'pg\_%' THEN
            expected := 'a schema name of lower-case letters, digits and underscores, not dp, dp_internal, '
                        'information_schema or pg_*';
            example := 'dp.set_setting(''synthetic_schema'', ''dp_synthetic'')';
        END IF;
    END IF;
    IF expected IS NOT NULL THEN
        RAISE EXCEPTION 'invalid value % for pg_dp setting %: it must be %', quote_literal(value), key, expected
            USING ERRCODE = 'invalid_parameter_value', HINT = 'e.g. ' || example;
    END IF;
    UPDATE dp_internal.settings s SET value = set_setting.value WHERE s.key = set_setting.key;
END $$;

REVOKE ALL ON FUNCTION dp.set_query_epsilon(regrole, text, numeric, numeric) FROM PUBLIC;
COMMENT ON FUNCTION dp.set_query_epsilon(regrole, text, numeric, numeric) IS
    'DBA: a role''s epsilon per statement on a dataset when none is given (plain SQL), and the most one statement may cost';
REVOKE ALL ON FUNCTION dp.protect(regclass, text, name, integer, integer, text[], boolean), dp.unprotect(regclass),
    dp.set_bounds(regclass, name, anycompatible, anycompatible),
    dp_internal.set_bounds(regclass, name, numeric, numeric, text), dp.set_step(regclass, name, numeric),
    dp.set_public_values(regclass, name, text[]),
    dp.set_public_values(regclass, name, regclass, name), dp.grant_budget(regrole, text, numeric, numeric),
    dp.revoke_budget(regrole, text), dp.set_dataset_cap(text, numeric, numeric), dp.set_setting(text, text),
    dp_internal.drop_bounded_copies(regclass),
    dp_internal.check_protected_column(regclass, name), dp_internal.column_base_type(regclass, name),
    dp_internal.protected_family(regclass)
FROM PUBLIC;

COMMENT ON FUNCTION dp_internal.bump_data_version() IS 'Trigger: a write to a protected table bumps its dataset''s data version (invalidates cached answers)';
COMMENT ON FUNCTION dp.protect(regclass, text, name, integer, integer, text[], boolean) IS
    'DBA: protect a table and its partitions (dataset, privacy unit column, max rows and groups per unit; not_personal: foreign keys to the unit''s tables that do not name a unit; force: despite foreign keys others may probe); revokes every direct privilege on them and on views reading them, and takes public values from enums, booleans and CHECK (col IN ...)';
COMMENT ON FUNCTION dp.unprotect(regclass) IS 'DBA: stop protecting a table and its partitions and children (privileges are left as they are)';
COMMENT ON FUNCTION dp.set_bounds(regclass, name, anycompatible, anycompatible) IS 'DBA: public bounds of a number, date or timestamp column, as values of its type (NULL, NULL clears them)';
COMMENT ON FUNCTION dp_internal.set_bounds(regclass, name, numeric, numeric, text) IS 'Checks and stores bounds already on the number line (dates: days since 2000-01-01, timestamps: seconds since its midnight UTC)';
COMMENT ON FUNCTION dp.set_step(regclass, name, numeric) IS 'DBA: declare the grid a number column''s values sit on (e.g. steps of 5,000); synthesis keeps its copy on it (NULL clears it)';
COMMENT ON FUNCTION dp.set_public_values(regclass, name, text[]) IS 'DBA: declare the public set of GROUP BY keys of a column (every key is released, empty ones too; NULL clears them)';
COMMENT ON FUNCTION dp_internal.protected_family(regclass) IS 'A protected table and its protected partitions and inheritance children, recursively';
COMMENT ON FUNCTION dp.set_public_values(regclass, name, regclass, name) IS 'DBA: take the public GROUP BY keys of a column from a public table';
COMMENT ON FUNCTION dp_internal.drop_bounded_copies(regclass) IS 'Drops the bounded copies of a table (when it is unprotected)';
COMMENT ON FUNCTION dp_internal.check_protected_column(regclass, name) IS 'Raises unless the table is protected and has the column';
COMMENT ON FUNCTION dp_internal.column_base_type(regclass, name) IS 'The base type of a column under its domains (domains over domains followed to the last) and its type modifier';
COMMENT ON FUNCTION dp.grant_budget(regrole, text, numeric, numeric) IS 'DBA: grant a role more epsilon (and delta) on a dataset';
COMMENT ON FUNCTION dp.revoke_budget(regrole, text) IS 'DBA: take back what a role has not spent on a dataset';
COMMENT ON FUNCTION dp.set_dataset_cap(text, numeric, numeric) IS 'DBA: cap the epsilon/delta all roles together may spend on a dataset (against collusion)';
COMMENT ON FUNCTION dp.set_setting(text, text) IS 'DBA: change a pg_dp setting (default_epsilon, default_delta, lock_timeout, synthetic_schema, bounded_copies)';
