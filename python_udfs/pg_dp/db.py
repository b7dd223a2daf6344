"""The only module that touches plpy (PL/Python's interface to the server)."""

from .errors import DPError


def call(function, *args):
    """Run an engine function from a PL/Python body, turning DPError into a SQL error."""
    try:
        return function(*args)
    except DPError as e:
        import plpy  # available inside the server only

        plpy.error(e.message, hint=e.hint, sqlstate=e.sqlstate)
