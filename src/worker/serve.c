/*
 * serve.c -- the privileged executor, the executor's side: a background worker
 * connected as the extension owner that serves its session's requests, each
 * phase in a transaction of its own (the session's side is session.c; warm
 * spares, spares.c, become executors by calling dp_executor_serve).
 *
 * Every ereport() of the worker goes into the reply queue
 * (pq_redirect_to_shm_mq, as parallel workers do); an error ends its request,
 * never the executor.  A request's phases run the engine's
 * dp_internal.executor_handle(role, kind, payload) (python_udfs/pg_dp/executor.py)
 * under pinned settings; the role is the one the session's backend wrote into
 * the request from its own state.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_database.h"
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
#include "postmaster/interrupt.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
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

#include "worker/pool.h"
#include "worker/protocol.h"
#include "worker/serve.h"
#include "worker/trust.h"

#include <unistd.h>

/* In the executor: leave after the current request (see dp_executor_retire). */
static bool retire_after_request = false;

PGDLLEXPORT void dp_executor_main(Datum main_arg);

/* What every executor process is: a connected, never restarted "pg_dp executor" worker. */
void
dp_executor_worker(BackgroundWorker *worker, const char *function, const char *name)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_ConsistentState;
	worker->bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "pg_dp");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker->bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker->bgw_type, BGW_MAXLEN, "pg_dp executor");
}

PG_FUNCTION_INFO_V1(dp_executor_retire);
/*
 * dp_internal.executor_retire(): called by the engine in the executor when the
 * request's role should not keep a worker between requests.  Elsewhere a no-op.
 */
Datum
dp_executor_retire(PG_FUNCTION_ARGS)
{
	if (IsBackgroundWorker)
		retire_after_request = true;
	PG_RETURN_VOID();
}

/*
 * Settings every request runs under, whatever the owner's or the database's
 * defaults: parsing, quoting and output must not depend on anyone's session,
 * and the worker must never find a user's temp or schema objects first.
 */
static const char *const pinned_settings[][2] = {
	{"search_path", "pg_catalog, pg_temp"},
	{"standard_conforming_strings", "on"},
	{"backslash_quote", "safe_encoding"},
	{"escape_string_warning", "off"},
	{"array_nulls", "on"},
	{"DateStyle", "ISO, MDY"},
	{"IntervalStyle", "postgres"},
	{"extra_float_digits", "1"},
	{"TimeZone", "UTC"},
	{"bytea_output", "hex"},
	{"xmloption", "content"},
	{"client_min_messages", "notice"},
	{"statement_timeout", "0"},
	{"lock_timeout", "0"},
	{"idle_in_transaction_session_timeout", "0"},
	{"default_transaction_isolation", "read committed"},
	{"default_transaction_read_only", "off"},
	{"session_replication_role", "origin"},
	{"check_function_bodies", "on"},
	{"track_counts", "on"},
	{"pg_stat_statements.track", "none"},	/* the exact statements' row counts stay unseen */
};

static void
pin_settings(void)
{
	for (int i = 0; i < lengthof(pinned_settings); i++)
		SetConfigOption(pinned_settings[i][0], pinned_settings[i][1], PGC_SUSET, PGC_S_SESSION);
}

/* The reply, framed like the libpq messages that share its queue; false when the caller is gone. */
static bool
send_reply(shm_mq_handle *replies, const char *data, Size len)
{
	shm_mq_iovec iov[2];
	char		type = MSG_REPLY;

	iov[0].data = &type;
	iov[0].len = 1;
	iov[1].data = data;
	iov[1].len = len;
	return shm_mq_sendv(replies, iov, 2, false, true) == SHM_MQ_SUCCESS;
}

/*
 * The engine's answer to one phase: 'C' commit and call again ("continue"),
 * 'R' + reply (commit, then send), 'E' + sqlstate \x1f message \x1f hint \x1f
 * detail (roll back, then raise it).
 */
static char *
run_phase(Oid role, const char *kind, const char *payload, MemoryContext keep)
{
	Oid			argtypes[3] = {OIDOID, TEXTOID, TEXTOID};
	Datum		values[3];
	Datum		d;
	bool		isnull;
	char	   *answer = NULL;
	int			ret;

	values[0] = ObjectIdGetDatum(role);
	values[1] = CStringGetTextDatum(kind);
	values[2] = CStringGetTextDatum(payload);
	SPI_connect();
	ret = SPI_execute_with_args("SELECT dp_internal.executor_handle($1, $2, $3)",
								3, argtypes, values, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "pg_dp executor: unexpected result of the engine");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		MemoryContext old = MemoryContextSwitchTo(keep);	/* it outlives SPI's memory */

		answer = TextDatumGetCString(d);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	if (answer == NULL || answer[0] == '\0')
		elog(ERROR, "pg_dp executor: empty answer of the engine");
	return answer;
}

static void
raise_engine_error(char *spec)
{
	char	   *fields[4] = {NULL, NULL, NULL, NULL};
	int			n = 0;
	char	   *p = spec;

	fields[n++] = p;
	while (*p && n < 4)
	{
		if (*p == '\x1f')
		{
			*p = '\0';
			fields[n++] = p + 1;
		}
		p++;
	}
	if (fields[0] == NULL || strlen(fields[0]) != 5 || fields[1] == NULL)
		elog(ERROR, "pg_dp executor: malformed engine error");
	ereport(ERROR,
			(errcode(MAKE_SQLSTATE(fields[0][0], fields[0][1], fields[0][2], fields[0][3], fields[0][4])),
			 errmsg_internal("%s", fields[1]),
			 (fields[2] && fields[2][0]) ? errhint("%s", fields[2]) : 0,
			 (fields[3] && fields[3][0]) ? errdetail_internal("%s", fields[3]) : 0));
}

/* In a pool executor: its index (pool.c), and the request it serves. */
static int	pool_index = -1;
static uint64 pool_request_id = 0;

/*
 * Run one request, phase after phase, each in a transaction of its own, and
 * send the reply.  `shared` is the session's segment of a per-session executor
 * (NULL in the pool).  False when the caller was gone before the reply.
 */
static bool
run_request(Oid role, const char *kind, const char *payload, MemoryContext request_context,
			shm_mq_handle *replies, ExecutorShared *shared)
{
	bool		sent = false;

	pgstat_report_activity(STATE_RUNNING, kind);
	for (;;)
	{
		char	   *answer;

		if (pool_index >= 0 && dp_pool_worker_abandoned(pool_index, pool_request_id))
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("canceling the pg_dp request: its caller gave it up")));
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		answer = run_phase(role, kind, payload, request_context);
		PopActiveSnapshot();
		if (answer[0] == 'E')
		{
			AbortCurrentTransaction();
			raise_engine_error(answer + 1);
		}
		CommitTransactionCommand();
		if (answer[0] == 'C')
		{
			kind = "continue";
			payload = "";
			continue;
		}
		if (answer[0] != 'R')
			elog(ERROR, "pg_dp executor: unknown answer of the engine");
		if (retire_after_request && shared != NULL)
			pg_atomic_write_u32(&shared->state, STATE_RETIRED);
		sent = send_reply(replies, answer + 1, strlen(answer + 1));
		break;
	}
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return sent;
}

/* A request of the session of a per-session executor: role, kind and payload, written by its backend. */
static void
handle_request(const char *data, Size len, MemoryContext request_context, shm_mq_handle *replies,
			   ExecutorShared *shared)
{
	StringInfoData msg;
	Oid			role;
	const char *kind;
	const char *payload;

	msg.data = (char *) data;
	msg.len = len;
	msg.maxlen = len;
	msg.cursor = 0;
	role = pq_getmsgint(&msg, 4);
	kind = pq_getmsgstring(&msg);
	payload = pq_getmsgstring(&msg);
	if (internal_request_kind(kind))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown pg_dp request '%s'", kind)));
	if (!run_request(role, kind, payload, request_context, replies, shared))
		proc_exit(0);			/* the caller is gone */
	if (retire_after_request)
		proc_exit(0);
}

/*
 * The executor's last exit callback: leave with _exit(), skipping what exit()
 * would run after PostgreSQL's own callbacks, the destructors of the libraries
 * the engine loaded.  A cancelled synthesis leaves a helper thread running in
 * them (numpy, OpenBLAS, XLA: see mst.interruptible), and their destructors
 * then hang the process (OpenBLAS joining its threads while the helper waits
 * for Python's lock) or crash it, and a crash restarts the whole server.
 * Nothing of PostgreSQL's is skipped: shared memory, locks and the statistics
 * are released by the callbacks before this one.
 */
static void
executor_exit_now(int code, Datum arg)
{
	fflush(stdout);
	fflush(stderr);
	_exit(code);
}

/* Signals, the exit path and a resource owner: the start of every executor process. */
void
dp_executor_process_init(void)
{
	/* registered first, so that it runs last (on_proc_exit callbacks run LIFO) */
	on_proc_exit(executor_exit_now, (Datum) 0);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "pg_dp executor");
	dp_executor_trust_install();
}

void
dp_executor_pin_settings(void)
{
	StartTransactionCommand();
	pin_settings();
	CommitTransactionCommand();
}

/* The executor of one session, started for it (session_start). */
void
dp_executor_main(Datum main_arg)
{
	dsm_segment *seg;
	ExecutorShared *shared;
	shm_mq_handle *requests;
	shm_mq_handle *replies;

	dp_executor_process_init();
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_dp executor: could not map its shared memory segment")));
	shared = dsm_segment_address(seg);
	if (shared->magic != EXECUTOR_MAGIC)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_dp executor: bad shared memory segment")));
	shared->executor_pid = MyProcPid;
	shm_mq_set_receiver(request_queue(shared), MyProc);
	shm_mq_set_sender(reply_queue(shared), MyProc);
	requests = shm_mq_attach(request_queue(shared), seg, NULL);
	replies = shm_mq_attach(reply_queue(shared), seg, NULL);

	BackgroundWorkerInitializeConnectionByOid(shared->database, shared->owner, 0);
	dp_executor_pin_settings();
	dp_executor_serve(seg, shared, requests, replies);
}

/*
 * Serve the session's requests until it ends or the executor idled for
 * EXECUTOR_IDLE_MS.  Connected, settings pinned, queues attached.
 */
void
dp_executor_serve(dsm_segment *seg, ExecutorShared *shared, shm_mq_handle *requests,
				  shm_mq_handle *replies)
{
	MemoryContext request_context;
	sigjmp_buf	local_sigjmp_buf;

	/* from here on, every ereport() of this process goes to the caller */
	pq_redirect_to_shm_mq(seg, replies);

	request_context = AllocSetContextCreate(TopMemoryContext, "pg_dp executor request",
											ALLOCSET_DEFAULT_SIZES);

	/* An error ends its request (the caller has it), never the executor. */
	if (sigsetjmp(local_sigjmp_buf, 1) != 0)
	{
		error_context_stack = NULL;
		HOLD_INTERRUPTS();
		if (retire_after_request)
			pg_atomic_write_u32(&shared->state, STATE_RETIRED);
		EmitErrorReport();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(TopMemoryContext);
		FlushErrorState();
		MemoryContextReset(request_context);
		pgstat_report_activity(STATE_IDLE, NULL);
		RESUME_INTERRUPTS();
		if (retire_after_request)
			proc_exit(0);
	}
	PG_exception_stack = &local_sigjmp_buf;

	for (;;)
	{
		Size		len;
		void	   *data;
		shm_mq_result res;
		char	   *copy;

		MemoryContextSwitchTo(request_context);
		MemoryContextReset(request_context);
		res = shm_mq_receive(requests, &len, &data, true);
		if (res == SHM_MQ_WOULD_BLOCK)
		{
			int			rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
									   EXECUTOR_IDLE_MS, PG_WAIT_EXTENSION);

			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			if (rc & WL_TIMEOUT)
			{
				uint32		idle = STATE_IDLE;

				if (pg_atomic_compare_exchange_u32(&shared->state, &idle, STATE_RETIRED))
					break;
			}
			continue;
		}
		if (res != SHM_MQ_SUCCESS)
			break;				/* the caller's session ended */
		copy = palloc(len);
		memcpy(copy, data, len);
		retire_after_request = false;
		handle_request(copy, len, request_context, replies, shared);
	}
	proc_exit(0);
}

/*
 * Load the engine: what a session's first request would otherwise wait for.
 * Role 0 marks the warm-up as the executor's own (a caller's role is never 0,
 * and no session can send the kind: internal_request_kind).
 */
void
dp_executor_warm_up(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_connect();
	if (SPI_execute("SELECT dp_internal.executor_handle(0, 'warmup', '')", false, 1) != SPI_OK_SELECT)
		elog(ERROR, "pg_dp executor: the engine did not load");
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
}

/* Does another backend lock the database to drop, rename or copy it? */
bool
dp_database_wanted(void)
{
	LOCKTAG		tag;
	VirtualTransactionId *holders;
	bool		wanted;

	SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, MyDatabaseId, 0);
	holders = GetLockConflicts(&tag, RowExclusiveLock, NULL);
	wanted = VirtualTransactionIdIsValid(holders[0]);
	pfree(holders);
	return wanted;
}

/* ------------------------------------------------------------------------
 * An executor of the pool (pool.c): started by the postmaster, it connects to
 * the database of the requests it is given and serves them, one at a time,
 * whichever session sent them.
 * ------------------------------------------------------------------------ */

#define POOL_IDLE_POLL_MS	250

PGDLLEXPORT void dp_pool_worker_main(Datum main_arg);

static bool pool_leaving = false;	/* it exits on purpose (to change database) */
static bool pool_serving = false;
static PoolAssignment pool_current;
static dsm_segment *pool_segment = NULL;

static void
pool_worker_exit(int code, Datum arg)
{
	dp_pool_worker_exit(pool_index, pool_leaving);
}

static void
pool_leave(void) pg_attribute_noreturn();

static void
pool_leave(void)
{
	pool_leaving = true;
	proc_exit(1);				/* not 0: the postmaster starts it again, unbound */
}

static void
pool_reload_config(void)
{
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/* The request is over: its segment unmapped (the reply queue detached), its entry free. */
static void
pool_request_done(void)
{
	if (pool_segment != NULL)
	{
		dsm_detach(pool_segment);
		pool_segment = NULL;
	}
	if (pool_serving)
	{
		pool_serving = false;
		dp_pool_worker_finish(pool_index, &pool_current);
	}
	pool_request_id = 0;
	retire_after_request = false;	/* per-session executors only */
}

/*
 * Map the caller's segment and check it against the queue entry: the entry was
 * written by the caller's backend, the segment names the same backend, nonce
 * and request; the backend still runs, in this database.  A request that does
 * not match is not served (nothing is written anywhere).
 */
static bool
pool_segment_matches(const PoolAssignment *a, PoolSegment *hdr, Size mapped)
{
	PGPROC	   *proc;

	if (mapped < POOL_SEGMENT_HEADER_SIZE || hdr->magic != POOL_SEGMENT_MAGIC ||
		hdr->nonce != a->nonce || hdr->backend_pid != a->backend_pid || hdr->request_id != a->id ||
		hdr->request_capacity > mapped || pool_segment_size(hdr->request_capacity) > mapped ||
		hdr->request_len < 2 || hdr->request_len > hdr->request_capacity)
		return false;
	proc = BackendPidGetProc(a->backend_pid);
	return proc != NULL && proc->databaseId == MyDatabaseId;
}

static void
serve_pooled(const PoolAssignment *a, MemoryContext request_context)
{
	PoolSegment *hdr;
	char	   *copy;
	Size		len;
	Size		kind_len;
	const char *payload;
	shm_mq	   *mq;
	shm_mq_handle *replies;

	pool_request_id = a->id;
	pool_segment = dsm_attach(a->handle);
	if (pool_segment == NULL)
		return;					/* the caller is gone */
	hdr = dsm_segment_address(pool_segment);
	if (!pool_segment_matches(a, hdr, dsm_segment_map_length(pool_segment)))
	{
		ereport(LOG,
				(errmsg("pg_dp executor: refused request %llu of PID %d: its segment does not match its queue entry",
						(unsigned long long) a->id, (int) a->backend_pid)));
		return;
	}
	len = hdr->request_len;
	copy = palloc(len + 1);
	memcpy(copy, pool_segment_request(hdr), len);
	copy[len] = '\0';
	kind_len = strnlen(copy, len);
	if (kind_len + 1 >= len || strnlen(copy + kind_len + 1, len - kind_len - 1) != len - kind_len - 2)
	{
		ereport(LOG,
				(errmsg("pg_dp executor: refused a malformed request of PID %d", (int) a->backend_pid)));
		return;
	}
	payload = copy + kind_len + 1;

	hdr->executor_pid = MyProcPid;
	mq = pool_segment_replies(hdr);
	shm_mq_set_sender(mq, MyProc);
	replies = shm_mq_attach(mq, pool_segment, NULL);
	/* every ereport() of this request goes to its caller (and nowhere once it is unmapped) */
	pq_redirect_to_shm_mq(pool_segment, replies);

	if (internal_request_kind(copy))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown pg_dp request '%s'", copy)));
	(void) run_request(a->role, copy, payload, request_context, replies, NULL);
}

static void
pool_serve(void) pg_attribute_noreturn();

static void
pool_serve(void)
{
	MemoryContext request_context;
	sigjmp_buf	local_sigjmp_buf;

	request_context = AllocSetContextCreate(TopMemoryContext, "pg_dp executor request",
											ALLOCSET_DEFAULT_SIZES);

	/* An error ends its request (the caller has it), never the executor. */
	if (sigsetjmp(local_sigjmp_buf, 1) != 0)
	{
		error_context_stack = NULL;
		HOLD_INTERRUPTS();
		EmitErrorReport();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(TopMemoryContext);
		FlushErrorState();
		pool_request_done();
		MemoryContextReset(request_context);
		pgstat_report_activity(STATE_IDLE, NULL);
		RESUME_INTERRUPTS();
	}
	PG_exception_stack = &local_sigjmp_buf;

	for (;;)
	{
		PoolNext	next;

		MemoryContextSwitchTo(request_context);
		MemoryContextReset(request_context);
		pool_reload_config();
		next = dp_pool_worker_next(pool_index, &pool_current);
		if (next == POOL_SERVE)
		{
			pool_serving = true;
			serve_pooled(&pool_current, request_context);
			pool_request_done();
			continue;
		}
		if (next == POOL_LEAVE)
			pool_leave();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 POOL_IDLE_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		QueryCancelPending = false; /* idle: a cancel can only be for a request already over */
		CHECK_FOR_INTERRUPTS();
		if (dp_database_wanted())
		{
			/* DROP, ALTER ... RENAME or CREATE DATABASE ... TEMPLATE waits for this connection */
			dp_pool_worker_leave(pool_index, true);
			pool_leave();
		}
	}
}

void
dp_pool_worker_main(Datum main_arg)
{
	Oid			database;
	Oid			owner;

	pool_index = DatumGetInt32(main_arg);
	dp_executor_process_init();
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	if (dp_pool_worker_start(pool_index))
	{
		/* its last process failed (its database may be gone): not in a tight loop */
		(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
	}
	before_shmem_exit(pool_worker_exit, (Datum) 0);
	for (;;)
	{
		if (dp_pool_worker_choose(pool_index, &database, &owner))
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		pool_reload_config();
	}
	BackgroundWorkerInitializeConnectionByOid(database, owner, 0);
	dp_executor_pin_settings();
	if (dp_pool_worker_lane(pool_index) == POOL_LANE_QUESTIONS)
		dp_executor_warm_up();
	dp_pool_worker_ready(pool_index);
	pool_serve();
}
