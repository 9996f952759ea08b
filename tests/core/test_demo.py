"""The demo trains STL per task and MTL; results do not depend on how many run at once."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

import manytask.demo as demo_module
from manytask.cli import app

TINY_DEMO = {
    "name": "tiny_demo", "seed": 0,
    "data": {"kind": "multimnist", "source": "bundled", "train_size": 200, "val_size": 80, "test_size": 80},
    "tasks": [{"name": "left", "kind": "multiclass", "num_classes": 10},
              {"name": "right", "kind": "multiclass", "num_classes": 10}],
    "model": {"trunk": "lenet", "features": 16, "head_hidden": 16},
    "training": {"epochs": 1, "batch_size": 64, "threads": 1},
}


def test_demo_rows_identical_sequential_and_parallel(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(yaml.safe_dump(TINY_DEMO))
    monkeypatch.setattr(demo_module, "demo_config_path", lambda: cfg)
    seq = demo_module.run_demo(tmp_path / "seq", jobs=1)
    par = demo_module.run_demo(tmp_path / "par", jobs=2)
    assert list(seq.rows) == ["STL left", "STL right", "MTL uniform"]
    assert seq.rows == par.rows
    assert set(seq.rows["STL left"]) == {"left"} and set(seq.rows["MTL uniform"]) == {"left", "right"}
    for rd in par.run_dirs:
        assert (rd / "summary.json").exists()

    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "cli"), "--jobs", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert "| STL left" in result.stdout and "| MTL uniform" in result.stdout
    assert "reproduce the MTL row: manytask run" in result.stdout


def test_packaged_demo_config_exists() -> None:
    assert Path(demo_module.demo_config_path()).is_file()
