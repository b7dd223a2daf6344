#!/usr/bin/python3
"""Benchmark: dp_synthesize on real data sets, and at scale.

One command, run from the repository root (pg_dp must be installed system-wide):

    /usr/bin/python3 bench/synthesis.py                  # every case, markdown to stdout
    /usr/bin/python3 bench/synthesis.py --cases adult_pgm tpch --epsilon 1

Cases (../shared/data; a case whose data is absent is skipped with a note):
  adult_pgm  private-pgm's Adult, 48,842 x 14 integer codes, bounds from its domain file
  adult      Kamino's Adult, 32,561 x 15 with NULLs and 2 hard denial constraints
  adult_nobounds  the same without declared numeric bounds (DP bounds): reports the share of
             zeros of capital_gain / capital_loss, real vs synthetic (zero-inflated columns)
  tpch       Kamino's TPC-H join, 19,951 x 9 with 4 hard functional dependencies
  mixed      a generated table of 15 columns of every common type (--mixed-rows, 1,000,000)
  geo        30,000 generated rows: zip (20,000 declared values) -> city -> state, (state, kind) -> tax,
             an order within groups (hard denial constraints; a high-cardinality zip -> city table)

For each: wall time of `CALL dp.dp_synthesize(...)` from the client (charge, discovery,
marginals in SQL, model fit, sampling, constraint repair and the atomic write), the
backend's peak resident memory (VmHWM of its process), and dp.evaluate_synthetic's
scores: average 1-/2-way TVD (numeric columns in 16 equal-width bins over the real
range) next to the independent-columns baseline, denial-constraint violations (both
orientations; synthetic and real), and ML utility (train on synthetic, test on held-out
real rows).  Progress goes to stderr.
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "support"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import datasets  # noqa: E402
from aggregates import SETTINGS  # noqa: E402
from pgserver import PgServer  # noqa: E402

CASES = {
    "adult_pgm": (("adult_pgm", "adult.csv"), lambda c, a: datasets.adult_pgm(c)),
    "adult": (("kamino", "adult", "adult.csv"), lambda c, a: datasets.kamino_adult(c)),
    "adult_discovery": (("kamino", "adult", "adult.csv"),
                        lambda c, a: datasets.kamino_adult(c, public_values=False)),
    "adult_nobounds": (("kamino", "adult", "adult.csv"),
                       lambda c, a: datasets.kamino_adult(c, table="adult_nobounds", numeric_bounds=False)),
    "tpch": (("kamino", "tpch", "tpch_order.csv"), lambda c, a: datasets.kamino_tpch(c)),
    "mixed": (None, lambda c, a: datasets.mixed(c, a.mixed_rows)),
    "geo": (None, lambda c, a: datasets.geo(c)),
}


def raw_tvd(conn, table, ways):
    """Average TVD over every set of `ways` columns, on the raw values (no binning): what
    private-pgm and the AIM/MST papers report for Adult's integer codes."""
    import itertools

    import numpy as np

    cols = [r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum", (table,))]
    def load(name):
        rows = conn.execute(f"SELECT {', '.join(cols)} FROM {name}").fetchall()
        return np.array([[str(v) for v in row] for row in rows], dtype=object).reshape(len(rows), len(cols))
    real, synth = load(table), load(f"dp_synthetic.{table}")
    # one integer code per distinct value of each column (over both tables), then counts by bincount
    codes, sizes = [], []
    for j in range(len(cols)):
        _, inv = np.unique(np.concatenate([real[:, j], synth[:, j]]).astype(str), return_inverse=True)
        codes.append(inv.ravel())
        sizes.append(int(inv.max()) + 1)
    n = len(real)
    out = []
    for combo in itertools.combinations(range(len(cols)), ways):
        flat = np.ravel_multi_index([codes[j] for j in combo], [sizes[j] for j in combo])
        cells = int(np.prod([sizes[j] for j in combo]))
        r = np.bincount(flat[:n], minlength=cells) / n
        q = np.bincount(flat[n:], minlength=cells) / max(1, len(flat) - n)
        out.append(0.5 * float(np.abs(r - q).sum()))
    return float(np.mean(out))


def peak_memory_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_case(pg, name, args):
    data, load = CASES[name]
    if data and not os.path.exists(datasets.path(*data)):
        print(f"skipping {name}: {datasets.path(*data)} not found", file=sys.stderr)
        return None
    pg.create_database(name)
    with pg.connect(name) as setup:
        t0 = time.monotonic()
        table = load(setup, args)
        setup.execute("SELECT dp.grant_budget('postgres', (SELECT dataset FROM dp.datasets LIMIT 1), 100, 0.01)")
        if args.no_constraints:         # the same run without its denial constraints (their cost in fidelity)
            setup.execute("DELETE FROM dp_internal.denial_constraints")
        print(f"[{name}] loaded in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    with pg.connect(name) as conn:
        conn.add_notice_handler(lambda d: print(f"[{name}] {d.message_primary}", file=sys.stderr))
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        t0 = time.monotonic()
        conn.execute("CALL dp.dp_synthesize(%s, epsilon => %s, delta => %s)", (table, args.epsilon, args.delta))
        wall = time.monotonic() - t0
        worker = conn.execute("SELECT dp_internal.executor_pid()").fetchone()[0]
        peak = peak_memory_mb(worker) if worker else peak_memory_mb(pid)   # synthesis runs in the executor
        rows = conn.execute(f"SELECT count(*) FROM dp_synthetic.{table}").fetchone()[0]
    result = {"case": name, "table": table, "wall_s": wall, "peak_mb": peak, "rows": rows}
    if name == "adult_nobounds":
        with pg.connect(name) as conn:
            result["zero_share"] = {
                c: [float(conn.execute(f"SELECT avg(({c} = 0)::int) FROM {t}").fetchone()[0])
                    for t in (table, f"dp_synthetic.{table}")] for c in ("capital_gain", "capital_loss")}
            print(f"[{name}] share of zeros (real, synthetic): {result['zero_share']}", file=sys.stderr)
    if args.raw_tvd:
        with pg.connect(name) as conn:
            result["raw_tvd"] = {k: raw_tvd(conn, table, k) for k in (2, 3)}
            print(f"[{name}] raw-value TVD: {result['raw_tvd']}", file=sys.stderr)
    if args.no_evaluate or (name == "mixed" and not args.evaluate_mixed):
        return result
    with pg.connect(name) as conn:
        t0 = time.monotonic()
        for metric, value, detail in conn.execute("SELECT * FROM dp.evaluate_synthetic(%s)", (table,)):
            result.setdefault("metrics", []).append((metric, value, detail))
        print(f"[{name}] evaluated in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return result


def fmt(v, digits=4):
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def report(results, args):
    print(f"## dp_synthesize (epsilon {args.epsilon}, delta {args.delta})\n")
    print("| case | rows written | wall (s) | executor peak (MB) | avg 1-way TVD (indep.) | avg 2-way TVD (indep.) "
          "| raw 2-way / 3-way TVD |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        m = {k: (v, d) for k, v, d in r.get("metrics", [])}
        one = m.get("tvd_1way", (None, {}))
        two = m.get("tvd_2way", (None, {}))
        print(f"| {r['case']} | {r['rows']:,} | {r['wall_s']:.1f} | {r['peak_mb']:.0f} | "
              f"{fmt(one[0])} ({fmt(one[1].get('independent_baseline'))}) | "
              f"{fmt(two[0])} ({fmt(two[1].get('independent_baseline'))}) | "
              + (f"{r['raw_tvd'][2]:.4f} / {r['raw_tvd'][3]:.4f} |" if "raw_tvd" in r else "– |"))
    zeros = [r for r in results if "zero_share" in r]
    if zeros:
        print("\n| case | column | share of zeros, real | synthetic |")
        print("|---|---|---|---|")
        for r in zeros:
            for c, (real, synth) in r["zero_share"].items():
                print(f"| {r['case']} | {c} | {real:.4f} | {synth:.4f} |")
    dcs = [(r["case"], d) for r in results for k, v, d in r.get("metrics", []) if k == "dc_violations"]
    if dcs:
        print("\n| case | denial constraint | violations synthetic | violations real |")
        print("|---|---|---|---|")
        for case, d in dcs:
            print(f"| {case} | `{d['dc']}` | {d['synthetic']} | {d['real']} |")
    ml = [(r["case"], d) for r in results for k, v, d in r.get("metrics", []) if k.startswith("ml_accuracy:")]
    if ml:
        print("\n| case | target | accuracy trained on synthetic | on real | majority class |")
        print("|---|---|---|---|---|")
        for case, d in ml:
            print(f"| {case} | {d['target']} | {fmt(d['accuracy_synthetic'], 3)} | {fmt(d['accuracy_real'], 3)} | "
                  f"{fmt(d['accuracy_majority'], 3)} |")


def summary(results, load_before, load_after):
    """Means and medians over the runs of each case (the machine is shared: the load is reported)."""
    import statistics

    print(f"\n| case | runs | median wall (s) | wall range (s) | mean raw 2-way / 3-way TVD | raw 2-way range |")
    print("|---|---|---|---|---|---|")
    for case in dict.fromkeys(r["case"] for r in results):
        rs = [r for r in results if r["case"] == case]
        walls = [r["wall_s"] for r in rs]
        tvd = ""
        if all("raw_tvd" in r for r in rs):
            two, three = [r["raw_tvd"][2] for r in rs], [r["raw_tvd"][3] for r in rs]
            tvd = (f"{statistics.mean(two):.4f} / {statistics.mean(three):.4f} | "
                   f"{min(two):.4f}–{max(two):.4f}")
        else:
            tvd = "– | –"
        print(f"| {case} | {len(rs)} | {statistics.median(walls):.1f} | {min(walls):.1f}–{max(walls):.1f} | {tvd} |")
    print(f"\nload average (1/5/15 min) before: {' '.join(f'{v:.2f}' for v in load_before)}; "
          f"after: {' '.join(f'{v:.2f}' for v in load_after)} ({os.cpu_count()} CPUs)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=["adult_pgm", "adult", "tpch", "mixed"], choices=list(CASES))
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--delta", type=float, default=1e-6)
    ap.add_argument("--mixed-rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", "--runs", dest="repeat", type=int, default=1,
                    help="runs per case (fresh database each); every run is reported, then a summary: mean "
                         "TVDs, median wall time, and the machine's load average before and after")
    ap.add_argument("--no-evaluate", action="store_true")
    ap.add_argument("--no-constraints", action="store_true", help="drop the cases' denial constraints before the run")
    ap.add_argument("--raw-tvd", action="store_true", help="also average 2- and 3-way TVD over raw values (all sets)")
    ap.add_argument("--evaluate-mixed", action="store_true")
    args = ap.parse_args()
    pg = PgServer(settings=SETTINGS)
    load_before = os.getloadavg()
    try:
        results = [r for r in (run_case(pg, c, args) for c in args.cases for _ in range(args.repeat)) if r]
    finally:
        pg.stop()
    report(results, args)
    if args.repeat > 1:
        summary(results, load_before, os.getloadavg())
    json.dump(results, sys.stderr, default=str)
    print(file=sys.stderr)


if __name__ == "__main__":
    main()
