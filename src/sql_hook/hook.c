/*
 * hook.c -- plain SQL on protected tables for restricted roles.
 *
 * Loaded with session_preload_libraries = 'pg_dp' (or shared_preload_libraries),
 * a post_parse_analyze hook looks at each statement a role sends.  When the
 * statement itself reads a protected table the role may not SELECT from, it is
 * handed to the gateway (through the privileged executor, worker/) instead:
 * the Query is replaced by
 *
 *     SELECT answer.c1::<its type> AS <its name>, ...
 *     FROM dp.query('<the statement>') AS answer(c1 <type>, ...)
 *
 * so the answer is the DP answer, charged once, with the gateway's checks and
 * errors, in the columns and types the statement has.  The same is done for
 * sub-selects in FROM that read a protected table (BI tools' wrappers), and
 * PostgreSQL evaluates what is around them over the released rows.  The statement text goes to the executor as the role typed it; the
 * executor parses it with its own pinned settings.  Statements that touch no
 * protected table, and roles that may read the table, are left alone (an ACL
 * check per relation of the statement).  A protected table reached in another
 * way (a sub-query in WHERE, a CTE, a view, a function) keeps "permission denied";
 * EXPLAIN of a statement on a protected table is refused for such roles.
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

#include "citus/citus.h"
#include "pg_dp.h"
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

/* Whether this Query level reads such a relation. */
static bool
reads_protected_table(List *rtable)
{
	ListCell   *lc;

	foreach(lc, rtable)
	{
		if (closed_to_role(lfirst(lc)))
			return true;
	}
	return false;
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

/* The $n parameters a statement uses: their types by number (a prepared statement). */
typedef struct StatementParams
{
	int			top;			/* the highest $n used; 0: none */
	Oid			types[FUNC_MAX_ARGS];	/* types[n - 1]; InvalidOid where unused */
} StatementParams;

static bool
collect_params(Node *node, StatementParams *params)
{
	if (node == NULL)
		return false;
	if (IsA(node, Param) && ((Param *) node)->paramkind == PARAM_EXTERN)
	{
		Param	   *param = (Param *) node;

		/* each $n becomes an argument of the call that answers the statement */
		if (param->paramid < 1 || param->paramid > FUNC_MAX_ARGS - 2)
			ereport(ERROR,
					(errcode(ERRCODE_TOO_MANY_ARGUMENTS),
					 errmsg("a DP statement can use at most $%d", FUNC_MAX_ARGS - 2),
					 errhint("Pass fewer parameters.")));
		params->types[param->paramid - 1] = param->paramtype;
		params->top = Max(params->top, param->paramid);
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, collect_params, params, 0);
	return expression_tree_walker(node, collect_params, params);
}

/* ", \"params\": [[oid, null] or null, ...]": the parameters' types, for the executor's explain. */
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

/* The types of the answer's columns, one a line, from the executor (nothing is charged). */
static List *
answer_types(const char *sql, StatementParams *params)
{
	StringInfoData payload;
	char	   *reply;
	List	   *types = NIL;
	char	   *line;
	char	   *save = NULL;

	initStringInfo(&payload);
	appendStringInfoString(&payload, "{\"sql\": ");
	escape_json(&payload, sql);
	append_param_types(&payload, params);
	appendStringInfoString(&payload, ", \"columns_only\": true}");
	reply = text_to_cstring(dp_executor_request("explain", payload.data));
	for (line = strtok_r(reply, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		types = lappend(types, line);
	return types;
}

/*
 * Replace `query` (a SELECT that reads a protected table at its own level) by
 *
 *   SELECT answer.c1::<type of its 1st column> AS <its name>, ...
 *   FROM dp.query('<sql>') AS answer(c1 <type of the answer's 1st column>, ...)
 *
 * so that the DP answer comes with the columns, names and types the statement
 * itself has (count(*) bigint, avg(int) numeric, ...): outer queries,
 * clients and drivers see no difference.
 */
static void
replace_with_gateway(Query *query, const char *sql)
{
	StatementParams *params = palloc0(sizeof(StatementParams));
	List	   *types;
	StringInfoData select;
	StringInfoData coldefs;
	ListCell   *lc;
	ListCell   *tc;
	List	   *raw;
	Query	   *answer;
	int			i = 0;

	collect_params((Node *) query, params);
	types = answer_types(sql, params);
	initStringInfo(&select);
	appendStringInfoString(&select, "SELECT ");
	initStringInfo(&coldefs);
	tc = list_head(types);
	foreach(lc, query->targetList)
	{
		TargetEntry *te = lfirst(lc);

		if (te->resjunk)
			continue;
		if (tc == NULL)
			break;
		i++;
		appendStringInfo(&select, "%sanswer.c%d::%s AS %s", i > 1 ? ", " : "", i,
						 format_type_with_typemod(exprType((Node *) te->expr), exprTypmod((Node *) te->expr)),
						 quote_identifier(te->resname ? te->resname : "?column?"));
		appendStringInfo(&coldefs, "%sc%d %s", i > 1 ? ", " : "", i, (char *) lfirst(tc));
		tc = lnext(types, tc);
	}
	if (i != list_length(types) || i == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the DP answer has %d column(s), the statement %d", list_length(types), i),
				 errhint("Ask for group keys and aggregates only.")));
	if (params->top == 0)
		appendStringInfo(&select, " FROM dp.query(%s) AS answer(%s)", quote_literal_cstr(sql), coldefs.data);
	else
	{
		/* dp_internal.query_params('<sql>', '{n, ...}', $n, ...): the values at execution */
		StringInfoData numbers;
		StringInfoData args;

		initStringInfo(&numbers);
		initStringInfo(&args);
		for (int n = 1; n <= params->top; n++)
		{
			if (!OidIsValid(params->types[n - 1]))
				continue;
			appendStringInfo(&numbers, "%s%d", numbers.len ? "," : "", n);
			appendStringInfo(&args, ", $%d", n);
		}
		appendStringInfo(&select, " FROM dp_internal.query_params(%s, '{%s}'::pg_catalog.int4[]%s) AS answer(%s)",
						 quote_literal_cstr(sql), numbers.data, args.data, coldefs.data);
		for (int n = 0; n < params->top; n++)	/* numbers not used are not referenced */
			if (!OidIsValid(params->types[n]))
				params->types[n] = TEXTOID;
	}
	raw = raw_parser(select.data, RAW_PARSE_DEFAULT);
	if (list_length(raw) != 1)
		elog(ERROR, "pg_dp: could not build the gateway statement");
	hook_active = true;
	PG_TRY();
	{
		answer = parse_analyze_fixedparams(linitial_node(RawStmt, raw), select.data,
										   params->types, params->top, NULL);
	}
	PG_FINALLY();
	{
		hook_active = false;
	}
	PG_END_TRY();
	answer->stmt_location = query->stmt_location;
	answer->stmt_len = query->stmt_len;
	answer->canSetTag = query->canSetTag;
	answer->queryId = query->queryId;
	memcpy(query, answer, sizeof(Query));
}

/* The caller's synthetic copy of a protected table, or InvalidOid. */
static Oid
synthetic_copy(Oid relid)
{
	char		payload[64];
	char	   *reply;

	snprintf(payload, sizeof(payload), "{\"relid\": %u}", relid);
	reply = text_to_cstring(dp_executor_request("synthetic_copy", payload));
	return reply[0] ? (Oid) strtoul(reply, NULL, 10) : InvalidOid;
}

/* Same columns at the same positions: a Query over one reads the other alike. */
static bool
same_columns(Oid a, Oid b)
{
	Relation	ra = relation_open(a, NoLock);
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
	relation_close(rb, NoLock);		/* the lock stays until the end of the transaction */
	relation_close(ra, NoLock);
	return same;
}

/*
 * A row-level read (no aggregate: a BI tool's preview, `SELECT * ... LIMIT 2000`)
 * of protected tables is answered from their synthetic copies, with a NOTICE;
 * rows of a protected table are never released.
 */
static void
read_synthetic_copies(Query *query)
{
	ListCell   *lc;

	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);
		Oid			copy;

		if (!closed_to_role(rte))
			continue;
		copy = synthetic_copy(rte->relid);
		if (!OidIsValid(copy) || !same_columns(rte->relid, copy))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("rows of the protected table %s are never released", get_rel_name(rte->relid)),
					 errhint("Ask aggregates (count, avg, ...) instead, or read a DP synthetic copy: "
							 "CALL dp.dp_synthesize('%s', epsilon => 1) makes one in the shadow schema.",
							 get_rel_name(rte->relid))));
		ereport(NOTICE,
				(errmsg("rows of %s come from its DP synthetic copy %s.%s", get_rel_name(rte->relid),
						get_namespace_name(get_rel_namespace(copy)), get_rel_name(copy)),
				 errhint("Synthetic rows look like the table's, but no row is a real one; ask aggregates "
						 "for DP answers on the real data.")));
		rte->relid = copy;
	}
}

/*
 * Splitting a level into its DP core and what PostgreSQL evaluates around it.
 *
 * A level such as
 *     SELECT g, round(avg(x), 1), sum(a) / count(*) FROM t GROUP BY g
 *     HAVING count(*) > 100 ORDER BY 3 DESC LIMIT 5
 * becomes
 *     SELECT c.g, round(c.a1, 1), c.a2 / c.a3 FROM (<DP answer of
 *         SELECT g, avg(x) AS a1, sum(a) AS a2, count(*) AS a3 FROM t GROUP BY g>) AS c
 *     WHERE c.a3 > 100 ORDER BY 3 DESC LIMIT 5
 * The core holds the level's group keys and every aggregate it uses (in the select
 * list, HAVING and ORDER BY), so each is one noisy measurement, and the rest --
 * HAVING as a filter on noisy values, arithmetic, casts, round(), ORDER BY, LIMIT,
 * DISTINCT -- is post-processing over the released rows.
 */
typedef struct CoreBuild
{
	Query	   *core;			/* the DP core, being built */
	List	   *group_clause;	/* the level's GROUP BY, to recognise its keys */
	bool		failed;			/* a column outside a key or an aggregate */
} CoreBuild;

/* 1-based position in the core of an expression equal to node, 0 if none. */
static int
core_position(CoreBuild *build, Node *node, bool keys_only)
{
	ListCell   *lc;

	foreach(lc, build->core->targetList)
	{
		TargetEntry *tle = lfirst(lc);

		if (keys_only && (tle->ressortgroupref == 0 ||
						  get_sortgroupref_clause_noerr(tle->ressortgroupref, build->group_clause) == NULL))
			continue;
		if (equal(tle->expr, node))
			return tle->resno;
	}
	return 0;
}

static Node *
to_core_column(Node *node, CoreBuild *build)
{
	int			position;

	if (node == NULL)
		return NULL;
	position = core_position(build, node, true);
	if (position == 0 && IsA(node, Aggref))
	{
		position = core_position(build, node, false);
		if (position == 0)
		{
			char		name[32];

			position = list_length(build->core->targetList) + 1;
			snprintf(name, sizeof(name), "dp_measure_%d", position);
			build->core->targetList = lappend(build->core->targetList,
											  makeTargetEntry((Expr *) copyObject(node), position,
															  pstrdup(name), false));
		}
	}
	if (position > 0)
		return (Node *) makeVar(1, position, exprType(node), exprTypmod(node), exprCollation(node), 0);
	if (IsA(node, Var) && ((Var *) node)->varlevelsup == 0)
		build->failed = true;	/* e.g. a column functionally dependent on a grouped key */
	return expression_tree_mutator(node, to_core_column, build);
}

/* Whether the level needs PostgreSQL around its DP core, and may have it. */
static bool
wants_split(Query *query)
{
	ListCell   *lc;
	bool		needed = query->havingQual != NULL;

	if (query->hasWindowFuncs || query->hasSubLinks || query->groupingSets != NIL || query->cteList != NIL ||
		query->setOperations != NULL || query->hasTargetSRFs)
		return false;
	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst(lc);
		bool		key = tle->ressortgroupref != 0 &&
			get_sortgroupref_clause_noerr(tle->ressortgroupref, query->groupClause) != NULL;

		if (!key && (tle->resjunk || !IsA(tle->expr, Aggref)))
			needed = true;		/* an expression over aggregates, or ORDER BY one not selected */
	}
	return needed;
}

static bool
split_level(Query *query)
{
	CoreBuild	build;
	ListCell   *lc;
	List	   *keys = NIL;
	List	   *outer_targets = NIL;
	List	   *colnames = NIL;
	Node	   *filter;
	RangeTblEntry *rte;
	RangeTblRef *ref;
	int			n = 0;

	build.core = copyObject(query);
	build.group_clause = query->groupClause;
	build.failed = false;
	build.core->havingQual = NULL;
	build.core->sortClause = NIL;
	build.core->distinctClause = NIL;
	build.core->hasDistinctOn = false;
	build.core->limitCount = NULL;
	build.core->limitOffset = NULL;
	build.core->limitOption = LIMIT_OPTION_DEFAULT;
	foreach(lc, build.core->targetList)		/* the group keys first, each a column */
	{
		TargetEntry *tle = lfirst(lc);

		if (tle->ressortgroupref != 0 && get_sortgroupref_clause_noerr(tle->ressortgroupref, query->groupClause))
		{
			char		name[32];

			snprintf(name, sizeof(name), "dp_key_%d", n + 1);
			tle = flatCopyTargetEntry(tle);
			tle->resno = ++n;
			tle->resjunk = false;
			tle->resname = pstrdup(name);
			keys = lappend(keys, tle);
		}
	}
	build.core->targetList = keys;
	foreach(lc, query->targetList)
	{
		TargetEntry *tle = flatCopyTargetEntry(lfirst(lc));

		tle->expr = (Expr *) to_core_column((Node *) tle->expr, &build);
		outer_targets = lappend(outer_targets, tle);
	}
	filter = to_core_column(query->havingQual, &build);
	if (build.failed)
		return false;

	replace_with_gateway(build.core, pg_get_querydef(build.core, false));

	foreach(lc, build.core->targetList)
		colnames = lappend(colnames, makeString(pstrdup(((TargetEntry *) lfirst(lc))->resname)));
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_SUBQUERY;
	rte->subquery = build.core;
	rte->eref = makeAlias("dp_answer", colnames);
	rte->inFromCl = true;
	ref = makeNode(RangeTblRef);
	ref->rtindex = 1;
	query->rtable = list_make1(rte);
	query->jointree = makeFromExpr(list_make1(ref), filter);
	query->targetList = outer_targets;
	query->havingQual = NULL;
	query->groupClause = NIL;
	query->hasAggs = false;
	return true;
}

/*
 * The statement itself, or the sub-selects in its FROM that read a protected
 * table (BI tools wrap questions: SELECT ... FROM (SELECT ...) AS virtual_table):
 * each becomes a DP answer, and what is around it -- outer queries, ORDER BY,
 * LIMIT, arithmetic -- is evaluated by PostgreSQL over the released rows.  A
 * sub-select is sent as PostgreSQL deparses it (pg_get_querydef).
 */
static void
rewrite_level(Query *query, const char *sql)
{
	ListCell   *lc;

	if (query->commandType != CMD_SELECT)
		return;
	if (reads_protected_table(query->rtable))
	{
		if (!query->hasAggs && query->groupClause == NIL && query->groupingSets == NIL)
			read_synthetic_copies(query);
		else if (!wants_split(query) || !split_level(query))
			replace_with_gateway(query, sql ? sql : pg_get_querydef(query, false));
		return;
	}
	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);

		if (rte->rtekind == RTE_SUBQUERY && !rte->lateral && rte->subquery != NULL)
			rewrite_level(rte->subquery, NULL);
	}
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

static void
dp_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
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

			if (inner != NULL && IsA(inner, Query))
			{
				rewrite_level((Query *) inner, NULL);
				refuse_other_paths((Query *) inner);
			}
		}
		return;
	}
	if (query->querySource != QSRC_ORIGINAL)
		return;
	if (query->commandType == CMD_SELECT)
	{
		char	   *sql = statement_text(pstate, query);

		if (sql != NULL && starts_with_keyword(sql, "select"))
			rewrite_level(query, sql);
		else if (sql != NULL && starts_with_keyword(sql, "prepare"))
			rewrite_level(query, NULL);
	}
	refuse_other_paths(query);
}

/* Called by _PG_init (pg_dp.c). */
void
dp_sql_hook_install(void)
{
	prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = dp_post_parse_analyze;
}
