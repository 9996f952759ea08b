"""``kind: galleries`` — a user's own galleries: items (images) grouped by a gallery id, and a
table of gallery-level labels.

Items come from either

* a table (CSV or Parquet, ``items``) with a gallery id column (``gallery_column``) and an
  image path column (``image_column``; paths relative to the table's folder), decoded with
  Pillow (:func:`manytask.data.image_folder.decode_images`), converted to ``L`` when
  ``grayscale`` else ``RGB``, resized to ``image_size`` when set; or
* an ``.npz`` file with ``items`` ``(M, ...)`` (uint8 images ``(M, C, H, W)`` or ``(M, H, W)``,
  or float features) and ``gallery`` ``(M,)`` ids (never unpickled).

The labels table (``labels``, CSV or Parquet) has the gallery id column and one column per
label; an empty cell is a missing label (masked). Labels are encoded by the shared rules of
:mod:`manytask.data.encoding` (class names → class indices, ``classes``, ``standardize_targets``
with training statistics) and galleries are split by ``split_column`` or at random
(``val_fraction`` / ``test_fraction``), as for ``kind: table``.

Every gallery of the labels table needs at least one item (else one error naming its row);
galleries that have items but no labels row are dropped with one warning. ``max_items`` keeps a
seeded random subset of larger galleries (in their file order).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from manytask.data.batch import Splits
from manytask.data.encoding import encode_label_columns
from manytask.data.sources.base import HeldOutFractions, register_source
from manytask.data.sources.pixels import Normalize, check_image_size, parse_normalize
from manytask.data.sources.table import SplitNames
from manytask.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GalleriesSource", "group_items"]


def group_items(item_ids: Sequence[str], gallery_ids: Sequence[str]) -> tuple[list[list[int]], list[str]]:
    """The item rows of each gallery (in the order of ``gallery_ids``, rows in file order), and
    the ids of item galleries absent from ``gallery_ids`` (sorted). A gallery without items
    gets an empty list."""
    rows: dict[str, list[int]] = {g: [] for g in gallery_ids}
    orphans: set[str] = set()
    for i, g in enumerate(item_ids):
        if g in rows:
            rows[g].append(i)
        else:
            orphans.add(g)
    return [rows[g] for g in gallery_ids], sorted(orphans)


@dataclass
class _Items:
    """What the items file gives: a gallery id per item row, and how to read the rows."""

    where: str
    gallery: list[str]
    files: list[str] | None = None  # image paths (a table), else
    array: np.ndarray | None = None  # the items of an .npz


def _keys(values: pd.Series | np.ndarray, where: str, column: str, noun: str = "column") -> list[str]:
    from manytask.data.encoding import MISSING_TEXT, value_key

    out = []
    blank = set(MISSING_TEXT)
    for i, v in enumerate(values.tolist()):
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        key = "" if v is None or (isinstance(v, float) and np.isnan(v)) else value_key(v)
        if key in blank:
            row = f"row {i + 1}" if noun == "column" else f"index {i}"
            raise DataError(f"{where}: {row}, {noun} '{column}': the gallery id is empty")
        out.append(key)
    return out


@register_source
class GalleriesSource(HeldOutFractions):
    """Your own galleries: items (image files or an ``.npz``) and a labels table (see the
    module docstring and ``docs/galleries.md``)."""

    summary: ClassVar[str] = "your own galleries: items (images or .npz) grouped by id, a table of gallery labels"

    kind: Literal["galleries"] = "galleries"
    items: str
    labels: str
    gallery_column: str = "gallery"
    image_column: str = "image"
    items_key: str = "items"
    gallery_key: str = "gallery"
    classes: dict[str, list[str | int | float | bool]] = Field(default_factory=dict)
    standardize_targets: list[str] = Field(default_factory=list)
    split_column: str | None = None
    split_names: SplitNames = Field(default_factory=SplitNames)
    max_items: int | None = Field(None, ge=1)
    image_size: tuple[int, int] | None = None
    grayscale: bool = False
    resample: Literal["bilinear", "nearest"] = "bilinear"
    normalize: Normalize = "train"
    bucket: bool = True
    max_memory_gb: float = Field(4.0, gt=0)

    @field_validator("image_size")
    @classmethod
    def _size(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        return check_image_size(v)

    @field_validator("normalize", mode="before")
    @classmethod
    def _normalize(cls, v: object) -> object:
        return parse_normalize(v)

    @model_validator(mode="after")
    def _consistent(self) -> GalleriesSource:
        if self.split_column and {"val_fraction", "test_fraction"} & self.model_fields_set:
            raise ValueError("split_column: the galleries are split by this column; "
                             "remove val_fraction / test_fraction")
        if self.is_npz():
            for name in ("image_size", "grayscale"):
                if getattr(self, name) not in (None, False):
                    raise ValueError(f"{name}: applies to image files, not to the arrays of {self.items}")
        return self

    def is_npz(self) -> bool:
        return Path(self.items).suffix.lower() == ".npz"

    # ---------------------------------------------------------------- reading
    def _read_labels(self, columns: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
        from manytask.data.sources.table import read_table

        frame = read_table(self.labels, text_columns=[c for c in (self.gallery_column, self.split_column) if c])
        roles = [(self.gallery_column, "data.gallery_column")] + [(c, "a task's target") for c in columns]
        roles += [(self.split_column, "data.split_column")] if self.split_column else []
        for c, role in roles:
            if c not in frame.columns:
                raise DataError(f"{self.labels}: no column '{c}' ({role}; the table has {', '.join(frame.columns)})")
        for c in [*self.classes, *self.standardize_targets]:
            if c not in columns:
                raise ConfigError(f"data.classes / data.standardize_targets: '{c}' is not a task's target column")
        ids = _keys(frame[self.gallery_column], self.labels, self.gallery_column)
        seen: dict[str, int] = {}
        for i, g in enumerate(ids):
            if g in seen:
                raise DataError(f"{self.labels}: row {i + 1}, column '{self.gallery_column}': gallery '{g}' "
                                f"is already on row {seen[g] + 1}")
            seen[g] = i
        return frame, ids

    def _read_items(self) -> _Items:
        from manytask.data.encoding import Place
        from manytask.data.sources.arrays import check_inputs, read_npz

        if self.is_npz():
            path = Path(self.items).expanduser()
            arrays = read_npz(path, [self.items_key, self.gallery_key])
            x, g = arrays[self.items_key], arrays[self.gallery_key]
            check_inputs(x, Place.array(path, self.items_key))
            if g.ndim != 1 or len(g) != len(x) or g.dtype.kind not in "iuUS":
                raise DataError(f"{path}: array '{self.gallery_key}' must hold {len(x)} gallery ids (numbers or "
                                f"text), got shape {g.shape} of dtype {g.dtype}")
            return _Items(str(path), _keys(g, str(path), self.gallery_key, "array"), array=x)
        from manytask.data.sources.table import read_table

        frame = read_table(self.items, text_columns=[self.gallery_column, self.image_column])
        for c, role in ((self.gallery_column, "data.gallery_column"), (self.image_column, "data.image_column")):
            if c not in frame.columns:
                raise DataError(f"{self.items}: no column '{c}' ({role}; the table has {', '.join(frame.columns)})")
        files = frame[self.image_column].tolist()
        for i, f in enumerate(files):
            if not isinstance(f, str) or not f.strip():
                raise DataError(f"{self.items}: row {i + 1}, column '{self.image_column}': the image path is empty")
        return _Items(self.items, _keys(frame[self.gallery_column], self.items, self.gallery_column),
                      files=[f.strip() for f in files])

    # ---------------------------------------------------------------- building
    def _members(self, items: _Items, ids: list[str], seed: int) -> list[list[int]]:
        members, orphans = group_items(items.gallery, ids)
        for i, m in enumerate(members):
            if not m:
                raise DataError(f"{self.labels}: row {i + 1}, column '{self.gallery_column}': gallery '{ids[i]}' "
                                f"has no item in {items.where}")
        if orphans:
            shown = ", ".join(orphans[:3]) + (", ..." if len(orphans) > 3 else "")
            warnings.warn(f"{items.where}: {len(orphans)} gallery id(s) have no row in {self.labels} and are "
                          f"ignored: {shown}", stacklevel=3)
        if self.max_items is not None:
            rng = np.random.default_rng(seed)
            members = [m if len(m) <= self.max_items
                       else [m[j] for j in np.sort(rng.choice(len(m), self.max_items, replace=False))]
                       for m in members]
        return members

    def _splits(self, frame: pd.DataFrame, seed: int) -> tuple[np.ndarray, ...]:
        from manytask.data.encoding import Place, split_rows
        from manytask.data.tabular import tabular_split_indices

        if not self.split_column:
            return tabular_split_indices(len(frame), val_fraction=self.val_fraction,
                                         test_fraction=self.test_fraction, fraction=self.fraction, seed=seed)
        return split_rows(frame[self.split_column], Place(self.labels, self.split_column),
                          names=self.split_names.model_dump(), fraction=self.fraction, seed=seed,
                          setting="data.split_names")

    def _pool(self, items: _Items, rows: list[int]) -> tuple[torch.Tensor, bool]:
        """The items of ``rows`` as one tensor, and whether they are uint8 images."""
        if items.array is not None:
            x = items.array[np.asarray(rows)]
            if x.dtype == np.uint8:
                return torch.from_numpy(np.ascontiguousarray(x[:, None] if x.ndim == 3 else x)), True
            return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), False
        return torch.from_numpy(self._decode(items, rows)), True

    def _decode(self, items: _Items, rows: list[int]) -> np.ndarray:
        from manytask.data.image_folder import decode_images

        assert items.files is not None
        root = Path(self.items).expanduser().parent
        for r in rows:
            if not (root / items.files[r]).is_file():
                raise DataError(f"{self.items}: row {r + 1}, column '{self.image_column}': image file "
                                f"'{items.files[r]}' not found under {root}")
        try:
            return decode_images(root, [items.files[r] for r in rows], size=self.image_size,
                                 mode="L" if self.grayscale else "RGB", resample=self.resample,
                                 max_bytes=self.max_memory_gb * 2**30)
        except DataError as err:  # the shared decoder names its own source's field
            raise DataError(str(err).replace("set data.size", "set data.image_size")) from None

    def build(self, columns: Sequence[str], seed: int) -> Splits:
        from manytask.data.sets import SetDataset, pack_index
        from manytask.data.sources.pixels import pixel_transform

        frame, ids = self._read_labels(columns)
        items = self._read_items()
        members = self._members(items, ids, seed)
        parts = self._splits(frame, seed)
        targets, codings, scales = encode_label_columns(frame, columns, parts[0], self.labels, classes=self.classes,
                                                        standardize=self.standardize_targets,
                                                        rows_name="galleries")
        rows, index, start = [], [], 0  # items of the kept galleries, split by split
        for part in parts:
            for g in part.tolist():
                rows.extend(members[g])
                index.append(list(range(start, start + len(members[g]))))
                start += len(members[g])
        pool, images = self._pool(items, rows)
        n_train_items = sum(len(members[g]) for g in parts[0].tolist())
        transform = pixel_transform(self.normalize, pool, np.arange(n_train_items)) if images else None
        gallery_ids = np.array(ids, dtype=object)
        out, first = [], 0
        for part in parts:
            idx = index[first : first + len(part)]
            first += len(part)
            out.append(SetDataset(
                pool, pack_index(idx) if idx else torch.full((0, 1), -1, dtype=torch.long),
                {c: torch.from_numpy(np.ascontiguousarray(v[part])) for c, v in targets.items()},
                ids=gallery_ids[part], id_name=self.gallery_column, codings=codings, scales=scales,
                transform=transform, bucket=self.bucket))
        return Splits(*out)
