/*
 * frontdoor.c -- the set-returning front doors over the executor: dp.query and
 * dp.view_answer.
 *
 * They run in the analyst's backend with the analyst's rights (SECURITY
 * INVOKER): all they do is hand the question to the executor (session.c) and
 * turn its reply into rows of the column definition list the caller wrote, by
 * those types' input functions.  Errors come from the executor with their own
 * SQLSTATE and hint.
 *
 * Reply format (pg_dp.gateway.encode_rows): a header line "<ncols> <name type,
 * ...>\n", then every value, row after row, as N (NULL) or V<characters>:<text>.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "access/tupdesc.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/json.h"
#include "utils/tuplestore.h"

#include "worker/worker.h"
#include "worker/frontdoor.h"

static void
append_number(StringInfo buf, const char *key, bool isnull, double value)
{
	appendStringInfo(buf, ", \"%s\": ", key);
	if (isnull)
		appendStringInfoString(buf, "null");
	else if (isnan(value))
		appendStringInfoString(buf, "\"NaN\"");
	else if (isinf(value))
		appendStringInfoString(buf, value > 0 ? "\"Infinity\"" : "\"-Infinity\"");
	else
		appendStringInfo(buf, "%.17g", value);
}

static long
read_number(const char **p, const char *end, char stop)
{
	long		n = 0;

	while (*p < end && **p >= '0' && **p <= '9')
	{
		n = n * 10 + (**p - '0');
		(*p)++;
	}
	if (*p >= end || **p != stop)
		elog(ERROR, "pg_dp: malformed reply of the executor");
	(*p)++;
	return n;
}

/* Fill the caller's tuplestore from an executor reply of rows. */
void
rows_from_reply(FunctionCallInfo fcinfo, text *reply)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const char *p = VARDATA_ANY(reply);
	const char *end = p + VARSIZE_ANY_EXHDR(reply);
	const char *header_end;
	long		ncols;
	AttInMetadata *attinmeta;
	char	  **values;

	ncols = read_number(&p, end, ' ');
	header_end = memchr(p, '\n', end - p);
	if (header_end == NULL)
		elog(ERROR, "pg_dp: malformed reply of the executor");

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (rsinfo->setDesc->natts != ncols)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the answer has %ld column(s), the column definition list %d",
						ncols, rsinfo->setDesc->natts),
				 errhint("Write AS t(%.*s).", (int) (header_end - p), p)));
	p = header_end + 1;
	attinmeta = TupleDescGetAttInMetadata(rsinfo->setDesc);
	values = palloc(sizeof(char *) * Max(ncols, 1));
	while (p < end)
	{
		for (long i = 0; i < ncols; i++)
		{
			if (p < end && *p == 'N')
			{
				values[i] = NULL;
				p++;
			}
			else if (p < end && *p == 'V')
			{
				long		chars;
				int			len;

				p++;
				chars = read_number(&p, end, ':');
				if (chars > end - p)
					elog(ERROR, "pg_dp: malformed reply of the executor");
				/* lengths count characters: the reply is in the server's encoding */
				len = pg_mbcharcliplen(p, end - p, chars);
				values[i] = pnstrdup(p, len);
				p += len;
			}
			else
				elog(ERROR, "pg_dp: malformed reply of the executor");
		}
		tuplestore_puttuple(rsinfo->setResult, BuildTupleFromCStrings(attinmeta, values));
		for (long i = 0; i < ncols; i++)
			if (values[i])
				pfree(values[i]);
	}
}

/*
 * The type oids of the caller's column definition list, so that the executor can
 * refuse a list that does not fit the answer before anything is charged.
 */
void
append_expected(StringInfo buf, FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) || rsinfo->expectedDesc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("dp.query must be called in FROM with a column definition list"),
				 errhint("SELECT * FROM dp.query('...') AS t(col type, ...);")));
	appendStringInfoString(buf, ", \"expect\": [");
	for (int i = 0; i < rsinfo->expectedDesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(rsinfo->expectedDesc, i);

		if (i > 0)
			appendStringInfoString(buf, ", ");
		appendStringInfo(buf, "%u", att->atttypid);
	}
	appendStringInfoChar(buf, ']');
}

/*
 * The session's pg_dp.epsilon: the epsilon of statements that give none, within
 * what the DBA allows the role (checked by the executor; every release is charged).
 */
void
append_session_epsilon(StringInfo buf)
{
	const char *value = GetConfigOption("pg_dp.epsilon", true, false);

	if (value != NULL && value[0] != '\0' && strcmp(value, "0") != 0)
	{
		appendStringInfoString(buf, ", \"session_epsilon\": ");
		escape_json(buf, value);
	}
}

/*
 * The session's TimeZone: the executor runs the exact query under it, so that
 * timestamptz keys and constants mean what they mean in this session (the
 * executor checks the name; the answer is cached per zone where it matters).
 */
void
append_session_timezone(StringInfo buf)
{
	const char *value = GetConfigOption("TimeZone", true, false);

	if (value != NULL && value[0] != '\0')
	{
		appendStringInfoString(buf, ", \"timezone\": ");
		escape_json(buf, value);
	}
}

PG_FUNCTION_INFO_V1(dp_query);
/* dp.query(sql text, epsilon float8, delta float8) RETURNS SETOF record */
Datum
dp_query(PG_FUNCTION_ARGS)
{
	StringInfoData payload;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("the query is empty"),
				 errhint("Pass one SELECT statement.")));
	initStringInfo(&payload);
	appendStringInfoString(&payload, "{\"sql\": ");
	escape_json(&payload, text_to_cstring(PG_GETARG_TEXT_PP(0)));
	append_number(&payload, "epsilon", PG_ARGISNULL(1), PG_ARGISNULL(1) ? 0 : PG_GETARG_FLOAT8(1));
	append_number(&payload, "delta", PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_FLOAT8(2));
	append_session_epsilon(&payload);
	append_session_timezone(&payload);
	append_expected(&payload, fcinfo);
	appendStringInfoChar(&payload, '}');
	rows_from_reply(fcinfo, dp_executor_request("query", payload.data));
	return (Datum) 0;
}

/*
 * The values of a statement's $n parameters, as [[type oid, text or null] or null, ...]
 * indexed by n - 1.  `numbers` (argument 1) says which $n each of the variadic arguments
 * (2, 3, ...) is.  Values are written by their types' output functions under the settings
 * the executor reads them with (ISO dates, UTC, all float digits), whatever the session's.
 */
void
append_params(StringInfo buf, FunctionCallInfo fcinfo, int first)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(first);
	Datum	   *numbers;
	bool	   *nulls;
	int			count;
	int			top = 0;
	char	  **texts;
	Oid		   *types;
	int			nest;

	if (get_fn_expr_variadic(fcinfo->flinfo))
		elog(ERROR, "pg_dp: parameters must be passed one by one");
	deconstruct_array(array, INT4OID, sizeof(int32), true, TYPALIGN_INT, &numbers, &nulls, &count);
	if (count != PG_NARGS() - first - 1)
		elog(ERROR, "pg_dp: %d parameter numbers for %d parameters", count, PG_NARGS() - first - 1);
	for (int i = 0; i < count; i++)
	{
		if (nulls[i] || DatumGetInt32(numbers[i]) < 1 || DatumGetInt32(numbers[i]) > 65535)
			elog(ERROR, "pg_dp: bad parameter number");
		top = Max(top, DatumGetInt32(numbers[i]));
	}
	texts = palloc0(sizeof(char *) * (top + 1));
	types = palloc0(sizeof(Oid) * (top + 1));
	nest = NewGUCNestLevel();
	(void) set_config_option("DateStyle", "ISO, YMD", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("IntervalStyle", "postgres", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("TimeZone", "UTC", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("extra_float_digits", "3", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("bytea_output", "hex", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	for (int i = 0; i < count; i++)
	{
		int			n = DatumGetInt32(numbers[i]);
		Oid			type = get_fn_expr_argtype(fcinfo->flinfo, i + first + 1);
		Oid			output;
		bool		varlena;

		if (!OidIsValid(type))
			elog(ERROR, "pg_dp: a parameter of unknown type");
		types[n] = type;
		if (!PG_ARGISNULL(i + first + 1))
		{
			getTypeOutputInfo(type, &output, &varlena);
			texts[n] = OidOutputFunctionCall(output, PG_GETARG_DATUM(i + first + 1));
		}
	}
	AtEOXact_GUC(true, nest);
	appendStringInfoString(buf, ", \"params\": [");
	for (int n = 1; n <= top; n++)
	{
		if (n > 1)
			appendStringInfoString(buf, ", ");
		if (!OidIsValid(types[n]))
		{
			appendStringInfoString(buf, "null");
			continue;
		}
		appendStringInfo(buf, "[%u, ", types[n]);
		if (texts[n] == NULL)
			appendStringInfoString(buf, "null");
		else
			escape_json(buf, texts[n]);
		appendStringInfoChar(buf, ']');
	}
	appendStringInfoChar(buf, ']');
}

PG_FUNCTION_INFO_V1(dp_query_params);
/*
 * dp_internal.query_params(sql text, numbers integer[], VARIADIC params "any") RETURNS
 * SETOF record: dp.query for a statement with $n parameters (the plain-SQL hook's
 * rewrite of a prepared statement; the executor makes them constants of the statement).
 */
Datum
dp_query_params(PG_FUNCTION_ARGS)
{
	StringInfoData payload;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		elog(ERROR, "pg_dp: the statement and its parameter numbers are required");
	initStringInfo(&payload);
	appendStringInfoString(&payload, "{\"sql\": ");
	escape_json(&payload, text_to_cstring(PG_GETARG_TEXT_PP(0)));
	append_session_epsilon(&payload);
	append_session_timezone(&payload);
	append_expected(&payload, fcinfo);
	append_params(&payload, fcinfo, 1);
	appendStringInfoChar(&payload, '}');
	rows_from_reply(fcinfo, dp_executor_request("query", payload.data));
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(dp_view_answer);
/* dp.view_answer(id bigint) RETURNS SETOF record: the answer behind a dp.create_view view */
Datum
dp_view_answer(PG_FUNCTION_ARGS)
{
	StringInfoData payload;

	initStringInfo(&payload);
	appendStringInfo(&payload, "{\"id\": " INT64_FORMAT, PG_GETARG_INT64(0));
	append_expected(&payload, fcinfo);
	appendStringInfoChar(&payload, '}');
	rows_from_reply(fcinfo, dp_executor_request("view", payload.data));
	return (Datum) 0;
}
