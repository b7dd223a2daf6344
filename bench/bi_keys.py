#!/usr/bin/python3
"""Benchmark: BI group keys (date_trunc, bins, width_bucket, CASE, EXTRACT) as plain SQL, against native.

    /usr/bin/python3 bench/bi_keys.py [--rows 1000000] [--runs 3]

Starts a throwaway server (test/support/pgserver.py), loads `orders` (--rows rows: a date,
a timestamptz, an int, a float8), protects it with bounds on each column, and asks
each shape as the owner (native) and as a restricted role through the hook
(session_preload_libraries = 'pg_dp'), alternated, after one untimed warm-up each.
Every DP statement is a new text (`WHERE id > -k` keeps every row), so the answer
cache serves none.  Prints the median client wall time of each and the ratio
(pg_dp must be installed).
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test", "support"))

from pgserver import PgServer  # noqa: E402

SHAPES = {
    "date_trunc month (date)": "SELECT date_trunc('month', created) AS m, count(*) FROM orders WHERE id > {k} GROUP BY 1",
    "date_trunc week (timestamptz)": "SELECT date_trunc('week', placed), count(*) FROM orders WHERE id > {k} GROUP BY 1",
    "EXTRACT month": "SELECT EXTRACT(MONTH FROM created), count(*) FROM orders WHERE id > {k} GROUP BY 1",
    "floor(age / 10) * 10": "SELECT floor(age / 10) * 10, count(*), avg(score) FROM orders WHERE id > {k} GROUP BY 1",
    "width_bucket(score, 0, 1, 20)": "SELECT width_bucket(score, 0, 1, 20), count(*) FROM orders WHERE id > {k} GROUP BY 1",
    "CASE bands": "SELECT CASE WHEN age < 18 THEN 'minor' WHEN age < 65 THEN 'adult' ELSE 'senior' END, count(*) "
                  "FROM orders WHERE id > {k} GROUP BY 1",
    "month, LIKE filter": "SELECT CAST(date_trunc('month', created) AS date), sum(age) FROM orders "
                          "WHERE id > {k} AND name LIKE 'a%' GROUP BY 1",
}


def timed(conn, sql):
    start = time.perf_counter()
    conn.execute(sql).fetchall()
    return time.perf_counter() - start


def bench_server():
    """A throwaway server tuned for timing, with database bench where the hook is loaded."""
    pg = PgServer({"shared_buffers": "512MB", "work_mem": "128MB", "jit": "off", "fsync": "off",
                   "autovacuum": "off", "max_parallel_workers_per_gather": "2"})
    pg.create_database("bench")
    with pg.connect("bench") as c:
        c.execute("ALTER DATABASE bench SET session_preload_libraries = 'pg_dp'")
    return pg


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    pg = bench_server()
    try:
        with pg.connect("bench") as c:
            c.execute("CREATE TABLE orders (id int, created date NOT NULL, placed timestamptz NOT NULL, "
                      "age int NOT NULL, score float8 NOT NULL, name text NOT NULL)")
            c.execute(f"INSERT INTO orders SELECT g, DATE '2021-01-01' + g % 365, "
                      f"TIMESTAMPTZ '2021-01-01 00:00+00' + (g % 8760) * INTERVAL '1 hour', g % 100, "
                      f"(g % 1000) / 1000.0, (ARRAY['ann','bob','cy'])[1 + g % 3] FROM generate_series(1, {args.rows}) g")
            c.execute("VACUUM (FREEZE, ANALYZE) orders")
            c.execute("CREATE ROLE bench_bi LOGIN")
            c.execute("SELECT dp.protect('orders')")
            for column, lo, hi in (("created", "'2021-01-01'", "'2021-12-31'"),
                                   ("placed", "'2021-01-01 00:00+00'", "'2021-12-31 23:00+00'"),
                                   ("age", "0", "99"), ("score", "0", "1")):
                c.execute(f"SELECT dp.set_bounds('orders', '{column}', {lo}, {hi})")
            c.execute("SELECT dp.grant_budget('bench_bi', 'orders', 1e9, 1e-3)")
        print(f"| shape ({args.rows} rows) | native ms | DP (plain SQL) ms | ratio |")
        print("|---|---|---|---|")
        k = 0
        with pg.connect("bench") as owner, pg.connect("bench", user="bench_bi") as bi:
            bi.execute("SET TimeZone = 'Europe/Paris'")
            owner.execute("SET TimeZone = 'Europe/Paris'")
            for name, shape in SHAPES.items():
                times = {"native": [], "dp": []}
                for run in range(args.runs + 1):
                    k += 1
                    order = (("native", owner), ("dp", bi)) if run % 2 else (("dp", bi), ("native", owner))
                    for label, conn in order:
                        t = timed(conn, shape.format(k=-k))
                        if run:                     # run 0 warms up
                            times[label].append(t)
                nat, dp = statistics.median(times["native"]), statistics.median(times["dp"])
                print(f"| {name} | {nat * 1000:.0f} | {dp * 1000:.0f} | {dp / nat:.2f} |", flush=True)
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
