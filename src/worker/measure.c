/*
 * measure.c -- the DP measurements of one plain-SQL statement, charged once.
 *
 * The plain-SQL hook (sql_hook/hook.c) replaces each measurement of a statement (a SELECT level that
 * aggregates protected rows) by
 *
 *     dp_internal.measure('<statement>', i [, '{n, ...}', $n, ...]) AS answer(c1 <type>, ...)
 *
 * where <statement> is the JSON of all the statement's measurements ({"cores": [...],
 * "expect": [[type oid, ...], ...]}).  The first call in an execution of the statement sends
 * them all to the executor in one request (one charge per dataset for the whole statement,
 * the DBA's per-statement maximum checked for the whole), and keeps the released rows of
 * every measurement for the rest of that execution, in the executor state's per-query memory
 * (one EState serves the whole plan: sub-queries, CTEs and sub-plans of the statement); each
 * call returns its own part.  A new execution (a prepared statement run again, a cursor
 * opened again) asks again, and is answered from the answer cache when nothing changed.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "nodes/execnodes.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "worker/frontdoor.h"
#include "worker/worker.h"

typedef struct StatementAnswers
{
	MemoryContext context;		/* the executor's per-query memory of one execution */
	char	   *statement;		/* the measurements' JSON */
	int			count;
	text	  **parts;			/* each measurement's reply (as dp.query's) */
	struct StatementAnswers *next;
	MemoryContextCallback callback;
} StatementAnswers;

static StatementAnswers *answers_list = NULL;

static void
forget_answers(void *arg)
{
	StatementAnswers **p;

	for (p = &answers_list; *p != NULL; p = &(*p)->next)
	{
		if (*p == (StatementAnswers *) arg)
		{
			*p = (*p)->next;
			return;
		}
	}
}

static StatementAnswers *
ask(FunctionCallInfo fcinfo, const char *statement, MemoryContext context, bool with_params)
{
	StringInfoData payload;
	size_t		len = strlen(statement);
	MemoryContext old;
	StatementAnswers *answers;
	List	   *fields;
	ListCell   *lc;
	int			i = 0;

	if (len < 2 || statement[0] != '{' || statement[len - 1] != '}')
		elog(ERROR, "pg_dp: malformed statement of dp_internal.measure");
	initStringInfo(&payload);
	appendBinaryStringInfo(&payload, statement, len - 1);
	append_session_epsilon(&payload);
	append_session_timezone(&payload);
	if (with_params)
		append_params(&payload, fcinfo, 2);
	appendStringInfoChar(&payload, '}');

	old = MemoryContextSwitchTo(context);
	fields = dp_reply_fields(dp_executor_request("statement", payload.data));
	answers = palloc0(sizeof(StatementAnswers));
	answers->context = context;
	answers->statement = pstrdup(statement);
	answers->count = list_length(fields);
	answers->parts = palloc(sizeof(text *) * Max(answers->count, 1));
	foreach(lc, fields)
		answers->parts[i++] = cstring_to_text(lfirst(lc));
	answers->callback.func = forget_answers;
	answers->callback.arg = answers;
	MemoryContextRegisterResetCallback(context, &answers->callback);
	answers->next = answers_list;
	answers_list = answers;
	MemoryContextSwitchTo(old);
	return answers;
}

static Datum
measure(FunctionCallInfo fcinfo, bool with_params)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *statement;
	int			index;
	MemoryContext context;
	StatementAnswers *answers;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		elog(ERROR, "pg_dp: the statement and the measurement's number are required");
	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) || rsinfo->econtext == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("dp_internal.measure must be called in FROM"),
				 errhint("It is written by pg_dp's plain-SQL hook; ask the statement itself.")));
	statement = text_to_cstring(PG_GETARG_TEXT_PP(0));
	index = PG_GETARG_INT32(1);
	context = rsinfo->econtext->ecxt_per_query_memory;
	for (answers = answers_list; answers != NULL; answers = answers->next)
		if (answers->context == context && strcmp(answers->statement, statement) == 0)
			break;
	if (answers == NULL)
		answers = ask(fcinfo, statement, context, with_params);
	if (index < 1 || index > answers->count)
		elog(ERROR, "pg_dp: no measurement %d in the statement", index);
	rows_from_reply(fcinfo, answers->parts[index - 1]);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(dp_measure);
/* dp_internal.measure(statement text, i integer) RETURNS SETOF record */
Datum
dp_measure(PG_FUNCTION_ARGS)
{
	return measure(fcinfo, false);
}

PG_FUNCTION_INFO_V1(dp_measure_params);
/* dp_internal.measure_params(statement text, i integer, numbers integer[], VARIADIC params "any") */
Datum
dp_measure_params(PG_FUNCTION_ARGS)
{
	return measure(fcinfo, true);
}
