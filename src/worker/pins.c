/*
 * pins.c -- the relations one request of the executor reads, locked by their oids.
 *
 * The executor checks a relation (a protected table, a table on its foreign-key path, a
 * dimension the caller may read) and then reads it by its qualified name, in that phase and
 * in the later phases of the request, each a transaction of its own.  Between the check and a
 * read, whoever owns the relation could replace it (rename it and create a view of that name,
 * make it a view with an ON SELECT rule, change a column's type, enable row-level security):
 * the view's query would run as the extension owner.  So the engine (core/catalog.py: pin)
 * locks each relation by its oid before checking it, and locks it again, and compares what it
 * checked, at the start of every later phase.  ACCESS SHARE, as a read takes: DDL that
 * changes a relation waits until the request's transaction ends.  LOCK TABLE cannot do this:
 * it takes a name (which may already be another relation's) and refuses materialized views.
 */
#include "postgres.h"

#include "fmgr.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(dp_lock_relations);
/*
 * dp_internal.lock_relations(oids oid[]) RETURNS void: ACCESS SHARE locks on these relations and
 * their inheritance children and partitions, held until the transaction ends.  An oid that names
 * no relation (any more) is skipped: the caller compares what it finds after the lock.
 */
Datum
dp_lock_relations(PG_FUNCTION_ARGS)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *oids;
	bool	   *nulls;
	int			count;

	deconstruct_array(array, OIDOID, sizeof(Oid), true, TYPALIGN_INT, &oids, &nulls, &count);
	for (int i = 0; i < count; i++)
	{
		Oid			relid;

		if (nulls[i])
			continue;
		relid = DatumGetObjectId(oids[i]);
		LockRelationOid(relid, AccessShareLock);
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		{
			UnlockRelationOid(relid, AccessShareLock);
			continue;
		}
		(void) find_all_inheritors(relid, AccessShareLock, NULL);
	}
	PG_RETURN_VOID();
}
