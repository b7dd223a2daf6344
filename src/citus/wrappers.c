/*
 * wrappers.c -- Citus's wrappers around a distributed custom aggregate.
 *
 * Citus distributes a custom aggregate as worker_partial_agg(agg, arg) or
 * worker_partial_agg(agg, ROW(args...)) on the workers and
 * coord_combine_agg(agg, partial, NULL::result) on the coordinator (see
 * docs, "pg_dp on Citus").  The aggregates' parameter checks (aggregates/params.c)
 * ask here which of the two an Aggref is and what the original arguments are.
 */
#include "postgres.h"

#include "catalog/pg_namespace.h"
#include "nodes/makefuncs.h"
#include "utils/lsyscache.h"

#include "citus/citus.h"

/* Which wrapper an Aggref is, by the name of its function in pg_catalog (once per query, not per row). */
CitusAggWrapper
dp_citus_agg_wrapper(Aggref *aggref)
{
	char	   *name;
	CitusAggWrapper w = CITUS_NONE;

	if (list_length(aggref->args) < 2 ||
		!IsA(linitial_node(TargetEntry, aggref->args)->expr, Const) ||
		get_func_namespace(aggref->aggfnoid) != PG_CATALOG_NAMESPACE)
		return CITUS_NONE;
	name = get_func_name(aggref->aggfnoid);
	if (name != NULL && strcmp(name, "worker_partial_agg") == 0)
		w = CITUS_WORKER_PARTIAL;
	else if (name != NULL && strcmp(name, "coord_combine_agg") == 0)
		w = CITUS_COORD_COMBINE;
	return w;
}

/* The original arguments inside worker_partial_agg(agg, arg | ROW(args...)). */
List *
dp_citus_partial_args(Aggref *aggref)
{
	Expr	   *arg = lsecond_node(TargetEntry, aggref->args)->expr;
	List	   *out = NIL;
	ListCell   *lc;
	int			resno = 1;

	if (!IsA(arg, RowExpr))
		return list_make1(makeTargetEntry(arg, 1, NULL, false));
	foreach(lc, ((RowExpr *) arg)->args)
		out = lappend(out, makeTargetEntry((Expr *) lfirst(lc), resno++, NULL, false));
	return out;
}
