"""Class-wise weights on auxiliary tasks for one main task (Yim & Kim, "Learning boost by
exploiting the auxiliary task in multi-task domain", 2020, section 4 and Algorithm 1).

The update of the network is the sum of the main loss and, for every auxiliary task, its loss
split by auxiliary class c and weighted per class (eq. 2-4)::

    L = L_main + Σ_aux L_aux,      L_aux = Σ_c w^c (1/N) Σ_{i: y_i = c} D_aux(y_i, o_i)

(N: the labelled elements of the batch; an element is a sample, or a pixel for dense labels).
With all ``w^c = 1`` this is the linear sum of the task losses. The weights start at 1, stay
fixed for ``warmup_epochs`` epochs (the paper: 12-20 epochs), then follow eq. (9)-(10) once per
time step t (a window of ``window`` batches; the paper's unit is a batch or a set of batches)::

    g_t^c = [(L_main^c(t) - L_main^c(t-1)) / L_main^c(0) + ε]
            / [(L_aux^c(t) - L_aux^c(t-1)) / L_aux^c(0) + ε]  ×  (1/N) Σ_{y_i = c} D_aux      (10)
    w^c ← ReLU(w^c - α m̂_t / (√v̂_t + ε))         (Adam moments of g_t, β₁, β₂)               (9)

``L_main^c`` is the main loss over the points whose auxiliary label is c (the same pixel for
dense labels; see :func:`~manytask.weighting._classwise.main_class_sums` for per-sample/dense
mixes). A window's class losses are its batches' sums over its element counts.

Our reading where the paper leaves room:

* ``L_aux^c(t)`` in eq. (10) is eq. (4)'s *weighted* class loss ``w^c (1/N) Σ D`` (the paper
  defines it so); with it, eq. (8) is a finite difference of L_main^c in w^c when ``D`` changes
  little between two steps: ``ΔL_main / (Δw · D) · D = ΔL_main / Δw``.
* The finite difference compares two consecutive windows (no extra forward pass, no virtual
  step); ``L(0)`` is a class's value in the first window where it occurs (training start), and a
  class absent from a window keeps its weight, its moments and its previous value.
* ε is the same constant in eq. (9) and (10) (the paper: "a small constant ϵ"); a non-finite g
  (zero denominator) counts as 0. Adam's step count is per class, from the first update.
* Continuous auxiliary labels (regression/reconstruction) are discretised into ``bins``
  equal-width classes over the training targets' range (or the given ``bin_edges``).

Every task other than ``main`` is auxiliary; ``main`` is a hyperparameter, so one ``compare``
command runs both role assignments (``classwise_aux[main=a]``, ``classwise_aux[main=b]``).
``StepInfo.weights``: 1 for the main task, for an auxiliary task its weighted loss over its plain
loss; ``StepInfo.extra``: every class weight as ``cw/<task>/<class>`` (steps.jsonl).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from manytask.errors import ConfigError
from manytask.tasks import Task
from manytask.weighting import _classwise as cw
from manytask.weighting import _validate
from manytask.weighting.base import SharedParts, StepInfo, WeightingMethod, register

if TYPE_CHECKING:
    from manytask.data.batch import TensorDataset

_STATS = ("main_now", "aux_mean", "main_prev", "aux_prev", "main_first", "aux_first", "m", "v")


@register
class ClasswiseAux(WeightingMethod):
    """Main loss plus class-weighted auxiliary losses, the class weights learnt online.

    Args:
        tasks: the tasks in loss order.
        main: the main task's name (default: the first task); all others are auxiliary.
        alpha: step size α of eq. (9) (default 2e-4, the paper's usual value).
        warmup_epochs: epochs with all weights fixed at 1 before the first update (default 1).
        window: batches per time step t (default 1: every batch).
        bins: classes of a continuous auxiliary task (default 10).
        bin_edges: ``{task: inner edges}`` for continuous auxiliary tasks (else from ``from_train``).
        eps, beta1, beta2: ε of eq. (9)-(10) and Adam's moment decays.
    """

    name = "classwise_aux"
    display_name = "Class-wise aux"
    wants_loss_terms = True

    def __init__(self, tasks: Sequence[Task], main: str | None = None, alpha: float = 2e-4,
                 warmup_epochs: int = 1, window: int = 1, bins: int = 10,
                 bin_edges: Mapping[str, Sequence[float]] | None = None, eps: float = 1e-8,
                 beta1: float = 0.9, beta2: float = 0.999) -> None:
        super().__init__(tasks)
        if self.k < 2:
            raise ConfigError(f"weighting '{self.name}': needs a main task and at least one auxiliary task")
        self.main = self.task_names[0] if main is None else str(main)
        if self.main not in self.task_names:
            raise ConfigError(f"weighting '{self.name}': main must be one of {', '.join(self.task_names)}, got {main!r}")
        self.main_index = self.task_names.index(self.main)
        self.alpha = _validate.number(self.name, "alpha", alpha, low=0.0, low_inclusive=True)
        self.warmup_epochs = _validate.integer(self.name, "warmup_epochs", warmup_epochs, low=0)
        self.window = _validate.integer(self.name, "window", window)
        self.bins = _validate.integer(self.name, "bins", bins, low=2)
        self.eps = _validate.number(self.name, "eps", eps, low=0.0, low_inclusive=True)
        self.beta1 = _validate.number(self.name, "beta1", beta1, low=0.0, low_inclusive=True, high=1.0, high_inclusive=False)
        self.beta2 = _validate.number(self.name, "beta2", beta2, low=0.0, low_inclusive=True, high=1.0, high_inclusive=False)
        self.aux = [t for t in self.tasks if t.name != self.main]
        self.edges = {t.name: self._edges(t, bin_edges or {}) for t in self.aux}
        sizes = [self._num_classes(t) for t in self.aux]
        self.offsets = [sum(sizes[:j]) for j in range(len(sizes) + 1)]
        total = self.offsets[-1]
        self.register_buffer("class_weights", torch.ones(total, dtype=torch.float64))
        self.register_buffer("stats", torch.zeros(len(_STATS), total, dtype=torch.float64))
        self.register_buffer("adam_steps", torch.zeros(total, dtype=torch.long))
        self.register_buffer("seen", torch.zeros(total, dtype=torch.bool))
        self.register_buffer("acc", torch.zeros(4, total, dtype=torch.float64))  # main Σ, main n, aux Σ, aux N
        self.register_buffer("counters", torch.zeros(2, dtype=torch.long))  # epochs seen, batches in window

    # ------------------------------------------------------------------ classes
    def _edges(self, task: Task, given: Mapping[str, Sequence[float]]) -> Tensor | None:
        if task.kind in ("binary", "multiclass"):
            return None
        if task.kind == "multilabel":
            raise ConfigError(f"weighting '{self.name}': auxiliary task '{task.name}' is multilabel (not supported)")
        if task.name not in given:
            return None  # set by from_train; checked when the first batch comes
        edges = torch.tensor([float(e) for e in given[task.name]], dtype=torch.float64)
        if edges.numel() < 1 or bool((edges[1:] <= edges[:-1]).any()):
            raise ConfigError(f"weighting '{self.name}': bin_edges['{task.name}'] must increase, got {list(given[task.name])}")
        return edges

    def _num_classes(self, task: Task) -> int:
        if task.kind == "binary":
            return 2
        if task.kind == "multiclass":
            return int(task.num_classes or 0)
        edges = self.edges[task.name]
        return self.bins if edges is None else edges.numel() + 1

    @classmethod
    def from_train(cls, tasks: Sequence[Task], train: TensorDataset, **params: Any) -> WeightingMethod:
        """Equal-width bins over each continuous auxiliary task's training targets."""
        given = dict(params.pop("bin_edges", None) or {})
        bins = params.get("bins", 10)
        main = params.get("main") or (tasks[0].name if tasks else None)
        for t in tasks:
            if (t.name != main and t.kind in ("regression", "reconstruction") and t.name not in given
                    and isinstance(bins, int) and bins >= 2):
                y = train.targets[t.name].double()
                y = y[torch.isfinite(y)]
                if y.numel():
                    given[t.name] = cw.equal_width_edges(float(y.min()), float(y.max()), bins).tolist()
        return cls(tasks, bin_edges=given, **params)

    def classes_of(self, task: Task, target: Tensor, valid: Tensor) -> Tensor:
        """The auxiliary class of every element, ``(N, P)`` long (anything where not ``valid``)."""
        n = valid.shape[0]
        if task.kind in ("binary", "multiclass"):
            y = target.reshape(n, -1)
            y = torch.where(valid, y.nan_to_num(0.0) if y.is_floating_point() else y, torch.zeros_like(y))
            return y.long()
        edges = self.edges[task.name]
        if edges is None:
            raise ConfigError(f"weighting '{self.name}': continuous auxiliary task '{task.name}' needs "
                              "bin_edges (or a method built with from_train)")
        y = target.reshape(n, -1).double().nan_to_num(0.0)
        return cw.discretize(y, edges)

    # ------------------------------------------------------------------ step
    def backward(self, losses: Tensor, shared: SharedParts | None = None) -> StepInfo:
        self.check_losses(losses)
        if shared is None or shared.terms is None:
            raise ValueError(f"weighting '{self.name}': needs SharedParts.terms (the trainer gives them "
                             "to methods with wants_loss_terms)")
        main_terms, main_valid = shared.terms[self.main].flat()
        main_terms = main_terms.detach()
        total = losses[self.main_index]
        task_w = torch.ones(self.k, dtype=losses.dtype, device=losses.device)
        for j, task in enumerate(self.aux):
            terms, valid = shared.terms[task.name].flat()
            lo, hi = self.offsets[j], self.offsets[j + 1]
            classes = self.classes_of(task, shared.terms[task.name].target, valid)
            w_map = self.class_weights[lo:hi].to(terms.dtype)[classes]
            vf = valid.to(terms.dtype)
            weighted = (terms * w_map * vf).sum() / vf.sum().clamp_min(1.0)  # eq. (4)
            total = total + weighted
            plain = losses[self.task_names.index(task.name)].detach()
            if float(plain) > 0:
                task_w[self.task_names.index(task.name)] = weighted.detach() / plain
            self._accumulate(lo, hi, main_terms, main_valid, terms.detach(), valid, classes)
        total.backward()
        self.counters[1] += 1
        if int(self.counters[1]) >= self.window:
            self._end_window(shared)
        return StepInfo(weights=task_w.detach(), extra=self.weight_log())

    def _accumulate(self, lo: int, hi: int, main_terms: Tensor, main_valid: Tensor, terms: Tensor,
                    valid: Tensor, classes: Tensor) -> None:
        k = hi - lo
        m_sum, m_n = cw.main_class_sums(main_terms, main_valid, classes, valid, k)
        a_sum, _ = cw.class_sums(terms, valid, classes, k)
        acc = self.acc[:, lo:hi]
        acc[0] += m_sum.to(acc.device)
        acc[1] += m_n.to(acc.device)
        acc[2] += a_sum.to(acc.device)
        acc[3] += float(valid.sum())

    def _end_window(self, shared: SharedParts | None = None) -> None:
        """One time step t: the window's class losses, then eq. (10) and (9) after the warm-up
        (in data-parallel training, from the window's sums over every process)."""
        acc = self.acc if shared is None else shared.global_sum(self.acc).to(self.acc.device)
        s = self.stats
        present = (acc[1] > 0) & (acc[3] > 0)
        s[0] = torch.where(present, acc[0] / acc[1].clamp_min(1.0), s[0])          # L_main^c(t)
        s[1] = torch.where(present, acc[2] / acc[3].clamp_min(1.0), s[1])          # (1/N) Σ_{y=c} D
        aux_now = self.class_weights * s[1]                                        # L_aux^c(t), eq. (4)
        if int(self.counters[0]) >= self.warmup_epochs and self.alpha > 0:
            upd = present & self.seen
            if bool(upd.any()):
                g = cw.finite_difference_gradient(s[0], s[2], s[4], aux_now, s[3], s[5], s[1], self.eps)
                self.adam_steps[upd] += 1
                w, m, v = self.class_weights[upd], s[6][upd], s[7][upd]
                cw.adam_relu_step(w, g[upd], m, v, self.adam_steps[upd], self.alpha, self.beta1, self.beta2, self.eps)
                self.class_weights[upd], s[6][upd], s[7][upd] = w, m, v
        first = present & ~self.seen
        s[4] = torch.where(first, s[0], s[4])
        s[5] = torch.where(first, aux_now, s[5])
        s[2] = torch.where(present, s[0], s[2])
        s[3] = torch.where(present, aux_now, s[3])
        self.seen |= present
        self.acc.zero_()
        self.counters[1] = 0

    def on_epoch_end(self, epoch_mean_losses: Tensor) -> None:
        self.counters[0] += 1

    # ------------------------------------------------------------------ reading
    def weights_by_task(self) -> dict[str, list[float]]:
        """The current class weights of every auxiliary task."""
        w = self.class_weights.tolist()
        return {t.name: w[self.offsets[j]: self.offsets[j + 1]] for j, t in enumerate(self.aux)}

    def weight_log(self) -> dict[str, float]:
        return {f"cw/{task}/{c}": float(x) for task, ws in self.weights_by_task().items() for c, x in enumerate(ws)}
