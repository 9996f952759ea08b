"""Selection for many tasks, the baselines and ``manytask select``, printed as JSON.

Cases (each run in its own process, so that its peak memory is its own):

* ``subsets3_n20``: 20 tasks, every subset of at most 3 tasks as a network (1,350
  candidates, all costs distinct), 10 budgets from just above the cheapest cover to the
  cost of the cheapest single-task networks; one :func:`select_many` sweep (``auto``:
  branch and bound over partitions). Goal: <= 5 s and <= 0.5 GB.
* ``subsets3_n16``: the same shape at 16 tasks (696 candidates), partition search against
  the memoised frontier search (``method="dp"``): same optima, ratio of times.
* ``all_n16``: 16 tasks, every one of the 65,535 subsets at cost 1 plus 16 half-size
  single-task networks (65,551 candidates, the shape of Standley's tables), budgets 1 to
  5.5 step 0.5. Goal: <= 60 s.
* ``random_n16``: the random-groupings baseline (2,000 samples) on ``all_n16`` at its 10
  budgets: one :func:`random_groupings_many` sweep against one call per budget.
* ``cli``: ``manytask select`` on Standley's table and test file (9 budgets, baselines),
  wall time of the whole command, and whether torch or scipy were imported. Goal: <= 1 s.

    python benchmarks/selection_scale.py
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from manytask.grouping.synthetic import affinity_candidates
from manytask.grouping.table import CandidateTable

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples" / "standley"


def subsets_table(n: int, k: int = 3, seed: int = 0) -> CandidateTable:
    """Every subset of at most ``k`` tasks (:func:`manytask.grouping.synthetic.affinity_candidates`);
    cost ``0.5 + 0.25 |g| + U(0, 0.2)`` (distinct)."""
    tasks, cands, _ = affinity_candidates(np.random.default_rng(seed), n, k,
                                          lambda rng, s: 0.5 + 0.25 * s + float(rng.uniform(0, 0.2)))
    return CandidateTable(tasks, cands, source=f"{n} tasks, subsets of <= {k}")


def sweep_budgets(table: CandidateTable) -> list[float]:
    from manytask.grouping._problem import _min_cover_cost, _problem

    prob = _problem(table)
    lo = _min_cover_cost(prob)
    hi = sum(min(c.cost for c in table if c.tasks == {t}) for t in table.tasks)
    return [round(float(b), 4) for b in np.linspace(lo * 1.02, hi, 10)]


def key(s: Any) -> Any:
    return None if s is None else (round(s.total_loss, 9), round(s.total_cost, 9), len(s.networks))


def peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def case_select(n: int, all_subsets: bool, compare_dp: bool) -> dict[str, Any]:
    from manytask.grouping.selection import select_many

    if all_subsets:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from selection_speed import synthetic

        table, budgets = synthetic(n), [1.0 + 0.5 * i for i in range(10)]
    else:
        table = subsets_table(n)
        budgets = sweep_budgets(table)
    t0 = time.perf_counter()
    sels = select_many(table, budgets)
    secs = time.perf_counter() - t0
    out: dict[str, Any] = {
        "tasks": n, "candidates": len(table), "budgets": budgets, "seconds": round(secs, 3),
        "peak_rss_mb": peak_mb(), "method": sels[-1].method if sels[-1] else None,
        "all_exact": all(s is None or s.exact for s in sels),
        "total_loss": [None if s is None else round(s.total_loss, 5) for s in sels],
    }
    if compare_dp:
        t0 = time.perf_counter()
        dp = select_many(table, budgets, method="dp")
        t_dp = time.perf_counter() - t0
        out |= {"dp_seconds": round(t_dp, 3), "ratio_dp_over_partition": round(t_dp / secs, 1),
                "same_optima_as_dp": [key(s) for s in dp] == [key(s) for s in sels]}
    return out


def case_random(n: int) -> dict[str, Any]:
    from manytask.grouping.baselines import random_groupings, random_groupings_many

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from selection_speed import synthetic

    table, budgets = synthetic(n), [1.0 + 0.5 * i for i in range(10)]
    t0 = time.perf_counter()
    many = random_groupings_many(table, budgets, n_samples=2000)
    t_many = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [random_groupings(table, b, n_samples=2000) for b in budgets]
    t_single = time.perf_counter() - t0
    return {"tasks": n, "candidates": len(table), "sweep_seconds": round(t_many, 3),
            "per_budget_calls_seconds": round(t_single, 3),
            "ratio_calls_over_sweep": round(t_single / t_many, 1), "same_means": many == single,
            "means": [None if r is None else round(r.mean, 5) for r in many]}


def case_cli() -> dict[str, Any]:
    script = (
        "import sys, json\nfrom manytask.cli import app\n"
        "try:\n    app(sys.argv[1:], prog_name='manytask')\nexcept SystemExit:\n    pass\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'scipy': 'scipy' in sys.modules}))\n"
    )
    args = ["select", str(EX / "results.txt"), "--test", str(EX / "results_test.txt"), "--budgets", "1:5:0.5"]
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - t0)
    flags = json.loads(res.stdout.strip().splitlines()[-1])
    return {"wall_seconds_median_of_3": round(sorted(times)[1], 3), "imports_torch": flags["torch"],
            "imports_scipy": flags["scipy"]}


CASES = {
    "subsets3_n20": lambda: case_select(20, False, False),
    "subsets3_n16": lambda: case_select(16, False, True),
    "all_n16": lambda: case_select(16, True, False),
    "random_n16": lambda: case_random(16),
    "cli": case_cli,
}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--case":
        print(json.dumps(CASES[sys.argv[2]]()))
        return
    results = {}
    for name in CASES:
        res = subprocess.run([sys.executable, __file__, "--case", name], capture_output=True, text=True, check=True)
        results[name] = json.loads(res.stdout.strip().splitlines()[-1])
    r20, a16, cli = results["subsets3_n20"], results["all_n16"], results["cli"]
    results["goals"] = {
        "subsets3_n20_under_5_s_and_0_5_GB": r20["seconds"] <= 5 and r20["peak_rss_mb"] <= 512,
        "all_n16_under_60_s": a16["seconds"] <= 60,
        "cli_under_1_s_without_torch_scipy": cli["wall_seconds_median_of_3"] <= 1
        and not cli["imports_torch"] and not cli["imports_scipy"],
    }
    results["machine"] = {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count()}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
