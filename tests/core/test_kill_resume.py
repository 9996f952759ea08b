"""``kill -9`` of a real ``manytask run`` at chosen instants, then ``--resume``: the summary,
the history and the final weights equal those of an uninterrupted run, bit for bit.

The instants come from the fault hook of :mod:`manytask.training.checkpoint`
(``MANYTASK_FAULT_KILL=<point>@<n>``: the process SIGKILLs itself there) and from a kill sent
from outside as soon as the first epoch is logged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from manytask.training.checkpoint import FAULT_ENV

CONFIG = {
    "name": "killed",
    "seed": 3,
    "data": {"kind": "multimnist", "source": "bundled", "train_size": 300, "val_size": 100, "test_size": 100},
    "tasks": [{"name": "left", "kind": "multiclass", "num_classes": 10},
              {"name": "odd", "kind": "binary", "target": "left_parity"}],
    "model": {"trunk": "lenet"},
    "training": {"epochs": 3, "batch_size": 64, "threads": 1, "optimizer": {"name": "adam", "lr": 0.002}},
    "weighting": {"name": "dwa"},
}
TIMING = ("seconds", "train_seconds")


def _command(cfg: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "manytask.cli", "run", str(cfg), "--out", str(out), "-q", *extra]


def _env(fault: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    if fault:
        env[FAULT_ENV] = fault
    return env


def _run(cfg: Path, out: Path, *extra: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(cfg, out, *extra), env=_env(fault), capture_output=True, text=True, timeout=300, check=False)


def _outcome(out: Path) -> tuple[dict, list[dict], dict]:
    summary = {k: v for k, v in json.loads((out / "summary.json").read_text()).items() if k not in TIMING}
    history = [{k: v for k, v in row.items() if k not in TIMING}
               for row in map(json.loads, (out / "history.jsonl").read_text().splitlines())]
    return summary, history, load_file(str(out / "best.safetensors"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, tuple[dict, list[dict], dict]]:
    root = tmp_path_factory.mktemp("kill")
    cfg = root / "config.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    proc = _run(cfg, root / "reference")
    assert proc.returncode == 0, proc.stderr
    return cfg, _outcome(root / "reference")


def _same(a: tuple[dict, list[dict], dict], b: tuple[dict, list[dict], dict]) -> None:
    assert a[0] == b[0]  # summary: val and test metrics, best epoch and score (exact floats)
    assert a[1] == b[1]  # every epoch's losses, weights and validation metrics
    assert a[2].keys() == b[2].keys() and all(a[2][k].equal(b[2][k]) for k in a[2])


def test_kill_9_at_chosen_instants_then_resume_is_exact(setup, tmp_path) -> None:
    cfg, reference = setup
    out = tmp_path / "run"
    # killed three times in a row, each resume continuing from the one before (5 steps per epoch)
    for fault in ("before_checkpoint@2",  # epoch-2 weights written, its checkpoint not yet
                  "step@12",              # in the middle of epoch 3
                  "after_checkpoint@3"):  # the last checkpoint written, the summary not yet
        killed = _run(cfg, out, *(["--resume"] if out.exists() else []), fault=fault)
        assert killed.returncode == -signal.SIGKILL, (fault, killed.stderr)
        assert not (out / "summary.json").exists()
    resumed = _run(cfg, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    _same(reference, _outcome(out))


def test_kill_9_from_outside_then_resume_is_exact(setup, tmp_path) -> None:
    cfg, reference = setup
    out = tmp_path / "run"
    proc = subprocess.Popen(_command(cfg, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (out / "history.jsonl").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = _run(cfg, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    _same(reference, _outcome(out))
