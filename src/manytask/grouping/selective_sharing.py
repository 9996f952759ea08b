"""Selective Sharing (Strezoski et al. 2019, section 3): the pure parts.

Tasks start on identical, identically initialised branches after a hard-shared layer. Over an
epoch the gradient of each branch's first layer is accumulated (eq. 1–3: ``G_t = δ_t a`` for the
weights between the shared representation and the branch); the record is compressed with a
tensor-train decomposition into a fixed-size, normalised vector (eq. 4–5); the vectors are
clustered with HDBSCAN (mutual reachability, eq. 6); branches in one cluster are merged
(section 3.4). This module holds the mathematics as functions on arrays; hooks, merging in a
live model and the optimizer live in :mod:`manytask.grouping.sharing_controller`.

**Gradient record.** A branch's record is a ``(S, out, in)`` tensor: step ``s`` of the epoch adds
its first-layer weight gradient into slot ``s mod S`` (``S`` interleaved partial sums of the
epoch's gradients, eq. 5's rows ``B_0 … B_m`` grouped into ``S`` rows so that the size does not
depend on the number of batches).

**Tensor train** (:func:`tt_vector`): TT-SVD (eq. 4) with ranks ``(1, r, r, 1)`` capped by the
unfolding sizes; the sign of every TT rank index is fixed (its largest entry positive, the sign
moved into the next core, which leaves the tensor unchanged), so equal records give equal cores;
the record is first scaled to unit Frobenius norm and the concatenated cores to unit Euclidean
norm ("after being normalized").

**Criteria** (our reading of section 3, Figure 12 and Table 6 of the supplement; the paper gives
no formula for them). All three run scikit-learn's HDBSCAN on a precomputed distance matrix
with ``min_cluster_size = 2``, so the core distance ``core_k`` and the mutual reachability
``max(core_k(a), core_k(b), d(a, b))`` of eq. 6 are built from that matrix ``d``:

* ``similarity`` — ``d`` = the Euclidean distance between the unit TT vectors (in [0, 2]);
  leaf clusters (the smallest stable clusters: "the minimum core distance between the stable
  clusters"). Tasks whose gradients respond alike share a branch.
* ``dissimilarity`` — ``d' = 2 − d`` off the diagonal: the most different responses are the
  nearest ("maximises the core distance ... to emphasise the sample diversity"); leaf clusters.
* ``variance`` — every coordinate standardised by its variance across the branches before the
  Euclidean distance (coordinates on which the tasks do not vary are dropped), so the grouping
  follows the directions of largest between-task variance; excess-of-mass cluster selection,
  which prefers large clusters ("variance favors large task clusters").

HDBSCAN's noise points (label −1) stay on their own branch.

**Merging** (section 3.4): a cluster's branches become one. ``lowest_loss`` keeps the branch
whose tasks' summed training loss over the epoch was the lowest (the paper's choice); ``mean``,
``max`` and ``min`` set the survivor's weights to the element-wise mean / maximum / minimum of
the cluster's branches. The merged tasks keep their own output units.

**Stopping** (section 3.3): clustering stops once every task shares a branch with at least one
other task, or after ``patience`` (3) consecutive epochs without a merge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "CRITERIA",
    "MERGES",
    "Criterion",
    "Merge",
    "cluster_vectors",
    "criterion_distances",
    "groups_from_labels",
    "merged_tensors",
    "should_stop",
    "survivor",
    "tt_cores",
    "tt_vector",
]

Criterion = Literal["similarity", "dissimilarity", "variance"]
Merge = Literal["lowest_loss", "mean", "max", "min"]
CRITERIA: tuple[str, ...] = ("similarity", "dissimilarity", "variance")
MERGES: tuple[str, ...] = ("lowest_loss", "mean", "max", "min")


# ---------------------------------------------------------------------- tensor train (eq. 4-5)
def tt_cores(record: np.ndarray, rank: int) -> list[np.ndarray]:
    """The TT cores ``D_i`` of shape ``(r_{i-1}, n_i, r_i)`` of ``record`` (eq. 4), TT-SVD with
    every inner rank at most ``rank``, signs fixed as in the module docstring."""
    import tensorly as tl
    from tensorly.decomposition import tensor_train

    x = np.asarray(record, dtype=np.float64)
    dims = x.shape
    ranks = [1]
    for k in range(1, len(dims)):
        left = int(np.prod(dims[:k]))
        right = int(np.prod(dims[k:]))
        ranks.append(min(rank, left, right, ranks[-1] * dims[k - 1]))
    ranks.append(1)
    with tl.backend_context("numpy"):
        cores = [np.array(c, dtype=np.float64) for c in tensor_train(x, rank=ranks)]
    for k in range(len(cores) - 1):
        core = cores[k]
        for r in range(core.shape[2]):
            flat = core[:, :, r].ravel()
            if flat[np.argmax(np.abs(flat))] < 0:
                core[:, :, r] *= -1.0
                cores[k + 1][r] *= -1.0
    return cores


def tt_vector(record: Tensor | np.ndarray, rank: int = 4) -> np.ndarray:
    """A branch's gradient record as one unit vector: the record scaled to unit Frobenius norm
    (its direction, not its size, describes the response), its TT cores (:func:`tt_cores`)
    flattened and concatenated (fixed size for records of one shape), divided by their norm
    (a zero record gives the zero vector)."""
    from threadpoolctl import threadpool_limits

    arr = record.detach().cpu().double().numpy() if isinstance(record, Tensor) else np.asarray(record, np.float64)
    # numpy's BLAS would otherwise start one thread per core next to the training's threads
    with threadpool_limits(limits=torch.get_num_threads()):
        if not np.any(arr):
            return np.zeros(sum(c.size for c in tt_cores(np.ones_like(arr), rank)))
        v = np.concatenate([c.ravel() for c in tt_cores(arr / np.linalg.norm(arr), rank)])
    return v / np.linalg.norm(v)


# ---------------------------------------------------------------------- clustering (eq. 6)
def criterion_distances(vectors: np.ndarray, criterion: str) -> np.ndarray:
    """The ``(B, B)`` distance matrix HDBSCAN reads for ``criterion`` (module docstring)."""
    x = np.asarray(vectors, dtype=np.float64)
    if criterion not in CRITERIA:
        raise ValueError(f"criterion: unknown '{criterion}' (expected one of {', '.join(CRITERIA)})")
    if criterion == "variance":
        std = x.std(axis=0)
        keep = std > 1e-12 * max(1.0, float(np.abs(x).max(initial=0.0)))
        x = (x[:, keep] - x[:, keep].mean(axis=0)) / std[keep] if keep.any() else np.zeros((len(x), 1))
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0))
    if criterion == "dissimilarity":
        d = 2.0 - d
    np.fill_diagonal(d, 0.0)
    return np.maximum(d, 0.0)


def cluster_vectors(vectors: np.ndarray, criterion: str = "similarity", min_samples: int = 1) -> np.ndarray:
    """HDBSCAN labels (−1 = noise) of the rows of ``vectors`` under ``criterion``; fewer than
    three rows cannot form two clusters and are all noise."""
    from sklearn.cluster import HDBSCAN

    n = len(vectors)
    if n < 3:
        return np.full(n, -1, dtype=np.int64)
    d = criterion_distances(vectors, criterion)
    method = "eom" if criterion == "variance" else "leaf"
    model = HDBSCAN(min_cluster_size=2, min_samples=min(min_samples, n - 1), metric="precomputed",
                    cluster_selection_method=method, copy=True)
    return np.asarray(model.fit_predict(d), dtype=np.int64)


def groups_from_labels(ids: Sequence[str], labels: Sequence[int]) -> list[list[str]]:
    """The clusters of two or more ``ids`` (in the order of their first member); noise is left out."""
    groups: dict[int, list[str]] = {}
    for i, lab in zip(ids, labels):
        if int(lab) >= 0:
            groups.setdefault(int(lab), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


# ---------------------------------------------------------------------- merging (section 3.4)
def survivor(group: Sequence[str], losses: Mapping[str, float]) -> str:
    """The branch of ``group`` with the lowest aggregated loss (the first of equal ones)."""
    return min(group, key=lambda b: (float(losses[b]), list(group).index(b)))


def merged_tensors(tensors: Sequence[Tensor], how: str) -> Tensor:
    """The element-wise ``mean``, ``max`` or ``min`` of same-shaped tensors."""
    stack = torch.stack([t.detach() for t in tensors])
    if how == "mean":
        return stack.mean(0)
    if how == "max":
        return stack.amax(0)
    if how == "min":
        return stack.amin(0)
    raise ValueError(f"merge: expected mean, max or min for element-wise merging, got '{how}'")


# ---------------------------------------------------------------------- stopping (section 3.3)
def should_stop(tasks_per_branch: Sequence[int], epochs_unchanged: int, patience: int = 3) -> str | None:
    """Why clustering stops, or None: ``grouped`` when every task shares its branch with at least
    one other task, ``unchanged`` after ``patience`` epochs without a merge."""
    counts = [int(c) for c in tasks_per_branch if c > 0]
    if counts and all(c >= 2 for c in counts):
        return "grouped"
    if epochs_unchanged >= patience:
        return "unchanged"
    return None
