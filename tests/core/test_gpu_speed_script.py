"""benchmarks/gpu_speed.py runs end to end on CPU (tiny sizes); gpu.sh refuses without CUDA."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_speed_script_on_cpu(monkeypatch, capsys, load_script) -> None:
    bench = load_script("benchmarks/gpu_speed.py")
    monkeypatch.setattr(bench, "BATCH", 8)
    report = bench.main(["--device", "cpu", "--ks", "1", "3", "40", "--steps", "1", "--warmup", "0",
                         "--train-size", "130", "--epochs", "1", "--threads", "1"])
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(report))
    heads = report["many_heads"]
    assert heads["k=1"]["ratio"] == 1.0 and heads["k=40"]["step_ms"] > 0
    assert heads["goal_k40"]["met"] == (heads["k=40"]["ratio"] <= bench.HEADS_GOAL)
    assert report["multimnist_lenet"]["train_size"] == 130 and report["multimnist_lenet"]["examples_per_s"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_gpu_sh_says_clearly_when_there_is_no_cuda(tmp_path) -> None:
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), str(tmp_path / "gpu.json")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "no CUDA device" in proc.stderr
    assert not (tmp_path / "gpu.json").exists()
