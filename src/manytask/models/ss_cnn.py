"""The MNIST network of Strezoski et al. 2019 (Selective Sharing, section 4.2) as a trunk.

conv(c→20, 5×5) → batch norm → ReLU → max pool 2 → conv(20→40, 5×5) → batch norm → ReLU →
max pool 2 → flatten (640 values for 28×28 inputs) → FC(→ ``features``, 640 in the paper) → ReLU.
The last FC layer is the hard-shared representation; the task branches (100 → 50 units) and the
output units are built by :func:`manytask.models.branches.branched_model`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from manytask.errors import ConfigError
from manytask.models.registry import TrunkSpec, register_trunk


class SelectiveSharingCNN(nn.Module):
    """Two batch-normalised 5×5 convolutions with max pooling, then one shared FC layer."""

    def __init__(self, in_channels: int = 1, image_size: int = 28, width: float = 1.0,
                 out_features: int = 640) -> None:
        super().__init__()
        if image_size < 16:
            raise ConfigError(f"model.trunk ss_cnn needs images of at least 16×16 pixels, got {image_size}")
        c1, c2 = max(1, round(20 * width)), max(1, round(40 * width))
        side = ((image_size - 4) // 2 - 4) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.out_features = max(1, round(out_features * width))
        self.fc = nn.Linear(c2 * side * side, self.out_features)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.fc(self.features(x).flatten(1)))

    def last_layer(self) -> list[nn.Parameter]:
        return list(self.fc.parameters())


@register_trunk("ss_cnn")
def build_ss_cnn(shape: Sequence[int], spec: TrunkSpec) -> nn.Module:
    """Images ``(C, H, W)`` (or ``(H, W)``); ``model.features`` is the shared FC width."""
    if len(shape) not in (2, 3) or shape[-1] != shape[-2]:
        raise ConfigError(f"model.trunk ss_cnn needs square images (C, H, W), got input shape {tuple(shape)}")
    channels = 1 if len(shape) == 2 else int(shape[0])
    return SelectiveSharingCNN(channels, int(shape[-1]), spec.width, spec.features)
