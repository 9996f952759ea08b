"""Pictures of embeddings: a grid of search results and a 2-D map (matplotlib, Agg canvas).

* :func:`plot_search_grid` — one row per result (a gallery's first few images, or a single
  image for image rows), the seeds on top; as Gutelman & Levin (2020) show retrieval from
  seed photos in their Figure 1.
* :func:`plot_map` — a 2-D projection (t-SNE or UMAP) of the embeddings coloured by one
  task's labels: a legend for classes, a colour bar for numbers; rows without a label grey
  (their Figure 4).
* :func:`row_images` turns a data set row (a gallery of a :class:`SetDataset`, an image, or a
  square number of features such as the 8×8 digits) into displayable images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from manytask.atomic import atomic_replace
from manytask.data.batch import TensorDataset
from manytask.data.sets import SetDataset
from manytask.errors import DataError

__all__ = ["display_image", "plot_map", "plot_search_grid", "row_images"]

MISSING_COLOR = "#b0b0b0"
MAX_CLASSES_LEGEND = 20


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    return atomic_replace(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))


def display_image(item: np.ndarray | torch.Tensor) -> np.ndarray:
    """An item as an ``(H, W)`` or ``(H, W, 3)`` float image scaled to [0, 1] (min to max):
    ``(C, H, W)`` with C = 1 or 3, ``(H, W)``, or a flat vector of a square length."""
    x = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
    x = x.astype(np.float64)
    if x.ndim == 1:
        side = math.isqrt(x.size)
        if side * side != x.size:
            raise DataError(f"cannot show a row of {x.size} features as an image (not a square)")
        x = x.reshape(side, side)
    elif x.ndim == 3:
        if x.shape[0] not in (1, 3):
            raise DataError(f"cannot show an item of shape {x.shape} as an image (1 or 3 channels)")
        x = x[0] if x.shape[0] == 1 else np.moveaxis(x, 0, -1)
    elif x.ndim != 2:
        raise DataError(f"cannot show an item of shape {x.shape} as an image")
    lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def row_images(data: TensorDataset, row: int, max_items: int = 6) -> list[np.ndarray]:
    """The first ``max_items`` images of gallery ``row`` (one image for other data)."""
    if isinstance(data, SetDataset):
        pos = data.index[row]
        pos = pos[pos >= 0][:max_items].cpu()
        return [display_image(data.items[int(p)]) for p in pos]
    return [display_image(data.inputs[row])]


def plot_search_grid(rows: Sequence[tuple[str, Sequence[np.ndarray]]], path: str | Path, *,
                     seeds: Sequence[np.ndarray] = (), title: str = "") -> Path:
    """One figure row per ``(label, images)`` result, the ``seeds`` images as a first row."""
    all_rows = ([("seeds", list(seeds))] if len(seeds) else []) + [(lab, list(ims)) for lab, ims in rows]
    if not all_rows:
        raise DataError("nothing to draw: no results")
    cols = max(1, max(len(ims) for _, ims in all_rows))
    fig = _figure(1.0 + 1.1 * cols, 0.4 + 1.1 * len(all_rows))
    axes = fig.subplots(len(all_rows), cols, squeeze=False)
    for r, (label, ims) in enumerate(all_rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(c < len(ims))
            if c < len(ims):
                im = ims[c]
                ax.imshow(im, cmap="gray" if im.ndim == 2 else None, vmin=0.0, vmax=1.0)
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8,
                              color="tab:red" if label == "seeds" else "black")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def _is_categorical(labels: np.ndarray) -> bool:
    return np.issubdtype(labels.dtype, np.integer) or labels.dtype.kind in "USOb"


def plot_map(xy: np.ndarray, labels: np.ndarray, path: str | Path, *, label_name: str = "label",
             classes: Sequence[str] = (), title: str = "") -> Path:
    """Scatter of a 2-D projection coloured by ``labels`` (integers / strings: one colour per
    class with a legend; numbers: a colour bar). Missing labels (-1, NaN, empty) are grey."""
    xy = np.asarray(xy, dtype=np.float64)
    labels = np.asarray(labels)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(labels) != len(xy):
        raise DataError(f"map: expected (n, 2) points and n labels, got {xy.shape} and {labels.shape}")
    fig = _figure(6.5, 5.5)
    ax = fig.add_subplot(1, 1, 1)
    size = float(np.clip(3000.0 / max(len(xy), 1), 2.0, 30.0))
    if _is_categorical(labels):
        missing = (labels == -1) if np.issubdtype(labels.dtype, np.integer) else (labels.astype(str) == "")
        values = sorted(set(labels[~missing].tolist()))
        cmap = _class_colors(len(values))
        for i, v in enumerate(values):
            sel = (labels == v) & ~missing
            name = classes[v] if classes and isinstance(v, int) and 0 <= v < len(classes) else str(v)
            ax.scatter(xy[sel, 0], xy[sel, 1], s=size, color=cmap[i], label=name, linewidths=0)
        if missing.any():
            ax.scatter(xy[missing, 0], xy[missing, 1], s=size, color=MISSING_COLOR, label="no label", linewidths=0)
        if len(values) <= MAX_CLASSES_LEGEND:
            ax.legend(title=label_name, fontsize=7, markerscale=2.0, loc="best", frameon=False)
    else:
        y = labels.astype(np.float64)
        y = y if y.ndim == 1 else y.reshape(len(y), -1)[:, 0]
        missing = ~np.isfinite(y)
        if missing.any():
            ax.scatter(xy[missing, 0], xy[missing, 1], s=size, color=MISSING_COLOR, linewidths=0)
        pts = ax.scatter(xy[~missing, 0], xy[~missing, 1], c=y[~missing], s=size, cmap="viridis", linewidths=0)
        fig.colorbar(pts, ax=ax, label=label_name)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"embeddings coloured by {label_name}", fontsize=9)
    return _save(fig, path)


def _class_colors(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def draw_search_grid(found, data_path: str | Path, path: str | Path, *,
                     seed_images: Sequence[str | Path] = (), max_items: int = 6) -> Path:
    """The grid of a :func:`manytask.evaluation.embed.search_file` result: the items of each
    result row (and of the seeds) from the data that ``data_path`` (a config or a run
    directory) builds."""
    from manytask.evaluation.embed import locate_rows
    from manytask.evaluation.run_model import load_run_config, run_data

    cfg = load_run_config(data_path)
    splits = run_data(cfg, cfg.build_tasks())
    emb = found.emb
    if found.seed_rows:
        seeds = [im for ds, r in locate_rows(emb, found.seed_rows, splits) for im in row_images(ds, r, max_items)]
    else:
        seeds = [_image_file(p) for p in list(seed_images)[:max_items]]
    rows = []
    for (ds, r), row, cos in zip(locate_rows(emb, list(found.rows), splits), found.rows, found.cosine):
        rows.append((f"{emb.ids[row]}\n{cos:.3f}", row_images(ds, r, max_items)))
    return plot_search_grid(rows, path, seeds=seeds, title=f"{found.index} search: {len(rows)} results")


def _image_file(path: str | Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return display_image(np.moveaxis(np.asarray(im.convert("RGB")), -1, 0))
