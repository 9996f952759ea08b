"""Exact selection by branch and bound over partitions of the tasks (many tasks).

Every optimal solution reads as a partition of the tasks into blocks, each block ``P``
served by one network ``n`` with ``P subset of tasks(n)`` (see :mod:`.selection`). The
search covers the lowest uncovered task first, with one of the (block, network) pairs of
:func:`._dp._block_frontiers` that holds it and fits the remaining budget, children in the
order of their lower bound. Pruning:

* a Lagrangian lower bound on the loss of covering the uncovered set ``U`` with budget
  ``r``: for every ``lambda >= 0``, a partition of ``U`` pays
  ``sum_blocks (V(n, P) + lambda c_n) - lambda r <= loss`` within budget, and each task's share
  ``L(n, t) + lambda c_n / |P|`` is at least ``g_lambda(t) = min_{n ni t} L(n, t) +
  lambda c_n / |tasks(n)|``; so ``loss >= max_lambda sum_{t in U} g_lambda(t) - lambda r``
  (``lambda`` on a grid that holds 0);
* dominance: a node is dropped when one with the same uncovered set was reached with no
  more loss, cost, networks and heads;
* the incumbent: the optimum of the previous (smaller) budget of a sweep.

With a time limit the search may stop early: it then returns its best solution with the
root lower bound, so that the gap is known.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from manytask.grouping._dp import _Block
from manytask.grouping._problem import _ctol, _key_less, _partition_minima, _Problem

_Key = tuple[float, float, int, int]


@dataclass
class PartitionResult:
    """Best (block, network) pairs found, their key, the root bound, and whether proven."""

    chosen: list[tuple[int, int]] | None
    key: _Key | None
    lower_bound: float
    exact: bool


class PartitionSearch:
    """Branch and bound over partitions for one problem, reused across budgets."""

    def __init__(self, prob: _Problem, blocks: dict[int, list[_Block]]) -> None:
        self.prob = prob
        rows = [(P, *e) for P, bl in blocks.items() for e in bl]
        arr = np.array([r[:3] for r in rows], dtype=float).reshape(-1, 3)
        self.P = np.array([r[0] for r in rows], dtype=np.int64)
        self.c, self.V = arr[:, 1], arr[:, 2]
        self.h = np.array([r[3] for r in rows], dtype=np.int64)
        self.j = np.array([r[4] for r in rows], dtype=np.int64)
        low = (self.P & -self.P).astype(np.int64)
        lows = np.log2(np.maximum(low, 1)).astype(np.int64)
        self.by_low = [np.flatnonzero(lows == t) for t in range(prob.n)]
        self.lam = self._lambdas()
        W = self.V[:, None] + self.c[:, None] * self.lam[None, :]
        # H[U, l]: min over partitions of U into blocks of sum (V + lam_l c): the bound's tables
        self.H = _partition_minima(self.P, W, prob.n)

    def _lambdas(self) -> np.ndarray:
        L = self.prob.L
        finite = L[np.isfinite(L)]
        pos = self.c[self.c > 0]
        if finite.size == 0 or pos.size == 0:
            return np.zeros(1)
        scale = float(np.abs(finite).mean()) / float(np.median(pos))
        return np.concatenate([[0.0], scale * 2.0 ** np.arange(-5, 2, 2.0)])

    def bound(self, U: int, rem: float) -> float:
        return float((self.H[U] - self.lam * rem).max())

    def solve(self, budget: float, incumbent: list[tuple[int, int]] | None = None,
              deadline: float | None = None) -> PartitionResult:
        """The optimum at ``budget`` (``chosen`` None when infeasible)."""
        run = _Run(self, budget, deadline)
        if incumbent is not None:
            run.offer(incumbent)
        full = self.prob.full
        root = self.bound(full, budget + run.ctol)
        run.dfs(full, budget + run.ctol, 0.0, 0.0, 0, 0)
        exact = not run.stopped
        if exact and run.best_key is not None:
            root = run.best_key[0]  # proven optimal
        return PartitionResult(run.best, run.best_key, root, exact)

class _Run:
    """The state of one search (one budget)."""

    def __init__(self, s: PartitionSearch, budget: float, deadline: float | None) -> None:
        self.s, self.budget, self.deadline = s, budget, deadline
        self.ctol, self.ltol = _ctol(budget), s.prob.ltol
        self.best: list[tuple[int, int]] | None = None
        self.best_key: _Key | None = None
        self.seen: dict[int, list[tuple[float, float, int, int]]] = {}
        self.path: list[tuple[int, int]] = []
        self.nodes, self.stopped = 0, False

    def offer(self, chosen: list[tuple[int, int]]) -> None:
        s = self.s
        cost = math.fsum(float(s.c[i]) for _, i in chosen)
        if cost > self.budget + self.ctol:
            return
        key = (math.fsum(float(s.V[i]) for _, i in chosen), cost, len(chosen),
               int(sum(int(s.h[i]) for _, i in chosen)))
        if self.best_key is None or _key_less(key, self.best_key, self.ltol):
            self.best, self.best_key = list(chosen), key

    def _dominated(self, U: int, acc: float, spent: float, nets: int, heads: int) -> bool:
        lst = self.seen.setdefault(U, [])
        for a, sp, n, h in lst:
            # a completion of the other is at least as good (strictly lower loss decides
            # before cost, networks and heads)
            if sp <= spent and (a < acc - self.ltol or (a <= acc and n <= nets and h <= heads)):
                return True
        lst.append((acc, spent, nets, heads))
        return False

    def dfs(self, U: int, rem: float, acc: float, spent: float, nets: int, heads: int) -> None:
        self.nodes += 1
        # out of time: stop once some solution is known (the first one comes quickly)
        if self.deadline is not None and self.best is not None and time.perf_counter() > self.deadline:
            self.stopped = True
        if self.stopped:
            return
        s = self.s
        t = (U & -U).bit_length() - 1
        idx = s.by_low[t]
        ok = ((s.P[idx] & ~U) == 0) & (s.c[idx] <= rem)
        idx = idx[ok]
        if idx.size == 0:
            return
        rest = rem - s.c[idx]
        lb = acc + s.V[idx] + (s.H[U & ~s.P[idx]] - rest[:, None] * s.lam[None, :]).max(axis=1)
        if self.best_key is not None:
            keep = lb <= self.best_key[0] + self.ltol
            idx, lb, rest = idx[keep], lb[keep], rest[keep]
        for k in np.argsort(lb, kind="stable"):
            if self.best_key is not None and lb[k] > self.best_key[0] + self.ltol:
                break
            i = int(idx[k])
            self._child(U, i, float(rest[k]), acc, spent, nets, heads)

    def _child(self, U: int, i: int, rest: float, acc: float, spent: float, nets: int,
               heads: int) -> None:
        s = self.s
        U2 = U & ~int(s.P[i])
        acc2, spent2 = acc + float(s.V[i]), spent + float(s.c[i])
        nets2, heads2 = nets + 1, heads + int(s.h[i])
        self.path.append((int(s.P[i]), i))
        if U2 == 0:
            key = (acc2, spent2, nets2, heads2)
            if self.best_key is None or _key_less(key, self.best_key, self.ltol):
                self.best, self.best_key = list(self.path), key
        elif not self._dominated(U2, acc2, spent2, nets2, heads2):
            self.dfs(U2, rest, acc2, spent2, nets2, heads2)
        self.path.pop()

