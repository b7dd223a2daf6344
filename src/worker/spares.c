/*
 * spares.c -- warm executors, started ahead of the sessions that will use them.
 *
 * A session's first pg_dp request used to start its executor (session.c) and
 * wait for it to load the Python engine: PL/Python, numpy, OpenDP and pglast
 * cost 200-250 ms, on every new connection (psql users open one per script).
 * Now a session that starts an executor also asks for a spare: an executor of
 * the same database and owner, started with no session, that loads the engine
 * and waits.  The next new session of that database adopts it instead of
 * starting one, and asks for a new spare once its first answer is back.
 *
 * A spare is a whole executor process that has served nobody: adopting one is
 * the same as starting one, a little earlier.  It never serves two sessions:
 * the adopting session claims it with a compare-and-swap of its state word
 * (SPARE -> BUSY), and from then on it is that session's executor, exiting
 * with it, after EXECUTOR_IDLE_MS idle, or when the session cancels a request.
 *
 * The registry is a directory of the data directory, pg_dp_spares/, that only
 * the server's OS user can write: one file per waiting spare, named
 * "<database oid>.<pid>", holding its segment's handle and a random nonce that
 * the segment holds too (stale files, from a crash, name no live segment or
 * another one, and are removed), and "<database oid>.spawning" while a spare
 * is being started (so that sessions arriving together start one spare, not
 * one each).  No shared memory of the server's own is needed, so this works
 * with session_preload_libraries.
 *
 * A waiting spare holds a connection to its database and a background-worker
 * slot.  It gives both back by itself: after EXECUTOR_IDLE_MS, at once when a
 * session finds no free slot (dp_spare_retire_one), and within SPARE_POLL_MS
 * when another backend locks its database to drop, rename or copy it (DROP
 * DATABASE would otherwise fail with "being accessed by other users").
 * pg_dp.executor_spares (superuser, 0 turns spares off) is how many wait per
 * database.
 */
#include "postgres.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/pg_database.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "pg_dp.h"
#include "worker/protocol.h"
#include "worker/serve.h"
#include "worker/spares.h"

#define SPARE_DIR				"pg_dp_spares"
#define SPARE_POLL_MS			250
#define SPAWN_MARKER_SECONDS	30		/* a marker older than this is stale */

PGDLLEXPORT void dp_spare_main(Datum main_arg);

/* what a spare is started for (bgw_extra) */
typedef struct SpareTarget
{
	Oid			database;
	Oid			owner;
} SpareTarget;

/* ------------------------------------------------------------------------
 * The registry
 * ------------------------------------------------------------------------ */

static void
spare_path(char *path, Oid database, int pid)
{
	snprintf(path, MAXPGPATH, "%s/%u.%d", SPARE_DIR, database, pid);
}

static void
marker_path(char *path, Oid database)
{
	snprintf(path, MAXPGPATH, "%s/%u.spawning", SPARE_DIR, database);
}

/* "<database>.<pid>": the spare file's database and pid, or false */
static bool
parse_spare_name(const char *name, Oid *database, int *pid)
{
	char		extra;

	return sscanf(name, "%u.%d%c", database, pid, &extra) == 2 && *pid > 0;
}

static bool
read_spare_file(const char *path, dsm_handle *handle, uint64 *nonce)
{
	FILE	   *f = AllocateFile(path, "r");
	unsigned long long n;
	unsigned int h;
	bool		ok;

	if (f == NULL)
		return false;
	ok = fscanf(f, "%u %llu", &h, &n) == 2;
	FreeFile(f);
	*handle = (dsm_handle) h;
	*nonce = (uint64) n;
	return ok;
}

/* Is the process of a spare file still there?  (kill(pid, 0): the same OS user) */
static bool
process_alive(int pid)
{
	return kill(pid, 0) == 0 || errno == EPERM;
}

/*
 * Map the spare named by a registry file and check that it is one; NULL (and
 * the file removed when it is stale) otherwise.
 */
static dsm_segment *
map_spare(const char *path, Oid database, int pid)
{
	dsm_handle	handle;
	uint64		nonce;
	dsm_segment *seg;
	ExecutorShared *shared;

	if (!read_spare_file(path, &handle, &nonce))
		return NULL;
	if (dsm_find_mapping(handle) != NULL)
		return NULL;			/* a segment of this process: not a spare */
	seg = dsm_attach(handle);
	if (seg == NULL)
	{
		if (!process_alive(pid))
			unlink(path);		/* left by a spare that is gone */
		return NULL;
	}
	shared = dsm_segment_address(seg);
	if (dsm_segment_map_length(seg) < EXECUTOR_SEGMENT_SIZE ||
		shared->magic != EXECUTOR_MAGIC || shared->nonce != nonce ||
		shared->executor_pid != pid || shared->database != database)
	{
		dsm_detach(seg);
		if (!process_alive(pid))
			unlink(path);
		return NULL;
	}
	return seg;
}

/* Wake a spare, so that it sees its new state at once. */
static void
wake(pid_t pid)
{
	PGPROC	   *proc = BackendPidGetProc(pid);

	if (proc != NULL)
		SetLatch(&proc->procLatch);
}

/*
 * Adopt a spare of this database, warm or still loading the engine, as the
 * session's executor: its segment, mapped for the session, the queues' other
 * ends set to this backend (which wakes it); NULL when there is none.
 */
dsm_segment *
dp_spare_adopt(Oid owner)
{
	DIR		   *dir;
	struct dirent *de;
	dsm_segment *adopted = NULL;

	dir = AllocateDir(SPARE_DIR);
	if (dir == NULL)
		return NULL;
	while (adopted == NULL && (de = ReadDirExtended(dir, SPARE_DIR, LOG)) != NULL)
	{
		char		path[MAXPGPATH];
		Oid			database;
		int			pid;
		dsm_segment *seg;
		ExecutorShared *shared;
		uint32		expected = STATE_SPARE;

		if (!parse_spare_name(de->d_name, &database, &pid) || database != MyDatabaseId)
			continue;
		spare_path(path, database, pid);
		seg = map_spare(path, database, pid);
		if (seg == NULL)
			continue;
		shared = dsm_segment_address(seg);
		if (shared->owner != owner)
		{
			/* the extension was re-created by another role: this spare is nobody's */
			if (pg_atomic_compare_exchange_u32(&shared->state, &expected, STATE_RETIRED))
				wake(pid);
			dsm_detach(seg);
			continue;
		}
		if (!pg_atomic_compare_exchange_u32(&shared->state, &expected, STATE_BUSY) &&
			(expected != STATE_WARMING ||
			 !pg_atomic_compare_exchange_u32(&shared->state, &expected, STATE_BUSY)))
		{
			dsm_detach(seg);	/* another session was first, or it retired */
			continue;
		}
		unlink(path);
		dsm_pin_mapping(seg);	/* lives as long as the session, not the transaction */
		shm_mq_set_sender(request_queue(shared), MyProc);	/* wakes the spare */
		shm_mq_set_receiver(reply_queue(shared), MyProc);
		adopted = seg;
	}
	FreeDir(dir);
	return adopted;
}

/* Live spares of a database; entries of spares that are gone are removed. */
static int
count_spares(Oid database)
{
	DIR		   *dir = AllocateDir(SPARE_DIR);
	struct dirent *de;
	int			n = 0;

	if (dir == NULL)
		return 0;
	while ((de = ReadDirExtended(dir, SPARE_DIR, LOG)) != NULL)
	{
		Oid			db;
		int			pid;

		char		path[MAXPGPATH];

		if (!parse_spare_name(de->d_name, &db, &pid))
			continue;
		if (!process_alive(pid))
		{
			spare_path(path, db, pid);
			unlink(path);		/* left by a spare that is gone (a crash) */
		}
		else if (db == database)
			n++;
	}
	FreeDir(dir);
	return n;
}

/*
 * Take the database's "spawning" marker: true when this backend may start a
 * spare now (no other spare of the database is being started).
 */
static bool
take_marker(Oid database)
{
	char		path[MAXPGPATH];
	int			fd;
	struct stat st;

	marker_path(path, database);
	fd = open(path, O_CREAT | O_EXCL | O_WRONLY, S_IRUSR | S_IWUSR);
	if (fd < 0 && errno == EEXIST && stat(path, &st) == 0 &&
		time(NULL) - st.st_mtime > SPAWN_MARKER_SECONDS)
	{
		unlink(path);			/* its spare never started */
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY, S_IRUSR | S_IWUSR);
	}
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/*
 * Start a spare for this database unless pg_dp.executor_spares of them wait
 * or one is being started.  Quiet when no slot is free: spares are a help,
 * never a condition.
 */
void
dp_spare_replenish(Oid owner)
{
	BackgroundWorker worker;
	SpareTarget target = {MyDatabaseId, owner};
	char		path[MAXPGPATH];

	if (dp_executor_spares <= 0)
		return;
	if (MakePGDirectory(SPARE_DIR) < 0 && errno != EEXIST)
		return;
	if (count_spares(MyDatabaseId) >= dp_executor_spares || !take_marker(MyDatabaseId))
		return;

	dp_executor_worker(&worker, "dp_spare_main", "pg_dp executor (spare)");
	StaticAssertStmt(sizeof(SpareTarget) <= BGW_EXTRALEN, "bgw_extra too small");
	memcpy(worker.bgw_extra, &target, sizeof(target));
	worker.bgw_notify_pid = 0;
	if (!RegisterDynamicBackgroundWorker(&worker, NULL))
	{
		marker_path(path, MyDatabaseId);
		unlink(path);
	}
}

/*
 * No background-worker slot was free for a session's executor: one waiting
 * spare, of any database, leaves.  True when one was asked to.
 */
bool
dp_spare_retire_one(void)
{
	DIR		   *dir = AllocateDir(SPARE_DIR);
	struct dirent *de;
	bool		retired = false;

	if (dir == NULL)
		return false;
	while (!retired && (de = ReadDirExtended(dir, SPARE_DIR, LOG)) != NULL)
	{
		char		path[MAXPGPATH];
		Oid			database;
		int			pid;
		dsm_segment *seg;
		uint32		expected = STATE_SPARE;

		if (!parse_spare_name(de->d_name, &database, &pid))
			continue;
		spare_path(path, database, pid);
		seg = map_spare(path, database, pid);
		if (seg == NULL)
			continue;
		if (pg_atomic_compare_exchange_u32(&((ExecutorShared *) dsm_segment_address(seg))->state,
										   &expected, STATE_RETIRED) ||
			(expected == STATE_WARMING &&
			 pg_atomic_compare_exchange_u32(&((ExecutorShared *) dsm_segment_address(seg))->state,
											&expected, STATE_RETIRED)))
		{
			unlink(path);
			wake(pid);
			retired = true;
		}
		dsm_detach(seg);
	}
	FreeDir(dir);
	return retired;
}

/* ------------------------------------------------------------------------
 * The spare's side
 * ------------------------------------------------------------------------ */

static char registered_path[MAXPGPATH] = "";
static Oid	spare_database = InvalidOid;
static bool own_marker = true;		/* a spare starts holding its database's marker */

/* On exit: out of the registry, and the marker released if still held. */
static void
spare_unregister(int code, Datum arg)
{
	char		path[MAXPGPATH];

	if (registered_path[0] != '\0')
		unlink(registered_path);
	if (own_marker)
	{
		marker_path(path, spare_database);
		unlink(path);
	}
}

/* Publish the spare: its file, written whole and then renamed into place. */
static void
register_spare(ExecutorShared *shared, dsm_segment *seg)
{
	char		tmp[MAXPGPATH];
	char		path[MAXPGPATH];
	FILE	   *f;

	snprintf(tmp, MAXPGPATH, "%s/tmp.%d", SPARE_DIR, MyProcPid);
	spare_path(path, MyDatabaseId, MyProcPid);
	f = AllocateFile(tmp, "w");
	if (f == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("pg_dp spare: could not write \"%s\": %m", tmp)));
	fprintf(f, "%u %llu\n", (unsigned int) dsm_segment_handle(seg),
			(unsigned long long) shared->nonce);
	if (FreeFile(f) != 0 || rename(tmp, path) != 0)
	{
		unlink(tmp);
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("pg_dp spare: could not register \"%s\": %m", path)));
	}
	strlcpy(registered_path, path, MAXPGPATH);
}

void
dp_spare_main(Datum main_arg)
{
	SpareTarget target;
	dsm_segment *seg;
	ExecutorShared *shared;
	shm_mq_handle *requests;
	shm_mq_handle *replies;
	shm_mq	   *mq;
	TimestampTz since;
	uint32		warming = STATE_WARMING;
	char		path[MAXPGPATH];

	memcpy(&target, MyBgworkerEntry->bgw_extra, sizeof(target));
	spare_database = target.database;
	dp_executor_process_init();
	on_proc_exit(spare_unregister, (Datum) 0);
	BackgroundWorkerInitializeConnectionByOid(target.database, target.owner, 0);

	seg = dsm_create(EXECUTOR_SEGMENT_SIZE, 0);
	dsm_pin_mapping(seg);
	shared = dsm_segment_address(seg);
	shared->magic = EXECUTOR_MAGIC;
	pg_atomic_init_u32(&shared->state, STATE_WARMING);
	shared->database = target.database;
	shared->owner = target.owner;
	shared->caller_pid = 0;
	shared->executor_pid = MyProcPid;
	if (!pg_strong_random(&shared->nonce, sizeof(shared->nonce)))
		elog(ERROR, "pg_dp spare: no random nonce");
	shared->queue_size = EXECUTOR_QUEUE_SIZE;
	mq = shm_mq_create(request_queue(shared), EXECUTOR_QUEUE_SIZE);
	shm_mq_set_receiver(mq, MyProc);
	mq = shm_mq_create(reply_queue(shared), EXECUTOR_QUEUE_SIZE);
	shm_mq_set_sender(mq, MyProc);
	/* attached now, so that a session that adopts it sees it detach if it dies */
	requests = shm_mq_attach(request_queue(shared), seg, NULL);
	replies = shm_mq_attach(reply_queue(shared), seg, NULL);

	/*
	 * Registered before it loads the engine: a session that arrives meanwhile
	 * adopts it warming (it is ahead of an executor started then) and its
	 * request waits in the queue until the engine is loaded.
	 */
	register_spare(shared, seg);
	marker_path(path, MyDatabaseId);
	unlink(path);
	own_marker = false;

	dp_executor_pin_settings();
	dp_executor_warm_up();

	if (!pg_atomic_compare_exchange_u32(&shared->state, &warming, STATE_SPARE) &&
		warming == STATE_RETIRED)
		proc_exit(0);
	pgstat_report_activity(STATE_IDLE, NULL);

	since = GetCurrentTimestamp();
	for (;;)
	{
		uint32		state = pg_atomic_read_u32(&shared->state);
		uint32		spare = STATE_SPARE;

		if (state == STATE_BUSY)
			break;				/* adopted */
		if (state == STATE_RETIRED)
			proc_exit(0);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 SPARE_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if ((dp_database_wanted() ||
			 TimestampDifferenceExceeds(since, GetCurrentTimestamp(), EXECUTOR_IDLE_MS)) &&
			pg_atomic_compare_exchange_u32(&shared->state, &spare, STATE_RETIRED))
			proc_exit(0);
	}
	unlink(registered_path);
	registered_path[0] = '\0';
	dp_executor_serve(seg, shared, requests, replies);
}
