"""A run directory is safe to load, owned by one process, resumed only under its own config,
and a non-finite loss is caught in the step that produces it."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import warnings

import pytest
import torch
from torch import nn

from manytask.errors import ConfigError
from manytask.models import MLPTrunk, MultiTaskModel
from manytask.tasks import Task
from manytask.training import OptimizerSpec, RunDir, Trainer
from manytask.training.checkpoint import CheckpointError, decode_tree, encode_tree
from manytask.training.guard import DivergenceWarning, NonFiniteLoss
from manytask.training.rundir import RunDirBusy

TASKS = [Task("c", "multiclass", num_classes=3), Task("r", "regression")]


class _Bomb:
    """Unpickling this would create a file (stands for any code a planted pickle runs)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.marker, "w"))


class _Poisoned(nn.Module):
    """Wraps a model; from training forward number ``at`` on, task ``task``'s prediction is ``value``."""

    def __init__(self, inner: MultiTaskModel, at: int, task: str = "r", value: float = float("inf"),
                 once: bool = False) -> None:
        super().__init__()
        self.inner, self.at, self.task, self.value, self.once, self.calls = inner, at, task, value, once, 0

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = dict(self.inner(x))
        if self.training:
            self.calls += 1
            if self.calls == self.at or (self.calls > self.at and not self.once):
                out[self.task] = out[self.task] * 0 + self.value
        return out


def make(run_dir=None, epochs=2, model=None, **kw) -> Trainer:
    torch.manual_seed(0)
    model = model or MultiTaskModel(MLPTrunk(20, hidden=(16,)), TASKS)
    return Trainer(model, TASKS, kw.pop("weighting", "uniform"), OptimizerSpec(lr=0.05), epochs=epochs,
                   batch_size=100, run_dir=None if run_dir is None else RunDir(run_dir), progress=False, **kw)


def test_state_tree_round_trips_types() -> None:
    opt = torch.optim.Adam([nn.Parameter(torch.ones(2))], betas=(0.9, 0.99))
    opt.zero_grad()
    opt.param_groups[0]["params"][0].grad = torch.ones(2)
    opt.step()
    tree = {"opt": opt.state_dict(), "inf": float("inf"), "none": None, "gen": torch.Generator().get_state()}
    tensors: dict[str, torch.Tensor] = {}
    back = decode_tree(json.loads(json.dumps(encode_tree(tree, tensors))), tensors)
    assert back["opt"]["param_groups"][0]["betas"] == (0.9, 0.99)
    assert set(back["opt"]["state"]) == {0} and torch.equal(back["opt"]["state"][0]["exp_avg"],
                                                            opt.state_dict()["state"][0]["exp_avg"])
    assert back["inf"] == float("inf") and back["none"] is None and torch.equal(back["gen"], tree["gen"])


def test_planted_pickle_is_refused_and_never_run(tmp_path, toy_data) -> None:
    train, val, _ = toy_data
    marker = tmp_path / "pwned"
    torch.save({"trainer": _Bomb(str(marker))}, tmp_path / "last_state.pt")
    with pytest.raises(CheckpointError, match="last_state.pt: refusing to load a pickled state file"):
        make(tmp_path).fit(train, val, resume=True)
    assert not marker.exists()
    with open(tmp_path / "last_state.pt", "wb") as fh:  # a bare pickle too
        pickle.dump(_Bomb(str(marker)), fh)
    with pytest.raises(CheckpointError):
        make(tmp_path).fit(train, val, resume=True)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage"])
def test_damaged_checkpoint_is_refused(tmp_path, toy_data, damage) -> None:
    train, val, _ = toy_data
    make(tmp_path, epochs=1).fit(train, val)
    p = tmp_path / "checkpoint.safetensors"
    data = bytearray(p.read_bytes())
    if damage == "flip":
        data[-5] ^= 0xFF  # inside the tensor data: the header still parses
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}")
    p.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checkpoint.safetensors: ") as err:
        make(tmp_path, epochs=2).fit(train, val, resume=True)
    assert "\n" not in str(err.value)


def test_corrupt_weights_file_is_refused(tmp_path) -> None:
    (tmp_path / "best.safetensors").write_bytes(b"\x00" * 7)
    with pytest.raises(CheckpointError, match="best.safetensors: not a readable safetensors file"):
        RunDir(tmp_path).load_weights("best", nn.Linear(2, 2))


def test_second_owner_is_refused_and_stale_lock_taken_over(tmp_path, toy_data) -> None:
    train, val, _ = toy_data
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / ".lock").write_text(f"{sleeper.pid}\n")
        with pytest.raises(RunDirBusy, match=f"in use by process {sleeper.pid}"):
            make(tmp_path, epochs=1).fit(train, val)
        assert not (tmp_path / "history.jsonl").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    make(tmp_path, epochs=1).fit(train, val)  # its owner is gone: the lock is stale
    assert RunDir(tmp_path).is_complete() and not (tmp_path / ".lock").exists()


def test_resume_refuses_a_changed_config_and_allows_more_epochs(tmp_path, toy_data) -> None:
    train, val, _ = toy_data
    cfg = {"model": {"hidden": [16]}, "training": {"epochs": 1, "optimizer": {"lr": 0.05}}}
    make(tmp_path, epochs=1).fit(train, val, config=cfg)
    recorded = (tmp_path / "config.yaml").read_text()
    for key, value in (("model", {"hidden": [8]}), ("training", {"epochs": 1, "optimizer": {"lr": 0.5}})):
        with pytest.raises(ConfigError, match=f"cannot resume with a changed config: {key}"):
            make(tmp_path, epochs=2).fit(train, val, resume=True, config={**cfg, key: value})
        assert (tmp_path / "config.yaml").read_text() == recorded
    longer = {**cfg, "training": {"epochs": 2, "optimizer": {"lr": 0.05}}}
    result = make(tmp_path, epochs=2).fit(train, val, resume=True, config=longer)
    assert [r["epoch"] for r in result.history] == [1, 2]


def test_fresh_run_into_a_finished_directory_removes_its_summary_first(tmp_path, toy_data) -> None:
    train, val, _ = toy_data
    make(tmp_path, epochs=1).fit(train, val)
    assert RunDir(tmp_path).is_complete()

    def stop(trainer: Trainer, epoch: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make(tmp_path, epochs=2, callbacks=[stop]).fit(train, val)
    assert not (tmp_path / "summary.json").exists() and not (tmp_path / ".lock").exists()


def test_nonfinite_loss_stops_before_the_optimizer_step(tmp_path, toy_data) -> None:
    train, val, _ = toy_data  # 1000 samples: 10 steps per epoch
    trainer = make(tmp_path, epochs=3, model=_Poisoned(MultiTaskModel(MLPTrunk(20, hidden=(16,)), TASKS), at=13))
    with pytest.raises(NonFiniteLoss, match=r"step 13 \(epoch 2\): training loss of task 'r' \(inf\)"):
        trainer.fit(train, val)
    assert trainer.step == 12  # the bad step did not count, nothing after it ran
    assert all(bool(torch.isfinite(p).all()) for p in trainer.model.parameters())
    summary = RunDir(tmp_path).summary()
    assert summary is not None and summary["status"] == "stopped_nonfinite"
    assert summary["step"] == 13 and summary["nonfinite_tasks"] == ["r"]
    assert [r["epoch"] for r in RunDir(tmp_path).history()] == [1]  # the last good checkpoint: epoch 1


def test_nonfinite_loss_skip_policy_counts_and_goes_on(tmp_path, toy_data) -> None:
    train, val, _ = toy_data
    model = _Poisoned(MultiTaskModel(MLPTrunk(20, hidden=(16,)), TASKS), at=4, value=float("nan"), once=True)
    result = make(tmp_path, epochs=2, model=model, nonfinite="skip").fit(train, val)
    assert result.epochs_run == 2
    assert result.history[0]["skipped_steps"] == 1 and "skipped_steps" not in result.history[1]
    assert all(torch.isfinite(torch.tensor([v for k, v in r.items() if k.startswith("train_loss/")])).all()
               for r in result.history)
    nf = RunDir(tmp_path).summary()["nonfinite"]
    assert nf["policy"] == "skip" and nf["skipped_steps"] == 1 and nf["skipped_by_task"] == {"c": 0, "r": 1}
    assert nf["first_nonfinite"] == {"step": 4, "epoch": 1, "tasks": ["r"]}


def test_huge_finite_losses_are_warned_about(toy_data) -> None:
    train, _, _ = toy_data
    model = _Poisoned(MultiTaskModel(MLPTrunk(20, hidden=(16,)), TASKS), at=2, value=1e17, once=True)
    trainer = make(epochs=1, model=model)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        trainer.train_epoch(train, 1)
    msgs = [str(w.message) for w in seen if issubclass(w.category, DivergenceWarning)]
    assert len(msgs) == 1 and "step 2 (epoch 1): loss of task(s) r" in msgs[0]
    assert trainer.guard.summary()["diverging"] == msgs[0]


def test_fault_hook_is_off_without_its_variable() -> None:
    from manytask.training import checkpoint

    assert os.environ.get(checkpoint.FAULT_ENV) is None and checkpoint._FAULT is None


def test_bf16_autocast_trains_with_float32_losses_and_weights(toy_data) -> None:
    train, val, test = toy_data
    trainer = make(epochs=3, precision="bf16")
    batch = next(train.batches(100))
    preds = trainer._forward(batch.inputs)[1]
    assert all(p.dtype == torch.float32 for p in preds.values())
    result = trainer.fit(train, val, test)
    full = make(epochs=3).fit(train, val, test)
    assert abs(result.test["c"]["accuracy"] - full.test["c"]["accuracy"]) < 0.05
    assert result.test["r"]["mse"] < 1.2 * full.test["r"]["mse"]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    with pytest.raises(ConfigError, match="training.precision"):
        make(precision="fp8")


def test_tensorboard_scalars_follow_the_history_across_a_resume(tmp_path, toy_data) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train, val, _ = toy_data
    make(tmp_path, epochs=2, tensorboard=True).fit(train, val)
    make(tmp_path, epochs=3, tensorboard=True).fit(train, val, resume=True)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    history = RunDir(tmp_path).history()
    for tag in ("train_loss/c", "val/r/mse", "score", "lr"):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2, 3], tag
        assert [s.value for s in scalars] == pytest.approx([row[tag] for row in history], rel=1e-6), tag
