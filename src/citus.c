/*
 * citus.c -- what pg_dp's parse hook does for Citus.
 *
 * Citus distributes a custom aggregate that has a combine function and a
 * non-internal state as worker_partial_agg(agg, arg | ROW(args...)) on the
 * workers and coord_combine_agg on the coordinator.  Two of its rules keep
 * dp_count from being distributed (citus 13.2 aggregate_utils.c,
 * multi_logical_optimizer.c):
 *   - an aggregate without arguments (dp_count(*)) is never distributed: the
 *     workers send every row to the coordinator, which aggregates them;
 *   - worker_partial_agg checks that the type of each argument expression is
 *     exactly the aggregate's declared argument type, so dp_count("any") and
 *     dp_count("any", epsilon) fail ("could not confirm type correctness"),
 *     and anyelement would fail the same way.
 * So on a database where the citus extension exists, every dp_count(*) becomes
 * dp_count(true) and every dp_count(x) dp_count(NULLIF(x IS NOT NULL, false)),
 * calls of the boolean overloads (extension/85_citus.sql) that count the same
 * rows; the epsilon argument stays as it is.  The privacy parameters of every
 * dp_* aggregate are checked for constancy here too (check_dp_parameters).
 * Elsewhere nothing changes.
 *
 * Citus's own connections between the nodes carry an application_name that
 * starts with "citus_internal gpid=": the hook leaves their statements alone
 * (they are shard queries the coordinator already planned and checked).
 */
#include "postgres.h"

#include "catalog/pg_namespace.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "citus.h"

#define CITUS_INTERNAL_APP_PREFIX "citus_internal gpid="

bool
pg_dp_citus_internal_connection(void)
{
	const char *app = GetConfigOption("application_name", true, false);

	return app != NULL && strncmp(app, CITUS_INTERNAL_APP_PREFIX, strlen(CITUS_INTERNAL_APP_PREFIX)) == 0;
}

typedef struct CountOids
{
	bool		loaded;
	bool		citus;			/* the citus extension exists in this database */
	Oid			star;			/* dp.dp_count(*) */
	Oid			any1;			/* dp.dp_count("any") */
	Oid			any2;			/* dp.dp_count("any", double precision) */
	Oid			bool1;			/* dp.dp_count(boolean) */
	Oid			bool2;			/* dp.dp_count(boolean, double precision) */
} CountOids;

static Oid
dp_count_oid(int nargs, Oid arg0)
{
	Oid			argtypes[2] = {arg0, FLOAT8OID};
	List	   *name = list_make2(makeString("dp"), makeString("dp_count"));

	return LookupFuncName(name, nargs, argtypes, true);
}

static void
load_count_oids(CountOids *c)
{
	if (c->loaded)
		return;
	c->loaded = true;
	c->citus = OidIsValid(get_extension_oid("citus", true));
	if (!c->citus)
		return;
	c->star = dp_count_oid(0, InvalidOid);
	c->any1 = dp_count_oid(1, ANYOID);
	c->any2 = dp_count_oid(2, ANYOID);
	c->bool1 = dp_count_oid(1, BOOLOID);
	c->bool2 = dp_count_oid(2, BOOLOID);
	if (!OidIsValid(c->bool1) || !OidIsValid(c->bool2))
		c->citus = false;		/* an older pg_dp install: leave it alone */
}

/* NULLIF(expr IS NOT NULL, false): true for a value, NULL for a NULL. */
static Expr *
not_null_marker(Expr *expr)
{
	NullTest   *nt = makeNode(NullTest);
	NullIfExpr *ni = makeNode(NullIfExpr);

	nt->arg = expr;
	nt->nulltesttype = IS_NOT_NULL;
	nt->argisrow = false;
	nt->location = -1;
	ni->opno = BooleanEqualOperator;
	ni->opfuncid = F_BOOLEQ;
	ni->opresulttype = BOOLOID;
	ni->opretset = false;
	ni->opcollid = InvalidOid;
	ni->inputcollid = InvalidOid;
	ni->args = list_make2(nt, makeBoolConst(false, false));
	ni->location = -1;
	return (Expr *) ni;
}

static void
rewrite_count(Aggref *agg, CountOids *c)
{
	List	   *args = NIL;
	List	   *types = NIL;
	Expr	   *value;

	if (agg->aggfnoid == c->star)
		value = (Expr *) makeBoolConst(true, false);
	else
		value = not_null_marker(linitial_node(TargetEntry, agg->args)->expr);
	args = list_make1(makeTargetEntry(value, 1, NULL, false));
	types = list_make1_oid(BOOLOID);
	if (agg->aggfnoid == c->any2)
	{
		TargetEntry *eps = lsecond_node(TargetEntry, agg->args);

		args = lappend(args, makeTargetEntry(eps->expr, 2, NULL, false));
		types = lappend_oid(types, FLOAT8OID);
	}
	agg->aggfnoid = list_length(args) == 2 ? c->bool2 : c->bool1;
	agg->args = args;
	agg->aggargtypes = types;
	agg->aggstar = false;
}

/*
 * The privacy parameters of a dp_* aggregate (every argument after the value)
 * must not depend on the rows.  pg_dp.c checks this in the transition function,
 * on the rows' node; on Citus a group that no row reached on any worker never
 * gets there, and the coordinator's plan has lost the arguments, so the check
 * is made here, at parse time, for every statement alike.
 */
static const char *
param_name(const char *aggname, int argno, int nargs)
{
	bool		quantile = strcmp(aggname, "dp_quantile") == 0;
	int			base = strcmp(aggname, "dp_count") == 0 ? 1 : (quantile ? 4 : 3);

	if (argno == base)
		return "epsilon";
	if (quantile && argno == 1)
		return "quantile";
	if (base > 1 && argno == base - 2)
		return "lower bound";
	if (base > 1 && argno == base - 1)
		return "upper bound";
	return "parameter";
}

static bool
row_dependent_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var) || IsA(node, SubLink) || IsA(node, Aggref) ||
		IsA(node, WindowFunc) || IsA(node, GroupingFunc))
		return true;
	if (IsA(node, Param) && ((Param *) node)->paramkind != PARAM_EXTERN)
		return true;
	return expression_tree_walker(node, row_dependent_walker, context);
}

static void
check_dp_parameters(Aggref *agg)
{
	char	   *name;
	Oid			nsp = get_func_namespace(agg->aggfnoid);
	char	   *nspname = get_namespace_name(nsp);
	ListCell   *lc;
	int			argno = 0;

	if (nspname == NULL || strcmp(nspname, "dp") != 0)
		return;
	name = get_func_name(agg->aggfnoid);
	if (name == NULL || strncmp(name, "dp_", 3) != 0)
		return;
	foreach(lc, agg->args)
	{
		Expr	   *expr = lfirst_node(TargetEntry, lc)->expr;

		if (argno > 0 && (row_dependent_walker((Node *) expr, NULL) ||
						  contain_volatile_functions((Node *) expr)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("%s of %s must be a constant", param_name(name, argno, list_length(agg->args)), name),
					 errhint("Write a literal or a query parameter: privacy parameters must not depend on the rows.")));
		argno++;
	}
}

static bool
count_walker(Node *node, CountOids *c)
{
	if (node == NULL)
		return false;
	if (IsA(node, Aggref))
	{
		Aggref	   *agg = (Aggref *) node;

		/* dp_count(DISTINCT x) or with ORDER BY: not distributed anyway */
		if (agg->aggdistinct == NIL && agg->aggorder == NIL &&
			get_func_namespace(agg->aggfnoid) != PG_CATALOG_NAMESPACE)
		{
			load_count_oids(c);
			if (c->citus)
				check_dp_parameters(agg);
			if (c->citus && (agg->aggfnoid == c->star || agg->aggfnoid == c->any1 ||
							 agg->aggfnoid == c->any2))
				rewrite_count(agg, c);
		}
		/* its arguments and FILTER may hold sub-queries too */
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, count_walker, c, 0);
	return expression_tree_walker(node, count_walker, c);
}

void
pg_dp_citus_rewrite_counts(Query *query)
{
	CountOids	c = {0};

	if (query->commandType == CMD_UTILITY)
		return;
	(void) query_tree_walker(query, count_walker, &c, 0);
}
