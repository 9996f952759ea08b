"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, "GradNorm: gradient normalization for
adaptive loss balancing in deep multitask networks", ICML 2018, Algorithm 1).

Learned loss weights ``w_k`` (an ``nn.Parameter``, init 1) balance the gradient norms of the
weighted task losses on the last shared layer ``W`` (``SharedParts.last_layer``)::

    L        = Σ_k w_k L_k                                      (what the network minimises)
    G_k      = ||∇_W w_k L_k||₂ = w_k ||∇_W L_k||₂,            Ḡ = mean_k G_k
    r_k      = L̃_k / mean_j L̃_j,                              L̃_k = L_k(t) / L_k(0)
    L_grad   = Σ_k | G_k - Ḡ r_k^α |                            (target Ḡ r_k^α held constant)

``w`` receives only ``∇_w L_grad`` (``= sign(G_k - Ḡ r_k^α) ||∇_W L_k||``, closed form since the
target is a constant and ``G_k`` is linear in ``w_k``); the network receives ``∇ L``, heads
included, as in the paper (``L`` is an ordinary weighted loss). After each update the weights
are renormalised to ``Σ_k w_k = K``; we do this at the start of every ``backward`` (before the
weights are used, so every step uses renormalised weights, which needs no extra hook), after
clipping at 1e-8 (the paper does not say what happens to a weight that an update makes
negative). ``L_k(0)`` are the losses of the first step. Default ``α = 1.5``.

The per-task gradients on ``W`` come from the shared engine: per-task ``∂L_k/∂z`` and one
vector-Jacobian product of the last layer each, so the extra cost is small.
Add ``method.parameters()`` to the optimizer (the trainer does).

``W`` here is every parameter of the last shared layer, its **weight and bias** together
(``MultiTaskModel.last_shared_layer()``), so ``||∇_W L_k||`` is the norm over both. The paper
says "the last shared layer of weights"; re-implementations such as LucasBoTang/GradNorm take
the layer's weight matrix only. The two norms differ by the bias's share, usually small.

Optimiser group of ``w`` (``param_optimizer``): the network's learning rate, no momentum, no
weight decay. The authors publish no code; the re-implementations we checked
(LucasBoTang/GradNorm, the ``gradnorm-pytorch`` package) give ``w`` an optimiser of its own
with its own learning rate, separate from the network's. Ours is a parameter group of the
network's optimiser; without momentum each step moves ``w`` by ``lr`` times this step's
``∇_w L_grad`` only, which the renormalisation to ``Σ w = K`` then acts on (a momentum buffer
would keep pushing with steps taken before the renormalisation). ``weighting.optimizer`` sets
another ``lr``, momentum or weight decay.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from manytask.tasks import Task
from manytask.weighting import _validate
from manytask.weighting.base import SharedParts, StepInfo, WeightingMethod, register
from manytask.weighting.gradients import GradientEngine

_FLOOR = 1e-8


@register
class GradNorm(WeightingMethod):
    """Loss weights learned so that the tasks' gradient norms on ``W`` train at balanced rates.

    Args:
        tasks: the tasks in loss order.
        alpha: asymmetry ``α >= 0`` (default 1.5).
        engine: per-task gradient path, ``"auto"``, ``"batched"`` or ``"loop"``.

    ``StepInfo.weights`` is ``w`` (sums to K); ``extra["gradnorm_loss"]`` is ``L_grad``.
    """

    name = "gradnorm"
    display_name = "GradNorm"
    param_optimizer = {"momentum": 0.0, "weight_decay": 0.0}
    initial_losses: Tensor
    has_initial: Tensor

    def __init__(self, tasks: Sequence[Task], alpha: float = 1.5, engine: str = "auto") -> None:
        super().__init__(tasks)
        self.alpha = _validate.number(self.name, "alpha", alpha, low=0.0, low_inclusive=True)
        self.engine = GradientEngine(_validate.choice(self.name, "engine", engine, ("auto", "batched", "loop")))
        self.loss_weights = nn.Parameter(torch.ones(self.k))
        self.register_buffer("initial_losses", torch.zeros(self.k, dtype=torch.float64))
        self.register_buffer("has_initial", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def renormalize(self) -> None:
        """``w ← K w / Σ w`` (after clipping at a small positive floor)."""
        w = self.loss_weights.clamp_min(_FLOOR)
        self.loss_weights.copy_(self.k * w / w.sum())

    def backward(self, losses: Tensor, shared: SharedParts | None = None) -> StepInfo:
        self.check_losses(losses)
        if shared is None or not shared.last_layer:
            raise ValueError("weighting 'gradnorm': needs SharedParts(last_layer=...) (the last shared layer's parameters)")
        self.renormalize()
        ell = shared.global_mean(losses.detach()).to(torch.float64)
        if not bool(self.has_initial):
            self.initial_losses.copy_(ell)
            self.has_initial.fill_(True)
        last = [p for p in shared.last_layer if p.requires_grad]
        info = self.engine.inspect(losses, [p for p in shared.params if p.requires_grad], shared.features)
        jac = shared.global_mean(self.engine.param_jacobian(losses, last, shared.features, info))
        norms = jac.detach().to(torch.float64).norm(dim=1)

        w = self.loss_weights.detach()
        w64 = w.to(device=norms.device, dtype=torch.float64)
        g = w64 * norms
        init = self.initial_losses.to(ell.device)
        ratio = torch.where(init > 0, ell / init.clamp_min(torch.finfo(torch.float64).tiny), torch.ones_like(ell))
        rel = ratio / ratio.mean() if float(ratio.mean()) > 0 else torch.ones_like(ratio)
        target = g.mean() * rel.pow(self.alpha)
        grad_w = torch.sign(g - target) * norms

        (w.to(losses.dtype) * losses).sum().backward()
        gw = grad_w.to(device=self.loss_weights.device, dtype=self.loss_weights.dtype)
        if self.loss_weights.grad is None:
            self.loss_weights.grad = gw.clone()
        else:
            self.loss_weights.grad.add_(gw)
        return StepInfo(weights=w.clone(), extra={"gradnorm_loss": float((g - target).abs().sum())})
