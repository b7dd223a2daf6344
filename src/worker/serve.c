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

#include "worker/protocol.h"
#include "worker/serve.h"

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

/* The reply, framed like the libpq messages that share its queue. */
static void
send_reply(shm_mq_handle *replies, const char *data, Size len)
{
	shm_mq_iovec iov[2];
	char		type = MSG_REPLY;

	iov[0].data = &type;
	iov[0].len = 1;
	iov[1].data = data;
	iov[1].len = len;
	if (shm_mq_sendv(replies, iov, 2, false, true) != SHM_MQ_SUCCESS)
		proc_exit(0);			/* the caller is gone */
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

	pgstat_report_activity(STATE_RUNNING, kind);
	for (;;)
	{
		char	   *answer;

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
		if (retire_after_request)
			pg_atomic_write_u32(&shared->state, STATE_RETIRED);
		send_reply(replies, answer + 1, strlen(answer + 1));
		if (retire_after_request)
			proc_exit(0);
		break;
	}
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
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
