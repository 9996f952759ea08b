"""Selection for many tasks (branch and bound over partitions) against the other exact
solvers, its time limit, and random instances through ``manytask select``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from manytask.cli import app
from manytask.grouping.selection import select, select_brute_force, select_many
from manytask.grouping.synthetic import affinity_candidates
from manytask.grouping.table import CandidateTable


def subsets_table(n: int, k: int, seed: int, grid: bool = False) -> CandidateTable:
    """Every task subset of at most ``k`` tasks as a network; costs distinct (or from a
    small grid, with ties) and losses with pairwise affinities."""
    def cost(rng: np.random.Generator, s: int) -> float:
        return float(rng.choice([0.5, 1.0, 1.5])) if grid else 0.4 + 0.3 * s + float(rng.uniform(0, 0.2))

    tasks, cands, _ = affinity_candidates(np.random.default_rng(seed), n, k, cost, base=(0.05, 0.3),
                                          affinity_std=0.1, noise=0.03, size_penalty=0.0)
    return CandidateTable(tasks, cands)


def key(s):  # type: ignore[no-untyped-def]
    return None if s is None else (round(s.total_loss, 9), round(s.total_cost, 9), len(s.networks))


@pytest.mark.parametrize("n,k,grid", [(9, 3, False), (10, 2, True), (8, 8, False), (11, 3, True), (12, 3, False)])
def test_partition_search_equals_frontier_search(n: int, k: int, grid: bool) -> None:
    table = subsets_table(n, k, seed=n * 10 + k)
    budgets = [round(x, 3) for x in np.linspace(0.25 * n, 1.2 * n, 9)]
    dp = select_many(table, budgets, method="dp")
    part = select_many(table, budgets, method="partition")
    assert [key(s) for s in part] == [key(s) for s in dp]
    assert sum(s is not None for s in dp) >= 4
    assert all(s is None or s.exact for s in part)


def test_partition_search_equals_brute_force_on_small_instances() -> None:
    rng = np.random.default_rng(5)
    for seed in range(25):
        n = int(rng.integers(3, 6))
        table = subsets_table(n, int(rng.integers(1, n + 1)), seed, grid=bool(seed % 2))
        table = CandidateTable(table.tasks, [c for c in table if rng.random() < 0.7])
        for b in (0.8, 1.6, 2.5):
            ref = select_brute_force(table, b)
            got = select_many(table, [b], method="partition")[0]
            assert key(got) == key(ref), (seed, b)


def test_time_limit_returns_best_solution_with_a_lower_bound() -> None:
    table = subsets_table(14, 3, seed=3)
    exact = select(table, 8.0, method="partition")
    quick = select(table, 8.0, method="partition", time_limit=0.0)
    assert exact.exact and exact.lower_bound is None
    assert quick.total_cost <= 8.0 + 1e-9
    assert not quick.exact  # stopped right after its first solution
    assert quick.lower_bound is not None
    assert quick.lower_bound <= exact.total_loss + 1e-12 <= quick.total_loss + 1e-12
    assert quick.to_dict()["exact"] is False


def test_random_instances_through_the_cli_match_brute_force(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    for i in range(6):
        n = int(rng.integers(3, 6))
        table = subsets_table(n, 3, seed=100 + i, grid=bool(i % 2))
        table = CandidateTable(table.tasks, [c for c in table if rng.random() < 0.6] or list(table)[:1])
        path = table.write(tmp_path / f"t{i}.csv")
        budgets = [0.5, 1.0, 1.7, 2.4, 3.5]
        out = tmp_path / f"out{i}"
        res = CliRunner().invoke(app, ["select", str(path), "--budgets", ",".join(map(str, budgets)),
                                       "--no-baselines", "--out", str(out)])
        assert res.exit_code == 0, res.output
        rows = json.loads((out / "selection.json").read_text())["selections"]
        for b, row in zip(budgets, rows):
            ref = select_brute_force(table, b)
            assert row["feasible"] == (ref is not None)
            if ref is not None:
                assert row["val_loss"] == pytest.approx(ref.total_loss, abs=1e-12)
                assert row["total_cost"] <= b + 1e-9
