"""Model output shapes, routing, width multiplier and measured multiply-adds."""

from __future__ import annotations

import pytest
import torch

from manytask.errors import ConfigError
from manytask.models import LeNetTrunk, MLPTrunk, MultiTaskModel, multiply_adds
from manytask.tasks import Task

TASKS = [
    Task("left", "multiclass", num_classes=10),
    Task("odd", "binary"),
    Task("tags", "multilabel", num_classes=4),
    Task("sum", "regression"),
    Task("img", "reconstruction", dim=36 * 36),
]


def test_lenet_multitask_output_shapes() -> None:
    model = MultiTaskModel(LeNetTrunk(), TASKS)
    z, out = model.forward_with_features(torch.zeros(3, 1, 36, 36))
    assert z.shape == (3, 50)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "left": (3, 10), "odd": (3, 1), "tags": (3, 4), "sum": (3, 1), "img": (3, 1296)}
    assert torch.equal(model.encode(torch.zeros(3, 1, 36, 36)), z)


def test_mlp_trunk_and_shared_vs_task_parameters() -> None:
    model = MultiTaskModel(MLPTrunk(20, hidden=(32, 16)), TASKS[:2])
    assert model(torch.zeros(5, 20))["left"].shape == (5, 10)
    shared = {id(p) for p in model.shared_parameters()}
    specific = {id(p) for p in model.task_specific_parameters()}
    assert shared and specific and not shared & specific
    assert shared | specific == {id(p) for p in model.parameters()}
    assert {id(p) for p in model.last_shared_layer()} <= shared


def test_routing_to_branches() -> None:
    branches = {"a": torch.nn.Identity(), "b": torch.nn.Linear(16, 16)}
    model = MultiTaskModel(MLPTrunk(8, hidden=(16,)), TASKS[:2], branches=branches, routing={"odd": "b"})
    assert model.routing == {"left": "a", "odd": "b"}
    x = torch.randn(4, 8)
    before = model(x)["odd"]
    model.route("odd", "a")
    assert not torch.allclose(before, model(x)["odd"])
    with pytest.raises(ConfigError):
        model.route("odd", "nope")


def test_width_multiplier_scales_measured_multiply_adds() -> None:
    full = multiply_adds(LeNetTrunk(), (1, 36, 36))
    # conv1 10·32·32·25 + conv2 20·12·12·250 + fc 720·50
    assert full == 10 * 32 * 32 * 25 + 20 * 12 * 12 * 250 + 720 * 50
    half = multiply_adds(LeNetTrunk(width=0.5), (1, 36, 36))
    assert 0.2 < half / full < 0.5  # conv2 and fc scale with width², conv1 with width
    assert multiply_adds(MLPTrunk(10, hidden=(4,)), (10,)) == 40


def test_duplicate_task_names_rejected() -> None:
    with pytest.raises(ConfigError, match="duplicate"):
        MultiTaskModel(MLPTrunk(4, hidden=(4,)), [TASKS[0], TASKS[0]])
