"""Pixel normalisation shared by the ``arrays`` and ``images`` sources (not a source itself).

Images are held as uint8 and turned into float32 batch by batch by a
:class:`~manytask.data.batch.ChannelAffine`; ``normalize`` chooses its numbers:

* ``none`` — pixels / 255, in [0, 1];
* ``train`` — then ``(x - mean_c) / std_c`` with each channel's mean and standard deviation
  over the training images kept (validation and test never contribute);
* ``{mean: ..., std: ...}`` — fixed numbers on the [0, 1] scale, one for all channels or one
  per channel (e.g. ``{mean: 0.1410, std: 0.3208}``, MultiMNIST's constants).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from manytask.data.batch import ChannelAffine
from manytask.errors import ConfigError

__all__ = [
    "FixedNormalization",
    "Normalize",
    "channel_mean_std",
    "check_image_size",
    "parse_normalize",
    "pixel_transform",
]


class FixedNormalization(BaseModel):
    """``(x - mean) / std`` with given numbers (x on the [0, 1] scale)."""

    model_config = ConfigDict(extra="forbid")

    mean: float | list[float]
    std: float | list[float]

    @field_validator("mean", "std")
    @classmethod
    def _finite(cls, v: float | list[float], info: object) -> float | list[float]:
        values = v if isinstance(v, list) else [v]
        name = getattr(info, "field_name", "value")
        if not values:
            raise ValueError(f"{name}: expected a number or a list of numbers")
        if not all(math.isfinite(x) for x in values):
            raise ValueError(f"{name}: values must be finite, got {v}")
        if name == "std" and not all(x > 0 for x in values):
            raise ValueError(f"std: values must be > 0, got {v}")
        return v

    def per_channel(self, channels: int, where: str) -> tuple[list[float], list[float]]:
        out = []
        for name, v in (("mean", self.mean), ("std", self.std)):
            values = v if isinstance(v, list) else [v]
            if len(values) not in (1, channels):
                raise ConfigError(f"{where}.normalize.{name}: {len(values)} values for {channels} channels")
            out.append(values * channels if len(values) == 1 else list(values))
        return out[0], out[1]


Normalize = Literal["train", "none"] | FixedNormalization


def check_image_size(value: tuple[int, int] | None) -> tuple[int, int] | None:
    """An image size ``[height, width]`` setting (None = keep the files' size), each >= 1."""
    if value is not None and (value[0] < 1 or value[1] < 1):
        raise ValueError(f"expected [height, width] >= 1, got {list(value)}")
    return value


def parse_normalize(value: Any) -> Any:
    """A ``normalize`` setting checked with one plain message (for a ``mode="before"``
    field validator): ``train``, ``none`` or a mapping ``{mean, std}``."""
    if isinstance(value, (str, FixedNormalization)):
        if isinstance(value, str) and value not in ("train", "none"):
            raise ValueError(f"expected train, none or {{mean: ..., std: ...}}, got {value!r}")
        return value
    if not isinstance(value, dict):
        # a ValueError (not TypeError): pydantic reports it as this field's validation error
        raise ValueError(f"expected train, none or {{mean: ..., std: ...}}, got {value!r}")  # noqa: TRY004
    try:
        return FixedNormalization.model_validate(value)
    except ValidationError as err:
        e = err.errors()[0]
        where = ".".join(str(p) for p in e["loc"])
        msg = {"missing": "field required", "extra_forbidden": "unknown field"}.get(
            e["type"], e["msg"].removeprefix("Value error, "))
        raise ValueError(msg if msg.startswith(f"{where}:") else f"{where}: {msg}") from None


def channel_mean_std(images: torch.Tensor, rows: np.ndarray, max_value: float = 255.0,
                     chunk: int = 2048) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) standard deviation of ``images[rows] / max_value``.

    ``images`` is ``(N, C, ...)`` (channel = dimension 1); the sums are accumulated in
    float64 over chunks of rows. A channel with zero spread gets a standard deviation of 1.
    """
    c = int(images.shape[1])
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    idx = torch.from_numpy(np.asarray(rows, dtype=np.int64))
    for start in range(0, idx.numel(), chunk):
        part = images[idx[start : start + chunk]].to(torch.float64).transpose(0, 1).reshape(c, -1)
        total += part.sum(dim=1)
        squares += (part * part).sum(dim=1)
    count = idx.numel() * (images[0].numel() // c) if idx.numel() else 1
    mean = total / count
    var = (squares / count - mean * mean).clamp_min(0.0)
    std = torch.where(var > 0, var.sqrt() / max_value, torch.ones_like(var))
    return (mean / max_value).tolist(), std.tolist()


def pixel_transform(normalize: Normalize, images: torch.Tensor, train_rows: np.ndarray, *,
                    max_value: float = 255.0, where: str = "data") -> ChannelAffine:
    """The batch transform of uint8 ``images`` (``(N, C, H, W)`` per channel, else one
    channel for all values) for the ``normalize`` setting; ``max_value`` maps to 1."""
    if normalize == "none":
        return ChannelAffine((1.0 / max_value,), (0.0,))
    per_channel = images.dim() == 4
    channels = int(images.shape[1]) if per_channel else 1
    if normalize == "train":
        flat = images if per_channel else images.reshape(images.shape[0], 1, -1)
        mean, std = channel_mean_std(flat, train_rows, max_value=max_value)
    elif isinstance(normalize, FixedNormalization):
        mean, std = normalize.per_channel(channels, where)
    else:  # pragma: no cover - the config model admits nothing else
        raise ConfigError(f"{where}.normalize: unknown setting {normalize!r}")
    return ChannelAffine.from_mean_std(mean, std, max_value=max_value)
