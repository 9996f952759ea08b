"""The two records of a comparison: a planned run (:class:`RunSpec`) and what it gave
(:class:`RunRecord`). Planning makes the first, running the second; aggregation and the
report writers only read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DIVERGED", "REUSED", "TRAINED", "RunRecord", "RunSpec"]

#: ``RunRecord.status`` values.
TRAINED, REUSED, DIVERGED = "trained", "reused", "diverged"


@dataclass(frozen=True)
class RunSpec:
    """One training run of a comparison.

    Attributes:
        fraction, seed: the training fraction and the run seed.
        method: the method spec as written: ``stl``, a weighting name, or a name with
            hyperparameters (``famo[update_on=next_batch]``).
        tasks: the tasks this run trains (one for ``stl``).
        name: the directory name: ``stl-<task>``, ``<method>`` or ``<method>-<key>=<value>…``.
        path: the run directory.
        epochs: epochs to train.
        weighting, weighting_params: the weighting actually used (``uniform`` for STL).
        tsne_epochs: epochs after which the shared representation is saved.
    """

    fraction: float
    seed: int
    method: str
    tasks: tuple[str, ...]
    name: str
    path: Path
    epochs: int
    weighting: str
    weighting_params: Mapping[str, Any] = field(default_factory=dict)
    tsne_epochs: tuple[int, ...] = ()

    def describe(self) -> str:
        return f"fraction {self.fraction:g}, seed {self.seed}, {self.name}"


@dataclass
class RunRecord:
    """What one run gave: its spec, status and the numbers from its ``summary.json``.

    ``status`` is ``trained`` (trained now), ``reused`` (complete before, read back) or
    ``diverged`` (training loss became NaN/inf; no metrics).
    """

    spec: RunSpec
    status: str
    best_epoch: int | None = None
    epochs_run: int | None = None
    train_seconds: float | None = None
    seconds: float | None = None
    test: dict[str, dict[str, float]] = field(default_factory=dict)
    message: str = ""
