"""Cost of Selective Sharing: epoch time with gradient capture against the plain 10-branch model,
and the time of the factorisation (TT) and the clustering (HDBSCAN) that run once per epoch.

The model of configs/selective_sharing_mnist.yaml (the paper's CNN, ten 100 -> 50 branches, ten
one-vs-all tasks) on real bundled MNIST digits. Two copies with the same weights train through
``Trainer.train_step`` on the same batches: one plain, one with the capture hooks of
:class:`SelectiveSharing`. Their steps are interleaved (alternating which goes first), each
model's epoch time is the sum of its steps, and the medians over epochs are compared, so
machine-load drift affects both alike; the median of the per-step ratios is reported too.
After each watched epoch the ten records are factorised and clustered (timed apart; no branch is
merged, so every epoch measures the full 10-branch cost). Prints JSON (and writes it with --out).

    python benchmarks/selective_sharing_speed.py [--epochs 5] [--train-size 2000] [--threads 1]
        [--idx-dir DIR]   # DIR: MNIST IDX files, for a training split above 4,980 digits
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from manytask.data.sources.mnist import MNISTSource
from manytask.grouping.selective_sharing import cluster_vectors, tt_vector
from manytask.grouping.sharing_controller import SelectiveSharing
from manytask.models import build_trunk
from manytask.models.branches import branched_model
from manytask.models.registry import TrunkSpec
from manytask.tasks import one_vs_all
from manytask.training import OptimizerSpec, Trainer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5, help="epochs of each model (interleaved)")
    ap.add_argument("--train-size", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--criterion", default="similarity")
    ap.add_argument("--idx-dir", default=None, help="MNIST IDX folder: bundled + these digits (needed above 4,980)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tasks = one_vs_all("digit", 10)
    src = MNISTSource(source="bundled+idx" if args.idx_dir else "bundled", idx_dir=args.idx_dir,
                      train_size=args.train_size, val_size=10, test_size=10)
    data = src.build(["digit"], seed=0)
    train = data.train.select({t.name: t.column for t in tasks})
    for t in tasks:
        train.targets[t.name] = t.prepare_target(train.targets[t.name])

    torch.manual_seed(0)
    plain = branched_model(build_trunk("ss_cnn", (1, 28, 28), TrunkSpec(features=640)), tasks, [100, 50])
    watched = copy.deepcopy(plain)
    sharing = SelectiveSharing(watched, criterion=args.criterion)
    spec = OptimizerSpec(name="sgd", lr=0.02, momentum=0.5)
    kw = dict(epochs=args.epochs, batch_size=args.batch_size, progress=False, device="cpu")
    t_plain = Trainer(plain, tasks, optimizer=spec, **kw)
    t_watched = Trainer(watched, tasks, optimizer=spec, **kw)

    times: dict[str, list[float]] = {"plain": [], "capture": [], "factorize": [], "cluster": []}
    step_ratios: list[float] = []
    gen = torch.Generator().manual_seed(0)
    for epoch in range(1, args.epochs + 1):
        spent = {"plain": 0.0, "capture": 0.0}
        for i, batch in enumerate(train.batches(args.batch_size, shuffle=True, generator=gen)):
            pair = [("plain", t_plain), ("capture", t_watched)]
            step = {}
            for name, trainer in (pair if i % 2 == 0 else pair[::-1]):  # alternate who goes first
                t0 = time.perf_counter()
                trainer.train_step(batch)
                step[name] = time.perf_counter() - t0
                spent[name] += step[name]
            step_ratios.append(step["capture"] / step["plain"])
        for name in spent:
            times[name].append(spent[name])
        t0 = time.perf_counter()
        vectors = np.stack([tt_vector(r, sharing.rank) for r in sharing._records.values()])
        t1 = time.perf_counter()
        cluster_vectors(vectors, args.criterion, sharing.min_samples)
        times["factorize"].append(t1 - t0)
        times["cluster"].append(time.perf_counter() - t1)
        for r in sharing._records.values():
            r.zero_()

    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "benchmark": "selective_sharing_speed", "device": "cpu", "threads": args.threads,
        "train_size": args.train_size, "batch_size": args.batch_size, "epochs": args.epochs,
        "branches": 10, "criterion": args.criterion,
        "median_seconds": {k: round(v, 4) for k, v in med.items()},
        "ratio_capture_epoch": round(med["capture"] / med["plain"], 4),
        "ratio_capture_step_median": round(statistics.median(step_ratios), 4),
        "ratio_epoch_with_grouping": round((med["capture"] + med["factorize"] + med["cluster"]) / med["plain"], 4),
        "goal_ratio": 1.15,
        "all_seconds": {k: [round(x, 4) for x in v] for k, v in times.items()},
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
