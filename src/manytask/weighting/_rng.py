"""A private random generator for stochastic methods (RLW, PCGrad), saved in ``state_dict``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from manytask.errors import ConfigError


class RandomState(nn.Module):
    """Holds a CPU ``torch.Generator``; its state travels in ``state_dict()`` as extra state.

    Args:
        method: name of the owning method (for error messages).
        seed: an integer seed, or None to draw one from torch's global generator (so a run seeded
            with ``torch.manual_seed`` is reproducible).
    """

    def __init__(self, method: str, seed: int | None = None) -> None:
        super().__init__()
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"weighting '{method}': seed must be a non-negative integer or None, got {seed!r}")
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(seed)

    def get_extra_state(self) -> Any:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: Any) -> None:
        self.generator.set_state(state["generator"])
