"""The budget guard of ``compare``: a footnote when most runs chose their last epoch."""

from __future__ import annotations

from pathlib import Path

from manytask.config import parse_config
from manytask.evaluation.budget import budget_note, last_epoch_counts
from manytask.evaluation.records import DIVERGED, TRAINED, RunRecord, RunSpec
from manytask.reporting.compare_report import CompareReport, _table_notes


def _record(fraction: float, seed: int, method: str, best: int | None, epochs: int,
            status: str = TRAINED) -> RunRecord:
    spec = RunSpec(fraction=fraction, seed=seed, method=method, tasks=("left",), name=method,
                   path=Path("/nowhere"), epochs=epochs, weighting="uniform")
    return RunRecord(spec=spec, status=status, best_epoch=best, epochs_run=None if best is None else epochs)


def test_counts_per_fraction_skip_diverged_runs() -> None:
    records = [_record(1.0, s, "uniform", 10, 10) for s in range(3)]
    records += [_record(1.0, 3, "uniform", 4, 10), _record(1.0, 4, "uniform", None, 10, DIVERGED)]
    records += [_record(0.25, s, "uniform", 12, 40) for s in range(4)]
    counts = last_epoch_counts(records)
    assert [(c.fraction, c.epochs, c.runs, c.last) for c in counts] == [(1.0, 10, 4, 3), (0.25, 40, 4, 0)]


def test_note_names_only_the_fractions_where_most_runs_ended_on_their_best_epoch() -> None:
    records = [_record(1.0, s, "uniform", 10, 10) for s in range(3)] + [_record(1.0, 3, "dwa", 9, 10)]
    records += [_record(0.25, s, "uniform", 40 if s == 0 else 20, 40) for s in range(4)]
    note = budget_note(records)
    assert note is not None and note.startswith("Budget:")
    assert "100%: 3 of 4 runs chose epoch 10 of 10" in note and "25%" not in note
    # half is not "most": no footnote
    half = [_record(1.0, 0, "uniform", 10, 10), _record(1.0, 1, "uniform", 3, 10)]
    assert budget_note(half) is None
    assert budget_note([]) is None


def test_the_table_notes_carry_the_footnote() -> None:
    cfg = parse_config({"tasks": [{"name": "left", "kind": "multiclass", "num_classes": 10}]})

    def report(records: list[RunRecord]) -> CompareReport:
        return CompareReport(cfg=cfg, methods=["uniform"], seeds=[0, 1], fractions=[1.0], epochs={1.0: 10},
                             records=records, cells=[], deltas={}, seconds={}, table="",
                             settings={"epochs_scaling": "constant"})

    tasks = cfg.build_tasks()
    ended = [_record(1.0, s, "uniform", 10, 10) for s in range(2)]
    assert any(line.startswith("Budget:") for line in _table_notes(report(ended), tasks))
    early = [_record(1.0, s, "uniform", 6, 10) for s in range(2)]
    assert not any(line.startswith("Budget:") for line in _table_notes(report(early), tasks))
