"""Charging budgets so that no rollback, error or cancel of the caller can undo a charge.

The charge runs in the privileged executor (src/worker/serve.c, pg_dp.executor),
in a transaction of its own that the executor commits before the answer is
computed (the handler yields right after charging; DESIGN decision 3).  The
budget row is locked (SELECT ... FOR UPDATE), so concurrent sessions never
over-spend.  The caller's backend takes no part in it: it cannot roll it back,
open a connection of the same name, or see the SQL.

What a release costs is an accountant.Cost (a zCDP part rho and an approximate-DP part
(epsilon, delta)); the budget keeps their sums (rho_spent, basic_epsilon_spent,
basic_delta_spent) and shows their (epsilon, delta) guarantee as epsilon_spent, delta_spent
(dp/accountant.py).  The new totals are computed here, under the row lock, with OpenDP's
conversion; dp_internal.charge checks them against the grant and the dataset's cap and writes
the ledger.
"""

from dataclasses import dataclass
from decimal import Decimal

from ..core import db
from ..core.errors import DPError
from . import accountant

INSUFFICIENT = "53400"  # configuration_limit_exceeded: the budget is a configured limit
NO_BUDGET = "42501"


@dataclass
class Budget:
    epsilon_granted: Decimal
    delta_granted: Decimal
    epsilon_spent: Decimal           # the guarantee shown
    delta_spent: Decimal
    spent: accountant.Spent          # the sums underneath

    @property
    def zcdp(self) -> bool:
        return accountant.uses_zcdp(self.delta_granted)


def budget(role: int, dataset: str, lock: bool = False) -> Budget | None:
    """The role's budget on the dataset (locked FOR UPDATE when asked), or None."""
    rows = db.execute(
        "SELECT epsilon_granted, delta_granted, epsilon_spent, delta_spent, rho_spent, basic_epsilon_spent, "
        "basic_delta_spent FROM dp_internal.budgets WHERE role = $1 AND dataset = $2"
        + (" FOR UPDATE" if lock else ""), [role, dataset], ["oid", "text"])
    if not rows:
        return None
    r = rows[0]
    return Budget(Decimal(r["epsilon_granted"]), Decimal(r["delta_granted"]), Decimal(r["epsilon_spent"]),
                  Decimal(r["delta_spent"]),
                  accountant.Spent(Decimal(r["rho_spent"]), Decimal(r["basic_epsilon_spent"]),
                                   Decimal(r["basic_delta_spent"])))


def price(b: Budget, cost: accountant.Cost) -> accountant.Charge:
    """What `cost` would add to budget b (refused, 53400, when it does not fit)."""
    return accountant.charge(b.spent, (b.epsilon_spent, b.delta_spent), cost, (b.epsilon_granted, b.delta_granted))


def _lock_timeout():
    timeout = db.setting("lock_timeout") or "10s"
    db.execute("SELECT pg_catalog.set_config('lock_timeout', $1, true)", [timeout], ["text"])


def charge(role: int, dataset: str, cost: accountant.Cost, statement: str,
           mechanism: str, data_version: int, cache_key: str, asked: Decimal | None = None) -> int:
    """Charge the role's budget (committed by the executor at the next yield); the ledger id, or a refusal.
    asked: the epsilon the statement was asked at (the ledger shows it next to what the charge added)."""
    _lock_timeout()
    try:
        with db.subtransaction():
            b = budget(role, dataset, lock=True)
            if b is None:
                raise DPError(f"you have no privacy budget on dataset {dataset}",
                              hint="Ask an administrator: dp.grant_budget(role, dataset, epsilon).", sqlstate=NO_BUDGET)
            c = price(b, cost)
            result = db.execute(
                "SELECT dp_internal.charge($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) AS r",
                [role, dataset, str(c.epsilon), str(c.delta), str(c.spent.rho - b.spent.rho),
                 str(c.spent.epsilon - b.spent.epsilon), str(c.spent.delta - b.spent.delta),
                 statement, mechanism, data_version, cache_key, str(c.epsilon_total),
                 None if asked is None else str(asked)],
                ["oid", "text", "numeric", "numeric", "numeric", "numeric", "numeric", "text", "text", "int8",
                 "text", "numeric", "numeric"])[0]["r"]
    except Exception as e:
        if db.is_spi_error(e) and db.sqlstate(e) == "55P03":
            raise DPError("the budget is locked by another transaction",
                          hint="A transaction that changed this budget is still open; commit it and retry.",
                          sqlstate="55P03")
        raise
    if result.startswith("ok "):
        return int(result[3:])
    raise DPError(result, hint="See dp.my_budget() and dp.cost(query); ask an administrator for more budget "
                               "or ask a cheaper question.", sqlstate=INSUFFICIENT)


def store_answer(cache_key: str, dataset: str, data_version: int, columns_json: str,
                 rows_json: str, ledger_id: int):
    db.execute("INSERT INTO dp_internal.answers (cache_key, dataset, data_version, columns, rows, ledger_id) "
               "VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6) ON CONFLICT (cache_key) DO NOTHING",
               [cache_key, dataset, data_version, columns_json, rows_json, ledger_id],
               ["text", "text", "int8", "text", "text", "int8"])


def cached_ledger_id(cache_key: str) -> int | None:
    rows = db.execute("SELECT ledger_id FROM dp_internal.answers WHERE cache_key = $1", [cache_key], ["text"])
    return rows[0]["ledger_id"] if rows else None


def record_answer(role: int, dataset: str, statement: str, origin: str, ledger_id: int | None, detail: dict,
                  alone: bool = False):
    """One line of dp.my_answers: what the role was given (fresh, from the cache or a synthetic copy),
    with what it measured and how wrong it may be (detail: JSON, post-processing only).
    alone: the line is all the transaction writes (a cached or public answer, nothing charged), so its
    commit need not wait for the WAL flush -- a crash may lose the line, never a charge."""
    import json
    if alone:
        db.execute("SELECT pg_catalog.set_config('synchronous_commit', 'off', true)")
    db.execute("INSERT INTO dp_internal.answer_log (role, dataset, statement, origin, ledger_id, detail) "
               "VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
               [role, dataset, statement, origin, ledger_id, json.dumps(detail, default=str)],
               ["oid", "text", "text", "text", "int8", "text"])
