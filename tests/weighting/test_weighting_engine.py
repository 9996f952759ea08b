"""The per-task gradient engine: batched and looped paths agree, heads and shared .grad are right."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from weighting_helpers import TASKS, flat_grad, forward, make_data, setup, single_thread  # noqa: F401  (autouse fixture)

from manytask.errors import ConfigError
from manytask.tasks import stack_losses
from manytask.weighting import MGDA, GradientEngine, SharedParts, write_grads
from manytask.weighting.gradients import find_direct_convs


def _naive_jacobian(model, x, y, wrt):  # type: ignore[no-untyped-def]
    rows = []
    for i in range(len(TASKS)):
        losses, shared = forward(model, x, y)
        inputs = [shared.features] if wrt == "features" else shared.params
        grads = torch.autograd.grad(losses[i], inputs)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


@pytest.mark.parametrize("mode", ["batched", "loop"])
def test_param_and_feature_jacobians_match_naive_per_task_backward(mode: str) -> None:
    model, x, y = setup(dtype=torch.float64)
    engine = GradientEngine(mode)
    losses, shared = forward(model, x, y)
    jp = engine.param_jacobian(losses, shared.params, shared.features)
    jf = engine.feature_jacobian(losses, shared.features).reshape(len(TASKS), -1)
    assert torch.allclose(jp, _naive_jacobian(model, x, y, "params"), atol=1e-12)
    assert torch.allclose(jf, _naive_jacobian(model, x, y, "features"), atol=1e-12)


def test_batched_and_looped_agree_on_every_route() -> None:
    model, x, y = setup(dtype=torch.float64)
    out = {}
    for mode in ("batched", "loop"):
        eng = GradientEngine(mode)
        losses, shared = forward(model, x, y)
        out[mode] = (
            eng.param_jacobian(losses, shared.params, shared.features),  # z-first route
            eng.param_jacobian(losses, shared.params, None),  # whole-graph route
            eng.feature_jacobian(losses, shared.features),
        )
    for a, b in zip(out["batched"], out["loop"]):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
    assert torch.allclose(out["loop"][0], out["loop"][1], atol=1e-12)


def test_losses_that_are_not_a_stack_fall_back() -> None:
    model, x, y = setup(dtype=torch.float64)
    ref = _naive_jacobian(model, x, y, "params")
    for mode in ("batched", "loop"):
        losses, shared = forward(model, x, y)
        scaled = losses * 1.0  # no longer a StackBackward node
        assert torch.allclose(GradientEngine(mode).param_jacobian(scaled, shared.params, shared.features), ref)


def test_head_reaching_a_shared_parameter_disables_the_z_route() -> None:
    model, x, y = setup(dtype=torch.float64)
    engine = GradientEngine("loop")
    z, preds = model.forward_with_features(x)
    preds["size"] = preds["size"] + (x @ model.fc.weight.T).sum(1, keepdim=True) * 0.1  # bypasses z
    losses = stack_losses(TASKS, preds, y)
    info = engine.inspect(losses, model.shared_parameters(), z)
    assert not info.through_features
    jac = engine.param_jacobian(losses, model.shared_parameters(), z, info)
    naive = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(losses[i], model.shared_parameters(), retain_graph=True)])
                         for i in range(3)])
    assert torch.allclose(jac, naive)


def test_inspect_finds_exactly_the_head_parameters() -> None:
    model, x, y = setup()
    losses, shared = forward(model, x, y)
    info = GradientEngine().inspect(losses, shared.params, shared.features)
    assert {id(p) for p in info.head_leaves} == {id(p) for p in model.head_parameters()}
    assert info.through_features


@pytest.mark.parametrize("mode", ["batched", "loop"])
def test_gradient_method_leaves_only_the_combination_on_shared_and_own_gradients_on_heads(mode: str) -> None:
    model, x, y = setup(dtype=torch.float64)
    losses, shared = forward(model, x, y)
    jac = _naive_jacobian(model, x, y, "params")
    pre = [torch.full_like(p, 0.25) for p in model.parameters()]
    for p, g in zip(model.parameters(), pre):  # accumulation: existing .grad is kept and added to
        p.grad = g.clone()
    info = MGDA(TASKS, engine=mode).backward(losses, shared)
    shared_expected = info.weights.to(jac) @ jac + 0.25
    assert torch.allclose(flat_grad(model.shared_parameters()), shared_expected, atol=1e-12)
    twin_model, _, _ = setup(dtype=torch.float64)
    twin_losses, _ = forward(twin_model, x, y)
    heads = torch.autograd.grad(twin_losses.sum(), twin_model.head_parameters())
    got = [p.grad - 0.25 for p in model.head_parameters()]
    for a, b in zip(got, heads):
        assert torch.allclose(a, b, atol=1e-12)


def test_write_grads_adds_and_checks_size() -> None:
    p = nn.Parameter(torch.zeros(2, 2))
    q = nn.Parameter(torch.zeros(3))
    write_grads([p, q], torch.arange(7.0))
    write_grads([p, q], torch.ones(7))
    assert torch.equal(p.grad, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert torch.equal(q.grad, torch.tensor([5.0, 6.0, 7.0]))
    with pytest.raises(ValueError, match="6 entries"):
        write_grads([p, q], torch.ones(6))


def test_auto_mode_picks_by_device() -> None:
    eng = GradientEngine("auto")
    assert eng.path(torch.device("cpu")) == "loop"
    assert eng.path(torch.device("cuda")) == "batched"
    with pytest.raises(ConfigError, match="'vmap'"):
        GradientEngine("vmap")


def test_unused_shared_parameter_gets_zero_rows() -> None:
    model, x, y = setup(dtype=torch.float64)
    extra = nn.Parameter(torch.ones(3, dtype=torch.float64))
    losses, shared = forward(model, x, y)
    params = [*shared.params, extra]
    for mode in ("batched", "loop"):
        jac = GradientEngine(mode).param_jacobian(losses, params, shared.features)
        assert jac.shape == (3, sum(p.numel() for p in params))
        assert torch.equal(jac[:, -3:], torch.zeros(3, 3, dtype=torch.float64))
    _ = SharedParts(params=params)


@pytest.mark.parametrize("wrt", ["params", "features"])
def test_head_gradients_ride_along_identically_on_both_paths(wrt: str) -> None:
    grads = {}
    for mode in ("batched", "loop"):
        model, x, y = setup(dtype=torch.float64)
        eng = GradientEngine(mode)
        losses, shared = forward(model, x, y)
        info = eng.inspect(losses, shared.params, shared.features)
        if wrt == "params":
            eng.param_jacobian(losses, shared.params, shared.features, info, heads=True)
        else:
            eng.feature_jacobian(losses, shared.features, info, heads=True)
        assert all(p.grad is None for p in model.shared_parameters())
        grads[mode] = flat_grad(model.head_parameters())
    model, x, y = setup(dtype=torch.float64)
    losses, _ = forward(model, x, y)
    ref = torch.cat([g.reshape(-1) for g in torch.autograd.grad(losses.sum(), model.head_parameters())])
    assert torch.allclose(grads["loop"], ref, atol=1e-12)
    assert torch.allclose(grads["batched"], ref, atol=1e-12)


class _ConvTrunkModel(nn.Module):
    """A single-channel first convolution (the direct route), a 2-channel one (autograd), heads."""

    def __init__(self, stride: int, padding: int, dilation: int, bias: bool, hw: tuple[int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, stride=stride, padding=padding, dilation=dilation, bias=bias)
        self.conv2 = nn.Conv2d(3, 2, 2)
        with torch.no_grad():
            n = self.conv2(self.conv1(torch.zeros(1, 1, *hw))).numel()
        self.heads = nn.ModuleList(nn.Linear(n, t.out_features) for t in TASKS)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = torch.tanh(self.conv2(torch.relu(self.conv1(x)))).flatten(1)
        return z, {t.name: h(z) for t, h in zip(TASKS, self.heads)}

    def shared_parameters(self) -> list[nn.Parameter]:
        return [*self.conv1.parameters(), *self.conv2.parameters()]


@pytest.mark.parametrize(("stride", "padding", "dilation", "bias"),
                         [(1, 0, 1, True), (2, 1, 1, True), (1, 2, 2, False), (2, 0, 2, True)])
def test_direct_single_channel_conv_gradients_match_autograd(stride: int, padding: int, dilation: int,
                                                             bias: bool) -> None:
    torch.manual_seed(0)
    model = _ConvTrunkModel(stride, padding, dilation, bias, (11, 10)).double()
    x = torch.randn(5, 1, 11, 10, dtype=torch.float64)
    _, y = make_data(TASKS, n=5, dtype=torch.float64)
    z, preds = model.forward_with_features(x)
    losses = stack_losses(TASKS, preds, y)
    params = model.shared_parameters()
    convs = find_direct_convs(losses, params)
    assert [c.weight for c in convs] == [model.conv1.weight]  # conv2 has 3 input channels
    assert (convs[0].bias is None) == (not bias)
    direct = GradientEngine("loop").param_jacobian(losses, params, z)
    plain = GradientEngine("loop", direct_convs=False).param_jacobian(losses, params, z)
    naive = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(losses[i], params, retain_graph=True)])
                         for i in range(len(TASKS))])
    assert torch.allclose(plain, naive, atol=1e-12)
    assert torch.allclose(direct, naive, atol=1e-12)


def _conv_model_preds(padding: int, side: int, n: int = 4):  # type: ignore[no-untyped-def]
    """A float64 conv model (stride 1, bias) on ``n`` random ``side``² images: model, preds, targets."""
    torch.manual_seed(0)
    model = _ConvTrunkModel(1, padding, 1, True, (side, side)).double()
    x = torch.randn(n, 1, side, side, dtype=torch.float64)
    _, y = make_data(TASKS, n=n, dtype=torch.float64)
    _, preds = model.forward_with_features(x)
    return model, preds, y


def test_a_convolution_whose_weight_is_used_elsewhere_stays_with_autograd() -> None:
    model, preds, y = _conv_model_preds(padding=0, side=8)
    preds["size"] = preds["size"] + 0.1 * model.conv1.weight.sum()  # a second use of the weight
    losses = stack_losses(TASKS, preds, y)
    params = model.shared_parameters()
    assert find_direct_convs(losses, params) == []
    jac = GradientEngine("loop").param_jacobian(losses, params, None)
    naive = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(losses[i], params, retain_graph=True)])
                         for i in range(len(TASKS))])
    assert torch.allclose(jac, naive, atol=1e-12)


def test_direct_route_on_the_lenet_trunk_matches_the_batched_path() -> None:
    from manytask.models import LeNetTrunk, MultiTaskModel

    torch.manual_seed(0)
    model = MultiTaskModel(LeNetTrunk(), list(TASKS)).double()
    x = torch.randn(6, 1, 36, 36, dtype=torch.float64)
    _, y = make_data(TASKS, n=6, dtype=torch.float64)
    out = {}
    for mode in ("loop", "batched"):
        z, preds = model.forward_with_features(x)
        losses = stack_losses(TASKS, preds, y)
        assert len(find_direct_convs(losses, model.shared_parameters())) == 1
        out[mode] = GradientEngine(mode).param_jacobian(losses, model.shared_parameters(), z)
    assert torch.allclose(out["loop"], out["batched"], atol=1e-12)


def test_a_convolution_with_a_too_large_patch_matrix_stays_with_autograd() -> None:
    model, preds, y = _conv_model_preds(padding=1, side=9)
    losses = stack_losses(TASKS, preds, y)
    (conv,) = find_direct_convs(losses, model.shared_parameters())
    assert conv.patch_elements() == 4 * 9 * 81 == conv.patches().numel()
    assert find_direct_convs(losses, model.shared_parameters(), max_patch_elements=4 * 9 * 81 - 1) == []


def test_a_convolution_node_that_cannot_be_read_stays_with_autograd() -> None:
    from manytask.weighting.gradients import _as_direct_conv

    class _Opaque:  # a node without the saved attributes the direct route reads
        next_functions = ()

    assert _as_direct_conv(_Opaque(), {}) is None
