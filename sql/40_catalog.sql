-- Catalog: datasets, protected tables, column metadata, budgets, ledger, answers.
-- The tables live in dp_internal and are changed only through the DBA functions
-- (sql/50_admin.sql) and the gateway; users read them through the views
-- in dp, which show an analyst only their own rows.

CREATE TABLE dp_internal.settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO dp_internal.settings VALUES
    ('default_epsilon', '1.0'),                -- statement epsilon when dp.query gets none
    ('default_delta', '0.000001'),             -- delta of DP partition selection
    ('lock_timeout', '10s'),                   -- how long a charge waits for a budget row
    ('auto_max_rows_per_unit', '256'),         -- contribution bounds chosen per question never exceed these
    ('auto_max_groups_per_unit', '1024');

CREATE TABLE dp_internal.datasets (
    name                text PRIMARY KEY CHECK (name ~ '^[a-z_][a-z0-9_]{0,62}$'),
    privacy_unit        text,                  -- column shared by the tables; NULL: each row is a unit
    max_rows_per_unit   integer CHECK (max_rows_per_unit >= 1),     -- NULL: chosen per question (DP estimate)
    max_groups_per_unit integer CHECK (max_groups_per_unit >= 1),   -- NULL: chosen per question
    epsilon_cap         numeric CHECK (epsilon_cap >= 0),   -- over all roles together (collusion)
    delta_cap           numeric CHECK (delta_cap >= 0 AND delta_cap <= 1),
    epsilon_spent       numeric NOT NULL DEFAULT 0,
    delta_spent         numeric NOT NULL DEFAULT 0,
    data_version        bigint NOT NULL DEFAULT 1,         -- bumped by every write to its tables
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dp_internal.protected_tables (
    relid        oid PRIMARY KEY,
    dataset      text NOT NULL REFERENCES dp_internal.datasets ON DELETE CASCADE,
    unit_column  name                          -- NULL: each row is a unit
);

CREATE TABLE dp_internal.columns (
    relid          oid NOT NULL REFERENCES dp_internal.protected_tables ON DELETE CASCADE,
    attname        name NOT NULL,
    lower_bound    numeric,
    upper_bound    numeric,
    public_values  text[],                      -- GROUP BY keys everyone may know
    values_source  text,                        -- 'declared', 'enum', 'check', 'foreign key'
    step           numeric CHECK (step > 0),    -- a grid the values sit on (dp.set_step)
    PRIMARY KEY (relid, attname),
    CHECK (lower_bound IS NULL OR upper_bound IS NULL OR lower_bound <= upper_bound)
);

CREATE TABLE dp_internal.budgets (
    role             oid NOT NULL,
    dataset          text NOT NULL REFERENCES dp_internal.datasets ON DELETE CASCADE,
    epsilon_granted  numeric NOT NULL CHECK (epsilon_granted >= 0),
    delta_granted    numeric NOT NULL DEFAULT 0 CHECK (delta_granted >= 0 AND delta_granted <= 1),
    epsilon_spent    numeric NOT NULL DEFAULT 0,               -- the (epsilon, delta) guarantee of what was
    delta_spent      numeric NOT NULL DEFAULT 0,               -- released (dp/accountant.py), as shown
    rho_spent        numeric NOT NULL DEFAULT 0,               -- underneath: the zCDP part (Gaussian releases)
    basic_epsilon_spent numeric NOT NULL DEFAULT 0,            -- and the approximate-DP part, added up
    basic_delta_spent numeric NOT NULL DEFAULT 0,
    default_epsilon  numeric CHECK (default_epsilon > 0),      -- a statement's epsilon when none is given
    max_epsilon      numeric CHECK (max_epsilon > 0),          -- the most one statement may cost
    PRIMARY KEY (role, dataset)
);

CREATE TABLE dp_internal.ledger (
    id            bigserial PRIMARY KEY,
    role          oid NOT NULL,
    dataset       text NOT NULL,
    statement     text NOT NULL,               -- normalized
    mechanism     text NOT NULL,
    epsilon       numeric NOT NULL,            -- what it added to the budget's epsilon_spent, delta_spent
    delta         numeric NOT NULL,
    rho           numeric NOT NULL DEFAULT 0,  -- its zCDP part (Gaussian releases)
    asked_epsilon numeric,                     -- the epsilon the statement was asked at (zCDP: its rho's
                                               -- conversion alone; the charge above is what it added)
    data_version  bigint NOT NULL,
    cache_key     text NOT NULL,
    at            timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ON dp_internal.ledger (role, dataset);

CREATE TABLE dp_internal.answers (
    cache_key     text PRIMARY KEY,
    dataset       text NOT NULL,
    data_version  bigint NOT NULL,
    columns       jsonb NOT NULL,              -- [{"name":..., "type":...}]
    rows          jsonb NOT NULL,              -- [[...], ...]
    ledger_id     bigint,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The secret behind the choice of the rows a privacy unit keeps when bounding drops some
-- (gateway/rewrite.py): made once per dataset from pg_strong_random, read only by the executor.
CREATE TABLE dp_internal.dataset_secrets (
    dataset  text PRIMARY KEY REFERENCES dp_internal.datasets ON DELETE CASCADE,
    seed     bigint NOT NULL
);

-- DP estimates of the per-unit contribution of a key set (gateway/contributions.py): released once
-- per data version, then reused by every question on that key set.
CREATE TABLE dp_internal.contribution_estimates (
    relid         oid NOT NULL,
    source        text NOT NULL,               -- digest of the rows' definition (a path, a join)
    keys          text NOT NULL,               -- the key set's SQL
    data_version  bigint NOT NULL,
    estimate      jsonb NOT NULL,              -- the noisy histograms
    ledger_id     bigint,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (relid, source, keys, data_version)
);

-- Every answer given to a role, fresh or not (dp.my_answers).
CREATE TABLE dp_internal.answer_log (
    id            bigserial PRIMARY KEY,
    role          oid NOT NULL,
    dataset       text NOT NULL,
    statement     text NOT NULL,
    origin        text NOT NULL CHECK (origin IN ('fresh', 'cache', 'synthetic', 'public')),
                                               -- public: a public key set, no data read, nothing spent
    ledger_id     bigint,                      -- the charge that released it
    detail        jsonb NOT NULL,              -- measurements, 95% intervals, bounds, share dropped
    at            timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ON dp_internal.answer_log (role);
CREATE INDEX ON dp_internal.answer_log (ledger_id);

REVOKE ALL ON ALL TABLES IN SCHEMA dp_internal FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA dp_internal FROM PUBLIC;

-- pg_dump keeps the DBA's configuration and the spend
SELECT pg_catalog.pg_extension_config_dump('dp_internal.settings', '');
SELECT pg_catalog.pg_extension_config_dump('dp_internal.datasets', '');
SELECT pg_catalog.pg_extension_config_dump('dp_internal.protected_tables', '');
SELECT pg_catalog.pg_extension_config_dump('dp_internal.columns', '');
SELECT pg_catalog.pg_extension_config_dump('dp_internal.budgets', '');
SELECT pg_catalog.pg_extension_config_dump('dp_internal.ledger', '');
SELECT pg_catalog.pg_extension_config_dump('dp_internal.ledger_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('dp_internal.dataset_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('dp_internal.answer_log', '');
SELECT pg_catalog.pg_extension_config_dump('dp_internal.answer_log_id_seq', '');

-- Who administers pg_dp: whoever may write its catalog (superusers, and roles the
-- DBA grants UPDATE on dp_internal.datasets).
CREATE FUNCTION dp_internal.is_admin() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT has_table_privilege('dp_internal.datasets', 'UPDATE') $$;

CREATE FUNCTION dp_internal.require_admin(action text) RETURNS void
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT dp_internal.is_admin() THEN
        RAISE EXCEPTION 'permission denied to %', action
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Only a pg_dp administrator (who may update dp_internal.datasets) can do this.';
    END IF;
END $$;
GRANT EXECUTE ON FUNCTION dp_internal.is_admin() TO PUBLIC;

-- views ------------------------------------------------------------------------

CREATE VIEW dp.datasets WITH (security_barrier) AS
SELECT d.name AS dataset, d.privacy_unit, d.max_rows_per_unit, d.max_groups_per_unit,
       d.epsilon_cap, d.delta_cap,
       -- what all roles together spent, and how often the data was written, are the DBA's to see:
       -- the data version counts writes exactly, the spend tells other analysts' questions
       CASE WHEN dp_internal.is_admin() THEN d.epsilon_spent END AS epsilon_spent,
       CASE WHEN dp_internal.is_admin() THEN d.delta_spent END AS delta_spent,
       CASE WHEN dp_internal.is_admin() THEN d.data_version END AS data_version,
       (SELECT array_agg(p.relid::regclass ORDER BY p.relid::regclass::text)
          FROM dp_internal.protected_tables p WHERE p.dataset = d.name) AS tables
FROM dp_internal.datasets d;

-- The number line of bounds (what dp_internal.columns stores): dates as days since 2000-01-01,
-- timestamps as seconds since its midnight (timestamptz: in UTC); infinite values stay infinite
-- (and dp.set_bounds refuses them).  No session setting enters these conversions.
CREATE FUNCTION dp_internal.date_line(d date) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN pg_catalog.isfinite(d) THEN (d - DATE '2000-01-01')::numeric
                  WHEN d > DATE '2000-01-01' THEN 'Infinity'::numeric ELSE '-Infinity'::numeric END $$;

CREATE FUNCTION dp_internal.timestamp_line(t timestamp) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.date_part('epoch'::text, t)::numeric - 946684800 $$;

CREATE FUNCTION dp_internal.timestamptz_line(t timestamptz) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.date_part('epoch'::text, t)::numeric - 946684800 $$;

-- A stored bound shown in its column's type (ISO spelling, UTC for timestamptz).
CREATE FUNCTION dp_internal.line_text(v numeric, typ oid) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE
    WHEN v IN ('Infinity', '-Infinity', 'NaN') THEN v::text
    WHEN typ = 'date'::regtype THEN pg_catalog.to_char(DATE '2000-01-01' + pg_catalog.floor(v)::integer, 'YYYY-MM-DD')
    WHEN typ = 'timestamp'::regtype THEN pg_catalog.to_char(TIMESTAMP '2000-01-01' + pg_catalog.make_interval(secs => v::float8), 'YYYY-MM-DD HH24:MI:SS')
    WHEN typ = 'timestamptz'::regtype THEN pg_catalog.to_char(TIMESTAMP '2000-01-01' + pg_catalog.make_interval(secs => v::float8), 'YYYY-MM-DD HH24:MI:SS') || '+00'
    ELSE v::text END $$;

CREATE VIEW dp.protected_columns WITH (security_barrier) AS
SELECT p.dataset, p.relid::regclass AS table_name, a.attname AS column_name,
       format_type(a.atttypid, a.atttypmod) AS data_type,
       p.unit_column = a.attname AS is_privacy_unit,
       c.lower_bound, c.upper_bound, c.public_values, c.values_source,
       dp_internal.line_text(c.lower_bound, base.oid) AS lower_value,
       dp_internal.line_text(c.upper_bound, base.oid) AS upper_value,
       c.step
FROM dp_internal.protected_tables p
JOIN pg_catalog.pg_attribute a ON a.attrelid = p.relid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_type base ON base.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN dp_internal.columns c ON c.relid = p.relid AND c.attname = a.attname;

CREATE VIEW dp.budgets WITH (security_barrier) AS
SELECT b.role::regrole AS role, b.dataset, b.epsilon_granted, b.delta_granted,
       b.epsilon_spent, b.delta_spent,
       b.epsilon_granted - b.epsilon_spent AS epsilon_remaining,
       b.delta_granted - b.delta_spent AS delta_remaining,
       b.default_epsilon, b.max_epsilon,
       CASE WHEN b.delta_granted > 0 THEN 'zCDP' ELSE 'pure epsilon' END AS accounting, b.rho_spent
FROM dp_internal.budgets b
WHERE b.role = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
   OR dp_internal.is_admin();

CREATE VIEW dp.ledger WITH (security_barrier) AS
SELECT l.id, l.role::regrole AS role, l.dataset, l.statement, l.mechanism, l.epsilon, l.delta,
       CASE WHEN dp_internal.is_admin() THEN l.data_version END AS data_version, l.at, l.rho, l.asked_epsilon
FROM dp_internal.ledger l
WHERE l.role = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
   OR dp_internal.is_admin();

-- What each answer measured and how wrong it may be, for the role that got it (a BI tool can chart it).
CREATE VIEW dp.my_answers WITH (security_barrier) AS
SELECT a.id, a.at, a.role::regrole AS role, a.dataset, a.statement, a.origin,
       -- a statement of several measurements is charged once: its charge shows on its first answer
       CASE WHEN f.first THEN l.epsilon ELSE 0 END AS epsilon,
       CASE WHEN f.first THEN l.delta ELSE 0 END AS delta,
       CASE WHEN f.first THEN l.rho ELSE 0 END AS rho,
       a.detail->>'mechanism' AS mechanism,
       a.detail->>'bounds' AS bounds,
       (a.detail->>'dropped_share')::float8 AS dropped_share,
       a.detail->'columns' AS columns,
       a.ledger_id
FROM dp_internal.answer_log a
LEFT JOIN dp_internal.ledger l ON l.id = a.ledger_id
CROSS JOIN LATERAL (SELECT a.origin = 'fresh' AND NOT EXISTS (SELECT 1 FROM dp_internal.answer_log o
                    WHERE o.ledger_id = a.ledger_id AND o.origin = 'fresh' AND o.id < a.id) AS first) f
WHERE a.role = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
   OR dp_internal.is_admin();

GRANT SELECT ON dp.datasets, dp.protected_columns, dp.budgets, dp.ledger, dp.my_answers TO PUBLIC;

-- Contribution bounds of a dataset: a number fixes it, NULL lets each question choose it from a DP
-- estimate (under the settings auto_max_rows_per_unit / auto_max_groups_per_unit).
CREATE FUNCTION dp.set_contribution_bounds(dataset text, max_rows_per_unit integer,
                                           max_groups_per_unit integer)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dp_internal.require_admin('set contribution bounds');
    IF max_rows_per_unit < 1 OR max_groups_per_unit < 1 THEN
        RAISE EXCEPTION 'contribution bounds must be at least 1, or NULL (chosen per question)'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'e.g. dp.set_contribution_bounds(''shop'', 20, 4), or NULL, NULL to let each question choose.';
    END IF;
    UPDATE dp_internal.datasets d SET max_rows_per_unit = set_contribution_bounds.max_rows_per_unit,
                                      max_groups_per_unit = set_contribution_bounds.max_groups_per_unit
    WHERE d.name = set_contribution_bounds.dataset;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dataset "%" does not exist', dataset
            USING ERRCODE = 'invalid_parameter_value', HINT = 'See dp.datasets.';
    END IF;
    -- the tables' own row bounds (dp.protect's max_rows_per_unit) follow: the dataset's is now theirs
    UPDATE dp_internal.protected_tables p SET max_rows_per_unit = set_contribution_bounds.max_rows_per_unit
    WHERE p.dataset = set_contribution_bounds.dataset;
END $$;

COMMENT ON TABLE dp_internal.settings IS 'pg_dp settings (changed by dp.set_setting): defaults, lock timeout, shadow schema, bounded copies';
COMMENT ON TABLE dp_internal.datasets IS 'Datasets: protected tables sharing a privacy unit, with contribution bounds, global caps and a data version';
COMMENT ON TABLE dp_internal.protected_tables IS 'Tables protected by pg_dp and the column naming their privacy unit';
COMMENT ON TABLE dp_internal.columns IS 'Public metadata of protected columns: clamping bounds, public value sets and grid steps';
COMMENT ON TABLE dp_internal.budgets IS 'Privacy budget per role and dataset: granted and spent epsilon/delta, exact numerics';
COMMENT ON TABLE dp_internal.ledger IS 'One row per DP release: who, what, which mechanism, what it cost';
COMMENT ON TABLE dp_internal.answers IS 'Released answers by statement and data version: the same question is answered again at no cost';
COMMENT ON FUNCTION dp_internal.is_admin() IS 'True for a pg_dp administrator (who may update dp_internal.datasets)';
COMMENT ON FUNCTION dp_internal.require_admin(text) IS 'Raises insufficient_privilege unless the caller is a pg_dp administrator';
COMMENT ON VIEW dp.datasets IS 'Datasets, their tables, contribution bounds and caps; what was spent and the data version (it counts writes) for administrators only';
COMMENT ON VIEW dp.protected_columns IS 'Columns of protected tables with their public bounds (on the number line, and as values of the column''s type) and value sets';
COMMENT ON FUNCTION dp_internal.date_line(date) IS 'A date on the bounds'' number line: days since 2000-01-01';
COMMENT ON FUNCTION dp_internal.timestamp_line(timestamp) IS 'A timestamp on the bounds'' number line: seconds since 2000-01-01 00:00';
COMMENT ON FUNCTION dp_internal.timestamptz_line(timestamptz) IS 'A timestamptz on the bounds'' number line: seconds since 2000-01-01 00:00 UTC';
COMMENT ON FUNCTION dp_internal.line_text(numeric, oid) IS 'A stored bound written as a value of its column''s type';
COMMENT ON VIEW dp.budgets IS 'Privacy budgets: an analyst sees their own, an administrator all';
COMMENT ON VIEW dp.ledger IS 'Releases charged to budgets: an analyst sees their own, an administrator all';
COMMENT ON VIEW dp.my_answers IS 'Analyst: every answer I was given (fresh, from the cache, a synthetic copy or a public key set): what it measured, its charge, its 95% intervals, the contribution bounds used and the estimated share of rows bounding dropped';
COMMENT ON TABLE dp_internal.dataset_secrets IS 'Per dataset, the secret seed of the random choice of rows a privacy unit keeps under bounding (owner only)';
COMMENT ON TABLE dp_internal.contribution_estimates IS 'DP estimates of per-unit contributions per table, key set and data version: the bounds questions choose and the share they drop';
COMMENT ON TABLE dp_internal.answer_log IS 'Every answer given to a role, fresh, cached or synthetic, with what it measured (dp.my_answers)';
COMMENT ON SEQUENCE dp_internal.answer_log_id_seq IS 'Ids of dp_internal.answer_log rows';
COMMENT ON FUNCTION dp.set_contribution_bounds(text, integer, integer) IS 'DBA: fix a dataset''s rows (for all its tables) and groups per privacy unit, or NULL to let each question choose them from a DP estimate';
COMMENT ON SEQUENCE dp_internal.ledger_id_seq IS 'Ids of dp_internal.ledger rows';

-- Secrets only the extension owner reads: the key of bounded copies' names (gateway/bounded.py),
-- so that pg_class, which every role reads, does not tell which table and GROUP BY columns
-- another analyst asked about.  Drawn once per database at CREATE EXTENSION.
CREATE TABLE dp_internal.secrets (
    key    text PRIMARY KEY,
    value  text NOT NULL
);
REVOKE ALL ON dp_internal.secrets FROM PUBLIC;
INSERT INTO dp_internal.secrets VALUES
    ('copy_names', pg_catalog.replace(pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text, '-', ''));
COMMENT ON TABLE dp_internal.secrets IS 'Secrets only the extension owner reads: the key of bounded copies'' names in pg_class';
