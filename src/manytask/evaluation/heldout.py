"""A new task on fixed gallery embeddings against transfer and end-to-end training (Table 2).

Gutelman & Levin (2020, Section 4.1, Table 2) judge a gallery encoder trained with many tasks
by a task it never saw (star rating), at growing shares of that task's labels:

(a) **MTL embeddings**: the multi-task encoder's gallery embedding, fixed, with a small
    classifier on top (:func:`manytask.evaluation.probe.fit_probe`);
(b) **generic transfer**: the mean over the gallery's items of an item encoder trained for a
    generic item task (ImageNet classification in the paper; here the item trunk trained to
    classify single digits), fixed, with the same classifier;
(c) **end to end**: the same set-encoder architecture trained on the new task alone.

The label shares are nested: at fraction ``f`` of ``n`` training galleries the labelled rows are
the first ``max(1, round(f n))`` of one permutation drawn with the seed
(:func:`nested_rows`), so a larger share holds every row of a smaller one, and (a), (b), (c)
see the same rows for a given seed. Model selection uses the validation split (the probe's
early stopping, the end-to-end run's best epoch), accuracy is measured on the test split.

This module holds the pieces that need no run directory: the rows, gallery embeddings from
any encoder (:func:`embed_sets`, :func:`mean_item_embeddings`, both timed per gallery), the
probe sweep over fractions and seeds (:func:`probe_sweep`) and the table (mean ± std over
seeds) as markdown, CSV and JSON (:func:`heldout_table`, :func:`write_heldout`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from manytask.atomic import atomic_write_text
from manytask.data.batch import TensorDataset
from manytask.errors import ConfigError, DataError
from manytask.evaluation.probe import ProbeKind, fit_probe
from manytask.jsonable import to_jsonable

__all__ = [
    "FRACTIONS",
    "METHODS",
    "HeldoutRecord",
    "embed_sets",
    "heldout_markdown",
    "heldout_table",
    "labels_of",
    "mean_item_embeddings",
    "nested_rows",
    "probe_sweep",
    "train_end_to_end",
    "write_heldout",
]

#: the paper's label shares (Table 2: 50k ... 250k of 250k properties)
FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)
#: method key -> row label of the table
METHODS = {
    "a": "(a) MTL embeddings + probe",
    "b": "(b) item-level transfer (mean of item features) + probe",
    "c": "(c) end-to-end set encoder, held-out task only",
}


@dataclass
class HeldoutRecord:
    """One cell entry: a method at one label fraction and seed."""

    method: str
    fraction: float
    seed: int
    n_train: int
    accuracy: float
    val_accuracy: float
    #: inference per gallery: embedding + probe for (a)/(b), the forward pass for (c)
    seconds_per_instance: float
    #: fitting at this fraction: the probe for (a)/(b), the whole run for (c)
    train_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def nested_rows(n: int, fractions: Sequence[float], seed: int) -> dict[float, np.ndarray]:
    """Training rows per fraction: the first ``max(1, round(f n))`` entries of one permutation
    of ``0..n-1`` drawn with ``seed`` (so the rows of a smaller fraction are a subset of a larger
    one's)."""
    if n < 1:
        raise DataError("nested_rows: no training rows")
    for f in fractions:
        if not 0 < f <= 1:
            raise ConfigError(f"label fraction must be in (0, 1], got {f}")
    order = np.random.default_rng(seed).permutation(n)
    return {float(f): np.sort(order[: max(1, round(f * n))]) for f in fractions}


def labels_of(ds: TensorDataset, task: str) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, rows)`` of ``task`` in ``ds``: the labels of the rows whose label is present."""
    if task not in ds.targets:
        raise DataError(f"the data has no column '{task}' (available: {', '.join(sorted(ds.targets))})")
    y = ds.targets[task].cpu().numpy()
    keep = ds.masks[task].cpu().numpy().astype(bool) if task in ds.masks else np.ones(len(y), dtype=bool)
    rows = np.flatnonzero(keep)
    return y[rows], rows


def _timed_batches(ds: TensorDataset, batch_size: int, fn: Callable[[Any], Tensor]) -> tuple[np.ndarray, float]:
    out, seconds = [], 0.0
    with torch.no_grad():
        for batch in ds.batches(batch_size):
            start = time.perf_counter()
            z = fn(batch)
            seconds += time.perf_counter() - start
            out.append(z.detach().float().cpu().numpy())
    if not out:
        raise DataError("no galleries to embed")
    return np.concatenate(out), seconds / len(ds)


def embed_sets(encode: Callable[[Tensor, Tensor | None], Tensor], ds: TensorDataset,
               batch_size: int = 64) -> tuple[np.ndarray, float]:
    """``(embeddings (n, d), seconds per gallery)`` of ``encode(inputs, set_mask)`` (e.g.
    ``MultiTaskModel.encode`` of a set-encoder model in eval mode) over ``ds`` in stored order.
    The time counts the forward passes, not the gathering of the items."""
    return _timed_batches(ds, batch_size, lambda b: encode(b.inputs, b.set_mask))


def mean_item_embeddings(encode_items: Callable[[Tensor], Tensor], ds: TensorDataset,
                         batch_size: int = 64) -> tuple[np.ndarray, float]:
    """Gallery embedding = mean of its items' features, ``e_g = (1/|g|) sum_{i in g} phi(x_i)``,
    with ``phi = encode_items`` taking ``(m, *item_shape)`` items to ``(m, d)`` (e.g. the trunk
    of a model trained on single items). Returns ``(embeddings (n, d), seconds per gallery)``."""
    from manytask.models.pooling import MaskedPool
    from manytask.models.set_encoder import encode_real_items

    def fn(batch: Any) -> Tensor:
        if batch.set_mask is None:
            raise DataError("mean_item_embeddings needs set data (batches with a set_mask)")
        feats = encode_real_items(encode_items, batch.inputs, batch.set_mask)  # (B, W, d), zero padding
        return MaskedPool("mean", feats.shape[-1])(feats, batch.set_mask)
    return _timed_batches(ds, batch_size, fn)


def probe_sweep(method: str, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
                test: tuple[np.ndarray, np.ndarray], fractions: Sequence[float], seeds: Iterable[int],
                kind: ProbeKind = "multiclass", embed_seconds: float = 0.0,
                probe_options: Mapping[str, Any] | None = None) -> list[HeldoutRecord]:
    """Probe on fixed embeddings ``(X, y)`` at every fraction and seed: rows from
    :func:`nested_rows` of the training split, early stopping on ``val``, accuracy on ``test``.
    ``seconds_per_instance`` = ``embed_seconds`` (the encoder, per gallery) + the probe's
    inference per gallery."""
    (tx, ty), (vx, vy), (sx, sy) = train, val, test
    records = []
    for seed in seeds:
        for f, rows in nested_rows(len(tx), fractions, seed).items():
            probe = fit_probe(tx[rows], ty[rows], vx, vy, kind, seed, **dict(probe_options or {}))
            val_acc = probe.score(vx, vy)
            acc = probe.score(sx, sy)
            records.append(HeldoutRecord(
                method=method, fraction=f, seed=int(seed), n_train=len(rows), accuracy=acc,
                val_accuracy=val_acc, seconds_per_instance=embed_seconds + probe.last_seconds_per_instance,
                train_seconds=probe.fit_seconds,
                extra={"probe_epochs": probe.epochs_run, "probe_best_epoch": probe.best_epoch}))
    return records


def train_end_to_end(cfg: Any, rows: np.ndarray, seed: int, run_dir: str | Path, fraction: float,
                     progress: bool = False) -> HeldoutRecord:
    """(c): train ``cfg`` (a config whose tasks are the held-out task alone) on the training
    ``rows`` only, select the epoch on the validation split, score the test split; writes
    ``run_dir`` plus ``heldout_record.json`` (the record, with the forward-pass time per test
    gallery). A finished ``run_dir`` is read back instead of retrained."""
    from manytask.experiment import (
        build_data,
        build_model,
        columns_for,
        input_shape,
        make_trainer,
        task_splits,
    )
    from manytask.training import RunDir

    rd = RunDir(run_dir)
    done = rd.file("heldout_record.json")
    if rd.is_complete() and done.is_file():
        return HeldoutRecord(**json.loads(done.read_text()))
    tasks = cfg.build_tasks()
    if len(tasks) != 1 or tasks[0].kind not in ("multiclass", "binary"):
        raise ConfigError("end-to-end baseline: the config must hold exactly one classification task")
    task = tasks[0]
    splits = task_splits(build_data(cfg, columns_for(tasks)), tasks)
    train = splits.train.subset(torch.as_tensor(np.asarray(rows), dtype=torch.long))
    torch.manual_seed(seed)
    model = build_model(cfg, tasks, input_shape(splits))
    trainer = make_trainer(cfg, tasks, model, train, seed=seed, run_dir=rd, progress=progress)
    record = cfg.to_dict()
    record["run"] = {"tasks": [task.name], "seed": seed, "fraction": fraction, "rows": len(rows),
                     "weighting": trainer.weighting.name, "epochs": cfg.training.epochs}
    result = trainer.fit(train, splits.val, splits.test, config=record)
    start = time.perf_counter()
    trainer.predict(splits.test)
    per_instance = (time.perf_counter() - start) / len(splits.test)
    out = HeldoutRecord(method="c", fraction=float(fraction), seed=int(seed), n_train=len(rows),
                        accuracy=float(result.test[task.name]["accuracy"]) if result.test else math.nan,
                        val_accuracy=float(result.val[task.name]["accuracy"]), seconds_per_instance=per_instance,
                        train_seconds=float(result.seconds),
                        extra={"best_epoch": result.best_epoch, "epochs_run": result.epochs_run})
    atomic_write_text(done, json.dumps(to_jsonable(asdict(out)), indent=2))
    return out


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def heldout_table(records: Sequence[HeldoutRecord], labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Mean ± sample std over seeds of the test accuracy per (method, fraction), plus each
    method's mean inference time per gallery and mean training time per fraction. ``labels``:
    row labels of methods beyond :data:`METHODS`."""
    names = {**METHODS, **dict(labels or {})}
    methods = [m for m in METHODS if any(r.method == m for r in records)]
    methods += sorted({r.method for r in records} - set(methods))
    fractions = sorted({r.fraction for r in records})
    rows = []
    for m in methods:
        mine = [r for r in records if r.method == m]
        cells = {}
        for f in fractions:
            acc = [r.accuracy for r in mine if r.fraction == f]
            mean, std = _mean_std(acc)
            train_mean, _ = _mean_std([r.train_seconds for r in mine if r.fraction == f])
            cells[f"{f:g}"] = {"mean": mean, "std": std, "seeds": len(acc), "train_seconds": train_mean}
        ms, ms_std = _mean_std([1e3 * r.seconds_per_instance for r in mine])
        rows.append({"method": m, "label": names.get(m, m), "cells": cells,
                     "ms_per_instance": ms, "ms_per_instance_std": ms_std,
                     "seeds": sorted({r.seed for r in mine})})
    return {"fractions": fractions, "rows": rows}


def _cell(c: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not c or not math.isfinite(c["mean"]):
        return "–"
    return f"{c['mean']:.{digits}f} ± {c['std']:.{digits}f}"


def heldout_markdown(table: Mapping[str, Any], n_train: int | None = None) -> str:
    """The table in Table 2's layout (methods as rows here, label fractions as columns)."""
    fr = table["fractions"]
    head = [f"{round(100 * f)}%" + (f" ({max(1, round(f * n_train))})" if n_train else "") for f in fr]
    lines = ["| method | " + " | ".join(head) + " | ms / gallery | train s at 100% |",
             "|---|" + "---:|" * (len(fr) + 2)]
    for row in table["rows"]:
        cells = [_cell(row["cells"].get(f"{f:g}")) for f in fr]
        last = row["cells"].get(f"{max(fr):g}", {}) if fr else {}
        train = last.get("train_seconds", math.nan)
        lines.append(f"| {row['label']} | " + " | ".join(cells)
                     + f" | {row['ms_per_instance']:.3f} | {train:.1f} |")
    return "\n".join(lines) + "\n"


def write_heldout(records: Sequence[HeldoutRecord], out_dir: str | Path,
                  n_train: int | None = None, labels: Mapping[str, str] | None = None) -> dict[str, Path]:
    """Write ``heldout.md`` (the table), ``heldout.csv`` (one line per record) and
    ``heldout.json`` (table and records) into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = heldout_table(records, labels)
    paths = {"md": out / "heldout.md", "csv": out / "heldout.csv", "json": out / "heldout.json"}
    atomic_write_text(paths["md"], heldout_markdown(table, n_train))
    buf = io.StringIO()
    cols = ["method", "fraction", "seed", "n_train", "accuracy", "val_accuracy",
            "seconds_per_instance", "train_seconds"]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in records:
        d = asdict(r)
        w.writerow([d[c] for c in cols])
    atomic_write_text(paths["csv"], buf.getvalue())
    doc = {"table": table, "records": [asdict(r) for r in records]}
    atomic_write_text(paths["json"], json.dumps(to_jsonable(doc), indent=2))
    return paths
