"""Loss weighting and gradient methods: one registry, one ``backward(losses, shared)`` entry point.

Loss-level: ``uniform``, ``pseudo_uniform``, ``uncertainty``, ``revised_uncertainty``, ``dwa``,
``rlw``, ``famo``. Gradient-level (per-task gradients from :mod:`manytask.weighting.gradients`):
``gradnorm``, ``mgda``, ``mgda_ub``, ``pcgrad``, ``cagrad``, ``imtl_g``. See ``docs/weighting.md``.
"""

from manytask.weighting.base import (
    LossWeighting,
    SharedParts,
    StepInfo,
    WeightingMethod,
    available,
    create,
    create_from_train,
    get,
    register,
)
from manytask.weighting.cagrad import CAGrad, cagrad_coefficients
from manytask.weighting.dwa import DWA
from manytask.weighting.famo import FAMO
from manytask.weighting.gradients import GradientEngine, GradientWeighting, write_grads
from manytask.weighting.gradnorm import GradNorm
from manytask.weighting.imtl import IMTLG, imtl_g_weights
from manytask.weighting.mgda import MGDA, MGDAUB, min_norm_weights
from manytask.weighting.pcgrad import PCGrad, pcgrad_coefficients
from manytask.weighting.pseudo_uniform import PseudoUniform, label_variance
from manytask.weighting.rlw import RLW
from manytask.weighting.uncertainty import RevisedUncertainty, Uncertainty
from manytask.weighting.uniform import Uniform

__all__ = [
    "CAGrad",
    "DWA",
    "FAMO",
    "GradNorm",
    "GradientEngine",
    "GradientWeighting",
    "IMTLG",
    "LossWeighting",
    "MGDA",
    "MGDAUB",
    "PCGrad",
    "PseudoUniform",
    "RLW",
    "RevisedUncertainty",
    "SharedParts",
    "StepInfo",
    "Uncertainty",
    "Uniform",
    "WeightingMethod",
    "available",
    "cagrad_coefficients",
    "create",
    "create_from_train",
    "get",
    "imtl_g_weights",
    "label_variance",
    "min_norm_weights",
    "pcgrad_coefficients",
    "register",
    "write_grads",
]
