"""FAMO: Fast Adaptive Multitask Optimization (Liu, Liu, Stone & Liu, NeurIPS 2023, Algorithm 1).

FAMO keeps task logits ``ξ`` (init 0), ``z = softmax(ξ)``, and updates the model along the
gradient of ``Σ_k z_k log(ℓ_k)`` normalised so that it is a convex-like combination::

    ℓ_k   = L_k - L_k* + ε                     (L_k* = min_losses, a known lower bound; default 0)
    c     = (Σ_k z_k / ℓ_k)^{-1}
    d     = c Σ_k (z_k / ℓ_k) ∇L_k             (the update direction of the shared model)

so the effective loss weights are ``λ_k = c z_k / ℓ_k`` (``StepInfo.weights``; they are *not*
normalised to sum K). After the optimizer step, the logits learn from how much each log loss
decreased, measured on the same batch with the updated parameters (ℓ⁺)::

    δ = J_softmax(ξ)^T (log ℓ - log ℓ⁺)
    ξ ← ξ - β (δ + γ ξ)                         (xi_optimizer="sgd": Algorithm 1 verbatim)

The authors' code applies ``δ`` with Adam (lr β, L2 weight decay γ); that is the default here
(``xi_optimizer="adam"``, betas 0.9/0.999, eps 1e-8). Defaults: β = 0.025, γ = 1e-3, ε = 1e-8.
The authors' experiment scripts also clip the shared parameters' gradient norm at 1.0 before
every optimizer step (``--max-norm 1.0``, for every method they run); we do not clip.

Calling it: ``info = famo.backward(losses)``; ``optimizer.step()``; then, with the losses of the
same batch recomputed under ``torch.no_grad()``, ``famo.update(new_losses)``. The trainer does
this through the :meth:`after_step` hook (an alias of :meth:`update`). ``ξ`` and Adam's moments
are buffers (not learned by the model optimizer) and resume exactly from ``state_dict``.

That recomputation is one extra forward pass per step (about a third of a step of a small
convolutional model on CPU). ``update_on="next_batch"`` is a cheaper variant that is *not* in
the paper: ``ℓ⁺`` is taken from the next step's forward pass, which runs anyway, so ``δ`` compares
batch ``t`` at ``θ_t`` with batch ``t+1`` at ``θ_{t+1}``. The logits are updated at the start of
the next :meth:`backward`, before its weights are computed: the same order as the paper's, only
the batch of ``ℓ⁺`` differs, which adds batch-to-batch noise to ``δ``. No extra forward pass,
no hook: ``after_step`` is not needed (:attr:`wants_after_step` is False).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from manytask.errors import ConfigError
from manytask.tasks import Task
from manytask.weighting import _validate
from manytask.weighting.base import LossWeighting, register

_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


@register
class FAMO(LossWeighting):
    """FAMO: weights ``c z_k / ℓ_k`` from logits ``ξ`` learned by the change of the log losses.

    Args:
        tasks: the tasks in loss order.
        beta: learning rate of the logits ``ξ`` (default 0.025).
        gamma: weight decay of ``ξ`` (default 1e-3).
        eps: added to every loss before the log (default 1e-8).
        min_losses: lower bounds ``L_k*`` of the losses (default all 0).
        xi_optimizer: ``"adam"`` (authors' code, default) or ``"sgd"`` (Algorithm 1).
        update_on: ``"same_batch"`` (the paper; needs the :meth:`after_step` forward pass, default)
            or ``"next_batch"`` (no extra forward pass; see the module docstring).
    """

    name = "famo"
    display_name = "FAMO"
    min_losses: Tensor
    xi: Tensor
    exp_avg: Tensor
    exp_avg_sq: Tensor
    steps: Tensor
    prev_losses: Tensor
    has_prev: Tensor

    def __init__(self, tasks: Sequence[Task], beta: float = 0.025, gamma: float = 1e-3, eps: float = 1e-8,
                 min_losses: Sequence[float] | None = None, xi_optimizer: str = "adam",
                 update_on: str = "same_batch") -> None:
        super().__init__(tasks)
        self.beta = _validate.number(self.name, "beta", beta, low=0.0)
        self.gamma = _validate.number(self.name, "gamma", gamma, low=0.0, low_inclusive=True)
        self.eps = _validate.number(self.name, "eps", eps, low=0.0)
        self.xi_optimizer = _validate.choice(self.name, "xi_optimizer", xi_optimizer, ("adam", "sgd"))
        self.update_on = _validate.choice(self.name, "update_on", update_on, ("same_batch", "next_batch"))
        lows = [0.0] * self.k if min_losses is None else list(min_losses)
        if len(lows) != self.k:
            raise ConfigError(f"weighting 'famo': min_losses needs {self.k} values (one per task), got {len(lows)}")
        lows = [_validate.number(self.name, f"min_losses[{i}]", v) for i, v in enumerate(lows)]
        self.register_buffer("min_losses", torch.tensor(lows, dtype=torch.float64))
        self.register_buffer("xi", torch.zeros(self.k, dtype=torch.float64))
        self.register_buffer("exp_avg", torch.zeros(self.k, dtype=torch.float64))
        self.register_buffer("exp_avg_sq", torch.zeros(self.k, dtype=torch.float64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("prev_losses", torch.zeros(self.k, dtype=torch.float64))
        self.register_buffer("has_prev", torch.zeros((), dtype=torch.bool))

    def _shifted(self, losses: Tensor) -> Tensor:
        return losses.detach().to(device=self.xi.device, dtype=torch.float64) - self.min_losses + self.eps

    @property
    def wants_after_step(self) -> bool:
        return self.update_on == "same_batch"

    def weights(self, losses: Tensor) -> tuple[Tensor, Tensor | None]:
        ell = self._shifted(losses)
        if bool((ell <= 0).any()):
            bad = [n for n, v in zip(self.task_names, ell.tolist()) if v <= 0]
            raise ValueError(f"weighting 'famo': loss below its min_losses bound for task(s) {', '.join(bad)}")
        if self.update_on == "next_batch" and bool(self.has_prev):
            self._update_logits(ell)
        z = torch.softmax(self.xi, dim=0)
        c = 1.0 / (z / ell).sum()
        self.prev_losses.copy_(ell)
        self.has_prev.fill_(True)
        lam = c * z / ell
        return lam.to(dtype=losses.dtype, device=losses.device), None

    @torch.no_grad()
    def update(self, new_losses: Tensor) -> None:
        """Update ``ξ`` from the losses of the same batch after the optimizer step."""
        self.check_losses(new_losses)
        if self.update_on != "same_batch":
            raise ValueError("weighting 'famo': update() is for update_on='same_batch'; "
                             "with 'next_batch' the logits learn inside backward()")
        if not bool(self.has_prev):
            raise ValueError("weighting 'famo': update() needs a preceding backward() on the same batch")
        self._update_logits(self._shifted(new_losses))

    @torch.no_grad()
    def _update_logits(self, ell_after: Tensor) -> None:
        ell_new = ell_after.clamp_min(self.eps)
        delta = self.prev_losses.log() - ell_new.log()
        z = torch.softmax(self.xi, dim=0)
        grad = z * (delta - (z * delta).sum())  # J_softmax(ξ)^T δ (the Jacobian is symmetric)
        grad = grad + self.gamma * self.xi
        if self.xi_optimizer == "sgd":
            self.xi.sub_(self.beta * grad)
        else:
            b1, b2 = _ADAM_BETAS
            self.steps += 1
            t = int(self.steps)
            self.exp_avg.mul_(b1).add_(grad, alpha=1 - b1)
            self.exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            m_hat = self.exp_avg / (1 - b1**t)
            v_hat = self.exp_avg_sq / (1 - b2**t)
            self.xi.sub_(self.beta * m_hat / (v_hat.sqrt() + _ADAM_EPS))
        self.has_prev.fill_(False)

    def after_step(self, new_losses: Tensor) -> None:
        self.update(new_losses)
