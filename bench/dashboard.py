#!/usr/bin/python3
"""Benchmark: a 20-chart dashboard at a total budget of epsilon 1, delta 1e-6 -- how wrong is each chart?

    /usr/bin/python3 bench/dashboard.py                                   # after: bounds chosen per question
    /usr/bin/python3 bench/dashboard.py --bounds fixed --accounting basic # the issue's set-up (before)
    /usr/bin/python3 bench/dashboard.py --markdown                        # a table for bench/RESULTS.md

A throwaway server (test/support/pgserver.py) gets the `orders` table of test/support/orders.py:
20,000 customers (the privacy unit) with 10 orders each in 10 distinct months of 2024-2025,
skewed categories with NULLs, regions, amounts in [1, 500].  The DBA protects it as in the issue
(date and amount bounds, public categories, regions and channels) and either fixes the bounds
(--bounds fixed: 20 rows and 4 groups per customer) or leaves them to each question (auto).  A
BI role gets a budget of exactly --epsilon, --delta and asks the 20 charts below as plain SQL
(the Superset shape, through the hook), each at the epsilon that makes all 20 fit the budget:
--accounting basic: a budget without delta (pure epsilon, Laplace; before this change the gateway
was Laplace with basic composition whatever the delta), epsilon / 20 each; zcdp: the epsilon whose rho is 1/20
of the rho that OpenDP converts to (epsilon, delta) (pg_dp's accountant charges the conversion
of the total, so the 20 fit exactly).  Every chart must be answered (the budget must last).

For each chart: the median over its buckets of |released - true| / true (the truth computed by
the superuser; a bucket the answer lacks counts as error 1), and the whole dashboard's median.
Printed per chart and as a summary; --markdown prints the table only.
"""

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "support"))

from pgserver import PgServer  # noqa: E402

import orders  # noqa: E402

MONTH = "date_trunc('month', order_date)"
DAY = "date_trunc('day', order_date)"
FILTERS = {"": "", "north": "WHERE region = 'north'", "2025": "WHERE order_date >= '2025-01-01' AND order_date < '2026-01-01'"}
MEASURES = {"count": "COUNT(*)", "sum": "SUM(amount)", "avg": "AVG(amount)"}
KEYS = {"month": MONTH, "day": DAY, "category": "category"}
# (measure, key, filter): 8 unfiltered, 7 for one region, 5 for 2025
CHARTS = [(m, k, "") for m, k in [("count", "month"), ("sum", "month"), ("avg", "month"), ("count", "day"),
                                   ("sum", "day"), ("count", "category"), ("sum", "category"), ("avg", "category")]] \
    + [(m, k, "north") for m, k in [("count", "month"), ("sum", "month"), ("avg", "month"), ("count", "day"),
                                     ("count", "category"), ("sum", "category"), ("avg", "category")]] \
    + [(m, k, "2025") for m, k in [("count", "month"), ("sum", "month"), ("count", "day"), ("count", "category"),
                                    ("avg", "category")]]


def chart_sql(measure, key, flt):
    """Superset's shape: the key under an alias, the metric, GROUP BY the expression."""
    return (f"SELECT {KEYS[key]} AS k, {MEASURES[measure]} AS v FROM public.orders {FILTERS[flt]} "
            f"GROUP BY {KEYS[key]} LIMIT 10000")


def chart_epsilon(total_eps, delta, charts, accounting):
    if accounting == "basic":
        return total_eps / charts
    sys.path.insert(0, os.path.join(ROOT, "python_udfs"))
    from pg_dp.dp import accountant          # the OpenDP conversion, outside the server
    # a hair under 1/charts of the rho (OpenDP's conversions are exact to ~1e-9, not to the last bit)
    return accountant.epsilon_for_rho(accountant.rho_for(total_eps, delta) * (1 - 1e-4) / charts, delta)


def relative_errors(truth, released):
    errs = []
    for key, t in truth.items():
        if t is None or float(t) == 0:
            continue
        r = released.get(key)
        errs.append(1.0 if r is None else abs(float(r) - float(t)) / abs(float(t)))
    return errs


def keytext(v):
    return None if v is None else (v.strftime("%Y-%m-%d") if hasattr(v, "strftime") else str(v))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=orders.CUSTOMERS)
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--delta", type=float, default=1e-6)
    ap.add_argument("--bounds", choices=("auto", "fixed"), default="auto")
    ap.add_argument("--accounting", choices=("basic", "zcdp"), default="zcdp")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    eps = chart_epsilon(args.epsilon, args.delta, len(CHARTS), args.accounting)
    pg = PgServer()
    try:
        db = pg.create_database("dashboard")
        with pg.connect(db) as c:
            orders.create(c, "orders", customers=args.customers)
            if args.bounds == "fixed":
                orders.protect(c, "orders", "shop", max_rows=20, max_groups=4)
            else:
                orders.protect(c, "orders", "shop")
            c.execute("CREATE ROLE bi LOGIN")
            # basic: a budget without delta, so pure epsilon (Laplace) adding up; zcdp: with --delta
            grant_delta = args.delta if args.accounting == "zcdp" else 0
            c.execute("SELECT dp.grant_budget('bi', 'shop', %s::numeric, %s::numeric)", (args.epsilon, grant_delta))
            c.execute(f"ALTER DATABASE {db} SET session_preload_libraries = 'pg_dp'")
            c.execute(f"ALTER DATABASE {db} SET pg_dp.epsilon = {eps!r}")
        results = []
        with pg.connect(db) as owner, pg.connect(db, user="bi") as bi:
            for measure, key, flt in CHARTS:
                sql = chart_sql(measure, key, flt)
                truth = {keytext(r[0]): r[1] for r in owner.execute(sql).fetchall()}
                t0 = time.perf_counter()
                released = {keytext(r[0]): r[1] for r in bi.execute(sql).fetchall()}
                ms = (time.perf_counter() - t0) * 1000
                errs = relative_errors(truth, released)
                results.append((f"{measure} by {key}" + (f", {flt}" if flt else ""), len(truth),
                                statistics.median(errs), ms))
                if not args.markdown:
                    print(f"  {results[-1][0]:28s} {len(truth):4d} buckets  median rel. error "
                          f"{results[-1][2]:.4f}  ({ms:.0f} ms)", file=sys.stderr, flush=True)
            spent = owner.execute("SELECT epsilon_spent, delta_spent FROM dp.budgets "
                                  "WHERE role = 'bi'::regrole").fetchone()
    finally:
        pg.stop()
    overall = statistics.median(r[2] for r in results)
    label = f"bounds {args.bounds}, {args.accounting} composition, {eps:.4g} per chart"
    if args.markdown:
        print(f"| chart | buckets | median relative error ({label}) |")
        print("|---|---|---|")
        for name, n, err, _ in results:
            print(f"| {name} | {n} | {err:.4f} |")
        print(f"| **dashboard median** | | **{overall:.4f}** |")
    print(f"{label}: dashboard median relative error {overall:.4f}; spent epsilon {spent[0]}, delta {spent[1]} "
          f"of {args.epsilon}, {args.delta}", file=sys.stderr if args.markdown else sys.stdout)


if __name__ == "__main__":
    main()
