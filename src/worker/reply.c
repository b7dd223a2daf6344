/*
 * reply.c -- reading an executor's reply on the session side.
 *
 * A reply of several fields is written as V<characters>:<text> per field, one after
 * the other (pg_dp.gateway.serve._field writes them); characters, not bytes, so that a
 * field may hold any text of the database encoding.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "nodes/pg_list.h"

#include "worker.h"

List *
dp_reply_fields(text *reply)
{
	const char *p = VARDATA_ANY(reply);
	const char *end = p + VARSIZE_ANY_EXHDR(reply);
	List	   *fields = NIL;

	while (p < end)
	{
		long		chars = 0;
		int			len;

		if (*p++ != 'V')
			elog(ERROR, "pg_dp: malformed reply of the executor");
		while (p < end && *p >= '0' && *p <= '9')
			chars = chars * 10 + (*p++ - '0');
		if (p >= end || *p++ != ':' || chars > end - p)
			elog(ERROR, "pg_dp: malformed reply of the executor");
		len = pg_mbcharcliplen(p, end - p, chars);
		fields = lappend(fields, pnstrdup(p, len));
		p += len;
	}
	return fields;
}
