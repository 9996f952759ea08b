"""IMTL-G: the gradient part of Impartial Multi-Task Learning (Liu et al., ICLR 2021).

IMTL-G finds the combination ``g = Σ_k α_k g_k`` with ``Σ_k α_k = 1`` whose projections onto
every task's unit gradient ``u_k = g_k / ||g_k||`` are equal (``g·u_1 = g·u_k`` for all k), so no
task is favoured in the shared update. In closed form (their eq. for α, task 1 the reference)::

    D = [g_1 - g_2, …, g_1 - g_K]ᵀ,   U = [u_1 - u_2, …, u_1 - u_K]ᵀ
    α_{2:K} = g_1 Uᵀ (D Uᵀ)^{-1},     α_1 = 1 - Σ_{k≥2} α_k

Everything is an inner product of task gradients, so it is computed from the Gram matrix
(a pseudo-inverse is used if ``D Uᵀ`` is singular, e.g. for identical gradients). The paper
applies IMTL-G to the gradients w.r.t. the shared representation for efficiency (``on="features"``,
default); ``on="params"`` uses the shared parameters. Task-specific parameters follow their own
loss gradient. IMTL-L (learned loss scales) and the hybrid are not provided.
``StepInfo.weights`` is α.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from manytask.tasks import Task
from manytask.weighting import _validate
from manytask.weighting.base import register
from manytask.weighting.gradients import GradientWeighting


def imtl_g_weights(gram: Tensor) -> Tensor:
    """α (k,) of IMTL-G from the Gram matrix of the task gradients (float64)."""
    m = gram.detach().to(torch.float64).cpu()
    k = m.shape[0]
    if k == 1:
        return torch.ones(1, dtype=torch.float64)
    norms = m.diagonal().clamp_min(0.0).sqrt()
    norms = torch.where(norms > 0, norms, torch.ones_like(norms))
    gu = m / norms[None, :]  # gu[i, j] = g_i · u_j
    rest = torch.arange(1, k)
    # (D Uᵀ)[a, b] = (g_1 - g_a)·(u_1 - u_b);  (g_1 Uᵀ)[b] = g_1·(u_1 - u_b)
    du = gu[0, 0] - gu[0, rest][None, :] - gu[rest, 0][:, None] + gu[rest][:, rest]
    g1u = gu[0, 0] - gu[0, rest]
    alpha_rest = torch.linalg.pinv(du.T) @ g1u  # solves α Dᵀ... i.e. α_rest (D Uᵀ) = g_1 Uᵀ
    return torch.cat([1.0 - alpha_rest.sum().reshape(1), alpha_rest])


@register
class IMTLG(GradientWeighting):
    """Equal projection of the shared update onto every task's unit gradient (IMTL-G).

    Args:
        tasks: the tasks in loss order.
        on: ``"features"`` (default, the shared representation) or ``"params"``.
        engine: per-task gradient path, ``"auto"``, ``"batched"`` or ``"loop"``.
    """

    name = "imtl_g"
    display_name = "IMTL-G"
    wrt = "features"

    def __init__(self, tasks: Sequence[Task], on: str = "features", engine: str = "auto") -> None:
        super().__init__(tasks, engine=engine)
        self.wrt = _validate.choice(self.name, "on", on, ("features", "params"))  # type: ignore[misc]

    def coefficients(self, gram: Tensor, losses: Tensor) -> Tensor:
        return imtl_g_weights(gram)
