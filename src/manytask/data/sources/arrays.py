"""``kind: arrays`` — a user's ``.npz``: an inputs array and named target arrays.

The ``.npz`` holds ``inputs`` (``(N, ...)``: feature vectors, or uint8 images
``(N, C, H, W)``) and one ``(N, ...)`` array per target column that the tasks read
(``tasks[].target`` or their names). Rows go to train / validation / test by an optional
split array (``0/1/2`` or ``train/val/test``), else at random by ``val_fraction`` /
``test_fraction``.

Loading never runs code: object arrays (pickles) are refused, never unpickled.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import field_validator

from manytask.data.batch import ChannelAffine, LabelCoding, Splits, TensorDataset
from manytask.data.encoding import (
    Place,
    Standardizer,
    encode_labels,
    has_label,
    split_rows,
)
from manytask.data.sources.base import HeldOutFractions, register_source
from manytask.data.sources.pixels import Normalize, parse_normalize, pixel_transform
from manytask.data.tabular import tabular_split_indices
from manytask.errors import ConfigError, DataError


def read_npz(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of the ``.npz`` at ``path`` (never unpickling anything).

    Raises:
        DataError: the file is missing or unreadable, a key is absent (the message lists the
            keys present) or an array holds Python objects.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            present = list(npz.files)
            missing = [k for k in keys if k not in present]
            if missing:
                raise DataError(f"{path}: no array '{missing[0]}' (arrays in the file: {', '.join(present) or 'none'})")
            out = {}
            for k in dict.fromkeys(keys):
                try:
                    out[k] = npz[k]
                except ValueError as exc:
                    if "allow_pickle" not in str(exc):
                        raise
                    raise DataError(
                        f"{path}: array '{k}' holds Python objects (dtype object), which are never "
                        "loaded (unpickling can run code); save numbers or fixed-width strings"
                    ) from None
            return out
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    except ValueError as exc:  # np.load on something that is neither .npy nor .npz
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None


def check_inputs(x: np.ndarray, where: Place) -> None:
    """Inputs must be a numeric ``(N, ...)`` array with finite values (names the first bad row)."""
    if x.ndim < 2:
        raise DataError(f"{where}: expected (rows, features...) with at least 2 dimensions, got shape {x.shape}")
    if x.dtype.kind not in "iufb":
        raise DataError(f"{where}: expected numbers, got dtype {x.dtype}")
    if x.dtype.kind == "f":
        finite = np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1)
        if not finite.all():
            raise DataError(f"{where.at(int(np.argmin(finite)))}: a value is not finite")


def array_labels(values: np.ndarray, n: int, where: Place) -> tuple[np.ndarray, LabelCoding | None]:
    """A target array with ``n`` rows, encoded by :func:`manytask.data.encoding.encode_labels`.

    Raises:
        DataError: the row count differs from the inputs', or the dtype is neither numbers
            nor text.
    """
    rows = 0 if values.ndim == 0 else int(values.shape[0])
    if rows != n:
        raise DataError(f"{where}: has {rows} rows but the inputs have {n}")
    if values.dtype.kind not in "biufUS":
        raise DataError(f"{where}: expected numbers or text, got dtype {values.dtype}")
    return encode_labels(values, where)


@register_source
class ArraysSource(HeldOutFractions):
    """Inputs and targets from a ``.npz`` file (see the module docstring).

    Fields: ``path``; ``inputs`` (key of the inputs array); ``split`` (key of a split array,
    else ``val_fraction`` / ``test_fraction``); ``standardize`` (float inputs: per feature,
    training statistics); ``scale`` (uint8 inputs: divide by 255); ``normalize`` (uint8
    inputs: ``none``, ``train`` or fixed ``{mean, std}``, per channel).
    """

    summary: ClassVar[str] = "your own .npz: an inputs array (features or uint8 images) and target arrays"

    kind: Literal["arrays"] = "arrays"
    path: str
    inputs: str = "inputs"
    split: str | None = None
    standardize: bool = False
    scale: bool = True
    normalize: Normalize = "none"

    @field_validator("normalize", mode="before")
    @classmethod
    def _normalize(cls, v: object) -> object:
        return parse_normalize(v)

    def _where(self, key: str) -> Place:
        return Place.array(self.path, key)

    def _rows(self, arrays: dict[str, np.ndarray], n: int, seed: int) -> tuple[np.ndarray, ...]:
        if self.split is None:
            return tabular_split_indices(n, val_fraction=self.val_fraction, test_fraction=self.test_fraction,
                                         fraction=self.fraction, seed=seed)
        values = arrays[self.split]
        if values.ndim != 1 or values.shape[0] != n:
            raise DataError(f"{self._where(self.split)}: expected shape ({n},) to match the inputs, got {values.shape}")
        return split_rows(values, self._where(self.split), fraction=self.fraction, seed=seed)

    def _inputs(self, x: np.ndarray, train: np.ndarray) -> tuple[torch.Tensor, ChannelAffine | None]:
        where = self._where(self.inputs)
        if x.dtype == np.uint8:
            if self.standardize:
                raise ConfigError("data.standardize: the inputs are uint8 images; use data.normalize (none, train or {mean, std})")
            images = torch.from_numpy(np.ascontiguousarray(x))
            return images, pixel_transform(self.normalize, images, train, max_value=255.0 if self.scale else 1.0,
                                           where="data")
        if self.normalize != "none":
            raise ConfigError(f"data.normalize: applies to uint8 images, but {where} has dtype {x.dtype} (use data.standardize)")
        feats = x.astype(np.float32)
        if self.standardize:
            feats = Standardizer.fit(feats, train)(feats).astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(feats)), None

    def build(self, columns: Sequence[str], seed: int) -> Splits:
        path = Path(self.path).expanduser()
        keys = [self.inputs, *columns] + ([self.split] if self.split else [])
        arrays = read_npz(path, keys)
        x = arrays[self.inputs]
        check_inputs(x, self._where(self.inputs))
        n = int(x.shape[0])
        targets, codings = {}, {}
        for col in columns:
            y, coding = array_labels(arrays[col], n, self._where(col))
            targets[col] = torch.from_numpy(y)
            if coding is not None:
                codings[col] = coding
        train, val, test = self._rows(arrays, n, seed)
        inputs, transform = self._inputs(x, train)

        def part(rows: np.ndarray) -> TensorDataset:
            idx = torch.from_numpy(rows)
            return TensorDataset(inputs[idx], {k: v[idx] for k, v in targets.items()}, codings=codings,
                                 transform=transform)

        splits = Splits(part(train), part(val), part(test))
        for col, t in splits.train.targets.items():
            if not has_label(t):
                raise DataError(f"{self._where(col)} has no label in the training rows")
        return splits
