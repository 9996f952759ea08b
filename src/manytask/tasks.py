"""What a task is: its kind, its loss, its metrics and how missing labels are masked.

A :class:`Task` is declarative. Each kind owns its loss and metrics:

=============== ================================ ==================== ============================
kind            target (per sample)              loss                 metrics (primary first)
=============== ================================ ==================== ============================
binary          {0, 1} (float or int), -1 = none BCE with logits      accuracy, auc
multiclass      class index, -1 = none           cross-entropy        accuracy, top-k not kept
multilabel      L labels in {0, 1}, -1 = none    BCE per label        accuracy (per label), auc
regression      D floats, NaN = none             mse / l1 / huber     mse, mae, r2
reconstruction  D floats, NaN = none             mse / l1             mse, mae
=============== ================================ ==================== ============================

Missing labels are masked per sample (and per entry for multilabel/regression vectors) and
never count as a class or a zero. An explicit mask from the data set is combined (AND) with the
mask derived from the labels. A batch in which a task has no labelled entry gives that task a
loss of exactly zero that is still attached to the graph (so backward works and nothing moves).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from torch import Tensor

from manytask.errors import ConfigError, DataError

TaskKind = Literal["binary", "multiclass", "multilabel", "regression", "reconstruction"]
TASK_KINDS: tuple[str, ...] = get_args(TaskKind)
CLASSIFICATION_KINDS = ("binary", "multiclass", "multilabel")
REGRESSION_LOSSES = ("mse", "l1", "huber")


@dataclass(frozen=True)
class Task:
    """One prediction target of a multi-task model.

    Args:
        name: unique task name (the key of targets, masks and predictions).
        kind: one of ``binary``, ``multiclass``, ``multilabel``, ``regression``,
            ``reconstruction``.
        num_classes: classes for ``multiclass``; labels for ``multilabel``.
        dim: output size for ``regression`` / ``reconstruction`` (default 1).
        loss_name: ``mse`` (default), ``l1`` or ``huber`` for regression/reconstruction.
        target: name of the data set column this task reads (defaults to ``name``).
    """

    name: str
    kind: TaskKind
    num_classes: int | None = None
    dim: int | None = None
    loss_name: str | None = None
    target: str | None = None
    weight: float = field(default=1.0, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("task: name must be a non-empty string")
        if self.kind not in TASK_KINDS:
            raise ConfigError(
                f"task '{self.name}': unknown kind '{self.kind}' (expected one of {', '.join(TASK_KINDS)})"
            )
        if self.kind in ("multiclass", "multilabel"):
            if self.num_classes is None or self.num_classes < 2:
                raise ConfigError(f"task '{self.name}': kind {self.kind} needs num_classes >= 2, got {self.num_classes}")
        if self.kind in ("regression", "reconstruction") and self.dim is not None and self.dim < 1:
            raise ConfigError(f"task '{self.name}': dim must be >= 1, got {self.dim}")
        if self.loss_name is not None:
            if self.kind not in ("regression", "reconstruction"):
                raise ConfigError(f"task '{self.name}': loss_name is only for regression/reconstruction tasks")
            if self.loss_name not in REGRESSION_LOSSES:
                raise ConfigError(
                    f"task '{self.name}': unknown loss_name '{self.loss_name}' (expected one of {', '.join(REGRESSION_LOSSES)})"
                )

    # ------------------------------------------------------------------ shape
    @property
    def column(self) -> str:
        """The data column this task reads."""
        return self.target or self.name

    @property
    def out_features(self) -> int:
        """Width of the head's output layer."""
        if self.kind == "binary":
            return 1
        if self.kind in ("multiclass", "multilabel"):
            assert self.num_classes is not None
            return self.num_classes
        return self.dim or 1

    @property
    def is_classification(self) -> bool:
        return self.kind in CLASSIFICATION_KINDS

    @property
    def primary_metric(self) -> str:
        """The metric used for model selection and tables."""
        return "accuracy" if self.is_classification else "mse"

    @property
    def higher_is_better(self) -> bool:
        return self.is_classification

    # ------------------------------------------------------------------ masks
    def label_mask(self, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Boolean mask of labelled entries, shaped like the loss terms.

        binary/multiclass: (N,); multilabel: (N, L); regression/reconstruction: (N, D).
        """
        if self.kind in ("binary", "multiclass"):
            t = target.reshape(target.shape[0], -1)[:, 0] if target.dim() > 1 else target
            valid = t >= 0 if not t.is_floating_point() else (t >= 0) & ~torch.isnan(t)
        elif self.kind == "multilabel":
            valid = (target >= 0) & ~torch.isnan(target) if target.is_floating_point() else target >= 0
        else:
            valid = ~torch.isnan(target)
            if valid.dim() == 1:
                valid = valid.unsqueeze(1)
        if mask is not None:
            m = mask.to(torch.bool)
            if m.dim() < valid.dim():
                m = m.reshape(m.shape[0], *([1] * (valid.dim() - 1)))
            valid = valid & m
        return valid

    # ------------------------------------------------------------------ loss
    def loss(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Mean loss over labelled entries (a scalar; 0 attached to the graph if none)."""
        valid = self.label_mask(target, mask)
        if self.kind == "multiclass":
            tgt = torch.where(valid, target.long(), torch.zeros_like(target, dtype=torch.long))
            terms = F.cross_entropy(pred, tgt, reduction="none")
        elif self.kind == "binary":
            logit = pred.reshape(pred.shape[0])
            tgt = torch.where(valid, target.reshape(-1).to(logit.dtype), torch.zeros_like(logit))
            terms = F.binary_cross_entropy_with_logits(logit, tgt, reduction="none")
        elif self.kind == "multilabel":
            tgt = torch.where(valid, target.to(pred.dtype), torch.zeros_like(pred))
            terms = F.binary_cross_entropy_with_logits(pred, tgt, reduction="none")
        else:
            tgt = target.reshape(pred.shape).to(pred.dtype)
            valid = valid.reshape(pred.shape)
            tgt = torch.where(valid, tgt, pred.detach())
            name = self.loss_name or "mse"
            if name == "mse":
                terms = (pred - tgt) ** 2
            elif name == "l1":
                terms = (pred - tgt).abs()
            else:
                terms = F.huber_loss(pred, tgt, reduction="none")
        w = valid.to(terms.dtype)
        count = w.sum()
        return (terms * w).sum() / count.clamp_min(1.0)

    # ------------------------------------------------------------------ metrics
    def metrics(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> dict[str, float]:
        """Metrics over labelled entries of a whole split (pred/target concatenated)."""
        valid = self.label_mask(target, mask)
        pred = pred.detach().float().cpu()
        target = target.detach().cpu()
        valid = valid.cpu()
        out: dict[str, float] = {"loss": float(self.loss(pred, target, valid))}
        if int(valid.sum()) == 0:
            out[self.primary_metric] = math.nan
            return out
        if self.kind == "multiclass":
            hit = (pred.argmax(dim=1) == target.long()) & valid
            out["accuracy"] = float(hit.sum()) / float(valid.sum())
        elif self.kind == "binary":
            logit = pred.reshape(-1)[valid]
            y = target.reshape(-1)[valid].float()
            out["accuracy"] = float(((logit > 0).float() == y).float().mean())
            out["auc"] = roc_auc(logit.numpy(), y.numpy())
        elif self.kind == "multilabel":
            y = target.float()
            hit = ((pred > 0).float() == y) & valid
            out["accuracy"] = float(hit.sum()) / float(valid.sum())
            aucs = [roc_auc(pred[valid[:, j], j].numpy(), y[valid[:, j], j].numpy()) for j in range(pred.shape[1])]
            finite = [a for a in aucs if not math.isnan(a)]
            out["auc"] = float(np.mean(finite)) if finite else math.nan
        else:
            y = target.reshape(pred.shape).float()
            v = valid.reshape(pred.shape)
            diff = (pred - torch.where(v, y, pred))[v]
            out["mse"] = float((diff**2).mean())
            out["mae"] = float(diff.abs().mean())
            if self.kind == "regression":
                yv = y[v]
                var = float(((yv - yv.mean()) ** 2).mean())
                out["r2"] = 1.0 - out["mse"] / var if var > 0 else math.nan
        return out

    # ------------------------------------------------------------------ checks
    def check_target(self, target: Tensor, where: str = "data") -> None:
        """Raise :class:`DataError` if ``target`` cannot be a label column of this task."""
        n = target.shape[0]
        if self.kind == "multiclass":
            if target.is_floating_point() and bool(((target != target.round()) & ~torch.isnan(target)).any()):
                raise DataError(f"{where}: task '{self.name}' (multiclass) has non-integer labels")
            t = target[~torch.isnan(target)] if target.is_floating_point() else target
            if t.numel() and int(t.max()) >= (self.num_classes or 0):
                raise DataError(
                    f"{where}: task '{self.name}' has label {int(t.max())} but num_classes is {self.num_classes}"
                )
            if t.numel() and int(t.min()) < -1:
                raise DataError(f"{where}: task '{self.name}' has label {int(t.min())} (use -1 for missing)")
        elif self.kind == "binary":
            t = target.reshape(-1)
            t = t[~torch.isnan(t)] if t.is_floating_point() else t
            bad = t[(t != 0) & (t != 1) & (t != -1)]
            if bad.numel():
                raise DataError(f"{where}: task '{self.name}' (binary) has label {float(bad[0])} (expected 0, 1 or -1)")
        elif self.kind == "multilabel":
            if target.dim() != 2 or target.shape[1] != self.num_classes:
                raise DataError(
                    f"{where}: task '{self.name}' (multilabel) needs targets of shape (N, {self.num_classes}), got {tuple(target.shape)}"
                )
        else:
            d = 1 if target.dim() == 1 else int(np.prod(target.shape[1:]))
            if d != self.out_features:
                raise DataError(
                    f"{where}: task '{self.name}' ({self.kind}) has dim {self.out_features} but the data column has {d} values per sample"
                )
        if n == 0:
            raise DataError(f"{where}: task '{self.name}' has no samples")


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank statistic (ties get average ranks); NaN if one class."""
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def stack_losses(tasks: list[Task] | tuple[Task, ...], preds: dict[str, Tensor], targets: dict[str, Tensor],
                 masks: dict[str, Tensor] | None = None) -> Tensor:
    """The loss vector ``losses[k]`` in the fixed order of ``tasks``."""
    masks = masks or {}
    return torch.stack([t.loss(preds[t.name], targets[t.name], masks.get(t.name)) for t in tasks])
