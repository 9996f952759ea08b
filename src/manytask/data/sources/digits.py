"""``kind: digits`` — scikit-learn's 1,797 8×8 handwritten digits as 64 features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np

from manytask.data.batch import Splits
from manytask.data.sources.base import HeldOutFractions, register_source

_COLUMNS = ("digit", "parity", "ge5")


@register_source
class DigitsSource(HeldOutFractions):
    """Columns ``digit`` (0–9), ``parity`` (odd = 1) and ``ge5`` (digit ≥ 5); rows split at random."""

    summary: ClassVar[str] = "scikit-learn's 8x8 digits (digit, parity, ge5)"

    kind: Literal["digits"] = "digits"

    def available_columns(self) -> list[str]:
        return list(_COLUMNS)

    def build(self, columns: Sequence[str], seed: int) -> Splits:
        from manytask.data.tabular import load_sklearn_digits, tabular_splits

        self.check_columns(columns, self.available_columns())
        x, y = load_sklearn_digits()
        y = np.asarray(y)
        table = {"digit": y, "parity": (y % 2).astype(np.float32), "ge5": (y >= 5).astype(np.float32)}
        return tabular_splits(x, {c: table[c] for c in columns}, val_fraction=self.val_fraction,
                              test_fraction=self.test_fraction, fraction=self.fraction, seed=seed)
