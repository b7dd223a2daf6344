/*
 * native.c -- native-aggregate form of dp_count / dp_sum / dp_avg (Citus).
 *
 * On a Citus database pg_dp's parse hook (citus/citus.c) may rewrite
 *     dp_avg(x, lo, hi, eps)  ->  dp_internal.native_avg(count(x),
 *                                     sum(dp_internal.grid_units(x, lo, hi)), lo, hi, eps)
 * so that the workers run native count/sum (Citus's own fast path) instead of
 * worker_partial_agg.  grid_units puts one value on the aggregate's grid (the
 * same clamp and 2^k grid as the transition functions); the native_* functions
 * release the exact statistics of one group through dp_internal.release with
 * the same statistics the final functions pass, so the noise is the same.
 */
#include "postgres.h"

#include <math.h>

#include "utils/builtins.h"
#include "utils/numeric.h"

#include "aggregates/state.h"

static void
native_params(DpSumState *st, const char *aggname, bool integer, float8 lower, float8 upper,
			  int64 lower_int, int64 upper_int, float8 epsilon)
{
	DpParams	p;

	dp_validate_epsilon(aggname, epsilon);
	dp_validate_bounds(aggname, lower, upper);
	memset(&p, 0, sizeof(p));
	p.epsilon = epsilon;
	p.integer = integer;
	p.lower = lower;
	p.upper = upper;
	p.lower_int = lower_int;
	p.upper_int = upper_int;
	dp_sum_state_set_params(st, aggname, &p, false);
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
	PG_RETURN_INT64(dp_float8_to_int64_saturating(dp_release_sum_state(fcinfo, "count", &st)));
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
	PG_RETURN_INT64(dp_float8_to_int64_saturating(dp_release_sum_state(fcinfo, "sum", &st)));
}

static Datum
native_float(FunctionCallInfo fcinfo, const char *aggname, const char *kind)
{
	DpSumState	st;

	native_params(&st, aggname, false, PG_GETARG_FLOAT8(2), PG_GETARG_FLOAT8(3), 0, 0, PG_GETARG_FLOAT8(4));
	st.n = native_count_arg(fcinfo);
	native_set_sum(&st, fcinfo, 1);
	PG_RETURN_FLOAT8(dp_release_sum_state(fcinfo, kind, &st));
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
