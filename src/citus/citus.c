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
 * as calls of dp_internal.count_bool (sql/85_citus.sql), which counts the
 * same rows, where the native form below does not apply; the epsilon argument stays as it is.  The privacy parameters of every
 * dp_* aggregate are checked for constancy here too (check_dp_parameters).
 * Elsewhere nothing changes.
 *
 * Citus's own connections between the nodes carry an application_name that
 * starts with "citus_internal gpid=": the hook leaves their statements alone
 * (they are shard queries the coordinator already planned and checked).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/pathnodes.h"
#include "nodes/supportnodes.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "aggregates/aggregates.h"
#include "citus/citus.h"
#include "pg_dp.h"

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
	bool		rewrite;		/* second pass: rewrite dp_count (the first checks) */
	Oid			star;			/* dp.dp_count(*) */
	Oid			any1;			/* dp.dp_count("any") */
	Oid			any2;			/* dp.dp_count("any", double precision) */
	Oid			bool1;			/* dp_internal.count_bool(boolean) */
	Oid			bool2;			/* dp_internal.count_bool(boolean, double precision) */
} CountOids;

static Oid
dp_count_oid(const char *schema, const char *fn, int nargs, Oid arg0)
{
	Oid			argtypes[2] = {arg0, FLOAT8OID};
	List	   *name = list_make2(makeString(pstrdup(schema)), makeString(pstrdup(fn)));

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
	c->star = dp_count_oid("dp", "dp_count", 0, InvalidOid);
	c->any1 = dp_count_oid("dp", "dp_count", 1, ANYOID);
	c->any2 = dp_count_oid("dp", "dp_count", 2, ANYOID);
	c->bool1 = dp_count_oid("dp_internal", "count_bool", 1, BOOLOID);
	c->bool2 = dp_count_oid("dp_internal", "count_bool", 2, BOOLOID);
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
 * must not depend on the rows.  The aggregates check this in the transition
 * function, on the rows' node; on Citus a group that no row reached on any
 * worker never gets there, and the coordinator's plan has lost the arguments,
 * so the check is made here, at parse time, for every statement alike, with
 * the aggregates' own check and parameter names (aggregates/layout.c).
 */
static void
check_dp_parameters(Aggref *agg)
{
	char	   *name;
	const DpAggregate *row;
	Oid			nsp = get_func_namespace(agg->aggfnoid);
	char	   *nspname = get_namespace_name(nsp);
	ListCell   *lc;
	int			argno = 0;

	if (nspname == NULL || strcmp(nspname, "dp") != 0)
		return;
	name = get_func_name(agg->aggfnoid);
	if (name == NULL || strncmp(name, "dp_", 3) != 0)
		return;
	row = dp_aggregate_by_name(name);
	foreach(lc, agg->args)
	{
		Expr	   *expr = lfirst_node(TargetEntry, lc)->expr;

		if (argno > 0)
			dp_check_param_constant(name, dp_aggregate_param_name(row, argno, list_length(agg->args)), expr);
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
			if (c->citus && !c->rewrite)
				check_dp_parameters(agg);
			if (c->citus && c->rewrite && (agg->aggfnoid == c->star || agg->aggfnoid == c->any1 ||
										   agg->aggfnoid == c->any2))
				rewrite_count(agg, c);
		}
		/* its arguments and FILTER may hold sub-queries too */
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, count_walker, c, 0);
	return expression_tree_walker(node, count_walker, c);
}

/*
 * dp_count, dp_sum and dp_avg in native form.  Citus runs a custom aggregate
 * through worker_partial_agg, which per row builds and takes apart a ROW of
 * the arguments and looks up the transition function again: about 2x the
 * native aggregate.  Native count and sum have Citus's own fast path, so on a
 * Citus database these calls become
 *     dp_count(x [, eps])          -> native_count(count(x), eps)
 *     dp_sum(i, lo, hi [, eps])    -> native_sum_int(count(i), sum(grid_units(i, lo, hi)), lo, hi, eps)
 *     dp_sum(x, lo, hi [, eps])    -> native_sum_float8(count(x), sum(grid_units(x, lo, hi)), lo, hi, eps)
 *     dp_avg(x, lo, hi [, eps])    -> native_avg(count(grid_units(..)), sum(grid_units(..)), lo, hi, eps)
 * (dp_internal), with the same exact statistics and the same release as the
 * final functions (aggregates/native.c).  The release functions are evaluated once per output row and
 * occurrence: a call written twice (or in the select list and HAVING) releases
 * twice, as Citus's own distribution of the aggregate does (it computes each
 * occurrence as a column of its own), where a single server releases once.
 * Other dp_* aggregates, and calls with DISTINCT or ORDER BY, stay aggregates.
 */
typedef struct NativeOids
{
	Oid			grid_float8;
	Oid			grid_int8;
	Oid			count_fn;
	Oid			sum_int_fn;
	Oid			sum_float_fn;
	Oid			avg_fn;
} NativeOids;

static Oid
internal_oid(const char *name, int nargs, Oid *types)
{
	return LookupFuncName(list_make2(makeString("dp_internal"), makeString(pstrdup(name))), nargs, types, true);
}

static bool
load_native_oids(NativeOids *n)
{
	Oid			f3[3] = {FLOAT8OID, FLOAT8OID, FLOAT8OID};
	Oid			i3[3] = {INT8OID, INT8OID, INT8OID};
	Oid			c2[2] = {INT8OID, FLOAT8OID};
	Oid			si[5] = {INT8OID, NUMERICOID, INT8OID, INT8OID, FLOAT8OID};
	Oid			sf[5] = {INT8OID, NUMERICOID, FLOAT8OID, FLOAT8OID, FLOAT8OID};

	n->grid_float8 = internal_oid("grid_units", 3, f3);
	n->grid_int8 = internal_oid("grid_units", 3, i3);
	n->count_fn = internal_oid("native_count", 2, c2);
	n->sum_int_fn = internal_oid("native_sum_int", 5, si);
	n->sum_float_fn = internal_oid("native_sum_float8", 5, sf);
	n->avg_fn = internal_oid("native_avg", 5, sf);
	return OidIsValid(n->grid_float8) && OidIsValid(n->grid_int8) && OidIsValid(n->count_fn) &&
		OidIsValid(n->sum_int_fn) && OidIsValid(n->sum_float_fn) && OidIsValid(n->avg_fn);
}

typedef enum NativeKind
{
	NATIVE_NONE,
	NATIVE_COUNT,
	NATIVE_SUM_INT,
	NATIVE_SUM_FLOAT,
	NATIVE_AVG,
	DP_OTHER					/* another dp_* aggregate */
} NativeKind;

static NativeKind
native_kind(Aggref *agg)
{
	char	   *name;
	char	   *nsp;
	int			nargs = list_length(agg->args);
	Oid			t0;

	if (get_func_namespace(agg->aggfnoid) == PG_CATALOG_NAMESPACE)
		return NATIVE_NONE;
	nsp = get_namespace_name(get_func_namespace(agg->aggfnoid));
	name = get_func_name(agg->aggfnoid);
	if (nsp == NULL || name == NULL || strcmp(nsp, "dp") != 0 || strncmp(name, "dp_", 3) != 0)
		return NATIVE_NONE;
	if (agg->agglevelsup != 0 || agg->aggdistinct != NIL || agg->aggorder != NIL || agg->aggkind != AGGKIND_NORMAL)
		return DP_OTHER;
	if (strcmp(name, "dp_count") == 0)
		return NATIVE_COUNT;
	if (nargs < 3)
		return DP_OTHER;
	t0 = linitial_oid(agg->aggargtypes);
	if (strcmp(name, "dp_sum") == 0)
		return t0 == FLOAT8OID ? NATIVE_SUM_FLOAT : (t0 == INT4OID || t0 == INT8OID ? NATIVE_SUM_INT : DP_OTHER);
	if (strcmp(name, "dp_avg") == 0 && t0 == FLOAT8OID)
		return NATIVE_AVG;
	return DP_OTHER;
}

static Aggref *
native_agg(Oid fn, Oid rettype, Expr *arg, Aggref *orig)
{
	Aggref	   *a = makeNode(Aggref);

	a->aggfnoid = fn;
	a->aggtype = rettype;
	a->aggcollid = InvalidOid;
	a->inputcollid = InvalidOid;
	a->aggtranstype = InvalidOid;
	a->aggargtypes = arg ? list_make1_oid(exprType((Node *) arg)) : NIL;
	a->aggdirectargs = NIL;
	a->args = arg ? list_make1(makeTargetEntry(arg, 1, NULL, false)) : NIL;
	a->aggorder = NIL;
	a->aggdistinct = NIL;
	a->aggfilter = copyObject(orig->aggfilter);
	a->aggstar = arg == NULL;
	a->aggvariadic = false;
	a->aggkind = AGGKIND_NORMAL;
	a->agglevelsup = 0;
	a->aggsplit = AGGSPLIT_SIMPLE;
	a->aggno = -1;
	a->aggtransno = -1;
	a->location = orig->location;
	return a;
}

static Expr *
to_int8(Expr *e)
{
	if (exprType((Node *) e) == INT8OID)
		return e;
	return (Expr *) makeFuncExpr(F_INT8_INT4, INT8OID, list_make1(e), InvalidOid, InvalidOid, COERCE_IMPLICIT_CAST);
}

static Expr *
agg_arg(Aggref *agg, int n)
{
	return ((TargetEntry *) list_nth(agg->args, n))->expr;
}

static Node *
native_mutator(Node *node, NativeOids *n)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Query))
		return node;
	if (IsA(node, Aggref))
	{
		Aggref	   *agg = (Aggref *) node;
		NativeKind	k = native_kind(agg);
		int			nargs = list_length(agg->args);
		Expr	   *eps;
		Expr	   *value,
				   *lo,
				   *hi,
				   *units;
		Oid			fn;

		if (k == NATIVE_NONE || k == DP_OTHER)
			return node;
		if (k == NATIVE_COUNT)
		{
			Expr	   *x = nargs >= 1 ? agg_arg(agg, 0) : NULL;

			if (x != NULL && IsA(x, Const) && !((Const *) x)->constisnull)
				x = NULL;		/* dp_count(true), dp_count(1): every row */
			eps = nargs == 2 ? agg_arg(agg, 1) : (Expr *) makeConst(FLOAT8OID, -1, InvalidOid, 8,
																	 Float8GetDatum(1.0), false, FLOAT8PASSBYVAL);
			return (Node *) makeFuncExpr(n->count_fn, INT8OID,
										 list_make2(native_agg(x ? F_COUNT_ANY : F_COUNT_, INT8OID, x, agg), eps),
										 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
		}
		value = agg_arg(agg, 0);
		lo = agg_arg(agg, 1);
		hi = agg_arg(agg, 2);
		eps = nargs == 4 ? agg_arg(agg, 3) : (Expr *) makeConst(FLOAT8OID, -1, InvalidOid, 8,
																 Float8GetDatum(1.0), false, FLOAT8PASSBYVAL);
		if (k == NATIVE_SUM_INT)
		{
			value = to_int8(value);
			lo = to_int8(lo);
			hi = to_int8(hi);
		}
		units = (Expr *) makeFuncExpr(k == NATIVE_SUM_INT ? n->grid_int8 : n->grid_float8, INT8OID,
									  list_make3(value, lo, hi), InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
		fn = k == NATIVE_SUM_INT ? n->sum_int_fn : (k == NATIVE_SUM_FLOAT ? n->sum_float_fn : n->avg_fn);
		return (Node *) makeFuncExpr(fn, k == NATIVE_SUM_INT ? INT8OID : FLOAT8OID,
									 list_make5(native_agg(F_COUNT_ANY, INT8OID,
														   k == NATIVE_AVG ? copyObject(units) : value, agg),
												native_agg(F_SUM_INT8, NUMERICOID, units, agg),
												lo, hi, eps),
									 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	}
	return expression_tree_mutator(node, native_mutator, n);
}

/* Whether Citus distributes this relation (a row of pg_dist_partition; a small catalog). */
static bool
is_citus_relation(Oid relid)
{
	Oid			dist = get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE);
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	bool		found;

	if (!OidIsValid(dist))
		return false;
	rel = table_open(dist, AccessShareLock);
	ScanKeyInit(&key, 1 /* logicalrelid */ , BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* A level that reads a Citus table (directly; a sub-select is a level of its own). */
static bool
reads_citus_table(Query *q)
{
	ListCell   *lc;

	foreach(lc, q->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);

		if (rte->rtekind == RTE_RELATION && is_citus_relation(rte->relid))
			return true;
	}
	return false;
}

static void
native_level(Query *q, NativeOids *n)
{
	if (!q->hasAggs || q->commandType != CMD_SELECT || q->groupingSets != NIL)
		return;
	if (!reads_citus_table(q))
		return;					/* a local table: the aggregates are as fast as native ones */
	q->targetList = (List *) expression_tree_mutator((Node *) q->targetList, native_mutator, n);
	q->havingQual = expression_tree_mutator(q->havingQual, native_mutator, n);
}

static bool
native_walker(Node *node, NativeOids *n)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		native_level((Query *) node, n);
		return query_tree_walker((Query *) node, native_walker, n, 0);
	}
	return expression_tree_walker(node, native_walker, n);
}

/* Whether pg_dp's parse hook has seen a statement of this session (see dp_citus_count_support). */
static bool statements_seen = false;

void
pg_dp_citus_rewrite_counts(Query *query)
{
	CountOids	c = {0};
	NativeOids	n;

	statements_seen = true;
	if (query->commandType == CMD_UTILITY)
		return;
	(void) query_tree_walker(query, count_walker, &c, 0);		/* parameters */
	if (!c.citus)
		return;
	if (dp_citus_native_aggregates && load_native_oids(&n))
		(void) native_walker((Node *) query, &n);
	c.rewrite = true;
	(void) query_tree_walker(query, count_walker, &c, 0);		/* dp_count left */
}

/* A relation Citus distributes, anywhere in the statement. */
static bool
citus_relation_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		return rte->rtekind == RTE_RELATION && is_citus_relation(rte->relid);
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, citus_relation_walker, context, QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, citus_relation_walker, context);
}

PG_FUNCTION_INFO_V1(dp_citus_count_support);
/*
 * dp_internal.count_support(internal): the planner support function of
 * dp_count(x)'s transition.  Citus runs dp_count(x) on its workers only in the
 * form the parse hook gives it (above); in a session that has not loaded pg_dp
 * (citus alone in shared_preload_libraries, no session_preload_libraries) the
 * workers would fail with Citus's "worker_partial_agg_sfunc could not confirm
 * type correctness".  The planner asks this function for the transition's cost
 * (which loads pg_dp): when the hook has seen no statement of the session yet
 * and the statement reads a distributed table, it says what to do instead.
 * Otherwise it leaves the estimate to the function's cost (NULL).
 */
Datum
dp_citus_count_support(PG_FUNCTION_ARGS)
{
	Node	   *request = (Node *) PG_GETARG_POINTER(0);

	if (IsA(request, SupportRequestCost) && !statements_seen && !IsBackgroundWorker &&
		!pg_dp_citus_internal_connection())
	{
		SupportRequestCost *cost = (SupportRequestCost *) request;

		if (cost->root != NULL && cost->root->parse != NULL &&
			OidIsValid(get_extension_oid("citus", true)) &&
			citus_relation_walker((Node *) cost->root->parse, NULL))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("dp_count over a distributed table needs pg_dp loaded before the statement is parsed"),
					 errdetail("Citus runs dp_count(x) on its workers in the form pg_dp's parse hook gives it; "
							   "this session loaded pg_dp only while planning the statement."),
					 errhint("Add pg_dp after citus to shared_preload_libraries ('citus,pg_dp'), or "
							 "ALTER DATABASE ... SET session_preload_libraries = 'pg_dp'; until then this "
							 "session runs it from its next statement on.")));
	}
	PG_RETURN_POINTER(NULL);
}
