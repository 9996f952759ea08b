"""IDX reading, MNIST directory discovery and the digit-source loaders."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from manytask.data.idx import load_mnist_dir, read_idx
from manytask.data.mnist import load_digits_source
from manytask.errors import ConfigError, DataError


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode ``arr`` as an IDX file (big-endian), independently of the reader."""
    native = np.dtype(arr.dtype.newbyteorder("="))
    code = {
        np.dtype(np.uint8): 0x08,
        np.dtype(np.int8): 0x09,
        np.dtype(np.int16): 0x0B,
        np.dtype(np.int32): 0x0C,
        np.dtype(np.float32): 0x0D,
        np.dtype(np.float64): 0x0E,
    }[native]
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return header + arr.astype(native.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, compress: bool) -> Path:
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n).astype(np.uint8)


def write_mnist(
    directory: Path, split: str, n: int, compress: bool = True, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    directory.mkdir(parents=True, exist_ok=True)
    x, y = digits(n, seed)
    suffix = ".gz" if compress else ""
    write_idx(directory / f"{split}-images-idx3-ubyte{suffix}", x, compress)
    write_idx(directory / f"{split}-labels-idx1-ubyte{suffix}", y, compress)
    return x, y


# --------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    "dtype,shape",
    [
        (np.uint8, (5, 3, 4)),
        (np.int8, (7,)),
        (np.int16, (2, 3)),
        (np.int32, (2, 1, 3, 2)),
        (np.float32, (4, 4)),
        (np.float64, (3, 2, 2)),
    ],
)
def test_read_idx_round_trips_every_dtype(tmp_path: Path, compress: bool, dtype: type, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None:
        arr = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    else:
        arr = (rng.standard_normal(shape) * 1e3).astype(dtype)
    path = write_idx(tmp_path / "x.idx", arr, compress)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert out.shape == shape
    np.testing.assert_array_equal(out, arr)


def test_big_endian_layout_is_decoded(tmp_path: Path) -> None:
    # 0x0102 as a big-endian int16 is 258; a little-endian reader would give 513.
    raw = bytes([0, 0, 0x0B, 1]) + (2).to_bytes(4, "big") + bytes([1, 2, 0xFF, 0xFE])
    (tmp_path / "s").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "s"), np.array([258, -2], dtype=np.int16))


def test_compression_detected_by_content_not_name(tmp_path: Path) -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz_named_raw = write_idx(tmp_path / "data.gz", arr, compress=False)
    raw_named_gz = write_idx(tmp_path / "data-idx2-ubyte", arr, compress=True)
    np.testing.assert_array_equal(read_idx(gz_named_raw), arr)
    np.testing.assert_array_equal(read_idx(raw_named_gz), arr)


def test_read_idx_accepts_str_path(tmp_path: Path) -> None:
    arr = np.arange(6, dtype=np.int32)
    write_idx(tmp_path / "a", arr, compress=False)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "a")), arr)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_file_names_the_file(tmp_path: Path, compress: bool) -> None:
    data = idx_bytes(np.zeros((10, 28, 28), dtype=np.uint8))[:-100]
    path = tmp_path / "cut-images-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(DataError, match="cut-images-idx3-ubyte.*truncated"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    blob = gzip.compress(idx_bytes(np.arange(4000, dtype=np.int32)))
    path = tmp_path / "half.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="half.gz.*truncated"):
        read_idx(path)


def test_trailing_bytes_rejected(tmp_path: Path) -> None:
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.zeros(4, dtype=np.uint8)) + b"\x00")
    with pytest.raises(DataError, match="long.*trailing"):
        read_idx(path)


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "hdr"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + (5).to_bytes(4, "big"))
    with pytest.raises(DataError, match="hdr.*header"):
        read_idx(path)


@pytest.mark.parametrize(
    "content", [b"\x50\x4b\x03\x04" + b"\x00" * 20, bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 7]), b"\x00"]
)
def test_bad_magic_names_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "not-idx.bin"
    path.write_bytes(content)
    with pytest.raises(DataError, match="not-idx.bin"):
        read_idx(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.*not found"):
        read_idx(tmp_path / "nope")


# --------------------------------------------------------------------------- load_mnist_dir


@pytest.mark.parametrize("compress", [True, False])
def test_load_mnist_dir_t10k(tmp_path: Path, compress: bool) -> None:
    x, y = write_mnist(tmp_path / "m", "t10k", 30, compress=compress)
    images, labels = load_mnist_dir(tmp_path / "m", split="t10k")
    assert images.dtype == np.uint8 and images.shape == (30, 28, 28)
    assert labels.dtype == np.int64 and labels.shape == (30,)
    np.testing.assert_array_equal(images, x)
    np.testing.assert_array_equal(labels, y)


def test_load_mnist_dir_picks_the_requested_split_and_concatenates_for_none(tmp_path: Path) -> None:
    xt, yt = write_mnist(tmp_path, "train", 12, seed=1)
    xs, ys = write_mnist(tmp_path, "t10k", 8, compress=False, seed=2)
    np.testing.assert_array_equal(load_mnist_dir(tmp_path, split="train")[0], xt)
    np.testing.assert_array_equal(load_mnist_dir(tmp_path, split="t10k")[1], ys)
    images, labels = load_mnist_dir(tmp_path)
    np.testing.assert_array_equal(images, np.concatenate([xt, xs]))
    np.testing.assert_array_equal(labels, np.concatenate([yt, ys]))


def test_load_mnist_dir_dot_variant_name(tmp_path: Path) -> None:
    x, y = digits(5)
    write_idx(tmp_path / "t10k-images.idx3-ubyte", x, compress=False)
    write_idx(tmp_path / "t10k-labels.idx1-ubyte", y, compress=False)
    np.testing.assert_array_equal(load_mnist_dir(tmp_path, "t10k")[0], x)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere.*does not exist"):
        load_mnist_dir(tmp_path / "nowhere")


def test_no_images_file(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DataError, match="no MNIST images file"):
        load_mnist_dir(tmp_path, split="t10k")
    write_mnist(tmp_path, "train", 3)
    with pytest.raises(DataError, match="t10k-images"):
        load_mnist_dir(tmp_path, split="t10k")


def test_labels_without_images_names_the_labels_file(tmp_path: Path) -> None:
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(3, dtype=np.uint8), compress=True)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        load_mnist_dir(tmp_path)


def test_images_without_labels(tmp_path: Path) -> None:
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), dtype=np.uint8), compress=False)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.*no t10k-labels"):
        load_mnist_dir(tmp_path)


def test_count_mismatch_names_both_files(tmp_path: Path) -> None:
    x, _ = digits(6)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", x, compress=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(5, dtype=np.uint8), compress=True)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz has 6 images but t10k-labels-idx1-ubyte.gz has 5"):
        load_mnist_dir(tmp_path)


def test_truncated_images_in_directory_names_the_file(tmp_path: Path) -> None:
    write_mnist(tmp_path, "t10k", 4, compress=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.*truncated"):
        load_mnist_dir(tmp_path)


def test_wrong_dimensions(tmp_path: Path) -> None:
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 784), dtype=np.uint8), compress=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8), compress=False)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.*3 dimensions"):
        load_mnist_dir(tmp_path)


def test_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="split 'valid'"):
        load_mnist_dir(tmp_path, split="valid")


# --------------------------------------------------------------------------- digit sources


def test_digit_source_idx(tmp_path: Path) -> None:
    x, y = write_mnist(tmp_path, "t10k", 9)
    images, labels = load_digits_source("idx", tmp_path)
    np.testing.assert_array_equal(images, x)
    np.testing.assert_array_equal(labels, y.astype(np.int64))


def test_digit_source_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="source"):
        load_digits_source("emnist", None)
    with pytest.raises(ConfigError, match="idx_dir"):
        load_digits_source("idx", None)
    with pytest.raises(ConfigError, match="idx_dir"):
        load_digits_source("bundled+idx")
    with pytest.raises(DataError, match="does not exist"):
        load_digits_source("idx", tmp_path / "missing")


# --------------------------------------------------------------------------- real MNIST files


def _real_mnist_dir() -> Path | None:
    env = os.environ.get("MANYTASK_MNIST_DIR")
    if env:
        return Path(env)
    candidate = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"
    return candidate if candidate.is_dir() else None


REAL_DIR = _real_mnist_dir()
T10K_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.skipif(REAL_DIR is None, reason="no real MNIST IDX directory (set MANYTASK_MNIST_DIR)")
def test_real_t10k_files() -> None:
    assert REAL_DIR is not None
    images, labels = load_mnist_dir(REAL_DIR, split="t10k")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.int64
    counts = np.bincount(labels, minlength=10)
    assert counts.sum() == 10000 and len(counts) == 10
    assert counts.tolist() == T10K_COUNTS
    assert images.max() == 255 and images.min() == 0
    # Pixel mean of real MNIST is about 0.13 of full scale; noise would be near 0.5.
    assert 0.10 < images.mean() / 255 < 0.16


@pytest.mark.skipif(REAL_DIR is None, reason="no real MNIST IDX directory (set MANYTASK_MNIST_DIR)")
def test_bundled_plus_t10k_are_15000_distinct_digits(tmp_path: Path) -> None:
    assert REAL_DIR is not None
    t10k_only = tmp_path / "t10k"
    t10k_only.mkdir()
    for name in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        found = sorted(REAL_DIR.glob(f"t10k-{name}*"))
        assert found, name
        (t10k_only / found[0].name).symlink_to(found[0])
    images, labels = load_digits_source("bundled+idx", t10k_only)
    assert images.shape == (15000, 28, 28) and labels.shape == (15000,)
    assert len({row.tobytes() for row in images.reshape(15000, -1)}) == 15000
