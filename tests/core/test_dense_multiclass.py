"""Multiclass tasks with one label per element (``dim``): per-pixel class maps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from manytask.errors import DataError
from manytask.tasks import Task


def test_per_element_cross_entropy_metrics_and_shapes() -> None:
    task = Task("mask", "multiclass", num_classes=3, dim=4)
    assert task.out_features == 12 and task.elements == 4
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(5, 12, generator=g)
    target = torch.randint(0, 3, (5, 4), generator=g)
    target[1, 2] = -1
    valid = target >= 0
    expected = F.cross_entropy(pred.view(5, 3, 4), target.clamp_min(0), reduction="none")[valid].mean()
    assert torch.allclose(task.loss(pred, target), expected)
    hits = (pred.view(5, 3, 4).argmax(1) == target)[valid].float().mean()
    assert task.metrics(pred, target)["accuracy"] == pytest.approx(float(hits))
    terms, mask = task.loss_terms(pred, target)
    assert terms.shape == (5, 4) and mask.tolist() == valid.tolist()


def test_constant_prediction_is_the_pooled_class_prior_at_every_element() -> None:
    task = Task("mask", "multiclass", num_classes=3, dim=2)
    target = torch.tensor([[0, 0], [0, 2]])
    const = task.constant_prediction(target).view(3, 2)
    assert torch.allclose(const[:, 0], const[:, 1])
    assert const[0, 0] > const[2, 0] > const[1, 0]


def test_per_element_target_shape_is_checked() -> None:
    task = Task("mask", "multiclass", num_classes=3, dim=4)
    with pytest.raises(DataError, match="dim 4"):
        task.check_target(torch.zeros(5, 3, dtype=torch.long))
    Task("c", "multiclass", num_classes=3).check_target(torch.zeros(5, dtype=torch.long))
