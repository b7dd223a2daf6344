"""Charging budgets so that no rollback, error or cancel of the caller can undo a charge.

The charge runs in the privileged executor (src/worker/serve.c, pg_dp.executor),
in a transaction of its own that the executor commits before the answer is
computed (the handler yields right after charging; DESIGN decision 3).  The
budget row is locked (SELECT ... FOR UPDATE), so concurrent sessions never
over-spend.  The caller's backend takes no part in it: it cannot roll it back,
open a connection of the same name, or see the SQL.
"""

from decimal import Decimal

from ..core import db
from ..core.errors import DPError

INSUFFICIENT = "53400"  # configuration_limit_exceeded: the budget is a configured limit


def _lock_timeout():
    timeout = db.setting("lock_timeout") or "10s"
    db.execute("SELECT pg_catalog.set_config('lock_timeout', $1, true)", [timeout], ["text"])


def charge(role: int, dataset: str, epsilon: Decimal, delta: Decimal, statement: str,
           mechanism: str, data_version: int, cache_key: str) -> int:
    """Charge the role's budget (committed by the executor at the next yield); the ledger id, or a refusal."""
    _lock_timeout()
    try:
        with db.subtransaction():
            result = db.execute(
                "SELECT dp_internal.charge($1, $2, $3, $4, $5, $6, $7, $8) AS r",
                [role, dataset, str(epsilon), str(delta), statement, mechanism, data_version, cache_key],
                ["oid", "text", "numeric", "numeric", "text", "text", "int8", "text"])[0]["r"]
    except Exception as e:
        if db.is_spi_error(e) and db.sqlstate(e) == "55P03":
            raise DPError("the budget is locked by another transaction",
                          hint="A transaction that changed this budget is still open; commit it and retry.",
                          sqlstate="55P03")
        raise
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
    db.execute("INSERT INTO dp_internal.answers (cache_key, dataset, data_version, columns, rows, ledger_id) "
               "VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6) ON CONFLICT (cache_key) DO NOTHING",
               [cache_key, dataset, data_version, columns_json, rows_json, ledger_id],
               ["text", "text", "int8", "text", "text", "int8"])
