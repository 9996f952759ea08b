"""The weighting interface: every way to turn k task losses into one update.

A method is a small :class:`torch.nn.Module` with one entry point::

    info = method.backward(losses, shared=SharedParts(params=..., features=...))

``losses`` is the vector of the k task losses (fixed task order). ``backward`` leaves
gradients in ``.grad`` of every parameter that the losses depend on (and of the method's own
learnable parameters, e.g. uncertainty log-variances), and returns a :class:`StepInfo` with the
weights it applied. The caller then runs ``optimizer.step()``. Learnable method parameters are
ordinary ``nn.Parameter`` s of the module: add ``method.parameters()`` to the optimizer, as
their own parameter group (the trainer does): :attr:`WeightingMethod.param_optimizer` holds the
method's defaults for that group's ``lr``, ``momentum`` and ``weight_decay``.

Stateful methods keep their state in buffers or in ``get_extra_state`` so that
``state_dict()`` / ``load_state_dict()`` resume exactly.

Data-parallel training (one process per slice of each batch): the trainer hands every method
the same loss *values* on every process (the slice-weighted mean over processes, with the
gradient of the process's own losses: :meth:`SharedParts.global_values`), so weights computed
from losses agree everywhere; a method that combines per-task gradients reduces them first
(:meth:`SharedParts.global_mean`), so every process applies the combination of the global
per-task gradients, the one a single process would apply to the whole batch.

Methods register themselves by name with :func:`register`; :func:`create` builds one from a
name and keyword hyperparameters (what configs and the CLI use), :func:`create_from_train` also
hands the method the training split (:meth:`WeightingMethod.from_train`) for methods whose
constants come from training-set statistics (pseudo-uniform's label variances).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor, nn

from manytask.errors import ConfigError
from manytask.tasks import Task

if TYPE_CHECKING:
    from manytask.data.batch import TensorDataset
    from manytask.weighting.terms import ElementLosses


@dataclass
class SharedParts:
    """What a weighting method may need to know about the shared part of the model.

    Attributes:
        params: the shared (trunk) parameters that receive the combined gradient.
        features: the shared representation tensor (trunk output) in the autograd graph;
            needed by methods that work on the representation (MGDA-UB).
        last_layer: parameters of the last shared layer (GradNorm's W).
        terms: per-task per-element loss terms (:mod:`manytask.weighting.terms`), given only to
            methods with ``wants_loss_terms`` (class-wise auxiliary weights).
        share: this process's share of the global batch (data-parallel training; 1 alone).
        all_sum: sums a tensor over the processes of a data-parallel job, the same result on
            every process (None when training alone).
    """

    params: Sequence[nn.Parameter]
    features: Tensor | None = None
    last_layer: Sequence[nn.Parameter] | None = None
    terms: Mapping[str, ElementLosses] | None = None
    share: float = 1.0
    all_sum: Callable[[Tensor], Tensor] | None = None

    def global_mean(self, t: Tensor) -> Tensor:
        """``Σ_r share_r · t_r`` over the processes (detached): the global batch's value of a
        quantity that is a mean over the batch (losses, per-task gradients); ``t`` alone."""
        return t if self.all_sum is None else self.all_sum(t.detach() * self.share)

    def global_sum(self, t: Tensor) -> Tensor:
        """``Σ_r t_r`` over the processes (counts, sums over samples); ``t`` alone."""
        return t if self.all_sum is None else self.all_sum(t.detach())

    def global_values(self, losses: Tensor) -> Tensor:
        """``losses`` with the global batch's values and the gradient of this process's own
        (straight-through): a weight computed from them is the same on every process."""
        if self.all_sum is None:
            return losses
        return losses + (self.global_mean(losses) - losses).detach()


@dataclass
class StepInfo:
    """What one ``backward`` did: the task weights applied (k,) and any extra scalars."""

    weights: Tensor
    extra: dict[str, float] = field(default_factory=dict)

    def as_log(self, task_names: Sequence[str]) -> dict[str, float]:
        w = self.weights.detach().float().cpu().tolist()
        out = {f"w/{name}": float(x) for name, x in zip(task_names, w)}
        out.update(self.extra)
        return out


class WeightingMethod(nn.Module):
    """Base class. Subclasses set ``name`` (and ``display_name``) and implement :meth:`backward`.

    Args:
        tasks: the tasks in loss order (their kinds matter to some methods).
    """

    #: the registry name (configs, the command line, run directories)
    name: ClassVar[str] = ""
    #: the name in tables and plots (e.g. ``"MGDA-UB"``); :func:`register` defaults it to ``name``
    display_name: ClassVar[str] = ""
    #: True if :meth:`backward` needs ``SharedParts.terms`` (the per-element loss terms)
    wants_loss_terms: ClassVar[bool] = False
    #: defaults of the optimiser group of the method's own learnable parameters (keys ``lr``,
    #: ``momentum``, ``weight_decay``); a key left out takes the network's value. A user's
    #: settings (``weighting.optimizer``) override these (:mod:`manytask.training.param_groups`)
    param_optimizer: ClassVar[Mapping[str, float]] = {}

    def __init__(self, tasks: Sequence[Task]) -> None:
        super().__init__()
        if len(tasks) == 0:
            raise ConfigError(f"weighting '{self.name}': needs at least one task")
        self.tasks = list(tasks)
        self.task_names = [t.name for t in tasks]

    @classmethod
    def from_train(cls, tasks: Sequence[Task], train: TensorDataset, **params: Any) -> WeightingMethod:
        """Build the method for a run on ``train`` (the training split). By default the split is
        not looked at: ``cls(tasks, **params)``; a method whose constants are training-set
        statistics (pseudo-uniform's label variances) computes them here unless ``params``
        gives them."""
        return cls(tasks, **params)

    @property
    def k(self) -> int:
        return len(self.tasks)

    def backward(self, losses: Tensor, shared: SharedParts | None = None) -> StepInfo:
        raise NotImplementedError

    def on_epoch_end(self, epoch_mean_losses: Tensor) -> None:
        """Called by the trainer with the epoch-mean training loss of each task."""

    def after_step(self, new_losses: Tensor) -> None:
        """Called after ``optimizer.step()`` with the task losses of the same batch recomputed
        with the updated parameters (FAMO learns from them). A no-op by default; the trainer
        only runs the extra forward pass when :attr:`wants_after_step` is True."""

    @property
    def wants_after_step(self) -> bool:
        """True if :meth:`after_step` must be called (and its extra forward pass run) every step:
        by default, when a subclass overrides :meth:`after_step`."""
        return type(self).after_step is not WeightingMethod.after_step

    def check_losses(self, losses: Tensor) -> None:
        if losses.dim() != 1 or losses.shape[0] != self.k:
            raise ValueError(f"weighting '{self.name}': expected {self.k} losses, got shape {tuple(losses.shape)}")


class LossWeighting(WeightingMethod):
    """A loss-level method: ``backward`` is one backward pass of ``weights · losses + reg``."""

    def weights(self, losses: Tensor) -> tuple[Tensor, Tensor | None]:
        """Return the weights (k,) and an optional extra term (e.g. a regulariser) to add."""
        raise NotImplementedError

    def backward(self, losses: Tensor, shared: SharedParts | None = None) -> StepInfo:
        self.check_losses(losses)
        if shared is not None:
            losses = shared.global_values(losses)
        w, extra = self.weights(losses)
        total = (w * losses).sum()
        if extra is not None:
            total = total + extra
        total.backward()
        return StepInfo(weights=w.detach())


_REGISTRY: dict[str, type[WeightingMethod]] = {}


def register(cls: type[WeightingMethod]) -> type[WeightingMethod]:
    """Class decorator: make the method available by its ``name``. A class that does not set
    its own ``display_name`` is shown by its ``name`` (never by a parent class's label)."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"weighting name '{cls.name}' is registered twice")
    if "display_name" not in vars(cls) or not cls.display_name:
        cls.display_name = cls.name
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """Names of all registered methods."""
    return sorted(_REGISTRY)


def get(name: str) -> type[WeightingMethod]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"weighting: unknown method '{name}' (available: {', '.join(available())})"
        ) from None


def create(name: str, tasks: Sequence[Task], **hparams: Any) -> WeightingMethod:
    """Build a registered method; unknown or invalid hyperparameters raise :class:`ConfigError`."""
    cls = get(name)
    try:
        return cls(tasks, **hparams)
    except TypeError as exc:
        raise ConfigError(f"weighting '{name}': bad hyperparameters {sorted(hparams)}: {exc}") from None


def create_from_train(name: str, tasks: Sequence[Task], train: TensorDataset, **hparams: Any) -> WeightingMethod:
    """Like :func:`create`, through :meth:`WeightingMethod.from_train` (methods that need
    training-set statistics compute them from ``train``)."""
    cls = get(name)
    try:
        return cls.from_train(tasks, train, **hparams)
    except TypeError as exc:
        raise ConfigError(f"weighting '{name}': bad hyperparameters {sorted(hparams)}: {exc}") from None

