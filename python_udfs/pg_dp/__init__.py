"""pg_dp's Python engine.

Everything here takes and returns plain Python values; only :mod:`pg_dp.db`
talks to PostgreSQL (plpy), so the engine is unit-tested without a server.
"""

__version__ = "0.1.0"
