"""``kind: table``: splits, training-only statistics, categories, missing labels, ids, bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from manytask.config import parse_config
from manytask.data.sources import parse_source
from manytask.errors import ConfigError, DataError
from manytask.experiment import build_data, run_experiment, task_splits
from manytask.tasks import Task


def table(tmp_path: Path, frame: pd.DataFrame, name: str = "t.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def source(path: str, **fields):
    return parse_source({"kind": "table", "path": path, **fields})


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    return pd.DataFrame({
        "id": [f"s{i:03d}" for i in range(n)],
        "x": rng.normal(size=n),
        "color": rng.choice(["red", "green", "blue"], size=n),
        "y": (rng.random(n) < 0.5).astype(int),
        "grade": rng.choice(["low", "mid", "high"], size=n),
        "amount": rng.normal(5.0, 2.0, size=n),
    })


def test_fraction_split_partitions_rows_and_keeps_ids(tmp_path, frame) -> None:
    src = source(table(tmp_path, frame), targets=["y", "grade", "amount"], id_column="id",
                 val_fraction=0.1, test_fraction=0.25)
    splits = src.build(["y"], seed=3)
    sizes = [len(splits.train), len(splits.val), len(splits.test)]
    assert sizes == [130, 20, 50]
    ids = np.concatenate([splits.train.ids, splits.val.ids, splits.test.ids])
    assert sorted(ids.tolist()) == frame["id"].tolist()
    # the label follows its row
    by_id = dict(zip(frame["id"], frame["y"]))
    assert splits.test.targets["y"].tolist() == [by_id[i] for i in splits.test.ids]
    assert splits.test.id_name == "id"
    again = src.build(["y"], seed=3)
    assert again.test.ids.tolist() == splits.test.ids.tolist()
    assert src.build(["y"], seed=4).test.ids.tolist() != splits.test.ids.tolist()


def test_split_column_names_rows_case_insensitively(tmp_path, frame) -> None:
    frame["part"] = ["Train"] * 150 + ["dev"] * 20 + ["TEST"] * 30
    src = source(table(tmp_path, frame), targets=["y"], features=["x"], split_column="part",
                 split_names={"train": ["train"], "val": ["dev"], "test": ["test"]})
    splits = src.build(["y"], seed=0)
    assert [len(splits.train), len(splits.val), len(splits.test)] == [150, 20, 30]
    assert splits.test.ids.tolist() == list(range(171, 201))  # rows counted from 1
    half = source(src.path, targets=["y"], features=["x"], split_column="part", fraction=0.5,
                  split_names={"train": ["train"], "val": ["dev"], "test": ["test"]}).build(["y"], seed=0)
    assert len(half.train) == 75 and set(half.train.ids) <= set(splits.train.ids)


def test_split_column_problems_name_row_and_field(tmp_path, frame) -> None:
    frame["part"] = ["train"] * 150 + ["val"] * 20 + ["test"] * 29 + ["holdout"]
    path = table(tmp_path, frame)
    with pytest.raises(DataError, match=r"t\.csv: row 200, column 'part': unknown split 'holdout'"):
        source(path, targets=["y"], split_column="part").build(["y"], seed=0)
    with pytest.raises(ConfigError, match="split_column: .*remove val_fraction"):
        source(path, targets=["y"], split_column="part", val_fraction=0.1)


def test_standardisation_uses_training_rows_only(tmp_path) -> None:
    n = 100
    frame = pd.DataFrame({"x": np.arange(n, dtype=float), "y": np.arange(n) % 2})
    frame.loc[80:, "x"] = 1000.0  # val / test rows far away from the training rows
    frame["part"] = ["train"] * 80 + ["val"] * 10 + ["test"] * 10
    splits = source(table(tmp_path, frame), targets=["y"], split_column="part").build(["y"], seed=0)
    x_train = splits.train.inputs[:, 0].double()
    assert abs(float(x_train.mean())) < 1e-6 and abs(float(x_train.std(unbiased=False)) - 1) < 1e-6
    train_values = np.arange(80, dtype=float)
    expected = (1000.0 - train_values.mean()) / train_values.std()
    assert torch.allclose(splits.test.inputs[:, 0].double(), torch.full((10,), expected, dtype=torch.float64))


def test_missing_feature_gets_the_training_mean(tmp_path) -> None:
    frame = pd.DataFrame({"x": [1.0, 3.0, np.nan, 100.0], "y": [0, 1, 0, 1],
                          "part": ["train", "train", "val", "test"]})
    splits = source(table(tmp_path, frame), targets=["y"], split_column="part").build(["y"], seed=0)
    assert splits.val.inputs.tolist() == [[0.0]]  # missing -> the training mean -> 0


def test_categories_come_from_training_rows(tmp_path) -> None:
    frame = pd.DataFrame({"color": ["red", "blue", "red", "green", "purple", None],
                          "y": [0, 1, 0, 1, 0, 1],
                          "part": ["train", "train", "train", "val", "test", "test"]})
    path = table(tmp_path, frame)
    splits = source(path, targets=["y"], split_column="part").build(["y"], seed=0)
    # columns: color=blue, color=red (sorted, training categories only)
    assert splits.train.inputs.tolist() == [[0, 1], [1, 0], [0, 1]]
    assert splits.val.inputs.tolist() == [[0, 0]]  # green: not a training category
    assert splits.test.inputs.tolist() == [[0, 0], [0, 0]]  # unseen, missing
    codes = source(path, targets=["y"], split_column="part", categorical_encoding="codes",
                   standardize=False).build(["y"], seed=0)
    assert codes.train.inputs[:, 0].tolist() == [1, 0, 1] and codes.test.inputs[:, 0].tolist() == [-1, -1]


def test_numbers_can_be_declared_categorical(tmp_path) -> None:
    frame = pd.DataFrame({"zone": [1, 2, 3, 1], "y": [0, 1, 0, 1], "part": ["train", "train", "val", "test"]})
    splits = source(table(tmp_path, frame), targets=["y"], split_column="part",
                    categorical=["zone"]).build(["y"], seed=0)
    assert splits.train.inputs.tolist() == [[1, 0], [0, 1]]


def test_other_targets_are_never_features(tmp_path, frame) -> None:
    src = source(table(tmp_path, frame), targets=["y", "grade", "amount"], id_column="id")
    one = src.build(["y"], seed=0)
    # x and the three one-hot colour columns; not amount, grade or the id
    assert one.train.inputs.shape[1] == 4
    with pytest.raises(ConfigError, match="targets: list every label column"):
        source(src.path)


def test_names_become_classes_and_blanks_missing(tmp_path) -> None:
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0, 4.0], "grade": ["mid", "low", None, "high", "mid"],
                          "ok": ["Yes", "no", "yes", None, "NO"], "level": [1, 3, 2, 3, None],
                          "part": ["train"] * 3 + ["val", "test"]})
    src = source(table(tmp_path, frame), targets=["grade", "ok", "level"], split_column="part",
                 classes={"level": [1, 2, 3]})
    splits = src.build(["grade", "ok", "level"], seed=0)
    t = splits.train.targets
    assert t["grade"].dtype == torch.int64 and t["grade"].tolist() == [2, 1, -1]  # -1: missing
    assert t["ok"].tolist() == [1, 0, 1]
    assert t["level"].tolist() == [0, 2, 1]
    assert Task("grade", "multiclass", num_classes=3).label_mask(t["grade"]).tolist() == [True, True, False]
    assert splits.train.codings["grade"].classes == ("high", "low", "mid")
    assert splits.train.codings["ok"].classes == ("no", "yes")


def test_regression_targets_can_be_standardised_with_training_statistics(tmp_path, frame) -> None:
    frame.loc[frame.index[::10], "amount"] = np.nan
    path = table(tmp_path, frame)
    splits = source(path, targets=["y", "grade", "amount"], id_column="id",
                    standardize_targets=["amount"]).build(["amount"], 0)
    stored = splits.train.targets["amount"].double()
    kept = ~torch.isnan(stored)
    assert abs(float(stored[kept].mean())) < 1e-6 and abs(float(stored[kept].std(unbiased=False)) - 1) < 1e-6
    scale = splits.train.scales["amount"]
    raw = frame.set_index("id").loc[splits.test.ids, "amount"].to_numpy()
    assert np.allclose(scale.restore(splits.test.targets["amount"].numpy()), raw, atol=1e-4, equal_nan=True)
    with pytest.raises(DataError, match=r"row 1, column 'grade' has the class name .*standardize_targets needs numbers"):
        source(path, targets=["y", "grade", "amount"], id_column="id", standardize_targets=["grade"]).build(["grade"], 0)
    with pytest.raises(ConfigError, match="data.standardize_targets: 'x' is not a label column"):
        source(path, targets=["y", "grade", "amount"], id_column="id", standardize_targets=["x"]).build(["amount"], 0)


def test_missing_labels_are_masked_not_negatives(tmp_path) -> None:
    """Every labelled row is positive; if the blanks counted as negatives the loss would grow."""
    n = 100
    y = np.where(np.arange(n) % 5 == 0, np.nan, 1.0)
    frame = pd.DataFrame({"x": np.linspace(0, 1, n), "y": pd.array(y, dtype="Int64")})
    splits = source(table(tmp_path, frame), targets=["y"], val_fraction=0.1, test_fraction=0.1).build(["y"], 0)
    target = splits.train.targets["y"]
    assert int(torch.isnan(target).sum()) > 0
    task = Task("y", "binary")
    logit = torch.full((len(target), 1), 2.0)
    loss = task.loss(logit, target)
    assert torch.isclose(loss, torch.nn.functional.softplus(torch.tensor(-2.0)))
    as_negatives = task.loss(logit, torch.nan_to_num(target, nan=0.0))
    assert as_negatives > 3 * loss


def test_class_name_in_regression_target_is_refused(tmp_path) -> None:
    frame = pd.DataFrame({"x": np.arange(10.0), "price": ["1.5"] * 6 + ["n/k"] + ["2"] * 3})
    path = table(tmp_path, frame)
    cfg = parse_config({"data": {"kind": "table", "path": path, "targets": ["price"]},
                        "tasks": [{"name": "price", "kind": "regression"}]})
    splits = build_data(cfg, ["price"])
    with pytest.raises(DataError, match=r"t\.csv: row 7, column 'price' has the class name 'n/k'; "
                                        r"task 'price' \(regression\) needs numbers"):
        task_splits(splits, cfg.build_tasks())


@pytest.mark.parametrize("fields, columns, message", [
    ({"path": "MISSING"}, ["y"], r"nowhere\.csv: file not found"),
    ({}, ["nope"], r"t\.csv: no column 'nope' \(a task's target"),
    ({"id_column": "ident"}, ["y"], r"no column 'ident' \(data\.id_column"),
    ({"targets": ["y", "empty"]}, ["empty"], r"t\.csv: column 'empty' has no label \(every value is missing\)"),
    ({"features": ["x", "word"]}, ["y"], r"t\.csv: row 2, column 'word': 'b' is not a number"),
    ({"classes": {"y": [0, 2]}}, ["y"], r"t\.csv: row 2, column 'y': value 1 is not one of the classes 0, 2"),
    ({"max_categories": 1}, ["y"], r"column 'word' has \d categories .*data\.max_categories is 1"),
])
def test_bad_table_input_names_file_column_and_row(tmp_path, fields, columns, message) -> None:
    frame = pd.DataFrame({"x": np.arange(20.0), "y": [0, 1] * 10, "empty": [None] * 20,
                          "word": ["a", "b"] * 10})
    frame.loc[0, "word"] = "1"
    path = table(tmp_path, frame)
    kw = {"targets": ["y", "empty"], "categorical": [] if "features" in fields else ["word"], **fields}
    if kw.get("path") == "MISSING":
        kw["path"] = str(tmp_path / "nowhere.csv")
    src = source(kw.pop("path", path), **kw)
    with pytest.raises((DataError, ConfigError), match=message):
        src.build(columns, seed=0)


def test_parquet_round_trip_and_missing_pyarrow(tmp_path, frame, monkeypatch) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    csv_splits = source(table(tmp_path, frame), targets=["y", "grade", "amount"], id_column="id").build(["y"], 0)
    pq_splits = source(str(path), targets=["y", "grade", "amount"], id_column="id").build(["y"], 0)
    assert torch.equal(csv_splits.train.inputs, pq_splits.train.inputs)
    assert pq_splits.test.ids.tolist() == csv_splits.test.ids.tolist()
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(DataError, match=r"t\.parquet: reading Parquet needs pyarrow: pip install 'manytask\[parquet\]'"):
        source(str(path), targets=["y"]).build(["y"], 0)


def test_predictions_csv_keeps_ids_labels_and_class_names(tmp_path, frame) -> None:
    frame.loc[frame.index[::7], "grade"] = None
    path = table(tmp_path, frame)
    cfg = parse_config({
        "seed": 0,
        "data": {"kind": "table", "path": path, "targets": ["y", "grade", "amount"], "id_column": "id",
                 "standardize_targets": ["amount"]},
        "tasks": [{"name": "y", "kind": "binary"}, {"name": "grade", "kind": "multiclass", "num_classes": 3},
                  {"name": "amount", "kind": "regression"}],
        "model": {"trunk": "mlp", "hidden": [8]},
        "training": {"epochs": 1, "batch_size": 32, "threads": 1},
    })
    run_experiment(cfg, tmp_path / "run", progress=False)
    pred = pd.read_csv(tmp_path / "run" / "predictions.csv", dtype={"id": str})
    assert list(pred.columns) == ["id", "y", "y_prob", "y_label", "grade", "grade_label", "amount", "amount_label"]
    assert len(pred) == 40 and set(pred["id"]) <= set(frame["id"])
    truth = frame.set_index("id")
    assert (pred["y_label"].to_numpy() == truth.loc[pred["id"], "y"].to_numpy()).all()
    assert pred["grade_label"].isna().tolist() == truth.loc[pred["id"], "grade"].isna().tolist()
    assert set(pred["grade"]) <= {"low", "mid", "high"}
    assert np.allclose(pred["amount_label"], truth.loc[pred["id"], "amount"], atol=1e-5)  # own units
    assert abs(pred["amount"].mean() - 5.0) < 2.0
    assert ((pred["y_prob"] > 0.5).astype(int) == pred["y"]).all()


def test_yeast_as_a_csv_with_blanked_labels_matches_the_builtin_source(tmp_path) -> None:
    pytest.importorskip("river")
    from manytask.data.sources.yeast import YeastSource
    from manytask.data.tabular import load_yeast

    x, y = load_yeast()
    labels = [f"label_{j}" for j in range(y.shape[1])]
    blank = np.random.default_rng(0).random(y.shape) < 0.2
    frame = pd.DataFrame(x.astype(np.float64), columns=[f"Att{i}" for i in range(1, x.shape[1] + 1)])
    frame[labels] = pd.DataFrame(np.where(blank, np.nan, y), columns=labels).astype("Int64")
    src = source(table(tmp_path, frame), targets=labels)
    ours = src.build(labels, seed=5)
    builtin = YeastSource().build(labels, seed=5)
    assert torch.allclose(ours.train.inputs, builtin.train.inputs, atol=1e-5)
    assert torch.allclose(ours.test.inputs, builtin.test.inputs, atol=1e-5)
    tasks = [Task(c, "binary") for c in labels]
    logits = torch.randn(len(ours.train), 1, generator=torch.Generator().manual_seed(0))
    for task in tasks:
        mine, full = ours.train.targets[task.name], builtin.train.targets[task.name]
        kept = ~torch.isnan(mine)
        assert 0.7 < float(kept.float().mean()) < 0.9
        assert torch.equal(mine[kept], full[kept].float())
        only_labelled = torch.nn.functional.binary_cross_entropy_with_logits(logits[kept, 0], full[kept].float())
        assert torch.isclose(task.loss(logits, mine), only_labelled, atol=1e-6)
