/*
 * executor.h -- the privileged executor's interface to the rest of pg_dp.
 */
#ifndef PG_DP_EXECUTOR_H
#define PG_DP_EXECUTOR_H

#include "postgres.h"

#include "port/atomics.h"
#include "storage/dsm.h"
#include "storage/shm_mq.h"

/* One request of the current user (GetUserId) to its executor; the reply text. */
extern text *dp_executor_request(const char *kind, const char *payload);

/* ------------------------------------------------------------------------
 * Between executor.c (requests, the serving loop) and spares.c (warm spares)
 * ------------------------------------------------------------------------ */

#define EXECUTOR_MAGIC		0x70676470	/* "pgdp" */
#define EXECUTOR_QUEUE_SIZE	(64 * 1024)
#define EXECUTOR_IDLE_MS	(60 * 1000)

/* states of the segment's state word */
#define STATE_IDLE		0			/* waiting for a request */
#define STATE_BUSY		1			/* a request was claimed by the caller */
#define STATE_RETIRED	2			/* the worker left after idling */
#define STATE_WARMING	3			/* a spare, loading the engine: no session yet */
#define STATE_SPARE		4			/* a spare, warm, waiting for a session to adopt it */

typedef struct ExecutorShared
{
	uint32		magic;
	pg_atomic_uint32 state;
	Oid			database;
	Oid			owner;			/* the worker connects as this role */
	pid_t		caller_pid;
	pid_t		executor_pid;	/* set by the executor once it runs */
	uint64		nonce;			/* a spare's: its registry entry names it too */
	Size		queue_size;
	/* then: the request queue, the reply queue */
} ExecutorShared;

#define EXECUTOR_HEADER_SIZE	MAXALIGN(sizeof(ExecutorShared))
#define EXECUTOR_SEGMENT_SIZE	(EXECUTOR_HEADER_SIZE + 2 * (Size) EXECUTOR_QUEUE_SIZE)

static inline shm_mq *
request_queue(ExecutorShared *shared)
{
	return (shm_mq *) ((char *) shared + EXECUTOR_HEADER_SIZE);
}

static inline shm_mq *
reply_queue(ExecutorShared *shared)
{
	return (shm_mq *) ((char *) shared + EXECUTOR_HEADER_SIZE + shared->queue_size);
}

/* executor.c: the executor process */
extern void dp_executor_process_init(void);
extern void dp_executor_pin_settings(void);
extern void dp_executor_serve(dsm_segment *seg, ExecutorShared *shared,
							  shm_mq_handle *requests, shm_mq_handle *replies) pg_attribute_noreturn();

/* spares.c: warm executors that a new session adopts instead of starting one */
extern int	dp_executor_spares;
extern void dp_spares_init(void);
extern dsm_segment *dp_spare_adopt(Oid owner);
extern void dp_spare_replenish(Oid owner);
extern bool dp_spare_retire_one(void);
extern void dp_executor_terminate(ExecutorShared *shared);

#endif
