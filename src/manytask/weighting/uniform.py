"""Uniform weighting: the plain sum of the task losses, ``L = sum_k L_k`` (weights all 1)."""

from __future__ import annotations

import torch
from torch import Tensor

from manytask.weighting.base import LossWeighting, register


@register
class Uniform(LossWeighting):
    """``L = sum_k L_k``; the baseline every other method is compared with."""

    name = "uniform"
    display_name = "Vanilla MTL (uniform)"

    def weights(self, losses: Tensor) -> tuple[Tensor, Tensor | None]:
        return torch.ones_like(losses), None
