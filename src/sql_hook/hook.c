/*
 * hook.c -- plain SQL on protected tables for restricted roles.
 *
 * Loaded with session_preload_libraries = 'pg_dp' (or shared_preload_libraries),
 * a post_parse_analyze hook looks at each statement a role sends.  When the
 * statement reads a protected table the role may not SELECT from -- anywhere: in FROM,
 * a sub-select, a CTE, a scalar sub-query -- its text goes to the gateway
 * (gateway/statement.py, through the privileged executor, at no cost), which splits it
 * into DP measurements (each SELECT level that aggregates protected rows, with the
 * row-level sub-selects and CTEs under it inlined) and the statement around them.  The
 * Query is replaced by that statement, in which each measurement is
 *
 *     (SELECT answer.c1 AS dp_k1, ... FROM dp_internal.measure('<measurements>', i) AS answer(...))
 *
 * (worker/measure.c: one charge for the whole statement), so the answer is DP, with the
 * gateway's checks and errors, in the columns and types the statement has, and
 * everything above the measurements is PostgreSQL over released rows, analysed here
 * as the caller's own SQL.  Row-level reads no aggregate is above (a BI tool's preview)
 * read the table's synthetic copy.  Statements that touch no protected table, and roles
 * that may read the table, are left alone (an ACL check per relation).  Inside functions
 * and DO blocks a statement is answered the same way, for the current user (in a
 * SECURITY DEFINER function, its owner); PL/pgSQL variables become $n parameters.
 * A protected table reached through a view, COPY, CREATE TABLE AS or a statement that
 * writes keeps "permission denied"; EXPLAIN of a statement on one is refused.
 *
 * queries of information_schema.columns read pg_dp's copy of that view, which lists the
 * columns of protected tables too (see swap_catalog_views).
 *
 * The hook stays thin and calls the previous one; it does nothing in
 * background workers (the executor itself, Citus's workers) or during binary
 * upgrade.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "commands/explain.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "parser/parsetree.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "catalog/namespace.h"
#include "access/htup_details.h"

#include "citus/citus.h"
#include "pg_dp.h"
#include "worker/frontdoor.h"
#include "worker/worker.h"

#define PROTECTION_TRIGGER "dp_data_version"

static post_parse_analyze_hook_type prev_post_parse_analyze = NULL;
static bool hook_active = false;

/* A table pg_dp protects carries its data-version trigger. */
static bool
is_protected(Oid relid)
{
	Relation	rel = relation_open(relid, NoLock);
	bool		found = false;

	if (rel->trigdesc != NULL)
	{
		for (int i = 0; i < rel->trigdesc->numtriggers && !found; i++)
			found = strcmp(rel->trigdesc->triggers[i].tgname, PROTECTION_TRIGGER) == 0;
	}
	relation_close(rel, NoLock);
	return found;
}

/* A relation of the statement that pg_dp protects and the role may not read. */
static bool
closed_to_role(RangeTblEntry *rte)
{
	if (rte->rtekind != RTE_RELATION || !(rte->requiredPerms & ACL_SELECT))
		return false;
	if (rte->relkind != RELKIND_RELATION && rte->relkind != RELKIND_PARTITIONED_TABLE)
		return false;
	if (pg_class_aclcheck(rte->relid, OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId(),
						  ACL_SELECT) == ACLCHECK_OK)
		return false;
	return is_protected(rte->relid);
}

/* The text of this statement within the string the client sent. */
static char *
statement_text(ParseState *pstate, Query *query)
{
	const char *source = pstate->p_sourcetext;
	int			loc = query->stmt_location;
	int			len = query->stmt_len;

	if (source == NULL)
		return NULL;
	if (loc < 0)
		loc = 0;
	if (len <= 0)
		len = strlen(source) - loc;
	return pnstrdup(source + loc, len);
}

/*
 * Whether the text starts with the keyword (after comments, which BI tools like
 * to put first, and opening parentheses).  The inner query of a utility
 * statement is analysed with the utility's text: PREPARE's is rewritten from
 * the Query (pg_get_querydef), as is DECLARE CURSOR's (in the utility); the inner
 * query of CREATE VIEW, COPY (...) TO or CREATE TABLE AS is not, and meets
 * "permission denied".
 */
static bool
starts_with_keyword(const char *p, const char *keyword)
{
	int			len = strlen(keyword);

	for (;;)
	{
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '(')
			p++;
		if (p[0] == '-' && p[1] == '-')
		{
			while (*p && *p != '\n')
				p++;
		}
		else if (p[0] == '/' && p[1] == '*')
		{
			const char *end = strstr(p + 2, "*/");

			if (end == NULL)
				return false;
			p = end + 2;
		}
		else
			break;
	}
	return pg_strncasecmp(p, keyword, len) == 0 && !isalnum((unsigned char) p[len]) && p[len] != '_';
}

/*
 * The $n parameters a statement uses: their types by number (a prepared statement, the
 * extended protocol, PL/pgSQL's variables), and where PL/pgSQL wrote a variable's name for one.
 */
typedef struct StatementParams
{
	int			top;			/* the highest $n used; 0: none */
	int			size;
	Oid		   *types;			/* types[n - 1]; InvalidOid where unused */
	List	   *named;			/* Params written as a name in the text (PL/pgSQL variables) */
} StatementParams;

#define MAX_PARAM_ID 65535
#define MAX_PARAMS_USED (FUNC_MAX_ARGS - 3)

static bool
collect_params(Node *node, StatementParams *params)
{
	if (node == NULL)
		return false;
	if (IsA(node, Param) && ((Param *) node)->paramkind == PARAM_EXTERN)
	{
		Param	   *param = (Param *) node;

		if (param->paramid < 1 || param->paramid > MAX_PARAM_ID)
			ereport(ERROR,
					(errcode(ERRCODE_TOO_MANY_ARGUMENTS),
					 errmsg("a DP statement can use parameters $1 to $%d", MAX_PARAM_ID),
					 errhint("Pass fewer parameters.")));
		if (param->paramid > params->size)
		{
			int			size = Max(param->paramid, params->size * 2);

			params->types = params->types == NULL ? palloc0(sizeof(Oid) * size)
				: repalloc(params->types, sizeof(Oid) * size);
			memset(params->types + params->size, 0, sizeof(Oid) * (size - params->size));
			params->size = size;
		}
		params->types[param->paramid - 1] = param->paramtype;
		params->top = Max(params->top, param->paramid);
		params->named = lappend(params->named, param);
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, collect_params, params, 0);
	return expression_tree_walker(node, collect_params, params);
}

static int
params_used(StatementParams *params)
{
	int			used = 0;

	for (int n = 0; n < params->top; n++)
		used += OidIsValid(params->types[n]);
	return used;
}

/* ", \"params\": [[oid, null] or null, ...]": the parameters' types (values come at execution). */
static void
append_param_types(StringInfo buf, StatementParams *params)
{
	if (params->top == 0)
		return;
	appendStringInfoString(buf, ", \"params\": [");
	for (int n = 1; n <= params->top; n++)
	{
		if (n > 1)
			appendStringInfoString(buf, ", ");
		if (OidIsValid(params->types[n - 1]))
			appendStringInfo(buf, "[%u, null]", params->types[n - 1]);
		else
			appendStringInfoString(buf, "null");
	}
	appendStringInfoChar(buf, ']');
}

/* The length of the (possibly qualified, possibly quoted) name at p: a PL/pgSQL variable. */
static int
name_length(const char *p)
{
	const char *q = p;

	for (;;)
	{
		if (*q == '"')
		{
			q++;
			while (*q && !(q[0] == '"' && q[1] != '"'))
				q += (q[0] == '"') ? 2 : 1;
			if (*q == '"')
				q++;
		}
		else
		{
			while (*q && (isalnum((unsigned char) *q) || *q == '_' || *q == '$' || IS_HIGHBIT_SET(*q)))
				q++;
		}
		if (*q == '.' && (q[1] == '"' || isalpha((unsigned char) q[1]) || q[1] == '_'))
			q++;
		else
			break;
	}
	return q - p;
}

static int
compare_locations(const ListCell *a, const ListCell *b)
{
	return ((Param *) lfirst(a))->location - ((Param *) lfirst(b))->location;
}

/*
 * The statement's text with each parameter PL/pgSQL wrote as a variable's name written as $n
 * (its number), so that the executor reads the same statement the backend analysed.
 */
static char *
text_with_param_numbers(const char *sql, StatementParams *params)
{
	StringInfoData buf;
	List	   *named = list_copy(params->named);
	ListCell   *lc;
	int			done = 0;
	int			len = strlen(sql);

	list_sort(named, compare_locations);
	initStringInfo(&buf);
	foreach(lc, named)
	{
		Param	   *param = lfirst(lc);
		int			loc = param->location;
		int			n;

		if (loc < done || loc >= len || sql[loc] == '$')
			continue;
		n = name_length(sql + loc);
		if (n == 0)
			continue;
		appendBinaryStringInfo(&buf, sql + done, loc - done);
		appendStringInfo(&buf, "$%d", param->paramid);
		done = loc + n;
	}
	appendStringInfoString(&buf, sql + done);
	return buf.data;
}

/* ", \"search_path\": [oid, ...]": the namespaces names resolve in, as the caller's backend resolves them. */
static void
append_search_path(StringInfo buf)
{
	List	   *path = fetch_search_path(true);
	ListCell   *lc;
	bool		first = true;

	appendStringInfoString(buf, ", \"search_path\": [");
	foreach(lc, path)
	{
		appendStringInfo(buf, "%s%u", first ? "" : ", ", lfirst_oid(lc));
		first = false;
	}
	appendStringInfoChar(buf, ']');
}

static Query *
analyze_text(const char *sql, StatementParams *params)
{
	List	   *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	Query	   *result;

	if (list_length(raw) != 1)
		elog(ERROR, "pg_dp: could not build the statement");
	hook_active = true;
	PG_TRY();
	{
		result = parse_analyze_fixedparams(linitial_node(RawStmt, raw), sql, params->types, params->top, NULL);
	}
	PG_FINALLY();
	{
		hook_active = false;
	}
	PG_END_TRY();
	return result;
}

/* Replace the first occurrence of `from` in `text` by `to`. */
static char *
replace_once(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	StringInfoData buf;

	if (at == NULL)
		elog(ERROR, "pg_dp: a measurement's place was not found in the statement");
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, text, at - text);
	appendStringInfoString(&buf, to);
	appendStringInfoString(&buf, at + strlen(from));
	return buf.data;
}

/* Same columns at the same positions: a Query over one reads the other alike. */
static bool
same_columns(Oid a, Oid b)
{
	Relation	ra = relation_open(a, AccessShareLock);
	Relation	rb = relation_open(b, AccessShareLock);
	TupleDesc	da = RelationGetDescr(ra);
	TupleDesc	db = RelationGetDescr(rb);
	bool		same = da->natts == db->natts;

	for (int i = 0; same && i < da->natts; i++)
	{
		Form_pg_attribute x = TupleDescAttr(da, i);
		Form_pg_attribute y = TupleDescAttr(db, i);

		same = x->attisdropped == y->attisdropped && x->atttypid == y->atttypid &&
			x->atttypmod == y->atttypmod && strcmp(NameStr(x->attname), NameStr(y->attname)) == 0;
	}
	relation_close(rb, NoLock);		/* the locks stay until the end of the transaction */
	relation_close(ra, NoLock);
	return same;
}

/*
 * Row-level reads (no aggregate above them: a BI tool's preview) of a protected table read the
 * synthetic copy the gateway chose for this role (relations.synthetic_copy_oid), in its place,
 * with the copy owner's rights (as a view's owner's): the gateway decided the role may read it.
 * The copy's relkind is its own (a partitioned table's copy is a plain table).
 */
typedef struct CopyReads
{
	List	   *sources;
	List	   *copies;
} CopyReads;

static bool
copies_walker(Node *node, CopyReads *reads)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;
		ListCell   *s;
		ListCell   *c;

		if (rte->rtekind != RTE_RELATION)
			return false;
		forboth(s, reads->sources, c, reads->copies)
		{
			Oid			copy = lfirst_oid(c);
			HeapTuple	tuple;

			if (rte->relid != lfirst_oid(s))
				continue;
			/*
			 * read, never locked: FOR UPDATE/SHARE asks for UPDATE, which the copy's owner
			 * (dp_shadow_writer) has -- its row locks would block the writer's FK checks and the
			 * administrators' changes of a copy other roles read
			 */
			if (rte->requiredPerms != ACL_SELECT)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("the synthetic copy of %s can only be read, not locked (FOR UPDATE, FOR SHARE)",
								get_rel_name(rte->relid)),
						 errhint("Drop the locking clause: a preview reads the copy.")));
			if (!same_columns(rte->relid, copy))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("the synthetic copy of %s no longer has the table's columns", get_rel_name(rte->relid)),
						 errhint("An administrator synthesizes it again: CALL dp.dp_synthesize('%s', epsilon => 1).",
								 get_rel_name(rte->relid))));
			tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(copy));
			if (!HeapTupleIsValid(tuple))
				elog(ERROR, "pg_dp: the synthetic copy %u is gone", copy);
			rte->relid = copy;
			rte->relkind = ((Form_pg_class) GETSTRUCT(tuple))->relkind;
			rte->checkAsUser = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
			ReleaseSysCache(tuple);
			break;
		}
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, copies_walker, reads, QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, copies_walker, reads);
}

/*
 * The statement, read by the gateway (gateway/statement.py, at no cost): each SELECT level
 * that aggregates protected rows becomes a DP measurement,
 *
 *   (SELECT answer.c1 AS dp_k1, ... FROM dp_internal.measure('<the statement's measurements>', i)
 *        AS answer(c1 <type>, ...))
 *
 * with the types PostgreSQL gives the measurement's own select list (count(*) bigint, avg(int)
 * numeric, ...), and everything above the measurements -- outer queries, CTEs, joins of
 * released rows, windows, HAVING, ORDER BY, LIMIT, arithmetic -- is the analyst's SQL over the
 * released rows, analysed here as the caller's own.  Row-level reads no aggregate is above (a
 * BI tool's preview) read the table's synthetic copy the gateway names, as a view's owner would
 * (the copy is read with its owner's rights only where the gateway said this role may read it).
 */
static void
rewrite_statement(Query *query, const char *source)
{
	StatementParams params = {0};
	StringInfoData payload;
	StringInfoData statement;
	List	   *fields;
	ListCell   *lc;
	char	   *outer;
	char	   *sql;
	int			count;
	int			used;
	List	   *cores = NIL;
	List	   *markers = NIL;
	List	   *typelists = NIL;
	CopyReads	reads = {NIL, NIL};
	Query	   *answer;
	int			i;

	collect_params((Node *) query, &params);
	used = params_used(&params);
	if (used > MAX_PARAMS_USED)
		ereport(ERROR,
				(errcode(ERRCODE_TOO_MANY_ARGUMENTS),
				 errmsg("a DP statement can use at most %d parameters", MAX_PARAMS_USED),
				 errhint("Pass fewer parameters.")));
	sql = text_with_param_numbers(source, &params);

	initStringInfo(&payload);
	appendStringInfoString(&payload, "{\"sql\": ");
	escape_json(&payload, sql);
	append_param_types(&payload, &params);
	append_search_path(&payload);
	append_session_epsilon(&payload);
	append_session_timezone(&payload);
	appendStringInfoChar(&payload, '}');
	fields = dp_reply_fields(dp_executor_request("split", payload.data));

	if (list_length(fields) < 3)
		elog(ERROR, "pg_dp: malformed reply of the executor");
	outer = linitial(fields);
	count = atoi(lsecond(fields));
	if (list_length(fields) < 3 + 2 * count)
		elog(ERROR, "pg_dp: malformed reply of the executor");
	for (i = 0; i < count; i++)
	{
		markers = lappend(markers, list_nth(fields, 2 + 2 * i));
		cores = lappend(cores, list_nth(fields, 3 + 2 * i));
	}
	for (i = 3 + 2 * count; i < list_length(fields); i++)
	{
		char	   *pair = list_nth(fields, i);
		char	   *colon = strchr(pair, ':');

		if (colon == NULL)
			elog(ERROR, "pg_dp: malformed reply of the executor");
		reads.sources = lappend_oid(reads.sources, (Oid) strtoul(pair, NULL, 10));
		reads.copies = lappend_oid(reads.copies, (Oid) strtoul(colon + 1, NULL, 10));
	}

	/* the types of each measurement's columns, as PostgreSQL gives them */
	initStringInfo(&statement);
	appendStringInfoString(&statement, "{\"cores\": [");
	i = 0;
	foreach(lc, cores)
	{
		Query	   *core = analyze_text(lfirst(lc), &params);
		List	   *types = NIL;
		ListCell   *tc;

		appendStringInfoString(&statement, i++ ? ", " : "");
		escape_json(&statement, lfirst(lc));
		foreach(tc, core->targetList)
		{
			TargetEntry *te = lfirst(tc);

			if (!te->resjunk)
				types = lappend(types, te);
		}
		typelists = lappend(typelists, types);
	}
	appendStringInfoString(&statement, "], \"expect\": [");
	i = 0;
	foreach(lc, typelists)
	{
		ListCell   *tc;
		int			j = 0;

		appendStringInfoString(&statement, i++ ? ", [" : "[");
		foreach(tc, (List *) lfirst(lc))
			appendStringInfo(&statement, "%s%u", j++ ? ", " : "",
							 exprType((Node *) ((TargetEntry *) lfirst(tc))->expr));
		appendStringInfoChar(&statement, ']');
	}
	appendStringInfoString(&statement, "]}");

	/* each measurement's place in the outer statement */
	for (i = 0; i < count; i++)
	{
		List	   *types = list_nth(typelists, i);
		StringInfoData select;
		StringInfoData coldefs;
		StringInfoData marker;
		ListCell   *tc;
		int			c = 0;

		initStringInfo(&select);
		initStringInfo(&coldefs);
		appendStringInfoString(&select, "(SELECT ");
		foreach(tc, types)
		{
			TargetEntry *te = lfirst(tc);
			Node	   *expr = (Node *) te->expr;

			c++;
			appendStringInfo(&select, "%sanswer.c%d AS %s", c > 1 ? ", " : "", c, quote_identifier(te->resname));
			appendStringInfo(&coldefs, "%sc%d %s", c > 1 ? ", " : "", c,
							 format_type_with_typemod(exprType(expr), exprTypmod(expr)));
		}
		if (used == 0)
			appendStringInfo(&select, " FROM dp_internal.measure(%s, %d) AS answer(%s))",
							 quote_literal_cstr(statement.data), i + 1, coldefs.data);
		else
		{
			StringInfoData numbers;
			StringInfoData args;

			initStringInfo(&numbers);
			initStringInfo(&args);
			for (int n = 1; n <= params.top; n++)
			{
				if (!OidIsValid(params.types[n - 1]))
					continue;
				appendStringInfo(&numbers, "%s%d", numbers.len ? "," : "", n);
				appendStringInfo(&args, ", $%d", n);
			}
			appendStringInfo(&select, " FROM dp_internal.measure_params(%s, %d, '{%s}'::pg_catalog.int4[]%s) "
							 "AS answer(%s))", quote_literal_cstr(statement.data), i + 1, numbers.data, args.data,
							 coldefs.data);
		}
		initStringInfo(&marker);
		appendStringInfo(&marker, "(SELECT '%s')", (char *) list_nth(markers, i));
		outer = replace_once(outer, marker.data, select.data);
	}
	for (int n = 0; n < params.top; n++)	/* numbers not used are not referenced */
		if (!OidIsValid(params.types[n]))
			params.types[n] = TEXTOID;

	answer = analyze_text(outer, &params);
	if (reads.sources != NIL)
		copies_walker((Node *) answer, &reads);
	answer->stmt_location = query->stmt_location;
	answer->stmt_len = query->stmt_len;
	answer->canSetTag = query->canSetTag;
	answer->queryId = query->queryId;
	memcpy(query, answer, sizeof(Query));
}

/* The first relation anywhere in the statement that is protected and closed to the role. */
static bool
find_closed_relation(Node *node, Oid *found)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		if (closed_to_role((RangeTblEntry *) node))
		{
			*found = ((RangeTblEntry *) node)->relid;
			return true;
		}
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, find_closed_relation, found, QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, find_closed_relation, found);
}

/*
 * A protected table the rewrite did not answer (a CTE, a sub-query in WHERE or
 * the select list, INSERT ... SELECT, CREATE TABLE AS): "permission denied", as
 * PostgreSQL would say, but now with a hint of what is answered.
 */
static void
refuse_other_paths(Query *query)
{
	Oid			relid = InvalidOid;

	if (find_closed_relation((Node *) query, &relid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(relid)),
				 errdetail("The table is protected by pg_dp: it answers aggregates over it as a statement of "
						   "their own or as a sub-select in FROM, not in a CTE, a sub-query in WHERE or the "
						   "select list, or a statement that writes."),
				 errhint("Ask e.g. SELECT ... FROM (SELECT key, count(*) FROM %s GROUP BY key) AS s.",
						 get_rel_name(relid))));
}

static void
refuse_explain(Query *query)
{
	ExplainStmt *explain = (ExplainStmt *) query->utilityStmt;
	Query	   *inner = (Query *) explain->query;
	Oid			relid = InvalidOid;

	if (inner != NULL && IsA(inner, Query) && find_closed_relation((Node *) inner, &relid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("EXPLAIN of a statement on a protected table is not allowed"),
				 errhint("A plan shows row counts. Ask the question itself; dp.explain('...') "
						 "describes its noise.")));
}

/*
 * information_schema.columns lists a column only to roles with a privilege on it; BI tools read
 * a table's columns there (Malloy, Metabase).  pg_dp's copy of that view
 * (dp_internal.information_schema_columns, sql/80_catalog_visibility.sql) lists the columns of
 * protected tables too -- names, types, defaults and comments are public in pg_attribute anyway
 * -- so queries of the view read the copy instead, which grants nothing on the table.
 */
static bool
swap_walker(Node *node, Oid *views)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind == RTE_RELATION && rte->relkind == RELKIND_VIEW && rte->relid == views[0])
			rte->relid = views[1];
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, swap_walker, views, QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, swap_walker, views);
}

static bool
reads_view(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
		return ((RangeTblEntry *) node)->rtekind == RTE_RELATION &&
			((RangeTblEntry *) node)->relkind == RELKIND_VIEW;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, reads_view, context, QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, reads_view, context);
}

static void
swap_catalog_views(Query *query)
{
	Oid			views[2];
	Oid			ns;

	if (!reads_view((Node *) query, NULL))
		return;
	ns = get_namespace_oid("information_schema", true);
	views[0] = OidIsValid(ns) ? get_relname_relid("columns", ns) : InvalidOid;
	ns = get_namespace_oid("dp_internal", true);
	views[1] = OidIsValid(ns) ? get_relname_relid("information_schema_columns", ns) : InvalidOid;
	if (OidIsValid(views[0]) && OidIsValid(views[1]))
		swap_walker((Node *) query, views);
}

static void
dp_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	Oid			relid = InvalidOid;

	if (prev_post_parse_analyze)
		prev_post_parse_analyze(pstate, query, jstate);
	if (hook_active || IsBackgroundWorker || IsBinaryUpgrade || !IsTransactionState())
		return;
	if (pg_dp_citus_internal_connection())
		return;
	pg_dp_citus_rewrite_counts(query);
	if (query->commandType == CMD_UTILITY)
	{
		if (query->utilityStmt && IsA(query->utilityStmt, ExplainStmt))
			refuse_explain(query);
		else if (query->utilityStmt && IsA(query->utilityStmt, DeclareCursorStmt))
		{
			/* analysed here, with the DECLARE (psql's FETCH_COUNT reads answers so) */
			Node	   *inner = ((DeclareCursorStmt *) query->utilityStmt)->query;
			char	   *sql = statement_text(pstate, query);

			if (inner != NULL && IsA(inner, Query))
			{
				if (sql != NULL && find_closed_relation(inner, &relid))
					rewrite_statement((Query *) inner, sql);
				swap_catalog_views((Query *) inner);
				refuse_other_paths((Query *) inner);
			}
		}
		return;
	}
	if (query->querySource == QSRC_ORIGINAL && query->commandType == CMD_SELECT &&
		find_closed_relation((Node *) query, &relid))
	{
		char	   *sql = statement_text(pstate, query);

		if (sql != NULL && (starts_with_keyword(sql, "select") || starts_with_keyword(sql, "with") ||
							starts_with_keyword(sql, "table") || starts_with_keyword(sql, "prepare")))
			rewrite_statement(query, sql);
	}
	swap_catalog_views(query);		/* the statement as it runs, rewritten or not */
	if (query->querySource != QSRC_ORIGINAL)
		return;
	refuse_other_paths(query);
}

/* Called by _PG_init (pg_dp.c). */
void
dp_sql_hook_install(void)
{
	prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = dp_post_parse_analyze;
}
