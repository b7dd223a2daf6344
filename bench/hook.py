#!/usr/bin/python3
"""Benchmark: what the plain-SQL hook (src/sql_hook/hook.c) costs statements it leaves alone.

    /usr/bin/python3 bench/hook.py [--seconds 60] [--clients 16] [--rounds 2] [--scale 10]

Starts a throwaway server (test/support/pgserver.py), initialises pgbench at --scale,
then runs `pgbench -S` (select-only, --clients clients) alternately without and
with `session_preload_libraries = 'pg_dp'` on the database, --rounds times, and
prints each TPS and the ratio with/without (pg_dp must be installed).
"""

import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test", "support"))

from pgserver import PGBIN, PgServer  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--scale", type=int, default=10)
    args = ap.parse_args()
    pgbench = os.path.join(PGBIN, "pgbench")
    pg = PgServer({"max_connections": str(args.clients + 20)})
    try:
        pg.create_database("bench")
        base = [pgbench, "-h", pg.host, "-p", str(pg.port), "-U", "postgres"]
        subprocess.run(base + ["-i", "-s", str(args.scale), "-q", "bench"], check=True, capture_output=True)
        tps = {"without": [], "with": []}
        for _ in range(args.rounds):
            for label, setting in (("without", "RESET session_preload_libraries"),
                                   ("with", "SET session_preload_libraries = 'pg_dp'")):
                with pg.connect("bench") as c:
                    c.execute(f"ALTER DATABASE bench {setting}")
                out = subprocess.run(base + ["-S", "-n", "-c", str(args.clients), "-j", "2", "-T", str(args.seconds),
                                             "bench"], capture_output=True, text=True, check=True).stdout
                tps[label].append(float(re.search(r"tps = ([\d.]+) \(without initial", out).group(1)))
                print(f"{label} hook: {tps[label][-1]:.0f} tps", flush=True)
        print(f"with / without: {sum(tps['with']) / sum(tps['without']):.3f}")
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
