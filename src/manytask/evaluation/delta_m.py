"""Δm: the average relative gain of a multi-task model over single-task baselines.

Maninis et al. 2019 ("Attentive single-tasking of multiple tasks") and Vandenhende et al.
2021 summarise a multi-task model ``m`` over ``T`` task metrics by

.. math::

    \\Delta_m = \\frac{1}{T} \\sum_{i=1}^{T} s_i \\,
                \\frac{M_{m,i} - M_{\\mathrm{stl},i}}{M_{\\mathrm{stl},i}} \\times 100

with ``s_i = +1`` when a higher value of metric ``i`` is better (accuracy) and ``s_i = -1``
when a lower value is better (MSE). Written as in the papers, ``s_i = (-1)^{l_i}`` with
``l_i = 1`` for *lower is better*. With this sign convention **a positive Δm means the
multi-task model is better than single-task learning** on average, in percent; Δm of the
single-task baseline itself is 0.

Each task enters with equal weight whatever its scale, because every term is relative to its
own baseline. The baseline must therefore be non-zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from manytask.errors import ConfigError

__all__ = ["delta_m", "relative_gain"]


def relative_gain(value: float, baseline: float, higher_is_better: bool) -> float:
    """Signed relative improvement of ``value`` over ``baseline`` in percent.

    ``s · (value − baseline) / baseline × 100`` with ``s = +1`` if higher is better, else −1.
    Positive = better than the baseline. NaN if either number is NaN.

    Raises:
        ConfigError: ``baseline`` is zero (the relative change is undefined).
    """
    if math.isnan(value) or math.isnan(baseline):
        return math.nan
    if baseline == 0:
        raise ConfigError("delta_m: a single-task baseline metric is 0; the relative change is undefined")
    sign = 1.0 if higher_is_better else -1.0
    return sign * (value - baseline) / abs(baseline) * 100.0


def delta_m(method: Mapping[str, float], baseline: Mapping[str, float],
            higher_is_better: Mapping[str, bool]) -> float:
    """Δm of ``method`` against ``baseline`` over the tasks in ``higher_is_better``.

    Args:
        method: task name → the multi-task model's metric (e.g. mean test accuracy).
        baseline: task name → the single-task model's metric for the same task.
        higher_is_better: task name → whether a higher value of that task's metric is better;
            its keys are the ``T`` tasks that are averaged.

    Returns:
        Δm in percent (positive = better than the baseline); NaN if any metric is NaN.

    Raises:
        ConfigError: no tasks, a task missing from ``method`` or ``baseline``, or a zero
            baseline.

    Example:
        >>> delta_m({"acc": 0.6, "mse": 0.5}, {"acc": 0.5, "mse": 1.0},
        ...         {"acc": True, "mse": False})  # (+20% + 50%) / 2
        35.0
    """
    if not higher_is_better:
        raise ConfigError("delta_m: no tasks given")
    gains = []
    for task, higher in higher_is_better.items():
        if task not in method:
            raise ConfigError(f"delta_m: task '{task}' has no metric for the multi-task model")
        if task not in baseline:
            raise ConfigError(f"delta_m: task '{task}' has no single-task baseline")
        gains.append(relative_gain(float(method[task]), float(baseline[task]), bool(higher)))
    return float(sum(gains) / len(gains))
