"""Pseudo-uniform scaling (Gutelman & Levin 2020, section 3.3).

Uniform weights for classification, the inverse sample variance of the training labels for
regression, so that a regression loss in the label's own units is put on a unit scale::

    L = Σ_{k ∈ binary, multiclass, multilabel} L_k  +  Σ_{k ∈ regression} L_k / σ_k²

with ``σ_k²`` the sample variance (``ddof = 1``) of regression label k over the labelled entries
of the *training* split. Reconstruction tasks are treated like regression (the paper has none):
their ``σ_k²`` is the mean over the D dimensions of the per-dimension sample variance, and so is
that of a D-dimensional regression target. :func:`label_variance` computes exactly this;
:meth:`PseudoUniform.from_train` (what configs, ``run`` and ``compare`` use) calls it on the
training split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from manytask.errors import ConfigError, DataError
from manytask.tasks import Task
from manytask.weighting.base import LossWeighting, WeightingMethod, register

if TYPE_CHECKING:
    from manytask.data.batch import TensorDataset

_SCALED_KINDS = ("regression", "reconstruction")


def label_variance(tasks: Sequence[Task], targets: Mapping[str, Tensor],
                   masks: Mapping[str, Tensor] | None = None) -> dict[str, float]:
    """``σ_k²`` of every regression/reconstruction task from its training labels.

    Per dimension: the unbiased sample variance over labelled entries (NaN or a False mask =
    unlabelled); then the mean over dimensions. Raises :class:`DataError` if a task has fewer
    than two labelled values in some dimension or a zero variance.
    """
    masks = masks or {}
    out: dict[str, float] = {}
    for task in tasks:
        if task.kind not in _SCALED_KINDS:
            continue
        if task.name not in targets:
            raise DataError(f"pseudo_uniform: no training labels for task '{task.name}'")
        y = targets[task.name].detach().to(torch.float64).reshape(targets[task.name].shape[0], -1)
        valid = task.label_mask(targets[task.name], masks.get(task.name)).reshape(y.shape[0], -1).cpu()
        y = y.cpu()
        variances = []
        for d in range(y.shape[1]):
            col = y[valid[:, d], d]
            if col.numel() < 2:
                raise DataError(
                    f"pseudo_uniform: task '{task.name}' has {col.numel()} labelled value(s) in dimension {d}; need >= 2"
                )
            variances.append(float(col.var(unbiased=True)))
        var = sum(variances) / len(variances)
        if not var > 0:
            raise DataError(f"pseudo_uniform: task '{task.name}' has zero label variance in the training split")
        out[task.name] = var
    return out


@register
class PseudoUniform(LossWeighting):
    """``L = Σ_class L_k + Σ_reg L_k / σ_k²`` (Gutelman & Levin 2020, eq. in section 3.3).

    Args:
        tasks: the tasks in loss order.
        label_variance: task name → ``σ_k²`` for every regression/reconstruction task (see
            :func:`label_variance`); entries of classification tasks are ignored.

    Weights are constant: 1 for binary/multiclass/multilabel, ``1/σ_k²`` otherwise.
    """

    name = "pseudo_uniform"
    display_name = "Pseudo-uniform"
    scale: Tensor

    def __init__(self, tasks: Sequence[Task], label_variance: Mapping[str, float] | None = None) -> None:
        super().__init__(tasks)
        given = dict(label_variance or {})
        w = []
        for t in self.tasks:
            if t.kind not in _SCALED_KINDS:
                w.append(1.0)
                continue
            if t.name not in given:
                raise ConfigError(f"weighting 'pseudo_uniform': label_variance has no entry for {t.kind} task '{t.name}'")
            v = given[t.name]
            try:
                fv = float(v)
            except (TypeError, ValueError):
                raise ConfigError(f"weighting 'pseudo_uniform': label_variance['{t.name}'] must be a number, got {v!r}") from None
            if not (math.isfinite(fv) and fv > 0):
                raise ConfigError(f"weighting 'pseudo_uniform': label_variance['{t.name}'] must be finite and > 0, got {v!r}")
            w.append(1.0 / fv)
        unknown = sorted(set(given) - set(self.task_names))
        if unknown:
            raise ConfigError(f"weighting 'pseudo_uniform': label_variance names unknown task(s) {unknown}")
        self.register_buffer("scale", torch.tensor(w, dtype=torch.float64))

    @classmethod
    def from_train(cls, tasks: Sequence[Task], train: TensorDataset, **params: Any) -> WeightingMethod:
        """With ``label_variance`` computed from ``train`` (:func:`label_variance`) unless given."""
        if "label_variance" not in params:
            params["label_variance"] = label_variance(tasks, train.targets, train.masks)
        return cls(tasks, **params)

    def weights(self, losses: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.scale.to(dtype=losses.dtype, device=losses.device), None
