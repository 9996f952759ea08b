"""Pure table encoding: label columns to targets, feature columns to a matrix, split columns
to row indices. Used by the ``table`` data source and by ``manytask init``.

Conventions shared by every function here:

* rows are named as in error messages, counted from 1 after the header (``row 1`` is the
  first data row);
* a cell is missing when pandas reads it as missing (an empty cell, ``NA``, ``NaN``, ``null``);
* a value's *name* (:func:`value_key`) is its text, with ``True``/``False`` as ``true``/``false``
  and integral numbers without a decimal point (``3.0`` → ``3``), so that classes written in a
  YAML config match the values read from a CSV or Parquet file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from manytask.data.batch import LabelCoding
from manytask.errors import DataError

__all__ = [
    "BOOLEAN_NAMES",
    "FeatureEncoder",
    "encode_labels",
    "is_numeric_column",
    "shown",
    "sorted_names",
    "split_rows_by_column",
    "value_key",
]

#: text label pairs read as 0 / 1 without a ``classes`` entry (compared in lower case)
BOOLEAN_NAMES: tuple[tuple[str, str], ...] = (("false", "true"), ("no", "yes"))

SPLITS = ("train", "val", "test")


def value_key(value: Any) -> str:
    """The name of a cell value (see the module docstring)."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def shown(value: Any) -> str:
    """A cell value as written in error messages: text quoted, numbers and booleans plain."""
    return repr(value) if isinstance(value, str) else value_key(value)


def sorted_names(names: Sequence[str] | set[str]) -> list[str]:
    """Names in a stable order: numbers by value first, then text alphabetically."""

    def key(name: str) -> tuple[int, float, str]:
        try:
            return (0, float(name), name)
        except ValueError:
            return (1, 0.0, name)

    return sorted(set(names), key=key)


def is_numeric_column(values: pd.Series) -> bool:
    """True for integer and float columns (booleans and text are not numeric features)."""
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _first_text(values: pd.Series, missing: np.ndarray) -> int | None:
    """Position of the first present value that is not a number (None if all are numbers)."""
    as_numbers = pd.to_numeric(values.where(~missing), errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~missing & np.isnan(as_numbers))
    return int(bad[0]) if bad.size else None


def _coded(keys: pd.Series, missing: np.ndarray, names: Sequence[str], *, column: str, where: str,
           values: pd.Series) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    codes = keys.map(index).to_numpy(dtype=float, copy=True)
    unknown = np.flatnonzero(~missing & np.isnan(codes))
    if unknown.size:
        i = int(unknown[0])
        raise DataError(f"{where}: row {i + 1}, column '{column}': value {shown(values.iloc[i])} is not one of "
                        f"the classes {', '.join(names)} (data.classes.{column})")
    codes[missing] = np.nan
    return codes.astype(np.float32)


def encode_labels(values: pd.Series, *, column: str, where: str,
                  classes: Sequence[Any] | None = None) -> tuple[np.ndarray, LabelCoding | None]:
    """A label column as float32 targets with NaN for missing labels.

    Numbers stay numbers (a binary task reads 0/1, a multiclass task class indices, a
    regression task values). Names become class indices: in the order of ``classes`` when
    given, else ``false``/``true`` and ``no``/``yes`` as 0/1 (any case), else in
    :func:`sorted_names` order. A column given ``classes`` is coded by them even when its
    values are numbers (``[1, 2, 3]`` → 0, 1, 2).

    Returns:
        ``(targets, coding)``; ``coding`` is None for columns kept as numbers.

    Raises:
        DataError: every value is missing, or a value is not one of ``classes`` (names the
            file, row and column).
    """
    missing = values.isna().to_numpy()
    if missing.all():
        raise DataError(f"{where}: column '{column}' has no label (every value is missing)")
    if classes is None and is_numeric_column(values):
        return values.to_numpy(dtype=np.float32, na_value=np.nan, copy=True), None
    present = values.where(~missing)
    keys = present.map(value_key, na_action="ignore")
    first = _first_text(values, missing)
    if first is not None:
        origin = f"{where}: row {first + 1}, column '{column}' has the class name {shown(values.iloc[first])}"
    else:
        origin = f"{where}: column '{column}' is coded as classes (data.classes.{column})"
    if classes is not None:
        names = [value_key(c) for c in classes]
    else:
        found = set(keys[~missing])
        lowered = {k.lower() for k in found}
        pair = next((p for p in BOOLEAN_NAMES if lowered <= set(p)), None)
        if pair is not None:
            keys, names = keys.str.lower(), list(pair)
        else:
            names = sorted_names(found)
    codes = _coded(keys, missing, names, column=column, where=where, values=values)
    return codes, LabelCoding(tuple(names), origin)


def split_rows_by_column(values: pd.Series, names: Mapping[str, Sequence[str]], *, column: str,
                         where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices ``(train, val, test)`` named by a split column (names compared in lower case).

    Raises:
        DataError: a row has no split name or an unknown one, or a split has no row.
    """
    lookup = {value_key(n).lower(): split for split in SPLITS for n in names.get(split, ())}
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(f"{where}: row {int(np.flatnonzero(missing)[0]) + 1}, column '{column}': no split name")
    parts = values.map(lambda v: lookup.get(value_key(v).lower())).to_numpy(dtype=object)
    unknown = np.flatnonzero(pd.isna(parts))
    if unknown.size:
        i = int(unknown[0])
        expected = ", ".join(f"{s}: {'/'.join(map(str, names.get(s, ())))}" for s in SPLITS)
        raise DataError(f"{where}: row {i + 1}, column '{column}': unknown split {shown(values.iloc[i])} "
                        f"(data.split_names: {expected})")
    out = []
    for split in SPLITS:
        rows = np.flatnonzero(parts == split).astype(np.int64)
        if rows.size == 0:
            raise DataError(f"{where}: column '{column}': no row of the {split} split "
                            f"(values {'/'.join(map(str, names.get(split, ())))})")
        out.append(rows)
    return out[0], out[1], out[2]


def _numeric_block(frame: pd.DataFrame, columns: Sequence[str], where: str) -> np.ndarray:
    """The numeric feature columns as float64 with NaN for missing cells."""
    block = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, c in enumerate(columns):
        values = frame[c]
        missing = values.isna().to_numpy()
        first = None if is_numeric_column(values) else _first_text(values, missing)
        if first is not None:
            raise DataError(f"{where}: row {first + 1}, column '{c}': {shown(values.iloc[first])} is not a number "
                            "(list the column under data.categorical)")
        col = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        inf = np.flatnonzero(np.isinf(col))
        if inf.size:
            raise DataError(f"{where}: row {int(inf[0]) + 1}, column '{c}': value {col[inf[0]]} is not finite")
        block[:, j] = col
    return block


@dataclass
class FeatureEncoder:
    """Feature columns → a float32 matrix, with everything learned from the training rows.

    Numeric columns (and ordinal ``codes``) are standardised with the training rows' mean
    and standard deviation (constant columns only centred; with ``standardize=False`` left
    as they are); a missing number becomes the training mean (0 after standardising). A
    categorical column becomes one 0/1 column per category seen in the training rows
    (``onehot``; an unseen or missing category is all zeros), or one column holding the
    category's index in sorted order (``codes``; unseen or missing = -1 before standardising).
    """

    numeric: list[str]
    categories: dict[str, list[str]]
    encoding: Literal["onehot", "codes"] = "onehot"
    standardize: bool = True
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @classmethod
    def fit(cls, frame: pd.DataFrame, train: np.ndarray, *, numeric: Sequence[str],
            categorical: Sequence[str], encoding: Literal["onehot", "codes"] = "onehot",
            standardize: bool = True, max_categories: int = 100, where: str = "data") -> FeatureEncoder:
        categories: dict[str, list[str]] = {}
        for c in categorical:
            seen = frame[c].iloc[train].dropna().map(value_key)
            names = sorted_names(set(seen))
            if len(names) > max_categories:
                raise DataError(f"{where}: column '{c}' has {len(names)} categories in the training rows "
                                f"(data.max_categories is {max_categories}); leave it out of data.features")
            categories[c] = names
        enc = cls(list(numeric), categories, encoding, standardize)
        rows = enc._scaled_block(frame, where)[train]
        counted = np.isfinite(rows).sum(axis=0)
        total = np.maximum(counted, 1)
        enc.mean = np.where(counted > 0, np.nansum(rows, axis=0) / total, 0.0)
        std = np.sqrt(np.where(counted > 0, np.nansum((rows - enc.mean) ** 2, axis=0) / total, 0.0))
        std[std == 0] = 1.0
        enc.std = std
        return enc

    @property
    def names(self) -> list[str]:
        """Names of the matrix columns (``column=category`` for one-hot columns)."""
        out = list(self.numeric)
        if self.encoding == "codes":
            return out + list(self.categories)
        return out + [f"{c}={n}" for c, names in self.categories.items() for n in names]

    def _codes(self, frame: pd.DataFrame, column: str) -> np.ndarray:
        index = {n: i for i, n in enumerate(self.categories[column])}
        keys = frame[column].map(value_key, na_action="ignore")
        return keys.map(index).fillna(-1).to_numpy(dtype=np.float64)

    def _scaled_block(self, frame: pd.DataFrame, where: str) -> np.ndarray:
        block = _numeric_block(frame, self.numeric, where)
        if self.encoding == "codes" and self.categories:
            codes = np.stack([self._codes(frame, c) for c in self.categories], axis=1)
            block = np.concatenate([block, codes], axis=1)
        return block

    def transform(self, frame: pd.DataFrame, where: str = "data") -> np.ndarray:
        """The ``(rows, len(names))`` float32 matrix of ``frame``."""
        if self.mean is None or self.std is None:
            raise RuntimeError("FeatureEncoder.transform before fit")
        block = self._scaled_block(frame, where)
        block = np.where(np.isnan(block), self.mean, block)
        if self.standardize:
            block = (block - self.mean) / self.std
        parts = [block]
        if self.encoding == "onehot":
            for c in self.categories:
                codes = self._codes(frame, c).astype(np.int64)
                onehot = np.zeros((len(frame), len(self.categories[c])), dtype=np.float64)
                hit = codes >= 0
                onehot[np.flatnonzero(hit), codes[hit]] = 1.0
                parts.append(onehot)
        return np.concatenate(parts, axis=1).astype(np.float32)
