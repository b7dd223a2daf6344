/*
 * session.c -- the privileged executor, the session's side: starting or adopting
 * the session's executor, sending a request, waiting for its reply and
 * re-raising its notices and errors.  The executor's side is serve.c.
 *
 * The privileged executor is pg_dp's only path to raw rows.
 *
 * An analyst's backend never reads a protected table, never holds a privileged
 * connection and never runs SQL as the extension owner (the security model, docs).  It
 * hands each request -- a DP query, a cost estimate, a synthesis -- to a
 * background worker of its own, started on first use and connected to the same
 * database as the extension's owner, and receives only the released answer.
 *
 *   analyst backend                          executor (bgworker, extension owner)
 *   dp_internal.executor_call(kind, payload)
 *     -- request: caller role, kind, payload -->  pinned settings (search_path
 *                                                without user schemas, standard
 *                                                strings, ISO dates, UTC, ...)
 *                                                txn 1: check, plan, charge; COMMIT
 *                                                txn 2: exact query, noise; COMMIT
 *     <-- NOTICEs, then the reply or one error --
 *
 * The caller's role is taken here, from the backend's own state (GetUserId:
 * the current user, also inside a SECURITY DEFINER function, so that a role's
 * function cannot spend the budget of whoever calls it), never from SQL.  Requests travel through a shm_mq in a
 * dynamic shared memory segment that only the two processes map; ereport()
 * output of the worker is redirected into the reply queue (pq_redirect_to_shm_mq,
 * as parallel workers do) and re-thrown here with its SQLSTATE, message, detail
 * and hint, but without the worker's CONTEXT.
 *
 * Each phase of a request is one transaction of the worker, so a charge commits
 * before any exact statistic is computed: no ROLLBACK, error or cancel of the
 * caller can undo it.  A cancel, statement_timeout or error of the caller while a
 * request is in flight terminates the worker (its open transaction aborts; a
 * committed charge stands); the next call starts a fresh one.  A worker idle
 * for EXECUTOR_IDLE_MS exits to free its slot; a compare-and-swap on the
 * segment's state word decides between its exit and a new request.  A worker
 * whose caller holds no budget and is no administrator exits after each request
 * (the engine says so through dp_internal.executor_retire()), so that such
 * roles cannot hold background-worker slots.
 *
 * Guidance read (not copied): PostgreSQL's src/test/modules/test_shm_mq,
 * src/backend/access/transam/parallel.c, and pg_background.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "libpq/pqmq.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shm_mq.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#include "pg_dp.h"
#include "worker/pool.h"
#include "worker/protocol.h"
#include "worker/serve.h"
#include "worker/spares.h"
#include "worker/worker.h"

#include <unistd.h>

typedef struct ExecutorSession
{
	dsm_segment *seg;
	ExecutorShared *shared;
	shm_mq_handle *requests;
	shm_mq_handle *replies;
	BackgroundWorkerHandle *worker;	/* NULL for an adopted spare (see spares.c) */
} ExecutorSession;

static ExecutorSession *session = NULL;

/* Whether the session's current executor has asked for a spare (once per executor). */
static bool spares_asked = false;

/* ------------------------------------------------------------------------
 * The caller's side
 * ------------------------------------------------------------------------ */

/* The owner of the pg_dp extension in this database: whom the executor runs as. */
static Oid
extension_owner(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("pg_dp"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_dp is not installed in this database"),
				 errhint("CREATE EXTENSION pg_dp CASCADE;")));
	return owner;
}

/* Stop a session's executor that the session did not start itself (an adopted spare). */
static void
terminate_adopted(ExecutorShared *shared)
{
	pid_t		pid = shared->executor_pid;

	/* the pid is checked against the proc array first, as pg_terminate_backend does */
	if (pid != 0 && BackendPidGetProc(pid) != NULL)
		(void) kill(pid, SIGTERM);
}

/* Forget the session's executor: terminate it if it runs, unmap the segment. */
static void
session_reset(bool terminate)
{
	ExecutorSession *s = session;

	if (s == NULL)
		return;
	session = NULL;
	if (terminate && s->worker != NULL)
		TerminateBackgroundWorker(s->worker);
	else if (terminate && s->shared != NULL)
		terminate_adopted(s->shared);	/* an adopted spare */
	if (s->requests)
		shm_mq_detach(s->requests);
	if (s->replies)
		shm_mq_detach(s->replies);
	if (s->seg)
		dsm_detach(s->seg);
	if (s->worker)
		pfree(s->worker);
	pfree(s);
}

/* This session's executor: an adopted spare (spares.c), the queues' other ends already set. */
static void
session_adopt(dsm_segment *seg)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	ExecutorSession *s = palloc0(sizeof(ExecutorSession));

	s->seg = seg;
	s->shared = dsm_segment_address(seg);
	s->shared->caller_pid = MyProcPid;
	s->requests = shm_mq_attach(request_queue(s->shared), seg, NULL);
	s->replies = shm_mq_attach(reply_queue(s->shared), seg, NULL);
	session = s;
	MemoryContextSwitchTo(old);
}

/* Register the session's own executor; false when no background-worker slot is free. */
static bool
register_executor(ExecutorSession *s)
{
	BackgroundWorker worker;
	char		name[BGW_MAXLEN];

	snprintf(name, BGW_MAXLEN, "pg_dp executor for PID %d", MyProcPid);
	dp_executor_worker(&worker, "dp_executor_main", name);
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(s->seg));
	worker.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&worker, &s->worker);
}

static void
session_start(void)
{
	MemoryContext old;
	ExecutorSession *s;
	BgwHandleStatus status;
	pid_t		pid;
	shm_mq	   *mq;
	Oid			owner = extension_owner();
	dsm_segment *spare = dp_spare_adopt(owner);
	bool		registered;

	spares_asked = false;
	if (spare != NULL)
	{
		session_adopt(spare);
		return;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	s = palloc0(sizeof(ExecutorSession));
	s->seg = dsm_create(EXECUTOR_SEGMENT_SIZE, 0);
	dsm_pin_mapping(s->seg);	/* lives as long as the session, not the transaction */
	s->shared = dsm_segment_address(s->seg);
	s->shared->magic = EXECUTOR_MAGIC;
	pg_atomic_init_u32(&s->shared->state, STATE_IDLE);
	s->shared->database = MyDatabaseId;
	s->shared->owner = owner;
	s->shared->caller_pid = MyProcPid;
	s->shared->queue_size = EXECUTOR_QUEUE_SIZE;

	mq = shm_mq_create(request_queue(s->shared), EXECUTOR_QUEUE_SIZE);
	shm_mq_set_sender(mq, MyProc);
	mq = shm_mq_create(reply_queue(s->shared), EXECUTOR_QUEUE_SIZE);
	shm_mq_set_receiver(mq, MyProc);

	session = s;				/* from here on, session_reset() cleans up */
	registered = register_executor(s);
	if (!registered && dp_spare_retire_one())
	{
		/* no slot was free: a waiting spare (of any database) gives its slot back */
		for (int tries = 0; !registered && tries < 20; tries++)
		{
			pg_usleep(100 * 1000L);
			registered = register_executor(s);
		}
	}
	if (!registered)
	{
		s->worker = NULL;
		session_reset(false);
		MemoryContextSwitchTo(old);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start a pg_dp executor: no background worker slot is free"),
				 errhint("Each session that asks pg_dp questions uses one background worker; "
						 "an administrator can raise max_worker_processes.")));
	}
	s->requests = shm_mq_attach(request_queue(s->shared), s->seg, s->worker);
	s->replies = shm_mq_attach(reply_queue(s->shared), s->seg, s->worker);
	MemoryContextSwitchTo(old);

	status = WaitForBackgroundWorkerStartup(s->worker, &pid);
	if (status != BGWH_STARTED)
	{
		session_reset(false);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start a pg_dp executor"),
				 errhint("See the server log.")));
	}
}

/* Set when the executor reported a FATAL error: it is gone, start another. */
static bool session_broken = false;


/*
 * Re-raise a message of the executor here.  Its CONTEXT (the worker's own
 * call stack) is dropped: the caller sees the message as if raised here.
 */
static void
rethrow(const char *data, Size len)
{
	StringInfoData msg;
	ErrorData	edata;

	initStringInfo(&msg);
	appendBinaryStringInfo(&msg, data, len);
	pq_parse_errornotice(&msg, &edata);
	if (edata.elevel >= FATAL)
		session_broken = true;
	edata.elevel = Min(edata.elevel, ERROR);
	edata.context = NULL;
	edata.internalquery = NULL;
	edata.internalpos = 0;
	edata.cursorpos = 0;
	ThrowErrorData(&edata);
	pfree(msg.data);
}

/* The request is over: idle again, unless the executor chose to retire. */
static void
release_claim(void)
{
	uint32		busy = STATE_BUSY;

	(void) pg_atomic_compare_exchange_u32(&session->shared->state, &busy, STATE_IDLE);
}

/* Claim this session's executor for one request, starting one if needed. */
static void
session_claim(void)
{
	uint32		idle = STATE_IDLE;

	if (session != NULL &&
		(session_broken ||
		 !pg_atomic_compare_exchange_u32(&session->shared->state, &idle, STATE_BUSY)))
		session_reset(true);	/* it retired after idling, or it is gone */
	session_broken = false;
	if (session == NULL)
	{
		session_start();
		pg_atomic_write_u32(&session->shared->state, STATE_BUSY);
	}
}

/* Send one request and wait for its reply, relaying the executor's notices. */
static text *
executor_roundtrip(Oid role, const char *kind, const char *payload)
{
	StringInfoData req;
	text	   *volatile result = NULL;
	volatile bool in_flight = false;
	Oid			owner;

	initStringInfo(&req);
	pq_sendint32(&req, role);
	pq_sendstring(&req, kind);
	pq_sendstring(&req, payload);

	session_claim();
	owner = session->shared->owner;
	if (shm_mq_send(session->requests, req.len, req.data, false, true) != SHM_MQ_SUCCESS)
	{
		/* it was gone before it read anything: one fresh start */
		session_reset(true);
		session_claim();
		if (shm_mq_send(session->requests, req.len, req.data, false, true) != SHM_MQ_SUCCESS)
		{
			session_reset(true);
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not send a request to the pg_dp executor"),
					 errhint("See the server log.")));
		}
	}

	PG_TRY();
	{
		in_flight = true;
		while (result == NULL)
		{
			Size		len;
			void	   *data;
			char		type;

			if (shm_mq_receive(session->replies, &len, &data, false) != SHM_MQ_SUCCESS)
				break;
			if (len < 1)
				continue;
			type = ((char *) data)[0];
			if (type == MSG_REPLY)
			{
				result = cstring_to_text_with_len((char *) data + 1, len - 1);
				in_flight = false;
				release_claim();
			}
			else if (type == 'N')
				rethrow((char *) data + 1, len - 1);
			else if (type == 'E')
			{
				/* the request ended with this error; the executor is idle again */
				in_flight = false;
				release_claim();
				rethrow((char *) data + 1, len - 1);
			}
			/* other protocol messages of the worker are ignored */
		}
		if (result == NULL)
		{
			in_flight = false;
			session_reset(true);
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("the pg_dp executor exited while answering"),
					 errhint("See the server log; the next call starts a new executor.")));
		}
	}
	PG_CATCH();
	{
		/*
		 * A cancel, timeout or error here while the executor works: stop it,
		 * so that nothing it computes later reaches anyone.
		 */
		if (in_flight || session_broken)
			session_reset(true);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pfree(req.data);
	if (!spares_asked)
	{
		/* a new executor served this session: one spare for the next session */
		spares_asked = true;
		dp_spare_replenish(owner);
	}
	return result;
}

/* ------------------------------------------------------------------------
 * The pool (pool.c): the request goes into the shared queue and whichever
 * executor takes it answers into this session's segment.
 * ------------------------------------------------------------------------ */

#define POOL_MIN_REQUEST_CAPACITY	(8 * 1024)

typedef struct PoolSession
{
	dsm_segment *seg;
	PoolSegment *hdr;
	uint64		last_id;		/* the latest request (its entry may still be in use) */
	pid_t		last_executor;	/* the executor that served it */
} PoolSession;

static PoolSession pool_session = {NULL, NULL, 0, 0};
static bool pool_exit_registered = false;

/* The backend exits (also FATAL, where no PG_CATCH runs): its request leaves the pool. */
static void
pool_session_exit(int code, Datum arg)
{
	if (pool_session.last_id != 0)
		dp_pool_abandon(pool_session.last_id);
}

/* Forget the segment (an executor may still map it: it goes when the last one unmaps it). */
static void
pool_drop_segment(void)
{
	if (pool_session.seg != NULL)
		dsm_detach(pool_session.seg);
	pool_session.seg = NULL;
	pool_session.hdr = NULL;
}

/* A segment that holds a request of `needed` bytes, the one of earlier requests if it is big enough. */
static PoolSegment *
pool_segment_for(Size needed)
{
	Size		capacity;
	PoolSegment *hdr;

	if (pool_session.hdr != NULL && pool_session.hdr->request_capacity >= needed)
		return pool_session.hdr;
	pool_drop_segment();
	capacity = Max(POOL_MIN_REQUEST_CAPACITY, MAXALIGN(needed));
	pool_session.seg = dsm_create(pool_segment_size(capacity), 0);
	dsm_pin_mapping(pool_session.seg);	/* lives as long as the session, not the transaction */
	hdr = dsm_segment_address(pool_session.seg);
	memset(hdr, 0, POOL_SEGMENT_HEADER_SIZE);
	hdr->magic = POOL_SEGMENT_MAGIC;
	hdr->backend_pid = MyProcPid;
	hdr->request_capacity = capacity;
	if (!pg_strong_random(&hdr->nonce, sizeof(hdr->nonce)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("pg_dp: could not generate a random nonce")));
	pool_session.hdr = hdr;
	return hdr;
}

/*
 * Wait while this backend's queue entry is still taken: by this session's
 * previous request (its executor is finishing it), or by a request of an
 * earlier backend that had the same PGPROC and exited while it ran.
 */
static void
pool_wait_previous(void)
{
	while (!dp_pool_entry_free())
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Sleep for the rate limit's wait, interruptibly. */
static void
pool_throttle(double seconds)
{
	TimestampTz until = GetCurrentTimestamp() + (TimestampTz) (seconds * USECS_PER_SEC);

	for (;;)
	{
		long		ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

		if (ms <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

static int
request_lane(const char *kind)
{
	return (strcmp(kind, "synthesize") == 0 || strcmp(kind, "evaluate") == 0 ||
			strcmp(kind, "evaluate_schema") == 0) ? POOL_LANE_SYNTHESIS : POOL_LANE_QUESTIONS;
}

/* Requests that cost no budget: the rate limit counts them (and refusals). */
static bool
free_request_kind(const char *kind)
{
	return strcmp(kind, "cost") == 0 || strcmp(kind, "explain") == 0 ||
		strcmp(kind, "synthetic_copy") == 0;
}

static text *
pool_roundtrip(Oid role, const char *kind, const char *payload)
{
	PoolSubmit	submit;
	PoolSegment *volatile hdr;
	Size		kind_len = strlen(kind) + 1;
	Size		payload_len = strlen(payload) + 1;
	shm_mq	   *mq;
	shm_mq_handle *volatile replies = NULL;
	text	   *volatile result = NULL;
	volatile bool in_pool = false;
	double		wait;
	volatile TimestampTz absent_since = 0;

	if (!pool_exit_registered)
	{
		before_shmem_exit(pool_session_exit, (Datum) 0);
		pool_exit_registered = true;
	}
	submit.lane = request_lane(kind);
	submit.free_kind = free_request_kind(kind);
	submit.role = role;
	submit.database = MyDatabaseId;
	submit.owner = extension_owner();

	/* the rate limit on free requests: a role out of tokens waits here, holding no executor */
	wait = dp_pool_admit(role, submit.free_kind);
	if (wait > 0)
		pool_throttle(wait);
	pool_wait_previous();

	hdr = pool_segment_for(kind_len + payload_len);
	submit.id = dp_pool_next_id();
	submit.handle = dsm_segment_handle(pool_session.seg);
	submit.nonce = hdr->nonce;
	hdr->request_id = submit.id;
	hdr->executor_pid = 0;
	memcpy(pool_segment_request(hdr), kind, kind_len);
	memcpy(pool_segment_request(hdr) + kind_len, payload, payload_len);
	hdr->request_len = kind_len + payload_len;
	mq = shm_mq_create(pool_segment_replies(hdr), POOL_REPLY_QUEUE_SIZE);
	shm_mq_set_receiver(mq, MyProc);

	PG_TRY();
	{
		replies = shm_mq_attach(mq, pool_session.seg, NULL);
		dp_pool_submit(&submit);
		in_pool = true;
		pool_session.last_id = submit.id;
		while (result == NULL)
		{
			Size		len;
			void	   *data;
			shm_mq_result res = shm_mq_receive(replies, &len, &data, true);

			if (res == SHM_MQ_SUCCESS)
			{
				char		type = len > 0 ? ((char *) data)[0] : 0;

				if (type == MSG_REPLY)
				{
					result = cstring_to_text_with_len((char *) data + 1, len - 1);
					in_pool = false;
				}
				else if (type == 'N')
					rethrow((char *) data + 1, len - 1);
				else if (type == 'E')
				{
					/* the request ended with this error; a refusal counts as a free request */
					in_pool = false;
					if (!submit.free_kind)
						dp_pool_debit(role);
					pool_session.last_executor = hdr->executor_pid;
					rethrow((char *) data + 1, len - 1);
				}
				continue;
			}
			if (res == SHM_MQ_DETACHED ||
				dp_pool_request_state(submit.id, NULL) == POOL_REQUEST_FREE)
			{
				/* the executor left (or refused the request) without a reply: one last look */
				if (res != SHM_MQ_DETACHED &&
					shm_mq_receive(replies, &len, &data, true) == SHM_MQ_SUCCESS && len > 0)
				{
					char		type = ((char *) data)[0];

					if (type == MSG_REPLY)
					{
						result = cstring_to_text_with_len((char *) data + 1, len - 1);
						in_pool = false;
						break;
					}
					if (type == 'E')
					{
						in_pool = false;
						rethrow((char *) data + 1, len - 1);
					}
				}
				in_pool = false;
				ereport(ERROR,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("the pg_dp executor exited while answering"),
						 errhint("See the server log; ask again.")));
			}
			if (dp_pool_lane_running(submit.lane))
				absent_since = 0;
			else if (absent_since == 0)
				absent_since = GetCurrentTimestamp();
			else if (TimestampDifferenceExceeds(absent_since, GetCurrentTimestamp(), 10 * 1000))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
						 errmsg("no pg_dp executor is running"),
						 errhint("The server could not start the executors of the pool: see its log, and "
								 "max_worker_processes against pg_dp.executors + pg_dp.synthesis_executors.")));
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_CATCH();
	{
		/*
		 * A cancel, timeout or error while the request is in the pool: it
		 * leaves the queue at once, or its executor is told to stop; the
		 * segment is not used again (the executor may still map it).
		 */
		if (in_pool)
		{
			dp_pool_abandon(submit.id);
			pool_drop_segment();
		}
		else if (replies != NULL)
			shm_mq_detach(replies);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pool_session.last_executor = hdr->executor_pid;
	shm_mq_detach(replies);
	return result;
}

text *
dp_executor_request(const char *kind, const char *payload)
{
	if (IsInParallelMode())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("pg_dp requests cannot run in a parallel worker")));
	if (internal_request_kind(kind))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown pg_dp request '%s'", kind)));
	if (dp_pool_enabled())
		return pool_roundtrip(GetUserId(), kind, payload);
	return executor_roundtrip(GetUserId(), kind, payload);
}

PG_FUNCTION_INFO_V1(dp_executor_call);
/*
 * dp_internal.executor_call(kind text, payload text) RETURNS text: the front
 * door of every privileged pg_dp request.  The role charged and checked is the
 * current user (the front doors are SECURITY INVOKER).
 */
Datum
dp_executor_call(PG_FUNCTION_ARGS)
{
	char	   *kind;
	char	   *payload;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pg_dp request must not be NULL")));
	kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
	payload = text_to_cstring(PG_GETARG_TEXT_PP(1));
	PG_RETURN_TEXT_P(dp_executor_request(kind, payload));
}

PG_FUNCTION_INFO_V1(dp_executor_pid);
/* The PID of this session's executor (in the pool: the latest one), or NULL when none runs. */
Datum
dp_executor_pid(PG_FUNCTION_ARGS)
{
	pid_t		pid;

	if (dp_pool_enabled())
	{
		/* the pool's executor that served this session's latest request, while it runs */
		pid = pool_session.last_executor;
		if (pid == 0 || BackendPidGetProc(pid) == NULL)
			PG_RETURN_NULL();
		PG_RETURN_INT32(pid);
	}
	if (session == NULL)
		PG_RETURN_NULL();
	if (session->worker == NULL)
	{
		/* an adopted spare: alive while its process is in the proc array */
		pid = session->shared->executor_pid;
		if (pid == 0 || pg_atomic_read_u32(&session->shared->state) == STATE_RETIRED ||
			BackendPidGetProc(pid) == NULL)
			PG_RETURN_NULL();
		PG_RETURN_INT32(pid);
	}
	if (GetBackgroundWorkerPid(session->worker, &pid) != BGWH_STARTED)
		PG_RETURN_NULL();
	PG_RETURN_INT32(pid);
}
