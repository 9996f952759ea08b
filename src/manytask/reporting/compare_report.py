"""The files of a comparison (``manytask compare``): ``table.md``, ``runs.csv``,
``summary.csv``, ``compare.json``, ``metrics.png`` and ``tsne.png``.

Everything here formats or writes what the aggregation core (:mod:`manytask.evaluation.aggregate`)
computed; every file is written atomically (:mod:`manytask.atomic`), every markdown table by
:func:`manytask.reporting.tables.markdown_table`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from manytask.atomic import atomic_write_csv, atomic_write_json, atomic_write_text
from manytask.config import ExperimentConfig
from manytask.evaluation.aggregate import SummaryCell, mean_seconds, primary_value
from manytask.evaluation.budget import budget_note
from manytask.evaluation.method_spec import STL, display_name
from manytask.evaluation.records import DIVERGED, RunRecord, RunSpec
from manytask.reporting.tables import markdown_table
from manytask.tasks import METRICS, Task

__all__ = ["RUNS_HEADER", "SUMMARY_HEADER", "CompareReport", "format_table", "plot_tsne", "write_compare_report"]

RUNS_HEADER = ("fraction", "seed", "method", "run", "task", "metric", "value", "best_epoch", "epochs_run",
               "train_seconds", "seconds", "status", "run_dir")
SUMMARY_HEADER = ("fraction", "method", "task", "metric", "mean", "std", "n", "mean_train_seconds")


def frac_label(fraction: float) -> str:
    """``0.25`` → ``25%``."""
    return f"{100 * fraction:g}%"


def metric_label(metric: str) -> str:
    """The metric as a column shows it: ``acc %``, ``AUC %``, ``MSE``, …"""
    spec = METRICS.get(metric)
    return spec.label if spec is not None else metric


def _percent(metric: str) -> bool:
    """Whether ``metric`` is shown as a percentage (:data:`manytask.tasks.METRICS`)."""
    spec = METRICS.get(metric)
    return spec is not None and spec.percent


def _decimals(value: float) -> int:
    """Decimals that show ``value`` with 4 significant digits (at least 2)."""
    if value == 0 or not math.isfinite(value):
        return 4
    return max(2, 3 - int(math.floor(math.log10(abs(value)))))


def _fmt(value: float, metric: str, digits: int | None = None) -> str:
    if value is None or math.isnan(value):
        return "—"
    if _percent(metric):
        return f"{100 * value:.2f}"
    return f"{value:.{_decimals(value) if digits is None else digits}f}"


def _cell_text(c: SummaryCell, seeds: int) -> str:
    if c.n == 0:
        return "—"
    digits = None if _percent(c.metric) else _decimals(c.mean)
    text = _fmt(c.mean, c.metric, digits)
    if not math.isnan(c.std):
        text += f" ± {_fmt(c.std, c.metric, digits)}"
    if c.n < seeds:
        text += f" (n={c.n})"
    return text


def format_table(cells: Sequence[SummaryCell], deltas: Mapping[str, Mapping[float, float]],
                 tasks: Sequence[Task], methods: Sequence[str], fractions: Sequence[float], seeds: int,
                 seconds: Mapping[str, float] | None = None, title: str | None = None) -> str:
    """The markdown table of Gong et al. (Tables 1–2): rows = approaches, columns = task ×
    fraction (mean ± std over seeds), then Δm per fraction and the mean training time per run."""
    index = {(c.fraction, c.method, c.task): c for c in cells}
    header = ["approach"]
    header += [f"{t.name} {metric_label(t.primary_metric)} @{frac_label(f)}" for t in tasks for f in fractions]
    show_dm = bool(deltas)
    if show_dm:
        header += [f"Δm % @{frac_label(f)}" for f in fractions]
    if seconds is not None:
        header.append("train s/run")
    rows = []
    for m in methods:
        row = [display_name(m)]
        row += [_cell_text(index[(f, m, t.name)], seeds) for t in tasks for f in fractions]
        if show_dm:
            if m == STL:
                row += ["0 (ref)"] * len(fractions)
            else:
                row += ["—" if math.isnan(deltas[m][f]) else f"{deltas[m][f]:+.2f}" for f in fractions]
        if seconds is not None:
            s = seconds.get(m, math.nan)
            row.append("—" if math.isnan(s) else f"{s:.1f}")
        rows.append(row)
    return markdown_table(header, rows, title)


@dataclass
class CompareReport:
    """What the report files show: the runs, their aggregation and the comparison's settings.

    ``settings`` holds the epochs scaling, the t-SNE settings and the wall time, as
    ``compare.json`` records them.
    """

    cfg: ExperimentConfig
    methods: Sequence[str]
    seeds: Sequence[int]
    fractions: Sequence[float]
    epochs: Mapping[float, int]
    records: Sequence[RunRecord]
    cells: Sequence[SummaryCell]
    deltas: Mapping[str, Mapping[float, float]]
    seconds: Mapping[str, float]
    table: str
    settings: Mapping[str, Any]


def _table_notes(rep: CompareReport, tasks: Sequence[Task]) -> list[str]:
    metrics = ", ".join(sorted({metric_label(t.primary_metric) for t in tasks}))
    return [
        "",
        f"Cells: test {metrics} at the epoch with the best validation score, mean ± sample std (ddof=1) over "
        f"{len(rep.seeds)} seed(s) ({', '.join(map(str, rep.seeds))}); (n=k) marks cells where runs diverged.",
        "Δm: mean over tasks of the relative difference to single-task learning, in %, signed so that "
        "positive = better than STL (Maninis et al. 2019).",
        "Epochs per fraction: " + ", ".join(f"{frac_label(f)}: {rep.epochs[f]}" for f in rep.fractions)
        + f" ({rep.settings['epochs_scaling']} scaling). train s/run: mean training time of one run.",
        *([note] if (note := budget_note(rep.records)) else []),
    ]


def runs_rows(records: Sequence[RunRecord], tasks: Sequence[Task]) -> list[list[Any]]:
    """``runs.csv``: one row per run and task (no value for a diverged run)."""
    by_task = {t.name: t for t in tasks}
    rows = []
    for r in records:
        for name in r.spec.tasks:
            t = by_task[name]
            value = primary_value(r, t) if r.status != DIVERGED else math.nan
            rows.append([r.spec.fraction, r.spec.seed, r.spec.method, r.spec.name, name, t.primary_metric, value,
                         r.best_epoch, r.epochs_run, r.train_seconds, r.seconds, r.status, str(r.spec.path)])
    return rows


def summary_rows(rep: CompareReport) -> list[list[Any]]:
    """``summary.csv``: one row per cell, then one Δm row per method and fraction."""
    rows: list[list[Any]] = [[c.fraction, c.method, c.task, c.metric, c.mean, c.std, c.n,
                              mean_seconds(rep.records, c.method, c.fraction)] for c in rep.cells]
    for m, per in rep.deltas.items():
        for f, v in per.items():
            n = min((c.n for c in rep.cells if c.fraction == f and c.method in (m, STL)), default=0)
            rows.append([f, m, "(all)", "delta_m_percent", v, math.nan, n, mean_seconds(rep.records, m, f)])
    return rows


def _plot_metrics(rep: CompareReport, tasks: Sequence[Task], path: Path) -> Path:
    from manytask.reporting.plots import plot_metric_vs_fraction

    series: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    ylabels: dict[str, str] = {}
    for t in tasks:
        scale = 100.0 if _percent(t.primary_metric) else 1.0
        ylabels[t.name] = f"test {metric_label(t.primary_metric)}"
        series[t.name] = {
            display_name(m): [(c.fraction, c.mean * scale, c.std * scale) for c in rep.cells
                              if c.method == m and c.task == t.name]
            for m in rep.methods
        }
    plot_metric_vs_fraction(series, path, ylabels=ylabels,
                            title=f"{rep.cfg.name}: mean ± std over {len(rep.seeds)} seed(s)")
    return path


def _run_entry(r: RunRecord) -> dict[str, Any]:
    s = r.spec
    return {"fraction": s.fraction, "seed": s.seed, "method": s.method, "run": s.name, "tasks": list(s.tasks),
            "epochs": s.epochs, "status": r.status, "best_epoch": r.best_epoch, "epochs_run": r.epochs_run,
            "train_seconds": r.train_seconds, "seconds": r.seconds, "test": r.test, "message": r.message,
            "run_dir": str(s.path)}


def compare_document(rep: CompareReport, files: Mapping[str, Path]) -> dict[str, Any]:
    """``compare.json``: everything (config, plan, settings, cells, Δm, every run, the table)."""
    return {
        "name": rep.cfg.name,
        "config": rep.cfg.to_dict(),
        "methods": list(rep.methods),
        "seeds": list(rep.seeds),
        "fractions": list(rep.fractions),
        "epochs": {f"{f:g}": e for f, e in rep.epochs.items()},
        **dict(rep.settings),
        "std_ddof": 1,
        "summary": [c.__dict__ for c in rep.cells],
        "delta_m_percent": {m: {f"{f:g}": v for f, v in per.items()} for m, per in rep.deltas.items()},
        "mean_train_seconds_per_run": dict(rep.seconds),
        "runs": [_run_entry(r) for r in rep.records],
        "table_markdown": rep.table,
        "budget_note": budget_note(rep.records),
        "files": {k: str(v) for k, v in files.items()},
    }


def write_compare_report(rep: CompareReport, out: Path) -> dict[str, Path]:
    """Write ``table.md``, ``runs.csv``, ``summary.csv``, ``metrics.png`` and ``compare.json``
    into ``out``; returns their paths by key (``table``, ``runs_csv``, ``summary_csv``, ``plot``,
    ``json``)."""
    tasks = rep.cfg.build_tasks()
    files = {"table": out / "table.md", "runs_csv": out / "runs.csv", "summary_csv": out / "summary.csv",
             "plot": out / "metrics.png", "json": out / "compare.json"}
    atomic_write_text(files["table"], rep.table + "\n" + "\n".join(_table_notes(rep, tasks)) + "\n")
    atomic_write_csv(files["runs_csv"], RUNS_HEADER, runs_rows(rep.records, tasks))
    atomic_write_csv(files["summary_csv"], SUMMARY_HEADER, summary_rows(rep))
    _plot_metrics(rep, tasks, files["plot"])
    atomic_write_json(files["json"], compare_document(rep, files))
    return files


def plot_tsne(cfg: ExperimentConfig, specs: Sequence[RunSpec], out: Path, label: str) -> Path | None:
    """``tsne.png``: t-SNE of the shared representation saved by the runs with snapshots
    (rows = runs, columns = epochs); None when no run saved any."""
    from manytask.evaluation.embeddings import tsne_grid
    from manytask.reporting.plots import plot_tsne_grid

    chosen = [s for s in specs if s.tsne_epochs]
    if not chosen:
        return None
    run_dirs = {(display_name(STL) + f" ({s.tasks[0]})" if s.method == STL else display_name(s.method)): s.path
                for s in chosen}
    grid = tsne_grid(run_dirs, chosen[0].tsne_epochs, seed=0)
    return plot_tsne_grid(grid, out / "tsne.png",
                          label_name=f"{label} digit" if cfg.data.kind == "multimnist" else label,
                          title=f"{cfg.name}: t-SNE of the shared representation "
                                f"(fraction {chosen[0].fraction:g}, seed {chosen[0].seed})")
