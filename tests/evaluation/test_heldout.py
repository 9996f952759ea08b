"""The held-out-task comparison: nested label shares, gallery embeddings, probe sweep, table."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch

from manytask.data.sets import SetDataset, pack_index
from manytask.errors import ConfigError
from manytask.evaluation.heldout import (
    HeldoutRecord,
    embed_sets,
    heldout_markdown,
    heldout_table,
    labels_of,
    mean_item_embeddings,
    nested_rows,
    probe_sweep,
    write_heldout,
)


def test_nested_rows_are_nested_sized_and_seeded():
    rows = nested_rows(101, (0.2, 0.4, 1.0), seed=3)
    assert [len(r) for r in rows.values()] == [20, 40, 101]
    assert set(rows[0.2]) <= set(rows[0.4]) <= set(rows[1.0]) == set(range(101))
    assert np.array_equal(rows[0.4], nested_rows(101, (0.4,), seed=3)[0.4])
    assert not np.array_equal(rows[0.2], nested_rows(101, (0.2,), seed=4)[0.2])
    assert len(nested_rows(3, (0.01,), 0)[0.01]) == 1
    with pytest.raises(ConfigError, match="label fraction"):
        nested_rows(10, (0.0,), 0)


def _galleries() -> SetDataset:
    items = torch.arange(6, dtype=torch.float32)[:, None] * torch.tensor([[1.0, -1.0]])  # item i = (i, -i)
    index = pack_index([[0, 1], [2], [3, 4, 5]])
    y = torch.tensor([0, 1, 1])
    return SetDataset(items, index, {"heldout": y}, masks={"heldout": torch.tensor([True, False, True])})


def test_mean_item_embeddings_average_real_items_only():
    ds = _galleries()
    x, sec = mean_item_embeddings(lambda t: t * 2, ds, batch_size=2)
    assert np.allclose(x, [[1.0, -1.0], [4.0, -4.0], [8.0, -8.0]]) and sec >= 0
    z, _ = embed_sets(lambda t, m: (t * m[..., None]).sum(1), ds, batch_size=3)
    assert np.allclose(z, [[1.0, -1.0], [2.0, -2.0], [12.0, -12.0]])
    y, rows = labels_of(ds, "heldout")
    assert rows.tolist() == [0, 2] and y.tolist() == [0, 1]


def test_probe_sweep_records_every_fraction_and_seed():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=260)
    x = np.eye(3)[y] * 4 + 0.3 * rng.normal(size=(260, 3))
    split = lambda a, b: (x[a:b], y[a:b])  # noqa: E731
    recs = probe_sweep("a", split(0, 160), split(160, 210), split(210, 260), (0.5, 1.0), seeds=(0, 1),
                       embed_seconds=0.01, probe_options={"max_epochs": 15, "lr": 0.01})
    assert [(r.fraction, r.seed, r.n_train) for r in recs] == [(0.5, 0, 80), (1.0, 0, 160), (0.5, 1, 80), (1.0, 1, 160)]
    assert all(r.accuracy > 0.9 for r in recs) and all(r.seconds_per_instance > 0.01 for r in recs)


def _rec(method: str, fraction: float, seed: int, acc: float) -> HeldoutRecord:
    return HeldoutRecord(method, fraction, seed, 10, acc, acc, 0.002, 1.5)


def test_table_is_mean_and_sample_std_over_seeds(tmp_path):
    recs = [_rec("c", 1.0, 0, 0.5), _rec("a", 0.2, 0, 0.6), _rec("a", 0.2, 1, 0.8), _rec("a", 1.0, 0, 0.9)]
    table = heldout_table(recs)
    assert table["fractions"] == [0.2, 1.0]
    assert [r["method"] for r in table["rows"]] == ["a", "c"]
    cell = table["rows"][0]["cells"]["0.2"]
    assert cell["mean"] == pytest.approx(0.7) and cell["std"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert table["rows"][0]["ms_per_instance"] == pytest.approx(2.0)
    extra = heldout_table([*recs, _rec("c12", 1.0, 0, 0.7)], {"c12": "(c) 12 epochs"})
    assert [r["label"] for r in extra["rows"]][2:] == ["(c) 12 epochs"]
    md = heldout_markdown(table, n_train=100)
    assert "| 20% (20) | 100% (100) |" in md and "0.700 ± 0.141" in md and "| – |" in md
    paths = write_heldout(recs, tmp_path)
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == 4 and rows[0]["method"] == "c"
    doc = json.loads(paths["json"].read_text())
    assert doc["table"]["rows"][1]["cells"]["0.2"]["mean"] is None  # NaN written as null


def _tiny_heldout_config():
    from manytask.config import parse_config

    return parse_config({
        "name": "tiny", "seed": 0,
        "data": {"kind": "mnist_galleries", "train_size": 24, "val_size": 10, "test_size": 10, "max_size": 6,
                 "seed": 0},
        "tasks": [{"name": "heldout", "kind": "multiclass", "num_classes": 5}],
        "model": {"trunk": "set_encoder", "width": 0.25, "features": 8, "head_hidden": 8,
                  "options": {"freeze_blocks": 2}},
        "training": {"epochs": 1, "batch_size": 8, "optimizer": {"name": "adam", "lr": 0.01}},
    })


def test_end_to_end_run_trains_on_the_given_rows_and_is_read_back(tmp_path):
    from manytask.evaluation.heldout import train_end_to_end
    from manytask.training import RunDir

    cfg = _tiny_heldout_config()
    rows = nested_rows(24, (0.5,), seed=1)[0.5]
    rec = train_end_to_end(cfg, rows, seed=1, run_dir=tmp_path / "c", fraction=0.5)
    assert (rec.method, rec.fraction, rec.seed, rec.n_train) == ("c", 0.5, 1, 12)
    assert 0 <= rec.accuracy <= 1 and rec.seconds_per_instance > 0 and rec.train_seconds > 0
    summary = RunDir(tmp_path / "c").summary()
    assert summary["status"] == "complete" and summary["test"]["heldout"]["accuracy"] == rec.accuracy
    again = train_end_to_end(cfg, rows, seed=1, run_dir=tmp_path / "c", fraction=0.5)
    assert again == rec  # finished: read back, not retrained
    bad = cfg.model_copy(update={"tasks": cfg.tasks * 2})
    with pytest.raises(ConfigError, match="exactly one classification task"):
        train_end_to_end(bad, rows, 0, tmp_path / "d", 0.5)


@pytest.mark.skipif(os.environ.get("MANYTASK_SLOW_TESTS") != "1",
                    reason="runs the whole study at --quick sizes, about 20 s (set MANYTASK_SLOW_TESTS=1)")
def test_quick_study_writes_every_table_and_figure(tmp_path, load_script):
    study = load_script("examples/galleries/study.py")
    figures = study.main(["--quick", "--out", str(tmp_path)])
    assert {r["method"] for r in figures["table2"]["rows"]} == {"a", "b", "c"}
    for name in ("heldout.md", "heldout.csv", "per_task.md", "figures.json", *study.PNG.values()):
        assert (tmp_path / name).is_file()
