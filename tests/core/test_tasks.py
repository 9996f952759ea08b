"""Losses and metrics against hand computations; masking changes nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from manytask.errors import ConfigError, DataError
from manytask.tasks import Task, roc_auc, stack_losses


def test_multiclass_loss_is_mean_cross_entropy_by_hand() -> None:
    t = Task("d", "multiclass", num_classes=3)
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]])
    y = torch.tensor([1, 0])
    by_hand = []
    for row, c in zip(logits.tolist(), y.tolist()):
        lse = math.log(sum(math.exp(v) for v in row))
        by_hand.append(lse - row[c])
    assert float(t.loss(logits, y)) == pytest.approx(sum(by_hand) / 2, rel=1e-6)


def test_masked_class_label_changes_nothing() -> None:
    t = Task("d", "multiclass", num_classes=3)
    logits = torch.randn(5, 3)
    y = torch.tensor([0, 1, 2, -1, 1])
    full = t.loss(logits[[0, 1, 2, 4]], y[[0, 1, 2, 4]])
    assert torch.allclose(t.loss(logits, y), full)
    # an explicit mask works the same way, and a masked sample's logits get no gradient
    logits.requires_grad_(True)
    mask = torch.tensor([True, True, True, False, True])
    loss = t.loss(logits, torch.tensor([0, 1, 2, 0, 1]), mask)
    assert torch.allclose(loss, full)
    loss.backward()
    assert torch.all(logits.grad[3] == 0)


def test_binary_bce_by_hand_and_missing() -> None:
    t = Task("b", "binary")
    logit = torch.tensor([[0.3], [-1.2], [2.0]])
    y = torch.tensor([1.0, 0.0, -1.0])
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    by_hand = (-math.log(sig(0.3)) - math.log(1 - sig(-1.2))) / 2
    assert float(t.loss(logit, y)) == pytest.approx(by_hand, rel=1e-6)
    m = t.metrics(logit, y)
    assert m["accuracy"] == 1.0 and m["auc"] == 1.0


def test_regression_nan_is_masked_and_metrics_by_hand() -> None:
    t = Task("r", "regression")
    pred = torch.tensor([[1.0], [2.0], [5.0]])
    y = torch.tensor([[1.5], [float("nan")], [3.0]])
    assert float(t.loss(pred, y)) == pytest.approx((0.25 + 4.0) / 2)
    m = t.metrics(pred, y)
    assert m["mse"] == pytest.approx(2.125) and m["mae"] == pytest.approx(1.25)
    assert Task("r1", "regression", loss_name="l1").loss(pred, y).item() == pytest.approx(1.25)


def test_multilabel_masks_entries() -> None:
    t = Task("m", "multilabel", num_classes=2)
    pred = torch.tensor([[2.0, -1.0], [0.5, 0.5]])
    y = torch.tensor([[1, -1], [0, 1]])
    terms = [math.log(1 + math.exp(-2.0)), math.log(1 + math.exp(0.5)), math.log(1 + math.exp(-0.5))]
    assert float(t.loss(pred, y)) == pytest.approx(sum(terms) / 3, rel=1e-6)
    assert t.metrics(pred, y)["accuracy"] == pytest.approx(2 / 3)


def test_reconstruction_loss_is_mse_over_pixels() -> None:
    t = Task("img", "reconstruction", dim=4)
    pred = torch.zeros(2, 4)
    y = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 2.0]])
    assert float(t.loss(pred, y)) == pytest.approx(5 / 8)


def test_no_labelled_sample_gives_zero_loss_attached_to_graph() -> None:
    t = Task("d", "multiclass", num_classes=3)
    logits = torch.randn(2, 3, requires_grad=True)
    loss = t.loss(logits, torch.tensor([-1, -1]))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0)


def test_auc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, size=40).astype(float)
    y = rng.integers(0, 2, size=40)
    pos, neg = s[y == 1], s[y == 0]
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0) for p in pos for n in neg]
    assert roc_auc(s, y) == pytest.approx(float(np.mean(pairs)))
    assert math.isnan(roc_auc(s, np.ones(40)))


def test_stack_losses_keeps_task_order() -> None:
    tasks = [Task("a", "binary"), Task("b", "regression")]
    preds = {"a": torch.zeros(2, 1), "b": torch.ones(2, 1)}
    targets = {"a": torch.tensor([1.0, 0.0]), "b": torch.zeros(2, 1)}
    losses = stack_losses(tasks, preds, targets)
    assert losses.shape == (2,) and float(losses[1]) == 1.0


@pytest.mark.parametrize("kwargs", [
    {"name": "x", "kind": "ranking"},
    {"name": "x", "kind": "multiclass"},
    {"name": "x", "kind": "binary", "loss_name": "mse"},
    {"name": "x", "kind": "regression", "loss_name": "hinge"},
])
def test_bad_task_specs(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        Task(**kwargs)


def test_check_target_names_the_problem() -> None:
    with pytest.raises(DataError, match="label 12 but num_classes is 10"):
        Task("d", "multiclass", num_classes=10).check_target(torch.tensor([1, 12]))
    with pytest.raises(DataError, match="dim 3"):
        Task("r", "regression", dim=3).check_target(torch.zeros(4, 2))
