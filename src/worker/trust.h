/*
 * trust.h -- in an executor process, fmgr calls no function of a role that is not a superuser
 * (trust.c).
 */
#ifndef PG_DP_WORKER_TRUST_H
#define PG_DP_WORKER_TRUST_H

/* Called once at the start of every executor process (dp_executor_process_init). */
extern void dp_executor_trust_install(void);

#endif
