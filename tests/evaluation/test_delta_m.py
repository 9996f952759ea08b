"""Δm: the relative gain over single-task baselines, checked by hand."""

from __future__ import annotations

import math

import pytest

from manytask.errors import ConfigError
from manytask.evaluation.delta_m import delta_m, relative_gain

HIGHER = {"digit": True, "image": False}  # accuracy (higher is better), MSE (lower is better)


def test_two_tasks_by_hand() -> None:
    # accuracy 0.90 -> 0.92: +2.2222%; MSE 0.050 -> 0.045: 10% lower = +10%
    got = delta_m({"digit": 0.92, "image": 0.045}, {"digit": 0.90, "image": 0.050}, HIGHER)
    assert got == pytest.approx((0.02 / 0.90 * 100 + 10.0) / 2)
    assert got == pytest.approx(6.1111111, abs=1e-6)


def test_sign_convention_positive_means_better() -> None:
    base = {"digit": 0.9, "image": 0.05}
    assert delta_m(base, base, HIGHER) == 0.0
    worse = {"digit": 0.8, "image": 0.06}  # lower accuracy, higher MSE
    assert delta_m(worse, base, HIGHER) < 0
    mixed = {"digit": 0.99, "image": 0.06}  # +10% and -20%
    assert delta_m(mixed, base, HIGHER) == pytest.approx((10.0 - 20.0) / 2)


def test_scale_invariance_and_single_terms() -> None:
    # accuracy as a fraction or in percent gives the same relative gain
    assert relative_gain(0.95, 0.90, True) == pytest.approx(relative_gain(95.0, 90.0, True))
    assert relative_gain(2.0, 4.0, False) == pytest.approx(50.0)
    assert relative_gain(2.0, 4.0, True) == pytest.approx(-50.0)
    assert math.isnan(relative_gain(math.nan, 1.0, True))
    assert math.isnan(delta_m({"digit": math.nan, "image": 0.1}, {"digit": 0.5, "image": 0.1}, HIGHER))


def test_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="no single-task baseline"):
        delta_m({"digit": 0.9, "image": 0.1}, {"digit": 0.9}, HIGHER)
    with pytest.raises(ConfigError, match="no metric for the multi-task model"):
        delta_m({"digit": 0.9}, {"digit": 0.9, "image": 0.1}, HIGHER)
    with pytest.raises(ConfigError, match="baseline metric is 0"):
        delta_m({"digit": 0.9, "image": 0.1}, {"digit": 0.9, "image": 0.0}, HIGHER)
    with pytest.raises(ConfigError, match="no tasks"):
        delta_m({}, {}, {})
