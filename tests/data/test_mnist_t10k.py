"""The 10,000 MNIST test digits shipped with the package."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from manytask.data.mnist import (
    load_bundled_digits,
    load_digits_source,
    load_packaged_t10k,
)
from manytask.errors import ConfigError


def _hashes(images: np.ndarray) -> set[str]:
    return {hashlib.sha1(x.tobytes()).hexdigest() for x in images}


def test_packaged_t10k_is_the_mnist_test_set() -> None:
    images, labels = load_packaged_t10k()
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.int64
    # the class counts of the MNIST test set
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert images.max() == 255 and images.min() == 0


def test_bundled_plus_t10k_gives_15000_distinct_digits() -> None:
    images, labels = load_digits_source("bundled+t10k")
    bundled, _ = load_bundled_digits()
    assert images.shape == (15000, 28, 28) and labels.shape == (15000,)
    assert np.array_equal(images[:5000], bundled)
    # no image is in both sets, so disjoint index pools are disjoint in images
    assert len(_hashes(images[:5000])) == 5000 and len(_hashes(images[5000:])) == 10000
    assert not _hashes(images[:5000]) & _hashes(images[5000:])
    only, _ = load_digits_source("t10k")
    assert np.array_equal(only, images[5000:])


def test_t10k_needs_no_folder() -> None:
    with pytest.raises(ConfigError, match="unknown digit source"):
        load_digits_source("t10k+idx")
    load_digits_source("t10k", idx_dir=None)


def test_multimnist_from_the_packaged_digits_keeps_the_pools_disjoint() -> None:
    from manytask.config import parse_config
    from manytask.data.multimnist import build_multimnist_with_metadata

    cfg = parse_config({"data": {"kind": "multimnist", "source": "bundled+t10k", "train_size": 50,
                                 "val_size": 20, "test_size": 20},
                        "tasks": [{"name": "left", "kind": "multiclass", "num_classes": 10}]})
    assert cfg.data.source == "bundled+t10k"
    images, labels = load_digits_source("bundled+t10k")
    _, meta = build_multimnist_with_metadata(images, labels, train_size=50, val_size=20, test_size=20, seed=3)
    pools = [set(m.pool.tolist()) for m in meta.values()]
    assert sum(len(p) for p in pools) == len(set().union(*pools))
    assert sum(len(p) for p in pools) > 10000


def test_single_digit_source_takes_the_packaged_digits() -> None:
    from manytask.config import parse_config
    from manytask.experiment import build_data

    cfg = parse_config({"data": {"kind": "mnist", "source": "bundled+t10k", "train_size": 12000,
                                 "val_size": 1500, "test_size": 1500},
                        "tasks": [{"name": "digit", "kind": "multiclass", "num_classes": 10}]})
    splits = build_data(cfg, ["digit"])
    assert [len(splits.train), len(splits.val), len(splits.test)] == [12000, 1500, 1500]
