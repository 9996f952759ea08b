"""Speed of exact network selection (Standley et al. 2020), printed as JSON.

1. Standley's four settings (examples/standley/, 36 candidates, 5 tasks) at the nine budgets
   1, 1.5, ..., 5: 36 selections, timed for
   - ``dp_single``: :func:`select` once per budget (memoised frontier search),
   - ``dp_sweep``: :func:`select_many` once per setting (one search answers all budgets),
   - ``bnb``: branch and bound over networks, once per budget,
   - ``brute_force``: :func:`select_brute_force`, enumerating every subset within budget.
   All four must return the same optimum (checked). Ratios are brute force / method.
2. A synthetic 10-task instance: every one of the 1,023 task subsets as a cost-1 network plus
   ten half-size single-task networks (1,033 candidates), budgets 1..5 step 0.5; per budget
   time of :func:`select`, and the sweep with :func:`select_many`. Branch and bound is timed
   at the small budgets only (it grows steeply with the budget here), brute force not at all.

Times are medians over ``--repeats`` runs (brute force: ``--brute-repeats``).

    python benchmarks/selection_speed.py [--repeats 5] [--brute-repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from manytask.grouping.selection import (
    Selection,
    select,
    select_brute_force,
    select_many,
)
from manytask.grouping.synthetic import affinity_candidates
from manytask.grouping.table import Candidate, CandidateTable, read_standley

EX = Path(__file__).resolve().parents[1] / "examples" / "standley"
FILES = ["results.txt", "results_large.txt", "results_small_data.txt", "results_alt.txt"]
BUDGETS = [1.0 + 0.5 * i for i in range(9)]


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def key(s: Selection | None) -> tuple[float, float, int] | None:
    return None if s is None else (round(s.total_loss, 9), round(s.total_cost, 9), len(s.networks))


def synthetic(n: int = 10, seed: int = 0) -> CandidateTable:
    """Every subset at cost 1 (:func:`manytask.grouping.synthetic.affinity_candidates`), and each
    task alone at cost 0.5 with loss ``base_t * exp(0.05 + noise)``."""
    rng = np.random.default_rng(seed)
    tasks, cands, base = affinity_candidates(rng, n, n, lambda r, s: 1.0, names="task{}")
    for t in range(n):
        loss = float(base[t] * np.exp(0.05 + rng.normal(0, 0.02)))
        cands.append(Candidate(frozenset([tasks[t]]), 0.5, {tasks[t]: loss}))
    return CandidateTable(tasks, cands, source=f"synthetic n={n}")


def standley(repeats: int, brute_repeats: int) -> dict[str, Any]:
    tables = [read_standley(EX / f) for f in FILES]
    t_single, r_single = timed(lambda: [select(t, b) for t in tables for b in BUDGETS], repeats)
    t_sweep, r_sweep = timed(lambda: [s for t in tables for s in select_many(t, BUDGETS)], repeats)
    t_bnb, r_bnb = timed(lambda: [select(t, b, method="bnb") for t in tables for b in BUDGETS], max(1, repeats // 2))
    t_brute, r_brute = timed(lambda: [select_brute_force(t, b) for t in tables for b in BUDGETS], brute_repeats)
    agree = [key(s) for s in r_single] == [key(s) for s in r_sweep] == [key(s) for s in r_bnb] == [
        key(s) for s in r_brute
    ]
    return {
        "selections": len(r_single),
        "seconds": {
            "dp_single": round(t_single, 5),
            "dp_sweep": round(t_sweep, 5),
            "bnb": round(t_bnb, 4),
            "brute_force": round(t_brute, 3),
        },
        "goal_under_0_5_s": t_single < 0.5,
        "speedup_vs_brute_force": {
            "dp_single": round(t_brute / t_single, 1),
            "dp_sweep": round(t_brute / t_sweep, 1),
            "bnb": round(t_brute / t_bnb, 1),
        },
        "all_methods_agree": agree,
    }


def ten_tasks(repeats: int, bnb_budgets: list[float]) -> dict[str, Any]:
    table = synthetic()
    per_budget: dict[str, float] = {}
    results = []
    for b in BUDGETS:
        t, s = timed(partial(select, table, b), repeats)
        per_budget[f"{b:g}"] = round(t, 4)
        results.append(s)
    t_sweep, sweep = timed(lambda: select_many(table, BUDGETS), repeats)
    bnb: dict[str, float] = {}
    bnb_agree = True
    for b in bnb_budgets:
        t, s = timed(partial(select, table, b, method="bnb"), 1)
        bnb[f"{b:g}"] = round(t, 3)
        bnb_agree &= key(s) == key(results[BUDGETS.index(b)])
    return {
        "tasks": len(table.tasks),
        "candidates": len(table),
        "dp_single_seconds_per_budget": per_budget,
        "dp_single_seconds_median": round(statistics.median(per_budget.values()), 4),
        "dp_sweep_seconds_all_9_budgets": round(t_sweep, 4),
        "dp_sweep_seconds_per_budget": round(t_sweep / len(BUDGETS), 4),
        "sweep_equals_single": [key(s) for s in sweep] == [key(s) for s in results],
        "bnb_seconds_per_budget": bnb,
        "bnb_equals_dp": bnb_agree,
        "ratio_bnb_over_dp_single": {
            k: round(v / per_budget[k], 1) for k, v in bnb.items()
        },
        "total_loss": [round(s.total_loss, 5) for s in results],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--brute-repeats", type=int, default=1)
    ap.add_argument("--bnb-budgets", default="1,1.5,2", help="budgets for B&B on the 10-task instance")
    args = ap.parse_args()
    bnb_budgets = [float(x) for x in args.bnb_budgets.split(",") if x]
    out = {
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpus": os.cpu_count(),
        },
        "repeats": args.repeats,
        "standley_4_settings_x_9_budgets": standley(args.repeats, args.brute_repeats),
        "synthetic_10_tasks": ten_tasks(args.repeats, bnb_budgets),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
