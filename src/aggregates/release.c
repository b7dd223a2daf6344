/*
 * release.c -- the noisy answer of one group from its exact statistics, in C:
 * the mathematics of the engine's release (python_udfs/pg_dp/release.py and
 * mechanisms.laplace_integer), line for line, with OpenDP's samplers and maps
 * reached through its C ABI (opendp.c).  Used by the final functions (final.c)
 * when OpenDP's library is loaded; otherwise they call the engine.
 *
 * Statistics are exact integers (sums of values on a 2^gexp grid, in grid
 * units), so every mechanism is an integer mechanism with an exact
 * sensitivity.  Per release (add/remove one row):
 *   count     n + Lap(1/eps)
 *   sum       S + Lap(max(|L|,|H|)/eps)
 *   avg       noisy count (eps/2) and noisy centred sum (eps/2)
 *   var       noisy count, centred sum and centred sum of squares (eps/3 each)
 *   stddev    sqrt of var
 *   quantile  report noisy min over the candidates' scores (exponential mechanism)
 */
#include "postgres.h"

#include <math.h>

#include "aggregates/opendp.h"
#include "aggregates/release.h"

#define SENSITIVITY_BITS		32	/* mechanisms.SENSITIVITY_BITS */
#define QUANTILE_DENOMINATOR	10000	/* release.QUANTILE_DENOMINATOR */

static void
too_large(const char *aggname)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("the exact statistics of %s are too large to release", aggname),
			 errhint("Narrow the bounds or the rows of a group.")));
}

static int128
mul(int128 a, int128 b)
{
	int128		r;

	if (__builtin_mul_overflow(a, b, &r))
		too_large("this aggregate");
	return r;
}

static int128
add(int128 a, int128 b)
{
	int128		r;

	if (__builtin_add_overflow(a, b, &r))
		too_large("this aggregate");
	return r;
}

static int
bit_length(int128 x)
{
	uint128		u = x < 0 ? -(uint128) x : (uint128) x;
	int			n = 0;

	while (u != 0)
	{
		n++;
		u >>= 1;
	}
	return n;
}

/*
 * Release an exact integer statistic with epsilon-DP (discrete Laplace).  Huge
 * statistics are first rounded to units of 2^s so that the sensitivity is
 * below 2^SENSITIVITY_BITS; rounding adds at most one unit to it, accounted for.
 */
static int128
laplace_integer(int128 value, int128 sensitivity, double epsilon)
{
	int			shift;
	int128		coarse;
	int128		coarse_sensitivity;
	double		scale;

	if (sensitivity < 0)
		elog(ERROR, "pg_dp: negative sensitivity");
	if (sensitivity == 0)
		return value;
	shift = Max(0, bit_length(sensitivity) - SENSITIVITY_BITS);
	if (shift > 0)
	{
		coarse = add(value, (int128) 1 << (shift - 1)) >> shift;	/* floor, as Python's >> */
		coarse_sensitivity = -((-sensitivity) >> shift) + 1;
	}
	else
	{
		coarse = value;
		coarse_sensitivity = sensitivity;
	}
	scale = dp_opendp_laplace_scale((int64) coarse_sensitivity, epsilon);
	return mul(add(coarse, dp_opendp_laplace_draw(scale)), (int128) 1 << shift);
}

static double
clamp(double x, double lo, double hi)
{
	return x < lo ? lo : (x > hi ? hi : x);
}

static double
release_avg(int128 n, int128 s1, int128 lower_units, int128 upper_units, double epsilon, double grid)
{
	int128		width = upper_units - lower_units;
	int128		centre = lower_units + upper_units;	/* in half-units */
	int128		noisy_n = laplace_integer(n, 1, epsilon / 2);
	int128		centred = add(mul(2, s1), -mul(centre, n));	/* sum of (2q - L - H) */
	int128		noisy_centred = laplace_integer(centred, width, epsilon / 2);
	double		lower = (double) lower_units * grid;
	double		upper = (double) upper_units * grid;
	double		mean = (double) centre * grid / 2 +
		((double) noisy_centred * grid / 2) / (double) Max(noisy_n, 1);

	return clamp(mean, lower, upper);
}

static double
release_var(int128 n, int128 s1, int128 s2, int128 lower_units, int128 upper_units, double epsilon,
			double grid)
{
	int128		width = upper_units - lower_units;
	int128		centre = lower_units + upper_units;
	int128		noisy_n = laplace_integer(n, 1, epsilon / 3);
	int128		centred = add(mul(2, s1), -mul(centre, n));
	int128		squares = add(add(mul(4, s2), -mul(mul(4, centre), s1)), mul(mul(n, centre), centre));
	int128		noisy_centred = laplace_integer(centred, width, epsilon / 3);
	int128		noisy_squares = laplace_integer(squares, mul(width, width), epsilon / 3);
	double		half,
				mean_c,
				pop_var,
				var;

	if (noisy_n < 2)
		return 0.0;
	half = grid / 2;
	mean_c = (double) noisy_centred * half / (double) noisy_n;
	pop_var = (double) noisy_squares * half * half / (double) noisy_n - mean_c * mean_c;
	var = pop_var * (double) noisy_n / (double) (noisy_n - 1);
	return clamp(var, 0.0, pow((double) width * grid, 2) / 4);
}

double
dp_release_sum_stats(const char *kind, int128 n, int128 s1, int128 s2, int128 lower_units,
					 int128 upper_units, int gexp, double epsilon)
{
	double		grid = ldexp(1.0, gexp);

	if (strcmp(kind, "count") == 0)
	{
		int128		noisy = laplace_integer(n, 1, epsilon);

		return (double) Max(noisy, 0);
	}
	if (strcmp(kind, "sum") == 0)
	{
		int128		sensitivity = Max(lower_units < 0 ? -lower_units : lower_units,
									  upper_units < 0 ? -upper_units : upper_units);

		return ldexp((double) laplace_integer(s1, sensitivity, epsilon), gexp);	/* inf beyond float8 */
	}
	if (strcmp(kind, "avg") == 0)
		return release_avg(n, s1, lower_units, upper_units, epsilon, grid);
	if (strcmp(kind, "var") == 0)
		return release_var(n, s1, s2, lower_units, upper_units, epsilon, grid);
	if (strcmp(kind, "stddev") == 0)
		return sqrt(release_var(n, s1, s2, lower_units, upper_units, epsilon, grid));
	elog(ERROR, "pg_dp: unknown release kind \"%s\"", kind);
	return 0;					/* keep compiler quiet */
}

double
dp_release_quantile(const int64 *counts, int ncand, double epsilon, double lower, double upper, double q)
{
	int			num = (int) rint(q * QUANTILE_DENOMINATOR);
	int			den = QUANTILE_DENOMINATOR;
	int128		total = 0;
	int128		below = 0;
	int64	   *scores = palloc(sizeof(int64) * ncand);
	size_t		index;

	for (int i = 0; i < ncand; i++)
		total += counts[i];
	/* |(1-a)#{x<c} - a#{x>c}| per candidate c, in units of 1/den */
	for (int i = 0; i < ncand; i++)
	{
		int128		above = total - below - counts[i];
		int128		score = mul(den - num, below) - mul(num, above);

		if (score < 0)
			score = -score;
		if (score > PG_INT64_MAX)
			too_large("dp_quantile");
		scores[i] = (int64) score;
		below += counts[i];
	}
	index = dp_opendp_noisy_argmin(scores, ncand,
								   dp_opendp_noisy_min_scale(Max(num, den - num), epsilon));
	pfree(scores);
	if (ncand == 1)
		return lower;
	return lower + (upper - lower) * (double) index / (double) (ncand - 1);
}
