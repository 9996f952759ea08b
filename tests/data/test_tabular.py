"""Yeast and scikit-learn digits loaders; seeded tabular splits."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from manytask.data.tabular import (
    load_sklearn_digits,
    load_yeast,
    tabular_split_indices,
    tabular_splits,
)
from manytask.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def yeast() -> tuple[np.ndarray, np.ndarray]:
    pytest.importorskip("river")
    return load_yeast()


def test_yeast_shape_and_labels(yeast: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = yeast
    assert x.shape == (2417, 103) and x.dtype == np.float32
    assert y.shape == (2417, 14) and np.issubdtype(y.dtype, np.integer)
    assert set(np.unique(y).tolist()) == {0, 1}
    assert np.isfinite(x).all()
    positives = y.sum(axis=0)
    assert (positives > 0).all() and (positives < 2417).all()
    # Yeast is multi-label: genes carry about four functional classes on average.
    assert 3.5 < y.sum(axis=1).mean() < 5.0


def test_yeast_without_river_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "river", None)
    monkeypatch.setitem(sys.modules, "river.datasets", None)
    with pytest.raises(DataError, match=r"pip install manytask\[yeast\]"):
        load_yeast()


def test_sklearn_digits() -> None:
    x, y = load_sklearn_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert y.dtype == np.int64 and sorted(set(y.tolist())) == list(range(10))
    images, _ = load_sklearn_digits(as_images=True)
    assert images.shape == (1797, 8, 8)
    np.testing.assert_array_equal(images.reshape(1797, 64), x)


def test_split_indices_partition_and_sizes() -> None:
    train, val, test = tabular_split_indices(1000, val_fraction=0.1, test_fraction=0.2, seed=3)
    assert (len(train), len(val), len(test)) == (700, 100, 200)
    everything = np.concatenate([train, val, test])
    assert sorted(everything.tolist()) == list(range(1000))


def test_nested_fractions_fixed_holdout() -> None:
    kw = dict(val_fraction=0.15, test_fraction=0.15, seed=9)
    full = tabular_split_indices(500, fraction=1.0, **kw)
    quarter = tabular_split_indices(500, fraction=0.25, **kw)
    tenth = tabular_split_indices(500, fraction=0.1, **kw)
    assert set(tenth[0]) <= set(quarter[0]) <= set(full[0])
    assert (len(full[0]), len(quarter[0]), len(tenth[0])) == (350, 88, 35)
    for other in (quarter, tenth):
        np.testing.assert_array_equal(other[1], full[1])
        np.testing.assert_array_equal(other[2], full[2])
    other_seed = tabular_split_indices(500, val_fraction=0.15, test_fraction=0.15, seed=10)
    assert not np.array_equal(full[2], other_seed[2])


def test_tabular_splits_standardise_with_train_rows_only() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, size=(400, 6))
    x[:, 5] = 2.0  # constant feature
    y = (x[:, 0] > 5).astype(np.int64)
    reg = x[:, 1].astype(np.float32)
    s = tabular_splits(x, {"cls": y, "reg": reg}, val_fraction=0.25, test_fraction=0.25, fraction=0.5, seed=1)
    train_idx, val_idx, test_idx = tabular_split_indices(
        400, val_fraction=0.25, test_fraction=0.25, fraction=0.5, seed=1
    )
    assert (len(s.train), len(s.val), len(s.test)) == (100, 100, 100)
    xt = s.train.inputs.double()
    np.testing.assert_allclose(xt.mean(0).numpy(), 0, atol=1e-6)
    np.testing.assert_allclose(xt[:, :5].std(0, unbiased=False).numpy(), 1, atol=1e-5)
    assert torch.all(xt[:, 5] == 0)
    mean, std = x[train_idx].mean(0), x[train_idx].std(0)
    std[5] = 1.0
    np.testing.assert_allclose(s.test.inputs.numpy(), (x[test_idx] - mean) / std, rtol=1e-5, atol=1e-5)
    assert s.train.targets["cls"].dtype == torch.int64 and s.train.targets["reg"].dtype == torch.float32
    np.testing.assert_array_equal(s.val.targets["cls"].numpy(), y[val_idx])
    np.testing.assert_array_equal(s.test.targets["reg"].numpy(), reg[test_idx])


def test_tabular_splits_without_standardising_keeps_values(yeast: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = yeast
    cols = {"labels": y, **{f"class{j + 1}": y[:, j] for j in range(14)}}
    s = tabular_splits(x, cols, val_fraction=0.1, test_fraction=0.2, seed=0, standardize=False)
    train_idx, _, test_idx = tabular_split_indices(len(x), val_fraction=0.1, test_fraction=0.2, seed=0)
    np.testing.assert_array_equal(s.test.inputs.numpy(), x[test_idx])
    assert s.train.targets["labels"].shape == (len(train_idx), 14)
    assert len(s.train) + len(s.val) + len(s.test) == 2417


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        (dict(val_fraction=-0.1), "val_fraction"),
        (dict(test_fraction=1.0), "test_fraction"),
        (dict(val_fraction=0.5, test_fraction=0.5), "val_fraction"),
        (dict(fraction=0.0), "fraction"),
        (dict(fraction=1.2), "fraction"),
        (dict(seed=-1), "seed"),
    ],
)
def test_bad_arguments(kwargs: dict, argument: str) -> None:
    args = dict(val_fraction=0.1, test_fraction=0.1)
    args.update(kwargs)
    with pytest.raises(ConfigError, match=f"^{argument}"):
        tabular_splits(np.zeros((20, 2)), {"y": np.zeros(20)}, **args)


def test_bad_data() -> None:
    x = np.zeros((10, 3))
    with pytest.raises(DataError, match="'y' has 9 rows"):
        tabular_splits(x, {"y": np.zeros(9)}, val_fraction=0.1, test_fraction=0.1)
    x[4, 2] = np.nan
    with pytest.raises(DataError, match="row 4, column 2"):
        tabular_splits(x, {"y": np.zeros(10)}, val_fraction=0.1, test_fraction=0.1)
    with pytest.raises(DataError, match="2-D"):
        tabular_splits(np.zeros(10), {"y": np.zeros(10)}, val_fraction=0.1, test_fraction=0.1)
