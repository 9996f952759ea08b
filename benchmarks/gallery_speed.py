"""Training throughput of the ``set_encoder`` trunk: mean vs PMA pooling, padded vs bucketed batches.

Data: random galleries of ``--min-size``..``--max-size`` items (uniform) drawn from a pool of
random 28×28 uint8 images, three gallery-level tasks (binary, 10-class, regression). Model: the
trunk of ``configs/galleries_mnist.yaml`` (``small_vgg`` at width 0.5, 64 features, the first
2 of 4 blocks frozen) with a two-layer head per task; Adam, uniform weighting. One step =
``Trainer.train_step`` (gather + normalise the batch, forward, losses, backward, optimizer step).

Batchings of the same galleries (batch ``--batch-size``, shuffled every epoch):

* ``padded``: ``bucket: false``, each batch padded to its own largest gallery;
* ``bucketed``: ``bucket: true``, batches cut from galleries of similar size;
* ``fixed``: every batch padded to the largest gallery of the data set.

``mean-dense`` is a reference, not an option of the trunk: mean pooling with the item encoder
run on every padded slot (padding included, then masked), as a set encoder that does not gather
the real items would.

The item encoder runs on the real items only, so padding costs the gather and the pooling, not
the CNN; ``padding_share`` is the share of the padded slots that are padding over one epoch
(:func:`manytask.data.sets.padding_share`). The variants' steps are interleaved (one step of
each in a fresh random order per round) so that slow drifts of a shared machine hit all alike;
the clock is the process CPU time on CPU (other processes do not count), synchronised wall
time on CUDA. Every variant trains ``--epochs`` epochs over the same galleries after ``--warmup``
untimed steps; ``galleries_per_s`` = galleries per epoch / the median epoch time (the sum of its
step times). Epochs, not single steps, are the unit: a step's cost grows with the items of its
batch, which varies far more from step to step under bucketing (a batch of 5-item galleries, then
one of 20-item galleries), so a median *step* is not a typical step there; ``median_step_s`` is
reported too.

    python benchmarks/gallery_speed.py [--epochs 5] [--warmup 5] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from typing import Any

import torch

from manytask.data.batch import Batch
from manytask.data.sets import SetDataset, pack_index, padding_share
from manytask.models import MultiTaskModel, TrunkSpec, build_trunk
from manytask.tasks import Task
from manytask.training import OptimizerSpec, Trainer

TASKS = [Task("flag", "binary"), Task("cls", "multiclass", num_classes=10), Task("value", "regression")]
BATCHINGS = ("padded", "bucketed", "fixed")
POOLINGS = ("mean", "pma")
#: reference: the item encoder run on every padded slot too (what gathering the real items saves)
DENSE = "mean-dense"


class FixedPad(SetDataset):
    """Every batch padded to the largest gallery of the data set."""

    def batch(self, idx: torch.Tensor) -> Batch:
        rows = self.index[idx.to(self.index.device)]
        present = rows >= 0
        x = self.items[rows.clamp(min=0)]
        if self.item_transform is not None:
            x = self.item_transform(x.flatten(0, 1)).unflatten(0, rows.shape)
        return Batch(inputs=x, targets={k: v[idx] for k, v in self.targets.items()},
                     masks={k: v[idx] for k, v in self.masks.items()}, set_mask=present)


def random_galleries(n: int, pool: int, min_size: int, max_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(0, 256, (pool, 1, 28, 28), dtype=torch.uint8, generator=g)
    sizes = torch.randint(min_size, max_size + 1, (n,), generator=g)
    index = pack_index([torch.randint(0, pool, (int(s),), generator=g).tolist() for s in sizes])
    targets = {"flag": torch.randint(0, 2, (n,), generator=g).float(), "cls": torch.randint(0, 10, (n,), generator=g),
               "value": torch.randn(n, 1, generator=g)}
    return items, index, targets


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x.float() / 255.0 - 0.13) / 0.31


def dataset(batching: str, items: torch.Tensor, index: torch.Tensor, targets: dict[str, torch.Tensor]) -> SetDataset:
    cls = FixedPad if batching == "fixed" else SetDataset
    return cls(items, index, targets, transform=_normalise, bucket=batching == "bucketed")


def epoch_orders(data: SetDataset, batch_size: int, epochs: int, seed: int) -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [data.batch_order(batch_size, shuffle=True, generator=g, drop_last=True) for _ in range(epochs)]


def epoch_padding(data: SetDataset, batch_size: int, fixed: bool) -> float:
    order = data.batch_order(batch_size, shuffle=True, generator=torch.Generator().manual_seed(0), drop_last=True)
    if fixed:
        real = sum(int(data.sizes[i].sum()) for i in order)
        return 1.0 - real / (int(data.sizes.max()) * sum(len(i) for i in order))
    return padding_share(data.sizes, order)


def _encode_every_slot(trunk: torch.nn.Module) -> None:
    def encode_items(x: torch.Tensor, set_mask: torch.Tensor) -> torch.Tensor:
        return trunk.item(x.flatten(0, 1)).unflatten(0, set_mask.shape)

    trunk.encode_items = encode_items  # type: ignore[method-assign]


def make_trainer(pooling: str, shape: tuple[int, ...], device: str) -> Trainer:
    torch.manual_seed(0)
    options = {"item": "small_vgg", "pooling": pooling.removesuffix("-dense"), "freeze_blocks": 2}
    trunk = build_trunk("set_encoder", shape, TrunkSpec(width=0.5, features=64, options=options))
    if pooling == DENSE:
        _encode_every_slot(trunk)
    model = MultiTaskModel(trunk, TASKS, head_hidden=64)
    return Trainer(model, TASKS, "uniform", OptimizerSpec(name="adam", lr=1e-3), epochs=1, batch_size=16,
                   device=device, progress=False, deterministic=False)


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.process_time()


def _timed_step(tr: Trainer, data: SetDataset, idx: torch.Tensor) -> float:
    batch = data.batch(idx).to(tr.device)
    start = _clock(tr.device)
    tr.train_step(batch)
    return _clock(tr.device) - start


def measure(args: argparse.Namespace) -> dict[str, Any]:
    items, index, targets = random_galleries(args.galleries, args.pool, args.min_size, args.max_size)
    data = {b: dataset(b, items, index, targets) for b in BATCHINGS}
    variants = [(p, b) for p in (*POOLINGS, DENSE) for b in BATCHINGS]
    trainers = {v: make_trainer(v[0], data[v[1]].sample_shape, args.device) for v in variants}
    orders = {v: epoch_orders(data[v[1]], args.batch_size, args.epochs + 1, seed=1) for v in variants}
    rng = random.Random(0)
    for i in range(args.warmup):  # warm-up: the first steps of an extra epoch, not timed
        for v in rng.sample(variants, len(variants)):
            _timed_step(trainers[v], data[v[1]], orders[v][0][i % len(orders[v][0])])
    steps = {v: [[] for _ in range(args.epochs)] for v in variants}  # type: dict[tuple[str, str], list[list[float]]]
    for e in range(args.epochs):
        for i in range(len(orders[variants[0]][e + 1])):
            for v in rng.sample(variants, len(variants)):
                steps[v][e].append(_timed_step(trainers[v], data[v[1]], orders[v][e + 1][i]))
    per_epoch = len(orders[variants[0]][1]) * args.batch_size
    out: dict[str, Any] = {}
    for pooling, batching in variants:
        runs = steps[(pooling, batching)]
        epoch_s = statistics.median(sum(r) for r in runs)
        out[f"{pooling}/{batching}"] = {
            "galleries_per_s": per_epoch / epoch_s, "median_epoch_s": epoch_s,
            "median_step_s": statistics.median(t for r in runs for t in r)}
    for b in BATCHINGS:
        out[f"ratio_pma_over_mean/{b}"] = out[f"pma/{b}"]["galleries_per_s"] / out[f"mean/{b}"]["galleries_per_s"]
    for p in (*POOLINGS, DENSE):
        for b in ("bucketed", "fixed"):
            out[f"ratio_{b}_over_padded/{p}"] = out[f"{p}/{b}"]["galleries_per_s"] / out[f"{p}/padded"]["galleries_per_s"]
    out["padding_share"] = {b: epoch_padding(data[b], args.batch_size, b == "fixed") for b in BATCHINGS}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--galleries", type=int, default=320)
    ap.add_argument("--pool", type=int, default=2000)
    ap.add_argument("--min-size", type=int, default=5)
    ap.add_argument("--max-size", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = {"settings": {k: v for k, v in vars(args).items()},
              "machine": {"python": platform.python_version(), "torch": torch.__version__,
                          "processor": platform.processor() or platform.machine(),
                          "cuda": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None},
              "clock": "cuda-synchronised wall time" if args.device.startswith("cuda") else "process CPU time",
              "results": measure(args)}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
