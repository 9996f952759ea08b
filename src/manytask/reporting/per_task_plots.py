"""Figures of the gallery study (Gutelman & Levin 2020), drawn off-screen with Agg.

* :func:`plot_relative_errors` — Figure 5: per training task, the multi-task model's relative
  test error against its single-task model, ``(e_MTL - e_STL) / e_STL``, one bar per task and
  weighting method, tasks sorted by the first method's value, bars coloured by task kind
  (hatched for the second method). Below zero: the multi-task model is better.
* :func:`plot_balance_vs_benefit` — Figure 6: binary tasks, class balance (minority share) on
  x against the relative error on y, one marker and least-squares line per method, with
  Pearson's r and p in the legend.
* :func:`plot_heldout` — Table 2 as curves: held-out test accuracy against the label fraction,
  one line per approach with ±std (over seeds) error bars.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from manytask.evaluation.per_task import TaskComparison
from manytask.reporting.plots import _figure, _save

__all__ = ["KIND_COLOURS", "plot_balance_vs_benefit", "plot_heldout", "plot_relative_errors"]

KIND_COLOURS = {"binary": "tab:blue", "multiclass": "tab:orange", "regression": "tab:green"}
_MARKERS = ("o", "s", "^", "D")


def plot_relative_errors(rows: Mapping[str, Sequence[TaskComparison]], path: str | Path, *,
                         title: str = "Multi-task vs single-task: relative test error") -> Path:
    """Figure 5 from ``{method: compare_tasks(...)}`` (see the module docstring)."""
    methods = list(rows)
    if not methods or not rows[methods[0]]:
        raise ValueError("plot_relative_errors: no tasks to plot")
    order = [r.task for r in sorted(rows[methods[0]], key=lambda r: r.relative)]
    by = {m: {r.task: r for r in rows[m]} for m in methods}
    kinds = {r.task: r.kind for r in rows[methods[0]]}
    fig = _figure(max(6.0, 0.32 * len(order) + 2), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(methods)
    x = np.arange(len(order))
    for j, m in enumerate(methods):
        vals = [100 * by[m][t].relative if t in by[m] else math.nan for t in order]
        ax.bar(x - 0.4 + width * (j + 0.5), vals, width, color=[KIND_COLOURS.get(kinds[t], "grey") for t in order],
               hatch=None if j == 0 else "//", edgecolor="black", linewidth=0.4, label=m)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, order, rotation=75, ha="right", fontsize=7)
    ax.set_ylabel("relative error increase, %")
    ax.set_title(title, fontsize=10)
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=k) for k, c in KIND_COLOURS.items() if k in kinds.values()]
    handles += [Patch(facecolor="white", edgecolor="black", hatch=None if j == 0 else "//", label=m)
                for j, m in enumerate(methods)]
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    return _save(fig, path)


def plot_balance_vs_benefit(points: Mapping[str, Mapping[str, Any]], path: str | Path, *,
                            title: str = "Class balance vs multi-task benefit (binary tasks)") -> Path:
    """Figure 6 from ``{method: balance_vs_benefit(...)}`` (keys ``balance``,
    ``relative_error``, ``r``, ``p``)."""
    fig = _figure(5.2, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    for j, (m, pts) in enumerate(points.items()):
        bx = np.asarray(pts["balance"], dtype=float)
        ry = 100 * np.asarray(pts["relative_error"], dtype=float)
        r, p = pts.get("r", math.nan), pts.get("p", math.nan)
        colour = f"C{j}"
        ax.scatter(bx, ry, marker=_MARKERS[j % len(_MARKERS)], color=colour, s=22,
                   label=f"{m}: r = {r:.2f}, p = {p:.2g}")
        if len(bx) >= 2 and np.ptp(bx) > 0:
            slope, icpt = np.polyfit(bx, ry, 1)
            xs = np.linspace(bx.min(), bx.max(), 10)
            ax.plot(xs, slope * xs + icpt, color=colour, linewidth=1)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("class balance (minority share of training labels)")
    ax.set_ylabel("relative error increase vs single-task, %")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_heldout(table: Mapping[str, Any], path: str | Path, *,
                 title: str = "Held-out task: test accuracy vs share of its labels") -> Path:
    """Accuracy curves from :func:`manytask.evaluation.heldout.heldout_table`."""
    fig = _figure(5.6, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    fr = list(table["fractions"])
    for j, row in enumerate(table["rows"]):
        cells = [row["cells"].get(f"{f:g}") for f in fr]
        mean = [c["mean"] if c else math.nan for c in cells]
        std = [c["std"] if c else math.nan for c in cells]
        ax.errorbar([100 * f for f in fr], mean, yerr=std, marker=_MARKERS[j % len(_MARKERS)],
                    capsize=3, label=row["label"])
    ax.set_xlabel("share of the held-out task's training labels, %")
    ax.set_ylabel("test accuracy")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)
