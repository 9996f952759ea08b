"""manytask embed / search / map: a tiny trained run, embedding files, set data and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from manytask.cli import app
from manytask.config import parse_config
from manytask.data.sets import SetDataset
from manytask.errors import DataError
from manytask.evaluation.embed import (
    EmbeddingFile,
    compute_embeddings,
    embed_data,
    embed_images,
    read_embeddings,
    write_embeddings,
)
from manytask.evaluation.run_model import load_run_model, run_data
from manytask.experiment import run_experiment
from manytask.models import MultiTaskModel
from manytask.reporting.galleries_plots import plot_map, plot_search_grid, row_images
from manytask.tasks import Task

PNG = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()

DIGITS = {
    "name": "tiny_embed",
    "data": {"kind": "digits"},
    "tasks": [{"name": "digit", "kind": "multiclass", "num_classes": 10},
              {"name": "parity", "kind": "binary"}],
    "model": {"trunk": "mlp", "hidden": [16], "head_hidden": 8},
    "training": {"epochs": 1, "batch_size": 128, "threads": 1, "device": "cpu"},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch on the digit task only (parity held out), written as a run directory."""
    rd = tmp_path_factory.mktemp("embed") / "run"
    run_experiment(parse_config(DIGITS), rd, task_names=["digit"], progress=False)
    return rd


def error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


# ---------------------------------------------------------------------- run model and files
def test_load_run_model_rebuilds_the_run_task_subset(run_dir: Path) -> None:
    model, _, tasks = load_run_model(run_dir)
    assert [t.name for t in tasks] == ["digit"]
    assert set(model.heads) == {"digit"}
    assert not model.training


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_embed_round_trip_keeps_ids_order_and_labels(run_dir: Path, tmp_path: Path, suffix: str) -> None:
    emb = compute_embeddings(run_dir, split="test")
    model, cfg, _ = load_run_model(run_dir)
    splits = run_data(cfg, cfg.build_tasks())
    expect = model.encode(splits.test.inputs).detach().numpy()
    np.testing.assert_allclose(emb.embeddings, expect, rtol=1e-5, atol=1e-6)
    # both tasks of the config carry labels, parity too although the model never trained on it
    assert set(emb.labels) == {"digit", "parity"}
    np.testing.assert_array_equal(emb.labels["digit"], splits.test.targets["digit"].numpy())
    path = write_embeddings(tmp_path / f"e{suffix}", emb)
    back = read_embeddings(path)
    np.testing.assert_array_equal(back.ids, splits.test.row_ids().astype(str))
    np.testing.assert_array_equal(back.embeddings, emb.embeddings)
    np.testing.assert_array_equal(back.labels["parity"], emb.labels["parity"])
    assert set(back.split) == {"test"}


def test_embed_all_splits_prefixes_positions(run_dir: Path) -> None:
    emb = compute_embeddings(run_dir, split="all")
    assert len(set(emb.ids)) == len(emb) == 1797
    assert emb.ids[0] == "train:0" and list(dict.fromkeys(emb.split)) == ["train", "val", "test"]


def test_embed_another_data_config_with_a_new_task(run_dir: Path, tmp_path: Path) -> None:
    other = dict(DIGITS, tasks=[{"name": "ge5", "kind": "binary"}])
    p = tmp_path / "other.yaml"
    p.write_text(yaml.safe_dump(other))
    emb = compute_embeddings(run_dir, data_config=p, split="val")
    assert list(emb.labels) == ["ge5"] and set(np.unique(emb.labels["ge5"])) <= {0, 1}


def test_read_embeddings_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="embeddings file not found"):
        read_embeddings(tmp_path / "none.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        read_embeddings(bad)
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, ids=np.array([{"a": 1}], dtype=object), embeddings=np.zeros((1, 2)))
    with pytest.raises(DataError, match="without unpickling"):
        read_embeddings(pickled)
    nokey = tmp_path / "nokey.npz"
    np.savez(nokey, ids=np.array(["a"]))
    with pytest.raises(DataError, match="no 'embeddings' array"):
        read_embeddings(nokey)
    short = tmp_path / "short.npz"
    np.savez(short, ids=np.array(["a", "b"]), embeddings=np.zeros((3, 2), np.float32))
    with pytest.raises(DataError, match="2 ids but 3 embedding rows"):
        read_embeddings(short)
    with pytest.raises(Exception, match="must end in .npz or .parquet"):
        read_embeddings(tmp_path / "x.csv")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable .parquet"):
        read_embeddings(broken)
    import pandas as pd

    pd.DataFrame({"name": ["a"], "e0": [1.0]}).to_parquet(tmp_path / "noid.parquet")
    with pytest.raises(DataError, match="no 'id' column"):
        read_embeddings(tmp_path / "noid.parquet")


def test_load_run_model_errors(tmp_path: Path, run_dir: Path) -> None:
    with pytest.raises(DataError, match="run directory not found"):
        load_run_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no config.yaml"):
        load_run_model(tmp_path / "empty")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    with pytest.raises(DataError, match="best.safetensors: not found"):
        load_run_model(partial)


# ---------------------------------------------------------------------- sets (galleries)
class MeanTrunk(nn.Module):
    """A set trunk: a linear map of every item, mean-pooled over the real items."""

    def __init__(self, item_dim: int, out: int = 3) -> None:
        super().__init__()
        self.lin = nn.Linear(item_dim, out)
        self.out_features = out

    def forward(self, x: torch.Tensor, set_mask: torch.Tensor | None = None) -> torch.Tensor:
        z = self.lin(x.flatten(2))
        if set_mask is None:
            return z.mean(1)
        m = set_mask.unsqueeze(-1).to(z.dtype)
        return (z * m).sum(1) / m.sum(1)


def _galleries() -> tuple[SetDataset, MultiTaskModel]:
    torch.manual_seed(0)
    items = torch.randint(0, 256, (7, 1, 4, 4), dtype=torch.uint8)
    index = torch.tensor([[0, 1, 2], [3, -1, -1], [4, 5, -1], [6, 0, -1]])
    ds = SetDataset(items, index, {"y": torch.tensor([0, 1, 1, 0])}, ids=np.array(["g0", "g1", "g2", "g3"]),
                    transform=lambda x: x.float() / 255.0)
    model = MultiTaskModel(MeanTrunk(16), [Task(name="y", kind="binary")], head_hidden=4)
    return ds, model


def test_set_embeddings_ignore_padding() -> None:
    ds, model = _galleries()
    z = embed_data(model, ds, batch_size=3)  # the second batch has one gallery, padded to its own size
    lin = model.trunk.lin
    for g, members in enumerate([[0, 1, 2], [3], [4, 5], [6, 0]]):
        want = lin(ds.items[members].float().flatten(1) / 255.0).mean(0).detach().numpy()
        np.testing.assert_allclose(z[g], want, rtol=1e-5, atol=1e-6)


def test_seed_images_embed_as_one_gallery(tmp_path: Path) -> None:
    from PIL import Image

    ds, model = _galleries()
    paths = []
    for i in (4, 5):
        p = tmp_path / f"s{i}.png"
        Image.fromarray(ds.items[i, 0].numpy(), mode="L").save(p)
        paths.append(p)
    z = embed_images(model, ds, paths)
    np.testing.assert_allclose(z, embed_data(model, ds)[2], rtol=1e-5, atol=1e-6)  # gallery g2 = items 4, 5
    plain = ds.subset([0])
    with pytest.raises(Exception, match="not trained on galleries"):
        embed_images(model, _as_plain(plain), paths)


def _as_plain(ds: SetDataset):
    from manytask.data.batch import TensorDataset

    return TensorDataset(torch.zeros(1, 16), {"y": torch.zeros(1)})


def test_grid_and_map_write_png(tmp_path: Path) -> None:
    ds, _ = _galleries()
    assert len(row_images(ds, 0, max_items=2)) == 2 and len(row_images(ds, 1)) == 1
    grid = plot_search_grid([("g0", row_images(ds, 0)), ("g2", row_images(ds, 2))], tmp_path / "g.png",
                            seeds=row_images(ds, 3))
    assert grid.read_bytes()[:8] == PNG
    xy = np.random.default_rng(0).normal(size=(20, 2))
    lab = np.array([0, 1, -1, 2] * 5)
    assert plot_map(xy, lab, tmp_path / "m.png", classes=("a", "b", "c")).read_bytes()[:8] == PNG
    reg = np.where(np.arange(20) % 3 == 0, np.nan, np.linspace(0, 1, 20))
    assert plot_map(xy, reg, tmp_path / "r.png").read_bytes()[:8] == PNG


# ---------------------------------------------------------------------- CLI
def test_cli_embed_search_map(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "e.npz"
    res = runner.invoke(app, ["embed", str(run_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    emb = read_embeddings(out)
    res = runner.invoke(app, ["search", str(out), "--seed-ids", f"{emb.ids[0]},{emb.ids[1]}", "--k", "4",
                              "--grid", str(tmp_path / "g.png"), "--data", str(run_dir)])
    assert res.exit_code == 0, res.output
    ranked = [ln.split()[1] for ln in res.stdout.splitlines()[1:5]]
    assert len(ranked) == 4 and not {emb.ids[0], emb.ids[1]} & set(ranked)
    assert (tmp_path / "g.png").read_bytes()[:8] == PNG
    res = runner.invoke(app, ["map", str(out), "--color-by", "parity", "--out", str(tmp_path / "m.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m.png").read_bytes()[:8] == PNG


def test_cli_errors_are_one_line(run_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["embed", str(tmp_path / "missing"), "--out", str(tmp_path / "e.npz")])
    assert res.exit_code == 2 and "run directory not found" in error_line(res)
    emb = EmbeddingFile(ids=np.array(["a", "b", "c", "d"]), embeddings=np.eye(4, dtype=np.float32),
                        labels={"y": np.array([0, 1, 0, 1])})
    path = write_embeddings(tmp_path / "e.npz", emb)
    res = runner.invoke(app, ["search", str(path), "--seed-ids", "a,zz"])
    assert res.exit_code == 2 and "unknown id(s) zz" in error_line(res)
    res = runner.invoke(app, ["map", str(path), "--color-by", "nope"])
    assert res.exit_code == 2 and "no labels for task 'nope'" in error_line(res)
    res = runner.invoke(app, ["search", str(path), "--seed-images", "x.png", "--run", str(run_dir)])
    assert res.exit_code == 2 and "not trained on galleries" in error_line(res)


# ---------------------------------------------------------------------- the real set encoder
def test_mnist_galleries_run_embeds_galleries_and_finds_a_gallery_from_its_images(tmp_path: Path) -> None:
    from PIL import Image

    cfg = {"name": "mg", "seed": 0,
           "data": {"kind": "mnist_galleries", "train_size": 32, "val_size": 8, "test_size": 16, "max_size": 6},
           "tasks": [{"name": "has_7", "kind": "binary"}, {"name": "mean_digit", "kind": "regression"},
                     {"name": "size_bucket", "kind": "multiclass", "num_classes": 4}],
           "model": {"trunk": "set_encoder", "features": 8, "hidden": [16], "head_hidden": 4,
                     "options": {"item": "mlp", "pooling": "mean"}},
           "training": {"epochs": 1, "batch_size": 8, "threads": 1}}
    rd = tmp_path / "run"
    run_experiment(parse_config(cfg), rd, task_names=["has_7", "mean_digit"], progress=False)
    out = tmp_path / "g.parquet"
    res = runner.invoke(app, ["embed", str(rd), "--out", str(out), "--columns", "heldout"])
    assert res.exit_code == 0, res.output
    emb = read_embeddings(out)
    _, conf, _ = load_run_model(rd)
    test = run_data(conf, conf.build_tasks()).test
    assert isinstance(test, SetDataset) and len(emb) == 16
    np.testing.assert_array_equal(emb.ids, test.row_ids().astype(str))  # gallery ids, in order
    assert "size_bucket" in emb.labels  # a task of the config that the run did not train on
    np.testing.assert_allclose(emb.labels["mean_digit"],  # in the label's own units, not standardised
                               test.scales["mean_digit"].restore(test.targets["mean_digit"].numpy()), rtol=1e-5)
    assert 0 <= emb.labels["mean_digit"].min() and emb.labels["mean_digit"].max() <= 9
    assert set(np.unique(emb.labels["heldout"])) <= set(range(5))  # a raw column no task reads
    members = test.index[5][test.index[5] >= 0]
    paths = []
    for j, pos in enumerate(members.tolist()):
        paths.append(tmp_path / f"item{j}.png")
        Image.fromarray(test.items[pos, 0].numpy(), mode="L").save(paths[-1])
    res = runner.invoke(app, ["search", str(out), "--seed-images", ",".join(map(str, paths)), "--run", str(rd),
                              "--k", "3", "--grid", str(tmp_path / "grid.png")])
    assert res.exit_code == 0, res.output
    first = res.stdout.splitlines()[1].split()
    assert first[1] == str(emb.ids[5]) and float(first[2]) == pytest.approx(1.0, abs=1e-4)
    assert (tmp_path / "grid.png").read_bytes()[:8] == PNG


def test_map_umap_without_umap_learn_says_how_to_install(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("umap") is not None:
        pytest.skip("umap-learn is installed")
    emb = EmbeddingFile(ids=np.array(list("abcdef")), embeddings=np.eye(6, dtype=np.float32),
                        labels={"y": np.arange(6)})
    path = write_embeddings(tmp_path / "e.npz", emb)
    res = runner.invoke(app, ["map", str(path), "--color-by", "y", "--method", "umap"])
    assert res.exit_code == 2 and "pip install 'manytask[umap]'" in error_line(res)
