"""The only module that touches plpy (PL/Python's interface to the server)."""

from .errors import DPError

_plans: dict = {}


def _plpy():
    import plpy  # available inside the server only

    return plpy


def call(function, *args):
    """Run an engine function from a PL/Python body, turning DPError into a SQL error."""
    try:
        return function(*args)
    except DPError as e:
        _plpy().error(e.message, hint=e.hint, sqlstate=e.sqlstate)


def execute(sql: str, args=(), types=()):
    """Run SQL (with $n parameters of the given types); a list of dict rows."""
    plpy = _plpy()
    if not args:
        return list(plpy.execute(sql))
    key = (sql, tuple(types))
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = plpy.prepare(sql, list(types))
    return list(plpy.execute(plan, list(args)))


def execute_tuples(sql: str, width: int):
    """Rows of a query whose columns are named c0..c{width-1}, as tuples."""
    rows = _plpy().execute(sql)
    names = [f"c{i}" for i in range(width)]
    return [tuple(r[n] for n in names) for r in rows]


def subtransaction():
    return _plpy().subtransaction()


def is_spi_error(e) -> bool:
    return isinstance(e, _plpy().SPIError)


def sqlstate(e) -> str | None:
    """The SQLSTATE of an SPI error."""
    return getattr(e, "sqlstate", None)


def prepare(sql: str):
    """Parse and analyse a statement without running it: its errors come out here, before any charge."""
    _plpy().prepare(sql)


def log(message: str):
    """A line for the server log only (the DBA's), never for the client."""
    _plpy().log(message)


def quote_ident(name: str) -> str:
    return _plpy().quote_ident(name)


def quote_literal(value) -> str:
    return _plpy().quote_nullable(None if value is None else str(value))


def notice(message: str, hint: str | None = None):
    if hint:
        _plpy().notice(message, hint=hint)
    else:
        _plpy().notice(message)


def check_interrupts():
    """Let a cancel or statement timeout stop a long computation here (pg_sleep checks for interrupts)."""
    _plpy().execute("SELECT pg_catalog.pg_sleep(0)")


def relation_exists(name: str) -> bool:
    return bool(execute("SELECT pg_catalog.to_regclass($1) IS NOT NULL AS x", [name], ["text"])[0]["x"])


def drop_table_if_present(name: str):
    """DROP TABLE, only when it is there (DROP ... IF EXISTS would send a NOTICE otherwise)."""
    if relation_exists(name):
        execute(f"DROP TABLE {name}")


def setting(key: str) -> str:
    rows = execute("SELECT value FROM dp_internal.settings WHERE key = $1", [key], ["text"])
    return rows[0]["value"] if rows else ""


def regclass_oid(name: str) -> int:
    """The oid of a regclass argument (PL/Python receives regclass as its text; the executor, an oid)."""
    if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
        return int(name)
    return int(execute("SELECT $1::regclass::oid::int8 AS oid", [name], ["text"])[0]["oid"])
