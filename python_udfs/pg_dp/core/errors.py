"""The one exception type the engine raises for user-facing errors."""


class DPError(Exception):
    """An error for the SQL user: stable message, a hint, and a SQLSTATE."""

    def __init__(self, message: str, hint: str | None = None, sqlstate: str = "22023"):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.sqlstate = sqlstate
