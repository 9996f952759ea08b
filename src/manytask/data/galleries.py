"""Galleries of digits: how the ``mnist_galleries`` benchmark draws them and labels them. Pure.

A gallery is a multiset of digits; every gallery-level label below is a function of its
**count vector** ``c`` (``c[d]`` = how many images of digit ``d`` it holds), so the functions
take an ``(N, 10)`` count array and return one value per gallery (vectorised, no loop).
Notation: ``n = Σ_d c[d]`` (the gallery size), ``k = #{d : c[d] > 0}`` (distinct digits),
``m̄ = Σ_d d·c[d] / n`` (mean digit), ``odd = c[1] + c[3] + c[5] + c[7] + c[9]``.

**Drawing** (:func:`draw_galleries`): each gallery gets a size ``n`` uniform in
``min_size..max_size`` and a *theme* ``p ~ Dirichlet(α·1₁₀)`` (α = :data:`THEME_ALPHA`, 0.5:
most galleries favour a few digits, some are mixed), then ``n`` digit classes drawn i.i.d.
from ``p``, then for each class its images drawn without replacement from the split's pool of
source digits of that class (with replacement only if the pool is smaller than the count).
The theme makes gallery-level statistics vary from gallery to gallery; with uniform draws
every statistic would concentrate (e.g. "contains a 7" would be true for almost all galleries
of 20 images).

**Tasks** (:data:`GALLERY_TASKS`, Gutelman & Levin 2020's mix: 17 binary, 7 multiclass,
7 regression) and the held-out task :data:`HELDOUT` (see :func:`heldout_score`), never a
training task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "GALLERY_TASKS",
    "HELDOUT",
    "HELDOUT_CLASSES",
    "HELDOUT_NOISE",
    "HELDOUT_THRESHOLDS",
    "THEME_ALPHA",
    "GalleryTask",
    "digit_counts",
    "draw_galleries",
    "gallery_columns",
    "heldout_labels",
    "heldout_score",
    "task_by_name",
]

#: concentration of the per-gallery theme ``Dirichlet(α·1)`` over the ten digits
THEME_ALPHA: float = 0.5
#: the held-out column (the paper's star rating): never in a training configuration
HELDOUT: str = "heldout"
#: classes of the held-out task (0..4, ordered like one to five stars)
HELDOUT_CLASSES: int = 5
#: standard deviation of the Gaussian noise added to :func:`heldout_score`
HELDOUT_NOISE: float = 0.1
#: cut points of the noisy score: class = number of thresholds the score exceeds (near the
#: 20/40/60/80% quantiles of the noisy score on the default data, 0.28/0.48/0.64/0.81, rounded)
HELDOUT_THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.65, 0.8)

_DIGITS = np.arange(10)


@dataclass(frozen=True)
class GalleryTask:
    """One gallery-level label: ``fn`` maps counts ``(N, 10)`` to ``(N,)`` values."""

    name: str
    kind: str  # binary | multiclass | regression
    fn: Callable[[np.ndarray], np.ndarray]
    doc: str
    num_classes: int | None = None


def digit_counts(digits: Sequence[Sequence[int]] | Sequence[np.ndarray]) -> np.ndarray:
    """``(N, 10)`` int64 counts of each digit, one row per gallery (lists of digit labels)."""
    out = np.zeros((len(digits), 10), dtype=np.int64)
    for row, d in enumerate(digits):
        out[row] = np.bincount(np.asarray(d, dtype=np.int64), minlength=10)[:10]
    return out


# ---------------------------------------------------------------- statistics of counts
def _n(c: np.ndarray) -> np.ndarray:
    return c.sum(1)


def _distinct(c: np.ndarray) -> np.ndarray:
    return (c > 0).sum(1)


def _mean(c: np.ndarray) -> np.ndarray:
    return (c * _DIGITS).sum(1) / _n(c)


def _std(c: np.ndarray) -> np.ndarray:
    """Population standard deviation of the digits, ``sqrt(Σ c[d] (d - m̄)² / n)``."""
    dev = (_DIGITS[None, :] - _mean(c)[:, None]) ** 2
    return np.sqrt((c * dev).sum(1) / _n(c))


def _odd(c: np.ndarray) -> np.ndarray:
    return c[:, 1::2].sum(1)


def _mode_share(c: np.ndarray) -> np.ndarray:
    return c.max(1) / _n(c)


def _entropy(c: np.ndarray) -> np.ndarray:
    """Shannon entropy of the gallery's digit shares in bits, ``-Σ p log2 p`` (0 log 0 = 0)."""
    p = c / _n(c)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    return 0.0 - terms.sum(1)  # 0.0 - 0.0 is 0.0, not -0.0


def _lower_median(c: np.ndarray) -> np.ndarray:
    """The ``ceil(n/2)``-th smallest digit (the lower median)."""
    need = (_n(c) + 1) // 2
    return np.argmax(np.cumsum(c, 1) >= need[:, None], axis=1)


def _bucket(values: np.ndarray, cuts: Sequence[float]) -> np.ndarray:
    """Class = how many of ``cuts`` are ≤ the value."""
    return np.searchsorted(np.asarray(cuts), values, side="right").astype(np.int64)


def _has_run3(c: np.ndarray) -> np.ndarray:
    p = c > 0
    return (p[:, :-2] & p[:, 1:-1] & p[:, 2:]).any(1)


def _b(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda c: np.asarray(fn(c), dtype=np.float32)


def _f(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda c: np.asarray(fn(c), dtype=np.float32)


def _i(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda c: np.asarray(fn(c), dtype=np.int64)


#: every training task of the benchmark, in column order
GALLERY_TASKS: tuple[GalleryTask, ...] = (
    # binary (17)
    GalleryTask("mean_above_4_5", "binary", _b(lambda c: _mean(c) > 4.5), "m̄ > 4.5"),
    GalleryTask("majority_odd", "binary", _b(lambda c: 2 * _odd(c) > _n(c)), "odd > n/2"),
    GalleryTask("has_7", "binary", _b(lambda c: c[:, 7] > 0), "c[7] > 0"),
    GalleryTask("size_ge_15", "binary", _b(lambda c: _n(c) >= 15), "n ≥ 15"),
    GalleryTask("more_7_than_1", "binary", _b(lambda c: c[:, 7] > c[:, 1]), "c[7] > c[1]"),
    GalleryTask("has_triple", "binary", _b(lambda c: c.max(1) >= 3), "some digit appears ≥ 3 times"),
    GalleryTask("distinct_ge_6", "binary", _b(lambda c: _distinct(c) >= 6), "k ≥ 6"),
    GalleryTask("has_run_of_3", "binary", _b(_has_run3), "three consecutive digits d, d+1, d+2 all present"),
    GalleryTask("has_0_and_9", "binary", _b(lambda c: (c[:, 0] > 0) & (c[:, 9] > 0)), "c[0] > 0 and c[9] > 0"),
    GalleryTask("dominant_digit", "binary", _b(lambda c: 2 * c.max(1) > _n(c)), "one digit is more than half"),
    GalleryTask("count_8_ge_3", "binary", _b(lambda c: c[:, 8] >= 3), "c[8] ≥ 3"),
    GalleryTask("has_1_2_3", "binary", _b(lambda c: (c[:, 1:4] > 0).all(1)), "1, 2 and 3 all present"),
    GalleryTask("all_below_7", "binary", _b(lambda c: c[:, 7:].sum(1) == 0), "every digit < 7"),
    GalleryTask("all_below_5", "binary", _b(lambda c: c[:, 5:].sum(1) == 0), "every digit < 5"),
    GalleryTask("all_odd", "binary", _b(lambda c: _odd(c) == _n(c)), "every digit odd"),
    GalleryTask("at_most_2_distinct", "binary", _b(lambda c: _distinct(c) <= 2), "k ≤ 2"),
    GalleryTask("all_ge_6", "binary", _b(lambda c: c[:, :6].sum(1) == 0), "every digit ≥ 6"),
    # multiclass (7)
    GalleryTask("mode_digit", "multiclass", _i(lambda c: c.argmax(1)), "most frequent digit (ties: smallest)", 10),
    GalleryTask("min_digit", "multiclass", _i(lambda c: (c > 0).argmax(1)), "smallest digit", 10),
    GalleryTask("max_digit", "multiclass", _i(lambda c: 9 - (c[:, ::-1] > 0).argmax(1)), "largest digit", 10),
    GalleryTask("median_digit", "multiclass", _i(_lower_median), "lower median digit", 10),
    GalleryTask("distinct_bucket", "multiclass", _i(lambda c: _bucket(_distinct(c), (4, 6, 8))),
                "k in 1-3, 4-5, 6-7, 8-10", 4),
    GalleryTask("size_bucket", "multiclass", _i(lambda c: _bucket(_n(c), (9, 13, 17))),
                "n in ≤8, 9-12, 13-16, ≥17", 4),
    GalleryTask("parity_balance", "multiclass", _i(lambda c: np.sign(2 * _odd(c) - _n(c)) + 1),
                "0: more even, 1: as many, 2: more odd", 3),
    # regression (7)
    GalleryTask("mean_digit", "regression", _f(_mean), "m̄"),
    GalleryTask("std_digit", "regression", _f(_std), "population standard deviation of the digits"),
    GalleryTask("count_7", "regression", _f(lambda c: c[:, 7]), "c[7]"),
    GalleryTask("even_share", "regression", _f(lambda c: 1.0 - _odd(c) / _n(c)), "share of even digits"),
    GalleryTask("size", "regression", _f(_n), "n"),
    GalleryTask("distinct", "regression", _f(_distinct), "k"),
    GalleryTask("entropy", "regression", _f(_entropy), "entropy of the digit shares, bits"),
)

_BY_NAME = {t.name: t for t in GALLERY_TASKS}


def task_by_name(name: str) -> GalleryTask:
    return _BY_NAME[name]


def gallery_columns() -> list[str]:
    """Every column of the benchmark: the training tasks, then :data:`HELDOUT`."""
    return [t.name for t in GALLERY_TASKS] + [HELDOUT]


def heldout_score(c: np.ndarray) -> np.ndarray:
    """The noiseless held-out score ``s = m̄ / 9 + k / 10 − max_d c[d] / n``: higher for
    galleries of large, varied digits, lower for galleries dominated by one digit."""
    return _mean(c) / 9.0 + _distinct(c) / 10.0 - _mode_share(c)


def heldout_labels(c: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The held-out class (0..4): how many :data:`HELDOUT_THRESHOLDS` ``s + ε`` exceeds, with
    ``ε = noise`` (the benchmark draws ``ε ~ N(0, HELDOUT_NOISE²)`` per gallery)."""
    return _bucket(heldout_score(c) + noise, HELDOUT_THRESHOLDS)


# ---------------------------------------------------------------- drawing
def draw_galleries(pool_labels: np.ndarray, count: int, min_size: int, max_size: int,
                   rng: np.random.Generator, alpha: float = THEME_ALPHA) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` galleries drawn from a pool of source digits (see the module docstring).

    Args:
        pool_labels: ``(P,)`` digit label of each source digit of the pool.
        rng: the split's own generator (galleries of one split depend only on it).

    Returns:
        ``(members, counts)``: for each gallery the positions in the pool of its images
        (grouped by digit), and the ``(count, 10)`` digit counts.
    """
    by_digit = [np.flatnonzero(pool_labels == d) for d in range(10)]
    present = np.array([len(b) > 0 for b in by_digit])
    sizes = rng.integers(min_size, max_size + 1, size=count)
    themes = rng.dirichlet(np.full(10, alpha), size=count)
    themes[:, ~present] = 0.0  # a pool without some digit: never draw it
    themes /= themes.sum(1, keepdims=True)
    members: list[np.ndarray] = []
    counts = np.zeros((count, 10), dtype=np.int64)
    for g in range(count):
        counts[g] = rng.multinomial(int(sizes[g]), themes[g])
        parts = [rng.choice(by_digit[d], int(k), replace=int(k) > len(by_digit[d]))
                 for d, k in enumerate(counts[g]) if k > 0]
        members.append(np.concatenate(parts))
    return members, counts
