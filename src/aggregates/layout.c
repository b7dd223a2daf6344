/*
 * layout.c -- the table of dp_* aggregates, and the checks of their privacy
 * parameters (validity and constancy) that every path uses: the transition and
 * final functions here, the native form on Citus, and the Citus parse rewrite.
 *
 * Privacy parameters (epsilon, bounds, quantile) must be constant for the whole
 * aggregation: a parameter that depended on the rows would make the noise
 * scale itself data-dependent.
 */
#include "postgres.h"

#include <math.h>

#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"

#include "aggregates/aggregates.h"
#include "aggregates/state.h"

/*
 * One row per aggregate.  The kind is the prefix of its SQL support functions
 * (dp_internal.avg_trans, dp_internal.avg_final); the internal aggregates
 * dp_internal.exact_* and count_bool run on the same support functions and so
 * on the same rows.
 */
static const DpAggregate dp_aggregates[] = {
	/* kind       SQL name       state          release     squares base q   lower upper */
	{"count", "dp_count", DP_SUM_STATE, "count", false, -1, -1, -1, -1},
	{"sum", "dp_sum", DP_SUM_STATE, "sum", false, 3, -1, 1, 2},
	{"avg", "dp_avg", DP_SUM_STATE, "avg", false, 3, -1, 1, 2},
	{"var", "dp_var", DP_SUM_STATE, "var", true, 3, -1, 1, 2},
	{"stddev", "dp_stddev", DP_SUM_STATE, "stddev", true, 3, -1, 1, 2},
	{"quantile", "dp_quantile", DP_HIST_STATE, "quantile", false, 4, 1, 2, 3},
	{"median", "dp_median", DP_HIST_STATE, "quantile", false, 3, -1, 1, 2},
};

const DpAggregate *
dp_aggregate_by_name(const char *name)
{
	for (int i = 0; i < lengthof(dp_aggregates); i++)
		if (strcmp(dp_aggregates[i].name, name) == 0)
			return &dp_aggregates[i];
	return NULL;
}

const DpAggregate *
dp_aggregate_by_kind(const char *function_name)
{
	for (int i = 0; i < lengthof(dp_aggregates); i++)
	{
		size_t		len = strlen(dp_aggregates[i].kind);

		if (strncmp(dp_aggregates[i].kind, function_name, len) == 0 && function_name[len] == '_')
			return &dp_aggregates[i];
	}
	return NULL;
}

/* dp_count(*) has no argument, dp_count(x) one, dp_count(x, epsilon) two. */
int
dp_aggregate_epsilon_arg(const DpAggregate *agg, int nargs)
{
	if (agg->base_nargs < 0)
		return nargs == 2 ? 1 : -1;
	return nargs == agg->base_nargs + 1 ? agg->base_nargs : -1;
}

const char *
dp_aggregate_param_name(const DpAggregate *agg, int argno, int nargs)
{
	if (agg == NULL)
		return "parameter";
	if (argno == dp_aggregate_epsilon_arg(agg, nargs))
		return "epsilon";
	if (argno == agg->q_arg)
		return "quantile";
	if (argno == agg->lower_arg)
		return "lower bound";
	if (argno == agg->upper_arg)
		return "upper bound";
	return "parameter";
}

/* Whether an expression can depend on the rows (see dp_check_param_constant). */
static bool
depends_on_rows(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var) || IsA(node, SubLink) || IsA(node, SubPlan) ||
		IsA(node, AlternativeSubPlan) || IsA(node, Aggref) ||
		IsA(node, WindowFunc) || IsA(node, GroupingFunc) ||
		IsA(node, PlaceHolderVar))
		return true;
	if (IsA(node, Param) && ((Param *) node)->paramkind != PARAM_EXTERN)
		return true;
	return expression_tree_walker(node, depends_on_rows, context);
}

void
dp_check_param_constant(const char *aggname, const char *what, Expr *expr)
{
	if (depends_on_rows((Node *) expr, NULL) || contain_volatile_functions((Node *) expr))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s of %s must be a constant", what, aggname),
				 errhint("Write a literal or a query parameter: privacy parameters must not depend on the rows.")));
}

/* ------------------------------------------------------------------------
 * Validity of the parameters' values
 * ------------------------------------------------------------------------ */

void
dp_validate_epsilon(const char *aggname, float8 epsilon)
{
	if (isnan(epsilon) || isinf(epsilon) || epsilon <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("epsilon of %s must be a finite number greater than zero", aggname),
				 errhint("Pass the privacy loss you accept for this release, e.g. 0.1 or 1.0.")));
}

void
dp_validate_bounds(const char *aggname, float8 lower, float8 upper)
{
	if (isnan(lower) || isnan(upper) || isinf(lower) || isinf(upper))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bounds of %s must be finite numbers", aggname),
				 errhint("Pass the range the values are clamped to, e.g. %s(x, 0, 100).", aggname)));
	if (lower > upper)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lower bound of %s must not be greater than its upper bound", aggname),
				 errhint("Swap the two bounds: %s(x, lower, upper).", aggname)));
}

void
dp_validate_q(float8 q)
{
	if (isnan(q) || q < 0 || q > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("quantile of dp_quantile must be between 0 and 1"),
				 errhint("Use 0.5 for the median, 0.25 and 0.75 for the quartiles.")));
}
