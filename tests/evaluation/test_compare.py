"""``compare``: runs, outputs, aggregation by hand, resume, divergence and the CLI."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from manytask.cli import app
from manytask.cli_args import parse_fractions, parse_seeds
from manytask.config import parse_config
from manytask.errors import ConfigError
from manytask.evaluation.compare import compare, epochs_for, plan_runs, resolve_executor
from manytask.evaluation.method_spec import (
    display_name,
    method_dir_name,
    parse_method_spec,
    parse_methods,
)
from manytask.runner import PoolExecutor
from manytask.weighting import LossWeighting, available, register
from manytask.weighting.base import _REGISTRY

PNG = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


class _HalfSecond(LossWeighting):
    """Test-only: weight 1 on the first task, 0.5 on the others."""

    name = "test_half_second"

    def weights(self, losses: torch.Tensor) -> tuple[torch.Tensor, None]:
        w = torch.full_like(losses, 0.5)
        w[0] = 1.0
        return w.detach(), None


class _Explode(LossWeighting):
    """Test-only: NaN weights, so training diverges."""

    name = "test_explode"

    def weights(self, losses: torch.Tensor) -> tuple[torch.Tensor, None]:
        return torch.full_like(losses, math.nan), None


@pytest.fixture(autouse=True, scope="module")
def _test_methods():
    """Register the test-only methods while this module's tests run, and remove them after,
    so that other test modules (which parametrize over every registered method) never see them."""
    added = [cls for cls in (_HalfSecond, _Explode) if cls.name not in available()]
    for cls in added:
        register(cls)
    yield
    for cls in added:
        _REGISTRY.pop(cls.name, None)

TINY = {
    "name": "tiny_compare",
    "seed": 3,
    "data": {"kind": "multimnist", "source": "bundled", "train_size": 160, "val_size": 60, "test_size": 60},
    "tasks": [{"name": "left", "kind": "multiclass", "num_classes": 10},
              {"name": "right_recon", "kind": "reconstruction", "target": "right_image", "dim": 1296}],
    "model": {"trunk": "lenet", "features": 16, "head_hidden": 16},
    "training": {"epochs": 2, "batch_size": 64, "threads": 1, "optimizer": {"lr": 0.02}},
}
METHODS = "stl,uniform,test_half_second"


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "out"
    cfg = parse_config(TINY)
    result = compare(cfg, METHODS, 2, "1,0.5", out, epochs_scaling="inverse", tsne_epochs=[2],
                     tsne_samples=40, progress=False)
    return cfg, out, result


def test_layout_epochs_and_files(done) -> None:
    cfg, out, result = done
    for f, epochs in (("f1", 2), ("f0.5", 4)):  # inverse scaling: half the data, twice the epochs
        for s in ("s0", "s1"):
            for run in ("stl-left", "stl-right_recon", "uniform", "test_half_second"):
                summary = json.loads((out / f / s / run / "summary.json").read_text())
                assert summary["status"] == "complete" and summary["epochs_run"] == epochs
    assert result.epochs == {1.0: 2, 0.5: 4}
    assert {r.status for r in result.records} == {"trained"} and len(result.records) == 16
    for key in ("table", "runs_csv", "summary_csv", "json", "plot", "tsne"):
        assert result.files[key].is_file(), key
    assert (out / "metrics.png").read_bytes()[:8] == PNG and (out / "tsne.png").read_bytes()[:8] == PNG
    table = (out / "table.md").read_text()
    for text in ("Single task", "Vanilla MTL (uniform)", "test_half_second", "left acc % @100%",
                 "right_recon MSE @50%", "Δm % @100%", "train s/run", "ddof=1"):
        assert text in table, text


def test_runs_csv_one_row_per_run_and_task(done) -> None:
    _, out, _ = done
    rows = read_csv(out / "runs.csv")
    assert list(rows[0])[:10] == ["fraction", "seed", "method", "run", "task", "metric", "value", "best_epoch",
                                  "epochs_run", "train_seconds"]
    # per fraction and seed: 2 STL runs (1 task each) + 2 MTL runs (2 tasks each)
    assert len(rows) == 2 * 2 * (2 + 2 * 2)
    stl = [r for r in rows if r["method"] == "stl"]
    assert {(r["run"], r["task"], r["metric"]) for r in stl} == {("stl-left", "left", "accuracy"),
                                                                 ("stl-right_recon", "right_recon", "mse")}
    for r in rows:
        summary = json.loads(Path(r["run_dir"], "summary.json").read_text())
        assert float(r["value"]) == pytest.approx(summary["test"][r["task"]][r["metric"]])
        assert int(r["best_epoch"]) == summary["best_epoch"]


def test_mean_std_and_delta_m_by_hand(done) -> None:
    cfg, out, result = done
    rows = read_csv(out / "runs.csv")
    summary = read_csv(out / "summary.csv")
    doc = json.loads((out / "compare.json").read_text())
    assert doc["std_ddof"] == 1

    def values(frac: str, method: str, task: str) -> list[float]:
        return [float(r["value"]) for r in rows if r["fraction"] == frac and r["method"] == method and r["task"] == task]

    def cell(frac: str, method: str, task: str) -> dict[str, str]:
        (row,) = [r for r in summary if r["fraction"] == frac and r["method"] == method and r["task"] == task]
        return row

    for frac in ("1.0", "0.5"):
        for method in ("stl", "uniform", "test_half_second"):
            for task in ("left", "right_recon"):
                v = values(frac, method, task)
                assert len(v) == 2
                mean, std = (v[0] + v[1]) / 2, abs(v[0] - v[1]) / math.sqrt(2)  # ddof=1 for n=2
                c = cell(frac, method, task)
                assert float(c["mean"]) == pytest.approx(mean) and int(c["n"]) == 2
                assert float(c["std"]) == pytest.approx(std, abs=1e-12)
        stl_acc, stl_mse = np.mean(values(frac, "stl", "left")), np.mean(values(frac, "stl", "right_recon"))
        for method in ("uniform", "test_half_second"):
            acc, mse = np.mean(values(frac, method, "left")), np.mean(values(frac, method, "right_recon"))
            expected = ((acc - stl_acc) / stl_acc - (mse - stl_mse) / stl_mse) / 2 * 100
            key = f"{float(frac):g}"
            assert doc["delta_m_percent"][method][key] == pytest.approx(expected)
            dm = cell(frac, method, "(all)")
            assert dm["metric"] == "delta_m_percent" and float(dm["mean"]) == pytest.approx(expected)
            assert f"{expected:+.2f}" in result.table


def test_tsne_snapshots_only_chosen_epoch_first_seed_full_fraction(done) -> None:
    _, out, _ = done
    snaps = sorted(str(p.relative_to(out)) for p in out.rglob("embeddings_epoch*.npz"))
    runs = ("stl-left", "stl-right_recon", "test_half_second", "uniform")
    assert snaps == sorted(f"f1/s0/{r}/embeddings_epoch2.npz" for r in runs)
    with np.load(out / "f1/s0/stl-right_recon/embeddings_epoch2.npz") as f:
        assert f["embeddings"].shape == (40, 16)
        assert str(f["label_name"]) == "left" and f["labels"].min() >= 0 and f["labels"].max() <= 9


def test_resume_retrains_only_the_unfinished_run(done, tmp_path) -> None:
    cfg, out, first = done
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    summaries = sorted(copy.rglob("summary.json"))
    before = {p: p.stat().st_mtime_ns for p in summaries}
    victim = copy / "f0.5" / "s1" / "uniform" / "summary.json"
    victim.unlink()
    again = compare(cfg, METHODS, 2, "1,0.5", copy, epochs_scaling="inverse", tsne_epochs=[2],
                    tsne_samples=40, progress=False)
    statuses = {str(r.spec.path.relative_to(copy)): r.status for r in again.records}
    assert statuses.pop("f0.5/s1/uniform") == "trained"
    assert set(statuses.values()) == {"reused"}
    assert victim.is_file()
    for p, mtime in before.items():
        if p != victim:
            assert p.stat().st_mtime_ns == mtime, p
    # training is deterministic: the retrained run gives the same numbers (the last column,
    # mean training seconds per run, is a timing and may differ)
    def numbers(table: str) -> list[str]:
        return [line.rsplit("|", 2)[0] for line in table.replace(str(out), str(copy)).splitlines()]

    assert numbers(again.table) == numbers(first.table)
    # a finished run made with other settings is not silently reused
    other = parse_config({**TINY, "training": {**TINY["training"], "optimizer": {"lr": 0.05}}})
    with pytest.raises(ConfigError, match="training.optimizer.lr differs"):
        compare(other, METHODS, 2, "1,0.5", copy, epochs_scaling="inverse", progress=False)


def test_diverged_run_is_recorded_and_not_retried(tmp_path) -> None:
    cfg = parse_config({**TINY, "training": {**TINY["training"], "epochs": 1}})
    out = tmp_path / "out"
    res = compare(cfg, "stl,test_explode", 1, "1", out, progress=False)
    bad = [r for r in res.records if r.spec.method == "test_explode"]
    assert [r.status for r in bad] == ["diverged"] and "not finite" in bad[0].message
    marker = out / "f1" / "s0" / "test_explode" / "diverged.json"
    mtime = marker.stat().st_mtime_ns
    row = [ln for ln in res.table.splitlines() if ln.startswith("| test_explode")][0]
    assert "—" in row
    rows = [r for r in read_csv(out / "runs.csv") if r["method"] == "test_explode"]
    assert {r["status"] for r in rows} == {"diverged"} and {r["value"] for r in rows} == {""}
    again = compare(cfg, "stl,test_explode", 1, "1", out, progress=False)
    assert [r.status for r in again.records] == ["reused", "reused", "diverged"]
    assert marker.stat().st_mtime_ns == mtime


ONE_EPOCH = {**TINY, "training": {**TINY["training"], "epochs": 1}}


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """stl + uniform, one seed, one epoch, trained one after the other in this process."""
    cfg = parse_config(ONE_EPOCH)
    return compare(cfg, "stl,uniform", 1, "1", tmp_path_factory.mktemp("seq") / "out", progress=False)


class _CountingPool(PoolExecutor):
    """A process pool that records the jobs the comparison hands it."""

    def __init__(self) -> None:
        super().__init__(workers=2, threads=1)
        self.seen: list[str] = []

    def run(self, fn, jobs):
        self.seen += [j.spec.name for j in jobs]
        yield from super().run(fn, jobs)


def test_pool_executor_matches_sequential(sequential, tmp_path) -> None:
    cfg = parse_config(ONE_EPOCH)
    with _CountingPool() as pool:
        par = compare(cfg, "stl,uniform", 1, "1", tmp_path / "par", executor=pool, progress=False)
        assert pool._pool is not None  # the comparison used the given runner and left it open
        # a rerun reads every finished run back in this process: nothing goes to the pool
        again = compare(cfg, "stl,uniform", 1, "1", tmp_path / "par", executor=pool, progress=False)
    assert pool.seen == ["stl-left", "stl-right_recon", "uniform"]
    assert [r.status for r in par.records] == ["trained"] * 3
    assert [r.status for r in again.records] == ["reused"] * 3
    assert [r.test for r in par.records] == [r.test for r in sequential.records]
    assert [r.spec for r in par.records] == plan_runs(cfg, ["stl", "uniform"], [0], [1.0], tmp_path / "par")
    def numbers(table: str) -> list[str]:  # all but the last column (a timing)
        return [line.rsplit("|", 2)[0] for line in table.splitlines()]

    assert numbers(par.table) == numbers(sequential.table)


def test_jobs_is_short_for_the_pool() -> None:
    assert resolve_executor(None, 1) == ("sequential", 2)
    assert resolve_executor(None, 3) == ("pool", 3) == resolve_executor("pool", 3, 3)
    assert resolve_executor("ray", 1, 4) == ("ray", 4)
    for args, msg in (((None, 0), "--jobs must be >= 1"), (("gpu", 1), "--executor: unknown executor 'gpu'"),
                      (("ray", 2), "cannot be combined with --executor ray"),
                      (("pool", 2, 3), "cannot be combined with --workers 3"), ((None, 1, 0), "--workers must be >= 1")):
        with pytest.raises(ConfigError, match=re.escape(msg)):
            resolve_executor(*args)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'manytask[ray]')")
def test_ray_executor_matches_sequential(sequential, tmp_path) -> None:
    import ray

    if ray.is_initialized():  # pragma: no cover - another test left one running
        ray.shutdown()
    cfg = parse_config(ONE_EPOCH)
    res = compare(cfg, "stl,uniform", 1, "1", tmp_path / "ray", executor="ray", workers=2, progress=False)
    assert not ray.is_initialized()  # the local Ray it started is shut down again
    assert [r.status for r in res.records] == ["trained"] * 3
    assert [r.test for r in res.records] == [r.test for r in sequential.records]


def test_argument_parsing() -> None:
    assert parse_seeds("10") == list(range(10)) and parse_seeds(3) == [0, 1, 2]
    assert parse_seeds("0,3,7") == [0, 3, 7] and parse_seeds("5,") == [5]
    assert parse_fractions("1,0.25,0.1") == [1.0, 0.25, 0.1]
    assert parse_methods("stl, uniform,stl") == ["stl", "uniform"]
    for bad, call in (("x", parse_seeds), ("0", parse_seeds), ("1.5", parse_fractions), ("0", parse_fractions)):
        with pytest.raises(ConfigError):
            call(bad)
    with pytest.raises(ConfigError, match=r"unknown method 'magic' \(available: stl, .*uniform"):
        parse_methods("stl,magic")


def test_method_specs_with_hyperparameters() -> None:
    assert parse_methods("stl,famo,famo[update_on=next_batch,beta=0.05],cagrad[c=0.2]") == [
        "stl", "famo", "famo[update_on=next_batch,beta=0.05]", "cagrad[c=0.2]"]
    assert parse_method_spec("famo[update_on=next_batch, beta=0.05]") == ("famo", {"update_on": "next_batch", "beta": 0.05})
    assert parse_method_spec("dwa") == ("dwa", {})
    assert method_dir_name("cagrad[c=0.2]") == "cagrad-c=0.2" and method_dir_name("dwa") == "dwa"
    assert display_name("famo[update_on=next_batch]") == "FAMO [update_on=next_batch]"
    for bad, msg in (("famo[speed=1]", "'famo' has no hyperparameter 'speed' (it takes: beta, "),
                     ("famo[beta]", "'beta' in 'famo[beta]' is not key=value"),
                     ("famo[beta=1", "unmatched '['"), ("famo]", "unmatched ']'"),
                     ("stl[x=1]", "stl takes no hyperparameters"),
                     ("famo[beta=1,beta=2]", "'beta' is given twice"),
                     ("cagrad[c=0.2],cagrad[c=0.20]", "the same method and hyperparameters")):
        with pytest.raises(ConfigError, match=re.escape(msg)):
            parse_methods(bad)


def test_plan_gives_each_variant_its_own_run_and_hyperparameters(tmp_path) -> None:
    cfg = parse_config({**TINY, "weighting": {"name": "famo", "params": {"beta": 0.1}}})
    specs = plan_runs(cfg, parse_methods("famo,famo[update_on=next_batch],uniform"), [0], [1.0], tmp_path)
    got = {s.name: (s.method, s.weighting, dict(s.weighting_params), s.path.name) for s in specs}
    assert got == {
        "famo": ("famo", "famo", {"beta": 0.1}, "famo"),  # the bare config method keeps its params
        "famo-update_on=next_batch": ("famo[update_on=next_batch]", "famo", {"update_on": "next_batch"},
                                      "famo-update_on=next_batch"),
        "uniform": ("uniform", "uniform", {}, "uniform"),
    }


def test_epochs_scaling() -> None:
    assert epochs_for(10, 0.1) == 10
    assert [epochs_for(10, f, "inverse") for f in (1, 0.5, 0.25, 0.1)] == [10, 20, 40, 100]
    assert epochs_for(10, 0.1, "inverse", max_epochs=50) == 50 and epochs_for(10, 0.3, "inverse") == 33
    with pytest.raises(ConfigError, match="unknown scaling 'double'"):
        epochs_for(10, 0.5, "double")


def _write(tmp_path: Path, cfg: dict) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.mark.parametrize("args, expected", [
    (["--methods", "stl,magic"], "--methods: unknown method 'magic' (available: stl, "),
    (["--fractions", "1,2"], "--fractions: each fraction must be in (0, 1], got 2"),
    (["--seeds", "two"], "--seeds: expected a count"),
    (["--tsne-epochs", "1,9"], "--tsne-epochs: epoch 9 is outside 1..2"),
    (["--epochs-scaling", "double"], "unknown scaling 'double'"),
    (["--methods", "famo[update_on=later]"], "--methods: 'famo[update_on=later]': weighting 'famo': update_on must be"),
    (["--methods", "uniform,cagrad[c=-1]"], "--methods: 'cagrad[c=-1]': weighting 'cagrad': c"),
    (["--executor", "gpu"], "--executor: unknown executor 'gpu' (expected one of sequential, pool, ray)"),
    (["--jobs", "2", "--executor", "ray"], "--jobs 2 is short for --executor pool --workers 2"),
])
def test_cli_bad_arguments_exit_2_one_line(tmp_path, args, expected) -> None:
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", str(_write(tmp_path, TINY)), "--out", str(out), "-q",
                                 "--methods", "stl,uniform", "--seeds", "1", "--fractions", "1", *args])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("manytask: error: ") and expected in lines[0], lines
    assert not list(out.rglob("summary.json"))


def test_cli_runs_and_prints_where_outputs_are(tmp_path) -> None:
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", str(_write(tmp_path, TINY)), "--out", str(out), "-q",
                                 "--methods", "stl,uniform", "--seeds", "0,", "--fractions", "1",
                                 "--set", "training.epochs=1"])
    assert result.exit_code == 0, result.output
    assert "Vanilla MTL (uniform)" in result.stdout and f"outputs in {out}" in result.stdout
    assert str(out / "table.md") in result.stdout
    assert json.loads((out / "f1" / "s0" / "uniform" / "summary.json").read_text())["epochs_run"] == 1


def test_cli_compares_two_variants_of_one_method(tmp_path) -> None:
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", str(_write(tmp_path, TINY)), "--out", str(out), "-q",
                                 "--methods", "famo,famo[update_on=next_batch]", "--seeds", "1", "--fractions", "1",
                                 "--set", "training.epochs=1"])
    assert result.exit_code == 0, result.output
    rows = [ln for ln in result.stdout.splitlines() if ln.startswith("| FAMO")]
    assert [r.split("|")[1].strip() for r in rows] == ["FAMO", "FAMO [update_on=next_batch]"]
    run_cfg = yaml.safe_load((out / "f1" / "s0" / "famo-update_on=next_batch" / "config.yaml").read_text())
    assert (run_cfg["run"]["weighting"], run_cfg["run"]["weighting_params"]) == ("famo", {"update_on": "next_batch"})
    plain_cfg = yaml.safe_load((out / "f1" / "s0" / "famo" / "config.yaml").read_text())
    assert (plain_cfg["run"]["weighting"], plain_cfg["run"]["weighting_params"]) == ("famo", {})
