#!/usr/bin/python3
"""Benchmark: the write phase of dp_synthesize (staging, CHECK misfits, the copy's DDL and rows),
which runs as the role dp_shadow_writer.

    /usr/bin/python3 bench/write_path.py [--rows 200000] [--runs 3]

Starts a throwaway server (test/support/pgserver.py), protects a table of --rows rows and six
columns (a CHECK, a primary key, bounds and public values declared), and synthesizes it --runs
times as the DBA, printing for each run the seconds from "sampled" to "wrote" (the write
phase, from the NOTICEs' clocks) and the whole call.  Run it against two installs (PGBIN and
PYTHONPATH, e.g. /work/tools/sb NAME) to compare them.
"""

import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test", "support"))

from pgserver import PgServer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    pg = PgServer()
    try:
        db = pg.create_database("bench_write")
        with pg.connect(db) as c:
            c.execute("CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL CHECK (a >= 0), b text NOT NULL, "
                      "c int, d date, e boolean)")
            c.execute("INSERT INTO t SELECT g, g % 90, (ARRAY['x','y','z'])[1 + g % 3], g % 1000, "
                      f"DATE '2020-01-01' + g % 365, g % 2 = 0 FROM generate_series(1, {int(args.rows)}) g")
            c.execute("SELECT dp.protect('t')")
            for col, lo, hi in (("a", 0, 90), ("c", 0, 1000)):
                c.execute("SELECT dp.set_bounds('t', %s, %s, %s)", (col, lo, hi))
            c.execute("SELECT dp.set_bounds('t', 'd', '2020-01-01'::date, '2021-01-01'::date)")
            c.execute("SELECT dp.set_public_values('t', 'b', ARRAY['x','y','z'])")
            c.execute("SELECT dp.grant_budget('postgres', 't', 100, 1e-3)")
            for run in range(args.runs):
                notes = []
                c.add_notice_handler(lambda d: notes.append(d.message_primary))
                t0 = time.monotonic()
                c.execute("CALL dp_synthesize('public.t', epsilon => 2)")
                total = time.monotonic() - t0
                clock = lambda word: next(float(re.search(r"\(([\d.]+) s\)", n).group(1))
                                          for n in notes if word in n)
                print(f"run {run}: write phase {clock('rows to') - clock('sampled'):.2f} s, total {total:.1f} s")
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
