"""Baselines of Standley et al. 2020, Figure 2: one all-task network, independent networks,
random groupings and the worst network choice."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np

from manytask.errors import ConfigError
from manytask.grouping._problem import (
    RandomBaseline,
    Selection,
    _check_budget,
    _ctol,
    _make_selection,
    _min_cover_cost,
    _Problem,
    _problem,
)
from manytask.grouping.table import Candidate, CandidateTable, LossKind

__all__ = [
    "all_in_one_selection",
    "independent_selection",
    "random_groupings",
    "random_groupings_many",
    "worst_selection",
]


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
        from manytask.grouping.selection import select_many

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
    rows = np.array([score_table.require_index(c, table.label(c), "score table") for c in table],
                    dtype=np.int64)
    return S[rows].reshape(len(table), len(table.tasks))


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
    return random_groupings_many(table, [budget], kind=kind, score_table=score_table,
                                 score_kind=score_kind, n_samples=n_samples, seed=seed,
                                 method=method, max_draws=max_draws)[0]


def random_groupings_many(
    table: CandidateTable,
    budgets: Sequence[float],
    *,
    kind: LossKind = "val",
    score_table: CandidateTable | None = None,
    score_kind: LossKind = "val",
    n_samples: int = 10_000,
    seed: int = 0,
    method: Literal["partition", "sequential"] = "partition",
    max_draws: int | None = None,
) -> list[RandomBaseline | None]:
    """:func:`random_groupings` at each budget (each drawn with ``seed``), the loss
    matrices and the feasibility check computed once: the cheapest cover (or partition)
    does not depend on the budget, since a cover within budget only uses affordable
    networks."""
    bs = [_check_budget(b) for b in budgets]
    if n_samples < 1:
        raise ConfigError(f"n_samples must be >= 1, got {n_samples}")
    if method not in ("partition", "sequential"):
        raise ConfigError(f"method must be 'partition' or 'sequential', got {method!r}")
    if not bs:
        return []
    prob = _problem(table, kind)
    S = _score_matrix(table, kind, score_table, score_kind)
    max_draws = max_draws or 200 * n_samples
    need = _min_cover_cost(prob, exact_blocks=method == "partition")
    draw = _random_partitions if method == "partition" else _random_sequential
    out: list[RandomBaseline | None] = []
    for b in bs:
        ctol = _ctol(b)
        if need > b + ctol:
            out.append(None)  # no draw can ever fit
            continue
        rng = np.random.default_rng(seed)
        totals = draw(prob, S, b, ctol, n_samples, rng, max_draws)
        out.append(None if totals.size == 0 else RandomBaseline(
            budget=b, mean=float(totals.mean()), std=float(totals.std()),
            n_samples=int(totals.size), method=method, seed=seed))
    return out


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
