"""Shared trunks: the LeNet used for MultiMNIST (Gong et al. 2019, II.C) and an MLP.

Every trunk takes a ``width`` multiplier that scales the channels / hidden units of every
layer (Standley et al. 2020 build their half-size and fractional networks this way) and
exposes ``out_features`` (size of the shared representation) and ``last_layer()`` (the
parameters of its last layer, GradNorm's W).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor, nn

from manytask.errors import ConfigError
from manytask.models.registry import TrunkSpec, register_trunk


def _scaled(n: int, width: float) -> int:
    return max(1, int(round(n * width)))


class LeNetTrunk(nn.Module):
    """LeNet trunk as in the MultiMNIST experiments of Sener & Koltun and Gong et al.

    conv(c→10, 5×5) → maxpool 2 → ReLU → conv(10→20, 5×5) → maxpool 2 → ReLU → flatten
    → FC(→ ``out_features``, default 50) → ReLU. All layers but the last two of LeNet are
    shared; the two FC layers of each task's head complete the network.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 36, width: float = 1.0,
                 out_features: int = 50) -> None:
        super().__init__()
        if width <= 0:
            raise ConfigError(f"model.width must be > 0, got {width}")
        if image_size < 12:
            raise ConfigError(f"LeNet needs images of at least 12×12 pixels, got {image_size}")
        c1, c2 = _scaled(10, width), _scaled(20, width)
        self.out_features = _scaled(out_features, width)
        self.conv1 = nn.Conv2d(in_channels, c1, kernel_size=5)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=5)
        side = ((image_size - 4) // 2 - 4) // 2
        self.fc = nn.Linear(c2 * side * side, self.out_features)
        self.pool = nn.MaxPool2d(2)
        self.act = nn.ReLU()
        self.image_size = image_size
        self.in_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.pool(self.conv1(x)))
        x = self.act(self.pool(self.conv2(x)))
        return self.act(self.fc(x.flatten(1)))

    def last_layer(self) -> list[nn.Parameter]:
        return list(self.fc.parameters())


class MLPTrunk(nn.Module):
    """Fully connected trunk: Linear → ReLU (→ Dropout) per hidden layer."""

    def __init__(self, in_features: int, hidden: Sequence[int] = (256, 128), width: float = 1.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if width <= 0:
            raise ConfigError(f"model.width must be > 0, got {width}")
        if not hidden:
            raise ConfigError("model.hidden must list at least one layer size")
        layers: list[nn.Module] = []
        prev = in_features
        self._linears: list[nn.Linear] = []
        for h in hidden:
            lin = nn.Linear(prev, _scaled(h, width))
            self._linears.append(lin)
            layers += [lin, nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = lin.out_features
        self.net = nn.Sequential(*layers)
        self.out_features = prev
        self.in_features = in_features

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))

    def last_layer(self) -> list[nn.Parameter]:
        return list(self._linears[-1].parameters())


@register_trunk("lenet")
def build_lenet(shape: Sequence[int], spec: TrunkSpec) -> nn.Module:
    """LeNet for square images (Gong et al.'s MultiMNIST trunk); model.features units out."""
    spec.take_options()
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"model.trunk: lenet needs square image inputs (C, H, W), the data has shape {tuple(shape)}")
    return LeNetTrunk(in_channels=shape[0], image_size=shape[1], width=spec.width, out_features=spec.features)


@register_trunk("mlp")
def build_mlp(shape: Sequence[int], spec: TrunkSpec) -> nn.Module:
    """Fully connected layers (model.hidden, model.dropout) over the flattened inputs."""
    spec.take_options()
    return MLPTrunk(int(np.prod(shape)), hidden=spec.hidden, width=spec.width, dropout=spec.dropout)
