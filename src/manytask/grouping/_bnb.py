"""Exact selection by branch and bound over networks (Standley's scheme, with bounds)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from manytask.grouping._problem import (
    _ctol,
    _key_less,
    _Problem,
)


# ---------------------------------------------------------------------------------------
# exact selection: branch and bound over networks (Standley's scheme, with bounds)
# ---------------------------------------------------------------------------------------
def _undominated(prob: _Problem, idx: np.ndarray) -> np.ndarray:
    """Drop candidate j when some k has c_k <= c_j, L_k <= L_j on every task and either a
    strictly lower cost or the same task set (so swapping j for k never loses, ties included)."""
    if idx.size <= 1:
        return idx
    L, c, masks = prob.L[idx], prob.cost[idx], np.array([prob.mask[j] for j in idx])
    keep = np.ones(idx.size, dtype=bool)
    for a in range(idx.size):
        le = (L <= L[a]).all(axis=1) & (c <= c[a])
        better = le & ((c < c[a]) | (masks == masks[a]))
        better[a] = False
        same = better & (c == c[a]) & (L == L[a]).all(axis=1)
        # identical candidates: keep the first one
        better &= ~same | (np.arange(idx.size) < a)
        if (better & keep).any():
            keep[a] = False
    return idx[keep]


def _caps(L: np.ndarray) -> np.ndarray:
    """Per-task finite stand-in for "uncovered" when measuring gains: 4 x max loss + 1."""
    finite = np.where(np.isfinite(L), L, 0.0)
    return np.abs(finite).max(axis=0, initial=0.0) * 4 + 1.0


def _greedy(prob: _Problem, idx: np.ndarray, budget: float) -> list[int] | None:
    """Add the affordable network with the best gain per cost until nothing improves."""
    ctol = _ctol(budget)
    big = _caps(prob.L)
    cur = np.full(prob.n, np.inf)
    spent, chosen = 0.0, []
    avail = list(idx)
    while avail:
        best_j, best_score = -1, 0.0
        for j in avail:
            if spent + prob.cost[j] > budget + ctol:
                continue
            gain = float((np.minimum(cur, big) - np.minimum(prob.L[j], big)).clip(min=0).sum())
            s = gain / max(float(prob.cost[j]), 1e-12)
            if gain > 0 and s > best_score:
                best_j, best_score = j, s
        if best_j < 0:
            break
        chosen.append(best_j)
        avail.remove(best_j)
        spent += float(prob.cost[best_j])
        cur = np.minimum(cur, prob.L[best_j])
    return chosen if np.isfinite(cur).all() else None


def _knapsack_bound(cur: np.ndarray, La: np.ndarray, ca: np.ndarray, rem: float) -> float:
    """A budget-aware lower bound on the final loss below a node.

    With ``u_t = cur_t`` for covered tasks and ``u_t = max_j L(j, t)`` over the remaining
    candidates for uncovered ones, any completion ``X`` has loss
    ``>= sum_t u_t - sum_{j in X} g_j`` with ``g_j = sum_t (u_t - L(j, t))^+``, and
    ``sum_{j in X} g_j`` is at most the fractional-knapsack optimum of values ``g_j``, weights
    ``c_j`` and capacity ``rem`` (Dantzig's bound).
    """
    u = np.where(np.isfinite(cur), cur, np.where(np.isfinite(La), La, -np.inf).max(axis=0))
    g = (u[None, :] - La).clip(min=0).sum(axis=1)
    free = ca <= 0
    total_free = float(g[free].sum())
    gp, cp = g[~free], ca[~free]
    order = np.argsort(-gp / cp, kind="stable")
    gp, cp = gp[order], cp[order]
    cum = np.cumsum(cp)
    k = int(np.searchsorted(cum, rem, side="right"))
    gained = float(gp[:k].sum())
    if k < gp.size:
        before = float(cum[k - 1]) if k > 0 else 0.0
        gained += float(gp[k]) * max(0.0, rem - before) / float(cp[k])
    return float(u.sum()) - total_free - gained


def _bnb(prob: _Problem, budget: float, incumbent: Sequence[int] | None = None) -> list[int] | None:
    ctol, ltol = _ctol(budget), prob.ltol
    idx = np.flatnonzero(prob.cost <= budget + ctol)
    idx = _undominated(prob, idx)
    L, cost, heads = prob.L, prob.cost, prob.heads
    big = _caps(L)

    def key_of(chosen: Sequence[int]) -> tuple[float, float, int, int]:
        cur = L[list(chosen)].min(axis=0)
        return (
            math.fsum(cur.tolist()),
            math.fsum(float(cost[j]) for j in chosen),
            len(chosen),
            int(sum(int(heads[j]) for j in chosen)),
        )

    best_key: tuple[float, float, int, int] | None = None
    best: list[int] | None = None
    for start in (incumbent, _greedy(prob, idx, budget)):
        if start and sum(cost[j] for j in start) <= budget + ctol and np.isfinite(L[list(start)].min(axis=0)).all():
            k = key_of(start)
            if best_key is None or _key_less(k, best_key, ltol):
                best_key, best = k, list(start)

    def dfs(allowed: np.ndarray, cur: np.ndarray, spent: float, chosen: list[int]) -> None:
        nonlocal best_key, best
        if chosen and np.isfinite(cur).all():
            k = (math.fsum(cur.tolist()), spent, len(chosen), int(heads[chosen].sum()))
            if best_key is None or _key_less(k, best_key, ltol):
                best_key, best = k, list(chosen)
        if allowed.size == 0:
            return
        La = L[allowed]
        ok = (cost[allowed] <= budget - spent + ctol) & (La < cur).any(axis=1)
        if not ok.any():
            return
        allowed, La = allowed[ok], La[ok]
        bound = np.minimum(cur, La.min(axis=0))
        if not np.isfinite(bound).all():
            return
        if best_key is not None:
            lb = bound.sum()
            if lb <= best_key[0] + ltol:
                lb = max(lb, _knapsack_bound(cur, La, cost[allowed], budget - spent + ctol))
            if lb > best_key[0] + ltol:
                return
        gain = (np.minimum(cur, big) - np.minimum(La, big)).clip(min=0).sum(axis=1)
        perm = np.argsort(-gain / np.maximum(cost[allowed], 1e-12), kind="stable")
        order = allowed[perm]
        # child i may only use order[i:]; its bound sum_t min(cur_t, min_{order[i:]} L) never
        # decreases with i, so the first child over the incumbent ends the loop
        suffix = np.minimum(cur, np.minimum.accumulate(La[perm][::-1], axis=0)[::-1])
        with np.errstate(invalid="ignore"):
            child_lb = suffix.sum(axis=1)
        for i, j in enumerate(order):
            if not child_lb[i] < math.inf or (best_key is not None and child_lb[i] > best_key[0] + ltol):
                break
            chosen.append(int(j))
            dfs(order[i + 1 :], np.minimum(cur, L[j]), spent + float(cost[j]), chosen)
            chosen.pop()

    dfs(idx, np.full(prob.n, np.inf), 0.0, [])
    return best

