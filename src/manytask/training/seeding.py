"""Seeds, deterministic mode and device choice."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from manytask.errors import ConfigError


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch; in deterministic mode ask torch for deterministic kernels.

    Returns a CPU generator for data shuffling, seeded from ``seed``.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; otherwise the named device (checked)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"training.device: unknown device '{device}'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"training.device: '{device}' requested but CUDA is not available")
    return dev
