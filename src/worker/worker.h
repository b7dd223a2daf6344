/*
 * worker.h -- the privileged executor as the rest of pg_dp sees it: one call
 * that hands a request of the current user to the executor and returns its reply.
 */
#ifndef PG_DP_WORKER_H
#define PG_DP_WORKER_H

#include "postgres.h"

/* One request of the current user (GetUserId) to its executor; the reply text. */
extern text *dp_executor_request(const char *kind, const char *payload);

#endif
