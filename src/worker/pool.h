/*
 * pool.h -- the shared executor pool (pool.c): its queue in the server's shared
 * memory, as the session side (session.c) and the executors (serve.c) use it.
 * Only when pg_dp is in shared_preload_libraries; dp_pool_enabled() says so.
 */
#ifndef PG_DP_WORKER_POOL_H
#define PG_DP_WORKER_POOL_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/dsm.h"

/* lanes: questions, and the smaller one of synthesis runs */
#define POOL_LANE_QUESTIONS	0
#define POOL_LANE_SYNTHESIS	1
#define POOL_LANES			2

/* how long a free request may wait for its turn under the rate limit before it is refused */
#define POOL_MAX_THROTTLE_SECONDS	10.0

/* states of a queue entry (dp_pool_request_state) */
#define POOL_REQUEST_FREE		0
#define POOL_REQUEST_QUEUED		1
#define POOL_REQUEST_RUNNING	2

/* In the postmaster, from _PG_init: shared memory, and the executors it starts. */
extern void dp_pool_init(void);

/* Whether this server runs the pool (pg_dp in shared_preload_libraries). */
extern bool dp_pool_enabled(void);

/* ---- the session side (session.c) ---- */

/* A request as the caller's backend enqueues it; role, database and owner are the backend's own. */
typedef struct PoolSubmit
{
	int			lane;
	bool		free_kind;		/* dp.cost, dp.explain: counted by the rate limit */
	Oid			role;
	Oid			database;
	Oid			owner;
	dsm_handle	handle;			/* the caller's segment (protocol.h, PoolSegment) */
	uint64		nonce;			/* the segment's */
	uint64		id;				/* dp_pool_next_id() */
} PoolSubmit;

extern uint64 dp_pool_next_id(void);

/*
 * The rate limit on free requests: the seconds this request must wait for its
 * turn (0: none), its token taken; an ERROR when the wait would be longer than
 * POOL_MAX_THROTTLE_SECONDS.
 */
extern double dp_pool_admit(Oid role, bool free_kind);

/* Enqueue (an ERROR when the role has too many requests waiting) and wake an executor. */
extern void dp_pool_submit(const PoolSubmit *request);

/*
 * Whether this backend's queue entry is free: a request it gave up, or one of an
 * earlier backend of the same PGPROC that exited, may still be finishing.
 */
extern bool dp_pool_entry_free(void);

/* Whether any executor of the lane runs (none: pg_dp.executors more than max_worker_processes allows). */
extern bool dp_pool_lane_running(int lane);

/* The state of this backend's request `id`, and the PID of the executor serving it (RUNNING). */
extern int	dp_pool_request_state(uint64 id, pid_t *executor_pid);

/*
 * The caller gives up its request `id` (a cancel, a timeout, an error, its
 * exit): out of the queue at once if it waits; stopped if an executor runs it.
 */
extern void dp_pool_abandon(uint64 id);

/* A request that ended with an error (a refusal) counts as a free request of its role. */
extern void dp_pool_debit(Oid role);

/* ---- the executors' side (serve.c) ---- */

/* What an executor is given to serve. */
typedef struct PoolAssignment
{
	int			entry;			/* index of the queue entry */
	uint64		id;
	int			lane;
	Oid			role;			/* written by the caller's backend from its own state */
	pid_t		backend_pid;
	dsm_handle	handle;
	uint64		nonce;
} PoolAssignment;

typedef enum PoolNext
{
	POOL_NOTHING,				/* wait */
	POOL_SERVE,					/* serve the assignment */
	POOL_LEAVE					/* exit, to be started again for another database */
} PoolNext;

/* This executor's lane (fixed by its index). */
extern int	dp_pool_worker_lane(int index);

/* The executor process starts: its slot; true when its last process failed (it waits a little). */
extern bool dp_pool_worker_start(int index);

/* An unbound executor: the database and owner to connect to, or false to wait. */
extern bool dp_pool_worker_choose(int index, Oid *database, Oid *owner);

/* Connected and warm: from now on it takes requests of its database. */
extern void dp_pool_worker_ready(int index);

/* The next request for this executor, or what else it should do. */
extern PoolNext dp_pool_worker_next(int index, PoolAssignment *assignment);

/* The request is over (answered, failed or abandoned). */
extern void dp_pool_worker_finish(int index, const PoolAssignment *assignment);

/* Whether the caller abandoned the request this executor serves. */
extern bool dp_pool_worker_abandoned(int index, uint64 id);

/* The executor leaves its database (dropped or renamed, or another one needs it). */
extern void dp_pool_worker_leave(int index, bool forget_database);

/* Exit callback of an executor: its slot free, its request (if any) released. */
extern void dp_pool_worker_exit(int index, bool on_purpose);

#endif
