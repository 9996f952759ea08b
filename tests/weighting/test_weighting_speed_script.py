"""benchmarks/weighting_speed.py runs end to end (tiny batch, one round) and reports its goals."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("weighting_speed", ROOT / "benchmarks" / "weighting_speed.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_runs_and_checks_its_goals(monkeypatch, capsys) -> None:
    bench = _load()
    monkeypatch.setattr(bench, "BATCH", 4)
    report = bench.main(["--ks", "2", "10", "--rounds", "1", "1", "--no-cuda"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["cpu"]["k=2"]["methods"].keys() == report["cpu"]["k=2"]["methods"].keys()
    methods = report["cpu"]["k=10"]["methods"]
    assert methods["uniform"]["ratio"] == 1.0
    assert {"famo[next_batch]", "mgda[batched]", "reference:mgda_per_task_backward"} <= methods.keys()
    goals = report["goals_k10_cpu"]
    assert set(goals) == set(bench.CPU_GOALS)
    for name, g in goals.items():
        assert g["met"] == (methods[name]["ratio"] <= bench.CPU_GOALS[name])
