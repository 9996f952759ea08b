"""Non-finite and diverging losses, caught in the step that produces them.

:class:`LossGuard` looks at a step's task losses before the backward pass and the optimizer
step (one host sync per step: the largest absolute loss). A NaN or infinite loss either stops
the run (``stop``: :class:`NonFiniteLoss` names the task, the step and the epoch; the last good
checkpoint is kept) or skips the step (``skip``: no backward, no optimizer step, the step is
counted per task). Losses above ``warn_above`` while still finite (e.g. 1e33 under uncertainty
weighting with a very negative initial log-variance) are warned about once per run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from manytask.errors import ConfigError, ManytaskError

__all__ = ["NONFINITE_POLICIES", "DivergenceWarning", "LossGuard", "NonFiniteLoss", "check_finite_parameters"]

NONFINITE_POLICIES = ("stop", "skip")


class NonFiniteLoss(ManytaskError, FloatingPointError):
    """A training loss became NaN or infinite (the run stopped before applying it)."""

    exit_code = 1

    def __init__(self, message: str, *, step: int, epoch: int, tasks: Sequence[str]) -> None:
        super().__init__(message)
        self.step, self.epoch, self.tasks = step, epoch, list(tasks)


class DivergenceWarning(RuntimeWarning):
    """Training losses grow huge while still finite."""


class LossGuard:
    """Checks every step's task losses (see the module docstring)."""

    def __init__(self, task_names: Sequence[str], policy: str = "stop", warn_above: float = 1e12) -> None:
        if policy not in NONFINITE_POLICIES:
            raise ConfigError(f"training.nonfinite: expected one of {', '.join(NONFINITE_POLICIES)}, got {policy!r}")
        self.names = list(task_names)
        self.policy = policy
        self.warn_above = warn_above
        self.skipped: dict[str, int] = {n: 0 for n in self.names}
        self.skipped_steps = 0
        self.warned = False
        self.warning: str | None = None
        self.first_bad: dict[str, Any] | None = None

    def check(self, losses: Tensor, step: int, epoch: int) -> bool:
        """True when the step may go on; False when it is to be skipped; raises under ``stop``."""
        worst = float(losses.detach().abs().max())
        if math.isfinite(worst):
            if worst > self.warn_above and not self.warned:
                self.warned = True
                big = [n for n, v in zip(self.names, losses.tolist()) if abs(v) > self.warn_above]
                self.warning = (f"step {step} (epoch {epoch}): loss of task(s) {', '.join(big)} above "
                                f"{self.warn_above:g} ({worst:.3g}): training is diverging")
                warnings.warn(self.warning, DivergenceWarning, stacklevel=3)
            return True
        bad = [(n, v) for n, v in zip(self.names, losses.tolist()) if not math.isfinite(v)]
        what = ", ".join(f"'{n}' ({v})" for n, v in bad)
        if self.first_bad is None:
            self.first_bad = {"step": step, "epoch": epoch, "tasks": [n for n, _ in bad]}
        if self.policy == "skip":
            self.skipped_steps += 1
            for n, _ in bad:
                self.skipped[n] += 1
            return False
        raise NonFiniteLoss(f"step {step} (epoch {epoch}): training loss of task {what} is not finite; "
                            "stopped before the optimizer step", step=step, epoch=epoch, tasks=[n for n, _ in bad])

    def state(self) -> dict[str, Any]:
        return {"skipped_steps": self.skipped_steps, "skipped_by_task": dict(self.skipped),
                "first_nonfinite": self.first_bad, "diverging_warned": self.warned, "diverging": self.warning}

    def load(self, state: dict[str, Any] | None) -> None:
        if not state:
            return
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.skipped.update({k: int(v) for k, v in (state.get("skipped_by_task") or {}).items()})
        self.first_bad = state.get("first_nonfinite")
        self.warned = bool(state.get("diverging_warned", False))
        self.warning = state.get("diverging")

    def summary(self) -> dict[str, Any]:
        return {"policy": self.policy, **self.state()}


def check_finite_parameters(model: nn.Module, step: int, epoch: int) -> None:
    """Raise :class:`NonFiniteLoss` when a parameter of ``model`` holds NaN or inf: non-finite
    weights are never checkpointed (a finite loss can still overflow an update)."""
    bad = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise NonFiniteLoss(f"epoch {epoch}: parameter '{bad[0]}' is not finite after the epoch",
                            step=step, epoch=epoch, tasks=[])
