"""Config → data → model → trainer glue."""

from __future__ import annotations

import pytest
import torch

from manytask.config import parse_config
from manytask.experiment import (
    build_data,
    build_weighting,
    columns_for,
    run_experiment,
    task_splits,
)

CFG = {
    "seed": 2,
    "data": {"kind": "multimnist", "train_size": 300, "val_size": 100, "test_size": 100},
    "tasks": [{"name": "left", "kind": "multiclass", "num_classes": 10},
              {"name": "sum", "kind": "regression", "target": "sum"}],
    "model": {"trunk": "lenet", "features": 16, "head_hidden": 16},
    "training": {"epochs": 1, "threads": 1},
    "weighting": {"name": "pseudo_uniform"},
}


def test_pseudo_uniform_gets_training_label_variance() -> None:
    cfg = parse_config(CFG)
    tasks = cfg.build_tasks()
    splits = task_splits(build_data(cfg, columns_for(tasks)), tasks)
    method = build_weighting("pseudo_uniform", {}, tasks, splits.train)
    var = float(splits.train.targets["sum"].double().var())
    info = method.backward(torch.tensor([1.0, 1.0], requires_grad=True))
    assert info.weights[0].item() == 1.0
    assert info.weights[1].item() == pytest.approx(1.0 / var, rel=1e-6)


def test_subset_of_tasks_and_width() -> None:
    cfg = parse_config(CFG)
    res = run_experiment(cfg, None, task_names=["sum"], weighting="uniform", width=0.5, progress=False)
    assert set(res.test) == {"sum"} and res.test["sum"]["mse"] > 0
