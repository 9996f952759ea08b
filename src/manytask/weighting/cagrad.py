"""CAGrad: conflict-averse gradient descent (Liu, Liu, Jin, Stone & Liu, NeurIPS 2021).

With ``g_0 = (1/K) Σ_k g_k`` the average gradient and ``φ = c² ||g_0||²``, CAGrad moves along
the ``d`` that maximises the worst-case local improvement within a ball around ``g_0``. Its dual
over the simplex (their eq. 5 / the official algorithm)::

    w* = argmin_{w ∈ Δ_K}  g_wᵀ g_0 + √φ ||g_w||,      g_w = Σ_k w_k g_k
    d  = g_0 + (√φ / ||g_w*||) g_w*
    update = d / (1 + c²)                               (rescale = 1, their default)

``rescale = 0`` leaves ``d`` as is, ``rescale = 2`` divides by ``1 + c``. As in the official code
everything is computed from the Gram matrix ``M = G Gᵀ``, with ``||g_0|| = sqrt(mean(M) + 1e-8)``,
``√φ = c ||g_0|| + 1e-8`` and ``λ = √φ / (||g_w|| + 1e-8)``. The official code solves the dual
with scipy's SLSQP from ``w = 1/K``; SLSQP took seconds per step at K = 40 here, so we solve the
same convex problem by accelerated projected gradient on the simplex (:func:`solve_dual`),
which reaches the same or a lower objective. Default ``c = 0.5``.

Step scale (``scale``). The official code (Liu et al.'s CAGrad repository, and the same
function in Nash-MTL's and FAMO's method collections) multiplies the combined direction by K
before writing it into the shared gradients ("to match the sum loss"), so that with ``c = 0``
the shared update is ``Σ_k g_k``, the gradient of the plain sum of the losses (uniform
weighting), and a learning rate tuned for uniform means the same step size. ``scale="sum"``
(default) does the same; ``scale="mean"`` leaves the update on the average gradient's scale
(1/K of the official step; with ``c = 0`` it is the average gradient). Task-specific parameters
get their own loss gradients either way. ``StepInfo.weights`` is the coefficient vector
``K (1/K + λ w*_k) / rescale`` (``scale="sum"``; without the K for ``"mean"``) of the update in
terms of the task gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from manytask.errors import ConfigError
from manytask.tasks import Task
from manytask.weighting import _validate
from manytask.weighting.base import register
from manytask.weighting.gradients import GradientWeighting


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection onto the probability simplex (sort-based)."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    idx = np.arange(1, v.shape[0] + 1)
    cond = u - css / idx > 0
    r = idx[cond][-1]
    return np.maximum(v - css[cond][-1] / r, 0.0)


def solve_dual(m: np.ndarray, a: np.ndarray, sqrt_phi: float, max_iter: int = 1000) -> np.ndarray:
    """``argmin_{w ∈ Δ} wᵀa + √φ sqrt(wᵀ M w + 1e-8)`` by accelerated projected gradient.

    Nesterov momentum with backtracking on the step and a restart whenever the objective would
    rise; stops when a plain projected-gradient step no longer decreases the objective or moves
    ``w`` by less than 1e-12 (L1). The objective is convex; on random problems the result is at
    or below the value SLSQP reaches (the tests check this).
    """
    k = a.shape[0]

    def value(w: np.ndarray) -> float:
        return float(w @ a + sqrt_phi * np.sqrt(max(float(w @ m @ w), 0.0) + 1e-8))

    def grad(w: np.ndarray) -> np.ndarray:
        mw = m @ w
        return a + sqrt_phi * mw / np.sqrt(max(float(w @ mw), 0.0) + 1e-8)

    scale = max(float(np.max(np.abs(np.diag(m)))), 1e-300)
    w = np.full(k, 1.0 / k)
    y = w.copy()
    fw = value(w)
    t = 1.0
    lip = max(sqrt_phi * scale * k / np.sqrt(max(float(w @ m @ w), 0.0) + 1e-8), 1e-12)
    for _ in range(max_iter):
        g = grad(y)
        fy = value(y)
        while True:
            w_new = project_to_simplex(y - g / lip)
            d = w_new - y
            f_new = value(w_new)
            if f_new <= fy + float(g @ d) + 0.5 * lip * float(d @ d) + 1e-14 * scale or lip > 1e300:
                break
            lip *= 2.0
        if f_new >= fw:
            if t == 1.0:  # a plain step from w does not descend: converged
                break
            y, t = w.copy(), 1.0  # restart the momentum
            continue
        step = float(np.abs(w_new - w).sum())
        t_new = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        y = w_new + ((t - 1.0) / t_new) * (w_new - w)
        w, fw, t = w_new, f_new, t_new
        lip *= 0.95
        if step < 1e-12:
            break
    return w


def cagrad_coefficients(gram: Tensor, c: float, rescale: int = 1, scale: str = "mean") -> Tensor:
    """Coefficients ``a`` (k,) with ``update = Σ_k a_k g_k`` (see the module docstring);
    ``scale="sum"`` multiplies them by K (the official code's step)."""
    m = gram.detach().to(torch.float64).cpu().numpy()
    k = m.shape[0]
    b = np.full(k, 1.0 / k)
    g0_norm = float(np.sqrt(max(float(m.mean()), 0.0) + 1e-8))
    sqrt_phi = c * g0_norm + 1e-8
    if c > 0 and k > 1:
        w = solve_dual(m, m @ b, sqrt_phi)
        gw_norm = float(np.sqrt(max(float(w @ m @ w), 0.0)))
        coef = b + (sqrt_phi / (gw_norm + 1e-8)) * w
    else:
        coef = b.copy()
    if rescale == 1:
        coef = coef / (1.0 + c**2)
    elif rescale == 2:
        coef = coef / (1.0 + c)
    if scale == "sum":
        coef = coef * k
    return torch.from_numpy(coef)


@register
class CAGrad(GradientWeighting):
    """Average gradient plus the conflict-averse correction, solved in the dual over the simplex.

    Args:
        tasks: the tasks in loss order.
        c: radius factor ``c >= 0`` of the trust region around the average gradient (default 0.5).
        rescale: 0, 1 (default: divide by ``1 + c²``) or 2 (divide by ``1 + c``).
        scale: ``"sum"`` (default: K times the combined direction, as the official code, so
            ``c = 0`` is uniform's update) or ``"mean"`` (the average-gradient scale).
        engine: per-task gradient path, ``"auto"``, ``"batched"`` or ``"loop"``.
    """

    name = "cagrad"
    display_name = "CAGrad"
    wrt = "params"

    def __init__(self, tasks: Sequence[Task], c: float = 0.5, rescale: int = 1, scale: str = "sum",
                 engine: str = "auto") -> None:
        super().__init__(tasks, engine=engine)
        self.c = _validate.number(self.name, "c", c, low=0.0, low_inclusive=True)
        if isinstance(rescale, bool) or rescale not in (0, 1, 2):
            raise ConfigError(f"weighting 'cagrad': rescale must be 0, 1 or 2, got {rescale!r}")
        self.rescale = int(rescale)
        self.scale = _validate.choice(self.name, "scale", scale, ("sum", "mean"))

    def coefficients(self, gram: Tensor, losses: Tensor) -> Tensor:
        return cagrad_coefficients(gram, self.c, self.rescale, self.scale)
