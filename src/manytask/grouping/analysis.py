"""Task-relationship analyses of a candidate table (Standley et al., ICML 2020, section 4).

All numbers are relative performances in percent, positive = better (lower loss):

    rel(A | B) = (L_alone(A) - L_{A,B}(A)) / L_alone(A) * 100

* :func:`pairwise_relative_performance` - Tables 2, 5, 6, 7 of the paper: row = the task
  trained *with*, column = the task whose performance is measured; ``L_{A,B}(A)`` is A's loss
  in the two-task network {A, B} and ``L_alone(A)`` the loss of A's single-task network of
  half the pair network's cost (the 1/2-SNT network, equal total compute).
* :func:`affinity` - Table 3: ``(P + P^T) / 2``, the mean change of both tasks of a pair.
* :func:`multitask_vs_independent` - Table 1: for each group size k, the mean relative
  performance of the tasks of k-task networks against single-task networks of the same size
  (1 SNT each) and of 1/k of the size (same total compute).
* :func:`pearson_r` - correlation of two such tables (the paper compares settings).
* :func:`describe_selection` - a chosen grouping in words.

The paper computes Tables 1-7 on the *test* losses: pass the table read from the test file
(``examples/standley/results_test.txt``), or ``kind="test"`` for a table holding both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from manytask.errors import ConfigError
from manytask.grouping.selection import Selection
from manytask.grouping.table import Candidate, CandidateTable, LossKind

__all__ = [
    "TaskMatrix",
    "affinity",
    "describe_selection",
    "multitask_vs_independent",
    "pairwise_relative_performance",
    "pearson_r",
]


@dataclass(frozen=True)
class TaskMatrix:
    """A task x task table; ``values[i, j]`` is row ``tasks[i]``, column ``tasks[j]``.

    NaN marks undefined cells (the diagonal, missing networks).
    """

    tasks: tuple[str, ...]
    values: np.ndarray
    title: str = ""

    def __getitem__(self, key: tuple[str, str]) -> float:
        row, col = key
        return float(self.values[self.tasks.index(row), self.tasks.index(col)])

    def row_means(self) -> np.ndarray:
        """Mean of each row over its defined cells (the paper's "Average" column)."""
        return np.array([_nanmean(r) for r in self.values])

    def col_means(self) -> np.ndarray:
        """Mean of each column over its defined cells (the paper's "Average" row)."""
        return np.array([_nanmean(c) for c in self.values.T])

    def to_markdown(self, *, averages: bool = True, digits: int = 2, corner: str = "") -> str:
        """A markdown table with percent cells ("—" for undefined)."""

        def cell(x: float) -> str:
            return "—" if not math.isfinite(x) else f"{x:.{digits}f}%"

        from manytask.reporting.tables import markdown_table

        head = [corner] + list(self.tasks) + (["Average"] if averages else [])
        rm = self.row_means()
        rows = [[t] + [cell(x) for x in self.values[i]] + ([cell(rm[i])] if averages else [])
                for i, t in enumerate(self.tasks)]
        if averages:
            rows.append(["Average"] + [cell(x) for x in self.col_means()] + [cell(_nanmean(self.values.ravel()))])
        return markdown_table(head, rows, pad=False)


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def _rel(alone: float, other: float) -> float:
    return (alone - other) / alone * 100.0


def _single_losses(table: CandidateTable, kind: LossKind, cost: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for c in table:
        if len(c.tasks) == 1 and math.isclose(c.cost, cost, rel_tol=1e-9, abs_tol=1e-12):
            (t,) = c.tasks
            lv = c.losses(kind)
            if t in lv:
                out[t] = lv[t]
    return out


def _common_cost(cands: Sequence[Candidate], what: str) -> float:
    costs = sorted({c.cost for c in cands})
    if not costs:
        raise ConfigError(f"no {what} in the table")
    if len(costs) > 1:
        raise ConfigError(f"{what} have several costs {costs}; pass the one to use")
    return costs[0]


def pairwise_relative_performance(
    table: CandidateTable,
    *,
    kind: LossKind = "val",
    pair_cost: float | None = None,
    single_cost: float | None = None,
) -> TaskMatrix:
    """The paper's Table 2: how much each task gains from being trained with each other task.

    ``P[B, A] = (L_alone(A) - L_{A,B}(A)) / L_alone(A) * 100`` where ``L_{A,B}`` is the
    two-task network {A, B} of cost ``pair_cost`` (default: the cost shared by all two-task
    networks) and ``L_alone`` the single-task network of cost ``single_cost`` (default
    ``pair_cost / 2``). Rows = "trained with", columns = "relative performance on".
    On ``examples/standley/results_test.txt`` this reproduces Table 2 of the paper (e.g.
    SemSeg trained with Depth: +4.17%).
    """
    pairs = [c for c in table if len(c.tasks) == 2]
    pc = _common_cost(pairs, "two-task networks") if pair_cost is None else float(pair_cost)
    sc = pc / 2 if single_cost is None else float(single_cost)
    alone = _single_losses(table, kind, sc)
    idx = {t: i for i, t in enumerate(table.tasks)}
    P = np.full((len(table.tasks), len(table.tasks)), np.nan)
    for c in pairs:
        if not math.isclose(c.cost, pc, rel_tol=1e-9, abs_tol=1e-12):
            continue
        a, b = sorted(c.tasks, key=idx.__getitem__)
        lv = c.losses(kind)
        for on, wth in ((a, b), (b, a)):
            if on in alone and on in lv:
                P[idx[wth], idx[on]] = _rel(alone[on], lv[on])
    return TaskMatrix(table.tasks, P, title="relative performance (row: trained with)")


def affinity(pairwise: TaskMatrix) -> TaskMatrix:
    """The paper's Table 3: ``(P + P^T) / 2``, symmetric, NaN on the diagonal."""
    A = (pairwise.values + pairwise.values.T) / 2
    np.fill_diagonal(A, np.nan)
    return TaskMatrix(pairwise.tasks, A, title="multi-task affinity")


def multitask_vs_independent(
    table: CandidateTable,
    *,
    kind: LossKind = "val",
    full_cost: float = 1.0,
    aggregate: Literal["per_task", "total"] = "per_task",
) -> list[dict[str, float | int | None]]:
    """The paper's Table 1: k-task networks against single-task networks, for each k.

    For every k-task network ``N`` of cost ``full_cost`` and its tasks ``t``:

    * ``each`` ("1-SNT each"): against single-task networks of cost ``full_cost`` each
      (k times the compute);
    * ``total`` ("1-SNT total"): against single-task networks of cost ``full_cost / k``
      (the same total compute); ``None`` when the table lacks those sizes - Standley's
      released tables only have 1/2-size singles, so this is defined for k = 1 and 2 only.

    ``aggregate="per_task"`` (default) averages ``rel(t)`` over all (network, task) pairs,
    which is what reproduces the paper's Table 1 from ``results_test.txt`` (-7.56, -7.23,
    -10.69, -19.00 and -1.15 for k = 2); ``"total"`` averages over networks the relative total
    loss ``(sum_t L_single(t) - sum_t L_N(t)) / sum_t L_single(t) * 100``.

    Returns one dict per k: ``k``, ``n_networks``, ``each``, ``total``.
    """
    if aggregate not in ("per_task", "total"):
        raise ConfigError(f"aggregate must be 'per_task' or 'total', got {aggregate!r}")
    rows: list[dict[str, float | int | None]] = []
    for k in range(1, len(table.tasks) + 1):
        nets = [
            c
            for c in table
            if len(c.tasks) == k and math.isclose(c.cost, full_cost, rel_tol=1e-9, abs_tol=1e-12)
        ]
        row: dict[str, float | int | None] = {"k": k, "n_networks": len(nets)}
        for name, cost in (("each", full_cost), ("total", full_cost / k)):
            singles = _single_losses(table, kind, cost)
            vals: list[float] = []
            ok = bool(nets)
            for c in nets:
                lv = c.losses(kind)
                if not all(t in singles and t in lv for t in c.tasks):
                    ok = False
                    break
                if aggregate == "per_task":
                    vals.extend(_rel(singles[t], lv[t]) for t in c.tasks)
                else:
                    vals.append(
                        _rel(math.fsum(singles[t] for t in c.tasks), math.fsum(lv[t] for t in c.tasks))
                    )
            row[name] = float(np.mean(vals)) if ok and vals else None
        rows.append(row)
    return rows


def pearson_r(a: TaskMatrix, b: TaskMatrix) -> float:
    """Pearson's r between two task tables over the cells defined in both.

    Cells are matched by position (settings with different task sets, like the paper's
    Task Set 1 vs 2, compare position by position); the shapes must agree.
    """
    if a.values.shape != b.values.shape:
        raise ConfigError(f"tables have shapes {a.values.shape} and {b.values.shape}")
    x, y = a.values.ravel(), b.values.ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        raise ConfigError("fewer than 3 cells defined in both tables")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def describe_selection(selection: Selection, *, names: Mapping[str, str] | None = None) -> str:
    """The chosen grouping in words, one line per network.

    Example (setting 1, budget 2.5; the paper's Figure 1)::

        Budget 2.5: 3 networks, cost 2.5, total loss 0.45076 (val).
        - a 0.5-cost network trained on normals alone: serves normals.
        - a 1-cost network trained on semseg + depth + normals: serves semseg, depth (its normals output is not used).
        - ...
    """
    names = dict(names or {})

    def nm(t: str) -> str:
        return names.get(t, t)

    s = selection
    budget = "" if not math.isfinite(s.budget) else f"Budget {s.budget:g}: "
    head = (
        f"{budget}{len(s.networks)} network{'s' if len(s.networks) != 1 else ''}, "
        f"cost {s.total_cost:g}, total loss {s.total_loss:.5f} ({s.losses})."
    )
    lines = [head]
    for net, group in zip(s.networks, s.groups):
        trained = [t for t in s.tasks if t in net.tasks]
        if len(trained) == 1:
            what = f"trained on {nm(trained[0])} alone"
        else:
            what = "trained on " + " + ".join(nm(t) for t in trained)
        serves = ", ".join(nm(t) for t in group) if group else "nothing"
        unused = [t for t in trained if t not in group]
        tail = ""
        if unused and group:
            outs = ", ".join(nm(t) for t in unused)
            tail = f" (its {outs} output{'s are' if len(unused) > 1 else ' is'} not used)"
        lines.append(f"- a {net.cost:g}-cost network {what}: serves {serves}{tail}.")
    return "\n".join(lines)
