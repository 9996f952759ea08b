"""Where a ``fit`` stands and what it reports: the result, the best epoch so far, the
selection criterion, and the rows written to ``steps.jsonl`` and ``summary.json``.

Pure bookkeeping, kept apart from the loop in :mod:`manytask.training.trainer`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from manytask.errors import ConfigError
from manytask.tasks import Task

__all__ = ["FitResult", "RunState", "monitor_value", "step_rows"]


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    epochs_run: int
    history: list[dict[str, Any]]
    val: dict[str, dict[str, float]]
    test: dict[str, dict[str, float]] | None
    seconds: float
    stopped_early: bool = False


@dataclass
class RunState:
    """Where a ``fit`` stands: its history and the best epoch so far."""

    start_epoch: int = 1
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float = math.nan
    best_epoch: int = 0
    best_state: dict[str, Tensor] | None = None
    bad_epochs: int = 0
    stopped_early: bool = False

    def improves(self, score: float, higher: bool) -> bool:
        """Whether ``score`` beats the best so far (any score beats none)."""
        best = self.best_score
        return math.isnan(best) or (score > best if higher else score < best)

    def forget_best(self) -> None:
        self.best_score, self.best_epoch, self.best_state, self.bad_epochs = math.nan, 0, None, 0


def monitor_value(monitor: str, tasks: Sequence[Task], metrics: dict[str, dict[str, float]]) -> tuple[float, bool]:
    """(value, higher_is_better) of the selection criterion on one split's metrics."""
    if monitor == "auto":
        monitor = "mean_accuracy" if all(t.is_classification for t in tasks) else "loss"
    if monitor == "loss":
        return sum(metrics[t.name]["loss"] for t in tasks), False
    if monitor == "mean_accuracy":
        return sum(metrics[t.name]["accuracy"] for t in tasks) / len(tasks), True
    name, _, metric = monitor.partition(".")
    task = next((t for t in tasks if t.name == name), None)
    if task is None or name not in metrics or metric not in metrics[name]:
        raise ConfigError(f"training.monitor: '{monitor}' is not a known task.metric")
    return metrics[name][metric], task.metric_spec(metric).higher_is_better


def step_rows(names: Sequence[str], first_step: int, epoch: int, weights: Sequence[Sequence[float]],
              extras: Sequence[Mapping[str, float]]) -> list[dict[str, Any]]:
    """The ``steps.jsonl`` rows of an epoch: step number, epoch, each task's weight ``w/<task>``
    and the weighting method's extra values of that step."""
    rows = []
    for i, w in enumerate(weights):
        row: dict[str, Any] = {"step": first_step + i, "epoch": epoch}
        row.update({f"w/{n}": x for n, x in zip(names, w)})
        if i < len(extras):
            row.update(extras[i])
        rows.append(row)
    return rows
