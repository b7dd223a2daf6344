"""Bounded copies: contribution bounding computed once per data version, not per query.

Bounding a privacy unit's contributions needs window functions over the whole
table (a sort by unit): 13-15x a native aggregate on 10M rows.  The gateway keeps,
per protected table and GROUP BY column set, a copy of the table with those ranks
(pg_dp.query.plan.bounded_copy_sql), in dp_internal (no access for anyone but the
extension owner), rebuilt when the table's data version changes.  Queries filter
the copy on the ranks and run at native speed.  At most `bounded_copies` copies are
kept per table (least recently used go first); 0 turns copies off.

A table that reaches its privacy unit through foreign keys (invoice_line -> invoice ->
customer_id) gets the same copies, built over its rows joined along the path
(plan.relation_sql): each row carries its unit, and the ranks are per unit.  The
dataset's data version, which keys the copies, moves on a write to any table of the
path (they are all protected in the dataset: catalog.resolve_path refuses otherwise).
"""

import hashlib
import hmac
import json

from ..core import db
from . import rewrite


def _limit() -> int:
    try:
        return max(0, int(db.setting("bounded_copies") or 0))
    except ValueError:
        return 0


PLACEHOLDER = -1          # data_version of a key set asked once, with no copy built yet
MAX_PLACEHOLDERS = 64     # such key sets remembered per table


def copy_for(plan) -> str | None:
    """A current bounded copy for this plan (built if needed), or None to bound per query.

    A copy is built the second time a GROUP BY column set is asked (the first
    time the query bounds itself), so cycling through new key sets costs the
    asker one bounded scan each and never evicts the copies others use.  One
    builder at a time per copy: the catalog row is locked (FOR UPDATE), which no
    other role can hold (an advisory lock could be taken by anyone).  The copy is
    not ANALYZEd: its reltuples would be an exact row count for everyone to read.
    """
    build = rewrite.bounded_copy_sql(plan)
    if build is None or _limit() == 0:
        return None
    meta = plan.meta
    keys = plan.key_set          # the GROUP BY keys (and the time zone, when a key depends on it)
    name = copy_name(meta.relid, keys)
    qualified = f"dp_internal.{name}"
    try:
        with db.subtransaction():
            shape = db.execute(
                "SELECT pg_catalog.string_agg(attname || ' ' || atttypid::regtype::text, ', ' ORDER BY attnum) AS s "
                "FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
                [meta.relid], ["oid"])[0]["s"]
            if meta.unit_path:
                # a path table's copy holds each row's unit, found along the path: another path, another copy
                # (its tables' writes bump the dataset's data version, as the table's own do)
                shape += " via " + json.dumps(meta.unit_path, sort_keys=True)
            inserted = db.execute(
                "INSERT INTO dp_internal.bounded_copies (relid, keys, relname, data_version, columns) "
                "VALUES ($1, $2, $3, $4, '') ON CONFLICT (relid, keys) DO NOTHING RETURNING relid",
                [meta.relid, keys, name, PLACEHOLDER], ["oid", "text", "name", "int8"])
            if inserted:
                _forget_placeholders(meta.relid)
                return None                     # asked for the first time: bound this query itself
            row = db.execute(
                "SELECT data_version, columns, built_at > pg_catalog.pg_postmaster_start_time() AS since_start, "
                "pg_catalog.to_regclass($3) IS NOT NULL AS present "
                "FROM dp_internal.bounded_copies WHERE relid = $1 AND keys = $2 FOR UPDATE",
                [meta.relid, keys, qualified], ["oid", "text", "text"])
            # stale: older data, another table shape (ALTER TABLE bumps no data version), or
            # built before a crash restart (which empties an unlogged table)
            if row and row[0]["data_version"] == meta.data_version and row[0]["columns"] == shape \
                    and row[0]["since_start"] and row[0]["present"]:
                db.execute("UPDATE dp_internal.bounded_copies SET last_used = clock_timestamp() "
                           "WHERE relid = $1 AND keys = $2", [meta.relid, keys], ["oid", "text"])
                return qualified
            db.drop_table_if_present(qualified)
            # never analysed, by autovacuum either: reltuples would be its exact row count for everyone
            db.execute(f"CREATE UNLOGGED TABLE {qualified} WITH (autovacuum_enabled = false, "
                       f"toast.autovacuum_enabled = false) AS {build}")
            db.execute(
                "UPDATE dp_internal.bounded_copies SET relname = $3, data_version = $4, columns = $5, "
                "built_at = clock_timestamp(), last_used = clock_timestamp() WHERE relid = $1 AND keys = $2",
                [meta.relid, keys, name, meta.data_version, shape], ["oid", "text", "name", "int8", "text"])
            _evict(meta.relid)
            return qualified
    except Exception as e:
        if not db.is_spi_error(e):
            raise
        # e.g. the lock timeout: bound this query on its own instead
        return None


def copy_name(relid: int, keys: str) -> str:
    """A copy's name in pg_class (which everyone reads): a keyed digest of the table and the GROUP
    BY columns, under a secret only the extension owner reads (dp_internal.secrets), so that no
    role learns from it which table and which columns another analyst asked about."""
    secret = db.execute("SELECT value FROM dp_internal.secrets WHERE key = 'copy_names'")[0]["value"]
    return "bounded_" + hmac.new(secret.encode(), f"{relid}:{keys}".encode(), hashlib.sha256).hexdigest()[:24]


def _forget_placeholders(relid: int):
    db.execute(
        "DELETE FROM dp_internal.bounded_copies WHERE (relid, keys) IN (SELECT relid, keys "
        "FROM dp_internal.bounded_copies WHERE relid = $1 AND data_version = $2 "
        "ORDER BY last_used DESC OFFSET $3)", [relid, PLACEHOLDER, MAX_PLACEHOLDERS], ["oid", "int8", "int4"])


def _evict(relid: int):
    for r in db.execute(
            "DELETE FROM dp_internal.bounded_copies WHERE (relid, keys) IN (SELECT relid, keys "
            "FROM dp_internal.bounded_copies WHERE relid = $1 AND data_version <> $3 "
            "ORDER BY last_used DESC OFFSET $2) RETURNING relname",
            [relid, _limit(), PLACEHOLDER], ["oid", "int4", "int8"]):
        db.drop_table_if_present(f"dp_internal.{r['relname']}")
