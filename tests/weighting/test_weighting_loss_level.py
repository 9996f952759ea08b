"""Loss-level methods: uniform, DWA, uncertainty, revised uncertainty, pseudo-uniform, RLW, FAMO."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from weighting_helpers import TASKS, flat_grad, forward, setup, single_thread  # noqa: F401  (autouse fixture)

from manytask.data.batch import TensorDataset
from manytask.errors import ConfigError, DataError
from manytask.tasks import Task
from manytask.weighting import (
    DWA,
    FAMO,
    RLW,
    PseudoUniform,
    RevisedUncertainty,
    Uncertainty,
    create,
    create_from_train,
    label_variance,
)


def test_uniform_gradients_equal_plain_sum() -> None:
    model, x, y = setup()
    twin = copy.deepcopy(model)
    losses, shared = forward(model, x, y)
    info = create("uniform", TASKS).backward(losses, shared)
    losses2, _ = forward(twin, x, y)
    losses2.sum().backward()
    assert torch.equal(flat_grad(list(model.parameters())), flat_grad(list(twin.parameters())))
    assert torch.equal(info.weights, torch.ones(3))


def test_dwa_is_one_for_two_epochs_then_sums_to_k() -> None:
    dwa = DWA(TASKS)
    losses = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    assert torch.equal(dwa.backward(losses).weights, torch.ones(3))
    dwa.on_epoch_end(torch.tensor([2.0, 1.0, 4.0]))
    assert torch.equal(dwa.backward(losses.detach().requires_grad_()).weights, torch.ones(3))
    dwa.on_epoch_end(torch.tensor([1.0, 1.0, 1.0]))
    w = dwa.backward(losses.detach().requires_grad_()).weights
    # by hand: ratios L(2)/L(1) = [0.5, 1, 0.25], T = 2
    e = [math.exp(r / 2) for r in (0.5, 1.0, 0.25)]
    expected = torch.tensor([3 * v / sum(e) for v in e])
    assert torch.allclose(w, expected, atol=1e-6)
    assert float(w.sum()) == pytest.approx(3.0)
    dwa.on_epoch_end(torch.tensor([0.5, 2.0, 1.0]))
    w = dwa.backward(losses.detach().requires_grad_()).weights
    e = [math.exp(r / 2) for r in (0.5, 2.0, 1.0)]
    assert torch.allclose(w, torch.tensor([3 * v / sum(e) for v in e]), atol=1e-6)


def test_dwa_temperature_flattens_weights() -> None:
    hot, cold = DWA(TASKS, temperature=100.0), DWA(TASKS, temperature=0.5)
    for m in (hot, cold):
        m.on_epoch_end(torch.tensor([1.0, 1.0, 1.0]))
        m.on_epoch_end(torch.tensor([0.2, 1.0, 3.0]))
    assert float(hot.lambdas.std()) < float(cold.lambdas.std())


def _grad_wrt_log_var(method: Uncertainty | RevisedUncertainty, losses: list[float], s: list[float]) -> torch.Tensor:
    with torch.no_grad():
        method.log_vars.copy_(torch.tensor(s))
    method.log_vars.grad = None
    method.backward(torch.tensor(losses, requires_grad=True))
    assert method.log_vars.grad is not None
    return method.log_vars.grad


def test_uncertainty_optimum_matches_the_formula() -> None:
    # classification: e^{-s} L + s/2 -> s* = log(2L); regression: ½ e^{-s} L + s/2 -> s* = log L
    method = Uncertainty(TASKS)  # multiclass, regression, binary
    losses = [0.7, 2.5, 0.3]
    opt = [math.log(2 * 0.7), math.log(2.5), math.log(2 * 0.3)]
    assert torch.allclose(_grad_wrt_log_var(method, losses, opt), torch.zeros(3), atol=1e-6)
    # the other form's optimum is not a stationary point
    wrong = [math.log(0.7), math.log(2 * 2.5), math.log(0.3)]
    assert (_grad_wrt_log_var(method, losses, wrong).abs() > 0.1).all()


def test_uncertainty_weights_and_regulariser() -> None:
    method = Uncertainty(TASKS, init_log_var=0.0)
    losses = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    info = method.backward(losses)
    assert torch.allclose(info.weights, torch.tensor([1.0, 0.5, 1.0]))
    assert losses.grad is not None and torch.allclose(losses.grad, torch.tensor([1.0, 0.5, 1.0]))


def test_revised_uncertainty_optimum() -> None:
    method = RevisedUncertainty(TASKS)
    losses = [0.7, 2.5, 0.05]
    sig2 = [(v + math.sqrt(v * v + 8 * v)) / 4 for v in losses]
    assert torch.allclose(_grad_wrt_log_var(method, losses, [math.log(s) for s in sig2]), torch.zeros(3), atol=1e-6)
    assert (_grad_wrt_log_var(method, losses, [math.log(v) for v in losses]).abs() > 1e-2).all()
    # the regulariser ln(1 + σ²) stays positive
    with torch.no_grad():
        method.log_vars.fill_(-20.0)
    _, reg = method.weights(torch.tensor(losses))
    assert reg is not None and float(reg.detach()) > 0


def test_pseudo_uniform_weights_are_inverse_label_variance() -> None:
    tasks = [Task("c", "multiclass", num_classes=4), Task("r", "regression"), Task("b", "binary"),
             Task("img", "reconstruction", dim=3)]
    g = torch.Generator().manual_seed(1)
    r = 5.0 * torch.randn(200, generator=g)
    r[::7] = float("nan")  # unlabelled entries do not count
    img = torch.randn(200, 3, generator=g) * torch.tensor([1.0, 2.0, 3.0])
    targets = {"c": torch.randint(0, 4, (200,), generator=g), "r": r, "b": torch.zeros(200), "img": img}
    var = label_variance(tasks, targets)
    assert set(var) == {"r", "img"}
    rv = r[~torch.isnan(r)].double().numpy()
    assert var["r"] == pytest.approx(float(np.var(rv, ddof=1)), rel=1e-9)
    assert var["img"] == pytest.approx(float(np.var(img.double().numpy(), axis=0, ddof=1).mean()), rel=1e-9)
    method = PseudoUniform(tasks, label_variance=var)
    losses = torch.tensor([1.0, 1.0, 1.0, 1.0], requires_grad=True)
    w = method.backward(losses).weights
    assert torch.allclose(w, torch.tensor([1.0, 1.0 / var["r"], 1.0, 1.0 / var["img"]]))
    # built for a training split, it computes the same variances there (unless they are given)
    train = TensorDataset(torch.zeros(200, 1), targets)
    assert torch.equal(PseudoUniform.from_train(tasks, train).scale, method.scale)
    given = {"r": 2.0, "img": 4.0}
    assert torch.equal(create_from_train("pseudo_uniform", tasks, train, label_variance=given).scale,
                       PseudoUniform(tasks, label_variance=given).scale)


def test_pseudo_uniform_rejects_missing_or_bad_variance() -> None:
    with pytest.raises(ConfigError, match="size"):
        PseudoUniform(TASKS, label_variance={})
    with pytest.raises(ConfigError, match="-1"):
        PseudoUniform(TASKS, label_variance={"size": -1.0})
    with pytest.raises(ConfigError, match="nope"):
        PseudoUniform(TASKS, label_variance={"size": 1.0, "nope": 2.0})
    with pytest.raises(DataError, match="size"):
        label_variance(TASKS, {"size": torch.ones(10)})


def test_rlw_weights_are_positive_and_sum_to_k() -> None:
    method = RLW(TASKS, seed=3)
    draws = torch.stack([method.backward(torch.ones(3, requires_grad=True)).weights for _ in range(400)])
    assert torch.allclose(draws.sum(1), torch.full((400,), 3.0), atol=1e-5)
    assert (draws > 0).all()
    assert draws.std(0).min() > 0.1  # they change every step
    assert torch.allclose(draws.mean(0), torch.ones(3), atol=0.1)


def test_famo_weights_and_logit_update() -> None:
    method = FAMO(TASKS, xi_optimizer="sgd", gamma=0.0, beta=0.5)
    losses = torch.tensor([1.0, 2.0, 4.0], requires_grad=True)
    w = method.backward(losses).weights
    inv = torch.tensor([1.0, 0.5, 0.25])
    assert torch.allclose(w, inv / inv.sum(), atol=1e-6)  # z uniform: λ_k = (1/ℓ_k) / Σ 1/ℓ_i
    assert losses.grad is not None and torch.allclose(losses.grad, w)
    # task 0's loss halved, the others did not move: its logit goes down, the others' up
    method.update(torch.tensor([0.5, 2.0, 4.0]))
    z = torch.softmax(method.xi, 0)
    assert z[0] < 1 / 3 < z[1] and torch.isclose(z[1], z[2])
    delta = torch.tensor([math.log(2.0), 0.0, 0.0], dtype=torch.float64)
    zu = torch.full((3,), 1 / 3, dtype=torch.float64)
    jac = torch.diag(zu) - torch.outer(zu, zu)
    assert torch.allclose(method.xi, -0.5 * jac @ delta, atol=1e-9)  # ξ ← ξ - β J^T δ


def test_famo_next_batch_learns_in_backward_what_same_batch_learns_in_update() -> None:
    paper = FAMO(TASKS, xi_optimizer="sgd", beta=0.5)
    cheap = FAMO(TASKS, xi_optimizer="sgd", beta=0.5, update_on="next_batch")
    assert paper.wants_after_step and not cheap.wants_after_step
    seq = [torch.tensor(v) for v in ([1.0, 2.0, 4.0], [0.5, 2.5, 3.0], [0.4, 2.0, 3.5], [0.3, 1.0, 3.0])]
    for i, losses in enumerate(seq):
        if i > 0:  # the paper's update, with ℓ⁺ = the losses that the next step sees
            paper.update(losses)
        w_paper = paper.backward(losses.clone().requires_grad_()).weights
        w_cheap = cheap.backward(losses.clone().requires_grad_()).weights
        assert torch.allclose(w_paper, w_cheap, atol=1e-12)
        assert torch.allclose(paper.xi, cheap.xi, atol=1e-12)
    assert not torch.allclose(cheap.xi, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="same_batch"):
        cheap.update(torch.ones(3))


def test_famo_next_batch_trains_the_tiny_model_and_resumes_exactly() -> None:
    model, x, y = setup(seed=1)
    method = create("famo", TASKS, update_on="next_batch")
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = None
    for step in range(50):
        opt.zero_grad()
        losses, shared = forward(model, x, y)
        first = float(losses.detach().sum()) if first is None else first
        method.backward(losses, shared)
        opt.step()
        if step == 24:
            twin = create("famo", TASKS, update_on="next_batch")
            twin.load_state_dict(copy.deepcopy(method.state_dict()))
            probe = torch.tensor([0.3, 0.2, 0.1], requires_grad=True)
            assert torch.equal(copy.deepcopy(method).backward(probe).weights, twin.backward(probe.detach().requires_grad_()).weights)
    assert float(losses.detach().sum()) < 0.7 * first


def test_famo_update_needs_a_backward_first() -> None:
    method = FAMO(TASKS)
    with pytest.raises(ValueError, match="backward"):
        method.update(torch.ones(3))
