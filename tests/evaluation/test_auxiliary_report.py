"""The main/auxiliary report: best validation loss per task over seeds, class weights per epoch."""

from __future__ import annotations

import json
from pathlib import Path

from manytask.reporting.auxiliary import (
    approach_label,
    auxiliary_table,
    class_weight_history,
)


def _run(path: Path, history: list[dict[str, float]], steps: list[dict[str, float]] | None = None) -> None:
    path.mkdir(parents=True)
    (path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    (path / "summary.json").write_text("{}")
    if steps is not None:
        (path / "steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steps))


def test_table_takes_the_best_epoch_per_task_and_averages_seeds(tmp_path: Path) -> None:
    for seed, (a, b) in enumerate([(0.5, 0.9), (0.7, 0.7)]):
        _run(tmp_path / "f1" / f"s{seed}" / "classwise_aux-main=a",
             [{"epoch": 1, "val/a/loss": a + 0.1, "val/b/loss": b}, {"epoch": 2, "val/a/loss": a, "val/b/loss": b + 1}])
    table = auxiliary_table(tmp_path)
    assert "| Class-wise (main: a) | 0.6000 ± 0.1414 | 0.8000 ± 0.1414 |" in table
    assert approach_label("pareto_mtl-pref_index=1") == "Pareto MTL (0.92, 0.38)"
    assert approach_label("stl-a") == "Single task"
    assert approach_label("classwise_aux-main=left") == "Class-wise (main: left)"
    assert (approach_label("classwise_aux-main=right-alpha=0.005-eps=1e-08-window=4")
            == "Class-wise (main: right, alpha=0.005, eps=1e-08, window=4)")
    assert approach_label("pareto_mtl-pref_index=4-init_epochs=0") == "Pareto MTL (0.00, 1.00) [init_epochs=0]"


def test_class_weight_history_keeps_the_last_step_of_each_epoch(tmp_path: Path) -> None:
    steps = [{"step": 1, "epoch": 1, "cw/b/0": 1.0, "cw/b/1": 1.0}, {"step": 2, "epoch": 1, "cw/b/0": 0.5, "cw/b/1": 1.2},
             {"step": 3, "epoch": 2, "cw/b/0": 0.0, "cw/b/1": 1.3}]
    _run(tmp_path / "run", [{"epoch": 1}], steps)
    assert class_weight_history(tmp_path / "run") == {"b": {"0": [0.5, 0.0], "1": [1.2, 1.3]}}
