-- pg_dp install script, assembled by the Makefile from extension/*.sql.
\echo Use "CREATE EXTENSION pg_dp CASCADE" to load this file. \quit

COMMENT ON SCHEMA dp IS 'pg_dp: differentially private aggregates, budgets and synthetic data';
GRANT USAGE ON SCHEMA dp TO PUBLIC;
