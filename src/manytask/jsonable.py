"""Turn results into plain JSON values: the one conversion every writer of JSON uses."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def to_jsonable(x: Any) -> Any:
    """Mappings, sequences, numpy/torch scalars and arrays, paths → plain Python.

    Non-finite floats become ``None`` (JSON has no NaN/inf); unknown objects become ``str``.
    """
    if isinstance(x, Mapping):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, (bool, str)) or x is None:
        return x
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, Path):
        return str(x)
    torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported
    if isinstance(x, np.ndarray) or (torch is not None and isinstance(x, torch.Tensor)):
        return to_jsonable(x.tolist()) if x.ndim else to_jsonable(x.item())
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f if math.isfinite(f) else None
