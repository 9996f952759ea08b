"""Resume checks: a run continues only under the config it was started with.

Settings that do not change what is learned may differ on resume (more epochs, threads,
device, patience, the run's name and output folder); any other difference (model, data,
tasks, weighting, optimizer, learning rate, seed) is refused with one line naming the first
differing field, before anything in the run directory is touched.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from manytask.errors import ConfigError
from manytask.jsonable import to_jsonable

__all__ = ["RESUMABLE_CHANGES", "check_same_config", "config_differences", "restore_weights"]

#: dotted keys (and key prefixes ending in '.') that may change between a run and its resume
RESUMABLE_CHANGES = ("name", "output_dir", "training.epochs", "training.threads", "training.device",
                     "training.patience", "run.epochs", "plugins", "training.nonfinite")


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): obj}


def _normal(doc: Mapping[str, Any]) -> dict[str, Any]:
    return _flatten(json.loads(json.dumps(to_jsonable(dict(doc)))))


def _allowed(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RESUMABLE_CHANGES)


def _same(a: Any, b: Any) -> bool:
    """Equal as config values: numbers by value (NaN equal to NaN), lists element by element."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def config_differences(recorded: Mapping[str, Any], new: Mapping[str, Any], *,
                       ignore_resumable: bool = True) -> list[tuple[str, Any, Any]]:
    """``(dotted key, recorded value, new value)`` for every difference, sorted by key; with
    ``ignore_resumable`` the keys that may change on a resume (:data:`RESUMABLE_CHANGES`) are
    left out, so what remains blocks a resume."""
    a, b = _normal(recorded), _normal(new)
    missing = object()
    diffs = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, missing), b.get(key, missing)
        differs = va is missing or vb is missing or not _same(va, vb)
        if differs and not (ignore_resumable and _allowed(key)):
            diffs.append((key, None if va is missing else va, None if vb is missing else vb))
    return diffs


def check_same_config(recorded: Mapping[str, Any], new: Mapping[str, Any], where: str) -> None:
    """Raise :class:`ConfigError` (one line) when ``new`` may not resume a run recorded with ``recorded``."""
    diffs = config_differences(recorded, new)
    if not diffs:
        return
    key, old, value = diffs[0]
    more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
    raise ConfigError(f"{where}: cannot resume with a changed config: {key} was {old!r}, now {value!r}{more}; "
                      "resume with the recorded config or start a fresh run")


def restore_weights(model: torch.nn.Module, last: Mapping[str, torch.Tensor],
                    best: Mapping[str, torch.Tensor] | None, where: Path) -> dict[str, torch.Tensor] | None:
    """Load a checkpoint's last weights into ``model``; return its best weights as a state dict
    (checked against the model), or None when it holds none."""
    from manytask.training.rundir import load_module_state

    load_module_state(model, last, where)
    if best is None:
        return None
    tmp = copy.deepcopy(model)
    load_module_state(tmp, best, where)
    return {k: v.detach().clone() for k, v in tmp.state_dict().items()}
