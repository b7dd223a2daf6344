/*
 * state.h -- inside src/aggregates/: the aggregate states, the parameters of one
 * aggregation, and what the files of this folder share.
 *
 * Exactness: every clamped value is put on a power-of-two grid before it is
 * summed, and sums are kept in 128-bit integers, so the sensitivity the engine
 * uses is exactly what the mathematics says (no floating-point accumulation
 * error an attacker could exploit).
 */
#ifndef PG_DP_AGGREGATES_STATE_H
#define PG_DP_AGGREGATES_STATE_H

#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "lib/stringinfo.h"

#include "aggregates/aggregates.h"

#ifndef HAVE_INT128
#error "pg_dp needs a compiler with 128-bit integers"
#endif

/* Values are quantised to multiples of 2^gexp, with max(|lower|,|upper|) < 2^GRID_BITS units. */
#define GRID_BITS 40
/* Number of candidate points of the quantile mechanism (grid over [lower, upper]). */
#define QUANTILE_CANDIDATES 1025
#define DEFAULT_EPSILON 1.0

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

/* The privacy parameters of one aggregation. */
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

/* Argument type of an accumulated column. */
typedef enum ColumnKind
{
	COLUMN_FLOAT8,
	COLUMN_INT4,
	COLUMN_INT8,
	COLUMN_ANY					/* dp_count: the value is not read */
} ColumnKind;

/*
 * What a support function (transition or final) knows about its calls, kept in
 * its FmgrInfo's fn_extra for the whole query: its aggregate's row, found once
 * from the SQL function's name.
 */
typedef struct DpCallCache
{
	const DpAggregate *agg;
	ColumnKind column;			/* transition: the value argument's type */
	bool		integer_result; /* final: it returns bigint */
	bool		checked;		/* transition: parameters checked for constancy */
	bool		have_release;
	FmgrInfo	release;		/* final: dp_internal.release */
	bool		have_params;
	DpParams	params;			/* final: for groups that saw no row */
} DpCallCache;

/* layout.c: validity of parameter values */
extern void dp_validate_epsilon(const char *aggname, float8 epsilon);
extern void dp_validate_bounds(const char *aggname, float8 lower, float8 upper);
extern void dp_validate_q(float8 q);

/* params.c: the call's aggregate and its parameters */
extern DpCallCache *dp_call_cache(FunctionCallInfo fcinfo);
extern MemoryContext dp_agg_context_or_error(FunctionCallInfo fcinfo, const char *aggname);
extern void dp_trans_check_params(FunctionCallInfo fcinfo, DpCallCache *cache);
extern float8 dp_trans_epsilon(FunctionCallInfo fcinfo, const DpAggregate *agg);
extern void dp_trans_bounds_not_null(FunctionCallInfo fcinfo, const DpAggregate *agg);
extern void dp_params_from_query(FunctionCallInfo fcinfo, const DpAggregate *agg, DpParams *p);

/* sum_state.c */
extern void dp_sum_state_set_params(DpSumState *st, const char *aggname, const DpParams *p, bool squares);

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

/* final.c: exact statistics of one group -> noisy value */
extern float8 dp_release_sum_state(FunctionCallInfo fcinfo, const char *kind, DpSumState *st);
extern int64 dp_float8_to_int64_saturating(float8 v);

/* state_text.c: the text forms of the states */
extern void dp_append_int128(StringInfo buf, int128 v);
extern char *dp_int128_to_text(int128 v);
extern void dp_bad_state_input(const char *type, const char *input) pg_attribute_noreturn();
extern int128 dp_parse_int128(char **p, const char *type, const char *input);
extern float8 dp_parse_float8(char **p, const char *type, const char *input);
extern void dp_expect_char(char **p, char c, const char *type, const char *input);

#endif
