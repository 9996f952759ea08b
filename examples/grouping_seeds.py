"""Mean ± std over seeds of `manytask group` studies: one folder per seed, every method in it.

    for s in 0 1 2; do
      for m in exhaustive esa esa_epochs hoa tag cosine; do
        manytask group configs/grouping_multimnist5.yaml --method $m --budgets 1:5:0.5 \
            --out runs/group5_s$s --set seed=$s -q
      done
    done
    python examples/grouping_seeds.py runs/group5_s0 runs/group5_s1 runs/group5_s2

Prints a markdown table: each method's test loss curve (the chosen networks' summed,
single-task-normalised test losses) per budget as mean ± std over the seeds, its mean gap to
the exhaustive choice of the same seed, and its compute in full-training equivalents (FTE:
search, and total with the final training of the chosen networks). Baseline rows (all-in-one,
independent networks, random groupings) come from the exhaustive result of each seed.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from manytask.evaluation.aggregate import mean_std
from manytask.reporting.tables import markdown_table

METHODS = ("exhaustive", "esa", "esa_epochs", "hoa", "tag", "cosine")
BASELINES = ("all-in-one", "independent", "random groupings")


def _cell(values: list[float]) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "—"
    m, s, n = mean_std(finite)
    return f"{m:.3f} ± {s:.3f}" if n > 1 else f"{m:.3f}"


def load(folders: list[Path]) -> tuple[list[float], dict[str, list[dict]]]:
    """The budgets and, per method, the result.json of every seed that has it."""
    results: dict[str, list[dict]] = {}
    budgets: list[float] = []
    for folder in folders:
        for method in METHODS:
            path = folder / method / "result.json"
            if path.is_file():
                data = json.loads(path.read_text())
                budgets = data["budgets"]
                results.setdefault(method, []).append(data)
    return budgets, results


def table(folders: list[Path]) -> str:
    budgets, results = load(folders)
    exhaustive = {id(r): r for r in results.get("exhaustive", [])}
    rows = []
    for method, runs in results.items():
        curves = [r["curves"][f"{method} (test)"] for r in runs]
        cells = [_cell([c[i] for c in curves]) for i in range(len(budgets))]
        gaps = []
        for r, c in zip(runs, curves):
            ref = r["curves"].get("exhaustive optimum (test)") or r["curves"].get("exhaustive (test)")
            gaps += [100.0 * (a / b - 1.0) for a, b in zip(c[1:], ref[1:]) if a is not None and b]
        search = [r["compute"]["search"] for r in runs]
        total = [r["compute"]["total"] for r in runs]
        rows.append([method, *cells, _cell(gaps), _cell(search), _cell(total), len(runs)])
    for name in BASELINES:
        curves = [r["curves"][f"{name} (test)"] for r in exhaustive.values()]
        if curves:
            rows.append([name, *[_cell([c[i] for c in curves]) for i in range(len(budgets))], "", "", "", len(curves)])
    header = ["method", *[f"b={b:g}" for b in budgets], "gap to exhaustive % (b>1)", "search FTE", "total FTE", "seeds"]
    return markdown_table(header, rows, pad=False)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python examples/grouping_seeds.py FOLDER [FOLDER ...]")
    print(table([Path(p) for p in sys.argv[1:]]))
