"""Total loss against inference budget, one line per method (Standley et al. 2020, Figure 2).

Uses matplotlib's object API with the Agg canvas directly, so it never touches pyplot's
global state or needs a display.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_budget_curves"]

_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*", "h", "<", ">")


def plot_budget_curves(
    curves: Mapping[str, Sequence[float | None]],
    budgets: Sequence[float],
    path: str | os.PathLike[str],
    *,
    title: str = "Performance vs compute",
    xlabel: str = "Inference time cost (budget)",
    ylabel: str = "Total loss (lower is better)",
    dpi: int = 120,
) -> Path:
    """Plot named curves ``{name: [loss at budgets[0], ...]}`` and save them as a PNG.

    ``None`` or NaN marks a budget where a method has no value (e.g. infeasible); the line
    connects the remaining points, as in the paper's figures.

    Returns the written path.
    """
    if not curves:
        raise ValueError("no curves to plot")
    fig = Figure(figsize=(7.0, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, (name, ys) in enumerate(curves.items()):
        if len(ys) != len(budgets):
            raise ValueError(f"curve {name!r} has {len(ys)} values for {len(budgets)} budgets")
        pts = [(b, y) for b, y in zip(budgets, ys) if y is not None and math.isfinite(y)]
        if not pts:
            continue
        xs, vs = zip(*pts)
        ax.plot(xs, vs, marker=_MARKERS[i % len(_MARKERS)], markersize=5, linewidth=1.5, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.4)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", frameon=False)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, format="png")
    return out
