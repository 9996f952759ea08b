"""The weighting method's own parameters get their own optimiser group."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from manytask.config import parse_config
from manytask.errors import ConfigError
from manytask.tasks import Task
from manytask.training import OptimizerSpec, Trainer
from manytask.training.param_groups import method_group_settings, param_groups
from manytask.weighting import create

TASKS = [Task("a", "multiclass", num_classes=3), Task("b", "multiclass", num_classes=3)]


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 6)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.body(x)
        return {"a": z[:, :3], "b": z[:, 3:]}


def _groups_of(trainer: Trainer) -> tuple[dict, dict]:
    groups = trainer.optimizer.param_groups
    assert len(groups) == 2
    return groups[0], groups[1]


def test_uncertainty_log_vars_get_their_own_group_without_momentum() -> None:
    spec = OptimizerSpec(name="sgd", lr=0.02, momentum=0.9, weight_decay=1e-4)
    trainer = Trainer(_Net(), TASKS, "uncertainty", spec, progress=False)
    net, own = _groups_of(trainer)
    assert [id(p) for p in own["params"]] == [id(trainer.weighting.log_vars)]
    assert (own["lr"], own["momentum"], own["weight_decay"]) == (0.02, 0.0, 0.0)
    assert (net["lr"], net["momentum"], net["weight_decay"]) == (0.02, 0.9, 1e-4)
    assert all(not any(p is q for q in net["params"]) for p in own["params"])


def test_user_settings_override_the_method_defaults() -> None:
    spec = OptimizerSpec(name="sgd", lr=0.02, momentum=0.9)
    trainer = Trainer(_Net(), TASKS, "gradnorm", spec, progress=False,
                      weighting_optimizer={"lr": 0.1, "momentum": 0.5, "weight_decay": None})
    _, own = _groups_of(trainer)
    assert [id(p) for p in own["params"]] == [id(trainer.weighting.loss_weights)]
    assert (own["lr"], own["momentum"], own["weight_decay"]) == (0.1, 0.5, 0.0)


def test_a_method_without_parameters_adds_no_group() -> None:
    trainer = Trainer(_Net(), TASKS, "dwa", OptimizerSpec(), progress=False)
    assert len(trainer.optimizer.param_groups) == 1


def test_adam_has_no_momentum_to_set() -> None:
    spec = OptimizerSpec(name="adam", lr=1e-3)
    method = create("uncertainty", TASKS)
    assert method_group_settings(spec, method) == {"lr": 1e-3, "weight_decay": 0.0}
    with pytest.raises(ConfigError, match="momentum: only for sgd"):
        method_group_settings(spec, method, {"momentum": 0.9})
    with pytest.raises(ConfigError, match="unknown setting"):
        method_group_settings(spec, method, {"betas": 0.9})
    with pytest.raises(ConfigError, match="lr must be > 0"):
        method_group_settings(OptimizerSpec(), method, {"lr": 0.0})


def test_config_section_reaches_the_optimizer() -> None:
    from manytask.data.batch import TensorDataset
    from manytask.experiment import make_trainer

    cfg = parse_config({
        "tasks": [{"name": "a", "kind": "multiclass", "num_classes": 3},
                  {"name": "b", "kind": "multiclass", "num_classes": 3}],
        "training": {"optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}, "device": "cpu"},
        "weighting": {"name": "uncertainty", "optimizer": {"lr": 0.01}},
    })
    train = TensorDataset(torch.randn(8, 4), {"a": torch.zeros(8, dtype=torch.long),
                                               "b": torch.zeros(8, dtype=torch.long)})
    trainer = make_trainer(cfg, TASKS, _Net(), train, progress=False)
    net, own = _groups_of(trainer)
    assert (own["lr"], own["momentum"]) == (0.01, 0.0)
    assert (net["lr"], net["momentum"]) == (0.05, 0.9)
    with pytest.raises(ConfigError, match="momentum"):
        parse_config({"tasks": [{"name": "a", "kind": "binary"}],
                      "weighting": {"optimizer": {"momentum": 1.5}}})


def test_resume_restores_both_groups() -> None:
    torch.manual_seed(0)
    spec = OptimizerSpec(name="sgd", lr=0.02, momentum=0.9, schedule="step", step_size=1, gamma=0.5)
    x = torch.randn(16, 4)
    a = Trainer(_Net(), TASKS, "uncertainty", spec, progress=False)
    for _ in range(3):
        a.optimizer.zero_grad()
        preds = a.model(x)
        losses = torch.stack([preds["a"].pow(2).mean(), preds["b"].pow(2).mean()])
        a.weighting.backward(losses)
        a.optimizer.step()
    a.scheduler.step()
    b = Trainer(_Net(), TASKS, "uncertainty", spec, progress=False)
    b.load_state_dict(a.state_dict())
    for ga, gb in zip(a.optimizer.param_groups, b.optimizer.param_groups):
        assert {k: v for k, v in ga.items() if k != "params"} == {k: v for k, v in gb.items() if k != "params"}
    assert b.optimizer.param_groups[1]["lr"] == 0.01 and b.optimizer.param_groups[1]["momentum"] == 0.0
    assert len(b.optimizer.state_dict()["state"]) == len(a.optimizer.state_dict()["state"])


def _min_weight(overrides: dict | None, steps: int = 20, loss: float = 2.0) -> float:
    """Smallest classification weight e^{-s} over ``steps`` SGD steps (lr 0.02, momentum 0.9 on
    the network) on a fixed loss: the equilibrium weight is 1/(2L)."""
    method = create("uncertainty", TASKS[:1])
    spec = OptimizerSpec(name="sgd", lr=0.02, momentum=0.9)
    opt, _ = spec.build(param_groups(nn.Linear(1, 1), method, spec, overrides), epochs=1)
    lowest = 1.0
    for _ in range(steps):
        opt.zero_grad()
        info = method.backward(torch.tensor([loss]))
        lowest = min(lowest, float(info.weights[0]))
        opt.step()
    return min(lowest, math.exp(-float(method.log_vars.detach()[0])))


def test_no_momentum_on_log_vars_does_not_overshoot_the_equilibrium() -> None:
    equilibrium = 1 / (2 * 2.0)
    # the network's momentum on the log-variances (the old behaviour) overshoots within 20 steps
    assert _min_weight({"momentum": 0.9}) < 0.9 * equilibrium
    # the default group (momentum 0) approaches the equilibrium from above and never crosses it
    assert _min_weight(None) > equilibrium
    assert _min_weight(None, steps=400) > equilibrium
    assert _min_weight(None, steps=400) < 1.05 * equilibrium
