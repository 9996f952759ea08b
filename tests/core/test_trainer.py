"""The trainer learns, selects on validation, writes a complete RunDir and resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch

from manytask.errors import ConfigError
from manytask.models import MLPTrunk, MultiTaskModel
from manytask.tasks import Task
from manytask.training import OptimizerSpec, RunDir, Trainer

TASKS = [Task("c", "multiclass", num_classes=3), Task("r", "regression")]


def make(tmp_path=None, epochs=4, seed=0, **kw) -> Trainer:
    torch.manual_seed(seed)
    model = MultiTaskModel(MLPTrunk(20, hidden=(32,)), TASKS)
    return Trainer(model, TASKS, "uniform", OptimizerSpec(lr=0.05), epochs=epochs, batch_size=64,
                   run_dir=None if tmp_path is None else RunDir(tmp_path), progress=False, seed=seed, **kw)


def test_tiny_training_beats_chance_clearly(toy_data) -> None:
    train, val, test = toy_data
    result = make(epochs=6).fit(train, val, test)
    assert result.test["c"]["accuracy"] > 0.8  # chance is at most ~0.5 (largest class)
    assert result.test["r"]["mse"] < 0.5 * float(test.targets["r"].var())


def test_rundir_contents_and_best_epoch_from_validation(tmp_path, toy_data) -> None:
    train, val, test = toy_data
    result = make(tmp_path).fit(train, val, test, config={"name": "toy"})
    for name in ("config.yaml", "history.jsonl", "steps.jsonl", "summary.json", "best.safetensors",
                 "last.safetensors", "last_state.pt"):
        assert (tmp_path / name).exists(), name
    rd = RunDir(tmp_path)
    hist = rd.history()
    assert [r["epoch"] for r in hist] == [1, 2, 3, 4]
    assert {"train_loss/c", "train_loss/r", "weight/c", "val/c/accuracy", "val/r/mse"} <= set(hist[0])
    # monitor 'auto' with a regression task = summed validation loss, minimised
    best = min(hist, key=lambda r: r["score"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["best_epoch"] == best["epoch"] == result.best_epoch
    assert summary["test"]["c"]["accuracy"] == pytest.approx(result.test["c"]["accuracy"])
    steps = rd.read_jsonl("steps.jsonl")
    assert len(steps) == 4 * 16 and steps[0]["w/c"] == 1.0
    # the best checkpoint reproduces the validation metrics of the best epoch
    model = MultiTaskModel(MLPTrunk(20, hidden=(32,)), TASKS)
    rd.load_weights("best", model)
    t = Trainer(model, TASKS, progress=False)
    assert t.evaluate(val)["c"]["loss"] == pytest.approx(best["val/c/loss"], rel=1e-5)


def test_same_seed_same_result_and_resume_is_exact(tmp_path, toy_data) -> None:
    train, val, test = toy_data
    full = make(tmp_path / "full").fit(train, val, test)
    again = make().fit(train, val, test)
    assert again.test == full.test
    # stop after 2 epochs, then resume to 4 in the same directory
    make(tmp_path / "part", epochs=2).fit(train, val, test)
    resumed = make(tmp_path / "part", epochs=4).fit(train, val, test, resume=True)
    assert [r["epoch"] for r in RunDir(tmp_path / "part").history()] == [1, 2, 3, 4]
    assert resumed.test == full.test


def test_early_stopping_stops(toy_data) -> None:
    train, val, _ = toy_data
    t = make(epochs=50, patience=1, monitor="c.accuracy")
    res = t.fit(train, val)
    assert res.stopped_early and res.epochs_run < 50


def test_bad_arguments(toy_data) -> None:
    with pytest.raises(ConfigError, match="epochs"):
        make(epochs=0)
    with pytest.raises(ConfigError, match="unknown optimizer"):
        Trainer(MultiTaskModel(MLPTrunk(20), TASKS), TASKS, optimizer=OptimizerSpec(name="rmsprop"))
    train, _, _ = toy_data
    with pytest.raises(ConfigError, match="no target for task 'c'"):
        make().fit(train.select({"r": "r"}))


@pytest.mark.parametrize(("update_on", "forwards_per_step"), [("same_batch", 2), ("next_batch", 1)])
def test_trainer_runs_famos_extra_forward_only_when_the_method_wants_it(toy_data, update_on: str,
                                                                        forwards_per_step: int) -> None:
    from manytask.weighting import create

    train, _, _ = toy_data
    model = MultiTaskModel(MLPTrunk(20, hidden=(32,)), TASKS)
    trainer = Trainer(model, TASKS, create("famo", TASKS, update_on=update_on), OptimizerSpec(lr=0.05), epochs=1,
                      batch_size=64, progress=False)
    calls = []
    model.trunk.register_forward_hook(lambda *_: calls.append(1))
    trainer.train_epoch(train, 0)
    steps = -(-len(train) // 64)
    assert len(calls) == forwards_per_step * steps
