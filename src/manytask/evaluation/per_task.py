"""Each training task of a multi-task model against its single-task model (pure functions).

Gutelman & Levin (2020, Section 4.2, Figures 5 and 6) compare every task of the multi-task
gallery model with a model of the same architecture trained on that task alone:

* the **error** of a task on the test split is ``e = 1 - accuracy`` for a classification task
  (binary, multiclass) and the mean squared error for a regression task (``regression_error
  = "mse"``, the paper's choice; ``"1-r2"`` gives ``1 - R^2``, the same ratio when both models
  are scored on the same test rows since ``1 - R^2 = MSE / Var(y)``);
* the **relative error** of the multi-task model is ``(e_MTL - e_STL) / e_STL``: negative when
  the multi-task model is better (Figure 5 plots it per task, sorted);
* the **class balance** of a binary task is its minority share ``min(p, 1 - p)`` with ``p``
  the share of positive training labels (0.5 = balanced, near 0 = skewed);
* Figure 6 relates balance to the relative error over the binary tasks with Pearson's
  ``r = cov(x, y) / (sd(x) sd(y))`` and its two-sided p-value (``scipy.stats.pearsonr``).
  The paper reports r = 0.78 and 0.80 (p < .001): the more balanced the task, the more the
  multi-task model loses against the single-task one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from manytask.errors import ConfigError, DataError

__all__ = [
    "CLASSIFICATION_KINDS",
    "TaskComparison",
    "balance_vs_benefit",
    "compare_tasks",
    "minority_share",
    "pearson",
    "relative_error",
    "task_error",
]

CLASSIFICATION_KINDS = ("binary", "multiclass")
REGRESSION_ERRORS = ("mse", "1-r2")


def task_error(kind: str, metrics: Mapping[str, float], regression_error: str = "mse") -> float:
    """The error of one task from its test metrics (see the module docstring)."""
    if kind in CLASSIFICATION_KINDS:
        if "accuracy" not in metrics:
            raise DataError(f"{kind} task: the metrics hold no 'accuracy' (found {sorted(metrics)})")
        return 1.0 - float(metrics["accuracy"])
    if kind == "regression":
        if regression_error not in REGRESSION_ERRORS:
            raise ConfigError(f"regression_error must be one of {', '.join(REGRESSION_ERRORS)}, got {regression_error!r}")
        key = "mse" if regression_error == "mse" else "r2"
        if key not in metrics:
            raise DataError(f"regression task: the metrics hold no {key!r} (found {sorted(metrics)})")
        return float(metrics["mse"]) if key == "mse" else 1.0 - float(metrics["r2"])
    raise ConfigError(f"task kind {kind!r}: only binary, multiclass and regression tasks have an error here")


def relative_error(e_mtl: float, e_stl: float) -> float:
    """``(e_MTL - e_STL) / e_STL``; 0 when both are 0, +inf when only the single-task error is 0."""
    if e_stl == 0:
        return 0.0 if e_mtl == 0 else math.inf
    return (e_mtl - e_stl) / e_stl


def minority_share(labels: np.ndarray, mask: np.ndarray | None = None) -> float:
    """``min(p, 1 - p)`` with ``p`` the share of 1s among the (unmasked) 0/1 ``labels``."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    if mask is not None:
        y = y[np.asarray(mask, dtype=bool).ravel()]
    if len(y) == 0:
        raise DataError("minority_share: no labelled rows")
    if not np.isin(y, (0.0, 1.0)).all():
        raise DataError("minority_share: binary labels must be 0 or 1")
    p = float(y.mean())
    return min(p, 1.0 - p)


def pearson(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Pearson's ``r`` and its two-sided p-value; ``(nan, nan)`` with fewer than 3 finite pairs
    or a constant variable (r is undefined there)."""
    from scipy.stats import pearsonr

    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        raise DataError(f"pearson: x has {a.size} values but y has {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan, math.nan
    res = pearsonr(a, b)
    return float(res.statistic), float(res.pvalue)


@dataclass(frozen=True)
class TaskComparison:
    """One task of Figure 5: its kind, both errors and the relative error."""

    task: str
    kind: str
    e_mtl: float
    e_stl: float
    relative: float
    balance: float | None = None


def compare_tasks(kinds: Mapping[str, str], mtl: Mapping[str, Mapping[str, float]],
                  stl: Mapping[str, Mapping[str, float]], balance: Mapping[str, float] | None = None,
                  regression_error: str = "mse") -> list[TaskComparison]:
    """Per task (of ``kinds``, task -> kind) the errors from the test metrics of the multi-task
    run ``mtl`` and of the single-task runs ``stl`` (task -> metrics), sorted by relative error
    (best for the multi-task model first). Tasks missing from ``stl`` are left out."""
    out = []
    for task, kind in kinds.items():
        if task not in stl:
            continue
        if task not in mtl:
            raise DataError(f"task '{task}': no multi-task metrics")
        e_m = task_error(kind, mtl[task], regression_error)
        e_s = task_error(kind, stl[task], regression_error)
        b = None if balance is None else balance.get(task)
        out.append(TaskComparison(task, kind, e_m, e_s, relative_error(e_m, e_s), b))
    return sorted(out, key=lambda c: (c.relative, c.task))


def balance_vs_benefit(rows: Sequence[TaskComparison]) -> dict[str, object]:
    """Figure 6 over the binary tasks with a balance: the points and Pearson's r, p."""
    pts = [(r.task, float(r.balance), r.relative) for r in rows
           if r.kind == "binary" and r.balance is not None and math.isfinite(r.relative)]
    r, p = pearson([b for _, b, _ in pts], [v for _, _, v in pts])
    return {"tasks": [t for t, _, _ in pts], "balance": [b for _, b, _ in pts],
            "relative_error": [v for _, _, v in pts], "r": r, "p": p, "n": len(pts)}
