"""Pure tensor math of class-wise auxiliary weighting (Yim & Kim 2020): splitting losses by the
auxiliary class of each element, the finite-difference gradient (eq. 10) and the projected Adam
step (eq. 9). No state, no training: :mod:`manytask.weighting.classwise_aux` keeps the state."""

from __future__ import annotations

import torch
from torch import Tensor


def discretize(values: Tensor, inner_edges: Tensor) -> Tensor:
    """Bin index of every value: ``0`` below ``inner_edges[0]``, ``len(inner_edges)`` from the
    last edge on (``K - 1`` inner edges give ``K`` classes; a value on an edge goes up)."""
    return torch.bucketize(values.contiguous(), inner_edges.to(values.device, values.dtype), right=True)


def equal_width_edges(low: float, high: float, bins: int) -> Tensor:
    """The ``bins - 1`` inner edges of ``bins`` equal-width bins over ``[low, high]``."""
    return torch.linspace(low, high, bins + 1, dtype=torch.float64)[1:-1]


def class_sums(terms: Tensor, valid: Tensor, classes: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """``(Σ_{i: y_i = c} terms_i, #{i: y_i = c})`` over the valid entries, each ``(K,)``; all
    arguments are ``(N, P)`` (``classes`` is ignored where not valid)."""
    idx = torch.where(valid, classes, num_classes).reshape(-1)  # invalid entries go to a spare bin
    sums = torch.bincount(idx, weights=terms.reshape(-1), minlength=num_classes + 1)[:num_classes]
    counts = torch.bincount(idx, minlength=num_classes + 1)[:num_classes]
    return sums.double(), counts.double()


def main_class_sums(main_terms: Tensor, main_valid: Tensor, classes: Tensor, aux_valid: Tensor,
                    num_classes: int) -> tuple[Tensor, Tensor]:
    """``L_main^c`` as sums and counts: the main loss over the points whose auxiliary label is c.

    ``main_*`` are ``(N, Pm)``, ``classes``/``aux_valid`` ``(N, Pa)``. ``Pm == Pa``: point by
    point (a pixel's main loss goes to the class of the same pixel); ``Pa == 1``: every main
    element of a sample goes to the sample's class; ``Pm == 1`` (per-sample main loss, dense
    auxiliary labels): a sample's main loss counts for class c with the fraction of its labelled
    auxiliary elements that are of class c.
    """
    n, pm = main_terms.shape
    pa = classes.shape[1]
    if pm == pa or pa == 1:
        cls = classes.expand(n, pm)
        ok = main_valid & aux_valid.expand(n, pm)
        return class_sums(main_terms, ok, cls, num_classes)
    if pm == 1:
        onehot = torch.zeros(n, num_classes, dtype=torch.float64, device=classes.device)
        onehot.index_put_((torch.arange(n, device=classes.device).unsqueeze(1).expand(n, pa)[aux_valid], classes[aux_valid]),
                          torch.ones((), dtype=torch.float64, device=classes.device), accumulate=True)
        frac = onehot / onehot.sum(1, keepdim=True).clamp_min(1.0)
        w = main_valid[:, 0].double()
        return (main_terms[:, 0].double() * w) @ frac, w @ frac
    raise ValueError(f"main task has {pm} loss elements per sample and the auxiliary task {pa}: "
                     "they must match, or one of them must be 1")


def finite_difference_gradient(main_now: Tensor, main_prev: Tensor, main_first: Tensor,
                               aux_now: Tensor, aux_prev: Tensor, aux_first: Tensor,
                               aux_mean: Tensor, eps: float) -> Tensor:
    """Eq. (10)::

        g^c = [(L_main^c(t) - L_main^c(t-1)) / L_main^c(0) + ε]
              / [(L_aux^c(t) - L_aux^c(t-1)) / L_aux^c(0) + ε]  ×  (1/N) Σ_{i: y_i = c} D_aux(y_i, o_i)

    ``aux_*`` are the weighted class losses ``L_aux^c = w^c (1/N) Σ_{y_i=c} D`` (eq. 4),
    ``aux_mean`` the unweighted ``(1/N) Σ_{y_i=c} D`` (= ∂L_aux^c/∂w^c). A zero initial loss
    counts as the smallest positive number; a non-finite result (a zero denominator) gives 0.
    """
    tiny = torch.finfo(torch.float64).tiny
    rel_main = (main_now - main_prev) / main_first.clamp_min(tiny)
    rel_aux = (aux_now - aux_prev) / aux_first.clamp_min(tiny)
    g = (rel_main + eps) / (rel_aux + eps) * aux_mean
    return torch.where(torch.isfinite(g), g, torch.zeros_like(g))


def adam_relu_step(w: Tensor, g: Tensor, m: Tensor, v: Tensor, t: Tensor, alpha: float,
                   beta1: float, beta2: float, eps: float) -> None:
    """Eq. (9), in place on the classes given (all tensors ``(K,)``, ``t`` the per-class step count
    after this step)::

        m ← β₁ m + (1-β₁) g,   v ← β₂ v + (1-β₂) g²,   m̂ = m / (1-β₁ᵗ),   v̂ = v / (1-β₂ᵗ)
        w ← ReLU(w - α m̂ / (√v̂ + ε))
    """
    m.mul_(beta1).add_((1.0 - beta1) * g)
    v.mul_(beta2).add_((1.0 - beta2) * g * g)
    tf = t.to(torch.float64)
    m_hat = m / (1.0 - beta1**tf)
    v_hat = v / (1.0 - beta2**tf)
    w.sub_(alpha * m_hat / (v_hat.sqrt() + eps)).clamp_(min=0.0)
