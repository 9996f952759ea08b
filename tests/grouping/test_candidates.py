"""Candidate networks: enumeration, measured costs, seeds, training into a table, resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from grouping_helpers import tiny_config

from manytask.config import parse_config
from manytask.errors import ConfigError, DataError
from manytask.experiment import run_experiment
from manytask.grouping.candidates import (
    FULL,
    HALF,
    build_candidates,
    candidate_seed,
    ceil_epochs,
    compute_equivalents,
    enumerate_subsets,
    input_shape_of,
    train_candidates,
    trunk_multiply_adds,
    width_for_cost,
)
from manytask.grouping.table import Candidate, CandidateTable

TINY = tiny_config(seed=3, sizes=(200, 80, 80))


@pytest.fixture(scope="module")
def cfg():
    return parse_config(TINY)


@pytest.fixture(scope="module")
def specs(cfg):
    return build_candidates(cfg)


def comparable(table: CandidateTable) -> list[tuple]:
    """Everything but the measured times."""
    return [(c.key, dict(c.val_loss), dict(c.test_loss), dict(c.extra)) for c in table]


def test_enumerate_subsets_counts_and_order() -> None:
    subs = enumerate_subsets(["a", "b", "c", "d"])
    assert len(subs) == 2**4 - 1 and len(set(subs)) == len(subs)
    assert subs[:4] == [("a",), ("b",), ("c",), ("d",)] and subs[-1] == ("a", "b", "c", "d")
    assert [len(s) for s in subs] == sorted(len(s) for s in subs)


def test_standley_candidate_set_and_costs(cfg, specs) -> None:
    n = 3
    assert len(specs) == 2**n - 1 + n
    full = [s for s in specs if s.size == FULL]
    half = [s for s in specs if s.size == HALF]
    assert len(full) == 7 and len(half) == 3 and all(len(s.tasks) == 1 for s in half)
    assert all(s.cost == 1.0 and s.width == 1.0 for s in full)
    # all half-size networks share one measured width; cost closest to 0.5 from below
    assert len({s.width for s in half}) == 1
    h = half[0]
    assert 0.45 < h.cost <= 0.5
    shape = input_shape_of(cfg)
    assert h.macs == trunk_multiply_adds(cfg, shape, h.width)
    assert math.isclose(h.cost, h.macs / trunk_multiply_adds(cfg, shape, 1.0))
    # names and keys are unique; canonical order: full first, by size, then half
    assert len({s.name for s in specs}) == len(specs)
    assert specs[0].name == "left@full" and specs[6].name == "left+odd+recon@full" and specs[7].name == "left@half"


def test_width_for_cost_brackets_the_target(cfg) -> None:
    shape = input_shape_of(cfg)
    full = trunk_multiply_adds(cfg, shape, 1.0)
    for frac in (0.25, 0.5, 0.75):
        w = width_for_cost(cfg, shape, frac)
        r = trunk_multiply_adds(cfg, shape, w) / full
        assert r <= frac
        # the next integer layer size up overshoots the target: no closer cost below it
        w_up = width_for_cost(cfg, shape, frac, not_above=False)
        r_up = trunk_multiply_adds(cfg, shape, w_up) / full
        assert abs(r_up - frac) <= abs(r - frac) + 1e-12
    assert width_for_cost(cfg, shape, 1.0) == 1.0
    # MACs are not linear in the width (hidden-to-hidden layers scale with w^2): with two
    # equally wide layers, half the multiply-adds needs more than half the width
    wide = parse_config({**TINY, "model": {"trunk": "mlp", "hidden": [256, 256]}})
    w = width_for_cost(wide, shape, 0.5)
    assert w > 0.52
    assert trunk_multiply_adds(wide, shape, 0.5) / trunk_multiply_adds(wide, shape, 1.0) < 0.47
    with pytest.raises(ConfigError, match="fraction"):
        width_for_cost(cfg, shape, 1.5)


def test_user_candidate_list(cfg) -> None:
    got = build_candidates(cfg, [("left+odd", "full"), (["recon"], "half"), (("left",), 0.25)])
    assert [s.name for s in got] == ["left+odd@full", "recon@half", "left@w0.25"]
    assert got[2].cost < got[1].cost < got[0].cost == 1.0
    with pytest.raises(ConfigError, match="unknown task"):
        build_candidates(cfg, [("left+nope", "full")])
    with pytest.raises(ConfigError, match="same tasks and cost"):
        build_candidates(cfg, [("left", "full"), ("left", 1.0)])
    with pytest.raises(ConfigError, match="width must be"):
        build_candidates(cfg, [("left", "big")])


def test_candidate_seed_is_stable_and_distinct() -> None:
    assert candidate_seed(0, "a+b@full") == candidate_seed(0, "a+b@full")
    seeds = {candidate_seed(s, n) for s in range(3) for n in ("a@full", "b@full", "a@half")}
    assert len(seeds) == 9 and all(0 <= x < 2**31 for x in seeds)


def test_training_records_summary_losses(cfg, specs, tmp_path: Path) -> None:
    pick = [s for s in specs if s.name in ("left+odd@full", "recon@half")]
    table = train_candidates(cfg, pick, tmp_path)
    assert [c.extra["name"] for c in table] == ["left+odd@full", "recon@half"]
    assert table == CandidateTable.read(tmp_path / "candidates.csv")
    import json

    for c in table:
        name = c.extra["name"]
        summary = json.loads((tmp_path / "runs" / name / "summary.json").read_text())
        for t in c.tasks:
            assert c.val_loss[t] == summary["val"][t]["loss"] and c.test_loss[t] == summary["test"][t]["loss"]
        spec = next(s for s in pick if s.name == name)
        assert c.cost == spec.cost and int(c.extra["seed"]) == candidate_seed(cfg.seed, name)
        assert c.extra["epochs_run"] == "1" and c.train_seconds is not None and c.train_seconds > 0
    # the same candidate trained alone (another stage) gives the same losses: seeds are per candidate
    again = train_candidates(cfg, pick[1:], tmp_path / "other")
    assert comparable(again)[0][1:3] == comparable(table)[1][1:3]


def test_resume_after_interruption_trains_only_the_rest(cfg, specs, tmp_path: Path) -> None:
    reference = train_candidates(cfg, specs, tmp_path / "ref")

    class Stop(Exception):
        pass

    seen: list[str] = []

    def stop_after_4(spec, cand, out) -> None:
        seen.append(spec.name)
        if len(seen) == 4:
            raise Stop

    with pytest.raises(Stop):
        train_candidates(cfg, specs, tmp_path / "run", on_result=stop_after_4)
    assert len(CandidateTable.read(tmp_path / "run" / "candidates.csv")) == 4
    trained: list[tuple[str, bool]] = []
    resumed = train_candidates(cfg, specs, tmp_path / "run",
                               on_result=lambda s, c, o: trained.append((s.name, o.reused)))
    assert [n for n, _ in trained] == [s.name for s in specs[4:]]
    assert not any(r for _, r in trained)
    assert comparable(resumed) == comparable(reference)
    # everything there: nothing is trained again
    trained.clear()
    again = train_candidates(cfg, specs, tmp_path / "run", on_result=lambda s, c, o: trained.append(s.name))
    assert trained == [] and comparable(again) == comparable(reference)


def test_partial_rundir_is_resumed_exactly(cfg, specs, tmp_path: Path) -> None:
    spec = next(s for s in specs if s.name == "left+recon@full")
    ref = train_candidates(cfg, [spec], tmp_path / "ref", epochs=2)
    seed = candidate_seed(cfg.seed, spec.name)

    class Stop(Exception):
        pass

    def stop(trainer, epoch) -> None:
        if epoch == 2:
            raise Stop

    from manytask.grouping.candidates import pin_data_seed

    with pytest.raises(Stop):
        run_experiment(pin_data_seed(cfg), tmp_path / "part" / "runs" / spec.name, task_names=list(spec.tasks),
                       width=spec.width, seed=seed, epochs=2, progress=False, callbacks=[stop])
    flags: list[bool] = []
    got = train_candidates(cfg, [spec], tmp_path / "part", epochs=2, on_result=lambda s, c, o: flags.append(o.reused))
    assert flags == [False]
    assert comparable(got)[0][1:3] == comparable(ref)[0][1:3]
    # a finished RunDir whose table row is missing is read back, not retrained
    (tmp_path / "part" / "candidates.csv").unlink()
    flags.clear()
    got2 = train_candidates(cfg, [spec], tmp_path / "part", epochs=2, on_result=lambda s, c, o: flags.append(o.reused))
    assert flags == [True] and comparable(got2) == comparable(got)


def test_table_of_another_schedule_is_refused(cfg, specs, tmp_path: Path) -> None:
    train_candidates(cfg, specs[:1], tmp_path)
    with pytest.raises(DataError, match="trained for 1 epochs, not 2"):
        train_candidates(cfg, specs[:1], tmp_path, epochs=2)


def test_compute_equivalents_by_hand() -> None:
    def cand(tasks: str, cost: float, run: int) -> Candidate:
        ts = tasks.split("+")
        return Candidate(frozenset(ts), cost, {t: 1.0 for t in ts}, extra={"epochs_run": str(run)})

    # full schedule = 10 epochs: a full net for 10 epochs = 1; a half net for 10 = 0.5;
    # a full net for 2 epochs = 0.2; a half net stopped early after 4 = 0.2
    cands = [cand("a", 1.0, 10), cand("b", 0.5, 10), cand("a+b", 1.0, 2), cand("c", 0.5, 4)]
    assert math.isclose(compute_equivalents(cands, 10), 1.0 + 0.5 + 0.2 + 0.2)
    with pytest.raises(DataError, match="epochs_run"):
        compute_equivalents([Candidate(frozenset("a"), 1.0, {"a": 1.0})], 10)
    assert ceil_epochs(8, 0.2) == 2 and ceil_epochs(10, 0.2) == 2 and ceil_epochs(3, 0.2) == 1
    assert ceil_epochs(4, 1.0) == 4
    with pytest.raises(ConfigError):
        ceil_epochs(4, 0.0)
