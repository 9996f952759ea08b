"""Shared pieces of exact network selection: the problem as arrays, the result type, the
selection order (ties), budget checks and the cheapest cover of the tasks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from manytask.errors import ConfigError
from manytask.grouping.table import Candidate, CandidateTable, LossKind

Method = Literal["auto", "dp", "bnb", "partition"]
_LOSS_RTOL = 1e-12
_COST_RTOL = 1e-9


class InfeasibleBudgetError(ConfigError):
    """No set of candidates that covers every task fits in the budget."""


@dataclass(frozen=True)
class Selection:
    """A chosen set of networks.

    Attributes:
        budget: the budget it was chosen under (``nan`` when not applicable).
        tasks: the task order.
        networks: the chosen candidates (table order).
        total_cost: ``sum_n c_n``.
        task_losses: ``{t: min_{n in S} L(n, t)}``.
        served_by: ``{t: the chosen network with that loss}``.
        total_loss: ``sum_t task_losses[t]`` (computed with :func:`math.fsum`).
        method: how it was chosen (``"dp"``, ``"bnb"``, ``"partition"``, ``"brute_force"``,
            a baseline name).
        losses: which losses the numbers are (``"val"``, ``"test"``, or a file name).
        exact: False when a time limit cut the search short: then ``total_loss`` is within
            ``total_loss - lower_bound`` of the optimum.
        lower_bound: a lower bound on the optimal loss (set when ``exact`` is False).
    """

    budget: float
    tasks: tuple[str, ...]
    networks: tuple[Candidate, ...]
    total_cost: float
    task_losses: Mapping[str, float]
    served_by: Mapping[str, Candidate]
    total_loss: float
    method: str = "dp"
    losses: str = "val"
    exact: bool = True
    lower_bound: float | None = None

    @property
    def labels(self) -> list[str]:
        """``s+d@1``-style labels of the chosen networks (tasks in table order)."""
        return [_label(self.tasks, n) for n in self.networks]

    @property
    def groups(self) -> list[tuple[str, ...]]:
        """For each chosen network, the tasks it serves (in task order)."""
        return [tuple(t for t in self.tasks if self.served_by[t] is n) for n in self.networks]

    def to_dict(self) -> dict[str, object]:
        """A JSON-able summary."""
        return {
            "budget": self.budget,
            "networks": self.labels,
            "serves": {lab: list(g) for lab, g in zip(self.labels, self.groups)},
            "total_cost": self.total_cost,
            "total_loss": self.total_loss,
            "task_losses": dict(self.task_losses),
            "method": self.method,
            "losses": self.losses,
            **({} if self.exact else {"exact": False, "lower_bound": self.lower_bound}),
        }


@dataclass(frozen=True)
class RandomBaseline:
    """Mean (and standard deviation) of the total loss of random groupings at a budget."""

    budget: float
    mean: float
    std: float
    n_samples: int
    method: str
    seed: int


# ---------------------------------------------------------------------------------------
# problem representation
# ---------------------------------------------------------------------------------------
@dataclass
class _Problem:
    tasks: tuple[str, ...]
    cands: tuple[Candidate, ...]
    L: np.ndarray  # (m, n), inf where not predicted
    cost: np.ndarray  # (m,)
    mask: list[int]
    heads: np.ndarray  # (m,)
    ltol: float = field(default=0.0)

    @property
    def n(self) -> int:
        return len(self.tasks)

    @property
    def full(self) -> int:
        return (1 << self.n) - 1


def _problem(table: CandidateTable, kind: LossKind = "val") -> _Problem:
    L = table.loss_matrix(kind)
    L = np.where(np.isnan(L), np.inf, L)
    cost = table.costs()
    fin = np.isfinite(L)
    masks = [int(x) for x in (fin * (1 << np.arange(L.shape[1], dtype=np.int64))).sum(axis=1)]
    heads = fin.sum(axis=1).astype(np.int64)
    finite = L[np.isfinite(L)]
    scale = float(np.abs(finite).max()) * L.shape[1] if finite.size else 1.0
    return _Problem(
        table.tasks, table.candidates, L, cost, masks, heads, ltol=_LOSS_RTOL * max(1.0, scale)
    )


def _ctol(budget: float) -> float:
    return _COST_RTOL * max(1.0, abs(budget))


def _label(tasks: Sequence[str], c: Candidate) -> str:
    return "+".join(t for t in tasks if t in c.tasks) + "@" + f"{c.cost:g}"


def _key_less(a: tuple[float, float, int, int], b: tuple[float, float, int, int], ltol: float) -> bool:
    """Selection order: lower loss (beyond ``ltol``), then cost, networks, heads."""
    if a[0] < b[0] - ltol:
        return True
    if a[0] > b[0] + ltol:
        return False
    return a[1:] < b[1:]


def _make_selection(
    prob: _Problem,
    chosen: Iterable[int],
    budget: float,
    method: str,
    losses: str,
    hint: Mapping[int, int] | None = None,
) -> Selection:
    """Build a :class:`Selection` from candidate indices; ``hint`` maps task -> index."""
    idx = sorted(set(chosen))
    task_losses: dict[str, float] = {}
    served: dict[str, Candidate] = {}
    for t, name in enumerate(prob.tasks):
        vals = [(prob.L[j, t], j) for j in idx]
        best = min(v for v, _ in vals)
        j_best = min(j for v, j in vals if v == best)
        if hint is not None and t in hint and prob.L[hint[t], t] == best:
            j_best = hint[t]
        task_losses[name] = float(best)
        served[name] = prob.cands[j_best]
    return Selection(
        budget=float(budget),
        tasks=prob.tasks,
        networks=tuple(prob.cands[j] for j in idx),
        total_cost=math.fsum(float(prob.cost[j]) for j in idx),
        task_losses=task_losses,
        served_by=served,
        total_loss=math.fsum(task_losses.values()),
        method=method,
        losses=losses,
    )



def _check_budget(budget: float) -> float:
    try:
        b = float(budget)
    except (TypeError, ValueError):
        raise ConfigError(f"budget must be a number, got {budget!r}") from None
    if not math.isfinite(b) or b < 0:
        raise ConfigError(f"budget must be finite and >= 0, got {budget!r}")
    return b


def _min_cover_cost(
    prob: _Problem, idx: Sequence[int] | None = None, *, exact_blocks: bool = False
) -> float:
    """Cheapest cost of covering every task with candidates ``idx``; with ``exact_blocks``
    the candidates' task sets must partition the tasks. Vectorised DP over task sets."""
    js = np.arange(len(prob.cands)) if idx is None else np.asarray(list(idx), dtype=np.int64)
    if js.size == 0:
        return math.inf
    masks = np.array(prob.mask, dtype=np.int64)[js]
    uniq, inv = np.unique(masks, return_inverse=True)
    cheapest = np.full(uniq.size, np.inf)
    np.minimum.at(cheapest, inv, prob.cost[js])
    if exact_blocks:
        return float(_partition_minima(uniq, cheapest[:, None], prob.n)[prob.full, 0])
    return _union_cover_cost(uniq, cheapest, prob.n)


def _union_cover_cost(masks: np.ndarray, cost: np.ndarray, n: int) -> float:
    """``f[m]``: cheapest set of networks whose task sets' union holds ``m``; some network
    holds the lowest task ``t`` of ``m``, so ``f[m] = min_{j ni t} c_j + f[m - tasks(j)]``,
    filled for the sets whose lowest task is ``t``, from ``t = n - 1`` down to 0."""
    f = np.full((1 << n, 1), np.inf)
    f[0] = 0.0
    for t in range(n - 1, -1, -1):
        cur, src = _bit_views(f, t, n)
        for cm, c in zip(masks.tolist(), cost.tolist()):
            if cm >> t & 1:
                Q = cm >> (t + 1)
                np.minimum(cur, c + src[_axes(Q, n - 1 - t, 0, keep=True)], out=cur)
    return float(f[(1 << n) - 1, 0])


def _partition_minima(P: np.ndarray, W: np.ndarray, n: int) -> np.ndarray:
    """``H[U, l] = min over partitions of U into blocks P_i of sum_i W[i, l]`` (``inf`` if U
    has none; a block may be listed several times).

    Filled for the task sets of each lowest task ``t`` from ``n - 1`` down to 0, the block
    holding ``t`` taken in turn: ``H[U] = min_P W(P) + H[U - P]``, ``U - P`` having only
    tasks above ``t``. Each block visits the supersets of itself among those sets.
    """
    H = np.full((1 << n, W.shape[1]), np.inf)
    H[0] = 0.0
    P = np.asarray(P, dtype=np.int64)
    lows = np.log2(P & -P).astype(np.int64)
    for t in range(n - 1, -1, -1):
        idx = np.flatnonzero(lows == t)
        if idx.size == 0:
            continue
        uniq, inv = np.unique(P[idx], return_inverse=True)
        w = np.full((uniq.size, W.shape[1]), np.inf)
        np.minimum.at(w, inv, W[idx])
        cur, src = _bit_views(H, t, n)
        for k, p in enumerate(uniq.tolist()):
            Q = p >> (t + 1)
            tgt = cur[_axes(Q, n - 1 - t, 1)]
            np.minimum(tgt, w[k] + src[_axes(Q, n - 1 - t, 0)], out=tgt)
    return H


def _bit_views(H: np.ndarray, t: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Views of ``H``'s rows with one axis per task above ``t`` (the first axis the highest
    task): the sets whose lowest task is ``t``, and the sets with no task up to ``t``."""
    shape = (2,) * (n - 1 - t) + H.shape[1:]
    step = 1 << (t + 1)
    cur, src = H[1 << t :: step].reshape(shape), H[::step].reshape(shape)
    assert np.shares_memory(cur, H) and np.shares_memory(src, H)
    return cur, src


def _axes(Q: int, k: int, value: int, keep: bool = False) -> tuple[int | slice, ...]:
    """Index of a :func:`_bit_views` view fixing the tasks of ``Q`` at ``value`` (as a
    length-1 slice with ``keep``, to broadcast)."""
    fixed: int | slice = slice(value, value + 1) if keep else value
    return tuple(fixed if Q >> (k - 1 - a) & 1 else slice(None) for a in range(k))
