"""Trainer step time with k task heads, and MultiMNIST LeNet training throughput; prints JSON.

1. Many heads: one :meth:`Trainer.train_step` (forward, k task losses, uniform weighting's
   backward, optimizer step) of the MultiMNIST LeNet trunk with k two-layer 10-class heads,
   batch 256 of 1×36×36 inputs, for k ∈ {1, 10, 40}; the median over timed steps (after warm-up)
   and its ratio to k = 1. Goal: k = 40 at most 1.3× k = 1.
2. Throughput: examples per second of :meth:`Trainer.train_epoch` on MultiMNIST built from the
   bundled real digits (tasks left and right, batch 128, SGD), the median of the timed epochs;
   on CUDA also with ``precision="bf16"`` (bfloat16 autocast).

On CUDA the clock is synchronised wall time; on CPU (``--device cpu``, for a quick check of the
script itself) it is wall time too. ``--device cuda`` without a CUDA device exits with code 2.

    python benchmarks/gpu_speed.py [--device cuda] [--ks 1 10 40] [--steps 50] [--train-size 10000]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

from manytask.data.batch import TensorDataset
from manytask.models import LeNetTrunk, MultiTaskModel
from manytask.tasks import Task
from manytask.training import OptimizerSpec, Trainer

BATCH = 256
HEADS_GOAL = 1.3


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


BATCH_HEADS: bool | None = None  # MultiTaskModel.batch_heads (None: batched on CUDA)


def _trainer(tasks: list[Task], device: torch.device, batch_size: int, precision: str = "fp32") -> Trainer:
    torch.manual_seed(0)
    model = MultiTaskModel(LeNetTrunk(), tasks)
    model.batch_heads = BATCH_HEADS
    return Trainer(model, tasks, "uniform", OptimizerSpec(name="sgd", lr=0.01), epochs=1, batch_size=batch_size,
                   device=str(device), progress=False, deterministic=False, precision=precision)


def step_time(k: int, device: torch.device, steps: int, warmup: int) -> float:
    """Median seconds of one training step with ``k`` heads."""
    tasks = [Task(f"t{i}", "multiclass", num_classes=10) for i in range(k)]
    trainer = _trainer(tasks, device, BATCH)
    g = torch.Generator().manual_seed(k)
    x = torch.rand(BATCH, 1, 36, 36, generator=g)
    y = {t.name: torch.randint(0, 10, (BATCH,), generator=g) for t in tasks}
    batch = next(TensorDataset(x, y).to(device).batches(BATCH))
    times = []
    for i in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        trainer.train_step(batch)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def many_heads(device: torch.device, ks: Sequence[int], steps: int, warmup: int) -> dict[str, Any]:
    seconds = {k: step_time(k, device, steps, warmup) for k in ks}
    base = seconds[min(ks)]
    out: dict[str, Any] = {f"k={k}": {"step_ms": 1e3 * s, "ratio": s / base} for k, s in seconds.items()}
    if 1 in seconds and 40 in seconds:
        ratio = seconds[40] / seconds[1]
        out["goal_k40"] = {"ratio": ratio, "goal": HEADS_GOAL, "met": ratio <= HEADS_GOAL}
    return out


def throughput(device: torch.device, train_size: int, epochs: int, precision: str = "fp32") -> dict[str, Any]:
    """Training examples per second of the MultiMNIST LeNet model (left and right digit)."""
    from manytask.data.sources import parse_source

    source = parse_source({"kind": "multimnist", "source": "bundled", "train_size": train_size,
                           "val_size": 10, "test_size": 10})
    splits = source.build(["left", "right"], 0)
    tasks = [Task("left", "multiclass", num_classes=10), Task("right", "multiclass", num_classes=10)]
    train = splits.train.select({"left": "left", "right": "right"})
    trainer = _trainer(tasks, device, 128, precision)
    if device.type == "cuda":
        train = train.to(device)
    trainer.train_epoch(train, 1)  # warm-up
    rates = []
    for e in range(epochs):
        _sync(device)
        t0 = time.perf_counter()
        trainer.train_epoch(train, e + 2)
        _sync(device)
        rates.append(len(train) / (time.perf_counter() - t0))
    return {"examples_per_s": statistics.median(rates), "train_size": len(train), "batch_size": 128,
            "epochs_timed": epochs}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (a quick check of the script)")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 10, 40])
    ap.add_argument("--steps", type=int, default=50, help="timed steps per k")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--train-size", type=int, default=10000, help="MultiMNIST training samples (0: skip)")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs of the throughput measurement")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--batch-heads", choices=["auto", "on", "off"], default="auto",
                    help="same-shaped heads as one batched operation (auto: on CUDA)")
    args = ap.parse_args(argv)
    global BATCH_HEADS
    BATCH_HEADS = {"auto": None, "on": True, "off": False}[args.batch_heads]
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_speed: no CUDA device available (use --device cpu to check the script on CPU)", file=sys.stderr)
        raise SystemExit(2)
    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict[str, Any] = {
        "what": "Trainer.train_step time with k heads (uniform weighting, LeNet, batch 256) and training "
                "throughput of the MultiMNIST LeNet model",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu"),
        "torch": torch.__version__,
        "batch_heads": args.batch_heads,
        "many_heads": many_heads(device, args.ks, args.steps, args.warmup),
    }
    if args.train_size > 0:
        report["multimnist_lenet"] = throughput(device, args.train_size, args.epochs)
        if device.type == "cuda":  # the bf16 autocast switch (training.precision: bf16)
            report["multimnist_lenet_bf16"] = throughput(device, args.train_size, args.epochs, "bf16")
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
