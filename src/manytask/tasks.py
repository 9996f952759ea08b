"""What a task is: its kind, its loss, its metrics and how missing labels are masked.

A :class:`Task` is declarative. Each kind owns its loss and metrics:

=============== ================================ ==================== ============================
kind            target (per sample)              loss                 metrics (primary first)
=============== ================================ ==================== ============================
binary          {0, 1} (float or int), -1 = none BCE with logits      accuracy, auc
multiclass      class index, -1 = none           cross-entropy        accuracy, top-k not kept
                (or D class indices with ``dim``)
multilabel      L labels in {0, 1}, -1 = none    BCE per label        accuracy (per label), auc
regression      D floats, NaN = none             mse / l1 / huber     mse, mae, r2
reconstruction  D floats, NaN = none             mse / l1 / huber     mse, mae
ranking         a score (float), NaN = none      pairwise hinge²      kendall_tau
=============== ================================ ==================== ============================

A ``ranking`` task predicts one score ``f(x)`` per sample; its loss is the mean over every pair
of labelled samples of a batch with ``y_i > y_j`` of ``max(0, 1 - (f(x_i) - f(x_j)))²``
(Strezoski et al. 2019, eq. 7), and its metric Kendall's tau (τ-b, ties counted) between scores
and labels. A ``binary`` task with ``positive = k`` reads a class column and is 1 where the
class is ``k`` (one-vs-all, :func:`one_vs_all`).

The metrics of each kind, with their direction and display format, are one table,
:data:`KIND_METRICS` (:class:`MetricSpec`); the trainer's monitor, comparisons and reports read
it. :meth:`Task.constant_baseline` is the loss of the best constant prediction from training
labels (class prior, mean, median, ...), the "no model" reference of grouping.

Missing labels are masked per sample (and per entry for multilabel/regression vectors) and
never count as a class or a zero. An explicit mask from the data set is combined (AND) with the
mask derived from the labels. A batch in which a task has no labelled entry gives that task a
loss of exactly zero that is still attached to the graph (so backward works and nothing moves).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from torch import Tensor

from manytask.errors import ConfigError, DataError

TaskKind = Literal["binary", "multiclass", "multilabel", "regression", "reconstruction", "ranking"]
TASK_KINDS: tuple[str, ...] = get_args(TaskKind)
CLASSIFICATION_KINDS = ("binary", "multiclass", "multilabel")
REGRESSION_LOSSES = ("mse", "l1", "huber")


@dataclass(frozen=True)
class MetricSpec:
    """What a metric is: its direction and how it is shown.

    Attributes:
        name: the key in :meth:`Task.metrics` results.
        higher_is_better: True for accuracy, AUC, R²; False for losses and errors.
        percent: shown as a percentage (value × 100, two decimals).
        label: short column label in tables.
    """

    name: str
    higher_is_better: bool
    percent: bool = False
    label: str = ""

    def format(self, value: float, digits: int = 4) -> str:
        """``value`` for a table: percent with two decimals, else ``digits`` significant digits."""
        return f"{100 * value:.2f}%" if self.percent else f"{value:.{digits}g}"


_ACCURACY = MetricSpec("accuracy", True, percent=True, label="acc %")
_AUC = MetricSpec("auc", True, percent=True, label="AUC %")
_MSE = MetricSpec("mse", False, label="MSE")
_MAE = MetricSpec("mae", False, label="mae")
_R2 = MetricSpec("r2", True, label="r2")
_LOSS = MetricSpec("loss", False, label="loss")
_KENDALL = MetricSpec("kendall_tau", True, label="tau")

#: The metrics of each task kind, primary (model selection, tables) first. Every kind also
#: reports its ``loss`` (lower is better).
KIND_METRICS: dict[str, tuple[MetricSpec, ...]] = {
    "binary": (_ACCURACY, _AUC),
    "multiclass": (_ACCURACY,),
    "multilabel": (_ACCURACY, _AUC),
    "regression": (_MSE, _MAE, _R2),
    "reconstruction": (_MSE, _MAE),
    "ranking": (_KENDALL,),
}

#: Every metric by name (a name means the same thing in every kind).
METRICS: dict[str, MetricSpec] = {m.name: m for specs in KIND_METRICS.values() for m in specs} | {"loss": _LOSS}


@dataclass(frozen=True)
class Task:
    """One prediction target of a multi-task model.

    Args:
        name: unique task name (the key of targets, masks and predictions).
        kind: one of ``binary``, ``multiclass``, ``multilabel``, ``regression``,
            ``reconstruction``.
        num_classes: classes for ``multiclass``; labels for ``multilabel``.
        dim: output size for ``regression`` / ``reconstruction`` (default 1); for
            ``multiclass``, the number of labelled elements per sample (default 1): with
            ``dim = D > 1`` the target is ``(N, D)`` class indices (e.g. one per pixel), the head
            gives ``num_classes · D`` logits read as ``(N, num_classes, D)``.
        loss_name: ``mse`` (default), ``l1`` or ``huber`` for regression/reconstruction.
        target: name of the data set column this task reads (defaults to ``name``).
        positive: for a ``binary`` task reading a class column: the class that is 1 (every
            other class is 0, a missing label stays missing); see :func:`one_vs_all`.
    """

    name: str
    kind: TaskKind
    num_classes: int | None = None
    dim: int | None = None
    loss_name: str | None = None
    target: str | None = None
    positive: int | None = None

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
        if self.kind in ("regression", "reconstruction", "multiclass") and self.dim is not None and self.dim < 1:
            raise ConfigError(f"task '{self.name}': dim must be >= 1, got {self.dim}")
        if self.positive is not None and (self.kind != "binary" or self.positive < 0):
            raise ConfigError(f"task '{self.name}': positive (a class index >= 0) is only for binary tasks, "
                              f"got {self.positive} for a {self.kind} task")
        if self.kind == "ranking" and self.dim not in (None, 1):
            raise ConfigError(f"task '{self.name}': a ranking task predicts one score (dim 1), got dim {self.dim}")
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
            return self.num_classes * self.elements if self.kind == "multiclass" else self.num_classes
        return self.dim or 1

    @property
    def elements(self) -> int:
        """Labelled elements per sample of a ``multiclass`` task (``dim``, default 1)."""
        return (self.dim or 1) if self.kind == "multiclass" else 1

    @property
    def is_classification(self) -> bool:
        return self.kind in CLASSIFICATION_KINDS

    @property
    def metric_specs(self) -> tuple[MetricSpec, ...]:
        """This kind's metrics (:data:`KIND_METRICS`), primary first, then ``loss``."""
        return (*KIND_METRICS[self.kind], _LOSS)

    def metric_spec(self, metric: str) -> MetricSpec:
        """The :class:`MetricSpec` of one of this task's metrics (:class:`ConfigError` if it has none)."""
        for m in self.metric_specs:
            if m.name == metric:
                return m
        names = ", ".join(m.name for m in self.metric_specs)
        raise ConfigError(f"task '{self.name}' ({self.kind}) has no metric '{metric}' (it has {names})")

    @property
    def primary_metric(self) -> str:
        """The metric used for model selection and tables."""
        return KIND_METRICS[self.kind][0].name

    @property
    def higher_is_better(self) -> bool:
        """Whether a higher value of :attr:`primary_metric` is better."""
        return KIND_METRICS[self.kind][0].higher_is_better

    def prepare_target(self, column: Tensor) -> Tensor:
        """This task's targets from the values of its data column: the column itself, or for a
        task with ``positive``, 1.0 / 0.0 for that class / any other and -1.0 where missing."""
        if self.positive is None:
            return column
        valid = column >= 0
        if column.is_floating_point():
            valid = valid & ~torch.isnan(column)
        hit = (column == self.positive).to(torch.float32)
        return torch.where(valid, hit, torch.full_like(hit, -1.0))

    # ------------------------------------------------------------------ masks
    def label_mask(self, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Boolean mask of labelled entries, shaped like the loss terms.

        binary/multiclass: (N,); multiclass with ``dim = D > 1``: (N, D); multilabel: (N, L);
        regression/reconstruction: (N, D); ranking: (N, 1), per sample (its loss terms are per
        pair of samples, see :meth:`loss_terms`).
        """
        if self.elements > 1:
            t = target.reshape(target.shape[0], -1)
            valid = t >= 0 if not t.is_floating_point() else (t >= 0) & ~torch.isnan(t)
        elif self.kind in ("binary", "multiclass"):
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
        terms, valid = self.loss_terms(pred, target, mask)
        w = valid.to(terms.dtype)
        count = w.sum()
        return (terms * w).sum() / count.clamp_min(1.0)

    def loss_terms(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The per-element loss terms and the mask of labelled entries (same shape, see
        :meth:`label_mask`; for ``ranking``, ``(N, N)`` pair terms and the mask of ordered pairs);
        :meth:`loss` is their masked mean. Unlabelled terms are finite."""
        valid = self.label_mask(target, mask)
        if self.elements > 1:
            n = pred.shape[0]
            tgt = target.reshape(n, -1)
            tgt = torch.where(valid, tgt.long(), torch.zeros_like(tgt, dtype=torch.long))
            terms = F.cross_entropy(pred.reshape(n, self.num_classes or 0, -1), tgt, reduction="none")
        elif self.kind == "multiclass":
            tgt = torch.where(valid, target.long(), torch.zeros_like(target, dtype=torch.long))
            terms = F.cross_entropy(pred, tgt, reduction="none")
        elif self.kind == "binary":
            logit = pred.reshape(pred.shape[0])
            tgt = torch.where(valid, target.reshape(-1).to(logit.dtype), torch.zeros_like(logit))
            terms = F.binary_cross_entropy_with_logits(logit, tgt, reduction="none")
        elif self.kind == "multilabel":
            tgt = torch.where(valid, target.to(pred.dtype), torch.zeros_like(pred))
            terms = F.binary_cross_entropy_with_logits(pred, tgt, reduction="none")
        elif self.kind == "ranking":
            terms, valid = pairwise_ranking_terms(pred.reshape(-1), target.reshape(-1), valid.reshape(-1))
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
        return terms, valid

    # ------------------------------------------------------------------ constant baseline
    def constant_prediction(self, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """The best constant prediction (``(out_features,)``, float32) for this task's loss on the
        labelled entries of ``target`` (missing labels are ignored).

        multiclass: log class frequencies (+1e-6 each); binary / multilabel: logits of the label
        frequencies (clipped to [1e-6, 1 - 1e-6]); regression / reconstruction, per output: the
        mean (mse), the median (l1) or the Huber location (huber, δ = 1). An output without any
        label predicts 0.
        """
        n = target.shape[0]
        valid = self.label_mask(target, mask).reshape(n, -1).cpu()
        target = target.detach().cpu()
        if self.kind == "multiclass":
            c = self.num_classes or 0
            y = target.reshape(n, -1)[valid].long() if self.elements > 1 else target.reshape(n, -1)[:, 0][valid[:, 0]].long()
            counts = torch.bincount(y, minlength=c).double()
            p = (counts + 1e-6) / (counts.sum() + 1e-6 * c)
            return p.log().float().repeat_interleave(self.elements)
        if self.kind == "ranking":  # every constant gives the same loss (1 per ordered pair)
            return torch.zeros(1)
        if self.kind in ("binary", "multilabel"):
            y = target.reshape(n, -1).float()
            p = (torch.where(valid, y, torch.zeros_like(y)).sum(0) / valid.sum(0).clamp_min(1)).clamp(1e-6, 1 - 1e-6)
            return (p / (1 - p)).log()[: self.out_features]
        y = target.reshape(n, -1).double()
        name = self.loss_name or "mse"
        if name == "l1":
            return torch.stack([y[valid[:, d], d].median() if valid[:, d].any() else y.new_zeros(())
                                for d in range(y.shape[1])]).float()
        mean = torch.where(valid, y, torch.zeros_like(y)).sum(0) / valid.sum(0).clamp_min(1)
        return (mean if name == "mse" else _huber_location(y, valid)).float()

    def constant_baseline(self, target: Tensor, mask: Tensor | None = None) -> float:
        """:meth:`loss` of :meth:`constant_prediction` on the labelled entries of ``target``:
        what a model that ignores its input achieves (the entropy of the label prior for the
        classification kinds, about the label variance for mse)."""
        const = self.constant_prediction(target, mask)
        pred = const.expand(target.shape[0], -1)
        return float(self.loss(pred, target.detach().cpu(), None if mask is None else mask.cpu()))

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
            n = pred.shape[0]
            scores = pred.reshape(n, self.num_classes or 0, -1) if self.elements > 1 else pred
            hit = (scores.argmax(dim=1) == target.reshape(valid.shape).long()) & valid
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
        elif self.kind == "ranking":
            v = valid.reshape(-1)
            out["kendall_tau"] = kendall_tau(pred.reshape(-1)[v].numpy(), target.reshape(-1)[v].float().numpy())
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
            per_sample = 1 if target.dim() == 1 else int(np.prod(target.shape[1:]))
            if per_sample != self.elements:
                raise DataError(f"{where}: task '{self.name}' (multiclass) has dim {self.elements} but the data "
                                f"column has {per_sample} labels per sample")
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


def _huber_location(y: Tensor, valid: Tensor, iters: int = 100) -> Tensor:
    """Per column, the ``c`` minimising the mean Huber loss (δ = 1) to the labelled ``y``: the
    root of ``Σ clip(c - y, -1, 1)`` (non-decreasing in ``c``), found by bisection."""
    big = torch.finfo(y.dtype).max
    lo = torch.where(valid, y, torch.full_like(y, big)).amin(0)
    hi = torch.where(valid, y, torch.full_like(y, -big)).amax(0)
    empty = ~valid.any(0)
    lo, hi = torch.where(empty, 0.0, lo), torch.where(empty, 0.0, hi)
    for _ in range(iters):
        mid = (lo + hi) / 2
        slope = torch.where(valid, (mid - y).clamp(-1.0, 1.0), torch.zeros_like(y)).sum(0)
        lo, hi = torch.where(slope < 0, mid, lo), torch.where(slope < 0, hi, mid)
    return (lo + hi) / 2


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank statistic (ties get average ranks); NaN if one class."""
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def pairwise_ranking_terms(scores: Tensor, labels: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """The ``(N, N)`` terms ``max(0, 1 - (s_i - s_j))²`` (eq. 7 of Strezoski et al. 2019) and the
    mask of the pairs they count for: both labelled and ``y_i > y_j``."""
    y = torch.where(valid, labels.to(scores.dtype), torch.zeros_like(scores))
    diff = scores.unsqueeze(1) - scores.unsqueeze(0)
    terms = torch.clamp(1.0 - diff, min=0.0) ** 2
    pairs = valid.unsqueeze(1) & valid.unsqueeze(0) & (y.unsqueeze(1) > y.unsqueeze(0))
    return terms, pairs


def kendall_tau(scores: np.ndarray, labels: np.ndarray) -> float:
    """Kendall's τ-b between predicted scores and labels (NaN with fewer than two samples or a
    constant side)."""
    from scipy.stats import kendalltau

    if len(scores) < 2:
        return math.nan
    tau = kendalltau(np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)).statistic
    return float(tau) if tau is not None and np.isfinite(tau) else math.nan


def one_vs_all(column: str, classes: int, prefix: str | None = None) -> list[Task]:
    """``classes`` binary tasks ``{prefix}_{k}`` (prefix defaults to ``column``), task ``k`` telling
    class ``k`` of the class column ``column`` from all others (homogeneous multi-task learning)."""
    if classes < 2:
        raise ConfigError(f"one_vs_all: needs at least 2 classes, got {classes}")
    stem = prefix or column
    return [Task(name=f"{stem}_{k}", kind="binary", target=column, positive=k) for k in range(classes)]


def stack_losses(tasks: list[Task] | tuple[Task, ...], preds: dict[str, Tensor], targets: dict[str, Tensor],
                 masks: dict[str, Tensor] | None = None) -> Tensor:
    """The loss vector ``losses[k]`` in the fixed order of ``tasks``."""
    masks = masks or {}
    return torch.stack([t.loss(preds[t.name], targets[t.name], masks.get(t.name)) for t in tasks])
