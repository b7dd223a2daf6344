"""dp.create_view: typed views over DP answers whose SQL stays private to their author.

pg_views shows every view's definition to every role, so the question itself is
kept in dp_internal.views (readable by the extension owner only) and the view
reads `dp.view_answer(<id>)`.  An answer through an id goes only to a role that
may SELECT the view bound to it (its owner and whom the owner granted), and is
charged to the view's author, as a SECURITY DEFINER function runs with its owner's rights
(free while cached): a reader never pays for a question someone else wrote, and an author
never reads for free what a reader paid for.  The view is
found (by its owner and definition) on first use: it commits after the question
is kept, in the author's transaction, which the executor cannot see.
"""

import json
import re

from ..core import catalog, db
from ..core.errors import DPError
from . import serve


def register(sql, epsilon=None, delta=None):
    """Check the question (nothing is charged) and keep it; its id and column list."""
    plan = serve.plan_question(sql, epsilon, delta)
    role = catalog.outer_role()
    rows = db.execute("INSERT INTO dp_internal.views (owner, sql, epsilon, delta) VALUES ($1, $2, $3, $4) "
                      "RETURNING id", [role, sql, epsilon, delta], ["oid", "text", "float8", "float8"])
    return json.dumps({"id": int(rows[0]["id"]), "columns": serve.column_list(plan.columns)})


def _bind(id: int, owner: int):
    """The view its author created over question `id` (committed after the question was kept)."""
    for r in db.execute("SELECT c.oid::int8 AS oid, pg_catalog.pg_get_viewdef(c.oid) AS d FROM pg_catalog.pg_class c "
                        "WHERE c.relkind = 'v' AND c.relowner = $1 AND pg_catalog.pg_get_viewdef(c.oid) "
                        "LIKE '%view_answer(%'", [owner], ["oid"]):
        if re.search(rf"view_answer\(\(?'?{int(id)}'?\)?(::bigint)?\)", r["d"]):
            db.execute("UPDATE dp_internal.views SET view = $2 WHERE id = $1 AND view IS NULL",
                       [id, r["oid"]], ["int8", "oid"])
            return r["oid"]
    return None


def answer(id, expect=None):
    role = catalog.outer_role()
    row = db.execute("SELECT sql, epsilon, delta, view, owner FROM dp_internal.views WHERE id = $1", [id], ["int8"])
    view = None
    if row:
        view = row[0]["view"]
        if view is None or not db.execute("SELECT 1 FROM pg_catalog.pg_class WHERE oid = $1", [view], ["oid"]):
            view = _bind(id, row[0]["owner"])
    readable = view is not None and db.execute(
        "SELECT pg_catalog.has_table_privilege($1, $2::oid, 'SELECT') AS ok", [role, view], ["oid", "oid"])[0]["ok"]
    if not readable:
        raise DPError(f"permission denied for pg_dp view question {id}",
                      hint="Read it through its view; its owner can GRANT SELECT on the view.", sqlstate="42501")
    r = row[0]
    # the author pays: the question is answered, checked and charged as theirs, whoever reads
    catalog.set_caller(int(r["owner"]))
    return (yield from serve.query_reply(r["sql"], r["epsilon"], r["delta"], expect))
