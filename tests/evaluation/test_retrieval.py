"""Similarity search: exact cosine against NumPy, LSH recall, seeds, recall@k arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from manytask.errors import DataError
from manytask.evaluation.retrieval import (
    build_index,
    exact_ranking,
    l2_normalize,
    recall_at_k,
    row_lookup,
    search,
    seed_query,
)

pytest.importorskip("faiss")


def _data(n: int = 300, d: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_exact_index_equals_numpy_cosine_ranking() -> None:
    x, q = _data(), _data(20, seed=1)
    scores, rows = build_index(x, "exact").search(q, 15)
    ref_scores, ref_rows = exact_ranking(x, q, 15)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    # cosine by definition, for one pair
    i, j = 3, int(rows[3, 0])
    cos = q[i] @ x[j] / (np.linalg.norm(q[i]) * np.linalg.norm(x[j]))
    assert scores[3, 0] == pytest.approx(cos, abs=1e-5)


def test_exact_search_is_scale_invariant() -> None:
    x, q = _data(), _data(5, seed=2)
    _, rows = build_index(x, "exact").search(q, 10)
    _, scaled = build_index(x * np.arange(1, 301, dtype=np.float32)[:, None], "exact").search(3 * q, 10)
    np.testing.assert_array_equal(rows, scaled)


def test_lsh_finds_well_separated_duplicates() -> None:
    # 30 well-separated directions, each present 5 times with tiny noise; a query near a
    # direction must find exactly its 5 copies first
    rng = np.random.default_rng(0)
    centres = l2_normalize(rng.normal(size=(30, 64)))
    x = np.repeat(centres, 5, axis=0) + 1e-3 * rng.normal(size=(150, 64)).astype(np.float32)
    q = centres + 1e-3 * rng.normal(size=(30, 64)).astype(np.float32)
    _, exact = build_index(x, "exact").search(q, 5)
    _, lsh = build_index(x, "lsh", nbits=128).search(q, 5)
    assert recall_at_k(lsh, exact, k=5) == 1.0
    assert all(set(r) == set(range(5 * i, 5 * i + 5)) for i, r in enumerate(exact))


def test_lsh_scores_are_hamming_distances_and_recall_grows_with_bits() -> None:
    x, q = _data(2000, 32), _data(50, 32, seed=3)
    _, exact = build_index(x, "exact").search(q, 10)
    recalls = []
    for nbits in (16, 512):
        scores, rows = build_index(x, "lsh", nbits=nbits).search(q, 10)
        assert np.all(np.diff(scores, axis=1) >= 0) and scores.max() <= nbits
        assert np.allclose(scores, np.round(scores))
        recalls.append(recall_at_k(rows, exact, 10))
    assert recalls[0] < recalls[1]


def test_recall_at_k_arithmetic() -> None:
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    approx = np.array([[4, 3, 9, 9], [5, 6, 7, 8]])
    assert recall_at_k(approx, exact, k=4) == pytest.approx((2 / 4 + 1) / 2)
    assert recall_at_k(approx, exact, k=2) == pytest.approx((0 + 1) / 2)  # top 2: {4,3} vs {1,2}
    assert recall_at_k(np.array([1, -1]), np.array([1, 2]), k=2) == 0.5  # -1 = no result
    with pytest.raises(ValueError):
        recall_at_k(approx[:1], exact, k=2)


@pytest.mark.parametrize("kind", ["exact", "lsh"])
def test_seeds_are_excluded_and_query_is_mean_of_normalised_seeds(kind: str) -> None:
    x = _data(50, 8)
    ids = [f"g{i}" for i in range(50)]
    query, seeds = seed_query(x, row_lookup(ids), ["g3", "g7", "g3"])
    assert seeds == [3, 7]
    np.testing.assert_allclose(query, (l2_normalize(x[3:4]) + l2_normalize(x[7:8]))[0] / 2, rtol=1e-6)
    res = search(build_index(x, kind), query, k=48, exclude=seeds)
    assert len(res.rows) == 48 and not {3, 7} & set(res.rows.tolist())
    if kind == "exact":
        assert np.all(np.diff(res.cosine) <= 1e-6)


def test_unknown_seed_and_duplicate_ids() -> None:
    with pytest.raises(DataError, match="unknown id"):
        seed_query(_data(3, 2), row_lookup(["a", "b", "c"]), ["a", "x"])
    with pytest.raises(DataError, match="occurs more than once"):
        row_lookup(["a", "b", "a"])


def test_lsh_rerank_over_every_row_equals_exact_search() -> None:
    x = _data(120, 16)
    query, seeds = seed_query(x, row_lookup([str(i) for i in range(120)]), ["5"])
    exact = search(build_index(x, "exact"), query, k=10, exclude=seeds)
    full = search(build_index(x, "lsh", nbits=32), query, k=10, exclude=seeds, rerank=12)  # 120 candidates
    np.testing.assert_array_equal(full.rows, exact.rows)
    np.testing.assert_allclose(full.cosine, exact.cosine, rtol=1e-5)
    assert np.all(full.scores == np.round(full.scores))  # still Hamming distances


def test_benchmark_script_reports_recall_and_times(load_script) -> None:
    bench = load_script("benchmarks/retrieval_speed.py")
    out = bench.measure(_data(60, 8), queries=6, nbits=(16,), rerank=6)
    lsh = out["lsh"]["16"]
    assert out["queries"] == 6 and out["exact"]["query_ms"] > 0
    assert 0.0 <= lsh["recall_at_10"] <= 1.0
    assert lsh["recall_at_10_rerank6"] == 1.0  # 60 candidates: every other row, re-ranked exactly


# ------------------------------------------------------------------ bucketed random projections
def test_brp_with_one_bucket_equals_exact_search() -> None:
    """A bucket wider than the unit sphere puts every row in the query's bucket: exact ranking."""
    from manytask.evaluation.retrieval import build_index, exact_ranking

    x = np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32)
    idx = build_index(x, "brp", tables=2, projections=3, bucket_width=1e6)
    scores, rows = idx.search(x[:5], 10)
    ref_scores, ref_rows = exact_ranking(x, x[:5], 10)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5)


def test_brp_candidates_share_a_bucket_and_are_ranked_by_cosine() -> None:
    from manytask.evaluation.retrieval import (
        BucketedProjections,
        build_index,
        l2_normalize,
    )

    x = np.random.default_rng(2).normal(size=(500, 16)).astype(np.float32)
    idx = build_index(x, "brp", tables=4, projections=2, bucket_width=0.5, seed=3)
    hashes = BucketedProjections(16, 4, 2, 0.5, seed=3)
    keys = hashes.keys(l2_normalize(x))
    scores, rows = idx.search(x[7:8], 20)
    got = rows[0][rows[0] >= 0]
    assert got[0] == 7 and scores[0][0] == pytest.approx(1.0, abs=1e-5)  # a row finds itself first
    assert all((keys[r] == keys[7]).any() for r in got)  # every result shares a bucket with the query
    assert np.all(np.diff(scores[0][: len(got)]) <= 1e-7)
    # and every row sharing a bucket was considered: none better than the last result left out
    sharing = np.nonzero((keys == keys[7]).any(axis=1))[0]
    assert len(got) == min(20, len(sharing))


def test_brp_finds_fewer_results_when_buckets_are_narrow() -> None:
    from manytask.evaluation.retrieval import build_index

    x = np.random.default_rng(4).normal(size=(200, 32)).astype(np.float32)
    idx = build_index(x, "brp", tables=1, projections=8, bucket_width=0.05)
    _, rows = idx.search(x[:3], 10)
    assert (rows >= 0).sum(1).max() < 10 and (rows[:, 0] == np.arange(3)).all()


@pytest.mark.parametrize("kw", [{"tables": 0}, {"projections": 0}, {"bucket_width": 0.0}])
def test_brp_refuses_bad_settings(kw) -> None:
    from manytask.errors import ConfigError
    from manytask.evaluation.retrieval import build_index

    with pytest.raises(ConfigError, match="brp"):
        build_index(np.ones((4, 3), np.float32), "brp", **kw)
