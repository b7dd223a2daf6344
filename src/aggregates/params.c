/*
 * params.c -- what a transition or final function knows about its call: its
 * aggregate's row (layout.c), and the privacy parameters, read from its own
 * arguments or, for a group no row reached, from the query's Aggref.
 *
 * The constancy of the parameters is checked on the Aggref once per query,
 * before the first row is accumulated.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "utils/lsyscache.h"

#include "aggregates/state.h"
#include "citus/citus.h"

/* The kind of the value argument, from the support function's declared argument types. */
static ColumnKind
column_kind(Oid fn)
{
	Oid		   *argtypes;
	int			nargs;

	(void) get_func_signature(fn, &argtypes, &nargs);
	if (nargs < 2)
		return COLUMN_ANY;
	switch (argtypes[1])
	{
		case FLOAT8OID:
			return COLUMN_FLOAT8;
		case INT4OID:
			return COLUMN_INT4;
		case INT8OID:
			return COLUMN_INT8;
		default:
			return COLUMN_ANY;
	}
}

DpCallCache *
dp_call_cache(FunctionCallInfo fcinfo)
{
	DpCallCache *cache = (DpCallCache *) fcinfo->flinfo->fn_extra;

	if (cache == NULL)
	{
		Oid			fn = fcinfo->flinfo->fn_oid;
		char	   *name = get_func_name(fn);
		const DpAggregate *agg = name ? dp_aggregate_by_kind(name) : NULL;

		if (agg == NULL)
			elog(ERROR, "pg_dp: %s is not a support function of a pg_dp aggregate", name ? name : "?");
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(DpCallCache));
		cache->agg = agg;
		cache->column = column_kind(fn);
		cache->integer_result = get_func_rettype(fn) == INT8OID;
		fcinfo->flinfo->fn_extra = cache;
	}
	return cache;
}

/*
 * Window use is refused: a moving frame would release many noisy answers over
 * overlapping rows, and parameters could not be checked for constancy.
 */
MemoryContext
dp_agg_context_or_error(FunctionCallInfo fcinfo, const char *aggname)
{
	MemoryContext aggctx;
	int			kind = AggCheckCallContext(fcinfo, &aggctx);

	if (kind == AGG_CONTEXT_WINDOW)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot be used as a window function", aggname),
				 errhint("Use it as a plain aggregate, with GROUP BY if needed.")));
	if (kind != AGG_CONTEXT_AGGREGATE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s called in non-aggregate context", aggname)));
	return aggctx;
}

/*
 * The aggregate's original argument list.  In a plain aggregation it is on
 * the Aggref; in the Finalize step of a partial (parallel) aggregation the
 * Aggref's only argument is a reference to the partial aggregate's output,
 * which is followed down the plan (Gather, Sort, Append) to the partial
 * Aggref that still has the arguments.  Under Citus's wrappers, the arguments
 * inside them (citus/wrappers.c).
 */
static List *
original_agg_args(FunctionCallInfo fcinfo)
{
	Aggref	   *aggref = AggGetAggref(fcinfo);
	Plan	   *plan;
	Expr	   *expr;

	if (aggref == NULL)
		return NIL;
	switch (dp_citus_agg_wrapper(aggref))
	{
		case CITUS_WORKER_PARTIAL:
			return dp_citus_partial_args(aggref);
		case CITUS_COORD_COMBINE:

			/*
			 * Only a group that no row reached on any worker gets here without
			 * a state, and the coordinator's plan no longer has the arguments.
			 */
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("a pg_dp aggregate over no rows of a distributed table cannot determine its privacy parameters"),
					 errhint("Add a GROUP BY, or ask through dp.query, which knows its parameters on Citus.")));
			break;
		case CITUS_NONE:
			break;
	}
	if (!DO_AGGSPLIT_COMBINE(aggref->aggsplit))
		return aggref->args;
	if (fcinfo->context == NULL || !IsA(fcinfo->context, AggState) ||
		list_length(aggref->args) != 1)
		return NIL;
	plan = ((AggState *) fcinfo->context)->ss.ps.plan;
	expr = linitial_node(TargetEntry, aggref->args)->expr;
	while (plan != NULL)
	{
		Plan	   *child = outerPlan(plan);
		Var		   *var;
		TargetEntry *tle;

		if (child == NULL && IsA(plan, Append) && ((Append *) plan)->appendplans != NIL)
			child = linitial(((Append *) plan)->appendplans);
		if (IsA(expr, Aggref))
			return ((Aggref *) expr)->args;
		if (!IsA(expr, Var) || child == NULL)
			return NIL;
		var = (Var *) expr;
		if (var->varno != OUTER_VAR && !IsA(plan, Append))
			return NIL;
		if (var->varattno < 1 || var->varattno > list_length(child->targetlist))
			return NIL;
		tle = list_nth_node(TargetEntry, child->targetlist, var->varattno - 1);
		expr = tle->expr;
		plan = child;
	}
	return NIL;
}

static Expr *
agg_arg_expr(List *args, int argno)
{
	return list_nth_node(TargetEntry, args, argno)->expr;
}

/* Evaluate a (checked) constant parameter expression in the aggregate's context. */
static float8
eval_param_float8(FunctionCallInfo fcinfo, const char *aggname, const char *what,
				  Expr *expr, bool *is_int, int64 *int_value)
{
	AggState   *aggstate = (AggState *) fcinfo->context;
	ExprState  *es;
	Datum		d;
	bool		isnull;
	Oid			type = exprType((Node *) expr);
	MemoryContext old;

	dp_check_param_constant(aggname, what, expr);
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	es = ExecInitExpr(expr, (PlanState *) aggstate);
	MemoryContextSwitchTo(old);
	d = ExecEvalExprSwitchContext(es, aggstate->ss.ps.ps_ExprContext, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s of %s must not be NULL", what, aggname),
				 errhint("Pass a number.")));
	if (is_int)
		*is_int = false;
	switch (type)
	{
		case INT2OID:
			d = Int64GetDatum((int64) DatumGetInt16(d));
			goto integer;
		case INT4OID:
			d = Int64GetDatum((int64) DatumGetInt32(d));
			goto integer;
		case INT8OID:
	integer:
			if (is_int)
			{
				*is_int = true;
				*int_value = DatumGetInt64(d);
			}
			return (float8) DatumGetInt64(d);
		case FLOAT4OID:
			return (float8) DatumGetFloat4(d);
		case FLOAT8OID:
			return DatumGetFloat8(d);
		default:
			elog(ERROR, "pg_dp: unexpected type %u for %s", type, what);
	}
	return 0;					/* keep compiler quiet */
}

/*
 * Parameters of an aggregate whose state holds nothing (no row reached the
 * transition function): read from the query itself.
 */
void
dp_params_from_query(FunctionCallInfo fcinfo, const DpAggregate *agg, DpParams *p)
{
	List	   *args;
	int			nargs,
				eps_arg;

	memset(p, 0, sizeof(*p));
	if (fcinfo->context == NULL || !IsA(fcinfo->context, AggState))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot be used as a window function", agg->name),
				 errhint("Use it as a plain aggregate, with GROUP BY if needed.")));
	args = original_agg_args(fcinfo);
	nargs = list_length(args);
	if (args == NIL && agg->base_nargs != -1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot determine its privacy parameters in this plan", agg->name),
				 errhint("Run the query without partitionwise or distributed aggregation.")));
	eps_arg = dp_aggregate_epsilon_arg(agg, nargs);
	p->epsilon = eps_arg >= 0
		? eval_param_float8(fcinfo, agg->name, "epsilon", agg_arg_expr(args, eps_arg), NULL, NULL)
		: DEFAULT_EPSILON;
	dp_validate_epsilon(agg->name, p->epsilon);
	if (agg->lower_arg >= 0)
	{
		bool		li,
					ui;

		p->lower = eval_param_float8(fcinfo, agg->name, "lower bound",
									 agg_arg_expr(args, agg->lower_arg), &li, &p->lower_int);
		p->upper = eval_param_float8(fcinfo, agg->name, "upper bound",
									 agg_arg_expr(args, agg->upper_arg), &ui, &p->upper_int);
		p->integer = li && ui;
		dp_validate_bounds(agg->name, p->lower, p->upper);
	}
	p->q = 0.5;
	if (agg->q_arg >= 0)
	{
		p->q = eval_param_float8(fcinfo, agg->name, "quantile",
								 agg_arg_expr(args, agg->q_arg), NULL, NULL);
		dp_validate_q(p->q);
	}
}

/*
 * Called on the first row of each group: check (once per query) that the
 * parameters are constants.
 */
void
dp_trans_check_params(FunctionCallInfo fcinfo, DpCallCache *cache)
{
	const DpAggregate *agg = cache->agg;
	List	   *args;
	int			nargs,
				eps_arg;

	if (cache->checked)
		return;
	if (AggGetAggref(fcinfo) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot check its privacy parameters in this context", agg->name),
				 errhint("Use it as a plain aggregate in a query.")));
	args = original_agg_args(fcinfo);
	nargs = list_length(args);
	eps_arg = dp_aggregate_epsilon_arg(agg, nargs);
	if (eps_arg >= 0)
		dp_check_param_constant(agg->name, "epsilon", agg_arg_expr(args, eps_arg));
	if (agg->lower_arg >= 0 && nargs > agg->upper_arg)
	{
		dp_check_param_constant(agg->name, "lower bound", agg_arg_expr(args, agg->lower_arg));
		dp_check_param_constant(agg->name, "upper bound", agg_arg_expr(args, agg->upper_arg));
	}
	if (agg->q_arg >= 0 && nargs > agg->q_arg)
		dp_check_param_constant(agg->name, "quantile", agg_arg_expr(args, agg->q_arg));
	cache->checked = true;
}

/* Epsilon from the transition function's own arguments (argument 0 is the state). */
float8
dp_trans_epsilon(FunctionCallInfo fcinfo, const DpAggregate *agg)
{
	int			eps_arg = dp_aggregate_epsilon_arg(agg, PG_NARGS() - 1);
	float8		epsilon;

	if (eps_arg < 0)
		return DEFAULT_EPSILON;
	if (PG_ARGISNULL(eps_arg + 1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("epsilon of %s must not be NULL", agg->name),
				 errhint("Pass a number.")));
	epsilon = PG_GETARG_FLOAT8(eps_arg + 1);
	dp_validate_epsilon(agg->name, epsilon);
	return epsilon;
}

void
dp_trans_bounds_not_null(FunctionCallInfo fcinfo, const DpAggregate *agg)
{
	if (PG_ARGISNULL(agg->lower_arg + 1) || PG_ARGISNULL(agg->upper_arg + 1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("bounds of %s must not be NULL", agg->name),
				 errhint("Pass the range the values are clamped to, e.g. %s(x, 0, 100).", agg->name)));
}
