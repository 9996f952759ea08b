"""The job runner every command shares: run a function over jobs in this process, on a local
process pool, or on Ray, and get the results as the jobs finish.

``compare`` (one job per training run), ``group`` (one per candidate network) and ``demo`` (its
three trainings) all go through :func:`make_executor`. A job is any picklable object and the
function any picklable *module-level* function of one job; ``executor.run(fn, jobs)`` yields
``(index, result)`` pairs in the order the jobs finish, ``executor.run_all(fn, jobs)`` returns
the results in job order.

Results do not depend on the executor as long as each job carries its own seed and the parent
alone writes shared files. Every job runs with a fixed torch thread count: the job's own
``threads`` attribute when it has one, else the executor's ``threads``; ``None`` leaves the
count alone in this process, and pool / Ray workers start with one thread.

An error names the job by its ``label`` attribute (``job <index>`` without one). A
:class:`~manytask.errors.ManytaskError` raised by a job comes back as it is; any other
exception becomes :class:`JobFailed`.

Executors
---------
``sequential``  one job after the other in this process.
``pool``        :class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn`` start method
                (no forked torch state), ``workers`` processes.
``ray``         ``ray.remote`` tasks with ``num_cpus=1``. ``ray_address`` connects to an
                existing cluster (``ray.init(address=...)``; the package must be installed on
                its nodes and output folders must be on a shared file system); without it a
                local Ray is started with ``num_cpus=workers`` (and shut down afterwards).
                Ray is an optional dependency (``pip install manytask[ray]``).

Scripts that use ``pool`` or ``ray`` need the usual ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from types import TracebackType
from typing import Any, Literal, TypeVar

from manytask.errors import ConfigError, ManytaskError

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorName",
    "JobFailed",
    "PoolExecutor",
    "RayExecutor",
    "SequentialExecutor",
    "job_label",
    "make_executor",
]

ExecutorName = Literal["sequential", "pool", "ray"]
EXECUTORS: tuple[str, ...] = ("sequential", "pool", "ray")

J = TypeVar("J")
R = TypeVar("R")


class JobFailed(ManytaskError):
    """A job failed with an error that is not a :class:`ManytaskError` (the message names the
    job and the cause)."""


def job_label(job: Any, index: int) -> str:
    """How errors name a job: its ``label`` attribute, else ``job <index>``."""
    label = getattr(job, "label", None)
    return str(label) if label else f"job {index}"


def _threads_for(job: Any, default: int | None) -> int | None:
    own = getattr(job, "threads", None)
    return int(own) if own else default


def call_job(fn: Callable[[Any], Any], job: Any, threads: int | None) -> Any:
    """Run ``fn(job)`` with ``threads`` torch threads (restored afterwards; ``None``: unchanged).

    Module-level so that pool and Ray workers can pickle it.
    """
    if threads is None:
        return fn(job)
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn(job)
    finally:
        torch.set_num_threads(prev)


def _init_worker(threads: int) -> None:
    """Pool worker start-up: a fixed torch thread count (set again by every job)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)


def _failure(job: Any, index: int, where: str, err: BaseException) -> ManytaskError:
    if isinstance(err, ManytaskError):
        return err
    text = str(err).splitlines()[0] if str(err) else ""
    return JobFailed(f"{job_label(job, index)}: failed{where}: {type(err).__name__}: {text}")


class Executor:
    """Base class: ``run(fn, jobs)`` yields ``(index, fn(jobs[index]))`` as jobs finish."""

    name: str = ""

    def __init__(self, threads: int | None = 1) -> None:
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        self.threads = threads

    def run(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[tuple[int, R]]:  # pragma: no cover
        raise NotImplementedError

    def run_all(self, fn: Callable[[J], R], jobs: Sequence[J]) -> list[R]:
        """All results, in the order of ``jobs``."""
        out: dict[int, R] = dict(self.run(fn, jobs))
        return [out[i] for i in range(len(jobs))]

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

    def run(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[tuple[int, R]]:
        for i, job in enumerate(jobs):
            try:
                result = call_job(fn, job, _threads_for(job, self.threads))
            except ManytaskError:
                raise
            except Exception as err:  # a crash inside torch: name the job
                raise _failure(job, i, "", err) from err
            yield i, result


def _check_workers(workers: int) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    return workers


class PoolExecutor(Executor):
    """A local :class:`~concurrent.futures.ProcessPoolExecutor` (spawn start method).

    Args:
        workers: number of processes (each runs one job at a time).
        threads: torch threads per job (``None``: one).
    """

    name = "pool"

    def __init__(self, workers: int = 2, threads: int | None = 1) -> None:
        super().__init__(threads)
        self.workers = _check_workers(workers)
        self._pool: ProcessPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"PoolExecutor(workers={self.workers})"

    def _get(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker, initargs=(self.threads or 1,))
        return self._pool

    def run(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[tuple[int, R]]:
        if not jobs:
            return
        pool = self._get()
        futures: dict[Future[R], int] = {
            pool.submit(call_job, fn, job, _threads_for(job, self.threads)): i for i, job in enumerate(jobs)
        }
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=futures.__getitem__):
                    i = futures[fut]
                    err = fut.exception()
                    if isinstance(err, ManytaskError):
                        raise err
                    if err is not None:
                        raise _failure(jobs[i], i, " in a pool worker", err) from err
                    yield i, fut.result()
        finally:
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor(Executor):
    """Ray tasks (``ray.remote(num_cpus=1)``), one per job.

    Args:
        workers: ``num_cpus`` of the local Ray started when ``address`` is None.
        address: address of an existing Ray cluster (``"auto"``, ``"ray://host:10001"`` …).
        threads: torch threads per job (``None``: one).
    """

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None, threads: int | None = 1) -> None:
        super().__init__(threads)
        self.workers = _check_workers(workers)
        try:
            import ray
        except ImportError:
            raise ConfigError("executor 'ray' needs the ray package (pip install 'manytask[ray]')") from None
        self._ray = ray
        self.address = address
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
            self._remote = ray.remote(num_cpus=1, max_retries=0)(call_job)
        return self._remote

    def run(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[tuple[int, R]]:
        if not jobs:
            return
        ray = self._ray
        remote = self._ensure()
        refs = {remote.remote(fn, job, _threads_for(job, self.threads) or 1): i for i, job in enumerate(jobs)}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    i = refs[ref]
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as err:
                        cause = err.cause if getattr(err, "cause", None) is not None else err
                        raise _failure(jobs[i], i, " on Ray", cause) from None
                    yield i, result
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
                  threads: int | None = 1) -> Executor:
    """An executor by name: ``sequential``, ``pool`` or ``ray`` (an Executor passes through).

    Args:
        name: the executor's name, or an executor to use as it is.
        workers: pool processes / CPUs of a local Ray.
        ray_address: an existing Ray cluster to connect to.
        threads: torch threads per job (``None``: unchanged in this process, one in workers).
    """
    if isinstance(name, Executor):
        return name
    if name == "sequential":
        return SequentialExecutor(threads=threads)
    if name == "pool":
        return PoolExecutor(workers=workers, threads=threads)
    if name == "ray":
        return RayExecutor(workers=workers, address=ray_address, threads=threads)
    raise ConfigError(f"executor: unknown executor '{name}' (expected one of {', '.join(EXECUTORS)})")
