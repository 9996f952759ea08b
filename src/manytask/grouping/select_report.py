"""Budget sweep of network selection with baselines, as a JSON-able report (and files).

This is the library side of ``manytask select TABLE --budgets 1:5:0.5``: load a candidate
table, choose the optimal networks at each budget (:func:`manytask.grouping.selection.select_many`),
score them on test losses when there are any, add the paper's baselines (Standley et al.
2020, Figure 2), and optionally write ``selection.md``, ``selection.csv``, ``selection.json``
and ``budget_curves.png`` into an output folder.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from manytask.atomic import atomic_write_csv, atomic_write_json, atomic_write_text
from manytask.errors import ConfigError, DataError
from manytask.grouping.analysis import describe_selection
from manytask.grouping.selection import (
    Selection,
    all_in_one_selection,
    independent_selection,
    random_groupings_many,
    score,
    select_many,
    worst_selection,
)
from manytask.grouping.table import CandidateTable, LossKind, read_table
from manytask.jsonable import to_jsonable
from manytask.reporting.tables import markdown_table

__all__ = ["parse_budgets", "run_select"]

_MAX_BUDGETS = 10_000
_WORST_MAX_CANDIDATES = 64
_NUM = r"[+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"


def parse_budgets(spec: str) -> list[float]:
    """Parse a budget list: ``"1:5:0.5"`` (start:stop:step, stop included), ``"1:5"``
    (step 1), ``"1,2,3"``, or a comma-separated mix such as ``"0.5,1:3:1"``.

    Duplicates are dropped, order is kept. Raises :class:`ConfigError` on anything else
    (empty, non-numeric, negative, step <= 0, stop < start, more than 10,000 values).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"budgets: empty specification {spec!r} (e.g. '1:5:0.5' or '1,2,3')")
    out: list[float] = []
    for part in spec.replace(" ", "").split(","):
        if not part:
            raise ConfigError(f"budgets: empty item in {spec!r}")
        pieces = part.split(":")
        if not all(re.fullmatch(_NUM, p) for p in pieces) or len(pieces) > 3:
            raise ConfigError(
                f"budgets: cannot read {part!r} in {spec!r} (use a number, start:stop or "
                f"start:stop:step with non-negative numbers)"
            )
        nums = [float(p) for p in pieces]
        if len(nums) == 1:
            values = nums
        else:
            start, stop = nums[0], nums[1]
            step = nums[2] if len(nums) == 3 else 1.0
            if step <= 0:
                raise ConfigError(f"budgets: step must be > 0 in {part!r}")
            if stop < start:
                raise ConfigError(f"budgets: stop {stop:g} < start {start:g} in {part!r}")
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            if count > _MAX_BUDGETS:
                raise ConfigError(f"budgets: {part!r} gives {count} values (max {_MAX_BUDGETS})")
            values = [round(start + i * step, 10) for i in range(count)]
        for v in values:
            if not math.isfinite(v):
                raise ConfigError(f"budgets: {v} is not finite in {spec!r}")
            if v not in out:
                out.append(v)
        if len(out) > _MAX_BUDGETS:
            raise ConfigError(f"budgets: more than {_MAX_BUDGETS} values in {spec!r}")
    return out


def _scoring(table: CandidateTable, test: CandidateTable | None) -> tuple[str | None, LossKind]:
    """Where test scores come from: 'file' (other table), 'own' (test_loss columns), None."""
    if test is not None:
        return "file", ("test" if test.has_test_losses() else "val")
    if table.has_test_losses():
        return "own", "test"
    return None, "val"


def _fmt(x: float | None, digits: int = 5) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def run_select(
    table_path: str,
    budgets: list[float],
    test_table_path: str | None = None,
    out_dir: str | None = None,
    *,
    baselines: bool = True,
    n_random: int = 2000,
    seed: int = 0,
    time_limit: float | None = None,
) -> dict[str, Any]:
    """Select networks at every budget, score them and (optionally) write a report.

    Args:
        table_path: candidate table (``.csv``, ``.parquet`` or Standley ``.txt``); selection
            minimises its validation losses.
        budgets: the budgets (see :func:`parse_budgets`).
        test_table_path: a table to score the chosen networks on (networks matched by task
            set and cost; its ``test_loss`` columns when it has them, else its main losses,
            as in a Standley test file). Without it, the table's own ``test_loss`` columns
            are used when complete; otherwise only validation losses are reported.
        out_dir: when given, ``selection.md``, ``selection.csv``, ``selection.json`` and
            ``budget_curves.png`` are written there.
        baselines: add all-in-one, independent (same-size single-task networks), random
            groupings (``n_random`` seeded samples) and worst choice (tables of at most 64
            candidates; computed on the scoring losses, as in the paper).
        time_limit: seconds for the selection sweep (searches over many tasks); a budget
            whose search was cut short gets ``exact: false``, a ``lower_bound`` and a note.

    Returns:
        A JSON-able dict: ``table``, ``test_table``, ``tasks``, ``n_candidates``,
        ``budgets``, ``scored_on``, ``selections`` (one per budget), ``curves``
        (``{name: [total loss or None per budget]}``), ``notes`` and ``files``.
    """
    if not budgets:
        raise ConfigError("budgets: no budget given")
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ConfigError(f"--out {out_dir}: already exists and is not a directory")
    table = read_table(table_path)
    test = read_table(test_table_path) if test_table_path else None
    for t, path in ((table, table_path), (test, test_table_path)):
        if t is not None and len(t) == 0:
            raise DataError(f"{path}: no candidate network (the table has no row)")
    where, test_kind = _scoring(table, test)

    def scored(sel: Selection | None) -> Selection | None:
        if sel is None or where is None:
            return None
        return score(sel, test if where == "file" else None, kind=test_kind)

    sels = select_many(table, budgets, time_limit=time_limit)
    rows: list[dict[str, Any]] = []
    optimal_val: list[float | None] = []
    optimal_test: list[float | None] = []
    for b, sel in zip(budgets, sels):
        if sel is None:
            rows.append({"budget": b, "feasible": False})
            optimal_val.append(None)
            optimal_test.append(None)
            continue
        sc = scored(sel)
        optimal_val.append(sel.total_loss)
        optimal_test.append(sc.total_loss if sc else None)
        row = {
            "budget": b,
            "feasible": True,
            "networks": sel.labels,
            "serves": {lab: list(g) for lab, g in zip(sel.labels, sel.groups)},
            "total_cost": sel.total_cost,
            "val_loss": sel.total_loss,
            "test_loss": sc.total_loss if sc else None,
            "task_val_losses": dict(sel.task_losses),
            "task_test_losses": dict(sc.task_losses) if sc else None,
            "description": describe_selection(sel),
            "exact": sel.exact,
        }
        if not sel.exact:
            row["lower_bound"] = sel.lower_bound
        rows.append(row)

    curves: dict[str, list[float | None]] = {}
    notes: list[str] = [
        f"budget {r['budget']:g}: the time limit cut the search short; best found "
        f"{r['val_loss']:.5f}, optimum >= {r['lower_bound']:.5f}"
        for r in rows if r.get("feasible") and not r["exact"]
    ]
    if where is not None:
        curves["optimal (test)"] = optimal_test
    curves["optimal (val)"] = optimal_val
    if baselines:
        label = "test" if where is not None else "val"

        def total(sel: Selection | None) -> float | None:
            if sel is None:
                return None
            if where is None:
                return sel.total_loss
            sc = scored(sel)
            return sc.total_loss if sc else None

        curves[f"all-in-one ({label})"] = [total(all_in_one_selection(table, b)) for b in budgets]
        curves[f"independent ({label})"] = [total(independent_selection(table, b)) for b in budgets]
        score_table = test if where == "file" else None
        score_kind: LossKind = test_kind if where == "file" else "val"
        if where == "own":  # own test losses: score the random groupings on them
            score_table, score_kind = table.test_as_val(), "val"
        rnd = [r.mean if r else None for r in random_groupings_many(
            table, budgets, score_table=score_table, score_kind=score_kind, n_samples=n_random, seed=seed)]
        curves[f"random groupings ({label})"] = rnd
        if len(table) <= _WORST_MAX_CANDIDATES:
            if where == "file":
                assert test is not None
                wt, wk = test.filter(lambda c: table.index_of(c) is not None), test_kind
            elif where == "own":
                wt, wk = table, "test"
            else:
                wt, wk = table, "val"
            worst = []
            for b in budgets:
                w = worst_selection(wt, b, kind=wk)  # type: ignore[arg-type]
                worst.append(w.total_loss if w else None)
            curves[f"worst choice ({label})"] = worst
        else:
            notes.append(
                f"worst choice skipped: {len(table)} candidates (exact search limited to "
                f"{_WORST_MAX_CANDIDATES})"
            )
        notes.append(
            f"random groupings: mean of {n_random} uniformly random task partitions that fit "
            f"the budget (seed {seed})"
        )

    result: dict[str, Any] = {
        "table": str(table_path),
        "test_table": str(test_table_path) if test_table_path else None,
        "tasks": list(table.tasks),
        "n_candidates": len(table),
        "budgets": list(budgets),
        "scored_on": {"file": str(test_table_path), "own": "test_loss columns"}.get(where or "", None),
        "selections": rows,
        "curves": curves,
        "notes": notes,
        "files": {},
    }
    if out_dir is not None:
        result["files"] = _write(Path(out_dir), result, budgets)
    return to_jsonable(result)


def _write(out: Path, result: dict[str, Any], budgets: list[float]) -> dict[str, str]:
    from manytask.reporting.plots_budget import plot_budget_curves

    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    # markdown
    lines = [f"# Network selection: {result['table']}", ""]
    lines.append(f"Tasks: {', '.join(result['tasks'])}; {result['n_candidates']} candidates.")
    if result["scored_on"]:
        lines.append(f"Chosen on validation losses, scored on {result['scored_on']}.")
    rows = []
    for r in result["selections"]:
        if not r["feasible"]:
            rows.append([f"{r['budget']:g}", "infeasible", "—", "—", "—"])
            continue
        nets = "; ".join(f"{lab} → {'+'.join(g) if g else '(unused)'}" for lab, g in r["serves"].items())
        rows.append([f"{r['budget']:g}", nets, f"{r['total_cost']:g}", _fmt(r["val_loss"]), _fmt(r["test_loss"])])
    names = list(result["curves"])
    curve_rows = [[f"{b:g}"] + [_fmt(result["curves"][n][i]) for n in names] for i, b in enumerate(budgets)]
    lines += ["", markdown_table(["budget", "networks", "cost", "val loss", "test loss"], rows, pad=False),
              "", markdown_table(["budget", *names], curve_rows, pad=False)]
    if result["notes"]:
        lines += [""] + [f"- {n}" for n in result["notes"]]
    md = out / "selection.md"
    atomic_write_text(md, "\n".join(lines) + "\n")
    files["markdown"] = str(md)
    # csv: one row per budget
    cp = out / "selection.csv"
    csv_rows = [[r["budget"], r["feasible"], ";".join(r.get("networks", [])), r.get("total_cost"), r.get("val_loss"),
                 r.get("test_loss")] + [result["curves"][n][i] for n in names]
                for i, r in enumerate(result["selections"])]
    atomic_write_csv(cp, ["budget", "feasible", "networks", "total_cost", "val_loss", "test_loss", *names], csv_rows)
    files["csv"] = str(cp)
    png = out / "budget_curves.png"
    plot_budget_curves(result["curves"], budgets, png, title=f"Total loss vs budget ({Path(result['table']).name})")
    files["plot"] = str(png)
    js = out / "selection.json"
    files["json"] = str(js)
    result = {**result, "files": files}
    atomic_write_json(js, result)
    return files


