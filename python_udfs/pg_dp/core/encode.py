"""Values on their way out of the engine: as PostgreSQL's text input reads them, and as JSON.

JSON has no NaN or Infinity, so non-finite floats travel as the strings
PostgreSQL's float input reads ('NaN', 'Infinity', '-Infinity').
"""

import math


def text_value(value) -> str | None:
    """A value as PostgreSQL's text input reads it (None stays NULL)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("NaN" if math.isnan(value) else
                                                          ("Infinity" if value > 0 else "-Infinity"))
    return str(value)


def json_safe(value):
    """`value` with every non-finite float, however deep, written as its text."""
    if isinstance(value, float) and not math.isfinite(value):
        return text_value(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
