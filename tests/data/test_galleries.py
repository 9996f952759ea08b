"""Gallery labels (exact values on hand-made galleries) and the ``mnist_galleries`` benchmark:
disjoint source digits, determinism, imbalance spread, the held-out task, missing labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from manytask.data.galleries import (
    GALLERY_TASKS,
    HELDOUT,
    digit_counts,
    draw_galleries,
    gallery_columns,
    heldout_labels,
    heldout_score,
    task_by_name,
)
from manytask.data.mnist import load_bundled_digits
from manytask.data.sources import parse_source
from manytask.errors import ConfigError

G1 = [7, 7, 1, 3, 9]
G2 = [0, 1, 2, 3, 4, 0, 0, 0, 9, 8]
G3 = [2, 2, 2, 2, 2, 2]

#: every task's value on G1, G2, G3 (worked out by hand)
EXPECTED = {
    "mean_above_4_5": (1, 0, 0), "majority_odd": (1, 0, 0), "has_7": (1, 0, 0), "size_ge_15": (0, 0, 0),
    "more_7_than_1": (1, 0, 0), "has_triple": (0, 1, 1), "distinct_ge_6": (0, 1, 0), "has_run_of_3": (0, 1, 0),
    "has_0_and_9": (0, 1, 0), "dominant_digit": (0, 0, 1), "count_8_ge_3": (0, 0, 0), "has_1_2_3": (0, 1, 0),
    "all_below_7": (0, 0, 1), "all_below_5": (0, 0, 1), "all_odd": (1, 0, 0), "at_most_2_distinct": (0, 0, 1),
    "all_ge_6": (0, 0, 0),
    "mode_digit": (7, 0, 2), "min_digit": (1, 0, 2), "max_digit": (9, 9, 2), "median_digit": (7, 1, 2),
    "distinct_bucket": (1, 2, 0), "size_bucket": (0, 1, 0), "parity_balance": (2, 0, 0),
    "mean_digit": (5.4, 2.7, 2.0), "std_digit": (math.sqrt(8.64), math.sqrt(102.1 / 10), 0.0),
    "count_7": (2, 0, 0), "even_share": (0.0, 0.7, 1.0), "size": (5, 10, 6), "distinct": (4, 7, 1),
    "entropy": (-(3 * 0.2 * math.log2(0.2) + 0.4 * math.log2(0.4)),
                -(0.4 * math.log2(0.4) + 6 * 0.1 * math.log2(0.1)), 0.0),
}

#: minority shares of the binary tasks on 20,000 default galleries (docs/galleries.md)
MINORITY = {
    "mean_above_4_5": 0.49, "majority_odd": 0.47, "has_7": 0.47, "has_run_of_3": 0.46, "size_ge_15": 0.375,
    "more_7_than_1": 0.34, "distinct_ge_6": 0.30, "dominant_digit": 0.245, "has_0_and_9": 0.225,
    "count_8_ge_3": 0.18, "all_below_7": 0.135, "has_1_2_3": 0.10, "has_triple": 0.094,
    "at_most_2_distinct": 0.041, "all_odd": 0.031, "all_below_5": 0.029, "all_ge_6": 0.012,
}


def test_the_task_mix_follows_the_paper() -> None:
    kinds = [t.kind for t in GALLERY_TASKS]
    assert (kinds.count("binary"), kinds.count("multiclass"), kinds.count("regression")) == (17, 7, 7)
    assert gallery_columns()[-1] == HELDOUT and len(set(gallery_columns())) == 32
    assert set(EXPECTED) == {t.name for t in GALLERY_TASKS} and set(MINORITY) == {
        t.name for t in GALLERY_TASKS if t.kind == "binary"}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_labels_of_hand_made_galleries(name: str) -> None:
    task = task_by_name(name)
    got = task.fn(digit_counts([G1, G2, G3]))
    assert got.dtype == (np.int64 if task.kind == "multiclass" else np.float32)
    np.testing.assert_allclose(got, np.asarray(EXPECTED[name], dtype=np.float64), rtol=1e-6, atol=1e-6)
    if task.kind == "multiclass":
        assert 0 <= got.min() and got.max() < task.num_classes


def test_heldout_score_and_classes() -> None:
    c = digit_counts([G1, G2, G3])
    # s = mean/9 + distinct/10 - mode share
    np.testing.assert_allclose(heldout_score(c), [5.4 / 9 + 0.4 - 0.4, 0.3 + 0.7 - 0.4, 2 / 9 + 0.1 - 1.0])
    assert heldout_labels(c, np.zeros(3)).tolist() == [2, 2, 0]  # 0.6 > 0.5; 0.6; -0.68
    assert heldout_labels(c, np.array([0.3, -0.25, 5.0])).tolist() == [4, 1, 4]


@pytest.fixture(scope="module")
def drawn() -> np.ndarray:
    _, labels = load_bundled_digits()
    _, counts = draw_galleries(labels, 6000, 5, 20, np.random.default_rng(1))
    return counts


def test_binary_imbalance_spread_matches_the_documented_shares(drawn: np.ndarray) -> None:
    shares = {}
    for t in GALLERY_TASKS:
        if t.kind == "binary":
            p = float(t.fn(drawn).mean())
            shares[t.name] = min(p, 1 - p)
            assert abs(shares[t.name] - MINORITY[t.name]) < 0.025, (t.name, shares[t.name])
    assert min(shares.values()) < 0.02 and max(shares.values()) > 0.45


def test_heldout_is_balanced_related_but_no_single_task(drawn: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    y = heldout_labels(drawn, rng.normal(0, 0.1, len(drawn)))
    shares = np.bincount(y, minlength=5) / len(y)
    assert shares.min() > 0.12 and shares.max() < 0.3
    for t in GALLERY_TASKS:  # best accuracy of predicting the held-out class from one task's value
        v = t.fn(drawn)
        key = np.digitize(v, np.quantile(v, np.linspace(0, 1, 21)[1:-1])) if t.kind == "regression" else v
        hits = sum(np.bincount(y[key == k]).max() for k in np.unique(key))
        assert hits / len(y) < 0.5, t.name
    assert np.corrcoef(task_by_name("distinct").fn(drawn), y)[0, 1] > 0.3


def test_draws_follow_the_theme_and_size_bounds() -> None:
    labels = np.repeat(np.arange(10), 30)
    members, counts = draw_galleries(labels, 400, 3, 7, np.random.default_rng(0))
    sizes = counts.sum(1)
    assert sizes.min() == 3 and sizes.max() == 7
    for m, c in zip(members, counts):
        assert np.array_equal(np.bincount(labels[m], minlength=10), c)
        assert len(set(m.tolist())) == len(m)  # no image twice in a gallery
    # themed: the most frequent digit takes far more than a uniform draw's share (~0.3 at n=5)
    assert (counts.max(1) / sizes).mean() > 0.45


def build(columns: list[str] | None = None, seed: int = 0, **fields) -> object:
    src = parse_source({"kind": "mnist_galleries", "train_size": 60, "val_size": 20, "test_size": 20, **fields})
    return src.build(columns or src.available_columns(), seed)


def _sources(ds) -> set[int]:
    return set(ds.index[ds.index >= 0].tolist())


def test_splits_use_disjoint_source_digits_and_real_images() -> None:
    sp = build()
    tr, va, te = _sources(sp.train), _sources(sp.val), _sources(sp.test)
    assert not (tr & va) and not (tr & te) and not (va & te)
    images, labels = load_bundled_digits()
    assert sp.train.items.dtype == torch.uint8 and tuple(sp.train.items.shape) == (5000, 1, 28, 28)
    assert torch.equal(sp.train.items[:, 0], torch.from_numpy(images))
    row = sp.train.index[3][sp.train.index[3] >= 0].numpy()
    counts = digit_counts([labels[row]])
    assert sp.train.targets["size"][3].item() * sp.train.scales["size"].std + sp.train.scales["size"].mean == \
        pytest.approx(len(row))
    assert sp.train.targets["mode_digit"][3].item() == task_by_name("mode_digit").fn(counts)[0]
    assert list(sp.train.ids[:2]) == ["g000000", "g000001"] and sp.val.ids[0] == "g000060"
    b = sp.train.batch(torch.arange(4))
    assert b.inputs.dtype == torch.float32 and b.set_mask.sum(1).tolist() == sp.train.sizes[:4].tolist()


def test_deterministic_by_seed_and_nested_fractions() -> None:
    a, b, c = build(["has_7", HELDOUT]), build(["has_7", HELDOUT]), build(["has_7", HELDOUT], seed=1)
    assert torch.equal(a.train.index, b.train.index) and torch.equal(a.test.targets[HELDOUT], b.test.targets[HELDOUT])
    assert not torch.equal(a.train.index, c.train.index)
    half = build(["has_7"], fraction=0.5)
    assert len(half.train) == 30 and torch.equal(half.train.index, a.train.index[:30, : half.train.index.shape[1]])
    assert torch.equal(half.test.index, a.test.index)  # other splits do not move with fraction


def test_missing_labels_are_blanked_per_column() -> None:
    sp = build(["has_7", "mode_digit", "mean_digit"], missing=0.3, train_size=400)
    for col, t in sp.train.targets.items():
        blank = torch.isnan(t) if t.is_floating_point() else t == -1
        assert 0.22 < blank.float().mean().item() < 0.38, col
    assert not torch.equal(torch.isnan(sp.train.targets["has_7"]), sp.train.targets["mode_digit"] == -1)
    full = build(["has_7"], train_size=400)
    keep = ~torch.isnan(sp.train.targets["has_7"])
    assert torch.equal(sp.train.targets["has_7"][keep], full.train.targets["has_7"][keep])


@pytest.mark.parametrize("fields, expected", [
    ({"min_size": 9, "max_size": 4}, "min_size: 9 is larger than max_size 4"),
    ({"train_size": 3_000_000}, "= 3,001,000 galleries, more than 2,000,000"),
    ({"pool_fractions": [0.7, 0.0, 0.2]}, "pool_fractions: expected three shares > 0"),
    ({"missing": 1.0}, "missing: "),
    ({"source": "idx"}, "idx_dir is required"),
])
def test_impossible_settings_are_refused_in_one_line(fields: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as err:
        parse_source({"kind": "mnist_galleries", **fields})
    assert "\n" not in str(err.value)


def test_unknown_column_names_the_available_ones() -> None:
    with pytest.raises(ConfigError, match="column\\(s\\) stars not in the mnist_galleries data"):
        build(["stars"])


def test_a_run_on_the_benchmark_trains_on_gallery_batches(tmp_path) -> None:
    from manytask.config import load_config
    from manytask.experiment import run_experiment

    cfg = {"name": "mg", "seed": 0,
           "data": {"kind": "mnist_galleries", "train_size": 48, "val_size": 16, "test_size": 16, "max_size": 8},
           "tasks": [{"name": "has_7", "kind": "binary"},
                     {"name": "size_bucket", "kind": "multiclass", "num_classes": 4},
                     {"name": "mean_digit", "kind": "regression"}],
           "model": {"trunk": "set_encoder", "features": 8, "hidden": [16], "head_hidden": 4,
                     "options": {"item": "mlp", "pooling": "sum"}},
           "training": {"epochs": 1, "batch_size": 8, "threads": 1}}
    (tmp_path / "c.yaml").write_text(__import__("yaml").safe_dump(cfg))
    result = run_experiment(load_config(tmp_path / "c.yaml"), tmp_path / "run", progress=False)
    assert set(result.test) == {"has_7", "size_bucket", "mean_digit"}
    assert math.isfinite(result.test["mean_digit"]["mse"])
