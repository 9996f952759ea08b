"""The command line: bad configs give exit 2 and one line; a small run writes a RunDir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from manytask.cli import app
from manytask.models import available_trunks

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

TINY = {
    "name": "tiny",
    "seed": 1,
    "data": {"kind": "multimnist", "source": "bundled", "train_size": 300, "val_size": 100, "test_size": 100},
    "tasks": [{"name": "left", "kind": "multiclass", "num_classes": 10},
              {"name": "odd", "kind": "binary", "target": "left_parity"}],
    "model": {"trunk": "lenet"},
    "training": {"epochs": 1, "batch_size": 64, "threads": 1},
}


def write(tmp_path: Path, cfg: dict, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


def error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["tasks"][0].update(kind="ordinal"), "tasks.0.kind: unknown task kind 'ordinal'"),
    (lambda c: c.pop("tasks"), "tasks: field required"),
    (lambda c: c["training"].update(epochs="many"), "training.epochs"),
    (lambda c: c["training"].update(epchs=3), "training.epchs: unknown field"),
    (lambda c: c["data"].update(source="idx", idx_dir="/no/such/dir"), "idx_dir '/no/such/dir' is not a directory"),
    (lambda c: c["tasks"][0].update(num_classes=5), "label 9 but num_classes is 5"),
    (lambda c: c["tasks"][1].update(target="nope"), "column 'nope'"),
    (lambda c: c.update(weighting={"name": "magic"}), "unknown method 'magic'"),
])
def test_bad_config_exits_2_with_one_line(tmp_path, mutate, expected) -> None:
    cfg = json.loads(json.dumps(TINY))
    mutate(cfg)
    result = runner.invoke(app, ["run", str(write(tmp_path, cfg)), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 2
    line = error_line(result)
    assert line.startswith("manytask: error: ") and expected in line, line
    assert not (tmp_path / "run" / "summary.json").exists()


def test_missing_file_and_bad_yaml(tmp_path) -> None:
    result = runner.invoke(app, ["run", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 2 and "config file not found" in error_line(result)
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [\n  - {name: a\n")
    result = runner.invoke(app, ["run", str(bad)])
    assert result.exit_code == 2 and "is not valid YAML" in error_line(result)


def test_run_writes_rundir_and_prints_table(tmp_path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write(tmp_path, TINY)), "--out", str(out), "-q",
                                 "--set", "training.epochs=2"])
    assert result.exit_code == 0, result.output
    assert "left (accuracy)" in result.stdout and "odd (accuracy)" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_run"] == 2 and set(summary["test"]) == {"left", "odd"}
    assert yaml.safe_load((out / "config.yaml").read_text())["training"]["epochs"] == 2


def test_packaged_demo_config_is_the_repo_copy() -> None:
    packaged = ROOT / "src" / "manytask" / "configs" / "multimnist_demo.yaml"  # what `manytask demo` reads
    assert packaged.read_text() == (ROOT / "configs" / "multimnist_demo.yaml").read_text()


def test_console_script_exit_code(tmp_path) -> None:
    cfg = json.loads(json.dumps(TINY))
    cfg["model"]["trunk"] = "nosuch"
    proc = subprocess.run([sys.executable, "-m", "manytask.cli", "run", str(write(tmp_path, cfg))],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"manytask: error: {tmp_path / 'c.yaml'}: model.trunk: unknown trunk 'nosuch' (expected one of {', '.join(available_trunks())}, or an import path module:function)"]
    assert "Traceback" not in proc.stderr
