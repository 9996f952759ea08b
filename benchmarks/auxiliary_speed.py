"""Step time of the main/auxiliary methods relative to the linear sum (Yim & Kim 2020, Table 2); prints JSON.

One step = :meth:`manytask.training.Trainer.train_step` on one batch (forward, losses, or the
per-element loss terms for ``classwise_aux``, the method's backward, the optimizer step), with
the model and data of the experiment configs: ``configs/aux_multimnist.yaml`` (per-sample
labels: left/right digit) and ``configs/aux_dense.yaml`` (per-pixel: reconstruction of the left
digit and the digit-class mask), two tasks each, batch 64 as there. Methods: ``uniform`` (the
linear sum), ``classwise_aux`` with the class weights updated at every step (no warm-up),
``pareto_mtl`` (main phase, middle preference vector) and ``grad_cosine``.

Interleaved: each round runs one step of every method in a fresh random order; a method's ratio
is the median over rounds of its step time over the linear sum's in the same round. The clock
is the process CPU time (other processes on a shared machine do not count).

    python benchmarks/auxiliary_speed.py [--rounds 60] [--threads 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from manytask.config import load_config
from manytask.experiment import (
    build_data,
    build_model,
    columns_for,
    input_shape,
    task_splits,
)
from manytask.training import Trainer
from manytask.weighting import create_from_train

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"per_sample": "configs/aux_multimnist.yaml", "dense": "configs/aux_dense.yaml"}
GOALS = {"classwise_aux": 1.2, "pareto_mtl": 2.0}
PAPER = {"classwise_aux": 0.310 / 0.183, "pareto_mtl": 1.128 / 0.183}


def _methods(main: str) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        "uniform": ("uniform", {}),
        "classwise_aux": ("classwise_aux", {"main": main, "alpha": 0.005, "warmup_epochs": 0}),
        "pareto_mtl": ("pareto_mtl", {"pref_index": 2, "init_epochs": 0}),
        "grad_cosine": ("grad_cosine", {"main": main}),
    }


def bench_config(path: str, rounds: int, batch_size: int, seed: int = 0) -> dict[str, Any]:
    cfg = load_config(ROOT / path, {"data.train_size": batch_size, "data.val_size": 2, "data.test_size": 2})
    tasks = cfg.build_tasks()
    splits = task_splits(build_data(cfg, columns_for(tasks)), tasks)
    batch = next(iter(splits.train.batches(batch_size)))
    torch.manual_seed(seed)
    base = build_model(cfg, tasks, input_shape(splits))
    trainers = {}
    for label, (name, params) in _methods(tasks[0].name).items():
        method = create_from_train(name, tasks, splits.train, **params)
        trainers[label] = Trainer(copy.deepcopy(base), tasks, method, epochs=1, batch_size=batch_size,
                                  device="cpu", seed=seed, progress=False, log_steps=False)
    for tr in trainers.values():  # warm-up steps (allocations, graph inspection)
        for _ in range(3):
            tr.train_step(batch)
    times: dict[str, list[float]] = {k: [] for k in trainers}
    rng = random.Random(seed)
    for _ in range(rounds):
        order = list(trainers)
        rng.shuffle(order)
        for label in order:
            t0 = time.process_time()
            trainers[label].train_step(batch)
            times[label].append(time.process_time() - t0)
    ratios = {k: statistics.median(t / u for t, u in zip(v, times["uniform"])) for k, v in times.items()}
    return {"config": path, "tasks": [t.name for t in tasks], "batch_size": batch_size, "rounds": rounds,
            "median_step_seconds": {k: statistics.median(v) for k, v in times.items()},
            "ratio_to_linear_sum": ratios,
            "goals_met": {k: ratios[k] <= g for k, g in GOALS.items()}}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--out", type=str, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "threads": args.threads, "clock": "process CPU time",
              "goals": GOALS, "paper_ratios_gtx1080ti": PAPER,
              "results": {name: bench_config(CONFIGS[name], args.rounds, args.batch_size) for name in args.configs}}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
