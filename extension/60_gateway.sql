-- The DP query gateway: analysts without SELECT on protected tables ask DP
-- questions in SQL.  The front-door functions are SECURITY DEFINER with a
-- pinned search_path; they parse (pglast), validate, rewrite, charge the
-- budget in an autonomous transaction, run the rewrite, add OpenDP noise.

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

CREATE FUNCTION dp_internal.outer_user() RETURNS oid
    AS 'MODULE_PATHNAME', 'dp_outer_user' LANGUAGE C STABLE STRICT PARALLEL SAFE;

-- Runs on the loopback connection, i.e. in its own transaction that commits
-- before any answer is computed: ROLLBACK in the caller cannot undo it.
CREATE FUNCTION dp_internal.charge(p_role oid, p_dataset text, p_epsilon numeric, p_delta numeric,
                                   p_statement text, p_mechanism text, p_data_version bigint,
                                   p_cache_key text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
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

CREATE FUNCTION dp_internal.store_answer(p_cache_key text, p_dataset text, p_data_version bigint,
                                         p_columns jsonb, p_rows jsonb, p_ledger_id bigint)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO dp_internal.answers (cache_key, dataset, data_version, columns, rows, ledger_id)
    VALUES (p_cache_key, p_dataset, p_data_version, p_columns, p_rows, p_ledger_id)
    ON CONFLICT (cache_key) DO NOTHING
$$;
REVOKE ALL ON FUNCTION dp_internal.charge(oid, text, numeric, numeric, text, text, bigint, text),
    dp_internal.store_answer(text, text, bigint, jsonb, jsonb, bigint) FROM PUBLIC;

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
LANGUAGE plpython3u VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
from pg_dp.db import call
from pg_dp.gateway import query_rows
return call(query_rows, sql, epsilon, delta)
$$;

CREATE FUNCTION dp.query_json(sql text, epsilon double precision DEFAULT NULL, delta double precision DEFAULT NULL)
RETURNS SETOF jsonb
LANGUAGE plpython3u VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
from pg_dp.db import call
from pg_dp.gateway import query_json
return call(query_json, sql, epsilon, delta)
$$;

CREATE FUNCTION dp.cost(sql text, epsilon double precision DEFAULT NULL, delta double precision DEFAULT NULL,
                        OUT dataset text, OUT epsilon_cost numeric, OUT delta_cost numeric,
                        OUT cached boolean, OUT epsilon_remaining numeric, OUT delta_remaining numeric)
LANGUAGE plpython3u STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
from pg_dp.db import call
from pg_dp.gateway import cost
return call(cost, sql, epsilon, delta)
$$;

CREATE FUNCTION dp.explain(sql text, epsilon double precision DEFAULT NULL, delta double precision DEFAULT NULL)
RETURNS TABLE (column_name text, data_type text, mechanism text, epsilon numeric, delta numeric,
               noise_scale double precision, ci95 double precision, note text)
LANGUAGE plpython3u STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
from pg_dp.db import call
from pg_dp.gateway import explain
return call(explain, sql, epsilon, delta)
$$;

CREATE FUNCTION dp.my_budget()
RETURNS TABLE (dataset text, epsilon_granted numeric, epsilon_spent numeric, epsilon_remaining numeric,
               delta_granted numeric, delta_spent numeric, delta_remaining numeric)
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT b.dataset, b.epsilon_granted, b.epsilon_spent, b.epsilon_remaining,
           b.delta_granted, b.delta_spent, b.delta_remaining
    FROM dp.budgets b
    WHERE b.role = current_user::regrole
    ORDER BY b.dataset
$$;

-- A typed view over the gateway: reading it asks the question (answered from
-- the cache, at no cost, while the data does not change).
CREATE FUNCTION dp.create_view(view_name text, sql text, epsilon double precision DEFAULT NULL,
                               delta double precision DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $$
-- no pinned search_path: the view goes where the caller's unqualified names go
DECLARE
    coldefs text;
    qualified text;
BEGIN
    SELECT pg_catalog.string_agg(pg_catalog.format('%I %s', e.column_name, e.data_type), ', ' ORDER BY ord)
    INTO coldefs
    FROM dp.explain(sql, epsilon, delta) WITH ORDINALITY AS e(column_name, data_type, mechanism, epsilon,
                                                              delta, noise_scale, ci95, note, ord);
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(part), '.') INTO qualified
    FROM pg_catalog.unnest(pg_catalog.parse_ident(view_name)) part;
    EXECUTE pg_catalog.format('CREATE VIEW %s AS SELECT * FROM dp.query(%L, %L, %L) AS answer(%s)',
                   qualified, sql, epsilon, delta, coldefs);
END $$;

CREATE FUNCTION dp.dummy(table_name regclass, row_count integer DEFAULT 1000, seed integer DEFAULT 1)
RETURNS text
LANGUAGE plpython3u VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
from pg_dp.db import call
from pg_dp.dummy import make_dummy
return call(make_dummy, table_name, row_count, seed)
$$;

GRANT EXECUTE ON FUNCTION dp.query(text, double precision, double precision), dp.query_json(text, double precision, double precision),
    dp.cost(text, double precision, double precision), dp.explain(text, double precision, double precision), dp.my_budget(),
    dp.create_view(text, text, double precision, double precision), dp.dummy(regclass, integer, integer) TO PUBLIC;

COMMENT ON AGGREGATE dp_internal.exact_sum(double precision, double precision, double precision) IS 'Internal: exact clamped sum state for the gateway (no noise; not executable by users)';
COMMENT ON AGGREGATE dp_internal.exact_var(double precision, double precision, double precision) IS 'Internal: exact clamped moments state for the gateway (no noise; not executable by users)';
COMMENT ON AGGREGATE dp_internal.exact_quantile(double precision, double precision, double precision, double precision) IS 'Internal: exact quantile histogram state for the gateway (no noise; not executable by users)';
COMMENT ON TABLE dp_internal.bounded_copies IS 'Copies of protected tables with contribution-bounding ranks, one per GROUP BY column set and data version';
COMMENT ON FUNCTION dp_internal.outer_user() IS 'The role outside any SECURITY DEFINER function: whose budget the gateway charges';
COMMENT ON FUNCTION dp_internal.charge(oid, text, numeric, numeric, text, text, bigint, text) IS 'Internal: charge a budget and write the ledger (runs in its own transaction on the loopback connection)';
COMMENT ON FUNCTION dp_internal.store_answer(text, text, bigint, jsonb, jsonb, bigint) IS 'Internal: keep a released answer for the cache (loopback connection)';
COMMENT ON FUNCTION dp.query(text, double precision, double precision) IS 'Analyst: answer a SELECT over a protected table with DP, charging the budget once; needs a column definition list: AS t(col type, ...)';
COMMENT ON FUNCTION dp.query_json(text, double precision, double precision) IS 'Analyst: like dp.query, one JSON object per row (no column definition list needed)';
COMMENT ON FUNCTION dp.cost(text, double precision, double precision) IS 'Analyst: what a query would cost, whether it is cached, and the budget left; spends nothing';
COMMENT ON FUNCTION dp.explain(text, double precision, double precision) IS 'Analyst: per output column, type, mechanism, epsilon, noise scale and 95% interval; spends nothing';
COMMENT ON FUNCTION dp.my_budget() IS 'Analyst: my budgets per dataset: granted, spent, remaining';
COMMENT ON FUNCTION dp.create_view(text, text, double precision, double precision) IS 'Analyst: create a typed view that answers a DP query (cached while the data is unchanged)';
COMMENT ON FUNCTION dp.dummy(regclass, integer, integer) IS 'Analyst: a TEMP table shaped like a protected table, filled from public metadata only (zero cost), to debug SQL';
