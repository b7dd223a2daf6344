/*
 * executor.h -- the privileged executor's interface to the rest of pg_dp.
 */
#ifndef PG_DP_EXECUTOR_H
#define PG_DP_EXECUTOR_H

#include "postgres.h"

/* One request of the current user (GetUserId) to its executor; the reply text. */
extern text *dp_executor_request(const char *kind, const char *payload);

#endif
