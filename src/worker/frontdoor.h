/*
 * frontdoor.h -- what the set-returning front doors (frontdoor.c) share with the statement
 * measurements (measure.c): turning an executor reply into rows, and the session's parts of a
 * request (its pg_dp.epsilon, TimeZone, $n parameters, the caller's column definition list).
 */
#ifndef PG_DP_WORKER_FRONTDOOR_H
#define PG_DP_WORKER_FRONTDOOR_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"

extern void rows_from_reply(FunctionCallInfo fcinfo, text *reply);
extern void append_expected(StringInfo buf, FunctionCallInfo fcinfo);
extern void append_session_epsilon(StringInfo buf);
extern void append_session_timezone(StringInfo buf);
/* the values of $n parameters: argument `first` is their numbers (int4[]), the values follow it */
extern void append_params(StringInfo buf, FunctionCallInfo fcinfo, int first);

#endif
