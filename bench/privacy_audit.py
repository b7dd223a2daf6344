#!/usr/bin/python3
"""Black-box privacy audit of contribution bounding: neighbouring datasets, many releases, a
Clopper-Pearson lower bound on epsilon that must stay below the epsilon claimed.

    /usr/bin/python3 bench/privacy_audit.py                    # 1000 releases per dataset and path
    /usr/bin/python3 bench/privacy_audit.py --trials 3000 --markdown

Two protected tables in one throwaway server (test/support/pgserver.py), each its own dataset (so
each has its own secret seed): D has 300 units with one row each in one of 5 groups, plus the
target unit X with 40 rows in each of the 5 groups; D' is D without X.  A role without SELECT asks
`SELECT g, count(*) ... GROUP BY g` (public keys 1..5) through the gateway, --trials times on each
table, each time a new statement (WHERE id > -i), so every answer is fresh.  The test statistic is
the sum of the 5 released counts (X's kept rows all add to it), the event "statistic >= tau" with
tau halfway between the two datasets' mean statistics; with p and p' its frequencies on D and D',
epsilon_lb = ln((CP_lower(p) - delta) / CP_upper(p')) (and symmetrically for the complement), at 95%
confidence each.  A correct mechanism gives epsilon_lb <= the question's epsilon (up to that
confidence); a leak (bounding that depended on X beyond its bounds, bounds chosen without noise, a
noise scale that ignored k or g) shows as epsilon_lb above it.

Paths audited:
  fixed   the DBA's bounds (2 rows, 2 groups): X keeps 2 random groups of 2 rows; Laplace (delta 0)
  auto    bounds chosen per question from a DP estimate; each trial first bumps the data version of
          both tables (a write), so every release also draws a fresh estimate; Laplace (delta 0)
  gauss   fixed bounds on a budget with delta 1e-6: Gaussian noise, zCDP (the claim is the
          question's (epsilon, delta))
"""

import argparse
import math
import os
import statistics
import sys
import time

from scipy import stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "support"))

from pgserver import PgServer  # noqa: E402

UNITS, GROUPS, X_ROWS = 300, 5, 40
EPSILON = 1.0


def cp_bounds(k, n, alpha=0.05):
    lo = stats.beta.ppf(alpha / 2, k, n - k + 1) if k > 0 else 0.0
    hi = stats.beta.ppf(1 - alpha / 2, k + 1, n - k) if k < n else 1.0
    return lo, hi


def epsilon_lb(a, b, delta):
    """The larger lower bound of the two one-sided events of threshold tau (midway)."""
    tau = (statistics.fmean(a) + statistics.fmean(b)) / 2
    best = 0.0
    for side in (1, -1):
        ka = sum(1 for x in a if side * (x - tau) >= 0)
        kb = sum(1 for x in b if side * (x - tau) >= 0)
        lo, _ = cp_bounds(ka, len(a))
        _, hi = cp_bounds(kb, len(b))
        if lo - delta > 0 and hi > 0:
            best = max(best, math.log((lo - delta) / hi))
    return best


def setup(c, path):
    for name, with_x in (("d", True), ("dn", False)):
        table = f"{path}_{name}"
        c.execute(f"CREATE TABLE {table} (id int, uid int NOT NULL, g int NOT NULL)")
        c.execute(f"INSERT INTO {table} SELECT u, u, 1 + u % {GROUPS} FROM generate_series(1, {UNITS}) u")
        if with_x:
            c.execute(f"INSERT INTO {table} SELECT 100000 + r * {GROUPS} + g, 0, 1 + g "
                      f"FROM generate_series(0, {GROUPS - 1}) g, generate_series(1, {X_ROWS}) r")
        bounds = "" if path == "auto" else ", max_rows_per_unit => 2, max_groups_per_unit => 2"
        c.execute(f"SELECT dp.protect('{table}', dataset => '{table}', privacy_unit => 'uid'{bounds})")
        c.execute(f"SELECT dp.set_public_values('{table}', 'g', ARRAY['1','2','3','4','5'])")
        delta = "1e-6" if path == "gauss" else "0"
        c.execute(f"SELECT dp.grant_budget('auditor', '{table}', 1e9, {delta})")


def releases(pg, db, owner, path, table, trials):
    out = []
    with pg.connect(db, user="auditor") as a:
        for i in range(trials):
            if path == "auto":                     # a write: a new data version, a new estimate
                owner.execute(f"UPDATE {table} SET id = id WHERE id = -1")
            rows = a.execute(f"SELECT * FROM dp.query('SELECT g, count(*) FROM {table} WHERE id > -{i} GROUP BY g', "
                             f"{EPSILON}) AS t(g int, n bigint)").fetchall()
            out.append(sum(n for _, n in rows))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--paths", default="fixed,auto,gauss")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    pg = PgServer()
    results = []
    try:
        db = pg.create_database("audit")
        with pg.connect(db) as c:
            c.execute("CREATE ROLE auditor LOGIN")
            for path in args.paths.split(","):
                setup(c, path)
            for path in args.paths.split(","):
                t0 = time.perf_counter()
                with_x = releases(pg, db, c, path, f"{path}_d", args.trials)
                without = releases(pg, db, c, path, f"{path}_dn", args.trials)
                delta = 1e-6 if path == "gauss" else 0.0
                lb = epsilon_lb(with_x, without, delta)
                results.append((path, statistics.fmean(with_x), statistics.fmean(without), lb,
                                time.perf_counter() - t0))
                print(f"{path}: mean statistic with X {results[-1][1]:.1f}, without {results[-1][2]:.1f}; "
                      f"epsilon lower bound {lb:.3f} (claimed {EPSILON}) in {results[-1][4]:.0f} s",
                      file=sys.stderr, flush=True)
    finally:
        pg.stop()
    if args.markdown:
        print(f"| path | releases per dataset | mean statistic with X / without | epsilon lower bound (95% CP) | claimed |")
        print("|---|---|---|---|---|")
        for path, a, b, lb, _ in results:
            print(f"| {path} | {args.trials} | {a:.1f} / {b:.1f} | {lb:.3f} | {EPSILON} |")
    failed = [r for r in results if r[3] > EPSILON]
    if failed:
        print(f"AUDIT FAILED: {failed}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
