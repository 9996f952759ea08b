"""``OptimizerSpec``: the optimizer and learning-rate schedule of a training run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from manytask.errors import ConfigError

__all__ = ["OptimizerSpec"]


@dataclass
class OptimizerSpec:
    """Optimizer and learning-rate schedule.

    name: ``sgd`` (with ``momentum``) or ``adam``/``adamw``.
    schedule: ``none``, ``step`` (``step_size`` epochs, ``gamma``), ``cosine`` (to 0 over the
    epochs) or ``plateau`` (multiply by ``gamma`` when the training loss stops decreasing, as in
    Standley et al.).
    """

    name: str = "sgd"
    lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "none"
    step_size: int = 10
    gamma: float = 0.5

    def build(self, params: list[Any], epochs: int) -> tuple[torch.optim.Optimizer, Any]:
        """The optimizer over ``params`` (parameters, or parameter groups as ``torch.optim``
        takes them: a group's own ``lr``/``momentum``/``weight_decay`` override this spec's) and
        its schedule (which scales every group's learning rate alike)."""
        if self.lr <= 0:
            raise ConfigError(f"training.optimizer.lr must be > 0, got {self.lr}")
        if self.name == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                                                         weight_decay=self.weight_decay)
        elif self.name == "adam":
            opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        elif self.name == "adamw":
            opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        else:
            raise ConfigError(f"training.optimizer.name: unknown optimizer '{self.name}' (expected sgd, adam, adamw)")
        sched: torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None
        if self.schedule == "none":
            sched = None
        elif self.schedule == "step":
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=self.step_size, gamma=self.gamma)
        elif self.schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
        elif self.schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=self.gamma, patience=0)
        else:
            raise ConfigError(f"training.optimizer.schedule: unknown schedule '{self.schedule}' (expected none, step, cosine, plateau)")
        return opt, sched
