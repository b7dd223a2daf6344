/*
 * worker.h -- the privileged executor as the rest of pg_dp sees it: one call
 * that hands a request of the current user to the executor and returns its reply.
 */
#ifndef PG_DP_WORKER_H
#define PG_DP_WORKER_H

#include "postgres.h"

#include "nodes/pg_list.h"

/* One request of the current user (GetUserId) to its executor; the reply text. */
extern text *dp_executor_request(const char *kind, const char *payload);

/* The fields of a reply of several fields (src/worker/reply.c), as C strings. */
extern List *dp_reply_fields(text *reply);

#endif
