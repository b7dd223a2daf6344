/*
 * writer.c -- run the statements that write synthetic copies as pg_dp's writer role.
 *
 * dp_synthesize runs in the privileged executor (the extension owner, a superuser).  The
 * copies it writes carry expressions taken from the source's catalog (CHECKs, defaults,
 * the checks of domains) and values cast to the source's types; evaluating any of them with
 * the owner's rights would run code that another role may have written.  So every statement
 * that creates, fills, checks or changes a shadow table runs here, as the NOLOGIN role
 * dp_shadow_writer, which holds no privilege but on the shadow schemas and the staging tables
 * it is granted (docs/security.md):
 *
 *   - the user id is switched with SetUserIdAndSecContext and SECURITY_RESTRICTED_OPERATION
 *     (as REFRESH MATERIALIZED VIEW and index builds do): code run as the writer cannot SET
 *     ROLE or SET SESSION AUTHORIZATION back to the owner (the session user), create temp
 *     tables or views, PREPARE, LISTEN, ...;
 *   - a GUC nest level is opened with search_path pinned to pg_catalog, pg_temp, and rolled
 *     back on return (AtEOXact_GUC(false)), so no SET made by such code outlives the call;
 *   - the role is checked on every call: not a superuser, no LOGIN, CREATEROLE, CREATEDB,
 *     REPLICATION or BYPASSRLS, a member of no role and with no member (nobody may act as it
 *     or lend it rights);
 *   - the caller (synth/write.py) checks afterwards that the writer owns nothing outside the
 *     shadow schemas, else the transaction, and with it all the writer did, is rolled back.
 *
 * One call runs a list of statements with the same text parameters ($1 .. $n, type text)
 * and returns the first column of the last statement's rows when it is a bigint (the staged
 * rows a check refuses), so that nothing of the owner's runs between the switch and its undoing.
 * An error aborts the (sub)transaction, which restores the user id and the settings.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_auth_members.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#define WRITER_ROLE "dp_shadow_writer"

PG_FUNCTION_INFO_V1(dp_as_writer);

/* The writer role's oid, after checking that it is what pg_dp created: powerless, alone. */
static Oid
writer_role(void)
{
	HeapTuple	tuple;
	Form_pg_authid role;
	Oid			oid;
	const char *why = NULL;
	CatCList   *members;

	tuple = SearchSysCache1(AUTHNAME, CStringGetDatum(WRITER_ROLE));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role %s does not exist", WRITER_ROLE),
				 errhint("pg_dp writes synthetic copies as this role; ALTER EXTENSION pg_dp UPDATE or "
						 "reinstall the extension to create it.")));
	role = (Form_pg_authid) GETSTRUCT(tuple);
	oid = role->oid;
	if (role->rolsuper)
		why = "is a superuser";
	else if (role->rolcanlogin)
		why = "may log in";
	else if (role->rolcreaterole || role->rolcreatedb || role->rolreplication || role->rolbypassrls)
		why = "holds CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS";
	ReleaseSysCache(tuple);

	if (why == NULL)
	{
		members = SearchSysCacheList1(AUTHMEMROLEMEM, ObjectIdGetDatum(oid));
		if (members->n_members > 0)
			why = "has members (who could act as it)";
		ReleaseSysCacheList(members);
	}
	if (why == NULL)
	{
		members = SearchSysCacheList1(AUTHMEMMEMROLE, ObjectIdGetDatum(oid));
		if (members->n_members > 0)
			why = "is a member of another role (whose rights it would use)";
		ReleaseSysCacheList(members);
	}
	if (why != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role %s %s: pg_dp does not write synthetic copies as it", WRITER_ROLE, why),
				 errhint("The role must be NOLOGIN, no superuser, without CREATEROLE, CREATEDB, REPLICATION "
						 "or BYPASSRLS, and neither hold nor grant any membership: ALTER ROLE %s NOLOGIN "
						 "NOSUPERUSER ... and REVOKE its memberships.", WRITER_ROLE)));
	return oid;
}

/*
 * dp_internal.as_writer(statements text[], params text[]) RETURNS SETOF bigint
 */
Datum
dp_as_writer(PG_FUNCTION_ARGS)
{
	ArrayType  *statements;
	Datum	   *stmt_values;
	bool	   *stmt_nulls;
	int			nstmts;
	Datum	   *param_values = NULL;
	bool	   *param_nulls = NULL;
	int			nparams = 0;
	Oid		   *argtypes = NULL;
	char	   *nulls = NULL;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Tuplestorestate *store;
	TupleDesc	desc;
	Oid			writer;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("statements must not be NULL")));
	statements = PG_GETARG_ARRAYTYPE_P(0);
	deconstruct_array(statements, TEXTOID, -1, false, TYPALIGN_INT, &stmt_values, &stmt_nulls, &nstmts);
	if (!PG_ARGISNULL(1))
	{
		ArrayType  *params = PG_GETARG_ARRAYTYPE_P(1);

		deconstruct_array(params, TEXTOID, -1, false, TYPALIGN_INT, &param_values, &param_nulls, &nparams);
		argtypes = palloc(sizeof(Oid) * Max(nparams, 1));
		nulls = palloc(sizeof(char) * (Max(nparams, 1) + 1));
		for (int i = 0; i < nparams; i++)
		{
			argtypes[i] = TEXTOID;
			nulls[i] = param_nulls[i] ? 'n' : ' ';
		}
		nulls[nparams] = '\0';
	}

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	store = rsinfo->setResult;
	desc = rsinfo->setDesc;

	writer = writer_role();
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	SetUserIdAndSecContext(writer, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "pg_dp writer: SPI_connect failed");
	for (int s = 0; s < nstmts; s++)
	{
		char	   *sql;
		int			ret;

		if (stmt_nulls[s])
			continue;
		sql = TextDatumGetCString(stmt_values[s]);
		ret = nparams > 0
			? SPI_execute_with_args(sql, nparams, argtypes, param_values, nulls, false, 0)
			: SPI_execute(sql, false, 0);
		if (ret < 0)
			elog(ERROR, "pg_dp writer: statement failed (%d)", ret);
		if (s == nstmts - 1 && SPI_tuptable != NULL && SPI_processed > 0 &&
			SPI_gettypeid(SPI_tuptable->tupdesc, 1) == INT8OID)
		{
			for (uint64 i = 0; i < SPI_processed; i++)
			{
				bool		isnull;
				Datum		value = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
				Datum		out[1];
				bool		outnull[1] = {isnull};

				out[0] = isnull ? (Datum) 0 : value;
				tuplestore_putvalues(store, desc, out, outnull);
			}
		}
	}
	SPI_finish();

	/* back to the owner, and every setting the statements changed back to what it was */
	SetUserIdAndSecContext(save_userid, save_sec_context);
	AtEOXact_GUC(false, save_nestlevel);
	return (Datum) 0;
}
