"""Plain-text / markdown tables of per-task metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from manytask.tasks import METRICS, Task


def fmt_metric(value: float | None, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    spec = METRICS.get(metric)
    return spec.format(value) if spec is not None else f"{value:.4g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None) -> str:
    """A GitHub-markdown table, columns padded for reading in a terminal."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [] if title is None else [f"## {title}", ""]
    out.append(line(header))
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out.extend(line(r) for r in rows)
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
