#!/usr/bin/python3
"""Benchmark: synthesis on a schema-and-constraint suite it was not tuned on (issue 21).

One command, run from the repository root (`make test-synthesis-suite` runs it in full):

    /usr/bin/python3 bench/suite.py                        # every case, markdown to stdout
    /usr/bin/python3 bench/suite.py --cases store sales --small

Schemas (epsilon 3 per schema, one call each, scored by dp.evaluate_schema):
  store    test/support/schema_suite.py store: partitioned payments with keys on the partitions naming their
           order and their customer, returns whose returner may differ, a link table, audit
           columns, heavy-tailed fan-out by segment, no max_rows_per_unit on three child tables
  sales    test/support/schema_suite.py sales: a varchar(5) customer key, orders, order lines keyed (order,
           product), products and shippers public, employees neither protected nor declared
  chinook  ../shared/data/chinook (customer, invoice, invoice_line protected)
  zipf     test/support/datasets.py zipf_schema (Zipf fan-out, parent-dependent children)
  tpch     TPC-H SF 0.1 through DuckDB's extension (test/support/datasets.py tpch_schema; --sf)
  tpcds    TPC-DS (sf 0.01, --tpcds-sf) through DuckDB's extension (test/support/schema_suite.py tpcds):
           customer, store and web sales, store returns keyed by their sale; dates as keys of date_dim
Constrained tables (epsilon 1, dp.evaluate_synthetic), each with and without its constraints:
  tax        test/support/schema_suite.py tax: six hard denial constraints, salaries on a grid (bounds declared)
  tax_grid   the same with the grid of salaries declared as public values

Per schema: rows per table (real, synthetic, ratio), and per foreign key orphans, fan-out TVD
(uniform attachment), parent x child mean TVD (uniform attachment), path disagreements, and
columns with synthetic values outside the real range.  Per constrained table: violations,
rows, 2-way TVD with and without constraints and the independent-columns baseline.  Progress
goes to stderr; --json keeps every figure.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "support"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import datasets  # noqa: E402
import schema_suite as suite  # noqa: E402
from pgserver import PgServer  # noqa: E402
from synthesis import peak_memory_mb  # noqa: E402


def load_store(conn, args):
    return "store", suite.store(conn, customers=500 if args.small else 5000)


def load_sales(conn, args):
    return "sales", suite.sales(conn, customers=150 if args.small else 600)


def load_chinook(conn, args):
    schema = datasets.chinook_schema(conn)
    return schema, {t: conn.execute(f"SELECT count(*) FROM chinook.{t}").fetchone()[0]
                    for t in ("customer", "invoice", "invoice_line")}


def load_zipf(conn, args):
    customers, orders = datasets.zipf_schema(conn, customers=4000 if args.small else 40000)
    return "zipf", {"customer": customers, "orders": orders}


def load_tpcds(conn, args):
    return "tpcds", suite.tpcds(conn, sf=args.tpcds_sf)


def load_tpch(conn, args):
    counts = datasets.tpch_schema(conn, sf=args.sf)
    return "tpch", {t: counts[t] for t in ("customer", "orders", "lineitem")}


SCHEMAS = {
    "store": (lambda: True, "", load_store),
    "sales": (lambda: True, "", load_sales),
    "chinook": (lambda: os.path.exists(datasets.path("chinook", "Chinook_PostgreSql.sql")),
                f"{datasets.path('chinook')} not found", load_chinook),
    "zipf": (lambda: True, "", load_zipf),
    "tpch": (lambda: datasets.tpch_extension() is not None, "duckdb / duckdb-ext-tpch not installed", load_tpch),
    "tpcds": (lambda: suite.tpcds_extension() is not None, "duckdb / duckdb-ext-tpcds not installed", load_tpcds),
}
TABLES = {"tax": "bounds", "tax_grid": "values"}


def run_schema(pg, name, args):
    available, why, load = SCHEMAS[name]
    if not available():
        print(f"skipping {name}: {why}", file=sys.stderr)
        return None
    pg.create_database(f"suite_{name}")
    with pg.connect(f"suite_{name}") as setup:
        schema, rows = load(setup, args)
        setup.execute("SELECT dp.grant_budget('postgres', %s, 100, 0.01)", (schema,))
    with pg.connect(f"suite_{name}") as conn:
        conn.add_notice_handler(lambda d: print(f"[{name}] {d.message_primary}", file=sys.stderr))
        t0 = time.monotonic()
        conn.execute("CALL dp_synthesize(%s, epsilon => %s)", (schema, args.epsilon))
        wall = time.monotonic() - t0
        peak = peak_memory_mb(conn.execute("SELECT dp_internal.executor_pid()").fetchone()[0])
        written = {t: conn.execute(f"SELECT count(*) FROM dp_synthetic.{t}").fetchone()[0] for t in rows}
        metrics = conn.execute("SELECT table_name, subject, metric, value, baseline, detail "
                               "FROM dp.evaluate_schema(%s)", (schema,)).fetchall()
        try:
            sdm = sdmetrics(conn, schema, list(rows), args) if args.sdmetrics else None
        except Exception as e:          # a report that fails leaves the figures of the run
            print(f"[{name}] SDMetrics report failed: {e}", file=sys.stderr)
            sdm = None
    return {"case": name, "rows": rows, "written": written, "wall_s": wall, "peak_mb": peak, "metrics": metrics,
            "sdmetrics": sdm}


SDTYPE = {"smallint": "numerical", "integer": "numerical", "bigint": "numerical", "real": "numerical",
          "double precision": "numerical", "numeric": "numerical", "date": "datetime",
          "timestamp without time zone": "datetime", "timestamp with time zone": "datetime", "boolean": "boolean"}


def sdmetrics(conn, schema, tables, args, where="dp_synthetic"):
    """SDMetrics' quality reports (bench/sdmetrics_report.py, run by the Python given with
    --sdmetrics): the real and synthetic tables are dumped to CSV with a metadata file."""
    folder = tempfile.mkdtemp(prefix="pg_dp_sdm_")
    meta = {"tables": {}, "relationships": []}
    for t in tables:
        cols = conn.execute("SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a WHERE a.attrelid = "
                            "%s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                            (f"{schema}.{t}",)).fetchall()
        keys = {r[0] for r in conn.execute(
            "SELECT a.attname FROM pg_constraint k JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY(k.conkey) "
            "WHERE k.conrelid = %s::regclass AND k.contype IN ('p', 'f', 'u')", (f"{schema}.{t}",))}
        pk = conn.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                          "AND a.attnum = i.indkey[0] WHERE i.indrelid = %s::regclass AND i.indisprimary "
                          "AND i.indnatts = 1", (f"{schema}.{t}",)).fetchone()
        meta["tables"][t] = {"columns": {c: {"sdtype": "id" if c in keys else SDTYPE.get(ty, "categorical")}
                                         for c, ty in cols}}
        if pk:
            meta["tables"][t]["primary_key"] = pk[0]
        for side, s in (("real", schema), ("synthetic", where)):
            os.makedirs(os.path.join(folder, side), exist_ok=True)
            with open(os.path.join(folder, side, f"{t}.csv"), "wb") as f, \
                    conn.cursor().copy(f"COPY (SELECT * FROM {s}.{t}) TO STDOUT WITH (FORMAT csv, HEADER)") as cp:
                for chunk in cp:
                    f.write(chunk)
    for r in conn.execute(
            "SELECT c.relname, a.attname, p.relname, b.attname FROM pg_constraint k "
            "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] "
            "JOIN pg_attribute b ON b.attrelid = k.confrelid AND b.attnum = k.confkey[1] "
            "WHERE k.contype = 'f' AND n.nspname = %s AND array_length(k.conkey, 1) = 1", (where,)):
        if r[0] in meta["tables"] and r[2] in meta["tables"] and meta["tables"][r[2]].get("primary_key") == r[3]:
            meta["relationships"].append({"parent_table_name": r[2], "parent_primary_key": r[3],
                                          "child_table_name": r[0], "child_foreign_key": r[1]})
    with open(os.path.join(folder, "metadata.json"), "w") as f:
        json.dump(meta, f)
    done = subprocess.run([args.sdmetrics, os.path.join(ROOT, "bench", "sdmetrics_report.py"), folder],
                          capture_output=True, text=True)
    if done.returncode:
        print(done.stderr[-3000:], file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_table(pg, name, args):
    grid = TABLES[name]
    out = {"case": name}
    for constrained in (True, False):
        db = f"suite_{name}_{int(constrained)}"
        pg.create_database(db)
        with pg.connect(db) as conn:
            conn.add_notice_handler(lambda d: print(f"[{name}] {d.message_primary}", file=sys.stderr))
            real = suite.tax(conn, rows=5000 if args.small else 50000, table="tax", constraints=True, grid=grid)
            if not constrained:
                conn.execute("DELETE FROM dp_internal.denial_constraints")
            conn.execute("SELECT dp.grant_budget('postgres', 'tax', 100, 0.01)")
            t0 = time.monotonic()
            conn.execute("CALL dp_synthesize('public.tax', epsilon => 1.0)")
            wall = time.monotonic() - t0
            if not constrained:        # violations counted against the same six constraints
                for d in suite.TAX_DCS:
                    conn.execute("SELECT dp.add_constraint('tax', %s)", (d,))
            rows = conn.execute("SELECT metric, value, detail FROM dp.evaluate_synthetic('public.tax', "
                                "targets => ARRAY['marital'])").fetchall()
            m = {r[0]: (r[1], r[2]) for r in rows}
            m["violations"] = (sum(r[1] for r in rows if r[0] == "dc_violations"),
                               {r[2]["dc"]: r[2]["synthetic"] for r in rows if r[0] == "dc_violations"})
            written = conn.execute("SELECT count(*) FROM dp_synthetic.tax").fetchone()[0]
            grid_share = conn.execute("SELECT avg((salary % 5000 = 0)::int) FROM dp_synthetic.tax").fetchone()[0]
        out["with" if constrained else "without"] = {"metrics": m, "rows": real, "written": written, "wall_s": wall,
                                                    "on_grid": float(grid_share)}
    return out


def fmt(v, digits=3):
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def report_schemas(results, args):
    print(f"### Schemas (epsilon {args.epsilon} per schema, one call each)\n")
    print("| case | table | real rows | synthetic rows | ratio | path disagreements | out of range (share) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        m = r["metrics"]
        for t, n in r["rows"].items():
            paths = [f"{int(x[3])} ({x[5].get('real', '?')} real)" for x in m
                     if x[0] == t and x[2] == "path_disagreements"]
            out = [f"{x[1]} {x[3]:.3f}" for x in m if x[0] == t and x[2] == "out_of_range" and x[3]]
            print(f"| {r['case']} | {t} | {n:,} | {r['written'][t]:,} | {r['written'][t] / max(n, 1):.2f} | "
                  + (", ".join(paths) or "–") + " | " + (", ".join(out) or "none") + " |")
    print("\n| case | foreign key | orphans | fan-out TVD (uniform) | parent x child TVD mean (uniform) "
          "| dependent pairs: n, mean TVD (uniform) | flagged |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        m = r["metrics"]
        for t, subject, metric, value, base, detail in m:
            if metric != "orphans":
                continue
            fan = next((x for x in m if x[2] == "fanout_tvd" and x[1] == subject and x[0] == t), None)
            mean = next((x for x in m if x[2] == "parent_child_tvd_mean" and x[1] == subject and x[0] == t), None)
            flags = [x[2] for x in (fan, mean) if x and (x[5] or {}).get("no_better_than_baseline")]
            print(f"| {r['case']} | {t}.{subject} | {int(value)} | "
                  + (f"{fmt(fan[3])} ({fmt(fan[4])})" if fan else "–") + " | "
                  + (f"{fmt(mean[3])} ({fmt(mean[4])})" if mean else "–") + " | "
                  + (f"{mean[5]['dependent_pairs']}, {fmt(mean[5]['dependent_mean'])} "
                     f"({fmt(mean[5]['dependent_baseline'])})" if mean and (mean[5] or {}).get("dependent_pairs")
                     else "0") + " | " + (", ".join(flags) or "–") + " |")
    print("\n| case | wall (s) | executor peak (MB) |")
    print("|---|---|---|")
    for r in results:
        print(f"| {r['case']} | {r['wall_s']:.1f} | {r['peak_mb']:.0f} |")
    if any(r.get("sdmetrics") for r in results):
        print("\nSDMetrics quality reports (0 to 1, higher is better):\n")
        print("| case | table | score | Column Shapes | Column Pair Trends |")
        print("|---|---|---|---|---|")
        for r in results:
            for t, q in ((r.get("sdmetrics") or {}).get("tables") or {}).items():
                print(f"| {r['case']} | {t} | {q['score']:.3f} | {q.get('Column Shapes', 0):.3f} | "
                      f"{q.get('Column Pair Trends', 0):.3f} |")
            m = (r.get("sdmetrics") or {}).get("multi_table")
            if m:
                print(f"| {r['case']} | (multi-table) | {m['score']:.3f} | Cardinality {m.get('Cardinality', 0):.3f} | "
                      f"Intertable Trends {m.get('Intertable Trends', 0):.3f} |")


def report_tables(results, args):
    print("\n### Constrained tables (epsilon 1)\n")
    print("| case | violations (synthetic) | rows real / synthetic | 2-way TVD with / without constraints (ratio) "
          "| independent baseline | salaries on the 5,000 grid | wall (s) with / without |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        w, wo = r["with"], r["without"]
        viol = w["metrics"].get("violations", (None, None))
        two, two0 = w["metrics"]["tvd_2way"][0], wo["metrics"]["tvd_2way"][0]
        indep = w["metrics"]["tvd_2way"][1]["independent_baseline"]
        print(f"| {r['case']} | {fmt(viol[0], 0)} | {w['rows']:,} / {w['written']:,} | {fmt(two)} / {fmt(two0)} "
              f"({two / two0:.2f}) | {fmt(indep)} | {w['on_grid']:.3f} | {w['wall_s']:.0f} / {wo['wall_s']:.0f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=[c for c in list(SCHEMAS) + list(TABLES) if c != "tpch"],
                        choices=list(SCHEMAS) + list(TABLES))
    parser.add_argument("--epsilon", type=float, default=3.0)
    parser.add_argument("--sf", type=float, default=0.1)
    parser.add_argument("--tpcds-sf", type=float, default=0.01, help="TPC-DS scale factor (tpcds)")
    parser.add_argument("--small", action="store_true", help="small sizes (a quick check)")
    parser.add_argument("--json")
    parser.add_argument("--sdmetrics", metavar="PYTHON",
                        help="a Python with sdmetrics installed: add SDMetrics' quality reports of each schema")
    args = parser.parse_args()
    pg = PgServer()
    try:
        schemas = [r for r in (run_schema(pg, c, args) for c in args.cases if c in SCHEMAS) if r]
        tables = [run_table(pg, c, args) for c in args.cases if c in TABLES]
    finally:
        pg.stop()
    print(f"## Synthesis suite (bench/suite.py{' --small' if args.small else ''})\n")
    if schemas:
        report_schemas(schemas, args)
    if tables:
        report_tables(tables, args)
    print(f"\nCommand: `/usr/bin/python3 bench/suite.py --cases {' '.join(args.cases)}"
          + (" --small" if args.small else "") + "`")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"schemas": schemas, "tables": tables}, f, default=str, indent=1)


if __name__ == "__main__":
    main()
