"""Feature columns of a table to a matrix (the ``table`` source's features): numbers
standardised with the training rows' statistics, categories one-hot or as ordinal codes.

Labels, split columns, value names and the standardisation itself follow the shared rules of
:mod:`manytask.data.encoding` (rows named as there: ``row 1`` is the first row after the header).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from manytask.data.encoding import (
    Place,
    Standardizer,
    is_numeric_column,
    shown,
    sorted_names,
    value_key,
)
from manytask.errors import DataError

__all__ = ["FeatureEncoder"]


def _first_text(values: pd.Series, missing: np.ndarray) -> int | None:
    """Position of the first present value that is not a number (None if all are numbers)."""
    as_numbers = pd.to_numeric(values.where(~missing), errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~missing & np.isnan(as_numbers))
    return int(bad[0]) if bad.size else None


def _numeric_block(frame: pd.DataFrame, columns: Sequence[str], where: str) -> np.ndarray:
    """The numeric feature columns as float64 with NaN for missing cells."""
    block = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, c in enumerate(columns):
        values = frame[c]
        missing = values.isna().to_numpy()
        first = None if is_numeric_column(values) else _first_text(values, missing)
        if first is not None:
            raise DataError(f"{Place(where, c).at(first)}: {shown(values.iloc[first])} is not a number "
                            "(list the column under data.categorical)")
        col = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        inf = np.flatnonzero(np.isinf(col))
        if inf.size:
            raise DataError(f"{Place(where, c).at(int(inf[0]))}: value {col[inf[0]]} is not finite")
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
    scaler: Standardizer | None = None

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
        enc.scaler = Standardizer.fit(enc._scaled_block(frame, where), train)
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
        if self.scaler is None:
            raise RuntimeError("FeatureEncoder.transform before fit")
        block = self.scaler.fill(self._scaled_block(frame, where))
        if self.standardize:
            block = self.scaler(block)
        parts = [block]
        if self.encoding == "onehot":
            for c in self.categories:
                codes = self._codes(frame, c).astype(np.int64)
                onehot = np.zeros((len(frame), len(self.categories[c])), dtype=np.float64)
                hit = codes >= 0
                onehot[np.flatnonzero(hit), codes[hit]] = 1.0
                parts.append(onehot)
        return np.concatenate(parts, axis=1).astype(np.float32)
