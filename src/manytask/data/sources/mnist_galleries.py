"""``kind: mnist_galleries`` — galleries of real MNIST digits with gallery-level tasks.

The source digits (``source``, as for ``kind: mnist``) are split per digit class into three
disjoint pools (``pool_fractions``, default 70/10/20% for train/val/test); the galleries of
each split draw their images only from that split's pool, each split from its own random
stream (so validation and test do not change with ``train_size`` or ``fraction``). How a
gallery is drawn and every label: :mod:`manytask.data.galleries`; the task table:
``docs/galleries.md``.

Images are stored once as uint8 ``(M, 1, 28, 28)`` (every source digit; galleries hold
positions into it) and normalised per batch with the training pool's pixel mean and standard
deviation (:class:`~manytask.data.batch.ChannelAffine`). Regression labels are standardised
with the training galleries' mean and standard deviation (``standardize_targets``; predictions
are restored to the labels' own units). ``missing`` blanks that share of every column's labels
at random (independently per column and split; a training split keeps at least one label).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from manytask.data.batch import LabelScale, Splits
from manytask.data.sources.base import register_source
from manytask.data.sources.digit_files import DigitFiles
from manytask.errors import ConfigError

__all__ = ["MNISTGalleriesSource", "split_pools"]

_Part = tuple[list[np.ndarray], dict[str, np.ndarray]]  # a split's galleries (source positions) and labels

#: the most galleries one source builds (their index table is galleries x max_size longs)
MAX_GALLERIES = 2_000_000


def split_pools(labels: np.ndarray, fractions: Sequence[float], rng: np.random.Generator) -> list[np.ndarray]:
    """Source positions of the train / val / test pools: each digit class's positions shuffled
    and cut by ``fractions`` (so every pool holds every digit in about the same shares);
    disjoint, each sorted."""
    pools: list[list[np.ndarray]] = [[], [], []]
    for d in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == d))
        cuts = np.floor(np.cumsum(fractions) * len(rows) + 1e-9).astype(int)
        for s, (a, b) in enumerate(zip([0, *cuts[:-1]], cuts)):
            pools[s].append(rows[a:b])
    return [np.sort(np.concatenate(p)) for p in pools]


@register_source
class MNISTGalleriesSource(DigitFiles):
    """Galleries of ``min_size..max_size`` real MNIST digits; 31 gallery-level columns plus
    ``heldout`` (see the module docstring and ``docs/galleries.md``)."""

    summary: ClassVar[str] = "galleries (sets) of real MNIST digits: 17 binary, 7 multiclass, 7 regression tasks"

    kind: Literal["mnist_galleries"] = "mnist_galleries"
    train_size: int = Field(2000, ge=1)
    val_size: int = Field(500, ge=1)
    test_size: int = Field(500, ge=1)
    min_size: int = Field(5, ge=1)
    max_size: int = Field(20, ge=1)
    pool_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    theme_alpha: float = Field(0.5, gt=0)
    missing: float = Field(0.0, ge=0, lt=1)
    standardize_targets: bool = True
    bucket: bool = True

    @field_validator("pool_fractions")
    @classmethod
    def _fractions(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f <= 0 for f in v) or sum(v) > 1 + 1e-9:
            raise ValueError(f"expected three shares > 0 summing to at most 1, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _sizes(self) -> MNISTGalleriesSource:
        """Refuse impossible sizes before anything is allocated."""
        if self.min_size > self.max_size:
            raise ValueError(f"min_size: {self.min_size} is larger than max_size {self.max_size}")
        total = self.train_size + self.val_size + self.test_size
        if total > MAX_GALLERIES:
            raise ValueError(f"train_size + val_size + test_size = {total:,} galleries, more than {MAX_GALLERIES:,}")
        if self.max_size > 1000:
            raise ValueError(f"max_size: {self.max_size} images per gallery is more than 1000")
        return self

    def available_columns(self) -> list[str]:
        from manytask.data.galleries import gallery_columns

        return gallery_columns()

    def build(self, columns: Sequence[str], seed: int) -> Splits:
        from manytask.data.mnist import load_digits_source

        self.check_columns(columns, self.available_columns())
        images, labels = load_digits_source(self.source, self.idx_dir)
        streams = np.random.SeedSequence(seed).spawn(4)
        pools = split_pools(labels, self.pool_fractions, np.random.default_rng(streams[0]))
        for name, pool in zip(("train", "val", "test"), pools):
            if len(pool) == 0:
                raise ConfigError(f"data.pool_fractions: the {name} pool gets no source digit "
                                  f"of the {len(labels)} '{self.source}' digits")
        items = torch.from_numpy(np.ascontiguousarray(images[:, None]))
        sizes = (self.train_size, self.val_size, self.test_size)
        parts = [self._split(labels, pool, size, np.random.default_rng(ss), columns)
                 for pool, size, ss in zip(pools, sizes, streams[1:])]
        keep = max(1, round(self.fraction * self.train_size))
        members, table = parts[0]
        parts[0] = (members[:keep], {c: v[:keep] for c, v in table.items()})
        return self._assemble(items, pools[0], parts, columns)

    def _split(self, labels: np.ndarray, pool: np.ndarray, count: int, rng: np.random.Generator,
               columns: Sequence[str]) -> _Part:
        from manytask.data.galleries import (
            HELDOUT,
            HELDOUT_NOISE,
            draw_galleries,
            heldout_labels,
            task_by_name,
        )

        members, counts = draw_galleries(labels[pool], count, self.min_size, self.max_size, rng, self.theme_alpha)
        noise = rng.normal(0.0, HELDOUT_NOISE, size=count)
        table = {}
        for c in columns:
            table[c] = heldout_labels(counts, noise) if c == HELDOUT else task_by_name(c).fn(counts)
        if self.missing > 0:
            for c in columns:
                blank = rng.random(count) < self.missing
                table[c] = _blanked(table[c], blank)
        return [pool[m] for m in members], table

    def _assemble(self, items: torch.Tensor, train_pool: np.ndarray, parts: list[_Part],
                  columns: Sequence[str]) -> Splits:
        from manytask.data.encoding import Standardizer
        from manytask.data.galleries import HELDOUT, task_by_name
        from manytask.data.sets import SetDataset, pack_index
        from manytask.data.sources.pixels import pixel_transform

        transform = pixel_transform("train", items, train_pool)
        scales: dict[str, LabelScale] = {}
        for c in columns:
            train_values = parts[0][1][c]
            if self.standardize_targets and c != HELDOUT and task_by_name(c).kind == "regression":
                scaler = Standardizer.fit(train_values.astype(np.float64)[:, None], np.arange(len(train_values)))
                scales[c] = LabelScale(float(scaler.mean[0]), float(scaler.std[0]))
        out = []
        offsets = (0, self.train_size, self.train_size + self.val_size)  # ids do not move with fraction
        for (members, table), offset in zip(parts, offsets):
            ids = np.array([f"g{offset + i:06d}" for i in range(len(members))], dtype=object)
            targets = {}
            for c in columns:
                v = table[c]
                if c in scales:
                    v = ((v.astype(np.float64) - scales[c].mean) / scales[c].std).astype(np.float32)
                targets[c] = torch.from_numpy(np.ascontiguousarray(v))
            out.append(SetDataset(items, pack_index([m.tolist() for m in members]), targets, ids=ids,
                                  id_name="gallery", scales=scales, transform=transform, bucket=self.bucket))
        return Splits(*out)


def _blanked(values: np.ndarray, blank: np.ndarray) -> np.ndarray:
    """``values`` with the rows ``blank`` missing (NaN for floats, -1 for class indices); one
    row is always kept so that a column never loses every label."""
    blank = blank.copy()
    if blank.all():
        blank[0] = False
    out = values.copy()
    out[blank] = np.nan if out.dtype.kind == "f" else -1
    return out
