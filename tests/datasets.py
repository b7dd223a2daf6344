"""Load the shared public data sets (../shared/data) into a database, protected by pg_dp.

Used by the integration tests and by bench/synthesis.py.  Each loader takes an
autocommit psycopg connection of a superuser, creates the table in schema public,
copies the CSV in, protects the table, declares its public metadata (bounds,
value sets, denial constraints) and returns the table's name.
"""

import csv
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
    """A generated high-cardinality table (issue 9): zip (20,000 declared values) -> city
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


def synthesize(c, table, **kw):
    """CALL dp_synthesize(table, k => v, ...) on connection c; returns the NOTICE texts it sent."""
    notices = []
    c.add_notice_handler(lambda d: notices.append(d.message_primary))
    args = "".join(f", {k} => %s" for k in kw)
    c.execute(f"CALL dp_synthesize(%s{args})", (table, *kw.values()))
    return notices
