/*
 * hist_state.c -- dp_internal.hist_state, the state of dp_quantile and
 * dp_median: rows snapped to QUANTILE_CANDIDATES points between the bounds;
 * transition, combine and text form.
 */
#include "postgres.h"

#include <math.h>

#include "utils/builtins.h"
#include "utils/float.h"

#include "aggregates/state.h"

PG_FUNCTION_INFO_V1(dp_hist_trans);
/* The transition of dp_quantile and dp_median: (state, value, [q,] lower, upper [, epsilon]). */
Datum
dp_hist_trans(PG_FUNCTION_ARGS)
{
	DpCallCache *cache = dp_call_cache(fcinfo);
	const DpAggregate *agg = cache->agg;
	MemoryContext aggctx = dp_agg_context_or_error(fcinfo, agg->name);
	DpHistState *st;
	float8		x;
	int			idx;

	if (PG_ARGISNULL(0))
	{
		float8		epsilon,
					lower,
					upper,
					q = 0.5;

		dp_trans_check_params(fcinfo, cache);
		epsilon = dp_trans_epsilon(fcinfo, agg);
		dp_trans_bounds_not_null(fcinfo, agg);
		lower = PG_GETARG_FLOAT8(agg->lower_arg + 1);
		upper = PG_GETARG_FLOAT8(agg->upper_arg + 1);
		dp_validate_bounds(agg->name, lower, upper);
		if (agg->q_arg >= 0)
		{
			if (PG_ARGISNULL(agg->q_arg + 1))
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("quantile of %s must not be NULL", agg->name),
						 errhint("Use 0.5 for the median.")));
			q = PG_GETARG_FLOAT8(agg->q_arg + 1);
			dp_validate_q(q);
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

PG_FUNCTION_INFO_V1(dp_hist_state_combine);
Datum
dp_hist_state_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx = dp_agg_context_or_error(fcinfo, "dp_hist_state_combine");
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

	dp_expect_char(&p, '(', type, input);
	lower = dp_parse_float8(&p, type, input);
	dp_expect_char(&p, ',', type, input);
	upper = dp_parse_float8(&p, type, input);
	dp_expect_char(&p, ',', type, input);
	epsilon = dp_parse_float8(&p, type, input);
	dp_expect_char(&p, ',', type, input);
	q = dp_parse_float8(&p, type, input);
	dp_expect_char(&p, ',', type, input);
	ncand = dp_parse_int128(&p, type, input);
	dp_expect_char(&p, ';', type, input);
	if (ncand != QUANTILE_CANDIDATES)
		dp_bad_state_input(type, input);
	dp_validate_bounds("dp_internal.hist_state", lower, upper);
	dp_validate_epsilon("dp_internal.hist_state", epsilon);
	dp_validate_q(q);
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
		i = dp_parse_int128(&p, type, input);
		dp_expect_char(&p, ':', type, input);
		c = dp_parse_int128(&p, type, input);
		if (i < 0 || i >= ncand || c < 0 || c > PG_INT64_MAX / 2)
			dp_bad_state_input(type, input);
		st->counts[i] += (int64) c;
		st->n += (int64) c;
	}
	dp_expect_char(&p, ')', type, input);
	if (*p != '\0')
		dp_bad_state_input(type, input);
	PG_RETURN_POINTER(st);
}
