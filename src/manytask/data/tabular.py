"""Small real tabular data sets shipped by installed packages, and seeded tabular splits.

* :func:`load_yeast` — the Yeast multi-label gene-function data (2,417 genes × 103 features,
  14 functional classes; Elisseeff & Weston 2002, MULAN version), read from the CSV that the
  ``river`` package ships inside its wheel (no network). Install with
  ``pip install manytask[yeast]``.
* :func:`load_sklearn_digits` — scikit-learn's 1,797 8×8 handwritten digits.
* :func:`tabular_splits` — a seeded train/validation/test split of a feature matrix and named
  target columns into :class:`~manytask.data.batch.Splits`, with nested training fractions
  and standardisation from training statistics only.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from manytask.data.batch import Splits, TensorDataset
from manytask.errors import ConfigError, DataError

__all__ = [
    "YEAST_N_FEATURES",
    "YEAST_N_LABELS",
    "load_sklearn_digits",
    "load_yeast",
    "tabular_split_indices",
    "tabular_splits",
]

YEAST_N_FEATURES = 103
YEAST_N_LABELS = 14


def _yeast_path() -> Path:
    """The ``yeast.csv.gz`` inside the installed ``river`` package.

    The file is located from river's package directory without importing
    ``river.datasets`` (which pulls in pandas and takes seconds); if river ever moves it,
    ``river.datasets.Yeast().path`` is asked instead.
    """
    missing = DataError(
        "the Yeast data set is read from the river package, which is not installed: "
        "pip install manytask[yeast]"
    )
    try:
        spec = importlib.util.find_spec("river")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise missing
    for location in spec.submodule_search_locations or ():
        candidate = Path(location) / "datasets" / "yeast.csv.gz"
        if candidate.is_file():
            return candidate
    try:
        from river.datasets import Yeast
    except ImportError:
        raise missing from None
    return Path(Yeast().path)


def load_yeast() -> tuple[np.ndarray, np.ndarray]:
    """The Yeast multi-label data set, from the copy that ``river`` ships (offline).

    Returns:
        ``(X, Y)``: float32 ``(2417, 103)`` features ``Att1..Att103`` and int64
        ``(2417, 14)`` 0/1 labels ``Class1..Class14``.

    Raises:
        DataError: ``river`` is not installed (``pip install manytask[yeast]``) or its file
            is not the expected table.
    """
    path = _yeast_path()
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            header = fh.readline().strip().split(",")
            table = np.loadtxt(fh, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the Yeast table ({exc})") from None
    features = [i for i, h in enumerate(header) if h.startswith("Att")]
    classes = [i for i, h in enumerate(header) if h.startswith("Class")]
    if len(features) != YEAST_N_FEATURES or len(classes) != YEAST_N_LABELS:
        raise DataError(
            f"{path}: expected {YEAST_N_FEATURES} Att columns and {YEAST_N_LABELS} Class columns, "
            f"found {len(features)} and {len(classes)}"
        )
    if table.shape[1] != len(header):
        raise DataError(f"{path}: rows have {table.shape[1]} values but the header names {len(header)} columns")
    x = table[:, features].astype(np.float32)
    y_raw = table[:, classes]
    if not np.isin(y_raw, (0.0, 1.0)).all():
        row, col = np.argwhere(~np.isin(y_raw, (0.0, 1.0)))[0]
        raise DataError(f"{path}: row {row + 2}, column {header[classes[col]]}: label is not 0 or 1")
    return x, y_raw.astype(np.int64)


def load_sklearn_digits(as_images: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits (8×8, ships with scikit-learn).

    Args:
        as_images: return ``(N, 8, 8)`` images instead of ``(N, 64)`` rows.

    Returns:
        ``(X, y)``: float32 pixels scaled from 0..16 to [0, 1], and int64 classes 0..9.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0)).reshape(-1, 64)
    y = np.asarray(bunch.target, dtype=np.int64)
    return (x.reshape(-1, 8, 8) if as_images else x), y


def _share(name: str, value: object, *, include_zero: bool, include_one: bool) -> float:
    """``value`` as a float in [0, 1] (ends included as asked), else a ConfigError naming it."""
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    ok = np.isfinite(f) and (f >= 0 if include_zero else f > 0) and (f <= 1 if include_one else f < 1)
    if not ok:
        interval = f"{'[' if include_zero else '('}0, 1{']' if include_one else ')'}"
        raise ConfigError(f"{name}: must be in {interval}, got {value}")
    return f


def tabular_split_indices(
    n: int, *, val_fraction: float, test_fraction: float, fraction: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of a seeded train / validation / test split of ``n`` rows.

    The rows are permuted once (seeded); the first ``round(test_fraction·n)`` are the test
    set, the next ``round(val_fraction·n)`` the validation set, the rest the training pool, of
    which the first ``round(fraction·len(pool))`` are kept. Validation and test therefore do
    not depend on ``fraction``, and smaller fractions are subsets of larger ones.

    Returns:
        ``(train, val, test)`` int64 index arrays.
    """
    val_f = _share("val_fraction", val_fraction, include_zero=True, include_one=False)
    test_f = _share("test_fraction", test_fraction, include_zero=True, include_one=False)
    frac = _share("fraction", fraction, include_zero=False, include_one=True)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed: expected a non-negative integer, got {seed!r}")
    n_test = int(round(test_f * n))
    n_val = int(round(val_f * n))
    n_pool = n - n_test - n_val
    if n_pool < 1:
        raise ConfigError(
            f"val_fraction + test_fraction: {val_f:g} + {test_f:g} of {n} rows leaves no training row"
        )
    n_train = int(round(frac * n_pool))
    if n_train < 1:
        raise ConfigError(f"fraction: {fraction} of {n_pool} training rows leaves no training row")
    perm = np.random.default_rng(int(seed)).permutation(n).astype(np.int64)
    return perm[n_test + n_val : n_test + n_val + n_train], perm[n_test : n_test + n_val], perm[:n_test]


def _as_target(name: str, values: np.ndarray, n: int) -> torch.Tensor:
    from manytask.data.encoding import Place, encode_labels

    arr = np.asarray(values)
    if arr.ndim == 0 or arr.shape[0] != n:
        raise DataError(f"target column '{name}' has {0 if arr.ndim == 0 else arr.shape[0]} rows but X has {n}")
    if arr.dtype.kind not in "fiub":
        raise DataError(f"target column '{name}': expected numeric values, got dtype {arr.dtype}")
    return torch.from_numpy(encode_labels(arr, Place("Y_columns", name, "target column", "index", 0))[0])


def tabular_splits(
    X: np.ndarray,
    Y_columns: Mapping[str, np.ndarray],
    *,
    val_fraction: float,
    test_fraction: float,
    fraction: float = 1.0,
    seed: int = 0,
    standardize: bool = True,
) -> Splits:
    """Split a feature matrix and named target columns into train / validation / test sets.

    Rows are assigned by :func:`tabular_split_indices`. With ``standardize`` each feature is
    shifted and scaled by the mean and standard deviation of the training rows actually
    kept (after ``fraction``); constant features are only centred. Validation and test rows
    never contribute to the statistics.

    Args:
        X: ``(N, D)`` numeric features (finite).
        Y_columns: column name -> ``(N, ...)`` targets. Floats become float32 and
            integers/bools int64 tensors; missing labels keep their encoding (NaN or -1).
        val_fraction, test_fraction: shares of the N rows held out (each in [0, 1)).
        fraction: share of the remaining training rows kept (nested across fractions).
        seed: seeds the row permutation.
        standardize: standardise features with training statistics.

    Returns:
        :class:`~manytask.data.batch.Splits` with float32 ``(n, D)`` inputs.

    Raises:
        ConfigError: a fraction or the seed is invalid (names the argument).
        DataError: ``X`` is not a finite 2-D numeric matrix, or a column's length differs.
    """
    x = np.asarray(X)
    if x.ndim != 2:
        raise DataError(f"X: expected a 2-D (rows, features) matrix, got shape {x.shape}")
    if x.dtype.kind not in "iufb":
        raise DataError(f"X: expected numeric features, got dtype {x.dtype}")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(f"X: row {row}, column {col}: value {x[row, col]} is not finite")
    n = int(x.shape[0])
    if not Y_columns:
        raise ConfigError("Y_columns: expected at least one target column")
    targets = {str(k): _as_target(str(k), v, n) for k, v in Y_columns.items()}
    train, val, test = tabular_split_indices(
        n, val_fraction=val_fraction, test_fraction=test_fraction, fraction=fraction, seed=seed
    )
    if standardize:
        from manytask.data.encoding import Standardizer

        x = Standardizer.fit(x, train)(x)
    inputs = torch.from_numpy(x.astype(np.float32))

    def part(idx: np.ndarray) -> TensorDataset:
        t = torch.from_numpy(idx)
        return TensorDataset(inputs[t], {k: v[t] for k, v in targets.items()})

    return Splits(part(train), part(val), part(test))

