"""Embeddings of a trained run's shared representation, written to and read from files.

``manytask embed RUN_DIR`` runs every row of a split through the run's trunk
(:meth:`MultiTaskModel.encode`; for galleries the padded items with their ``set_mask``) and
writes, atomically:

* ``.npz``: ``ids`` (str, n), ``embeddings`` (float32, n × d), ``split`` (str, n), ``id_name``,
  and per task of the data config ``labels_<task>`` (n, or n × D) plus ``classes_<task>``
  (the class names, for label columns read as names);
* ``.parquet``: columns ``id``, ``split``, ``e0`` … ``e{d-1}`` and ``labels_<task>`` (1-D
  labels only).

Labels: binary and multiclass as int64 with ``-1`` where missing, every other kind as float32
with NaN where missing. Ids are the data's row ids (``dataset.row_ids()``: gallery ids for
galleries); data without ids get row positions, prefixed by the split (``test:12``) with
``--split all`` so that they stay unique.

``--data CONFIG`` embeds another data config (or another run's) with the trained model, e.g.
to carry labels of a task the model never saw; the labels come from that data, the model
from the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from zipfile import BadZipFile

import numpy as np
import torch

from manytask.atomic import atomic_replace, atomic_write
from manytask.data.batch import Splits, TensorDataset
from manytask.errors import ConfigError, DataError
from manytask.tasks import Task

__all__ = [
    "SPLITS",
    "EmbeddingFile",
    "column_arrays",
    "compute_embeddings",
    "embed_data",
    "embeddings_suffix",
    "label_arrays",
    "read_embeddings",
    "split_datasets",
    "write_embeddings",
]

SPLITS = ("train", "val", "test", "all")
SUFFIXES = (".npz", ".parquet")


@dataclass(frozen=True)
class EmbeddingFile:
    """Rows of embeddings with their ids, split and labels (what :func:`read_embeddings` returns)."""

    ids: np.ndarray                      # (n,) str
    embeddings: np.ndarray               # (n, d) float32
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    split: np.ndarray | None = None      # (n,) str
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    id_name: str = "row"

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] != n:
            raise DataError(f"embeddings: expected shape ({n}, d), got {self.embeddings.shape}")
        for name, lab in self.labels.items():
            if lab.shape[0] != n:
                raise DataError(f"labels_{name}: {lab.shape[0]} rows but {n} ids")

    def __len__(self) -> int:
        return len(self.ids)


# ---------------------------------------------------------------------- computing
@torch.no_grad()
def embed_data(model: torch.nn.Module, data: TensorDataset, *, batch_size: int = 256,
               device: str | torch.device = "cpu") -> np.ndarray:
    """``(n, d)`` float32: ``model.encode(inputs[, set_mask])`` of every row of ``data``, in order."""
    enc = getattr(model, "encode", None)
    if enc is None:
        raise ConfigError("the model has no encode(): cannot compute embeddings")
    was_training = model.training
    model.eval()
    model.to(device)
    out = []
    for b in data.batches(batch_size):
        b = b.to(device)
        z = enc(*b.model_args)
        out.append(z.reshape(z.shape[0], -1).float().cpu())
    model.train(was_training)
    if not out:
        raise DataError("no rows to embed")
    return torch.cat(out).numpy().astype(np.float32)


def label_arrays(data: TensorDataset, tasks: Sequence[Task]) -> dict[str, np.ndarray]:
    """Each task's labels as a NumPy array: int64 with -1 where missing for 1-D binary and
    multiclass labels, float32 with NaN where missing otherwise (standardised columns restored
    to their own units)."""
    out: dict[str, np.ndarray] = {}
    for t in tasks:
        target = data.targets[t.name]
        valid = t.label_mask(target, data.masks.get(t.name)).cpu()
        if t.kind in ("binary", "multiclass") and target.dim() == 1:
            y = target.cpu().numpy().astype(np.float64)
            ok = valid.reshape(len(y), -1).all(1).numpy() & np.isfinite(y)
            out[t.name] = np.where(ok, y, -1).astype(np.int64)
            continue
        y = target.cpu().to(torch.float32).numpy().copy()
        if valid.shape == target.shape:
            y[~valid.numpy()] = np.nan
        elif valid.dim() == 2 and valid.shape[1] == 1:
            y[~valid[:, 0].numpy()] = np.nan
        scale = data.scales.get(t.name)
        out[t.name] = y if scale is None else scale.restore(y).astype(np.float32)
    return out


def split_datasets(splits: Splits, split: str) -> list[tuple[str, TensorDataset]]:
    """``[(split name, data set)]`` for ``train``, ``val``, ``test`` or ``all`` (the three in order)."""
    if split not in SPLITS:
        raise ConfigError(f"--split: expected one of {', '.join(SPLITS)}, got {split!r}")
    named = {"train": splits.train, "val": splits.val, "test": splits.test}
    return list(named.items()) if split == "all" else [(split, named[split])]


def row_ids(name: str, data: TensorDataset, prefix: bool) -> np.ndarray:
    """The rows' ids as strings; positions (no ids in the data) are prefixed ``name:`` when
    ``prefix`` (several splits in one file)."""
    ids = data.row_ids()
    if data.ids is None and prefix:
        return np.array([f"{name}:{i}" for i in ids], dtype=str)
    return np.asarray(ids).astype(str)


def column_arrays(data: TensorDataset, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """Raw data columns as labels: integers as int64 with -1 where missing, other values as
    float32 with NaN where missing."""
    out: dict[str, np.ndarray] = {}
    for c in columns:
        y = data.targets[c].cpu()
        mask = data.masks.get(c)
        ok = np.ones(len(y), bool) if mask is None else mask.cpu().numpy().reshape(len(y), -1).all(1)
        if not y.is_floating_point():
            out[c] = np.where(ok.reshape(-1, *[1] * (y.dim() - 1)), y.numpy(), -1).astype(np.int64)
        else:
            v = y.to(torch.float32).numpy().copy()
            v[~ok] = np.nan
            out[c] = v
    return out


def compute_embeddings(run_dir: str | Path, *, data_config: str | Path | None = None, split: str = "test",
                       which: str = "best", columns: Sequence[str] = (), batch_size: int = 256,
                       device: str = "cpu") -> EmbeddingFile:
    """Embed ``split`` of the run's data (or of ``data_config``: a YAML file or a run directory)
    with the run's model; labels of every task of that data config, plus the raw data
    ``columns`` (e.g. a held-out column that no task of the config reads)."""
    from manytask.evaluation.run_model import (
        load_run_config,
        load_run_model,
        run_record,
    )
    from manytask.experiment import build_data, columns_for, task_splits

    run_record(run_dir)  # a missing or incomplete run directory is named before anything is built
    cfg = load_run_config(data_config if data_config is not None else run_dir)
    label_tasks = cfg.build_tasks()
    extra = [c for c in dict.fromkeys(columns) if c not in {t.name for t in label_tasks}]
    raw = build_data(cfg, list(dict.fromkeys([*columns_for(label_tasks), *extra])))
    splits = task_splits(raw, label_tasks)
    model, _, _ = load_run_model(run_dir, which, shape=splits.train.sample_shape)
    parts = split_datasets(splits, split)
    raw_parts = dict(split_datasets(raw, split))
    ids, embs, labels, names = [], [], [], []
    for name, ds in parts:
        if len(ds) == 0:
            continue
        ids.append(row_ids(name, ds, prefix=len(parts) > 1))
        embs.append(embed_data(model, ds, batch_size=batch_size, device=device))
        labels.append({**label_arrays(ds, label_tasks), **column_arrays(raw_parts[name], extra)})
        names.append(np.full(len(ds), name))
    if not ids:
        raise DataError(f"--split {split}: the data has no rows there")
    first, raw_first = parts[0][1], raw_parts[parts[0][0]]
    classes = {t.name: tuple(first.codings[t.name].classes) for t in label_tasks if t.name in first.codings}
    classes.update({c: tuple(raw_first.codings[c].classes) for c in extra if c in raw_first.codings})
    return EmbeddingFile(ids=np.concatenate(ids), embeddings=np.concatenate(embs),
                         labels={k: np.concatenate([lab[k] for lab in labels]) for k in labels[0]},
                         split=np.concatenate(names), classes=classes, id_name=first.id_name)


# ---------------------------------------------------------------------- files
def embeddings_suffix(path: Path) -> str:
    """``.npz`` or ``.parquet`` (the suffix of ``path``); :class:`ConfigError` otherwise."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(f"{path}: embeddings file must end in .npz or .parquet")
    return suffix


def write_embeddings(path: str | Path, emb: EmbeddingFile) -> Path:
    """Write ``emb`` to ``path`` (``.npz`` or ``.parquet``, chosen by the suffix), atomically."""
    p = Path(path)
    if embeddings_suffix(p) == ".npz":
        arrays: dict[str, Any] = {"ids": np.asarray(emb.ids, dtype=str),
                                  "embeddings": np.asarray(emb.embeddings, dtype=np.float32),
                                  "id_name": np.str_(emb.id_name)}
        if emb.split is not None:
            arrays["split"] = np.asarray(emb.split, dtype=str)
        for name, lab in emb.labels.items():
            arrays[f"labels_{name}"] = lab
        for name, cls in emb.classes.items():
            arrays[f"classes_{name}"] = np.asarray(cls, dtype=str)

        def write(fh: IO[bytes]) -> None:
            np.savez(fh, **arrays)

        return atomic_write(p, write, binary=True)
    frame = _frame(emb)
    return atomic_replace(p, lambda tmp: frame.to_parquet(tmp, index=False))


def _frame(emb: EmbeddingFile) -> Any:
    import pandas as pd

    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ConfigError("writing .parquet needs pyarrow (pip install 'manytask[parquet]'), or write .npz") from None
    cols: dict[str, Any] = {"id": np.asarray(emb.ids, dtype=str)}
    if emb.split is not None:
        cols["split"] = np.asarray(emb.split, dtype=str)
    for j in range(emb.embeddings.shape[1]):
        cols[f"e{j}"] = emb.embeddings[:, j].astype(np.float32)
    for name, lab in emb.labels.items():
        if lab.ndim == 1:
            cols[f"labels_{name}"] = lab
    return pd.DataFrame(cols)


def read_embeddings(path: str | Path) -> EmbeddingFile:
    """Read a ``.npz`` (never unpickled) or ``.parquet`` embeddings file; one-line
    :class:`DataError` for a missing, unreadable or malformed file."""
    p = Path(path)
    suffix = embeddings_suffix(p)
    if not p.is_file():
        raise DataError(f"{p}: embeddings file not found")
    emb = _read_npz(p) if suffix == ".npz" else _read_parquet(p)
    if not np.isfinite(emb.embeddings).all():
        raise DataError(f"{p}: embeddings contain NaN or infinity")
    if len(emb) == 0:
        raise DataError(f"{p}: no rows")
    return emb


def _read_npz(p: Path) -> EmbeddingFile:
    with open(p, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":
            raise DataError(f"{p}: not a readable .npz file (not a zip archive of arrays)")
    try:
        with np.load(p, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (BadZipFile, OSError, EOFError) as err:
        raise DataError(f"{p}: not a readable .npz file ({type(err).__name__})") from None
    except ValueError:
        raise DataError(f"{p}: holds Python objects (refused: .npz files are read without unpickling)") from None
    for key in ("ids", "embeddings"):
        if key not in arrays:
            raise DataError(f"{p}: no '{key}' array (expected ids and embeddings)")
    z = arrays["embeddings"]
    if z.ndim != 2 or not np.issubdtype(z.dtype, np.number):
        raise DataError(f"{p}: 'embeddings' must be a 2-D numeric array, got {z.dtype} {z.shape}")
    if len(arrays["ids"]) != z.shape[0]:
        raise DataError(f"{p}: {len(arrays['ids'])} ids but {z.shape[0]} embedding rows")
    labels = {k[len("labels_"):]: v for k, v in arrays.items() if k.startswith("labels_")}
    classes = {k[len("classes_"):]: tuple(str(c) for c in v) for k, v in arrays.items() if k.startswith("classes_")}
    try:
        return EmbeddingFile(ids=arrays["ids"].astype(str), embeddings=z.astype(np.float32), labels=labels,
                             split=arrays["split"].astype(str) if "split" in arrays else None, classes=classes,
                             id_name=str(arrays.get("id_name", "row")))
    except DataError as err:
        raise DataError(f"{p}: {err}") from None


def _read_parquet(p: Path) -> EmbeddingFile:
    import pandas as pd

    try:
        import pyarrow
    except ImportError:
        raise ConfigError("reading .parquet needs pyarrow (pip install 'manytask[parquet]')") from None
    try:
        frame = pd.read_parquet(p)
    except (OSError, ValueError, pyarrow.ArrowException) as err:
        raise DataError(f"{p}: not a readable .parquet file ({type(err).__name__})") from None
    if "id" not in frame.columns:
        raise DataError(f"{p}: no 'id' column")
    d = 0
    while f"e{d}" in frame.columns:
        d += 1
    if d == 0:
        raise DataError(f"{p}: no embedding columns e0, e1, ...")
    try:
        z = frame[[f"e{j}" for j in range(d)]].to_numpy(dtype=np.float32)
    except (TypeError, ValueError):
        raise DataError(f"{p}: columns e0..e{d - 1} must be numbers") from None
    labels = {c[len("labels_"):]: frame[c].to_numpy() for c in frame.columns if c.startswith("labels_")}
    split = frame["split"].to_numpy().astype(str) if "split" in frame.columns else None
    return EmbeddingFile(ids=frame["id"].to_numpy().astype(str), embeddings=z, labels=labels, split=split)


# ---------------------------------------------------------------------- search and maps
def embed_images(model: torch.nn.Module, data: TensorDataset, paths: Sequence[str | Path]) -> np.ndarray:
    """One gallery made of image files, embedded with a set model trained on ``data``'s
    galleries: ``(d,)``. The files are decoded like the gallery items (channels and size of the
    item pool) and go through the data's item transform."""
    from manytask.data.image_folder import decode_images
    from manytask.data.sets import SetDataset

    if not isinstance(data, SetDataset):
        raise ConfigError("--seed-images: the run was not trained on galleries (no set encoder); use --seed-ids")
    if not paths:
        raise ConfigError("--seed-images: give at least one image file")
    shape = tuple(int(s) for s in data.items.shape[1:])
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ConfigError(f"--seed-images: the galleries' items are not images (item shape {shape})")
    for p in paths:
        if not Path(p).is_file():
            raise DataError(f"{p}: image file not found")
    pixels = decode_images(Path("."), [str(p) for p in paths], size=(shape[1], shape[2]),
                           mode="L" if shape[0] == 1 else "RGB")
    items = torch.from_numpy(pixels).to(data.items.dtype)
    gallery = SetDataset(items, torch.arange(len(paths)).reshape(1, -1), {}, transform=data.item_transform)
    return embed_data(model, gallery)[0]


def locate_rows(emb: EmbeddingFile, rows: Sequence[int], splits: Splits) -> list[tuple[TensorDataset, int]]:
    """Where the embeddings file's ``rows`` live in ``splits``: ``(data set, row)`` each, by id
    (positions ``split:i`` or ``i`` for data without ids)."""
    named = dict(split_datasets(splits, "all"))
    lookups: dict[str, dict[str, int]] = {}
    out = []
    for r in rows:
        rid = str(emb.ids[r])
        name = str(emb.split[r]) if emb.split is not None else "test"
        if name not in named:
            raise DataError(f"id '{rid}': unknown split '{name}'")
        ds = named[name]
        if ds.ids is None:
            pos = rid.rsplit(":", 1)[-1]
            if not pos.isdigit() or int(pos) >= len(ds):
                raise DataError(f"id '{rid}' is not a row of the {name} split of the data")
            out.append((ds, int(pos)))
            continue
        if name not in lookups:
            lookups[name] = {str(i): j for j, i in enumerate(ds.ids)}
        if rid not in lookups[name]:
            raise DataError(f"id '{rid}' is not in the {name} split of the data (another data config?)")
        out.append((ds, lookups[name][rid]))
    return out


def project_2d(emb: EmbeddingFile, color_by: str, *, method: str = "tsne", max_points: int = 5000,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(xy (m, 2), labels (m,))``: t-SNE (scikit-learn) or UMAP (umap-learn) of at most
    ``max_points`` rows drawn at random (seeded) from the file, with the ``color_by`` labels."""
    from manytask.evaluation.embeddings import tsne_2d

    if color_by not in emb.labels:
        known = ", ".join(sorted(emb.labels)) or "none"
        raise DataError(f"--color-by: no labels for task '{color_by}' in the embeddings file (labels: {known})")
    if method not in ("tsne", "umap"):
        raise ConfigError(f"--method: expected tsne or umap, got {method!r}")
    n = len(emb)
    pick = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False)) if n > max_points \
        else np.arange(n)
    x, labels = emb.embeddings[pick], emb.labels[color_by][pick]
    if method == "tsne":
        return tsne_2d(x, seed=seed), labels
    try:
        import umap
    except ImportError:
        raise ConfigError("--method umap needs umap-learn (pip install 'manytask[umap]'); "
                          "or use --method tsne") from None
    reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, max(2, len(x) - 1)), n_jobs=1)
    return np.asarray(reducer.fit_transform(x)), labels


@dataclass(frozen=True)
class SearchOutput:
    """What ``manytask search`` found: the file, the query's seed rows and the ranked results."""

    emb: EmbeddingFile
    seed_rows: list[int]
    rows: np.ndarray
    scores: np.ndarray
    cosine: np.ndarray
    index: str


def search_file(path: str | Path, *, seed_ids: Sequence[str] = (), seed_images: Sequence[str | Path] = (),
                run_dir: str | Path | None = None, k: int = 10, index: str = "exact",
                nbits: int | None = None, rerank: int = 10, **brp: float | None) -> SearchOutput:
    """Rank the rows of an embeddings file by similarity to seed galleries (by id; the seeds are
    left out of the results) or to one gallery of seed image files (embedded with the run's
    model). ``brp``: ``tables``, ``projections``, ``bucket_width`` of the bucketed-projection
    index (None = its default). See :mod:`manytask.evaluation.retrieval`."""
    from manytask.evaluation.retrieval import (
        DEFAULT_NBITS,
        build_index,
        row_lookup,
        search,
        seed_query,
    )

    if bool(seed_ids) == bool(seed_images):
        raise ConfigError("give either --seed-ids or --seed-images (one of them)")
    emb = read_embeddings(path)
    if seed_ids:
        query, seed_rows = seed_query(emb.embeddings, row_lookup(emb.ids), list(seed_ids))
    else:
        if run_dir is None:
            raise ConfigError("--seed-images needs --run RUN_DIR (the model that embeds them)")
        from manytask.data.sets import SetDataset
        from manytask.evaluation.run_model import (
            load_run_config,
            load_run_model,
            run_data,
        )

        cfg = load_run_config(run_dir)
        splits = run_data(cfg, cfg.build_tasks())
        if not isinstance(splits.train, SetDataset):
            raise ConfigError(f"--seed-images: {run_dir} was not trained on galleries (no set encoder); "
                              "use --seed-ids")
        model, _, _ = load_run_model(run_dir, shape=splits.train.sample_shape)
        query, seed_rows = embed_images(model, splits.train, seed_images), []
        if query.shape[0] != emb.embeddings.shape[1]:
            raise DataError(f"{run_dir}: its model gives {query.shape[0]}-d embeddings, the file "
                            f"{emb.embeddings.shape[1]}-d (embedded with another run?)")
    idx = build_index(emb.embeddings, index, nbits=nbits or DEFAULT_NBITS,
                      **{key: v for key, v in brp.items() if v is not None})  # type: ignore[arg-type]
    res = search(idx, query, k, exclude=seed_rows, rerank=rerank)
    return SearchOutput(emb=emb, seed_rows=seed_rows, rows=res.rows, scores=res.scores, cosine=res.cosine,
                        index=index)
