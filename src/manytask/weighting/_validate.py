"""Validation of numeric hyperparameters: one ConfigError line naming method, field and value."""

from __future__ import annotations

import math
from typing import Any

from manytask.errors import ConfigError


def number(method: str, name: str, value: Any, *, low: float | None = None, low_inclusive: bool = False,
           high: float | None = None, high_inclusive: bool = True) -> float:
    """``float(value)`` if it is finite and inside the bounds, else :class:`ConfigError`."""
    if isinstance(value, bool):
        raise ConfigError(f"weighting '{method}': {name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"weighting '{method}': {name} must be a number, got {value!r}") from None
    bad = not math.isfinite(v)
    if low is not None and (v < low or (v == low and not low_inclusive)):
        bad = True
    if high is not None and (v > high or (v == high and not high_inclusive)):
        bad = True
    if bad:
        lo = "" if low is None else f"{'>=' if low_inclusive else '>'} {low:g}"
        hi = "" if high is None else f"{'<=' if high_inclusive else '<'} {high:g}"
        rng = " and ".join(x for x in (lo, hi) if x) or "finite"
        raise ConfigError(f"weighting '{method}': {name} must be {rng}, got {value!r}")
    return v


def integer(method: str, name: str, value: Any, *, low: int = 1) -> int:
    """``int(value)`` if it is an integer >= ``low``, else :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"weighting '{method}': {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def choice(method: str, name: str, value: Any, options: tuple[str, ...]) -> str:
    """``value`` if it is one of ``options``, else :class:`ConfigError`."""
    if value not in options:
        raise ConfigError(f"weighting '{method}': {name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return str(value)
