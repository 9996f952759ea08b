"""Selective Sharing on MultiMNIST's heterogeneous tasks (classification and regression).

    python examples/selective_sharing_heterogeneous.py [--seeds 0 1 2]

Runs configs/selective_sharing_multimnist.yaml without grouping (the plain multi-task model, one
branch per task) and with each sharing criterion, one run at a time; writes
``runs/selective_sharing_multimnist/results.json`` and prints a markdown table of the test
metrics (mean ± std over the seeds), the branches formed and the branch parameters.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from manytask.config import load_config
from manytask.experiment import run_experiment

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("none", "similarity", "dissimilarity", "variance")
COLUMNS = (("left", "accuracy", 100), ("right", "accuracy", 100), ("left_odd", "accuracy", 100),
           ("right_odd", "accuracy", 100), ("sum_ge_10", "accuracy", 100), ("sum", "mae", 1))


def one_run(method: str, seed: int, out: Path, epochs: int | None) -> dict[str, Any]:
    over: dict[str, Any] = {"grouping.method": "none"} if method == "none" else {"grouping.criterion": method}
    if epochs:
        over["training.epochs"] = epochs
    cfg = load_config(ROOT / "configs" / "selective_sharing_multimnist.yaml", over)
    rd = out / f"{method}_seed{seed}"
    res = run_experiment(cfg, rd, seed=seed, progress=False)
    row: dict[str, Any] = {"method": method, "seed": seed, "test": res.test, "best_epoch": res.best_epoch}
    ss = json.loads((rd / "summary.json").read_text()).get("selective_sharing")
    if ss:
        row.update(groups=list(ss["groups"].values()), branch_params=ss["branch_params_end"],
                   branches=ss["branches"], lock_epoch=ss["lock_epoch"])
    else:
        row.update(branches=6, branch_params=6 * (100 * 50 + 50))
    return row


def table(rows: list[dict[str, Any]]) -> str:
    head = " | ".join(f"{t} {'acc. %' if m == 'accuracy' else m.upper()}" for t, m, _ in COLUMNS)
    out = [f"| method | {head} | branches | branch params |", "|---" * (len(COLUMNS) + 3) + "|"]
    for method in METHODS:
        rs = [r for r in rows if r["method"] == method]
        if not rs:
            continue
        cells = []
        for task, metric, scale in COLUMNS:
            v = np.array([r["test"][task][metric] for r in rs]) * scale
            cells.append(f"{v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.2f}")
        label = "MTL (6 branches)" if method == "none" else f"Selective Sharing, {method}"
        nb = ", ".join(str(r["branches"]) for r in rs)
        bp = np.mean([r["branch_params"] for r in rs])
        out.append(f"| {label} | {' | '.join(cells)} | {nb} | {bp:,.0f} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--out", default="runs/selective_sharing_multimnist")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.json"
    rows = json.loads(results.read_text()) if results.exists() else []
    for seed in args.seeds:
        for method in args.methods:
            if any(r["method"] == method and r["seed"] == seed for r in rows):
                continue
            rows.append(one_run(method, seed, out, args.epochs))
            results.write_text(json.dumps(rows, indent=1))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "test"}), flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
