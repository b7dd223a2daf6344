"""Fidelity of a synthetic table against its source: marginal TVDs and ML utility.

A table is ``dict[str, np.ndarray]`` (column name -> 1-D array, equal lengths) and
``kinds`` maps each column to 'numeric', 'temporal' or 'categorical'; ``None`` (or a
float NaN) is SQL NULL.  ``dp.evaluate_synthetic`` fetches the rows of both tables
and calls this module, which never touches the database.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from typing import Any, Mapping, Sequence

import numpy as np

Table = Mapping[str, Sequence[Any]]
KINDS = ("numeric", "temporal", "categorical")
_EPOCH = dt.datetime(1970, 1, 1)
_MAX_ONE_HOT = 32       # per categorical feature; rarer values share an 'infrequent' column
_TEST_FRACTION = 0.3


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _timestamp(value: Any) -> float:
    """date / datetime (or its ISO text, as PL/Python passes it) -> seconds since 1970 (UTC when aware)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        offset = value.utcoffset() or dt.timedelta(0)
        return (value.replace(tzinfo=None) - offset - _EPOCH).total_seconds()
    if isinstance(value, dt.date):
        return (dt.datetime(value.year, value.month, value.day) - _EPOCH).total_seconds()
    raise TypeError(f"not a date or timestamp: {value!r}")


def _floats(values: Sequence[Any], kind: str) -> np.ndarray:
    """A numeric or temporal column as floats, NULL -> NaN."""
    arr = np.asarray(values)
    if kind == "numeric" and arr.dtype.kind in "biuf":
        return arr.astype(float)
    convert = float if kind == "numeric" else _timestamp
    return np.array([math.nan if _is_null(v) else convert(v) for v in arr.tolist()], dtype=float)


def _categories(values: Sequence[Any]) -> list:
    """A categorical column as Python values, NULL -> None."""
    return [None if _is_null(v) else v for v in np.asarray(values, dtype=object).tolist()]


def _category_codes(real: list, synth: list) -> tuple[np.ndarray, np.ndarray, int]:
    """Codes over the union of values (real first, in order of appearance); NULL is the last code."""
    book: dict[Any, int] = {}
    for value in itertools.chain(real, synth):
        if value is not None:
            book.setdefault(value, len(book))
    null = len(book)

    def encode(values: list) -> np.ndarray:
        return np.array([null if v is None else book[v] for v in values], dtype=np.int64)

    return encode(real), encode(synth), null + 1


def _bin_codes(real: np.ndarray, synth: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Equal-width bins over the real min..max (outside values clip to the end bins); NULL is the last code."""
    finite = real[np.isfinite(real)]
    if finite.size and finite.max() > finite.min():
        inner = np.linspace(finite.min(), finite.max(), bins + 1)[1:-1]
        count = bins
    else:                                   # constant (or all-NULL) real column: one bin
        inner = np.empty(0)
        count = 1

    def encode(values: np.ndarray) -> np.ndarray:
        codes = np.searchsorted(inner, values, side="right").astype(np.int64)
        codes[np.isnan(values)] = count
        return codes

    return encode(real), encode(synth), count + 1


def _rows(table: Table) -> int:
    lengths = {len(values) for values in table.values()}
    if len(lengths) > 1:
        raise ValueError("columns of a table must have equal lengths")
    return lengths.pop() if lengths else 0


def _check(real: Table, synth: Table, kinds: Mapping[str, str]) -> None:
    if set(real) != set(synth):
        raise ValueError(f"the tables have different columns: {sorted(set(real) ^ set(synth))}")
    for column in real:
        if kinds.get(column) not in KINDS:
            raise ValueError(f"column {column!r}: kind must be one of {KINDS}, not {kinds.get(column)!r}")
    _rows(real)
    _rows(synth)


def bin_columns(real: Table, synth: Table, kinds: Mapping[str, str],
                bins: int = 16) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, int]]:
    """Encode both tables with one codebook per column -> (real codes, synthetic codes, domain sizes).

    numeric/temporal: ``bins`` equal-width bins over the real column's range; categorical: one
    code per value seen in either table; NULL: its own (last) code in every column."""
    if bins < 1:
        raise ValueError("bins must be at least 1")
    _check(real, synth, kinds)
    real_codes, synth_codes, sizes = {}, {}, {}
    for column in real:
        kind = kinds[column]
        if kind == "categorical":
            encoded = _category_codes(_categories(real[column]), _categories(synth[column]))
        else:
            encoded = _bin_codes(_floats(real[column], kind), _floats(synth[column], kind), bins)
        real_codes[column], synth_codes[column], sizes[column] = encoded
    return real_codes, synth_codes, sizes


def tvd(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Total variation distance 0.5 * sum|p - q| of the two normalized histograms."""
    p = np.asarray(p_counts, dtype=float).ravel()
    q = np.asarray(q_counts, dtype=float).ravel()
    if p.shape != q.shape:
        raise ValueError(f"histograms differ in shape: {p.shape} vs {q.shape}")
    p_total, q_total = p.sum(), q.sum()
    if p_total <= 0 or q_total <= 0:
        raise ValueError("total variation distance of an empty histogram")
    return float(0.5 * np.abs(p / p_total - q / q_total).sum())


def _counts(codes: Mapping[str, np.ndarray], clique: tuple[str, ...], sizes: Mapping[str, int]) -> np.ndarray:
    shape = tuple(sizes[column] for column in clique)
    flat = np.ravel_multi_index(tuple(codes[column] for column in clique), shape)
    return np.bincount(flat, minlength=math.prod(shape))


def marginal_tvds(real_codes: Mapping[str, np.ndarray], synth_codes: Mapping[str, np.ndarray],
                  sizes: Mapping[str, int], way: int) -> dict[tuple[str, ...], float]:
    """TVD of every 1-way (way=1) or every unordered 2-way (way=2) marginal, in column order."""
    if way not in (1, 2):
        raise ValueError("way must be 1 or 2")
    return {clique: tvd(_counts(real_codes, clique, sizes), _counts(synth_codes, clique, sizes))
            for clique in itertools.combinations(real_codes, way)}


def _mean(values: Mapping[Any, float]) -> float | None:
    return float(np.mean(list(values.values()))) if values else None


def average_tvd(real: Table, synth: Table, kinds: Mapping[str, str], bins: int = 16) -> dict[str, Any]:
    """{'tvd_1way', 'tvd_2way': averages (None without columns / pairs), 'worst_2way': top 5 (pair, tvd)}."""
    real_codes, synth_codes, sizes = bin_columns(real, synth, kinds, bins)
    one_way = marginal_tvds(real_codes, synth_codes, sizes, 1)
    two_way = marginal_tvds(real_codes, synth_codes, sizes, 2)
    worst = sorted(two_way.items(), key=lambda item: item[1], reverse=True)[:5]
    return {"tvd_1way": _mean(one_way), "tvd_2way": _mean(two_way), "worst_2way": worst}


def independent_baseline(real: Table, kinds: Mapping[str, str], rng: np.random.Generator,
                         bins: int = 16) -> dict[str, Any]:
    """average_tvd of a same-size table drawn column by column (with replacement, independently)
    from the real 1-way marginals: the score of a synthesizer that ignores all correlations."""
    rows = _rows(real)
    sample = {column: np.asarray(values)[rng.integers(0, rows, size=rows)] for column, values in real.items()}
    return average_tvd(real, sample, kinds, bins)


def _subsample(table: Table, max_rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    rows = _rows(table)
    if rows <= max_rows:
        return {column: np.asarray(values) for column, values in table.items()}
    keep = np.sort(rng.choice(rows, size=max_rows, replace=False))
    return {column: np.asarray(values)[keep] for column, values in table.items()}


def _default_targets(columns: list[str], classes: Mapping[str, list]) -> list[str]:
    """Up to 3 eligible targets: the table's last column first, then those with the fewest classes."""
    last = columns[-1]
    first = [last] if last in classes else []
    rest = sorted((column for column in classes if column != last), key=lambda column: len(classes[column]))
    return (first + rest)[:3]


def _features(real: dict[str, np.ndarray], synth: dict[str, np.ndarray], kinds: Mapping[str, str],
              columns: list[str]) -> tuple[np.ndarray, np.ndarray, list[int], list[int]]:
    """Design matrices (numeric/temporal as floats with NaN, categorical as shared integer codes)."""
    numeric = [c for c in columns if kinds[c] != "categorical"]
    categorical = [c for c in columns if kinds[c] == "categorical"]
    real_cols = [_floats(real[c], kinds[c]) for c in numeric]
    synth_cols = [_floats(synth[c], kinds[c]) for c in numeric]
    for column in categorical:
        real_codes, synth_codes, _ = _category_codes(_categories(real[column]), _categories(synth[column]))
        real_cols.append(real_codes.astype(float))
        synth_cols.append(synth_codes.astype(float))
    width = len(numeric)
    return (np.column_stack(real_cols), np.column_stack(synth_cols),
            list(range(width)), list(range(width, width + len(categorical))))


def _fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 numeric: list[int], categorical: list[int], seed: int) -> np.ndarray:
    """Train on (x_train, y_train) and predict x_test; a single training class is predicted as is.

    OpenMP is held to one thread: libgomp's spinning workers slow the boosting down more than
    tenfold on a busy host (a database server), and a single thread takes a few seconds."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder
    from threadpoolctl import threadpool_limits

    if np.unique(y_train).size == 1:
        return np.full(len(x_test), y_train[0])
    encode = ColumnTransformer([
        ("numeric", SimpleImputer(strategy="median", add_indicator=True), numeric),
        ("categorical", OneHotEncoder(handle_unknown="ignore", max_categories=_MAX_ONE_HOT,
                                      sparse_output=False), categorical),
    ])
    model = make_pipeline(encode, HistGradientBoostingClassifier(random_state=seed))
    with threadpool_limits(limits=1, user_api="openmp"):
        return model.fit(x_train, y_train).predict(x_test)


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _score_target(real: dict[str, np.ndarray], synth: dict[str, np.ndarray], kinds: Mapping[str, str],
                  target: str, classes: list, rng: np.random.Generator, seed: int) -> dict[str, Any]:
    from sklearn.metrics import f1_score

    features = [column for column in real if column != target]
    if not features:
        raise ValueError("ml_utility needs at least one column besides the target")
    x_real, x_synth, numeric, categorical = _features(real, synth, kinds, features)
    book = {value: code for code, value in enumerate(classes)}
    real_y, synth_y = _categories(real[target]), _categories(synth[target])
    for value in synth_y:                       # classes only the synthetic table has: never right
        if value is not None:
            book.setdefault(value, len(book))
    labelled = np.flatnonzero([v is not None for v in real_y])
    order = rng.permutation(labelled)
    n_test = max(1, round(_TEST_FRACTION * order.size))
    test, train = order[:n_test], order[n_test:]
    y_real = np.array([-1 if v is None else book[v] for v in real_y], dtype=np.int64)
    synth_rows = np.flatnonzero([v is not None for v in synth_y])
    y_synth = np.array([book[synth_y[i]] for i in synth_rows], dtype=np.int64)
    y_test = y_real[test]

    def scores(x_train: np.ndarray, y_train: np.ndarray) -> tuple[float | None, float | None]:
        if y_train.size == 0:
            return None, None
        predicted = _fit_predict(x_train, y_train, x_real[test], numeric, categorical, seed)
        return (float(np.mean(predicted == y_test)),
                float(f1_score(y_test, predicted, average="macro", zero_division=0)))

    accuracy_synthetic, f1_synthetic = scores(x_synth[synth_rows], y_synth)
    accuracy_real, f1_real = scores(x_real[train], y_real[train])
    return {
        "target": target,
        "classes": [_python(value) for value in classes],
        "accuracy_synthetic": accuracy_synthetic,
        "accuracy_real": accuracy_real,
        "accuracy_majority": float(np.bincount(y_test).max() / y_test.size),
        "f1_macro_synthetic": f1_synthetic,
        "f1_macro_real": f1_real,
    }


def ml_utility(real: Table, synth: Table, kinds: Mapping[str, str], targets: list[str] | None = None,
               rng_seed: int = 0, max_rows: int = 50000) -> list[dict[str, Any]]:
    """Train-on-synthetic / test-on-real accuracy against train-on-real, per categorical target.

    A target is a categorical column with 2..20 distinct non-NULL real values (default: up to
    3, the last column first, then the fewest classes).  The real rows with a target are split
    70/30 (seeded); models trained on the synthetic rows and on the real 70% are scored on the
    real 30%, next to the held-out majority-class accuracy."""
    _check(real, synth, kinds)
    rng = np.random.default_rng(rng_seed)
    real = _subsample(real, max_rows, rng)
    synth = _subsample(synth, max_rows, rng)
    classes = {}
    for column in real:
        if kinds[column] == "categorical":
            distinct = {v for v in _categories(real[column]) if v is not None}
            if 2 <= len(distinct) <= 20:
                classes[column] = sorted(distinct, key=lambda v: (str(v), type(v).__name__))
    if targets is None:
        targets = _default_targets(list(real), classes)
    for target in targets:
        if target not in classes:
            raise ValueError(f"target {target!r} is not a categorical column with 2..20 distinct values")
    return [_score_target(real, synth, kinds, target, classes[target], rng, rng_seed) for target in targets]
