"""``kind: arrays``: a .npz of inputs and named targets, split by an array or by fractions."""

from __future__ import annotations

import pathlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from manytask.cli import app
from manytask.data.sources import parse_source
from manytask.data.tabular import tabular_split_indices
from manytask.errors import ConfigError, DataError, ManytaskError
from manytask.tasks import Task

N = 40


def features_npz(tmp_path: Path, **extra: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "inputs": rng.normal(3.0, 2.0, size=(N, 5)).astype(np.float64),
        "y": rng.integers(0, 3, size=N),
        "r": rng.normal(size=N).astype(np.float32),
        "part": np.array(["train"] * 24 + ["val"] * 8 + ["TEST"] * 8),
    }
    arrays.update(extra)
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def build(path: Path, columns=("y",), seed: int = 0, **fields):
    return parse_source({"kind": "arrays", "path": str(path), **fields}).build(list(columns), seed)


def test_round_trip_with_split_array(tmp_path: Path) -> None:
    path = features_npz(tmp_path)
    raw = np.load(path)
    splits = build(path, ("y", "r"), split="part")
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [24, 8, 8]
    assert torch.equal(splits.train.inputs, torch.from_numpy(raw["inputs"][:24].astype(np.float32)))
    assert torch.equal(splits.val.targets["y"], torch.from_numpy(raw["y"][24:32]))
    assert splits.test.targets["r"].dtype == torch.float32 and splits.train.targets["y"].dtype == torch.int64
    assert torch.equal(splits.test.targets["r"], torch.from_numpy(raw["r"][32:]))


def test_numeric_split_and_fraction_is_nested(tmp_path: Path) -> None:
    codes = np.array([0] * 30 + [1] * 5 + [2] * 5)
    path = features_npz(tmp_path, part=codes)
    full = build(path, split="part", seed=3)
    half = build(path, split="part", seed=3, fraction=0.5)
    x_full = {tuple(r.tolist()) for r in full.train.inputs}
    x_half = [tuple(r.tolist()) for r in half.train.inputs]
    assert len(x_half) == 15 and set(x_half) <= x_full
    assert torch.equal(half.val.inputs, full.val.inputs)


def test_split_by_fractions_matches_the_tabular_split(tmp_path: Path) -> None:
    path = features_npz(tmp_path)
    raw = np.load(path)
    splits = build(path, val_fraction=0.25, test_fraction=0.25, seed=5)
    train, val, test = tabular_split_indices(N, val_fraction=0.25, test_fraction=0.25, seed=5)
    assert torch.equal(splits.test.targets["y"], torch.from_numpy(raw["y"][test]))
    assert torch.equal(splits.train.inputs, torch.from_numpy(raw["inputs"][train].astype(np.float32)))
    assert len(splits.val) == len(val) == 10


def test_standardize_uses_training_rows_only(tmp_path: Path) -> None:
    path = features_npz(tmp_path)
    splits = build(path, split="part", standardize=True)
    x = splits.train.inputs.double()
    assert torch.allclose(x.mean(0), torch.zeros(5, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(x.std(0, unbiased=False), torch.ones(5, dtype=torch.float64), atol=1e-5)
    raw = np.load(path)["inputs"]
    expected = (raw[24:32] - raw[:24].mean(0)) / raw[:24].std(0)
    assert np.allclose(splits.val.inputs.numpy(), expected, atol=1e-5)


def test_uint8_images_stay_uint8_and_batches_are_normalised(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(N, 3, 4, 4), dtype=np.uint8)
    path = features_npz(tmp_path, inputs=images)
    plain = build(path, split="part")
    assert plain.train.inputs.dtype == torch.uint8
    b = plain.train.batch(torch.arange(24))
    assert b.inputs.dtype == torch.float32
    assert torch.allclose(b.inputs, torch.from_numpy(images[:24]).float() / 255)
    norm = build(path, split="part", normalize="train").train.batch(torch.arange(24)).inputs.double()
    assert torch.allclose(norm.mean((0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(norm.std((0, 2, 3), unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-4)
    fixed = build(path, split="part", normalize={"mean": [0.5, 0.5, 0.5], "std": 0.25})
    assert torch.allclose(fixed.val.batch(torch.arange(8)).inputs,
                          (torch.from_numpy(images[24:32]).float() / 255 - 0.5) / 0.25, atol=1e-5)
    raw = build(path, split="part", scale=False).train.batch(torch.arange(2)).inputs
    assert torch.equal(raw, torch.from_numpy(images[:2]).float())


def test_missing_labels_and_text_classes(tmp_path: Path) -> None:
    y = np.arange(N) % 3
    y[[0, 5]] = -1
    r = np.linspace(0, 1, N).astype(np.float32)
    r[[1, 2]] = np.nan
    names = np.array(["cat", "dog", ""] * 13 + ["ant"])
    path = features_npz(tmp_path, y=y, r=r, kind=names)
    splits = build(path, ("y", "r", "kind"), split="part")
    t = splits.train.targets
    task = Task("y", "multiclass", num_classes=3)
    assert task.label_mask(t["y"])[[0, 5]].tolist() == [False, False] and bool(task.label_mask(t["y"])[1])
    assert Task("r", "regression").label_mask(t["r"])[:3, 0].tolist() == [True, False, False]
    assert splits.train.codings["kind"].classes == ("ant", "cat", "dog")
    assert t["kind"][:3].tolist() == [1, 2, -1]


def test_run_with_missing_labels_trains(tmp_path: Path) -> None:
    from manytask.config import parse_config
    from manytask.experiment import run_experiment

    y = np.arange(N) % 2
    y[:10] = -1
    path = features_npz(tmp_path, y=y)
    cfg = parse_config({
        "name": "arr", "seed": 0, "data": {"kind": "arrays", "path": str(path), "split": "part", "standardize": True},
        "tasks": [{"name": "y", "kind": "binary"}, {"name": "r", "kind": "regression"}],
        "model": {"trunk": "mlp"}, "training": {"epochs": 1, "batch_size": 8, "threads": 1},
    })
    result = run_experiment(cfg, tmp_path / "run", progress=False)
    assert np.isfinite(result.test["y"]["loss"]) and np.isfinite(result.test["r"]["mse"])


class _Touch:
    """Unpickling this object would create a file (it must never happen)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("case, fields, columns, expected", [
    ("no_file", {}, ("y",), r"nope\.npz: file not found"),
    ("no_key", {"inputs": "pixels"}, ("y",), r"data\.npz: no array 'pixels' \(arrays in the file: inputs, y, r, part\)"),
    ("no_column", {}, ("label",), r"data\.npz: no array 'label'"),
    ("rows", {}, ("short",), r"data\.npz: array 'short': has 39 rows but the inputs have 40"),
    ("int_missing", {}, ("gone",), r"data\.npz: array 'gone' has no label \(every value is missing\)"),
    ("nan_missing", {}, ("void",), r"data\.npz: array 'void' has no label \(every value is missing\)"),
    ("split_value", {"split": "bad_split"}, ("y",), r"data\.npz: index 3, array 'bad_split': unknown split 7 \(split names: train: train/0, "),
    ("train_empty", {"split": "no_train"}, ("y",), r"array 'no_train': no row is in the training split"),
])
def test_bad_arrays_give_one_line(tmp_path: Path, case: str, fields: dict, columns: tuple, expected: str) -> None:
    extra = {"short": np.zeros(N - 1), "gone": np.full(N, -1), "void": np.full(N, np.nan),
             "bad_split": np.array([0, 1, 2, 7] + [0] * (N - 4)), "no_train": np.full(N, 2)}
    path = features_npz(tmp_path, **{k: v for k, v in extra.items() if k in (*columns, fields.get("split"))})
    if case == "no_file":
        path = tmp_path / "nope.npz"
    with pytest.raises(ManytaskError, match=expected) as err:
        build(path, columns, **fields)
    assert "\n" not in str(err.value)


def test_non_finite_input_names_the_row(tmp_path: Path) -> None:
    x = np.ones((N, 5))
    x[17, 3] = np.inf
    with pytest.raises(DataError, match=r"data\.npz: index 17, array 'inputs': a value is not finite"):
        build(features_npz(tmp_path, inputs=x))


def test_object_arrays_are_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    path = features_npz(tmp_path, y=np.array([_Touch(marker)] * N, dtype=object))
    with pytest.raises(DataError, match=r"array 'y' holds Python objects \(dtype object\), which are never loaded"):
        build(path)
    assert not marker.exists()


def test_not_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    path.write_text("hello")
    with pytest.raises(DataError, match=r"data\.npz: not a readable \.npz file"):
        build(path)


def test_normalize_and_standardize_need_the_right_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.normalize: applies to uint8 images"):
        build(features_npz(tmp_path), normalize="train")
    images = np.zeros((N, 1, 2, 2), dtype=np.uint8)
    with pytest.raises(ConfigError, match=r"data\.standardize: the inputs are uint8 images"):
        build(features_npz(tmp_path, inputs=images), standardize=True)


def test_cli_reports_a_missing_key_in_one_line(tmp_path: Path) -> None:
    path = features_npz(tmp_path)
    cfg = {"name": "arr", "data": {"kind": "arrays", "path": str(path), "inputs": "x"},
           "tasks": [{"name": "y", "kind": "multiclass", "num_classes": 3}], "model": {"trunk": "mlp"},
           "training": {"epochs": 1, "threads": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines == [f"manytask: error: {tmp_path / 'c.yaml'}: {path}: no array 'x' "
                     "(arrays in the file: inputs, y, r, part)"]
