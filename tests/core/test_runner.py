"""The shared job runner: every executor gives every result, names failing jobs, and runs each
job with a fixed torch thread count."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from manytask.errors import ConfigError, DataError
from manytask.runner import (
    JobFailed,
    PoolExecutor,
    SequentialExecutor,
    job_label,
    make_executor,
)


@dataclass(frozen=True)
class Job:
    x: int
    label: str = ""
    threads: int | None = None


def square_and_threads(job: Job) -> tuple[int, int]:
    """Module-level, so that spawned pool workers can unpickle it."""
    if job.x < 0:
        raise ValueError("negative input")
    if job.x == 99:
        raise DataError("bad row 99")
    return job.x * job.x, torch.get_num_threads()


JOBS = [Job(3, "three"), Job(1, "one"), Job(2, "two", threads=2)]


def test_sequential_runs_in_order_with_its_threads_and_restores_them() -> None:
    before = torch.get_num_threads()
    ex = make_executor("sequential", threads=1)
    assert list(ex.run(square_and_threads, JOBS)) == [(0, (9, 1)), (1, (1, 1)), (2, (4, 2))]
    assert torch.get_num_threads() == before
    # threads=None leaves this process's count alone
    assert SequentialExecutor(threads=None).run_all(square_and_threads, [Job(2)]) == [(4, before)]


def test_pool_gives_every_result_and_names_a_failing_job() -> None:
    with PoolExecutor(workers=2, threads=1) as ex:
        pairs = list(ex.run(square_and_threads, JOBS))
        assert sorted(pairs) == [(0, (9, 1)), (1, (1, 1)), (2, (4, 2))]
        assert ex.run_all(square_and_threads, JOBS[:2]) == [(9, 1), (1, 1)]
        with pytest.raises(JobFailed, match=r"^minus: failed in a pool worker: ValueError: negative input$"):
            ex.run_all(square_and_threads, [Job(1), Job(-1, "minus")])
        with pytest.raises(DataError, match="bad row 99"):  # the package's own errors come back as they are
            ex.run_all(square_and_threads, [Job(99)])


def test_sequential_failure_and_labels() -> None:
    with pytest.raises(JobFailed, match=r"^job 1: failed: ValueError: negative input$"):
        SequentialExecutor().run_all(square_and_threads, [Job(1), Job(-5)])
    assert job_label(Job(1, "x"), 4) == "x" and job_label(object(), 4) == "job 4"


def test_make_executor_checks_its_arguments() -> None:
    with pytest.raises(ConfigError, match="unknown executor 'gpu'"):
        make_executor("gpu")
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        make_executor("pool", workers=0)
    with pytest.raises(ConfigError, match="threads must be >= 1"):
        make_executor("sequential", threads=0)
    ex = SequentialExecutor()
    assert make_executor(ex) is ex
