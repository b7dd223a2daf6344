/*
 * opendp.h -- OpenDP's samplers and privacy maps through its C ABI (opendp.c),
 * for the final step of the aggregates (release.c).
 */
#ifndef PG_DP_AGGREGATES_OPENDP_H
#define PG_DP_AGGREGATES_OPENDP_H

#include "postgres.h"

/* Whether OpenDP's library is loaded (on first call); false: release in Python instead. */
extern bool dp_opendp_available(void);

/* Scale of discrete Laplace noise giving epsilon-DP for an integer query of this sensitivity. */
extern double dp_opendp_laplace_scale(int64 sensitivity, double epsilon);

/* One discrete Laplace draw of this scale (from a batch; each draw is used once). */
extern int64 dp_opendp_laplace_draw(double scale);

/* Scale of report-noisy-min giving epsilon-DP for scores of this sensitivity. */
extern double dp_opendp_noisy_min_scale(int64 sensitivity, double epsilon);

/* The index of a low score, chosen by OpenDP's report noisy max on the negated scores. */
extern size_t dp_opendp_noisy_argmin(const int64 *scores, size_t n, double scale);

#endif
