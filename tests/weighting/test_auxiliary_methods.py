"""Mathematical properties of the main/auxiliary methods: class-wise auxiliary weights
(Yim & Kim 2020), Pareto MTL (Lin et al. 2019) and the gradient-cosine gate (Du et al. 2018)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from torch import Tensor, nn
from weighting_helpers import TASKS, flat_grad, forward, setup, single_thread  # noqa: F401  (autouse fixture)

from manytask.data.batch import TensorDataset
from manytask.errors import ConfigError
from manytask.tasks import Task
from manytask.weighting import (
    ClasswiseAux,
    SharedParts,
    cosine_gate,
    create,
    create_from_train,
    pareto_mtl_coefficients,
    preference_vectors,
)
from manytask.weighting import _classwise as cw
from manytask.weighting.terms import ElementLosses, element_losses, stack_means


# ---------------------------------------------------------------------- class-wise auxiliary weights
class DenseModel(nn.Module):
    """Shared Linear trunk; a per-pixel reconstruction head and a per-pixel 3-class head over 4 pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, 8)
        self.recon = nn.Linear(8, 4)
        self.mask = nn.Linear(8, 12)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        z = torch.tanh(self.fc(x))
        return {"recon": self.recon(z), "mask": self.mask(z)}


DENSE = [Task("recon", "reconstruction", dim=4), Task("mask", "multiclass", num_classes=3, dim=4)]


def _dense_batch(seed: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 5, generator=g)
    mask = torch.randint(0, 3, (16, 4), generator=g)
    mask[0, 1] = -1  # an unlabelled pixel
    return x, {"recon": torch.rand(16, 4, generator=g), "mask": mask}


def _grads_after(method: Any, model: nn.Module, x: Tensor, y: dict[str, Tensor], tasks: list[Task]) -> Tensor:
    model.zero_grad()
    preds = model(x)
    terms = element_losses(tasks, preds, y)
    method.backward(stack_means(tasks, terms), SharedParts(params=list(model.fc.parameters()), terms=terms))
    return flat_grad(list(model.parameters()))


@pytest.mark.parametrize("main", ["recon", "mask"])
def test_all_class_weights_one_is_the_linear_sum_exactly(main: str) -> None:
    torch.manual_seed(0)
    model = DenseModel()
    x, y = _dense_batch()
    method = create_from_train("classwise_aux", DENSE, TensorDataset(x, y), main=main, bins=5)
    ours = _grads_after(method, model, x, y, DENSE)
    linear = _grads_after(create("uniform", DENSE), model, x, y, DENSE)
    assert torch.equal(ours, linear)


def test_per_sample_labels_reproduce_the_linear_sum_too() -> None:
    model, x, y = setup(seed=4)
    method = create_from_train("classwise_aux", list(TASKS), TensorDataset(x, y), main="size")
    model.zero_grad()
    losses, shared = forward(model, x, y)
    method.backward(losses, shared)
    ours = flat_grad(list(model.parameters()))
    model.zero_grad()
    losses, shared = forward(model, x, y)
    losses.sum().backward()
    assert torch.allclose(ours, flat_grad(list(model.parameters())), rtol=1e-6, atol=0)


def test_class_weights_multiply_the_class_losses() -> None:
    torch.manual_seed(0)
    model = DenseModel()
    x, y = _dense_batch()
    method = ClasswiseAux(DENSE, main="recon")
    method.class_weights.copy_(torch.tensor([0.0, 2.0, 0.5], dtype=torch.float64))
    got = _grads_after(method, model, x, y, DENSE)
    model.zero_grad()
    preds = model(x)
    terms, valid = DENSE[1].loss_terms(preds["mask"], y["mask"])
    w = torch.tensor([0.0, 2.0, 0.5])[y["mask"].clamp_min(0)] * valid
    (DENSE[0].loss(preds["recon"], y["recon"]) + (terms * w).sum() / valid.sum()).backward()
    assert torch.allclose(got, flat_grad(list(model.parameters())), atol=1e-7)


def test_eq10_finite_difference_by_hand() -> None:
    t = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    g = cw.finite_difference_gradient(t(0.8, 1.0), t(1.0, 1.0), t(2.0, 4.0), t(0.3, 0.5), t(0.2, 0.5),
                                      t(0.5, 1.0), t(0.6, 0.7), eps=1e-3)
    expected0 = ((0.8 - 1.0) / 2.0 + 1e-3) / ((0.3 - 0.2) / 0.5 + 1e-3) * 0.6
    expected1 = (0.0 + 1e-3) / (0.0 + 1e-3) * 0.7
    assert torch.allclose(g, t(expected0, expected1))
    assert float(cw.finite_difference_gradient(t(1.0), t(0.0), t(1.0), t(0.0), t(0.0), t(1.0), t(1.0), 0.0)) == 0.0


def test_relu_projection_keeps_weights_nonnegative() -> None:
    w = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    m, v = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    for step in range(1, 40):
        cw.adam_relu_step(w, torch.tensor([5.0, 1e-6, -1.0], dtype=torch.float64), m, v,
                          torch.full((3,), step), alpha=0.1, beta1=0.9, beta2=0.999, eps=1e-8)
        assert bool((w >= 0).all())
    assert w[0] == 0.0 and w[1] == 0.0 and w[2] > 2.0


class _LabelledAux(ClasswiseAux):
    """The auxiliary class of a sample comes from a label array the test holds (``self.batch_classes``)."""

    def classes_of(self, task: Task, target: Tensor, valid: Tensor) -> Tensor:
        return self.batch_classes.reshape(-1, 1)


def test_a_class_that_conflicts_with_the_main_task_is_driven_to_zero() -> None:
    """A constructed problem: the main loss on class-c points responds to the class weight,
    ``L_main^c(t) = 1 + s_c · 0.5 (w^c - 1)``, with s = +1 for class 1 (raising its weight hurts
    the main task: a conflict) and s = -1 for class 0 (it helps); D_aux = 1 everywhere."""
    tasks = [Task("main", "regression"), Task("aux", "regression")]
    method = _LabelledAux(tasks, main="main", alpha=0.05, warmup_epochs=0, bin_edges={"aux": [0.0]})
    method.batch_classes = torch.tensor([0, 0, 1, 1])
    sign = torch.tensor([-1.0, -1.0, 1.0, 1.0])
    for _ in range(200):
        w = method.class_weights.float()[method.batch_classes]
        leaf = torch.ones(4, 1, requires_grad=True)
        main = leaf * (1.0 + sign * 0.5 * (w - 1.0)).unsqueeze(1)
        ones = torch.ones(4, 1, dtype=torch.bool)
        terms = {"main": ElementLosses(main, ones, torch.zeros(4, 1)), "aux": ElementLosses(leaf * 1.0, ones, torch.zeros(4, 1))}
        method.backward(stack_means(tasks, terms), SharedParts(params=[leaf], terms=terms))
    helpful, harmful = method.weights_by_task()["aux"]
    assert harmful == 0.0 and helpful > 2.0, (helpful, harmful)


def test_weights_stay_fixed_during_warmup_and_are_logged() -> None:
    model, x, y = setup(seed=5)
    method = create_from_train("classwise_aux", list(TASKS), TensorDataset(x, y), main="digit",
                               alpha=0.5, warmup_epochs=2)
    for epoch in range(4):
        for _ in range(3):
            model.zero_grad()
            losses, shared = forward(model, x + 0.1 * epoch, y)
            info = method.backward(losses, shared)
        if epoch < 2:
            assert torch.equal(method.class_weights, torch.ones_like(method.class_weights))
        method.on_epoch_end(losses.detach())
    assert not torch.equal(method.class_weights, torch.ones_like(method.class_weights))
    assert {"cw/size/0", "cw/size/9", "cw/odd/0", "cw/odd/1"} <= set(info.extra)
    assert info.weights[0] == 1.0


def test_main_losses_split_by_auxiliary_class() -> None:
    main = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    ok = torch.ones(2, 2, dtype=torch.bool)
    dense = torch.tensor([[0, 1], [1, 1]])
    s, n = cw.main_class_sums(main, ok, dense, ok, 2)  # pixel by pixel
    assert s.tolist() == [1.0, 9.0] and n.tolist() == [1.0, 3.0]
    s, n = cw.main_class_sums(main, ok, torch.tensor([[1], [0]]), ok[:, :1], 2)  # per-sample aux label
    assert s.tolist() == [7.0, 3.0] and n.tolist() == [2.0, 2.0]
    s, n = cw.main_class_sums(main[:, :1], ok[:, :1], dense, ok, 2)  # per-sample main, dense aux
    assert s.tolist() == [0.5, 3.5] and n.tolist() == [0.5, 1.5]
    with pytest.raises(ValueError, match="3 loss elements"):
        cw.main_class_sums(torch.ones(2, 3), torch.ones(2, 3, dtype=torch.bool), dense, ok, 2)


def test_continuous_auxiliary_labels_are_binned_from_the_training_split() -> None:
    tasks = [Task("c", "multiclass", num_classes=3), Task("r", "regression")]
    y = {"c": torch.zeros(5, dtype=torch.long), "r": torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])}
    method = create_from_train("classwise_aux", tasks, TensorDataset(torch.zeros(5, 1), y), bins=4)
    assert method.edges["r"].tolist() == [1.0, 2.0, 3.0]
    classes = method.classes_of(tasks[1], y["r"], torch.ones(5, 1, dtype=torch.bool))
    assert classes.reshape(-1).tolist() == [0, 1, 2, 3, 3]
    with pytest.raises(ConfigError, match="bin_edges"):
        create("classwise_aux", tasks).classes_of(tasks[1], y["r"], torch.ones(5, 1, dtype=torch.bool))


# ---------------------------------------------------------------------- Pareto MTL
def test_two_task_preference_vectors_are_the_papers_five() -> None:
    u = preference_vectors(2, 5)
    assert torch.allclose(u, torch.tensor([[1.0, 0.0], [0.9239, 0.3827], [0.7071, 0.7071], [0.3827, 0.9239],
                                           [0.0, 1.0]], dtype=torch.float64), atol=1e-4)
    u3 = preference_vectors(3, 3)
    assert u3.shape == (6, 3) and torch.allclose(u3.norm(dim=1), torch.ones(6, dtype=torch.float64))
    assert bool((u3 >= 0).all()) and len({tuple(r) for r in u3.tolist()}) == 6


def _random_problem(k: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    grads = torch.randn(k, 6, generator=g, dtype=torch.float64)
    losses = torch.rand(k, generator=g, dtype=torch.float64) + 0.1
    return grads, grads @ grads.T, losses


def _scipy_min_norm(vectors: np.ndarray) -> float:
    n = vectors.shape[0]
    fun = lambda lam: float(np.sum((lam @ vectors) ** 2))  # noqa: E731
    res = minimize(fun, np.full(n, 1.0 / n), method="SLSQP", bounds=[(0.0, 1.0)] * n,
                   constraints=[{"type": "eq", "fun": lambda lam: lam.sum() - 1.0}], options={"ftol": 1e-14, "maxiter": 500})
    return float(res.fun)


@pytest.mark.parametrize(("k", "seed"), [(2, 0), (2, 1), (3, 2), (3, 3), (4, 4)])
def test_pareto_subproblem_is_solved_exactly_and_gives_a_descent_direction(k: int, seed: int) -> None:
    grads, gram, losses = _random_problem(k, seed)
    prefs = preference_vectors(k, 5 if k == 2 else 3)
    for index in range(prefs.shape[0]):
        c, n_active = pareto_mtl_coefficients(gram, losses, prefs, index)
        x = c @ grads  # the min-norm element; the update direction is -x
        g = (prefs - prefs[index]) @ (losses / losses.norm())
        active = (g >= 0) & (torch.arange(prefs.shape[0]) != index)
        generators = torch.cat([grads, (prefs[active] - prefs[index]) @ grads])
        assert n_active == int(active.sum())
        best = _scipy_min_norm(generators.numpy())
        assert float(x @ x) <= best + 1e-9
        # min-norm optimality: every generator has v·x >= ||x||², so -x descends on all of them
        assert bool((generators @ x >= float(x @ x) - 1e-9).all())


def test_pareto_initial_phase_uses_only_the_violated_constraints() -> None:
    grads, gram, _ = _random_problem(2, 7)
    prefs = preference_vectors(2, 5)
    losses = torch.tensor([1.0, 0.1], dtype=torch.float64)  # far from (0, 1)'s region
    c, n_active = pareto_mtl_coefficients(gram, losses, prefs, 4, initial=True)
    assert n_active > 0 and float(c.abs().sum()) > 0
    # the pref (1, 0) region contains this loss vector: feasible, no initial step
    c, n_active = pareto_mtl_coefficients(gram, losses, prefs, 0, initial=True)
    assert n_active == 0 and torch.equal(c, torch.zeros(2, dtype=torch.float64))


def test_pareto_mtl_leaves_its_initial_phase_once_feasible() -> None:
    model, x, y = setup(seed=6)
    method = create("pareto_mtl", list(TASKS), n_prefs=3, pref_index=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    phases = []
    for _ in range(60):
        opt.zero_grad()
        losses, shared = forward(model, x, y)
        info = method.backward(losses, shared)
        opt.step()
        phases.append(info.extra["pareto/initial_phase"])
    assert phases[-1] == 0.0 and sorted(phases, reverse=True) == phases


# ---------------------------------------------------------------------- gradient cosine
def test_cosine_gate_drops_exactly_the_conflicting_auxiliary_gradients() -> None:
    grads = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.5], [0.0, 2.0]], dtype=torch.float64)
    gram = grads @ grads.T
    assert cosine_gate(gram, 0).tolist() == [1.0, 1.0, 0.0, 0.0]  # orthogonal (cos = 0) is dropped too
    w = cosine_gate(gram, 0, "weighted")
    assert torch.allclose(w, torch.tensor([1.0, 1 / math.sqrt(2), 0.0, 0.0], dtype=torch.float64))


def test_grad_cosine_update_is_main_plus_the_agreeing_auxiliary_gradients() -> None:
    model, x, y = setup(seed=8)
    params = model.shared_parameters()
    per_task = []
    for k in range(3):
        model.zero_grad()
        forward(model, x, y)[0][k].backward()
        per_task.append(flat_grad(params))
    method = create("grad_cosine", list(TASKS), main="size")
    model.zero_grad()
    losses, shared = forward(model, x, y)
    info = method.backward(losses, shared)
    main = per_task[1]
    expected = main + sum(g for k, g in enumerate(per_task) if k != 1 and float(g @ main) > 0)
    assert torch.allclose(flat_grad(params), expected, atol=1e-6)
    assert info.weights[1] == 1.0


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize(("name", "kwargs", "mentions"), [
    ("classwise_aux", {"main": "depth"}, "depth"),
    ("classwise_aux", {"alpha": -1.0}, "alpha"),
    ("classwise_aux", {"window": 0}, "window"),
    ("classwise_aux", {"bins": 1}, "bins"),
    ("classwise_aux", {"bin_edges": {"size": [1.0, 0.5]}}, "bin_edges"),
    ("pareto_mtl", {"pref_index": 99}, "pref_index"),
    ("pareto_mtl", {"n_prefs": 1}, "n_prefs"),
    ("pareto_mtl", {"normalize": "yes"}, "normalize"),
    ("grad_cosine", {"main": "nope"}, "nope"),
    ("grad_cosine", {"variant": "soft"}, "soft"),
])
def test_bad_hyperparameters_name_the_value(name: str, kwargs: dict[str, Any], mentions: str) -> None:
    with pytest.raises(ConfigError, match=mentions):
        create(name, list(TASKS), **kwargs)


def test_multilabel_auxiliary_task_is_refused() -> None:
    with pytest.raises(ConfigError, match="multilabel"):
        create("classwise_aux", [Task("a", "multiclass", num_classes=2), Task("b", "multilabel", num_classes=3)])
