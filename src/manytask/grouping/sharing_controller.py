"""Selective Sharing while training: gradient hooks, branch merging and the per-epoch log.

A :class:`SelectiveSharing` object is an epoch callback of :class:`~manytask.training.Trainer`::

    model = branched_model(trunk, tasks, hidden=[100, 50])
    sharing = SelectiveSharing(model, criterion="similarity")
    trainer = Trainer(model, tasks, callbacks=[sharing])
    trainer.fit(train, val)
    sharing.summary()   # groups, lock epoch, parameter counts, timings

During an epoch, a hook on the weight of each branch's first layer adds that weight's gradient
into a preallocated ``(S, out, in)`` buffer on the model's device (slot = step mod ``S``): no
copy to the host and no synchronisation per step. After the epoch's validation the records are
compressed (TT), clustered (HDBSCAN) and the branches of each cluster merged
(:mod:`manytask.grouping.selective_sharing` holds that mathematics). Once the stop rule fires the
hooks are removed and the buffers freed, so the rest of training runs the plain model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from manytask.errors import ConfigError
from manytask.grouping.selective_sharing import (
    CRITERIA,
    MERGES,
    cluster_vectors,
    groups_from_labels,
    merged_tensors,
    should_stop,
    survivor,
    tt_vector,
)

__all__ = ["SelectiveSharing", "first_weight", "merge_branches", "trainable_parameters"]


def first_weight(branch: nn.Module) -> nn.Parameter:
    """The weight of a branch's first layer (its first parameter with two or more dimensions)."""
    for p in branch.parameters():
        if p.dim() >= 2:
            return p
    raise ConfigError("grouping: a branch without a weight matrix cannot be watched by Selective Sharing")


def trainable_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def merge_branches(model: Any, group: Sequence[str], keep: str, how: str = "lowest_loss",
                   optimizer: torch.optim.Optimizer | None = None) -> list[str]:
    """Merge the branches ``group`` of ``model`` (a :class:`MultiTaskModel`) into ``keep``.

    ``how``: ``lowest_loss`` keeps ``keep``'s weights; ``mean`` / ``max`` / ``min`` set them to the
    element-wise merge of the group's. Tasks of the other branches are re-routed to ``keep``
    (they keep their own heads); those branches leave the model and ``optimizer`` (their
    parameters and state), while ``keep`` keeps its optimizer state. Returns the removed ids.
    """
    if keep not in group:
        raise ValueError(f"merge: the surviving branch '{keep}' is not in the group {list(group)}")
    gone = [b for b in group if b != keep]
    if how != "lowest_loss":
        with torch.no_grad():
            states = [model.branches[b].state_dict() for b in group]
            for name, value in model.branches[keep].state_dict().items():
                if value.is_floating_point():
                    value.copy_(merged_tensors([s[name] for s in states], how))
    removed = {id(p) for b in gone for p in model.branches[b].parameters()}
    if optimizer is not None:
        for pg in optimizer.param_groups:
            pg["params"] = [p for p in pg["params"] if id(p) not in removed]
        for p in [p for p in optimizer.state if id(p) in removed]:
            del optimizer.state[p]
    for task, b in list(model.routing.items()):
        if b in gone:
            model.route(task, keep)
    for b in gone:
        del model.branches[b]
    return gone


class SelectiveSharing:
    """Learn which tasks share a branch while training (Strezoski et al. 2019).

    Args:
        model: a :class:`MultiTaskModel` with one branch per task (``branched_model``).
        criterion: ``similarity``, ``dissimilarity`` or ``variance`` (module docstring of
            :mod:`manytask.grouping.selective_sharing`).
        merge: ``lowest_loss`` (the paper's), ``mean``, ``max`` or ``min``.
        rank: TT rank bound; slots: rows ``S`` of each gradient record.
        min_samples: HDBSCAN's ``k`` of the core distance (eq. 6).
        patience: epochs without a merge after which the grouping locks (3 in the paper).
        start_epoch: first epoch whose record is clustered (earlier records are discarded).
    """

    def __init__(self, model: Any, *, criterion: str = "similarity", merge: str = "lowest_loss",
                 rank: int = 4, slots: int = 8, min_samples: int = 1, patience: int = 3,
                 start_epoch: int = 1) -> None:
        if criterion not in CRITERIA:
            raise ConfigError(f"grouping.criterion: unknown '{criterion}' (expected one of {', '.join(CRITERIA)})")
        if merge not in MERGES:
            raise ConfigError(f"grouping.merge: unknown '{merge}' (expected one of {', '.join(MERGES)})")
        if len(model.branches) < 2 or set(model.routing.values()) != set(model.branches):
            raise ConfigError("grouping: Selective Sharing needs one branch per task (model.branches)")
        self.model, self.criterion, self.merge = model, criterion, merge
        self.rank, self.slots, self.min_samples = rank, slots, min_samples
        self.patience, self.start_epoch = patience, start_epoch
        self.log: list[dict[str, Any]] = []
        self.locked: str | None = None
        self.lock_epoch: int | None = None
        self.routing_start = dict(model.routing)
        self.params_start = trainable_parameters(model)
        self.branch_params_start = trainable_parameters(model.branches)
        self._unchanged = 0
        self._slot = 0
        self._records: dict[str, Tensor] = {}
        self._handles: list[Any] = []
        self._attach()
        import sklearn.cluster  # noqa: F401 - imported now, not inside the first epoch's timing

    # ------------------------------------------------------------------ capture
    def _attach(self) -> None:
        for b, branch in self.model.branches.items():
            w = first_weight(branch)
            self._records[b] = torch.zeros((self.slots, *w.shape), dtype=w.dtype, device=w.device)
            self._handles.append(w.register_hook(self._make_hook(b)))
        self._handles.append(self.model.register_forward_pre_hook(self._count_step))

    def _make_hook(self, branch: str) -> Any:
        def hook(grad: Tensor) -> None:
            buf = self._records.get(branch)
            if buf is not None:
                if buf.device != grad.device:  # the model moved after construction
                    buf = self._records[branch] = buf.to(grad.device)
                buf[self._slot].add_(grad)
        return hook

    def _count_step(self, module: nn.Module, args: Any) -> None:
        if module.training:
            self._slot = (self._slot + 1) % self.slots

    def detach(self) -> None:
        """Remove the hooks and free the gradient buffers."""
        for h in self._handles:
            h.remove()
        self._handles, self._records = [], {}

    # ------------------------------------------------------------------ one epoch
    def __call__(self, trainer: Any, epoch: int) -> None:
        if self.locked is not None:
            return
        if epoch < self.start_epoch:
            for buf in self._records.values():
                buf.zero_()
            return
        entry = self.step(epoch, self._branch_losses(trainer), getattr(trainer, "optimizer", None))
        if entry["merged"] and hasattr(trainer, "restart_selection"):
            trainer.restart_selection()
        rd = getattr(trainer, "run_dir", None)
        if rd is not None:
            rd.append_jsonl("sharing.jsonl", [entry])

    def _branch_losses(self, trainer: Any) -> dict[str, float]:
        """Each branch's aggregated loss: the sum of its tasks' mean training losses of the epoch."""
        losses = getattr(trainer, "epoch_losses", None)
        names = [t.name for t in getattr(trainer, "tasks", [])]
        per_task = dict(zip(names, losses.tolist())) if losses is not None else {}
        out = {b: 0.0 for b in self.model.branches}
        for task, b in self.model.routing.items():
            out[b] += float(per_task.get(task, 0.0))
        return out

    def step(self, epoch: int, branch_losses: dict[str, float],
             optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
        """Cluster this epoch's records, merge, check the stop rule; returns the log entry."""
        ids = list(self.model.branches)
        before = trainable_parameters(self.model)
        t0 = time.perf_counter()
        vectors = np.stack([tt_vector(self._records[b], self.rank) for b in ids])
        t1 = time.perf_counter()
        labels = cluster_vectors(vectors, self.criterion, self.min_samples)
        t2 = time.perf_counter()
        merged = []
        for group in groups_from_labels(ids, labels):
            keep = survivor(group, branch_losses)
            merge_branches(self.model, group, keep, self.merge, optimizer)
            merged.append({"kept": keep, "removed": [b for b in group if b != keep]})
        for b in list(self._records):
            if b not in self.model.branches:
                del self._records[b]
        for buf in self._records.values():
            buf.zero_()
        self._unchanged = 0 if merged else self._unchanged + 1
        counts = [list(self.model.routing.values()).count(b) for b in self.model.branches]
        self.locked = should_stop(counts, self._unchanged, self.patience)
        if self.locked is not None:
            self.lock_epoch = epoch
            self.detach()
        entry = {"epoch": epoch, "labels": dict(zip(ids, labels.tolist())), "merged": merged,
                 "groups": self.groups(), "params_before": before,
                 "params_after": trainable_parameters(self.model),
                 "branch_params": trainable_parameters(self.model.branches),
                 "factorize_seconds": t1 - t0, "cluster_seconds": t2 - t1, "locked": self.locked}
        self.log.append(entry)
        return entry

    # ------------------------------------------------------------------ results
    def groups(self) -> dict[str, list[str]]:
        """Branch id → the tasks it serves (in task order)."""
        out: dict[str, list[str]] = {b: [] for b in self.model.branches}
        for task, b in self.model.routing.items():
            out[b].append(task)
        return out

    def summary(self) -> dict[str, Any]:
        """The final grouping, when it locked and the parameter counts before and after."""
        return {
            "criterion": self.criterion, "merge": self.merge, "groups": self.groups(),
            "routing_start": self.routing_start,
            "branches": len(self.model.branches), "lock_epoch": self.lock_epoch, "locked": self.locked,
            "params_start": self.params_start, "params_end": trainable_parameters(self.model),
            "branch_params_start": self.branch_params_start,
            "branch_params_end": trainable_parameters(self.model.branches),
            "factorize_seconds": sum(e["factorize_seconds"] for e in self.log),
            "cluster_seconds": sum(e["cluster_seconds"] for e in self.log),
            "epochs": [{k: e[k] for k in ("epoch", "groups", "params_before", "params_after", "locked")}
                       for e in self.log],
        }


def sharing_from_config(grouping: Any, model: Any) -> SelectiveSharing | None:
    """The controller a config's ``grouping`` section asks for (None for ``method: none``)."""
    if grouping is None or grouping.method == "none":
        return None
    if not hasattr(model, "branches") or len(model.branches) < 2:
        raise ConfigError("grouping: selective_sharing needs model.branches (one branch per task) "
                          "and at least two tasks")
    return SelectiveSharing(model, criterion=grouping.criterion, merge=grouping.merge, rank=grouping.rank,
                            slots=grouping.slots, min_samples=grouping.min_samples,
                            patience=grouping.patience, start_epoch=grouping.start_epoch)


def write_sharing(run_dir: Any, sharing: SelectiveSharing) -> None:
    """Add the grouping to the RunDir's ``summary.json`` and draw it in ``grouping.png``."""
    from manytask.reporting.sharing_plot import plot_grouping

    summary = run_dir.summary() or {}
    summary["selective_sharing"] = sharing.summary()
    run_dir.write_summary(summary)
    plot_grouping(sharing.summary(), run_dir.file("grouping.png"))


def describe_sharing(summary_path: Any) -> str:
    """A few lines on the grouping recorded in a RunDir's ``summary.json``."""
    import json
    from pathlib import Path

    ss = json.loads(Path(summary_path).read_text()).get("selective_sharing") or {}
    if not ss:
        return "selective sharing: no grouping recorded"
    lock = f"locked at epoch {ss['lock_epoch']} ({ss['locked']})" if ss.get("lock_epoch") else "not locked"
    lines = [f"selective sharing ({ss['criterion']}, {ss['merge']}): {ss['branches']} branches, {lock}; "
             f"trainable parameters {ss['params_start']:,} -> {ss['params_end']:,} "
             f"(branches {ss['branch_params_start']:,} -> {ss['branch_params_end']:,})"]
    lines += [f"  {b}: {', '.join(ts)}" for b, ts in ss["groups"].items()]
    return "\n".join(lines)
