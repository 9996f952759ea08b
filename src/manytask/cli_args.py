"""Values of command-line options that are lists: seeds, training fractions, integers, names.

Each parser also accepts the already-parsed Python value, so the Python API
(:func:`manytask.evaluation.compare`) takes ``"0,3,7"`` and ``[0, 3, 7]`` alike. Bad values
raise a one-line :class:`~manytask.errors.ConfigError` naming the option.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from manytask.errors import ConfigError

__all__ = ["parse_fractions", "parse_int_list", "parse_names", "parse_seeds"]


def parse_names(value: str | None) -> list[str]:
    """Comma-separated names (columns, ids, files), spaces stripped, empty entries dropped;
    ``None`` or ``""`` gives none."""
    return [c.strip() for c in (value or "").split(",") if c.strip()]


def parse_int_list(value: str | Sequence[int], what: str) -> list[int]:
    """``"1,5,10"`` → [1, 5, 10] (empty items ignored); errors name ``what``."""
    if not isinstance(value, str):
        return [int(v) for v in value]
    out = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(int(item))
        except ValueError:
            raise ConfigError(f"{what}: '{item}' is not an integer") from None
    return out


def _seed_count(value: int) -> list[int]:
    if value < 1:
        raise ConfigError(f"--seeds: need at least one seed, got {value}")
    if value > 10_000:
        raise ConfigError(f"--seeds: {value} seeds is more than 10,000 (a list such as 0,3,7 names seeds)")
    return list(range(value))


def parse_seeds(value: str | int | Sequence[int]) -> list[int]:
    """Seeds: ``"10"`` (or 10) → 0..9; ``"0,3,7"`` → [0, 3, 7]; a single seed is ``"5,"``."""
    if isinstance(value, bool):
        raise ConfigError(f"--seeds: expected a count (10) or a list (0,3,7), got {value!r}")
    if isinstance(value, int):
        return _seed_count(value)
    if isinstance(value, str):
        text = value.strip()
        if "," not in text:
            try:
                return _seed_count(int(text))
            except ValueError:
                raise ConfigError(f"--seeds: expected a count (10) or a list (0,3,7), got '{value}'") from None
        seeds = parse_int_list(text, "--seeds")
    else:
        seeds = [int(v) for v in value]
    if not seeds:
        raise ConfigError("--seeds: no seed given")
    if any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds: seeds must be >= 0, got {seeds}")
    if any(s > 2**63 - 1 for s in seeds):
        raise ConfigError(f"--seeds: seeds must be < 2**63, got {max(seeds)}")
    return list(dict.fromkeys(seeds))


def parse_fractions(value: str | Sequence[float]) -> list[float]:
    """``"1,0.25,0.1"`` → [1.0, 0.25, 0.1]; each must lie in (0, 1]; order kept, repeats dropped."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[float] = []
    for item in items:
        if isinstance(item, str):
            item = item.strip()
            if not item:
                continue
        try:
            f = float(item)
        except (TypeError, ValueError):
            raise ConfigError(f"--fractions: '{item}' is not a number") from None
        if not (0.0 < f <= 1.0) or math.isnan(f):
            raise ConfigError(f"--fractions: each fraction must be in (0, 1], got {item}")
        out.append(f)
    if not out:
        raise ConfigError("--fractions: no fraction given")
    return list(dict.fromkeys(out))
