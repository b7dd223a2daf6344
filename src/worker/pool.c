/*
 * pool.c -- the shared executor pool: a fixed set of executors (serve.c),
 * started by the postmaster when pg_dp is in shared_preload_libraries, serving
 * every session's requests through one queue in the server's shared memory.
 *
 * The queue has one entry per backend (a backend waits for its request, so it
 * never has two), written by the backend's C code (session.c): the role is the
 * backend's current user (GetUserId), the database and the extension owner its
 * own; nothing of it comes from SQL.  The request's text and the reply queue
 * are in a segment of the backend's (protocol.h, PoolSegment), whose random
 * nonce and request id the entry carries too: an executor serves an entry only
 * when the segment it maps says the same (see serve.c).
 *
 * Fairness, under one lock:
 *   - lanes: questions (pg_dp.executors executors) and synthesis runs
 *     (pg_dp.synthesis_executors), so that long, large runs never hold the
 *     executors questions need; a synthesis executor leaves after each run,
 *     returning its memory;
 *   - an executor takes the next request of its database from the role served
 *     longest ago (round robin over roles), oldest first within a role;
 *   - a role has at most pg_dp.role_concurrency requests served at once (one
 *     synthesis run) and pg_dp.role_queue waiting; more are refused (53000);
 *   - free requests (dp.cost, dp.explain, the plain-SQL hook's column types)
 *     and refusals take a token of the role's bucket, refilled at
 *     pg_dp.free_requests_per_second: a role out of tokens waits in its own
 *     backend (holding no executor) for its turn, and is refused when that
 *     would take more than POOL_MAX_THROTTLE_SECONDS.
 *
 * An executor connects to one database for its life (a background worker
 * cannot change database): unbound executors connect to the database of the
 * oldest request no executor serves, else to the one asked most recently (so
 * that they are warm); an idle executor whose database has nothing queued
 * leaves (exits, and the postmaster starts it again at once, unbound) when
 * another database's request has no executor; it leaves too when its database
 * is to be dropped, renamed or copied (serve.c).
 *
 * A caller that gives up (cancel, statement_timeout, error, exit) takes its
 * request out of the queue at once; if an executor runs it, the executor is
 * told (a flag and SIGINT: its current statement is cancelled, the executor
 * stays) and goes on with the next request.  The signal is sent under the
 * lock, and an executor clears a pending cancel under the same lock when it
 * takes its next request, so a cancel never reaches another caller's request.
 */
#include "postgres.h"

#include <math.h>
#include <signal.h>
#include <unistd.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "pg_dp.h"
#include "worker/pool.h"

#define POOL_ROLES			256

typedef enum WorkerState
{
	W_ABSENT,					/* no process (not started yet, or between two) */
	W_UNBOUND,					/* started, connected to no database yet */
	W_BINDING,					/* connecting to its database and loading the engine */
	W_IDLE,
	W_BUSY,
	W_LEAVING					/* exiting, to be started again unbound */
} WorkerState;

static const char *const worker_state_names[] = {"absent", "unbound", "starting", "idle", "busy", "leaving"};

typedef struct PoolWorker
{
	int			lane;
	WorkerState state;
	pid_t		pid;
	int			pgprocno;
	Oid			database;		/* bound to (BINDING, IDLE, BUSY) */
	Oid			owner;
	Oid			next_database;	/* where to connect after a restart (a waiting request's) */
	Oid			next_owner;
	bool		leave;			/* asked to leave for next_database */
	bool		woken;			/* woken for a new request, not looked at the queue yet */
	bool		failed;			/* its last process ended with an error */
	int			entry;			/* the request it serves (BUSY), else -1 */
	uint64		request_id;
	Oid			role;			/* the role it serves (BUSY) */
	TimestampTz busy_since;
	uint64		served;
} PoolWorker;

typedef struct PoolEntry
{
	int			state;			/* POOL_REQUEST_* */
	bool		abandoned;
	int			lane;
	bool		free_kind;
	uint64		id;
	pid_t		backend_pid;
	Oid			database;
	Oid			owner;
	Oid			role;
	dsm_handle	handle;
	uint64		nonce;
	int			worker;			/* RUNNING: index of its executor */
	TimestampTz queued_at;
} PoolEntry;

typedef struct PoolRole
{
	Oid			role;			/* InvalidOid: a free slot */
	int			running[POOL_LANES];
	int			queued[POOL_LANES];
	uint64		turn;			/* the pool's turn when this role was last served */
	double		tokens;			/* the free-request bucket */
	TimestampTz refilled;
	uint64		served;
	uint64		throttled;
	uint64		refused;
} PoolRole;

typedef struct PoolShared
{
	LWLock	   *lock;
	pg_atomic_uint64 next_id;
	uint64		turn;
	int			nworkers;
	int			nentries;
	Oid			warm_database;	/* of the latest question: where unbound executors connect */
	Oid			warm_owner;
	uint64		served;
	uint64		abandoned;
	uint64		refused_queue;
	uint64		refused_rate;
	PoolRole	roles[POOL_ROLES];
	PoolWorker	workers[FLEXIBLE_ARRAY_MEMBER];
	/* then: PoolEntry entries[nentries] */
} PoolShared;

static PoolShared *pool = NULL;
static int	pool_nworkers = 0;	/* set in the postmaster, inherited by every process */
static shmem_request_hook_type prev_shmem_request = NULL;
static shmem_startup_hook_type prev_shmem_startup = NULL;

static Size
workers_size(int nworkers)
{
	return MAXALIGN(offsetof(PoolShared, workers) + sizeof(PoolWorker) * nworkers);
}

static Size
pool_size(void)
{
	return add_size(workers_size(pool_nworkers), mul_size(sizeof(PoolEntry), MaxBackends));
}

static inline PoolEntry *
entries(void)
{
	return (PoolEntry *) ((char *) pool + workers_size(pool->nworkers));
}

static void
pool_shmem_request(void)
{
	if (prev_shmem_request)
		prev_shmem_request();
	RequestAddinShmemSpace(pool_size());
	RequestNamedLWLockTranche("pg_dp pool", 1);
}

static void
pool_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup)
		prev_shmem_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pool = ShmemInitStruct("pg_dp pool", pool_size(), &found);
	if (!found)
	{
		memset(pool, 0, pool_size());
		pool->lock = &(GetNamedLWLockTranche("pg_dp pool"))->lock;
		pg_atomic_init_u64(&pool->next_id, 1);
		pool->nworkers = pool_nworkers;
		pool->nentries = MaxBackends;
		for (int i = 0; i < pool_nworkers; i++)
		{
			pool->workers[i].lane = i < dp_pool_executors ? POOL_LANE_QUESTIONS : POOL_LANE_SYNTHESIS;
			pool->workers[i].entry = -1;
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

void
dp_pool_init(void)
{
	pool_nworkers = dp_pool_executors + dp_pool_synthesis_executors;
	prev_shmem_request = shmem_request_hook;
	shmem_request_hook = pool_shmem_request;
	prev_shmem_startup = shmem_startup_hook;
	shmem_startup_hook = pool_shmem_startup;

	for (int i = 0; i < pool_nworkers; i++)
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = 0;	/* at once: leaving is how an executor changes database */
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_dp");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "dp_pool_worker_main");
		if (i < dp_pool_executors)
			snprintf(worker.bgw_name, BGW_MAXLEN, "pg_dp executor %d", i + 1);
		else
			snprintf(worker.bgw_name, BGW_MAXLEN, "pg_dp synthesis executor %d", i - dp_pool_executors + 1);
		snprintf(worker.bgw_type, BGW_MAXLEN, "pg_dp executor");
		worker.bgw_main_arg = Int32GetDatum(i);
		RegisterBackgroundWorker(&worker);
	}
}

bool
dp_pool_enabled(void)
{
	return pool != NULL;
}

static void
wake(int pgprocno)
{
	if (pgprocno >= 0)
		SetLatch(&ProcGlobal->allProcs[pgprocno].procLatch);
}

static void
wake_worker(PoolWorker *w)
{
	if (w->pid != 0)
	{
		w->woken = true;
		wake(w->pgprocno);
	}
}

/* Wake one idle executor of this database (not one already woken), e.g. for a request waiting. */
static bool
wake_idle(int lane, Oid database, Oid owner, int except)
{
	for (int i = 0; i < pool->nworkers; i++)
	{
		PoolWorker *w = &pool->workers[i];

		if (i != except && w->state == W_IDLE && !w->leave && !w->woken &&
			w->lane == lane && w->database == database && w->owner == owner)
		{
			wake_worker(w);
			return true;
		}
	}
	return false;
}


/* ------------------------------------------------------------------------
 * Roles: fairness and limits
 * ------------------------------------------------------------------------ */

static double
bucket_size(void)
{
	return Max(1.0, 2 * dp_free_requests_per_second);
}

/* The role's entry, made when missing (a free or idle one is taken); NULL if all are busy. */
static PoolRole *
role_entry(Oid role, bool create)
{
	PoolRole   *victim = NULL;

	for (int i = 0; i < POOL_ROLES; i++)
	{
		PoolRole   *r = &pool->roles[i];

		if (r->role == role)
			return r;
		if (!create)
			continue;
		if (r->role == InvalidOid)
		{
			if (victim == NULL || victim->role != InvalidOid)
				victim = r;
		}
		else if (r->running[0] + r->running[1] + r->queued[0] + r->queued[1] == 0 &&
				 (victim == NULL || (victim->role != InvalidOid && r->refilled < victim->refilled)))
			victim = r;			/* an idle role, used longest ago */
	}
	if (victim == NULL)
		return NULL;
	memset(victim, 0, sizeof(PoolRole));
	victim->role = role;
	victim->tokens = bucket_size();
	victim->refilled = GetCurrentTimestamp();
	return victim;
}

static void
refill(PoolRole *r, TimestampTz now)
{
	double		elapsed = (double) (now - r->refilled) / USECS_PER_SEC;

	if (elapsed > 0)
		r->tokens = Min(bucket_size(), r->tokens + elapsed * dp_free_requests_per_second);
	r->refilled = now;
}

static void
too_many_roles(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
			 errmsg("too many roles are asking pg_dp at once"),
			 errhint("Try again in a moment.")));
}

double
dp_pool_admit(Oid role, bool free_kind)
{
	PoolRole   *r;
	double		wait = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (dp_free_requests_per_second <= 0)
		return 0;
	LWLockAcquire(pool->lock, LW_EXCLUSIVE);
	r = role_entry(role, true);
	if (r == NULL)
	{
		LWLockRelease(pool->lock);
		too_many_roles();
	}
	refill(r, now);
	if (free_kind)
	{
		/* take a token; without one, wait for it (the token is the caller's from now on) */
		if (r->tokens < 1)
			wait = (1 - r->tokens) / dp_free_requests_per_second;
		if (wait <= POOL_MAX_THROTTLE_SECONDS)
			r->tokens -= 1;
	}
	else if (r->tokens < 0)
		wait = -r->tokens / dp_free_requests_per_second;	/* a role in debt waits for any request */
	if (wait > POOL_MAX_THROTTLE_SECONDS)
	{
		r->refused++;
		pool->refused_rate++;
		LWLockRelease(pool->lock);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("too many free pg_dp requests (dp.cost, dp.explain, refused questions) from this role"),
				 errdetail("The rate limit is %g per second per role (pg_dp.free_requests_per_second).",
						   dp_free_requests_per_second),
				 errhint("Wait a few seconds before asking again.")));
	}
	if (wait > 0)
		r->throttled++;
	LWLockRelease(pool->lock);
	return wait;
}

void
dp_pool_debit(Oid role)
{
	PoolRole   *r;

	if (dp_free_requests_per_second <= 0)
		return;
	LWLockAcquire(pool->lock, LW_EXCLUSIVE);
	r = role_entry(role, false);
	if (r != NULL)
	{
		refill(r, GetCurrentTimestamp());
		/* the debt is bounded: a role waits at most POOL_MAX_THROTTLE_SECONDS for its next request */
		r->tokens = Max(r->tokens - 1, -POOL_MAX_THROTTLE_SECONDS * dp_free_requests_per_second);
	}
	LWLockRelease(pool->lock);
}

/* ------------------------------------------------------------------------
 * The session side
 * ------------------------------------------------------------------------ */

uint64
dp_pool_next_id(void)
{
	return pg_atomic_fetch_add_u64(&pool->next_id, 1);
}

static PoolEntry *
my_entry(void)
{
	if (MyProc == NULL || MyProc->pgprocno < 0 || MyProc->pgprocno >= pool->nentries)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("this process cannot send pg_dp requests")));
	return &entries()[MyProc->pgprocno];
}

static bool
worker_serves(PoolWorker *w, int lane, Oid database, Oid owner)
{
	return w->lane == lane && w->database == database && w->owner == owner &&
		(w->state == W_BINDING || w->state == W_IDLE || w->state == W_BUSY);
}

static bool
worker_coming(PoolWorker *w, int lane, Oid database, Oid owner)
{
	return w->lane == lane && w->next_database == database && w->next_owner == owner &&
		(w->state == W_ABSENT || w->state == W_UNBOUND || w->state == W_LEAVING || w->leave);
}

/* Whether some executor of the lane serves, or is on its way to serve, this database. */
static bool
database_has_executor(int lane, Oid database, Oid owner)
{
	for (int i = 0; i < pool->nworkers; i++)
	{
		PoolWorker *w = &pool->workers[i];

		if ((worker_serves(w, lane, database, owner) && !w->leave) || worker_coming(w, lane, database, owner))
			return true;
	}
	return false;
}

/* Whether requests of this database and lane wait. */
static bool
database_has_queued(int lane, Oid database, Oid owner)
{
	PoolEntry  *e = entries();

	for (int i = 0; i < pool->nentries; i++)
		if (e[i].state == POOL_REQUEST_QUEUED && e[i].lane == lane && e[i].database == database &&
			e[i].owner == owner)
			return true;
	return false;
}

/* A new request waits: wake an executor that can take it, or get one on its way. */
static void
dispatch(int lane, Oid database, Oid owner)
{
	PoolWorker *idle_elsewhere = NULL;

	/* an idle executor of the database that no other new request has woken already */
	if (wake_idle(lane, database, owner, -1))
		return;
	if (database_has_executor(lane, database, owner))
		return;					/* it is starting, or busy: it takes the request when done */
	for (int i = 0; i < pool->nworkers; i++)
	{
		PoolWorker *w = &pool->workers[i];

		if (w->lane != lane || w->leave)
			continue;
		if (w->state == W_UNBOUND)
		{
			w->next_database = database;
			w->next_owner = owner;
			wake_worker(w);
			return;
		}
		if (w->state == W_IDLE && idle_elsewhere == NULL &&
			!database_has_queued(lane, w->database, w->owner))
			idle_elsewhere = w;
	}
	if (idle_elsewhere != NULL)
	{
		idle_elsewhere->leave = true;
		idle_elsewhere->next_database = database;
		idle_elsewhere->next_owner = owner;
		wake_worker(idle_elsewhere);
	}
	/* else every executor of the lane is busy: the first to finish comes over (worker_next) */
}

void
dp_pool_submit(const PoolSubmit *request)
{
	PoolEntry  *e;
	PoolRole   *r;

	LWLockAcquire(pool->lock, LW_EXCLUSIVE);
	e = my_entry();
	if (e->state != POOL_REQUEST_FREE)
	{
		LWLockRelease(pool->lock);
		elog(ERROR, "pg_dp: this session's previous request is still in the pool");
	}
	r = role_entry(request->role, true);
	if (r == NULL)
	{
		LWLockRelease(pool->lock);
		too_many_roles();
	}
	if (r->queued[request->lane] >= dp_role_queue)
	{
		r->refused++;
		pool->refused_queue++;
		LWLockRelease(pool->lock);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("too many pg_dp requests of this role are waiting"),
				 errdetail("A role may have %d requests waiting for an executor (pg_dp.role_queue).", dp_role_queue),
				 errhint("Wait for the answers of the role's other sessions, or ask an administrator to raise "
						 "pg_dp.role_queue.")));
	}
	memset(e, 0, sizeof(PoolEntry));
	e->lane = request->lane;
	e->free_kind = request->free_kind;
	e->id = request->id;
	e->backend_pid = MyProcPid;
	e->database = request->database;
	e->owner = request->owner;
	e->role = request->role;
	e->handle = request->handle;
	e->nonce = request->nonce;
	e->worker = -1;
	e->queued_at = GetCurrentTimestamp();
	e->state = POOL_REQUEST_QUEUED;
	r->queued[request->lane]++;
	if (request->lane == POOL_LANE_QUESTIONS)
	{
		pool->warm_database = request->database;
		pool->warm_owner = request->owner;
	}
	dispatch(request->lane, request->database, request->owner);
	LWLockRelease(pool->lock);
}

bool
dp_pool_entry_free(void)
{
	bool		free_;

	LWLockAcquire(pool->lock, LW_SHARED);
	free_ = my_entry()->state == POOL_REQUEST_FREE;
	LWLockRelease(pool->lock);
	return free_;
}

bool
dp_pool_lane_running(int lane)
{
	bool		running = false;

	LWLockAcquire(pool->lock, LW_SHARED);
	for (int i = 0; i < pool->nworkers && !running; i++)
		running = pool->workers[i].lane == lane && pool->workers[i].pid != 0;
	LWLockRelease(pool->lock);
	return running;
}

int
dp_pool_request_state(uint64 id, pid_t *executor_pid)
{
	PoolEntry  *e;
	int			state;

	LWLockAcquire(pool->lock, LW_SHARED);
	e = my_entry();
	state = e->id == id ? e->state : POOL_REQUEST_FREE;
	if (executor_pid)
		*executor_pid = (state == POOL_REQUEST_RUNNING && e->worker >= 0) ? pool->workers[e->worker].pid : 0;
	LWLockRelease(pool->lock);
	return state;
}

static void
release_entry(PoolEntry *e)
{
	PoolRole   *r = role_entry(e->role, false);

	if (r != NULL)
	{
		if (e->state == POOL_REQUEST_QUEUED)
			r->queued[e->lane]--;
		else if (e->state == POOL_REQUEST_RUNNING)
			r->running[e->lane]--;
	}
	e->state = POOL_REQUEST_FREE;
	e->abandoned = false;
	e->worker = -1;
}

void
dp_pool_abandon(uint64 id)
{
	PoolEntry  *e;

	if (pool == NULL || MyProc == NULL || MyProc->pgprocno < 0 || MyProc->pgprocno >= pool->nentries)
		return;
	LWLockAcquire(pool->lock, LW_EXCLUSIVE);
	e = &entries()[MyProc->pgprocno];
	if (e->id == id && e->state == POOL_REQUEST_QUEUED)
	{
		release_entry(e);		/* its place is free at once */
		pool->abandoned++;
	}
	else if (e->id == id && e->state == POOL_REQUEST_RUNNING && !e->abandoned)
	{
		PoolWorker *w = &pool->workers[e->worker];

		e->abandoned = true;
		pool->abandoned++;
		/*
		 * Under the lock: the executor cannot take another request before this
		 * signal has reached it (it clears a pending cancel under this lock).
		 * A synthesis run is stopped with its process (its helper threads).
		 */
		if (w->pid != 0 && w->request_id == id)
			(void) kill(w->pid, w->lane == POOL_LANE_SYNTHESIS ? SIGTERM : SIGINT);
	}
	LWLockRelease(pool->lock);
}

/* ------------------------------------------------------------------------
 * The executors' side
 * ------------------------------------------------------------------------ */

int
dp_pool_worker_lane(int index)
{
	return pool->workers[index].lane;
}

bool
dp_pool_worker_start(int index)
{
	PoolWorker *w = &pool->workers[index];
	bool		failed;

	LWLockAcquire(pool->lock, LW_EXCLUSIVE);
	failed = w->failed;
	w->failed = false;
	w->pid = MyProcPid;
	w->pgprocno = MyProc->pgprocno;
	w->state = W_UNBOUND;
	w->database = InvalidOid;
	w->owner = InvalidOid;
	w->leave = false;
	w->woken = false;
	w->entry = -1;
	w->request_id = 0;
	LWLockRelease(pool->lock);
	return failed;
}

/* The oldest waiting request of the lane that no executor serves or is on its way to: its database. */
static bool
orphan_database(int lane, Oid *database, Oid *owner)
{
	PoolEntry  *e = entries();
	PoolEntry  *oldest = NULL;

	for (int i = 0; i < pool->nentries; i++)
	{
		if (e[i].state != POOL_REQUEST_QUEUED || e[i].lane != lane)
			continue;
		if (oldest != NULL && e[i].id > oldest->id)
			continue;
		if (database_has_executor(lane, e[i].database, e[i].owner))
			continue;
		oldest = &e[i];
	}
	if (oldest == NULL)
		return false;
	*database = oldest->database;
	*owner = oldest->owner;
	return true;
}

bool
dp_pool_worker_choose(int index, Oid *database, Oid *owner)
{
	PoolWorker *w = &pool->workers[index];
	bool		found = false;

	LWLockAcquire(pool->lock, LW_EXCLUSIVE);
	if (OidIsValid(w->next_database))
	{
		*database = w->next_database;
		*owner = w->next_owner;
		found = true;
	}
	else if (orphan_database(w->lane, database, owner))
		found = true;
	else if (w->lane == POOL_LANE_QUESTIONS && OidIsValid(pool->warm_database))
	{
		/* warm for the database asked most recently */
		*database = pool->warm_database;
		*owner = pool->warm_owner;
		found = true;
	}
	if (found)
	{
		w->state = W_BINDING;
		w->database = *database;
		w->owner = *owner;
		w->next_database = InvalidOid;
		w->next_owner = InvalidOid;
	}
	LWLockRelease(pool->lock);
	return found;
}

void
dp_pool_worker_ready(int index)
{
	LWLockAcquire(pool->lock, LW_EXCLUSIVE);
	pool->workers[index].state = W_IDLE;
	LWLockRelease(pool->lock);
}

static int
role_cap(int lane)
{
	return lane == POOL_LANE_SYNTHESIS ? 1 : dp_role_concurrency;
}

PoolNext
dp_pool_worker_next(int index, PoolAssignment *a)
{
	PoolWorker *w = &pool->workers[index];
	PoolEntry  *e = entries();
	PoolEntry  *best = NULL;
	PoolRole   *best_role = NULL;
	Oid			database,
				owner;

	LWLockAcquire(pool->lock, LW_EXCLUSIVE);
	w->woken = false;
	if (w->leave)
	{
		w->state = W_LEAVING;
		LWLockRelease(pool->lock);
		return POOL_LEAVE;
	}
	for (int i = 0; i < pool->nentries; i++)
	{
		PoolRole   *r;

		if (e[i].state != POOL_REQUEST_QUEUED || e[i].lane != w->lane ||
			e[i].database != w->database || e[i].owner != w->owner)
			continue;
		r = role_entry(e[i].role, false);
		if (r == NULL || r->running[w->lane] >= role_cap(w->lane))
			continue;
		/* round robin: the role served longest ago first; within a role, the oldest request */
		if (best == NULL || r->turn < best_role->turn || (r == best_role && e[i].id < best->id))
		{
			best = &e[i];
			best_role = r;
		}
	}
	if (best != NULL)
	{
		best->state = POOL_REQUEST_RUNNING;
		best->worker = index;
		best_role->queued[w->lane]--;
		best_role->running[w->lane]++;
		best_role->turn = ++pool->turn;
		best_role->served++;
		pool->served++;
		w->state = W_BUSY;
		w->entry = best - e;
		w->request_id = best->id;
		w->role = best->role;
		w->busy_since = GetCurrentTimestamp();
		w->served++;
		a->entry = best - e;
		a->id = best->id;
		a->lane = best->lane;
		a->role = best->role;
		a->backend_pid = best->backend_pid;
		a->handle = best->handle;
		a->nonce = best->nonce;
		/* a cancel signalled for this executor's previous request must not stop this one */
		QueryCancelPending = false;
		/* more waiting (several arrived at once): another idle executor takes the next */
		if (database_has_queued(w->lane, w->database, w->owner))
			(void) wake_idle(w->lane, w->database, w->owner, index);
		LWLockRelease(pool->lock);
		return POOL_SERVE;
	}
	w->state = W_IDLE;
	if (orphan_database(w->lane, &database, &owner) &&
		!database_has_queued(w->lane, w->database, w->owner))
	{
		/* requests of another database wait and no executor comes for them: go there */
		w->leave = true;
		w->state = W_LEAVING;
		w->next_database = database;
		w->next_owner = owner;
		LWLockRelease(pool->lock);
		return POOL_LEAVE;
	}
	LWLockRelease(pool->lock);
	return POOL_NOTHING;
}

void
dp_pool_worker_finish(int index, const PoolAssignment *a)
{
	PoolWorker *w = &pool->workers[index];
	PoolEntry  *e = &entries()[a->entry];
	bool		woken = false;
	bool		more = false;

	LWLockAcquire(pool->lock, LW_EXCLUSIVE);
	if (e->id == a->id && e->state == POOL_REQUEST_RUNNING && e->worker == index)
	{
		release_entry(e);
		woken = true;
	}
	w->state = W_IDLE;
	w->entry = -1;
	w->request_id = 0;
	w->role = InvalidOid;
	if (w->lane == POOL_LANE_SYNTHESIS)
		w->leave = true;		/* a synthesis run's memory goes with its process */
	more = database_has_queued(w->lane, w->database, w->owner);
	if (more)
	{
		/* a request of a role that was at its limit may be next: wake the idle executors */
		for (int i = 0; i < pool->nworkers; i++)
			if (i != index && pool->workers[i].state == W_IDLE && !pool->workers[i].leave &&
				worker_serves(&pool->workers[i], w->lane, w->database, w->owner))
				wake_worker(&pool->workers[i]);
	}
	if (woken)
		wake(a->entry);			/* the backend (entries are indexed by pgprocno) may wait for it */
	LWLockRelease(pool->lock);
}

bool
dp_pool_worker_abandoned(int index, uint64 id)
{
	PoolWorker *w = &pool->workers[index];
	bool		abandoned;

	LWLockAcquire(pool->lock, LW_SHARED);
	abandoned = w->entry >= 0 && entries()[w->entry].id == id && entries()[w->entry].abandoned;
	LWLockRelease(pool->lock);
	return abandoned;
}

void
dp_pool_worker_leave(int index, bool forget_database)
{
	PoolWorker *w = &pool->workers[index];

	LWLockAcquire(pool->lock, LW_EXCLUSIVE);
	if (forget_database && pool->warm_database == w->database)
		pool->warm_database = InvalidOid;
	w->leave = true;
	w->state = W_LEAVING;
	LWLockRelease(pool->lock);
}

void
dp_pool_worker_exit(int index, bool on_purpose)
{
	PoolWorker *w = &pool->workers[index];
	int			backend = -1;

	LWLockAcquire(pool->lock, LW_EXCLUSIVE);
	if (w->entry >= 0)
	{
		PoolEntry  *e = &entries()[w->entry];

		if (e->id == w->request_id && e->state == POOL_REQUEST_RUNNING && e->worker == index)
		{
			backend = w->entry;
			release_entry(e);
		}
	}
	if (!on_purpose)
	{
		/* it failed: not straight back to the same database (it may be gone) */
		w->failed = true;
		if (w->state == W_BINDING && pool->warm_database == w->database)
			pool->warm_database = InvalidOid;
		if (w->state == W_BINDING)
			w->next_database = InvalidOid;
	}
	w->state = W_ABSENT;
	w->pid = 0;
	w->pgprocno = -1;
	w->leave = false;
	w->entry = -1;
	w->request_id = 0;
	w->database = InvalidOid;
	w->owner = InvalidOid;
	wake(backend);				/* its caller: the reply queue says the executor is gone */
	LWLockRelease(pool->lock);
}

/* ------------------------------------------------------------------------
 * What administrators see (dp.executor_pool(), dp.executor_roles(), dp.doctor())
 * ------------------------------------------------------------------------ */

PG_FUNCTION_INFO_V1(dp_executor_mode);
/* dp_internal.executor_mode() RETURNS text: the executor mode and its settings, as JSON. */
Datum
dp_executor_mode(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"mode\": \"%s\"", pool != NULL ? "pool" : "session");
	if (pool != NULL)
		appendStringInfo(&buf, ", \"executors\": %d, \"synthesis_executors\": %d",
						 dp_pool_executors, dp_pool_synthesis_executors);
	appendStringInfo(&buf, ", \"role_concurrency\": %d, \"role_queue\": %d, "
					 "\"free_requests_per_second\": %g, \"executor_spares\": %d}",
					 dp_role_concurrency, dp_role_queue, dp_free_requests_per_second, dp_executor_spares);
	PG_RETURN_TEXT_P(cstring_to_text(buf.data));
}

PG_FUNCTION_INFO_V1(dp_executor_pool);
/*
 * dp_internal.executor_pool() RETURNS SETOF (lane, executor, pid, state, database,
 * role, busy_ms, served): the pool's executors now; no rows without the pool.
 */
Datum
dp_executor_pool(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();

	InitMaterializedSRF(fcinfo, 0);
	if (pool == NULL)
		return (Datum) 0;
	LWLockAcquire(pool->lock, LW_SHARED);
	for (int i = 0; i < pool->nworkers; i++)
	{
		PoolWorker *w = &pool->workers[i];
		Datum		values[8];
		bool		nulls[8] = {false};
		int			number = w->lane == POOL_LANE_QUESTIONS ? i + 1 : i - dp_pool_executors + 1;

		values[0] = CStringGetTextDatum(w->lane == POOL_LANE_QUESTIONS ? "questions" : "synthesis");
		values[1] = Int32GetDatum(number);
		values[2] = Int32GetDatum(w->pid);
		nulls[2] = w->pid == 0;
		values[3] = CStringGetTextDatum(worker_state_names[w->state]);
		values[4] = ObjectIdGetDatum(w->database);
		nulls[4] = !OidIsValid(w->database);
		values[5] = ObjectIdGetDatum(w->role);
		nulls[5] = w->state != W_BUSY;
		values[6] = Float8GetDatum((double) (now - w->busy_since) / 1000.0);
		nulls[6] = w->state != W_BUSY;
		values[7] = Int64GetDatum((int64) w->served);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(pool->lock);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(dp_executor_roles);
/*
 * dp_internal.executor_roles() RETURNS SETOF (role, running, queued, served,
 * throttled, refused, free_tokens): the pool's account of each role it saw.
 */
Datum
dp_executor_roles(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();

	InitMaterializedSRF(fcinfo, 0);
	if (pool == NULL)
		return (Datum) 0;
	LWLockAcquire(pool->lock, LW_EXCLUSIVE);	/* the buckets are brought up to date */
	for (int i = 0; i < POOL_ROLES; i++)
	{
		PoolRole   *r = &pool->roles[i];
		Datum		values[7];
		bool		nulls[7] = {false};

		if (r->role == InvalidOid)
			continue;
		refill(r, now);
		values[0] = ObjectIdGetDatum(r->role);
		values[1] = Int32GetDatum(r->running[0] + r->running[1]);
		values[2] = Int32GetDatum(r->queued[0] + r->queued[1]);
		values[3] = Int64GetDatum((int64) r->served);
		values[4] = Int64GetDatum((int64) r->throttled);
		values[5] = Int64GetDatum((int64) r->refused);
		values[6] = Float8GetDatum(r->tokens);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(pool->lock);
	return (Datum) 0;
}
