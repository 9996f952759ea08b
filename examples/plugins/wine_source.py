"""A data source written outside the package: scikit-learn's wine recognition data.

178 wines from three cultivars, 13 chemical measurements. Two tasks from one table:
``cultivar`` (3 classes) and ``flavanoids`` (regression; taken out of the features). Use it from
a config with ``plugins: [wine_source]`` (this folder on ``PYTHONPATH``) and ``data: {kind: wine}``.
This file is the whole plug-in: nothing in the package changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np

from manytask.data.batch import Splits
from manytask.data.sources import HeldOutFractions, register_source
from manytask.data.tabular import tabular_splits


@register_source
class WineSource(HeldOutFractions):
    """scikit-learn's wine data: columns ``cultivar`` and ``flavanoids``."""

    summary: ClassVar[str] = "scikit-learn's wine recognition data (cultivar, flavanoids)"
    kind: Literal["wine"] = "wine"

    def available_columns(self) -> list[str]:
        return ["cultivar", "flavanoids"]

    def build(self, columns: Sequence[str], seed: int) -> Splits:
        from sklearn.datasets import load_wine

        self.check_columns(columns, self.available_columns())
        bunch = load_wine()
        x = np.asarray(bunch.data, dtype=np.float64)
        flavanoids = list(bunch.feature_names).index("flavanoids")
        table = {"cultivar": np.asarray(bunch.target, dtype=np.int64),
                 "flavanoids": x[:, flavanoids].astype(np.float32)}
        features = np.delete(x, flavanoids, axis=1)
        return tabular_splits(features, {c: table[c] for c in columns}, val_fraction=self.val_fraction,
                              test_fraction=self.test_fraction, fraction=self.fraction, seed=seed)
