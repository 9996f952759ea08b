"""A budget guard for comparisons: were the runs still improving when they stopped?

A comparison of methods at a fixed number of epochs ranks methods only if the runs had time to
get somewhere. When the epoch with the best validation score is the last epoch of the schedule
for most runs of a training fraction, the models were still improving when training stopped:
the table then measures early progress (which favours whatever takes larger steps), not how
well each method trains. :func:`budget_note` says so in one footnote.

Pure functions of the run records; the report writer adds the footnote to ``table.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from manytask.evaluation.records import DIVERGED, RunRecord

__all__ = ["LastEpochCount", "budget_note", "last_epoch_counts"]

#: the share of runs whose best epoch is the last one above which the footnote is written
LAST_EPOCH_SHARE = 0.5


@dataclass(frozen=True)
class LastEpochCount:
    """For one training fraction: of ``runs`` finished runs, ``last`` chose their last epoch
    (of ``epochs``)."""

    fraction: float
    epochs: int
    runs: int
    last: int

    @property
    def share(self) -> float:
        return self.last / self.runs if self.runs else 0.0


def last_epoch_counts(records: Sequence[RunRecord]) -> list[LastEpochCount]:
    """Per fraction (largest first): how many finished runs had their best validation epoch at
    the end of their schedule. Diverged runs and runs without a best epoch are left out."""
    by_fraction: dict[float, list[RunRecord]] = {}
    for r in records:
        if r.status == DIVERGED or r.best_epoch is None:
            continue
        by_fraction.setdefault(r.spec.fraction, []).append(r)
    out = []
    for f in sorted(by_fraction, reverse=True):
        runs = by_fraction[f]
        last = sum(1 for r in runs if int(r.best_epoch or 0) >= r.spec.epochs)
        out.append(LastEpochCount(f, max(r.spec.epochs for r in runs), len(runs), last))
    return out


def budget_note(records: Sequence[RunRecord], share: float = LAST_EPOCH_SHARE) -> str | None:
    """The footnote for a comparison table, or None when no fraction needs one: for each
    fraction where more than ``share`` of the runs chose their last epoch."""
    flagged = [c for c in last_epoch_counts(records) if c.runs and c.share > share]
    if not flagged:
        return None
    parts = [f"{100 * c.fraction:g}%: {c.last} of {c.runs} runs chose epoch {c.epochs} of {c.epochs}"
             for c in flagged]
    return ("Budget: the best validation epoch was the last one in most runs (" + "; ".join(parts)
            + "). These runs were still improving when training stopped, so the table compares "
            "under-trained models, not the methods at their best; raise training.epochs (or the data) "
            "before reading it as a ranking of methods.")
