"""Reader for IDX files, the format of the original MNIST distribution.

An IDX file is a header followed by a dense big-endian array::

    bytes 0-1   0x00 0x00
    byte  2     dtype code: 0x08 ubyte, 0x09 byte, 0x0B short (int16), 0x0C int (int32),
                0x0D float (float32), 0x0E double (float64)
    byte  3     number of dimensions d
    4 .. 4+4d   d sizes, each a big-endian uint32
    then        prod(sizes) values in row-major order, big-endian

Files may be gzip-compressed; compression is detected from the gzip magic bytes (0x1f 0x8b),
never from the file name. :func:`read_idx` reads any such file into a numpy array in native
byte order; :func:`load_mnist_dir` finds an MNIST images/labels pair in a directory the user
names (``t10k-images-idx3-ubyte.gz`` + ``t10k-labels-idx1-ubyte.gz``, the same without
``.gz``, or the ``train-`` pair).

Every problem is reported as a one-line :class:`~manytask.errors.DataError` naming the file.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from manytask.errors import DataError

__all__ = ["IDX_DTYPES", "find_mnist_files", "load_mnist_dir", "read_idx"]

#: IDX dtype code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"
_MNIST_SPLITS = ("train", "t10k")


def _read_bytes(path: Path) -> tuple[bytes, bool]:
    """The file's content (decompressed when it starts with the gzip magic bytes), and
    whether it was compressed."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected an IDX file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw[:2] != _GZIP_MAGIC:
        return raw, False
    try:
        return gzip.decompress(raw), True
    except EOFError:
        raise DataError(f"{path}: truncated gzip stream (file ends early)") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(f"{path}: corrupt gzip data ({exc})") from None


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw) into a numpy array.

    Args:
        path: the file. Compression is detected from its first two bytes.

    Returns:
        An array with the header's shape and dtype (uint8, int8, int16, int32, float32 or
        float64), in native byte order.

    Raises:
        DataError: the file is missing, not IDX (bad magic or unknown dtype code), or its size
            does not match the header (truncated or with trailing bytes).
    """
    p = Path(path)
    data, compressed = _read_bytes(p)
    if len(data) < 4:
        raise DataError(f"{p}: too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{p}: bad magic number 0x{data[:4].hex()} (an IDX file starts with 0x0000, "
            "then a dtype code and the number of dimensions)"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(
            f"{p}: bad magic number 0x{data[:4].hex()}: unknown dtype code 0x{code:02X} "
            f"(expected one of {known})"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{p}: truncated header ({len(data)} bytes, {ndim} dimensions need {header})")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(
            f"{p}: {what}: header says shape {shape} of {dtype.name} ({expected} bytes with header) "
            f"but the {'decompressed ' if compressed else ''}data has {len(data)} bytes"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _find_one(directory: Path, split: str, kind: str, idx_tag: str) -> Path | None:
    """The file named ``{split}-{kind}[-.]{idx_tag}-ubyte[.gz]`` in ``directory``, if any."""
    candidates = []
    for entry in sorted(directory.iterdir()):
        name = entry.name.lower()
        if not entry.is_file() or not name.startswith(f"{split}-{kind}"):
            continue
        rest = name[len(f"{split}-{kind}") :]
        if rest.startswith(("-", ".", "_")) and idx_tag in rest:
            candidates.append(entry)
    return candidates[0] if candidates else None


def find_mnist_files(directory: str | os.PathLike[str], split: str) -> tuple[Path, Path] | None:
    """The (images, labels) paths of one MNIST split in ``directory``, or None if absent.

    Raises:
        DataError: the images file exists but the labels file does not (or the reverse).
    """
    d = Path(directory)
    images = _find_one(d, split, "images", "idx3")
    labels = _find_one(d, split, "labels", "idx1")
    if images is None and labels is None:
        return None
    if images is None:
        assert labels is not None
        raise DataError(f"{d}: found labels file {labels.name} but no {split}-images-idx3-ubyte[.gz]")
    if labels is None:
        raise DataError(f"{d}: found images file {images.name} but no {split}-labels-idx1-ubyte[.gz]")
    return images, labels


def _load_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"{images_path}: expected 3 dimensions (N, rows, cols), found shape {images.shape}")
    if images.dtype != np.uint8:
        raise DataError(f"{images_path}: expected unsigned-byte pixels (code 0x08), found {images.dtype}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected 1 dimension (N,), found shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise DataError(f"{labels_path}: expected integer labels, found {labels.dtype}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path.name} has {images.shape[0]} images but {labels_path.name} has "
            f"{labels.shape[0]} labels (in {images_path.parent})"
        )
    return images, labels.astype(np.int64)


def load_mnist_dir(
    directory: str | os.PathLike[str], split: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST digits from IDX files in a directory the user names.

    Files are matched by name prefix: ``{split}-images-idx3-ubyte`` and
    ``{split}-labels-idx1-ubyte``, each optionally gzip-compressed (``.gz`` or not; the
    content decides) — ``t10k-images.idx3-ubyte`` style names are accepted too.

    Args:
        directory: a folder holding the files.
        split: ``"t10k"`` (10,000 test digits), ``"train"`` (60,000 digits), or None for every
            split present (train first, then t10k, concatenated).

    Returns:
        ``(images, labels)``: uint8 ``(N, 28, 28)`` and int64 ``(N,)``.

    Raises:
        DataError: the directory is missing, holds no images file for the split, or a file is
            truncated, not IDX, or its counts disagree with its partner's.
    """
    d = Path(directory)
    if not d.exists():
        raise DataError(f"{d}: MNIST directory does not exist")
    if not d.is_dir():
        raise DataError(f"{d}: expected a directory holding MNIST IDX files")
    if split is not None and split not in _MNIST_SPLITS:
        raise DataError(f"{d}: unknown MNIST split '{split}' (expected 'train', 't10k' or None)")
    splits = _MNIST_SPLITS if split is None else (split,)
    pairs = [(s, find_mnist_files(d, s)) for s in splits]
    found = [(s, p) for s, p in pairs if p is not None]
    if not found:
        wanted = " or ".join(f"{s}-images-idx3-ubyte[.gz]" for s in splits)
        raise DataError(f"{d}: no MNIST images file ({wanted}) in this directory")
    loaded = [_load_pair(*p) for _, p in found]
    if len(loaded) == 1:
        return loaded[0]
    shapes = {im.shape[1:] for im, _ in loaded}
    if len(shapes) > 1:
        raise DataError(f"{d}: the splits have different image sizes {sorted(shapes)}")
    return (
        np.concatenate([im for im, _ in loaded]),
        np.concatenate([lb for _, lb in loaded]),
    )
