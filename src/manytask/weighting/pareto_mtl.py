"""Pareto MTL (Lin, Zhen, Li, Zhang & Kwong, "Pareto multi-task learning", NeurIPS 2019).

K preference vectors ``u_1 … u_K`` split the loss space into sub-regions; a run picks one,
``u = u_pref_index``, and looks for a Pareto-optimal point inside
``Ω = {L : (u_j - u)ᵀ L ≤ 0 for all j}``. With ``G_j(θ) = (u_j - u)ᵀ L(θ)`` (evaluated, as in the
authors' code, on ``L / ||L||``) and ``g_i = ∇_θ L_i`` the shared-parameter gradients:

* **Initial phase** (section 3.3): while some constraint is violated (``G_j ≥ 0``) and for at most
  ``init_epochs`` epochs, descend on the violated constraints only::

      β = argmin_{β ∈ Δ} || Σ_{j: G_j ≥ 0} β_j ∇G_j ||²,   ∇G_j = Σ_i (u_j - u)_i g_i

* **Main phase** (eq. 14-16): the sub-problem ``min_{d, a} a + ½||d||²`` s.t. ``g_iᵀ d ≤ a`` and
  ``∇G_jᵀ d ≤ a`` for the active ``j ∈ I_ε = {j : G_j ≥ -ε}`` has the dual "min-norm point of the
  convex hull of ``{g_i} ∪ {∇G_j : j ∈ I_ε}``"; ``d = -(Σ λ_i g_i + Σ β_j ∇G_j)``, i.e. the task
  coefficients ``c_i = λ_i + Σ_j β_j (u_j - u)_i``. We solve this dual exactly on the
  ``(k + |I_ε|)``-square Gram matrix ``A M Aᵀ`` (``M = G Gᵀ``, ``A = [I; (u_j - u)ᵀ]``) with the
  exact min-norm solver of MGDA (Wolfe's algorithm, :func:`~manytask.weighting.mgda.min_norm_weights`).

As in the authors' code, ``c`` is rescaled to ``Σ|c_i| = k`` (``normalize``; their 2 for two
tasks) so that the step does not vanish near Pareto stationarity. Shared parameters get
``Σ c_i g_i``; task-specific parameters their own loss gradient (the engine's convention).

Preference vectors (:func:`preference_vectors`): two tasks, ``(cos φ, sin φ)`` at K angles evenly
spread over [0, π/2] (K = 5 gives the paper's (1, 0), (0.92, 0.38), (0.71, 0.71), (0.38, 0.92),
(0, 1)); m > 2 tasks, the simplex lattice with ``n_prefs - 1`` divisions per edge (``n_prefs``
points on each edge, ``C(n_prefs + m - 2, m - 1)`` in all) scaled to unit length. Unlike the
authors' code (two tasks, CUDA), any number of tasks and any device.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from manytask.errors import ConfigError
from manytask.tasks import Task
from manytask.weighting import _validate
from manytask.weighting.base import SharedParts, StepInfo, register
from manytask.weighting.gradients import GradientWeighting
from manytask.weighting.mgda import min_norm_weights


def preference_vectors(n_tasks: int, n_prefs: int) -> Tensor:
    """``(P, n_tasks)`` unit preference vectors in the positive orthant (see the module docstring)."""
    if n_tasks == 2:
        phi = torch.linspace(0.0, math.pi / 2, n_prefs, dtype=torch.float64)
        u = torch.stack([phi.cos(), phi.sin()], dim=1)
        return torch.where(u.abs() < 1e-12, torch.zeros_like(u), u)
    h = n_prefs - 1
    points = [c for c in itertools.product(range(h + 1), repeat=n_tasks) if sum(c) == h]
    u = torch.tensor(sorted(points, reverse=True), dtype=torch.float64)
    return u / u.norm(dim=1, keepdim=True)


def constraint_values(prefs: Tensor, index: int, losses: Tensor) -> Tensor:
    """``G_j = (u_j - u)ᵀ L / ||L||`` for every preference vector j (0 for j = index)."""
    norm = losses.norm()
    direction = losses / norm if float(norm) > 0 else losses
    return (prefs - prefs[index]) @ direction


def pareto_mtl_coefficients(gram: Tensor, losses: Tensor, prefs: Tensor, index: int, eps: float = 0.0,
                            initial: bool = False) -> tuple[Tensor, int]:
    """Task coefficients ``c`` (k,) of the Pareto MTL direction and the number of active constraints.

    ``initial``: the initial-phase direction over the violated constraints (``c`` is all zero when
    none is violated: the point is feasible). Otherwise the main-phase dual (module docstring).
    """
    k = gram.shape[0]
    g = constraint_values(prefs, index, losses)
    others = torch.arange(prefs.shape[0]) != index
    active = others & (g >= 0.0 if initial else g >= -eps)
    rows = prefs[active] - prefs[index]
    if initial:
        if rows.shape[0] == 0:
            return torch.zeros(k, dtype=torch.float64), 0
        a = rows
    else:
        a = torch.cat([torch.eye(k, dtype=torch.float64), rows])
    lam = min_norm_weights(a @ gram @ a.T)
    return a.T @ lam, int(rows.shape[0])


@register
class ParetoMTL(GradientWeighting):
    """Pareto MTL in the sub-region of one preference vector.

    Args:
        tasks: the tasks in loss order.
        n_prefs: preference vectors (default 5; for m > 2 tasks, points per simplex edge).
        pref_index: which one this run uses (0 … P-1; default 0).
        eps: ε of the active set ``G_j ≥ -ε`` in the main phase (default 0, the authors' code).
        init_epochs: epochs at most for the initial phase (default 2, the authors' code; 0 skips it).
        normalize: rescale the coefficients to ``Σ|c| = k`` (default True, the authors' code).
        engine: per-task gradient path, ``"auto"``, ``"batched"`` or ``"loop"``.
    """

    name = "pareto_mtl"
    display_name = "Pareto MTL"
    wrt = "params"

    def __init__(self, tasks: Sequence[Task], n_prefs: int = 5, pref_index: int = 0, eps: float = 0.0,
                 init_epochs: int = 2, normalize: bool = True, engine: str = "auto") -> None:
        super().__init__(tasks, engine=engine)
        if self.k < 2:
            raise ConfigError(f"weighting '{self.name}': needs at least two tasks")
        self.n_prefs = _validate.integer(self.name, "n_prefs", n_prefs, low=2)
        self.register_buffer("prefs", preference_vectors(self.k, self.n_prefs))
        p = self.prefs.shape[0]
        if isinstance(pref_index, bool) or not isinstance(pref_index, int) or not 0 <= pref_index < p:
            raise ConfigError(f"weighting '{self.name}': pref_index must be an integer in 0..{p - 1}, got {pref_index!r}")
        self.pref_index = pref_index
        self.eps = _validate.number(self.name, "eps", eps, low=0.0, low_inclusive=True)
        self.init_epochs = _validate.integer(self.name, "init_epochs", init_epochs, low=0)
        if not isinstance(normalize, bool):
            raise ConfigError(f"weighting '{self.name}': normalize must be true or false, got {normalize!r}")
        self.normalize = normalize
        # [epochs seen, in the initial phase (1/0), active constraints of the last step]
        self.register_buffer("phase", torch.tensor([0, int(init_epochs > 0), 0], dtype=torch.long))

    @property
    def preference(self) -> list[float]:
        return [round(float(x), 4) for x in self.prefs[self.pref_index]]

    def coefficients(self, gram: Tensor, losses: Tensor) -> Tensor:
        prefs = self.prefs.detach().cpu()
        if bool(self.phase[1]):
            c, n_active = pareto_mtl_coefficients(gram, losses, prefs, self.pref_index, self.eps, initial=True)
            if n_active > 0:
                self.phase[2] = n_active
                return self._scale(c)
            self.phase[1] = 0  # feasible: the main phase starts with this step
        c, n_active = pareto_mtl_coefficients(gram, losses, prefs, self.pref_index, self.eps)
        self.phase[2] = n_active
        return self._scale(c)

    def _scale(self, c: Tensor) -> Tensor:
        total = float(c.abs().sum())
        return c * (self.k / total) if self.normalize and total > 0 else c

    def backward(self, losses: Tensor, shared: SharedParts | None = None) -> StepInfo:
        info = super().backward(losses, shared)
        info.extra = {"pareto/initial_phase": float(self.phase[1]), "pareto/active": float(self.phase[2])}
        return info

    def on_epoch_end(self, epoch_mean_losses: Tensor) -> None:
        self.phase[0] += 1
        if int(self.phase[0]) >= self.init_epochs:
            self.phase[1] = 0
