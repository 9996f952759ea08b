"""Embedding snapshots at chosen epochs, their t-SNE, and the plots."""

from __future__ import annotations

import math

import numpy as np
import pytest

from manytask.config import parse_config
from manytask.errors import ConfigError
from manytask.evaluation.embeddings import (
    EmbeddingRecorder,
    embedding_path,
    fixed_subset,
    load_embeddings,
    tsne_2d,
    tsne_grid,
)
from manytask.experiment import build_data, run_experiment
from manytask.reporting.plots import plot_metric_vs_fraction, plot_tsne_grid

PNG = b"\x89PNG\r\n\x1a\n"

DIGITS = {
    "name": "digits_embed",
    "data": {"kind": "digits"},
    "tasks": [{"name": "digit", "kind": "multiclass", "num_classes": 10},
              {"name": "parity", "kind": "binary"}],
    "model": {"trunk": "mlp", "hidden": [32, 16]},
    "training": {"epochs": 3, "batch_size": 64, "threads": 1, "optimizer": {"lr": 0.05}},
}


def test_recorder_writes_npz_only_at_chosen_epochs(tmp_path) -> None:
    cfg = parse_config(DIGITS)
    splits = build_data(cfg, ["digit"])
    sub, index = fixed_subset(splits.val, 50)
    rec = EmbeddingRecorder(sub, sub.targets["digit"], epochs=[1, 3], label_name="digit", index=index)
    rd = tmp_path / "run"
    run_experiment(cfg, rd, progress=False, callbacks=[rec])
    assert sorted(p.name for p in rd.glob("embeddings_epoch*.npz")) == ["embeddings_epoch1.npz",
                                                                         "embeddings_epoch3.npz"]
    snap = load_embeddings(embedding_path(rd, 3))
    assert snap.embeddings.shape == (50, 16) and snap.embeddings.dtype == np.float32
    assert snap.epoch == 3 and snap.label_name == "digit"
    np.testing.assert_array_equal(snap.labels, splits.val.targets["digit"][:50].numpy())
    np.testing.assert_array_equal(snap.index, np.arange(50))
    # the representation moved between epoch 1 and epoch 3
    assert not np.allclose(load_embeddings(embedding_path(rd, 1)).embeddings, snap.embeddings)


def test_recorder_checks_its_arguments() -> None:
    cfg = parse_config(DIGITS)
    val = build_data(cfg, ["digit"]).val
    with pytest.raises(Exception, match="expected shape"):
        EmbeddingRecorder(val, np.zeros(3), epochs=[1])
    with pytest.raises(ConfigError, match=">= 1"):
        EmbeddingRecorder(val, val.targets["digit"], epochs=[0])


def test_tsne_separates_two_blobs_and_grid_plot(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (40, 8)), rng.normal(12, 1, (40, 8))]).astype(np.float32)
    labels = np.repeat([0, 1], 40)
    xy = tsne_2d(x, seed=0)
    assert xy.shape == (80, 2) and np.isfinite(xy).all()
    # each point's nearest neighbour in the projection has its own label
    d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1) + np.eye(80) * 1e9
    assert (labels[d.argmin(1)] == labels).mean() > 0.95
    # a dead (constant) representation gives zeros instead of an error
    assert np.all(tsne_2d(np.ones((10, 4))) == 0)
    # tsne_grid reads snapshot files; a missing epoch is None
    run = tmp_path / "r"
    run.mkdir()
    np.savez(embedding_path(run, 2), embeddings=x, labels=labels, index=np.arange(80), epoch=np.int64(2),
             label_name=np.str_("left"))
    grid = tsne_grid({"run": run}, [2, 5])
    assert grid["run"][5] is None and grid["run"][2][0].shape == (80, 2)
    out = plot_tsne_grid(grid, tmp_path / "tsne.png", label_name="left digit", title="t")
    assert out.read_bytes()[:8] == PNG


def test_metric_vs_fraction_plot(tmp_path) -> None:
    series = {"left": {"Single task": [(1.0, 90.0, 1.0), (0.1, 70.0, 2.0)],
                       "Vanilla MTL (uniform)": [(0.1, 71.0, math.nan), (1.0, 89.0, 0.5)]},
              "right_recon": {"Single task": [(1.0, 0.05, 0.001), (0.1, 0.07, 0.002)]}}
    out = plot_metric_vs_fraction(series, tmp_path / "sub" / "m.png", ylabels={"left": "acc %"}, title="x")
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 5000
