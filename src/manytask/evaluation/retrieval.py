"""Similarity search over embeddings: exact cosine ranking and locality-sensitive hashing.

Gutelman & Levin (2020, Figure 1) rank every gallery by the proximity of its embedding to the
gallery of a few "seed" images, with "bucketed random projections" locality-sensitive
hashing (Indyk & Motwani 1998) to keep the search fast. Here:

* **exact** (the default): cosine similarity,
  ``cos(q, x) = q·x / (‖q‖ ‖x‖)``, as inner products of L2-normalised vectors
  (faiss ``IndexFlatIP``); rows are ranked by decreasing similarity.
* **lsh**: ``nbits`` random projections ``r_1 … r_nbits`` (a random rotation, faiss
  ``IndexLSH``), each giving one bit ``h_j(x) = [r_j·x > 0]``; rows are ranked by the Hamming
  distance ``Σ_j [h_j(q) ≠ h_j(x)]`` between codes. For sign random projections
  ``P[h_j(q) ≠ h_j(x)] = θ(q, x) / π`` (Charikar 2002), so the Hamming distance estimates the
  angle, hence the cosine ranking, with a spread that shrinks as ``1/√nbits``. Vectors are
  centred on the indexed rows' mean before hashing: embeddings after a ReLU all lie in one
  orthant, where uncentred sign bits carry little information. ``nbits = 256`` by default
  (see ``docs/retrieval.md`` for the recall measured against exact search). With
  ``rerank = r > 1`` the ``r·k`` nearest codes are ordered by exact cosine (candidates by
  hashing, then checked), which brings recall@10 close to 1 at a small extra cost.

* **brp** (the paper's "bucketed random projections", Datar et al. 2004's p-stable LSH as in
  Spark's ``BucketedRandomProjectionLSH``): ``tables`` hash tables, each keyed by
  ``projections`` bucket numbers ``h_j(x) = ⌊(a_j·x + b_j) / w⌋`` with ``a_j ~ N(0, I)`` and
  ``b_j ~ U[0, w)`` (``w`` = ``bucket_width``, on L2-normalised vectors). Rows sharing a
  query's key in at least one table are the candidates, ranked by exact cosine; fewer than
  ``k`` candidates means fewer than ``k`` results (as in Spark). Two points at distance ``c``
  collide in one projection with a probability that falls with ``c / w``, so nearer rows are
  likelier candidates; ``projections`` sharpens that (AND), ``tables`` recovers recall (OR).
  Pure NumPy (faiss has no index of this family).

A query is the mean of the L2-normalised embeddings of the seed rows,
``q = (1/|S|) Σ_{s∈S} x_s / ‖x_s‖``, and the seeds are left out of its results.
:func:`recall_at_k` compares approximate with exact results.

Only :class:`Index` touches faiss (imported when an index is built).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from manytask.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_NBITS",
    "INDEXES",
    "BucketedProjections",
    "Index",
    "SearchResult",
    "build_index",
    "exact_ranking",
    "l2_normalize",
    "recall_at_k",
    "row_lookup",
    "search",
    "seed_query",
]

INDEXES = ("exact", "lsh", "brp")
DEFAULT_NBITS = 256
#: brp defaults (chosen by recall@10 and query time in docs/retrieval.md)
DEFAULT_TABLES = 32
DEFAULT_PROJECTIONS = 8
DEFAULT_BUCKET_WIDTH = 0.5


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (float32; zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def exact_ranking(database: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force cosine ranking in NumPy: ``(scores, rows)``, each ``(q, k)``, best first
    (ties broken by the lower row). The reference that :class:`Index` is tested against."""
    sims = l2_normalize(np.atleast_2d(queries)) @ l2_normalize(database).T
    k = min(int(k), sims.shape[1])
    order = np.lexsort((np.broadcast_to(np.arange(sims.shape[1]), sims.shape), -sims), axis=1)[:, :k]
    return np.take_along_axis(sims, order, axis=1), order


def _faiss():  # type: ignore[no-untyped-def]
    try:
        import faiss
    except ImportError:
        raise ConfigError("similarity search needs faiss (pip install 'manytask[galleries]' or faiss-cpu)") from None
    return faiss


class Index:
    """A searchable set of embeddings: ``exact`` (cosine) or ``lsh`` (``nbits`` hashed bits).

    Args:
        embeddings: ``(n, d)`` rows to search.
        kind: ``exact`` or ``lsh``.
        nbits: LSH code length in bits.
        seed: seed of the LSH random projections.
        center: LSH: subtract the indexed rows' mean (of the normalised vectors) before hashing.
    """

    def __init__(self, embeddings: np.ndarray, kind: str = "exact", *, nbits: int = DEFAULT_NBITS,
                 seed: int = 0, center: bool = True, tables: int = DEFAULT_TABLES,
                 projections: int = DEFAULT_PROJECTIONS, bucket_width: float = DEFAULT_BUCKET_WIDTH) -> None:
        if kind not in INDEXES:
            raise ConfigError(f"--index: expected exact, lsh or brp, got {kind!r}")
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] == 0:
            raise DataError(f"an index needs (n >= 1, d) embeddings, got shape {x.shape}")
        if nbits < 1:
            raise ConfigError(f"nbits must be >= 1, got {nbits}")
        self.kind, self.nbits, self.n, self.dim = kind, int(nbits), int(x.shape[0]), int(x.shape[1])
        self._normed = l2_normalize(x)
        self.center = self._normed.mean(0, keepdims=True) if center else np.zeros((1, self.dim), np.float32)
        if kind == "brp":
            self._brp = BucketedProjections(self.dim, tables, projections, bucket_width, seed)
            keys = self._brp.keys(self._normed)
            self._order = np.argsort(keys, axis=0, kind="stable")  # per table: rows by key
            self._sorted = np.take_along_axis(keys, self._order, axis=0)
            #: brp: rows scored by exact cosine so far, summed over queries (the work LSH saves)
            self.candidates_seen = 0
            return
        faiss = _faiss()
        if kind == "exact":
            self._index = faiss.IndexFlatIP(self.dim)
            self._index.add(self._normed)
        else:
            self._rotation = faiss.RandomRotationMatrix(self.dim, self.nbits)
            self._rotation.init(int(seed))
            self._index = faiss.IndexLSH(self.nbits, self.nbits, False, False)
            self._index.add(self._codes_input(self._normed))

    def _codes_input(self, x: np.ndarray) -> np.ndarray:
        """LSH: centre, then rotate with the seeded random projection (d -> nbits)."""
        centred = np.ascontiguousarray(x - self.center, dtype=np.float32)
        return np.ascontiguousarray(self._rotation.apply(centred), dtype=np.float32)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, rows)``, each ``(q, k')`` with ``k' = min(k, n)``, best first. Scores:
        cosine similarity (exact) or Hamming distance in bits (lsh, lower = closer)."""
        q = l2_normalize(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if q.shape[1] != self.dim:
            raise DataError(f"query has {q.shape[1]} dimensions, the index {self.dim}")
        k = min(int(k), self.n)
        if self.kind == "brp":
            return self._search_buckets(q, k)
        if self.kind == "exact":
            scores, rows = self._index.search(q, k)
        else:
            scores, rows = self._index.search(self._codes_input(q), k)
        return scores, rows.astype(np.int64)

    def _search_buckets(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """brp: candidates share a bucket key with the query in some table; exact cosine
        ranks them; missing results are rows -1 with score -inf."""
        qkeys = self._brp.keys(q)
        scores = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        rows = np.full((q.shape[0], k), -1, dtype=np.int64)
        for i in range(q.shape[0]):
            found = []
            for t in range(qkeys.shape[1]):  # the rows of the query's bucket, by binary search
                col = self._sorted[:, t]
                lo, hi = np.searchsorted(col, qkeys[i, t], "left"), np.searchsorted(col, qkeys[i, t], "right")
                found.append(self._order[lo:hi, t])
            cand = np.unique(np.concatenate(found))
            self.candidates_seen += int(cand.size)
            if cand.size == 0:
                continue
            sims = self._normed[cand] @ q[i]
            order = np.lexsort((cand, -sims))[:k]
            scores[i, : order.size], rows[i, : order.size] = sims[order], cand[order]
        return scores, rows

    def cosine(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosine similarity of one query to the given rows."""
        return self._normed[np.asarray(rows, dtype=np.int64)] @ l2_normalize(np.asarray(query).reshape(1, -1))[0]


class BucketedProjections:
    """The hash functions of ``brp``: per table, ``projections`` values
    ``⌊(a_j·x + b_j) / w⌋`` combined into one integer key (see the module docstring)."""

    def __init__(self, dim: int, tables: int, projections: int, width: float, seed: int = 0) -> None:
        if tables < 1 or projections < 1:
            raise ConfigError(f"brp: tables and projections must be >= 1, got {tables} and {projections}")
        if not width > 0:
            raise ConfigError(f"brp: bucket width must be > 0, got {width}")
        rng = np.random.default_rng(seed)
        self.a = rng.standard_normal((tables, projections, dim)).astype(np.float32)
        self.b = rng.uniform(0.0, width, (tables, projections)).astype(np.float32)
        self.width = float(width)

    def buckets(self, x: np.ndarray) -> np.ndarray:
        """``(n, tables, projections)`` bucket numbers."""
        return np.floor((np.einsum("tpd,nd->ntp", self.a, x) + self.b) / self.width).astype(np.int64)

    def keys(self, x: np.ndarray) -> np.ndarray:
        """``(n, tables)`` keys: the bucket numbers of a table mixed into one int64 (collisions
        between different bucket tuples are as unlikely as for any 64-bit hash)."""
        h = self.buckets(x)
        key = np.zeros(h.shape[:2], dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(h.shape[2]):
                key = key * np.uint64(0x9E3779B97F4A7C15) + h[..., j].astype(np.uint64)
        return key


def build_index(embeddings: np.ndarray, kind: str = "exact", *, nbits: int = DEFAULT_NBITS, seed: int = 0,
                center: bool = True, tables: int = DEFAULT_TABLES, projections: int = DEFAULT_PROJECTIONS,
                bucket_width: float = DEFAULT_BUCKET_WIDTH) -> Index:
    """:class:`Index` of ``embeddings``."""
    return Index(embeddings, kind, nbits=nbits, seed=seed, center=center, tables=tables,
                 projections=projections, bucket_width=bucket_width)


def row_lookup(ids: Sequence[str] | np.ndarray) -> dict[str, int]:
    """``{id: row}``; :class:`DataError` when an id occurs twice."""
    out: dict[str, int] = {}
    for row, i in enumerate(np.asarray(ids).astype(str)):
        if i in out:
            raise DataError(f"id '{i}' occurs more than once in the embeddings")
        out[i] = row
    return out


def seed_query(embeddings: np.ndarray, lookup: dict[str, int], seed_ids: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    """``(query vector, seed rows)``: the mean of the seeds' L2-normalised embeddings."""
    if not seed_ids:
        raise ConfigError("--seed-ids: give at least one id")
    missing = [s for s in seed_ids if s not in lookup]
    if missing:
        raise DataError(f"--seed-ids: unknown id(s) {', '.join(missing[:5])} (not in the embeddings file)")
    rows = [lookup[s] for s in dict.fromkeys(seed_ids)]
    return l2_normalize(np.asarray(embeddings)[rows]).mean(0), rows


@dataclass(frozen=True)
class SearchResult:
    """One query's ranked results: rows into the index, their score and cosine similarity."""

    rows: np.ndarray
    scores: np.ndarray
    cosine: np.ndarray


def search(index: Index, query: np.ndarray, k: int = 10, exclude: Sequence[int] = (), *,
           rerank: int = 1) -> SearchResult:
    """The ``k`` best rows for one query, rows in ``exclude`` (the seeds) left out.

    ``rerank`` > 1 (LSH only): take the ``rerank · k`` nearest codes by Hamming distance and
    order them by exact cosine similarity (the usual LSH candidates-then-check step)."""
    if k < 1:
        raise ConfigError(f"--k must be >= 1, got {k}")
    if rerank < 1:
        raise ConfigError(f"--rerank must be >= 1, got {rerank}")
    skip = {int(r) for r in exclude}
    wide = k * (rerank if index.kind == "lsh" else 1)
    scores, rows = index.search(np.asarray(query).reshape(1, -1), wide + len(skip))
    keep = [j for j, r in enumerate(rows[0]) if r >= 0 and int(r) not in skip][:wide]
    picked, picked_scores = rows[0][keep], scores[0][keep]
    cos = index.cosine(query, picked)
    if wide > k:
        order = np.argsort(-cos, kind="stable")[:k]
        picked, picked_scores, cos = picked[order], picked_scores[order], cos[order]
    return SearchResult(rows=picked, scores=picked_scores, cosine=cos)


def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int = 10) -> float:
    """Mean over queries of ``|A_k ∩ E_k| / |E_k|``: the share of the exact top ``k`` (``E_k``,
    first ``k`` entries of a row of ``exact``) found in the approximate top ``k`` (``A_k``).
    Rows are queries; 1-D inputs are one query; entries < 0 (no result) are ignored."""
    a, e = np.atleast_2d(approx), np.atleast_2d(exact)
    if a.shape[0] != e.shape[0]:
        raise ValueError(f"recall_at_k: {a.shape[0]} approximate rows but {e.shape[0]} exact rows")
    if k < 1:
        raise ValueError(f"recall_at_k: k must be >= 1, got {k}")
    total = 0.0
    for ar, er in zip(a, e):
        truth = {int(x) for x in er[:k] if x >= 0}
        found = {int(x) for x in ar[:k] if x >= 0}
        total += len(truth & found) / len(truth) if truth else 1.0
    return total / max(a.shape[0], 1)
