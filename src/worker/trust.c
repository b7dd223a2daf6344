/*
 * trust.c -- the executor calls no function of a role that is not a superuser.
 *
 * The executor is connected as the extension owner, a superuser: whatever function its queries
 * reach runs with those rights.  The engine writes every operator and function it names as
 * pg_catalog's or its own, and checks the relations and column types it reads before it reads
 * them (core/catalog.py: pin), but what a query reaches is decided partly by other roles: the
 * owner of a protected table (who need not be a pg_dp administrator) chooses its columns' types,
 * their casts and domain constraints; the owner of a dimension, its type's casts.  As a second
 * line under those checks, fmgr in an executor process refuses to call a function whose owner is
 * not a superuser: needs_fmgr_hook marks such a function (which also keeps the planner from
 * inlining it, as for any hooked function), and fmgr_hook raises an error before it runs.
 * Built-in functions never reach these hooks; a superuser's function is the DBA's own.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "worker/trust.h"

static needs_fmgr_hook_type prev_needs_fmgr_hook = NULL;
static fmgr_hook_type prev_fmgr_hook = NULL;

/* Whether the function belongs to a role that is not a superuser. */
static bool
foreign_function(Oid fn_oid)
{
	HeapTuple	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		return false;			/* fmgr reports a missing function itself */
	owner = ((Form_pg_proc) GETSTRUCT(tuple))->proowner;
	ReleaseSysCache(tuple);
	return !superuser_arg(owner);
}

static bool
executor_needs_fmgr_hook(Oid fn_oid)
{
	if (prev_needs_fmgr_hook != NULL && prev_needs_fmgr_hook(fn_oid))
		return true;
	return foreign_function(fn_oid);
}

static void
executor_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo, Datum *arg)
{
	if (event == FHET_START && foreign_function(flinfo->fn_oid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("pg_dp's executor does not run function %s: its owner is not a superuser",
						format_procedure(flinfo->fn_oid)),
				 errhint("A column type, cast, operator or domain constraint of another role cannot be used in "
						 "a DP question; ask an administrator to use built-in types.")));
	if (prev_fmgr_hook != NULL)
		prev_fmgr_hook(event, flinfo, arg);
}

/* Called once at the start of every executor process (dp_executor_process_init). */
void
dp_executor_trust_install(void)
{
	prev_needs_fmgr_hook = needs_fmgr_hook;
	needs_fmgr_hook = executor_needs_fmgr_hook;
	prev_fmgr_hook = fmgr_hook;
	fmgr_hook = executor_fmgr_hook;
}
