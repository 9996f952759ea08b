"""``kind: yeast`` — river's Yeast multi-label gene-function set (2,417 × 103, 14 labels)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from manytask.data.batch import Splits
from manytask.data.sources.base import HeldOutFractions, register_source


@register_source
class YeastSource(HeldOutFractions):
    """Yeast (Elisseeff & Weston 2002) from the copy that ``river`` ships: 103 standardised
    features, binary columns ``label_0`` … ``label_13``; rows split at random."""

    summary: ClassVar[str] = "Yeast multi-label set shipped by river (14 binary labels)"

    kind: Literal["yeast"] = "yeast"

    def available_columns(self) -> list[str]:
        from manytask.data.tabular import YEAST_N_LABELS

        return [f"label_{j}" for j in range(YEAST_N_LABELS)]

    def build(self, columns: Sequence[str], seed: int) -> Splits:
        from manytask.data.tabular import load_yeast, tabular_splits

        self.check_columns(columns, self.available_columns())
        x, y = load_yeast()
        table = {f"label_{j}": y[:, j] for j in range(y.shape[1])}
        return tabular_splits(x, {c: table[c] for c in columns}, val_fraction=self.val_fraction,
                              test_fraction=self.test_fraction, fraction=self.fraction, seed=seed)
