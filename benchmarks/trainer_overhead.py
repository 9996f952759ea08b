"""Framework overhead: the Trainer's epoch vs a hand-written PyTorch loop on the same data.

Same LeNet MultiTaskModel, same MultiMNIST training split (bundled real digits), same batch
size and optimizer. Epochs of the two loops are interleaved and the median epoch time of each
is compared, so machine-load drift affects both alike. Prints JSON.

    python benchmarks/trainer_overhead.py [--epochs 7] [--train-size 10000] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from manytask.data.mnist import load_bundled_digits
from manytask.data.multimnist import build_multimnist
from manytask.models import LeNetTrunk, MultiTaskModel
from manytask.tasks import Task
from manytask.training import OptimizerSpec, Trainer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=7)
    ap.add_argument("--train-size", type=int, default=10000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    images, labels = load_bundled_digits()
    splits = build_multimnist(images, labels, train_size=args.train_size, val_size=10, test_size=10, seed=0)
    train = splits.train
    tasks = [Task("left", "multiclass", num_classes=10), Task("right", "multiclass", num_classes=10)]

    torch.manual_seed(0)
    model_a = MultiTaskModel(LeNetTrunk(), tasks)
    trainer = Trainer(model_a, tasks, "uniform", OptimizerSpec(lr=0.01), epochs=args.epochs,
                      batch_size=args.batch_size, progress=False)

    torch.manual_seed(0)
    model_b = MultiTaskModel(LeNetTrunk(), tasks)
    opt_b = torch.optim.SGD(model_b.parameters(), lr=0.01, momentum=0.9)
    x_all, y_left, y_right = train.inputs, train.targets["left"], train.targets["right"]
    gen = torch.Generator().manual_seed(0)

    def hand_epoch() -> None:
        order = torch.randperm(len(train), generator=gen)
        for start in range(0, len(train), args.batch_size):
            idx = order[start:start + args.batch_size]
            opt_b.zero_grad(set_to_none=True)
            out = model_b(x_all[idx])
            loss = F.cross_entropy(out["left"], y_left[idx]) + F.cross_entropy(out["right"], y_right[idx])
            loss.backward()
            opt_b.step()

    trainer_times, hand_times = [], []
    for epoch in range(args.epochs + 1):
        t0 = time.perf_counter()
        trainer.train_epoch(train, epoch + 1)
        t1 = time.perf_counter()
        hand_epoch()
        t2 = time.perf_counter()
        if epoch > 0:  # first epoch of each is warm-up
            trainer_times.append(t1 - t0)
            hand_times.append(t2 - t1)
    ratios = [a / b for a, b in zip(trainer_times, hand_times)]
    print(json.dumps({
        "benchmark": "trainer_epoch_vs_hand_loop",
        "model": "LeNet trunk + 2 two-layer heads, MultiMNIST 36x36",
        "train_size": args.train_size, "batch_size": args.batch_size, "threads": args.threads,
        "epochs_measured": len(trainer_times),
        "trainer_epoch_s_median": statistics.median(trainer_times),
        "hand_loop_epoch_s_median": statistics.median(hand_times),
        "ratio_of_medians": statistics.median(trainer_times) / statistics.median(hand_times),
        "median_paired_ratio": statistics.median(ratios),
        "goal": "<= 1.1",
    }, indent=2))


if __name__ == "__main__":
    main()
