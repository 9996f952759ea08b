"""Exact network selection under an inference budget (Standley et al., ICML 2020, sec. 5-6).

Problem (paper, section 5). Candidates ``n`` have a cost ``c_n`` and a loss ``L(n, t)`` per
task (``inf`` where ``n`` does not predict ``t``). A solution ``S`` is a set of candidates;

    cost(S) = sum_{n in S} c_n,        L(S) = sum_t min_{n in S} L(n, t),

and for a budget ``b`` we want ``S_b = argmin_{S : cost(S) <= b} L(S)`` among the ``S`` that
cover every task (NP-hard in general: set cover reduces to it). Candidates may overlap;
a task served by several chosen networks takes the lowest loss.

Exact algorithms (all three return the same optimum, with the same tie-breaking):

* :func:`select` with ``method="dp"`` (default): every optimal ``S`` can be read as a
  partition of the tasks into *blocks*, each block served by one network that predicts it
  (drop a network serving nothing: the loss is unchanged and the cost drops). So we branch on
  the block and the network that serve the lowest-numbered uncovered task and *memoise* per
  set of uncovered tasks ``U`` the Pareto frontier of its completions,
  ``F(U) = pareto{(c_n + c', V(n, P) + v') : P subset of U holds min(U), P subset of tasks(n),
  (c', v') in F(U - P)}``, ``V(n, P) = sum_{t in P} L(n, t)``. Dominance pruning: for each
  block ``P`` only networks not dominated in (cost, V(n, P)) are kept, and frontier entries
  that are dominated or that cannot leave enough budget to cover the other tasks
  (lower bound: the most expensive cheapest-cover of a single remaining task) are dropped.
  Frontiers do not depend on the budget, so :func:`select_many` answers a whole budget sweep
  from one run. Cost O(3^n * frontier sizes + m * 2^n); about 0.1 s for n = 10 tasks and
  1,033 candidates (``benchmarks/selection_speed.py``).
* :func:`select` with ``method="bnb"``: Standley's branch and bound over networks (each
  child adds one more network from those after it in the node's order): dominated
  candidates are removed, a greedy solution is the first incumbent, candidates that fit no
  more or improve no task are filtered at every node, children are ordered by gain per cost,
  and a node is pruned when its lower bound exceeds the incumbent: first
  ``sum_t min(cur_t, min_{affordable remaining n} L(n, t))``, then a budget-aware
  fractional-knapsack bound (:func:`_knapsack_bound`). Fine for Standley's 36 candidates;
  exponential in the budget for large candidate sets, where the default ``"dp"`` is the
  method to use.
* :func:`select_brute_force`: enumerates every subset that fits the budget (for tests).

Ties: among solutions whose losses differ by at most ~1e-12 the lower cost wins, then fewer
networks, then fewer decoder heads (sum of |tasks(n)|). The last rule reproduces the
paper's published HOA curves, where equally good networks with fewer tasks were preferred.

Infeasible budgets (no covering set fits): :func:`select` raises
:class:`InfeasibleBudgetError`; :func:`select_many` and the baselines return ``None``.

Also here: scoring a selection on other losses (:func:`score`, the paper scores validation
choices on the test set, matching networks by task set and cost and taking each task's
minimum test loss over the chosen networks), the higher-order approximation
(:func:`higher_order_approximation`, sec. 5.3.2) and the baselines of Figure 2:
:func:`all_in_one_selection`, :func:`independent_selection`, :func:`random_groupings`,
:func:`worst_selection`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from manytask.errors import ConfigError, DataError
from manytask.grouping.table import Candidate, CandidateTable, LossKind

__all__ = [
    "InfeasibleBudgetError",
    "RandomBaseline",
    "Selection",
    "all_in_one_selection",
    "higher_order_approximation",
    "independent_selection",
    "random_groupings",
    "score",
    "select",
    "select_brute_force",
    "select_many",
    "worst_selection",
]

Method = Literal["dp", "bnb"]
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
        method: how it was chosen (``"dp"``, ``"bnb"``, ``"brute_force"``, a baseline name).
        losses: which losses the numbers are (``"val"``, ``"test"``, or a file name).
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


# ---------------------------------------------------------------------------------------
# exact selection: memoised search over uncovered-task sets with Pareto frontiers
# ---------------------------------------------------------------------------------------
# A frontier entry: (cost, loss, n_networks, heads, back) with back = (block, j, rest, k):
# block P served by candidate j, completion = entry k of the frontier of ``rest``.
_Entry = tuple[float, float, int, int, tuple[int, int, int, int] | None]


def _block_frontiers(prob: _Problem, bmax: float) -> dict[int, list[tuple[float, float, int, int]]]:
    """For every non-empty task set P, the networks that are not dominated for serving P.

    Entry ``(c_n, V(n, P), heads_n, n)``, sorted by cost with strictly improving
    ``(V, heads)``: network n is dropped when some m predicting P has ``c_m <= c_n`` and
    ``V(m, P) <= V(n, P)`` (dominance pruning).
    """
    n, full = prob.n, prob.full
    ok = prob.cost <= bmax + _ctol(bmax)
    cidx = np.flatnonzero(ok)
    out: dict[int, list[tuple[float, float, int, int]]] = {}
    if cidx.size == 0:
        return out
    Lf = np.where(np.isfinite(prob.L[cidx]), prob.L[cidx], 0.0)
    masks_all = np.arange(full + 1, dtype=np.int64)
    ind = ((masks_all[None, :] >> np.arange(n)[:, None]) & 1).astype(float)  # (n, 2^n)
    cm = np.array([prob.mask[j] for j in cidx], dtype=np.int64)
    costs = prob.cost[cidx]
    heads = prob.heads[cidx]
    levels = np.unique(costs)
    big_h = np.iinfo(np.int64).max
    chunk = max(1, 4_000_000 // (full + 1))
    per_level: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]] = []
    for lv in levels:
        rows_all = np.flatnonzero(costs == lv)
        vmin = np.full(full + 1, np.inf)
        hmin = np.full(full + 1, big_h, dtype=np.int64)
        jbest = np.zeros(full + 1, dtype=np.int64)
        for start in range(0, rows_all.size, chunk):  # bounded memory: chunk x 2^n
            rows = rows_all[start : start + chunk]
            V = Lf[rows] @ ind  # (r, 2^n): V[i, P] = sum_{t in P} L(i, t)
            valid = (cm[rows, None] & masks_all[None, :]) == masks_all[None, :]
            V = np.where(valid, V, np.inf)
            cv = V.min(axis=0)
            near = V <= cv[None, :] + prob.ltol
            h = np.where(near, heads[rows, None], big_h)
            arg = h.argmin(axis=0)
            ch = h[arg, masks_all]
            cj = cidx[rows[arg]]
            # merge with the running best: lower V beyond tolerance, else fewer heads
            take = (cv < vmin - prob.ltol) | ((cv <= vmin + prob.ltol) & (ch < hmin))
            vmin = np.where(take, cv, vmin)
            hmin = np.where(take, ch, hmin)
            jbest = np.where(take, cj, jbest)
        per_level.append((float(lv), vmin, hmin, jbest))
    for P in range(1, full + 1):
        lst: list[tuple[float, float, int, int]] = []
        bv, bh = math.inf, 0
        for lv, vmin, hmin, jbest in per_level:
            v = float(vmin[P])
            if not math.isfinite(v):
                continue
            hh = int(hmin[P])
            if v < bv - prob.ltol or (v <= bv + prob.ltol and hh < bh):
                lst.append((lv, v, hh, int(jbest[P])))
                bv, bh = v, hh
        if lst:
            out[P] = lst
    return out


def _pareto(entries: list[_Entry], ltol: float) -> list[_Entry]:
    """Keep entries not dominated in (cost; loss, networks, heads), sorted by cost."""
    entries.sort(key=lambda e: (e[0], e[1], e[2], e[3]))
    kept: list[_Entry] = []
    for e in entries:
        if not kept:
            kept.append(e)
            continue
        last = kept[-1]
        if e[1] < last[1] - ltol or (e[1] <= last[1] + ltol and (e[2], e[3]) < (last[2], last[3])):
            if e[0] == last[0]:
                kept[-1] = e  # same cost, better value (cannot happen after the sort, safety)
            else:
                kept.append(e)
    return kept


def _dp_frontier(prob: _Problem, bmax: float) -> tuple[list[_Entry], dict[int, list[_Entry]]]:
    """Pareto frontier (cost, loss, networks, heads) of complete solutions with cost <= bmax."""
    ctol = _ctol(bmax)
    blocks = _block_frontiers(prob, bmax)
    n, full = prob.n, prob.full
    # cheapest cover of each single task -> lower bound on the cost of covering a task set
    cheapest = [blocks[1 << t][0][0] if (1 << t) in blocks else math.inf for t in range(n)]
    lb_cost = [0.0] * (full + 1)
    for mask in range(1, full + 1):
        low = (mask & -mask).bit_length() - 1
        lb_cost[mask] = max(lb_cost[mask & (mask - 1)], cheapest[low])
    memo: dict[int, list[_Entry]] = {0: [(0.0, 0.0, 0, 0, None)]}
    ltol = prob.ltol

    def frontier(mask: int) -> list[_Entry]:
        got = memo.get(mask)
        if got is not None:
            return got
        cap = bmax - lb_cost[full ^ mask] + ctol
        low = mask & -mask
        rest0 = mask ^ low
        cand: list[_Entry] = []
        s = rest0
        while True:
            P = s | low
            bl = blocks.get(P)
            if bl is not None:
                R = rest0 ^ s
                fr = frontier(R)
                for cb, vb, hb, j in bl:
                    if cb > cap:
                        break
                    for k, (cr, vr, nr, hr, _) in enumerate(fr):
                        c = cb + cr
                        if c > cap:
                            break
                        cand.append((c, vb + vr, nr + 1, hb + hr, (P, j, R, k)))
            if s == 0:
                break
            s = (s - 1) & rest0
        res = _pareto(cand, ltol)
        memo[mask] = res
        return res

    return frontier(full), memo


def _dp_pick(
    prob: _Problem, top: list[_Entry], memo: dict[int, list[_Entry]], budget: float, method: str, losses: str
) -> Selection | None:
    ctol = _ctol(budget)
    best: _Entry | None = None
    for e in top:
        if e[0] > budget + ctol:
            break
        if best is None or _key_less((e[1], e[0], e[2], e[3]), (best[1], best[0], best[2], best[3]), prob.ltol):
            best = e
    if best is None:
        return None
    chosen: list[int] = []
    hint: dict[int, int] = {}
    e = best
    while e[4] is not None:
        P, j, R, k = e[4]
        chosen.append(j)
        for t in range(prob.n):
            if P >> t & 1:
                hint[t] = j
        e = memo[R][k]
    return _make_selection(prob, chosen, budget, method, losses, hint)


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


# ---------------------------------------------------------------------------------------
# public selection API
# ---------------------------------------------------------------------------------------
def _check_budget(budget: float) -> float:
    try:
        b = float(budget)
    except (TypeError, ValueError):
        raise ConfigError(f"budget must be a number, got {budget!r}") from None
    if not math.isfinite(b) or b < 0:
        raise ConfigError(f"budget must be finite and >= 0, got {budget!r}")
    return b


def select(
    table: CandidateTable, budget: float, *, kind: LossKind = "val", method: Method = "dp"
) -> Selection:
    """The exact optimum ``S_b = argmin_{cost(S) <= b} sum_t min_{n in S} L(n, t)``.

    Args:
        table: the candidates.
        budget: ``b``, in the unit of the costs.
        kind: optimise the validation (default) or the test losses of the table.
        method: ``"dp"`` (memoised frontier search, default) or ``"bnb"`` (branch and bound).

    Raises:
        InfeasibleBudgetError: no covering set of candidates fits in ``budget``.
    """
    b = _check_budget(budget)
    prob = _problem(table, kind)
    if method == "dp":
        top, memo = _dp_frontier(prob, b)
        sel = _dp_pick(prob, top, memo, b, "dp", kind)
    elif method == "bnb":
        chosen = _bnb(prob, b)
        sel = None if chosen is None else _make_selection(prob, chosen, b, "bnb", kind)
    else:
        raise ConfigError(f"method must be 'dp' or 'bnb', got {method!r}")
    if sel is None:
        raise InfeasibleBudgetError(_infeasible_message(prob, b, table))
    return sel


def select_many(
    table: CandidateTable,
    budgets: Sequence[float],
    *,
    kind: LossKind = "val",
    method: Method = "dp",
) -> list[Selection | None]:
    """:func:`select` for each budget (``None`` where infeasible), sharing the work.

    With ``method="dp"`` one frontier computation at the largest budget answers every
    budget; with ``"bnb"`` each budget's search starts from the optimum of the next smaller
    budget (still feasible) as incumbent.
    """
    bs = [_check_budget(b) for b in budgets]
    if not bs:
        return []
    prob = _problem(table, kind)
    if method == "dp":
        top, memo = _dp_frontier(prob, max(bs))
        return [_dp_pick(prob, top, memo, b, "dp", kind) for b in bs]
    if method != "bnb":
        raise ConfigError(f"method must be 'dp' or 'bnb', got {method!r}")
    out: dict[float, Selection | None] = {}
    prev: list[int] | None = None
    for b in sorted(set(bs)):
        chosen = _bnb(prob, b, prev)
        out[b] = None if chosen is None else _make_selection(prob, chosen, b, "bnb", kind)
        if chosen is not None:
            prev = chosen
    return [out[b] for b in bs]


def select_brute_force(
    table: CandidateTable, budget: float, *, kind: LossKind = "val", max_subsets: int = 5_000_000
) -> Selection | None:
    """Reference solver: enumerate every subset of candidates that fits the budget.

    No loss-based pruning at all (only subsets over the budget are skipped, their supersets
    being over it too). Same tie-breaking as :func:`select`. Returns ``None`` if infeasible.
    Memory grows with the number of feasible subsets; refuses more than ``max_subsets``.
    """
    b = _check_budget(budget)
    prob = _problem(table, kind)
    ctol = _ctol(b)
    m, n = prob.L.shape
    costs = np.zeros(1)
    mins = np.full((1, n), np.inf)
    nnet = np.zeros(1, dtype=np.int64)
    nhead = np.zeros(1, dtype=np.int64)
    member = np.zeros((1, m), dtype=bool)
    for j in range(m):
        ok = costs + prob.cost[j] <= b + ctol
        if not ok.any():
            continue
        costs = np.concatenate([costs, costs[ok] + prob.cost[j]])
        mins = np.concatenate([mins, np.minimum(mins[ok], prob.L[j])])
        nnet = np.concatenate([nnet, nnet[ok] + 1])
        nhead = np.concatenate([nhead, nhead[ok] + prob.heads[j]])
        new = member[ok].copy()
        new[:, j] = True
        member = np.concatenate([member, new])
        if costs.size > max_subsets:
            raise ConfigError(f"brute force: more than {max_subsets} feasible subsets")
    covered = np.isfinite(mins).all(axis=1)
    if not covered.any():
        return None
    loss = np.where(covered, np.where(np.isfinite(mins), mins, 0.0).sum(axis=1), np.inf)
    lbest = loss.min()
    tie = np.flatnonzero(loss <= lbest + prob.ltol)
    # among (near-)ties: the lowest loss beyond tolerance first, then cost, networks, heads
    best = int(tie[0])
    for i in tie[1:]:
        ki = (float(loss[i]), float(costs[i]), int(nnet[i]), int(nhead[i]))
        kb = (float(loss[best]), float(costs[best]), int(nnet[best]), int(nhead[best]))
        if _key_less(ki, kb, prob.ltol):
            best = int(i)
    return _make_selection(prob, np.flatnonzero(member[best]).tolist(), b, "brute_force", kind)


def _infeasible_message(prob: _Problem, budget: float, table: CandidateTable) -> str:
    where = table.source or "candidate table"
    uncovered = [t for j, t in enumerate(prob.tasks) if not np.isfinite(prob.L[:, j]).any()]
    if uncovered:
        return f"{where}: no candidate predicts task(s) {uncovered}; no budget can cover them"
    need = _min_cover_cost(prob)
    return (
        f"{where}: budget {budget:g} is infeasible: covering all {prob.n} tasks costs at "
        f"least {need:g}"
    )


def _min_cover_cost(
    prob: _Problem, idx: Sequence[int] | None = None, *, exact_blocks: bool = False
) -> float:
    """Cheapest cost of covering every task with candidates ``idx`` (a DP over task sets);
    with ``exact_blocks`` the candidates' task sets must partition the tasks."""
    full = prob.full
    cheapest: dict[int, float] = {}
    for j in range(len(prob.cands)) if idx is None else idx:
        cm = prob.mask[j]
        if float(prob.cost[j]) < cheapest.get(cm, math.inf):
            cheapest[cm] = float(prob.cost[j])
    best = [math.inf] * (full + 1)
    best[0] = 0.0
    for mask in range(full + 1):
        if not math.isfinite(best[mask]):
            continue
        for cm, c in cheapest.items():
            if exact_blocks and mask & cm:
                continue
            nm = mask | cm
            if nm != mask and best[mask] + c < best[nm]:
                best[nm] = best[mask] + c
    return best[full]


# ---------------------------------------------------------------------------------------
# scoring on another table
# ---------------------------------------------------------------------------------------
def score(
    selection: Selection,
    test_table: CandidateTable | None = None,
    *,
    kind: LossKind | None = None,
    assignment: Literal["min", "fixed"] = "min",
) -> Selection:
    """Score a chosen set of networks on other losses (e.g. the test set).

    Networks are matched by task set and cost (``Candidate.key``), as in the paper.

    Args:
        selection: the chosen networks.
        test_table: the table to score on; default: the networks' own ``test_loss``.
        kind: which losses of ``test_table`` to use; default ``"val"`` (a Standley test
            file, read with :func:`read_standley`, stores its losses there), or ``"test"``
            when ``test_table`` is None.
        assignment: ``"min"`` (default; the paper): each task takes its lowest loss over the
            chosen networks; ``"fixed"``: each task keeps the network that served it when
            the selection was made.

    Raises:
        DataError: a chosen network has no match or no loss for a task.
    """
    if test_table is None:
        kind = kind or "test"
        nets = list(selection.networks)
        src = "test"
    else:
        kind = kind or "val"
        nets = [test_table[test_table.require_index(c, _label(selection.tasks, c), "test table")]
                for c in selection.networks]
        src = test_table.source or kind
    losses: dict[str, float] = {}
    served: dict[str, Candidate] = {}
    for t in selection.tasks:
        if assignment == "fixed":
            pos = [i for i, c in enumerate(selection.networks) if c is selection.served_by[t]]
            options = [nets[pos[0]]]
        elif assignment == "min":
            options = [c for c in nets if t in c.tasks]
        else:
            raise ConfigError(f"assignment must be 'min' or 'fixed', got {assignment!r}")
        best_c, best_v = None, math.inf
        for c in options:
            lv = c.losses(kind)
            if t not in lv:
                raise DataError(f"{src}: network {_label(selection.tasks, c)} has no {kind} loss for task {t!r}")
            if lv[t] < best_v:
                best_c, best_v = c, lv[t]
        assert best_c is not None
        losses[t] = float(best_v)
        served[t] = best_c
    return Selection(
        budget=selection.budget,
        tasks=selection.tasks,
        networks=tuple(nets),
        total_cost=selection.total_cost,
        task_losses=losses,
        served_by=served,
        total_loss=math.fsum(losses.values()),
        method=selection.method,
        losses=src if test_table is not None else kind,
    )


# ---------------------------------------------------------------------------------------
# higher-order approximation (paper, section 5.3.2)
# ---------------------------------------------------------------------------------------
def higher_order_approximation(table: CandidateTable) -> CandidateTable:
    """Predict the validation losses of networks with >= 3 tasks from the pair networks.

    For a network ``n`` with ``|tasks(n)| >= 3`` and a task ``t`` of it,

        L_hoa(n, t) = mean_{p : |tasks(p)| = 2, t in tasks(p) subset of tasks(n), c_p = c_n} L(p, t)

    (paper's example: a&b = 0.1&0.2, b&c = 0.3&0.4, a&c = 0.5&0.6 gives a&b&c: b = 0.25,
    c = 0.5 and a = (0.1 + 0.5) / 2 = 0.3; the paper prints 0.35 for a, adding c's 0.6 by
    mistake). Networks with 1 or 2 tasks keep their losses; test losses are left untouched (the
    chosen networks are then trained for real). A network for which some task has no pair
    network of the same cost inside it cannot be predicted and is left out.
    """
    pairs = [c for c in table if len(c.tasks) == 2]
    out = []
    for c in table:
        if len(c.tasks) <= 2:
            out.append(c)
            continue
        inside = [p for p in pairs if p.tasks <= c.tasks and p.cost == c.cost]
        pred: dict[str, float] = {}
        for t in c.tasks:
            vals = [p.val_loss[t] for p in inside if t in p.tasks]
            if not vals:
                break
            pred[t] = math.fsum(vals) / len(vals)
        else:
            out.append(c.replace(val_loss=pred, extra={**c.extra, "approximation": "hoa"}))
    return CandidateTable(table.tasks, out, source=(table.source or "table") + " [HOA]")


# ---------------------------------------------------------------------------------------
# baselines (paper, section 6 and Figure 2)
# ---------------------------------------------------------------------------------------
def all_in_one_selection(
    table: CandidateTable,
    budget: float,
    *,
    kind: LossKind = "val",
    wider: Iterable[Candidate] = (),
) -> Selection | None:
    """One network predicting every task: the widest one that fits the budget.

    Candidates are the table's all-task networks plus ``wider`` (user-supplied all-task
    networks of other widths, e.g. Standley's 2- and 4-SNT multi-task networks). Among those
    with ``c_n <= budget`` the largest cost wins (ties: lower loss). ``None`` when none fits.
    """
    b = _check_budget(budget)
    allt = set(table.tasks)
    pool = [c for c in list(table) + list(wider) if c.tasks == allt]
    if not pool:
        return None
    ext = CandidateTable(table.tasks, [], source=table.source)
    for c in pool:
        if ext.index_of(c) is None:
            ext.append(c)
    prob = _problem(ext, kind)
    fits = [i for i in range(len(ext)) if prob.cost[i] <= b + _ctol(b)]
    if not fits:
        return None
    best = max(fits, key=lambda i: (prob.cost[i], -prob.L[i].sum()))
    return _make_selection(prob, [best], b, "all_in_one", kind)


def independent_selection(
    table: CandidateTable,
    budget: float,
    *,
    kind: LossKind = "val",
    mode: Literal["uniform", "best"] = "uniform",
) -> Selection | None:
    """One single-task network per task.

    ``mode="uniform"`` (the paper's "five independent networks"): every task gets a
    single-task network of the same cost ``c``, the largest ``c`` available for every task
    with ``n * c <= budget``. ``mode="best"``: the exact optimum using only single-task
    networks, sizes mixed freely. ``None`` when nothing fits.
    """
    b = _check_budget(budget)
    singles = table.filter(lambda c: len(c.tasks) == 1)
    if mode == "best":
        sels = select_many(singles, [b], kind=kind)
        sel = sels[0]
        if sel is None:
            return None
        return dataclasses.replace(sel, method="independent")
    if mode != "uniform":
        raise ConfigError(f"mode must be 'uniform' or 'best', got {mode!r}")
    prob = _problem(singles, kind)
    n = len(table.tasks)
    for c in sorted(set(prob.cost.tolist()), reverse=True):
        if n * c > b + _ctol(b):
            continue
        chosen = []
        for t in range(n):
            js = [j for j in range(len(singles)) if prob.cost[j] == c and prob.mask[j] == 1 << t]
            if not js:
                break
            chosen.append(js[0])
        else:
            return _make_selection(prob, chosen, b, "independent", kind)
    return None


def _score_matrix(
    table: CandidateTable, kind: LossKind, score_table: CandidateTable | None, score_kind: LossKind
) -> np.ndarray:
    """Losses of ``table``'s candidates as measured in ``score_table`` (matched by key)."""
    if score_table is None:
        return _problem(table, kind).L
    S = _problem(score_table, score_kind).L
    rows = [S[score_table.require_index(c, table.label(c), "score table")] for c in table]
    return np.array(rows).reshape(len(table), len(table.tasks))


def random_groupings(
    table: CandidateTable,
    budget: float,
    *,
    kind: LossKind = "val",
    score_table: CandidateTable | None = None,
    score_kind: LossKind = "val",
    n_samples: int = 10_000,
    seed: int = 0,
    method: Literal["partition", "sequential"] = "partition",
    max_draws: int | None = None,
) -> RandomBaseline | None:
    """Mean total loss of random valid groupings that fit the budget (seeded Monte Carlo).

    ``method="partition"`` (default): a uniformly random set partition of the tasks (Stam's
    algorithm: draw ``M`` with probability proportional to ``M^n / M!``, put each task in one
    of ``M`` urns uniformly, keep the non-empty urns); each group is trained as one network
    drawn uniformly among the candidates whose task set is exactly that group; draws whose
    total cost exceeds the budget, or with a group that has no such candidate, are rejected.
    The loss of a grouping is ``sum_t L(network of t's group, t)``.

    ``method="sequential"``: the process behind the paper's "Random groupings" curve: walk
    the candidates in random order, add each one that still fits, stop when the remaining
    budget is below the cheapest candidate's cost (a walk that ends earlier is redrawn), and
    keep the draw only if it covers every task; loss ``sum_t min_{n in S} L(n, t)``.

    Losses are taken from ``score_table`` (matched by task set and cost, column
    ``score_kind``) when given, else from ``table``'s ``kind`` losses. ``None`` when no
    valid grouping fits the budget at all, or none is drawn within ``max_draws`` (default
    ``200 * n_samples``).
    """
    b = _check_budget(budget)
    if n_samples < 1:
        raise ConfigError(f"n_samples must be >= 1, got {n_samples}")
    rng = np.random.default_rng(seed)
    prob = _problem(table, kind)
    S = _score_matrix(table, kind, score_table, score_kind)
    max_draws = max_draws or 200 * n_samples
    ctol = _ctol(b)
    affordable = [j for j in range(len(prob.cands)) if prob.cost[j] <= b + ctol]
    exact_blocks = method == "partition"
    if _min_cover_cost(prob, affordable, exact_blocks=exact_blocks) > b + ctol:
        return None  # no draw can ever fit
    if method == "partition":
        totals = _random_partitions(prob, S, b, ctol, n_samples, rng, max_draws)
    elif method == "sequential":
        totals = _random_sequential(prob, S, b, ctol, n_samples, rng, max_draws)
    else:
        raise ConfigError(f"method must be 'partition' or 'sequential', got {method!r}")
    if totals.size == 0:
        return None
    return RandomBaseline(
        budget=b,
        mean=float(totals.mean()),
        std=float(totals.std()),
        n_samples=int(totals.size),
        method=method,
        seed=seed,
    )


def _random_partitions(
    prob: _Problem, S: np.ndarray, b: float, ctol: float, n_samples: int, rng: np.random.Generator, max_draws: int
) -> np.ndarray:
    n, full = prob.n, prob.full
    by_mask: dict[int, list[int]] = {}
    for j, mk in enumerate(prob.mask):
        if prob.cost[j] <= b + ctol:
            by_mask.setdefault(mk, []).append(j)
    width = max((len(v) for v in by_mask.values()), default=0)
    if width == 0:
        return np.zeros(0)
    count = np.zeros(full + 1, dtype=np.int64)
    lut = np.zeros((full + 1, width), dtype=np.int64)
    for mk, js in by_mask.items():
        count[mk] = len(js)
        lut[mk, : len(js)] = js
    Sf = np.where(np.isfinite(S), S, 0.0)
    net_loss = np.array([Sf[j].sum() for j in range(len(prob.cands))] or [0.0])
    mmax = 2 * n + 20
    ms = np.arange(1, mmax + 1)
    logw = n * np.log(ms) - np.array([math.lgamma(x + 1) for x in ms])
    w = np.exp(logw - logw.max())
    w /= w.sum()
    out: list[np.ndarray] = []
    got, drawn = 0, 0
    batch = max(1024, 4 * n_samples)
    bits = (1 << np.arange(n)).astype(np.int64)
    while got < n_samples and drawn < max_draws:
        M = rng.choice(ms, size=batch, p=w)
        labels = (rng.random((batch, n)) * M[:, None]).astype(np.int64)  # urn of each task
        blocks = np.zeros((batch, mmax), dtype=np.int64)
        np.add.at(blocks, (np.repeat(np.arange(batch), n), labels.ravel()), np.tile(bits, batch))
        nonempty = blocks > 0
        valid = ((count[blocks] > 0) | ~nonempty).all(axis=1)
        pick = (rng.random((batch, mmax)) * np.maximum(count[blocks], 1)).astype(np.int64)
        nets = lut[blocks, pick]
        cost = np.where(nonempty, prob.cost[nets], 0.0).sum(axis=1)
        loss = np.where(nonempty, net_loss[nets], 0.0).sum(axis=1)
        ok = valid & (cost <= b + ctol)
        out.append(loss[ok])
        got += int(ok.sum())
        drawn += batch
    totals = np.concatenate(out) if out else np.zeros(0)
    return totals[:n_samples]


def _random_sequential(
    prob: _Problem, S: np.ndarray, b: float, ctol: float, n_samples: int, rng: np.random.Generator, max_draws: int
) -> np.ndarray:
    m = len(prob.cands)
    if m == 0:
        return np.zeros(0)
    cmin = float(prob.cost.min())
    out: list[np.ndarray] = []
    got, drawn = 0, 0
    batch = max(1024, 2 * n_samples)
    while got < n_samples and drawn < max_draws:
        perm = rng.random((batch, m)).argsort(axis=1)
        rem = np.full(batch, b)
        mins = np.full((batch, prob.n), np.inf)
        active = rem >= cmin - ctol
        for k in range(m):
            j = perm[:, k]
            fits = active & (prob.cost[j] <= rem + ctol)
            rem = np.where(fits, rem - prob.cost[j], rem)
            mins = np.where(fits[:, None], np.minimum(mins, S[j]), mins)
            active &= ~(rem < cmin - ctol)
        done = ~active & np.isfinite(mins).all(axis=1)
        out.append(np.where(np.isfinite(mins), mins, 0.0).sum(axis=1)[done])
        got += int(done.sum())
        drawn += batch
    totals = np.concatenate(out) if out else np.zeros(0)
    return totals[:n_samples]


def worst_selection(
    table: CandidateTable,
    budget: float,
    *,
    kind: LossKind = "val",
    maximal: bool = True,
) -> Selection | None:
    """The pessimal choice: the covering set with the *highest* ``sum_t min_{n in S} L(n, t)``.

    ``maximal=True`` (the paper's "Worst network choice", as computed for its Figure 2)
    only considers sets that spend the budget: no unchosen candidate still fits in
    ``budget - cost(S)``. With ``maximal=False`` every feasible covering set counts (adding a
    network never raises the loss, so this is the worst minimal cover at any budget).
    Exact branch and bound over include/exclude decisions (upper bound: current per-task
    minima, the worst remaining loss for uncovered tasks); exponential, meant for tables of
    tens of candidates like Standley's. ``None`` when no covering set fits.
    """
    b = _check_budget(budget)
    prob = _problem(table, kind)
    ctol, ltol = _ctol(b), prob.ltol
    L, cost = prob.L, prob.cost
    idx = [j for j in range(len(cost)) if cost[j] <= b + ctol]
    # try high-loss networks first: good incumbents early
    Lf = np.where(np.isfinite(L), L, 0.0)
    idx.sort(key=lambda j: -Lf[j].sum() / max(int(prob.heads[j]), 1))
    order = np.array(idx, dtype=np.int64)
    k = len(order)
    suffix_cost = np.concatenate([np.cumsum(cost[order][::-1])[::-1], [0.0]]) if k else np.zeros(1)
    # per suffix: worst (max) loss of any remaining network on each task (-inf if none)
    Lm = np.where(np.isfinite(L[order]), L[order], -np.inf) if k else np.zeros((0, prob.n))
    suffix_max = np.full((k + 1, prob.n), -np.inf)
    for i in range(k - 1, -1, -1):
        suffix_max[i] = np.maximum(suffix_max[i + 1], Lm[i])
    best_val = -math.inf
    best: list[int] | None = None

    def dfs(i: int, cur: np.ndarray, spent: float, excl_min: float, chosen: list[int]) -> None:
        nonlocal best_val, best
        rem = b - spent
        if maximal and excl_min <= b - min(b, spent + suffix_cost[i]) + ctol:
            return  # an excluded network would still fit even if all the rest were added
        ub_vec = np.where(np.isfinite(cur), cur, suffix_max[i])
        if not np.isfinite(ub_vec).all():
            return  # some task can no longer be covered
        if ub_vec.sum() < best_val - ltol:
            return
        if i == k:
            if maximal and excl_min <= rem + ctol:
                return
            val = math.fsum(cur.tolist())
            if val > best_val + ltol:
                best_val, best = val, list(chosen)
            return
        j = int(order[i])
        if cost[j] <= rem + ctol:
            chosen.append(j)
            dfs(i + 1, np.minimum(cur, L[j]), spent + float(cost[j]), excl_min, chosen)
            chosen.pop()
        dfs(i + 1, cur, spent, min(excl_min, float(cost[j])), chosen)

    dfs(0, np.full(prob.n, np.inf), 0.0, math.inf, [])
    if best is None:
        return None
    return _make_selection(prob, best, b, "worst", kind)
