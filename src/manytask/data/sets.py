"""Sets (galleries) of items as rows of a data set, padded per batch, optionally bucketed by size.

A gallery is a variable-size set of items (images). :class:`SetDataset` stores every item once,
in a pool ``items`` of shape ``(M, *item_shape)``, and each gallery as a row of an index table
``index`` of shape ``(N, S)``: the pool positions of its items, left-packed, padded with ``-1``.
A batch gathers its galleries' items into a padded tensor ``(B, W, *item_shape)`` with ``W`` the
largest gallery *of the batch* (not of the data set), plus ``Batch.set_mask`` ``(B, W)``
(True = a real item). With ``bucket=True`` the training batches are cut from galleries of
similar size (sorted by size, ties broken at random, batch order shuffled), so that little of
a batch is padding; the set of galleries seen per epoch is unchanged.

Galleries sharing an item share its pool row, so memory is that of the distinct items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from manytask.data.batch import Batch, LabelCoding, LabelScale, TensorDataset
from manytask.errors import DataError

__all__ = ["SetDataset", "pack_index", "padding_share"]


def pack_index(members: Sequence[Sequence[int]]) -> Tensor:
    """An ``(N, S)`` long index table from lists of pool positions (``S`` = the largest set;
    the rest padded with -1). Every set must hold at least one item."""
    if not members:
        raise DataError("no galleries: a set data set needs at least one gallery")
    width = max(len(m) for m in members)
    out = torch.full((len(members), max(width, 1)), -1, dtype=torch.long)
    for row, m in enumerate(members):
        if len(m) == 0:
            raise DataError(f"gallery {row} is empty: every gallery needs at least one item")
        out[row, : len(m)] = torch.as_tensor(list(m), dtype=torch.long)
    return out


def padding_share(sizes: Tensor, batches: Sequence[Tensor]) -> float:
    """Share of the padded slots that are padding, over ``batches`` (index tensors into ``sizes``)."""
    real = padded = 0
    for idx in batches:
        s = sizes[idx]
        real += int(s.sum())
        padded += int(s.max()) * len(idx)
    return 1.0 - real / max(padded, 1)


class SetDataset(TensorDataset):
    """Galleries of items with gallery-level targets (see the module docstring).

    Args:
        items: ``(M, *item_shape)`` pool of items (e.g. uint8 images).
        index: ``(N, S)`` long tensor of pool positions per gallery, left-packed, -1 = padding.
        targets, masks, ids, id_name, codings, scales: as for :class:`TensorDataset`, one row
            per gallery.
        transform: applied to the gathered items of every batch, ``(B, W, *item_shape)``
            (e.g. a :class:`ChannelAffine` turning uint8 pixels into normalised floats).
        bucket: cut shuffled training batches from galleries of similar size.
    """

    def __init__(
        self,
        items: Tensor,
        index: Tensor,
        targets: Mapping[str, Tensor],
        masks: Mapping[str, Tensor] | None = None,
        *,
        ids: np.ndarray | None = None,
        id_name: str = "gallery",
        codings: Mapping[str, LabelCoding] | None = None,
        scales: Mapping[str, LabelScale] | None = None,
        transform: Callable[[Tensor], Tensor] | None = None,
        bucket: bool = False,
    ) -> None:
        index = torch.as_tensor(index, dtype=torch.long)
        if index.dim() != 2:
            raise DataError(f"a set index must be (galleries, max size), got shape {tuple(index.shape)}")
        present = index >= 0
        if index.shape[0] and not bool(present[:, 0].all()):
            raise DataError(f"gallery {int((~present[:, 0]).nonzero()[0])} is empty: every gallery needs an item")
        if index.shape[1] > 1 and bool((present[:, 1:] & ~present[:, :-1]).any()):
            raise DataError("a set index must be left-packed (padding -1 only after the last item)")
        if index.numel() and int(index.max()) >= int(items.shape[0]):
            raise DataError(f"a set index points at item {int(index.max())} but the pool has {items.shape[0]} items")
        super().__init__(index, targets, masks, present, ids=ids, id_name=id_name, codings=codings,
                         scales=scales, transform=None)
        self.items = items
        self.item_transform = transform
        self.bucket = bucket
        self.sizes = present.sum(1).cpu()

    # ------------------------------------------------------------------ shape
    @property
    def index(self) -> Tensor:
        return self.inputs

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """``(largest gallery, *item_shape)``: what a set trunk's builder receives."""
        return (int(self.index.shape[1]), *(int(s) for s in self.items.shape[1:]))

    # ------------------------------------------------------------------ copies
    def _like(self, index: Tensor, targets: Mapping[str, Tensor], masks: Mapping[str, Tensor],
              idx: Tensor | None = None, **extras: object) -> SetDataset:
        kw = self._extras(idx)
        kw.pop("transform")
        kw.update(extras)
        return SetDataset(self.items, index, targets, masks, transform=self.item_transform,
                          bucket=self.bucket, **kw)  # type: ignore[arg-type]

    def subset(self, index: Tensor | Sequence[int]) -> SetDataset:
        idx = torch.as_tensor(index, dtype=torch.long)
        rows = self.index[idx.to(self.index.device)]
        width = max(int(self.sizes[idx.cpu()].max()), 1) if len(idx) else 1
        return self._like(rows[:, :width], {k: v[idx] for k, v in self.targets.items()},
                          {k: v[idx] for k, v in self.masks.items()}, idx)

    def select(self, columns: Mapping[str, str]) -> SetDataset:
        view = super().select(columns)
        return self._like(self.index, view.targets, view.masks, codings=view.codings, scales=view.scales)

    def to(self, device: torch.device | str) -> SetDataset:
        kw = self._extras()
        kw.pop("transform")
        return SetDataset(self.items.to(device), self.index.to(device),
                          {k: v.to(device) for k, v in self.targets.items()},
                          {k: v.to(device) for k, v in self.masks.items()},
                          transform=self.item_transform, bucket=self.bucket, **kw)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ batches
    def batch(self, idx: Tensor) -> Batch:
        width = max(int(self.sizes[idx.cpu()].max()), 1) if len(idx) else 1
        dev_idx = idx.to(self.index.device)
        rows = self.index[dev_idx, :width]
        present = rows >= 0
        x = self.items[rows.clamp(min=0)]
        if self.item_transform is not None:
            x = self.item_transform(x.flatten(0, 1)).unflatten(0, rows.shape)
        return Batch(
            inputs=x,
            targets={k: v[dev_idx] for k, v in self.targets.items()},
            masks={k: v[dev_idx] for k, v in self.masks.items()},
            set_mask=present,
        )

    def batch_order(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                    drop_last: bool = False) -> list[Tensor]:
        """The row indices of each batch of an epoch (bucketed by size when ``bucket`` and
        ``shuffle``; evaluation order is kept as stored)."""
        n = len(self)
        if not (self.bucket and shuffle):
            order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
            stop = n - (n % batch_size) if drop_last else n
            return [order[s : s + batch_size] for s in range(0, stop, batch_size)]
        jitter = torch.rand(n, generator=generator)
        order = torch.argsort(self.sizes.to(torch.float64) + 0.5 * jitter.to(torch.float64))
        stop = n - (n % batch_size) if drop_last else n
        chunks = [order[s : s + batch_size] for s in range(0, stop, batch_size)]
        perm = torch.randperm(len(chunks), generator=generator).tolist()
        return [chunks[i] for i in perm]

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False) -> Iterator[Batch]:
        for idx in self.batch_order(batch_size, shuffle, generator, drop_last):
            yield self.batch(idx)
