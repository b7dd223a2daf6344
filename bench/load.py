#!/usr/bin/python3
"""Benchmark: the executor pool under the load of a BI deployment.

    /usr/bin/python3 bench/load.py                        # 90 sessions of 3 roles, pool defaults
    /usr/bin/python3 bench/load.py --sessions 90 --questions 8 --think 0.5 --markdown

Starts a throwaway server (test/support/pgserver.py) with `shared_preload_libraries = 'pg_dp'`
(the pool: pg_dp.executors and the per-role limits at their defaults, or as given) and
`max_connections = 120`, a 10 000-row protected table with 10 public group keys, and
--roles analyst roles with large budgets.  Then --sessions connections (threads), spread
evenly over the roles, all open at once, each asking --questions requests in turn with a
random think time (uniform 0 .. 2 x --think seconds) between them (the sessions are
threads of --processes client processes, so that one Python's lock does not delay replies):

- a cached question (one of 5 fixed questions, asked once per role before the run: free);
- a new small question (a statement no one asked, epsilon 0.01: charged);
- dp.cost of a new question (free).

It reports every request's outcome (answered, refused, error), p50/p95 latency per kind
(client wall time from the request to its last row), the executors' total RSS (the
largest sum of VmRSS of the 'pg_dp executor' processes, sampled every 0.2 s, and the
same at the end), and the exact over-spend checks per role: epsilon_spent during the run
== the sum of the ledger rows written during the run == the sum of the epsilons of the
new questions answered (cached answers and dp.cost cost nothing), and every cached answer
equals the answer released before the run (it came from the cache).  Exits 1 if a check
fails, a request is refused or fails.
"""

import argparse
import multiprocessing
import os
import random
import statistics
import sys
import threading
import time
from decimal import Decimal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "support"))

import psycopg  # noqa: E402

from pgserver import PgServer  # noqa: E402

GROUPS = 10
NEW_EPSILON = Decimal("0.01")
CACHED = [f"SELECT g, count(*), avg(x) FROM t WHERE x > {k} GROUP BY g" for k in (5, 15, 25, 35, 45)]


def log(args, message):
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def executor_rss_mb(conn):
    """Sum of VmRSS (MB) of the pool's executor processes (read from /proc)."""
    total = 0
    for (pid,) in conn.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_dp executor'").fetchall():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def setup(args, pg):
    with pg.connect() as conn:
        conn.execute("CREATE EXTENSION pg_dp CASCADE")
        conn.execute("ALTER DATABASE postgres SET search_path = public, dp")
        if args.per_session:
            conn.execute("ALTER DATABASE postgres SET session_preload_libraries = 'pg_dp'")
        conn.execute("SELECT setseed(0.42)")
        conn.execute("CREATE TABLE t AS SELECT s::bigint AS id, floor(random() * 10)::int AS g,"
                     " random() * 100 AS x FROM generate_series(1, 10000) s")
        conn.execute("VACUUM (FREEZE, ANALYZE) t")
        conn.execute("SELECT dp.protect('t')")
        conn.execute("SELECT dp.set_bounds('t', 'x', 0, 100)")
        keys = "ARRAY[" + ",".join(f"'{i}'" for i in range(GROUPS)) + "]"
        conn.execute(f"SELECT dp.set_public_values('t', 'g', {keys})")
        for r in range(args.roles):
            conn.execute(f"CREATE ROLE load_r{r} LOGIN")
            conn.execute("SELECT dp.grant_budget(%s, 't', 1000000)", [f"load_r{r}"])
        print_settings = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('pg_dp.executors', 'pg_dp.synthesis_executors', "
            "'pg_dp.role_concurrency', 'pg_dp.role_queue', 'pg_dp.free_requests_per_second') ORDER BY 1").fetchall()
    return print_settings


def spent(conn, role):
    return conn.execute("SELECT epsilon_spent FROM dp.budgets WHERE role = %s::regrole AND dataset = 't'",
                        [role]).fetchone()[0]


def ledger_sum(conn, role, after_id):
    return conn.execute("SELECT coalesce(sum(epsilon), 0), count(*) FROM dp_internal.ledger "
                        "WHERE role = %s::regrole AND id > %s", [role, after_id]).fetchone()


def client_process(conninfo, sessions, roles, args, released, barrier, results):
    """One client process: its sessions in threads (several processes, so that the client's own
    Python does not queue the replies); its records go to `results`."""
    conns = {i: psycopg.connect(conninfo.format(role=roles[i % len(roles)]), autocommit=True) for i in sessions}
    records = []
    lock = threading.Lock()
    ready = threading.Barrier(len(sessions) + 1)

    def session(i):
        rng = random.Random(i)
        conn, role = conns[i], roles[i % len(roles)]
        ready.wait()
        for j in range(args.questions):
            time.sleep(rng.uniform(0, 2 * args.think))
            kind = ("cached", "new", "cost")[(i + j) % 3]
            k = i * 1000 + j + 1
            if kind == "cached":
                sql = CACHED[(i + j) % len(CACHED)]
                query = ("SELECT * FROM dp.query_json(%s, 0.5)", [sql])
            elif kind == "new":
                sql = f"SELECT g, count(*), avg(x) FROM t WHERE id > -{k} GROUP BY g"
                query = ("SELECT * FROM dp.query_json(%s, %s)", [sql, NEW_EPSILON])
            else:
                sql = f"SELECT count(*) FROM t WHERE id > -{k}"
                query = ("SELECT * FROM dp.cost(%s, 0.5)", [sql])
            t0 = time.perf_counter()
            try:
                rows = conn.execute(*query).fetchall()
                outcome = "ok"
                if kind == "cached" and rows != released[(role, sql)]:
                    outcome = "error: a cached answer differs from the one released"
            except psycopg.Error as e:
                outcome = f"refused {e.sqlstate}" if e.sqlstate and e.sqlstate.startswith("53") \
                    else f"error {e.sqlstate}: {str(e).splitlines()[0]}"
            with lock:
                records.append((kind, role, outcome, time.perf_counter() - t0))

    threads = [threading.Thread(target=session, args=(i,)) for i in sessions]
    for t in threads:
        t.start()
    barrier.wait()              # every process has its sessions open
    ready.wait()
    for t in threads:
        t.join()
    for c in conns.values():
        c.close()
    results.put(records)


def warm_pool(pg, roles, seconds=3.0):
    """Every question executor bound to the database and its engine loaded, as on a server that has
    been answering for a while: concurrent cached questions of every role for a few seconds (free).
    Without it the run's first second also measures executors starting (bench/cold_start.py's
    subject), which lands in the tail of the latencies."""
    stop = time.monotonic() + seconds

    def ask(role):
        with pg.connect(user=role) as c:
            while time.monotonic() < stop:
                c.execute("SELECT * FROM dp.query_json(%s, 0.5)", [CACHED[0]]).fetchall()

    threads = [threading.Thread(target=ask, args=(role,)) for role in roles for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=90)
    ap.add_argument("--roles", type=int, default=3)
    ap.add_argument("--questions", type=int, default=6, help="requests per session (default 6)")
    ap.add_argument("--think", type=float, default=0.5, help="mean think time between requests, s (default 0.5)")
    ap.add_argument("--per-session", action="store_true",
                    help="without the pool: session_preload_libraries, max_worker_processes 16 (for comparison)")
    ap.add_argument("--processes", type=int, default=6, help="client processes the sessions are spread over (default 6)")
    ap.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                    help="a server setting, e.g. pg_dp.role_concurrency=2 (repeatable)")
    ap.add_argument("--cold", action="store_true",
                    help="no warm-up: the run starts on executors that have not served yet (default: warm them)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()

    settings = {"shared_preload_libraries": "'pg_dp'", "max_connections": "120", "fsync": "off"}
    if args.per_session:
        # the per-session design, for comparison: a background worker per session
        settings = {"max_connections": "120", "fsync": "off", "max_worker_processes": "16"}
    for s in args.setting:
        name, _, value = s.partition("=")
        settings[name] = value
    pg = PgServer(settings)
    failed = False
    try:
        pool_settings = setup(args, pg)
        roles = [f"load_r{r}" for r in range(args.roles)]
        log(args, f"pool: {', '.join(f'{n} = {v}' for n, v in pool_settings)}")
        # the cached answers: each role asks each cached question once (charged, before the run)
        released = {}
        for role in roles:
            with pg.connect(user=role) as c:
                for sql in CACHED:
                    released[(role, sql)] = c.execute("SELECT * FROM dp.query_json(%s, 0.5)", [sql]).fetchall()
        if not args.cold:
            warm_pool(pg, roles)
        with pg.connect() as admin:
            before = {role: spent(admin, role) for role in roles}
            last_ledger = admin.execute("SELECT coalesce(max(id), 0) FROM dp_internal.ledger").fetchone()[0]
            rss_idle = executor_rss_mb(admin)

        log(args, f"opening {args.sessions} sessions in {args.processes} client processes ...")
        ctx = multiprocessing.get_context("fork")
        barrier = ctx.Barrier(args.processes + 1)
        results = ctx.Queue()
        groups = [list(range(p, args.sessions, args.processes)) for p in range(args.processes)]
        procs = [ctx.Process(target=client_process, args=(pg.conninfo(user="postgres").replace(
                 "user=postgres", "user={role}"), group, roles, args, released, barrier, results))
                 for group in groups]
        for proc in procs:
            proc.start()
        peak = [0.0]
        stop = threading.Event()

        def sample():
            with pg.connect() as watch:
                while not stop.is_set():
                    peak[0] = max(peak[0], executor_rss_mb(watch))
                    time.sleep(0.2)

        sampler = threading.Thread(target=sample)
        sampler.start()
        log(args, f"{args.sessions} sessions x {args.questions} requests ...")
        load_before = os.getloadavg()[0]
        barrier.wait()
        start = time.perf_counter()
        records = []
        for _ in procs:
            records.extend(results.get())
        wall = time.perf_counter() - start
        for proc in procs:
            proc.join()
        stop.set()
        sampler.join()

        with pg.connect() as admin:
            rss_end = executor_rss_mb(admin)
            checks = {}
            for role in roles:
                new_ok = sum(1 for k, r, o, _ in records if r == role and k == "new" and o == "ok")
                delta = spent(admin, role) - before[role]
                ledger, ledger_rows = ledger_sum(admin, role, last_ledger)
                checks[role] = (delta == ledger == NEW_EPSILON * new_ok and ledger_rows == new_ok,
                                delta, ledger, NEW_EPSILON * new_ok)
            executors = admin.execute("SELECT count(*) FROM dp.executor_pool()").fetchone()[0]

        outcomes = {}
        for _, _, o, _ in records:
            outcomes[o] = outcomes.get(o, 0) + 1
        answered = outcomes.get("ok", 0)
        bad = len(records) - answered
        failed = bad > 0 or not all(c[0] for c in checks.values())
        lat = {kind: [ms * 1000 for k, _, o, ms in records if k == kind and o == "ok"]
               for kind in ("cached", "new", "cost")}

        out = print
        out(f"\n### {'One executor per session' if args.per_session else 'Executor pool'} under load: "
            f"{args.sessions} sessions of {args.roles} roles, "
            f"{args.questions} requests each, think time 0-{2 * args.think:g} s "
            f"(load average before the run {load_before:.2f})\n")
        out("Pool: " + ", ".join(f"`{n} = {v}`" for n, v in pool_settings) + f"; {executors} executors.\n")
        out("| requests | answered | refused / errors | wall s | requests/s |")
        out("|---|---|---|---|---|")
        out(f"| {len(records)} | {answered} | {bad} | {wall:.1f} | {len(records) / wall:.1f} |\n")
        if bad:
            out("Refusals and errors: " + "; ".join(f"{o}: {n}" for o, n in outcomes.items() if o != "ok") + "\n")
        out("| request | answered | p50 ms | p95 ms | max ms |")
        out("|---|---|---|---|---|")
        for kind, label in (("cached", "cached answer (dp.query_json)"), ("new", "new small question (charged)"),
                            ("cost", "dp.cost (free)")):
            v = lat[kind]
            out(f"| {label} | {len(v)} | {pct(v, 0.5):.1f} | {pct(v, 0.95):.1f} | {max(v) if v else float('nan'):.1f} |")
        out(f"\nExecutor memory (sum of VmRSS of the pool's executors): before the run {rss_idle:.0f} MB, "
            f"largest during the run {peak[0]:.0f} MB, at the end {rss_end:.0f} MB.\n")
        out("Over-spend checks (exact numeric, per role: spent during the run == ledger rows of the run == "
            "epsilon of the new questions answered): " +
            "; ".join(f"{role}: {'PASS' if ok else 'FAIL'} ({d} / {lg} / {exp})"
                      for role, (ok, d, lg, exp) in checks.items()))
        if lat["cached"] and lat["new"]:
            out(f"\nMedian of all answered requests: {statistics.median(lat['cached'] + lat['new'] + lat['cost']):.1f} ms.")
    finally:
        pg.stop()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
