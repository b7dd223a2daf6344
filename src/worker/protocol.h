/*
 * protocol.h -- between a session and its executor: the shared segment, its
 * state word, and the messages of its two queues.
 *
 * A request (session -> executor): int32 role, then the kind and the payload as
 * NUL-terminated strings (pq_sendint32 / pq_sendstring).  A reply (executor ->
 * session): libpq's 'N' (notice) and 'E' (error) messages, as ereport() writes
 * them through pq_redirect_to_shm_mq, and MSG_REPLY followed by the reply text.
 */
#ifndef PG_DP_WORKER_PROTOCOL_H
#define PG_DP_WORKER_PROTOCOL_H

#include "postgres.h"

#include "port/atomics.h"
#include "storage/dsm.h"
#include "storage/shm_mq.h"

#define EXECUTOR_MAGIC		0x70676470	/* "pgdp" */
#define EXECUTOR_QUEUE_SIZE	(64 * 1024)
#define EXECUTOR_IDLE_MS	(60 * 1000)

/* message type of the reply queue besides libpq's 'E' (error) and 'N' (notice) */
#define MSG_REPLY		'R'

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

/* ------------------------------------------------------------------------
 * The pool (pool.c): a session's segment, mapped by whichever executor serves
 * its request.  The backend writes the request (kind and payload, each
 * NUL-terminated) and creates the reply queue before it enqueues the request;
 * the executor serves it only when the header names the queue entry's backend,
 * nonce and request id.  The role is not in the segment: it is in the queue
 * entry, written by the backend's C code.
 * ------------------------------------------------------------------------ */

#define POOL_SEGMENT_MAGIC	0x70647071	/* "pdpq" */
#define POOL_REPLY_QUEUE_SIZE	(64 * 1024)

typedef struct PoolSegment
{
	uint32		magic;
	pid_t		backend_pid;
	uint64		nonce;			/* random, per segment */
	uint64		request_id;		/* the request it carries now */
	pid_t		executor_pid;	/* written by the executor that serves it */
	Size		request_len;	/* bytes of kind\0payload\0 */
	Size		request_capacity;
	/* then: the request's bytes (request_capacity), the reply queue (POOL_REPLY_QUEUE_SIZE) */
} PoolSegment;

#define POOL_SEGMENT_HEADER_SIZE	MAXALIGN(sizeof(PoolSegment))

static inline Size
pool_segment_size(Size capacity)
{
	return POOL_SEGMENT_HEADER_SIZE + MAXALIGN(capacity) + POOL_REPLY_QUEUE_SIZE;
}

static inline char *
pool_segment_request(PoolSegment *segment)
{
	return (char *) segment + POOL_SEGMENT_HEADER_SIZE;
}

static inline shm_mq *
pool_segment_replies(PoolSegment *segment)
{
	return (shm_mq *) ((char *) segment + POOL_SEGMENT_HEADER_SIZE + MAXALIGN(segment->request_capacity));
}

/* Request kinds only an executor makes itself: never accepted from a session. */
static inline bool
internal_request_kind(const char *kind)
{
	return strcmp(kind, "continue") == 0 || strcmp(kind, "warmup") == 0;
}

#endif
