"""The trainer learns, selects on validation, writes a complete RunDir and resumes exactly."""

from __future__ import annotations

import json
import math

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
                 "last.safetensors", "checkpoint.safetensors"):
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


def test_max_steps_stops_the_full_schedule_early(tmp_path, toy_data) -> None:
    """``max_steps`` stops the run of ``epochs`` epochs (schedule not compressed) mid-epoch; the
    model is the full run's after that many steps and is scored there."""
    train, val, _ = toy_data  # 1000 samples / 64 = 16 steps per epoch
    seen: list[dict[str, torch.Tensor]] = []

    def after_20(model, batch, losses) -> None:  # the hook before step 21 sees the weights after 20
        if len(seen) == 20:
            seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        else:
            seen.append({})

    spec = OptimizerSpec(lr=0.05, schedule="cosine")
    torch.manual_seed(0)
    ref = Trainer(MultiTaskModel(MLPTrunk(20, hidden=(32,)), TASKS), TASKS, "uniform", spec, epochs=4,
                  batch_size=64, progress=False, seed=0)
    for epoch in (1, 2):
        ref.train_epoch(train, epoch, inspect=after_20)
    last: dict[str, torch.Tensor] = {}
    torch.manual_seed(0)
    stopped = Trainer(MultiTaskModel(MLPTrunk(20, hidden=(32,)), TASKS), TASKS, "uniform", spec, epochs=4,
                      batch_size=64, progress=False, seed=0, max_steps=20, run_dir=RunDir(tmp_path),
                      callbacks=[lambda t, e: last.update({k: v.clone() for k, v in t.model.state_dict().items()})])
    res = stopped.fit(train, val)
    assert stopped.step == 20 and res.epochs_run == 2
    assert all(torch.equal(last[k], v) for k, v in seen[20].items())
    # epoch 2 ran at the 4-epoch cosine schedule's second value, not a 2-epoch one's
    assert res.history[1]["lr"] == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)) / 2)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps_run"] == 20 and summary["max_steps"] == 20
    assert res.val["c"]["loss"] == pytest.approx(summary["val"]["c"]["loss"])
    with pytest.raises(ConfigError, match="max_steps"):
        make(max_steps=0)


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


def test_step_hook_sees_the_live_losses_and_cannot_change_the_run(toy_data) -> None:
    train, _, _ = toy_data

    def dropout_trainer() -> Trainer:
        torch.manual_seed(0)
        model = MultiTaskModel(MLPTrunk(20, hidden=(32,), dropout=0.5), TASKS)
        return Trainer(model, TASKS, "uniform", OptimizerSpec(lr=0.05), epochs=1, batch_size=64, progress=False)

    plain = dropout_trainer()
    plain.train_epoch(train, 1)
    hooked = dropout_trainer()  # seeds the global generator again
    seen = []

    def hook(model, batch, losses) -> None:
        assert model is hooked.model and losses.requires_grad and losses.shape == (2,)
        torch.autograd.grad(losses[0], list(model.parameters())[0], retain_graph=True)  # the graph is live
        seen.append(len(batch))
        torch.rand(1000)  # draws random numbers: the forked generator keeps the run's own stream

    out = hooked.train_epoch(train, 1, inspect=hook)
    assert sum(seen) == len(train) and len(seen) == out["steps"] == hooked.step
    for a, b in zip(plain.model.parameters(), hooked.model.parameters()):
        assert torch.equal(a, b)


def test_end_epoch_steps_the_schedule_and_stops_on_non_finite_losses() -> None:
    torch.manual_seed(0)
    model = MultiTaskModel(MLPTrunk(20, hidden=(8,)), TASKS)
    plateau = Trainer(model, TASKS, "dwa", OptimizerSpec(lr=0.1, schedule="plateau", gamma=0.5), epochs=3,
                      progress=False)
    plateau.end_epoch(torch.tensor([1.0, 1.0]), 1)
    plateau.end_epoch(torch.tensor([1.0, 2.0]), 2)  # the sum did not decrease: patience 0 halves lr
    assert plateau.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    assert plateau.weighting.state_dict()["history"][1].tolist() == [1.0, 2.0]  # DWA saw them
    step = Trainer(model, TASKS, "uniform", OptimizerSpec(lr=0.1, schedule="step", step_size=1, gamma=0.1),
                   epochs=3, progress=False)
    step.optimizer.step()  # (no gradients: nothing moves) an epoch's steps come before the schedule's
    step.end_epoch(torch.tensor([1.0, 1.0]), 1)
    assert step.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    with pytest.raises(FloatingPointError, match="epoch 3.*task\\(s\\) r"):
        step.end_epoch(torch.tensor([1.0, float("nan")]), 3)


def test_monitor_direction_comes_from_the_metric_table() -> None:
    from manytask.training.run_state import monitor_value as _monitor_value

    metrics = {"c": {"accuracy": 0.5, "loss": 1.0}, "r": {"mse": 2.0, "mae": 1.0, "r2": 0.3, "loss": 2.0}}
    assert _monitor_value("r.r2", TASKS, metrics) == (0.3, True)
    assert _monitor_value("r.mae", TASKS, metrics) == (1.0, False)
    assert _monitor_value("c.accuracy", TASKS, metrics) == (0.5, True)
    assert _monitor_value("c.loss", TASKS, metrics) == (1.0, False)
    with pytest.raises(ConfigError, match="r.auc"):
        _monitor_value("r.auc", TASKS, metrics)
