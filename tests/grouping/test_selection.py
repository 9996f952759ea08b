"""Exact network selection, candidate tables and analyses (Standley et al. 2020).

Reference numbers come from examples/standley/README.md (the paper's curves) and the paper's
Tables 1-3; the exact solvers are checked against an exhaustive enumerator.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from manytask.errors import ConfigError, DataError
from manytask.grouping.analysis import (
    affinity,
    describe_selection,
    multitask_vs_independent,
    pairwise_relative_performance,
    pearson_r,
)
from manytask.grouping.select_report import parse_budgets, run_select
from manytask.grouping.selection import (
    InfeasibleBudgetError,
    Selection,
    all_in_one_selection,
    higher_order_approximation,
    independent_selection,
    random_groupings,
    score,
    select,
    select_brute_force,
    select_many,
    worst_selection,
)
from manytask.grouping.table import (
    Candidate,
    CandidateTable,
    read_standley,
    read_table,
    upsert_file,
)
from manytask.reporting.plots_budget import plot_budget_curves

EX = Path(__file__).resolve().parents[2] / "examples" / "standley"
BUDGETS = [1.0 + 0.5 * i for i in range(9)]
SETTINGS = {
    1: ("results.txt", "results_test.txt", "results_20.txt"),
    2: ("results_large.txt", "results_large_test.txt", "results_large_20.txt"),
    3: ("results_small_data.txt", "results_small_data_test.txt", "results_small_data_at4.txt"),
    4: ("results_alt.txt", "results_alt_test.txt", "results_alt_20.txt"),
}
# examples/standley/README.md: optimal selection on validation, scored on test
OPTIMAL_TEST = {
    1: [0.50278, 0.46132, 0.45224, 0.44612, 0.44235, 0.43932, 0.43555, 0.43555, 0.43481],
    2: [0.35989, 0.35478, 0.31733, 0.31450, 0.30606, 0.30490, 0.30190, 0.30190, 0.30167],
    3: [0.42998, 0.42275, 0.40857, 0.38776, 0.38352, 0.38352, 0.38249, 0.38249, 0.38249],
    4: [0.68404, 0.67870, 0.67460, 0.67107, 0.66970, 0.66970, 0.66899, 0.66899, 0.66899],
}
VAL_OPTIMUM_1 = [0.50761, 0.46630, 0.45686, 0.45076, 0.44702, 0.44358, 0.43984, 0.43984, 0.43910]
# the paper's plotted HOA / ESA curves (Figures 2, 4-6), rounded to 5 decimals; ESA of
# setting 1 at budget 1 is plotted as 0.50273, but the five-task network, the only choice
# that fits there, scores 0.50278 on this test file (the optimal curve has the same quirk).
HOA = {
    1: [0.50278, 0.46132, 0.45474, 0.45050, 0.44875, 0.44489, 0.44112, 0.44552, 0.44196],
    2: [0.35989, 0.35758, 0.31733, 0.31562, 0.31177, 0.30525, 0.30190, 0.30190, 0.30187],
    3: [0.42998, 0.44778, 0.40887, 0.38776, 0.38352, 0.38682, 0.38574, 0.38574, 0.38471],
    4: [0.68404, 0.67870, 0.67460, 0.67107, 0.66970, 0.67187, 0.67050, 0.67050, 0.67050],
}
ESA = {
    1: [0.50278, 0.48732, 0.46727, 0.46063, 0.45722, 0.45058, 0.45058, 0.44742, 0.44742],
    2: [0.35989, 0.35989, 0.34696, 0.34696, 0.34483, 0.34483, 0.34483, 0.34483, 0.34483],
    3: [0.42998, 0.44778, 0.43055, 0.39507, 0.40381, 0.39404, 0.40278, 0.39404, 0.40278],
    4: [0.68404, 0.68404, 0.67757, 0.68065, 0.67735, 0.67605, 0.67605, 0.67598, 0.67598],
}
# the paper's "worst network choice" curves (computed on the test losses)
WORST = {
    1: [0.50278, 0.50278, 0.50278, 0.50278, 0.50278, 0.50278, 0.50179, 0.50179, 0.49941],
    2: [0.35989, 0.36554, 0.36926, 0.36936, 0.36956, 0.36956, 0.36956, 0.36956, 0.36956],
    3: [0.42998, 0.47544, 0.47182, 0.47205, 0.47170, 0.47066, 0.46857, 0.46702, 0.46495],
    4: [0.68404, 0.68918, 0.69604, 0.69824, 0.70045, 0.70106, 0.70106, 0.70106, 0.70106],
}


def load(setting: int, which: int) -> CandidateTable:
    return read_standley(EX / SETTINGS[setting][which])


def curve(sels: list[Selection | None], test: CandidateTable) -> list[float]:
    out = []
    for s in sels:
        assert s is not None
        out.append(round(score(s, test).total_loss, 5))
    return out


def key(s: Selection | None) -> tuple[float, float, int, int] | None:
    if s is None:
        return None
    return (
        round(s.total_loss, 9),
        round(s.total_cost, 9),
        len(s.networks),
        sum(len(c.tasks) for c in s.networks),
    )


def random_table(rng: np.random.Generator) -> CandidateTable:
    """Random overlapping candidates; a third of them with tied losses from a tiny grid."""
    n = int(rng.integers(3, 7))
    tasks = [f"t{i}" for i in range(n)]
    subsets = [s for k in range(1, n + 1) for s in itertools.combinations(tasks, k)]
    m = int(rng.integers(3, min(13, len(subsets) + n) + 1))
    pool = [0.25, 0.5, 0.5, 1.0, 1.0, 1.5] if rng.random() < 0.6 else None
    cands: dict[tuple[frozenset[str], float], Candidate] = {}
    while len(cands) < m:
        s = subsets[int(rng.integers(len(subsets)))]
        c = float(rng.choice(pool)) if pool else float(np.round(rng.uniform(0.1, 2.0), 3))
        if (frozenset(s), c) in cands:
            continue
        if rng.random() < 0.3:
            losses = {t: float(rng.choice([0.1, 0.2, 0.3])) for t in s}
        else:
            losses = {t: float(rng.uniform(0.05, 1.0)) for t in s}
        cands[(frozenset(s), c)] = Candidate(frozenset(s), c, losses)
    return CandidateTable(tasks, list(cands.values()))


def check_valid(s: Selection, table: CandidateTable, budget: float) -> None:
    assert s.total_cost <= budget + 1e-9
    assert set(s.task_losses) == set(table.tasks)
    for t in table.tasks:
        best = min(c.val_loss[t] for c in s.networks if t in c.tasks)
        assert s.task_losses[t] == best
        assert t in s.served_by[t].tasks and s.served_by[t].val_loss[t] == best
    assert s.total_loss == pytest.approx(math.fsum(s.task_losses.values()), abs=1e-12)


# ---------------------------------------------------------------------------------------
# (1) exactness against exhaustive enumeration
# ---------------------------------------------------------------------------------------
def test_brute_force_matches_itertools_enumeration() -> None:
    """The reference solver itself against a naive enumeration written independently."""
    rng = np.random.default_rng(7)
    for _ in range(40):
        table = random_table(rng)
        b = float(np.round(rng.uniform(0.3, 3.0), 2))
        L = table.loss_matrix()
        c = table.costs()
        best: float | None = None
        for k in range(1, len(table) + 1):
            for S in itertools.combinations(range(len(table)), k):
                if c[list(S)].sum() > b + 1e-9:
                    continue
                tot = L[list(S)].min(axis=0)
                if np.isfinite(tot).all():
                    v = float(tot.sum())
                    best = v if best is None else min(best, v)
        got = select_brute_force(table, b)
        if best is None:
            assert got is None
        else:
            assert got is not None and got.total_loss == pytest.approx(best, abs=1e-12)


def test_exact_solvers_equal_brute_force_on_random_instances() -> None:
    rng = np.random.default_rng(2020)
    checked = infeasible = 0
    for _ in range(210):
        table = random_table(rng)
        budgets = [float(np.round(rng.uniform(0.2, 4.0), 2))]
        budgets += [round(budgets[0] * 0.5, 3)]
        many = select_many(table, budgets)
        many_bnb = select_many(table, budgets, method="bnb")
        many_part = select_many(table, budgets, method="partition")
        for i, (b, s_many, s_bnb) in enumerate(zip(budgets, many, many_bnb)):
            ref = select_brute_force(table, b)
            assert key(s_many) == key(ref), (b, table.candidates)
            assert key(s_bnb) == key(ref), (b, table.candidates)
            assert key(many_part[i]) == key(ref), (b, table.candidates)
            if ref is None:
                infeasible += 1
                with pytest.raises(InfeasibleBudgetError):
                    select(table, b)
                continue
            assert s_many is not None and s_bnb is not None
            check_valid(s_many, table, b)
            check_valid(s_bnb, table, b)
            if i == 0:  # one budget at a time (its own search) agrees with the sweep
                assert key(select(table, b)) == key(ref)
            checked += 1
    assert checked >= 200 and infeasible >= 20, (checked, infeasible)


# ---------------------------------------------------------------------------------------
# (2) the paper's curves
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting", [1, 2, 3, 4])
def test_optimal_test_curves_reproduce_exactly(setting: int) -> None:
    val, test = load(setting, 0), load(setting, 1)
    assert curve(select_many(val, BUDGETS), test) == OPTIMAL_TEST[setting]
    # one budget at a time gives the same networks
    assert curve([select(val, b) for b in BUDGETS], test) == OPTIMAL_TEST[setting]


def test_branch_and_bound_reproduces_setting_1() -> None:
    val, test = load(1, 0), load(1, 1)
    assert curve(select_many(val, BUDGETS, method="bnb"), test) == OPTIMAL_TEST[1]
    hoa = higher_order_approximation(val)
    assert curve(select_many(hoa, BUDGETS, method="bnb"), test) == HOA[1]


def test_validation_optimum_setting_1() -> None:
    sels = select_many(load(1, 0), BUDGETS)
    assert [round(s.total_loss, 5) for s in sels if s] == VAL_OPTIMUM_1


@pytest.mark.parametrize("setting", [1, 2, 3, 4])
def test_hoa_and_esa_curves(setting: int) -> None:
    val, test, early = load(setting, 0), load(setting, 1), load(setting, 2)
    hoa = higher_order_approximation(val)
    assert curve(select_many(hoa, BUDGETS), test) == HOA[setting]
    assert curve(select_many(early, BUDGETS), test) == ESA[setting]


def test_hoa_tie_break_matters() -> None:
    """At 4.5 SNT two HOA selections tie; preferring fewer decoder heads gives the paper's."""
    hoa = higher_order_approximation(load(1, 0))
    s = select(hoa, 4.5)
    assert "depth@1" in s.labels and "depth+normals@1" not in s.labels


@pytest.mark.parametrize("setting", [1, 2, 3, 4])
def test_worst_choice_curves(setting: int) -> None:
    test = load(setting, 1)
    got = [round(worst_selection(test, b).total_loss, 5) for b in BUDGETS]  # type: ignore[union-attr]
    assert got == WORST[setting]


def test_worst_choice_matches_enumeration_on_random_instances() -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        table = random_table(rng)
        b = float(np.round(rng.uniform(0.3, 3.0), 2))
        L, c = table.loss_matrix(), table.costs()
        best_max = best_any = -math.inf
        for k in range(1, len(table) + 1):
            for S in itertools.combinations(range(len(table)), k):
                cost = c[list(S)].sum()
                if cost > b + 1e-9:
                    continue
                tot = L[list(S)].min(axis=0)
                if not np.isfinite(tot).all():
                    continue
                best_any = max(best_any, float(tot.sum()))
                others = [j for j in range(len(table)) if j not in S]
                if all(c[j] > b - cost + 1e-9 for j in others):
                    best_max = max(best_max, float(tot.sum()))
        for maximal, ref in ((True, best_max), (False, best_any)):
            w = worst_selection(table, b, maximal=maximal)
            if ref == -math.inf:
                assert w is None
            else:
                assert w is not None and w.total_loss == pytest.approx(ref, abs=1e-12)


def test_figure_1_and_figure_3_groupings() -> None:
    val = load(1, 0)
    s = select(val, 2.5)
    assert sorted(s.labels) == [
        "normals+keypoints+edges@1",
        "normals@0.5",
        "semseg+depth+normals@1",
    ]
    text = describe_selection(s)
    assert "0.5-cost network trained on normals alone: serves normals." in text
    assert "semseg + depth + normals: serves semseg, depth (its normals output is not used)" in text
    # budget 5: five networks; s, d, e come from three-task networks, n and k from singles
    s5 = select(val, 5.0)
    assert len(s5.networks) == 5
    assert all(len(s5.served_by[t].tasks) == 3 for t in ("semseg", "depth", "edges"))
    assert all(len(s5.served_by[t].tasks) == 1 for t in ("normals", "keypoints"))


@pytest.mark.parametrize(
    "setting,at_2_5,at_5",
    [(1, 0.46515, 0.44774), (2, 0.36188, 0.35216), (3, 0.42620, 0.40643), (4, 0.69244, 0.68558)],
)
def test_independent_baseline_matches_paper_points(setting: int, at_2_5: float, at_5: float) -> None:
    val, test = load(setting, 0), load(setting, 1)
    assert independent_selection(val, 2.0) is None  # five 0.5-SNT networks need 2.5
    for b, want in ((2.5, at_2_5), (3.0, at_2_5), (5.0, at_5)):
        s = independent_selection(val, b)
        assert s is not None and round(score(s, test).total_loss, 5) == want
    best = independent_selection(val, 3.0, mode="best")
    assert best is not None and best.total_cost == 3.0
    assert best.total_loss <= independent_selection(val, 3.0).total_loss  # type: ignore[union-attr]


def test_all_in_one_baseline_with_wider_networks() -> None:
    val, test = load(1, 0), load(1, 1)
    s = all_in_one_selection(val, 3.0)
    assert s is not None and s.labels == ["semseg+depth+normals+keypoints+edges@1"]
    assert round(score(s, test).total_loss, 5) == 0.50278
    assert all_in_one_selection(val, 0.5) is None
    tasks = set(val.tasks)
    wide2 = Candidate(frozenset(tasks), 2.0, {t: 0.09 for t in tasks})
    wide4 = Candidate(frozenset(tasks), 4.0, {t: 0.08 for t in tasks})
    assert all_in_one_selection(val, 3.0, wider=[wide2, wide4]).total_cost == 2.0  # type: ignore[union-attr]
    assert all_in_one_selection(val, 4.0, wider=[wide2, wide4]).total_loss == pytest.approx(0.4)  # type: ignore[union-attr]


def test_random_groupings_sequential_matches_paper_curve() -> None:
    """Standley's random process, scored on the test file (paper: mean of 10^6 draws)."""
    test = load(1, 1)
    paper = {1.0: 0.50278, 2.0: 0.473641, 3.5: 0.46271, 5.0: 0.456486}
    for b, want in paper.items():
        r = random_groupings(test, b, method="sequential", n_samples=6000, seed=1)
        assert r is not None and r.n_samples == 6000
        assert r.mean == pytest.approx(want, abs=1.5e-3)


def test_random_partitions_seeded_and_exact_at_budget_1() -> None:
    val, test = load(1, 0), load(1, 1)
    r1 = random_groupings(val, 1.0, score_table=test, n_samples=500, seed=0)
    assert r1 is not None and r1.mean == pytest.approx(0.50278, abs=1e-12) and r1.std < 1e-12
    a = random_groupings(val, 3.0, score_table=test, n_samples=2000, seed=5)
    b = random_groupings(val, 3.0, score_table=test, n_samples=2000, seed=5)
    c = random_groupings(val, 3.0, score_table=test, n_samples=2000, seed=6)
    assert a == b and a is not None and c is not None and a.mean != c.mean
    # between the best and the worst choices
    assert select(val, 3.0).total_loss < a.mean < 0.50278
    # no grouping can ever fit: answered at once, not after millions of rejected draws
    small = CandidateTable(["a", "b"], [Candidate(frozenset("a"), 1, {"a": 1.0})])
    assert random_groupings(small, 5.0) is None  # b is never predicted


# ---------------------------------------------------------------------------------------
# (3) edge cases
# ---------------------------------------------------------------------------------------
def test_ties_prefer_cheaper_then_fewer_heads() -> None:
    t = CandidateTable(
        ["a", "b"],
        [
            Candidate(frozenset("a"), 1.0, {"a": 0.1}),
            Candidate(frozenset("ab"), 1.0, {"a": 0.1, "b": 0.5}),
            Candidate(frozenset("b"), 1.0, {"b": 0.2}),
            Candidate(frozenset("b"), 3.0, {"b": 0.2}),  # dominated: same loss, dearer
        ],
    )
    s = select(t, 2.0)
    assert sorted(s.labels) == ["a@1", "b@1"] and s.total_loss == pytest.approx(0.3)
    assert select(t, 2.0, method="bnb").labels == s.labels
    assert select(t, 10.0).labels == s.labels  # spare budget is not spent on nothing
    s1 = select(t, 1.0)
    assert s1.labels == ["a+b@1"] and s1.total_loss == pytest.approx(0.6)


def test_dominated_candidates_never_chosen() -> None:
    rng = np.random.default_rng(11)
    t = CandidateTable(
        ["a", "b", "c"],
        [
            Candidate(frozenset("abc"), 1.0, {"a": 0.5, "b": 0.5, "c": 0.5}),
            Candidate(frozenset("ab"), 1.0, {"a": 0.3, "b": 0.3}),
            Candidate(frozenset("ab"), 1.5, {"a": 0.4, "b": 0.35}),  # dominated by ab@1
            Candidate(frozenset("c"), 0.5, {"c": 0.2}),
            Candidate(frozenset("c"), 0.7, {"c": 0.25}),  # dominated by c@0.5
        ],
    )
    for b in rng.uniform(1.0, 5.0, 10):
        for m in ("dp", "bnb", "partition"):
            s = select(t, float(b), method=m)  # type: ignore[arg-type]
            assert "a+b@1.5" not in s.labels and "c@0.7" not in s.labels
    assert sorted(select(t, 1.5).labels) == ["a+b@1", "c@0.5"]


def test_infeasible_budget() -> None:
    val = load(1, 0)
    with pytest.raises(InfeasibleBudgetError, match="costs at least 1"):
        select(val, 0.9)
    with pytest.raises(InfeasibleBudgetError):
        select(val, 0.9, method="bnb")
    with pytest.raises(InfeasibleBudgetError):
        select(val, 0.9, method="partition")
    many = select_many(val, [0.5, 1.0, 0.99])
    assert many[0] is None and many[1] is not None and many[2] is None
    lonely = CandidateTable(["a", "b"], [Candidate(frozenset("a"), 1, {"a": 1.0})])
    with pytest.raises(InfeasibleBudgetError, match=r"task\(s\) \['b'\]"):
        select(lonely, 100)
    with pytest.raises(ConfigError):
        select(val, -1)
    with pytest.raises(ConfigError):
        select(val, float("nan"))
    with pytest.raises(ConfigError):
        select(val, 2, method="greedy")  # type: ignore[arg-type]


def test_single_all_task_network() -> None:
    one = CandidateTable(["a", "b", "c"], [Candidate(frozenset("abc"), 1.0, {"a": 0.1, "b": 0.2, "c": 0.3})])
    for m in ("dp", "bnb", "partition"):
        s = select(one, 2.0, method=m)  # type: ignore[arg-type]
        assert s.labels == ["a+b+c@1"] and s.total_loss == pytest.approx(0.6) and s.total_cost == 1.0
    with pytest.raises(InfeasibleBudgetError):
        select(one, 0.5)
    assert all_in_one_selection(one, 1.0).labels == ["a+b+c@1"]  # type: ignore[union-attr]
    assert independent_selection(one, 5.0) is None
    assert worst_selection(one, 3.0).total_loss == pytest.approx(0.6)  # type: ignore[union-attr]
    r = random_groupings(one, 1.0, n_samples=50)
    assert r is not None and r.mean == pytest.approx(0.6)
    assert select_many(one, []) == []


def test_select_many_keeps_budget_order() -> None:
    val = load(2, 0)
    bs = [3.0, 1.0, 3.0, 2.0]
    got = [round(s.total_loss, 9) for s in select_many(val, bs) if s]
    assert got == [round(select(val, b).total_loss, 9) for b in bs]


def test_score_assignment_and_missing_match() -> None:
    val, test = load(1, 0), load(1, 1)
    s = select(val, 2.0)
    fixed = score(s, test, assignment="fixed")
    smin = score(s, test)
    assert smin.total_loss <= fixed.total_loss + 1e-15
    assert round(smin.total_loss, 5) == 0.45224
    combined = val.with_test_losses(test)
    assert score(select(combined, 2.0)).total_loss == pytest.approx(smin.total_loss)
    partial = test.filter(lambda c: len(c.tasks) < 3)
    with pytest.raises(DataError, match="semseg\\+depth\\+normals@1"):
        score(s, partial)
    with pytest.raises(DataError, match="no test loss for task"):
        score(s)  # the validation table has no test losses


def test_higher_order_approximation_formula() -> None:
    t = CandidateTable(
        ["a", "b", "c"],
        [
            Candidate(frozenset("ab"), 1, {"a": 0.1, "b": 0.2}),
            Candidate(frozenset("bc"), 1, {"b": 0.3, "c": 0.4}),
            Candidate(frozenset("ac"), 1, {"a": 0.5, "c": 0.6}),
            Candidate(frozenset("abc"), 1, {"a": 9.0, "b": 9.0, "c": 9.0}, test_loss={"a": 1, "b": 2, "c": 3}),
            Candidate(frozenset("abc"), 2, {"a": 9.0, "b": 9.0, "c": 9.0}),  # no pairs of cost 2
        ],
    )
    h = higher_order_approximation(t)
    assert len(h) == 4
    abc = h[h.index_of((frozenset("abc"), 1.0))]  # type: ignore[index]
    assert abc.val_loss == pytest.approx({"a": 0.3, "b": 0.25, "c": 0.5})
    assert abc.test_loss == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert h[0] == t[0]


# ---------------------------------------------------------------------------------------
# (4) tables: formats and errors
# ---------------------------------------------------------------------------------------
def sample_table() -> CandidateTable:
    return CandidateTable(
        ["a", "b", "c"],
        [
            Candidate(frozenset("a"), 0.5, {"a": 0.25}, test_loss={"a": 0.26}, train_seconds=12.5),
            Candidate(frozenset("ab"), 1.0, {"a": 0.2, "b": 0.125}, extra={"width": "1.0", "note": "x,y"}),
            Candidate(frozenset("abc"), 1.0, {"a": 0.3, "b": 0.1, "c": 1 / 3}, test_loss={"a": 0.31, "b": 0.11, "c": 0.34}),
        ],
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    t = sample_table()
    p = t.write(tmp_path / f"cands{suffix}")
    back = CandidateTable.read(p)
    assert back == t and back.tasks == ("a", "b", "c")
    assert back[2].val_loss["c"] == 1 / 3  # floats survive exactly
    assert read_table(p) == t
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temp files left


def test_csv_layout(tmp_path: Path) -> None:
    p = sample_table().to_csv(tmp_path / "t.csv")
    header = p.read_text().splitlines()[0].split(",")
    assert header[:5] == ["tasks", "cost", "val_loss/a", "val_loss/b", "val_loss/c"]
    assert "test_loss/c" in header and "train_seconds" in header and "width" in header
    assert p.read_text().splitlines()[2].startswith("a+b,1.0,")


def test_upsert_file_resume(tmp_path: Path) -> None:
    p = tmp_path / "runs" / "candidates.csv"
    with pytest.raises(DataError, match="pass tasks="):
        upsert_file(p, Candidate(frozenset("a"), 1, {"a": 0.5}))
    upsert_file(p, Candidate(frozenset("a"), 1, {"a": 0.5}), tasks=["a", "b"])
    upsert_file(p, Candidate(frozenset("b"), 1, {"b": 0.7}))
    t = upsert_file(p, Candidate(frozenset("a"), 1, {"a": 0.4}, train_seconds=3))
    back = CandidateTable.read(p)
    assert back == t and len(back) == 2 and back[0].val_loss == {"a": 0.4}
    with pytest.raises(DataError, match="has tasks"):
        upsert_file(p, Candidate(frozenset("a"), 1, {"a": 0.4}), tasks=["a", "c"])
    with pytest.raises(DataError, match="duplicate"):
        back.append(Candidate(frozenset("a"), 1.0, {"a": 0.1}))
    assert [f.name for f in p.parent.iterdir()] == ["candidates.csv"]


def test_read_standley_infers_subsets() -> None:
    t = read_standley(EX / "results.txt")
    assert len(t) == 36 and t.tasks == ("semseg", "depth", "normals", "keypoints", "edges")
    assert [c.cost for c in t].count(0.5) == 5
    line8 = t[5 + 7 - 1]  # file line 8: "0.074 <empty> 0.0997"
    assert t.label(line8) == "semseg+normals@1" and line8.val_loss == {"semseg": 0.074, "normals": 0.0997}
    assert len({c.key for c in t}) == 36
    alt20 = read_standley(EX / "results_alt_20.txt")
    assert len(alt20) == 35 and alt20.tasks[0] == "autoencoder"
    assert alt20.index_of((frozenset({"normals", "occlusion_edges"}), 1.0)) is None
    named = read_standley(EX / "results.txt", ["s", "d", "n", "k", "e"])
    assert named.tasks == ("s", "d", "n", "k", "e")


def _bad(tmp_path: Path, text: str, name: str = "bad.csv") -> str:
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(DataError) as e:
        read_table(p)
    msg = str(e.value)
    assert "\n" not in msg and name in msg
    return msg


def test_data_errors_name_file_row_and_column(tmp_path: Path) -> None:
    head = "tasks,cost,val_loss/a,val_loss/b\n"
    msg = _bad(tmp_path, "tasks,val_loss/a\na,0.1\n")
    assert "missing column 'cost'" in msg
    msg = _bad(tmp_path, head + "a,1,0.1,\na+b,1,0.2,abc\n")
    assert "row 2" in msg and "'val_loss/b'" in msg and "non-numeric value 'abc'" in msg
    msg = _bad(tmp_path, head + "a,-1,0.1,\n")
    assert "row 1" in msg and "'cost'" in msg and ">= 0" in msg
    msg = _bad(tmp_path, head + "a+z,1,0.1,\n")
    assert "row 1" in msg and "'tasks'" in msg and "unknown task 'z'" in msg
    msg = _bad(tmp_path, head.strip() + ",test_loss/q\na,1,0.1,,\n")
    assert "'test_loss/q'" in msg and "unknown task 'q'" in msg
    msg = _bad(tmp_path, head + "a,1,,\n")
    assert "row 1" in msg and "'val_loss/a'" in msg and "empty" in msg
    msg = _bad(tmp_path, head + "a,1,0.1,0.3\n")
    assert "'val_loss/b'" in msg and "not in 'tasks'" in msg
    msg = _bad(tmp_path, head + "a,1,0.1,\na,1.0,0.2,\n")
    assert "row 2" in msg and "duplicate of row 1" in msg
    msg = _bad(tmp_path, head + "a,1,0.1\n")
    assert "row 1" in msg
    msg = _bad(tmp_path, "0.1\t0.2\n0.3\tx\n", name="bad.txt")
    assert "row 2" in msg and "column 2" in msg and "'x'" in msg
    msg = _bad(tmp_path, "0.1\t0.2\n0.3\n", name="bad2.txt")
    assert "row 2" in msg and "1 tab-separated cells" in msg
    msg = _bad(tmp_path, "0.1\t0.2\n0.3\t\n\t0.4\n0.5\t\n", name="dup.txt")
    assert "row 4" in msg and "duplicate network" in msg
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="unknown table format"):
        sample_table().write(tmp_path / "t.xlsx")
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="x.parquet: not a readable Parquet file"):
        read_table(tmp_path / "x.parquet")


def test_candidate_validation() -> None:
    with pytest.raises(DataError, match="val_loss tasks"):
        Candidate(frozenset("ab"), 1, {"a": 0.1})
    with pytest.raises(DataError, match="cost"):
        Candidate(frozenset("a"), float("inf"), {"a": 0.1})
    with pytest.raises(DataError, match="unknown task"):
        CandidateTable(["a"], [Candidate(frozenset("b"), 1, {"b": 0.1})])
    with pytest.raises(DataError, match="bad task name"):
        Candidate(frozenset(["a+b"]), 1, {"a+b": 0.1})


# ---------------------------------------------------------------------------------------
# (5) analyses (the paper's Tables 1-3)
# ---------------------------------------------------------------------------------------
TABLE_2 = {  # rows: trained with; columns: performance on (s, d, n, k, e)
    "semseg": [None, -5.41, -11.29, -4.32, -34.64],
    "depth": [4.17, None, -3.55, 3.49, 3.76],
    "normals": [8.50, 2.48, None, 1.37, 12.33],
    "keypoints": [4.82, 1.38, -0.02, None, -5.26],
    "edges": [3.07, -0.92, -4.42, 1.37, None],
}


def test_table_2_pairwise_relative_performance() -> None:
    P = pairwise_relative_performance(load(1, 1))  # the paper uses the test losses
    for i, row in enumerate(TABLE_2.values()):
        for j, want in enumerate(row):
            got = P.values[i, j]
            assert (want is None and math.isnan(got)) or round(got, 2) == want
    assert round(P["depth", "semseg"], 2) == 4.17
    assert [round(x, 2) for x in P.row_means()] == [-13.92, 1.97, 6.17, 0.23, -0.23]
    assert [round(x, 2) for x in P.col_means()] == [5.14, -0.62, -4.82, 0.48, -5.95]
    assert round(P["depth", "semseg"], 2) != round(pairwise_relative_performance(load(1, 0))["depth", "semseg"], 2)
    md = P.to_markdown()
    assert "| depth | 4.17% | — |" in md and "-1.15%" in md


def test_table_3_affinity() -> None:
    A = affinity(pairwise_relative_performance(load(1, 1)))
    want = {
        ("semseg", "depth"): -0.62, ("semseg", "normals"): -1.39, ("semseg", "keypoints"): 0.25,
        ("semseg", "edges"): -15.78, ("depth", "normals"): -0.54, ("depth", "keypoints"): 2.43,
        ("depth", "edges"): 1.42, ("normals", "keypoints"): 0.67, ("normals", "edges"): 3.95,
        ("keypoints", "edges"): -1.95,
    }
    for (a, b), v in want.items():
        assert round(A[a, b], 2) == v and A[a, b] == A[b, a]
    assert math.isnan(A["depth", "depth"])


def test_table_1_multitask_vs_independent() -> None:
    rows = multitask_vs_independent(load(1, 1))
    assert [r["n_networks"] for r in rows] == [5, 10, 10, 5, 1]
    assert [round(r["each"], 2) for r in rows] == [0.0, -7.56, -7.23, -10.69, -19.00]  # type: ignore[arg-type]
    assert round(rows[1]["total"], 2) == -1.15  # type: ignore[arg-type]
    assert rows[0]["total"] == 0.0 and all(r["total"] is None for r in rows[2:])
    tot = multitask_vs_independent(load(1, 1), aggregate="total")
    assert round(tot[1]["each"], 2) == -5.42  # type: ignore[arg-type]


def test_pearson_r() -> None:
    from scipy.stats import pearsonr

    P1 = pairwise_relative_performance(load(1, 1))
    P3 = pairwise_relative_performance(load(3, 1))
    off = ~np.eye(5, dtype=bool)
    want = pearsonr(P1.values[off], P3.values[off])[0]
    assert pearson_r(P1, P3) == pytest.approx(want) and pearson_r(P3, P1) == pytest.approx(want)
    assert pearson_r(P1, P1) == pytest.approx(1.0)
    neg = type(P1)(P1.tasks, -P1.values)
    assert pearson_r(P1, neg) == pytest.approx(-1.0)


# ---------------------------------------------------------------------------------------
# (6) report and plot
# ---------------------------------------------------------------------------------------
def test_parse_budgets() -> None:
    assert parse_budgets("1:5:0.5") == BUDGETS
    assert parse_budgets("1,2,3") == [1.0, 2.0, 3.0]
    assert parse_budgets("0.1:0.3:0.1") == [0.1, 0.2, 0.3]
    assert parse_budgets("1:3") == [1.0, 2.0, 3.0]
    assert parse_budgets(" 0.5, 1:2:0.5 ,2") == [0.5, 1.0, 1.5, 2.0]
    for bad in ["", "a", "1:5:0", "5:1:1", "1:2:3:4", "-1", "1,,2", "1:5:-0.5", "nan", "1:1e9:1e-3"]:
        with pytest.raises(ConfigError):
            parse_budgets(bad)


def test_run_select_standley(tmp_path: Path) -> None:
    res = run_select(
        str(EX / "results.txt"), BUDGETS, str(EX / "results_test.txt"), str(tmp_path / "out"), n_random=300
    )
    assert [round(x, 5) for x in res["curves"]["optimal (test)"]] == OPTIMAL_TEST[1]
    assert [round(x, 5) for x in res["curves"]["optimal (val)"]] == VAL_OPTIMUM_1
    assert [round(x, 5) for x in res["curves"]["worst choice (test)"]] == WORST[1]
    assert res["curves"]["independent (test)"][:3] == [None, None, None]
    sel = res["selections"][3]
    assert sel["budget"] == 2.5 and sorted(sel["networks"]) == [
        "normals+keypoints+edges@1", "normals@0.5", "semseg+depth+normals@1"
    ]
    files = res["files"]
    for k in ("markdown", "csv", "plot", "json"):
        assert Path(files[k]).is_file()
    assert Path(files["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(Path(files["json"]).read_text())["curves"] == res["curves"]
    assert "| 2.5 |" in Path(files["markdown"]).read_text()
    assert len(Path(files["csv"]).read_text().splitlines()) == 1 + len(BUDGETS)
    json.dumps(res)  # JSON-able


def test_run_select_csv_with_own_test_losses(tmp_path: Path) -> None:
    combined = load(4, 0).with_test_losses(load(4, 1))
    p = combined.write(tmp_path / "setting4.parquet")
    res = run_select(str(p), [0.5, 1.0, 2.0], n_random=200)
    assert res["selections"][0] == {"budget": 0.5, "feasible": False}
    assert [round(x, 5) for x in res["curves"]["optimal (test)"][1:]] == [0.68404, 0.67460]
    assert res["files"] == {}
    val_only = load(4, 0).write(tmp_path / "val.csv")
    res2 = run_select(str(val_only), [2.0], baselines=False)
    assert "optimal (test)" not in res2["curves"] and res2["scored_on"] is None


def test_plot_budget_curves(tmp_path: Path) -> None:
    p = plot_budget_curves({"a": [1.0, None, 0.5], "b": [0.9, 0.8, float("nan")]}, [1, 2, 3], tmp_path / "p.png")
    assert p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 5000
    with pytest.raises(ValueError):
        plot_budget_curves({"a": [1.0]}, [1, 2], tmp_path / "q.png")
