"""The training loop, run directories, seeding."""

from manytask.training.rundir import RunDir
from manytask.training.seeding import resolve_device, seed_everything
from manytask.training.trainer import FitResult, OptimizerSpec, Trainer

__all__ = ["FitResult", "OptimizerSpec", "RunDir", "Trainer", "resolve_device", "seed_everything"]
