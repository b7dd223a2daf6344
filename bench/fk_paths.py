#!/usr/bin/python3
"""Benchmark: questions on a table that reaches its privacy unit through foreign keys, against native.

    /usr/bin/python3 bench/fk_paths.py [--rows 1000000] [--runs 3]

Starts a throwaway server (test/support/pgserver.py) and loads customer (rows / 20), invoice
(rows / 5, customer_id) and line (--rows rows, invoice_id, a genre with a CHECK IN list,
a price), protected as one dataset: line reaches the unit customer_id through
line.invoice_id -> invoice (max_rows_per_unit 20).  Each shape is asked as the owner
(native, no bounding) and as a restricted role as plain SQL through the hook, alternated,
after one untimed warm-up each, next to line_direct (the same lines with customer_id as a
column of their own, protected alone: what the path adds); every DP statement is a new text (`WHERE line_id > -k`
keeps every row), so the answer cache serves none.  Three DP columns:

* steady state: the bounded copy (line joined along the path, ranked per customer) is
  built; queries filter it;
* the first question after a write (the copy rebuilt, once per data version);
* bounded_copies = 0: every question joins along the path and ranks per customer itself.

Prints the median client wall time of each and the ratios (pg_dp must be installed).
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test", "support"))


from bi_keys import bench_server, timed  # noqa: E402  (bench/ is sys.path[0]): client seconds until every row is fetched

SHAPES = {
    "GROUP BY genre, count": "SELECT genre, count(*) FROM {t} WHERE line_id > {k} GROUP BY genre",
    "count, avg(price)": "SELECT count(*), avg(price) FROM {t} WHERE line_id > {k}",
}
# the same lines with the unit as a column of their own (one table, its own dataset): what the path adds
TABLES = {"path": "line", "unit column": "line_direct"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    customers, invoices = args.rows // 20, args.rows // 5
    pg = bench_server()
    try:
        with pg.connect("bench") as c:
            c.execute("CREATE TABLE customer (customer_id int PRIMARY KEY, country text NOT NULL)")
            c.execute(f"INSERT INTO customer SELECT g, 'c' || g % 20 FROM generate_series(1, {customers}) g")
            c.execute("CREATE TABLE invoice (invoice_id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customer)")
            c.execute(f"INSERT INTO invoice SELECT g, 1 + g % {customers} FROM generate_series(1, {invoices}) g")
            c.execute("CREATE TABLE line (line_id int PRIMARY KEY, invoice_id int NOT NULL REFERENCES invoice, "
                      "genre text NOT NULL CHECK (genre IN ('rock', 'jazz', 'pop', 'metal', 'blues')), price int NOT NULL)")
            c.execute(f"INSERT INTO line SELECT g, 1 + g % {invoices}, (ARRAY['rock','jazz','pop','metal','blues'])[1 + g % 5], "
                      f"g % 100 FROM generate_series(1, {args.rows}) g")
            c.execute("CREATE TABLE line_direct AS SELECT l.*, i.customer_id FROM line l JOIN invoice i USING (invoice_id)")
            for t in ("customer", "invoice", "line", "line_direct"):
                c.execute(f"VACUUM (FREEZE, ANALYZE) {t}")
            c.execute("CREATE ROLE bench_bi LOGIN")
            c.execute("SELECT dp.protect('customer', dataset => 'shop', privacy_unit => 'customer_id', "
                      "max_groups_per_unit => 5)")
            c.execute("SELECT dp.protect('invoice', dataset => 'shop', max_rows_per_unit => 4)")
            c.execute("SELECT dp.protect('line', dataset => 'shop', max_rows_per_unit => 20)")
            c.execute("SELECT dp.set_bounds('line', 'price', 0, 99)")
            c.execute("SELECT dp.grant_budget('bench_bi', 'shop', 1e9, 1e-3)")
            c.execute("SELECT dp.protect('line_direct', dataset => 'direct', privacy_unit => 'customer_id', "
                      "max_rows_per_unit => 20, max_groups_per_unit => 5)")
            c.execute("SELECT dp.set_bounds('line_direct', 'price', 0, 99)")
            c.execute("SELECT dp.grant_budget('bench_bi', 'direct', 1e9, 1e-3)")
        print(f"| shape ({args.rows} lines) | table | native ms | DP steady ms | ratio "
              "| DP after a write ms | ratio | DP bounded_copies=0 ms | ratio |")
        print("|---|---|---|---|---|---|---|---|---|")
        k = 0
        with pg.connect("bench") as owner, pg.connect("bench", user="bench_bi") as bi:
            for (name, template), (kind, table) in ((a, b) for a in SHAPES.items() for b in TABLES.items()):
                shape = template.replace("{t}", table)
                times = {"native": [], "dp": [], "rebuild": [], "per_query": []}
                for run in range(args.runs + 1):
                    k += 1
                    order = (("native", owner), ("dp", bi)) if run % 2 else (("dp", bi), ("native", owner))
                    for label, conn in order:
                        t = timed(conn, shape.format(k=-k))
                        if run:                     # run 0 warms up (and builds the copy)
                            times[label].append(t)
                for run in range(args.runs):
                    owner.execute(f"UPDATE {'invoice' if kind == 'path' else table} SET customer_id = customer_id "
                                  "WHERE invoice_id = 1")  # a write (on the path: to the middle table)
                    k += 1
                    times["rebuild"].append(timed(bi, shape.format(k=-k)))
                owner.execute("SELECT dp.set_setting('bounded_copies', '0')")
                for run in range(args.runs):
                    k += 1
                    times["per_query"].append(timed(bi, shape.format(k=-k)))
                owner.execute("SELECT dp.set_setting('bounded_copies', '4')")
                nat = statistics.median(times["native"])
                cells = [f"{nat * 1000:.0f}"]
                for label in ("dp", "rebuild", "per_query"):
                    m = statistics.median(times[label])
                    cells += [f"{m * 1000:.0f}", f"{m / nat:.2f}"]
                print(f"| {name} | {kind} | " + " | ".join(cells) + " |", flush=True)
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
