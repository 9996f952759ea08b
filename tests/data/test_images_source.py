"""``kind: images``: a folder of image files plus a label CSV, held as uint8, normalised per batch."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from manytask.cli import app
from manytask.data.batch import ChannelAffine
from manytask.data.sources import parse_source
from manytask.errors import ConfigError, DataError, ManytaskError
from manytask.tasks import Task

ROOT = Path(__file__).resolve().parents[2]
N = 20
SPLITS = ["train"] * 12 + ["val"] * 4 + ["test"] * 4


def write_folder(tmp_path: Path, *, mode: str = "L", shape: tuple[int, int] = (6, 8),
                 rows: list[dict] | None = None) -> tuple[Path, np.ndarray]:
    """N images ``img_XX.png`` under tmp_path/imgs and labels.csv (file, digit, name, split)."""
    root = tmp_path / "imgs"
    root.mkdir()
    rng = np.random.default_rng(0)
    channels = 3 if mode == "RGB" else 1
    pixels = rng.integers(0, 256, size=(N, *shape, channels), dtype=np.uint8)
    for i in range(N):
        Image.fromarray(pixels[i, :, :, 0] if channels == 1 else pixels[i]).save(root / f"img_{i:02d}.png")
    if rows is None:
        rows = [{"file": f"img_{i:02d}.png", "digit": i % 4, "name": ["cat", "dog", "ant", ""][i % 4],
                 "split": SPLITS[i]} for i in range(N)]
    write_csv(root / "labels.csv", rows)
    return root, pixels.transpose(0, 3, 1, 2)


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def build(root: Path, columns=("digit",), seed: int = 0, **fields):
    return parse_source({"kind": "images", "root": str(root), **fields}).build(list(columns), seed)


def all_inputs(ds) -> torch.Tensor:
    return ds.batch(torch.arange(len(ds))).inputs


def test_round_trip_uint8_storage_and_split_column(tmp_path: Path) -> None:
    root, pixels = write_folder(tmp_path)
    splits = build(root, ("digit",), split_column="split", normalize="none")
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [12, 4, 4]
    assert splits.train.inputs.dtype == torch.uint8 and splits.train.inputs.shape == (12, 1, 6, 8)
    assert torch.equal(splits.val.inputs, torch.from_numpy(pixels[12:16]))
    x = all_inputs(splits.test)
    assert x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(pixels[16:]).float() * torch.tensor(1 / 255, dtype=torch.float32))
    assert splits.train.targets["digit"].tolist() == [i % 4 for i in range(12)]
    assert splits.train.targets["digit"].dtype == torch.int64


def test_split_by_fractions_and_nested_training_fraction(tmp_path: Path) -> None:
    root, pixels = write_folder(tmp_path)
    full = build(root, val_fraction=0.25, test_fraction=0.25, seed=2)
    assert [len(s) for s in (full.train, full.val, full.test)] == [10, 5, 5]
    seen = torch.cat([full.train.inputs, full.val.inputs, full.test.inputs]).reshape(N, -1)
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, pixels.reshape(N, -1).tolist()))
    by_col = build(root, split_column="split", seed=2)
    digits = [{"file": f"img_{i:02d}.png", "digit": 1, "split": {"train": "0", "val": "1", "test": "2"}[SPLITS[i]]}
              for i in range(N)]
    write_csv(root / "labels.csv", digits)
    by_digit = build(root, split_column="split", seed=2)
    assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(
        (by_col.train, by_col.val, by_col.test), (by_digit.train, by_digit.val, by_digit.test)))
    half = build(root, split_column="split", seed=2, fraction=0.5)
    assert len(half.train) == 6
    full_rows = {tuple(r) for r in by_col.train.inputs.reshape(12, -1).tolist()}
    assert {tuple(r) for r in half.train.inputs.reshape(6, -1).tolist()} <= full_rows
    assert torch.equal(half.test.inputs, by_col.test.inputs)


@pytest.mark.parametrize("resample", ["nearest", "bilinear"])
def test_resizing_matches_pillow(tmp_path: Path, resample: str) -> None:
    root, pixels = write_folder(tmp_path, mode="RGB")
    splits = build(root, split_column="split", size=[3, 5], mode="RGB", resample=resample, normalize="none")
    assert splits.train.inputs.shape == (12, 3, 3, 5)
    filt = Image.Resampling.NEAREST if resample == "nearest" else Image.Resampling.BILINEAR
    expected = np.asarray(Image.fromarray(pixels[0].transpose(1, 2, 0)).resize((5, 3), filt)).transpose(2, 0, 1)
    assert torch.equal(splits.train.inputs[0], torch.from_numpy(np.ascontiguousarray(expected)))


def test_grey_conversion_and_train_statistics(tmp_path: Path) -> None:
    root, _ = write_folder(tmp_path, mode="RGB")
    rgb = build(root, split_column="split", mode="RGB")
    x = all_inputs(rgb.train).double()
    assert torch.allclose(x.mean((0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(x.std((0, 2, 3), unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-4)
    grey = build(root, split_column="split", mode="L")
    assert grey.train.inputs.shape == (12, 1, 6, 8)
    fixed = build(root, split_column="split", mode="RGB", normalize={"mean": [0.1, 0.2, 0.3], "std": 0.5})
    ref = (rgb.val.inputs.float() / 255 - torch.tensor([0.1, 0.2, 0.3]).reshape(1, 3, 1, 1)) / 0.5
    assert torch.allclose(all_inputs(fixed.val), ref, atol=1e-5)


def test_channel_affine_equals_normalising_in_advance() -> None:
    x = torch.arange(256, dtype=torch.uint8).reshape(4, 1, 8, 8)
    ahead = x.numpy().astype(np.float32)
    ahead *= np.float32(1.0 / (255.0 * 0.3208))
    ahead -= np.float32(0.1410 / 0.3208)
    assert torch.equal(ChannelAffine.from_mean_std([0.1410], [0.3208])(x), torch.from_numpy(ahead))


def test_missing_labels_and_text_classes(tmp_path: Path) -> None:
    rows = [{"file": f"img_{i:02d}.png", "digit": "" if i in (1, 13) else i % 4,
             "name": ["cat", "dog", "ant", ""][i % 4], "split": SPLITS[i]} for i in range(N)]
    root, _ = write_folder(tmp_path, rows=rows)
    splits = build(root, ("digit", "name"), split_column="split")
    digit, name = splits.train.targets["digit"], splits.train.targets["name"]
    assert digit.dtype == torch.float32 and torch.isnan(digit[1]) and digit[2] == 2
    assert splits.train.codings["name"].classes == ("ant", "cat", "dog")
    assert name[:4].tolist() == [1, 2, 0, -1]
    task = Task("name", "multiclass", num_classes=3)
    assert task.label_mask(name)[:4].tolist() == [True, True, True, False]
    assert Task("digit", "multiclass", num_classes=4).label_mask(digit)[:3].tolist() == [True, False, True]


def test_images_without_a_row_are_ignored_with_a_warning(tmp_path: Path) -> None:
    rows = [{"file": f"img_{i:02d}.png", "digit": i % 4, "split": SPLITS[i]} for i in range(N - 2)]
    root, _ = write_folder(tmp_path, rows=rows)
    with pytest.warns(UserWarning, match=r"2 image\(s\) have no row in .*labels\.csv and are ignored: img_18\.png, img_19\.png"):
        splits = build(root, split_column="split")
    assert len(splits.test) == 2


def test_memory_cap_refuses_with_the_size(tmp_path: Path) -> None:
    root, _ = write_folder(tmp_path)
    with pytest.raises(ConfigError, match=r"data\.max_memory_gb: 20 images of 3x1000x1000 would take 0\.06 GiB as uint8"):
        build(root, mode="RGB", size=[1000, 1000], max_memory_gb=0.01)


def _break(case: str, root: Path) -> dict:
    """Damage the folder for ``case``; return the source fields to use."""
    if case == "no_folder":
        return {"root": str(root / "missing")}
    if case == "no_csv":
        (root / "labels.csv").unlink()
    if case == "undecodable":
        (root / "img_07.png").write_bytes(b"not a png at all")
    if case == "csv_names_missing":
        for i in (3, 4, 5, 9):
            (root / f"img_{i:02d}.png").unlink()
    if case in ("all_missing", "bad_split", "duplicate"):
        rows = [{"file": f"img_{i:02d}.png", "digit": "", "split": SPLITS[i]} for i in range(N)]
        if case == "bad_split":
            rows = [dict(r, digit=1) for r in rows]
            rows[4]["split"] = "holdout"
        if case == "duplicate":
            rows = [dict(r, digit=1) for r in rows]
            rows[6]["file"] = "img_02.png"
        write_csv(root / "labels.csv", rows)
    return {}


@pytest.mark.parametrize("case, fields, expected", [
    ("no_folder", {}, r"imgs/missing: image folder not found"),
    ("no_csv", {}, r"imgs/labels\.csv: labels file not found"),
    ("no_file_column", {"file_column": "path"}, r"labels\.csv: no column 'path' \(columns: file, digit, name, split\)"),
    ("no_label_column", {"columns": ["colour"]}, r"labels\.csv: no column 'colour'"),
    ("no_split_column", {"split_column": "fold"}, r"labels\.csv: no column 'fold'"),
    ("undecodable", {}, r"imgs/img_07\.png: cannot decode the image"),
    ("csv_names_missing", {}, (r"labels\.csv: 4 file\(s\) in column 'file' are not images under .*imgs "
                               r"\(first on line 5\): img_03\.png, img_04\.png, img_05\.png, \.\.\.")),
    ("all_missing", {}, r"labels\.csv: column 'digit' has no label \(every value is missing\)"),
    ("bad_split", {"split_column": "split"}, r"labels\.csv: row 5, column 'split': unknown split 'holdout'"),
    ("duplicate", {}, r"labels\.csv: line 8: file 'img_02\.png' is already listed on line 4"),
])
def test_bad_input_gives_one_line(tmp_path: Path, case: str, fields: dict, expected: str) -> None:
    root, _ = write_folder(tmp_path)
    fields = {**fields, **_break(case, root)}
    columns = fields.pop("columns", ["digit"])
    with pytest.raises(ManytaskError, match=expected) as err:
        build(Path(fields.pop("root", root)), columns, **fields)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, (DataError, ConfigError))


def test_cli_reports_an_undecodable_image_in_one_line(tmp_path: Path) -> None:
    root, _ = write_folder(tmp_path)
    (root / "img_03.png").write_bytes(b"\x89PNG broken")
    cfg = {"name": "img", "data": {"kind": "images", "root": str(root), "split_column": "split"},
           "tasks": [{"name": "digit", "kind": "multiclass", "num_classes": 4}], "model": {"trunk": "mlp"},
           "training": {"epochs": 1, "threads": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(
        f"manytask: error: {tmp_path / 'c.yaml'}: {root / 'img_03.png'}: cannot decode the image")


def test_multimnist_through_images_equals_the_builtin_source(tmp_path: Path, load_script) -> None:
    """The PNG route trains on bit-identical inputs, so its test metrics equal the built-in's."""
    from manytask.config import load_config
    from manytask.experiment import run_experiment

    folder = tmp_path / "mm"
    load_script("examples/multimnist_to_images.py").export_multimnist(folder, train_size=300, val_size=100, test_size=100, seed=0)
    sizes = {"data.train_size": 300, "data.val_size": 100, "data.test_size": 100}
    common = {"training.epochs": 4, "training.batch_size": 16, "training.threads": 1}
    builtin = load_config(ROOT / "configs" / "multimnist_demo.yaml", {**sizes, **common})
    images = load_config(ROOT / "configs" / "multimnist_images.yaml",
                         {"data.root": str(folder), "data.labels": str(folder / "labels.csv"), **common})
    a = run_experiment(builtin, tmp_path / "a", progress=False)
    b = run_experiment(images, tmp_path / "b", progress=False)
    assert a.test == b.test and a.val == b.val
    assert a.test["left"]["accuracy"] > 0.25  # it learnt something (chance is 0.1)


@pytest.mark.parametrize("fields, expected", [
    ({"normalize": "per_image"}, "data.normalize: expected train, none or {mean: ..., std: ...}, got 'per_image'"),
    ({"normalize": {"mean": 0.5, "std": 0}}, "data.normalize: std: values must be > 0"),
    ({"normalize": {"mean": 0.5}}, "data.normalize: std: field required"),
    ({"size": [0, 4]}, "data.size: expected [height, width] >= 1, got [0, 4]"),
    ({"mode": "CMYK"}, "data.mode"),
])
def test_bad_fields_are_config_errors(fields: dict, expected: str) -> None:
    from manytask.config import parse_config

    with pytest.raises(ConfigError) as err:
        parse_config({"data": {"kind": "images", "root": "x", **fields}, "tasks": [{"name": "a", "kind": "binary"}]})
    assert expected in str(err.value)


def test_per_channel_numbers_must_match_the_mode(tmp_path: Path) -> None:
    root, _ = write_folder(tmp_path)
    with pytest.raises(ConfigError, match=r"data\.normalize\.mean: 2 values for 3 channels"):
        build(root, mode="RGB", normalize={"mean": [0.1, 0.2], "std": 0.3})
