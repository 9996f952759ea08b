"""Selective Sharing: TT compression, clustering criteria, merging, the stop rule and the controller."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from manytask.data.batch import TensorDataset
from manytask.grouping.selective_sharing import (
    cluster_vectors,
    criterion_distances,
    groups_from_labels,
    merged_tensors,
    should_stop,
    survivor,
    tt_cores,
    tt_vector,
)
from manytask.grouping.sharing_controller import (
    SelectiveSharing,
    merge_branches,
    trainable_parameters,
)
from manytask.models.branches import branch_name, branched_model
from manytask.tasks import Task
from manytask.training import OptimizerSpec, Trainer


class _Flat(nn.Module):
    """A tiny trunk: one linear layer with ``out_features``."""

    def __init__(self, d_in: int = 6, d_out: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(d_in, d_out)
        self.out_features = d_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x))


def _model(names: list[str], hidden: tuple[int, ...] = (5, 4)) -> nn.Module:
    torch.manual_seed(0)
    return branched_model(_Flat(), [Task(n, "binary") for n in names], hidden)


# ---------------------------------------------------------------------- tensor train
def test_tt_cores_rebuild_the_record_at_full_rank() -> None:
    x = np.random.default_rng(0).normal(size=(3, 4, 5))
    cores = tt_cores(x, rank=20)
    rebuilt = np.einsum("aib,bjc,ckd->ijk", *cores)
    assert np.allclose(rebuilt, x)
    assert [c.shape for c in cores] == [(1, 3, 3), (3, 4, 5), (5, 5, 1)]


def test_tt_vector_has_a_fixed_size_unit_norm_and_ignores_scale() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 6, 7)), rng.normal(size=(4, 6, 7))
    va, vb = tt_vector(a, rank=2), tt_vector(b, rank=2)
    assert va.shape == vb.shape == (1 * 4 * 2 + 2 * 6 * 2 + 2 * 7,)
    assert np.isclose(np.linalg.norm(va), 1.0)
    assert np.allclose(tt_vector(3.0 * a, rank=2), va)  # normalised: only the direction counts
    assert np.allclose(tt_vector(torch.tensor(a), rank=2), va)
    assert not np.allclose(va, vb)
    assert not np.any(tt_vector(np.zeros((4, 6, 7)), rank=2))


# ---------------------------------------------------------------------- clustering
def test_records_of_duplicated_tasks_cluster_together_under_every_criterion() -> None:
    rng = np.random.default_rng(2)
    bases = [rng.normal(size=(4, 10, 12)) for _ in range(3)]
    records = [bases[i % 3] * (1 + 0.05 * i) + 0.01 * rng.normal(size=(4, 10, 12)) for i in range(6)]
    vectors = np.stack([tt_vector(r, rank=3) for r in records])
    labels = cluster_vectors(vectors, "similarity")
    groups = groups_from_labels([f"t{i}" for i in range(6)], labels)
    assert sorted(map(sorted, groups)) == [["t0", "t3"], ["t1", "t4"], ["t2", "t5"]]
    assert cluster_vectors(vectors, "variance")[0] == cluster_vectors(vectors, "variance")[3]


def test_criteria_distances() -> None:
    v = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    d = criterion_distances(v, "similarity")
    assert np.allclose(d, [[0, 2**0.5, 2], [2**0.5, 0, 2**0.5], [2, 2**0.5, 0]])
    assert np.allclose(criterion_distances(v, "dissimilarity"), np.where(np.eye(3, dtype=bool), 0.0, 2.0 - d))
    # variance: standardised coordinates, so rescaling one coordinate changes nothing
    assert np.allclose(criterion_distances(v * [5.0, 1.0], "variance"), criterion_distances(v, "variance"))
    with pytest.raises(ValueError, match="criterion"):
        criterion_distances(v, "nearest")


def test_dissimilarity_groups_opposite_records() -> None:
    v = np.array([[1.0, 0.0], [0.99, 0.14], [-1.0, 0.0], [-0.99, -0.14]])
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    sim = groups_from_labels(list("abcd"), cluster_vectors(v, "similarity"))
    dis = groups_from_labels(list("abcd"), cluster_vectors(v, "dissimilarity"))
    assert sorted(map(sorted, sim)) == [["a", "b"], ["c", "d"]]
    assert all({"a", "b"} not in (set(g),) and {"c", "d"} != set(g) for g in dis)


def test_too_few_branches_are_noise() -> None:
    assert cluster_vectors(np.eye(2), "similarity").tolist() == [-1, -1]


# ---------------------------------------------------------------------- merging
def test_survivor_and_elementwise_merges() -> None:
    assert survivor(["a", "b", "c"], {"a": 0.3, "b": 0.1, "c": 0.1}) == "b"
    x, y = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.0])
    assert merged_tensors([x, y], "mean").tolist() == [2.0, -1.0]
    assert merged_tensors([x, y], "max").tolist() == [3.0, 0.0]
    assert merged_tensors([x, y], "min").tolist() == [1.0, -2.0]


@pytest.mark.parametrize("how", ["lowest_loss", "mean", "max", "min"])
def test_merging_identical_branches_preserves_every_output(how: str) -> None:
    model = _model(["a", "b", "c"])
    x = torch.randn(7, 6)
    before = {k: v.detach().clone() for k, v in model(x).items()}
    removed = merge_branches(model, [branch_name("a"), branch_name("b")], branch_name("b"), how)
    after = model(x)
    assert removed == [branch_name("a")]
    assert model.routing == {"a": branch_name("b"), "b": branch_name("b"), "c": branch_name("c")}
    for k in before:
        assert torch.allclose(after[k], before[k], atol=1e-6)


def test_parameter_count_falls_by_exactly_the_removed_branches() -> None:
    model = _model(["a", "b", "c", "d"])
    per_branch = trainable_parameters(model.branches[branch_name("a")])
    total = trainable_parameters(model)
    merge_branches(model, [branch_name(n) for n in "abc"], branch_name("c"))
    assert trainable_parameters(model) == total - 2 * per_branch
    assert len(model.heads) == 4  # the merged tasks keep their own output units


def test_optimizer_state_follows_the_surviving_branch() -> None:
    model = _model(["a", "b", "c"])
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sum(v.sum() for v in model(torch.randn(4, 6)).values()).backward()
    opt.step()
    keep = list(model.branches[branch_name("b")].parameters())
    gone = list(model.branches[branch_name("a")].parameters())
    kept_state = [opt.state[p]["momentum_buffer"].clone() for p in keep]
    merge_branches(model, [branch_name("a"), branch_name("b")], branch_name("b"), "lowest_loss", opt)
    params = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in params for p in gone)
    assert not any(p in opt.state for p in gone)
    assert all(torch.equal(opt.state[p]["momentum_buffer"], s) for p, s in zip(keep, kept_state))
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == trainable_parameters(model)


# ---------------------------------------------------------------------- stop rule
def test_stop_rule() -> None:
    assert should_stop([2, 3], 0) == "grouped"
    assert should_stop([2, 1], 0) is None
    assert should_stop([2, 1], 2, patience=3) is None
    assert should_stop([2, 1], 3, patience=3) == "unchanged"
    assert should_stop([10], 0) == "grouped"


# ---------------------------------------------------------------------- controller in training
def _duplicated_setup() -> tuple[nn.Module, list[Task], TensorDataset]:
    """Three tasks, each present twice (same column, identical head): their branches get
    exactly the same gradients."""
    torch.manual_seed(0)
    n = 96
    x = torch.randn(n, 6)
    cols = {"p": (x[:, 0] > 0).float(), "q": (x[:, 1] + x[:, 2] > 0).float(), "r": (x[:, 3] * x[:, 4] > 0).float()}
    tasks = [Task(f"{c}{i}", "binary", target=c) for i in (1, 2) for c in cols]
    model = branched_model(_Flat(), tasks, (5, 4))
    for c in cols:
        model.heads[f"{c}2"].load_state_dict(model.heads[f"{c}1"].state_dict())
    data = TensorDataset(x, {t.name: cols[t.column] for t in tasks})
    return model, tasks, data


def test_controller_groups_duplicated_tasks_and_locks() -> None:
    model, tasks, data = _duplicated_setup()
    sharing = SelectiveSharing(model, criterion="similarity", rank=3, slots=4)
    trainer = Trainer(model, tasks, optimizer=OptimizerSpec(lr=0.05), epochs=2, batch_size=16,
                      progress=False, callbacks=[sharing], device="cpu")
    trainer.fit(data, data)
    groups = sorted(sorted(ts) for ts in sharing.groups().values())
    assert groups == [["p1", "p2"], ["q1", "q2"], ["r1", "r2"]]
    assert sharing.locked == "grouped" and sharing.lock_epoch == 1
    assert sharing._handles == [] and sharing._records == {}  # hooks gone once locked
    s = sharing.summary()
    per_branch = trainable_parameters(model.branches[next(iter(model.branches))])
    assert s["params_start"] - s["params_end"] == 3 * per_branch
    assert len(sharing.log) == 1  # nothing clustered after the lock


def test_controller_records_sum_the_epoch_gradients() -> None:
    model, tasks, data = _duplicated_setup()
    plain = copy.deepcopy(model)
    sharing = SelectiveSharing(model, slots=3)
    captured: dict[str, torch.Tensor] = {}

    def grab(trainer: Trainer, epoch: int) -> None:  # runs before the sharing step
        captured.update({b: r.sum(0).clone() for b, r in sharing._records.items()})

    kw = dict(optimizer=OptimizerSpec(name="sgd", lr=1e-12, momentum=0.0), epochs=1, batch_size=32,
              progress=False, device="cpu")
    Trainer(model, tasks, callbacks=[grab, sharing], **kw).fit(data)
    # the weights (almost) never move: the epoch's summed gradient is the full-batch one × steps
    losses = sum(t.loss(plain(data.inputs)[t.name], data.targets[t.name]) for t in tasks)
    w = plain.branches[branch_name("p1")][0].weight
    (g,) = torch.autograd.grad(losses, [w])
    assert torch.allclose(captured[branch_name("p1")], 3 * g, atol=1e-5)


def test_capture_does_not_change_training() -> None:
    runs = []
    for watch in (False, True):
        model, tasks, data = _duplicated_setup()
        cbs = [SelectiveSharing(model, start_epoch=99)] if watch else []
        Trainer(model, tasks, optimizer=OptimizerSpec(lr=0.05), epochs=2, batch_size=16, progress=False,
                callbacks=cbs, device="cpu").fit(data)
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_controller_stops_after_patience_epochs_without_merges() -> None:
    model = _model(["a", "b"])
    sharing = SelectiveSharing(model, patience=2)
    for epoch in (1, 2):
        sharing.step(epoch, {b: 0.0 for b in model.branches})
    assert sharing.locked == "unchanged" and sharing.lock_epoch == 2
