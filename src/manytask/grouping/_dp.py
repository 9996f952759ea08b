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

