"""Columns that are not modelled but regenerated: keys, privacy units, ids, free text.

Their real values are never released.  A key (PRIMARY KEY / UNIQUE on one column)
gets fresh distinct values; a privacy unit or another identifier gets values
shared by about as many rows as in the real table (a DP count of distinct
values); an identifier that determines other columns through a functional
dependency (a denial constraint `EQ(t1.id,t2.id)&IQ(t1.y,t2.y)`) is assigned
within groups of equal dependent values, so the dependency holds by construction.
"""

from __future__ import annotations

import math
import re
import uuid

import numpy as np


def assign_ids(n_rows: int, n_ids: int, rng: np.random.Generator,
               groups: list[np.ndarray] | None = None) -> np.ndarray:
    """1-based ids for n_rows rows, about n_rows / n_ids rows per id.

    With `groups` (arrays of the dependent columns), rows with different group
    values never share an id.
    """
    n_ids = max(1, min(int(n_ids), n_rows)) if n_rows else 1
    if not groups:
        return rng.integers(1, n_ids + 1, size=n_rows)
    fanout = n_rows / n_ids
    keys = list(zip(*[list(g) for g in groups]))
    index: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        index.setdefault(k, []).append(i)
    out = np.empty(n_rows, dtype=np.int64)
    next_id = 1
    for rows in index.values():
        k = max(1, int(round(len(rows) / fanout)))
        out[np.asarray(rows)] = next_id + rng.integers(0, k, size=len(rows))
        next_id += k
    return out


def key_values(n_rows: int, fam: str, first: int = 1) -> np.ndarray:
    """Fresh distinct key values first..first+n-1 (random UUIDs for uuid keys; see as_text)."""
    if fam == "uuid":
        return np.array([str(uuid.uuid4()) for _ in range(n_rows)], dtype=object)
    return np.arange(first, first + n_rows, dtype=np.int64)


_WIDTH = re.compile(r"^(?:character varying|character|varchar|char|bpchar)\((\d+)\)")
_INTEGER_MAX = {"smallint": 2 ** 15 - 1, "integer": 2 ** 31 - 1, "bigint": 2 ** 63 - 1}
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def text_width(sql_type: str) -> int | None:
    """The length limit of a varchar(n) / char(n) column (None: unlimited)."""
    m = _WIDTH.match(sql_type or "")
    return int(m.group(1)) if m else None


def capacity(fam: str, sql_type: str) -> float:
    """How many distinct positive ids a column of this type can hold (math.inf: no limit that matters)."""
    if fam == "integer":
        return float(_INTEGER_MAX.get(sql_type, 2 ** 31 - 1))
    if fam == "numeric":
        m = re.match(r"^numeric\((\d+)(?:,(\d+))?\)", sql_type or "")
        return 10.0 ** (int(m.group(1)) - int(m.group(2) or 0)) - 1 if m else math.inf
    if fam == "text" and text_width(sql_type):
        return 36.0 ** text_width(sql_type) - 1
    return math.inf


def _base36(i: int) -> str:
    out = ""
    while True:
        i, r = divmod(i, 36)
        out = _DIGITS[r] + out
        if not i:
            return out


def as_text(ids: np.ndarray, fam: str, column: str, sql_type: str | None = None) -> list[str]:
    """Values of the column's type: numbers as they are, text as '<column>_<id>', or, when that
    does not fit a varchar(n) / char(n), the id in base 36 (distinct ids stay distinct: the
    text is never cut; ids past capacity() are the caller's to avoid)."""
    if fam == "uuid" and ids.dtype == object:
        return list(ids)
    if fam == "uuid":
        return [str(uuid.UUID(int=int(i))) for i in ids]
    if fam in ("integer", "numeric", "float"):
        return [str(int(i)) for i in ids]
    width = text_width(sql_type)
    if width is not None and ids.size and len(f"{column}_{int(np.max(ids))}") > width:
        return [_base36(int(i)) for i in ids]
    return [f"{column}_{int(i)}" for i in ids]
