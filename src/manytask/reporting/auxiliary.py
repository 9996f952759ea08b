"""Reports of main/auxiliary comparisons (Yim & Kim 2020, Fig. 2-4 and the class weights).

* :func:`auxiliary_table`: the paper's table from a ``manytask compare`` directory: for every
  approach (single task, linear sum, class-wise with each main task, Pareto MTL at each
  preference vector, …) the best validation loss of each task over the epochs (the paper
  "collected the best results from each method"), mean ± std (``ddof=1``) over the seeds.
* :func:`class_weight_history` / :func:`plot_class_weights`: the class weights of a
  ``classwise_aux`` run at the end of every epoch (from ``steps.jsonl``), and their plot.

    python -m manytask.reporting.auxiliary COMPARE_DIR [--fraction 1] [--plot OUT.png] [--table OUT.md]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from collections.abc import Sequence
from pathlib import Path

from manytask.atomic import atomic_write_text
from manytask.reporting.tables import markdown_table

STL_PREFIX = "stl-"


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def best_val_losses(run_dir: Path) -> dict[str, float]:
    """The lowest validation loss of each task over the epochs of one run."""
    best: dict[str, float] = {}
    for row in _read_jsonl(run_dir / "history.jsonl"):
        for key, value in row.items():
            m = re.fullmatch(r"val/(.+)/loss", key)
            if m and isinstance(value, (int, float)) and math.isfinite(value):
                best[m.group(1)] = min(best.get(m.group(1), math.inf), float(value))
    return best


def approach_label(run_name: str) -> str:
    """``classwise_aux-main=left`` → ``Class-wise (main: left)``; ``pareto_mtl-pref_index=2`` →
    ``Pareto MTL (0.71, 0.71)`` (two tasks, five preference vectors). Other hyperparameters in the
    directory name (``classwise_aux-main=left-alpha=0.005``) follow: ``Class-wise (main: left,
    alpha=0.005)``."""
    if run_name.startswith(STL_PREFIX):
        return "Single task"
    if run_name == "uniform":
        return "Linear sum"
    name, _, spec = run_name.partition("-")
    # ``compare`` names a run ``method-k1=v1-k2=v2``; a value may itself contain '-' (1e-08)
    params = dict(re.findall(r"(?:^|-)([A-Za-z_]\w*)=(.*?)(?=-[A-Za-z_]\w*=|$)", spec))

    def rest(*skip: str) -> str:
        return "".join(f", {k}={v}" for k, v in params.items() if k not in skip)

    if name == "classwise_aux":
        return f"Class-wise (main: {params.get('main', 'first task')}{rest('main')})"
    if name == "grad_cosine":
        return f"Gradient cosine (main: {params.get('main', 'first task')}{rest('main')})"
    if name == "pareto_mtl":
        from manytask.weighting.pareto_mtl import preference_vectors

        u = preference_vectors(2, int(params.get("n_prefs", 5)))[int(params.get("pref_index", 0))]
        extra = rest("n_prefs", "pref_index")
        return f"Pareto MTL ({u[0]:.2f}, {u[1]:.2f})" + (f" [{extra[2:]}]" if extra else "")
    return run_name


def collect(compare_dir: Path, fraction: str = "1") -> tuple[list[str], dict[str, dict[str, list[float]]]]:
    """Tasks and ``{approach: {task: [best val loss per seed]}}`` (approaches in run order)."""
    rows: dict[str, dict[str, list[float]]] = {}
    tasks: list[str] = []
    for seed_dir in sorted((compare_dir / f"f{fraction}").glob("s*")):
        runs = sorted(seed_dir.iterdir(), key=lambda p: p.stat().st_mtime)
        for run in runs:
            if not (run / "summary.json").is_file():
                continue
            label = approach_label(run.name)
            for task, loss in best_val_losses(run).items():
                tasks.append(task)
                rows.setdefault(label, {}).setdefault(task, []).append(loss)
    return list(dict.fromkeys(tasks)), rows


def _cell(values: Sequence[float]) -> str:
    if not values:
        return ""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {statistics.stdev(values):.4f}"


def auxiliary_table(compare_dir: str | Path, fraction: str = "1") -> str:
    """The markdown table (see the module docstring); the seed count per cell is in the header."""
    tasks, rows = collect(Path(compare_dir), fraction)
    n = max((len(v) for r in rows.values() for v in r.values()), default=0)
    table = markdown_table(["approach", *(f"{t} val loss" for t in tasks)],
                           [[label, *(_cell(cells.get(t, [])) for t in tasks)] for label, cells in rows.items()],
                           pad=False)
    return f"best validation loss per task, mean ± std over {n} seeds\n\n{table}\n"


def class_weight_history(run_dir: str | Path) -> dict[str, dict[str, list[float]]]:
    """``{aux task: {class: [weight at the end of epoch 1, 2, …]}}`` of a ``classwise_aux`` run."""
    last: dict[int, dict[str, object]] = {}
    for row in _read_jsonl(Path(run_dir) / "steps.jsonl"):
        last[int(row["epoch"])] = row  # type: ignore[call-overload]
    out: dict[str, dict[str, list[float]]] = {}
    for epoch in sorted(last):
        for key, value in last[epoch].items():
            if key.startswith("cw/"):
                _, task, cls = key.split("/", 2)
                out.setdefault(task, {}).setdefault(cls, []).append(float(value))  # type: ignore[arg-type]
    return out


def plot_class_weights(runs: dict[str, str | Path], path: str | Path, class_names: dict[str, list[str]] | None = None) -> Path:
    """One panel per ``{title: run directory}``: every class weight against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(5.2 * len(runs), 3.8), squeeze=False)
    for ax, (title, run) in zip(axes[0], runs.items()):
        for task, classes in class_weight_history(run).items():
            names = (class_names or {}).get(task)
            for cls, ws in classes.items():
                label = names[int(cls)] if names and int(cls) < len(names) else cls
                ax.plot(range(1, len(ws) + 1), ws, marker=".", label=f"{label}")
            ax.set_ylabel(f"class weight ({task})")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Main/auxiliary comparison table and class-weight plot")
    ap.add_argument("compare_dir")
    ap.add_argument("--fraction", default="1")
    ap.add_argument("--table", default=None, help="write the markdown table here")
    args = ap.parse_args(argv)
    text = auxiliary_table(args.compare_dir, args.fraction)
    print(text)
    if args.table:
        atomic_write_text(args.table, text)


if __name__ == "__main__":
    main()
