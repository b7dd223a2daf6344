#!/usr/bin/python3
"""Benchmark: pg_dp's dp_* aggregates against their native PostgreSQL equivalents.

One command, run from the repository root (pg_dp must be installed system-wide):

    /usr/bin/python3 bench/aggregates.py                 # 10M rows, 5 runs per query
    /usr/bin/python3 bench/aggregates.py --rows 200000 --runs 3 --markdown

It starts a throwaway PostgreSQL 15 server (test/support/pgserver.py), loads a table

    t(id bigint, g int  -- 10 groups, g2 int -- ~100k groups, x float8 in [0,100), i int4 in [0,100])

and for every case times the native query and the DP query in the same server,
alternating them, and reports the median of --runs runs each.  Timing is
client wall time (psycopg, from sending the query until every result row is
fetched), so it includes planning, the final functions (Python noise) and
result transfer -- what a user sees.

It also measures the Python engine's fixed costs: the cold cost of the first
dp aggregate in a fresh backend (PL/Python + OpenDP start-up) and the warm cost
of one release (one final-function call) per aggregate kind.

Only the result tables go to stdout; progress goes to stderr (silence it with
-q).  Nothing is written to disk except the throwaway server, which is removed.
"""

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "support"))

from pgserver import PgServer  # noqa: E402

# Server settings for a 2-core / 24 GB machine.  JIT is off: its compile time
# (tens to hundreds of ms per query, on a CPU shared with the query itself)
# would blur a comparison of per-row costs, and most installations run
# OLTP-style settings where it rarely kicks in.  autovacuum is off so that it
# cannot start in the middle of a timing (the table is VACUUMed explicitly).
SETTINGS = {
    "shared_buffers": "'2GB'",
    "work_mem": "'256MB'",
    "maintenance_work_mem": "'1GB'",
    "effective_cache_size": "'16GB'",
    "max_parallel_workers_per_gather": "2",
    "max_parallel_workers": "4",
    "jit": "off",
    "autovacuum": "off",
    "max_wal_size": "'8GB'",
    "checkpoint_timeout": "'1h'",
    "synchronous_commit": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
}

# (name, native aggregate expression, dp aggregate expression)
AGGS = {
    "count": ("count(*)", "dp_count(*)"),
    "count(x)": ("count(x)", "dp_count(x)"),
    "sum int": ("sum(i)", "dp_sum(i, 0, 100)"),
    "sum float": ("sum(x)", "dp_sum(x, 0.0, 100.0)"),
    "avg": ("avg(x)", "dp_avg(x, 0.0, 100.0)"),
    "var": ("var_samp(x)", "dp_var(x, 0.0, 100.0)"),
    "stddev": ("stddev_samp(x)", "dp_stddev(x, 0.0, 100.0)"),
    "median": ("percentile_cont(0.5) WITHIN GROUP (ORDER BY x)", "dp_median(x, 0.0, 100.0)"),
}
MAIN_AGGS = ["count", "count(x)", "sum int", "sum float", "avg", "var", "stddev", "median"]
MANY_GROUP_AGGS = ["count", "sum int", "avg"]
PARALLEL_AGGS = ["count", "sum int", "sum float", "avg"]


def query(agg_expr, group, table="t"):
    if group is None:
        return f"SELECT {agg_expr} FROM {table}"
    return f"SELECT {group}, {agg_expr} FROM {table} GROUP BY {group}"


def log(args, *msg):
    if not args.quiet:
        print(*msg, file=sys.stderr, flush=True)


def timed(conn, sql, params=None):
    t0 = time.perf_counter()
    cur = conn.execute(sql, params)
    rows = cur.fetchall() if cur.description is not None else []
    return (time.perf_counter() - t0) * 1000.0, rows


def plan_shape(conn, sql):
    """'par N' when the plan has a Gather with N planned workers, else 'serial'."""
    lines = [r[0] for r in conn.execute("EXPLAIN " + sql).fetchall()]
    for line in lines:
        if "Workers Planned:" in line:
            return "par " + line.split(":")[1].strip()
    return "serial"


def compare(conn, native_sql, dp_sql, runs):
    """Alternate native and dp (order flipped every run) after one warm-up each; medians in ms."""
    timed(conn, native_sql)
    timed(conn, dp_sql)
    nat, dp = [], []
    for r in range(runs):
        pair = [(native_sql, nat), (dp_sql, dp)]
        if r % 2:
            pair.reverse()
        for sql, out in pair:
            out.append(timed(conn, sql)[0])
    return statistics.median(nat), statistics.median(dp)


def load(args, pg):
    rows = args.rows
    with pg.connect() as conn:
        conn.execute("CREATE EXTENSION pg_dp CASCADE")
        conn.execute("ALTER DATABASE postgres SET search_path = public, dp")
        conn.execute("CREATE EXTENSION pg_prewarm")
    with pg.connect() as conn:
        log(args, f"loading {rows} rows ...")
        t0 = time.perf_counter()
        conn.execute("SELECT setseed(0.42)")
        conn.execute(
            "CREATE TABLE t AS SELECT s::bigint AS id,"
            " floor(random() * 10)::int AS g,"
            f" floor(random() * {args.many_groups})::int AS g2,"
            " random() * 100 AS x,"
            " floor(random() * 101)::int4 AS i"
            f" FROM generate_series(1, {rows}) s"
        )
        conn.execute("VACUUM (FREEZE, ANALYZE) t")
        conn.execute("CREATE TABLE one AS SELECT 1::bigint AS id, 1 AS g, 1 AS g2, 50.0::float8 AS x, 50::int4 AS i")
        conn.execute("VACUUM ANALYZE one")
        conn.execute("SELECT pg_prewarm('t'), pg_prewarm('one')")
        conn.execute("SELECT count(*) FROM t")
        size = conn.execute("SELECT pg_size_pretty(pg_table_size('t'))").fetchone()[0]
        ng2 = conn.execute("SELECT count(DISTINCT g2) FROM t").fetchone()[0]
        log(args, f"loaded in {time.perf_counter() - t0:.1f} s, table size {size}, {ng2} distinct g2")
        return size, ng2


def bench_main(args, pg):
    """Every aggregate without GROUP BY, with GROUP BY g, and the many-groups cases (default settings)."""
    results = []
    cases = [(a, None) for a in MAIN_AGGS] + [(a, "g") for a in MAIN_AGGS] + [(a, "g2") for a in MANY_GROUP_AGGS]
    with pg.connect() as conn:
        for agg, group in cases:
            native_expr, dp_expr = AGGS[agg]
            nsql, dsql = query(native_expr, group), query(dp_expr, group)
            n, d = compare(conn, nsql, dsql, args.runs)
            shape = f"{plan_shape(conn, nsql)} / {plan_shape(conn, dsql)}"
            label = agg + ("" if group is None else f" GROUP BY {group}")
            results.append((label, shape, n, d))
            log(args, f"  {label:28s} {shape:18s} native {n:9.1f} ms  dp {d:9.1f} ms  x{d / n:.2f}")
    return results


def bench_parallel(args, pg):
    """count/sum/avg with max_parallel_workers_per_gather 0 and 2, for native and dp."""
    results = []
    with pg.connect() as conn:
        for group in (None, "g"):
            for agg in PARALLEL_AGGS:
                native_expr, dp_expr = AGGS[agg]
                nsql, dsql = query(native_expr, group), query(dp_expr, group)
                row = {}
                for workers in (0, 2):
                    conn.execute(f"SET max_parallel_workers_per_gather = {workers}")
                    row[workers] = compare(conn, nsql, dsql, args.runs)
                    row[f"shape{workers}"] = plan_shape(conn, dsql)
                conn.execute("RESET max_parallel_workers_per_gather")
                label = agg + ("" if group is None else f" GROUP BY {group}")
                results.append((label, row))
                log(args, f"  {label:28s} w0 native {row[0][0]:8.1f} dp {row[0][1]:8.1f} | "
                          f"w2 native {row[2][0]:8.1f} dp {row[2][1]:8.1f} ({row['shape2']})")
    return results


def bench_python(args, pg):
    """Cold first-call cost in a fresh backend, and warm per-release cost per aggregate kind."""
    cold = []
    for _ in range(args.cold_runs):
        t0 = time.perf_counter()
        conn = pg.connect()
        connect_ms = (time.perf_counter() - t0) * 1000
        try:
            native_first, _ = timed(conn, "SELECT count(*) FROM (VALUES (1)) v")  # catalog caches, not Python
            dp_first, _ = timed(conn, "SELECT dp_count(*) FROM (VALUES (1)) v")
            dp_second, _ = timed(conn, "SELECT dp_count(*) FROM (VALUES (1)) v")
        finally:
            conn.close()
        cold.append((connect_ms, native_first, dp_first, dp_second))
    cold_med = tuple(statistics.median(c[i] for c in cold) for i in range(4))
    # Split of the cold cost: start PL/Python alone first, then the first dp query imports pg_dp + OpenDP.
    split = []
    for _ in range(args.cold_runs):
        with pg.connect() as conn:
            timed(conn, "SELECT count(*) FROM (VALUES (1)) v")
            plpy_ms, _ = timed(conn, "DO LANGUAGE plpython3u 'pass'")
            plpy_again, _ = timed(conn, "DO LANGUAGE plpython3u 'pass'")
            first, _ = timed(conn, "SELECT dp_count(*) FROM (VALUES (1)) v")
            second, _ = timed(conn, "SELECT dp_count(*) FROM (VALUES (1)) v")
        split.append((plpy_ms - plpy_again, first - second))
    cold_split = tuple(statistics.median(c[i] for c in split) for i in range(2))

    warm = []
    n = args.warm_calls
    with pg.connect() as conn:
        for agg in ["count", "sum int", "sum float", "avg", "var", "median"]:
            native_expr, dp_expr = AGGS[agg]
            nsql, dsql = query(native_expr, None, "one"), query(dp_expr, None, "one")
            for _ in range(20):
                timed(conn, nsql)
                timed(conn, dsql)
            nat, dp = [], []
            for _ in range(n):
                nat.append(timed(conn, nsql)[0])
                dp.append(timed(conn, dsql)[0])
            nm, dm = statistics.median(nat), statistics.median(dp)
            warm.append((agg, nm, dm, dm - nm))
            log(args, f"  warm {agg:10s} native {nm:.3f} ms  dp {dm:.3f} ms  -> {dm - nm:.3f} ms per release")

    # Where a warm release goes: PL/Python call overhead (an empty PL/Python
    # function with dp._release's signature) vs dp._release itself, called
    # once per row from SQL, minus the same query with a native expression.
    breakdown = []
    n_rows = args.breakdown_rows
    with pg.connect() as conn:
        conn.execute("CREATE OR REPLACE FUNCTION pg_temp.bench_noop(kind text, stats text[], params float8[])"
                     " RETURNS float8 LANGUAGE plpython3u VOLATILE AS 'return 0.0'")
        # The release function is found in the catalog (its name moved once: dp._release,
        # dp_internal.release): pg_dp's PL/Python function (text, text[], float8[]).
        found = conn.execute(
            "SELECT p.oid::regproc::text FROM pg_proc p"
            " JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'"
            " JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_dp'"
            " JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'plpython3u'"
            " WHERE p.proargtypes = '25 1009 1022'::oidvector").fetchall()
        rel = found[0][0] if len(found) == 1 else None
        calls = {
            "SQL baseline (no function call)": "0.0::float8",
            "empty PL/Python function, same signature":
                "pg_temp.bench_noop('count', '{1000,0,0,0,0}'::text[], '{1,0}'::float8[])",
        }
        # One OpenDP discrete-Laplace release, without pg_dp's release() around it.
        conn.execute("CREATE OR REPLACE FUNCTION pg_temp.bench_opendp() RETURNS float8 LANGUAGE plpython3u VOLATILE AS $$\n"
                     "from pg_dp.dp import mechanisms\n"
                     "return float(mechanisms.laplace_integer(1000, 1, 1.0))\n$$")
        try:
            conn.execute("SELECT pg_temp.bench_opendp()")
            calls["mechanisms.laplace_integer(1000, 1, 1.0) alone (one OpenDP draw)"] = "pg_temp.bench_opendp()"
        except Exception as e:  # the engine's internals moved: skip this line
            log(args, f"  pg_dp.mechanisms.laplace_integer not usable: {e}")
        if rel:
            calls[f"{rel}('count', ...)"] = f"{rel}('count', '{{1000,0,0,0,0}}'::text[], '{{1,0}}'::float8[])"
            calls[f"{rel}('avg', ...)"] = (f"{rel}('avg', '{{1000,429496729600000,0,0,858993459200}}'::text[],"
                                           " '{1,-33}'::float8[])")
        else:
            log(args, f"  release function not found ({found}); breakdown without it")
        base = None
        for label, expr in calls.items():
            sql = f"SELECT sum({expr}) FROM generate_series(1, {n_rows})"
            timed(conn, sql)
            ms = statistics.median(timed(conn, sql)[0] for _ in range(args.runs))
            if base is None:
                base = ms
            breakdown.append((label, (ms - base) / n_rows * 1000.0))
            log(args, f"  {label:45s} {(ms - base) / n_rows * 1000.0:8.1f} us per call")
    return cold, cold_med, cold_split, warm, breakdown


def fmt_table(headers, rows, markdown):
    rows = [[str(c) for c in r] for r in rows]
    if markdown:
        out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def heading(text, markdown):
    return f"\n### {text}\n" if markdown else f"\n== {text} =="


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows in the table (default 10M)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per query, median reported (default 5)")
    ap.add_argument("--many-groups", type=int, default=100_000, help="groups of column g2 (default 100k)")
    ap.add_argument("--cold-runs", type=int, default=5, help="fresh backends for the cold cost (default 5)")
    ap.add_argument("--warm-calls", type=int, default=200, help="calls per kind for the warm cost (default 200)")
    ap.add_argument("--breakdown-rows", type=int, default=20_000,
                    help="calls per function for the per-call breakdown (default 20k)")
    ap.add_argument("--skip-main", action="store_true", help="skip the main native-vs-dp table")
    ap.add_argument("--skip-parallel", action="store_true", help="skip the parallel on/off comparison")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args()
    md = args.markdown

    pg = PgServer(SETTINGS)
    try:
        with pg.connect() as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        size, ng2 = load(args, pg)
        log(args, "main cases ...")
        main_rows = [] if args.skip_main else bench_main(args, pg)
        par_rows = [] if args.skip_parallel else (log(args, "parallel 0 vs 2 ...") or bench_parallel(args, pg))
        log(args, "python costs ...")
        cold, cold_med, cold_split, warm, breakdown = bench_python(args, pg)
    except BaseException:
        sys.stderr.write(pg.tail_log())
        raise
    finally:
        pg.stop()

    out = []
    out.append(heading(f"pg_dp aggregates vs native: {args.rows} rows ({size}), g: 10 groups, g2: {ng2} groups, "
                       f"median of {args.runs} runs, client wall ms, PostgreSQL {version}, "
                       f"max_parallel_workers_per_gather 2, jit off", md))
    if main_rows:
        out.append(fmt_table(
            ["case", "plan native / dp", "native ms", "dp ms", "dp/native"],
            [(label, shape, f"{n:.1f}", f"{d:.1f}", f"{d / n:.2f}") for label, shape, n, d in main_rows], md))
    g2 = {label: (n, d) for label, _, n, d in main_rows if label.endswith("GROUP BY g2")}
    if g2:
        out.append(heading(f"per-group cost of the final step, from the GROUP BY g2 cases ({ng2} groups)", md))
        out.append(fmt_table(
            ["case", "(dp - native) / groups, ms"],
            [(label, f"{(d - n) / ng2:.4f}") for label, (n, d) in g2.items()], md))
    if par_rows:
        out.append(heading("parallel: max_parallel_workers_per_gather 0 vs 2 (median ms)", md))
        out.append(fmt_table(
            ["case", "native w0", "native w2", "native speed-up", "dp w0", "dp w2", "dp speed-up",
             "dp plan w2", "dp/native w0", "dp/native w2"],
            [(label, f"{r[0][0]:.1f}", f"{r[2][0]:.1f}", f"{r[0][0] / r[2][0]:.2f}",
              f"{r[0][1]:.1f}", f"{r[2][1]:.1f}", f"{r[0][1] / r[2][1]:.2f}", r["shape2"],
              f"{r[0][1] / r[0][0]:.2f}", f"{r[2][1] / r[2][0]:.2f}") for label, r in par_rows], md))
    out.append(heading(f"Python engine costs (ms; cold: median of {args.cold_runs} fresh backends, "
                       f"warm: median of {args.warm_calls} calls on a 1-row table)", md))
    connect_ms, native_first, dp_first, dp_second = cold_med
    out.append(fmt_table(
        ["measure", "ms"],
        [("connect (new backend)", f"{connect_ms:.2f}"),
         ("first native query in it: SELECT count(*) FROM (VALUES (1)) v", f"{native_first:.2f}"),
         ("first dp query in it: SELECT dp_count(*) FROM (VALUES (1)) v", f"{dp_first:.2f}"),
         ("second dp query (warm)", f"{dp_second:.2f}"),
         ("cold cost of the Python engine (first - second dp query)", f"{dp_first - dp_second:.2f}"),
         ("  of which PL/Python start-up (first - second DO LANGUAGE plpython3u 'pass')", f"{cold_split[0]:.2f}"),
         ("  of which pg_dp + OpenDP import (first - second dp query after that DO)", f"{cold_split[1]:.2f}")]
        + [(f"warm cost of one release: dp_{agg.split()[0]}{' (' + agg.split()[1] + ')' if ' ' in agg else ''}"
            f" (dp {dm:.3f} - native {nm:.3f})", f"{diff:.3f}") for agg, nm, dm, diff in warm], md))
    out.append(heading(f"per-call breakdown of a warm release (us per call, {args.breakdown_rows} calls "
                       "from SELECT sum(f(...)) FROM generate_series, minus the baseline)", md))
    out.append(fmt_table(["call", "us per call"], [(label, f"{us:.1f}") for label, us in breakdown[1:]], md))
    print("\n".join(out).lstrip("\n"))


if __name__ == "__main__":
    main()
