/*
 * citus.h -- what pg_dp does on a database with Citus.
 *
 * citus.c: the parse hook's rewrite of dp_* aggregate calls (called by the
 * plain-SQL hook, sql_hook/hook.c).  wrappers.c: recognising Citus's wrappers
 * around a distributed aggregate (called by the aggregates, aggregates/params.c).
 */
#ifndef PG_DP_CITUS_H
#define PG_DP_CITUS_H

#include "nodes/parsenodes.h"
#include "nodes/primnodes.h"

/* citus.c */
extern bool pg_dp_citus_internal_connection(void);
extern void pg_dp_citus_rewrite_counts(Query *query);

/* wrappers.c */
typedef enum CitusAggWrapper
{
	CITUS_NONE,
	CITUS_WORKER_PARTIAL,		/* worker_partial_agg(agg, arg | ROW(args...)) on a worker */
	CITUS_COORD_COMBINE			/* coord_combine_agg(agg, partial, NULL::result) on the coordinator */
} CitusAggWrapper;

extern CitusAggWrapper dp_citus_agg_wrapper(Aggref *aggref);
extern List *dp_citus_partial_args(Aggref *aggref);

#endif
