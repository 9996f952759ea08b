"""Data sources and trunks as plug-ins: registries, import paths, one-file extensions."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from manytask.config import parse_config
from manytask.data.sources import available_sources, parse_source, register_source
from manytask.data.sources.base import DataSource
from manytask.errors import ConfigError
from manytask.experiment import build_data, build_model, run_experiment
from manytask.models import (
    MultiTaskModel,
    ResNetTrunk,
    TrunkSpec,
    available_trunks,
    build_trunk,
)
from manytask.models.registry import register_trunk
from manytask.tasks import Task

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "examples" / "plugins"


@pytest.fixture()
def plugin_path(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(PLUGINS))
    return PLUGINS


def test_builtin_sources_and_trunks_are_registered() -> None:
    assert {"multimnist", "yeast", "digits"} <= set(available_sources())
    assert {"lenet", "mlp", "resnet"} <= set(available_trunks())


def test_data_section_is_discriminated_by_kind() -> None:
    cfg = parse_config({"data": {"kind": "digits", "val_fraction": 0.1},
                        "tasks": [{"name": "digit", "kind": "multiclass", "num_classes": 10}]})
    assert type(cfg.data).__name__ == "DigitsSource" and cfg.data.val_fraction == 0.1
    dumped = cfg.to_dict()["data"]
    assert dumped["kind"] == "digits" and dumped["val_fraction"] == 0.1
    assert parse_config(cfg.to_dict()).data == cfg.data  # the dump round-trips


@pytest.mark.parametrize(("data", "message"), [
    ({"kind": "nosuch"}, "config: data.kind: unknown data kind 'nosuch'"),
    ({"kind": "digits", "train_size": 10}, "config: data.train_size: unknown field"),
    ({"kind": "multimnist", "train_size": 0}, "config: data.train_size: Input should be greater than or equal to 1"),
    ({"kind": 3}, "config: data.kind: expected a name, got 3"),
    ([1, 2], "config: data: expected a mapping with a 'kind', got list"),
])
def test_bad_data_section_is_one_line(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"data": data, "tasks": [{"name": "digit", "kind": "multiclass", "num_classes": 10}]})
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_source_without_kind_default_or_twice_registered_is_refused() -> None:
    class NoKind(DataSource):
        kind: str

    with pytest.raises(TypeError):
        register_source(NoKind)
    from manytask.data.sources.digits import DigitsSource

    class Impostor(DigitsSource):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_source(Impostor)


def test_a_new_source_and_trunk_in_one_file_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole extension: one module per plug-in, named in the config's ``plugins``."""
    (tmp_path / "checker_source.py").write_text(textwrap.dedent('''
        from typing import Literal
        import numpy as np
        from manytask.data.sources import HeldOutFractions, register_source
        from manytask.data.tabular import tabular_splits

        @register_source
        class CheckerSource(HeldOutFractions):
            kind: Literal["checker"] = "checker"
            rows: int = 400

            def build(self, columns, seed):
                rng = np.random.default_rng(seed)
                x = rng.uniform(-1, 1, size=(self.rows, 2))
                table = {"cell": ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64), "radius": np.hypot(*x.T)}
                self.check_columns(columns, list(table))
                return tabular_splits(x, {c: table[c] for c in columns}, val_fraction=self.val_fraction,
                                      test_fraction=self.test_fraction, fraction=self.fraction, seed=seed)
    '''))
    (tmp_path / "wide_trunk.py").write_text(textwrap.dedent('''
        from torch import nn
        from manytask.models.registry import register_trunk

        @register_trunk("wide")
        def build(shape, spec):
            opts = spec.take_options(units=64)
            net = nn.Sequential(nn.Flatten(), nn.Linear(shape[0], round(opts["units"] * spec.width)), nn.Tanh())
            net.out_features = round(opts["units"] * spec.width)
            return net
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = parse_config({
        "plugins": ["checker_source", "wide_trunk"],
        "data": {"kind": "checker", "rows": 600},
        "tasks": [{"name": "cell", "kind": "binary"}, {"name": "radius", "kind": "regression"}],
        "model": {"trunk": "wide", "options": {"units": 32}, "head_hidden": 16},
        "training": {"epochs": 30, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01}, "threads": 1},
    })
    res = run_experiment(cfg, tmp_path / "run", progress=False)
    assert res.test is not None
    assert res.test["cell"]["accuracy"] > 0.8  # XOR of signs: needs the hidden layer
    assert res.test["radius"]["r2"] > 0.5
    for name in ("checker_source", "wide_trunk"):
        sys.modules.pop(name, None)


def test_example_plugins_train_from_their_config(plugin_path: Path, tmp_path: Path) -> None:
    import yaml

    raw = yaml.safe_load((plugin_path / "wine.yaml").read_text())
    raw["training"]["epochs"] = 40
    cfg = parse_config(raw)
    assert type(cfg.data).__name__ == "WineSource"
    res = run_experiment(cfg, tmp_path / "wine", progress=False)
    assert res.test is not None and res.test["cultivar"]["accuracy"] > 0.8
    # the import-path form needs no registration name
    cfg2 = parse_config({**raw, "model": {**raw["model"], "trunk": "gated_mlp:build"}})
    model = build_model(cfg2, cfg2.build_tasks(), (12,))
    assert model.trunk.out_features == 32 and type(model.trunk).__name__ == "GatedMLP"


def test_unknown_plugin_module_and_bad_trunks_are_config_errors(tmp_path: Path) -> None:
    tasks = [{"name": "digit", "kind": "multiclass", "num_classes": 10}]
    with pytest.raises(ConfigError, match="plugins: cannot import module 'no_such_plugin_mod'"):
        parse_config({"plugins": ["no_such_plugin_mod"], "tasks": tasks})
    with pytest.raises(ConfigError, match="model.trunk: unknown trunk 'vgg'"):
        parse_config({"model": {"trunk": "vgg"}, "tasks": tasks})
    with pytest.raises(ConfigError, match="cannot import module 'no_such_mod_x'"):
        build_trunk("no_such_mod_x:build", (64,), TrunkSpec())
    with pytest.raises(ConfigError, match="has no callable 'nope'"):
        build_trunk("manytask.models.trunks:nope", (64,), TrunkSpec())
    with pytest.raises(ConfigError, match="unknown option\\(s\\) depth"):
        build_trunk("mlp", (64,), TrunkSpec(options={"depth": 3}))
    with pytest.raises(ConfigError, match="needs square image inputs"):
        build_trunk("lenet", (64,), TrunkSpec())


def test_builder_results_are_checked() -> None:
    @register_trunk("test_no_out_features")
    def bad(shape, spec):  # noqa: ANN001, ANN202
        return nn.Linear(int(shape[0]), 4)  # nn.Linear has out_features ... as an int: fine

    assert build_trunk("test_no_out_features", (3,), TrunkSpec()).out_features == 4

    @register_trunk("test_not_a_module")
    def worse(shape, spec):  # noqa: ANN001, ANN202
        return lambda x: x

    with pytest.raises(ConfigError, match="not a torch.nn.Module"):
        build_trunk("test_not_a_module", (3,), TrunkSpec())

    @register_trunk("test_no_width")
    def bare(shape, spec):  # noqa: ANN001, ANN202
        return nn.Sequential(nn.Linear(int(shape[0]), 4))

    with pytest.raises(ConfigError, match="must expose 'out_features'"):
        build_trunk("test_no_width", (3,), TrunkSpec())


def test_own_module_through_the_python_api() -> None:
    tasks = [Task("a", "binary"), Task("b", "regression")]
    trunk = nn.Sequential(nn.Linear(5, 8), nn.ReLU())
    with pytest.raises(ConfigError, match="out_features"):
        MultiTaskModel(trunk, tasks)
    model = MultiTaskModel(trunk, tasks, out_features=8)
    out = model(torch.zeros(3, 5))
    assert out["a"].shape == (3, 1) and out["b"].shape == (3, 1)
    assert len(model.last_shared_layer()) == 2  # falls back to the last two shared parameters


def test_resnet_trunk_shapes_width_and_last_layer() -> None:
    full = ResNetTrunk(in_channels=3, width=1.0, out_features=64)
    half = ResNetTrunk(in_channels=3, width=0.5, out_features=64)
    x = torch.randn(2, 3, 32, 32)
    assert full(x).shape == (2, 64) and half(x).shape == (2, 32)
    n_full = sum(p.numel() for p in full.parameters())
    n_half = sum(p.numel() for p in half.parameters())
    assert 0.2 < n_half / n_full < 0.35  # convolutions scale with width squared
    assert [tuple(p.shape) for p in full.last_layer()] == [(64, 64), (64,)]
    # residual stages halve the resolution: a 1-pixel shift of the input changes the output
    full.eval()
    assert not torch.allclose(full(x), full(torch.roll(x, 1, dims=3)))


def test_resnet_from_a_config_trains_on_multimnist(tmp_path: Path) -> None:
    cfg = parse_config({
        "data": {"kind": "multimnist", "train_size": 200, "val_size": 60, "test_size": 60},
        "tasks": [{"name": "left", "kind": "multiclass", "num_classes": 10}],
        "model": {"trunk": "resnet", "width": 0.5, "features": 32, "options": {"channels": [8, 16], "blocks": 1}},
        "training": {"epochs": 1, "batch_size": 50, "threads": 1},
    })
    splits = build_data(cfg, ["left"])
    model = build_model(cfg, cfg.build_tasks(), tuple(splits.train.inputs.shape[1:]))
    assert isinstance(model.trunk, ResNetTrunk) and model.trunk.out_features == 16
    res = run_experiment(cfg, None, progress=False)
    assert res.test is not None and 0.0 <= res.test["left"]["accuracy"] <= 1.0


def test_parse_source_passes_instances_through() -> None:
    src = parse_source({"kind": "yeast"})
    assert parse_source(src) is src
