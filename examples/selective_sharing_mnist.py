"""Selective Sharing on MNIST against the single-task and the plain multi-task network.

    python examples/selective_sharing_mnist.py --idx-dir DIR   # DIR: MNIST IDX files (t10k)

Runs, for each seed, configs/selective_sharing_mnist_stl.yaml (10-way softmax), the multi-task
config with ``grouping.method: none`` (ten unmerged branches) and with Selective Sharing under
each criterion; one run at a time on one thread. Writes ``runs/selective_sharing/results.json``
and prints the markdown table of docs/selective_sharing.md (mean ± std over the seeds).

Accuracy: the 10-way test accuracy, for the multi-task models the digit whose binary task gives
the highest probability; "binary acc." is the mean accuracy of the ten one-vs-all tasks.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from manytask.config import load_config
from manytask.experiment import build_model, run_experiment

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("stl", "mtl", "similarity", "dissimilarity", "variance")


def ten_way_accuracy(predictions: Path) -> float:
    """Accuracy of the argmax over the ten ``digit_k_prob`` columns against the true digit."""
    df = pd.read_csv(predictions)
    probs = np.stack([df[f"digit_{k}_prob"].to_numpy() for k in range(10)], axis=1)
    truth = np.stack([df[f"digit_{k}_label"].to_numpy() for k in range(10)], axis=1).argmax(1)
    return float((probs.argmax(1) == truth).mean())


def branch_params(cfg: Any) -> int:
    model = build_model(cfg, cfg.build_tasks(), (1, 28, 28))
    return sum(p.numel() for p in model.branches.parameters())


def one_run(method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    over: dict[str, Any] = {"data.idx_dir": args.idx_dir, "training.epochs": args.epochs,
                            "data.train_size": args.train_size}
    name = "selective_sharing_mnist_stl.yaml" if method == "stl" else "selective_sharing_mnist.yaml"
    if method == "mtl":
        over["grouping.method"] = "none"
    elif method != "stl":
        over["grouping.criterion"] = method
    cfg = load_config(ROOT / "configs" / name, over)
    rd = Path(args.out) / f"{method}_seed{seed}"
    res = run_experiment(cfg, rd, seed=seed, progress=False)
    row: dict[str, Any] = {"method": method, "seed": seed, "best_epoch": res.best_epoch,
                           "epoch_seconds": float(np.mean([h["train_seconds"] for h in res.history]))}
    if method == "stl":
        row["accuracy"] = res.test["digit"]["accuracy"]
        row["binary_accuracy"] = float("nan")
    else:
        row["accuracy"] = ten_way_accuracy(rd / "predictions.csv")
        row["binary_accuracy"] = float(np.mean([m["accuracy"] for m in res.test.values()]))
    summary = json.loads((rd / "summary.json").read_text())
    ss = summary.get("selective_sharing")
    if ss is None:
        row["branch_params"] = branch_params(cfg)
    else:
        row.update(branch_params=ss["branch_params_end"], groups=list(ss["groups"].values()),
                   lock_epoch=ss["lock_epoch"], locked=ss["locked"], branches=ss["branches"],
                   factorize_seconds=ss["factorize_seconds"], cluster_seconds=ss["cluster_seconds"],
                   grouping_epochs=len(ss["epochs"]))
    return row


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| method | 10-way acc. % | binary acc. % | branch params | branches | lock epoch | epoch s |",
           "|---|---|---|---|---|---|---|"]
    for m in METHODS:
        rs = [r for r in rows if r["method"] == m]
        if not rs:
            continue

        def ms(key: str, scale: float = 1.0, fmt: str = ".2f") -> str:
            v = np.array([r[key] for r in rs], dtype=float) * scale
            return "–" if np.isnan(v).all() else f"{v.mean():{fmt}} ± {v.std(ddof=1) if len(v) > 1 else 0:{fmt}}"

        label = {"stl": "STL (10-way softmax)", "mtl": "MTL (10 branches)"}.get(m, f"Selective Sharing, {m}")
        locks = [r.get("lock_epoch") for r in rs]
        lock = ", ".join("–" if x is None else str(x) for x in locks) if m not in ("stl", "mtl") else "–"
        nb = ", ".join(str(r.get("branches", 10 if m == "mtl" else 1)) for r in rs)
        out.append(f"| {label} | {ms('accuracy', 100)} | {ms('binary_accuracy', 100)} | "
                   f"{ms('branch_params', 1, ',.0f')} | {nb} | {lock} | {ms('epoch_seconds', 1, '.1f')} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--idx-dir", required=True, help="folder of MNIST IDX files (the 10,000 test digits)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--train-size", type=int, default=10000)
    p.add_argument("--out", default="runs/selective_sharing")
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = Path(args.out) / "results.json"
    rows = json.loads(results.read_text()) if results.exists() else []
    for seed in args.seeds:
        for method in args.methods:
            if any(r["method"] == method and r["seed"] == seed for r in rows):
                continue
            rows.append(one_run(method, seed, args))
            results.write_text(json.dumps(rows, indent=1))
            print(json.dumps(rows[-1]), flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
