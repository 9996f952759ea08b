"""The one encoding of users' values, shared by the ``table``, ``arrays`` and ``images``
sources and by ``manytask init``. Pure: numpy arrays, pandas columns or lists of text cells
in; arrays out; no file is read here.

* :func:`encode_labels` — a label column as targets (and a :class:`LabelCoding` for names);
* :func:`split_rows` — a split column as ``(train, val, test)`` row indices, with nested
  training fractions (:func:`nested_subset`);
* :class:`Standardizer` — per-feature ``(x - mean) / std`` with the training rows' statistics;
* :func:`sorted_names` / :func:`value_key` — how values are named and class names sorted.

The rules, the same for every source:

* **names**: a value's name is its text, with ``True``/``False`` as ``true``/``false`` and
  integral numbers without a decimal point (``3.0`` → ``3``), so that names written in a YAML
  config match values read from a CSV, Parquet or ``.npz`` file. Class names sort numbers by
  value first, then text alphabetically (``2 < 10 < ant < cat``).
* **missing**: a text cell that is empty or one of :data:`MISSING_TEXT` (``NA``, ``NaN``,
  ``null``, … as pandas reads them; spaces around are ignored), a missing cell of a pandas
  column, ``NaN`` in a float array, ``-1`` in an integer array.
* **labels**: numbers stay numbers: int64 when every value is present and integral (integer
  arrays: int64 with ``-1`` = missing), else float32 with ``NaN`` = missing; an infinite value
  is refused. Names become int64 class indices (``-1`` = missing): in the order of ``classes``
  when given, else ``false``/``true`` and ``no``/``yes`` (any case) as 0/1, else in sorted order.
* **splits**: split values are compared by name in lower case: ``train``/``0``,
  ``val``/``valid``/``validation``/``1``, ``test``/``2`` (:data:`SPLIT_NAMES`); every row
  needs a known split name and the training split a row (validation and test may be empty, as
  with ``val_fraction: 0``).
* **messages**: one line, starting with the :class:`Place` — the file, then the row (CSV
  tables: ``row 1`` is the first row after the header; arrays: ``index 0`` is the first
  element) and the column.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from manytask.data.batch import LabelCoding, LabelScale
from manytask.errors import ConfigError, DataError

if TYPE_CHECKING:  # pandas is imported by the callers that read tables, not by config checks
    import pandas as pd

__all__ = [
    "BOOLEAN_NAMES",
    "MISSING_TEXT",
    "SPLITS",
    "SPLIT_NAMES",
    "Place",
    "Standardizer",
    "encode_label_columns",
    "encode_labels",
    "has_label",
    "is_numeric_column",
    "nested_subset",
    "shown",
    "sorted_names",
    "split_rows",
    "value_key",
]

#: text cells read as missing (pandas' defaults, compared after stripping spaces)
MISSING_TEXT: tuple[str, ...] = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                                 "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")

#: text label pairs read as 0 / 1 without a ``classes`` entry (compared in lower case)
BOOLEAN_NAMES: tuple[tuple[str, str], ...] = (("false", "true"), ("no", "yes"))

SPLITS = ("train", "val", "test")

#: the names of each split (compared in lower case)
SPLIT_NAMES: dict[str, tuple[str, ...]] = {"train": ("train", "0"), "val": ("val", "valid", "validation", "1"),
                                           "test": ("test", "2")}


@dataclass(frozen=True)
class Place:
    """Where a column's values come from, as error messages name it.

    ``str(place)`` is ``file: column 'name'``; :meth:`at` adds a row, counted from
    ``first_row`` (1 for the rows of a table after its header, 0 for the indices of an array).
    """

    file: str
    column: str
    noun: str = "column"
    row_word: str = "row"
    first_row: int = 1

    @classmethod
    def array(cls, file: object, key: str) -> Place:
        """An array of a ``.npz`` file: ``file: index i, array 'key'``."""
        return cls(str(file), key, "array", "index", 0)

    def __str__(self) -> str:
        return f"{self.file}: {self.noun} '{self.column}'"

    def at(self, i: int) -> str:
        """The place of row ``i`` (0-based position) of the column."""
        return f"{self.file}: {self.row_word} {int(i) + self.first_row}, {self.noun} '{self.column}'"


# ---------------------------------------------------------------- names
def value_key(value: Any) -> str:
    """The name of a value (see the module docstring)."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def shown(value: Any) -> str:
    """A value as written in error messages: text quoted, numbers and booleans plain."""
    return repr(value) if isinstance(value, str) else value_key(value)


def sorted_names(names: Sequence[str] | set[str]) -> list[str]:
    """Distinct names in a stable order: numbers by value first, then text alphabetically."""

    def key(name: str) -> tuple[int, float, str]:
        try:
            return (0, float(name), name)
        except ValueError:
            return (1, 0.0, name)

    return sorted(set(names), key=key)


def is_numeric_column(values: pd.Series) -> bool:
    """True for integer and float columns of pandas (booleans and text are not numbers)."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return is_numeric_dtype(values) and not is_bool_dtype(values)


def _is_series(values: object) -> bool:
    pandas = sys.modules.get("pandas")  # a pandas column exists only once pandas is imported
    return pandas is not None and isinstance(values, pandas.Series)


def _is_missing(value: object, blank: set[str]) -> bool:
    if isinstance(value, str):
        return value.strip() in blank
    return value is None or (isinstance(value, (float, np.floating)) and bool(np.isnan(value)))


def _cells(values: pd.Series | np.ndarray | Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(values as a 1-D object array, missing mask)`` of a pandas column or text cells."""
    if _is_series(values):
        return values.to_numpy(dtype=object), values.isna().to_numpy()  # type: ignore[union-attr]
    cells = np.asarray(values, dtype=object)
    blank = set(MISSING_TEXT)
    missing = np.fromiter((_is_missing(v, blank) for v in cells), dtype=bool, count=len(cells))
    return cells, missing


def _as_number(key: str) -> float | None:
    try:
        return float(key)
    except ValueError:
        return None


# ---------------------------------------------------------------- labels
def encode_labels(values: pd.Series | np.ndarray | Sequence[Any], place: Place, *,
                  classes: Sequence[Any] | None = None) -> tuple[np.ndarray, LabelCoding | None]:
    """A label column as targets (rules in the module docstring).

    Args:
        values: a pandas column, a list of text cells, or a numpy array (numbers of any
            shape ``(N, ...)``, or text ``(N,)``).
        place: the file and column, for messages.
        classes: the class names in index order; the column is then coded by them even when
            its values are numbers (``[1, 2, 3]`` → 0, 1, 2).

    Returns:
        ``(targets, coding)``; ``coding`` is None for columns kept as numbers.

    Raises:
        DataError: every value is missing, a number is infinite, or a value is not one of
            ``classes`` (names the row).
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf" and classes is None:
        return _array_labels(values, place), None
    if isinstance(values, np.ndarray) and values.ndim != 1:
        raise DataError(f"{place}: text classes need one value per row, got shape {values.shape}")
    cells, missing = _cells(values)
    if missing.all():
        raise DataError(f"{place} has no label (every value is missing)")
    if classes is None and _is_series(values) and is_numeric_column(values):  # type: ignore[arg-type]
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)  # type: ignore[union-attr]
        return _numbers(numbers, missing, place), None
    keys = np.full(len(cells), "", dtype=object)
    keys[~missing] = [value_key(v) for v in cells[~missing]]
    numbers = np.full(len(cells), np.nan)
    text = np.zeros(len(cells), dtype=bool)
    for i in np.flatnonzero(~missing):
        number = _as_number(keys[i])
        text[i] = number is None
        numbers[i] = np.nan if number is None else number
    if classes is None and not text.any():
        return _numbers(numbers, missing, place), None
    if text.any():
        first = int(np.argmax(text))
        origin = f"{place.at(first)} has the class name {shown(cells[first])}"
    else:
        origin = f"{place} is coded as classes (data.classes.{place.column})"
    names = _class_names(keys[~missing], classes)
    if classes is None and names in [list(p) for p in BOOLEAN_NAMES]:
        keys = np.array([k.lower() for k in keys], dtype=object)
    return _codes(cells, keys, missing, names, place), LabelCoding(tuple(names), origin)


def _numbers(numbers: np.ndarray, missing: np.ndarray, place: Place) -> np.ndarray:
    infinite = np.isinf(numbers)
    if infinite.any():
        i = int(np.argmax(infinite))
        raise DataError(f"{place.at(i)}: value {numbers[i]} is not finite")
    if not missing.any() and np.array_equal(numbers, np.rint(numbers)):
        return numbers.astype(np.int64)
    return np.where(missing, np.nan, numbers).astype(np.float32)


def _class_names(keys: np.ndarray, classes: Sequence[Any] | None) -> list[str]:
    """Class names in index order: ``classes``, a boolean pair, or the sorted names."""
    if classes is not None:
        return [value_key(c) for c in classes]
    found = set(keys.tolist())
    lowered = {k.lower() for k in found}
    pair = next((p for p in BOOLEAN_NAMES if lowered <= set(p)), None)
    return list(pair) if pair is not None else sorted_names(found)


def _codes(cells: np.ndarray, keys: np.ndarray, missing: np.ndarray, names: list[str], place: Place) -> np.ndarray:
    """Class indices (int64, -1 = missing) of the names ``keys``."""
    index = {n: i for i, n in enumerate(names)}
    codes = np.full(len(keys), -1, dtype=np.int64)
    for i in np.flatnonzero(~missing).tolist():
        code = index.get(keys[i])
        if code is None:
            raise DataError(f"{place.at(i)}: value {shown(cells[i])} is not one of the classes "
                            f"{', '.join(names)} (data.classes.{place.column})")
        codes[i] = code
    return codes


def _array_labels(arr: np.ndarray, place: Place) -> np.ndarray:
    """Numbers of an array kept by dtype: floats as float32 (NaN = missing), integers and
    booleans as int64 (-1 = missing)."""
    if arr.dtype.kind == "f":
        infinite = np.isinf(arr)
        if infinite.any():
            i = int(np.argwhere(infinite)[0][0])
            raise DataError(f"{place.at(i)}: value {arr[np.unravel_index(np.argmax(infinite), arr.shape)]} "
                            "is not finite")
        if arr.size and np.isnan(arr).all():
            raise DataError(f"{place} has no label (every value is missing)")
        return np.ascontiguousarray(arr, dtype=np.float32)
    out = np.ascontiguousarray(arr, dtype=np.int64)
    if out.size and (out == -1).all():
        raise DataError(f"{place} has no label (every value is missing)")
    return out


def has_label(target: Any) -> bool:
    """Whether ``target`` (an array or tensor) has a label: a value that is not NaN
    (floats) or not -1 (integers)."""
    t = np.asarray(target.cpu() if hasattr(target, "cpu") else target)
    if t.dtype.kind == "f":
        return bool((~np.isnan(t)).any())
    return bool((t != -1).any())


# ---------------------------------------------------------------- splits
def split_rows(values: pd.Series | np.ndarray | Sequence[Any], place: Place, *,
               names: Mapping[str, Sequence[Any]] = SPLIT_NAMES, fraction: float = 1.0, seed: int = 0,
               setting: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices ``(train, val, test)`` named by a split column, each in row order.

    Args:
        names: split → its names (compared in lower case), default :data:`SPLIT_NAMES`.
        fraction, seed: the training rows kept (:func:`nested_subset`).
        setting: the config field that sets ``names`` (named in the message of an unknown split).

    Raises:
        DataError: a row has no split name or an unknown one, or no row is a training row
            (names the row).
        ConfigError: ``fraction`` leaves no training row.
    """
    lookup = {value_key(n).lower(): s for s in SPLITS for n in names.get(s, ())}
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        values = values.astype(object)
    cells, missing = _cells(values)
    if missing.any():
        raise DataError(f"{place.at(int(np.argmax(missing)))}: no split name")
    found: dict[Any, str | None] = {}
    parts = np.empty(len(cells), dtype=object)
    for i, v in enumerate(cells):
        if v not in found:
            found[v] = lookup.get(value_key(v).lower())
        if found[v] is None:
            expected = ", ".join(f"{s}: {'/'.join(value_key(n) for n in names.get(s, ()))}" for s in SPLITS)
            raise DataError(f"{place.at(i)}: unknown split {shown(v)} ({setting or 'split names'}: {expected})")
        parts[i] = found[v]
    train, val, test = (np.flatnonzero(parts == s).astype(np.int64) for s in SPLITS)
    if train.size == 0:
        raise DataError(f"{place}: no row is in the training split")
    return nested_subset(train, fraction, seed), val, test


def nested_subset(rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """``round(fraction · len(rows))`` of ``rows``, in their order: a prefix of one seeded
    permutation, so that smaller fractions keep subsets of the rows that larger ones keep.

    Raises:
        ConfigError: no row is left.
    """
    if fraction >= 1.0:
        return rows
    keep = round(fraction * len(rows))
    if keep < 1:
        raise ConfigError(f"fraction: {fraction} of {len(rows)} training rows leaves no training row")
    perm = np.random.default_rng(int(seed)).permutation(len(rows))
    return rows[np.sort(perm[:keep])]


# ---------------------------------------------------------------- features
@dataclass(frozen=True)
class Standardizer:
    """``(x - mean) / std`` per feature (every entry after the row axis), with the mean and
    (population) standard deviation of the training rows' present values.

    A missing value (NaN) is left out of the statistics; a feature without spread is only
    centred, and one without any training value is left as it is (mean 0, std 1).
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, rows: np.ndarray) -> Standardizer:
        ref = np.asarray(x)[rows].astype(np.float64)
        present = ~np.isnan(ref)
        if present.all():
            std = ref.std(axis=0)
            return cls(ref.mean(axis=0), np.where(std == 0, 1.0, std))
        counted = present.sum(axis=0)
        total = np.maximum(counted, 1)
        mean = np.where(counted > 0, np.where(present, ref, 0.0).sum(axis=0) / total, 0.0)
        spread = np.where(present, (ref - mean) ** 2, 0.0).sum(axis=0) / total
        std = np.sqrt(np.where(counted > 0, spread, 0.0))
        return cls(mean, np.where(std == 0, 1.0, std))

    def fill(self, x: np.ndarray) -> np.ndarray:
        """``x`` (as float64) with each missing value replaced by its feature's mean."""
        x = np.asarray(x, dtype=np.float64)
        return np.where(np.isnan(x), self.mean, x)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean) / std`` as float64 (NaN stays NaN)."""
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.std


def encode_label_columns(frame: pd.DataFrame, columns: Sequence[str], train: np.ndarray, where: str, *,
                         classes: Mapping[str, Sequence[Any]] | None = None,
                         standardize: Sequence[str] = (), rows_name: str = "rows",
                         ) -> tuple[dict[str, np.ndarray], dict[str, LabelCoding], dict[str, LabelScale]]:
    """The label ``columns`` of a table read by a source: each encoded by :func:`encode_labels`
    (``classes[c]`` fixes a column's class order), refused when no training row (``train``)
    has a label, and, for the columns in ``standardize``, stored as ``(y - mean) / std`` with the
    training rows' statistics (:class:`~manytask.data.batch.LabelScale` records them).

    Returns ``(targets, codings, scales)``; ``where`` names the file in messages and
    ``rows_name`` what its rows are (rows, galleries, ...)."""
    targets: dict[str, np.ndarray] = {}
    codings: dict[str, LabelCoding] = {}
    scales: dict[str, LabelScale] = {}
    for c in columns:
        y, coding = encode_labels(frame[c], Place(where, c), classes=(classes or {}).get(c))
        if not has_label(y[train]):
            raise DataError(f"{Place(where, c)} has no label in the training {rows_name}")
        if coding is not None:
            codings[c] = coding
        if c in standardize:
            if coding is not None:
                raise DataError(f"{coding.origin}; data.standardize_targets needs numbers")
            scaler = Standardizer.fit(y.astype(np.float64), train)
            scales[c] = LabelScale(float(scaler.mean), float(scaler.std))
            y = scaler(y).astype(np.float32)
        targets[c] = y
    return targets, codings, scales
