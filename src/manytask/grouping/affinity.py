"""Task affinities measured during one all-task training run, and groupings from them.

Two affinities, both sampled every ``every`` training steps of a single multi-task run
(uniform or configured weighting, all tasks, full width) and averaged over the run:

**Lookahead inter-task affinity** (TAG; Fifty et al., NeurIPS 2021, "Efficiently Identifying
Task Groupings for Multi-Task Learning", eq. 1-3). At step ``t`` with batch ``X^t``, shared
parameters ``θ_s`` and the optimizer's current learning rate ``η``, for each task ``i`` take
one step of the *shared* parameters on task ``i``'s loss alone, ``θ_{s|i}^{t+1}``, and
measure on the same batch, for every task ``j`` (task-specific heads unchanged),

    Z^t_{i→j} = (1 - L_j(X^t, θ_{s|i}^{t+1}, θ_j^t) / L_j(X^t, θ_s^t, θ_j^t)) / η.

``Z_{i→j} > 0``: a step for ``i`` lowers ``j``'s loss.

Variants (:data:`TAG_VARIANTS`; ``authors`` is the default):

========================  ===========================================  ==========================
                          ``authors`` (Fifty et al.'s released code)    ``plain`` (eq. 1-2 as printed)
========================  ===========================================  ==========================
lookahead step            the training optimizer's own update with       ``θ_s - η ∇_{θ_s} L_i``
                          ``∇_{θ_s} L_i`` as the gradient, from its
                          current state (SGD: ``θ_s - η (μ b + g_i +
                          λ θ_s)``, momentum buffer ``b``, weight decay
                          ``λ``; ``θ_s - η g_i`` before the first step)
scale                     ``Z`` divided by ``η``                        none
sampled steps             every step                                    every 10th
a task alone              ``S_{j}(j) = -1e6``: never serves itself      ``S_{j}(j) = 0``
========================  ===========================================  ==========================

Sources in google-research/tag: ``celeba/CelebA.ipynb`` (``train_step``: the lookahead uses
the Keras SGD momentum slot, ``base_update = momentum * slot - lr * grad``, plain ``lr * grad``
on the first step; ``task_gain = (1 - L_after / L_before) / lr``; measured on every batch,
averaged per epoch), ``taskonomy/tag.patch`` (``lookahead``: PyTorch SGD with momentum and
weight decay, the same ``/ lr``; measured every 10th batch), and
``network_selection/TAG_network_selection.ipynb`` (a single-task group scores ``-1e6``; a
group's score for a task is the mean of the affinities it receives from the other members; a
grouping scores the mean over tasks of each task's best group; overlapping groups allowed).
Any torch optimizer works here (a copy of each shared parameter and of its optimizer state takes
the step; Adam uses its moments), but the authors only used SGD with momentum.

The lookahead is a functional forward (:func:`torch.func.functional_call`) with the shared parameters replaced; the model, its
buffers and the optimizer are never touched, and the measurement is a step hook of the
:class:`~manytask.training.Trainer` (run with the random number generators forked), so the
training run itself is exactly the same as without the measurement (tested with dropout).
``Z = mean_t Z^t`` over the sampled steps, the paper's eq. 3 (pairs where ``L_j`` is zero, or
task ``i`` had no label in the batch, are skipped for that step); the authors' code keeps the
per-epoch means, here in :attr:`AffinityResult.per_epoch`.

**Gradient cosine similarity** (the cheaper signal; cf. Yu et al. 2020's conflicting
gradients): ``C^t_{ij} = cos(∇_{θ_s} L_i, ∇_{θ_s} L_j)`` on the batch, ``C = mean_t C^t``;
symmetric with ones on the diagonal.

Groupings from affinities
-------------------------
For a group ``G`` and a task ``j ∈ G`` the affinity ``j`` receives is

    S_G(j) = mean_{i ∈ G, i ≠ j} A[i, j]        (-1e6, or 0 with ``plain``, for a single-task group),

with ``A = Z`` (TAG) or ``A = C`` (cosine). :func:`affinity_table` turns this into a candidate
table of *predicted relative losses* ``L̂(G, j) = 1 - S_G(j)`` for every full-size candidate
network ``G`` (cost as measured, 1 for full size), so that exact network selection
(:func:`manytask.grouping.selection.select_many`) minimises
``sum_j min_{G ∈ S} (1 - S_G(j)) = n - sum_j max_{G ∈ S} S_G(j)``: it maximises the total
affinity each task receives from the best chosen group containing it, under the budget (the
number of full-size networks) — TAG's network-selection objective (Fifty et al., sec. 3.2,
where overlapping groups are allowed and a task is served by its highest-affinity group),
solved exactly. Half-size networks are left out: affinities say nothing about capacity. The
chosen groups are then trained fully and scored on their real test losses.

Compute
-------
A training step counts 3 forward-pass units (one forward, one backward ≈ two forwards). Each
sampled step adds ``k`` backward passes (one per task gradient, 2 units each) and, for TAG,
``k`` lookahead forward passes (1 unit each); :meth:`AffinityResult.compute_equivalents`
converts run + overhead into full-training equivalents.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from manytask.data.batch import Batch, TensorDataset
from manytask.errors import ConfigError, DataError
from manytask.grouping.table import Candidate, CandidateTable
from manytask.tasks import Task, stack_losses
from manytask.training.trainer import Trainer

__all__ = [
    "SINGLE_TASK_SCORE",
    "TAG_VARIANTS",
    "AffinityKind",
    "AffinityResult",
    "TagVariant",
    "affinity_table",
    "affinity_trainer",
    "gradient_cosine",
    "group_affinity",
    "grouping_affinity",
    "lookahead_affinity",
    "run_affinity",
    "train_with_affinity",
]

AffinityKind = Literal["tag", "cosine"]
AFFINITY_KINDS: tuple[str, ...] = ("tag", "cosine")
#: forward-pass units: a training step (forward + backward), one extra backward, one extra forward
STEP_UNITS, BACKWARD_UNITS, FORWARD_UNITS = 3.0, 2.0, 1.0
#: the score the authors' network selection gives a task in a group of its own (TAG_network_selection.ipynb)
SINGLE_TASK_SCORE = -1e6


@dataclass(frozen=True)
class TagVariant:
    """How affinities are measured and turned into groups (module docstring, "Variants").

    Attributes:
        lookahead: ``"optimizer"`` (the training optimizer's own update from its current state)
            or ``"sgd"`` (``θ_s - η ∇L_i``).
        scale: divide the lookahead affinity by the learning rate ``η``.
        every: sampling period in optimizer steps.
        single_task: ``S_{{j}}(j)``, the affinity a task receives in a group of its own.
    """

    lookahead: str
    scale: bool
    every: int
    single_task: float


#: ``authors``: Fifty et al.'s released code; ``plain``: the paper's eq. 1-2 taken literally
#: (this library's first version)
TAG_VARIANTS: dict[str, TagVariant] = {
    "authors": TagVariant(lookahead="optimizer", scale=True, every=1, single_task=SINGLE_TASK_SCORE),
    "plain": TagVariant(lookahead="sgd", scale=False, every=10, single_task=0.0),
}


@dataclass
class AffinityResult:
    """Averaged affinities of one run.

    Attributes:
        kind: ``"tag"`` (``matrix[i, j] = Z_{i→j}``) or ``"cosine"`` (symmetric, unit diagonal).
        tasks: task order of the matrix.
        matrix: the averaged affinities (k × k; NaN where never measured).
        counts: number of sampled steps behind each cell.
        every: sampling period in training steps.
        samples: number of sampled steps.
        train_steps: optimizer steps of the run.
        steps_per_epoch, epochs_run: the run's schedule.
        extra_backward, extra_forward: passes spent on the measurement.
        seconds: wall time of the run.
        per_epoch: the affinity matrix averaged within each epoch (how it evolves).
        val, test: per-task metrics of the all-task model at the end of the run.
    """

    kind: str
    tasks: tuple[str, ...]
    matrix: np.ndarray
    counts: np.ndarray
    every: int
    samples: int
    train_steps: int
    steps_per_epoch: int
    epochs_run: int
    extra_backward: int
    extra_forward: int
    seconds: float = 0.0
    per_epoch: list[np.ndarray] = field(default_factory=list)
    val: dict[str, dict[str, float]] = field(default_factory=dict)
    test: dict[str, dict[str, float]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    lookahead: str = "sgd"
    scale: bool = False

    def __getitem__(self, key: tuple[str, str]) -> float:
        i, j = key
        return float(self.matrix[self.tasks.index(i), self.tasks.index(j)])

    def overhead_equivalents(self, full_epochs: int) -> float:
        """Measurement overhead in full-training equivalents:
        ``(2 * extra_backward + extra_forward) / 3 / (steps_per_epoch * full_epochs)``."""
        units = BACKWARD_UNITS * self.extra_backward + FORWARD_UNITS * self.extra_forward
        return units / STEP_UNITS / (self.steps_per_epoch * full_epochs)

    def run_equivalents(self, full_epochs: int, cost: float = 1.0) -> float:
        """The all-task training run itself: ``epochs_run * cost / full_epochs``."""
        return self.epochs_run * cost / full_epochs

    def compute_equivalents(self, full_epochs: int, cost: float = 1.0) -> float:
        """Run plus measurement overhead, in full-training equivalents."""
        return self.run_equivalents(full_epochs, cost) + self.overhead_equivalents(full_epochs)

    def to_markdown(self, digits: int = 4) -> str:
        """The matrix as a markdown table (row = source task i, column = target task j)."""
        from manytask.reporting.tables import markdown_table

        corner = "i → j" if self.kind == "tag" else "cos"
        rows = [[t] + ["—" if not math.isfinite(x) else f"{x:+.{digits}f}" for x in self.matrix[i]]
                for i, t in enumerate(self.tasks)]
        return markdown_table([corner, *self.tasks], rows, pad=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        d["matrix"] = _nan_to_none(self.matrix.tolist())
        d["counts"] = self.counts.astype(int).tolist()
        d["per_epoch"] = [_nan_to_none(m.tolist()) for m in self.per_epoch]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AffinityResult:
        d = dict(d)
        d["tasks"] = tuple(d["tasks"])
        d["matrix"] = np.array(_none_to_nan(d["matrix"]), dtype=float)
        d["counts"] = np.array(d["counts"], dtype=np.int64)
        d["per_epoch"] = [np.array(_none_to_nan(m), dtype=float) for m in d.get("per_epoch", [])]
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        from manytask.atomic import atomic_write_json

        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> AffinityResult:
        p = Path(path)
        try:
            return cls.from_dict(json.loads(p.read_text()))
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{p}: not an affinity file ({type(err).__name__}: {err})") from None


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _none_to_nan(x: Any) -> Any:
    if isinstance(x, list):
        return [_none_to_nan(v) for v in x]
    return math.nan if x is None else x


# ------------------------------------------------------------------------------ one batch
def _shared_names(model: nn.Module) -> list[str]:
    shared_fn = getattr(model, "shared_parameters", None)
    shared = list(shared_fn()) if callable(shared_fn) else list(model.parameters())
    ids = {id(p) for p in shared}
    names = [n for n, p in model.named_parameters() if id(p) in ids]
    if not names:
        raise ConfigError("affinity: the model has no shared parameters")
    return names


def _task_grads(model: nn.Module, names: Sequence[str], losses: Tensor, active: Sequence[bool]) -> list[list[Tensor] | None]:
    """∇_{θ_s} L_i for every task (None for a task without labels in the batch)."""
    params = dict(model.named_parameters())
    plist = [params[n] for n in names]
    out: list[list[Tensor] | None] = []
    for i in range(losses.shape[0]):
        if not active[i]:
            out.append(None)
            continue
        gs = torch.autograd.grad(losses[i], plist, retain_graph=True, allow_unused=True)
        out.append([torch.zeros_like(p) if g is None else g.detach() for p, g in zip(plist, gs)])
    return out


def _has_labels(tasks: Sequence[Task], batch: Batch) -> list[bool]:
    return [bool(t.label_mask(batch.targets[t.name], batch.masks.get(t.name)).any()) for t in tasks]


def _sgd_update(params: Mapping[str, Tensor], names: Sequence[str], grads: Sequence[Tensor],
                lr: float) -> dict[str, Tensor]:
    """``θ_s - lr ∇_{θ_s} L_i``: the plain SGD step of the paper's eq. 1."""
    return {n: params[n] - lr * g for n, g in zip(names, grads)}


def _optimizer_update(optimizer: torch.optim.Optimizer, model: nn.Module, names: Sequence[str],
                      grads: Sequence[Tensor]) -> dict[str, Tensor]:
    """The shared parameters after the step ``optimizer`` would take with ``grads`` as their
    gradients: its own update rule, hyperparameters and current state (SGD: weight decay and the
    momentum buffer, ``θ - η (μ b + g + λ θ)``, or ``θ - η g`` before the first step; Adam: its
    moments and step count). A copy of each parameter and of its state takes the step, so the
    optimizer and the model are left untouched."""
    import copy

    params = dict(model.named_parameters())
    group_of = {id(p): gi for gi, g in enumerate(optimizer.param_groups) for p in g["params"]}
    groups: dict[int, list[tuple[str, Tensor, Tensor]]] = {}
    for n, g in zip(names, grads):
        p = params[n]
        if id(p) not in group_of:
            raise ConfigError(f"affinity: shared parameter '{n}' is not in the optimizer")
        q = p.detach().clone()
        q.grad = g.detach().clone().to(q.dtype)
        groups.setdefault(group_of[id(p)], []).append((n, p, q))
    new: dict[str, Tensor] = {}
    for gi, items in groups.items():
        hyper = {k: v for k, v in optimizer.param_groups[gi].items() if k != "params"}
        shadow = type(optimizer)([{**hyper, "params": [q for _, _, q in items]}])
        for _, p, q in items:
            if p in optimizer.state and optimizer.state[p]:  # noqa: RUF019 - state is a defaultdict: never insert
                shadow.state[q] = copy.deepcopy(optimizer.state[p])
        with torch.no_grad():
            shadow.step()
        new.update({n: q.detach() for n, _, q in items})
    return new


def _lookahead_from_grads(model: nn.Module, tasks: Sequence[Task], batch: Batch, names: Sequence[str],
                          grads: Sequence[list[Tensor] | None], before: Tensor, lr: float,
                          active: Sequence[bool], optimizer: torch.optim.Optimizer | None = None,
                          scale: bool = False) -> tuple[Tensor, Tensor]:
    """``Z[i, j]`` for every task pair: ``optimizer`` given, the lookahead is its own update
    (:func:`_optimizer_update`), else plain SGD with ``lr``; ``scale`` divides by ``lr``."""
    k = len(tasks)
    Z = torch.full((k, k), math.nan, dtype=torch.float64)
    valid = torch.zeros((k, k), dtype=torch.bool)
    params = {n: p.detach() for n, p in model.named_parameters()}
    for i in range(k):
        gi = grads[i]
        if gi is None:
            continue
        new = dict(params)
        if optimizer is not None:
            new.update(_optimizer_update(optimizer, model, names, gi))
        else:
            new.update(_sgd_update(params, names, gi, lr))
        buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
        with torch.no_grad():
            preds = functional_call(model, (new, buffers), batch.model_args)
            after = stack_losses(list(tasks), preds, batch.targets, batch.masks).double()
        for j in range(k):
            if active[j] and float(before[j]) > 0:
                Z[i, j] = (1.0 - float(after[j]) / float(before[j])) / (lr if scale else 1.0)
                valid[i, j] = True
    return Z, valid


def _cosine_from_grads(grads: Sequence[list[Tensor] | None]) -> tuple[Tensor, Tensor]:
    k = len(grads)
    C = torch.full((k, k), math.nan, dtype=torch.float64)
    valid = torch.zeros((k, k), dtype=torch.bool)
    flat = [None if g is None else torch.cat([x.reshape(-1) for x in g]).double() for g in grads]
    norms = [None if f is None else float(f.norm()) for f in flat]
    for i in range(k):
        for j in range(k):
            fi, fj, ni, nj = flat[i], flat[j], norms[i], norms[j]
            if fi is None or fj is None or not ni or not nj:
                continue
            C[i, j] = 1.0 if i == j else float(fi @ fj) / (ni * nj)
            valid[i, j] = True
    return C, valid


def _forward(model: nn.Module, batch: Batch) -> tuple[Tensor | None, dict[str, Tensor]]:
    fwf = getattr(model, "forward_with_features", None)
    if callable(fwf):
        return fwf(*batch.model_args)
    return None, model(*batch.model_args)


def lookahead_affinity(model: nn.Module, tasks: Sequence[Task], batch: Batch, lr: float, *,
                       optimizer: torch.optim.Optimizer | None = None, scale: bool = False) -> Tensor:
    """TAG's ``Z^t_{i→j}`` on one batch (k × k, NaN where undefined); the model is unchanged.

    ``Z[i, j] = 1 - L_j(θ_{s|i}) / L_j(θ_s)`` with the task heads fixed, where ``θ_{s|i}`` is
    ``θ_s - lr ∇_{θ_s} L_i`` (plain SGD, the paper's eq. 1) or, with ``optimizer``, the step that
    optimizer would take from its current state with ``∇_{θ_s} L_i`` as the gradient (the
    authors' code: SGD with momentum); ``scale`` divides ``Z`` by ``lr`` (the authors' code).
    """
    names = _shared_names(model)
    _, preds = _forward(model, batch)
    losses = stack_losses(list(tasks), preds, batch.targets, batch.masks)
    active = _has_labels(tasks, batch)
    grads = _task_grads(model, names, losses, active)
    Z, _ = _lookahead_from_grads(model, tasks, batch, names, grads, losses.detach().double(), lr, active,
                                 optimizer=optimizer, scale=scale)
    return Z


def gradient_cosine(model: nn.Module, tasks: Sequence[Task], batch: Batch) -> Tensor:
    """Cosine similarity of the per-task gradients of the shared parameters on one batch."""
    names = _shared_names(model)
    _, preds = _forward(model, batch)
    losses = stack_losses(list(tasks), preds, batch.targets, batch.masks)
    active = _has_labels(tasks, batch)
    C, _ = _cosine_from_grads(_task_grads(model, names, losses, active))
    return C


# ------------------------------------------------------------------------------ a whole run
class _AffinityMeter:
    """The :data:`~manytask.training.trainer.StepHook` of an affinity run: on every ``every``-th
    step (``0, every, 2·every, …``) the per-task gradients of the shared parameters are taken
    from the step's own forward graph, before the update, and the affinity of ``kind`` is added
    to the current epoch's sums."""

    def __init__(self, trainer: Trainer, kind: str, every: int, lookahead: str = "optimizer",
                 scale: bool = True) -> None:
        self.trainer, self.kind, self.every = trainer, kind, every
        self.lookahead, self.scale = lookahead, scale
        k = len(trainer.tasks)
        self.names = _shared_names(trainer.model)
        self.total = torch.zeros((k, k), dtype=torch.float64)
        self.count = torch.zeros((k, k), dtype=torch.int64)
        self.epoch_total = torch.zeros_like(self.total)
        self.epoch_count = torch.zeros_like(self.count)
        self.per_epoch: list[np.ndarray] = []
        self.steps = self.samples = self.extra_backward = self.extra_forward = 0

    def __call__(self, model: nn.Module, batch: Batch, losses: Tensor) -> None:
        step, self.steps = self.steps, self.steps + 1
        if step % self.every:
            return
        tasks = self.trainer.tasks
        active = _has_labels(tasks, batch)
        grads = _task_grads(model, self.names, losses, active)
        self.extra_backward += sum(active)
        if self.kind == "tag":
            opt = self.trainer.optimizer
            lr = float(_shared_group(opt, model, self.names)["lr"])
            before = losses.detach().double().cpu()
            A, ok = _lookahead_from_grads(model, tasks, batch, self.names, grads, before, lr, active,
                                          optimizer=opt if self.lookahead == "optimizer" else None,
                                          scale=self.scale)
            self.extra_forward += sum(active)
        else:
            A, ok = _cosine_from_grads(grads)
        self.epoch_total += torch.where(ok, A, torch.zeros_like(A))
        self.epoch_count += ok.long()
        self.samples += 1

    def end_epoch(self) -> None:
        self.total += self.epoch_total
        self.count += self.epoch_count
        self.per_epoch.append(_mean(self.epoch_total, self.epoch_count))
        self.epoch_total = torch.zeros_like(self.total)
        self.epoch_count = torch.zeros_like(self.count)


def _shared_group(optimizer: torch.optim.Optimizer, model: nn.Module, names: Sequence[str]) -> dict[str, Any]:
    """The optimizer's parameter group of the first shared parameter (its ``lr`` is ``η``)."""
    first = dict(model.named_parameters())[names[0]]
    for g in optimizer.param_groups:
        if any(p is first for p in g["params"]):
            return g
    return optimizer.param_groups[0]


def train_with_affinity(trainer: Trainer, train: TensorDataset, *, kind: str = "tag", every: int = 1,
                        val: TensorDataset | None = None, test: TensorDataset | None = None,
                        progress: bool = False, lookahead: str = "optimizer", scale: bool = True) -> AffinityResult:
    """Train ``trainer.model`` for ``trainer.epochs`` epochs and sample affinities on the way.

    The training is :meth:`Trainer.train_epoch <manytask.training.Trainer.train_epoch>` itself,
    epoch after epoch (so every weighting hook and the learning-rate schedule behave as in
    ``fit``, and the run ends exactly where an unmeasured one would); the measurement is its
    step hook (:class:`_AffinityMeter`). ``val`` / ``test`` are scored with
    ``trainer.evaluate`` at the end (last epoch's weights). ``lookahead`` (``"optimizer"`` or
    ``"sgd"``), ``scale`` and ``every``: see :class:`TagVariant` (defaults: the authors' code).
    """
    if lookahead not in ("optimizer", "sgd"):
        raise ConfigError(f"lookahead must be 'optimizer' or 'sgd', got {lookahead!r}")
    if kind not in AFFINITY_KINDS:
        raise ConfigError(f"affinity kind must be one of {', '.join(AFFINITY_KINDS)}, got '{kind}'")
    if every < 1:
        raise ConfigError(f"tag_every must be >= 1, got {every}")
    tasks = list(trainer.tasks)
    if len(tasks) < 2:
        raise ConfigError("affinity needs at least two tasks")
    meter = _AffinityMeter(trainer, kind, every, lookahead, scale)
    steps_per_epoch = 0
    t0 = time.perf_counter()
    for epoch in range(1, trainer.epochs + 1):
        out = trainer.train_epoch(train, epoch, inspect=meter)
        meter.end_epoch()
        steps_per_epoch = max(steps_per_epoch, int(out["steps"]))
        if progress:
            print(f"[affinity {kind}] epoch {epoch}/{trainer.epochs}: {meter.samples} samples", file=sys.stderr)
    res = AffinityResult(
        kind=kind, tasks=tuple(t.name for t in tasks), matrix=_mean(meter.total, meter.count),
        counts=meter.count.numpy(), every=every, samples=meter.samples, train_steps=meter.steps,
        steps_per_epoch=steps_per_epoch, epochs_run=trainer.epochs, extra_backward=meter.extra_backward,
        extra_forward=meter.extra_forward, seconds=time.perf_counter() - t0, per_epoch=meter.per_epoch,
        lookahead=lookahead if kind == "tag" else "none", scale=bool(scale and kind == "tag"),
    )
    if val is not None:
        res.val = trainer.evaluate(val)
    if test is not None:
        res.test = trainer.evaluate(test)
    return res


def _mean(total: Tensor, count: Tensor) -> np.ndarray:
    out = (total / count.clamp_min(1)).numpy().copy()
    out[count.numpy() == 0] = np.nan
    return out


def affinity_trainer(cfg: Any, *, epochs: int | None = None, seed: int | None = None,
                     threads: int = 1) -> tuple[Trainer, Any]:
    """The all-task, full-width trainer of an affinity run and the data splits: the trainer
    :func:`run_affinity` measures, built the same way for an unmeasured run (tests)."""
    from manytask.experiment import (
        build_data,
        build_model,
        columns_for,
        input_shape,
        make_trainer,
        task_splits,
    )
    from manytask.grouping.candidates import pin_data_seed

    cfg = pin_data_seed(cfg)
    seed = cfg.seed if seed is None else int(seed)
    tasks = cfg.build_tasks()
    splits = task_splits(build_data(cfg, columns_for(tasks)), tasks)
    torch.manual_seed(seed)
    model = build_model(cfg, tasks, input_shape(splits))
    cfg_t = cfg.model_copy(update={"training": cfg.training.model_copy(update={"threads": threads})})
    trainer = make_trainer(cfg_t, tasks, model, splits.train, seed=seed, epochs=epochs, progress=False)
    return trainer, splits


def run_affinity(cfg: Any, out_dir: str | Path | None = None, *, kind: str = "tag", every: int | None = None,
                 epochs: int | None = None, seed: int | None = None, threads: int = 1,
                 progress: bool = False, variant: str = "authors") -> AffinityResult:
    """One all-task, full-width run of ``cfg`` (its weighting and optimizer) with affinities.

    With ``out_dir``, the result is saved to ``out_dir/affinity.json`` and a finished file with
    the same settings is read back instead of training again.

    Args:
        cfg: an :class:`~manytask.config.ExperimentConfig`.
        kind: ``"tag"`` (lookahead) or ``"cosine"``.
        every: sample every ``every`` optimizer steps (default: the variant's; ``authors``: 1).
        variant: ``"authors"`` or ``"plain"`` (:data:`TAG_VARIANTS`): how the lookahead steps.
        epochs: length of the run (default: the config's epochs).
        seed: run seed (default: the config's seed).
    """
    from manytask.grouping.candidates import pin_data_seed

    if variant not in TAG_VARIANTS:
        raise ConfigError(f"tag variant must be one of {', '.join(TAG_VARIANTS)}, got {variant!r}")
    v = TAG_VARIANTS[variant]
    every = v.every if every is None else int(every)
    cfg = pin_data_seed(cfg)
    epochs = int(epochs or cfg.training.epochs)
    seed = cfg.seed if seed is None else int(seed)
    settings = {"kind": kind, "every": every, "epochs": epochs, "seed": seed,
                "weighting": cfg.weighting.name, "config": cfg.to_dict()}
    if kind == "tag":
        settings.update(lookahead=v.lookahead, scale=v.scale)
    path = Path(out_dir) / "affinity.json" if out_dir is not None else None
    if path is not None and path.exists():
        old = AffinityResult.load(path)
        if old.settings == json.loads(json.dumps(settings)):
            return old
        raise DataError(f"{path}: was measured with other settings; use another output folder")
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        trainer, splits = affinity_trainer(cfg, epochs=epochs, seed=seed, threads=threads)
        res = train_with_affinity(trainer, splits.train, kind=kind, every=every, val=splits.val,
                                  test=splits.test, progress=progress, lookahead=v.lookahead, scale=v.scale)
    finally:
        torch.set_num_threads(prev)
    res.settings = json.loads(json.dumps(settings))
    if path is not None:
        res.save(path)
    return res


# ------------------------------------------------------------------------------ groupings
def group_affinity(matrix: np.ndarray, tasks: Sequence[str], group: Sequence[str],
                   single_task: float = 0.0) -> dict[str, float]:
    """``S_G(j) = mean_{i ∈ G, i ≠ j} A[i, j]`` for every ``j`` in ``group`` (``single_task``
    when alone: 0 by default; the authors' selection uses :data:`SINGLE_TASK_SCORE`).

    Cells never measured (NaN) are left out of the mean.
    """
    idx = {t: i for i, t in enumerate(tasks)}
    unknown = [t for t in group if t not in idx]
    if unknown:
        raise ConfigError(f"affinity: unknown task(s) {unknown}")
    out: dict[str, float] = {}
    for j in group:
        vals = [matrix[idx[i], idx[j]] for i in group if i != j]
        vals = [v for v in vals if math.isfinite(v)]
        out[j] = float(single_task) if len(group) == 1 else (float(np.mean(vals)) if vals else 0.0)
    return out


def grouping_affinity(matrix: np.ndarray, tasks: Sequence[str], groups: Sequence[Sequence[str]],
                      single_task: float = 0.0) -> float:
    """Total affinity of a grouping: ``sum_j max_{G ∋ j} S_G(j)`` (TAG's objective; a task in
    several groups counts the best one; ``single_task`` as in :func:`group_affinity`)."""
    best: dict[str, float] = {}
    for g in groups:
        for j, s in group_affinity(matrix, tasks, g, single_task).items():
            best[j] = max(best.get(j, -math.inf), s)
    return math.fsum(best.values())


def affinity_table(result: AffinityResult, specs: Sequence[Any], *, full_only: bool = True,
                   single_task: float = SINGLE_TASK_SCORE) -> CandidateTable:
    """Candidate table of predicted relative losses ``L̂(G, j) = 1 - S_G(j)`` (module docstring).

    Args:
        result: measured affinities.
        specs: :class:`~manytask.grouping.candidates.CandidateSpec` s (or objects with
            ``tasks``, ``cost``, ``width``, ``name``); with ``full_only`` only width-1 ones.
        single_task: ``S_{j}(j)`` of a single-task group: the authors' ``-1e6`` (a task is
            never served by a group of its own while another chosen group holds it), or 0
            (the ``plain`` variant).
    """
    cands = []
    for s in specs:
        if full_only and float(s.width) != 1.0:
            continue
        S = group_affinity(result.matrix, result.tasks, s.tasks, single_task)
        cands.append(Candidate(frozenset(s.tasks), s.cost, {j: 1.0 - S[j] for j in s.tasks},
                               extra={"name": s.name, "width": repr(float(s.width)), "approximation": result.kind}))
    if not cands:
        raise ConfigError("affinity: no full-size candidate to predict")
    return CandidateTable(result.tasks, cands, source=f"{result.kind} affinity")
