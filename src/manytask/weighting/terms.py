"""Per-element loss terms, for methods that weight parts of a task's loss (class-wise weights).

The common path hands a weighting method one scalar loss per task. A method that sets
``wants_loss_terms = True`` also gets, in ``SharedParts.terms``, every task's per-element loss
terms (still in the autograd graph), the mask of labelled entries and the targets::

    terms[task] = ElementLosses(terms=(N, ...), valid=(N, ...), target=...)

so that it can split a loss by the class of each sample or pixel. ``losses[k]`` is then exactly
``terms[task_k].mean()`` (the same masked mean as :meth:`manytask.tasks.Task.loss`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from manytask.tasks import Task


@dataclass
class ElementLosses:
    """One task's loss before averaging.

    Attributes:
        terms: per-element losses, ``(N,)`` per sample, ``(N, D)`` per element (pixels, outputs).
        valid: labelled entries (bool, same shape as ``terms``).
        target: the task's target column for the batch (as the data set gives it).
    """

    terms: Tensor
    valid: Tensor
    target: Tensor

    def mean(self) -> Tensor:
        """The masked mean: the task loss (0 attached to the graph without labels)."""
        w = self.valid.to(self.terms.dtype)
        return (self.terms * w).sum() / w.sum().clamp_min(1.0)

    def flat(self) -> tuple[Tensor, Tensor]:
        """``(terms, valid)`` reshaped to ``(N, P)`` (P = elements per sample)."""
        n = self.terms.shape[0]
        return self.terms.reshape(n, -1), self.valid.reshape(n, -1)


def element_losses(tasks: Sequence[Task], preds: Mapping[str, Tensor], targets: Mapping[str, Tensor],
                   masks: Mapping[str, Tensor] | None = None) -> dict[str, ElementLosses]:
    """Every task's :class:`ElementLosses` (task order kept)."""
    masks = masks or {}
    out: dict[str, ElementLosses] = {}
    for t in tasks:
        terms, valid = t.loss_terms(preds[t.name], targets[t.name], masks.get(t.name))
        out[t.name] = ElementLosses(terms, valid.reshape(terms.shape), targets[t.name])
    return out


def stack_means(tasks: Sequence[Task], terms: Mapping[str, ElementLosses]) -> Tensor:
    """The loss vector ``losses[k]`` from the terms (what :func:`manytask.tasks.stack_losses` gives)."""
    return torch.stack([terms[t.name].mean() for t in tasks])
