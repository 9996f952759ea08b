"""Auxiliary gradients gated by their cosine with the main gradient (Du, Czarnecki, Jayakumar,
Farajtabar, Pascanu & Lakshminarayanan, "Adapting auxiliary losses using gradient similarity",
2018, Algorithm 1 / Proposition 1).

With ``g_main = ∇_θ L_main`` and ``g_a = ∇_θ L_a`` the gradients w.r.t. the shared parameters::

    unweighted (default):  update = g_main + Σ_a [cos(g_main, g_a) > 0] g_a
    weighted:              update = g_main + Σ_a max(0, cos(g_main, g_a)) g_a

so an auxiliary task only moves the shared parameters when its gradient does not conflict with
the main task's. Everything comes from the k × k Gram matrix of the per-task gradients (one
pass of the gradient engine); task-specific parameters (the auxiliary heads included) follow
their own loss gradient. A zero gradient has cosine 0 (dropped). Every task other than ``main``
is auxiliary. ``StepInfo.weights`` are the coefficients (1 for the main task, the gate otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from manytask.errors import ConfigError
from manytask.tasks import Task
from manytask.weighting import _validate
from manytask.weighting.base import register
from manytask.weighting.gradients import GradientWeighting

VARIANTS: tuple[str, ...] = ("unweighted", "weighted")


def cosine_gate(gram: Tensor, main: int, variant: str = "unweighted") -> Tensor:
    """Coefficients ``c`` (k,): ``c_main = 1``, ``c_a`` the gate of auxiliary task a."""
    diag = gram.diagonal().clamp_min(0.0)
    denom = (diag * diag[main]).sqrt()
    cos = torch.where(denom > 0, gram[main] / torch.where(denom > 0, denom, torch.ones_like(denom)), torch.zeros_like(denom))
    c = (cos > 0).to(gram.dtype) if variant == "unweighted" else cos.clamp_min(0.0)
    c[main] = 1.0
    return c


@register
class GradCosine(GradientWeighting):
    """Main gradient plus the auxiliary gradients whose cosine with it is positive.

    Args:
        tasks: the tasks in loss order.
        main: the main task's name (default: the first task); all others are auxiliary.
        variant: ``"unweighted"`` (add a non-conflicting auxiliary gradient whole, default) or
            ``"weighted"`` (scale it by the cosine).
        engine: per-task gradient path, ``"auto"``, ``"batched"`` or ``"loop"``.
    """

    name = "grad_cosine"
    display_name = "Gradient cosine"
    wrt = "params"

    def __init__(self, tasks: Sequence[Task], main: str | None = None, variant: str = "unweighted",
                 engine: str = "auto") -> None:
        super().__init__(tasks, engine=engine)
        self.main = self.task_names[0] if main is None else str(main)
        if self.main not in self.task_names:
            raise ConfigError(f"weighting '{self.name}': main must be one of {', '.join(self.task_names)}, got {main!r}")
        self.main_index = self.task_names.index(self.main)
        self.variant = _validate.choice(self.name, "variant", variant, VARIANTS)

    def coefficients(self, gram: Tensor, losses: Tensor) -> Tensor:
        return cosine_gate(gram, self.main_index, self.variant)
