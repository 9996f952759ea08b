"""One identical, identically initialised branch per task (Strezoski et al. 2019, section 3).

Each branch is ``FC(in → h1) → ReLU → … → FC(→ hk) → ReLU``; every task's head is a single
linear output layer (``hk → out_features``: one logit for a binary task, read through a sigmoid
by its loss). With one task this is the plain single-task network with the same block.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from torch import nn

from manytask.errors import ConfigError
from manytask.models.multitask import MultiTaskModel
from manytask.tasks import Task


def mlp_branch(in_features: int, hidden: Sequence[int]) -> nn.Sequential:
    """``FC → ReLU`` per entry of ``hidden``."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        if h < 1:
            raise ConfigError(f"model.branches: widths must be >= 1, got {list(hidden)}")
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    return nn.Sequential(*layers)


def branch_name(task: str) -> str:
    """The id of the branch built for ``task``."""
    return f"b_{task}"


def branched_model(trunk: nn.Module, tasks: Sequence[Task], hidden: Sequence[int]) -> MultiTaskModel:
    """``trunk`` → one copy of the same branch per task → a linear output layer per task."""
    if not hidden:
        raise ConfigError("model.branches: give at least one hidden width")
    feat = int(trunk.out_features)
    template = mlp_branch(feat, hidden)
    branches = {branch_name(t.name): copy.deepcopy(template) for t in tasks}
    routing = {t.name: branch_name(t.name) for t in tasks}
    last = int(hidden[-1])
    return MultiTaskModel(trunk, tasks, branches=branches, routing=routing,
                          head_factory=lambda task, _d: nn.Linear(last, task.out_features))
