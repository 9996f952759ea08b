"""Yeast (river's copy) as a CSV of your own, with 20 % of its labels blanked, through `kind: table`.

    python examples/table_yeast.py                 # writes runs/tables/, about 2 minutes on 1 core
    manytask run configs/table_yeast.yaml          # the same config, once the CSV exists

1. Writes the 2,417 genes × (103 features + 14 labels) with a `gene` id column as
   `yeast_full.csv`, then blanks 20 % of the label cells at random (`yeast_blanked.csv`) and,
   for comparison, the same file with the blanks filled in as negatives (`yeast_blanks_as_0.csv`).
2. Runs `manytask init yeast_blanked.csv --targets Class1,...,Class14 --id-column gene`.
3. Trains the config it wrote, as written, on five seeds (each seed draws its own split), and the
   same config on the two other files; every model is scored from its `predictions.csv` on the
   same entries: the test labels that were not blanked. The constant predictor answers each
   task's majority class of the training labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from table_common import manytask_init, parse_args

from manytask.config import ExperimentConfig, load_config
from manytask.experiment import build_data, columns_for, run_experiment
from manytask.tasks import roc_auc

LABELS = [f"Class{j}" for j in range(1, 15)]


def export(out: Path, blank_share: float = 0.2, seed: int = 0) -> dict[str, Path]:
    from river.datasets import Yeast  # the copy river ships in its wheel (no download)

    frame = pd.read_csv(Yeast().path)
    frame = pd.concat([pd.DataFrame({"gene": [f"g{i:04d}" for i in range(len(frame))]}), frame], axis=1)
    blank = np.random.default_rng(seed).random((len(frame), len(LABELS))) < blank_share
    blanked = frame.copy()
    blanked[LABELS] = frame[LABELS].astype("Int64").mask(blank)
    as_zero = frame.copy()
    as_zero[LABELS] = np.where(blank, 0, frame[LABELS].to_numpy())
    paths = {"full": out / "yeast_full.csv", "blanked": out / "yeast_blanked.csv", "as_zero": out / "yeast_blanks_as_0.csv"}
    for key, table in (("full", frame), ("blanked", blanked), ("as_zero", as_zero)):
        table.to_csv(paths[key], index=False)
    print(f"blanked {blank.mean():.1%} of the {blank.size} label cells")
    return paths


def score(predictions: Path, truth: pd.DataFrame) -> tuple[float, float]:
    """Mean test accuracy and AUC over the tasks, on the labels of ``truth`` (indexed by gene)
    that are present."""
    pred = pd.read_csv(predictions, dtype={"gene": str}).set_index("gene")
    accs, aucs = [], []
    for c in LABELS:
        y = truth.loc[pred.index, c]
        keep = y.notna().to_numpy()
        y = y.to_numpy()[keep].astype(int)
        prob = pred[f"{c}_prob"].to_numpy()[keep]
        accs.append(float(((prob > 0.5).astype(int) == y).mean()))
        aucs.append(roc_auc(prob, y))
    return float(np.mean(accs)), float(np.nanmean(aucs))


def constant(cfg: ExperimentConfig, truth: pd.DataFrame) -> float:
    """Mean test accuracy of answering each task's majority training class."""
    splits = build_data(cfg, columns_for(cfg.build_tasks()))
    test_ids = splits.test.ids
    accs = []
    for c in LABELS:
        train = splits.train.targets[c].numpy()
        majority = int(np.nanmean(train) >= 0.5)
        y = truth.loc[test_ids, c].dropna().astype(int).to_numpy()
        accs.append(float((y == majority).mean()))
    return float(np.mean(accs))


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    paths = export(args.out)
    cfg_path = manytask_init(paths["blanked"], LABELS, args.out / "yeast.yaml", "--id-column", "gene")
    truth = pd.read_csv(paths["blanked"], dtype={"gene": str}).set_index("gene")
    rows: dict[str, list[tuple[float, float]]] = {"constant (majority class)": []}
    variants = {"table, blanks masked": "blanked", "table, blanks as negatives": "as_zero",
                "table, no label blanked": "full"}
    for seed in range(args.seeds):
        for name, key in variants.items():
            # the seed draws the split and the initialisation
            cfg = load_config(cfg_path, {"data.path": str(paths[key]), "seed": seed, "training.threads": args.threads})
            if key == "blanked":
                rows["constant (majority class)"].append((constant(cfg, truth), 0.5))
            run_dir = args.out / f"yeast-{key}-seed{seed}"
            run_experiment(cfg, run_dir, progress=False)
            rows.setdefault(name, []).append(score(run_dir / "predictions.csv", truth))
    print(f"\nYeast, 14 binary tasks, {args.seeds} seeds: mean over tasks of the test accuracy / AUC "
          "on the test labels that were not blanked (mean ± std over seeds)")
    print("| model | accuracy | AUC |\n|---|---|---|")
    for name, values in rows.items():
        acc, auc = np.array(values).T
        print(f"| {name} | {100 * acc.mean():.2f} ± {100 * acc.std():.2f}% | {auc.mean():.4f} ± {auc.std():.4f} |")
    masked = np.array(rows["table, blanks masked"])[:, 0]
    for name in ("table, blanks as negatives", "table, no label blanked"):
        diff = 100 * (masked - np.array(rows[name])[:, 0])
        print(f"accuracy of 'blanks masked' minus '{name}', per seed: {', '.join(f'{d:+.2f}' for d in diff)} points")
    (args.out / "yeast_results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
