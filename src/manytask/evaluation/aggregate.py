"""The pure core of a comparison: mean ± std over seeds, Δm against single-task learning,
mean training time. Functions of run records only: no files, no training, no formatting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from manytask.errors import ConfigError
from manytask.evaluation.delta_m import delta_m
from manytask.evaluation.method_spec import STL
from manytask.evaluation.records import DIVERGED, RunRecord
from manytask.tasks import Task

__all__ = ["SummaryCell", "aggregate", "delta_m_table", "mean_seconds", "mean_std", "primary_value"]


@dataclass(frozen=True)
class SummaryCell:
    """Mean and sample standard deviation (ddof=1; NaN for one seed) of one task's test
    primary metric for one approach at one fraction, over ``n`` seeds."""

    fraction: float
    method: str
    task: str
    metric: str
    mean: float
    std: float
    n: int
    higher_is_better: bool


def mean_std(values: Sequence[float | None]) -> tuple[float, float, int]:
    """(mean, sample std with ddof=1, n) of the finite values; std is NaN when n < 2."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    n = int(v.size)
    if n == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), (float(v.std(ddof=1)) if n >= 2 else math.nan), n


def primary_value(record: RunRecord, task: Task) -> float:
    """The run's test value of the task's primary metric (NaN when missing)."""
    return float(record.test.get(task.name, {}).get(task.primary_metric, math.nan))


def aggregate(records: Sequence[RunRecord], tasks: Sequence[Task], methods: Sequence[str],
              fractions: Sequence[float]) -> list[SummaryCell]:
    """Mean ± std over seeds of every (fraction, approach, task); diverged runs are left out."""
    cells: list[SummaryCell] = []
    for f in fractions:
        for m in methods:
            for t in tasks:
                vals = [primary_value(r, t) for r in records
                        if r.spec.fraction == f and r.spec.method == m and t.name in r.spec.tasks
                        and r.status != DIVERGED]
                mean, std, n = mean_std(vals)
                cells.append(SummaryCell(f, m, t.name, t.primary_metric, mean, std, n, t.higher_is_better))
    return cells


def delta_m_table(cells: Sequence[SummaryCell], tasks: Sequence[Task], methods: Sequence[str],
                  fractions: Sequence[float]) -> dict[str, dict[float, float]]:
    """Δm (percent, positive = better than STL) of each multi-task method at each fraction,
    from the seed means; empty without ``stl`` among the methods."""
    if STL not in methods:
        return {}
    index = {(c.fraction, c.method, c.task): c.mean for c in cells}
    higher = {t.name: t.higher_is_better for t in tasks}
    out: dict[str, dict[float, float]] = {}
    for m in methods:
        if m == STL:
            continue
        out[m] = {}
        for f in fractions:
            base = {t.name: index[(f, STL, t.name)] for t in tasks}
            mine = {t.name: index[(f, m, t.name)] for t in tasks}
            try:
                out[m][f] = delta_m(mine, base, higher)
            except ConfigError:  # a zero baseline
                out[m][f] = math.nan
    return out


def mean_seconds(records: Sequence[RunRecord], method: str, fraction: float | None = None) -> float:
    """Mean training time per run (``train_seconds`` of the summary: the training passes,
    without evaluation) of an approach, over seeds (and fractions when ``fraction`` is None)."""
    vals = [r.train_seconds for r in records if r.spec.method == method and r.train_seconds is not None
            and (fraction is None or r.spec.fraction == fraction)]
    return float(np.mean(vals)) if vals else math.nan
