/*
 * final.c -- the final step of the dp_* aggregates: the exact statistics of one
 * group get their OpenDP noise, once per group: in C through OpenDP's library
 * (release.c) when it is loaded, else from the engine's dp_internal.release
 * (Python, the same mechanisms), which costs a backend's first call the
 * engine's import.
 * One final function per state serves every aggregate of it; its row of the
 * aggregate table (layout.c) says which release it asks for, and its SQL return
 * type whether the answer is a bigint.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "aggregates/opendp.h"
#include "aggregates/release.h"
#include "aggregates/state.h"

/* dp_internal.release(kind text, stats text[], params float8[]) in the extension's own schema. */
static FmgrInfo *
release_function(FunctionCallInfo fcinfo)
{
	DpCallCache *cache = (DpCallCache *) fcinfo->flinfo->fn_extra;

	if (cache == NULL)
	{
		/* a function that releases but is no aggregate's (native.c) */
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(DpCallCache));
		fcinfo->flinfo->fn_extra = cache;
	}
	if (!cache->have_release)
	{
		Oid			nsp = get_func_namespace(fcinfo->flinfo->fn_oid);
		Oid			argtypes[3] = {TEXTOID, TEXTARRAYOID, FLOAT8ARRAYOID};
		List	   *name = list_make2(makeString(get_namespace_name(nsp)), makeString("release"));
		Oid			fn = LookupFuncName(name, 3, argtypes, false);

		fmgr_info_cxt(fn, &cache->release, fcinfo->flinfo->fn_mcxt);
		cache->have_release = true;
	}
	return &cache->release;
}

static void
final_context_check(FunctionCallInfo fcinfo, const DpAggregate *agg)
{
	if (AggCheckCallContext(fcinfo, NULL) == AGG_CONTEXT_WINDOW)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot be used as a window function", agg->name),
				 errhint("Use it as a plain aggregate, with GROUP BY if needed.")));
}

static const DpParams *
final_params(FunctionCallInfo fcinfo, DpCallCache *cache)
{
	if (!cache->have_params)
	{
		dp_params_from_query(fcinfo, cache->agg, &cache->params);
		cache->have_params = true;
	}
	return &cache->params;
}

static float8
call_release(FunctionCallInfo fcinfo, const char *kind, Datum *stats, int nstats,
			 float8 *params, int nparams)
{
	FmgrInfo   *release = release_function(fcinfo);
	Datum	   *pd = palloc(sizeof(Datum) * nparams);
	ArrayType  *sa,
			   *pa;
	int			i;

	for (i = 0; i < nparams; i++)
		pd[i] = Float8GetDatum(params[i]);
	sa = construct_array(stats, nstats, TEXTOID, -1, false, TYPALIGN_INT);
	pa = construct_array(pd, nparams, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	return DatumGetFloat8(FunctionCall3(release,
										CStringGetTextDatum(kind),
										PointerGetDatum(sa),
										PointerGetDatum(pa)));
}

static Datum
int128_text_datum(int128 v)
{
	return CStringGetTextDatum(dp_int128_to_text(v));
}

float8
dp_release_sum_state(FunctionCallInfo fcinfo, const char *kind, DpSumState *st)
{
	Datum		stats[5];
	float8		params[2];

	if (dp_opendp_available())
		return dp_release_sum_stats(kind, (int128) st->n, get128(st->s1_lo, st->s1_hi),
									get128(st->s2_lo, st->s2_hi), (int128) st->lower_units,
									(int128) st->upper_units, st->gexp, st->epsilon);
	stats[0] = int128_text_datum((int128) st->n);
	stats[1] = int128_text_datum(get128(st->s1_lo, st->s1_hi));
	stats[2] = int128_text_datum(get128(st->s2_lo, st->s2_hi));
	stats[3] = int128_text_datum((int128) st->lower_units);
	stats[4] = int128_text_datum((int128) st->upper_units);
	params[0] = st->epsilon;
	params[1] = (float8) st->gexp;
	return call_release(fcinfo, kind, stats, 5, params, 2);
}

int64
dp_float8_to_int64_saturating(float8 v)
{
	if (isnan(v))
		return 0;
	if (v >= (float8) PG_INT64_MAX)
		return PG_INT64_MAX;
	if (v <= (float8) PG_INT64_MIN)
		return PG_INT64_MIN;
	return (int64) rint(v);
}

PG_FUNCTION_INFO_V1(dp_sum_state_final);
/* The final function of dp_count, dp_sum, dp_avg, dp_var and dp_stddev. */
Datum
dp_sum_state_final(PG_FUNCTION_ARGS)
{
	DpCallCache *cache = dp_call_cache(fcinfo);
	const DpAggregate *agg = cache->agg;
	DpSumState *st;
	float8		answer;

	final_context_check(fcinfo, agg);
	if (!PG_ARGISNULL(0))
		st = (DpSumState *) PG_GETARG_POINTER(0);
	else
	{
		/* no row reached this group: an empty state with the query's parameters */
		DpParams	p = *final_params(fcinfo, cache);

		if (cache->integer_result && !p.integer && agg->lower_arg >= 0)
		{
			p.integer = true;
			p.lower_int = (int64) p.lower;
			p.upper_int = (int64) p.upper;
		}
		if (agg->lower_arg < 0)
			p.integer = true;
		st = palloc(sizeof(DpSumState));
		dp_sum_state_set_params(st, agg->name, &p, agg->squares);
	}
	answer = dp_release_sum_state(fcinfo, agg->release, st);
	if (cache->integer_result)
		PG_RETURN_INT64(dp_float8_to_int64_saturating(answer));
	PG_RETURN_FLOAT8(answer);
}

PG_FUNCTION_INFO_V1(dp_hist_state_final);
/* The final function of dp_quantile and dp_median. */
Datum
dp_hist_state_final(PG_FUNCTION_ARGS)
{
	DpCallCache *cache = dp_call_cache(fcinfo);
	const DpAggregate *agg = cache->agg;
	DpHistState *st;
	Datum	   *stats;
	float8		params[4];
	int			i;

	final_context_check(fcinfo, agg);
	if (PG_ARGISNULL(0))
	{
		const DpParams *p = final_params(fcinfo, cache);

		st = palloc0(HIST_SIZE(QUANTILE_CANDIDATES));
		st->ncand = QUANTILE_CANDIDATES;
		st->lower = p->lower;
		st->upper = p->upper;
		st->epsilon = p->epsilon;
		st->q = p->q;
	}
	else
		st = (DpHistState *) PG_GETARG_POINTER(0);

	if (dp_opendp_available())
		PG_RETURN_FLOAT8(dp_release_quantile(st->counts, st->ncand, st->epsilon, st->lower, st->upper, st->q));
	stats = palloc(sizeof(Datum) * (st->ncand + 1));
	stats[0] = int128_text_datum((int128) st->n);
	for (i = 0; i < st->ncand; i++)
		stats[i + 1] = int128_text_datum((int128) st->counts[i]);
	params[0] = st->epsilon;
	params[1] = st->lower;
	params[2] = st->upper;
	params[3] = st->q;
	PG_RETURN_FLOAT8(call_release(fcinfo, agg->release, stats, st->ncand + 1, params, 4));
}
