"""Measured inference cost: multiply-adds per example, counted by running the module once.

Standley et al. (2020) express every candidate network's cost in units of a standard network's
multiply-adds (SNT). :func:`multiply_adds` counts the multiply-adds of every ``Conv`` and
``Linear`` layer for one example by forward hooks, so a width multiplier's effect is measured,
not assumed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def multiply_adds(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward pass of ``module`` on one example of ``input_shape``
    (without the batch dimension). Counts Conv1d/2d/3d and Linear layers."""
    total = 0

    def conv_hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(m, nn.modules.conv._ConvNd)
        k = int(torch.tensor(m.kernel_size).prod())
        total += int(out[0].numel()) * (m.in_channels // m.groups) * k

    def linear_hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(m, nn.Linear)
        total += int(out[0].numel()) * m.in_features

    handles = []
    for sub in module.modules():
        if isinstance(sub, nn.modules.conv._ConvNd):
            handles.append(sub.register_forward_hook(conv_hook))
        elif isinstance(sub, nn.Linear):
            handles.append(sub.register_forward_hook(linear_hook))
    was_training = module.training
    module.eval()
    try:
        p = next(module.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
        with torch.no_grad():
            module(torch.zeros(1, *input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    return total
