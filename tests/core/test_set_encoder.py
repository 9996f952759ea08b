"""The ``set_encoder`` trunk: symmetric pooling of real items only, freezing, init_from, counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from manytask.data.sets import SetDataset, pack_index
from manytask.errors import ConfigError
from manytask.models import MultiTaskModel, TrunkSpec, build_trunk, parameter_counts
from manytask.models.pooling import POOLINGS
from manytask.models.set_encoder import SetEncoder, SmallVGG, item_blocks
from manytask.tasks import Task
from manytask.training import OptimizerSpec, RunDir, Trainer

SHAPE = (6, 1, 28, 28)


def encoder(pooling: str = "mean", width: float = 0.25, **options) -> SetEncoder:
    torch.manual_seed(0)
    spec = TrunkSpec(width=width, features=16, options={"pooling": pooling, **options})
    return build_trunk("set_encoder", SHAPE, spec)  # type: ignore[return-value]


def galleries(sizes=(6, 3, 4)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(len(sizes), max(sizes), 1, 28, 28, generator=g)
    mask = torch.arange(max(sizes))[None] < torch.tensor(sizes)[:, None]
    x[~mask] = float("nan")  # padding is never read
    return x, mask


@pytest.mark.parametrize("pooling", POOLINGS)
def test_permuting_items_leaves_the_embedding_unchanged(pooling: str) -> None:
    enc = encoder(pooling).eval()
    x, mask = galleries()
    ref = enc(x, mask)
    assert torch.isfinite(ref).all()
    for seed in range(3):  # shuffle the columns, padding and real items alike
        perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(enc(x[:, perm], mask[:, perm]), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_padding_of_any_value_leaves_the_embedding_unchanged(pooling: str) -> None:
    enc = encoder(pooling)  # training mode: batch norm sees the real items only
    x, mask = galleries()
    torch.manual_seed(5)
    ref = enc(x, mask)
    for fill in (float("nan"), 1e6, 0.0):
        pad = torch.full((3, 4, 1, 28, 28), fill)
        xp = torch.cat([x, pad], 1)
        mp = torch.cat([mask, torch.zeros(3, 4, dtype=torch.bool)], 1)
        torch.manual_seed(5)
        out = enc(xp, mp)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_the_item_encoder_sees_only_real_items() -> None:
    enc = encoder().eval()
    seen: list[int] = []
    enc.item.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    x, mask = galleries((6, 1, 2))
    enc(x, mask)
    assert seen == [9]


def test_gradients_stay_finite_with_nan_padding() -> None:
    enc = encoder("max")
    x, mask = galleries()
    enc(x, mask).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)


@pytest.mark.parametrize("pooling", ["mean", "sum", "max"])
def test_a_gallery_of_one_item_pools_to_that_item(pooling: str) -> None:
    enc = encoder(pooling).eval()
    x, mask = galleries((1, 4))
    with torch.no_grad():
        item = enc.item(x[0, :1])
    torch.testing.assert_close(enc(x, mask)[0], item[0])


def test_mean_sum_and_max_of_known_features() -> None:
    h = torch.tensor([[[1.0, -2.0], [3.0, 4.0], [float("nan"), 9.0]]])
    mask = torch.tensor([[True, True, False]])
    from manytask.models.pooling import build_pooling

    assert build_pooling("mean", 2)(h, mask).tolist() == [[2.0, 1.0]]
    assert build_pooling("sum", 2)(h, mask).tolist() == [[4.0, 2.0]]
    assert build_pooling("max", 2)(h, mask).tolist() == [[3.0, 4.0]]


def test_pma_with_several_seeds_flattens_and_projection_sets_the_width() -> None:
    enc = encoder("pma", pma_seeds=3, pma_heads=2)
    assert enc.out_features == 3 * 16 // 4 and enc(*galleries()).shape == (3, 12)
    proj = encoder("pma", pma_seeds=3, pma_heads=2, project=True)
    assert proj.out_features == 4 and proj(*galleries()).shape == (3, 4)
    assert proj.last_layer() == list(proj.project[0].parameters())


def test_forward_without_a_mask_treats_every_item_as_real() -> None:
    enc = encoder("pma", pma_heads=2).eval()
    x = torch.randn(2, 6, 1, 28, 28)
    torch.testing.assert_close(enc(x), enc(x, torch.ones(2, 6, dtype=torch.bool)))


def test_width_reaches_the_item_encoder() -> None:
    half, full = encoder(width=0.5), encoder(width=1.0)
    assert half.item.features[0][0].out_channels == 8 and full.item.features[0][0].out_channels == 16
    assert (half.out_features, full.out_features) == (8, 16)


# ---------------------------------------------------------------------- freezing
def _trainer(model: nn.Module, tasks: list[Task]) -> Trainer:
    return Trainer(model, tasks, "uniform", OptimizerSpec(name="adamw", lr=0.05, weight_decay=0.1),
                   epochs=1, batch_size=4, device="cpu", progress=False)


def _set_data(n: int = 12, seed: int = 0) -> SetDataset:
    g = torch.Generator().manual_seed(seed)
    pool = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8, generator=g)
    sizes = torch.randint(1, 7, (n,), generator=g).tolist()
    index = pack_index([torch.randint(0, 40, (s,), generator=g).tolist() for s in sizes])
    targets = {"big": (torch.tensor(sizes) > 3).float(), "count": torch.tensor(sizes, dtype=torch.float32)[:, None]}
    return SetDataset(pool, index, targets, transform=lambda t: t.float() / 255.0, bucket=True)


def test_frozen_blocks_do_not_move_in_a_training_step_and_later_blocks_do() -> None:
    tasks = [Task("big", "binary"), Task("count", "regression")]
    data = _set_data()
    trunk = build_trunk("set_encoder", data.sample_shape, TrunkSpec(width=0.25, features=16,
                                                                    options={"freeze_blocks": 2}))
    model = MultiTaskModel(trunk, tasks)
    trainer = _trainer(model, tasks)
    blocks = item_blocks(trunk.item)  # type: ignore[union-attr]
    before = [{k: v.clone() for k, v in b.state_dict().items()} for b in blocks]
    model.train()
    assert not blocks[0].training and not blocks[1].training and blocks[2].training
    trainer.train_step(data.batch(torch.arange(8)))
    for i, (block, old) in enumerate(zip(blocks, before)):
        changed = [k for k, v in block.state_dict().items() if not torch.equal(v, old[k])]
        assert (not changed) if i < 2 else changed, (i, changed)
    assert parameter_counts(trunk)[0] == sum(p.numel() for b in blocks[2:] for p in b.parameters())


def test_every_block_frozen_keeps_batch_norm_in_eval_mode() -> None:
    enc = encoder(freeze_blocks=4)
    enc.train()
    norms = [m for m in enc.item.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6 and not any(m.training for m in norms)
    assert parameter_counts(enc) == (0, sum(p.numel() for p in enc.parameters()))


def test_parameter_counts_of_a_partly_frozen_module() -> None:
    lin = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    lin[0].weight.requires_grad_(False)
    assert parameter_counts(lin) == (2 + 2 + 1, 6 + 2 + 2 + 1)


def test_blocks_fall_back_to_children_with_parameters() -> None:
    lenet = build_trunk("lenet", (1, 28, 28), TrunkSpec())
    assert item_blocks(lenet) == [lenet.conv1, lenet.conv2, lenet.fc]
    assert len(item_blocks(SmallVGG())) == 4


# ---------------------------------------------------------------------- init_from
def _item_run(tmp_path, name: str, features: int = 16, file: str = "best") -> RunDir:
    torch.manual_seed(3)
    item = build_trunk("small_vgg", (1, 28, 28), TrunkSpec(width=0.25, features=features))
    model = MultiTaskModel(item, [Task("digit", "multiclass", num_classes=10)])
    rd = RunDir(tmp_path / name)
    rd.path.mkdir()
    rd.save_weights(file, model)
    return rd


def test_init_from_copies_the_item_trunk_exactly(tmp_path) -> None:
    rd = _item_run(tmp_path, "digits", file="last")  # no best.safetensors: last is read
    from safetensors.torch import load_file

    saved = load_file(str(rd.file("last.safetensors")))
    enc = encoder(init_from=str(rd.path), freeze_blocks=3)
    for k, v in enc.item.state_dict().items():
        assert torch.equal(v, saved[f"trunk.{k}"]), k
    # a set_encoder run's item encoder can seed another one
    model = MultiTaskModel(enc, [Task("t", "binary")])
    rd2 = RunDir(tmp_path / "sets")
    rd2.path.mkdir()
    rd2.save_weights("best", model)
    again = encoder("max", init_from=str(rd2.path))
    for k, v in again.item.state_dict().items():
        assert torch.equal(v, saved[f"trunk.{k}"]), k


def test_init_from_refuses_a_mismatched_run(tmp_path) -> None:
    rd = _item_run(tmp_path, "wide", features=32)
    with pytest.raises(ConfigError, match=r"wide: tensor trunk\.fc\.1\.weight has shape \(8, 144\), the item trunk needs \(4, 144\)") as err:
        encoder(init_from=str(rd.path))
    assert "\n" not in str(err.value)
    lenet = MultiTaskModel(build_trunk("lenet", (1, 28, 28), TrunkSpec()), [Task("t", "binary")])
    other = RunDir(tmp_path / "lenet")
    other.path.mkdir()
    other.save_weights("best", lenet)
    with pytest.raises(ConfigError, match=r"lenet: no tensor trunk\.features\.0\.0\.weight"):
        encoder(init_from=str(other.path))
    with pytest.raises(ConfigError, match="is not a run directory"):
        encoder(init_from=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="neither best.safetensors nor last.safetensors"):
        encoder(init_from=str(tmp_path / "empty"))
    (tmp_path / "empty" / "best.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ConfigError, match="not a readable safetensors file"):
        encoder(init_from=str(tmp_path / "empty"))


# ---------------------------------------------------------------------- config errors
@pytest.mark.parametrize(("options", "message"), [
    ({"pooling": "median"}, "unknown pooling 'median'"),
    ({"freeze_blocks": 5}, r"freeze_blocks: got 5 but the item trunk SmallVGG has 4 blocks"),
    ({"freeze_blocks": -1}, "freeze_blocks: got -1"),
    ({"poolng": "max"}, "unknown option"),
    ({"pooling": "pma", "pma_heads": 3}, "divisible by the number of heads"),
    ({"pma_seeds": "two"}, "pma_seeds: expected an integer"),
    ({"item": "set_encoder"}, "cannot itself be set_encoder"),
    ({"item": "nope"}, "unknown trunk 'nope'"),
])
def test_bad_options_are_one_line_config_errors(options, message) -> None:
    spec = TrunkSpec(width=0.25, features=16, options=options)
    with pytest.raises(ConfigError, match=message) as err:
        build_trunk("set_encoder", SHAPE, spec)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------- end to end
def test_a_tiny_set_dataset_trains_end_to_end(tmp_path) -> None:
    tasks = [Task("big", "binary"), Task("count", "regression")]
    train, val = _set_data(16, 0), _set_data(8, 1)
    torch.manual_seed(0)
    trunk = build_trunk("set_encoder", train.sample_shape,
                        TrunkSpec(width=0.25, features=16, options={"pooling": "pma", "pma_heads": 2,
                                                                     "freeze_blocks": 1}))
    model = MultiTaskModel(trunk, tasks)
    trainer = Trainer(model, tasks, "uniform", OptimizerSpec(name="adam", lr=0.01), epochs=2, batch_size=4,
                      device="cpu", progress=False, run_dir=RunDir(tmp_path / "run"), max_steps=3)
    result = trainer.fit(train, val)
    assert trainer.step == 3
    assert math.isfinite(result.val["count"]["loss"])
    assert trainer.embed(val).shape == (8, 4)
    summary = RunDir(tmp_path / "run").summary()
    assert summary is not None and summary["status"] == "complete"
    assert summary["parameters"] == dict(zip(("trainable", "total"), parameter_counts(model)))
    assert summary["parameters"]["trainable"] < summary["parameters"]["total"]


def test_gallery_speed_benchmark_runs(capsys, load_script) -> None:
    bench = load_script("benchmarks/gallery_speed.py")
    report = bench.main(["--epochs", "1", "--warmup", "1", "--galleries", "32", "--pool", "40"])
    printed = capsys.readouterr().out
    res = report["results"]
    assert '"ratio_pma_over_mean/padded"' in printed
    for key in ("padded", "bucketed", "fixed"):
        assert res[f"mean/{key}"]["galleries_per_s"] > 0
    share = res["padding_share"]
    assert 0 <= share["bucketed"] <= share["padded"] <= share["fixed"] < 1


@pytest.mark.parametrize(("name", "weighting"), [("galleries_mnist", "pseudo_uniform"),
                                                 ("galleries_mnist_uncertainty", "uncertainty")])
def test_gallery_configs_train_every_benchmark_task(name: str, weighting: str) -> None:
    from pathlib import Path

    from manytask.config import load_config
    from manytask.data.galleries import GALLERY_TASKS
    from manytask.experiment import build_model

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / f"{name}.yaml")
    assert cfg.weighting.name == weighting and cfg.data.kind == "mnist_galleries"
    tasks = cfg.build_tasks()
    assert [(t.name, t.kind, t.num_classes) for t in tasks] == [
        (g.name, g.kind, g.num_classes) for g in GALLERY_TASKS]
    assert set(cfg.data.available_columns()) - {t.name for t in tasks} == {"heldout"}
    model = build_model(cfg, tasks, (cfg.data.max_size, 1, 28, 28))
    assert parameter_counts(model) == (93_611, 97_859)  # the figures docs/set_encoder.md quotes
