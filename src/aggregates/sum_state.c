/*
 * sum_state.c -- dp_internal.sum_state, the state of dp_count, dp_sum, dp_avg,
 * dp_var and dp_stddev: the grid, the transition and combine functions, and the
 * text form (for partial aggregation across servers).
 *
 * Transition and combine functions run in C so that per-row work costs about
 * what a native aggregate costs (per-row work never runs in Python).  One transition function serves every aggregate of the state;
 * its row of the aggregate table (layout.c) says which parameters it reads.
 */
#include "postgres.h"

#include <math.h>

#include "utils/builtins.h"
#include "utils/float.h"

#include "aggregates/state.h"

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

void
dp_sum_state_set_params(DpSumState *st, const char *aggname, const DpParams *p, bool squares)
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

/* The state of a group's first row: its parameters, read from the call's arguments. */
static DpSumState *
sum_state_new(FunctionCallInfo fcinfo, MemoryContext aggctx, DpCallCache *cache)
{
	const DpAggregate *agg = cache->agg;
	DpSumState *st = MemoryContextAlloc(aggctx, sizeof(DpSumState));
	DpParams	p;

	dp_trans_check_params(fcinfo, cache);
	memset(&p, 0, sizeof(p));
	p.integer = cache->column != COLUMN_FLOAT8;
	p.epsilon = dp_trans_epsilon(fcinfo, agg);
	if (agg->lower_arg >= 0)
	{
		int			la = agg->lower_arg + 1,
					ua = agg->upper_arg + 1;

		dp_trans_bounds_not_null(fcinfo, agg);
		switch (cache->column)
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
		dp_validate_bounds(agg->name, p.lower, p.upper);
	}
	dp_sum_state_set_params(st, agg->name, &p, agg->squares);
	return st;
}

static inline DpSumState *
sum_trans_begin(FunctionCallInfo fcinfo, DpCallCache *cache)
{
	MemoryContext aggctx = dp_agg_context_or_error(fcinfo, cache->agg->name);

	if (!PG_ARGISNULL(0))
		return (DpSumState *) PG_GETARG_POINTER(0);
	return sum_state_new(fcinfo, aggctx, cache);
}

static inline void
sum_state_add(DpSumState *st, int64 q)
{
	int128		s1 = get128(st->s1_lo, st->s1_hi) + q;

	put128(s1, &st->s1_lo, &st->s1_hi);
	if (st->flags & SUMSTATE_SQUARES)
	{
		int128		s2 = get128(st->s2_lo, st->s2_hi) + (int128) q * q;

		put128(s2, &st->s2_lo, &st->s2_hi);
	}
	st->n++;
}

PG_FUNCTION_INFO_V1(dp_count_trans);
/* dp_count(*), dp_count(x), dp_count(x, epsilon) */
Datum
dp_count_trans(PG_FUNCTION_ARGS)
{
	DpSumState *st = sum_trans_begin(fcinfo, dp_call_cache(fcinfo));

	if (PG_NARGS() >= 2 && PG_ARGISNULL(1))
		PG_RETURN_POINTER(st);
	st->n++;
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(dp_sum_trans);
/*
 * The transition of dp_sum, dp_avg, dp_var and dp_stddev over double precision
 * (and numeric, cast to it), integer and bigint: (state, value, lower, upper
 * [, epsilon]).  Integers are clamped as they are (a grid of 1).
 */
Datum
dp_sum_trans(PG_FUNCTION_ARGS)
{
	DpCallCache *cache = dp_call_cache(fcinfo);
	DpSumState *st = sum_trans_begin(fcinfo, cache);
	int64		x;

	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(st);
	switch (cache->column)
	{
		case COLUMN_FLOAT8:
			if (isnan(PG_GETARG_FLOAT8(1)))
				PG_RETURN_POINTER(st);
			sum_state_add(st, float_to_units(st, PG_GETARG_FLOAT8(1)));
			PG_RETURN_POINTER(st);
		case COLUMN_INT4:
			x = PG_GETARG_INT32(1);
			break;
		default:
			x = PG_GETARG_INT64(1);
			break;
	}
	if (x < st->lower_units)
		x = st->lower_units;
	else if (x > st->upper_units)
		x = st->upper_units;
	sum_state_add(st, x);
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(dp_sum_state_combine);
Datum
dp_sum_state_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx = dp_agg_context_or_error(fcinfo, "dp_sum_state_combine");
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

PG_FUNCTION_INFO_V1(dp_sum_state_out);
/* (n,s1,s2,lower_units,upper_units,gexp,flags,epsilon): exact, for partial aggregation across servers */
Datum
dp_sum_state_out(PG_FUNCTION_ARGS)
{
	DpSumState *st = (DpSumState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "(" INT64_FORMAT ",", st->n);
	dp_append_int128(&buf, get128(st->s1_lo, st->s1_hi));
	appendStringInfoChar(&buf, ',');
	dp_append_int128(&buf, get128(st->s2_lo, st->s2_hi));
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

	dp_expect_char(&p, '(', type, input);
	st->n = (int64) dp_parse_int128(&p, type, input);
	dp_expect_char(&p, ',', type, input);
	put128(dp_parse_int128(&p, type, input), &st->s1_lo, &st->s1_hi);
	dp_expect_char(&p, ',', type, input);
	put128(dp_parse_int128(&p, type, input), &st->s2_lo, &st->s2_hi);
	dp_expect_char(&p, ',', type, input);
	st->lower_units = (int64) dp_parse_int128(&p, type, input);
	dp_expect_char(&p, ',', type, input);
	st->upper_units = (int64) dp_parse_int128(&p, type, input);
	dp_expect_char(&p, ',', type, input);
	v = dp_parse_int128(&p, type, input);
	if (v < -1100 || v > 1100)
		dp_bad_state_input(type, input);
	st->gexp = (int32) v;
	dp_expect_char(&p, ',', type, input);
	v = dp_parse_int128(&p, type, input);
	if (v < 0 || v > 3)
		dp_bad_state_input(type, input);
	st->flags = (int32) v;
	dp_expect_char(&p, ',', type, input);
	st->epsilon = dp_parse_float8(&p, type, input);
	dp_expect_char(&p, ')', type, input);
	if (*p != '\0' || st->n < 0 || st->lower_units > st->upper_units)
		dp_bad_state_input(type, input);
	dp_validate_epsilon("dp_internal.sum_state", st->epsilon);
	st->inv_grid = ldexp(1.0, -st->gexp);
	PG_RETURN_POINTER(st);
}
