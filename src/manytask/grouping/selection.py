"""Exact network selection under an inference budget (Standley et al., ICML 2020, sec. 5-6).

Problem (paper, section 5). Candidates ``n`` have a cost ``c_n`` and a loss ``L(n, t)`` per
task (``inf`` where ``n`` does not predict ``t``). A solution ``S`` is a set of candidates;

    cost(S) = sum_{n in S} c_n,        L(S) = sum_t min_{n in S} L(n, t),

and for a budget ``b`` we want ``S_b = argmin_{S : cost(S) <= b} L(S)`` among the ``S`` that
cover every task (NP-hard in general: set cover reduces to it). Candidates may overlap;
a task served by several chosen networks takes the lowest loss.

Exact algorithms (all return the same optimum, with the same tie-breaking):

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
* :func:`select` with ``method="partition"``: branch and bound over partitions of the tasks
  into blocks (:mod:`._partition`), pruned with Lagrangian lower bounds tabulated over all
  task sets and dominance between nodes with the same uncovered tasks; for many tasks
  (20 tasks with 1,350 candidates, or 16 with 65,551, in seconds), with an optional
  ``time_limit`` after which the best solution found is returned with a lower bound.
  ``method="auto"`` (default) takes ``"dp"`` up to 10 tasks and ``"partition"`` above.
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
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np

from manytask.errors import ConfigError, DataError
from manytask.grouping._bnb import _bnb
from manytask.grouping._dp import _block_frontiers, _dp_frontier, _dp_pick
from manytask.grouping._partition import PartitionSearch
from manytask.grouping._problem import (
    InfeasibleBudgetError,
    Method,
    RandomBaseline,
    Selection,
    _check_budget,
    _ctol,
    _key_less,
    _label,
    _make_selection,
    _min_cover_cost,
    _Problem,
    _problem,
)
from manytask.grouping.baselines import (
    all_in_one_selection,
    independent_selection,
    random_groupings,
    random_groupings_many,
    worst_selection,
)
from manytask.grouping.table import Candidate, CandidateTable, LossKind

__all__ = [
    "InfeasibleBudgetError",
    "RandomBaseline",
    "Selection",
    "all_in_one_selection",
    "higher_order_approximation",
    "independent_selection",
    "random_groupings",
    "random_groupings_many",
    "score",
    "select",
    "select_brute_force",
    "select_many",
    "worst_selection",
]


# ---------------------------------------------------------------------------------------
# public selection API
# ---------------------------------------------------------------------------------------
_AUTO_DP_MAX_TASKS = 10


def _resolve(method: str, prob: _Problem) -> str:
    if method == "auto":
        return "dp" if prob.n <= _AUTO_DP_MAX_TASKS else "partition"
    if method not in ("dp", "bnb", "partition"):
        raise ConfigError(f"method must be 'auto', 'dp', 'bnb' or 'partition', got {method!r}")
    return method


def select(
    table: CandidateTable,
    budget: float,
    *,
    kind: LossKind = "val",
    method: Method = "auto",
    time_limit: float | None = None,
) -> Selection:
    """The exact optimum ``S_b = argmin_{cost(S) <= b} sum_t min_{n in S} L(n, t)``.

    Args:
        table: the candidates.
        budget: ``b``, in the unit of the costs.
        kind: optimise the validation (default) or the test losses of the table.
        method: ``"auto"`` (default: ``"dp"`` up to 10 tasks, else ``"partition"``),
            ``"dp"`` (memoised frontier search), ``"bnb"`` (branch and bound over networks)
            or ``"partition"`` (branch and bound over partitions of the tasks).
        time_limit: seconds for ``"partition"``; when the search is cut short the best
            solution found is returned with ``exact=False`` and a ``lower_bound``.

    Raises:
        InfeasibleBudgetError: no covering set of candidates fits in ``budget``.
    """
    b = _check_budget(budget)
    sels = select_many(table, [b], kind=kind, method=method, time_limit=time_limit)
    if sels[0] is None:
        raise InfeasibleBudgetError(_infeasible_message(_problem(table, kind), b, table))
    return sels[0]


def select_many(
    table: CandidateTable,
    budgets: Sequence[float],
    *,
    kind: LossKind = "val",
    method: Method = "auto",
    time_limit: float | None = None,
) -> list[Selection | None]:
    """:func:`select` for each budget (``None`` where infeasible), sharing the work.

    With ``method="dp"`` one frontier computation at the largest budget answers every
    budget; with ``"bnb"`` and ``"partition"`` each budget's search starts from the
    optimum of the next smaller budget (still feasible) as incumbent; ``time_limit``
    (``"partition"``) is for the whole sweep.
    """
    bs = [_check_budget(b) for b in budgets]
    if not bs:
        return []
    prob = _problem(table, kind)
    how = _resolve(method, prob)
    if how == "dp":
        top, memo = _dp_frontier(prob, max(bs))
        return [_dp_pick(prob, top, memo, b, "dp", kind) for b in bs]
    if how == "partition":
        return _partition_many(prob, bs, kind, time_limit)
    out: dict[float, Selection | None] = {}
    prev: list[int] | None = None
    for b in sorted(set(bs)):
        chosen = _bnb(prob, b, prev)
        out[b] = None if chosen is None else _make_selection(prob, chosen, b, "bnb", kind)
        if chosen is not None:
            prev = chosen
    return [out[b] for b in bs]


def _partition_many(
    prob: _Problem, bs: list[float], kind: LossKind, time_limit: float | None
) -> list[Selection | None]:
    deadline = None if time_limit is None else time.perf_counter() + float(time_limit)
    search = PartitionSearch(prob, _block_frontiers(prob, max(bs)))
    out: dict[float, Selection | None] = {}
    prev: list[tuple[int, int]] | None = None
    for b in sorted(set(bs)):
        res = search.solve(b, prev, deadline)
        if res.chosen is None:
            if not res.exact:
                raise ConfigError(f"selection: no solution found at budget {b:g} within "
                                  f"the time limit of {time_limit:g} s")
            out[b] = None
            continue
        prev = res.chosen
        hint = {t: int(search.j[i]) for P, i in res.chosen for t in range(prob.n) if P >> t & 1}
        sel = _make_selection(prob, [int(search.j[i]) for _, i in res.chosen], b, "partition", kind, hint)
        if not res.exact:
            sel = dataclasses.replace(sel, exact=False, lower_bound=res.lower_bound)
        out[b] = sel
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
