"""A tiny multi-task model and data for the weighting tests (shared Linear trunk + heads)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
import torch
from torch import Tensor, nn

from manytask.tasks import Task, stack_losses
from manytask.weighting import SharedParts
from manytask.weighting.terms import element_losses


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread is much faster on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TASKS = (
    Task("digit", "multiclass", num_classes=3),
    Task("size", "regression"),
    Task("odd", "binary"),
)


class TinyModel(nn.Module):
    """Linear+tanh trunk, one Linear head per task."""

    def __init__(self, tasks: Sequence[Task], d_in: int = 6, hidden: int = 8) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.fc = nn.Linear(d_in, hidden)
        self.heads = nn.ModuleDict({t.name: nn.Linear(hidden, t.out_features) for t in tasks})

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        z = torch.tanh(self.fc(x))
        return z, {n: h(z) for n, h in self.heads.items()}

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.fc.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.heads.parameters())


def make_data(tasks: Sequence[Task], n: int = 48, d_in: int = 6, seed: int = 0,
              dtype: torch.dtype = torch.float32) -> tuple[Tensor, dict[str, Tensor]]:
    """Inputs and learnable targets from a random linear teacher."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g, dtype=dtype)
    targets: dict[str, Tensor] = {}
    for t in tasks:
        proj = torch.randn(d_in, t.out_features, generator=g, dtype=dtype)
        s = x @ proj
        if t.kind == "multiclass":
            targets[t.name] = s.argmax(dim=1)
        elif t.kind == "binary":
            targets[t.name] = (s[:, 0] > 0).to(dtype)
        else:
            targets[t.name] = 3.0 * s[:, 0] + 1.0
    return x, targets


def setup(tasks: Sequence[Task] = TASKS, seed: int = 0, dtype: torch.dtype = torch.float32
          ) -> tuple[TinyModel, Tensor, dict[str, Tensor]]:
    torch.manual_seed(seed)
    model = TinyModel(tasks).to(dtype)
    x, y = make_data(tasks, seed=seed, dtype=dtype)
    return model, x, y


def forward(model: TinyModel, x: Tensor, y: dict[str, Tensor]) -> tuple[Tensor, SharedParts]:
    z, preds = model.forward_with_features(x)
    losses = stack_losses(model.tasks, preds, y)
    shared = SharedParts(params=model.shared_parameters(), features=z, last_layer=list(model.fc.parameters()),
                         terms=element_losses(model.tasks, preds, y))  # read only by wants_loss_terms methods
    return losses, shared


def flat_grad(params: Sequence[Tensor]) -> Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
