"""The engine side of the privileged executor (src/worker/serve.c; requests.py lists the request kinds).

The executor -- a background worker connected as the extension owner, one of the
pool's (pg_dp in shared_preload_libraries) or one per analyst session -- calls `handle(role, kind, payload)` once per phase of a
request.  A handler returns its reply (one phase), or is a
generator: each `yield` ends a phase, and the worker
commits that phase's transaction before it calls again (kind "continue").  So a
charge made before a `yield` is committed before anything after it runs.

The answer to each call is one text:
- "C"                    commit, then call again;
- "R" + reply            commit, then send the reply to the caller;
- "E" + sqlstate \\x1f message \\x1f hint \\x1f detail
                         roll the phase back, raise this error in the caller.

`role` is the caller's role as the caller's backend knows it (never a SQL
argument); handlers check and charge that role, never current_user (which is
the extension owner here).
"""

import importlib
import inspect
import json

from .core import catalog, db
from .requests import HANDLERS, WARM_MODULES
from .core.errors import DPError

SEPARATOR = "\x1f"
INTERNAL = "XX000"

_inflight = None      # the generator of the request in progress, between phases
_pooled = None        # whether this executor is one of the pool's (src/worker/pool.c), once known


def _in_pool() -> bool:
    """A pool's executor serves every session: it never retires for a role."""
    global _pooled
    if _pooled is None:
        _pooled = json.loads(db.execute("SELECT dp_internal.executor_mode() AS m")[0]["m"])["mode"] == "pool"
    return _pooled


def _handler(kind: str):
    if kind not in HANDLERS:
        raise DPError(f"unknown pg_dp request {kind!r}", sqlstate="22023")
    module, function = HANDLERS[kind]
    return getattr(importlib.import_module(module), function)


def _error(e: DPError) -> str:
    fields = [e.sqlstate or INTERNAL, e.message, e.hint or "", getattr(e, "detail", None) or ""]
    return "E" + SEPARATOR.join(str(f).replace(SEPARATOR, " ") for f in fields)


def handle(role: int, kind: str, payload: str) -> str:
    global _inflight
    try:
        if kind == "warmup" and int(role) == 0:
            # a spare executor (src/worker/spares.c; role 0, never a caller's) loads what a
            # session's first question needs
            for module in WARM_MODULES:
                importlib.import_module(module)
            return "R"
        if kind == "continue":
            if _inflight is None:
                raise DPError("internal error: no pg_dp request is in progress", sqlstate=INTERNAL)
            steps = _inflight
            # a new transaction: what the first phase checked is locked again and compared
            # before anything is read (core/catalog.py: pin)
            catalog.check_pins()
        else:
            _inflight = None
            catalog.set_caller(int(role))
            if not _in_pool() and not catalog.may_keep_executor(int(role)):
                # a role without a budget cannot hold a session's background-worker slot between requests
                db.execute("SELECT dp_internal.executor_retire()")
            handler = _handler(kind)
            try:
                args = json.loads(payload) if payload else {}
            except ValueError:
                raise DPError("malformed pg_dp request", sqlstate="22023")
            if not isinstance(args, dict):
                raise DPError("malformed pg_dp request", sqlstate="22023")
            try:
                inspect.signature(handler).bind(**args)
            except TypeError as e:
                raise DPError("malformed pg_dp request", hint=str(e), sqlstate="22023")
            steps = handler(**args)
            if not inspect.isgenerator(steps):      # a request of one phase
                return "R" + steps
        try:
            next(steps)
        except StopIteration as done:
            _inflight = None
            return "R" + (done.value if done.value is not None else "")
        _inflight = steps
        return "C"
    except DPError as e:
        _inflight = None
        return _error(e)
    except UnicodeError:
        _inflight = None
        return _error(DPError("the request holds a character that cannot be encoded",
                              hint="Check the statement's text for unpaired surrogates.", sqlstate="22021"))
    except RecursionError:
        _inflight = None
        return _error(DPError("the statement is too complex", hint="Simplify the query.", sqlstate="54001"))
    except BaseException:
        _inflight = None
        raise
