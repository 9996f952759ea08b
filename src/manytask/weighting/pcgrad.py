"""PCGrad: projecting conflicting gradients (Yu et al., "Gradient surgery for multi-task
learning", NeurIPS 2020, Algorithm 1).

For every task i, in a fresh random order of the other tasks j (drawn every step)::

    g_i^PC ← g_i
    for j in shuffled(tasks \\ {i}):
        if g_i^PC · g_j < 0:  g_i^PC ← g_i^PC - (g_i^PC · g_j) / ||g_j||² · g_j
    shared update: Σ_i g_i^PC                       (the paper's sum; no averaging)

The projections are linear in the original gradients, so we run them on the k × k Gram matrix
and keep the coefficients ``C`` with ``g_i^PC = Σ_j C_ij g_j``; the update is
``Σ_j (Σ_i C_ij) g_j`` (``StepInfo.weights`` = the column sums of ``C``). Gradients are w.r.t.
the shared parameters; task-specific parameters follow their own loss gradient. The random
orders come from the method's own generator (``seed``), saved in ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from manytask.tasks import Task
from manytask.weighting._rng import RandomState
from manytask.weighting.base import register
from manytask.weighting.gradients import GradientWeighting


def pcgrad_coefficients(gram: Tensor, orders: Tensor) -> Tensor:
    """``C`` (k, k) with ``g_i^PC = Σ_j C_ij g_j``; ``orders[i]`` lists the k-1 other tasks of task i."""
    m = gram.to(torch.float64)
    k = m.shape[0]
    coef = torch.eye(k, dtype=torch.float64)
    rows = torch.arange(k)
    diag = m.diagonal()
    for s in range(k - 1):
        js = orders[:, s]
        dots = (coef * m[:, js].T).sum(dim=1)  # g_i^PC · g_{j_i}
        sq = diag[js]
        step = torch.where((dots < 0) & (sq > 0), dots / torch.where(sq > 0, sq, torch.ones_like(sq)), torch.zeros_like(dots))
        coef[rows, js] -= step
    return coef


@register
class PCGrad(GradientWeighting):
    """Sum of the per-task gradients after projecting away pairwise conflicts (random order).

    Args:
        tasks: the tasks in loss order.
        seed: seed of the method's generator for the task orders (None: from torch's global one).
        engine: per-task gradient path, ``"auto"``, ``"batched"`` or ``"loop"``.
    """

    name = "pcgrad"
    display_name = "PCGrad"
    wrt = "params"

    def __init__(self, tasks: Sequence[Task], seed: int | None = None, engine: str = "auto") -> None:
        super().__init__(tasks, engine=engine)
        self.rng = RandomState(self.name, seed)

    def random_orders(self) -> Tensor:
        """(k, k-1): for each task a random permutation of the other tasks."""
        keys = torch.rand(self.k, self.k, generator=self.rng.generator, dtype=torch.float64)
        keys.fill_diagonal_(2.0)  # the task itself sorts last and is dropped
        return torch.argsort(keys, dim=1)[:, : self.k - 1]

    def coefficients(self, gram: Tensor, losses: Tensor) -> Tensor:
        return pcgrad_coefficients(gram, self.random_orders()).sum(dim=0)
