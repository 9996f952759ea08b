"""Per-task errors against single-task models, balance and Pearson's r (Figures 5 and 6)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from manytask.errors import ConfigError, DataError
from manytask.evaluation.per_task import (
    balance_vs_benefit,
    compare_tasks,
    minority_share,
    pearson,
    relative_error,
    task_error,
)


def test_errors_by_kind():
    assert task_error("binary", {"accuracy": 0.9}) == pytest.approx(0.1)
    assert task_error("multiclass", {"accuracy": 0.25}) == pytest.approx(0.75)
    assert task_error("regression", {"mse": 0.4, "r2": 0.6}) == 0.4
    assert task_error("regression", {"mse": 0.4, "r2": 0.6}, "1-r2") == pytest.approx(0.4)
    with pytest.raises(ConfigError, match="regression_error"):
        task_error("regression", {"mse": 1.0}, "mae")
    with pytest.raises(DataError, match="no 'accuracy'"):
        task_error("binary", {"loss": 1.0})
    with pytest.raises(ConfigError, match="ranking"):
        task_error("ranking", {"accuracy": 1.0})


def test_relative_error():
    assert relative_error(0.12, 0.10) == pytest.approx(0.2)
    assert relative_error(0.05, 0.10) == pytest.approx(-0.5)
    assert relative_error(0.0, 0.0) == 0.0
    assert relative_error(0.1, 0.0) == math.inf


def test_minority_share_with_mask():
    assert minority_share(np.array([1, 1, 1, 0])) == 0.25
    assert minority_share(np.array([0, 0, 0, 1])) == 0.25
    assert minority_share(np.array([1, 0, 1, 0, 1]), mask=np.array([1, 1, 1, 1, 0])) == 0.5
    with pytest.raises(DataError, match="0 or 1"):
        minority_share(np.array([0, 2]))


def test_pearson_of_lines_and_degenerate_cases():
    x = np.arange(6.0)
    r, p = pearson(x, 3 * x + 1)
    assert r == pytest.approx(1.0) and p < 1e-6
    r, _ = pearson(x, -2 * x)
    assert r == pytest.approx(-1.0)
    r, p = pearson([0.0, 1.0, 2.0, 3.0], [1.0, 3.0, 2.0, 4.0])  # r = 0.8 by hand: cov 1.667 / (1.291 * 1.291)
    assert r == pytest.approx(0.8)
    assert math.isnan(pearson([1, 2], [3, 4])[0])
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3])[0])
    assert pearson([1, 2, 3, np.nan], [2, 4, 6, 0])[0] == pytest.approx(1.0)


def test_compare_tasks_sorts_and_balance_vs_benefit_correlates():
    kinds = {"b1": "binary", "b2": "binary", "b3": "binary", "m": "multiclass", "r": "regression", "x": "binary"}
    mtl = {"b1": {"accuracy": 0.95}, "b2": {"accuracy": 0.80}, "b3": {"accuracy": 0.70},
           "m": {"accuracy": 0.5}, "r": {"mse": 0.3}, "x": {"accuracy": 0.5}}
    stl = {"b1": {"accuracy": 0.90}, "b2": {"accuracy": 0.80}, "b3": {"accuracy": 0.75},
           "m": {"accuracy": 0.6}, "r": {"mse": 0.2}}  # no single-task run for x
    balance = {"b1": 0.1, "b2": 0.3, "b3": 0.5}
    rows = compare_tasks(kinds, mtl, stl, balance)
    assert [r.task for r in rows] == ["b1", "b2", "b3", "m", "r"]
    assert rows[0].relative == pytest.approx((0.05 - 0.10) / 0.10)
    fig6 = balance_vs_benefit(rows)
    assert fig6["tasks"] == ["b1", "b2", "b3"] and fig6["n"] == 3
    assert fig6["r"] > 0.9  # more balanced -> more lost against the single-task model
    with pytest.raises(DataError, match="task 'x'"):
        compare_tasks(kinds, {"b1": {"accuracy": 1.0}}, {"x": {"accuracy": 1.0}})


def test_figures_are_written(tmp_path):
    from manytask.reporting.per_task_plots import (
        plot_balance_vs_benefit,
        plot_heldout,
        plot_relative_errors,
    )

    kinds = {"b1": "binary", "b2": "binary", "b3": "binary", "r": "regression"}
    mtl = {"b1": {"accuracy": 0.9}, "b2": {"accuracy": 0.8}, "b3": {"accuracy": 0.7}, "r": {"mse": 0.5}}
    stl = {"b1": {"accuracy": 0.9}, "b2": {"accuracy": 0.85}, "b3": {"accuracy": 0.8}, "r": {"mse": 0.4}}
    rows = compare_tasks(kinds, mtl, stl, {"b1": 0.1, "b2": 0.2, "b3": 0.4})
    p5 = plot_relative_errors({"pseudo_uniform": rows, "uncertainty": rows[:2]}, tmp_path / "f5.png")
    p6 = plot_balance_vs_benefit({"pseudo_uniform": balance_vs_benefit(rows)}, tmp_path / "f6.png")
    table = {"fractions": [0.5, 1.0], "rows": [{"label": "a", "cells": {"0.5": {"mean": 0.5, "std": 0.1},
                                                                       "1": {"mean": 0.6, "std": 0.0}}}]}
    p2 = plot_heldout(table, tmp_path / "t2.png")
    for p in (p5, p6, p2):
        assert p.read_bytes()[:4] == b"\x89PNG"
