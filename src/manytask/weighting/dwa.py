"""Dynamic Weight Average (Liu, Johns & Davison, "End-to-end multi-task learning with
attention", CVPR 2019, eq. 7).

With ``L_k(t)`` the mean training loss of task k over epoch t::

    w_k(t-1) = L_k(t-1) / L_k(t-2)
    λ_k(t)   = K exp(w_k(t-1) / T) / Σ_i exp(w_i(t-1) / T)

``T = 2`` by default; ``λ_k(t) = 1`` for the first two epochs (no two past epochs to compare).
The weights are constant within an epoch; the trainer (or your own loop) calls
:meth:`DWA.on_epoch_end` with the epoch-mean losses after each epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from manytask.tasks import Task
from manytask.weighting import _validate
from manytask.weighting.base import LossWeighting, register


@register
class DWA(LossWeighting):
    """``λ = K softmax(w / T)`` with ``w_k`` the ratio of the last two epoch-mean losses.

    Args:
        tasks: the tasks in loss order.
        temperature: ``T > 0`` (default 2.0, the paper's value).

    State (buffers, resumed exactly): the last two epoch-mean losses, the number of epochs
    seen, and the current weights.
    """

    name = "dwa"
    display_name = "DWA"
    history: Tensor
    epochs_seen: Tensor
    lambdas: Tensor

    def __init__(self, tasks: Sequence[Task], temperature: float = 2.0) -> None:
        super().__init__(tasks)
        self.temperature = _validate.number(self.name, "temperature", temperature, low=0.0)
        self.register_buffer("history", torch.zeros(2, self.k, dtype=torch.float64))  # [t-2, t-1]
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("lambdas", torch.ones(self.k, dtype=torch.float64))

    def weights(self, losses: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.lambdas.to(dtype=losses.dtype, device=losses.device), None

    @staticmethod
    def formula(prev2: Tensor, prev1: Tensor, temperature: float) -> Tensor:
        """``K softmax((L(t-1)/L(t-2)) / T)``; a ratio with ``L(t-2) = 0`` (no labels) counts as 1."""
        ratio = torch.where(prev2 > 0, prev1 / prev2.clamp_min(torch.finfo(prev2.dtype).tiny), torch.ones_like(prev1))
        return ratio.numel() * torch.softmax(ratio / temperature, dim=0)

    def on_epoch_end(self, epoch_mean_losses: Tensor) -> None:
        self.check_losses(epoch_mean_losses)
        cur = epoch_mean_losses.detach().to(device=self.history.device, dtype=torch.float64)
        self.history[0] = self.history[1]
        self.history[1] = cur
        self.epochs_seen += 1
        if int(self.epochs_seen) >= 2:
            self.lambdas.copy_(self.formula(self.history[0], self.history[1], self.temperature))
