/*
 * pg_dp.c -- the per-row hot path of pg_dp's differentially private aggregates.
 *
 * Transition and combine functions run in C so that per-row work costs about
 * what a native aggregate costs (DESIGN decision 1).  Final functions gather
 * the exact statistics and the privacy parameters and hand them, once per
 * group, to the Python engine (dp_internal.release), which adds OpenDP noise.
 *
 * Exactness: every clamped value is put on a power-of-two grid before it is
 * summed, and sums are kept in 128-bit integers, so the sensitivity the engine
 * uses is exactly what the mathematics says (no floating-point accumulation
 * error an attacker could exploit).
 *
 * Privacy parameters (epsilon, bounds, quantile) must be constant for the
 * whole aggregation: a parameter that depended on the rows would make the
 * noise scale itself data-dependent.  This is checked on the Aggref once per
 * query, before the first row is accumulated.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_func.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"

PG_MODULE_MAGIC;

#ifndef HAVE_INT128
#error "pg_dp needs a compiler with 128-bit integers"
#endif

/* Values are quantised to multiples of 2^gexp, with max(|lower|,|upper|) < 2^GRID_BITS units. */
#define GRID_BITS 40
/* Number of candidate points of the quantile mechanism (grid over [lower, upper]). */
#define QUANTILE_CANDIDATES 1025
#define DEFAULT_EPSILON 1.0

/* ------------------------------------------------------------------------
 * States
 * ------------------------------------------------------------------------ */

/*
 * Fixed-layout state of dp_count / dp_sum / dp_avg / dp_var / dp_stddev
 * (SQL type dp_internal.sum_state).  128-bit sums are stored as two 64-bit halves so
 * that the struct needs only 8-byte alignment.
 */
typedef struct DpSumState
{
	int64		n;				/* rows accumulated (non-NULL, non-NaN) */
	uint64		s1_lo;			/* sum of grid values q, low half */
	int64		s1_hi;			/* high half */
	uint64		s2_lo;			/* sum of q^2 (dp_var only), low half */
	int64		s2_hi;
	int64		lower_units;	/* lower bound in grid units */
	int64		upper_units;	/* upper bound in grid units */
	float8		epsilon;
	float8		inv_grid;		/* 2^-gexp */
	int32		gexp;			/* grid exponent */
	int32		flags;
} DpSumState;

#define SUMSTATE_INTEGER 0x1	/* accumulated from an integer column */
#define SUMSTATE_SQUARES 0x2	/* s2 is maintained */

/* Varlena state of dp_quantile / dp_median (SQL type dp_internal.hist_state). */
typedef struct DpHistState
{
	int32		vl_len_;
	int32		ncand;			/* number of candidates */
	float8		lower;
	float8		upper;
	float8		epsilon;
	float8		q;				/* the quantile, in [0, 1] */
	int64		n;
	int64		counts[FLEXIBLE_ARRAY_MEMBER];	/* rows snapped to each candidate */
} DpHistState;

#define HIST_SIZE(ncand) (offsetof(DpHistState, counts) + sizeof(int64) * (ncand))

static inline int128
get128(uint64 lo, int64 hi)
{
	return (int128) (((uint128) (uint64) hi << 64) | lo);
}

static inline void
put128(int128 v, uint64 *lo, int64 *hi)
{
	*lo = (uint64) v;
	*hi = (int64) (v >> 64);
}

/* ------------------------------------------------------------------------
 * Parameters: layout per aggregate family, validation, constant check
 * ------------------------------------------------------------------------ */

/* Where each parameter sits among the aggregate's own arguments (0-based; -1: absent). */
typedef struct ParamLayout
{
	const char *aggname;
	int			base_nargs;		/* arguments without epsilon */
	int			q_arg;
	int			lower_arg;
	int			upper_arg;
} ParamLayout;

static const ParamLayout count_layout = {"dp_count", -1, -1, -1, -1};
static const ParamLayout sum_layout = {"dp_sum", 3, -1, 1, 2};
static const ParamLayout avg_layout = {"dp_avg", 3, -1, 1, 2};
static const ParamLayout var_layout = {"dp_var", 3, -1, 1, 2};
static const ParamLayout stddev_layout = {"dp_stddev", 3, -1, 1, 2};
static const ParamLayout quantile_layout = {"dp_quantile", 4, 1, 2, 3};
static const ParamLayout median_layout = {"dp_median", 3, -1, 1, 2};

/* dp_count(*) has no argument, dp_count(x) one, dp_count(x, epsilon) two. */
static int
epsilon_argno(const ParamLayout *layout, int nargs)
{
	if (layout->base_nargs < 0)
		return nargs == 2 ? 1 : -1;
	return nargs == layout->base_nargs + 1 ? layout->base_nargs : -1;
}

typedef struct DpParams
{
	float8		epsilon;
	float8		lower;
	float8		upper;
	float8		q;
	bool		integer;		/* bounds are integers (grid of 1) */
	int64		lower_int;
	int64		upper_int;
} DpParams;

static void
validate_epsilon(const char *aggname, float8 epsilon)
{
	if (isnan(epsilon) || isinf(epsilon) || epsilon <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("epsilon of %s must be a finite number greater than zero", aggname),
				 errhint("Pass the privacy loss you accept for this release, e.g. 0.1 or 1.0.")));
}

static void
validate_bounds(const char *aggname, float8 lower, float8 upper)
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

static void
validate_q(float8 q)
{
	if (isnan(q) || q < 0 || q > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("quantile of dp_quantile must be between 0 and 1"),
				 errhint("Use 0.5 for the median, 0.25 and 0.75 for the quartiles.")));
}

/*
 * A parameter expression is acceptable when it cannot depend on the rows:
 * no column references, no sub-queries or executor params, no aggregates,
 * no volatile functions.  Constants and client-supplied ($n) params pass.
 */
static bool
param_expr_walker(Node *node, void *context)
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
	return expression_tree_walker(node, param_expr_walker, context);
}

static void
check_param_constant(const char *aggname, const char *what, Expr *expr)
{
	if (param_expr_walker((Node *) expr, NULL) ||
		contain_volatile_functions((Node *) expr))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s of %s must be a constant", what, aggname),
				 errhint("Write a literal or a query parameter: privacy parameters must not depend on the rows.")));
}

/*
 * Citus distributes a custom aggregate as worker_partial_agg(agg, arg) or
 * worker_partial_agg(agg, ROW(args...)) on the workers and
 * coord_combine_agg(agg, partial, NULL::result) on the coordinator (see
 * docs/citus.md).  Which of the two an Aggref is, by the name of its
 * function in pg_catalog (looked up once per query, not per row).
 */
typedef enum CitusAggWrapper
{
	CITUS_NONE,
	CITUS_WORKER_PARTIAL,
	CITUS_COORD_COMBINE
} CitusAggWrapper;

static CitusAggWrapper
citus_wrapper(Aggref *aggref)
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
static List *
citus_partial_args(Aggref *aggref)
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

/*
 * The aggregate's original argument list.  In a plain aggregation it is on
 * the Aggref; in the Finalize step of a partial (parallel) aggregation the
 * Aggref's only argument is a reference to the partial aggregate's output,
 * which is followed down the plan (Gather, Sort, Append) to the partial
 * Aggref that still has the arguments.
 */
static List *
original_agg_args(FunctionCallInfo fcinfo)
{
	Aggref	   *aggref = AggGetAggref(fcinfo);
	Plan	   *plan;
	Expr	   *expr;

	if (aggref == NULL)
		return NIL;
	switch (citus_wrapper(aggref))
	{
		case CITUS_WORKER_PARTIAL:
			return citus_partial_args(aggref);
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

	check_param_constant(aggname, what, expr);
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
static void
params_from_query(FunctionCallInfo fcinfo, const ParamLayout *layout, DpParams *p)
{
	List	   *args;
	int			nargs,
				eps_arg;

	memset(p, 0, sizeof(*p));
	if (fcinfo->context == NULL || !IsA(fcinfo->context, AggState))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot be used as a window function", layout->aggname),
				 errhint("Use it as a plain aggregate, with GROUP BY if needed.")));
	args = original_agg_args(fcinfo);
	nargs = list_length(args);
	if (args == NIL && layout->base_nargs != -1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot determine its privacy parameters in this plan", layout->aggname),
				 errhint("Run the query without partitionwise or distributed aggregation.")));
	eps_arg = epsilon_argno(layout, nargs);
	p->epsilon = eps_arg >= 0
		? eval_param_float8(fcinfo, layout->aggname, "epsilon", agg_arg_expr(args, eps_arg), NULL, NULL)
		: DEFAULT_EPSILON;
	validate_epsilon(layout->aggname, p->epsilon);
	if (layout->lower_arg >= 0)
	{
		bool		li,
					ui;

		p->lower = eval_param_float8(fcinfo, layout->aggname, "lower bound",
									 agg_arg_expr(args, layout->lower_arg), &li, &p->lower_int);
		p->upper = eval_param_float8(fcinfo, layout->aggname, "upper bound",
									 agg_arg_expr(args, layout->upper_arg), &ui, &p->upper_int);
		p->integer = li && ui;
		validate_bounds(layout->aggname, p->lower, p->upper);
	}
	p->q = 0.5;
	if (layout->q_arg >= 0)
	{
		p->q = eval_param_float8(fcinfo, layout->aggname, "quantile",
								 agg_arg_expr(args, layout->q_arg), NULL, NULL);
		validate_q(p->q);
	}
}

/*
 * Called on the first row of each group: check (once per query) that the
 * parameters are constants, then validate this row's parameter values.
 */
static void
check_params_once(FunctionCallInfo fcinfo, const ParamLayout *layout)
{
	List	   *args;
	int			nargs,
				eps_arg;

	if (fcinfo->flinfo->fn_extra != NULL)
		return;
	if (AggGetAggref(fcinfo) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot check its privacy parameters in this context", layout->aggname),
				 errhint("Use it as a plain aggregate in a query.")));
	args = original_agg_args(fcinfo);
	nargs = list_length(args);
	eps_arg = epsilon_argno(layout, nargs);
	if (eps_arg >= 0)
		check_param_constant(layout->aggname, "epsilon", agg_arg_expr(args, eps_arg));
	if (layout->lower_arg >= 0 && nargs > layout->upper_arg)
	{
		check_param_constant(layout->aggname, "lower bound", agg_arg_expr(args, layout->lower_arg));
		check_param_constant(layout->aggname, "upper bound", agg_arg_expr(args, layout->upper_arg));
	}
	if (layout->q_arg >= 0 && nargs > layout->q_arg)
		check_param_constant(layout->aggname, "quantile", agg_arg_expr(args, layout->q_arg));
	fcinfo->flinfo->fn_extra = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, 1);
}

/* Epsilon from the transition function's own arguments (argument 0 is the state). */
static float8
trans_epsilon(FunctionCallInfo fcinfo, const ParamLayout *layout)
{
	int			eps_arg = epsilon_argno(layout, PG_NARGS() - 1);
	float8		epsilon;

	if (eps_arg < 0)
		return DEFAULT_EPSILON;
	if (PG_ARGISNULL(eps_arg + 1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("epsilon of %s must not be NULL", layout->aggname),
				 errhint("Pass a number.")));
	epsilon = PG_GETARG_FLOAT8(eps_arg + 1);
	validate_epsilon(layout->aggname, epsilon);
	return epsilon;
}

static void
trans_bounds_not_null(FunctionCallInfo fcinfo, const ParamLayout *layout)
{
	if (PG_ARGISNULL(layout->lower_arg + 1) || PG_ARGISNULL(layout->upper_arg + 1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("bounds of %s must not be NULL", layout->aggname),
				 errhint("Pass the range the values are clamped to, e.g. %s(x, 0, 100).", layout->aggname)));
}

/* ------------------------------------------------------------------------
 * dp_internal.sum_state: grid, initialisation, transition, combine, I/O
 * ------------------------------------------------------------------------ */

/* Grid exponent for float bounds: max(|lower|, |upper|) spans about 2^GRID_BITS units. */
static int32
grid_exponent(const char *aggname, float8 lower, float8 upper)
{
	float8		m = Max(fabs(lower), fabs(upper));
	int			e;

	if (m == 0)
		return 0;
	(void) frexp(m, &e);		/* m < 2^e */
	e -= GRID_BITS;
	if (e < -1020)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bounds of %s are too close to zero", aggname),
				 errhint("Rescale the column, e.g. multiply it by a power of ten.")));
	return e;
}

static void
sum_state_set_params(DpSumState *st, const char *aggname, const DpParams *p, bool squares)
{
	memset(st, 0, sizeof(*st));
	st->epsilon = p->epsilon;
	if (p->integer)
	{
		st->flags |= SUMSTATE_INTEGER;
		st->gexp = 0;
		st->inv_grid = 1.0;
		st->lower_units = p->lower_int;
		st->upper_units = p->upper_int;
	}
	else
	{
		st->gexp = grid_exponent(aggname, p->lower, p->upper);
		st->inv_grid = ldexp(1.0, -st->gexp);
		st->lower_units = (int64) rint(p->lower * st->inv_grid);
		st->upper_units = (int64) rint(p->upper * st->inv_grid);
	}
	if (squares)
		st->flags |= SUMSTATE_SQUARES;
}

/* Argument type of an accumulated column. */
typedef enum ColumnKind
{
	COLUMN_FLOAT8,
	COLUMN_INT4,
	COLUMN_INT8,
	COLUMN_ANY					/* dp_count: the value is not read */
} ColumnKind;

static DpSumState *
sum_state_new(FunctionCallInfo fcinfo, MemoryContext aggctx, const ParamLayout *layout,
			  ColumnKind kind, bool squares)
{
	DpSumState *st = MemoryContextAlloc(aggctx, sizeof(DpSumState));
	DpParams	p;

	check_params_once(fcinfo, layout);
	memset(&p, 0, sizeof(p));
	p.integer = kind != COLUMN_FLOAT8;
	p.epsilon = trans_epsilon(fcinfo, layout);
	if (layout->lower_arg >= 0)
	{
		int			la = layout->lower_arg + 1,
					ua = layout->upper_arg + 1;

		trans_bounds_not_null(fcinfo, layout);
		switch (kind)
		{
			case COLUMN_INT4:
				p.lower_int = PG_GETARG_INT32(la);
				p.upper_int = PG_GETARG_INT32(ua);
				break;
			case COLUMN_INT8:
				p.lower_int = PG_GETARG_INT64(la);
				p.upper_int = PG_GETARG_INT64(ua);
				break;
			default:
				p.lower = PG_GETARG_FLOAT8(la);
				p.upper = PG_GETARG_FLOAT8(ua);
				break;
		}
		if (p.integer)
		{
			p.lower = (float8) p.lower_int;
			p.upper = (float8) p.upper_int;
		}
		validate_bounds(layout->aggname, p.lower, p.upper);
	}
	sum_state_set_params(st, layout->aggname, &p, squares);
	return st;
}

/*
 * Window use is refused: a moving frame would release many noisy answers over
 * overlapping rows, and parameters could not be checked for constancy.
 */
static MemoryContext
agg_context_or_error(FunctionCallInfo fcinfo, const char *aggname)
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

PG_FUNCTION_INFO_V1(dp_count_trans);
/* dp_count(*), dp_count(x), dp_count(x, epsilon) */
Datum
dp_count_trans(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx = agg_context_or_error(fcinfo, "dp_count");
	DpSumState *st = PG_ARGISNULL(0) ? NULL : (DpSumState *) PG_GETARG_POINTER(0);

	if (st == NULL)
		st = sum_state_new(fcinfo, aggctx, &count_layout, COLUMN_ANY, false);
	if (PG_NARGS() >= 2 && PG_ARGISNULL(1))
		PG_RETURN_POINTER(st);
	st->n++;
	PG_RETURN_POINTER(st);
}

static inline DpSumState *
sum_trans_begin(FunctionCallInfo fcinfo, const ParamLayout *layout, ColumnKind kind, bool squares)
{
	MemoryContext aggctx = agg_context_or_error(fcinfo, layout->aggname);

	if (!PG_ARGISNULL(0))
		return (DpSumState *) PG_GETARG_POINTER(0);
	return sum_state_new(fcinfo, aggctx, layout, kind, squares);
}

static inline void
sum_state_add(DpSumState *st, int64 q, bool squares)
{
	int128		s1 = get128(st->s1_lo, st->s1_hi) + q;

	put128(s1, &st->s1_lo, &st->s1_hi);
	if (squares)
	{
		int128		s2 = get128(st->s2_lo, st->s2_hi) + (int128) q * q;

		put128(s2, &st->s2_lo, &st->s2_hi);
	}
	st->n++;
}

static inline int64
float_to_units(const DpSumState *st, float8 x)
{
	float8		units = rint(x * st->inv_grid);

	/* x is clamped, so units lies between the bounds' units */
	if (units < (float8) st->lower_units)
		return st->lower_units;
	if (units > (float8) st->upper_units)
		return st->upper_units;
	return (int64) units;
}

static Datum
sum_float_trans(FunctionCallInfo fcinfo, const ParamLayout *layout, bool squares)
{
	DpSumState *st;
	float8		x;

	st = sum_trans_begin(fcinfo, layout, COLUMN_FLOAT8, squares);
	if (PG_ARGISNULL(1) || isnan(PG_GETARG_FLOAT8(1)))
		PG_RETURN_POINTER(st);
	x = PG_GETARG_FLOAT8(1);
	sum_state_add(st, float_to_units(st, x), squares);
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(dp_sum_float8_trans);
/* dp_sum over double precision (and numeric, cast to it) */
Datum
dp_sum_float8_trans(PG_FUNCTION_ARGS)
{
	return sum_float_trans(fcinfo, &sum_layout, false);
}

PG_FUNCTION_INFO_V1(dp_avg_float8_trans);
Datum
dp_avg_float8_trans(PG_FUNCTION_ARGS)
{
	return sum_float_trans(fcinfo, &avg_layout, false);
}

PG_FUNCTION_INFO_V1(dp_var_float8_trans);
Datum
dp_var_float8_trans(PG_FUNCTION_ARGS)
{
	return sum_float_trans(fcinfo, &var_layout, true);
}

PG_FUNCTION_INFO_V1(dp_stddev_float8_trans);
Datum
dp_stddev_float8_trans(PG_FUNCTION_ARGS)
{
	return sum_float_trans(fcinfo, &stddev_layout, true);
}

PG_FUNCTION_INFO_V1(dp_sum_int8_trans);
/* dp_sum(bigint, bigint, bigint [, epsilon]) */
Datum
dp_sum_int8_trans(PG_FUNCTION_ARGS)
{
	DpSumState *st;
	int64		x;

	st = sum_trans_begin(fcinfo, &sum_layout, COLUMN_INT8, false);
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(st);
	x = PG_GETARG_INT64(1);
	if (x < st->lower_units)
		x = st->lower_units;
	else if (x > st->upper_units)
		x = st->upper_units;
	sum_state_add(st, x, false);
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(dp_sum_int4_trans);
/* dp_sum(integer, integer, integer [, epsilon]) */
Datum
dp_sum_int4_trans(PG_FUNCTION_ARGS)
{
	DpSumState *st;
	int64		x;

	st = sum_trans_begin(fcinfo, &sum_layout, COLUMN_INT4, false);
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(st);
	x = PG_GETARG_INT32(1);
	if (x < st->lower_units)
		x = st->lower_units;
	else if (x > st->upper_units)
		x = st->upper_units;
	sum_state_add(st, x, false);
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(dp_sum_state_combine);
Datum
dp_sum_state_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx = agg_context_or_error(fcinfo, "dp_sum_state_combine");
	DpSumState *a = PG_ARGISNULL(0) ? NULL : (DpSumState *) PG_GETARG_POINTER(0);
	DpSumState *b = PG_ARGISNULL(1) ? NULL : (DpSumState *) PG_GETARG_POINTER(1);

	if (b == NULL)
	{
		if (a == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(a);
	}
	if (a == NULL)
	{
		a = MemoryContextAlloc(aggctx, sizeof(DpSumState));
		memcpy(a, b, sizeof(DpSumState));
		PG_RETURN_POINTER(a);
	}
	if (a->gexp != b->gexp || a->lower_units != b->lower_units ||
		a->upper_units != b->upper_units || a->epsilon != b->epsilon ||
		a->flags != b->flags)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("cannot combine pg_dp aggregate states with different parameters")));
	a->n += b->n;
	put128(get128(a->s1_lo, a->s1_hi) + get128(b->s1_lo, b->s1_hi), &a->s1_lo, &a->s1_hi);
	put128(get128(a->s2_lo, a->s2_hi) + get128(b->s2_lo, b->s2_hi), &a->s2_lo, &a->s2_hi);
	PG_RETURN_POINTER(a);
}

static void
append_int128(StringInfo buf, int128 v)
{
	char		digits[48];
	int			i = 0;
	uint128		u = v < 0 ? -(uint128) v : (uint128) v;

	do
	{
		digits[i++] = '0' + (int) (u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		appendStringInfoChar(buf, '-');
	while (i > 0)
		appendStringInfoChar(buf, digits[--i]);
}

static char *
int128_to_text(int128 v)
{
	StringInfoData buf;

	initStringInfo(&buf);
	append_int128(&buf, v);
	return buf.data;
}

static void
bad_state_input(const char *type, const char *input)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type %s: \"%s\"", type, input),
			 errhint("Values of this type are produced by pg_dp's aggregates, not written by hand.")));
}

static int128
parse_int128(char **p, const char *type, const char *input)
{
	bool		neg = false;
	uint128		u = 0;
	int			digits = 0;

	if (**p == '-')
	{
		neg = true;
		(*p)++;
	}
	while (**p >= '0' && **p <= '9')
	{
		u = u * 10 + (uint128) (**p - '0');
		(*p)++;
		if (++digits > 38)
			bad_state_input(type, input);
	}
	if (digits == 0)
		bad_state_input(type, input);
	return neg ? -(int128) u : (int128) u;
}

static float8
parse_float8(char **p, const char *type, const char *input)
{
	char	   *end;
	float8		v = float8in_internal(*p, &end, type, input);

	*p = end;
	return v;
}

static void
expect_char(char **p, char c, const char *type, const char *input)
{
	if (**p != c)
		bad_state_input(type, input);
	(*p)++;
}

PG_FUNCTION_INFO_V1(dp_sum_state_out);
/* (n,s1,s2,lower_units,upper_units,gexp,flags,epsilon): exact, for partial aggregation across servers */
Datum
dp_sum_state_out(PG_FUNCTION_ARGS)
{
	DpSumState *st = (DpSumState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "(" INT64_FORMAT ",", st->n);
	append_int128(&buf, get128(st->s1_lo, st->s1_hi));
	appendStringInfoChar(&buf, ',');
	append_int128(&buf, get128(st->s2_lo, st->s2_hi));
	appendStringInfo(&buf, "," INT64_FORMAT "," INT64_FORMAT ",%d,%d,%s)",
					 st->lower_units, st->upper_units, st->gexp, st->flags,
					 float8out_internal(st->epsilon));
	PG_RETURN_CSTRING(buf.data);
}

PG_FUNCTION_INFO_V1(dp_sum_state_in);
Datum
dp_sum_state_in(PG_FUNCTION_ARGS)
{
	char	   *input = PG_GETARG_CSTRING(0);
	char	   *p = input;
	const char *type = "dp_internal.sum_state";
	DpSumState *st = palloc0(sizeof(DpSumState));
	int128		v;

	expect_char(&p, '(', type, input);
	st->n = (int64) parse_int128(&p, type, input);
	expect_char(&p, ',', type, input);
	put128(parse_int128(&p, type, input), &st->s1_lo, &st->s1_hi);
	expect_char(&p, ',', type, input);
	put128(parse_int128(&p, type, input), &st->s2_lo, &st->s2_hi);
	expect_char(&p, ',', type, input);
	st->lower_units = (int64) parse_int128(&p, type, input);
	expect_char(&p, ',', type, input);
	st->upper_units = (int64) parse_int128(&p, type, input);
	expect_char(&p, ',', type, input);
	v = parse_int128(&p, type, input);
	if (v < -1100 || v > 1100)
		bad_state_input(type, input);
	st->gexp = (int32) v;
	expect_char(&p, ',', type, input);
	v = parse_int128(&p, type, input);
	if (v < 0 || v > 3)
		bad_state_input(type, input);
	st->flags = (int32) v;
	expect_char(&p, ',', type, input);
	st->epsilon = parse_float8(&p, type, input);
	expect_char(&p, ')', type, input);
	if (*p != '\0' || st->n < 0 || st->lower_units > st->upper_units)
		bad_state_input(type, input);
	validate_epsilon("dp_internal.sum_state", st->epsilon);
	st->inv_grid = ldexp(1.0, -st->gexp);
	PG_RETURN_POINTER(st);
}

/* ------------------------------------------------------------------------
 * dp_internal.hist_state: transition, combine, I/O
 * ------------------------------------------------------------------------ */

static Datum
hist_trans(FunctionCallInfo fcinfo, const ParamLayout *layout)
{
	MemoryContext aggctx = agg_context_or_error(fcinfo, layout->aggname);
	DpHistState *st;
	float8		x;
	int			idx;

	if (PG_ARGISNULL(0))
	{
		float8		epsilon,
					lower,
					upper,
					q = 0.5;

		check_params_once(fcinfo, layout);
		epsilon = trans_epsilon(fcinfo, layout);
		trans_bounds_not_null(fcinfo, layout);
		lower = PG_GETARG_FLOAT8(layout->lower_arg + 1);
		upper = PG_GETARG_FLOAT8(layout->upper_arg + 1);
		validate_bounds(layout->aggname, lower, upper);
		if (layout->q_arg >= 0)
		{
			if (PG_ARGISNULL(layout->q_arg + 1))
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("quantile of %s must not be NULL", layout->aggname),
						 errhint("Use 0.5 for the median.")));
			q = PG_GETARG_FLOAT8(layout->q_arg + 1);
			validate_q(q);
		}
		st = MemoryContextAllocZero(aggctx, HIST_SIZE(QUANTILE_CANDIDATES));
		SET_VARSIZE(st, HIST_SIZE(QUANTILE_CANDIDATES));
		st->ncand = QUANTILE_CANDIDATES;
		st->lower = lower;
		st->upper = upper;
		st->epsilon = epsilon;
		st->q = q;
	}
	else
		st = (DpHistState *) PG_GETARG_POINTER(0);

	if (PG_ARGISNULL(1) || isnan(PG_GETARG_FLOAT8(1)))
		PG_RETURN_POINTER(st);
	x = PG_GETARG_FLOAT8(1);
	if (st->upper > st->lower)
	{
		x = x < st->lower ? st->lower : (x > st->upper ? st->upper : x);
		idx = (int) rint((x - st->lower) / (st->upper - st->lower) * (st->ncand - 1));
		idx = idx < 0 ? 0 : (idx >= st->ncand ? st->ncand - 1 : idx);
	}
	else
		idx = 0;
	st->counts[idx]++;
	st->n++;
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(dp_quantile_trans);
Datum
dp_quantile_trans(PG_FUNCTION_ARGS)
{
	return hist_trans(fcinfo, &quantile_layout);
}

PG_FUNCTION_INFO_V1(dp_median_trans);
Datum
dp_median_trans(PG_FUNCTION_ARGS)
{
	return hist_trans(fcinfo, &median_layout);
}

PG_FUNCTION_INFO_V1(dp_hist_state_combine);
Datum
dp_hist_state_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx = agg_context_or_error(fcinfo, "dp_hist_state_combine");
	DpHistState *a = PG_ARGISNULL(0) ? NULL : (DpHistState *) PG_GETARG_POINTER(0);
	DpHistState *b = PG_ARGISNULL(1) ? NULL : (DpHistState *) PG_GETARG_POINTER(1);
	int			i;

	if (b == NULL)
	{
		if (a == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(a);
	}
	if (a == NULL)
	{
		a = MemoryContextAlloc(aggctx, VARSIZE(b));
		memcpy(a, b, VARSIZE(b));
		PG_RETURN_POINTER(a);
	}
	if (a->ncand != b->ncand || a->lower != b->lower || a->upper != b->upper ||
		a->epsilon != b->epsilon || a->q != b->q)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("cannot combine pg_dp aggregate states with different parameters")));
	for (i = 0; i < a->ncand; i++)
		a->counts[i] += b->counts[i];
	a->n += b->n;
	PG_RETURN_POINTER(a);
}

PG_FUNCTION_INFO_V1(dp_hist_state_out);
/* (lower,upper,epsilon,q,ncand;i:count i:count ...), non-zero counts only */
Datum
dp_hist_state_out(PG_FUNCTION_ARGS)
{
	DpHistState *st = (DpHistState *) PG_GETARG_POINTER(0);
	StringInfoData buf;
	int			i;
	bool		first = true;

	initStringInfo(&buf);
	appendStringInfo(&buf, "(%s,", float8out_internal(st->lower));
	appendStringInfo(&buf, "%s,", float8out_internal(st->upper));
	appendStringInfo(&buf, "%s,", float8out_internal(st->epsilon));
	appendStringInfo(&buf, "%s,%d;", float8out_internal(st->q), st->ncand);
	for (i = 0; i < st->ncand; i++)
	{
		if (st->counts[i] == 0)
			continue;
		appendStringInfo(&buf, first ? "%d:" INT64_FORMAT : " %d:" INT64_FORMAT, i, st->counts[i]);
		first = false;
	}
	appendStringInfoChar(&buf, ')');
	PG_RETURN_CSTRING(buf.data);
}

PG_FUNCTION_INFO_V1(dp_hist_state_in);
Datum
dp_hist_state_in(PG_FUNCTION_ARGS)
{
	char	   *input = PG_GETARG_CSTRING(0);
	char	   *p = input;
	const char *type = "dp_internal.hist_state";
	float8		lower,
				upper,
				epsilon,
				q;
	int128		ncand;
	DpHistState *st;

	expect_char(&p, '(', type, input);
	lower = parse_float8(&p, type, input);
	expect_char(&p, ',', type, input);
	upper = parse_float8(&p, type, input);
	expect_char(&p, ',', type, input);
	epsilon = parse_float8(&p, type, input);
	expect_char(&p, ',', type, input);
	q = parse_float8(&p, type, input);
	expect_char(&p, ',', type, input);
	ncand = parse_int128(&p, type, input);
	expect_char(&p, ';', type, input);
	if (ncand != QUANTILE_CANDIDATES)
		bad_state_input(type, input);
	validate_bounds("dp_internal.hist_state", lower, upper);
	validate_epsilon("dp_internal.hist_state", epsilon);
	validate_q(q);
	st = palloc0(HIST_SIZE(ncand));
	SET_VARSIZE(st, HIST_SIZE(ncand));
	st->ncand = (int32) ncand;
	st->lower = lower;
	st->upper = upper;
	st->epsilon = epsilon;
	st->q = q;
	while (*p != ')')
	{
		int128		i,
					c;

		if (*p == ' ')
			p++;
		i = parse_int128(&p, type, input);
		expect_char(&p, ':', type, input);
		c = parse_int128(&p, type, input);
		if (i < 0 || i >= ncand || c < 0 || c > PG_INT64_MAX / 2)
			bad_state_input(type, input);
		st->counts[i] += (int64) c;
		st->n += (int64) c;
	}
	expect_char(&p, ')', type, input);
	if (*p != '\0')
		bad_state_input(type, input);
	PG_RETURN_POINTER(st);
}

/* ------------------------------------------------------------------------
 * Final functions: exact statistics -> dp_internal.release (Python, OpenDP noise)
 * ------------------------------------------------------------------------ */

typedef struct FinalCache
{
	FmgrInfo	release;
	bool		have_params;
	DpParams	params;			/* for groups that saw no row */
} FinalCache;

/* dp_internal.release(kind text, stats text[], params float8[]) in the extension's own schema. */
static FinalCache *
final_cache(FunctionCallInfo fcinfo)
{
	FinalCache *cache = (FinalCache *) fcinfo->flinfo->fn_extra;

	if (cache == NULL)
	{
		Oid			nsp = get_func_namespace(fcinfo->flinfo->fn_oid);
		Oid			argtypes[3] = {TEXTOID, TEXTARRAYOID, FLOAT8ARRAYOID};
		List	   *name = list_make2(makeString(get_namespace_name(nsp)), makeString("release"));
		Oid			fn = LookupFuncName(name, 3, argtypes, false);

		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(FinalCache));
		fmgr_info_cxt(fn, &cache->release, fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = cache;
	}
	return cache;
}

static void
final_context_check(FunctionCallInfo fcinfo, const ParamLayout *layout)
{
	if (AggCheckCallContext(fcinfo, NULL) == AGG_CONTEXT_WINDOW)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot be used as a window function", layout->aggname),
				 errhint("Use it as a plain aggregate, with GROUP BY if needed.")));
}

static const DpParams *
final_params(FunctionCallInfo fcinfo, const ParamLayout *layout)
{
	FinalCache *cache = final_cache(fcinfo);

	if (!cache->have_params)
	{
		params_from_query(fcinfo, layout, &cache->params);
		cache->have_params = true;
	}
	return &cache->params;
}

static float8
call_release(FunctionCallInfo fcinfo, const char *kind, Datum *stats, int nstats,
			 float8 *params, int nparams)
{
	FinalCache *cache = final_cache(fcinfo);
	Datum	   *pd = palloc(sizeof(Datum) * nparams);
	ArrayType  *sa,
			   *pa;
	int			i;

	for (i = 0; i < nparams; i++)
		pd[i] = Float8GetDatum(params[i]);
	sa = construct_array(stats, nstats, TEXTOID, -1, false, TYPALIGN_INT);
	pa = construct_array(pd, nparams, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	return DatumGetFloat8(FunctionCall3(&cache->release,
										CStringGetTextDatum(kind),
										PointerGetDatum(sa),
										PointerGetDatum(pa)));
}

static Datum
int128_text_datum(int128 v)
{
	return CStringGetTextDatum(int128_to_text(v));
}

/* The state of a group, or an empty one built from the query's parameters. */
static DpSumState *
sum_state_or_empty(FunctionCallInfo fcinfo, const ParamLayout *layout, bool integer, bool squares)
{
	DpSumState *st;
	DpParams	p;

	final_context_check(fcinfo, layout);
	if (!PG_ARGISNULL(0))
		return (DpSumState *) PG_GETARG_POINTER(0);
	p = *final_params(fcinfo, layout);
	if (integer && !p.integer && layout->lower_arg >= 0)
	{
		p.integer = true;
		p.lower_int = (int64) p.lower;
		p.upper_int = (int64) p.upper;
	}
	if (layout->lower_arg < 0)
		p.integer = true;
	st = palloc(sizeof(DpSumState));
	sum_state_set_params(st, layout->aggname, &p, squares);
	return st;
}

static float8
release_sum_state(FunctionCallInfo fcinfo, const char *kind, DpSumState *st)
{
	Datum		stats[5];
	float8		params[2];

	stats[0] = int128_text_datum((int128) st->n);
	stats[1] = int128_text_datum(get128(st->s1_lo, st->s1_hi));
	stats[2] = int128_text_datum(get128(st->s2_lo, st->s2_hi));
	stats[3] = int128_text_datum((int128) st->lower_units);
	stats[4] = int128_text_datum((int128) st->upper_units);
	params[0] = st->epsilon;
	params[1] = (float8) st->gexp;
	return call_release(fcinfo, kind, stats, 5, params, 2);
}

static int64
float8_to_int64_saturating(float8 v)
{
	if (isnan(v))
		return 0;
	if (v >= (float8) PG_INT64_MAX)
		return PG_INT64_MAX;
	if (v <= (float8) PG_INT64_MIN)
		return PG_INT64_MIN;
	return (int64) rint(v);
}

PG_FUNCTION_INFO_V1(dp_count_final);
Datum
dp_count_final(PG_FUNCTION_ARGS)
{
	DpSumState *st = sum_state_or_empty(fcinfo, &count_layout, true, false);

	PG_RETURN_INT64(float8_to_int64_saturating(release_sum_state(fcinfo, "count", st)));
}

PG_FUNCTION_INFO_V1(dp_sum_int_final);
Datum
dp_sum_int_final(PG_FUNCTION_ARGS)
{
	DpSumState *st = sum_state_or_empty(fcinfo, &sum_layout, true, false);

	PG_RETURN_INT64(float8_to_int64_saturating(release_sum_state(fcinfo, "sum", st)));
}

PG_FUNCTION_INFO_V1(dp_sum_float8_final);
Datum
dp_sum_float8_final(PG_FUNCTION_ARGS)
{
	DpSumState *st = sum_state_or_empty(fcinfo, &sum_layout, false, false);

	PG_RETURN_FLOAT8(release_sum_state(fcinfo, "sum", st));
}

PG_FUNCTION_INFO_V1(dp_avg_final);
Datum
dp_avg_final(PG_FUNCTION_ARGS)
{
	DpSumState *st = sum_state_or_empty(fcinfo, &avg_layout, false, false);

	PG_RETURN_FLOAT8(release_sum_state(fcinfo, "avg", st));
}

PG_FUNCTION_INFO_V1(dp_var_final);
Datum
dp_var_final(PG_FUNCTION_ARGS)
{
	DpSumState *st = sum_state_or_empty(fcinfo, &var_layout, false, true);

	PG_RETURN_FLOAT8(release_sum_state(fcinfo, "var", st));
}

PG_FUNCTION_INFO_V1(dp_stddev_final);
Datum
dp_stddev_final(PG_FUNCTION_ARGS)
{
	DpSumState *st = sum_state_or_empty(fcinfo, &stddev_layout, false, true);

	PG_RETURN_FLOAT8(release_sum_state(fcinfo, "stddev", st));
}

static float8
release_hist_state(FunctionCallInfo fcinfo, const ParamLayout *layout)
{
	DpHistState *st;
	Datum	   *stats;
	float8		params[4];
	int			i;

	final_context_check(fcinfo, layout);
	if (PG_ARGISNULL(0))
	{
		const DpParams *p = final_params(fcinfo, layout);

		st = palloc0(HIST_SIZE(QUANTILE_CANDIDATES));
		st->ncand = QUANTILE_CANDIDATES;
		st->lower = p->lower;
		st->upper = p->upper;
		st->epsilon = p->epsilon;
		st->q = p->q;
	}
	else
		st = (DpHistState *) PG_GETARG_POINTER(0);

	stats = palloc(sizeof(Datum) * (st->ncand + 1));
	stats[0] = int128_text_datum((int128) st->n);
	for (i = 0; i < st->ncand; i++)
		stats[i + 1] = int128_text_datum((int128) st->counts[i]);
	params[0] = st->epsilon;
	params[1] = st->lower;
	params[2] = st->upper;
	params[3] = st->q;
	return call_release(fcinfo, "quantile", stats, st->ncand + 1, params, 4);
}

PG_FUNCTION_INFO_V1(dp_quantile_final);
Datum
dp_quantile_final(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(release_hist_state(fcinfo, &quantile_layout));
}

PG_FUNCTION_INFO_V1(dp_median_final);
Datum
dp_median_final(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(release_hist_state(fcinfo, &median_layout));
}

/* ------------------------------------------------------------------------
 * Native-aggregate form of dp_count / dp_sum / dp_avg (Citus).
 *
 * On a Citus database pg_dp's parse hook (src/citus.c) may rewrite
 *     dp_avg(x, lo, hi, eps)  ->  dp_internal.native_avg(count(x),
 *                                     sum(dp_internal.grid_units(x, lo, hi)), lo, hi, eps)
 * so that the workers run native count/sum (Citus's own fast path) instead of
 * worker_partial_agg.  grid_units puts one value on the aggregate's grid (the
 * same clamp and 2^k grid as the transition functions); the native_* functions
 * release the exact statistics of one group through dp_internal.release with
 * the same statistics the final functions pass, so the noise is the same.
 * ------------------------------------------------------------------------ */

static void
native_params(DpSumState *st, const char *aggname, bool integer, float8 lower, float8 upper,
			  int64 lower_int, int64 upper_int, float8 epsilon)
{
	DpParams	p;

	validate_epsilon(aggname, epsilon);
	validate_bounds(aggname, lower, upper);
	memset(&p, 0, sizeof(p));
	p.epsilon = epsilon;
	p.integer = integer;
	p.lower = lower;
	p.upper = upper;
	p.lower_int = lower_int;
	p.upper_int = upper_int;
	sum_state_set_params(st, aggname, &p, false);
}

typedef struct GridCache
{
	float8		lower;
	float8		upper;
	DpSumState	st;
} GridCache;

PG_FUNCTION_INFO_V1(dp_grid_units_float8);
/* grid_units(x float8, lower float8, upper float8) -> bigint; NULL for NULL and NaN */
Datum
dp_grid_units_float8(PG_FUNCTION_ARGS)
{
	float8		x = PG_GETARG_FLOAT8(0),
				lower = PG_GETARG_FLOAT8(1),
				upper = PG_GETARG_FLOAT8(2);
	GridCache  *gc = (GridCache *) fcinfo->flinfo->fn_extra;

	if (isnan(x))
		PG_RETURN_NULL();
	/* the grid of these bounds, computed once per call site (the bounds are constants) */
	if (gc == NULL || gc->lower != lower || gc->upper != upper)
	{
		if (gc == NULL)
			gc = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(GridCache));
		native_params(&gc->st, "dp_sum", false, lower, upper, 0, 0, 1.0);
		gc->lower = lower;
		gc->upper = upper;
		fcinfo->flinfo->fn_extra = gc;
	}
	PG_RETURN_INT64(float_to_units(&gc->st, x));
}

PG_FUNCTION_INFO_V1(dp_grid_units_int8);
/* grid_units(x bigint, lower bigint, upper bigint) -> bigint: x clamped */
Datum
dp_grid_units_int8(PG_FUNCTION_ARGS)
{
	int64		x = PG_GETARG_INT64(0),
				lo = PG_GETARG_INT64(1),
				hi = PG_GETARG_INT64(2);

	PG_RETURN_INT64(x < lo ? lo : (x > hi ? hi : x));
}

/* Sum of grid units (numeric, an exact integer) into the state's 128-bit sum. */
static void
native_set_sum(DpSumState *st, FunctionCallInfo fcinfo, int argno)
{
	int128		s = 0;

	if (!PG_ARGISNULL(argno))
	{
		char	   *text = DatumGetCString(DirectFunctionCall1(numeric_out, PG_GETARG_DATUM(argno)));
		char	   *p = text;
		bool		neg = *p == '-';

		if (neg || *p == '+')
			p++;
		for (; *p >= '0' && *p <= '9'; p++)
			s = s * 10 + (*p - '0');
		if (*p != '\0')
			elog(ERROR, "pg_dp: a sum of grid units is not an integer: %s", text);
		if (neg)
			s = -s;
	}
	put128(s, &st->s1_lo, &st->s1_hi);
}

static int64
native_count_arg(FunctionCallInfo fcinfo)
{
	return PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0);
}

PG_FUNCTION_INFO_V1(dp_native_count);
/* native_count(n bigint, epsilon float8) -> bigint */
Datum
dp_native_count(PG_FUNCTION_ARGS)
{
	DpSumState	st;

	native_params(&st, "dp_count", true, 0, 0, 0, 0, PG_GETARG_FLOAT8(1));
	st.n = native_count_arg(fcinfo);
	PG_RETURN_INT64(float8_to_int64_saturating(release_sum_state(fcinfo, "count", &st)));
}

PG_FUNCTION_INFO_V1(dp_native_sum_int);
/* native_sum_int(n bigint, units numeric, lower bigint, upper bigint, epsilon float8) -> bigint */
Datum
dp_native_sum_int(PG_FUNCTION_ARGS)
{
	DpSumState	st;
	int64		lo = PG_GETARG_INT64(2),
				hi = PG_GETARG_INT64(3);

	native_params(&st, "dp_sum", true, (float8) lo, (float8) hi, lo, hi, PG_GETARG_FLOAT8(4));
	st.n = native_count_arg(fcinfo);
	native_set_sum(&st, fcinfo, 1);
	PG_RETURN_INT64(float8_to_int64_saturating(release_sum_state(fcinfo, "sum", &st)));
}

static Datum
native_float(FunctionCallInfo fcinfo, const char *aggname, const char *kind)
{
	DpSumState	st;

	native_params(&st, aggname, false, PG_GETARG_FLOAT8(2), PG_GETARG_FLOAT8(3), 0, 0, PG_GETARG_FLOAT8(4));
	st.n = native_count_arg(fcinfo);
	native_set_sum(&st, fcinfo, 1);
	PG_RETURN_FLOAT8(release_sum_state(fcinfo, kind, &st));
}

PG_FUNCTION_INFO_V1(dp_native_sum_float8);
/* native_sum_float8(n bigint, units numeric, lower float8, upper float8, epsilon float8) -> float8 */
Datum
dp_native_sum_float8(PG_FUNCTION_ARGS)
{
	return native_float(fcinfo, "dp_sum", "sum");
}

PG_FUNCTION_INFO_V1(dp_native_avg);
/* native_avg(n bigint, units numeric, lower float8, upper float8, epsilon float8) -> float8 */
Datum
dp_native_avg(PG_FUNCTION_ARGS)
{
	return native_float(fcinfo, "dp_avg", "avg");
}
