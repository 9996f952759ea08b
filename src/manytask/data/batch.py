"""The batch contract and an in-memory multi-task data set.

A :class:`Batch` carries ``inputs`` (a tensor; for sets, a padded tensor plus ``set_mask``),
``targets: dict[task, Tensor]`` and ``masks: dict[task, BoolTensor]`` (True = labelled).
Missing labels may also be encoded in the targets themselves (NaN / -1, see
:mod:`manytask.tasks`); both are honoured.

:class:`TensorDataset` keeps everything as tensors in memory and slices batches directly,
which avoids the per-sample overhead of a ``DataLoader`` for the small, in-memory data sets
that multi-task research mostly uses. A data set may also carry row ``ids`` (kept with
predictions) and, for label columns read from class names, their :class:`LabelCoding`.
Images may be held as uint8 (a quarter of the memory of float32) with a transform, such as
a :class:`ChannelAffine`, that turns the inputs of each batch into normalised floats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from manytask.errors import DataError


@dataclass
class Batch:
    inputs: Tensor
    targets: dict[str, Tensor]
    masks: dict[str, Tensor] = field(default_factory=dict)
    set_mask: Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        mv = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return Batch(
            inputs=mv(self.inputs),
            targets={k: mv(v) for k, v in self.targets.items()},
            masks={k: mv(v) for k, v in self.masks.items()},
            set_mask=None if self.set_mask is None else mv(self.set_mask),
        )

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def model_args(self) -> tuple[Tensor, ...]:
        """What a model (or its ``encode``) is called with: ``(inputs,)``, or
        ``(inputs, set_mask)`` for padded sets."""
        return (self.inputs,) if self.set_mask is None else (self.inputs, self.set_mask)


@dataclass(frozen=True)
class LabelCoding:
    """How a label column written as names was coded: ``classes[i]`` is class index ``i``.

    ``origin`` points at the first value that is not a number (``file: row R, column 'C'
    ('value')``), so that a task which needs numbers can name it when it refuses the column.
    """

    classes: tuple[str, ...]
    origin: str


@dataclass(frozen=True)
class LabelScale:
    """A label column stored standardised, ``stored = (value - mean) / std`` (training rows'
    statistics); :meth:`restore` gives values in the column's own units."""

    mean: float
    std: float

    def restore(self, stored: np.ndarray) -> np.ndarray:
        return np.asarray(stored) * self.std + self.mean


@dataclass(frozen=True)
class ChannelAffine:
    """Turn stored inputs (e.g. uint8 pixels) into float32 per batch, channel by channel::

        out[:, c] = float32(x[:, c]) * scale[c] - shift[c]

    on dimension 1 (one value per channel, or a single value for every entry). Pixel
    normalisation ``(x / 255 - mean) / std`` is ``scale = 1 / (255 std)``,
    ``shift = mean / std`` (:meth:`from_mean_std`). Both factors are rounded to float32 and
    applied as a multiply then a subtract, so the result equals, bit for bit, normalising a
    float32 copy of the whole array that way in advance.
    """

    scale: tuple[float, ...]
    shift: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.scale or len(self.scale) != len(self.shift):
            raise ValueError("ChannelAffine: scale and shift need the same number (>= 1) of values")

    @classmethod
    def from_mean_std(cls, mean: Sequence[float], std: Sequence[float], max_value: float = 255.0) -> ChannelAffine:
        """``(x / max_value - mean[c]) / std[c]``."""
        return cls(tuple(1.0 / (max_value * float(s)) for s in std),
                   tuple(float(m) / float(s) for m, s in zip(mean, std)))

    def __call__(self, x: Tensor) -> Tensor:
        shape = (1, len(self.scale)) + (1,) * max(x.dim() - 2, 0) if len(self.scale) > 1 else (1,)
        scale = torch.tensor(self.scale, dtype=torch.float32, device=x.device).reshape(shape)
        shift = torch.tensor(self.shift, dtype=torch.float32, device=x.device).reshape(shape)
        return x.to(torch.float32) * scale - shift


class TensorDataset:
    """Inputs and named target columns held as tensors, sliced into :class:`Batch` es.

    Args:
        inputs: (N, ...) tensor.
        targets: column name -> (N, ...) tensor.
        masks: optional column name -> (N,) bool tensor (True = labelled).
        set_mask: optional (N, S) bool tensor for padded sets (True = real element).
        ids: optional (N,) array naming each row (kept with predictions).
        id_name: what the ids are called (a column name of the source; default ``row``).
        codings: optional column name -> :class:`LabelCoding` for columns coded from names.
        scales: optional column name -> :class:`LabelScale` for columns stored standardised.
        transform: optional function applied to the inputs of every batch (e.g. a
            :class:`ChannelAffine` turning stored uint8 pixels into normalised floats);
            ``inputs`` stay as stored.
    """

    def __init__(
        self,
        inputs: Tensor,
        targets: Mapping[str, Tensor],
        masks: Mapping[str, Tensor] | None = None,
        set_mask: Tensor | None = None,
        *,
        ids: np.ndarray | None = None,
        id_name: str = "row",
        codings: Mapping[str, LabelCoding] | None = None,
        scales: Mapping[str, LabelScale] | None = None,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        n = int(inputs.shape[0])
        for name, t in targets.items():
            if int(t.shape[0]) != n:
                raise DataError(f"target '{name}' has {t.shape[0]} rows but inputs have {n}")
        masks = dict(masks or {})
        for name, m in masks.items():
            if name not in targets:
                raise DataError(f"mask '{name}' has no matching target column")
            if int(m.shape[0]) != n:
                raise DataError(f"mask '{name}' has {m.shape[0]} rows but inputs have {n}")
        if set_mask is not None and int(set_mask.shape[0]) != n:
            raise DataError(f"set_mask has {set_mask.shape[0]} rows but inputs have {n}")
        if ids is not None and len(ids) != n:
            raise DataError(f"ids has {len(ids)} rows but inputs have {n}")
        self.inputs = inputs
        self.targets = dict(targets)
        self.masks = {k: v.to(torch.bool) for k, v in masks.items()}
        self.set_mask = set_mask
        self.ids = None if ids is None else np.asarray(ids)
        self.id_name = id_name
        self.codings = {k: c for k, c in (codings or {}).items() if k in self.targets}
        self.scales = {k: c for k, c in (scales or {}).items() if k in self.targets}
        self.transform = transform

    def _extras(self, idx: Tensor | None = None) -> dict[str, Any]:
        """``ids``, ``id_name``, ``codings``, ``scales`` and ``transform`` for a copy (rows ``idx``
        of the ids)."""
        ids = self.ids if self.ids is None or idx is None else self.ids[idx.cpu().numpy()]
        return {"ids": ids, "id_name": self.id_name, "codings": self.codings, "scales": self.scales,
                "transform": self.transform}

    def row_ids(self) -> np.ndarray:
        """The ids of the rows, or their positions 0..N-1 when the data has none."""
        return np.arange(len(self)) if self.ids is None else self.ids

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample's inputs (what a trunk's builder receives)."""
        return tuple(int(s) for s in self.inputs.shape[1:])

    @property
    def columns(self) -> list[str]:
        return list(self.targets)

    def subset(self, index: Tensor | Sequence[int]) -> TensorDataset:
        idx = torch.as_tensor(index, dtype=torch.long)
        return TensorDataset(
            self.inputs[idx],
            {k: v[idx] for k, v in self.targets.items()},
            {k: v[idx] for k, v in self.masks.items()},
            None if self.set_mask is None else self.set_mask[idx],
            **self._extras(idx),
        )

    def select(self, columns: Mapping[str, str]) -> TensorDataset:
        """A view whose targets are renamed ``{new_name: column}`` (e.g. task name -> column)."""
        for new, col in columns.items():
            if col not in self.targets:
                raise DataError(
                    f"task '{new}' reads column '{col}', which the data does not have "
                    f"(available: {', '.join(sorted(self.targets))})"
                )
        return TensorDataset(
            self.inputs,
            {new: self.targets[col] for new, col in columns.items()},
            {new: self.masks[col] for new, col in columns.items() if col in self.masks},
            self.set_mask,
            ids=self.ids,
            id_name=self.id_name,
            codings={new: self.codings[col] for new, col in columns.items() if col in self.codings},
            scales={new: self.scales[col] for new, col in columns.items() if col in self.scales},
            transform=self.transform,
        )

    def batch(self, idx: Tensor) -> Batch:
        x = self.inputs[idx]
        return Batch(
            inputs=x if self.transform is None else self.transform(x),
            targets={k: v[idx] for k, v in self.targets.items()},
            masks={k: v[idx] for k, v in self.masks.items()},
            set_mask=None if self.set_mask is None else self.set_mask[idx],
        )

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - (n % batch_size) if drop_last else n
        for start in range(0, stop, batch_size):
            yield self.batch(order[start : start + batch_size])

    def to(self, device: torch.device | str) -> TensorDataset:
        return TensorDataset(
            self.inputs.to(device),
            {k: v.to(device) for k, v in self.targets.items()},
            {k: v.to(device) for k, v in self.masks.items()},
            None if self.set_mask is None else self.set_mask.to(device),
            **self._extras(),
        )


@dataclass
class Splits:
    """Train / validation / test data sets built from disjoint sources."""

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset

    def select(self, columns: Mapping[str, str]) -> Splits:
        return Splits(self.train.select(columns), self.val.select(columns), self.test.select(columns))
