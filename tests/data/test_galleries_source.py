"""``kind: galleries``: a user's items (PNG files listed in a table, or an ``.npz``) grouped by
gallery id, a labels table, bad input in one line, and ``manytask run`` with a set trunk."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from manytask.cli import app
from manytask.data.sources import parse_source
from manytask.data.sources.galleries import group_items
from manytask.errors import ConfigError, DataError, ManytaskError

SIZES = [3, 1, 4, 2, 5, 2, 3, 2, 4, 3, 2, 3]  # items per gallery
SPLIT = ["train"] * 8 + ["val"] * 2 + ["test"] * 2


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_galleries(tmp: Path, shape: tuple[int, int] = (6, 6)) -> tuple[Path, Path, np.ndarray]:
    """12 galleries of grey PNGs under tmp/imgs, items.csv and labels.csv in tmp."""
    (tmp / "imgs").mkdir()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(sum(SIZES), *shape), dtype=np.uint8)
    items, k = [], 0
    for g, n in enumerate(SIZES):
        for _ in range(n):
            Image.fromarray(pixels[k]).save(tmp / "imgs" / f"{k:03d}.png")
            items.append({"gallery": f"G{g}", "image": f"imgs/{k:03d}.png"})
            k += 1
    write_csv(tmp / "items.csv", items)
    labels = [{"gallery": f"G{g}", "flag": "" if g == 2 else g % 2, "kind": ["cat", "dog", "ant"][g % 3],
               "score": float(SIZES[g]) + 0.5, "split": SPLIT[g]} for g in range(len(SIZES))]
    write_csv(tmp / "labels.csv", labels)
    return tmp / "items.csv", tmp / "labels.csv", pixels


def source(items: Path, labels: Path, **fields):
    return parse_source({"kind": "galleries", "items": str(items), "labels": str(labels), "grayscale": True,
                         "split_column": "split", **fields})


def test_group_items_keeps_file_order_and_reports_orphans() -> None:
    rows, orphans = group_items(["a", "b", "a", "z", "c"], ["c", "a", "q"])
    assert rows == [[4], [0, 2], []] and orphans == ["b", "z"]


def test_images_are_grouped_split_and_labelled(tmp_path: Path) -> None:
    items, labels, pixels = write_galleries(tmp_path)
    sp = source(items, labels, standardize_targets=["score"]).build(["flag", "kind", "score"], 0)
    assert (len(sp.train), len(sp.val), len(sp.test)) == (8, 2, 2)
    assert list(sp.val.ids) == ["G8", "G9"] and sp.train.id_name == "gallery"
    assert sp.train.sample_shape == (5, 1, 6, 6) and sp.train.items.dtype == torch.uint8
    # gallery G2 holds items 4..7 in file order
    row = sp.train.index[2][sp.train.index[2] >= 0]
    assert torch.equal(sp.train.items[row, 0], torch.from_numpy(pixels[4:8]))
    assert sp.train.sizes.tolist() == SIZES[:8]
    assert torch.isnan(sp.train.targets["flag"][2]) and sp.train.targets["flag"][3].item() == 1.0
    assert sp.train.codings["kind"].classes == ("ant", "cat", "dog") and sp.train.targets["kind"][:3].tolist() == [1, 2, 0]
    scale = sp.train.scales["score"]
    assert scale.mean == pytest.approx(np.mean(SIZES[:8]) + 0.5)
    assert sp.test.targets["score"][0].item() * scale.std + scale.mean == pytest.approx(SIZES[10] + 0.5)
    b = sp.train.batch(torch.tensor([1, 4]))
    assert b.inputs.shape == (2, 5, 1, 6, 6) and b.set_mask.sum(1).tolist() == [1, 5]


def test_max_items_is_a_seeded_subset_and_image_size_resizes(tmp_path: Path) -> None:
    items, labels, _ = write_galleries(tmp_path)
    a = source(items, labels, max_items=2, image_size=[4, 5]).build(["flag"], 3)
    b = source(items, labels, max_items=2, image_size=[4, 5]).build(["flag"], 3)
    assert a.train.sizes.tolist() == [min(s, 2) for s in SIZES[:8]] and a.train.sample_shape == (2, 1, 4, 5)
    assert torch.equal(a.train.items, b.train.items)


def test_npz_items_and_fractions(tmp_path: Path) -> None:
    items, labels, pixels = write_galleries(tmp_path)
    gallery = np.repeat([f"G{g}" for g in range(len(SIZES))], SIZES)
    np.savez(tmp_path / "items.npz", items=pixels, gallery=gallery)
    sp = parse_source({"kind": "galleries", "items": str(tmp_path / "items.npz"), "labels": str(labels),
                       "val_fraction": 0.25, "test_fraction": 0.25}).build(["score"], 0)
    assert len(sp.train) + len(sp.val) + len(sp.test) == 12 and len(sp.val) == len(sp.test) == 3
    png = source(items, labels).build(["score"], 0)
    npz = parse_source({"kind": "galleries", "items": str(tmp_path / "items.npz"), "labels": str(labels),
                        "split_column": "split"}).build(["score"], 0)
    assert torch.equal(png.train.items, npz.train.items) and torch.equal(png.train.index, npz.train.index)


def test_galleries_without_labels_are_dropped_with_a_warning(tmp_path: Path) -> None:
    items, labels, _ = write_galleries(tmp_path)
    rows = list(csv.DictReader(labels.open()))
    write_csv(labels, rows[:-1])
    with pytest.warns(UserWarning, match="1 gallery id\\(s\\) have no row in .*labels.csv and are ignored: G11"):
        sp = source(items, labels).build(["flag"], 0)
    assert len(sp.test) == 1


def _drop_image(tmp: Path, items: Path, labels: Path) -> dict:
    (tmp / "imgs" / "005.png").unlink()
    return {}


def _labels_only_gallery(tmp: Path, items: Path, labels: Path) -> dict:
    rows = list(csv.DictReader(labels.open()))
    write_csv(labels, [*rows, {**rows[0], "gallery": "G99"}])
    return {}


def _odd_size(tmp: Path, items: Path, labels: Path) -> dict:
    Image.fromarray(np.zeros((7, 6), dtype=np.uint8)).save(tmp / "imgs" / "009.png")
    return {}


def _empty_id(tmp: Path, items: Path, labels: Path) -> dict:
    rows = list(csv.DictReader(items.open()))
    rows[3]["gallery"] = ""
    write_csv(items, rows)
    return {}


def _repeated_id(tmp: Path, items: Path, labels: Path) -> dict:
    rows = list(csv.DictReader(labels.open()))
    rows[4]["gallery"] = "G0"
    write_csv(labels, rows)
    return {}


def _pickled_npz(tmp: Path, items: Path, labels: Path) -> dict:
    np.savez(tmp / "bad.npz", items=np.zeros((3, 4, 4), np.uint8), gallery=np.array([{"a": 1}] * 3, dtype=object))
    return {"items": str(tmp / "bad.npz"), "grayscale": False}


@pytest.mark.parametrize("prepare, fields, expected", [
    (_drop_image, {}, "items.csv: row 6, column 'image': image file 'imgs/005.png' not found under"),
    (_labels_only_gallery, {}, "labels.csv: row 13, column 'gallery': gallery 'G99' has no item in"),
    (_odd_size, {}, "imgs/009.png: image is 7x6, but imgs/000.png is 6x6 (set data.image_size"),
    (_empty_id, {}, "items.csv: row 4, column 'gallery': the gallery id is empty"),
    (_repeated_id, {}, "labels.csv: row 5, column 'gallery': gallery 'G0' is already on row 1"),
    (None, {"gallery_column": "album"}, "labels.csv: no column 'album' (data.gallery_column; the table has"),
    (None, {"image_column": "path"}, "items.csv: no column 'path' (data.image_column"),
    (_pickled_npz, {}, "bad.npz: array 'gallery' holds Python objects"),
    (None, {"items": "nowhere.csv"}, "nowhere.csv: file not found"),
])
def test_bad_input_gives_one_line(tmp_path: Path, prepare, fields: dict, expected: str) -> None:
    items, labels, _ = write_galleries(tmp_path)
    if prepare is not None:
        fields = {**prepare(tmp_path, items, labels), **fields}
    items = Path(fields.pop("items", items))
    with pytest.raises(ManytaskError) as err:
        source(items, labels, **fields).build(["flag"], 0)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, (DataError, ConfigError))


def test_unknown_label_column_and_npz_with_image_options(tmp_path: Path) -> None:
    items, labels, _ = write_galleries(tmp_path)
    with pytest.raises(DataError, match="labels.csv: no column 'stars' \\(a task's target"):
        source(items, labels).build(["stars"], 0)
    with pytest.raises(ConfigError, match="image_size: applies to image files, not to the arrays of x.npz"):
        parse_source({"kind": "galleries", "items": "x.npz", "labels": "l.csv", "image_size": [4, 4]})


def test_manytask_run_trains_a_set_encoder_on_a_tiny_folder(tmp_path: Path) -> None:
    items, labels, _ = write_galleries(tmp_path)
    cfg = {"name": "gal", "seed": 0,
           "data": {"kind": "galleries", "items": str(items), "labels": str(labels), "grayscale": True,
                    "split_column": "split", "standardize_targets": ["score"]},
           "tasks": [{"name": "flag", "kind": "binary"}, {"name": "kind", "kind": "multiclass", "num_classes": 3},
                     {"name": "score", "kind": "regression"}],
           "model": {"trunk": "set_encoder", "features": 8, "hidden": [8], "head_hidden": 4,
                     "options": {"item": "mlp", "pooling": "mean"}},
           "training": {"epochs": 2, "batch_size": 4, "threads": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["test"]) == {"flag", "kind", "score"}
