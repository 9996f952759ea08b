"""``torchrun --nproc_per_node 2 -m manytask.cli run``: two CPU processes (gloo) train one model on
halves of every batch; only rank 0 writes the run directory, and the numbers match one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from manytask.data.batch import Batch
from manytask.training.distributed import Distributed

CONFIG = {
    "name": "ddp", "seed": 2,
    "data": {"kind": "multimnist", "source": "bundled", "train_size": 200, "val_size": 60, "test_size": 60},
    "tasks": [{"name": "left", "kind": "multiclass", "num_classes": 10},
              {"name": "right", "kind": "multiclass", "num_classes": 10}],
    "model": {"trunk": "lenet"},
    "training": {"epochs": 2, "batch_size": 50, "threads": 1, "optimizer": {"name": "adam", "lr": 0.002}},
}


def test_shards_cover_the_batch_once() -> None:
    import torch

    batch = Batch(inputs=torch.arange(7.0)[:, None], targets={"y": torch.arange(7)})
    parts = [Distributed(rank=r, world=3).shard(batch) for r in range(3)]
    assert torch.cat([p.inputs for p, _ in parts]).flatten().tolist() == list(range(7))
    assert sum(share for _, share in parts) == pytest.approx(1.0)


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
def test_torchrun_two_processes_match_one(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    torchrun = str(Path(sys.executable).parent / "torchrun")
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "manytask.cli", "run", str(cfg),
                          "--out", str(tmp_path / "two"), "-q"], env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert two.returncode == 0, two.stderr[-2000:]
    one = subprocess.run([sys.executable, "-m", "manytask.cli", "run", str(cfg), "--out", str(tmp_path / "one"), "-q"],
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    assert one.returncode == 0, one.stderr
    a = json.loads((tmp_path / "one" / "summary.json").read_text())
    b = json.loads((tmp_path / "two" / "summary.json").read_text())
    for task in ("left", "right"):
        assert b["val"][task]["loss"] == pytest.approx(a["val"][task]["loss"], rel=1e-4)
        assert b["test"][task]["accuracy"] == pytest.approx(a["test"][task]["accuracy"], abs=0.02)
    rows = (tmp_path / "two" / "history.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2]  # written once, by rank 0
    assert not (tmp_path / "two" / ".lock").exists()
