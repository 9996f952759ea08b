"""Same-shaped heads run as one batched operation give the per-head predictions and gradients."""

from __future__ import annotations

import torch

from manytask.models import MLPTrunk, MultiTaskModel
from manytask.tasks import Task


def test_batched_heads_match_the_per_head_loop() -> None:
    torch.manual_seed(0)
    tasks = [Task(f"t{i}", "multiclass", num_classes=10) for i in range(5)] + [Task("r", "regression", dim=3)]
    model = MultiTaskModel(MLPTrunk(12, hidden=(16,)), tasks, head_hidden=7)
    x = torch.randn(9, 12)
    grads = []
    outs = []
    for batched in (False, True):
        model.batch_heads = batched
        model.zero_grad()
        out = model(x)
        sum((v ** 2).sum() for v in out.values()).backward()
        outs.append(out)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert list(outs[0]) == list(outs[1]) == [t.name for t in tasks]
    for name in outs[0]:
        assert outs[1][name].shape == outs[0][name].shape
        torch.testing.assert_close(outs[1][name], outs[0][name])
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g)


def test_batching_is_off_on_cpu_by_default() -> None:
    tasks = [Task(f"t{i}", "binary") for i in range(6)]
    model = MultiTaskModel(MLPTrunk(4, hidden=(8,)), tasks)
    assert model.batch_heads is None and not model._batching(torch.zeros(2, 8))
