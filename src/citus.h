/* citus.c: pg_dp's parse hook on a database with Citus. */
#ifndef PG_DP_CITUS_H
#define PG_DP_CITUS_H

#include "nodes/parsenodes.h"

extern void pg_dp_citus_init(void);
extern bool pg_dp_citus_internal_connection(void);
extern void pg_dp_citus_rewrite_counts(Query *query);

#endif
