/*
 * release.h -- the noisy answer of one group from its exact statistics, in C
 * with OpenDP's library (release.c); the final functions (final.c) use it.
 */
#ifndef PG_DP_AGGREGATES_RELEASE_H
#define PG_DP_AGGREGATES_RELEASE_H

#include "postgres.h"

/* count, sum, avg, var, stddev from the sum state's statistics (grid units, 2^gexp) */
extern double dp_release_sum_stats(const char *kind, int128 n, int128 s1, int128 s2, int128 lower_units,
								   int128 upper_units, int gexp, double epsilon);

/* a quantile from the rows snapped to each of ncand candidates between the bounds */
extern double dp_release_quantile(const int64 *counts, int ncand, double epsilon, double lower, double upper,
								  double q);

#endif
