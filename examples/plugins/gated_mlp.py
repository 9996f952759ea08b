"""A trunk written outside the package: an MLP whose hidden units are gated (GLU-style).

Each layer computes ``a ⊙ σ(b)`` from two linear maps of its input. Registered as
``gated_mlp`` when imported (``plugins: [gated_mlp]`` in a config), and usable without
registration through the import path ``model: {trunk: "gated_mlp:build"}``. This file is the
whole plug-in: nothing in the package changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from manytask.models.registry import TrunkSpec, register_trunk


class GatedMLP(nn.Module):
    """Flattened inputs → gated layers of ``hidden`` units (scaled by ``width``)."""

    def __init__(self, in_features: int, hidden: Sequence[int], width: float = 1.0) -> None:
        super().__init__()
        sizes = [max(1, round(h * width)) for h in hidden]
        self.layers = nn.ModuleList()
        prev = in_features
        for h in sizes:
            self.layers.append(nn.Linear(prev, 2 * h))
            prev = h
        self.out_features = prev

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        for layer in self.layers:
            a, b = layer(x).chunk(2, dim=1)
            x = a * torch.sigmoid(b)
        return x

    def last_layer(self) -> list[nn.Parameter]:
        return list(self.layers[-1].parameters())


@register_trunk("gated_mlp")
def build(shape: Sequence[int], spec: TrunkSpec) -> nn.Module:
    spec.take_options()
    return GatedMLP(int(torch.tensor(shape).prod()), spec.hidden, spec.width)
