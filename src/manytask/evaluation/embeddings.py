"""Snapshots of the shared representation while training, and their t-SNE projections.

Gong et al. 2019 (Figure 1) look at the output of the shared trunk at epochs 1, 100 and 200
of single-task, vanilla multi-task and revised-uncertainty training, projected to 2-D with
t-SNE and coloured by the digit. Here:

* :class:`EmbeddingRecorder` is a trainer callback (``Trainer(callbacks=[recorder])``) that,
  at chosen epochs, embeds a fixed subset of samples with ``trainer.embed`` and saves
  ``embeddings_epoch{E}.npz`` into the run directory: arrays ``embeddings`` (n × d float32),
  ``labels`` (n int64, the colouring labels), ``index`` (n, rows of the subset in its split),
  ``epoch`` and ``label_name``.
* :func:`tsne_2d` projects one snapshot with scikit-learn's ``TSNE``;
  :func:`tsne_grid` does it for a grid of runs × epochs, ready for
  :func:`manytask.reporting.plots.plot_tsne_grid`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from manytask.atomic import atomic_write
from manytask.data.batch import TensorDataset
from manytask.errors import ConfigError, DataError

if TYPE_CHECKING:
    from manytask.training.trainer import Trainer

__all__ = [
    "EmbeddingRecorder",
    "EmbeddingSnapshot",
    "embedding_path",
    "fixed_subset",
    "load_embeddings",
    "tsne_2d",
    "tsne_grid",
]


def embedding_path(run_dir: str | Path, epoch: int) -> Path:
    """Where the snapshot of ``epoch`` lives in a run directory."""
    return Path(run_dir) / f"embeddings_epoch{int(epoch)}.npz"


def fixed_subset(data: TensorDataset, n: int) -> tuple[TensorDataset, np.ndarray]:
    """The first ``n`` samples of ``data`` (all of them if it is smaller) and their row index.

    The first rows of a split are a fixed, seed-independent choice, so every run of a
    comparison embeds the same samples.
    """
    if n < 1:
        raise ConfigError(f"tsne samples must be >= 1, got {n}")
    index = np.arange(min(int(n), len(data)), dtype=np.int64)
    return data.subset(torch.from_numpy(index)), index


@dataclass(frozen=True)
class EmbeddingSnapshot:
    """One saved snapshot: the representation of ``n`` samples at ``epoch``."""

    embeddings: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    epoch: int
    label_name: str


class EmbeddingRecorder:
    """Trainer callback saving the shared representation of a fixed sample set at chosen epochs.

    Args:
        data: the samples to embed (e.g. :func:`fixed_subset` of the validation split).
        labels: ``(n,)`` integer labels stored with the embeddings (used for colouring).
        epochs: the epochs (1-based, as the trainer counts) after which to save.
        out_dir: where to write; ``None`` = the trainer's run directory.
        label_name: what the labels are (stored in the file), e.g. ``"left"``.
        index: ``(n,)`` row numbers of ``data`` in its split (stored; default 0..n-1).
    """

    def __init__(self, data: TensorDataset, labels: np.ndarray | torch.Tensor, epochs: Iterable[int],
                 out_dir: str | Path | None = None, label_name: str = "label",
                 index: np.ndarray | None = None) -> None:
        lab = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if lab.ndim != 1 or lab.shape[0] != len(data):
            raise DataError(f"embedding labels: expected shape ({len(data)},), got {lab.shape}")
        self.epochs = sorted({int(e) for e in epochs})
        if any(e < 1 for e in self.epochs):
            raise ConfigError(f"embedding epochs must be >= 1, got {self.epochs}")
        self.data = data
        self.labels = lab.astype(np.int64)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.label_name = label_name
        self.index = np.arange(len(data), dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
        self.written: list[Path] = []

    def __call__(self, trainer: Trainer, epoch: int) -> None:
        if epoch not in self.epochs:
            return
        out = self.out_dir
        if out is None:
            rd = getattr(trainer, "run_dir", None)
            if rd is None:
                raise ConfigError("EmbeddingRecorder: the trainer has no run directory; pass out_dir")
            out = Path(rd.path)
        z = trainer.embed(self.data).numpy().astype(np.float32)
        path = embedding_path(out, epoch)
        atomic_write(path, lambda fh: np.savez_compressed(fh, embeddings=z, labels=self.labels, index=self.index,
                                                          epoch=np.int64(epoch), label_name=np.str_(self.label_name)),
                     binary=True)
        self.written.append(path)


def load_embeddings(path: str | Path) -> EmbeddingSnapshot:
    """Read a snapshot written by :class:`EmbeddingRecorder`."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: embeddings file not found")
    with np.load(p, allow_pickle=False) as f:
        return EmbeddingSnapshot(embeddings=f["embeddings"], labels=f["labels"], index=f["index"],
                                 epoch=int(f["epoch"]), label_name=str(f["label_name"]))


def tsne_2d(embeddings: np.ndarray, *, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE (scikit-learn, PCA initialisation) of ``(n, d)`` embeddings.

    ``perplexity`` is lowered to ``(n - 1) / 3`` for small ``n`` (t-SNE needs perplexity < n).
    """
    from sklearn.manifold import TSNE

    x = np.asarray(embeddings, dtype=np.float64)
    n = x.shape[0]
    if n < 4:
        raise DataError(f"t-SNE needs at least 4 samples, got {n}")
    if not np.isfinite(x).all():
        raise DataError("t-SNE: embeddings contain NaN or infinity")
    perp = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
    if np.allclose(x, x[0]):  # a dead representation (e.g. all ReLUs off): nothing to project
        return np.zeros((n, 2))
    tsne = TSNE(n_components=2, perplexity=perp, init="pca", learning_rate="auto", random_state=seed)
    return np.asarray(tsne.fit_transform(x))


def tsne_grid(run_dirs: Mapping[str, str | Path], epochs: Sequence[int], *,
              seed: int = 0) -> dict[str, dict[int, tuple[np.ndarray, np.ndarray] | None]]:
    """t-SNE of every saved snapshot: ``{row label: {epoch: (xy (n×2), labels) or None}}``.

    ``None`` marks a snapshot that does not exist (e.g. a run that diverged before the epoch).
    """
    out: dict[str, dict[int, tuple[np.ndarray, np.ndarray] | None]] = {}
    for label, rd in run_dirs.items():
        row: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}
        for e in epochs:
            p = embedding_path(rd, e)
            if not p.is_file():
                row[int(e)] = None
                continue
            snap = load_embeddings(p)
            row[int(e)] = (tsne_2d(snap.embeddings, seed=seed), snap.labels)
        out[label] = row
    return out

