/*
 * pg_dp.c -- the library's entry point: its settings (GUCs), the hook it
 * installs when loaded (session_preload_libraries or shared_preload_libraries,
 * or on first use of a pg_dp function), and, in shared_preload_libraries, the
 * executor pool's shared memory and executors (worker/pool.c).
 *
 * Settings a role can change never weaken privacy: budgets, bounds and the
 * per-statement maximum live in catalog tables that only administrators write.
 */
#include "postgres.h"

#include <unistd.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "pg_dp.h"
#include "worker/pool.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

double		dp_session_epsilon = 0;
int			dp_executor_spares = 1;
bool		dp_citus_native_aggregates = true;
int			dp_pool_executors = 3;
int			dp_pool_synthesis_executors = 1;
int			dp_role_concurrency = 1;
int			dp_role_queue = 64;
double		dp_free_requests_per_second = 20;

/* Processors of this machine, for the pool's defaults. */
static int
processors(void)
{
	long		n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (int) Min(n, 64);
}

/*
 * The pool: its size is fixed when the server starts; the limits per role
 * apply at once after a reload.  Defaults from the processors: one executor
 * more than there are processors (one may wait for I/O), and all executors but
 * one for any one role, so that another role always finds one free.
 */
static void
define_pool_settings(void)
{
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomIntVariable("pg_dp.executors",
								"Executors of the pool that answer pg_dp questions (pg_dp in shared_preload_libraries).",
								"Each is a background worker (max_worker_processes) of about 100 MB once warm; "
								"the default is the number of processors plus one, within max_worker_processes - 3.",
								&dp_pool_executors, Max(1, Min(processors() + 1, max_worker_processes - 3)), 1, 64,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);
		DefineCustomIntVariable("pg_dp.synthesis_executors",
								"Executors of the pool that run dp_synthesize and evaluations, at most one run each.",
								"Synthesis runs take up to a few GB each; they never use the question executors. "
								"A synthesis executor returns its memory after each run.",
								&dp_pool_synthesis_executors, 1, 1, 16, PGC_POSTMASTER, 0, NULL, NULL, NULL);
	}
	DefineCustomIntVariable("pg_dp.role_concurrency",
							"Questions of one role that the pool's executors answer at the same time.",
							"More wait in the queue, which serves the roles in turn. The default is "
							"pg_dp.executors - 1 (at least 1): another role always finds an executor.",
							&dp_role_concurrency, Max(1, dp_pool_executors - 1), 1, 64, PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pg_dp.role_queue",
							"Requests of one role that may wait for an executor of the pool.",
							"A request beyond it is refused (SQLSTATE 53000).",
							&dp_role_queue, 64, 1, 100000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomRealVariable("pg_dp.free_requests_per_second",
							 "Free pg_dp requests (dp.cost, dp.explain, refused questions) one role may send per second.",
							 "Beyond it (with a burst of twice as many) the role's requests wait for their turn "
							 "in its own sessions, and are refused when that would take more than 10 s; 0: no limit.",
							 &dp_free_requests_per_second, 20, 0, 1e6, PGC_SIGHUP, 0, NULL, NULL, NULL);
}

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
	define_pool_settings();
	MarkGUCPrefixReserved("pg_dp");
	dp_sql_hook_install();
	if (process_shared_preload_libraries_in_progress)
	{
		if (dp_pool_executors + dp_pool_synthesis_executors > max_worker_processes)
			ereport(WARNING,
					(errmsg("pg_dp: %d executors do not fit in max_worker_processes = %d",
							dp_pool_executors + dp_pool_synthesis_executors, max_worker_processes),
					 errhint("Raise max_worker_processes, or lower pg_dp.executors and pg_dp.synthesis_executors.")));
		dp_pool_init();
	}

}
