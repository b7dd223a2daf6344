/*
 * serve.h -- the executor's side (serve.c): what every executor process does,
 * whether started for one session (session.c) or as a spare (spares.c).
 */
#ifndef PG_DP_WORKER_SERVE_H
#define PG_DP_WORKER_SERVE_H

#include "worker/protocol.h"

struct BackgroundWorker;

/* What every executor process is: a connected, never restarted "pg_dp executor" worker. */
extern void dp_executor_worker(struct BackgroundWorker *worker, const char *function, const char *name);

/* Signals, the exit path and a resource owner: the start of every executor process. */
extern void dp_executor_process_init(void);

/* The settings every request runs under, whatever the owner's or the database's defaults. */
extern void dp_executor_pin_settings(void);

/* Load the engine (the question kinds' modules) before any request needs it. */
extern void dp_executor_warm_up(void);

/* Whether another backend waits to drop, rename or copy the executor's database. */
extern bool dp_database_wanted(void);

/* Serve the session's requests until it ends or the executor idled for EXECUTOR_IDLE_MS. */
extern void dp_executor_serve(dsm_segment *seg, ExecutorShared *shared,
							  shm_mq_handle *requests, shm_mq_handle *replies) pg_attribute_noreturn();

#endif
