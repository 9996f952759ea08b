"""Trunks, heads and the multi-task model with task routing."""

from manytask.models.cost import multiply_adds
from manytask.models.heads import TwoLayerHead
from manytask.models.multitask import DEFAULT_BRANCH, MultiTaskModel
from manytask.models.trunks import LeNetTrunk, MLPTrunk

__all__ = ["DEFAULT_BRANCH", "LeNetTrunk", "MLPTrunk", "MultiTaskModel", "TwoLayerHead", "multiply_adds"]
