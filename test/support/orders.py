"""An `orders` table as a shop's dashboard sees it (generated, reproducible), and its true answers.

20,000 customers (the privacy unit), each with exactly 10 orders in 10 distinct months of
2024-2025 (a random day 1..28 of each), so the true monthly series is flat (about 8,333 a month)
and every customer has one row per month.  Categories are skewed (the alphabetically late ones
are the most frequent) and 10% of orders have none (NULL); each customer has one region;
channel, amount (1..500) are per order.  Key-order bounding breaks every chart on it (the
earliest months, the first categories win); the truth is computed by the superuser.
"""

CUSTOMERS = 20_000
ORDERS_PER_CUSTOMER = 10
MONTHS = 24
CATEGORIES = [("books", 4), ("clothing", 6), ("electronics", 8), ("garden", 10), ("grocery", 12),
              ("home", 14), ("sports", 16), ("toys", 20)]           # percent; NULL: the other 10
REGIONS = ["east", "north", "south", "west"]
CHANNELS = ["phone", "store", "web"]


def create(conn, table="orders", customers=CUSTOMERS, seed=0.42):
    """CREATE TABLE <table> and fill it (deterministic for a seed); not protected yet."""
    cuts, acc = [], 0
    for name, pct in CATEGORIES:
        acc += pct
        cuts.append(f"WHEN u < {acc / 100} THEN '{name}'")
    category = f"CASE {' '.join(cuts)} ELSE NULL END"
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"""CREATE TABLE {table} (order_id int PRIMARY KEY, customer_id int NOT NULL, region text NOT NULL,
                     channel text NOT NULL, category text, order_date date NOT NULL, amount numeric(8,2) NOT NULL)""")
    conn.execute("SELECT setseed(%s)", (seed,))
    conn.execute(f"""
        INSERT INTO {table}
        SELECT row_number() OVER (ORDER BY customer_id, month)::int, customer_id, region,
               (ARRAY{CHANNELS!r})[1 + floor(random() * 3)::int],
               (SELECT {category} FROM (SELECT random() + 0 * month AS u) r),
               (DATE '2024-01-01' + make_interval(months => month))::date + floor(random() * 28)::int,
               round((1 + random() * 499)::numeric, 2)
        FROM (SELECT c.customer_id, c.region, m.month,
                     row_number() OVER (PARTITION BY c.customer_id ORDER BY random()) AS pick
              FROM (SELECT id AS customer_id, (ARRAY{REGIONS!r})[1 + (id % 4)] AS region
                    FROM generate_series(1, {customers}) id) c
              CROSS JOIN generate_series(0, {MONTHS - 1}) m(month)) x
        WHERE pick <= {ORDERS_PER_CUSTOMER}""")
    conn.execute(f"ANALYZE {table}")
    return table


def protect(conn, table="orders", dataset="shop", max_rows=None, max_groups=None):
    """Protect it as the issue's DBA did: unit customer_id, date and amount bounds, public values.
    max_rows / max_groups None: the dataset's bounds are not fixed (chosen per question)."""
    fixed = ""
    if max_rows is not None:
        fixed += f", max_rows_per_unit => {max_rows}"
    if max_groups is not None:
        fixed += f", max_groups_per_unit => {max_groups}"
    conn.execute(f"SELECT dp.protect('{table}', dataset => '{dataset}', privacy_unit => 'customer_id'{fixed})")
    conn.execute(f"SELECT dp.set_bounds('{table}', 'order_date', DATE '2024-01-01', DATE '2026-01-01')")
    conn.execute(f"SELECT dp.set_bounds('{table}', 'amount', 0, 500)")
    conn.execute(f"SELECT dp.set_public_values('{table}', 'category', ARRAY{[c for c, _ in CATEGORIES]!r})")
    conn.execute(f"SELECT dp.set_public_values('{table}', 'region', ARRAY{REGIONS!r})")
    conn.execute(f"SELECT dp.set_public_values('{table}', 'channel', ARRAY{CHANNELS!r})")


def truth(conn, sql):
    """The exact answer of a statement, as the superuser: {key tuple: values tuple}."""
    rows = conn.execute(sql).fetchall()
    width = len(rows[0]) if rows else 0
    return {tuple(r[:width - 1]) if width > 1 else (): r[width - 1] for r in rows}
