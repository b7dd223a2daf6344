"""Load the shared public data sets (../shared/data) into a database, protected by pg_dp.

Used by the integration tests and by bench/synthesis.py.  Each loader takes an
autocommit psycopg connection of a superuser, creates the table in schema public,
copies the CSV in, protects the table, declares its public metadata (bounds,
value sets, denial constraints) and returns the table's name.
"""

import contextlib
import csv
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")


def path(*parts):
    return os.path.join(SHARED_DATA, *parts)


def _copy(conn, table, text):
    with conn.cursor().copy(f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)") as cp:
        cp.write(text)


def _dcs(conn, table, ic_file, rename=lambda s: s):
    for line in open(ic_file):
        line = line.strip()
        if line and not line.startswith("#"):
            conn.execute("SELECT dp.add_constraint(%s, %s)", (table, rename(line)))


def adult_pgm(conn, table="adult_pgm"):
    """private-pgm's Adult: 48,842 rows x 14 integer codes; the domain file gives public bounds."""
    domain = json.load(open(path("adult_pgm", "adult-domain.json")))
    names = {c: c.replace("-", "_").replace(">", "_").lower() for c in domain}
    conn.execute(f"CREATE TABLE {table} (" + ", ".join(f"{names[c]} integer NOT NULL" for c in domain) + ")")
    with open(path("adult_pgm", "adult.csv")) as f:
        header = next(csv.reader(f))
        assert header == list(domain), header
        _copy(conn, table, ",".join(names[c] for c in header) + "\n" + f.read())
    conn.execute(f"SELECT dp.protect('{table}')")
    for c, size in domain.items():
        conn.execute("SELECT dp.set_bounds(%s, %s, 0, %s)", (table, names[c], size - 1))
    return table


ADULT_NUMERIC_BOUNDS = {"age": (17, 90), "fnlwgt": (0, 1500000), "education_num": (1, 16),
                        "capital_gain": (0, 100000), "capital_loss": (0, 5000), "hours_per_week": (1, 99)}


def kamino_adult(conn, table="adult", csv_file=None, public_values=True, numeric_bounds=True):
    """Kamino's Adult (UCI train split, 32,561 x 15, NULLs) with its 2 hard denial constraints.

    Numeric bounds are the documented UCI ranges.  With public_values, the category
    lists of the text columns are declared public (as MST and Kamino assume);
    without, dp_synthesize discovers them with DP partition selection.  Without
    numeric_bounds, the bounds of the numeric columns are estimated with DP too.
    """
    ddl = open(os.path.join(ROOT, "demo", "adult.sql")).read().split("\\set")[0].replace(
        "CREATE TABLE adult", f"CREATE TABLE {table}")
    conn.execute(ddl)
    with open(csv_file or path("kamino", "adult", "adult.csv")) as f:
        _copy(conn, table, f.read())
    conn.execute(f"SELECT dp.protect('{table}')")
    for c, (lo, hi) in ADULT_NUMERIC_BOUNDS.items() if numeric_bounds else ():
        conn.execute("SELECT dp.set_bounds(%s, %s, %s, %s)", (table, c, lo, hi))
    if public_values:
        _declare_text_values(conn, table)
    _dcs(conn, table, path("kamino", "adult", "adult.ic"), lambda s: s.replace("-", "_"))
    return table


TPCH_COLUMNS = [("c_custkey", "text"), ("c_nationkey", "text"), ("c_acctbal", "numeric(12,2)"),
                ("c_mktsegment", "text"), ("n_name", "text"), ("n_regionkey", "text"),
                ("o_orderpriority", "text"), ("o_totalprice", "numeric(12,2)"), ("o_orderstatus", "text")]


def kamino_tpch(conn, table="tpch_order"):
    """TPC-H customer x nation x orders (19,951 x 9) with 4 hard functional dependencies.

    TPC-H's specification publishes the nation, region, segment, priority and status
    domains and the ranges of account balance and total price; customer keys are ids.
    """
    conn.execute(f"CREATE TABLE {table} (" + ", ".join(f"{c} {t}" for c, t in TPCH_COLUMNS) + ")")
    with open(path("kamino", "tpch", "tpch_order.csv")) as f:
        _copy(conn, table, f.read())
    conn.execute(f"SELECT dp.protect('{table}')")
    conn.execute("SELECT dp.set_bounds(%s, 'c_acctbal', -1000, 10000)", (table,))
    conn.execute("SELECT dp.set_bounds(%s, 'o_totalprice', 0, 600000)", (table,))
    _declare_text_values(conn, table, skip=("c_custkey",))
    _dcs(conn, table, path("kamino", "tpch", "tpch_order.ic"))
    return table


def _declare_text_values(conn, table, skip=()):
    cols = [r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "AND atttypid = 'text'::regtype", (table,))]
    for c in cols:
        if c in skip:
            continue
        values = [r[0] for r in conn.execute(f"SELECT DISTINCT {c} FROM {table} WHERE {c} IS NOT NULL ORDER BY 1")]
        conn.execute("SELECT dp.set_public_values(%s, %s, %s)", (table, c, values))


MIXED_DDL = """
CREATE TYPE {table}_tier AS ENUM ('bronze', 'silver', 'gold', 'platinum');
CREATE TABLE {table} (
    id          bigint PRIMARY KEY,
    age         integer NOT NULL CHECK (age BETWEEN 18 AND 95),
    visits      bigint,
    balance     numeric(12,2) NOT NULL,
    score       double precision,
    region      text NOT NULL CHECK (region IN ('north', 'south', 'east', 'west')),
    segment     varchar(20),
    active      boolean NOT NULL,
    joined      date NOT NULL,
    last_seen   timestamp,
    tier        {table}_tier NOT NULL,
    plan        text NOT NULL,
    children    smallint CHECK (children >= 0),
    income      integer,
    referral    text,
    CHECK (visits IS NULL OR visits >= 0)
)"""


def mixed(conn, rows, table="mixed"):
    """A generated table of 15 columns of every common type, correlated, with NULLs.

    Values come from integer arithmetic on the row number (reproducible input data,
    no random()); the relations between columns give the model something to learn.
    """
    conn.execute(MIXED_DDL.format(table=table))
    conn.execute(f"""
        INSERT INTO {table}
        SELECT i,
               18 + (i * 7919 % 61) + (i % 17),
               CASE WHEN i % 13 = 0 THEN NULL ELSE (i * 104729 % 50) + (i % 7) * 3 END,
               round(((i * 31 % 1000) * 12.5 + (i % 17) * 100)::numeric, 2),
               CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 2654435761 % 1000) / 10.0 END,
               (ARRAY['north','south','east','west'])[1 + (i * 7 % 4)],
               CASE WHEN i % 9 = 0 THEN NULL ELSE (ARRAY['retail','corporate','public'])[1 + (i * 7 % 4) % 3] END,
               (i * 7 % 4) < 2,
               DATE '2015-01-01' + (i * 37 % 3000)::int,
               CASE WHEN i % 5 = 0 THEN NULL ELSE TIMESTAMP '2024-01-01' + ((i * 7907) % 31536000) * INTERVAL '1 second' END,
               (ARRAY['bronze','silver','gold','platinum']::{table}_tier[])[1 + least(3, (i * 31 % 1000) / 250)],
               (ARRAY['basic','plus','pro'])[1 + (18 + (i * 7919 % 61) + (i % 17)) % 3],
               CASE WHEN i % 8 = 0 THEN NULL ELSE ((i * 3 % 5))::smallint END,
               CASE WHEN i % 6 = 0 THEN NULL ELSE 20000 + (i * 31 % 1000) * 90 END,
               CASE WHEN i % 4 = 0 THEN NULL ELSE 'ref-' || (i * 48271 % 100000) END
        FROM generate_series(1::bigint, {int(rows)}) i""")
    conn.execute(f"ANALYZE {table}")
    conn.execute(f"SELECT dp.protect('{table}')")
    for c, lo, hi in (("age", 18, 95), ("visits", 0, 100), ("balance", 0, 15000), ("score", 0, 100),
                      ("children", 0, 10), ("income", 0, 120000)):
        conn.execute("SELECT dp.set_bounds(%s, %s, %s, %s)", (table, c, lo, hi))
    conn.execute("SELECT dp.set_public_values(%s, 'segment', ARRAY['retail','corporate','public'])", (table,))
    conn.execute("SELECT dp.set_public_values(%s, 'plan', ARRAY['basic','plus','pro'])", (table,))
    return table



GEO_ROWS = 30000
GEO_DCS = ("t1&t2&EQ(t1.zip,t2.zip)&IQ(t1.city,t2.city)", "t1&t2&EQ(t1.city,t2.city)&IQ(t1.state,t2.state)",
           "t1&t2&EQ(t1.state,t2.state)&EQ(t1.kind,t2.kind)&IQ(t1.tax,t2.tax)",
           "t1&t2&EQ(t1.g,t2.g)&GT(t1.x,t2.x)&LT(t1.y,t2.y)")


def geo(conn, table="geo", rows=GEO_ROWS):
    """A generated high-cardinality table: zip (20,000 declared values) -> city
    (2,000) -> state (50); (state, kind) -> tax; within each g, y never falls as x rises.
    All from integer arithmetic on the row number; the DCs hold in the data."""
    conn.execute(f"""CREATE TABLE {table} (zip text NOT NULL, city text NOT NULL, state text NOT NULL,
                    kind text NOT NULL, tax text NOT NULL, g integer NOT NULL, x integer NOT NULL,
                    y integer NOT NULL)""")
    conn.execute(f"""
        INSERT INTO {table}
        SELECT 'z' || z, 'c' || (z / 10), 's' || (z / 10 % 50), 'k' || (i % 4),
               't' || ((z / 10 % 50) * 4 + i % 4) % 9, i % 20, x, (i % 20) * 50 + x / 4
        FROM (SELECT i, (i * 7919) % 20000 AS z, (i * 104729) % 1000 AS x
              FROM generate_series(1::bigint, {int(rows)}) i) s""")
    conn.execute(f"SELECT dp.protect('{table}')")
    for column, values in (("zip", [f"z{k}" for k in range(20000)]), ("city", [f"c{k}" for k in range(2000)]),
                           ("state", [f"s{k}" for k in range(50)]), ("kind", [f"k{k}" for k in range(4)]),
                           ("tax", [f"t{k}" for k in range(9)])):
        conn.execute("SELECT dp.set_public_values(%s, %s, %s)", (table, column, values))
    for column, lo, hi in (("g", 0, 19), ("x", 0, 999), ("y", 0, 1250)):
        conn.execute("SELECT dp.set_bounds(%s, %s, %s, %s)", (table, column, lo, hi))
    for dc in GEO_DCS:
        conn.execute("SELECT dp.add_constraint(%s, %s)", (table, dc))
    return table


ZIPF_SEGMENTS = ("a", "b", "c", "d")
ZIPF_MAX_ORDERS = 20


def zipf_schema(conn, schema="zipf", customers=40000, seed=12):
    """A generated schema with heavy-tailed fan-out: customer -> orders.

    Orders per customer follow a Zipf law on 1..ZIPF_MAX_ORDERS (P(k) ~ k**-2.2 in segment
    'a', k**-3 elsewhere: segment 'a' buys more); an order's channel and amount depend on its
    customer's segment ('a': 90% web, amounts 500..990; the others: 90% store, 0..490), so a
    method that attaches orders to customers ignoring the parent loses the joint of segment x
    channel and the fan-out per segment.  Input data (not a release): numpy's seeded RNG.
    Protected as dataset `schema` with unit customer_id; returns (customers, orders)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    seg = rng.choice(len(ZIPF_SEGMENTS), size=customers, p=[0.25, 0.25, 0.25, 0.25])
    age = rng.integers(18, 91, size=customers)
    ks = np.arange(1, ZIPF_MAX_ORDERS + 1)
    heavy, light = ks ** -2.2, ks ** -3.0
    fan = np.where(seg == 0, rng.choice(ks, size=customers, p=heavy / heavy.sum()),
                   rng.choice(ks, size=customers, p=light / light.sum()))
    owner = np.repeat(np.arange(customers), fan)
    web = np.where(seg[owner] == 0, rng.random(owner.size) < 0.9, rng.random(owner.size) < 0.1)
    amount = np.where(seg[owner] == 0, 500, 0) + 10 * rng.integers(0, 50, size=owner.size)
    conn.execute(f"CREATE SCHEMA {schema}")
    conn.execute(f"CREATE TABLE {schema}.customer (customer_id int PRIMARY KEY, segment text NOT NULL "
                 "CHECK (segment IN ('a', 'b', 'c', 'd')), age int NOT NULL)")
    conn.execute(f"CREATE TABLE {schema}.orders (order_id int PRIMARY KEY, customer_id int NOT NULL "
                 f"REFERENCES {schema}.customer, channel text NOT NULL CHECK (channel IN ('web', 'store')), "
                 "amount int NOT NULL)")
    with conn.cursor().copy(f"COPY {schema}.customer FROM STDIN") as cp:
        for i in range(customers):
            cp.write_row((i + 1, ZIPF_SEGMENTS[seg[i]], int(age[i])))
    with conn.cursor().copy(f"COPY {schema}.orders FROM STDIN") as cp:
        for j in range(owner.size):
            cp.write_row((j + 1, int(owner[j]) + 1, "web" if web[j] else "store", int(amount[j])))
    conn.execute(f"SELECT dp.protect('{schema}.customer', dataset => '{schema}', privacy_unit => 'customer_id')")
    conn.execute(f"SELECT dp.protect('{schema}.orders', dataset => '{schema}', max_rows_per_unit => {ZIPF_MAX_ORDERS})")
    conn.execute(f"SELECT dp.set_bounds('{schema}.customer', 'age', 18, 90)")
    conn.execute(f"SELECT dp.set_bounds('{schema}.orders', 'amount', 0, 1000)")
    conn.execute(f"ANALYZE {schema}.customer, {schema}.orders")
    return customers, int(owner.size)


def duckdb_extension(name: str):
    """Path of the `name` extension file (tpch, tpcds) that its duckdb-ext wheel ships, or None
    (with duckdb or the wheel absent)."""
    import glob
    import importlib.util

    if importlib.util.find_spec("duckdb") is None or importlib.util.find_spec("duckdb_ext") is None:
        return None
    import duckdb
    import duckdb_ext

    for root in duckdb_ext.__path__:
        found = sorted(glob.glob(os.path.join(root, "extensions", f"v{duckdb.__version__}", "*",
                                              f"{name}.duckdb_extension")))
        if found:
            return found[0]
    return None


def generated_duckdb(name: str, call: str):
    """An in-memory DuckDB holding a benchmark generated by extension `name` (`call`: its
    generator, e.g. dbgen(sf=0.1)); RuntimeError when duckdb or the extension is missing."""
    import duckdb

    ext = duckdb_extension(name)
    if ext is None:
        raise RuntimeError(f"duckdb and duckdb-ext-{name} are not installed (scripts/install-deps.sh)")
    duck = duckdb.connect()
    duck.execute(f"LOAD '{ext}'")
    duck.execute(f"CALL {call}")
    return duck


def tpch_extension():
    """Path of the TPC-H extension file the duckdb-ext-tpch wheel ships, or None."""
    return duckdb_extension("tpch")


TPCH_DDL = """
CREATE TABLE {s}.region (r_regionkey int PRIMARY KEY, r_name text NOT NULL, r_comment text NOT NULL);
CREATE TABLE {s}.nation (n_nationkey int PRIMARY KEY, n_name text NOT NULL,
    n_regionkey int NOT NULL REFERENCES {s}.region, n_comment text NOT NULL);
CREATE TABLE {s}.part (p_partkey bigint PRIMARY KEY, p_name text NOT NULL, p_mfgr text NOT NULL, p_brand text NOT NULL,
    p_type text NOT NULL, p_size int NOT NULL, p_container text NOT NULL, p_retailprice numeric(15,2) NOT NULL,
    p_comment text NOT NULL);
CREATE TABLE {s}.supplier (s_suppkey bigint PRIMARY KEY, s_name text NOT NULL, s_address text NOT NULL,
    s_nationkey int NOT NULL REFERENCES {s}.nation, s_phone text NOT NULL, s_acctbal numeric(15,2) NOT NULL,
    s_comment text NOT NULL);
CREATE TABLE {s}.partsupp (ps_partkey bigint NOT NULL REFERENCES {s}.part, ps_suppkey bigint NOT NULL REFERENCES {s}.supplier,
    ps_availqty int NOT NULL, ps_supplycost numeric(15,2) NOT NULL, ps_comment text NOT NULL,
    PRIMARY KEY (ps_partkey, ps_suppkey));
CREATE TABLE {s}.customer (c_custkey bigint PRIMARY KEY, c_name text NOT NULL, c_address text NOT NULL,
    c_nationkey int NOT NULL REFERENCES {s}.nation, c_phone text NOT NULL, c_acctbal numeric(15,2) NOT NULL,
    c_mktsegment text NOT NULL, c_comment text NOT NULL);
CREATE TABLE {s}.orders (o_orderkey bigint PRIMARY KEY, o_custkey bigint NOT NULL REFERENCES {s}.customer,
    o_orderstatus text NOT NULL, o_totalprice numeric(15,2) NOT NULL, o_orderdate date NOT NULL,
    o_orderpriority text NOT NULL, o_clerk text NOT NULL, o_shippriority int NOT NULL, o_comment text NOT NULL);
CREATE TABLE {s}.lineitem (l_orderkey bigint NOT NULL REFERENCES {s}.orders, l_partkey bigint NOT NULL REFERENCES {s}.part,
    l_suppkey bigint NOT NULL REFERENCES {s}.supplier, l_linenumber int NOT NULL, l_quantity numeric(15,2) NOT NULL,
    l_extendedprice numeric(15,2) NOT NULL, l_discount numeric(15,2) NOT NULL, l_tax numeric(15,2) NOT NULL,
    l_returnflag text NOT NULL, l_linestatus text NOT NULL, l_shipdate date NOT NULL, l_commitdate date NOT NULL,
    l_receiptdate date NOT NULL, l_shipinstruct text NOT NULL, l_shipmode text NOT NULL, l_comment text NOT NULL,
    PRIMARY KEY (l_orderkey, l_linenumber), FOREIGN KEY (l_partkey, l_suppkey) REFERENCES {s}.partsupp);
"""
TPCH_ORDER = ("region", "nation", "part", "supplier", "partsupp", "customer", "orders", "lineitem")
TPCH_PUBLIC = ("region", "nation", "part", "supplier", "partsupp")
# Bounds and value sets from the TPC-H specification (public, not read from the data).
TPCH_BOUNDS = {"customer": (("c_acctbal", -999.99, 9999.99),),
               "orders": (("o_totalprice", 0, 600000), ("o_orderdate", "1992-01-01", "1998-08-02"),
                          ("o_shippriority", 0, 0)),
               "lineitem": (("l_linenumber", 1, 7), ("l_quantity", 1, 50), ("l_extendedprice", 900, 105000),
                            ("l_discount", 0, 0.1), ("l_tax", 0, 0.08), ("l_shipdate", "1992-01-02", "1998-12-01"),
                            ("l_commitdate", "1992-01-31", "1998-10-31"), ("l_receiptdate", "1992-01-03", "1998-12-31"))}
TPCH_VALUES = {"customer": (("c_mktsegment", ("AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY")),),
               "orders": (("o_orderstatus", ("F", "O", "P")),
                          ("o_orderpriority", ("1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW"))),
               "lineitem": (("l_returnflag", ("A", "N", "R")), ("l_linestatus", ("F", "O")),
                            ("l_shipinstruct", ("COLLECT COD", "DELIVER IN PERSON", "NONE", "TAKE BACK RETURN")),
                            ("l_shipmode", ("AIR", "FOB", "MAIL", "RAIL", "REG AIR", "SHIP", "TRUCK")))}
TPCH_MAX_ORDERS, TPCH_MAX_LINES = 50, 350     # per customer (SF 0.1: at most 41 orders and 236 lines)


def tpch_schema(conn, sf=0.1, schema="tpch", workdir=None):
    """TPC-H at scale factor sf, generated now with DuckDB's TPC-H extension (dbgen), into
    schema `schema`: customer, orders, lineitem protected (dataset `schema`, unit c_custkey,
    bounds and value sets from the specification), the other five declared public.
    Returns {table: rows}; raises RuntimeError when duckdb or the extension is missing."""
    import tempfile

    duck = generated_duckdb("tpch", f"dbgen(sf={float(sf)})")
    conn.execute(f"CREATE SCHEMA {schema}")
    conn.execute(TPCH_DDL.format(s=schema))
    counts = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for t in TPCH_ORDER:
            csv_file = os.path.join(tmp, f"{t}.csv")
            duck.execute(f"COPY {t} TO '{csv_file}' (FORMAT csv, HEADER true)")
            with conn.cursor().copy(f"COPY {schema}.{t} FROM STDIN WITH (FORMAT csv, HEADER true)") as cp:
                with open(csv_file, "rb") as f:
                    while chunk := f.read(1 << 20):
                        cp.write(chunk)
            counts[t] = conn.execute(f"SELECT count(*) FROM {schema}.{t}").fetchone()[0]
    duck.close()
    conn.execute(f"ANALYZE")
    for t in TPCH_PUBLIC:
        # generated business data: the comments, addresses and phones of suppliers and parts are
        # public here (dp.declare_public asks for the confirmation that such columns need)
        conn.execute(f"SELECT dp.declare_public('{schema}.{t}', confirm => true)")
    conn.execute(f"SELECT dp.protect('{schema}.customer', dataset => '{schema}', privacy_unit => 'c_custkey')")
    conn.execute(f"SELECT dp.protect('{schema}.orders', dataset => '{schema}', max_rows_per_unit => {TPCH_MAX_ORDERS})")
    conn.execute(f"SELECT dp.protect('{schema}.lineitem', dataset => '{schema}', max_rows_per_unit => {TPCH_MAX_LINES})")
    for t, bounds in TPCH_BOUNDS.items():
        for column, lo, hi in bounds:
            if isinstance(lo, str):
                conn.execute("SELECT dp.set_bounds(%s, %s, %s::date, %s::date)", (f"{schema}.{t}", column, lo, hi))
            else:
                conn.execute("SELECT dp.set_bounds(%s, %s, %s, %s)", (f"{schema}.{t}", column, lo, hi))
    for t, columns in TPCH_VALUES.items():
        for column, values in columns:
            conn.execute("SELECT dp.set_public_values(%s, %s, %s)", (f"{schema}.{t}", column, list(values)))
    for t, dcs in TPCH_ROW_ORDERS.items():
        for dc in dcs:
            conn.execute("SELECT dp.add_constraint(%s, %s)", (f"{schema}.{t}", dc))
    return counts


# the specification's orders within a row: a line is received 1..30 days after it ships
TPCH_ROW_ORDERS = {"lineitem": ["t1&GTE(t1.l_shipdate,t1.l_receiptdate)"]}


CHINOOK_PUBLIC = ("genre", "media_type", "artist", "album", "track", "playlist", "playlist_track")


def chinook_schema(conn, script=None):
    """Chinook (../shared/data/chinook) in schema chinook: customer, invoice, invoice_line
    protected (unit customer_id, 10 invoices and 40 lines per customer), the catalogue
    declared public, employee neither.  Returns the schema's name."""
    load_chinook(conn, script or path("chinook", "Chinook_PostgreSql.sql"))
    conn.execute("SELECT dp.protect('chinook.customer', dataset => 'chinook', privacy_unit => 'customer_id')")
    conn.execute("SELECT dp.protect('chinook.invoice', dataset => 'chinook', max_rows_per_unit => 10)")
    conn.execute("SELECT dp.protect('chinook.invoice_line', dataset => 'chinook', max_rows_per_unit => 40)")
    for t in CHINOOK_PUBLIC:
        conn.execute(f"SELECT dp.declare_public('chinook.{t}')")
    return "chinook"


def synthesize(c, table, **kw):
    """CALL dp_synthesize(table, k => v, ...) on connection c; returns the NOTICE texts it sent."""
    notices = []
    c.add_notice_handler(lambda d: notices.append(d.message_primary))
    args = "".join(f", {k} => %s" for k in kw)
    c.execute(f"CALL dp_synthesize(%s{args})", (table, *kw.values()))
    return notices


def load_chinook(conn, script_path):
    """Chinook (../shared/data/chinook, `script_path`: its PostgreSQL script) into schema chinook,
    unprotected (the caller protects what it needs)."""
    script = open(script_path, encoding="utf-8").read()
    script = script[script.index("\\c chinook;") + len("\\c chinook;"):]
    conn.execute("CREATE SCHEMA chinook")
    conn.execute("SET search_path = chinook")
    try:
        conn.execute(script)
    finally:
        conn.execute("SET search_path = public, dp")


def analyst_module(conn, role):
    """For a test module's autouse fixture (`yield from`): login role `role` for the module;
    afterwards the shadow schema and the role are dropped."""
    conn.execute(f"CREATE ROLE {role} LOGIN")
    yield
    conn.execute("DROP SCHEMA IF EXISTS dp_synthetic CASCADE")
    conn.execute(f"DROP OWNED BY {role}")
    conn.execute(f"DROP ROLE {role}")


def patients(conn, rows, target=True):
    """The security suites' table: patients(id, age, diagnosis, bill), `rows` rows; with
    `target`, row 4242 has age 0 (the row an attacker targets)."""
    conn.execute("CREATE TABLE patients (id int PRIMARY KEY, age int, diagnosis text, bill numeric)")
    conn.execute("INSERT INTO patients SELECT g, 20 + g % 60, (ARRAY['flu','cold','rare'])[1 + (g % 3)], g % 1000 "
                 f"FROM generate_series(1, {int(rows)}) g")
    if target:
        conn.execute("UPDATE patients SET age = 0 WHERE id = 4242")


def protect_patients(conn):
    """dp.protect('patients') with the bounds and the public diagnoses the suites rely on."""
    conn.execute("SELECT dp.protect('patients')")
    conn.execute("SELECT dp.set_bounds('patients', 'age', 0, 100)")
    conn.execute("SELECT dp.set_bounds('patients', 'bill', 0, 1000)")
    conn.execute("SELECT dp.set_public_values('patients', 'diagnosis', ARRAY['flu', 'cold', 'rare'])")


def drop_role_with_schema(conn, role):
    """Drop a test role, its schema of the same name and whatever it owns."""
    conn.execute(f"DROP SCHEMA {role} CASCADE")
    conn.execute(f"DROP OWNED BY {role}")
    conn.execute(f"DROP ROLE {role}")


# --- roles: the sessions and spending every suite reads -------------------------------------


@contextlib.contextmanager
def session(pg, db, role, search_path=None):
    """A connection as `role` (a login role the fixture made), with its search_path if given."""
    with pg.connect(db, user=role) as c:
        if search_path:
            c.execute(f"SET search_path = {search_path}")
        yield c


def epsilon_spent(conn, role, dataset=None):
    """The budget's epsilon_spent (summed over the role's datasets when none is named); None without a budget.
    On budgets with delta it grows by the zCDP conversion of the statements' rho: see asked_epsilon."""
    row = conn.execute("SELECT sum(epsilon_spent) FROM dp.budgets WHERE role = %s::regrole "
                       "AND (%s::text IS NULL OR dataset = %s)", (role, dataset, dataset)).fetchone()
    return row[0]


def asked_epsilon(conn, role, dataset=None):
    """The epsilons the role's statements were charged at (the ledger's asked_epsilon), 0 if none."""
    return conn.execute("SELECT coalesce(sum(asked_epsilon), 0) FROM dp_internal.ledger WHERE role = %s::regrole "
                        "AND (%s::text IS NULL OR dataset = %s)", (role, dataset, dataset)).fetchone()[0]


def drop_roles(conn, *roles):
    """Drop test roles and whatever they own (DROP OWNED drops their schemas too)."""
    for role in roles:
        conn.execute(f"DROP OWNED BY {role} CASCADE")
        conn.execute(f"DROP ROLE {role}")
