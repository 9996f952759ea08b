"""benchmarks/weighting_speed.py runs end to end (tiny batch, one round) and reports its goals."""

from __future__ import annotations

import json


def test_benchmark_runs_and_checks_its_goals(monkeypatch, capsys, load_script) -> None:
    bench = load_script("benchmarks/weighting_speed.py")
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
