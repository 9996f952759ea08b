"""The bad-input corpus: malformed configs, data files, run directories and CLI arguments.

Each :class:`Case` writes what it needs into a fresh folder and returns the ``manytask``
arguments that must fail with exit code 2 and one line ``manytask: error: …`` containing
``expect`` (what is wrong, and where). Shared pieces: a small CSV table and its config (fast
to train), IDX files of MNIST digits, and a finished run directory.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Path], list[str]]
    expect: str
    group: str


CASES: list[Case] = []


def case(group: str, expect: str, id: str | None = None) -> Callable[[Callable[[Path], list[str]]], Callable[[Path], list[str]]]:
    def add(fn: Callable[[Path], list[str]]) -> Callable[[Path], list[str]]:
        CASES.append(Case(id or fn.__name__.lstrip("_"), fn, expect, group))
        return fn
    return add


# ------------------------------------------------------------------ shared material
def table_csv(tmp: Path, rows: int = 60, name: str = "t.csv") -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 2))
    lines = ["x1,x2,y,z"] + [f"{a:.4f},{b:.4f},{int(a > 0)},{a + b:.4f}" for a, b in x]
    p = tmp / name
    p.write_text("\n".join(lines) + "\n")
    return p


def table_config(tmp: Path, csv: Path | None = None) -> dict[str, Any]:
    return {
        "name": "corpus",
        "data": {"kind": "table", "path": str(csv or table_csv(tmp)), "targets": ["y", "z"]},
        "tasks": [{"name": "y", "kind": "binary"}, {"name": "z", "kind": "regression"}],
        "model": {"trunk": "mlp", "hidden": [8], "features": 8, "head_hidden": 4},
        "training": {"epochs": 1, "batch_size": 16, "threads": 1},
    }


def write_yaml(tmp: Path, cfg: Any, name: str = "c.yaml") -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def run_args(tmp: Path, cfg_path: Path, *extra: str) -> list[str]:
    return ["run", str(cfg_path), "--out", str(tmp / "run"), "-q", *extra]


def with_config(mutate: Callable[[dict[str, Any]], Any]) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        cfg = table_config(tmp)
        mutate(cfg)
        return run_args(tmp, write_yaml(tmp, cfg))
    return build


def config_case(id: str, expect: str, mutate: Callable[[dict[str, Any]], Any]) -> None:
    CASES.append(Case(id, with_config(mutate), expect, "config"))


def raw_config(id: str, expect: str, content: bytes | str) -> None:
    def build(tmp: Path) -> list[str]:
        p = tmp / "c.yaml"
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        return run_args(tmp, p)
    CASES.append(Case(id, build, expect, "config"))


def idx_bytes(array: np.ndarray, magic_code: int = 0x08) -> bytes:
    head = struct.pack(">HBB", 0, magic_code, array.ndim) + b"".join(struct.pack(">I", s) for s in array.shape)
    return head + array.astype(np.uint8).tobytes()


def idx_dir(tmp: Path, n: int = 40, labels: np.ndarray | None = None, images: bytes | None = None,
            labels_raw: bytes | None = None, gz: bool = False) -> Path:
    d = tmp / "idx"
    d.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    img = images if images is not None else idx_bytes(rng.integers(0, 256, size=(n, 28, 28)))
    lab = labels_raw if labels_raw is not None else idx_bytes(labels if labels is not None else np.arange(n) % 10)
    suffix = ".gz" if gz else ""
    (d / f"train-images-idx3-ubyte{suffix}").write_bytes(gzip.compress(img) if gz else img)
    (d / f"train-labels-idx1-ubyte{suffix}").write_bytes(gzip.compress(lab) if gz else lab)
    return d


def mnist_config(tmp: Path, d: Path) -> Path:
    cfg = {"name": "idx", "data": {"kind": "mnist", "source": "idx", "idx_dir": str(d), "train_size": 10,
                                   "val_size": 5, "test_size": 5},
           "tasks": [{"name": "digit", "kind": "multiclass", "num_classes": 10}],
           "model": {"trunk": "mlp", "hidden": [8]}, "training": {"epochs": 1, "threads": 1}}
    return write_yaml(tmp, cfg)


def idx_case(id: str, expect: str, **kw: Any) -> None:
    def build(tmp: Path) -> list[str]:
        make = kw.copy()
        for key, value in list(make.items()):
            if callable(value):
                make[key] = value()
        return run_args(tmp, mnist_config(tmp, idx_dir(tmp, **make)))
    CASES.append(Case(id, build, expect, "data"))


def csv_case(id: str, expect: str, content: bytes | Callable[[Path], bytes],
             mutate: Callable[[dict[str, Any]], Any] | None = None) -> None:
    def build(tmp: Path) -> list[str]:
        p = tmp / "t.csv"
        p.write_bytes(content(tmp) if callable(content) else content)
        cfg = table_config(tmp, p)
        if mutate is not None:
            mutate(cfg)
        return run_args(tmp, write_yaml(tmp, cfg))
    CASES.append(Case(id, build, expect, "data"))


def npz_case(id: str, expect: str, arrays: Callable[[], dict[str, np.ndarray]] | None = None,
             raw: bytes | None = None) -> None:
    def build(tmp: Path) -> list[str]:
        p = tmp / "a.npz"
        if raw is not None:
            p.write_bytes(raw)
        else:
            np.savez(p, **(arrays() if arrays else {}))
        cfg = {"name": "npz", "data": {"kind": "arrays", "path": str(p)},
               "tasks": [{"name": "y", "kind": "binary"}], "model": {"trunk": "mlp", "hidden": [4]},
               "training": {"epochs": 1, "threads": 1}}
        return run_args(tmp, write_yaml(tmp, cfg))
    CASES.append(Case(id, build, expect, "data"))


def finished_run(tmp: Path) -> tuple[Path, Path]:
    """A config and the finished run directory it trained (trained once, copied per case)."""
    import shutil

    from typer.testing import CliRunner

    from manytask.cli import app

    cfg_path = write_yaml(tmp, table_config(tmp, table_csv(tmp)))
    key = tmp.parent / "corpus-finished-run"
    if not key.exists():
        src = tmp.parent / "corpus-finished-src"
        src.mkdir(exist_ok=True)
        src_cfg = write_yaml(src, table_config(src, table_csv(src)))
        result = CliRunner().invoke(app, ["run", str(src_cfg), "--out", str(key), "-q"])
        assert result.exit_code == 0, result.output
    out = tmp / "run"
    shutil.copytree(key, out)
    # the copy's recorded config names this case's CSV, so that only the planted fault differs
    rec = yaml.safe_load((out / "config.yaml").read_text())
    rec["data"]["path"] = str(tmp / "t.csv")
    (out / "config.yaml").write_text(yaml.safe_dump(rec, sort_keys=False))
    return cfg_path, out


# ================================================================== configs (YAML, types, fields, sizes)
raw_config("yaml_syntax", "is not valid YAML", "tasks: [\n  - {name: a\n")
raw_config("yaml_tab_indent", "is not valid YAML", "name: x\ntasks:\n\t- name: a\n")
raw_config("yaml_duplicate_key", "duplicate key 'name'", "name: a\nname: b\ntasks: [{name: y, kind: binary}]\n")
raw_config("yaml_non_utf8", "not UTF-8", b"name: caf\xe9\ntasks: [{name: y, kind: binary}]\n")
raw_config("yaml_utf16", "not UTF-8", "name: x\ntasks: [{name: y, kind: binary}]\n".encode("utf-16"))
raw_config("yaml_empty", "empty", "")
raw_config("yaml_top_level_list", "expected a mapping at the top level", "- a\n- b\n")
raw_config("yaml_python_tag", "is not valid YAML", "name: !!python/object/apply:os.system ['true']\ntasks: []\n")
config_case("unknown_top_field", "nmae: unknown field", lambda c: c.update(nmae="x"))
config_case("unknown_nested_field", "training.epchs: unknown field", lambda c: c["training"].update(epchs=3))
config_case("tasks_missing", "tasks: field required", lambda c: c.pop("tasks"))
config_case("tasks_empty", "at least one task", lambda c: c.update(tasks=[]))
config_case("tasks_not_a_list", "tasks", lambda c: c.update(tasks="y"))
config_case("task_kind_unknown", "unknown task kind 'ranked'", lambda c: c["tasks"][0].update(kind="ranked"))
config_case("task_duplicate_names", "duplicate task name(s) y", lambda c: c["tasks"].append({"name": "y", "kind": "binary"}))
config_case("task_name_with_dot", "a.b", lambda c: c["tasks"][0].update(name="a.b", target="y"))
config_case("task_name_empty", "tasks.0.name", lambda c: c["tasks"][0].update(name="", target="y"))
config_case("task_num_classes_zero", "num_classes", lambda c: c["tasks"].append(
    {"name": "k", "kind": "multiclass", "num_classes": 0, "target": "y"}))
config_case("epochs_string", "training.epochs", lambda c: c["training"].update(epochs="many"))
config_case("epochs_zero", "training.epochs", lambda c: c["training"].update(epochs=0))
config_case("epochs_float", "training.epochs", lambda c: c["training"].update(epochs=1.5))
config_case("batch_size_negative", "training.batch_size", lambda c: c["training"].update(batch_size=-1))
config_case("lr_inf", "training.optimizer.lr", lambda c: c["training"].update(optimizer={"lr": float("inf")}))
config_case("lr_nan", "training.optimizer.lr", lambda c: c["training"].update(optimizer={"lr": float("nan")}))
config_case("lr_zero", "training.optimizer.lr", lambda c: c["training"].update(optimizer={"lr": 0}))
config_case("momentum_too_big", "training.optimizer.momentum", lambda c: c["training"].update(optimizer={"momentum": 1.5}))
config_case("optimizer_unknown", "training.optimizer.name", lambda c: c["training"].update(optimizer={"name": "rmsprop"}))
config_case("features_huge", "model.features", lambda c: c["model"].update(features=10**12))
config_case("hidden_negative", "model.hidden", lambda c: c["model"].update(hidden=[-3]))
config_case("hidden_huge", "model.hidden", lambda c: c["model"].update(hidden=[10**9]))
config_case("width_zero", "model.width", lambda c: c["model"].update(width=0))
config_case("trunk_unknown", "unknown trunk 'nosuch'", lambda c: c["model"].update(trunk="nosuch"))
config_case("seed_huge", "seed", lambda c: c.update(seed=2**70))
config_case("seed_negative", "seed", lambda c: c.update(seed=-1))
config_case("weighting_unknown", "unknown method 'magic'", lambda c: c.update(weighting={"name": "magic"}))
config_case("weighting_bad_param", "temprature", lambda c: c.update(weighting={"name": "dwa", "params": {"temprature": 2}}))
config_case("data_kind_unknown", "nosuch", lambda c: c["data"].update(kind="nosuch"))
config_case("data_fraction_zero", "fraction", lambda c: c["data"].update(fraction=0))
config_case("plugin_missing", "cannot import module 'no_such_plugin_module'", lambda c: c.update(plugins=["no_such_plugin_module"]))
config_case("train_size_huge", "train_size", lambda c: c.update(data={"kind": "multimnist", "train_size": 10**12}))
config_case("mnist_source_unknown", "data.source", lambda c: c.update(data={"kind": "multimnist", "source": "web"}))
config_case("monitor_unknown", "training.monitor", lambda c: c["training"].update(monitor="y.nosuch"))
config_case("nonfinite_policy_unknown", "training.nonfinite", lambda c: c["training"].update(nonfinite="ignore"))


@case("config", "--set 'training.epochs=[1': value is not valid YAML")
def _set_bad_yaml(tmp: Path) -> list[str]:
    return run_args(tmp, write_yaml(tmp, table_config(tmp)), "--set", "training.epochs=[1")


@case("config", "empty")
def _set_on_empty_config(tmp: Path) -> list[str]:
    (tmp / "c.yaml").write_text("")
    return run_args(tmp, tmp / "c.yaml", "--set", "training.epochs=2")


@case("config", "expected KEY=VALUE")
def _set_without_value(tmp: Path) -> list[str]:
    return run_args(tmp, write_yaml(tmp, table_config(tmp)), "--set", "training.epochs")


@case("config", "'name' is not a mapping")
def _set_into_a_scalar(tmp: Path) -> list[str]:
    return run_args(tmp, write_yaml(tmp, table_config(tmp)), "--set", "name.x=1")


@case("config", "config file not found")
def _config_missing(tmp: Path) -> list[str]:
    return run_args(tmp, tmp / "absent.yaml")


# ================================================================== data files
idx_case("idx_truncated_images", "train-images-idx3-ubyte", images=lambda: idx_bytes(np.zeros((40, 28, 28)))[:3000])
idx_case("idx_wrong_magic", "bad magic number", images=lambda: b"\x12\x34" + idx_bytes(np.zeros((40, 28, 28)))[2:])
idx_case("idx_count_mismatch", "has 40 images but train-labels-idx1-ubyte has 39 labels",
         labels_raw=lambda: idx_bytes(np.arange(39) % 10))
idx_case("idx_label_out_of_range", "label 12", labels=lambda: np.r_[np.arange(39) % 10, 12])
idx_case("idx_corrupt_gzip", "corrupt gzip", gz=False, images=lambda: b"\x1f\x8b\x08\x00garbage-not-deflate")
idx_case("idx_truncated_gzip", "truncated gzip", gz=False, images=lambda: gzip.compress(
    idx_bytes(np.random.default_rng(2).integers(0, 256, size=(40, 28, 28))))[:5000])
idx_case("idx_wrong_image_size", "expected 28x28", images=lambda: idx_bytes(np.zeros((40, 20, 20))))


@case("data", "idx_dir '")
def _idx_dir_missing(tmp: Path) -> list[str]:
    return run_args(tmp, mnist_config(tmp, tmp / "nowhere"))


csv_case("csv_non_utf8", "'utf-8' codec can't decode byte 0xe9", "x1,x2,y,z\n1,2,0,caf\xe9\n".encode("latin-1") * 1)
csv_case("csv_utf16", "'utf-8' codec can't decode byte 0xff", lambda tmp: table_csv(tmp).read_text().encode("utf-16"))
csv_case("csv_empty_file", "t.csv", b"")
csv_case("csv_header_only", "no data row", b"x1,x2,y,z\n")
csv_case("csv_label_all_missing", "'z'", lambda tmp: "\n".join(
    [ln.rsplit(",", 1)[0] + "," for ln in table_csv(tmp).read_text().splitlines()]).replace("y,", "y,z", 1).encode())
csv_case("csv_target_column_missing", "column 'w'", lambda tmp: table_csv(tmp).read_bytes(),
         mutate=lambda c: c["tasks"].append({"name": "w", "kind": "binary"}))
csv_case("csv_label_out_of_range", "label 2", lambda tmp: table_csv(tmp).read_text().replace(",1,", ",2,").encode(),
         mutate=lambda c: c["tasks"].__setitem__(0, {"name": "y", "kind": "multiclass", "num_classes": 2}))
csv_case("csv_ragged_rows", "t.csv", b"x1,x2,y,z\n1,2,0,1\n1,2,0,1,5,6\n" * 3)
npz_case("npz_nan_inputs", "not finite", arrays=lambda: {"inputs": np.array([[np.nan, 1.0]] * 30),
                                                         "y": np.array([0, 1] * 15)})
npz_case("npz_length_mismatch", "y", arrays=lambda: {"inputs": np.ones((30, 2)), "y": np.zeros(29)})
npz_case("npz_missing_array", "no array 'y'", arrays=lambda: {"inputs": np.ones((30, 2))})
npz_case("npz_corrupt_file", "a.npz", raw=b"PK\x03\x04 not really a zip")
npz_case("npz_object_array", "Python objects", arrays=lambda: {"inputs": np.array([{"a": 1}] * 30, dtype=object),
                                                               "y": np.zeros(30)})


# ================================================================== run directories
def rundir_case(id: str, expect: str, plant: Callable[[Path], Any], *extra: str) -> None:
    def build(tmp: Path) -> list[str]:
        cfg, out = finished_run(tmp)
        plant(out)
        return ["run", str(cfg), "--out", str(out), "-q", "--resume", *extra]
    CASES.append(Case(id, build, expect, "rundir"))


class _Bomb:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, ("/tmp/manytask-corpus-pwned", "w"))


def _plant_pickle(out: Path) -> None:
    import pickle

    (out / "checkpoint.safetensors").unlink()
    (out / "last_state.pt").write_bytes(pickle.dumps(_Bomb()))


def _cut(name: str, keep: float) -> Callable[[Path], None]:
    def plant(out: Path) -> None:
        data = (out / name).read_bytes()
        (out / name).write_bytes(data[: int(len(data) * keep)])
    return plant


def _flip(out: Path) -> None:
    data = bytearray((out / "checkpoint.safetensors").read_bytes())
    data[-3] ^= 0x55
    (out / "checkpoint.safetensors").write_bytes(bytes(data))


def _live_lock(out: Path) -> None:
    import os

    (out / ".lock").write_text(f"{os.getppid()}\n")


rundir_case("rundir_pickled_state", "refusing to load a pickled state file", _plant_pickle)
rundir_case("rundir_truncated_checkpoint", "checkpoint.safetensors: not a readable safetensors checkpoint",
            _cut("checkpoint.safetensors", 0.5))
rundir_case("rundir_empty_checkpoint", "checkpoint.safetensors", _cut("checkpoint.safetensors", 0))
rundir_case("rundir_tampered_checkpoint", "does not match its digest", _flip)
rundir_case("rundir_foreign_safetensors", "not a manytask checkpoint",
            lambda out: (out / "last.safetensors").replace(out / "checkpoint.safetensors"))
rundir_case("rundir_corrupt_config", "config.yaml: not valid YAML",
            lambda out: (out / "config.yaml").write_text("{{{"))
rundir_case("rundir_changed_model", "cannot resume with a changed config: model.hidden",
            lambda out: None, "--set", "model.hidden=[16]")
rundir_case("rundir_changed_lr", "cannot resume with a changed config: training.optimizer.lr",
            lambda out: None, "--set", "training.optimizer.lr=0.5")
rundir_case("rundir_changed_weighting", "cannot resume with a changed config: run.weighting was 'uniform', now 'dwa'",
            lambda out: None, "--set", "weighting.name=dwa")
rundir_case("rundir_locked_by_live_process", "in use by process", _live_lock)


@case("rundir", "--resume needs --out")
def _resume_without_out(tmp: Path) -> list[str]:
    return ["run", str(write_yaml(tmp, table_config(tmp))), "--resume", "-q"]


@case("rundir", "exists and is not a directory")
def _out_is_a_file(tmp: Path) -> list[str]:
    (tmp / "run").write_text("x")
    return run_args(tmp, write_yaml(tmp, table_config(tmp)))


# ================================================================== command-line arguments
def cli_case(id: str, expect: str, command: str, *args: str) -> None:
    def build(tmp: Path) -> list[str]:
        cfg = write_yaml(tmp, table_config(tmp))
        return [command, str(cfg), *args, "--out", str(tmp / "out")]
    CASES.append(Case(id, build, expect, "cli"))


cli_case("compare_seeds_word", "--seeds", "compare", "--seeds", "many")
cli_case("compare_seeds_zero", "--seeds: need at least one seed", "compare", "--seeds", "0")
cli_case("compare_seeds_negative", "--seeds", "compare", "--seeds", "-1,2")
cli_case("compare_seeds_huge", "--seeds", "compare", "--seeds", f"{2**70},")
cli_case("compare_fraction_zero", "--fractions", "compare", "--fractions", "0")
cli_case("compare_fraction_above_one", "--fractions", "compare", "--fractions", "1.5")
cli_case("compare_fraction_word", "--fractions: 'half' is not a number", "compare", "--fractions", "half")
cli_case("compare_method_unknown", "nosuch", "compare", "--methods", "uniform,nosuch")
cli_case("compare_method_spec_unclosed", "famo[", "compare", "--methods", "famo[update_on=next_batch")
cli_case("compare_method_bad_param", "nosuchparam", "compare", "--methods", "dwa[nosuchparam=1]")
cli_case("compare_epochs_scaling_unknown", "--epochs-scaling", "compare", "--epochs-scaling", "quadratic")
cli_case("group_budgets_word", "budgets", "group", "--budgets", "a:b")
cli_case("group_budgets_negative", "budgets", "group", "--budgets", "-1")
cli_case("group_budgets_reversed", "stop 1 < start 3", "group", "--budgets", "3:1")
cli_case("group_method_unknown", "nosuch", "group", "--method", "nosuch")
cli_case("group_esa_fraction", "esa", "group", "--method", "esa", "--esa-fraction", "2")
cli_case("group_normalize_unknown", "normalize", "group", "--normalize", "sideways")
cli_case("group_tag_every_zero", "tag", "group", "--method", "tag", "--tag-every", "0")
cli_case("group_workers_zero", "workers", "group", "--executor", "pool", "--workers", "0")
cli_case("group_executor_unknown", "executor", "group", "--executor", "cloud")
cli_case("compare_jobs_zero", "jobs", "compare", "--jobs", "0")
cli_case("compare_max_epochs_zero", "max-epochs", "compare", "--epochs-scaling", "inverse", "--max-epochs", "0")
cli_case("compare_tsne_epochs_word", "--tsne-epochs", "compare", "--tsne-epochs", "first")


def select_case(id: str, expect: str, content: str | None, *extra: str) -> None:
    def build(tmp: Path) -> list[str]:
        p = tmp / "cand.csv"
        if content is not None:
            p.write_text(content)
        return ["select", str(p), *extra]
    CASES.append(Case(id, build, expect, "cli"))


HEAD = "tasks,cost,val_loss/a,val_loss/b\n"
GOOD_TABLE = HEAD + "a,1,0.5,\nb,1,,0.4\na+b,1,0.6,0.5\n"
select_case("select_missing_table", "file not found", None)
select_case("select_empty_table", "cand.csv", "")
select_case("select_header_only", "cand.csv: no candidate network", HEAD)
select_case("select_nan_loss", "row 1, column 'val_loss/a'", HEAD + "a,1,nan,\nb,1,,0.4\n")
select_case("select_nan_cost", "row 1, column 'cost'", HEAD + "a,nan,0.5,\nb,1,,0.4\n")
select_case("select_nan_tasks", "row 1, column 'tasks'", HEAD + "nan,1,0.5,\nb,1,,0.4\n")
select_case("select_nan_test_loss", "row 1, column 'test_loss/a'",
            "tasks,cost,val_loss/a,val_loss/b,test_loss/a,test_loss/b\na,1,0.5,,NaN,\nb,1,,0.4,,0.3\n")
select_case("select_inf_loss", "row 2, column 'val_loss/b'", HEAD + "a,1,0.5,\nb,1,,inf\n")
select_case("select_unknown_task", "unknown task 'c'", HEAD + "c,1,0.5,\n")
select_case("select_negative_cost", "row 1, column 'cost'", HEAD + "a,-1,0.5,\nb,1,,0.4\n")
select_case("select_bad_budgets", "budgets", GOOD_TABLE, "--budgets", "x")


@case("cli", "already exists")
def _select_out_is_a_file(tmp: Path) -> list[str]:
    p = tmp / "cand.csv"
    p.write_text(GOOD_TABLE)
    (tmp / "sel").write_text("not a folder")
    return ["select", str(p), "--budgets", "1,2", "--out", str(tmp / "sel")]


# ================================================================== galleries (kind: galleries)
def gallery_case(id: str, expect: str, spoil: Callable[[Path], Any]) -> None:
    """Four galleries of two 4x4 PNGs (items.csv, labels.csv), spoilt by ``spoil(folder)``."""
    def build(tmp: Path) -> list[str]:
        from PIL import Image

        (tmp / "img").mkdir()
        items = ["gallery,image"]
        for k in range(8):
            Image.fromarray(np.full((4, 4), 30 * k, dtype=np.uint8)).save(tmp / "img" / f"{k}.png")
            items.append(f"g{k // 2},img/{k}.png")
        (tmp / "items.csv").write_text("\n".join(items) + "\n")
        (tmp / "labels.csv").write_text("gallery,y\n" + "".join(f"g{g},{g % 2}\n" for g in range(4)))
        spoil(tmp)
        cfg = {"name": "gal", "data": {"kind": "galleries", "items": str(tmp / "items.csv"),
                                       "labels": str(tmp / "labels.csv"), "grayscale": True},
               "tasks": [{"name": "y", "kind": "binary"}], "model": {"trunk": "set_encoder"},
               "training": {"epochs": 1, "threads": 1}}
        return run_args(tmp, write_yaml(tmp, cfg))
    CASES.append(Case(id, build, expect, "data"))


gallery_case("gallery_image_missing", "items.csv: row 4, column 'image': image file 'img/3.png' not found",
             lambda tmp: (tmp / "img" / "3.png").unlink())
gallery_case("gallery_without_images", "labels.csv: row 5, column 'gallery': gallery 'g9' has no item",
             lambda tmp: (tmp / "labels.csv").write_text((tmp / "labels.csv").read_text() + "g9,1\n"))
gallery_case("gallery_image_sizes_differ", "img/6.png: image is 5x4, but img/",
             lambda tmp: __import__("PIL.Image").Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp / "img" / "6.png"))
