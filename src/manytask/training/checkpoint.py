"""The resumable checkpoint of a run: one ``checkpoint.safetensors`` file, written atomically.

It holds, in one unit, everything an exact resume needs: the model's weights after the last
finished epoch (``model/…``), the best epoch's weights (``best/…``), and the trainer's state
(optimizer, weighting, scheduler, random generators, counters). Tensors are stored as
safetensors; everything else is JSON in the file's metadata. Nothing is ever unpickled, so a
checkpoint from an untrusted source cannot run code; a file whose content does not match the
digest recorded in it (tampered, truncated, or not a checkpoint at all) is refused with one line.

Because weights and state live in one file replaced with :func:`os.replace`, a run killed at any
instant resumes from a consistent epoch: either the old checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from manytask.atomic import atomic_replace
from manytask.errors import DataError

__all__ = ["CHECKPOINT", "CheckpointError", "decode_tree", "encode_tree", "fault_point", "read_checkpoint",
           "write_checkpoint"]

CHECKPOINT = "checkpoint.safetensors"
_FORMAT = "manytask-checkpoint/1"
#: test hook: ``<point>@<n>`` makes the process SIGKILL itself at that point (see :func:`fault_point`)
FAULT_ENV = "MANYTASK_FAULT_KILL"
_FAULT = os.environ.get(FAULT_ENV) or None


class CheckpointError(DataError):
    """A checkpoint (or a weights file) is missing, corrupt, tampered with, or unsafe to load."""


def fault_point(point: str, count: int) -> None:
    """Fault injection for the kill tests: SIGKILL this process when ``$MANYTASK_FAULT_KILL`` is
    ``<point>@<count>`` (e.g. ``before_checkpoint@2``, ``step@7``). Does nothing when the variable
    is unset (it is read once, at import)."""
    if _FAULT is not None and _FAULT == f"{point}@{count}":
        os.kill(os.getpid(), signal.SIGKILL)


# ---------------------------------------------------------------- tree <-> tensors + JSON
def encode_tree(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "state") -> Any:
    """A JSON-able copy of ``obj`` in which every tensor is replaced by a reference into ``tensors``.

    Dicts with keys other than strings, tuples and non-finite floats are tagged so that
    :func:`decode_tree` gives back the same types (an optimizer's state is keyed by integers).
    """
    if isinstance(obj, torch.Tensor):
        name = f"{prefix}/{len(tensors)}"
        tensors[name] = obj.detach().contiguous().cpu()
        return {"__tensor__": name}
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj) and "__tensor__" not in obj:
            return {k: encode_tree(v, tensors, prefix) for k, v in obj.items()}
        return {"__items__": [[encode_tree(k, tensors, prefix), encode_tree(v, tensors, prefix)]
                              for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_tree(v, tensors, prefix) for v in obj]}
    if isinstance(obj, list):
        return [encode_tree(v, tensors, prefix) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint")


def decode_tree(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """The inverse of :func:`encode_tree`."""
    if isinstance(obj, list):
        return [decode_tree(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        name = obj["__tensor__"]
        if name not in tensors:
            raise CheckpointError(f"checkpoint names a tensor '{name}' that it does not hold")
        return tensors[name]
    if "__items__" in obj:
        return {decode_tree(k, tensors): decode_tree(v, tensors) for k, v in obj["__items__"]}
    if "__tuple__" in obj:
        return tuple(decode_tree(v, tensors) for v in obj["__tuple__"])
    if "__float__" in obj:
        return float(obj["__float__"])
    return {k: decode_tree(v, tensors) for k, v in obj.items()}


def _digest(tensors: Mapping[str, torch.Tensor], meta: str) -> str:
    h = hashlib.sha256(meta.encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# ---------------------------------------------------------------- the file
def write_checkpoint(path: Path, model: Mapping[str, torch.Tensor], best: Mapping[str, torch.Tensor] | None,
                     state: Mapping[str, Any]) -> None:
    """Write model weights, best weights and the trainer state as one file (atomically)."""
    tensors: dict[str, torch.Tensor] = {f"model/{k}": v.detach().contiguous().cpu() for k, v in model.items()}
    if best is not None:
        tensors.update({f"best/{k}": v.detach().contiguous().cpu() for k, v in best.items()})
    meta = json.dumps(encode_tree(dict(state), tensors))
    header = {"format": _FORMAT, "state": meta, "digest": _digest(tensors, meta)}
    atomic_replace(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def _split(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor] | None:
    part = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return part or None


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, dict[str, Any]]:
    """``(model weights, best weights or None, state)`` from a checkpoint; :class:`CheckpointError`
    naming the file when it is not a complete, untampered checkpoint."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint "
                              f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    if header.get("format") != _FORMAT or "state" not in header or "digest" not in header:
        raise CheckpointError(f"{path}: not a manytask checkpoint (no '{_FORMAT}' header)")
    if _digest(tensors, header["state"]) != header["digest"]:
        raise CheckpointError(f"{path}: content does not match its digest (tampered or damaged); refusing to resume")
    try:
        state = decode_tree(json.loads(header["state"]), tensors)
    except (json.JSONDecodeError, TypeError, KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable state ({err})") from None
    model = _split(tensors, "model/")
    if model is None:
        raise CheckpointError(f"{path}: holds no model weights")
    return model, _split(tensors, "best/"), state
