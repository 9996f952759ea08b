"""Recall and speed of LSH search against exact cosine search, printed as JSON.

For each embedding set, ``--queries`` rows drawn at random (seeded) serve as one-seed queries
(:func:`manytask.evaluation.retrieval.seed_query`, the seed itself left out of the results, as
``manytask search --seed-ids`` does); for exact search (faiss ``IndexFlatIP`` on normalised
vectors) and for LSH at each ``--nbits``:

* ``brp``: bucketed random projections (the paper's LSH family) for a few settings
  (tables L, projections m per table, bucket width w), with the mean number of results found
  (fewer than 10 when too few rows share a bucket with the query) and the rows scored by
  exact cosine per query (the candidates: the work the hashing saves);
* ``recall_at_10``: mean share of the exact top 10 found in the LSH top 10;
* ``query_ms``: median wall time of one query (one ``search`` call, single-threaded);
* ``build_s``: time to build the index;
* ``recall_at_10_rerank10`` / ``query_ms_rerank10``: the same with the 100 nearest codes
  re-ranked by exact cosine (``--rerank``).

Embedding sets: (a) ``gaussian``: ``--n`` × ``--dim`` standard normal vectors (a hard case:
in 64 dimensions a random point's nearest neighbours are barely nearer than the rest);
(b) every ``.npz`` / ``.parquet`` embeddings file given on the command line.

    python benchmarks/retrieval_speed.py [FILE.npz ...] [--n 20000] [--dim 64] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Any

import numpy as np

from manytask.evaluation.embed import read_embeddings
from manytask.evaluation.retrieval import build_index, recall_at_k, search

NBITS = (32, 64, 128, 256, 512, 1024)
#: bucketed random projections: (tables, projections per table, bucket width)
BRP = ((8, 4, 1.0), (32, 4, 1.0), (16, 4, 0.25), (32, 8, 0.5), (16, 2, 0.1))


def measure(x: np.ndarray, queries: int, nbits: tuple[int, ...], k: int = 10, seed: int = 0,
            center: bool = True, rerank: int = 10) -> dict[str, Any]:
    """Recall@k of LSH against exact search and median query times, over one-seed queries."""
    rows = np.random.default_rng(seed).choice(len(x), size=min(queries, len(x)), replace=False)
    out: dict[str, Any] = {"n": int(x.shape[0]), "dim": int(x.shape[1]), "queries": len(rows), "k": k}

    scored: dict[str, float] = {}

    def run(kind: str, bits: int, rr: int = 1, **brp: Any) -> tuple[np.ndarray, float, float]:
        t0 = time.perf_counter()
        index = build_index(x, kind, nbits=bits, seed=seed, center=center, **brp)
        build = time.perf_counter() - t0
        found, times = [], []
        for r in rows:
            t0 = time.perf_counter()
            res = search(index, x[r], k, exclude=[int(r)], rerank=rr)
            times.append(time.perf_counter() - t0)
            found.append(np.pad(res.rows, (0, k - len(res.rows)), constant_values=-1))
        scored["rows"] = getattr(index, "candidates_seen", 0) / max(len(rows), 1)
        return np.stack(found), statistics.median(times) * 1e3, build

    exact, exact_ms, exact_build = run("exact", 1)
    out["exact"] = {"query_ms": round(exact_ms, 4), "build_s": round(exact_build, 4)}
    out["lsh"] = {}
    for bits in nbits:
        got, ms, build = run("lsh", bits)
        got_rr, ms_rr, _ = run("lsh", bits, rerank)
        out["lsh"][str(bits)] = {"recall_at_10": round(recall_at_k(got, exact, k), 4), "query_ms": round(ms, 4),
                                 "build_s": round(build, 4), "speedup_vs_exact": round(exact_ms / ms, 2),
                                 f"recall_at_10_rerank{rerank}": round(recall_at_k(got_rr, exact, k), 4),
                                 f"query_ms_rerank{rerank}": round(ms_rr, 4)}
    out["brp"] = {}
    for tables, projections, width in BRP:
        got, ms, build = run("brp", 1, tables=tables, projections=projections, bucket_width=width)
        out["brp"][f"L{tables}_m{projections}_w{width:g}"] = {
            "recall_at_10": round(recall_at_k(got, exact, k), 4), "query_ms": round(ms, 4),
            "build_s": round(build, 4), "speedup_vs_exact": round(exact_ms / ms, 2),
            "results_per_query": round(float((got >= 0).sum(1).mean()), 2),
            "rows_scored_per_query": round(scored["rows"], 1)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="embeddings files (manytask embed)")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--nbits", default=",".join(map(str, NBITS)))
    ap.add_argument("--no-center", action="store_true", help="LSH without centring (for comparison)")
    ap.add_argument("--rerank", type=int, default=10, help="also measure LSH with this re-ranking factor")
    args = ap.parse_args()
    import faiss

    faiss.omp_set_num_threads(1)
    nbits = tuple(int(b) for b in args.nbits.split(","))
    report: dict[str, Any] = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                          "faiss": faiss.__version__, "threads": 1},
                              "center": not args.no_center, "results": {}}
    gauss = np.random.default_rng(0).normal(size=(args.n, args.dim)).astype(np.float32)
    report["results"]["gaussian"] = measure(gauss, args.queries, nbits, center=not args.no_center,
                                            rerank=args.rerank)
    for f in args.files:
        report["results"][f] = measure(read_embeddings(f).embeddings, args.queries, nbits,
                                       center=not args.no_center, rerank=args.rerank)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
