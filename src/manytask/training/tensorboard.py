"""TensorBoard scalars of a run: every number of an epoch's history row, under ``RUN_DIR/tensorboard``.

Tags follow the history's keys (``train_loss/<task>``, ``weight/<task>``, ``val/<task>/<metric>``,
``lr``, ``score``, ``train_seconds``), the step is the epoch. A resumed run purges the events
past its checkpoint's epoch, so a run killed mid-epoch and resumed shows one curve. Needs the
``tensorboard`` package (``pip install 'manytask[tensorboard]'``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from manytask.errors import ConfigError

__all__ = ["TensorBoardLog"]


class TensorBoardLog:
    """Writes history rows as scalars (see the module docstring)."""

    def __init__(self, log_dir: str | Path, first_epoch: int = 1) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("training.tensorboard needs the tensorboard package: "
                              "pip install 'manytask[tensorboard]'") from None
        self.writer = SummaryWriter(str(log_dir), purge_step=first_epoch if first_epoch > 1 else None)

    def log(self, row: Mapping[str, Any]) -> None:
        epoch = int(row["epoch"])
        for key, value in row.items():
            if key == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(float(value)):
                self.writer.add_scalar(key, float(value), epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
