"""Pure helpers for data that users bring as files (``arrays`` and ``images`` sources).

No file is read here: the sources read their files and hand the values to these functions,
which turn them into what the rest of the toolkit uses.

* :func:`split_codes` / :func:`rows_from_codes` — a split column (``0/1/2`` or
  ``train/val/test``) as row indices, with nested training fractions.
* :func:`encode_text_labels` / :func:`encode_array_labels` — a label column as a target
  tensor: integer classes (``-1`` = missing), floats (``NaN`` = missing) or text classes
  (sorted names become ``0..K-1``, ``-1`` = missing).
* :func:`channel_mean_std` — per-channel mean and standard deviation of uint8 images over
  the training rows (on the [0, 1] scale), without a float copy of the whole array.
* :func:`standardize_features` — per-feature standardisation with training statistics.

Every error is a :class:`~manytask.errors.DataError` whose message starts with ``where``
(the caller's file and column) and names the row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from manytask.data.batch import LabelCoding
from manytask.errors import DataError

__all__ = [
    "SPLIT_NAMES",
    "channel_mean_std",
    "encode_array_labels",
    "encode_text_labels",
    "has_label",
    "rows_from_codes",
    "split_codes",
    "standardize_features",
]

#: Accepted names of the three splits (case-insensitive) and their codes.
SPLIT_NAMES: dict[str, int] = {"train": 0, "val": 1, "validation": 1, "test": 2}

RowName = Callable[[int], str]


def _row(i: int) -> str:
    return f"row {i}"


def split_codes(values: np.ndarray | Sequence[object], where: str, row_name: RowName = _row) -> np.ndarray:
    """The split of every row as ``0`` (train), ``1`` (validation) or ``2`` (test).

    Args:
        values: one value per row: integers 0/1/2 (numbers or text), or the names
            ``train``, ``val`` (or ``validation``), ``test`` in any case.
        where: prefix of error messages (the file and column).
        row_name: how a row index is named in messages (``row 3``, ``line 5``, ...).
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{where}: expected one split value per row, got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        bad = ~np.isin(arr, (0, 1, 2))
        codes = arr
    elif arr.dtype.kind in "US":
        names = np.char.lower(np.char.strip(arr.astype(str)))
        codes = np.full(arr.shape, -1, dtype=np.int64)
        for name, code in {**SPLIT_NAMES, "0": 0, "1": 1, "2": 2}.items():
            codes[names == name] = code
        bad = codes < 0
    else:
        raise DataError(f"{where}: expected integers 0/1/2 or names train/val/test, got dtype {arr.dtype}")
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{where}: {row_name(i)}: split {arr[i].item()!r} is not 0/1/2 or train/val/test")
    return codes.astype(np.int8)


def rows_from_codes(codes: np.ndarray, *, fraction: float, seed: int, where: str) -> tuple[np.ndarray, ...]:
    """``(train, val, test)`` row indices of a split column, each in file order.

    With ``fraction < 1`` the training rows kept are a seeded random subset of
    ``round(fraction · n_train)`` rows (a prefix of one permutation, so smaller fractions are
    subsets of larger ones), still in file order.
    """
    train, val, test = (np.flatnonzero(codes == c).astype(np.int64) for c in (0, 1, 2))
    if train.size == 0:
        raise DataError(f"{where}: no row is in the training split")
    if fraction < 1.0:
        keep = round(fraction * train.size)
        if keep < 1:
            raise DataError(f"{where}: fraction {fraction} of {train.size} training rows leaves no training row")
        perm = np.random.default_rng(int(seed)).permutation(train.size)
        train = train[np.sort(perm[:keep])]
    return train, val, test


def _classes(text: np.ndarray, present: np.ndarray, where: str, row_name: RowName) -> tuple[torch.Tensor, LabelCoding]:
    names = np.unique(text[present])
    out = np.full(text.shape, -1, dtype=np.int64)
    out[present] = np.searchsorted(names, text[present])
    first = int(np.argmax(present))
    origin = f"{where}: {row_name(first)} has the class name {str(text[first])!r}"
    return torch.from_numpy(out), LabelCoding(tuple(str(n) for n in names), origin)


def encode_text_labels(cells: Sequence[str], where: str,
                       row_name: RowName = _row) -> tuple[torch.Tensor, LabelCoding | None]:
    """A column of text cells (from a CSV) as a target tensor and, for text classes, names.

    Empty cells (and ``nan``) are missing. If every other cell is a number: integers give
    int64 classes (float32 with NaN where cells are missing, which every task kind reads
    as missing), other numbers float32. Otherwise the column holds class names: the sorted
    distinct names become classes ``0..K-1`` (int64, ``-1`` = missing), recorded in the
    returned :class:`~manytask.data.batch.LabelCoding`.

    Raises:
        DataError: every cell is missing, or a number is infinite (names the row).
    """
    text = np.char.strip(np.asarray(list(cells), dtype=str))
    present = (text != "") & (np.char.lower(text) != "nan")
    if not present.any():
        raise DataError(f"{where}: the column has no label (every cell is empty)")
    try:
        numbers = np.full(text.shape, np.nan)
        numbers[present] = text[present].astype(np.float64)
    except ValueError:
        return _classes(text, present, where, row_name)
    infinite = np.isinf(numbers)
    if infinite.any():
        i = int(np.argmax(infinite))
        raise DataError(f"{where}: {row_name(i)}: label {text[i]!r} is not finite")
    whole = bool(np.all(numbers[present] == np.rint(numbers[present])))
    if whole and present.all():
        return torch.from_numpy(numbers.astype(np.int64)), None
    return torch.from_numpy(numbers.astype(np.float32)), None


def encode_array_labels(values: np.ndarray, n: int, where: str) -> tuple[torch.Tensor, LabelCoding | None]:
    """A target array (from a ``.npz``) as a tensor: integers and booleans as int64 (``-1``
    = missing), floats as float32 (``NaN`` = missing), strings as sorted class names.

    Raises:
        DataError: wrong row count, unsupported dtype, infinite values, or no label at all.
    """
    arr = np.asarray(values)
    rows = 0 if arr.ndim == 0 else int(arr.shape[0])
    if rows != n:
        raise DataError(f"{where}: has {rows} rows but the inputs have {n}")
    kind = arr.dtype.kind
    if kind in "US":
        if arr.ndim != 1:
            raise DataError(f"{where}: text classes need one value per row, got shape {arr.shape}")
        text = np.char.strip(arr.astype(str))
        present = text != ""
        if not present.any():
            raise DataError(f"{where}: the column has no label (every value is empty)")
        return _classes(text, present, where, _row)
    if kind == "f":
        if np.isinf(arr).any():
            i = int(np.argwhere(np.isinf(arr))[0][0])
            raise DataError(f"{where}: row {i}: value is infinite (use NaN for a missing label)")
        if np.isnan(arr).all():
            raise DataError(f"{where}: the column has no label (every value is NaN)")
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)), None
    if kind in "iub":
        out = np.ascontiguousarray(arr, dtype=np.int64)
        if out.size and (out == -1).all():
            raise DataError(f"{where}: the column has no label (every value is -1)")
        return torch.from_numpy(out), None
    raise DataError(f"{where}: expected numbers or text, got dtype {arr.dtype}")


def has_label(target: torch.Tensor) -> bool:
    """Whether ``target`` has at least one label (not NaN for floats, not -1 for integers)."""
    if target.is_floating_point():
        return bool((~torch.isnan(target)).any())
    return bool((target != -1).any())


def channel_mean_std(images: torch.Tensor, rows: np.ndarray, max_value: float = 255.0,
                     chunk: int = 2048) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) standard deviation of ``images[rows] / max_value``.

    ``images`` is ``(N, C, ...)`` (channel = dimension 1); the sums are accumulated in
    float64 over chunks of rows. A channel with zero spread gets a standard deviation of 1.
    """
    c = int(images.shape[1])
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    idx = torch.from_numpy(np.asarray(rows, dtype=np.int64))
    for start in range(0, idx.numel(), chunk):
        part = images[idx[start : start + chunk]].to(torch.float64).transpose(0, 1).reshape(c, -1)
        total += part.sum(dim=1)
        squares += (part * part).sum(dim=1)
    count = idx.numel() * (images[0].numel() // c) if idx.numel() else 1
    mean = total / count
    var = (squares / count - mean * mean).clamp_min(0.0)
    std = torch.where(var > 0, var.sqrt() / max_value, torch.ones_like(var))
    return (mean / max_value).tolist(), std.tolist()


def standardize_features(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` per feature (every entry after the row axis), with the
    statistics of the ``train`` rows only; constant features are only centred."""
    ref = x[train].astype(np.float64)
    mean = ref.mean(axis=0)
    std = ref.std(axis=0)
    std[std == 0] = 1.0
    return ((x - mean) / std).astype(np.float32)
