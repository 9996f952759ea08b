"""Random Loss Weighting (Lin et al., "Reasonable effectiveness of random weighting: a litmus
test for multi-task learning", TMLR 2022; arXiv:2111.10603, 2021).

Each step draws fresh weights from a standard normal and normalises them with a softmax::

    λ̃ ~ N(0, I_K),   λ = K · softmax(λ̃),   L = Σ_k λ_k L_k

The paper normalises to ``Σ λ = 1``; we multiply by K so that the weights sum to K like the
uniform baseline (``E[λ_k] = 1``), which keeps learning rates comparable across methods. The
draws come from the method's own generator (``seed``), whose state is saved in ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from manytask.tasks import Task
from manytask.weighting._rng import RandomState
from manytask.weighting.base import LossWeighting, register


@register
class RLW(LossWeighting):
    """``λ = K softmax(ε)``, ``ε ~ N(0, I)`` drawn every step.

    Args:
        tasks: the tasks in loss order.
        seed: seed of the method's generator (None: drawn from torch's global generator).
    """

    name = "rlw"
    display_name = "RLW"

    def __init__(self, tasks: Sequence[Task], seed: int | None = None) -> None:
        super().__init__(tasks)
        self.rng = RandomState(self.name, seed)

    def weights(self, losses: Tensor) -> tuple[Tensor, Tensor | None]:
        eps = torch.randn(self.k, generator=self.rng.generator, dtype=torch.float64)
        lam = self.k * torch.softmax(eps, dim=0)
        return lam.to(dtype=losses.dtype, device=losses.device), None
