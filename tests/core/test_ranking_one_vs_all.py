"""The ranking task kind, one-vs-all tasks, the MNIST source, the paper's CNN and the
``grouping: selective_sharing`` route through a config."""

from __future__ import annotations

import json
import math

import pytest
import torch

from manytask.config import parse_config
from manytask.errors import ConfigError
from manytask.experiment import (
    build_data,
    build_model,
    columns_for,
    run_experiment,
    task_splits,
)
from manytask.models import build_trunk
from manytask.models.registry import TrunkSpec
from manytask.tasks import Task, kendall_tau, one_vs_all


# ---------------------------------------------------------------------- ranking
def test_ranking_loss_by_hand() -> None:
    task = Task("r", "ranking")
    scores = torch.tensor([0.5, 0.0, 2.0, 7.0])
    labels = torch.tensor([1.0, 0.0, 3.0, float("nan")])  # the last sample is unlabelled
    # ordered pairs (i, j) with y_i > y_j: (0, 1): (1 - 0.5)² = 0.25; (2, 0): 1 - 1.5 < 0 -> 0;
    # (2, 1): 1 - 2 < 0 -> 0; mean over the 3 pairs
    assert float(task.loss(scores, labels)) == pytest.approx(0.25 / 3)
    # a score order against the labels: (1, 0): (1 + 1)² = 4 is the only pair
    assert float(task.loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))) == pytest.approx(4.0)
    # ties in the labels make no pair: the loss is an attached zero
    s = torch.tensor([0.3, 0.1], requires_grad=True)
    loss = task.loss(s, torch.tensor([2.0, 2.0]))
    loss.backward()
    assert float(loss.detach()) == 0.0 and s.grad is not None


def test_kendall_tau_by_hand() -> None:
    # 6 pairs, one discordant (scores 2 < 3 but labels 3 > 2): (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert kendall_tau([4, 3, 2, 1], [1, 2, 3, 4]) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau([1.0], [2.0]))
    task = Task("r", "ranking")
    m = task.metrics(torch.tensor([[1.0], [2.0], [3.0], [4.0], [9.0]]),
                     torch.tensor([1.0, 3.0, 2.0, 4.0, float("nan")]))
    assert m["kendall_tau"] == pytest.approx(4 / 6)
    assert task.primary_metric == "kendall_tau" and task.higher_is_better
    assert task.constant_baseline(torch.tensor([1.0, 2.0, 3.0])) == pytest.approx(1.0)


def test_ranking_task_checks() -> None:
    with pytest.raises(ConfigError, match="one score"):
        Task("r", "ranking", dim=2)
    assert Task("r", "ranking").out_features == 1


# ---------------------------------------------------------------------- one-vs-all
def test_one_vs_all_tasks_and_targets() -> None:
    tasks = one_vs_all("digit", 3)
    assert [t.name for t in tasks] == ["digit_0", "digit_1", "digit_2"]
    col = torch.tensor([0, 2, 1, -1])
    assert tasks[2].prepare_target(col).tolist() == [0.0, 1.0, 0.0, -1.0]
    assert Task("d", "multiclass", num_classes=3).prepare_target(col) is col
    with pytest.raises(ConfigError, match="positive"):
        Task("x", "multiclass", num_classes=3, positive=1)


def _mnist_cfg(**extra: object) -> dict:
    cfg = {
        "data": {"kind": "mnist", "source": "bundled", "train_size": 300, "val_size": 100, "test_size": 100},
        "tasks": [{"name": "d", "kind": "binary", "target": "digit", "one_vs_all": 10}],
        "model": {"trunk": "ss_cnn", "features": 64, "branches": [12, 6]},
        "training": {"epochs": 2, "batch_size": 50, "threads": 1, "device": "cpu"},
    }
    cfg.update(extra)
    return cfg


def test_one_vs_all_config_reads_the_digit_column() -> None:
    cfg = parse_config(_mnist_cfg())
    tasks = cfg.build_tasks()
    assert [t.name for t in tasks] == [f"d_{k}" for k in range(10)]
    splits = task_splits(build_data(cfg, columns_for(tasks)), tasks)
    digits = build_data(cfg, ["digit"]).train.targets["digit"]
    for k in (0, 7):
        assert torch.equal(splits.train.targets[f"d_{k}"], (digits == k).float())
    with pytest.raises(ConfigError, match="one_vs_all"):
        parse_config(_mnist_cfg(tasks=[{"name": "d", "kind": "multiclass", "num_classes": 10, "one_vs_all": 10}]))


def test_paper_cnn_and_branched_model() -> None:
    trunk = build_trunk("ss_cnn", (1, 28, 28), TrunkSpec(features=640))
    assert trunk(torch.zeros(2, 1, 28, 28)).shape == (2, 640)
    assert trunk.fc.in_features == 640  # 40 filters × 4 × 4
    cfg = parse_config({**_mnist_cfg(), "model": {"trunk": "ss_cnn", "features": 640, "branches": [100, 50]}})
    model = build_model(cfg, cfg.build_tasks(), (1, 28, 28))
    assert len(model.branches) == 10
    per_branch = 640 * 100 + 100 + 100 * 50 + 50
    assert sum(p.numel() for p in model.branches.parameters()) == 10 * per_branch
    first = [b[0].weight for b in model.branches.values()]
    assert all(torch.equal(first[0], w) for w in first)  # identically initialised
    assert all(h.out_features == 1 for h in model.heads.values())


def test_selective_sharing_run_writes_groups_and_plot(tmp_path) -> None:
    cfg = parse_config(_mnist_cfg(grouping={"method": "selective_sharing", "criterion": "variance"}))
    run_experiment(cfg, tmp_path / "run", progress=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    ss = summary["selective_sharing"]
    assert sorted(t for ts in ss["groups"].values() for t in ts) == sorted(f"d_{k}" for k in range(10))
    assert ss["branch_params_end"] == ss["branches"] * (64 * 12 + 12 + 12 * 6 + 6)
    assert ss["params_start"] - ss["params_end"] == ss["branch_params_start"] - ss["branch_params_end"]
    assert (tmp_path / "run" / "grouping.png").stat().st_size > 0
    assert (tmp_path / "run" / "sharing.jsonl").exists()


def test_selective_sharing_needs_branches() -> None:
    cfg = parse_config({**_mnist_cfg(grouping={"method": "selective_sharing"}),
                        "model": {"trunk": "ss_cnn", "features": 64}})
    with pytest.raises(ConfigError, match="model.branches"):
        run_experiment(cfg, None, progress=False)


def test_cli_run_prints_the_grouping(tmp_path) -> None:
    import yaml
    from typer.testing import CliRunner

    from manytask.cli import app

    cfg = _mnist_cfg(grouping={"method": "selective_sharing"})
    cfg["training"]["epochs"] = 1
    path = tmp_path / "ss.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "selective sharing (similarity, lowest_loss)" in res.output
    assert "trainable parameters" in res.output
