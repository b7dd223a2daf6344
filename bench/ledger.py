#!/usr/bin/python3
"""Benchmark: pg_dp's query gateway (dp.query) and its privacy ledger.

One command, run from the repository root (pg_dp must be installed system-wide):

    /usr/bin/python3 bench/ledger.py                       # 10M rows, 5 runs per query
    /usr/bin/python3 bench/ledger.py --rows 200000 --runs 3 --markdown

It starts a throwaway PostgreSQL 15 server (test/support/pgserver.py), protects
tables with dp.protect, grants budgets with dp.grant_budget, and asks the
gateway as analyst roles that have no SELECT on the tables:

1. Concurrency and the ledger: --clients psycopg connections (threads), each
   sending --queries-per-client distinct DP queries, against one shared
   budget that runs out halfway (and, for comparison, one budget per client).
   Throughput, refusals, latency, and an exact check that nothing was
   over-spent: epsilon_spent == sum of the ledger's epsilons == sum of the
   answered queries' costs <= epsilon_granted (numeric, exact).
2. Fixed cost of one gateway query on a 1-row table: dp.query minus the native
   query, dp.cost (parse + plan, no charge), a cached answer, and an in-server
   breakdown of one query (parse, analyze, catalog, plan, cache look-up,
   charge, exact query, noise, storing the answer, as the executor runs them).
3. A --rows table (10M by default): dp.query, and the same statement as plain
   SQL through the hook (src/sql_hook/hook.c), against the native aggregate,
   count(*), avg(x) with and without GROUP BY over a public key set, first
   row-level, then with a privacy unit and contribution bounding.  Also the
   gateway's rewritten SQL run directly, to split the cost between executing
   the rewrite and the gateway around it.

Every DP statement text is new (WHERE id > -k with a new k, which keeps every
row), so the answer cache never serves a timed query, except in the rows
labelled "cached".  Timing is client wall time (psycopg, until every row is
fetched).  Result tables go to stdout, progress to stderr (-q silences it).
The script exits with status 1 if an over-spend check fails.
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time
from decimal import Decimal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "support"))

import psycopg  # noqa: E402

from pgserver import PgServer  # noqa: E402

from aggregates import SETTINGS as AGGREGATE_SETTINGS  # noqa: E402  (bench/ is sys.path[0])
from aggregates import fmt_table, heading, log, plan_shape, timed  # noqa: E402

# The server settings of bench/aggregates.py (a 2-core / 24 GB machine), plus a
# background-worker slot for the executor of each analyst session.
SETTINGS = {**AGGREGATE_SETTINGS, "max_connections": "120", "max_worker_processes": "64"}
# --explain: log the plan of every statement the gateway runs (auto_explain, nested statements)
EXPLAIN_SETTINGS = {
    "session_preload_libraries": "'auto_explain'",
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_analyze": "on",
    "auto_explain.log_nested_statements": "on",
    "auto_explain.log_timing": "on",
}

ANALYST = "bench_analyst"
GROUPS = 10                       # public key set of g: 0..9
REFUSED = "53400"                 # pg_dp: insufficient budget
COSTS = [Decimal("0.1"), Decimal("0.25"), Decimal("0.05")]   # epsilon per query, cycled


def literal(text):
    return "'" + text.replace("'", "''") + "'"


def dp_sql(sql, ncols_sql):
    """dp.query around a statement (its text as a literal), with the column definition list."""
    return f"SELECT * FROM dp.query({literal(sql)}, 1.0) AS r({ncols_sql})"


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


# ---------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------

def setup(args, pg):
    rows = args.rows
    with pg.connect() as conn:
        conn.execute("CREATE EXTENSION pg_dp CASCADE")
        conn.execute("ALTER DATABASE postgres SET search_path = public, dp")
        conn.execute("CREATE EXTENSION pg_prewarm")
    keys = "ARRAY[" + ",".join(f"'{i}'" for i in range(GROUPS)) + "]"
    with pg.connect() as conn:
        conn.execute(f"CREATE ROLE {ANALYST} LOGIN")
        # the plain-SQL hook in the analyst's sessions (section 3 asks each statement as plain SQL too)
        conn.execute(f"ALTER ROLE {ANALYST} SET session_preload_libraries = 'pg_dp'")
        for c in range(args.clients):
            conn.execute(f"CREATE ROLE bench_c{c:02d} LOGIN")
        # small tables: the ledger test, the fixed cost, and warming up new connections
        conn.execute("SELECT setseed(0.42)")
        conn.execute("CREATE TABLE small AS SELECT s::bigint AS id, floor(random() * 10)::int AS g,"
                     " random() * 100 AS x FROM generate_series(1, 10000) s")
        conn.execute("CREATE TABLE one AS SELECT 1::bigint AS id, 1 AS g, 50.0::float8 AS x")
        conn.execute("CREATE TABLE warm AS SELECT 1::bigint AS id, 1 AS g, 50.0::float8 AS x")
        log(args, f"loading {rows} rows ...")
        t0 = time.perf_counter()
        # uid: privacy unit with about --rows-per-unit rows, spread over the groups at random
        units = max(1, rows // args.rows_per_unit)
        conn.execute(
            "CREATE TABLE t AS SELECT s::bigint AS id,"
            f" floor(random() * {GROUPS})::int AS g,"
            " random() * 100 AS x,"
            f" floor(random() * {units})::bigint AS uid"
            f" FROM generate_series(1, {rows}) s")
        for tab in ("t", "small", "one", "warm"):
            conn.execute(f"VACUUM (FREEZE, ANALYZE) {tab}")
            conn.execute(f"SELECT dp.protect('{tab}')")
            conn.execute(f"SELECT dp.set_bounds('{tab}', 'x', 0, 100)")
            conn.execute(f"SELECT dp.set_public_values('{tab}', 'g', {keys})")
        conn.execute("SELECT pg_prewarm('t')")
        conn.execute("SELECT count(*) FROM t")
        size = conn.execute("SELECT pg_size_pretty(pg_table_size('t'))").fetchone()[0]
        log(args, f"loaded in {time.perf_counter() - t0:.1f} s, table size {size}")
        big = Decimal(10) ** 9
        for role in [ANALYST, "postgres"] + [f"bench_c{c:02d}" for c in range(args.clients)]:
            conn.execute("SELECT dp.grant_budget(%s, 'warm', %s)", [role, big])
        for tab in ("t", "one"):
            conn.execute("SELECT dp.grant_budget(%s, %s, %s)", [ANALYST, tab, big])
            conn.execute("SELECT dp.grant_budget('postgres', %s, %s)", [tab, big])
        conn.execute(
            "CREATE FUNCTION public.bench_rewrite(sql text) RETURNS text LANGUAGE plpython3u"
            " SET search_path = pg_catalog, pg_temp AS $$\n"
            "from pg_dp.core import catalog, db\n"
            "from pg_dp.gateway.serve import plan_question\n"
            "catalog.set_caller(db.execute(\"SELECT oid::int8 AS r FROM pg_catalog.pg_roles WHERE rolname = current_user\")[0][\"r\"])\n"
            "return plan_question(sql, 1.0).sql\n$$")
        conn.execute("CREATE FUNCTION public.bench_breakdown(sql text) RETURNS text LANGUAGE plpython3u"
                     " SET search_path = pg_catalog, pg_temp AS $$\n" + BREAKDOWN_BODY + "$$")
        conn.execute("REVOKE ALL ON FUNCTION public.bench_rewrite(text), public.bench_breakdown(text) FROM PUBLIC")
    return size


_warm_counter = iter(range(1, 10 ** 9))


def analyst_conn(pg, user=ANALYST):
    """A new analyst connection, warmed up: the first gateway query of a backend imports
    starts the session's executor, which imports pg_dp, pglast and OpenDP (its time is returned).
    The warm-up statements are new ones (the answer cache is shared by all roles)."""
    conn = pg.connect(user=user)
    ms, _ = timed(conn, dp_sql(f"SELECT count(*) FROM warm WHERE id > -{next(_warm_counter)}", "n bigint"))
    timed(conn, dp_sql(f"SELECT count(*) FROM warm WHERE id > -{next(_warm_counter)}", "n bigint"))
    return conn, ms


# ---------------------------------------------------------------------------
# 1. concurrency and the ledger
# ---------------------------------------------------------------------------

def run_clients(args, pg, roles, dataset):
    """Each client sends its queries as fast as it can; returns the per-query records."""
    n = args.clients
    conns, cold = [], []
    for c in range(n):
        conn, ms = analyst_conn(pg, roles[c])
        conns.append(conn)
        cold.append(ms)
    barrier = threading.Barrier(n + 1)
    records = [[] for _ in range(n)]

    def client(c):
        conn = conns[c]
        barrier.wait()
        for j in range(args.queries_per_client):
            cost = COSTS[(c + j) % len(COSTS)]
            k = c * 1_000_000 + j + 1
            sql = f"SELECT g, count(*), avg(x) FROM {dataset} WHERE id > -{k} GROUP BY g"
            t0 = time.perf_counter()
            try:
                conn.execute("SELECT * FROM dp.query(%s, %s) AS r(g int, n bigint, a float8)",
                             [sql, cost]).fetchall()
                outcome = "ok"
            except psycopg.Error as e:
                outcome = "refused" if e.sqlstate == REFUSED else f"error {e.sqlstate}: {str(e).splitlines()[0]}"
            records[c].append((t0, time.perf_counter(), outcome, cost, roles[c]))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    end = time.perf_counter()
    for conn in conns:
        conn.close()
    return [r for rs in records for r in rs], start, end, cold


def check_ledger(conn, role, dataset, answered_cost, answered_n):
    """Exact over-spend checks for one (role, dataset); returns (ok, details)."""
    b = conn.execute("SELECT epsilon_granted, epsilon_spent, delta_granted, delta_spent FROM dp_internal.budgets"
                     " WHERE role = %s::regrole AND dataset = %s", [role, dataset]).fetchone()
    granted, spent, dgranted, dspent = b
    led = conn.execute("SELECT coalesce(sum(epsilon), 0), coalesce(sum(delta), 0), count(*) FROM dp_internal.ledger"
                       " WHERE role = %s::regrole AND dataset = %s", [role, dataset]).fetchone()
    checks = {
        "spent == sum(ledger)": spent == led[0],
        "spent == sum(answered costs)": spent == answered_cost,
        "spent <= granted": spent <= granted,
        "delta spent == sum(ledger) <= granted": dspent == led[1] and dspent <= dgranted,
        "ledger rows == answered queries": led[2] == answered_n,
    }
    return all(checks.values()), checks, granted, spent


def bench_concurrency(args, pg):
    results = []
    per_client = [sum(COSTS[(c + j) % len(COSTS)] for j in range(args.queries_per_client))
                  for c in range(args.clients)]
    demand = sum(per_client)
    scenarios = [
        ("shared budget (1 role)", "ledger_a", [ANALYST] * args.clients, {ANALYST: demand / 2}),
        ("own budgets (1 role each)", "ledger_b", [f"bench_c{c:02d}" for c in range(args.clients)],
         {f"bench_c{c:02d}": per_client[c] / 2 for c in range(args.clients)}),
    ]
    keys = "ARRAY[" + ",".join(f"'{i}'" for i in range(GROUPS)) + "]"
    all_ok = True
    for label, table, roles, grants in scenarios:
        with pg.connect() as conn:
            conn.execute(f"CREATE TABLE {table} AS TABLE small")
            conn.execute(f"ANALYZE {table}")
            conn.execute(f"SELECT dp.protect('{table}')")
            conn.execute(f"SELECT dp.set_bounds('{table}', 'x', 0, 100)")
            conn.execute(f"SELECT dp.set_public_values('{table}', 'g', {keys})")
            for role, eps in grants.items():
                conn.execute("SELECT dp.grant_budget(%s, %s, %s)", [role, table, eps])
        log(args, f"  {label}: {args.clients} clients x {args.queries_per_client} queries, "
                  f"demand {demand}, granted {sum(grants.values())} ...")
        records, start, end, cold = run_clients(args, pg, roles, table)
        ok = [r for r in records if r[2] == "ok"]
        refused = [r for r in records if r[2] == "refused"]
        errors = [r for r in records if r[2] not in ("ok", "refused")]
        last_ok = max((r[1] for r in ok), default=start)
        checks_ok, details, granted_total, spent_total = True, {}, Decimal(0), Decimal(0)
        with pg.connect() as conn:
            for role in grants:
                mine = [r for r in ok if r[4] == role]
                passed, checks, granted, spent = check_ledger(conn, role, table, sum((r[3] for r in mine), Decimal(0)),
                                                              len(mine))
                checks_ok &= passed
                granted_total += granted
                spent_total += spent
                for k, v in checks.items():
                    details[k] = details.get(k, True) and v
        all_ok &= checks_ok and not errors
        res = dict(
            label=label, attempts=len(records), ok=len(ok), refused=len(refused), errors=len(errors),
            elapsed=end - start, ok_window=last_ok - start,
            ok_rate=len(ok) / (last_ok - start) if ok else 0.0, attempt_rate=len(records) / (end - start),
            lat_ok=(pct([(r[1] - r[0]) * 1000 for r in ok], 0.5), pct([(r[1] - r[0]) * 1000 for r in ok], 0.95)),
            lat_ref=(pct([(r[1] - r[0]) * 1000 for r in refused], 0.5),
                     pct([(r[1] - r[0]) * 1000 for r in refused], 0.95)),
            granted=granted_total, spent=spent_total, checks=details, checks_ok=checks_ok,
            cold=statistics.median(cold), error_samples=sorted({r[2] for r in errors})[:3],
        )
        results.append(res)
        log(args, f"    ok {res['ok']} refused {res['refused']} errors {res['errors']} in {res['elapsed']:.2f} s: "
                  f"{res['ok_rate']:.1f} answered/s, {res['attempt_rate']:.1f} attempts/s; "
                  f"granted {granted_total} spent {spent_total}; checks {'PASS' if checks_ok else 'FAIL'} {details}")
        for e in res["error_samples"]:
            log(args, f"    error: {e}")
    return results, all_ok


# ---------------------------------------------------------------------------
# 2. fixed cost of one gateway query
# ---------------------------------------------------------------------------

# A copy of gateway.answer() with a timer between its steps (single-table queries).
BREAKDOWN_BODY = r"""
import json, time
from decimal import Decimal
from pg_dp.core import catalog, db
from pg_dp.dp import ledger
from pg_dp.gateway import answer, plan as planning, serve as gateway
from pg_dp.gateway.analyze import analyze
from pg_dp.gateway.parse import parse_select
t = [time.perf_counter()]
def lap():
    t.append(time.perf_counter())
stmt = parse_select(sql); lap()
query = analyze(stmt); lap()
meta = catalog.load_table(query.schema, query.table); lap()
delta = float(gateway._decimal_setting("default_delta"))
plan = planning.make_plan(query, meta, Decimal("1.0"), delta); lap()
key = gateway._cache_key(plan)
assert gateway._cached(key) is None; lap()
role = db.execute("SELECT oid::int8 AS r FROM pg_catalog.pg_roles WHERE rolname = current_user")[0]["r"]
catalog.set_caller(role)
lid = ledger.charge(role, plan.meta.dataset, plan.cost, plan.query.normalized,
                    plan.mechanism, plan.meta.data_version, key, asked=plan.epsilon); lap()
exact = db.execute_tuples(plan.sql, len(plan.query.group_by) + 1 + len(plan.measurements)); lap()
rows = answer.release_core(plan, exact); lap()
columns = [[n, ty] for n, ty in plan.columns]
ledger.store_answer(key, plan.meta.dataset, plan.meta.data_version, json.dumps(columns), json.dumps(rows), lid); lap()
return json.dumps([(b - a) * 1000 for a, b in zip(t, t[1:])])
"""
BREAKDOWN_STEPS = ["parse (pglast)", "analyze (DP subset checks)", "catalog look-up", "plan + rewrite",
                   "cache key + look-up", "charge (budget row locked, ledger row)", "exact query (SPI)",
                   "noise (OpenDP releases)", "store answer"]


def bench_overhead(args, pg):
    n = args.overhead_calls
    q = "SELECT count(*) FROM one WHERE id > -{k}"
    qg = "SELECT g, count(*) FROM one WHERE id > -{k} GROUP BY g"
    samples = {k: [] for k in ("native", "native_g", "cost", "cached", "fresh", "fresh_g")}
    owner = pg.connect()
    an, _ = analyst_conn(pg)
    timed(an, dp_sql(q.format(k=0), "n bigint"))  # the answer the "cached" rows read
    for i in range(1, n + 21):
        m = {
            "native": timed(owner, q.format(k=i))[0],
            "native_g": timed(owner, qg.format(k=i))[0],
            "cost": timed(an, "SELECT * FROM dp.cost(%s, 1.0)", [q.format(k=i)])[0],
            "cached": timed(an, dp_sql(q.format(k=0), "n bigint"))[0],
            "fresh": timed(an, dp_sql(q.format(k=i), "n bigint"))[0],
            "fresh_g": timed(an, dp_sql(qg.format(k=i), "g int, n bigint"))[0],
        }
        if i > 20:  # the first 20 warm caches
            for k, v in m.items():
                samples[k].append(v)
    med = {k: statistics.median(v) for k, v in samples.items()}
    breakdown = None
    try:
        steps = []
        for i in range(n + 20):
            ms = json.loads(owner.execute("SELECT public.bench_breakdown(%s)",
                                          [f"SELECT count(*) FROM one WHERE id > -{10_000_000 + i}"]).fetchone()[0])
            if i >= 20:
                steps.append(ms)
        breakdown = [statistics.median(s[j] for s in steps) for j in range(len(BREAKDOWN_STEPS))]
    except psycopg.Error as e:  # the gateway's internals moved: no breakdown
        log(args, f"  breakdown skipped: {str(e).splitlines()[0]}")
    owner.close()
    an.close()
    for k, v in med.items():
        log(args, f"  {k:9s} {v:.3f} ms")
    return med, breakdown


# ---------------------------------------------------------------------------
# 3. large table: dp.query against the native aggregate
# ---------------------------------------------------------------------------

PLAIN = 500_000     # offset of the plain-SQL statements' k: never the dp.query statements' questions
SHAPES = [
    ("count(*), avg(x)", "SELECT count(*), avg(x) FROM t WHERE id > -{k}", "n bigint, a float8"),
    ("count(*), avg(x) GROUP BY g", "SELECT g, count(*), avg(x) FROM t WHERE id > -{k} GROUP BY g",
     "g int, n bigint, a float8"),
]


def compare_large(args, pg, label, runs_base):
    results = []
    owner = pg.connect()
    an, _ = analyst_conn(pg)
    for name, template, cols in SHAPES:
        rewrite = owner.execute("SELECT public.bench_rewrite(%s)", [template.format(k=1)]).fetchone()[0]
        assert rewrite.count(".>) (-1)") == 1 and "{" not in rewrite, rewrite
        rewrite_t = rewrite.replace(".>) (-1)", ".>) (-{k})")
        k0 = runs_base
        # one untimed warm-up each, then runs alternated (order rotated every run)
        timed(owner, template.format(k=k0))
        timed(owner, rewrite_t.format(k=k0))
        # the first gateway query also builds the bounded copy (unit-bounded queries)
        first = timed(an, dp_sql(template.format(k=k0), cols))[0]
        timed(an, template.format(k=k0 + PLAIN))
        times = {"native": [], "rewrite": [], "dp": [], "plain": []}
        for r in range(args.runs):
            k = k0 + 1 + r
            order = [("native", owner, template.format(k=k)), ("rewrite", owner, rewrite_t.format(k=k)),
                     ("dp", an, dp_sql(template.format(k=k), cols)),
                     ("plain", an, template.format(k=k + PLAIN))]     # the hook: plain SQL, a new question
            order = order[r % 4:] + order[:r % 4]
            for kind, conn, sql in order:
                times[kind].append(timed(conn, sql)[0])
        cached = statistics.median(timed(an, dp_sql(template.format(k=k0 + args.runs), cols))[0]
                                   for _ in range(3))
        med = {kk: statistics.median(v) for kk, v in times.items()}
        shape = f"{plan_shape(owner, template.format(k=1))} / {plan_shape(owner, rewrite_t.format(k=1))}"
        row = dict(case=f"{label}: {name}", shape=shape, cached=cached, first=first, rewrite_sql=rewrite, **med)
        results.append(row)
        log(args, f"  {row['case']:55s} {shape:16s} native {med['native']:8.1f}  rewrite {med['rewrite']:8.1f}  "
                  f"dp {med['dp']:8.1f} ms  x{med['dp'] / med['native']:.2f}  plain SQL {med['plain']:8.1f} ms  "
                  f"x{med['plain'] / med['native']:.2f}  (first {first:.1f}, "
                  f"cached {cached:.1f} ms)")
        if args.explain:
            for line in owner.execute("EXPLAIN (ANALYZE, BUFFERS) " + rewrite_t.format(k=999_999)).fetchall():
                log(args, "    | " + line[0])
    owner.close()
    an.close()
    return results


def print_gateway_plans(args, pg):
    """The plans auto_explain logged for the rewrites the gateway ran (inside PL/Python, through SPI)."""
    entries, cur = [], []
    with open(pg.log) as f:
        for line in f:
            if not line.startswith(("\t", " ")):
                cur = [line.rstrip()]
                entries.append(cur)
            else:
                cur.append(line.rstrip())
    for e in entries:
        text = "\n".join(e)
        if "plan:" in e[0] and "dp_internal.exact_" in text and 'PL/Python function "query"' in text:
            for line in e:
                log(args, "    gateway| " + line)


# Other ways to bound contributions, run natively on the unit dataset (--alternatives).  They are
# cost proxies of a hash-based rewrite, not pg_dp's semantics: a per-(unit, group) aggregate with
# least(count, k) and a plain sum standing in for a "sum of at most k values" aggregate.
ALTERNATIVES = [
    ("hash bounding per unit (no GROUP BY)",
     "SELECT sum(least(n, {k})), sum(s) FROM (SELECT uid, count(*) AS n, sum(x) AS s FROM t"
     " WHERE id > -{i} GROUP BY uid) u"),
    ("hash bounding per (unit, g), no group limit",
     "SELECT g, sum(least(n, {k})), sum(s) FROM (SELECT uid, g, count(*) AS n, sum(x) AS s FROM t"
     " WHERE id > -{i} GROUP BY uid, g) u GROUP BY g"),
    ("hash per (unit, g) + dense_rank over the (unit, g) rows",
     "SELECT g, sum(least(n, {k})), sum(s) FROM (SELECT g, n, s, dense_rank() OVER (PARTITION BY uid ORDER BY g)"
     " AS r FROM (SELECT uid, g, count(*) AS n, sum(x) AS s FROM t WHERE id > -{i} GROUP BY uid, g) u) v"
     " WHERE r <= {g} GROUP BY g"),
]


def bench_alternatives(args, pg, large):
    """Cost proxies of other bounding rewrites, and the rewrites with a covering index on (uid, g)."""
    out = []
    with pg.connect() as conn:
        native = {r["case"].split(": ", 1)[1]: r["native"] for r in large if r["case"].startswith("row-level")}
        for label, template in ALTERNATIVES:
            sql = lambda i: template.format(k=args.max_rows_per_unit, g=args.max_groups_per_unit, i=i)  # noqa: E731
            timed(conn, sql(5000))
            ms = statistics.median(timed(conn, sql(5001 + r))[0] for r in range(args.runs))
            ref = native["count(*), avg(x)" if "no GROUP BY" in label else "count(*), avg(x) GROUP BY g"]
            out.append((label, plan_shape(conn, sql(1)), ms, ms / ref))
            log(args, f"  {label:55s} {ms:9.1f} ms  x{ms / ref:.2f} of native")
        t0 = time.perf_counter()
        conn.execute("CREATE INDEX t_uid_g ON t (uid, g) INCLUDE (x, id)")
        conn.execute("VACUUM ANALYZE t")
        log(args, f"  covering index on t (uid, g) INCLUDE (x, id) built in {time.perf_counter() - t0:.1f} s")
        for r in large:
            if r["case"].startswith("row-level"):
                continue
            rw = r["rewrite_sql"]
            sql = lambda i: rw.replace(".>) (-1)", f".>) (-{i})")  # noqa: E731
            timed(conn, sql(6000))
            ms = statistics.median(timed(conn, sql(6001 + j))[0] for j in range(args.runs))
            out.append((f"pg_dp rewrite with the covering index: {r['case']}", plan_shape(conn, sql(1)), ms,
                        ms / r["native"]))
            log(args, f"  {out[-1][0]:55s} {ms:9.1f} ms  x{ms / r['native']:.2f} of native")
        conn.execute("DROP INDEX t_uid_g")
    return out


def bench_large(args, pg):
    rows = compare_large(args, pg, "row-level", 1000)
    with pg.connect() as conn:
        # the same table, now with a privacy unit: each uid contributes at most
        # max_rows_per_unit rows per group and to max_groups_per_unit groups
        conn.execute("SELECT dp.protect('t', dataset => 'tu', privacy_unit => 'uid', "
                     f"max_rows_per_unit => {args.max_rows_per_unit}, "
                     f"max_groups_per_unit => {args.max_groups_per_unit})")
        conn.execute("SELECT dp.grant_budget(%s, 'tu', %s)", [ANALYST, Decimal(10) ** 9])
    rows += compare_large(args, pg, f"unit (k={args.max_rows_per_unit}, g={args.max_groups_per_unit})", 2000)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows of the large table (default 10M)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per large query, median reported (default 5)")
    ap.add_argument("--clients", type=int, default=16, help="concurrent analyst connections (default 16)")
    ap.add_argument("--queries-per-client", type=int, default=40, help="queries each client sends (default 40)")
    ap.add_argument("--overhead-calls", type=int, default=200, help="calls per measure of the fixed cost (default 200)")
    ap.add_argument("--rows-per-unit", type=int, default=5, help="average rows per privacy unit uid (default 5)")
    ap.add_argument("--max-rows-per-unit", type=int, default=5, help="contribution bound per group (default 5)")
    ap.add_argument("--max-groups-per-unit", type=int, default=2, help="groups a unit may reach (default 2)")
    ap.add_argument("--skip-concurrency", action="store_true")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--alternatives", action="store_true",
                    help="also time, natively, cost proxies of hash-based contribution bounding and the "
                         "window rewrite with a covering index on (uid, g)")
    ap.add_argument("--explain", action="store_true",
                    help="print EXPLAIN ANALYZE of the rewrites; log the gateway's own plans (auto_explain) "
                         "in the server log, printed at the end (slows every query: not for timings)")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args()
    md = args.markdown

    settings = dict(SETTINGS, **(EXPLAIN_SETTINGS if args.explain else {}))
    pg = PgServer(settings)
    conc = over = large = alts = None
    all_ok = True
    try:
        with pg.connect() as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        size = setup(args, pg)
        if not args.skip_concurrency:
            log(args, "concurrency and the ledger ...")
            conc, all_ok = bench_concurrency(args, pg)
        if not args.skip_overhead:
            log(args, "fixed cost of one gateway query ...")
            over = bench_overhead(args, pg)
        if not args.skip_large:
            log(args, f"{args.rows}-row table ...")
            large = bench_large(args, pg)
            if args.alternatives:
                log(args, "other ways to bound contributions (native cost proxies) ...")
                alts = bench_alternatives(args, pg, large)
        if args.explain:
            print_gateway_plans(args, pg)
    except BaseException:
        sys.stderr.write(pg.tail_log())
        raise
    finally:
        pg.stop()

    out = [heading(f"pg_dp gateway and ledger: PostgreSQL {version}, {args.rows} rows ({size}) in the large table, "
                   "client wall ms", md)]
    if conc:
        out.append(heading(f"1. {args.clients} concurrent clients x {args.queries_per_client} distinct queries "
                           "(SELECT g, count(*), avg(x) FROM a 10 000-row table GROUP BY g, 10 public keys; "
                           "epsilon 0.1 / 0.25 / 0.05 in turn; half the demand granted)", md))
        out.append(fmt_table(
            ["budget", "attempts", "answered", "refused", "errors", "wall s", "answered/s", "attempts/s",
             "latency ok p50 / p95 ms", "latency refused p50 / p95 ms", "granted", "spent", "over-spend checks"],
            [(r["label"], r["attempts"], r["ok"], r["refused"], r["errors"], f"{r['elapsed']:.2f}",
              f"{r['ok_rate']:.1f}", f"{r['attempt_rate']:.1f}",
              f"{r['lat_ok'][0]:.1f} / {r['lat_ok'][1]:.1f}", f"{r['lat_ref'][0]:.1f} / {r['lat_ref'][1]:.1f}",
              r["granted"], r["spent"], "PASS" if r["checks_ok"] else "FAIL") for r in conc], md))
        out.append("\nChecks, exact numeric, per role: " + "; ".join(
            f"{k}: {'yes' if v else 'NO'}" for k, v in conc[0]["checks"].items())
            + f".  First gateway query of a new connection (the executor starts and imports pg_dp, pglast, OpenDP): "
              f"median {statistics.median(r['cold'] for r in conc):.0f} ms.")
    if over:
        med, breakdown = over
        out.append(heading(f"2. Fixed cost of one gateway query (1-row table, median of {args.overhead_calls} "
                           "calls, distinct statement texts)", md))
        rows = [
            ("native SELECT count(*) FROM one WHERE id > -k", f"{med['native']:.2f}"),
            ("dp.cost (parse, plan, cache look-up, budget read; no charge)", f"{med['cost']:.2f}"),
            ("dp.query, answer from the cache (parse, plan, cache hit)", f"{med['cached']:.2f}"),
            ("dp.query, new statement (charge, exact query, noise, store)", f"{med['fresh']:.2f}"),
            ("**gateway overhead: dp.query new - native**", f"**{med['fresh'] - med['native']:.2f}**"),
            ("dp.query GROUP BY g (10 public keys, 1 row) new - native GROUP BY g",
             f"{med['fresh_g'] - med['native_g']:.2f}"),
        ]
        out.append(fmt_table(["measure", "ms"], rows, md))
        if breakdown:
            out.append(heading("Breakdown of one new dp.query inside the server (median ms per step; "
                               "a copy of gateway.answer with timers)", md))
            total = sum(breakdown)
            out.append(fmt_table(["step", "ms", "share"],
                                 [(s, f"{v:.3f}", f"{v / total:.0%}") for s, v in zip(BREAKDOWN_STEPS, breakdown)]
                                 + [("sum of the steps (the executor's commits and the hand-over come on top)",
                                     f"{total:.3f}", "100%")], md))
    if large:
        out.append(heading(f"3. {args.rows}-row table: gateway vs native (median of {args.runs} runs; "
                           "plan: native / rewrite run directly)", md))
        out.append(fmt_table(
            ["case", "plan", "native ms", "rewrite ms", "dp.query ms", "dp/native", "plain SQL ms",
             "plain/native", "rewrite/native", "first dp.query ms", "dp cached ms"],
            [(r["case"], r["shape"], f"{r['native']:.1f}", f"{r['rewrite']:.1f}", f"{r['dp']:.1f}",
              f"{r['dp'] / r['native']:.2f}", f"{r['plain']:.1f}", f"{r['plain'] / r['native']:.2f}",
              f"{r['rewrite'] / r['native']:.2f}", f"{r['first']:.1f}", f"{r['cached']:.1f}")
             for r in large], md))
        if alts:
            out.append(heading("Contribution bounding: cost proxies of other rewrites, run natively "
                               f"(median of {args.runs} runs; ratio to the native query of the same shape)", md))
            out.append(fmt_table(["rewrite", "plan", "ms", "x native"],
                                 [(a, b, f"{c:.1f}", f"{d:.2f}") for a, b, c, d in alts], md))
        out.append("\nRewritten SQL (k = 1):\n")
        for r in large:
            out.append(f"- {r['case']}: `{r['rewrite_sql']}`" if md else f"  {r['case']}: {r['rewrite_sql']}")
    if conc and not all_ok:
        out.append("\n**OVER-SPEND CHECK FAILED**")
    print("\n".join(out).lstrip("\n"))
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
