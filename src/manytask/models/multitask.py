"""``MultiTaskModel``: shared trunk → branch per task group → head per task.

Routing maps each task to a branch id. By default there is one identity branch and every task
reads the trunk output directly (hard parameter sharing). Selective Sharing re-points tasks to
other branches while training (:meth:`route`); Standley-style candidates are models over a task
subset built with a trunk of some width.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from torch import Tensor, nn

from manytask.errors import ConfigError
from manytask.models.heads import TwoLayerHead, batched_two_layer
from manytask.tasks import Task

DEFAULT_BRANCH = "shared"
#: with ``batch_heads=None``, heads are batched on CUDA from this many tasks on
MIN_BATCHED_HEADS = 4


class MultiTaskModel(nn.Module):
    """A shared trunk, optional branches and one head per task.

    Args:
        trunk: module mapping inputs to the shared representation; must expose
            ``out_features`` (and ideally ``last_layer()``).
        tasks: the tasks, in loss order.
        head_hidden: hidden width of each two-layer head.
        branches: optional branch id → module (each maps the trunk output to a representation
            of the same width); ``routing`` then maps task name → branch id.
        routing: task name → branch id (default: every task on the identity branch).
        head_factory: optional ``(task, in_features) -> nn.Module`` to replace the default heads.
        out_features: width of the trunk's output, for a trunk that does not expose
            ``out_features`` itself (any ``nn.Module`` mapping inputs to ``(N, out_features)``).
    """

    def __init__(
        self,
        trunk: nn.Module,
        tasks: Sequence[Task],
        head_hidden: int = 50,
        branches: Mapping[str, nn.Module] | None = None,
        routing: Mapping[str, str] | None = None,
        head_factory: Callable[[Task, int], nn.Module] | None = None,
        out_features: int | None = None,
    ) -> None:
        super().__init__()
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ConfigError(f"tasks: duplicate task names in {names}")
        feat_attr = getattr(trunk, "out_features", None) if out_features is None else out_features
        if isinstance(feat_attr, bool) or not isinstance(feat_attr, int) or feat_attr < 1:
            raise ConfigError("model: the trunk must expose 'out_features' (a positive int), "
                              "or pass out_features=... to MultiTaskModel")
        self.tasks = list(tasks)
        self.trunk = trunk
        feat = int(feat_attr)
        self.branches = nn.ModuleDict(dict(branches) if branches else {DEFAULT_BRANCH: nn.Identity()})
        self.routing: dict[str, str] = {}
        for t in tasks:
            b = (routing or {}).get(t.name, DEFAULT_BRANCH if DEFAULT_BRANCH in self.branches else next(iter(self.branches)))
            self.route(t.name, b)
        make = head_factory or (lambda task, d: TwoLayerHead(d, task.out_features, head_hidden))
        self.heads = nn.ModuleDict({t.name: make(t, feat) for t in tasks})
        #: run same-shaped heads as one batched operation: None = on CUDA only (see heads_forward)
        self.batch_heads: bool | None = None

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def route(self, task: str, branch: str) -> None:
        """Point ``task`` at ``branch`` (used by Selective Sharing to merge branches)."""
        if branch not in self.branches:
            raise ConfigError(f"model: task '{task}' routed to unknown branch '{branch}'")
        self.routing[task] = branch

    def encode(self, x: Tensor, set_mask: Tensor | None = None) -> Tensor:
        """The shared representation (trunk output). For sets, ``x`` is a padded
        ``(N, S, ...)`` tensor and ``set_mask`` ``(N, S)`` marks the real elements; the trunk
        then receives both (a set trunk such as :class:`~manytask.models.set_encoder.SetEncoder`)."""
        return self.trunk(x) if set_mask is None else self.trunk(x, set_mask)

    def heads_forward(self, z: Tensor) -> dict[str, Tensor]:
        """Predictions of every task from the shared representation ``z``.

        Same-shaped two-layer heads on the same branch run as one batched operation
        (:func:`batched_two_layer`) when ``batch_heads`` says so: ``None`` (default) on CUDA
        with at least ``MIN_BATCHED_HEADS`` such heads, ``True`` always, ``False`` never.
        """
        cache: dict[str, Tensor] = {}
        out: dict[str, Tensor] = {}
        groups: dict[tuple[object, ...], list[str]] = {}
        for name, head in self.heads.items():
            b = self.routing[name]
            if b not in cache:
                cache[b] = self.branches[b](z)
            if type(head) is TwoLayerHead and self._batching(z):
                key = (b, tuple(head.fc1.weight.shape), tuple(head.fc2.weight.shape))
                groups.setdefault(key, []).append(name)
            else:
                out[name] = head(cache[b])
        for (b, *_), names in groups.items():
            if len(names) < 2:
                out[names[0]] = self.heads[names[0]](cache[b])
                continue
            stacked = batched_two_layer([self.heads[n] for n in names], cache[b])  # type: ignore[misc]
            out.update(zip(names, stacked.unbind(0)))
        return {n: out[n] for n in self.heads}

    def _batching(self, z: Tensor) -> bool:
        if self.batch_heads is not None:
            return self.batch_heads
        return z.is_cuda and len(self.heads) >= MIN_BATCHED_HEADS

    def forward_with_features(self, x: Tensor, set_mask: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        z = self.encode(x, set_mask)
        return z, self.heads_forward(z)

    def forward(self, x: Tensor, set_mask: Tensor | None = None) -> dict[str, Tensor]:
        return self.heads_forward(self.encode(x, set_mask))

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters shared by all tasks (the trunk)."""
        return list(self.trunk.parameters())

    def task_specific_parameters(self) -> list[nn.Parameter]:
        """Branch and head parameters."""
        return list(self.branches.parameters()) + list(self.heads.parameters())

    def last_shared_layer(self) -> list[nn.Parameter]:
        last = getattr(self.trunk, "last_layer", None)
        if callable(last):
            return list(last())
        params = self.shared_parameters()
        return params[-2:] if len(params) >= 2 else params
