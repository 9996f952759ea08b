"""The same candidate search gives the same table on every executor (sequential, pool, Ray)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from grouping_helpers import tiny_config

from manytask.config import parse_config
from manytask.errors import ConfigError
from manytask.grouping.candidates import (
    build_candidates,
    candidate_seed,
    train_candidates,
)
from manytask.grouping.jobs import TrainJob, run_job
from manytask.grouping.table import CandidateTable
from manytask.runner import JobFailed, PoolExecutor, SequentialExecutor, make_executor

TINY = tiny_config(seed=5)

HAS_RAY = importlib.util.find_spec("ray") is not None


@pytest.fixture(scope="module")
def cfg():
    return parse_config(TINY)


@pytest.fixture(scope="module")
def specs(cfg):
    return build_candidates(cfg)  # 3 tasks: 7 full-size subsets + 3 half-size networks


@pytest.fixture(scope="module")
def sequential_table(cfg, specs, tmp_path_factory) -> CandidateTable:
    return train_candidates(cfg, specs, tmp_path_factory.mktemp("seq"), executor="sequential")


def losses(table: CandidateTable) -> list[tuple]:
    """Everything that must not depend on the executor (times and run paths excluded)."""
    return [(c.key, dict(c.val_loss), dict(c.test_loss), c.extra["seed"], c.extra["epochs_run"]) for c in table]


def test_sequential_table_is_complete(sequential_table, specs) -> None:
    assert len(sequential_table) == len(specs) == 10
    assert [c.extra["name"] for c in sequential_table] == [s.name for s in specs]


def test_pool_gives_identical_table(cfg, specs, sequential_table, tmp_path: Path) -> None:
    with PoolExecutor(workers=2) as ex:
        table = train_candidates(cfg, specs, tmp_path, executor=ex)
        # the parent wrote the file in candidate order, whatever order the workers finished in
        assert [c.extra["name"] for c in CandidateTable.read(tmp_path / "candidates.csv")] == [s.name for s in specs]
    assert losses(table) == losses(sequential_table)


@pytest.mark.skipif(not HAS_RAY, reason="ray is not installed (pip install 'manytask[ray]'); Ray executor not tested")
def test_ray_gives_identical_table(cfg, specs, sequential_table, tmp_path: Path) -> None:
    import ray

    if ray.is_initialized():  # pragma: no cover - another test left one running
        ray.shutdown()
    ex = make_executor("ray", workers=2)  # a local Ray: ray.init(num_cpus=2, include_dashboard=False)
    try:
        table = train_candidates(cfg, specs, tmp_path, executor=ex)
        assert ray.is_initialized()
    finally:
        ex.close()
    assert not ray.is_initialized()
    assert losses(table) == losses(sequential_table)


def test_job_seed_and_failure_are_named(cfg, tmp_path: Path) -> None:
    job = TrainJob(index=0, name="left@full", config=cfg.to_dict(), tasks=("nope",), width=1.0,
                   seed=candidate_seed(0, "left@full"), epochs=1, run_dir=str(tmp_path / "r"))
    with pytest.raises(ConfigError, match="unknown task"):
        list(SequentialExecutor().run(run_job, [job]))
    bad = TrainJob(index=0, name="left@full", config={"tasks": "oops"}, tasks=("left",), width=1.0, seed=0,
                   epochs=1, run_dir=str(tmp_path / "r2"))
    with pytest.raises(ConfigError, match="candidate left@full"):
        run_job(bad)


def test_make_executor_rejects_unknown_names() -> None:
    with pytest.raises(ConfigError, match="unknown executor 'gpu'"):
        make_executor("gpu")
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        make_executor("pool", workers=0)
    ex = SequentialExecutor()
    assert make_executor(ex) is ex
    assert issubclass(JobFailed, Exception)
