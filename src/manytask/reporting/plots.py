"""Plots (matplotlib, drawn off-screen with the Agg canvas; pyplot is never imported, so the
caller's backend is left alone).

* :func:`plot_metric_vs_fraction` — per task, a metric against the training-data fraction,
  one line with ±std error bars per approach (the sweep of Gong et al. 2019, Tables 1–2).
* :func:`plot_tsne_grid` — a grid of 2-D projections (rows = runs, columns = epochs),
  coloured by a class label (Gong et al. 2019, Figure 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_metric_vs_fraction", "plot_tsne_grid"]

#: One point of a curve: (training fraction, mean, std). ``std`` may be NaN (one seed).
Point = tuple[float, float, float]


def _figure(width: float, height: float):  # noqa: ANN202 - matplotlib types
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:  # noqa: ANN001
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, bbox_inches="tight")
    return p


def plot_metric_vs_fraction(series: Mapping[str, Mapping[str, Sequence[Point]]], path: str | Path, *,
                            ylabels: Mapping[str, str] | None = None, title: str | None = None) -> Path:
    """Per task, the metric against the training fraction, one line per approach.

    Args:
        series: ``{task: {approach: [(fraction, mean, std), ...]}}``; points are sorted by
            fraction; a NaN std draws no error bar, a NaN mean draws no point.
        path: the PNG to write.
        ylabels: ``{task: axis label}`` (e.g. ``"test accuracy (%)"``).
        title: the figure title.

    Returns:
        ``path``. The x axis is logarithmic when the fractions span more than a factor of 3.
    """
    tasks = list(series)
    n = max(1, len(tasks))
    fig = _figure(4.6 * n, 3.8)
    axes = [fig.add_subplot(1, n, i + 1) for i in range(n)]
    for ax, task in zip(axes, tasks):
        fractions = {float(p[0]) for points in series[task].values() for p in points}
        log_x = bool(fractions) and max(fractions) / min(fractions) > 3
        span = (max(fractions) - min(fractions)) if fractions else 0.0
        n_lines = len(series[task])
        for j, (approach, points) in enumerate(series[task].items()):
            pts = sorted((float(f), float(m), float(s)) for f, m, s in points)
            xs = np.array([p[0] for p in pts])
            ys = np.array([p[1] for p in pts])
            es = np.array([0.0 if math.isnan(p[2]) else p[2] for p in pts])
            # dodge the approaches sideways a little so that their error bars do not overlap
            shift = 0.025 * (j - (n_lines - 1) / 2)
            xs = xs * (1.0 + shift) if log_x else xs + shift * max(span, 0.1)
            marker = "s" if approach.lower().startswith("single") else "o"
            ax.errorbar(xs, ys, yerr=es, marker=marker, capsize=3, linewidth=1.4, markersize=4,
                        label=approach, linestyle="--" if marker == "s" else "-", zorder=3 + j)
        if log_x:
            ax.set_xscale("log")
        ticks = sorted(fractions)
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{100 * f:g}%" for f in ticks])
        ax.minorticks_off()
        ax.set_xlabel("training data")
        ax.set_ylabel((ylabels or {}).get(task, task))
        ax.set_title(task)
        ax.grid(True, alpha=0.3)
    if tasks:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), frameon=False, fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_tsne_grid(grid: Mapping[str, Mapping[int, tuple[np.ndarray, np.ndarray] | None]],
                   path: str | Path, *, label_name: str = "label", title: str | None = None) -> Path:
    """A grid of 2-D scatter plots: rows = runs, columns = epochs, colour = class label.

    Args:
        grid: ``{row label: {epoch: (xy (n×2), labels (n,)) or None}}``; ``None`` draws an
            empty panel marked "missing". The columns are the union of the epochs.
        path: the PNG to write.
        label_name: what the colours mean (legend title).
        title: the figure title.
    """
    rows = list(grid)
    epochs = sorted({int(e) for r in grid.values() for e in r})
    nr, nc = max(1, len(rows)), max(1, len(epochs))
    fig = _figure(2.8 * nc + 1.2, 2.8 * nr + 0.4)
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    classes: set[int] = set()
    for i, row in enumerate(rows):
        for j, epoch in enumerate(epochs):
            ax = fig.add_subplot(nr, nc, i * nc + j + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            cell = grid[row].get(epoch)
            if cell is None:
                ax.text(0.5, 0.5, "missing", ha="center", va="center", transform=ax.transAxes, color="gray")
            else:
                xy, lab = cell
                lab = np.asarray(lab).astype(int)
                classes.update(np.unique(lab).tolist())
                ax.scatter(xy[:, 0], xy[:, 1], c=[cmap(int(v) % 10) for v in lab], s=4, linewidths=0)
            if i == 0:
                ax.set_title(f"epoch {epoch}")
            if j == 0:
                ax.set_ylabel(row)
    if classes:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], marker="o", linestyle="", color=cmap(c % 10), label=str(c)) for c in sorted(classes)]
        fig.legend(handles=handles, title=label_name, loc="outside right center", frameon=False)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
