/*
 * spares.h -- warm executors that a new session adopts instead of starting one
 * (spares.c), as the session side (session.c) uses them.
 */
#ifndef PG_DP_WORKER_SPARES_H
#define PG_DP_WORKER_SPARES_H

#include "worker/protocol.h"

extern dsm_segment *dp_spare_adopt(Oid owner);
extern void dp_spare_replenish(Oid owner);
extern bool dp_spare_retire_one(void);

#endif
