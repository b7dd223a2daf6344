/*
 * pg_dp.c -- the library's entry point: its settings (GUCs) and the hook it
 * installs when loaded (session_preload_libraries or shared_preload_libraries,
 * or on first use of a pg_dp function).
 *
 * Settings a role can change never weaken privacy: budgets, bounds and the
 * per-statement maximum live in catalog tables that only administrators write.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "pg_dp.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

double		dp_session_epsilon = 0;
int			dp_executor_spares = 1;
bool		dp_citus_native_aggregates = true;

void
_PG_init(void)
{
	DefineCustomRealVariable("pg_dp.epsilon",
							 "Epsilon of a DP statement that gives none (0: the role's default).",
							 "Within the maximum the DBA set for the role (dp.set_query_epsilon); "
							 "every release is charged.",
							 &dp_session_epsilon, 0, 0, 1e6, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("pg_dp.citus_native_aggregates",
							 "On Citus, run dp_count/dp_sum/dp_avg as native count/sum on the workers.",
							 "Off: through Citus's worker_partial_agg (about 2x slower); the same release either way.",
							 &dp_citus_native_aggregates, true, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pg_dp.executor_spares",
							"Warm pg_dp executors kept waiting per database for new sessions.",
							"Each holds a background-worker slot and a connection to its database "
							"until a new session adopts it or it has idled for a minute; 0 turns "
							"them off (each session then waits for its executor to start).",
							&dp_executor_spares, 1, 0, 8, PGC_SUSET, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("pg_dp");
	dp_sql_hook_install();
}
