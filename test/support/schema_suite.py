"""A schema-and-constraint suite for synthesis: generated schemas that have what real databases
have and the tuned data sets do not (used by test/integration/test_synthesis_suite.py, small, and by
bench/suite.py, full size; docs/synthesis.md "Synthesizing a schema").

- ``store``: customers -> orders -> payments, payments partitioned by quarter with their foreign
  keys declared on the partitions, naming both their order and their customer (two paths that
  must agree); returns of orders whose returner may be someone else (two paths that may
  legitimately differ, a nullable key); a link table order_tag; orders per customer heavy-tailed
  and depending on the customer's segment; payments and returns dated after their order;
  ``last_update`` audit columns far from the data's dates; public vocabularies (country,
  shipper, tag); no max_rows_per_unit declared on the payments, returns and tags.
- ``sales``: a classic sales schema: customers keyed by a varchar(5) code, orders, order lines
  keyed (order, product), products and shippers declared public (two of six shippers unused),
  employees with names, phones and birth dates neither protected nor declared.
- ``tax``: one table with six hard denial constraints (zip -> city, zip -> state, area code ->
  state, two conditional ones within a state, and "within a state, a higher salary never has a
  lower rate"), salaries on a grid of 5,000.

Data are drawn in SQL with a fixed seed (test data, not released values).
"""

from __future__ import annotations

from datasets import duckdb_extension, generated_duckdb

STATES = ("CA", "NY", "TX", "WA", "IL", "FL", "OH", "GA")


def store(conn, customers: int = 2000, schema: str = "store", seed: float = 0.11) -> dict:
    s = schema
    conn.execute(f"CREATE SCHEMA {s}")
    conn.execute("SELECT setseed(%s)", (seed,))
    conn.execute(f"CREATE TABLE {s}.country (code char(2) PRIMARY KEY, name text NOT NULL)")
    conn.execute(f"INSERT INTO {s}.country VALUES ('us', 'United States'), ('de', 'Germany'), ('fr', 'France'), "
                 "('jp', 'Japan'), ('br', 'Brazil')")
    conn.execute(f"CREATE TABLE {s}.shipper (shipper_id int PRIMARY KEY, company text NOT NULL)")
    conn.execute(f"INSERT INTO {s}.shipper VALUES (1, 'Speedy'), (2, 'United'), (3, 'Federal')")
    conn.execute(f"CREATE TABLE {s}.tag (tag_id int PRIMARY KEY, label text NOT NULL)")
    conn.execute(f"INSERT INTO {s}.tag SELECT g, 'tag ' || g FROM generate_series(1, 8) g")
    conn.execute(f"""CREATE TABLE {s}.customers (customer_id int PRIMARY KEY,
        segment text NOT NULL CHECK (segment IN ('consumer', 'business', 'vip')),
        country char(2) NOT NULL REFERENCES {s}.country, signup date NOT NULL,
        last_update timestamp NOT NULL DEFAULT now())""")
    conn.execute(f"""INSERT INTO {s}.customers SELECT g,
        CASE WHEN r < 0.7 THEN 'consumer' WHEN r < 0.95 THEN 'business' ELSE 'vip' END,
        (ARRAY['us','us','us','de','fr','jp','br'])[1 + (g * 7) % 7],
        DATE '2020-01-01' + (g * 37) % 1000, TIMESTAMP '2025-06-01' + (g % 97) * interval '1 hour'
        FROM (SELECT g, random() AS r FROM generate_series(1, {customers}) g) x""")
    # orders per customer: heavy-tailed, by segment (consumer 1-3, business 2-12, vip Zipf-like up to 40)
    conn.execute(f"""CREATE TABLE {s}.orders (order_id int PRIMARY KEY,
        customer_id int NOT NULL REFERENCES {s}.customers, order_date date NOT NULL,
        status text NOT NULL CHECK (status IN ('open', 'shipped', 'returned')),
        shipper_id int REFERENCES {s}.shipper, amount numeric(10,2) NOT NULL,
        last_update timestamp NOT NULL DEFAULT now())""")
    conn.execute(f"""INSERT INTO {s}.orders SELECT row_number() OVER (), c.customer_id,
        DATE '2023-01-01' + floor(random() * 700)::int,
        CASE WHEN random() < 0.2 THEN 'open' WHEN random() < 0.9 THEN 'shipped' ELSE 'returned' END,
        CASE WHEN random() < 0.15 THEN NULL ELSE 1 + floor(random() * 3)::int END,
        round((CASE c.segment WHEN 'vip' THEN 400 WHEN 'business' THEN 150 ELSE 30 END
               * (0.5 + random()))::numeric, 2),
        TIMESTAMP '2025-06-01' + floor(random() * 1000) * interval '1 minute'
        FROM {s}.customers c, LATERAL generate_series(1, CASE c.segment
            WHEN 'consumer' THEN 1 + floor(random() * 3)::int
            WHEN 'business' THEN 2 + floor(random() * 11)::int
            ELSE least(40, floor(4 / power(random() + 0.01, 0.8))::int) END) i""")
    # payments: partitioned by quarter, keys declared on the partitions; 1 payment, 2-3 for large orders
    conn.execute(f"""CREATE TABLE {s}.payments (payment_id int NOT NULL, order_id int NOT NULL,
        customer_id int NOT NULL, paid_on date NOT NULL, amount numeric(10,2) NOT NULL,
        method text NOT NULL CHECK (method IN ('card', 'cash', 'transfer')),
        last_update timestamp NOT NULL DEFAULT now()) PARTITION BY RANGE (paid_on)""")
    for q in range(10):
        y, m = 2023 + q // 4, 1 + 3 * (q % 4)
        conn.execute(f"CREATE TABLE {s}.payments_{q} PARTITION OF {s}.payments FOR VALUES FROM "
                     f"('{y}-{m:02d}-01') TO (DATE '{y}-{m:02d}-01' + interval '3 months')")
        conn.execute(f"ALTER TABLE {s}.payments_{q} ADD PRIMARY KEY (payment_id), "
                     f"ADD FOREIGN KEY (order_id) REFERENCES {s}.orders, "
                     f"ADD FOREIGN KEY (customer_id) REFERENCES {s}.customers")
    conn.execute(f"""INSERT INTO {s}.payments SELECT row_number() OVER (), o.order_id, o.customer_id,
        o.order_date + floor(random() * 10)::int, round(o.amount / k, 2),
        CASE WHEN o.amount > 300 THEN 'transfer' WHEN random() < 0.7 THEN 'card' ELSE 'cash' END,
        TIMESTAMP '2025-06-01' + floor(random() * 1000) * interval '1 minute'
        FROM {s}.orders o, LATERAL (SELECT CASE WHEN o.amount > 300 THEN 3 WHEN o.amount > 100 THEN 2 ELSE 1 END) n(k),
        LATERAL generate_series(1, n.k) i""")
    # returns: of returned orders, 5..40 days after; 20% returned by another customer (a gift), some unknown
    conn.execute(f"""CREATE TABLE {s}.returns (return_id int PRIMARY KEY,
        order_id int NOT NULL REFERENCES {s}.orders, returned_on date NOT NULL,
        returned_by int REFERENCES {s}.customers,
        reason text NOT NULL CHECK (reason IN ('damaged', 'late', 'unwanted')))""")
    conn.execute(f"""INSERT INTO {s}.returns SELECT row_number() OVER (), o.order_id,
        o.order_date + 5 + floor(random() * 36)::int,
        CASE WHEN r < 0.75 THEN o.customer_id WHEN r < 0.95 THEN 1 + floor(random() * {customers})::int END,
        CASE WHEN o.shipper_id = 3 THEN 'late' WHEN random() < 0.5 THEN 'damaged' ELSE 'unwanted' END
        FROM (SELECT o.*, random() AS r FROM {s}.orders o WHERE o.status = 'returned') o""")
    # a link table: 0-3 tags per order
    conn.execute(f"""CREATE TABLE {s}.order_tag (order_id int NOT NULL REFERENCES {s}.orders,
        tag_id int NOT NULL REFERENCES {s}.tag, PRIMARY KEY (order_id, tag_id))""")
    conn.execute(f"""INSERT INTO {s}.order_tag SELECT DISTINCT o.order_id, 1 + floor(random() * 8)::int
        FROM {s}.orders o, LATERAL generate_series(1, floor(random() * 4 + 0 * o.order_id)::int) i""")
    for t in ("country", "shipper", "tag"):
        conn.execute(f"SELECT dp.declare_public('{s}.{t}')")
    conn.execute(f"SELECT dp.protect('{s}.customers', dataset => '{s}', privacy_unit => 'customer_id')")
    conn.execute(f"SELECT dp.protect('{s}.orders', dataset => '{s}', max_rows_per_unit => 40)")
    # no max_rows_per_unit: fitted with DP.  A row naming the unit twice must declare all references
    # but one not personal (docs/dba.md): a return's returner may be someone else (the DBA's
    # declaration: the suite models the second path either way).  A payment's order is its own
    # customer's (its keys, declared on the partitions, count as the table's).
    for t, np_ in (("payments", "order_id"), ("returns", "returned_by"), ("order_tag", None)):
        conn.execute(f"SELECT dp.protect('{s}.{t}', dataset => '{s}'"
                     + (f", not_personal => ARRAY['{np_}'])" if np_ else ")"))
    conn.execute(f"SELECT dp.set_bounds('{s}.orders', 'amount', 0, 1000)")
    conn.execute("ANALYZE")
    return {t: conn.execute(f"SELECT count(*) FROM {s}.{t}").fetchone()[0]
            for t in ("customers", "orders", "payments", "returns", "order_tag")}


def sales(conn, customers: int = 300, schema: str = "sales", seed: float = 0.23) -> dict:
    s = schema
    conn.execute(f"CREATE SCHEMA {s}")
    conn.execute("SELECT setseed(%s)", (seed,))
    conn.execute(f"CREATE TABLE {s}.shippers (shipper_id int PRIMARY KEY, company_name text NOT NULL)")
    conn.execute(f"INSERT INTO {s}.shippers SELECT g, 'Shipper ' || g FROM generate_series(1, 6) g")
    conn.execute(f"""CREATE TABLE {s}.products (product_id int PRIMARY KEY, product_name text NOT NULL,
        category text NOT NULL, unit_price numeric(10,2) NOT NULL)""")
    conn.execute(f"""INSERT INTO {s}.products SELECT g, 'Product ' || g, (ARRAY['drinks','food','sweets','dairy'])[1 + g % 4],
        round((5 + (g * 13) % 90)::numeric, 2) FROM generate_series(1, 77) g""")
    conn.execute(f"""CREATE TABLE {s}.employees (employee_id int PRIMARY KEY, first_name text NOT NULL,
        last_name text NOT NULL, home_phone text NOT NULL, birth_date date NOT NULL)""")
    conn.execute(f"""INSERT INTO {s}.employees SELECT g, 'Name' || g, 'Surname' || g, '(206) 555-' || lpad(g::text, 4, '0'),
        DATE '1960-01-01' + g * 1000 FROM generate_series(1, 9) g""")
    conn.execute(f"""CREATE TABLE {s}.customers (customer_id varchar(5) PRIMARY KEY, company_name text NOT NULL,
        country text NOT NULL CHECK (country IN ('Germany', 'USA', 'France', 'Brazil', 'UK')))""")
    conn.execute(f"""INSERT INTO {s}.customers SELECT upper(substr(md5(g::text), 1, 5)), 'Company ' || g,
        (ARRAY['Germany','USA','USA','France','Brazil','UK'])[1 + g % 6] FROM generate_series(1, {customers}) g
        ON CONFLICT DO NOTHING""")
    conn.execute(f"""CREATE TABLE {s}.orders (order_id int PRIMARY KEY,
        customer_id varchar(5) NOT NULL REFERENCES {s}.customers, employee_id int REFERENCES {s}.employees,
        order_date date NOT NULL, shipped_date date, ship_via int NOT NULL REFERENCES {s}.shippers,
        freight numeric(10,2) NOT NULL)""")
    # shippers 1-4 only; the ship_via follows the customer's country; 1..20 orders a customer
    conn.execute(f"""INSERT INTO {s}.orders SELECT 10000 + row_number() OVER (), c.customer_id, 1 + floor(random() * 9)::int,
        d, CASE WHEN random() < 0.95 THEN d + 1 + floor(random() * 20)::int END,
        CASE c.country WHEN 'USA' THEN 1 WHEN 'Germany' THEN 2 WHEN 'UK' THEN 3 ELSE 1 + floor(random() * 4)::int END,
        round((random() * 200)::numeric, 2)
        FROM {s}.customers c, LATERAL generate_series(1, 1 + floor(power(random() + 0 * length(c.customer_id), 2)
                                                                      * 20)::int) i,
        LATERAL (SELECT DATE '1996-07-04' + floor(random() * 670 + 0 * i)::int) x(d)""")
    conn.execute(f"""CREATE TABLE {s}.order_lines (order_id int NOT NULL REFERENCES {s}.orders,
        product_id int NOT NULL REFERENCES {s}.products, unit_price numeric(10,2) NOT NULL,
        quantity smallint NOT NULL, discount real NOT NULL, PRIMARY KEY (order_id, product_id))""")
    conn.execute(f"""INSERT INTO {s}.order_lines SELECT DISTINCT ON (o.order_id, p) o.order_id, p,
        round((5 + (p * 13) % 90)::numeric, 2), 1 + floor(random() * 30)::int,
        (ARRAY[0, 0, 0, 0.05, 0.1, 0.2])[1 + floor(random() * 6)::int]
        FROM {s}.orders o, LATERAL generate_series(1, 1 + floor(random() * 4 + 0 * o.order_id)::int) i,
        LATERAL (SELECT 1 + floor(random() * 77 + 0 * i)::int) x(p)""")
    for t in ("shippers", "products"):
        conn.execute(f"SELECT dp.declare_public('{s}.{t}')")
    conn.execute(f"SELECT dp.protect('{s}.customers', dataset => '{s}', privacy_unit => 'customer_id')")
    conn.execute(f"SELECT dp.protect('{s}.orders', dataset => '{s}', max_rows_per_unit => 20)")
    conn.execute(f"SELECT dp.protect('{s}.order_lines', dataset => '{s}')")
    conn.execute(f"SELECT dp.set_bounds('{s}.orders', 'freight', 0, 200)")
    conn.execute(f"SELECT dp.set_bounds('{s}.order_lines', 'quantity', 1, 30)")
    conn.execute(f"SELECT dp.set_bounds('{s}.order_lines', 'discount', 0, 0.2)")
    conn.execute("ANALYZE")
    return {t: conn.execute(f"SELECT count(*) FROM {s}.{t}").fetchone()[0] for t in ("customers", "orders", "order_lines")}


TAX_DCS = (
    "t1&t2&EQ(t1.zip,t2.zip)&IQ(t1.city,t2.city)",
    "t1&t2&EQ(t1.zip,t2.zip)&IQ(t1.state,t2.state)",
    "t1&t2&EQ(t1.area_code,t2.area_code)&IQ(t1.state,t2.state)",
    "t1&t2&EQ(t1.state,t2.state)&EQ(t1.marital,t2.marital)&IQ(t1.single_exemp,t2.single_exemp)",
    "t1&t2&EQ(t1.state,t2.state)&EQ(t1.has_child,t2.has_child)&IQ(t1.child_exemp,t2.child_exemp)",
    "t1&t2&EQ(t1.state,t2.state)&GT(t1.salary,t2.salary)&LT(t1.rate,t2.rate)",
)


def tax(conn, rows: int = 20000, table: str = "tax", constraints: bool = True, grid: str = "bounds",
        seed: float = 0.37) -> int:
    """The tax table; grid: 'bounds' (salary with declared bounds only) or 'values' (the grid of
    salaries declared as public values)."""
    conn.execute("SELECT setseed(%s)", (seed,))
    conn.execute(f"""CREATE TABLE {table} (id int PRIMARY KEY, state text NOT NULL, zip text NOT NULL,
        city text NOT NULL, area_code text NOT NULL, marital text NOT NULL CHECK (marital IN ('S', 'M')),
        has_child boolean NOT NULL, salary int NOT NULL, rate int NOT NULL,
        single_exemp int NOT NULL, child_exemp int NOT NULL)""")
    states = "ARRAY[" + ",".join(f"'{x}'" for x in STATES) + "]"
    conn.execute(f"""INSERT INTO {table} SELECT g, st, z, 'city' || (zi / 3), 'ac' || (si * 4 + zi % 4),
        m, hc, sal,
        -- within a state the rate never falls as the salary rises (steps by state)
        least(45, (sal / 20000) + si), 
        CASE WHEN m = 'S' THEN 1000 + 500 * si ELSE 0 END, CASE WHEN hc THEN 2000 + 250 * si ELSE 0 END
        FROM (SELECT g, si, ({states})[1 + si] AS st, 'z' || (si * 25 + zi) AS z, zi,
                     CASE WHEN random() < 0.45 THEN 'S' ELSE 'M' END AS m, random() < 0.4 AS hc,
                     5000 * least(40, 2 + floor(-ln(random() + 1e-9) * (4 + si))::int) AS sal
              FROM (SELECT g, floor(power(random(), 1.5) * {len(STATES)})::int AS si,
                           floor(random() * 25)::int AS zi FROM generate_series(1, {rows}) g) a) b""")
    conn.execute(f"SELECT dp.protect('{table}')")
    conn.execute(f"SELECT dp.set_public_values('{table}', 'state', {states})")
    conn.execute(f"SELECT dp.set_public_values('{table}', 'zip', ARRAY(SELECT 'z' || g FROM generate_series(0, "
                 f"{len(STATES) * 25 - 1}) g))")
    conn.execute(f"SELECT dp.set_public_values('{table}', 'city', ARRAY(SELECT 'city' || g FROM generate_series(0, 8) g))")
    conn.execute(f"SELECT dp.set_public_values('{table}', 'area_code', ARRAY(SELECT 'ac' || g FROM generate_series(0, "
                 f"{len(STATES) * 4 - 1}) g))")
    conn.execute(f"SELECT dp.set_bounds('{table}', 'rate', 0, 45)")
    conn.execute(f"SELECT dp.set_bounds('{table}', 'single_exemp', 0, 5000)")
    conn.execute(f"SELECT dp.set_bounds('{table}', 'child_exemp', 0, 5000)")
    if grid == "values":
        conn.execute(f"SELECT dp.set_public_values('{table}', 'salary', ARRAY(SELECT (5000 * g)::text "
                     "FROM generate_series(2, 40) g))")
    else:
        conn.execute(f"SELECT dp.set_bounds('{table}', 'salary', 10000, 200000)")
    if constraints:
        for d in TAX_DCS:
            conn.execute("SELECT dp.add_constraint(%s, %s)", (table, d))
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def tpcds_extension():
    """Path of the TPC-DS extension file the duckdb-ext-tpcds wheel ships, or None."""
    return duckdb_extension("tpcds")


# TPC-DS (a star schema with dates everywhere, as surrogate keys into date_dim): the customer and
# three of its fact tables protected, the dimensions they name declared public.  Each table keeps
# the columns listed (keys, the dimensions' foreign keys, a few measures): the facts' other
# dimension keys (times, demographics at the sale, addresses) are left out.
TPCDS_PUBLIC = {
    "date_dim": "d_date_sk bigint PRIMARY KEY, d_date date, d_year int, d_moy int, d_dow int",
    "item": "i_item_sk bigint PRIMARY KEY, i_category text, i_class text, i_current_price numeric(7,2)",
    "store": "s_store_sk bigint PRIMARY KEY, s_store_name text, s_state text",
    "promotion": "p_promo_sk bigint PRIMARY KEY, p_channel_tv text",
    "reason": "r_reason_sk bigint PRIMARY KEY, r_reason_desc text",
    "customer_demographics": "cd_demo_sk bigint PRIMARY KEY, cd_gender text, cd_marital_status text, "
                             "cd_education_status text, cd_credit_rating text",
    "household_demographics": "hd_demo_sk bigint PRIMARY KEY, hd_buy_potential text, hd_dep_count int",
}
TPCDS_PROTECTED = {
    "customer": ("c_customer_sk bigint PRIMARY KEY, c_customer_id char(16) NOT NULL, "
                 "c_current_cdemo_sk bigint REFERENCES {s}.customer_demographics, "
                 "c_current_hdemo_sk bigint REFERENCES {s}.household_demographics, "
                 "c_first_sales_date_sk bigint REFERENCES {s}.date_dim, c_preferred_cust_flag char(1), "
                 "c_birth_year int, c_birth_country text",
                 "c_customer_sk IS NOT NULL"),
    "store_sales": ("ss_sold_date_sk bigint REFERENCES {s}.date_dim, ss_item_sk bigint NOT NULL REFERENCES {s}.item, "
                    "ss_customer_sk bigint NOT NULL REFERENCES {s}.customer, ss_store_sk bigint REFERENCES {s}.store, "
                    "ss_promo_sk bigint REFERENCES {s}.promotion, ss_ticket_number bigint NOT NULL, ss_quantity int, "
                    "ss_sales_price numeric(7,2), ss_net_profit numeric(7,2), PRIMARY KEY (ss_item_sk, ss_ticket_number)",
                    "ss_customer_sk IS NOT NULL"),
    "store_returns": ("sr_returned_date_sk bigint REFERENCES {s}.date_dim, sr_item_sk bigint NOT NULL, "
                      "sr_ticket_number bigint NOT NULL, sr_customer_sk bigint REFERENCES {s}.customer, "
                      "sr_reason_sk bigint REFERENCES {s}.reason, sr_return_quantity int, sr_return_amt numeric(7,2), "
                      "PRIMARY KEY (sr_item_sk, sr_ticket_number), "
                      "FOREIGN KEY (sr_item_sk, sr_ticket_number) REFERENCES {s}.store_sales",
                      "(sr_item_sk, sr_ticket_number) IN (SELECT ss_item_sk, ss_ticket_number FROM store_sales "
                      "WHERE ss_customer_sk IS NOT NULL)"),
    "web_sales": ("ws_sold_date_sk bigint REFERENCES {s}.date_dim, ws_ship_date_sk bigint REFERENCES {s}.date_dim, "
                  "ws_item_sk bigint NOT NULL REFERENCES {s}.item, "
                  "ws_bill_customer_sk bigint NOT NULL REFERENCES {s}.customer, ws_order_number bigint NOT NULL, "
                  "ws_quantity int, ws_sales_price numeric(7,2), ws_net_profit numeric(7,2), "
                  "PRIMARY KEY (ws_item_sk, ws_order_number)",
                  "ws_bill_customer_sk IS NOT NULL"),
}


def tpcds(conn, sf: float = 0.01, schema: str = "tpcds") -> dict:
    """TPC-DS at scale factor sf, generated now with DuckDB's TPC-DS extension (dsdgen), into schema
    `schema` (see TPCDS_PUBLIC and TPCDS_PROTECTED): the customer is the privacy unit; store
    sales, their returns (keyed by the sale: a second path to the customer, which may differ)
    and web sales are its children.  Returns {protected table: rows}; raises RuntimeError when
    duckdb or the extension is missing."""
    duck = generated_duckdb("tpcds", f"dsdgen(sf={float(sf)})")
    s = schema
    conn.execute(f"CREATE SCHEMA {s}")
    for table, cols in list(TPCDS_PUBLIC.items()) + [(t, c) for t, (c, _) in TPCDS_PROTECTED.items()]:
        conn.execute(f"CREATE TABLE {s}.{table} ({cols.format(s=s)})")
        names = [r[0] for r in conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                                            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (f"{s}.{table}",))]
        where = TPCDS_PROTECTED[table][1] if table in TPCDS_PROTECTED else "true"
        rows = duck.execute(f"SELECT {', '.join(names)} FROM {table} WHERE {where}").fetchall()
        with conn.cursor().copy(f"COPY {s}.{table} ({', '.join(names)}) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)
    duck.close()
    conn.execute("ANALYZE")
    for t in TPCDS_PUBLIC:
        conn.execute(f"SELECT dp.declare_public('{s}.{t}', confirm => true)")
    conn.execute(f"SELECT dp.protect('{s}.customer', dataset => '{s}', privacy_unit => 'c_customer_sk')")
    for t in ("store_sales", "web_sales", "store_returns"):       # rows per customer fitted with DP
        # a return names its customer and its sale (whose customer may differ): the DBA declares
        # the returner not personal (a row is bounded for one unit only, docs/dba.md)
        conn.execute(f"SELECT dp.protect('{s}.{t}', dataset => '{s}'"
                     + (", not_personal => ARRAY['sr_customer_sk'])" if t == "store_returns" else ")"))
    for t, column, lo, hi in (("store_sales", "ss_quantity", 1, 100), ("web_sales", "ws_quantity", 1, 100),
                              ("store_returns", "sr_return_quantity", 1, 100), ("customer", "c_birth_year", 1900, 2010)):
        conn.execute("SELECT dp.set_bounds(%s, %s, %s, %s)", (f"{s}.{t}", column, lo, hi))
    return {t: conn.execute(f"SELECT count(*) FROM {s}.{t}").fetchone()[0] for t in TPCDS_PROTECTED}
