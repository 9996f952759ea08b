"""Properties every registered method shares: it trains, it resumes exactly, it validates."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from weighting_helpers import TASKS, forward, setup, single_thread  # noqa: F401  (autouse fixture)

from manytask.data.batch import TensorDataset
from manytask.errors import ConfigError
from manytask.weighting import (
    WeightingMethod,
    available,
    create,
    create_from_train,
    get,
    label_variance,
)

ROOT = Path(__file__).resolve().parents[2]


def _make(name: str, y: dict[str, torch.Tensor], **kw: Any) -> WeightingMethod:
    """Built the way a run builds it: for the training split (pseudo-uniform's variances from ``y``)."""
    if name in ("rlw", "pcgrad"):
        kw.setdefault("seed", 0)
    n = next(iter(y.values())).shape[0]
    return create_from_train(name, TASKS, TensorDataset(torch.zeros(n, 1), y), **kw)


def _train(model: torch.nn.Module, method: WeightingMethod, x: torch.Tensor, y: dict[str, torch.Tensor],
           steps: int, lr: float = 0.05) -> list[float]:
    opt = torch.optim.Adam([*model.parameters(), *method.parameters()], lr=lr)
    history = []
    hook = method.wants_after_step
    for step in range(steps):
        opt.zero_grad()
        losses, shared = forward(model, x, y)
        history.append(float(losses.detach().sum()))
        method.backward(losses, shared)
        opt.step()
        if hook:
            with torch.no_grad():
                method.after_step(forward(model, x, y)[0])
        if step % 5 == 4:
            method.on_epoch_end(losses.detach())
    return history


def test_every_method_is_registered() -> None:
    assert set(available()) >= {"uniform", "pseudo_uniform", "uncertainty", "revised_uncertainty", "dwa", "rlw",
                                "famo", "gradnorm", "mgda", "mgda_ub", "pcgrad", "cagrad"}


@pytest.mark.parametrize("name", available())
def test_every_method_trains_the_tiny_model(name: str) -> None:
    model, x, y = setup(seed=1)
    method = _make(name, y)
    history = _train(model, method, x, y, steps=50)
    assert history[-1] < 0.7 * history[0], (name, history[0], history[-1])
    losses, shared = forward(model, x, y)
    model.zero_grad()
    info = method.backward(losses, shared)
    assert info.weights.shape == (3,) and torch.isfinite(info.weights).all()
    assert set(info.as_log([t.name for t in TASKS])) >= {"w/digit", "w/size", "w/odd"}


@pytest.mark.parametrize("name", available())
def test_state_dict_round_trip_resumes_exactly(name: str) -> None:
    model, x, y = setup(seed=2)
    method = _make(name, y)
    _train(model, method, x, y, steps=12)
    model_b = copy.deepcopy(model)
    method_b = _make(name, y, **({"seed": 123} if name in ("rlw", "pcgrad") else {}))
    method_b.load_state_dict(copy.deepcopy(method.state_dict()))
    # continue both for a few steps with fresh optimizers: identical weights and parameters
    run_a = _weights_after(model, method, x, y)
    run_b = _weights_after(model_b, method_b, x, y)
    assert torch.equal(run_a[0], run_b[0]), name
    for pa, pb in zip(model.parameters(), model_b.parameters()):
        assert torch.equal(pa, pb), name


def _weights_after(model: torch.nn.Module, method: WeightingMethod, x: torch.Tensor,
                   y: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    opt = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=0.05)
    out = []
    for step in range(7):
        opt.zero_grad()
        losses, shared = forward(model, x, y)
        out.append(method.backward(losses, shared).weights)
        opt.step()
        if method.wants_after_step:
            with torch.no_grad():
                method.after_step(forward(model, x, y)[0])
        if step % 3 == 2:
            method.on_epoch_end(losses.detach())
    return [torch.stack(out)]


def test_stateful_methods_actually_change_state() -> None:
    model, x, y = setup(seed=3)
    for name, key in [("dwa", "lambdas"), ("famo", "xi"), ("gradnorm", "initial_losses"), ("uncertainty", "log_vars")]:
        method = _make(name, y)
        before = copy.deepcopy(method.state_dict())
        _train(copy.deepcopy(model), method, x, y, steps=12)
        assert not torch.equal(before[key], method.state_dict()[key]), name


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("dwa", {"temperature": 0}, "temperature"),
    ("dwa", {"temperature": float("nan")}, "temperature"),
    ("uncertainty", {"init_log_var": "big"}, "init_log_var"),
    ("revised_uncertainty", {"init_log_var": float("inf")}, "init_log_var"),
    ("rlw", {"seed": -1}, "seed"),
    ("famo", {"beta": -0.1}, "beta"),
    ("famo", {"gamma": -1.0}, "gamma"),
    ("famo", {"eps": 0.0}, "eps"),
    ("famo", {"xi_optimizer": "rmsprop"}, "rmsprop"),
    ("famo", {"update_on": "later"}, "later"),
    ("famo", {"min_losses": [0.0]}, "min_losses"),
    ("gradnorm", {"alpha": -1.5}, "alpha"),
    ("gradnorm", {"engine": "gpu"}, "gpu"),
    ("mgda", {"normalization": "l1"}, "l1"),
    ("mgda_ub", {"solver": "qp"}, "qp"),
    ("mgda", {"max_iter": 0}, "max_iter"),
    ("pcgrad", {"seed": 1.5}, "seed"),
    ("cagrad", {"c": -0.5}, "-0.5"),
    ("cagrad", {"rescale": 3}, "rescale"),
    ("cagrad", {"scale": "max"}, "scale"),
    ("cagrad", {"engine": "vmap"}, "vmap"),
    ("pseudo_uniform", {"label_variance": {"size": 0.0}}, "size"),
    ("imtl_g", {"on": "heads"}, "heads"),
    ("uniform", {"temperature": 2.0}, "temperature"),
]


@pytest.mark.parametrize(("name", "kwargs", "mentions"), BAD)
def test_bad_hyperparameters_raise_config_error(name: str, kwargs: dict[str, Any], mentions: str) -> None:
    with pytest.raises(ConfigError, match=mentions):
        create(name, TASKS, **kwargs)
    _, _, y = setup(seed=0)
    with pytest.raises(ConfigError, match=mentions):  # the same through the training-split constructor
        _make(name, y, **kwargs)


def test_every_method_has_its_own_display_name() -> None:
    labels = {name: get(name).display_name for name in available()}
    assert all(labels.values())
    assert len(set(labels.values())) == len(labels), labels  # a subclass never shows its parent's label
    assert labels["mgda_ub"] == "MGDA-UB" and labels["revised_uncertainty"] == "Revised uncertainty"


def test_from_train_is_the_plain_constructor_unless_a_method_needs_the_split() -> None:
    _, _, y = setup(seed=0)
    for name in available():
        kw = {"seed": 0} if name in ("rlw", "pcgrad") else {}
        torch.manual_seed(0)
        built = _make(name, y, **kw)
        if name == "pseudo_uniform":
            assert float(built.state_dict()["scale"][1]) == pytest.approx(1 / label_variance(TASKS, y)["size"])
            continue
        torch.manual_seed(0)
        plain = create(name, TASKS, **kw)
        a, b = built.state_dict(), plain.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor)), name


def test_unknown_method_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match="cagrad"):
        create("nashmtl", TASKS)


def test_own_loop_example_runs() -> None:
    script = ROOT / "examples" / "own_loop.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert "loss" in out.stdout
