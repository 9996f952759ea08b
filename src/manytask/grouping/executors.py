"""Where candidate networks are trained: in this process, on a local process pool, or on Ray.

Every executor runs the same picklable function, :func:`run_job`, on the same
:class:`TrainJob` s and yields :class:`TrainOutcome` s as they finish. Results do not depend on
the executor:

* each job carries its own seed (derived from the search's base seed and the candidate's
  name by :func:`manytask.grouping.candidates.candidate_seed`), so the order in which jobs
  run or the worker that runs them never matters;
* each job sets ``torch.set_num_threads(job.threads)`` (1 by default) before training, in the
  parent as well as in pool / Ray workers, so the floating-point reduction order is the same
  everywhere;
* only the parent process writes the candidate table, in candidate order (see
  :func:`manytask.grouping.candidates.train_candidates`).

Executors
---------
``sequential``  one job after the other in this process.
``pool``        :class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn`` start method
                (no forked torch state), ``workers`` processes, one thread each.
``ray``         ``ray.remote`` tasks with ``num_cpus=1``. ``ray_address`` connects to an
                existing cluster (``ray.init(address=...)``; the package must be installed on
                its nodes and the output folder must be on a shared file system); without it a
                local Ray is started with ``num_cpus=workers`` (and shut down afterwards).
                Ray is an optional dependency (``pip install manytask[ray]``).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from manytask.errors import ConfigError, ManytaskError

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorName",
    "JobFailed",
    "PoolExecutor",
    "RayExecutor",
    "SequentialExecutor",
    "TrainJob",
    "TrainOutcome",
    "make_executor",
    "run_job",
]

ExecutorName = Literal["sequential", "pool", "ray"]
EXECUTORS: tuple[str, ...] = ("sequential", "pool", "ray")


class JobFailed(ManytaskError):
    """Training one candidate failed (the message names the candidate and the cause)."""


@dataclass(frozen=True)
class TrainJob:
    """Everything a worker needs to train one candidate network.

    Attributes:
        index: position of the candidate in the search's candidate list.
        name: the candidate's name (also the name of its run directory).
        config: the experiment config as a plain mapping (``ExperimentConfig.to_dict()``).
        tasks: the tasks the network predicts.
        width: trunk width multiplier.
        seed: the run's seed.
        epochs: training epochs.
        run_dir: the candidate's RunDir (a finished one is read, not retrained; a partial one
            is resumed from its last finished epoch).
        threads: torch intra-op threads while training.
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


@dataclass(frozen=True)
class TrainOutcome:
    """What training one candidate produced (read from its ``summary.json``).

    Attributes:
        val_loss, test_loss: per-task loss at the best epoch (chosen on validation).
        train_seconds: summed training time of its epochs (history), evaluation excluded.
        seconds: wall time of the last ``fit`` call (0 when the run was already finished).
        epochs_run, best_epoch: from the summary.
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
    )


def run_job(job: TrainJob) -> TrainOutcome:
    """Train one candidate (or read its finished RunDir) and return its per-task losses.

    Module-level and free of closures so that pool and Ray workers can pickle it.
    """
    import torch

    from manytask.config import parse_config
    from manytask.experiment import run_experiment
    from manytask.training.rundir import RunDir

    rd = RunDir(job.run_dir)
    if rd.is_complete():
        return _outcome(job, rd.summary() or {}, 0.0, reused=True)
    prev = torch.get_num_threads()
    torch.set_num_threads(job.threads)
    cfg = parse_config(job.config, where=f"candidate {job.name}")
    if cfg.training.threads != job.threads:
        cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"threads": job.threads})})
    t0 = time.perf_counter()
    try:
        run_experiment(cfg, rd, task_names=list(job.tasks), width=job.width, seed=job.seed,
                       epochs=job.epochs, progress=False, resume=True)
    finally:
        torch.set_num_threads(prev)
    return _outcome(job, rd.summary() or {}, time.perf_counter() - t0, reused=False)


def _init_worker(threads: int) -> None:
    """Pool worker start-up: one torch thread (set again by every job)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)


class Executor:
    """Base class: ``run(jobs)`` yields outcomes as jobs finish (any order)."""

    name: str = ""

    def run(self, jobs: Sequence[TrainJob]) -> Iterator[TrainOutcome]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SequentialExecutor(Executor):
    """Run the jobs one after the other in this process."""

    name = "sequential"

    def run(self, jobs: Sequence[TrainJob]) -> Iterator[TrainOutcome]:
        for job in jobs:
            try:
                yield run_job(job)
            except ManytaskError:
                raise
            except Exception as err:  # a crash inside torch: name the candidate
                raise JobFailed(f"candidate {job.name}: training failed: {type(err).__name__}: {err}") from err


class PoolExecutor(Executor):
    """A local :class:`~concurrent.futures.ProcessPoolExecutor` (spawn start method).

    Args:
        workers: number of processes (each trains one candidate at a time with one thread).
    """

    name = "pool"

    def __init__(self, workers: int = 2, threads: int = 1) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.threads = threads
        self._pool: ProcessPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"PoolExecutor(workers={self.workers})"

    def _get(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker, initargs=(self.threads,))
        return self._pool

    def run(self, jobs: Sequence[TrainJob]) -> Iterator[TrainOutcome]:
        if not jobs:
            return
        pool = self._get()
        futures: dict[Future[TrainOutcome], TrainJob] = {pool.submit(run_job, j): j for j in jobs}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: futures[f].index):
                    err = fut.exception()
                    if err is not None:
                        job = futures[fut]
                        if isinstance(err, ManytaskError):
                            raise err
                        raise JobFailed(f"candidate {job.name}: training failed in a pool worker: "
                                        f"{type(err).__name__}: {err}") from err
                    yield fut.result()
        finally:
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor(Executor):
    """Ray tasks (``ray.remote(num_cpus=1)`` around :func:`run_job`).

    Args:
        workers: ``num_cpus`` of the local Ray started when ``address`` is None.
        address: address of an existing Ray cluster (``"auto"``, ``"ray://host:10001"`` …).
    """

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None, threads: int = 1) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        try:
            import ray
        except ImportError:
            raise ConfigError("executor 'ray' needs the ray package (pip install 'manytask[ray]')") from None
        self._ray = ray
        self.workers = workers
        self.address = address
        self.threads = threads
        self._started = False
        self._remote: Any = None

    def __repr__(self) -> str:
        return f"RayExecutor(workers={self.workers}, address={self.address!r})"

    def _ensure(self) -> Any:
        ray = self._ray
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
            self._started = True
        if self._remote is None:
            self._remote = ray.remote(num_cpus=1, max_retries=0)(run_job)
        return self._remote

    def run(self, jobs: Sequence[TrainJob]) -> Iterator[TrainOutcome]:
        if not jobs:
            return
        ray = self._ray
        remote = self._ensure()
        refs = {remote.remote(j): j for j in jobs}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    job = refs[ref]
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayTaskError as err:
                        cause = err.cause if getattr(err, "cause", None) is not None else err
                        if isinstance(cause, ManytaskError):
                            raise cause from None
                        raise JobFailed(f"candidate {job.name}: training failed on Ray: "
                                        f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}") from None
        finally:
            for ref in pending:
                try:
                    ray.cancel(ref)
                except Exception:  # pragma: no cover - best effort
                    pass

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False
        self._remote = None


def make_executor(name: str | Executor = "sequential", *, workers: int = 2, ray_address: str | None = None,
                  threads: int = 1) -> Executor:
    """An executor by name: ``sequential``, ``pool`` or ``ray`` (an Executor passes through)."""
    if isinstance(name, Executor):
        return name
    if name == "sequential":
        return SequentialExecutor()
    if name == "pool":
        return PoolExecutor(workers=workers, threads=threads)
    if name == "ray":
        return RayExecutor(workers=workers, address=ray_address, threads=threads)
    raise ConfigError(f"executor: unknown executor '{name}' (expected one of {', '.join(EXECUTORS)})")
