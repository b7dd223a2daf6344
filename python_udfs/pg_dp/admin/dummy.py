"""dp.dummy: a table shaped like a protected one, filled from public metadata only.

No row of the real table is read, so it costs no budget: analysts debug their
SQL against it.  Randomness here never touches real data, so Python's seeded
generator is fine (and makes the dummy reproducible).
"""

import datetime
import random

from ..core import db
from ..core.errors import DPError


def _value(rng: random.Random, col: dict, i: int):
    if col["public_values"]:
        return rng.choice(col["public_values"])
    lo, hi = col["lower_bound"], col["upper_bound"]
    t = col["type"]
    if t in ("smallint", "integer", "bigint"):
        a, b = (int(lo), int(hi)) if lo is not None else (0, 100)
        return str(rng.randint(a, b))
    if t in ("real", "double precision") or t.startswith("numeric"):
        a, b = (float(lo), float(hi)) if lo is not None else (0.0, 100.0)
        return repr(round(rng.uniform(a, b), 4))
    if t == "boolean":
        return rng.choice(["true", "false"])
    if t == "date":
        return (datetime.date(2000, 1, 1) + datetime.timedelta(days=rng.randint(0, 9000))).isoformat()
    if t.startswith("timestamp"):
        return (datetime.datetime(2000, 1, 1) + datetime.timedelta(seconds=rng.randint(0, 9 * 10**8))).isoformat()
    if t in ("text",) or t.startswith("character"):
        return f"{col['attname']}_{i}"
    return None


def make_dummy(table_oid, row_count, seed) -> str:
    if row_count is None or not 0 <= row_count <= 10_000_000:
        raise DPError("row_count must be between 0 and 10000000", hint="e.g. dp.dummy('adult', 1000)",
                      sqlstate="22023")
    table_oid = db.regclass_oid(table_oid)
    cols = db.execute(
        """
        SELECT p.column_name AS attname, p.data_type AS type, p.lower_bound, p.upper_bound, p.public_values
        FROM dp.protected_columns p
        JOIN pg_catalog.pg_attribute a ON a.attrelid = p.table_name AND a.attname = p.column_name
        WHERE p.table_name = $1::regclass ORDER BY a.attnum
        """, [table_oid], ["oid"])
    if not cols:
        raise DPError("the table is not protected by pg_dp",
                      hint="dp.dummy builds stand-ins for protected tables only.", sqlstate="22023")
    name = db.execute("SELECT relname FROM pg_catalog.pg_class WHERE oid = $1", [table_oid], ["oid"])[0]["relname"]
    qname = f"pg_temp.{db.quote_ident(name)}"
    # column types only: LIKE would need SELECT on the protected table
    defs = ", ".join(f"{db.quote_ident(c['attname'])} {c['type']}" for c in cols)
    db.drop_table_if_present(qname)
    db.execute(f"CREATE TEMP TABLE {qname} ({defs})")
    rng = random.Random(int(seed or 0))
    names = ", ".join(db.quote_ident(c["attname"]) for c in cols)
    batch = []
    for i in range(row_count):
        batch.append("(" + ", ".join(f"{db.quote_literal(_value(rng, c, i))}::{c['type']}" for c in cols) + ")")
        if len(batch) == 1000 or i == row_count - 1:
            db.execute(f"INSERT INTO {qname} ({names}) VALUES {', '.join(batch)}")
            batch = []
    db.notice(f"{qname} has {row_count} dummy rows made from public metadata only; "
              "in this session it hides the real table", hint=f"DROP TABLE {qname} to query the real one again.")
    return qname
