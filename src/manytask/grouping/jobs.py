"""One candidate network's training, as a job for the shared runner (:mod:`manytask.runner`).

:func:`run_job` trains one :class:`TrainJob` (or reads its finished RunDir back) and returns a
:class:`TrainOutcome`; :func:`manytask.grouping.candidates.train_candidates` runs it over every
candidate on the sequential, pool or Ray executor. Results do not depend on the executor:

* each job carries its own seed (derived from the search's base seed and the candidate's
  name by :func:`manytask.grouping.candidates.candidate_seed`), so the order in which jobs
  run or the worker that runs them never matters;
* each job trains with ``job.threads`` torch threads (1 by default), in the parent as well as
  in pool / Ray workers, so the floating-point reduction order is the same everywhere;
* only the parent process writes the candidate table, in candidate order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from manytask.runner import JobFailed

__all__ = ["TrainJob", "TrainOutcome", "run_job"]


@dataclass(frozen=True)
class TrainJob:
    """Everything a worker needs to train one candidate network.

    Attributes:
        index: position of the candidate in the list of jobs.
        name: the candidate's name (also the name of its run directory).
        config: the experiment config as a plain mapping (``ExperimentConfig.to_dict()``).
        tasks: the tasks the network predicts.
        width: trunk width multiplier.
        seed: the run's seed.
        epochs: training epochs.
        run_dir: the candidate's RunDir (a finished one is read, not retrained; a partial one
            is resumed from its last finished epoch).
        threads: torch intra-op threads while training.
        max_steps: stop after this many optimizer steps of the ``epochs``-epoch schedule
            (the early-stopping approximation; None = the whole schedule).
    """

    index: int
    name: str
    config: dict[str, Any]
    tasks: tuple[str, ...]
    width: float
    seed: int
    epochs: int
    run_dir: str
    threads: int = 1
    max_steps: int | None = None

    @property
    def label(self) -> str:
        """How errors name the job."""
        return f"candidate {self.name}"


@dataclass(frozen=True)
class TrainOutcome:
    """What training one candidate produced (read from its ``summary.json``).

    Attributes:
        val_loss, test_loss: per-task loss at the best epoch (chosen on validation).
        train_seconds: summed training time of its epochs (history), evaluation excluded.
        seconds: wall time of the last ``fit`` call (0 when the run was already finished).
        epochs_run, best_epoch: from the summary.
        steps_run: optimizer steps taken (None for a run directory written before it was recorded).
        reused: True when the RunDir was already complete and nothing was trained.
    """

    index: int
    name: str
    val_loss: dict[str, float]
    test_loss: dict[str, float]
    train_seconds: float
    seconds: float
    epochs_run: int
    best_epoch: int
    reused: bool = False
    steps_run: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _outcome(job: TrainJob, summary: dict[str, Any], seconds: float, reused: bool) -> TrainOutcome:
    val = summary.get("val") or {}
    test = summary.get("test") or {}
    missing = [t for t in job.tasks if t not in val or t not in test]
    if missing:
        raise JobFailed(f"candidate {job.name}: {job.run_dir}/summary.json has no val/test loss for {missing}")
    return TrainOutcome(
        index=job.index,
        name=job.name,
        val_loss={t: float(val[t]["loss"]) for t in job.tasks},
        test_loss={t: float(test[t]["loss"]) for t in job.tasks},
        train_seconds=float(summary.get("train_seconds", 0.0)),
        seconds=seconds,
        epochs_run=int(summary["epochs_run"]),
        best_epoch=int(summary["best_epoch"]),
        reused=reused,
        steps_run=None if summary.get("steps_run") is None else int(summary["steps_run"]),
    )


def run_job(job: TrainJob) -> TrainOutcome:
    """Train one candidate (or read its finished RunDir) and return its per-task losses.

    Module-level and free of closures so that pool and Ray workers can pickle it. The runner
    sets (and restores) ``job.threads`` torch threads around it; the run's config records the
    same count.
    """
    from manytask.config import parse_config
    from manytask.experiment import run_experiment
    from manytask.training.rundir import RunDir

    rd = RunDir(job.run_dir)
    if rd.is_complete():
        return _outcome(job, rd.summary() or {}, 0.0, reused=True)
    cfg = parse_config(job.config, where=f"candidate {job.name}")
    if cfg.training.threads != job.threads:
        cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"threads": job.threads})})
    t0 = time.perf_counter()
    run_experiment(cfg, rd, task_names=list(job.tasks), width=job.width, seed=job.seed,
                   epochs=job.epochs, progress=False, resume=True, max_steps=job.max_steps)
    return _outcome(job, rd.summary() or {}, time.perf_counter() - t0, reused=False)
