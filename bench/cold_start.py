#!/usr/bin/python3
"""Benchmark: the cold start, what a fresh connection's first DP answer costs over a native one.

    /usr/bin/python3 bench/cold_start.py [--runs 7] [--pause 1.0] [--aggregate-runs 5]

1. The gateway: starts a throwaway server (test/support/pgserver.py) with a 1 000-row
protected table and an unprotected copy of it, `session_preload_libraries =
'pg_dp'` on the database and a restricted role with a budget.  Then, --runs
times: a new connection of that role runs a native `SELECT g, count(*) ...
GROUP BY g` on the copy, and a new connection runs the same plain SQL on the
protected table (answered through the hook and the executor), each timed from
the connect to the last row.  Prints both medians and the median of the
differences (the cold start): one executor per session, with warm spare
executors (pg_dp.executor_spares = 1, the default) and without them (0); then
the same on a server with `shared_preload_libraries = 'pg_dp'` (the executor
pool).  Between runs it pauses --pause seconds, as a user between two psql
scripts would; the spare loads meanwhile.

2. The aggregates: --aggregate-runs times, a fresh connection (as the table's
owner) runs its first `SELECT dp.dp_avg(x, 0, 1000) FROM t` and another fresh
connection its first `SELECT avg(x) FROM t` (1 000 rows), each timed from the
statement to its row after a `SELECT 1`; prints the median of dp - native.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test", "support"))

from pgserver import PgServer  # noqa: E402

QUESTION = "SELECT g, count(*) FROM {table} GROUP BY g ORDER BY g"


def timed(pg, db, sql):
    start = time.perf_counter()
    with pg.connect(db, user="analyst") as c:
        rows = c.execute(sql).fetchall()
    assert rows, sql
    return (time.perf_counter() - start) * 1000


def measure(pg, db, spares, runs, pause):
    if spares is not None:
        with pg.connect(db) as c:
            c.execute(f"ALTER DATABASE {db} SET pg_dp.executor_spares = {spares}")
    timed(pg, db, QUESTION.format(table="t"))      # the first ever: compiles, fills caches
    time.sleep(pause)
    native, dp = [], []
    for _ in range(runs):
        native.append(timed(pg, db, QUESTION.format(table="t_copy")))
        dp.append(timed(pg, db, QUESTION.format(table="t")))
        time.sleep(pause)
    diffs = [d - n for d, n in zip(dp, native)]
    mode = "the executor pool" if spares is None else f"one executor per session, pg_dp.executor_spares = {spares}"
    print(f"{mode}: native {statistics.median(native):.1f} ms, "
          f"DP {statistics.median(dp):.1f} ms, cold start (median of DP - native) "
          f"{statistics.median(diffs):.1f} ms  [{', '.join(f'{x:.0f}' for x in diffs)}]", flush=True)


def first_statement(pg, db, sql):
    """A fresh connection's first statement after SELECT 1, timed (ms)."""
    with pg.connect(db) as c:
        c.execute("SELECT 1").fetchall()
        start = time.perf_counter()
        rows = c.execute(sql).fetchall()
    assert rows, sql
    return (time.perf_counter() - start) * 1000


def aggregates(pg, db, runs):
    with pg.connect(db) as c:
        c.execute("CREATE TABLE IF NOT EXISTS agg AS SELECT i::float8 AS x FROM generate_series(1, 1000) i")
    first_statement(pg, db, "SELECT avg(x) FROM agg")
    diffs, native, dp = [], [], []
    for _ in range(runs):
        native.append(first_statement(pg, db, "SELECT avg(x) FROM agg"))
        dp.append(first_statement(pg, db, "SELECT dp.dp_avg(x, 0, 1000) FROM agg"))
        diffs.append(dp[-1] - native[-1])
    print(f"aggregates: a fresh backend's first avg {statistics.median(native):.1f} ms, first dp_avg "
          f"{statistics.median(dp):.1f} ms, cold start (median of dp_avg - avg) {statistics.median(diffs):.1f} ms  "
          f"[{', '.join(f'{x:.0f}' for x in diffs)}]", flush=True)


def setup(pg, db):
    with pg.connect(db) as c:
            c.execute("CREATE TABLE t (id int PRIMARY KEY, g text NOT NULL CHECK (g IN ('a', 'b', 'c')))")
            c.execute("INSERT INTO t SELECT i, (ARRAY['a', 'b', 'c'])[1 + i % 3] FROM generate_series(1, 1000) i")
            c.execute("CREATE TABLE t_copy AS SELECT * FROM t")
            c.execute("SELECT dp.protect('t')")
            c.execute("DROP ROLE IF EXISTS analyst")
            c.execute("CREATE ROLE analyst LOGIN")
            c.execute("GRANT SELECT ON t_copy TO analyst")
            c.execute("SELECT dp.grant_budget('analyst', 't', 1e6)")
            c.execute(f"ALTER DATABASE {db} SET session_preload_libraries = 'pg_dp'")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--pause", type=float, default=1.0)
    ap.add_argument("--aggregate-runs", type=int, default=5)
    args = ap.parse_args()
    pg = PgServer()
    try:
        db = pg.create_database("cold")
        setup(pg, db)
        for spares in (1, 0):
            measure(pg, db, spares, args.runs, args.pause)
        aggregates(pg, db, args.aggregate_runs)
    finally:
        pg.stop()
    pg = PgServer({"shared_preload_libraries": "'pg_dp'"})
    try:
        db = pg.create_database("cold")
        setup(pg, db)
        measure(pg, db, None, args.runs, args.pause)
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
