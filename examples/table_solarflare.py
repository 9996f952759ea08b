"""SolarFlare (river's copy): three flare counts from categorical and ordinal features, as a CSV
through `kind: table`.

    python examples/table_solarflare.py            # writes runs/tables/, about 45 s on 1 core
    manytask run configs/table_solarflare.yaml     # the same config, once the CSV exists

1,066 active regions of the sun: 3 text columns (Zurich class, largest spot size, spot
distribution; one-hot encoded), 7 integer codes, and three targets: the numbers of C-, M- and
X-class flares in the next 24 hours (0..8, 0..5, 0..2; mostly 0). `manytask init` would make the
counts multiclass (few integer values); `--kind NAME=regression` makes them regression targets.
The config it writes (the counts standardised for training) is trained as written (one model
for the three counts, uniform weighting), against one single-task model per count (the same
config with one task) and the constant predictor (the training mean), on five seeds; each seed
draws its own split. Scores are in flares, from each run's `predictions.csv`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from table_common import manytask_init, parse_args

from manytask.config import ExperimentConfig, load_config
from manytask.experiment import build_data, columns_for, run_experiment

TARGETS = ["c-class-flares", "m-class-flares", "x-class-flares"]


def export(out: Path) -> Path:
    from river.datasets import (
        SolarFlare,  # the copy river ships in its wheel (no download)
    )

    path = out / "solarflare.csv"
    pd.read_csv(SolarFlare().path).to_csv(path, index=False)
    return path


def test_scores(predictions: Path) -> dict[str, tuple[float, float]]:
    """Per target: test MSE and R² (1 - MSE / variance of the test labels) from predictions.csv."""
    pred = pd.read_csv(predictions)
    out = {}
    for t in TARGETS:
        if t in pred:
            y, p = pred[f"{t}_label"].to_numpy(), pred[t].to_numpy()
            mse = float(((p - y) ** 2).mean())
            out[t] = (mse, 1.0 - mse / float(y.var()))
    return out


def constant_scores(cfg: ExperimentConfig) -> dict[str, tuple[float, float]]:
    splits = build_data(cfg, columns_for(cfg.build_tasks()))
    out = {}
    for t in TARGETS:
        scale = splits.train.scales.get(t)  # labels may be stored standardised (standardize_targets)
        train, y = (splits.train.targets[t].double().numpy(), splits.test.targets[t].double().numpy())
        if scale is not None:
            train, y = scale.restore(train), scale.restore(y)
        mean = float(train.mean())
        mse = float(((y - mean) ** 2).mean())
        out[t] = (mse, 1.0 - mse / float(y.var()))
    return out


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    kinds = [arg for t in TARGETS for arg in ("--kind", f"{t}=regression")]
    cfg_path = manytask_init(export(args.out), TARGETS, args.out / "solarflare.yaml", *kinds)
    rows: dict[str, list[dict[str, tuple[float, float]]]] = {"constant (training mean)": [], "single-task": [],
                                                              "multi-task (uniform)": []}
    for seed in range(args.seeds):
        cfg = load_config(cfg_path, {"seed": seed, "training.threads": args.threads})  # split and initialisation
        rows["constant (training mean)"].append(constant_scores(cfg))
        mtl = args.out / f"solarflare-mtl-seed{seed}"
        run_experiment(cfg, mtl, progress=False)
        rows["multi-task (uniform)"].append(test_scores(mtl / "predictions.csv"))
        stl: dict[str, tuple[float, float]] = {}
        for t in TARGETS:
            run_dir = args.out / f"solarflare-stl-{t}-seed{seed}"
            run_experiment(cfg, run_dir, task_names=[t], progress=False)
            stl.update(test_scores(run_dir / "predictions.csv"))
        rows["single-task"].append(stl)
    print(f"\nSolarFlare, 3 count targets as regression, {args.seeds} seeds: test MSE / R² (mean ± std over seeds)")
    print("| model | " + " | ".join(TARGETS) + " |\n|---|" + "---|" * len(TARGETS))
    for name, per_seed in rows.items():
        cells = []
        for t in TARGETS:
            mse, r2 = np.array([s[t] for s in per_seed]).T
            cells.append(f"{mse.mean():.4f} ± {mse.std():.4f} / {r2.mean():+.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    for t in TARGETS:
        diff = [m[t][0] - s[t][0] for m, s in zip(rows["multi-task (uniform)"], rows["single-task"])]
        print(f"{t}: test MSE of multi-task minus single-task, per seed: {', '.join(f'{d:+.4f}' for d in diff)}")
    (args.out / "solarflare_results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
