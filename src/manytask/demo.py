"""The built-in demo: MultiMNIST from the bundled real digits, STL for each task and MTL.

The three trainings are independent, so with ``jobs = 2`` they run in two worker processes
(one torch thread each, as the demo config says); every run is seeded, so the results do not
depend on ``jobs`` and ``manytask run`` of the same config reproduces the MTL row.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from manytask.config import load_config

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


def _train(config_path: str, run_dir: str, task_names: list[str] | None, progress: bool) -> dict[str, dict[str, float]]:
    from manytask.experiment import run_experiment

    cfg = load_config(config_path)
    return run_experiment(cfg, run_dir, task_names=task_names, progress=progress).test or {}


def run_demo(root: Path, jobs: int = 2, progress: bool = False) -> DemoResult:
    """Train STL for each task of the demo config and MTL with its weighting, under ``root``."""
    path = demo_config_path()
    cfg = load_config(path)
    tasks = cfg.build_tasks()
    plan: list[tuple[str, Path, list[str] | None]] = [
        (f"STL {t.name}", root / f"stl-{t.name}", [t.name]) for t in tasks
    ]
    plan.append((f"MTL {cfg.weighting.name}", root / f"mtl-{cfg.weighting.name}", None))
    t0 = time.perf_counter()
    if jobs <= 1:
        results = [_train(str(path), str(rd), names, progress) for _, rd, names in plan]
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_train, str(path), str(rd), names, False) for _, rd, names in plan]
            results = [f.result() for f in futures]
    rows = {label: res for (label, _, _), res in zip(plan, results)}
    return DemoResult(rows=rows, run_dirs=[rd for _, rd, _ in plan], seconds=time.perf_counter() - t0,
                      config_path=path)
