"""Task heads: two fully connected layers per task (Gong et al. 2019, II.C)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class TwoLayerHead(nn.Module):
    """FC(in → hidden) → ReLU → FC(hidden → out). Used for classification and regression;
    with a reconstruction task it is the two-FC decoder of Gong et al.'s heterogeneous setup."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 50) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, z: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(z)))


def batched_two_layer(heads: Sequence[TwoLayerHead], z: Tensor) -> Tensor:
    """All of ``heads`` (same shapes) on ``z`` as one batched operation: ``(k, N, out)``.

    The heads' weights are stacked (``(k, hidden, in)``, ``(k, out, hidden)``) and applied with
    two batched matrix products, so k heads cost a few kernels instead of k times four; the
    parameters stay the heads' own (gradients flow back through the stack). Equal to running the
    heads one by one up to floating-point rounding.
    """
    w1 = torch.stack([h.fc1.weight for h in heads])
    b1 = torch.stack([h.fc1.bias for h in heads])
    w2 = torch.stack([h.fc2.weight for h in heads])
    b2 = torch.stack([h.fc2.bias for h in heads])
    hidden = torch.relu(torch.einsum("ni,khi->knh", z, w1) + b1[:, None, :])
    return torch.baddbmm(b2[:, None, :], hidden, w2.transpose(1, 2))
