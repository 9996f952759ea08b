"""The optimiser's parameter groups: the network's, and one for the weighting method's own
learnable parameters (uncertainty log-variances, GradNorm's loss weights, ...).

A method's parameters get their own ``lr``, ``momentum`` and ``weight_decay``. Each setting is
resolved in this order, the first one given wins:

1. what the user gives (``weighting.optimizer`` in a config, ``Trainer(weighting_optimizer=...)``);
2. the method's class default, :attr:`manytask.weighting.WeightingMethod.param_optimizer`;
3. the network's own value (``training.optimizer``).

The optimiser type is the network's (``sgd``, ``adam``, ``adamw``). ``momentum`` only exists for
SGD: with Adam/AdamW a class default momentum is ignored, and one given by the user is refused.
A method without learnable parameters adds no group, so its optimiser is exactly the network's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import nn

from manytask.errors import ConfigError

__all__ = ["GROUP_KEYS", "method_group_settings", "param_groups"]

#: the settings a method's parameter group may set
GROUP_KEYS: tuple[str, ...] = ("lr", "momentum", "weight_decay")


def _check(key: str, value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ConfigError(f"{where}.{key}: expected a number, got {value!r}")
    v = float(value)
    if key == "lr" and v <= 0:
        raise ConfigError(f"{where}.lr must be > 0, got {v:g}")
    if key == "momentum" and not 0 <= v < 1:
        raise ConfigError(f"{where}.momentum must be in [0, 1), got {v:g}")
    if key == "weight_decay" and v < 0:
        raise ConfigError(f"{where}.weight_decay must be >= 0, got {v:g}")
    return v


def _given(values: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """The entries of ``values`` that are set (not None); unknown keys refused."""
    out = {k: v for k, v in (values or {}).items() if v is not None}
    unknown = sorted(set(out) - set(GROUP_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)} (expected {', '.join(GROUP_KEYS)})")
    return out


def method_group_settings(spec: Any, method: nn.Module,
                          overrides: Mapping[str, Any] | None = None) -> dict[str, float]:
    """``lr``/``momentum``/``weight_decay`` of the group of ``method``'s parameters.

    Args:
        spec: the network's optimiser settings (an ``OptimizerSpec``: ``name``, ``lr``,
            ``momentum``, ``weight_decay``).
        method: the weighting method; its class attribute ``param_optimizer`` holds its defaults.
        overrides: the user's settings (None values are not set).
    """
    name = getattr(method, "name", type(method).__name__)
    user = _given(overrides, "weighting.optimizer")
    defaults = _given(getattr(method, "param_optimizer", None), f"weighting '{name}'.param_optimizer")
    sgd = spec.name == "sgd"
    if not sgd and "momentum" in user:
        raise ConfigError(f"weighting.optimizer.momentum: only for sgd (training.optimizer.name is {spec.name})")
    out: dict[str, float] = {"lr": float(spec.lr), "weight_decay": float(spec.weight_decay)}
    if sgd:
        out["momentum"] = float(spec.momentum)
    for source in (defaults, user):
        for key, value in source.items():
            if key == "momentum" and not sgd:
                continue
            out[key] = _check(key, value, "weighting.optimizer")
    return out


def param_groups(model: nn.Module, method: nn.Module, spec: Any,
                 overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """``[network group, method group]`` for ``torch.optim``; the method group only when the
    method has learnable parameters. The network group takes the optimiser's own settings."""
    groups: list[dict[str, Any]] = [{"params": list(model.parameters())}]
    own = [p for p in method.parameters() if p.requires_grad]
    settings = method_group_settings(spec, method, overrides)
    if own:
        groups.append({"params": own, **settings})
    return groups
