"""Exact selection by memoised search over uncovered-task sets (see :mod:`.selection`)."""

from __future__ import annotations

import math

import numpy as np

from manytask.grouping._problem import (
    Selection,
    _ctol,
    _key_less,
    _make_selection,
    _Problem,
)

# ---------------------------------------------------------------------------------------
# exact selection: memoised search over uncovered-task sets with Pareto frontiers
# ---------------------------------------------------------------------------------------
# A frontier entry: (cost, loss, n_networks, heads, back) with back = (block, j, rest, k):
# block P served by candidate j, completion = entry k of the frontier of ``rest``.
_Entry = tuple[float, float, int, int, tuple[int, int, int, int] | None]


_Block = tuple[float, float, int, int]  # (c_n, V(n, P), heads_n, n)
_SPARSE_MAX_ENTRIES = 2_000_000


def _block_frontiers(prob: _Problem, bmax: float) -> dict[int, list[_Block]]:
    """For every non-empty task set P, the networks that are not dominated for serving P.

    Entry ``(c_n, V(n, P), heads_n, n)``, sorted by cost with strictly improving
    ``(V, heads)``: network n is dropped when some m predicting P has ``c_m <= c_n`` and
    ``V(m, P) <= V(n, P)`` (dominance pruning). Blocks are the subsets of the candidates'
    task sets: listed one by one when there are few of them (networks of a few tasks),
    else computed for all ``2^n`` task sets at once per cost level (dense tables).
    """
    ok = np.flatnonzero(prob.cost <= bmax + _ctol(bmax))
    if ok.size == 0:
        return {}
    entries = int(sum((1 << int(prob.heads[j])) - 1 for j in ok))
    levels = np.unique(prob.cost[ok]).size
    if entries <= _SPARSE_MAX_ENTRIES and entries < levels * (prob.full + 1):
        return _sparse_blocks(prob, ok)
    return _dense_blocks(prob, bmax)


def _submask_entries(prob: _Problem, rows: np.ndarray, chunk: int = 1 << 22):
    """Chunks ``(P, V(n, P), n)`` over every non-empty subset P of every network n of ``rows``."""
    fin = np.isfinite(prob.L)
    heads = prob.heads[rows]
    for k in np.unique(heads):
        kr = rows[heads == k]
        k = int(k)
        sub = ((np.arange(1, 1 << k)[:, None] >> np.arange(k)[None, :]) & 1).astype(np.int64)
        step = max(1, chunk // sub.shape[0])
        for s in range(0, kr.size, step):
            r = kr[s : s + step]
            pos = np.nonzero(fin[r])[1].reshape(r.size, k)  # the tasks of each network
            yield (((1 << pos) @ sub.T).ravel(),
                   (np.take_along_axis(prob.L[r], pos, axis=1) @ sub.T).ravel(),
                   np.repeat(r, sub.shape[0]))


def _sparse_blocks(prob: _Problem, cidx: np.ndarray) -> dict[int, list[_Block]]:
    """:func:`_block_frontiers` from the list of (task subset, network) pairs."""
    parts = list(_submask_entries(prob, cidx))
    P, V, J = (np.concatenate([p[i] for p in parts]) for i in range(3))
    C, H = prob.cost[J], prob.heads[J]
    order = np.lexsort((J, H, V, C, P))
    return _frontiers_from_sorted(P[order], C[order], V[order], H[order], J[order], prob.ltol)


def _frontiers_from_sorted(
    P: np.ndarray, C: np.ndarray, V: np.ndarray, H: np.ndarray, J: np.ndarray, ltol: float
) -> dict[int, list[_Block]]:
    """Entries sorted by (P, cost, V, heads, index): per P and cost level the lowest V, among
    those within ``ltol`` of it the fewest heads, then the lowest index; then per P the
    levels that improve (V beyond ``ltol``, else heads), as the dense tables do."""
    out: dict[int, list[_Block]] = {}
    Pl, Cl, Vl, Hl, Jl = P.tolist(), C.tolist(), V.tolist(), H.tolist(), J.tolist()
    i, m = 0, len(Pl)
    while i < m:
        p, c, vmin = Pl[i], Cl[i], Vl[i]
        best_h, best_j = Hl[i], Jl[i]
        i += 1
        while i < m and Pl[i] == p and Cl[i] == c:
            if Vl[i] <= vmin + ltol and (Hl[i], Jl[i]) < (best_h, best_j):
                best_h, best_j = Hl[i], Jl[i]
            i += 1
        lst = out.setdefault(p, [])
        if not lst:
            lst.append((c, vmin, best_h, best_j))
            continue
        bv, bh = lst[-1][1], lst[-1][2]
        if vmin < bv - ltol or (vmin <= bv + ltol and best_h < bh):
            lst.append((c, vmin, best_h, best_j))
    return out


def _dense_blocks(prob: _Problem, bmax: float) -> dict[int, list[_Block]]:
    """:func:`_block_frontiers` from ``2^n`` tables per cost level, filled from every
    (task subset, network) pair: the lowest V, then among V within ``ltol`` of it the
    fewest heads and the lowest index."""
    full = prob.full
    cidx = np.flatnonzero(prob.cost <= bmax + _ctol(bmax))
    out: dict[int, list[_Block]] = {}
    if cidx.size == 0:
        return out
    costs = prob.cost[cidx]
    stride = np.int64(len(prob.cands) + 1)
    per_level = []
    for lv in np.unique(costs):
        rows = cidx[costs == lv]
        vmin = np.full(full + 1, np.inf)
        for P, V, _ in _submask_entries(prob, rows):
            np.minimum.at(vmin, P, V)
        best = np.full(full + 1, np.iinfo(np.int64).max)
        for P, V, J in _submask_entries(prob, rows):
            near = V <= vmin[P] + prob.ltol
            np.minimum.at(best, P[near], prob.heads[J[near]] * stride + J[near])
        per_level.append((float(lv), vmin, best // stride, best % stride))
    for P in range(1, full + 1):
        lst: list[_Block] = []
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


def _cover_cost_bounds(blocks: dict[int, list[_Block]], n: int) -> np.ndarray:
    """For every task set U, a lower bound on the cost of covering it: the larger of the
    most expensive cheapest cover of one task of U and ``sum_{t in U} min_{P ni t} c_P / |P|``
    (each network's cost shared among the tasks it serves)."""
    one = np.full(n, np.inf)
    share = np.full(n, np.inf)
    for P, bl in blocks.items():
        size = P.bit_count()
        for t in range(n):
            if P >> t & 1:
                share[t] = min(share[t], bl[0][0] / size)
                if size == 1:
                    one[t] = bl[0][0]
    masks = np.arange(1 << n, dtype=np.int64)
    lb_max = np.zeros(1 << n)
    lb_sum = np.zeros(1 << n)
    for t in range(n):
        has = (masks >> t & 1).astype(bool)
        lb_max = np.where(has, np.maximum(lb_max, one[t]), lb_max)
        lb_sum += np.where(has, share[t], 0.0)
    return np.maximum(lb_max, lb_sum)


def _dp_frontier(prob: _Problem, bmax: float) -> tuple[list[_Entry], dict[int, list[_Entry]]]:
    """Pareto frontier (cost, loss, networks, heads) of complete solutions with cost <= bmax."""
    ctol = _ctol(bmax)
    blocks = _block_frontiers(prob, bmax)
    n, full = prob.n, prob.full
    lb_cost = _cover_cost_bounds(blocks, n)
    by_low: list[list[tuple[int, list[_Block]]]] = [[] for _ in range(n)]
    for P in sorted(blocks):
        by_low[(P & -P).bit_length() - 1].append((P, blocks[P]))
    memo: dict[int, list[_Entry]] = {0: [(0.0, 0.0, 0, 0, None)]}
    ltol = prob.ltol

    def parts(mask: int) -> list[tuple[int, list[_Block]]]:
        """The blocks holding the lowest task of ``mask`` inside ``mask``: the shorter of
        the list of such blocks and the subsets of ``mask``."""
        low = mask & -mask
        lst = by_low[low.bit_length() - 1]
        rest0 = mask ^ low
        if len(lst) <= 1 << rest0.bit_count():
            return [(P, bl) for P, bl in lst if not P & ~mask]
        out, s = [], rest0
        while True:
            bl = blocks.get(s | low)
            if bl is not None:
                out.append((s | low, bl))
            if s == 0:
                return out
            s = (s - 1) & rest0

    def frontier(mask: int) -> list[_Entry]:
        got = memo.get(mask)
        if got is not None:
            return got
        cap = bmax - float(lb_cost[full ^ mask]) + ctol
        cand: list[_Entry] = []
        for P, bl in parts(mask):
            if bl[0][0] > cap:
                continue
            R = mask ^ P
            fr = frontier(R)
            for cb, vb, hb, j in bl:
                if cb > cap:
                    break
                for k, (cr, vr, nr, hr, _) in enumerate(fr):
                    c = cb + cr
                    if c > cap:
                        break
                    cand.append((c, vb + vr, nr + 1, hb + hr, (P, j, R, k)))
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

