"""Charging budgets so that no rollback, error or cancel can undo a charge.

The charge commits in its own transaction on a loopback connection (dblink)
to the same database, before the answer is computed (DESIGN decision 3).
The budget row is locked (SELECT ... FOR UPDATE) there, so concurrent
sessions never over-spend.  The connection is opened once per backend.
"""

from decimal import Decimal

from . import db
from .errors import DPError

CONNECTION = "pg_dp_ledger"
INSUFFICIENT = "53400"  # configuration_limit_exceeded: the budget is a configured limit


def _dblink_schema() -> str:
    rows = db.execute(
        "SELECT n.nspname FROM pg_catalog.pg_extension e "
        "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'dblink'")
    if not rows:
        raise DPError("the dblink extension is missing", hint="CREATE EXTENSION dblink;", sqlstate="55000")
    return db.quote_ident(rows[0]["nspname"])


def loopback_conninfo() -> str:
    configured = db.setting("loopback_conninfo")
    if configured:
        return configured
    r = db.execute(
        """
        SELECT split_part(current_setting('unix_socket_directories'), ',', 1) AS host,
               current_setting('port') AS port, current_database() AS dbname,
               (SELECT r.rolname FROM pg_catalog.pg_extension e
                JOIN pg_catalog.pg_roles r ON r.oid = e.extowner WHERE e.extname = 'pg_dp') AS usr
        """)[0]
    host = r["host"].strip() or "localhost"
    parts = {"host": host, "port": r["port"], "dbname": r["dbname"], "user": r["usr"],
             "application_name": "pg_dp ledger"}
    return " ".join(f"{k}='{v.replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}'"
                    for k, v in parts.items())


def _connect(schema: str):
    conns = db.execute(f"SELECT {schema}.dblink_get_connections() AS c")[0]["c"] or []
    if CONNECTION in conns:
        return
    db.execute(f"SELECT {schema}.dblink_connect_u($1, $2)", [CONNECTION, loopback_conninfo()], ["text", "text"])
    timeout = db.setting("lock_timeout") or "10s"
    db.execute(f"SELECT {schema}.dblink_exec($1, $2)",
               [CONNECTION, f"SET lock_timeout = {db.quote_literal(timeout)}; SET search_path = pg_catalog"],
               ["text", "text"])


def _ensure_connection(schema: str):
    """Open the loopback connection, or reopen it if it broke (checked with a no-op first).

    The charge itself is sent exactly once: a failure while it runs is reported,
    never retried, so no charge is ever made twice.
    """
    try:
        with db.subtransaction():
            _connect(schema)
            # (dblink_exec refuses statements that return rows: probe with dblink)
            db.execute(f"SELECT x FROM {schema}.dblink($1, 'SELECT 1') AS t(x int)", [CONNECTION], ["text"])
        return
    except Exception as e:
        if not db.is_spi_error(e):
            raise
    try:
        with db.subtransaction():
            db.execute(f"SELECT {schema}.dblink_disconnect($1)", [CONNECTION], ["text"])
    except Exception as e:
        if not db.is_spi_error(e):
            raise
    _connect(schema)


def _remote_text(sql: str) -> str:
    """Run one statement returning one text value on the loopback connection (autocommit)."""
    schema = _dblink_schema()
    _ensure_connection(schema)
    try:
        with db.subtransaction():
            return db.execute(f"SELECT r FROM {schema}.dblink($1, $2) AS t(r text)",
                              [CONNECTION, sql], ["text", "text"])[0]["r"]
    except Exception as e:
        if db.is_spi_error(e) and "lock timeout" in str(e):
            raise DPError("the budget is locked by another transaction",
                          hint="A transaction that changed this budget is still open; commit it and retry.",
                          sqlstate="55P03")
        raise


def charge(role: int, dataset: str, epsilon: Decimal, delta: Decimal, statement: str,
           mechanism: str, data_version: int, cache_key: str) -> int:
    """Charge the role's budget in a committed transaction; the ledger id, or a refusal."""
    q = db.quote_literal
    sql = (f"SELECT dp_internal.charge({int(role)}::oid, {q(dataset)}, {q(epsilon)}::numeric, "
           f"{q(delta)}::numeric, {q(statement)}, {q(mechanism)}, {int(data_version)}, {q(cache_key)})")
    result = _remote_text(sql)
    if result.startswith("ok "):
        return int(result[3:])
    if result == "no budget":
        raise DPError(f"you have no privacy budget on dataset {dataset}",
                      hint="Ask an administrator: dp.grant_budget(role, dataset, epsilon).",
                      sqlstate="42501")
    raise DPError(result, hint="See dp.my_budget() and dp.cost(query); ask an administrator for more budget "
                               "or ask a cheaper question.", sqlstate=INSUFFICIENT)


def store_answer(cache_key: str, dataset: str, data_version: int, columns_json: str,
                 rows_json: str, ledger_id: int):
    q = db.quote_literal
    _remote_text(f"SELECT dp_internal.store_answer({q(cache_key)}, {q(dataset)}, {int(data_version)}, "
                 f"{q(columns_json)}::jsonb, {q(rows_json)}::jsonb, {int(ledger_id)})::text")
