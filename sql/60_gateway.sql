-- The DP query gateway: analysts without SELECT on protected tables ask DP
-- questions in SQL.  The front doors run with the caller's rights and hand
-- the question to the privileged executor, which parses it (pglast), checks,
-- rewrites, charges the budget in a transaction it commits first, runs the
-- rewrite with pinned settings and adds OpenDP noise.

-- Exact per-group statistics for the gateway's rewrite (no noise: not for users).
CREATE AGGREGATE dp_internal.exact_sum(double precision, double precision, double precision) (
    SFUNC = dp_internal.sum_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, PARALLEL = SAFE);
CREATE AGGREGATE dp_internal.exact_var(double precision, double precision, double precision) (
    SFUNC = dp_internal.var_trans, STYPE = dp_internal.sum_state,
    COMBINEFUNC = dp_internal.sum_state_combine, PARALLEL = SAFE);
CREATE AGGREGATE dp_internal.exact_quantile(double precision, double precision, double precision, double precision) (
    SFUNC = dp_internal.quantile_trans, STYPE = dp_internal.hist_state,
    COMBINEFUNC = dp_internal.hist_state_combine, PARALLEL = SAFE);
REVOKE ALL ON FUNCTION dp_internal.exact_sum(double precision, double precision, double precision),
    dp_internal.exact_var(double precision, double precision, double precision),
    dp_internal.exact_quantile(double precision, double precision, double precision, double precision)
FROM PUBLIC;


-- The privileged executor (src/worker/): with pg_dp in shared_preload_libraries,
-- a pool of background workers shared by every session (src/worker/pool.c);
-- otherwise a background worker per analyst session.  Either is connected as the
-- extension owner; the analyst's backend hands it a request and receives only
-- the released answer.  The role checked and charged is the caller's, taken from
-- the backend's state, never from an argument.
CREATE FUNCTION dp_internal.executor_call(kind text, payload text) RETURNS text
    AS 'MODULE_PATHNAME', 'dp_executor_call' LANGUAGE C VOLATILE PARALLEL UNSAFE;
GRANT EXECUTE ON FUNCTION dp_internal.executor_call(text, text) TO PUBLIC;

CREATE FUNCTION dp_internal.executor_pid() RETURNS integer
    AS 'MODULE_PATHNAME', 'dp_executor_pid' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dp_internal.executor_retire() RETURNS void
    AS 'MODULE_PATHNAME', 'dp_executor_retire' LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION dp_internal.executor_retire() FROM PUBLIC;

-- The relations a request reads, locked by oid before they are checked and again at each later
-- phase of the request (src/worker/pins.c, core/catalog.py: pin), so that nobody can replace one
-- between the check and the read.
CREATE FUNCTION dp_internal.lock_relations(oids oid[]) RETURNS void
    AS 'MODULE_PATHNAME', 'dp_lock_relations' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION dp_internal.lock_relations(oid[]) FROM PUBLIC;

-- What runs the requests: the pool and its settings, its executors, its account of each role.
CREATE FUNCTION dp_internal.executor_mode() RETURNS text
    AS 'MODULE_PATHNAME', 'dp_executor_mode' LANGUAGE C VOLATILE PARALLEL SAFE;
GRANT EXECUTE ON FUNCTION dp_internal.executor_mode() TO PUBLIC;
CREATE FUNCTION dp_internal.executor_pool(OUT lane text, OUT executor integer, OUT pid integer, OUT state text,
                                          OUT database oid, OUT role oid, OUT busy_ms double precision,
                                          OUT served bigint)
RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'dp_executor_pool' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dp_internal.executor_roles(OUT role oid, OUT running integer, OUT queued integer, OUT served bigint,
                                           OUT throttled bigint, OUT refused bigint, OUT free_tokens double precision)
RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'dp_executor_roles' LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION dp_internal.executor_pool(), dp_internal.executor_roles() FROM PUBLIC;

CREATE FUNCTION dp.executor_pool()
RETURNS TABLE (lane text, executor integer, pid integer, state text, database name, serving_role name,
               busy_ms double precision, served bigint)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dp_internal.require_admin('see the executor pool');
    RETURN QUERY
        SELECT p.lane, p.executor, p.pid, p.state, d.datname, a.rolname, p.busy_ms, p.served
        FROM dp_internal.executor_pool() p
        LEFT JOIN pg_catalog.pg_database d ON d.oid = p.database
        LEFT JOIN pg_catalog.pg_authid a ON a.oid = p.role
        ORDER BY 1 DESC, 2;
END $$;

CREATE FUNCTION dp.executor_roles()
RETURNS TABLE (role_name name, running integer, queued integer, served bigint, throttled bigint, refused bigint,
               free_tokens double precision)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dp_internal.require_admin('see the executor pool');
    RETURN QUERY
        SELECT a.rolname, r.running, r.queued, r.served, r.throttled, r.refused, r.free_tokens
        FROM dp_internal.executor_roles() r
        LEFT JOIN pg_catalog.pg_authid a ON a.oid = r.role
        ORDER BY 1;
END $$;
REVOKE ALL ON FUNCTION dp.executor_pool(), dp.executor_roles() FROM PUBLIC;

-- The engine's entry point, called by the executor only (pg_dp.executor).
CREATE FUNCTION dp_internal.executor_handle(role oid, kind text, payload text) RETURNS text
LANGUAGE plpython3u VOLATILE
AS $$
from pg_dp.executor import handle
return handle(role, kind, payload)
$$;
REVOKE ALL ON FUNCTION dp_internal.executor_handle(oid, text, text) FROM PUBLIC;

-- Charging, in the executor's transaction that commits before the answer is computed.
CREATE FUNCTION dp_internal.charge(p_role oid, p_dataset text, p_epsilon numeric, p_delta numeric,
                                   p_statement text, p_mechanism text, p_data_version bigint,
                                   p_cache_key text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b dp_internal.budgets;
    d dp_internal.datasets;
    ledger_id bigint;
BEGIN
    SELECT * INTO b FROM dp_internal.budgets
    WHERE role = p_role AND dataset = p_dataset FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'no budget';
    END IF;
    IF b.epsilon_spent + p_epsilon > b.epsilon_granted OR b.delta_spent + p_delta > b.delta_granted THEN
        RETURN format('insufficient budget: this query costs epsilon %s, delta %s; remaining epsilon %s, delta %s',
                      p_epsilon, p_delta, b.epsilon_granted - b.epsilon_spent, b.delta_granted - b.delta_spent);
    END IF;
    SELECT * INTO d FROM dp_internal.datasets WHERE name = p_dataset;
    IF d.epsilon_cap IS NOT NULL OR d.delta_cap IS NOT NULL THEN
        SELECT * INTO d FROM dp_internal.datasets WHERE name = p_dataset FOR UPDATE;
        IF d.epsilon_spent + p_epsilon > coalesce(d.epsilon_cap, 'Infinity')
           OR d.delta_spent + p_delta > coalesce(d.delta_cap, 'Infinity') THEN
            RETURN format('dataset cap reached: all roles together may spend epsilon %s on %s',
                          d.epsilon_cap, p_dataset);
        END IF;
    END IF;
    UPDATE dp_internal.budgets SET epsilon_spent = epsilon_spent + p_epsilon,
                                   delta_spent = delta_spent + p_delta
    WHERE role = p_role AND dataset = p_dataset;
    UPDATE dp_internal.datasets SET epsilon_spent = epsilon_spent + p_epsilon,
                                    delta_spent = delta_spent + p_delta
    WHERE name = p_dataset AND (epsilon_cap IS NOT NULL OR delta_cap IS NOT NULL);
    INSERT INTO dp_internal.ledger (role, dataset, statement, mechanism, epsilon, delta, data_version, cache_key)
    VALUES (p_role, p_dataset, p_statement, p_mechanism, p_epsilon, p_delta, p_data_version, p_cache_key)
    RETURNING id INTO ledger_id;
    RETURN 'ok ' || ledger_id;
END $$;
REVOKE ALL ON FUNCTION dp_internal.charge(oid, text, numeric, numeric, text, text, bigint, text) FROM PUBLIC;

-- dp.create_view keeps the question here, not in the view's definition (pg_views is public).
CREATE TABLE dp_internal.views (
    id       bigserial PRIMARY KEY,
    owner    oid NOT NULL,
    sql      text NOT NULL,
    epsilon  double precision,
    delta    double precision,
    view     oid UNIQUE,                 -- the view reading dp.view_answer(id), once created
    created_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON dp_internal.views FROM PUBLIC;
REVOKE ALL ON SEQUENCE dp_internal.views_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('dp_internal.views', '');
SELECT pg_catalog.pg_extension_config_dump('dp_internal.views_id_seq', '');

-- front doors ---------------------------------------------------------------

-- Bounded copies (python_udfs/pg_dp/bounded.py): per protected table and GROUP BY
-- column set, the table with its contribution-bounding ranks, rebuilt when the
-- data version changes, so that bounded queries run at native speed.
INSERT INTO dp_internal.settings VALUES
    ('bounded_copies', '4');                   -- bounded copies kept per table; 0 = bound every query itself
CREATE TABLE dp_internal.bounded_copies (
    relid         oid NOT NULL,
    keys          text NOT NULL,               -- the GROUP BY columns, comma-separated
    relname       name NOT NULL,               -- dp_internal.<relname>
    data_version  bigint NOT NULL,
    columns       text NOT NULL,               -- the table's columns when built (ALTER TABLE: rebuild)
    built_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_used     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (relid, keys)
);
REVOKE ALL ON dp_internal.bounded_copies FROM PUBLIC;

CREATE FUNCTION dp.query(sql text, epsilon double precision DEFAULT NULL, delta double precision DEFAULT NULL)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dp_query' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- dp.query for a statement with $n parameters: what the plain-SQL hook (src/sql_hook/hook.c) writes
-- for a prepared statement; `numbers` says which $n each further argument is.
CREATE FUNCTION dp_internal.query_params(sql text, numbers integer[], VARIADIC params "any")
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dp_query_params' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- The DP measurements of one plain-SQL statement (src/worker/measure.c): the plain-SQL hook writes
-- one call per measurement; the first call of an execution asks the executor for all of them
-- (one charge for the statement), the others take their part.
CREATE FUNCTION dp_internal.measure(statement text, i integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dp_measure' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dp_internal.measure_params(statement text, i integer, numbers integer[], VARIADIC params "any")
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dp_measure_params' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dp.query_json(sql text, epsilon double precision DEFAULT NULL, delta double precision DEFAULT NULL)
RETURNS SETOF jsonb
LANGUAGE sql VOLATILE SECURITY INVOKER PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_array_elements(dp_internal.executor_call('query_json',
        pg_catalog.json_build_object('sql', sql, 'epsilon', epsilon, 'delta', delta, 'session_epsilon',
        NULLIF(pg_catalog.current_setting('pg_dp.epsilon', true), '0'),
        'timezone', pg_catalog.current_setting('TimeZone'))::text)::jsonb)
$$;

-- Result rows of dp.cost, dp.explain and dp.my_budget as named types, so that
-- \df dp.* shows one word for each (not every column).
CREATE TYPE dp.cost_estimate AS (dataset text, epsilon_cost numeric, delta_cost numeric, cached boolean,
                                 epsilon_remaining numeric, delta_remaining numeric);
CREATE TYPE dp.explain_line AS (column_name text, data_type text, mechanism text, epsilon numeric,
                                delta numeric, noise_scale double precision, ci95 double precision, note text);
CREATE TYPE dp.budget_line AS (dataset text, epsilon_granted numeric, epsilon_spent numeric,
                               epsilon_remaining numeric, delta_granted numeric, delta_spent numeric,
                               delta_remaining numeric, default_epsilon numeric, max_epsilon numeric);

CREATE FUNCTION dp.cost(sql text, epsilon double precision DEFAULT NULL, delta double precision DEFAULT NULL)
RETURNS dp.cost_estimate
LANGUAGE sql VOLATILE SECURITY INVOKER PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.dataset, r.epsilon_cost, r.delta_cost, r.cached, r.epsilon_remaining, r.delta_remaining
    FROM pg_catalog.jsonb_to_record(dp_internal.executor_call('cost',
        pg_catalog.json_build_object('sql', sql, 'epsilon', epsilon, 'delta', delta, 'session_epsilon',
            NULLIF(pg_catalog.current_setting('pg_dp.epsilon', true), '0'),
            'timezone', pg_catalog.current_setting('TimeZone'))::text)::jsonb)
        AS r(dataset text, epsilon_cost numeric, delta_cost numeric, cached boolean,
             epsilon_remaining numeric, delta_remaining numeric)
$$;

CREATE FUNCTION dp.explain(sql text, epsilon double precision DEFAULT NULL, delta double precision DEFAULT NULL)
RETURNS SETOF dp.explain_line
LANGUAGE sql VOLATILE SECURITY INVOKER PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.column_name, r.data_type, r.mechanism, r.epsilon, r.delta, r.noise_scale, r.ci95, r.note
    FROM pg_catalog.jsonb_to_recordset(dp_internal.executor_call('explain',
        pg_catalog.json_build_object('sql', sql, 'epsilon', epsilon, 'delta', delta, 'session_epsilon',
            NULLIF(pg_catalog.current_setting('pg_dp.epsilon', true), '0'),
            'timezone', pg_catalog.current_setting('TimeZone'))::text)::jsonb)
        AS r(column_name text, data_type text, mechanism text, epsilon numeric, delta numeric,
             noise_scale double precision, ci95 double precision, note text)
$$;

CREATE FUNCTION dp.my_budget()
RETURNS SETOF dp.budget_line
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT b.dataset, b.epsilon_granted, b.epsilon_spent, b.epsilon_remaining,
           b.delta_granted, b.delta_spent, b.delta_remaining, b.default_epsilon, b.max_epsilon
    FROM dp.budgets b
    WHERE b.role = current_user::regrole
    ORDER BY b.dataset
$$;

-- A typed view over the gateway: reading it asks the question (answered from
-- the cache, at no cost, while the data does not change).  The question is kept
-- in dp_internal.views; the view's definition shows only its id.
CREATE FUNCTION dp.view_answer(id bigint) RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dp_view_answer' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

CREATE FUNCTION dp.create_view(view_name text, sql text, epsilon double precision DEFAULT NULL,
                               delta double precision DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $$
-- no pinned search_path: the view goes where the caller's unqualified names go
DECLARE
    registered jsonb;
    qualified text;
BEGIN
    registered := dp_internal.executor_call('create_view',
        pg_catalog.json_build_object('sql', sql, 'epsilon', epsilon, 'delta', delta)::text)::jsonb;
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(part), '.') INTO qualified
    FROM pg_catalog.unnest(pg_catalog.parse_ident(view_name)) part;
    EXECUTE pg_catalog.format('CREATE VIEW %s AS SELECT * FROM dp.view_answer(%s) AS answer(%s)',
                   qualified, (registered->>'id')::bigint, registered->>'columns');
END $$;

CREATE FUNCTION dp.dummy(table_name regclass, row_count integer DEFAULT 1000, seed integer DEFAULT 1)
RETURNS text
LANGUAGE plpython3u VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
from pg_dp.core.db import call
from pg_dp.admin.dummy import make_dummy
return call(make_dummy, table_name, row_count, seed)
$$;

GRANT EXECUTE ON FUNCTION dp.query(text, double precision, double precision),
    dp_internal.query_params(text, integer[], "any"), dp.query_json(text, double precision, double precision),
    dp_internal.measure(text, integer), dp_internal.measure_params(text, integer, integer[], "any"),
    dp.view_answer(bigint),
    dp.cost(text, double precision, double precision), dp.explain(text, double precision, double precision), dp.my_budget(),
    dp.create_view(text, text, double precision, double precision), dp.dummy(regclass, integer, integer) TO PUBLIC;

COMMENT ON AGGREGATE dp_internal.exact_sum(double precision, double precision, double precision) IS 'Internal: exact clamped sum state for the gateway (no noise; not executable by users)';
COMMENT ON AGGREGATE dp_internal.exact_var(double precision, double precision, double precision) IS 'Internal: exact clamped moments state for the gateway (no noise; not executable by users)';
COMMENT ON AGGREGATE dp_internal.exact_quantile(double precision, double precision, double precision, double precision) IS 'Internal: exact quantile histogram state for the gateway (no noise; not executable by users)';
COMMENT ON TABLE dp_internal.bounded_copies IS 'Copies of protected tables with contribution-bounding ranks, one per GROUP BY column set and data version';
COMMENT ON FUNCTION dp_internal.charge(oid, text, numeric, numeric, text, text, bigint, text) IS 'Internal: charge a budget and write the ledger (run by the executor, in a transaction it commits before computing)';
COMMENT ON FUNCTION dp_internal.executor_call(text, text) IS 'Internal: hand a request of the current user to the privileged executor (the pool''s, or this session''s background worker); the front door of every dp.* analyst function';
COMMENT ON FUNCTION dp_internal.executor_mode() IS 'Internal: how requests are run (pool or one executor per session) and the pool''s settings, as JSON (dp.doctor)';
COMMENT ON FUNCTION dp_internal.executor_pool() IS 'Internal: the pool''s executors now (dp.executor_pool)';
COMMENT ON FUNCTION dp_internal.executor_roles() IS 'Internal: the pool''s account of each role: requests running and waiting, served, throttled, refused, free-request tokens (dp.executor_roles)';
COMMENT ON FUNCTION dp.executor_pool() IS 'DBA: the executors of the pool (pg_dp in shared_preload_libraries): lane, state, database, the role served now and for how long; no rows without the pool';
COMMENT ON FUNCTION dp.executor_roles() IS 'DBA: per role, the pool''s requests running and waiting, those served, throttled by the free-request rate limit and refused';
COMMENT ON FUNCTION dp_internal.lock_relations(oid[]) IS 'Internal: ACCESS SHARE locks on these relations and their children until the transaction ends (the executor pins what it checked, so nothing replaces it before the read)';
COMMENT ON FUNCTION dp_internal.executor_retire() IS 'Internal: in a per-session executor, leave after this request (its role holds no budget, so it keeps no worker slot); the pool''s executors stay';
COMMENT ON FUNCTION dp_internal.executor_pid() IS 'Internal: PID of this session''s executor (in the pool: the one that served its latest request), NULL when none runs';
COMMENT ON FUNCTION dp_internal.executor_handle(oid, text, text) IS 'Internal: the engine''s entry point, called by the executor for each phase of a request';
COMMENT ON TABLE dp_internal.views IS 'Questions behind dp.create_view views (kept here so that pg_views does not show them)';
COMMENT ON SEQUENCE dp_internal.views_id_seq IS 'Ids of dp_internal.views rows';
COMMENT ON FUNCTION dp.view_answer(bigint) IS 'Analyst: the DP answer behind a dp.create_view view (for roles that may read that view)';
COMMENT ON FUNCTION dp.query(text, double precision, double precision) IS 'Analyst: answer a SELECT over a protected table with DP, charging the budget once; needs a column definition list: AS t(col type, ...)';
COMMENT ON FUNCTION dp_internal.measure(text, integer) IS 'Internal: measurement i of a plain-SQL statement (the plain-SQL hook writes the call); all measurements of the statement are answered, and charged, together';
COMMENT ON FUNCTION dp_internal.measure_params(text, integer, integer[], "any") IS 'Internal: dp_internal.measure of a statement with $n parameters';
COMMENT ON FUNCTION dp_internal.query_params(text, integer[], "any") IS 'Internal: dp.query of a statement with $n parameters (the plain-SQL hook''s rewrite of prepared statements)';
COMMENT ON FUNCTION dp.query_json(text, double precision, double precision) IS 'Analyst: like dp.query, one JSON object per row (no column definition list needed)';
COMMENT ON FUNCTION dp.cost(text, double precision, double precision) IS 'Analyst: what a query would cost, whether it is cached, and the budget left; spends nothing';
COMMENT ON FUNCTION dp.explain(text, double precision, double precision) IS 'Analyst: per output column, type, mechanism, epsilon, noise scale and 95% interval; spends nothing';
COMMENT ON FUNCTION dp.my_budget() IS 'Analyst: my budgets per dataset: granted, spent, remaining';
COMMENT ON FUNCTION dp.create_view(text, text, double precision, double precision) IS 'Analyst: create a typed view that answers a DP query (cached while the data is unchanged)';
COMMENT ON FUNCTION dp.dummy(regclass, integer, integer) IS 'Analyst: a TEMP table shaped like a protected table, filled from public metadata only (zero cost), to debug SQL';
