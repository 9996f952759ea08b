"""Trunks as plug-ins: a registry of builders by name, and import paths for a user's own.

A trunk is any ``nn.Module`` mapping a batch of inputs to a ``(N, out_features)``
representation that exposes

* ``out_features`` — the width of that representation (the heads read it);
* ``last_layer()`` — optional: the parameters of its last layer (GradNorm's W; without it the
  last two shared parameters are used);

and is built at a ``width`` multiplier that scales its channels / hidden units (Standley et
al.'s half-size networks). A builder takes the input shape (without the batch dimension) and a
:class:`TrunkSpec` and returns the module::

    @register_trunk("mine")
    def build_mine(shape, spec):
        return MyTrunk(shape[0], width=spec.width, **spec.take_options(depth=3))

In a config, ``model.trunk`` is a registered name or an import path ``package.module:function``
naming such a builder in the user's own code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from torch import nn

from manytask.errors import ConfigError

__all__ = [
    "Trunk",
    "TrunkBuilder",
    "TrunkSpec",
    "available_trunks",
    "build_trunk",
    "check_trunk",
    "is_trunk_reference",
    "register_trunk",
    "resolve_trunk",
]


@runtime_checkable
class Trunk(Protocol):
    """What the multi-task model needs of a trunk (``last_layer`` is optional)."""

    out_features: int

    def __call__(self, x: Any) -> Any: ...


@dataclass(frozen=True)
class TrunkSpec:
    """The ``model`` settings a builder reads.

    Attributes:
        width: width multiplier (1 = the standard network).
        features: size of the shared representation, for trunks that end in a linear layer.
        hidden: hidden layer sizes, for fully connected trunks.
        dropout: dropout probability after hidden layers, where the trunk has them.
        options: trunk-specific settings (``model.options`` in a config).
    """

    width: float = 1.0
    features: int = 50
    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.0
    options: Mapping[str, Any] = field(default_factory=dict)

    def take_options(self, **defaults: Any) -> dict[str, Any]:
        """``defaults`` updated with ``options``; an option not among them is a ConfigError."""
        unknown = sorted(set(self.options) - set(defaults))
        if unknown:
            raise ConfigError(
                f"model.options: unknown option(s) {', '.join(unknown)} "
                f"(this trunk takes: {', '.join(sorted(defaults)) or 'none'})"
            )
        return {**defaults, **dict(self.options)}


TrunkBuilder = Callable[[Sequence[int], TrunkSpec], nn.Module]
_TRUNKS: dict[str, TrunkBuilder] = {}


def register_trunk(name: str) -> Callable[[TrunkBuilder], TrunkBuilder]:
    """Decorator: register a builder ``(input_shape, spec) -> nn.Module`` under ``name``."""
    if not name or ":" in name:
        raise ValueError(f"trunk name must be non-empty and without ':', got {name!r}")

    def deco(fn: TrunkBuilder) -> TrunkBuilder:
        if name in _TRUNKS and _TRUNKS[name] is not fn:
            raise ValueError(f"trunk '{name}' is already registered")
        _TRUNKS[name] = fn
        return fn

    return deco


def available_trunks() -> list[str]:
    return sorted(_TRUNKS)


def is_trunk_reference(value: str) -> bool:
    """True for a registered name or something shaped like ``module:function``."""
    mod, sep, attr = value.partition(":")
    return value in _TRUNKS or (bool(sep) and bool(mod) and attr.isidentifier())


def resolve_trunk(name: str) -> TrunkBuilder:
    """The builder a registered name or an import path ``module:function`` names."""
    if name in _TRUNKS:
        return _TRUNKS[name]
    mod, sep, attr = name.partition(":")
    if not sep:
        raise ConfigError(
            f"model.trunk: unknown trunk '{name}' (expected one of {', '.join(available_trunks())}, "
            "or an import path module:function)"
        )
    try:
        module = importlib.import_module(mod)
    except ImportError as err:
        raise ConfigError(f"model.trunk: cannot import module '{mod}' ({err})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"model.trunk: module '{mod}' has no callable '{attr}'")
    return fn  # type: ignore[no-any-return]


def check_trunk(trunk: Any, where: str = "model.trunk") -> nn.Module:
    """Raise a ConfigError unless ``trunk`` is an ``nn.Module`` with a positive ``out_features``."""
    if not isinstance(trunk, nn.Module):
        raise ConfigError(f"{where}: the builder returned {type(trunk).__name__}, not a torch.nn.Module")
    out = getattr(trunk, "out_features", None)
    if isinstance(out, bool) or not isinstance(out, int) or out < 1:
        raise ConfigError(f"{where}: the trunk must expose 'out_features', a positive int (got {out!r})")
    last = getattr(trunk, "last_layer", None)
    if last is not None and not callable(last):
        raise ConfigError(f"{where}: 'last_layer' must be a method returning parameters")
    return trunk


def build_trunk(name: str, input_shape: Sequence[int], spec: TrunkSpec) -> nn.Module:
    """Build the trunk ``name`` (registered or ``module:function``) for inputs of ``input_shape``."""
    if spec.width <= 0:
        raise ConfigError(f"model.width must be > 0, got {spec.width}")
    builder = resolve_trunk(name)
    return check_trunk(builder(tuple(int(s) for s in input_shape), spec), where=f"model.trunk '{name}'")
