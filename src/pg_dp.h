/*
 * pg_dp.h -- pg_dp's settings (GUCs, defined in pg_dp.c) and what each part of
 * the library installs when it is loaded.
 *
 * The parts of src/ (docs/ARCHITECTURE.md):
 *   aggregates/  the dp_* aggregates: states, transition/combine/final functions,
 *                one table of their parameters (layout.c)
 *   worker/      the privileged executor: the session side, the worker side,
 *                warm spares, the front doors (dp.query rows)
 *   sql_hook/    plain SQL of restricted roles -> the gateway (parse-analysis hook)
 *   citus/       what pg_dp does on Citus
 */
#ifndef PG_DP_H
#define PG_DP_H

#include "postgres.h"

/* pg_dp.epsilon: the epsilon of a DP statement that gives none (0: the role's default) */
extern double dp_session_epsilon;

/* pg_dp.executor_spares: warm executors kept waiting per database */
extern int	dp_executor_spares;

/* The pool (only with pg_dp in shared_preload_libraries; worker/pool.c) */
extern int	dp_pool_executors;			/* pg_dp.executors */
extern int	dp_pool_synthesis_executors;	/* pg_dp.synthesis_executors */
extern int	dp_role_concurrency;		/* pg_dp.role_concurrency */
extern int	dp_role_queue;				/* pg_dp.role_queue */
extern double dp_free_requests_per_second;	/* pg_dp.free_requests_per_second */

/* pg_dp.citus_native_aggregates: dp_count/dp_sum/dp_avg as native count/sum on Citus */
extern bool dp_citus_native_aggregates;

/* sql_hook/hook.c: the post-parse-analysis hook */
extern void dp_sql_hook_install(void);

#endif
