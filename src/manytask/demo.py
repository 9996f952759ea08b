"""The built-in demo: MultiMNIST from the bundled real digits, STL for each task and MTL.

The three trainings are independent jobs for the shared runner (:mod:`manytask.runner`): with
``jobs = 2`` they run on a process pool of two workers (one torch thread each, as the demo
config says), with ``jobs = 1`` one after the other here; any executor may be passed instead.
Every run is seeded, so the results do not depend on the executor and ``manytask run`` of the
same config reproduces the MTL row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from manytask.config import load_config
from manytask.errors import ConfigError
from manytask.runner import Executor, make_executor

DEMO_CONFIG = "multimnist_demo.yaml"


def demo_config_path() -> Path:
    """The packaged demo config (identical to ``configs/multimnist_demo.yaml`` in the repo)."""
    return Path(str(resources.files("manytask") / "configs" / DEMO_CONFIG))


@dataclass
class DemoResult:
    rows: dict[str, dict[str, dict[str, float]]]
    run_dirs: list[Path]
    seconds: float
    config_path: Path


@dataclass(frozen=True)
class DemoJob:
    """One training of the demo: ``task_names`` None trains every task of the config (MTL)."""

    label: str
    config_path: str
    run_dir: str
    task_names: tuple[str, ...] | None
    progress: bool = False


def _train(job: DemoJob) -> dict[str, dict[str, float]]:
    """Train one demo run and return its test metrics (module-level: picklable for workers)."""
    from manytask.experiment import run_experiment

    cfg = load_config(job.config_path)
    names = None if job.task_names is None else list(job.task_names)
    return run_experiment(cfg, job.run_dir, task_names=names, progress=job.progress).test or {}


def run_demo(root: Path, jobs: int = 2, progress: bool = False, executor: str | Executor | None = None) -> DemoResult:
    """Train STL for each task of the demo config and MTL with its weighting, under ``root``.

    Args:
        root: parent folder of the three run directories.
        jobs: trainings at once: 1 = one after the other in this process, N > 1 = a process
            pool of N workers (ignored when ``executor`` is given).
        progress: progress bars (only when the runs train in this process).
        executor: ``sequential``, ``pool``, ``ray`` or an :class:`~manytask.runner.Executor`
            (not closed here); default: chosen by ``jobs``.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    path = demo_config_path()
    cfg = load_config(path)
    if executor is None:
        executor = "sequential" if jobs <= 1 else "pool"
    ex = make_executor(executor, workers=max(jobs, 1), threads=None)
    here = ex.name == "sequential"
    plan = [DemoJob(f"STL {t.name}", str(path), str(root / f"stl-{t.name}"), (t.name,), progress and here)
            for t in cfg.build_tasks()]
    plan.append(DemoJob(f"MTL {cfg.weighting.name}", str(path), str(root / f"mtl-{cfg.weighting.name}"), None,
                        progress and here))
    t0 = time.perf_counter()
    try:
        results = ex.run_all(_train, plan)
    finally:
        if ex is not executor:
            ex.close()
    return DemoResult(rows={job.label: res for job, res in zip(plan, results)},
                      run_dirs=[Path(job.run_dir) for job in plan], seconds=time.perf_counter() - t0,
                      config_path=path)
