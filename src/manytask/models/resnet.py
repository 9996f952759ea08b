"""A small residual CNN trunk for real images (ResNet-style; He et al. 2016).

stem: conv 3×3 (c → C₁) → BN → ReLU; then one stage per entry of ``channels``, each of
``blocks`` basic blocks (conv 3×3 → BN → ReLU → conv 3×3 → BN, plus the identity, or a 1×1
strided projection when the shape changes), every stage after the first halving the
resolution; global average pooling; FC (→ ``out_features``) → ReLU. All channel counts and
``out_features`` scale with ``width``. Defaults (16, 32, 64 channels, 2 blocks each) are the
CIFAR-style ResNet-14 size: about 0.18 M parameters at width 1.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from manytask.errors import ConfigError
from manytask.models.registry import TrunkSpec, register_trunk


def _scaled(n: int, width: float) -> int:
    return max(1, int(round(n * width)))


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and a residual connection."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act = nn.ReLU()
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(y)) + self.skip(x))


class ResNetTrunk(nn.Module):
    """Residual CNN over ``(C, H, W)`` images (module docstring)."""

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (16, 32, 64), blocks: int = 2,
                 width: float = 1.0, out_features: int = 64) -> None:
        super().__init__()
        if width <= 0:
            raise ConfigError(f"model.width must be > 0, got {width}")
        if not channels or any(int(c) < 1 for c in channels):
            raise ConfigError(f"model.options.channels: expected positive channel counts, got {list(channels)}")
        if blocks < 1:
            raise ConfigError(f"model.options.blocks must be >= 1, got {blocks}")
        widths = [_scaled(int(c), width) for c in channels]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers: list[nn.Module] = []
        prev = widths[0]
        for i, c in enumerate(widths):
            for b in range(blocks):
                layers.append(BasicBlock(prev, c, stride=2 if (i > 0 and b == 0) else 1))
                prev = c
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_features = _scaled(out_features, width)
        self.fc = nn.Linear(prev, self.out_features)
        self.act = nn.ReLU()
        self.in_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        x = self.stages(self.stem(x))
        return self.act(self.fc(self.pool(x).flatten(1)))

    def last_layer(self) -> list[nn.Parameter]:
        return list(self.fc.parameters())


@register_trunk("resnet")
def build_resnet(shape: Sequence[int], spec: TrunkSpec) -> nn.Module:
    """Residual CNN for real images; options channels (default [16, 32, 64]) and blocks (2).

    ``model.features`` units out."""
    if len(shape) != 3:
        raise ConfigError(f"model.trunk: resnet needs image inputs (C, H, W), the data has shape {tuple(shape)}")
    opts = spec.take_options(channels=[16, 32, 64], blocks=2)
    return ResNetTrunk(in_channels=shape[0], channels=opts["channels"], blocks=int(opts["blocks"]),
                       width=spec.width, out_features=spec.features)
