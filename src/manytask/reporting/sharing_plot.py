"""The grouping that Selective Sharing formed, as a figure (matplotlib, Agg canvas only).

One row per epoch that was clustered, one column per task; the cell's colour is the branch the
task used after that epoch's merges, so tasks that were merged share a colour from that row on.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_grouping"]


def _branch_grid(summary: Mapping[str, Any]) -> tuple[list[str], list[int], np.ndarray]:
    """(tasks, epochs, grid of branch indices): the routing after each logged epoch."""
    epochs = summary.get("epochs") or []
    tasks = [t for ts in (epochs[0]["groups"] if epochs else summary["groups"]).values() for t in ts]
    branch_ids: dict[str, int] = {}
    rows = []
    for e in epochs or [{"epoch": 0, "groups": summary["groups"]}]:
        owner = {t: b for b, ts in e["groups"].items() for t in ts}
        rows.append([branch_ids.setdefault(owner[t], len(branch_ids)) for t in tasks])
    return tasks, [int(e["epoch"]) for e in epochs] or [0], np.asarray(rows)


def plot_grouping(summary: Mapping[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Draw :meth:`SelectiveSharing.summary` to ``path`` (PNG) and return the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks, epochs, grid = _branch_grid(summary)
    fig = Figure(figsize=(max(4.0, 0.55 * len(tasks) + 1.5), 0.45 * len(epochs) + 1.6), dpi=110,
                 layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(grid, cmap="tab20", vmin=0, vmax=19, aspect="auto", interpolation="nearest")
    for (i, j), b in np.ndenumerate(grid):
        ax.text(j, i, str(b), ha="center", va="center", fontsize=7, color="white")
    ax.set_xticks(range(len(tasks)), tasks, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(epochs)), [f"epoch {e}" for e in epochs], fontsize=8)
    lock = summary.get("lock_epoch")
    groups = [ts for ts in summary["groups"].values()]
    ax.set_title(title or f"{summary.get('criterion', '')}: {len(groups)} branches"
                 + (f", locked at epoch {lock}" if lock else ""), fontsize=9)
    out = Path(path)
    fig.savefig(out)
    return out
