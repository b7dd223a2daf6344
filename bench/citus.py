#!/usr/bin/python3
"""Benchmark: pg_dp on a Citus cluster (a coordinator and two workers on this machine).

One command, run from the repository root, after `make install` and with Citus
installed (`scripts/citus.sh build` makes it from ../shared/vendor):

    /usr/bin/python3 bench/citus.py                          # 2M rows, 32 shards, 5 runs
    /usr/bin/python3 bench/citus.py --rows 200000 --runs 3   # quick check

It starts the cluster of test/support/citusserver.py (Unix sockets, as the postgres OS
user), loads table t (id bigint distribution column, g int 10 groups, x float8
uniform in [0, 100), i int4 in [0, 100]) and a plain copy t_local on the
coordinator, then reports:

1. DP/native ratios on the distributed table: count(*), sum(i), sum(x), avg(x),
   without GROUP BY and with GROUP BY g; each pair alternated (order flipped every
   run, one untimed warm-up), median of --runs runs of client wall time.  Then
   the same with pg_dp.citus_native_aggregates = off (the aggregates through
   Citus's worker_partial_agg), and on t_local, a single server's ratio on the
   same machine, for reference.
2. The ledger on the cluster: --clients analyst sessions asking distinct gateway
   questions (dp.query) of a protected distributed table: answers per second,
   and a check that the budget equals the ledger (no over-spend).
Result tables go to stdout, progress to stderr.
"""

import argparse
import os
import statistics
import sys
import threading
import time
from decimal import Decimal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "support"))

import psycopg  # noqa: E402

from citusserver import CitusCluster, citus_available  # noqa: E402

CASES = [
    ("count(*)", "count(*)", "dp_count(*)"),
    ("sum int4", "sum(i)", "dp_sum(i, 0, 100)"),
    ("sum float8", "sum(x)", "dp_sum(x, 0, 100)"),
    ("avg float8", "avg(x)", "dp_avg(x, 0, 100)"),
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def timed(conn, sql):
    t = time.perf_counter()
    conn.execute(sql).fetchall()
    return (time.perf_counter() - t) * 1000


def pair(conn, native, dp, runs):
    timed(conn, native)
    timed(conn, dp)
    tn, td = [], []
    for r in range(runs):
        order = [(native, tn), (dp, td)] if r % 2 == 0 else [(dp, td), (native, tn)]
        for sql, out in order:
            out.append(timed(conn, sql))
    return statistics.median(tn), statistics.median(td)


def plan_text(conn, sql):
    return "\n".join(r[0] for r in conn.execute("EXPLAIN (VERBOSE, COSTS OFF) " + sql).fetchall())


def ratios(conn, table, runs, expect=None):
    """expect: a string the plan of every dp query must contain (which path it takes)."""
    rows = []
    for label, native, dp in CASES:
        for grouped in (False, True):
            keys, tail = ("g, ", " GROUP BY g") if grouped else ("", "")
            if expect is not None:
                plan = plan_text(conn, f"SELECT {keys}{dp} FROM {table}{tail}")
                assert expect in plan, f"{dp}: not through {expect}:\n{plan}"
            n_ms, d_ms = pair(conn, f"SELECT {keys}{native} FROM {table}{tail}",
                              f"SELECT {keys}{dp} FROM {table}{tail}", runs)
            rows.append((label + (" GROUP BY g" if grouped else ""), n_ms, d_ms, d_ms / n_ms))
            log(f"  {table} {rows[-1][0]}: native {n_ms:.1f} ms, dp {d_ms:.1f} ms, {d_ms / n_ms:.2f}x")
    return rows


def ledger(cluster, conn, clients, per_client):
    conn.execute("CREATE TABLE lt (id bigint, x float8)")
    conn.execute("SELECT create_distributed_table('lt', 'id')")
    conn.execute("INSERT INTO lt SELECT n, n % 100 FROM generate_series(1, 100000) n")
    conn.execute("SELECT dp.protect('public.lt')")
    conn.execute("SELECT dp.set_bounds('public.lt', 'x', 0, 100)")
    conn.execute("CREATE ROLE bench_analyst LOGIN")
    total = Decimal("0.01") * clients * per_client
    conn.execute(f"SELECT dp.grant_budget('bench_analyst', 'lt', {total})")
    latencies, errors = [], []
    barrier = threading.Barrier(clients + 1)

    def client(k):
        try:
            with psycopg.connect(cluster.coordinator.conninfo("postgres", "bench_analyst"), autocommit=True) as c:
                c.execute("SELECT * FROM dp.my_budget()").fetchall()   # the session's executor starts
                barrier.wait()
                for j in range(per_client):
                    t = time.perf_counter()
                    c.execute("SELECT * FROM dp.query(%s, 0.01) AS t(n bigint, m float8)",
                              (f"SELECT count(*), avg(x) FROM lt WHERE id > -{k * 1000 + j}",)).fetchall()
                    latencies.append((time.perf_counter() - t) * 1000)
        except Exception as e:  # noqa: BLE001 -- reported
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    spent = conn.execute("SELECT epsilon_spent FROM dp_internal.budgets WHERE dataset = 'lt'").fetchone()[0]
    in_ledger = conn.execute("SELECT coalesce(sum(epsilon), 0) FROM dp.ledger WHERE dataset = 'lt'").fetchone()[0]
    return {"answers": len(latencies), "errors": errors, "wall_s": wall, "qps": len(latencies) / wall,
            "p50_ms": statistics.median(latencies) if latencies else None,
            "spent": spent, "ledger": in_ledger, "granted": total}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--shards", type=int, default=32)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--queries-per-client", type=int, default=10)
    args = ap.parse_args()
    if not citus_available():
        sys.exit("bench/citus.py: Citus is not installed (scripts/citus.sh build makes it from ../shared/vendor)")
    settings = {"citus.shard_count": str(args.shards), "shared_buffers": "'512MB'", "jit": "off",
                "autovacuum": "off", "max_parallel_workers_per_gather": "0"}
    log(f"starting a coordinator and 2 workers ({args.shards} shards)")
    cluster = CitusCluster(settings=settings)
    try:
        with cluster.connect() as conn:
            for name in ("t", "t_local"):
                conn.execute(f"CREATE TABLE {name} (id bigint, g int, x float8, i int4)")
            conn.execute("SELECT create_distributed_table('t', 'id')")
            log(f"loading {args.rows} rows")
            for name in ("t", "t_local"):
                conn.execute(f"INSERT INTO {name} SELECT n, n % 10, (n * 7919 % 100000) / 1000.0, n % 101 "
                             f"FROM generate_series(1::bigint, {args.rows}) n")
            conn.execute("VACUUM ANALYZE t")
            conn.execute("VACUUM ANALYZE t_local")
            version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'citus'").fetchone()[0]
            dist = ratios(conn, "t", args.runs, expect="dp_internal.native_")
            conn.execute("SET pg_dp.citus_native_aggregates = off")
            log("the same through Citus's worker_partial_agg (pg_dp.citus_native_aggregates = off)")
            generic = ratios(conn, "t", args.runs, expect="worker_partial_agg")
            conn.execute("RESET pg_dp.citus_native_aggregates")
            local = ratios(conn, "t_local", args.runs)
            log(f"ledger: {args.clients} clients x {args.queries_per_client} gateway questions")
            led = ledger(cluster, conn, args.clients, args.queries_per_client)
        print(f"### pg_dp on Citus {version}: coordinator + 2 workers on one machine, {args.rows} rows, "
              f"{args.shards} shards, median of {args.runs} runs, client wall ms\n")
        print("| query | native (Citus) | dp (Citus) | ratio | native | dp, worker_partial_agg | ratio "
              "| native (single server) | dp (single server) | ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for d, g, s in zip(dist, generic, local):
            print(f"| {d[0]} | {d[1]:.1f} | {d[2]:.1f} | {d[3]:.2f}x | {g[1]:.1f} | {g[2]:.1f} | {g[3]:.2f}x "
                  f"| {s[1]:.1f} | {s[2]:.1f} | {s[3]:.2f}x |")
        print(f"\n### ledger on the cluster: {args.clients} clients x {args.queries_per_client} distinct dp.query\n")
        print(f"- answers {led['answers']} in {led['wall_s']:.1f} s: {led['qps']:.1f} per second, "
              f"median latency {led['p50_ms']:.0f} ms; errors {len(led['errors'])}")
        print(f"- epsilon granted {led['granted']}, spent {led['spent']}, in the ledger {led['ledger']} "
              f"({'no over-spend' if led['spent'] == led['ledger'] <= led['granted'] else 'OVER-SPEND'})")
        if led["errors"]:
            log("\n".join(led["errors"][:5]))
        if not led["spent"] == led["ledger"] <= led["granted"]:
            sys.exit(1)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
