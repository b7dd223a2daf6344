"""Columns that are not modelled but regenerated: keys, privacy units, ids, free text.

Their real values are never released.  A key (PRIMARY KEY / UNIQUE on one column)
gets fresh distinct values; a privacy unit or another identifier gets values
shared by about as many rows as in the real table (a DP count of distinct
values); an identifier that determines other columns through a functional
dependency (a denial constraint `EQ(t1.id,t2.id)&IQ(t1.y,t2.y)`) is assigned
within groups of equal dependent values, so the dependency holds by construction.
"""

from __future__ import annotations

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


def as_text(ids: np.ndarray, fam: str, column: str) -> list[str]:
    """Values of the column's type: numbers as they are, text as '<column>_<id>'."""
    if fam == "uuid" and ids.dtype == object:
        return list(ids)
    if fam == "uuid":
        return [str(uuid.UUID(int=int(i))) for i in ids]
    if fam in ("integer", "numeric", "float"):
        return [str(int(i)) for i in ids]
    return [f"{column}_{int(i)}" for i in ids]
