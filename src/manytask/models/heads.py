"""Task heads: two fully connected layers per task (Gong et al. 2019, II.C)."""

from __future__ import annotations

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
