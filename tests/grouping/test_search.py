"""group_search end to end on a tiny 3-task problem, compute accounting, resume, and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from grouping_helpers import tiny_config
from typer.testing import CliRunner

from manytask.cli import app
from manytask.config import parse_config
from manytask.errors import ConfigError, DataError
from manytask.grouping.candidates import build_candidates
from manytask.grouping.search import (
    group_search,
    normalize_table,
    prior_losses,
    reference_losses,
)
from manytask.grouping.table import CandidateTable

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

TINY = tiny_config(seed=2, epochs=2, sgd=True)
BUDGETS = [1.0, 1.5, 2.0, 3.0]


@pytest.fixture(scope="module")
def cfg():
    return parse_config(TINY)


@pytest.fixture(scope="module")
def half_cost(cfg) -> float:
    return next(s.cost for s in build_candidates(cfg) if s.size == "half")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("search")


@pytest.fixture(scope="module")
def exhaustive(cfg, folder):
    return group_search(cfg, "exhaustive", BUDGETS, "sequential", folder, n_random=200)


def test_exhaustive_outputs_and_baselines(exhaustive, folder: Path, half_cost: float) -> None:
    r = exhaustive
    assert len(r.full_table) == 10 and r.full_table.has_test_losses()
    for name in ("result.json", "report.md", "selection_table.csv", "budget_curves.png"):
        assert (folder / "exhaustive" / name).is_file()
    data = json.loads((folder / "exhaustive" / "result.json").read_text())
    assert data["method"] == "exhaustive" and len(data["selections"]) == len(BUDGETS)
    for sel in r.selections:
        assert sel is not None and set().union(*(n.tasks for n in sel.networks)) == {"left", "odd", "recon"}
        assert sel.total_cost <= sel.budget + 1e-9
    # budget 1: only the all-task network fits
    assert [sorted(n.tasks) for n in r.selections[0].networks] == [["left", "odd", "recon"]]
    curves = r.curves
    assert set(curves) >= {"exhaustive (test)", "all-in-one (test)", "independent (test)",
                           "random groupings (test)", "worst choice (test)"}
    # single-task normalisation: three half-size networks total exactly 3 (budget 1.5 fits them)
    assert curves["independent (test)"][0] is None and curves["independent (test)"][1] == pytest.approx(3.0)
    assert curves["all-in-one (test)"][0] == curves["exhaustive (test)"][0]
    for i in range(len(BUDGETS)):  # on test losses, the worst choice is never better than random
        assert curves["worst choice (test)"][i] >= curves["random groupings (test)"][i] - 1e-9
    # exhaustive compute, by hand: 7 full-size networks + 3 half-size ones, all for 2 of 2 epochs
    assert r.compute["search"] == pytest.approx(7 + 3 * half_cost)
    assert r.compute["total"] == r.compute["search"] == r.compute["exhaustive"]
    report = (folder / "exhaustive" / "report.md").read_text()
    assert "Relative performance of each column task" in report and "Budget 1.5:" in report
    assert "k-task networks against single-task networks" in report


def test_esa_stops_the_real_schedule_after_a_share_of_one_epoch(cfg, exhaustive, folder: Path) -> None:
    # Standley's ESA: 160 training samples / batch 64 = 3 steps per epoch, 2 epochs; 0.5 of an
    # epoch = ceil(1.5) = 2 steps of the 6-step schedule, then the validation loss at that point
    r = group_search(cfg, "esa", BUDGETS, "sequential", folder, esa_fraction=0.5, n_random=200)
    early = CandidateTable.read(folder / "esa-2steps" / "candidates.csv")
    assert len(early) == 10
    assert {(c.extra["steps_run"], c.extra["max_steps"], c.extra["epochs"], c.extra["epochs_run"]) for c in early} \
        == {("2", "2", "2", "1")}
    # compute: the steps really taken, 2 of 6 per candidate = a third of the exhaustive search
    assert r.compute["search"] == pytest.approx(exhaustive.compute["search"] * 2 / 6)
    summary = json.loads((folder / "esa-2steps" / "runs" / "left@full" / "summary.json").read_text())
    assert summary["steps_run"] == 2 and summary["best_epoch"] == 1
    assert r.compute["total"] == pytest.approx(r.compute["search"] + r.compute["final"] + r.compute["reference"])
    with pytest.raises(ConfigError, match="esa_fraction"):
        group_search(cfg, "esa", BUDGETS, "sequential", folder, esa_fraction=3.0)


def test_esa_epochs_variant_selects_on_early_losses_and_scores_full_networks(cfg, exhaustive, folder: Path) -> None:
    r = group_search(cfg, "esa_epochs", BUDGETS, "sequential", folder, esa_fraction=0.2, n_random=200)
    early = CandidateTable.read(folder / "esa-1ep" / "candidates.csv")
    assert len(early) == 10 and {c.extra["epochs_run"] for c in early} == {"1"}
    # search = every candidate for 1 of 2 epochs = half the exhaustive compute
    assert r.compute["search"] == pytest.approx(exhaustive.compute["search"] / 2)
    chosen = {n.key for s in r.selections for n in s.networks}
    assert r.compute["final_networks"] == len(chosen)
    full = {c.key: c for c in exhaustive.full_table}
    assert r.compute["final"] == pytest.approx(sum(full[k].cost for k in chosen))
    # the reference (half-size) networks not chosen are trained for scoring and counted apart
    assert r.compute["total"] == pytest.approx(r.compute["search"] + r.compute["final"] + r.compute["reference"])
    # scores are the fully trained networks' test losses (the exhaustive table's)
    ref = reference_losses(exhaustive.full_table, "test")
    for sel, sc in zip(r.selections, r.scored):
        for t in sel.tasks:
            best = min(full[n.key].test_loss[t] for n in sel.networks if t in n.tasks) / ref[t]
            assert sc.task_losses[t] == pytest.approx(best)
    assert r.curves["exhaustive optimum (test)"] == exhaustive.curves["exhaustive (test)"]


def test_hoa_predicts_higher_order_from_pairs(cfg, exhaustive, folder: Path, half_cost: float) -> None:
    r = group_search(cfg, "hoa", BUDGETS, "sequential", folder, n_random=200)
    hi = [c for c in r.selection_table if len(c.tasks) == 3]
    assert len(hi) == 1 and hi[0].extra["approximation"] == "hoa"
    sel_n = r.selection_table
    pair = {frozenset(c.tasks): c for c in sel_n if len(c.tasks) == 2}
    for t in ("left", "odd", "recon"):
        vals = [c.val_loss[t] for k, c in pair.items() if t in k]
        assert hi[0].val_loss[t] == pytest.approx(sum(vals) / 2)
    # search: the 6 networks with <= 2 tasks at full size and 3 half-size ones
    assert r.compute["search"] == pytest.approx(6 + 3 * half_cost)
    chose_all = any(len(n.tasks) == 3 for s in r.selections for n in s.networks)
    assert r.compute["final"] == pytest.approx(1.0 if chose_all else 0.0)


def test_tag_and_cosine(cfg, exhaustive, folder: Path) -> None:
    for method in ("tag", "cosine"):
        r = group_search(cfg, method, [1.0, 2.0, 3.0], "sequential", folder, tag_every=1, n_random=200)
        assert (folder / f"affinity-{method}" / "affinity.json").is_file()
        assert r.affinity is not None and r.affinity.kind == method
        assert all(c.cost == 1.0 for c in r.selection_table) and len(r.selection_table) == 7
        # 3 steps per epoch (160 / 64), 2 epochs, every step sampled, 3 tasks
        a = r.affinity
        assert a.samples == 6 and a.extra_backward == 18 and a.extra_forward == (18 if method == "tag" else 0)
        assert r.compute["search"] == pytest.approx(1.0 + a.overhead_equivalents(2))
        assert r.compute["affinity_overhead"] == pytest.approx((2 * 18 + a.extra_forward) / 3 / 6)
        assert r.scored[1] is not None and r.curves[f"{method} (test)"][2] is not None
        # the authors' selection never serves a task by a group of its own
        singles = [c for c in r.selection_table if len(c.tasks) == 1]
        assert singles and all(v == pytest.approx(1 + 1e6) for c in singles for v in c.val_loss.values())
        assert all(len(n.tasks) > 1 for s in r.selections for n in s.networks)
    plain = group_search(cfg, "tag", [1.0, 2.0], "sequential", folder, tag_variant="plain", n_random=200)
    assert (folder / "affinity-tag-plain" / "affinity.json").is_file()
    assert (folder / "tag-plain" / "result.json").is_file()
    a = plain.affinity
    assert a.every == 10 and a.samples == 1 and a.lookahead == "sgd" and not a.scale  # steps 0 of 6
    singles = [c for c in plain.selection_table if len(c.tasks) == 1]
    assert all(v == 1.0 for c in singles for v in c.val_loss.values())
    with pytest.raises(ConfigError, match="tag_variant"):
        group_search(cfg, "tag", [1.0], "sequential", folder, tag_variant="fancy")


def test_interrupted_search_resumes(cfg, exhaustive, tmp_path: Path) -> None:
    class Stop(Exception):
        pass

    n = [0]

    def stop_after_3(*_: object) -> None:
        n[0] += 1
        if n[0] == 3:
            raise Stop

    with pytest.raises(Stop):
        group_search(cfg, "exhaustive", BUDGETS, "sequential", tmp_path, on_result=stop_after_3)
    trained: list[str] = []
    r = group_search(cfg, "exhaustive", BUDGETS, "sequential", tmp_path, n_random=200,
                     on_result=lambda spec, cand, out: trained.append(spec.name))
    assert len(trained) == 10 - 3
    assert [c.val_loss for c in r.full_table] == [c.val_loss for c in exhaustive.full_table]
    assert r.curves["exhaustive (test)"] == exhaustive.curves["exhaustive (test)"]


def test_folder_of_another_config_is_refused(cfg, exhaustive, folder: Path) -> None:
    other = parse_config({**TINY, "seed": 9})
    with pytest.raises(DataError, match="another config"):
        group_search(other, "exhaustive", BUDGETS, "sequential", folder)
    with pytest.raises(DataError, match="another seed"):
        group_search(cfg, "exhaustive", BUDGETS, "sequential", folder, seed=11)
    with pytest.raises(ConfigError, match="unknown method"):
        group_search(cfg, "greedy", BUDGETS, "sequential", folder)
    with pytest.raises(ConfigError, match="normalize"):
        group_search(cfg, "exhaustive", BUDGETS, "sequential", folder, normalize="zscore")


def test_normalisations(cfg, exhaustive) -> None:
    full = exhaustive.full_table
    prior = prior_losses(cfg)
    assert prior["left"] == pytest.approx(math.log(10), rel=0.05)  # ~uniform digits
    assert prior["odd"] == pytest.approx(math.log(2), rel=0.05)
    assert 0 < prior["recon"] < 0.2
    n = normalize_table(full, prior, prior)
    c = n[0]
    assert c.val_loss["left"] == pytest.approx(full[0].val_loss["left"] / prior["left"])
    ref = reference_losses(full, "val")
    singles = normalize_table(full, ref).filter(lambda c: len(c.tasks) == 1 and c.cost < 1)
    assert all(v == pytest.approx(1.0) for c in singles for v in c.val_loss.values())
    with pytest.raises(DataError, match="need > 0"):
        normalize_table(full, {**ref, "odd": 0.0})


def test_cli_select_on_standley_table_prints_the_curve(tmp_path: Path) -> None:
    res = runner.invoke(app, ["select", str(ROOT / "examples/standley/results.txt"), "--test",
                              str(ROOT / "examples/standley/results_test.txt"), "--budgets", "1:5:1",
                              "--random-samples", "100", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "total loss per budget" in out and "optimal (test)" in out and "all-in-one" in out
    # the paper's optimal budget-1 solution: the 5-task network, test loss 0.50278
    line = next(ln for ln in out.splitlines() if ln.startswith("| 1 ") and "semseg+depth+normals+keypoints+edges" in ln)
    assert "0.50278" in line
    assert (tmp_path / "budget_curves.png").is_file()
    bad = runner.invoke(app, ["select", str(tmp_path / "missing.csv")])
    assert bad.exit_code == 2 and "manytask: error:" in bad.stderr


def test_cli_group_runs_and_reports(tmp_path: Path) -> None:
    cfg_path = tmp_path / "g.yaml"
    cfg_path.write_text(yaml.safe_dump({**TINY, "training": {**TINY["training"], "epochs": 1}}))
    res = runner.invoke(app, ["group", str(cfg_path), "--method", "esa", "--budgets", "1:2:0.5",
                              "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 0, res.output
    assert "budget 1: {left, odd, recon}" in res.stdout and "| search |" in res.stdout
    assert (tmp_path / "o" / "esa" / "report.md").is_file()
    bad = runner.invoke(app, ["group", str(cfg_path), "--method", "magic", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "unknown method 'magic'" in bad.stderr
