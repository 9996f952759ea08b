"""``predictions.csv``: a run's predictions for its test split, one row per sample.

Columns: the row id (the data's id column, else ``row``), then per task

============== =============================================================================
binary         ``<task>`` predicted class, ``<task>_prob`` probability of class 1, ``<task>_label``
multiclass     ``<task>`` predicted class, ``<task>_label``
multilabel     ``<task>[j]_prob`` and ``<task>[j]_label`` per label ``j``
regression     ``<task>`` predicted value (``<task>[j]`` per dimension when dim > 1), ``<task>_label``
============== =============================================================================

Classes read from names (a :class:`~manytask.data.batch.LabelCoding`) are written as those
names, and labels stored standardised (a :class:`~manytask.data.batch.LabelScale`) in their
own units; a missing label is an empty cell. Reconstruction tasks (whole images) are left out.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from manytask.data.batch import LabelScale, TensorDataset
from manytask.tasks import Task

__all__ = ["prediction_columns", "write_predictions"]


def _named(values: np.ndarray, valid: np.ndarray, classes: Sequence[str] | None) -> list[Any]:
    """Class indices as names (or ints), with None where ``valid`` is False."""
    out: list[Any] = []
    for v, ok in zip(values.tolist(), valid.tolist()):
        if not ok:
            out.append(None)
        else:
            i = int(v)
            out.append(classes[i] if classes is not None and 0 <= i < len(classes) else i)
    return out


def _task_columns(task: Task, pred: Tensor, target: Tensor, mask: Tensor | None,
                  classes: Sequence[str] | None, scale: LabelScale | None = None) -> dict[str, list[Any]]:
    n = pred.shape[0]
    valid = task.label_mask(target, mask).cpu().numpy()
    y = target.detach().cpu().float().reshape(n, -1).numpy()
    p = pred.detach().cpu().float().reshape(n, -1)
    name = task.name
    everyone = np.ones(n, dtype=bool)
    if task.kind == "binary":
        prob = torch.sigmoid(p[:, 0]).numpy()
        return {name: _named((prob > 0.5).astype(np.int64), everyone, classes),
                f"{name}_prob": prob.tolist(), f"{name}_label": _named(y[:, 0], valid, classes)}
    if task.kind == "multiclass":
        return {name: _named(p.argmax(dim=1).numpy(), everyone, classes),
                f"{name}_label": _named(y[:, 0], valid, classes)}
    if task.kind == "multilabel":
        prob = torch.sigmoid(p).numpy()
        cols: dict[str, list[Any]] = {}
        for j in range(p.shape[1]):
            cols[f"{name}[{j}]_prob"] = prob[:, j].tolist()
            cols[f"{name}[{j}]_label"] = _named(y[:, j], valid[:, j], None)
        return cols
    values = p.numpy()
    if scale is not None:
        values, y = scale.restore(values), scale.restore(y)
    valid = valid.reshape(n, -1)
    if values.shape[1] == 1:
        return {name: values[:, 0].tolist(), f"{name}_label": np.where(valid[:, 0], y[:, 0], np.nan).tolist()}
    cols = {}
    for j in range(values.shape[1]):
        cols[f"{name}[{j}]"] = values[:, j].tolist()
        cols[f"{name}[{j}]_label"] = np.where(valid[:, j], y[:, j], np.nan).tolist()
    return cols


def prediction_columns(tasks: Sequence[Task], preds: Mapping[str, Tensor],
                       data: TensorDataset) -> dict[str, list[Any]]:
    """The columns of the predictions table (see the module docstring), in order."""
    columns: dict[str, list[Any]] = {data.id_name: data.row_ids().tolist()}
    for task in tasks:
        if task.kind == "reconstruction" or task.elements > 1:  # images and per-pixel class maps
            continue
        coding = data.codings.get(task.name)
        columns.update(_task_columns(task, preds[task.name], data.targets[task.name], data.masks.get(task.name),
                                     coding.classes if coding else None, data.scales.get(task.name)))
    return columns


def write_predictions(path: str | Path, tasks: Sequence[Task], preds: Mapping[str, Tensor],
                      data: TensorDataset) -> Path:
    """Write :func:`prediction_columns` as a CSV file, atomically."""
    import pandas as pd

    from manytask.atomic import atomic_write_text

    buffer = io.StringIO()
    pd.DataFrame(prediction_columns(tasks, preds, data)).to_csv(buffer, index=False, float_format="%.6g")
    target = Path(path)
    atomic_write_text(target, buffer.getvalue())
    return target
