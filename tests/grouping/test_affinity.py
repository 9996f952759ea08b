"""TAG lookahead affinity and gradient cosine similarity: constructed cases and properties."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from grouping_helpers import tiny_config

from manytask.config import parse_config
from manytask.data.batch import Batch, TensorDataset
from manytask.errors import ConfigError, DataError
from manytask.grouping.affinity import (
    TAG_VARIANTS,
    AffinityResult,
    affinity_table,
    affinity_trainer,
    gradient_cosine,
    group_affinity,
    grouping_affinity,
    lookahead_affinity,
    run_affinity,
    train_with_affinity,
)
from manytask.grouping.candidates import build_candidates
from manytask.grouping.selection import select_many
from manytask.models import MLPTrunk, MultiTaskModel
from manytask.tasks import Task
from manytask.training import OptimizerSpec, Trainer


def mirrored_problem(seed: int = 0) -> tuple[MultiTaskModel, list[Task], Batch]:
    """Tasks a and b: the same regression target, c: its negation; all heads identical.

    A step for a is a step for b (Z_{a→b} = Z_{a→a} > 0); moving the shared output towards y
    moves it away from -y (Z_{a→c} < 0); the targets are centred at 2 so that the untrained
    prediction (near 0) is far from both.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 6, generator=g)
    y = (x[:, :2].sum(1, keepdim=True) + 2.0)
    tasks = [Task("a", "regression"), Task("b", "regression"), Task("c", "regression")]
    torch.manual_seed(seed)
    model = MultiTaskModel(MLPTrunk(6, hidden=[16]), tasks, head_hidden=8)
    state = model.heads["a"].state_dict()
    for name in ("b", "c"):
        model.heads[name].load_state_dict(state)
    return model, tasks, Batch(x, {"a": y, "b": y.clone(), "c": -y})


def test_lookahead_identical_tasks_help_opposite_task_hurts() -> None:
    model, tasks, batch = mirrored_problem()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Z = lookahead_affinity(model, tasks, batch, lr=0.01)
    assert Z.shape == (3, 3)
    assert Z[0, 1] > 0 and Z[1, 0] > 0 and Z[0, 0] > 0
    assert math.isclose(float(Z[0, 1]), float(Z[0, 0]), rel_tol=1e-9)  # b's loss is a's loss
    assert Z[0, 2] < 0 and Z[2, 0] < 0 and Z[1, 2] < 0
    # the lookahead leaves the model untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_lookahead_matches_an_explicit_sgd_step() -> None:
    model, tasks, batch = mirrored_problem(1)
    lr = 0.05
    Z = lookahead_affinity(model, tasks, batch, lr)
    # by hand: copy the model, one SGD step of the trunk on task c's loss, losses before/after
    import copy

    from manytask.tasks import stack_losses

    m2 = copy.deepcopy(model)
    before = stack_losses(tasks, m2(batch.inputs), batch.targets).detach()
    opt = torch.optim.SGD(m2.shared_parameters(), lr=lr)
    stack_losses(tasks, m2(batch.inputs), batch.targets)[2].backward()
    opt.step()
    after = stack_losses(tasks, m2(batch.inputs), batch.targets).detach()
    expect = 1 - after / before
    assert torch.allclose(Z[2].float(), expect, rtol=1e-4, atol=1e-7)


def test_lookahead_with_the_optimizer_is_its_own_step_divided_by_the_lr() -> None:
    """The authors' lookahead: the training optimizer's update (SGD with momentum and weight
    decay, from its current momentum buffer) with task i's gradient, and Z divided by the lr."""
    import copy

    from manytask.tasks import stack_losses

    model, tasks, batch = mirrored_problem(3)
    lr = 0.05
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=0.01)
    for _ in range(2):  # two real steps: the momentum buffers are not zero
        opt.zero_grad()
        stack_losses(tasks, model(batch.inputs), batch.targets).sum().backward()
        opt.step()
    state_before = copy.deepcopy(opt.state_dict())
    params_before = {k: v.clone() for k, v in model.state_dict().items()}
    Z = lookahead_affinity(model, tasks, batch, lr, optimizer=opt, scale=True)
    # the optimizer and the model are untouched
    assert all(torch.equal(params_before[k], v) for k, v in model.state_dict().items())
    for p_id, st in opt.state_dict()["state"].items():
        assert torch.equal(st["momentum_buffer"], state_before["state"][p_id]["momentum_buffer"])
    # by hand: θ - lr (0.9 b + g_c + 0.01 θ) on the trunk, heads fixed
    m2 = copy.deepcopy(model)
    before = stack_losses(tasks, m2(batch.inputs), batch.targets).detach()
    trunk = m2.shared_parameters()
    grads = torch.autograd.grad(stack_losses(tasks, m2(batch.inputs), batch.targets)[2], trunk)
    bufs = [opt.state[p]["momentum_buffer"] for p in model.shared_parameters()]
    with torch.no_grad():
        for p, g, b in zip(trunk, grads, bufs):
            p -= lr * (0.9 * b + g + 0.01 * p)
    after = stack_losses(tasks, m2(batch.inputs), batch.targets).detach()
    assert torch.allclose(Z[2].float(), (1 - after / before) / lr, rtol=1e-4, atol=1e-6)
    # the plain lookahead differs once momentum has built up
    plain = lookahead_affinity(model, tasks, batch, lr)
    assert not torch.allclose(plain[2].float() / lr, Z[2].float(), rtol=1e-3)


def test_lookahead_with_a_fresh_optimizer_is_the_sgd_step() -> None:
    """Before the first step (no momentum buffer) the authors' update is the plain SGD step."""
    model, tasks, batch = mirrored_problem(4)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    Z = lookahead_affinity(model, tasks, batch, 0.02, optimizer=opt, scale=True)
    plain = lookahead_affinity(model, tasks, batch, 0.02)
    assert torch.allclose(Z, plain / 0.02, rtol=1e-6, atol=1e-9)
    adam = torch.optim.Adam(model.parameters(), lr=0.01)
    assert torch.isfinite(lookahead_affinity(model, tasks, batch, 0.01, optimizer=adam)).all()


def test_cosine_is_symmetric_with_unit_diagonal() -> None:
    model, tasks, batch = mirrored_problem(2)
    C = gradient_cosine(model, tasks, batch)
    assert torch.allclose(C, C.T)
    assert torch.allclose(torch.diagonal(C), torch.ones(3, dtype=C.dtype))
    assert math.isclose(float(C[0, 1]), 1.0, rel_tol=1e-6)  # identical tasks: identical gradients
    assert float(C[0, 2]) < 0 and float(C[1, 2]) < 0  # opposite targets pull apart
    assert (C.abs() <= 1 + 1e-9).all()


def test_group_scores_by_hand() -> None:
    tasks = ("a", "b", "c")
    Z = np.array([[0.0, 0.3, -0.2], [0.1, 0.0, 0.4], [0.5, -0.6, 0.0]])  # Z[i, j] = i → j
    # S_{a,b,c}(a) = mean(Z[b,a], Z[c,a]) = (0.1 + 0.5) / 2
    S = group_affinity(Z, tasks, ["a", "b", "c"])
    assert math.isclose(S["a"], 0.3) and math.isclose(S["b"], (0.3 - 0.6) / 2) and math.isclose(S["c"], 0.1)
    assert group_affinity(Z, tasks, ["b"]) == {"b": 0.0}
    # grouping {a, b}, {c}: a gets Z[b,a] = 0.1, b gets Z[a,b] = 0.3, c alone 0
    assert math.isclose(grouping_affinity(Z, tasks, [["a", "b"], ["c"]]), 0.4)
    # overlapping groups: each task counts its best group
    assert math.isclose(grouping_affinity(Z, tasks, [["a", "b"], ["a", "c"]]), 0.5 + 0.3 - 0.2)
    with pytest.raises(ConfigError, match="unknown task"):
        group_affinity(Z, tasks, ["a", "z"])


TINY = tiny_config(seed=1, sizes=(256, 64, 64), epochs=2, sgd=True)


def test_affinity_table_selection_maximises_total_affinity() -> None:
    cfg = parse_config(TINY)
    specs = build_candidates(cfg)
    Z = np.array([[np.nan, 0.3, -0.2], [0.2, np.nan, -0.1], [-0.4, -0.3, np.nan]])
    res = AffinityResult(kind="tag", tasks=("left", "odd", "recon"), matrix=Z, counts=np.ones((3, 3), int),
                         every=1, samples=1, train_steps=1, steps_per_epoch=1, epochs_run=1, extra_backward=0,
                         extra_forward=0)
    table = affinity_table(res, specs, single_task=0.0)  # the plain variant: a task alone scores 0
    assert len(table) == 7 and all(c.cost == 1.0 for c in table)  # full-size groups only
    i = table.index_of((frozenset({"left", "odd"}), 1.0))
    assert table[i].val_loss == {"left": 1 - 0.2, "odd": 1 - 0.3}
    sel2 = select_many(table, [2.0])[0]
    # two networks: {left, odd} (affinity 0.5) and recon alone beat every other pair of groups
    assert sorted(tuple(sorted(n.tasks)) for n in sel2.networks) == [("left", "odd"), ("recon",)]
    assert math.isclose(len(res.tasks) - sel2.total_loss, 0.5)
    # the authors' selection: a task alone scores -1e6, so recon joins a group; {odd, recon}
    # (recon receives Z[odd, recon] = -0.1) next to {left, odd}: 0.2 + 0.3 - 0.1 = 0.4
    authors = affinity_table(res, specs)
    j = authors.index_of((frozenset({"recon"}), 1.0))
    assert authors[j].val_loss == {"recon": 1 + 1e6}
    sel2 = select_many(authors, [2.0])[0]
    assert sorted(tuple(sorted(n.tasks)) for n in sel2.networks) == [("left", "odd"), ("odd", "recon")]
    assert math.isclose(len(res.tasks) - sel2.total_loss, 0.4)
    assert math.isclose(grouping_affinity(Z, res.tasks, [["left", "odd"], ["odd", "recon"]], -1e6), 0.4)
    assert grouping_affinity(Z, res.tasks, [["left", "odd"], ["recon"]], -1e6) < -1e5


def test_measurement_does_not_change_training_and_overhead_by_hand() -> None:
    """The affinity run is the same training as the plain loop; overhead counted by hand."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 5, generator=g)
    data = TensorDataset(x, {"p": x[:, :1] * 2, "q": -x[:, 1:2], "r": x[:, :1] + x[:, 2:3]})
    tasks = [Task("p", "regression"), Task("q", "regression"), Task("r", "regression")]

    def trainer() -> Trainer:
        torch.manual_seed(0)
        model = MultiTaskModel(MLPTrunk(5, hidden=[8]), tasks, head_hidden=4)
        return Trainer(model, tasks, "uniform", OptimizerSpec(lr=0.05), epochs=3, batch_size=32, seed=0,
                       progress=False)

    plain = trainer()
    for epoch in range(1, 4):
        plain.train_epoch(data, epoch)
    measured = trainer()
    res = train_with_affinity(measured, data, kind="tag", every=3)
    for (k, v), (k2, v2) in zip(plain.model.state_dict().items(), measured.model.state_dict().items()):
        assert k == k2 and torch.allclose(v, v2, atol=1e-6)
    # 4 steps per epoch (100 / 32), 12 steps, sampled at steps 0, 3, 6, 9
    assert res.steps_per_epoch == 4 and res.train_steps == 12 and res.samples == 4
    assert res.extra_backward == 12 and res.extra_forward == 12  # 3 tasks per sample
    # (2 * 12 + 12) / 3 = 12 step-equivalents over 4 * 3 steps of the full schedule = 1 FTE
    assert math.isclose(res.overhead_equivalents(3), 1.0)
    assert math.isclose(res.compute_equivalents(3), 2.0)
    assert (res.counts[~np.eye(3, dtype=bool)] == 4).all()
    cos = train_with_affinity(trainer(), data, kind="cosine", every=6)
    assert cos.samples == 2 and cos.extra_forward == 0 and cos.extra_backward == 6
    assert np.allclose(cos.matrix, cos.matrix.T) and np.allclose(np.diag(cos.matrix), 1.0)
    with pytest.raises(ConfigError, match="tag_every"):
        train_with_affinity(trainer(), data, every=0)


@pytest.mark.parametrize(("method", "schedule", "dropout", "lookahead"), [
    ("famo", "none", 0.0, "optimizer"),   # FAMO learns its logits in after_step
    ("dwa", "plateau", 0.0, "optimizer"),  # on_epoch_end and ReduceLROnPlateau see the same epoch losses
    ("uniform", "none", 0.3, "optimizer"),  # the measurement draws no random numbers of the training run
    ("uniform", "none", 0.3, "sgd"),
])
def test_affinity_run_is_exactly_the_trainers_run(method: str, schedule: str, dropout: float, lookahead: str) -> None:
    """Every weighting hook and the schedule behave as in ``Trainer.fit``: with the same seed the
    measured run ends with the same model, weighting state and learning rate, bit for bit."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 5, generator=g)
    data = TensorDataset(x, {"p": x[:, :1] * 2, "q": -x[:, 1:2], "r": x[:, :1] + x[:, 2:3]})
    tasks = [Task("p", "regression"), Task("q", "regression"), Task("r", "regression")]

    def trainer(**kw) -> Trainer:
        torch.manual_seed(0)
        model = MultiTaskModel(MLPTrunk(5, hidden=[8], dropout=dropout), tasks, head_hidden=4)
        spec = OptimizerSpec(lr=0.05, schedule=schedule, gamma=0.5)
        return Trainer(model, tasks, method, spec, epochs=4, batch_size=32, seed=0, progress=False, **kw)

    last: dict[str, dict[str, torch.Tensor]] = {}

    def snapshot(t: Trainer, epoch: int) -> None:  # the state after the last epoch (fit keeps the best)
        last["model"] = {k: v.clone() for k, v in t.model.state_dict().items()}
        last["weighting"] = {k: v.clone() for k, v in t.weighting.state_dict().items()}
        last["lr"] = {"lr": torch.tensor(t.optimizer.param_groups[0]["lr"])}

    trainer(callbacks=[snapshot]).fit(data)
    measured = trainer()
    train_with_affinity(measured, data, kind="tag", every=2, lookahead=lookahead)
    got = {"model": measured.model.state_dict(), "weighting": measured.weighting.state_dict(),
           "lr": {"lr": torch.tensor(measured.optimizer.param_groups[0]["lr"])}}
    if method == "famo":
        assert not torch.equal(last["weighting"]["xi"], torch.zeros(3))  # the logits did learn
    if schedule == "plateau":
        assert float(got["lr"]["lr"]) <= 0.05
    for part in ("model", "weighting", "lr"):
        assert last[part].keys() == got[part].keys()
        for key, value in last[part].items():
            assert torch.equal(value, got[part][key]), f"{part} {key} differs"


@pytest.mark.parametrize("variant", ["authors", "plain"])
def test_measured_run_with_dropout_ends_bit_for_bit_as_the_unmeasured_one(variant: str) -> None:
    """A config with ``model.dropout > 0`` and SGD with momentum: the affinity run (every step
    measured, lookahead forwards in training mode draw dropout masks) ends with exactly the
    parameters, momentum buffers and learning rate of the same run without the measurement."""
    cfg = parse_config({**TINY, "model": {**TINY["model"], "dropout": 0.3}})
    plain, splits = affinity_trainer(cfg, seed=5)
    for epoch in range(1, plain.epochs + 1):
        plain.train_epoch(splits.train, epoch)
    measured, _ = affinity_trainer(cfg, seed=5)
    res = train_with_affinity(measured, splits.train, kind="tag", every=1, lookahead=TAG_VARIANTS[variant].lookahead,
                              scale=TAG_VARIANTS[variant].scale)
    assert res.samples == res.train_steps > 0 and np.isfinite(res.matrix[~np.eye(3, dtype=bool)]).all()
    a, b = plain.model.state_dict(), measured.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = plain.optimizer.state_dict()["state"], measured.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"]) for i in sa)
    assert plain.optimizer.param_groups[0]["lr"] == measured.optimizer.param_groups[0]["lr"]
    assert torch.equal(plain.generator.get_state(), measured.generator.get_state())
    # and the dropout does act: the same trainer without dropout ends elsewhere
    other, _ = affinity_trainer(parse_config(TINY), seed=5)
    for epoch in range(1, other.epochs + 1):
        other.train_epoch(splits.train, epoch)
    assert any(not torch.equal(v, other.model.state_dict()[k]) for k, v in a.items())


def test_run_affinity_saves_and_reloads(tmp_path: Path) -> None:
    cfg = parse_config(TINY)
    res = run_affinity(cfg, tmp_path, kind="tag", every=2)
    assert res.lookahead == "optimizer" and res.scale and res.settings["lookahead"] == "optimizer"
    assert res.tasks == ("left", "odd", "recon") and res.samples == 4 and res.epochs_run == 2
    assert np.isfinite(res.matrix).all()
    assert set(res.val) == {"left", "odd", "recon"} and "loss" in res.test["recon"]
    again = run_affinity(cfg, tmp_path, kind="tag", every=2)  # read back, not retrained
    assert np.array_equal(again.matrix, res.matrix) and again.seconds == res.seconds
    with pytest.raises(DataError, match="other settings"):
        run_affinity(cfg, tmp_path, kind="tag", every=3)
    assert "i → j" in res.to_markdown()
