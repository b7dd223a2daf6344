/*
 * aggregates.h -- the dp_* aggregates, as the rest of pg_dp sees them.
 *
 * Every aggregate is one row of dp_aggregates[] (layout.c): its SQL name, the
 * kind its SQL support functions are named after (dp_internal.<kind>_trans,
 * dp_internal.<kind>_final, ...), the state it accumulates into, the release
 * kind of its final step, and where each privacy parameter sits among its
 * arguments.  The transition and final functions find their row from the name
 * of the SQL function they run as, so adding an aggregate is a row here plus its
 * SQL (extension/30_aggregates.sql, 90_comments.sql) and the release in the
 * engine.  The Citus rewrite (citus/citus.c) reads the same rows to name the
 * parameters it checks.
 */
#ifndef PG_DP_AGGREGATES_H
#define PG_DP_AGGREGATES_H

#include "postgres.h"

#include "nodes/primnodes.h"

typedef enum DpStateKind
{
	DP_SUM_STATE,				/* dp_internal.sum_state: count, 128-bit sums */
	DP_HIST_STATE				/* dp_internal.hist_state: 1025-candidate histogram */
} DpStateKind;

/* One dp_* aggregate.  Argument positions are 0-based among the aggregate's own arguments; -1: absent. */
typedef struct DpAggregate
{
	const char *kind;			/* prefix of its SQL support functions: "avg" -> avg_trans, avg_final */
	const char *name;			/* its SQL name in schema dp */
	DpStateKind state;
	const char *release;		/* what dp_internal.release computes from the state */
	bool		squares;		/* the state keeps the sum of squares too */
	int			base_nargs;		/* arguments without epsilon; -1: dp_count (value optional) */
	int			q_arg;
	int			lower_arg;
	int			upper_arg;
} DpAggregate;

/* The row of an aggregate by its SQL name ("dp_avg"), or NULL. */
extern const DpAggregate *dp_aggregate_by_name(const char *name);

/* The row of an aggregate by the kind prefix of a support function's name, or NULL. */
extern const DpAggregate *dp_aggregate_by_kind(const char *function_name);

/* Which argument is epsilon, for a call with nargs arguments; -1: none (epsilon 1.0). */
extern int	dp_aggregate_epsilon_arg(const DpAggregate *agg, int nargs);

/* "epsilon", "lower bound", "upper bound", "quantile" or "parameter" for argument argno. */
extern const char *dp_aggregate_param_name(const DpAggregate *agg, int argno, int nargs);

/*
 * The constancy check of a privacy parameter: an ERROR unless the expression
 * cannot depend on the rows (no columns, sub-queries, executor params,
 * aggregates or volatile functions; constants and $n parameters pass).
 */
extern void dp_check_param_constant(const char *aggname, const char *what, Expr *expr);

#endif
