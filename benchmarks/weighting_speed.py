"""Step time of every registered weighting method relative to ``uniform``; prints JSON.

One step = ``zero_grad`` + forward + task losses + ``method.backward`` + ``optimizer.step``
(+ for methods that want the ``after_step`` hook, i.e. FAMO as published, the no-grad forward of
the same batch and the hook, as the trainer runs them; ``famo[next_batch]`` is FAMO with
``update_on="next_batch"``, which needs neither). Model: the MultiMNIST LeNet (``manytask.models``: conv
1→10 5×5, maxpool 2, relu, conv 10→20 5×5, maxpool 2, relu, fc 720→50, relu) with k heads of
two FC layers (50→50→10), batch 256 of 36×36 single-channel inputs, k ∈ {2, 10, 40}.

Methods are interleaved: every round runs one step of each method in a fresh random order, and
a method's ratio is the median over rounds of (its step time / uniform's step time in the same
round), which cancels slow drifts of a shared machine; on CPU the clock is the process CPU time
(other processes on a shared machine do not count), on CUDA synchronised wall time. Also timed:
the gradient-level methods with the engine path that ``auto`` does *not* pick on that device
(``name[batched]`` on CPU, ``name[loop]`` on CUDA), to show why ``auto`` picks what it does, and
MGDA computed the common way (k full backward passes, as LibMTL does) as a same-machine reference.

    python benchmarks/weighting_speed.py [--threads 1] [--ks 2 10 40] [--rounds 30 15 7] [--no-cuda]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from manytask.data.batch import TensorDataset
from manytask.tasks import Task, stack_losses
from manytask.weighting import (
    SharedParts,
    WeightingMethod,
    available,
    create_from_train,
    min_norm_weights,
    write_grads,
)
from manytask.weighting.terms import element_losses, stack_means

try:  # the library's model; a local copy of the same architecture if it is not importable
    from manytask.models import LeNetTrunk, MultiTaskModel

    MODEL_SOURCE = "manytask.models"
except ImportError:  # pragma: no cover
    MODEL_SOURCE = "benchmark-local"

    class LeNetTrunk(nn.Module):  # type: ignore[no-redef]
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 10, 5), nn.Conv2d(10, 20, 5)
            self.fc = nn.Linear(720, 50)
            self.out_features = 50

        def forward(self, x: Tensor) -> Tensor:
            x = torch.relu(torch.max_pool2d(self.conv1(x), 2))
            x = torch.relu(torch.max_pool2d(self.conv2(x), 2))
            return torch.relu(self.fc(x.flatten(1)))

    class MultiTaskModel(nn.Module):  # type: ignore[no-redef]
        def __init__(self, trunk: nn.Module, tasks: Sequence[Task]) -> None:
            super().__init__()
            self.trunk = trunk
            self.heads = nn.ModuleDict(
                {t.name: nn.Sequential(nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, t.out_features)) for t in tasks}
            )

        def forward_with_features(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
            z = self.trunk(x)
            return z, {n: h(z) for n, h in self.heads.items()}

        def shared_parameters(self) -> list[nn.Parameter]:
            return list(self.trunk.parameters())

        def last_shared_layer(self) -> list[nn.Parameter]:
            return list(self.trunk.fc.parameters())  # type: ignore[union-attr]


BATCH = 256
GRADIENT_LEVEL = ("gradnorm", "mgda", "mgda_ub", "pcgrad", "cagrad")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _make_step(name: str, engine: str | None, tasks: list[Task], base: nn.Module, x: Tensor,
               y: dict[str, Tensor], **hparams: Any) -> Callable[[], None]:
    kwargs: dict[str, Any] = dict(hparams)
    if engine is not None:
        kwargs["engine"] = engine
    model: Any = copy.deepcopy(base)
    method: WeightingMethod = create_from_train(name, tasks, TensorDataset(x, y), **kwargs).to(x.device)
    opt = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=1e-3)
    hook = method.wants_after_step

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        z, preds = model.forward_with_features(x)
        shared = SharedParts(params=model.shared_parameters(), features=z, last_layer=model.last_shared_layer())
        if method.wants_loss_terms:  # as the trainer does: per-element terms and their means
            shared.terms = element_losses(tasks, preds, y)
            losses = stack_means(tasks, shared.terms)
        else:
            losses = stack_losses(tasks, preds, y)
        method.backward(losses, shared)
        opt.step()
        if hook:
            with torch.no_grad():
                new = stack_losses(tasks, model.forward_with_features(x)[1], y)
            method.after_step(new)

    return step


def _make_reference_step(tasks: list[Task], base: nn.Module, x: Tensor, y: dict[str, Tensor]) -> Callable[[], None]:
    """MGDA the common way (as LibMTL does it): k full backward passes of the separate task losses
    with ``retain_graph``, shared gradients read from ``.grad``; a same-machine reference."""
    model: Any = copy.deepcopy(base)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    shared = model.shared_parameters()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        _, preds = model.forward_with_features(x)
        losses = [t.loss(preds[t.name], y[t.name]) for t in tasks]
        rows = []
        for loss in losses:
            loss.backward(retain_graph=True)
            rows.append(torch.cat([p.grad.reshape(-1) for p in shared]))
            for p in shared:
                p.grad = None
        jac = torch.stack(rows)
        alpha = min_norm_weights(jac @ jac.T).to(jac)
        write_grads(shared, alpha @ jac)
        opt.step()

    return step


def bench_device(device: torch.device, ks: Sequence[int], rounds: Sequence[int], seed: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    other = "batched" if device.type == "cpu" else "loop"
    for k, n_rounds in zip(ks, rounds):
        torch.manual_seed(seed)
        tasks = [Task(f"t{i}", "multiclass", num_classes=10) for i in range(k)]
        base = MultiTaskModel(LeNetTrunk(), tasks).to(device)
        x = torch.randn(BATCH, 1, 36, 36, device=device)
        y = {t.name: torch.randint(0, 10, (BATCH,), device=device) for t in tasks}
        variants: dict[str, Callable[[], None]] = {}
        for name in available():
            variants[name] = _make_step(name, None, tasks, base, x, y)
        for name in GRADIENT_LEVEL:
            variants[f"{name}[{other}]"] = _make_step(name, other, tasks, base, x, y)
        variants["famo[next_batch]"] = _make_step("famo", None, tasks, base, x, y, update_on="next_batch")
        variants["reference:mgda_per_task_backward"] = _make_reference_step(tasks, base, x, y)
        for fn in variants.values():  # warm-up
            for _ in range(2):
                fn()
        _sync(device)
        wall: dict[str, list[float]] = {n: [] for n in variants}
        cpu: dict[str, list[float]] = {n: [] for n in variants}
        rng = random.Random(seed)
        for _ in range(n_rounds):
            order = list(variants)
            rng.shuffle(order)
            for n in order:
                _sync(device)
                t0, c0 = time.perf_counter(), time.process_time()
                variants[n]()
                _sync(device)
                wall[n].append(time.perf_counter() - t0)
                cpu[n].append(time.process_time() - c0)
        # on CPU the ratio uses process CPU time (robust to other processes on a shared machine);
        # on CUDA it uses wall-clock time with synchronisation
        basis = cpu if device.type == "cpu" else wall
        res: dict[str, Any] = {}
        for n in variants:
            ratios = [a / b for a, b in zip(basis[n], basis["uniform"])]
            wall_ratios = [a / b for a, b in zip(wall[n], wall["uniform"])]
            res[n] = {"ratio": round(statistics.median(ratios), 3), "ms": round(1e3 * statistics.median(basis[n]), 2),
                      "wall_ratio": round(statistics.median(wall_ratios), 3)}
        out[f"k={k}"] = {"rounds": n_rounds, "clock": "process CPU time" if device.type == "cpu" else "wall (synced)",
                         "methods": res}
    return out


#: step-time goals at k = 10 relative to uniform. CPU: LibMTL's figures for its implementations
#: on the same model (GradNorm 5.2, MGDA 5.6, PCGrad 5.4, CAGrad 5.3, IMTL 5.1), 1.3 for MGDA-UB
#: and 1.05 for loss-level methods; GPU: 2 for the parameter-level methods.
CPU_GOALS = {"uniform": 1.05, "pseudo_uniform": 1.05, "uncertainty": 1.05, "revised_uncertainty": 1.05,
             "dwa": 1.05, "rlw": 1.05, "famo": 1.05, "famo[next_batch]": 1.05, "mgda_ub": 1.3,
             "gradnorm": 5.2, "mgda": 5.6, "pcgrad": 5.4, "cagrad": 5.3, "imtl_g": 5.1}
CUDA_GOALS = {"mgda": 2.0, "pcgrad": 2.0, "cagrad": 2.0, "gradnorm": 2.0, "imtl_g": 2.0}


def check_goals(results: dict[str, Any], goals: dict[str, float], k: int = 10) -> dict[str, Any]:
    """``{method: {"ratio", "goal", "met"}}`` for the methods with a goal, at ``k`` tasks."""
    methods = results.get(f"k={k}", {}).get("methods", {})
    return {name: {"ratio": methods[name]["ratio"], "goal": goal, "met": methods[name]["ratio"] <= goal}
            for name, goal in goals.items() if name in methods}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (at most 2 on the shared machine)")
    ap.add_argument("--ks", type=int, nargs="+", default=[2, 10, 40])
    ap.add_argument("--rounds", type=int, nargs="+", default=[30, 15, 7], help="rounds per k (same order as --ks)")
    ap.add_argument("--no-cuda", action="store_true")
    args = ap.parse_args(argv)
    if len(args.rounds) != len(args.ks):
        ap.error("--rounds needs one value per --ks value")
    torch.set_num_threads(max(1, min(args.threads, 2)))
    report: dict[str, Any] = {
        "what": "step time (forward + method.backward + optimizer.step) relative to uniform; median over interleaved rounds",
        "model": f"LeNet trunk + k two-layer heads ({MODEL_SOURCE}), batch {BATCH}, 1x36x36 inputs, 10-class tasks",
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "notes": ("famo includes the no-grad forward of its after_step hook (famo[next_batch] does not need it); "
                  "name[batched]/name[loop] force the engine "
                  "path that auto does not pick on that device; reference:mgda_per_task_backward is MGDA computed the "
                  "common way (k full backward passes with retain_graph, as LibMTL does), timed in the same rounds"),
        "cpu": {"threads": torch.get_num_threads(), **bench_device(torch.device("cpu"), args.ks, args.rounds)},
    }
    if torch.cuda.is_available() and not args.no_cuda:
        report["cuda"] = {"device": torch.cuda.get_device_name(0),
                          **bench_device(torch.device("cuda"), args.ks, [max(r, 20) for r in args.rounds])}
        report["goals_k10_cuda"] = check_goals(report["cuda"], CUDA_GOALS)
    else:
        report["cuda"] = {"skipped": "CUDA not available" if not torch.cuda.is_available() else "--no-cuda"}
    report["goals_k10_cpu"] = check_goals(report["cpu"], CPU_GOALS)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
