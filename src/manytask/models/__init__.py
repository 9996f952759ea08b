"""Trunks, heads and the multi-task model with task routing.

Trunks are plug-ins (:mod:`manytask.models.registry`): one module each, registered by name.
"""

from manytask.models.cost import multiply_adds
from manytask.models.heads import TwoLayerHead
from manytask.models.multitask import DEFAULT_BRANCH, MultiTaskModel
from manytask.models.registry import (
    Trunk,
    TrunkSpec,
    available_trunks,
    build_trunk,
    register_trunk,
)

# registry: one import per built-in trunk module
from manytask.models.resnet import ResNetTrunk  # noqa: E402
from manytask.models.set_encoder import SetEncoder, SmallVGG, parameter_counts  # noqa: E402
from manytask.models.ss_cnn import SelectiveSharingCNN  # noqa: E402
from manytask.models.trunks import LeNetTrunk, MLPTrunk  # noqa: E402

__all__ = [
    "DEFAULT_BRANCH",
    "LeNetTrunk",
    "MLPTrunk",
    "MultiTaskModel",
    "ResNetTrunk",
    "SelectiveSharingCNN",
    "SetEncoder",
    "SmallVGG",
    "Trunk",
    "TrunkSpec",
    "TwoLayerHead",
    "available_trunks",
    "build_trunk",
    "multiply_adds",
    "parameter_counts",
    "register_trunk",
]
