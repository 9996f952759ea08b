"""Gradient-level methods: MGDA / MGDA-UB, PCGrad, CAGrad, GradNorm."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from weighting_helpers import TASKS, forward, setup, single_thread  # noqa: F401  (autouse fixture)

from manytask.tasks import Task
from manytask.weighting import (
    IMTLG,
    MGDA,
    MGDAUB,
    CAGrad,
    GradNorm,
    PCGrad,
    SharedParts,
    cagrad_coefficients,
    min_norm_weights,
    pcgrad_coefficients,
)
from manytask.weighting.mgda import min_norm_2


def _linear_losses(grads: torch.Tensor) -> tuple[torch.Tensor, nn.Parameter]:
    """Losses L_k = g_k · θ: their gradients w.r.t. θ are exactly the rows of ``grads``."""
    theta = nn.Parameter(torch.zeros(grads.shape[1], dtype=grads.dtype))
    return torch.stack([g @ theta for g in grads]), theta


def _tasks(k: int) -> list[Task]:
    return [Task(f"t{i}", "regression") for i in range(k)]


def _grid_min_norm(g: torch.Tensor, steps: int) -> float:
    i, j = torch.meshgrid(torch.arange(steps + 1), torch.arange(steps + 1), indexing="ij")
    keep = (i + j) <= steps
    a = torch.stack([i[keep], j[keep], steps - i[keep] - j[keep]], dim=1).to(torch.float64) / steps
    return float(((a @ g) ** 2).sum(1).min())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_min_norm_solver_beats_a_fine_simplex_grid(seed: int) -> None:
    g = torch.randn(3, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    g[2] = -0.8 * g[0] + 0.3 * g[2]  # make the tasks conflict
    alpha = min_norm_weights(g @ g.T)
    assert float(alpha.sum()) == pytest.approx(1.0) and (alpha >= 0).all()
    found = float((alpha @ g).norm() ** 2)
    grid = _grid_min_norm(g, 200)
    assert found <= grid + 1e-9
    assert found == pytest.approx(grid, rel=2e-2, abs=1e-6)


def test_min_norm_two_tasks_closed_form() -> None:
    g = torch.tensor([[1.0, 0.0], [-0.5, 2.0]], dtype=torch.float64)
    alpha = min_norm_weights(g @ g.T)
    gammas = torch.linspace(0, 1, 100001, dtype=torch.float64)
    norms = ((gammas[:, None] * g[0] + (1 - gammas[:, None]) * g[1]) ** 2).sum(1)
    assert float(alpha[0]) == pytest.approx(float(gammas[norms.argmin()]), abs=1e-5)
    # one gradient inside the other's half-space: the smaller one alone is the min-norm point
    assert min_norm_2(1.0, 2.0, 9.0) == 1.0 and min_norm_2(9.0, 2.0, 1.0) == 0.0


def test_mgda_update_is_min_norm_combination_and_orthogonality() -> None:
    g = torch.tensor([[1.0, 0.0, 0.5], [-0.5, 1.0, 0.0], [0.2, -1.0, 1.0]], dtype=torch.float64)
    losses, theta = _linear_losses(g)
    info = MGDA(_tasks(3), tol=1e-12, max_iter=5000).backward(losses, SharedParts(params=[theta]))
    d = theta.grad
    assert torch.allclose(d, info.weights @ g)
    # KKT: every task with α_k > 0 has g_k · d = ||d||², the rest have g_k · d >= ||d||²
    dots = g @ d
    sq = float(d @ d)
    assert (dots >= sq - 1e-4).all()
    assert torch.allclose(dots[info.weights > 1e-3], torch.full_like(dots[info.weights > 1e-3], sq), atol=1e-4)


@pytest.mark.parametrize("normalization", ["none", "l2", "loss", "loss+"])
def test_mgda_ub_uses_representation_gradients(normalization: str) -> None:
    model, x, y = setup(dtype=torch.float64)
    losses, shared = forward(model, x, y)
    gz = torch.stack([torch.autograd.grad(losses[i], shared.features, retain_graph=True)[0].reshape(-1) for i in range(3)])
    n = {"none": torch.ones(3, dtype=torch.float64), "l2": gz.norm(dim=1), "loss": losses.detach(),
         "loss+": losses.detach() * gz.norm(dim=1)}[normalization]
    expected = min_norm_weights((gz / n[:, None]) @ (gz / n[:, None]).T)
    info = MGDAUB(TASKS, normalization=normalization).backward(losses, shared)
    assert torch.allclose(info.weights, expected.to(info.weights), atol=1e-9)
    # the shared gradient is the trunk's vjp of Σ α_k ∂L_k/∂z
    model2, _, _ = setup(dtype=torch.float64)
    z = torch.tanh(model2.fc(x))
    ref = torch.autograd.grad(z, list(model2.fc.parameters()), (info.weights @ gz).view_as(z))
    for p, r in zip(model.fc.parameters(), ref):
        assert torch.allclose(p.grad, r, atol=1e-12)


def test_mgda_ub_needs_features() -> None:
    model, x, y = setup()
    losses, shared = forward(model, x, y)
    with pytest.raises(ValueError, match="representation"):
        MGDAUB(TASKS).backward(losses, SharedParts(params=shared.params))


def test_pcgrad_removes_conflicting_component() -> None:
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)  # g1 · g2 = -1 < 0
    losses, theta = _linear_losses(g)
    PCGrad(_tasks(2), seed=0).backward(losses, SharedParts(params=[theta]))
    p1 = g[0] - (g[0] @ g[1]) / (g[1] @ g[1]) * g[1]  # [0.5, 0.5]
    p2 = g[1] - (g[1] @ g[0]) / (g[0] @ g[0]) * g[0]  # [0, 1]
    assert float(p1 @ g[1]) == pytest.approx(0.0) and float(p2 @ g[0]) == pytest.approx(0.0)
    assert torch.allclose(theta.grad, p1 + p2)


def test_pcgrad_leaves_non_conflicting_gradients_alone() -> None:
    g = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.5, 2.0]], dtype=torch.float64)
    losses, theta = _linear_losses(g)
    info = PCGrad(_tasks(3), seed=0).backward(losses, SharedParts(params=[theta]))
    assert torch.allclose(theta.grad, g.sum(0))
    assert torch.allclose(info.weights, torch.ones(3, dtype=torch.float64))


def test_pcgrad_gram_form_matches_sequential_projection() -> None:
    gen = torch.Generator().manual_seed(4)
    g = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    orders = torch.stack([torch.tensor([j for j in torch.randperm(5, generator=gen).tolist() if j != i]) for i in range(5)])
    coef = pcgrad_coefficients(g @ g.T, orders)
    for i in range(5):
        v = g[i].clone()
        for j in orders[i].tolist():
            dot = v @ g[j]
            if dot < 0:
                v = v - dot / (g[j] @ g[j]) * g[j]
        assert torch.allclose(coef[i] @ g, v, atol=1e-12)


def test_cagrad_with_c_zero_is_the_average_gradient_on_the_mean_scale() -> None:
    g = torch.randn(4, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    losses, theta = _linear_losses(g)
    CAGrad(_tasks(4), c=0.0, scale="mean").backward(losses, SharedParts(params=[theta]))
    assert torch.allclose(theta.grad, g.mean(0))


@pytest.mark.parametrize("rescale", [0, 1, 2])
def test_cagrad_with_c_zero_reproduces_uniform_update(rescale: int) -> None:
    """The official step scale (K times the combined direction): with c = 0 every gradient,
    shared and task-specific, equals uniform's (the gradient of the plain sum)."""
    grads = []
    for method in ("uniform", "cagrad"):
        model, x, y = setup(dtype=torch.float64)
        losses, shared = forward(model, x, y)
        if method == "uniform":
            losses.sum().backward()
        else:
            info = CAGrad(TASKS, c=0.0, rescale=rescale).backward(losses, shared)
            assert torch.allclose(info.weights, torch.ones(len(TASKS), dtype=info.weights.dtype))
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-12)
    # the average-gradient scale is 1/K of it on the shared parameters
    model, x, y = setup(dtype=torch.float64)
    losses, shared = forward(model, x, y)
    CAGrad(TASKS, c=0.0, scale="mean").backward(losses, shared)
    assert torch.allclose(model.fc.weight.grad * len(TASKS), grads[0][0], atol=1e-12)


def test_cagrad_sum_scale_is_k_times_the_mean_scale() -> None:
    g = torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mean = cagrad_coefficients(g @ g.T, 0.5, rescale=1)
    total = cagrad_coefficients(g @ g.T, 0.5, rescale=1, scale="sum")
    assert torch.allclose(total, 3 * mean)


def test_cagrad_stays_in_the_ball_and_improves_the_worst_task() -> None:
    g = torch.tensor([[1.0, 0.1], [-0.6, 1.0], [0.2, 0.3]], dtype=torch.float64)
    c = 0.5
    coef = cagrad_coefficients(g @ g.T, c, rescale=0)
    d = coef @ g
    g0 = g.mean(0)
    assert float((d - g0).norm()) <= c * float(g0.norm()) + 1e-6  # on the trust-region ball
    assert float((g @ d).min()) > float((g @ g0).min())  # the least-improved task does better
    scaled = cagrad_coefficients(g @ g.T, c, rescale=1)
    assert torch.allclose(scaled, coef / (1 + c**2))


def test_gradnorm_weights_sum_to_k_and_gradient_matches_autograd() -> None:
    model, x, y = setup(dtype=torch.float64)
    method = GradNorm(TASKS, alpha=1.5).double()
    opt = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=0.05)
    for step in range(6):
        opt.zero_grad()
        losses, shared = forward(model, x, y)
        info = method.backward(losses, shared)
        assert float(info.weights.sum()) == pytest.approx(3.0)
        if step == 4:  # check ∇_w L_grad against autograd with the target held constant
            losses2, shared2 = forward(model, x, y)
            w = method.loss_weights.detach().clone().requires_grad_()
            gnorm = torch.stack([
                torch.cat([g.reshape(-1) for g in torch.autograd.grad(w[i] * losses2[i], shared2.last_layer,
                                                                       create_graph=True, retain_graph=True)]).norm()
                for i in range(3)])
            ratio = losses2.detach() / method.initial_losses
            target = (gnorm.mean() * (ratio / ratio.mean()) ** 1.5).detach()
            (ref,) = torch.autograd.grad((gnorm - target).abs().sum(), w)
            assert torch.allclose(method.loss_weights.grad, ref, atol=1e-10)
        opt.step()
    assert not torch.allclose(method.loss_weights.detach(), torch.ones(3, dtype=torch.float64))
    method.renormalize()
    assert float(method.loss_weights.detach().sum()) == pytest.approx(3.0)


def test_gradnorm_initial_losses_come_from_the_first_step() -> None:
    model, x, y = setup()
    method = GradNorm(TASKS)
    losses, shared = forward(model, x, y)
    method.backward(losses, shared)
    assert torch.allclose(method.initial_losses.float(), losses.detach())
    model.zero_grad()
    losses2, shared2 = forward(model, x, y * 1 if False else y)
    method.backward(losses2 * 0.5, shared2)
    assert torch.allclose(method.initial_losses.float(), losses.detach())


@pytest.mark.parametrize("k", [3, 8])
def test_cagrad_dual_solver_reaches_slsqp_objective(k: int) -> None:
    from scipy.optimize import minimize

    from manytask.weighting.cagrad import solve_dual

    g = (torch.randn(k, 30, generator=torch.Generator().manual_seed(k), dtype=torch.float64) + 0.2).numpy()
    m = g @ g.T
    b = np.full(k, 1.0 / k)
    sqrt_phi = 0.5 * float(np.sqrt(m.mean() + 1e-8)) + 1e-8

    def objective(w: np.ndarray) -> float:
        return float(w @ m @ b + sqrt_phi * np.sqrt(w @ m @ w + 1e-8))

    ref = minimize(objective, b.copy(), method="SLSQP", bounds=[(0.0, 1.0)] * k,
                   constraints=({"type": "eq", "fun": lambda w: 1.0 - w.sum()},))
    w = solve_dual(m, m @ b, sqrt_phi)
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0)
    assert objective(w) <= ref.fun + 1e-9 * float(np.diag(m).max())


@pytest.mark.parametrize("k", [2, 3, 6])
def test_imtl_g_update_has_equal_projections_on_unit_gradients(k: int) -> None:
    g = torch.randn(k, 9, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    g = g * torch.tensor([1.0, 5.0, 0.2, 2.0, 1.0, 3.0][:k], dtype=torch.float64)[:, None]  # different scales
    losses, theta = _linear_losses(g)
    info = IMTLG(_tasks(k), on="params").backward(losses, SharedParts(params=[theta]))
    assert float(info.weights.sum()) == pytest.approx(1.0)
    proj = g @ theta.grad / g.norm(dim=1)
    assert torch.allclose(proj, proj[0].expand(k), rtol=1e-8)
    assert torch.allclose(theta.grad, info.weights @ g)
