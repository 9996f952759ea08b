"""Loss weighting and gradient methods: one registry, one ``backward(losses, shared)`` entry point.

Loss-level: ``uniform``, ``pseudo_uniform``, ``uncertainty``, ``revised_uncertainty``, ``dwa``,
``rlw``, ``famo``. Gradient-level (per-task gradients from :mod:`manytask.weighting.gradients`):
``gradnorm``, ``mgda``, ``mgda_ub``, ``pcgrad``, ``cagrad``, ``imtl_g``, ``pareto_mtl``.
One main task with auxiliary tasks: ``classwise_aux`` (class-wise weights, per-element loss
terms), ``grad_cosine`` (gradient-level). See ``docs/weighting.md`` and ``docs/auxiliary.md``.
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
from manytask.weighting.classwise_aux import ClasswiseAux
from manytask.weighting.dwa import DWA
from manytask.weighting.famo import FAMO
from manytask.weighting.grad_cosine import GradCosine, cosine_gate
from manytask.weighting.gradients import GradientEngine, GradientWeighting, write_grads
from manytask.weighting.gradnorm import GradNorm
from manytask.weighting.imtl import IMTLG, imtl_g_weights
from manytask.weighting.mgda import MGDA, MGDAUB, min_norm_weights
from manytask.weighting.pareto_mtl import (
    ParetoMTL,
    pareto_mtl_coefficients,
    preference_vectors,
)
from manytask.weighting.pcgrad import PCGrad, pcgrad_coefficients
from manytask.weighting.pseudo_uniform import PseudoUniform, label_variance
from manytask.weighting.rlw import RLW
from manytask.weighting.uncertainty import RevisedUncertainty, Uncertainty
from manytask.weighting.uniform import Uniform

__all__ = [
    "DWA",
    "FAMO",
    "IMTLG",
    "MGDA",
    "MGDAUB",
    "RLW",
    "CAGrad",
    "ClasswiseAux",
    "GradCosine",
    "GradNorm",
    "GradientEngine",
    "GradientWeighting",
    "LossWeighting",
    "PCGrad",
    "ParetoMTL",
    "PseudoUniform",
    "RevisedUncertainty",
    "SharedParts",
    "StepInfo",
    "Uncertainty",
    "Uniform",
    "WeightingMethod",
    "available",
    "cagrad_coefficients",
    "cosine_gate",
    "create",
    "create_from_train",
    "get",
    "imtl_g_weights",
    "label_variance",
    "min_norm_weights",
    "pareto_mtl_coefficients",
    "pcgrad_coefficients",
    "preference_vectors",
    "register",
    "write_grads",
]
