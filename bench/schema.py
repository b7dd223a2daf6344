#!/usr/bin/python3
"""Benchmark: one-call synthesis of whole schemas, scored by dp.evaluate_schema.

One command, run from the repository root (pg_dp must be installed system-wide):

    /usr/bin/python3 bench/schema.py                       # tpch (SF 0.1), chinook, zipf; markdown to stdout
    /usr/bin/python3 bench/schema.py --cases tpch --sf 0.01 --epsilon 3

Cases:
  tpch     TPC-H generated at run time with DuckDB's TPC-H extension (duckdb + duckdb-ext-tpch,
           `CALL dbgen(sf)`, CSV, COPY): customer, orders, lineitem protected (unit c_custkey),
           region, nation, part, supplier, partsupp declared public (test/support/datasets.py tpch_schema)
  chinook  ../shared/data/chinook: customer, invoice, invoice_line protected, the catalogue public
  zipf     a generated customer -> orders schema with Zipf fan-out and parent-dependent children
           (test/support/datasets.py zipf_schema)

For each: wall time of `CALL dp_synthesize('<schema>', epsilon => E)` from the client, the
executor's peak resident memory (VmHWM of dp_internal.executor_pid(), where synthesis runs),
and dp.evaluate_schema's figures: orphans and fan-out TVD per foreign key (next to uniform
attachment), the mean and best-modelled parent x child 2-way TVD (next to uniform
attachment; and over the pairs that are dependent in the real data, real joint >= 0.05 TVD from
independence), path disagreements, and per table the mean 1-/2-way TVD.  Progress to stderr.
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "support"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import datasets  # noqa: E402
from pgserver import PgServer  # noqa: E402
from synthesis import peak_memory_mb  # noqa: E402


def load_chinook(conn, args):
    schema = datasets.chinook_schema(conn)
    return schema, {t: conn.execute(f"SELECT count(*) FROM chinook.{t}").fetchone()[0]
                    for t in ("customer", "invoice", "invoice_line")}


def load_tpch(conn, args):
    counts = datasets.tpch_schema(conn, sf=args.sf)
    return "tpch", {t: counts[t] for t in ("customer", "orders", "lineitem")}


def load_zipf(conn, args):
    customers, orders = datasets.zipf_schema(conn, customers=args.zipf_customers)
    return "zipf", {"customer": customers, "orders": orders}


CASES = {
    "tpch": (lambda: datasets.tpch_extension() is not None, "duckdb / duckdb-ext-tpch not installed", load_tpch),
    "chinook": (lambda: os.path.exists(datasets.path("chinook", "Chinook_PostgreSql.sql")),
                f"{datasets.path('chinook')} not found", load_chinook),
    "zipf": (lambda: True, "", load_zipf),
}


def run_case(pg, name, args):
    available, why, load = CASES[name]
    if not available():
        print(f"skipping {name}: {why}", file=sys.stderr)
        return None
    pg.create_database(f"bench_{name}")
    with pg.connect(f"bench_{name}") as setup:
        t0 = time.monotonic()
        schema, rows = load(setup, args)
        setup.execute("SELECT dp.grant_budget('postgres', %s, 100, 0.01)", (schema,))
        print(f"[{name}] loaded {rows} in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    with pg.connect(f"bench_{name}") as conn:
        conn.add_notice_handler(lambda d: print(f"[{name}] {d.message_primary}", file=sys.stderr))
        t0 = time.monotonic()
        conn.execute("CALL dp_synthesize(%s, epsilon => %s)", (schema, args.epsilon))
        wall = time.monotonic() - t0
        worker = conn.execute("SELECT dp_internal.executor_pid()").fetchone()[0]
        peak = peak_memory_mb(worker)
        written = {t: conn.execute(f"SELECT count(*) FROM dp_synthetic.{t}").fetchone()[0] for t in rows}
        print(f"[{name}] synthesized in {wall:.1f} s, executor peak {peak:.0f} MB", file=sys.stderr)
        t0 = time.monotonic()
        metrics = conn.execute("SELECT table_name, subject, metric, value, baseline, detail "
                               "FROM dp.evaluate_schema(%s)", (schema,)).fetchall()
        evaluated = time.monotonic() - t0
        peak_eval = peak_memory_mb(worker)
        print(f"[{name}] evaluated in {evaluated:.1f} s (executor peak {peak_eval:.0f} MB)", file=sys.stderr)
    return {"case": name, "schema": schema, "rows": rows, "written": written, "wall_s": wall, "peak_mb": peak,
            "evaluate_s": evaluated, "evaluate_peak_mb": peak_eval, "metrics": metrics}


def fmt(v, digits=4):
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def report(results, args):
    print(f"## dp_synthesize of whole schemas (epsilon {args.epsilon} per schema"
          + (f", TPC-H SF {args.sf}" if any(r["case"] == "tpch" for r in results) else "") + ")\n")
    print("| case | real rows | synthetic rows | wall (s) | executor peak (MB) | evaluate_schema (s) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['case']} | " + ", ".join(f"{t} {n:,}" for t, n in r["rows"].items()) + " | "
              + ", ".join(f"{n:,}" for n in r["written"].values())
              + f" | {r['wall_s']:.1f} | {r['peak_mb']:.0f} | {r['evaluate_s']:.1f} |")
    print("\n| case | foreign key | orphans | fan-out TVD (uniform) | parent x child TVD mean (uniform) "
          "| dependent pairs: n, mean TVD (uniform) | best-kept pair: TVD (uniform) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        m = r["metrics"]
        for t, subject, metric, value, base, detail in m:
            if metric != "orphans":
                continue
            fk = subject.split(" ")[0]
            fan = next((x for x in m if x[2] == "fanout_tvd" and x[1] == subject), None)
            mean = next((x for x in m if x[2] == "parent_child_tvd_mean" and x[1] == subject), None)
            pairs = [x for x in m if x[2] == "parent_child_tvd" and x[1].startswith(fk + ":")]
            best = max(pairs, key=lambda x: (x[4] or 0) - (x[3] or 0)) if pairs else None
            print(f"| {r['case']} | {t}.{subject} | {int(value)} | "
                  + (f"{fmt(fan[3])} ({fmt(fan[4])})" if fan else "–") + " | "
                  + (f"{fmt(mean[3])} ({fmt(mean[4])})" if mean else "–") + " | "
                  + (f"{mean[5]['dependent_pairs']}, {fmt(mean[5]['dependent_mean'])} "
                     f"({fmt(mean[5]['dependent_baseline'])})" if mean and mean[5].get("dependent_pairs") else "0") + " | "
                  + (f"{best[1].split(': ', 1)[1]}: {fmt(best[3])} ({fmt(best[4])})" if best else "–") + " |")
    print("\n| case | table | path disagreements | mean 1-way TVD | mean 2-way TVD (independent) "
          "| columns with values outside the real range (share) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        m = r["metrics"]
        for t in r["rows"]:
            paths = [x for x in m if x[0] == t and x[2] == "path_disagreements"]
            one = next((x for x in m if x[0] == t and x[2] == "tvd_1way_mean"), None)
            two = next((x for x in m if x[0] == t and x[2] == "tvd_2way_mean"), None)
            out = [f"{x[1]} {x[3]:.3f}" for x in m if x[0] == t and x[2] == "out_of_range" and x[3]]
            print(f"| {r['case']} | {t} | " + (", ".join(str(int(x[3])) for x in paths) or "–") + " | "
                  + (fmt(one[3]) if one else "–") + " | "
                  + (f"{fmt(two[3])} ({fmt(two[4])})" if two else "–") + " | " + (", ".join(out) or "none") + " |")
    print(f"\nCommand: `/usr/bin/python3 bench/schema.py --cases {' '.join(args.cases)} --epsilon {args.epsilon} "
          f"--sf {args.sf}`")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--epsilon", type=float, default=3.0)
    parser.add_argument("--sf", type=float, default=0.1, help="TPC-H scale factor (0.1: 15k customers, 600k lines)")
    parser.add_argument("--zipf-customers", type=int, default=40000)
    parser.add_argument("--json", help="also write every dp.evaluate_schema row of every case to this file")
    args = parser.parse_args()
    pg = PgServer()
    try:
        results = [r for r in (run_case(pg, name, args) for name in args.cases) if r]
    finally:
        pg.stop()
    report(results, args)
    if args.json:
        import json
        with open(args.json, "w") as f:
            json.dump([{k: v for k, v in r.items()} for r in results], f, default=str, indent=1)


if __name__ == "__main__":
    main()
