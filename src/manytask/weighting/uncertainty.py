"""Homoscedastic-uncertainty weighting: Kendall et al. 2018 and the revision of Liebel & Körner 2018.

Both learn one noise parameter per task, ``s_k = log σ_k²`` (an ``nn.Parameter`` initialised
to 0, i.e. σ_k = 1), together with the network; add ``method.parameters()`` to the optimizer.

Optimiser group of ``s`` (``param_optimizer``): the network's learning rate, **no momentum and
no weight decay**. Kendall et al. publish no code. The reference implementation we followed,
LibMTL's ``UW`` (Lin & Zhang), trains ``s`` in the network's optimiser, Adam, whose step is about
``lr`` whatever the gradient's size; Nash-MTL's experiment code gives the method's parameters an
Adam group of their own (``--method-params-lr``). Under SGD with heavy-ball momentum 0.9 the same
``lr`` moves ``s`` up to ten times further on a steady gradient: from ``s = 0`` the classification
weight ``e^{-s}`` overshoots below its equilibrium ``1/(2L)`` within the first few dozen steps,
which is the same as cutting the network's learning rate. Momentum 0 keeps SGD's step on ``s`` at
``lr`` times its gradient; weight decay would pull ``s`` towards 0 (σ = 1), which is no part of
either method. ``weighting.optimizer`` trains ``s`` otherwise (``momentum: 0.9`` gives the
network's settings).

Kendall, Gal & Cipolla, "Multi-task learning using uncertainty to weigh losses for scene
geometry and semantics", CVPR 2018 (eqs. 7 and 10)::

    classification (binary, multiclass, multilabel):  L_k / σ_k²      + log σ_k  =  e^{-s_k} L_k     + s_k / 2
    regression (and reconstruction):                  L_k / (2 σ_k²)  + log σ_k  =  ½ e^{-s_k} L_k   + s_k / 2

For a fixed loss the objective is minimised at ``s* = log(2 L)`` for the classification form
(``-e^{-s} L + ½ = 0``) and at ``s* = log L`` for the regression form.

Liebel & Körner, "Auxiliary tasks in multi-task learning", arXiv:1805.06334, 2018: the same
``1/(2σ²)`` factor for every task and a regulariser that stays positive::

    L_k / (2 σ_k²) + ln(1 + σ_k²)  =  ½ e^{-s_k} L_k + softplus(s_k)

The paper writes the objective in σ; we learn ``s = log σ²`` (same optimum, σ² stays
positive without clipping). The optimum in σ² solves ``σ⁴ - (L/2) σ² - L/2 = 0``:
``σ²* = (L + sqrt(L² + 8 L)) / 4``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from manytask.tasks import Task
from manytask.weighting import _validate
from manytask.weighting.base import LossWeighting, register


@register
class Uncertainty(LossWeighting):
    """Kendall et al. 2018: ``Σ_k f_k e^{-s_k} L_k + s_k/2`` with ``f_k = 1`` for classification
    and ``½`` for regression/reconstruction; ``s_k = log σ_k²`` learned.

    Args:
        tasks: the tasks in loss order (their kind picks the form).
        init_log_var: initial ``s_k`` (default 0.0).

    ``StepInfo.weights`` is ``f_k e^{-s_k}``.
    """

    name = "uncertainty"
    display_name = "Uncertainty"
    param_optimizer = {"momentum": 0.0, "weight_decay": 0.0}
    factor: Tensor

    def __init__(self, tasks: Sequence[Task], init_log_var: float = 0.0) -> None:
        super().__init__(tasks)
        init = _validate.number(self.name, "init_log_var", init_log_var)
        self.log_vars = nn.Parameter(torch.full((self.k,), init, dtype=torch.float32))
        factor = [1.0 if t.is_classification else 0.5 for t in self.tasks]
        self.register_buffer("factor", torch.tensor(factor, dtype=torch.float32))

    def weights(self, losses: Tensor) -> tuple[Tensor, Tensor | None]:
        s = self.log_vars.to(losses.dtype)
        w = self.factor.to(losses.dtype) * torch.exp(-s)
        return w, 0.5 * s.sum()


@register
class RevisedUncertainty(LossWeighting):
    """Liebel & Körner 2018: ``Σ_k ½ e^{-s_k} L_k + ln(1 + e^{s_k})`` with ``s_k = log σ_k²`` learned.

    Args:
        tasks: the tasks in loss order.
        init_log_var: initial ``s_k`` (default 0.0, i.e. σ_k = 1).

    ``StepInfo.weights`` is ``½ e^{-s_k}``.
    """

    name = "revised_uncertainty"
    display_name = "Revised uncertainty"
    param_optimizer = {"momentum": 0.0, "weight_decay": 0.0}

    def __init__(self, tasks: Sequence[Task], init_log_var: float = 0.0) -> None:
        super().__init__(tasks)
        init = _validate.number(self.name, "init_log_var", init_log_var)
        self.log_vars = nn.Parameter(torch.full((self.k,), init, dtype=torch.float32))

    def weights(self, losses: Tensor) -> tuple[Tensor, Tensor | None]:
        s = self.log_vars.to(losses.dtype)
        return 0.5 * torch.exp(-s), F.softplus(s).sum()
