-- pg_dp install script, assembled by the Makefile from sql/*.sql.
\echo Use "CREATE EXTENSION pg_dp CASCADE" to load this file. \quit

COMMENT ON SCHEMA dp IS 'pg_dp: differentially private aggregates, budgets and synthetic data';
GRANT USAGE ON SCHEMA dp TO PUBLIC;

-- Types and support functions live apart, so that \df dp.* lists what users call.
CREATE SCHEMA dp_internal;
COMMENT ON SCHEMA dp_internal IS 'pg_dp internals: aggregate states and support functions (not called directly)';
GRANT USAGE ON SCHEMA dp_internal TO PUBLIC;
