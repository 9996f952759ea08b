"""Markdown tables: :func:`markdown_table` (every table of the package goes through it) and
:func:`metrics_table` of per-task metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the table writers stay importable without torch (``manytask select``)
    from manytask.tasks import Task


def fmt_metric(value: float | None, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    from manytask.tasks import METRICS

    spec = METRICS.get(metric)
    return spec.format(value) if spec is not None else f"{value:.4g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None, *,
                   pad: bool = True) -> str:
    """A GitHub-markdown table: the one writer of every markdown table of the package.

    Args:
        header: the column names.
        rows: the cells (``str()`` of each; a row shorter than the header is padded with empty
            cells).
        title: a ``## title`` line above the table.
        pad: pad the columns to a common width, for reading in a terminal; ``False`` writes
            ``| a | b |`` rows under a ``|---|---|`` rule.
    """
    n = len(header)
    cells = [[str(c) for c in header]] + [[str(c) for c in r] + [""] * (n - len(r)) for r in rows]
    widths = [max(len(row[i]) for row in cells) if pad else 0 for i in range(n)]
    line = lambda row: "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"  # noqa: E731
    out = [] if title is None else [f"## {title}", ""]
    out.append(line(cells[0]))
    out.append("|" + "|".join("-" * (w + 2) if pad else "---" for w in widths) + "|")
    out.extend(line(r) for r in cells[1:])
    return "\n".join(out)


def metrics_table(rows: Mapping[str, Mapping[str, Mapping[str, float]]], tasks: Sequence[Task],
                  title: str | None = None) -> str:
    """One row per model, one column per task's primary metric (— where a model lacks the task)."""
    header = ["model"] + [f"{t.name} ({t.primary_metric})" for t in tasks]
    body = []
    for label, metrics in rows.items():
        body.append([label] + [fmt_metric(metrics.get(t.name, {}).get(t.primary_metric), t.primary_metric)
                               for t in tasks])
    return markdown_table(header, body, title)
