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
    {"name": "x", "kind": "ordinal"},
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


# ---------------------------------------------------------------------- constant baseline
def _entropy(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else -(p * math.log(p) + (1 - p) * math.log(1 - p))


def _baseline_cases() -> list[tuple[Task, torch.Tensor, torch.Tensor]]:
    """(task, labels with missing entries, labelled-entry mask) for every kind and loss."""
    g = torch.Generator().manual_seed(0)
    n = 60
    mc = torch.randint(0, 4, (n,), generator=g)
    mc[::5] = -1
    b = (torch.rand(n, generator=g) < 0.3).float()
    b[::7] = -1
    ml = (torch.rand(n, 3, generator=g) < torch.tensor([0.2, 0.5, 0.9])).float()
    ml[::4, 1] = -1
    r = torch.randn(n, 2, generator=g) * torch.tensor([1.0, 3.0]) + 2.0
    r[::3, 0] = float("nan")
    cases = [(Task("mc", "multiclass", num_classes=4), mc), (Task("b", "binary"), b),
             (Task("ml", "multilabel", num_classes=3), ml)]
    for loss in ("mse", "l1", "huber"):
        cases.append((Task(f"r_{loss}", "regression", dim=2, loss_name=loss), r))
    cases.append((Task("img", "reconstruction", dim=2), r))
    return [(t, y, t.label_mask(y)) for t, y in cases]


@pytest.mark.parametrize(("task", "y", "valid"), _baseline_cases(), ids=lambda v: getattr(v, "name", ""))
def test_constant_baseline_is_the_loss_of_the_best_constant(task: Task, y: torch.Tensor, valid: torch.Tensor) -> None:
    base = task.constant_baseline(y)
    const = task.constant_prediction(y)
    assert const.shape == (task.out_features,)
    # it is the loss of that constant, predicted for every sample
    assert base == pytest.approx(float(task.loss(const.expand(len(y), -1), y)), rel=1e-6)
    # brute force: no constant near it does better (every output moved up and down alone)
    for d in range(task.out_features):
        for step in (-0.3, -0.03, 0.03, 0.3):
            moved = const.clone()
            moved[d] += step
            assert float(task.loss(moved.expand(len(y), -1), y)) >= base - 1e-6, (d, step)


def test_constant_baseline_by_hand() -> None:
    cases = {t.name: (t, y, v) for t, y, v in _baseline_cases()}
    t, y, v = cases["mc"]
    p = torch.bincount(y[v], minlength=4).double() / int(v.sum())
    assert t.constant_baseline(y) == pytest.approx(float(-(p * p.log()).sum()), rel=1e-5)  # label entropy
    t, y, v = cases["b"]
    assert t.constant_baseline(y) == pytest.approx(_entropy(float(y[v].mean())), rel=1e-5)
    t, y, v = cases["ml"]
    by_label = [(int(v[:, j].sum()), _entropy(float(y[v[:, j], j].mean()))) for j in range(3)]
    assert t.constant_baseline(y) == pytest.approx(sum(n * h for n, h in by_label) / int(v.sum()), rel=1e-5)
    t, y, v = cases["r_mse"]
    cols = [y[v[:, d], d].double() for d in range(2)]
    sq = sum(float(((c - c.mean()) ** 2).sum()) for c in cols)  # variance (ddof 0) around each mean
    assert t.constant_baseline(y) == pytest.approx(sq / int(v.sum()), rel=1e-5)
    t, y, v = cases["r_l1"]
    assert torch.allclose(t.constant_prediction(y), torch.stack([c.median() for c in cols]).float())


@pytest.mark.parametrize(("task", "y", "valid"), _baseline_cases(), ids=lambda v: getattr(v, "name", ""))
def test_constant_baseline_ignores_missing_labels(task: Task, y: torch.Tensor, valid: torch.Tensor) -> None:
    base = task.constant_baseline(y)
    # other values in the missing entries, or hidden by an explicit mask instead: same baseline
    garbage = y.clone()
    garbage[~valid.reshape(y.shape)] = -1 if task.is_classification else float("nan")
    assert task.constant_baseline(garbage) == base
    rows = valid.reshape(len(y), -1).all(1)
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[::2] = False
    assert task.constant_baseline(y, keep) == pytest.approx(task.constant_baseline(y[keep]), rel=1e-6)
    if task.kind in ("binary", "multiclass"):  # one label per sample: the labelled rows alone
        assert task.constant_baseline(y[rows]) == pytest.approx(base, rel=1e-6)


# ---------------------------------------------------------------------- metric table
def test_metric_table_gives_direction_and_format() -> None:
    from manytask.reporting.tables import fmt_metric
    from manytask.tasks import KIND_METRICS, METRICS

    r = Task("r", "regression")
    assert r.primary_metric == "mse" and not r.higher_is_better
    assert r.metric_spec("r2").higher_is_better and not r.metric_spec("mae").higher_is_better
    c = Task("c", "binary")
    assert c.primary_metric == "accuracy" and c.higher_is_better and c.metric_spec("auc").percent
    assert not c.metric_spec("loss").higher_is_better
    with pytest.raises(ConfigError, match="r2"):
        c.metric_spec("r2")
    # every metric a task reports has an entry in its kind's table
    for kind, specs in KIND_METRICS.items():
        t = Task("t", kind, num_classes=3 if kind in ("multiclass", "multilabel") else None)  # type: ignore[arg-type]
        g = torch.Generator().manual_seed(1)
        if kind == "multiclass":
            y = torch.randint(0, 3, (20,), generator=g)
        elif kind in ("binary", "multilabel"):
            y = (torch.rand(20, t.out_features, generator=g) < 0.5).float().squeeze(1)
        else:
            y = torch.randn(20, generator=g)
        pred = torch.randn(20, t.out_features, generator=g)
        assert set(t.metrics(pred, y)) == {m.name for m in t.metric_specs}, kind
        assert specs[0].name == t.primary_metric
    assert fmt_metric(0.9123, "accuracy") == "91.23%" and fmt_metric(0.9123, "mse") == "0.9123"
    assert METRICS["mse"].label == "MSE"
