"""The grouping that Selective Sharing formed, as a figure (matplotlib, Agg canvas only).

One row for the start and one per epoch that was clustered, one column per task; the cell's
colour (and number) is the branch the task used after that epoch's merges, so tasks that were
merged share a colour from that row on.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_grouping"]


def _branch_grid(summary: Mapping[str, Any]) -> tuple[list[str], list[str], np.ndarray]:
    """(tasks, row labels, grid of branch indices): the routing at the start and after each
    logged epoch; a branch keeps its colour index from the start on."""
    start = dict(summary.get("routing_start") or {t: b for b, ts in summary["groups"].items() for t in ts})
    tasks = list(start)
    branch_ids: dict[str, int] = {}
    for t in tasks:
        branch_ids.setdefault(start[t], len(branch_ids))
    rows, labels = [[branch_ids[start[t]] for t in tasks]], ["start"]
    for e in summary.get("epochs") or []:
        owner = {t: b for b, ts in e["groups"].items() for t in ts}
        rows.append([branch_ids.setdefault(owner[t], len(branch_ids)) for t in tasks])
        labels.append(f"epoch {e['epoch']}")
    return tasks, labels, np.asarray(rows)


def plot_grouping(summary: Mapping[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Draw :meth:`SelectiveSharing.summary` to ``path`` (PNG) and return the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks, rows, grid = _branch_grid(summary)
    fig = Figure(figsize=(max(4.0, 0.55 * len(tasks) + 1.5), 0.45 * len(rows) + 1.6), dpi=110,
                 layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(grid, cmap="tab20", vmin=0, vmax=19, aspect="auto", interpolation="nearest")
    for (i, j), b in np.ndenumerate(grid):
        ax.text(j, i, str(b), ha="center", va="center", fontsize=7, color="white")
    ax.set_xticks(range(len(tasks)), tasks, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    lock = summary.get("lock_epoch")
    groups = [ts for ts in summary["groups"].values()]
    ax.set_title(title or f"{summary.get('criterion', '')}: {len(groups)} branches"
                 + (f", locked at epoch {lock}" if lock else ""), fontsize=9)
    out = Path(path)
    fig.savefig(out)
    return out
