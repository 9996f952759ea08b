"""Loss weighting and gradient methods: one registry, one ``backward(losses, shared)`` entry point."""

from manytask.weighting.base import (
    LossWeighting,
    SharedParts,
    StepInfo,
    WeightingMethod,
    available,
    create,
    get,
    register,
)
from manytask.weighting.uniform import Uniform

__all__ = [
    "LossWeighting",
    "SharedParts",
    "StepInfo",
    "Uniform",
    "WeightingMethod",
    "available",
    "create",
    "get",
    "register",
]
