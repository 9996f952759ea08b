"""``kind: images`` — a folder of image files and a CSV of their labels.

The CSV (``labels``, default ``<root>/labels.csv``) has a column of file names relative to
``root`` (``file_column``) and one column per target the tasks read. Images are decoded
with Pillow, converted to ``mode`` (``L`` or ``RGB``), resized to ``size`` and held in
memory as one uint8 tensor ``(N, C, H, W)``; every batch is turned into normalised float32
on the fly (:class:`~manytask.data.batch.ChannelAffine`), so the data set takes a quarter of
the memory of float pixels.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from manytask.data.batch import Splits, TensorDataset
from manytask.data.encoding import Place, encode_labels, has_label, split_rows
from manytask.data.image_folder import (
    LabelTable,
    decode_images,
    list_image_files,
    match_files,
    read_label_csv,
)
from manytask.data.sources.base import HeldOutFractions, register_source
from manytask.data.sources.pixels import (
    Normalize,
    check_image_size,
    parse_normalize,
    pixel_transform,
)
from manytask.data.tabular import tabular_split_indices
from manytask.errors import DataError


@register_source
class ImagesSource(HeldOutFractions):
    """Images from ``root`` with labels from a CSV (see the module docstring).

    Fields: ``root``; ``labels`` (CSV path, default ``root/labels.csv``); ``file_column``;
    ``size`` ([H, W]; default: the first image's size, which every image must then have);
    ``mode`` (``L`` / ``RGB``); ``resample`` (``bilinear`` / ``nearest``); ``split_column``
    (else ``val_fraction`` / ``test_fraction``); ``normalize`` (``train`` = per-channel
    training statistics, ``none``, or fixed ``{mean, std}``); ``max_memory_gb``.
    """

    summary: ClassVar[str] = "your own folder of image files with a CSV of labels (Pillow)"

    kind: Literal["images"] = "images"
    root: str
    labels: str | None = None
    file_column: str = "file"
    size: tuple[int, int] | None = None
    mode: Literal["L", "RGB"] = "L"
    resample: Literal["bilinear", "nearest"] = "bilinear"
    split_column: str | None = None
    normalize: Normalize = "train"
    max_memory_gb: float = Field(4.0, gt=0)

    @field_validator("size")
    @classmethod
    def _size(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        return check_image_size(v)

    @field_validator("normalize", mode="before")
    @classmethod
    def _normalize(cls, v: object) -> object:
        return parse_normalize(v)

    def labels_path(self) -> Path:
        return Path(self.labels).expanduser() if self.labels else Path(self.root).expanduser() / "labels.csv"

    def _table(self, columns: Sequence[str]) -> tuple[Path, LabelTable]:
        root = Path(self.root).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: image folder not found")
        wanted = list(dict.fromkeys([*columns, *([self.split_column] if self.split_column else [])]))
        table = read_label_csv(self.labels_path(), self.file_column, wanted)
        unlabelled = match_files(table, root, list_image_files(root), self.file_column)
        if unlabelled:
            shown = ", ".join(unlabelled[:3]) + (", ..." if len(unlabelled) > 3 else "")
            warnings.warn(f"{root}: {len(unlabelled)} image(s) have no row in {table.path} and are ignored: {shown}",
                          stacklevel=2)
        return root, table

    def _rows(self, table: LabelTable, seed: int) -> tuple[np.ndarray, ...]:
        n = len(table.files)
        if self.split_column is None:
            return tabular_split_indices(n, val_fraction=self.val_fraction, test_fraction=self.test_fraction,
                                         fraction=self.fraction, seed=seed)
        return split_rows(table.cells[self.split_column], Place(str(table.path), self.split_column),
                          fraction=self.fraction, seed=seed)

    def build(self, columns: Sequence[str], seed: int) -> Splits:
        root, table = self._table(columns)
        targets, codings = {}, {}
        for col in columns:
            y, coding = encode_labels(table.cells[col], Place(str(table.path), col))
            targets[col] = torch.from_numpy(y)
            if coding is not None:
                codings[col] = coding
        train, val, test = self._rows(table, seed)
        order = np.concatenate([train, val, test])  # decode only the rows kept, split by split
        images = torch.from_numpy(decode_images(
            root, [table.files[i] for i in order], size=self.size, mode=self.mode, resample=self.resample,
            max_bytes=self.max_memory_gb * 2**30,
        ))
        n_train, n_val = len(train), len(val)
        transform = pixel_transform(self.normalize, images, np.arange(n_train), where="data")

        def part(start: int, rows: np.ndarray) -> TensorDataset:
            idx = torch.from_numpy(rows)
            return TensorDataset(images[start : start + len(rows)], {k: v[idx] for k, v in targets.items()},
                                 codings=codings, transform=transform)

        splits = Splits(part(0, train), part(n_train, val), part(n_train + n_val, test))
        for col, t in splits.train.targets.items():
            if not has_label(t):
                raise DataError(f"{Place(str(table.path), col)} has no label in the training rows")
        return splits
