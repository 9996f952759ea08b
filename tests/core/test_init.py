"""``manytask init``: kinds inferred from a table's columns, and a config that trains as written."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from manytask.cli import app
from manytask.data.starter import infer_target, make_starter
from manytask.errors import ConfigError, DataError

runner = CliRunner()


def error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("manytask: error: "), lines[0]
    return lines[0]


@pytest.fixture
def users_table(tmp_path: Path) -> Path:
    """A small table as a user might bring it: ids, a text feature, labels with blanks."""
    rng = np.random.default_rng(1)
    n = 120
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    frame = pd.DataFrame({
        "customer": [f"c-{i:04d}" for i in range(n)],
        "age": rng.integers(18, 80, size=n),
        "x1": x1,
        "x2": x2,
        "region": rng.choice(["north", "south", "east"], size=n),
        "churned": np.where(x1 > 0, "yes", "no"),
        "segment": np.select([x2 < -0.5, x2 < 0.5], ["bronze", "silver"], "gold"),
        "spend": 10 + 3 * x1 + rng.normal(size=n),
        "stars": rng.integers(1, 4, size=n),
        "flag": np.ones(n, dtype=int),
    })
    frame.loc[frame.index[::4], "churned"] = None
    frame.loc[frame.index[1::5], "spend"] = np.nan
    path = tmp_path / "customers.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("values, kind, classes, write", [
    ([0, 1, 1, None, 0], "binary", ("0", "1"), False),
    (["yes", "No", None, "yes"], "binary", ("no", "yes"), False),
    ([True, False, True], "binary", ("false", "true"), False),
    (["cat", "dog", None, "cat"], "binary", ("cat", "dog"), True),
    (["b", "a", "c", "a"], "multiclass", ("a", "b", "c"), True),
    ([0, 2, 1, 2, 1], "multiclass", ("0", "1", "2"), False),
    ([1, 3, 2, 3], "multiclass", ("1", "2", "3"), True),
    ([0.5, 1.25, 3.0, None], "regression", (), False),
])
def test_infer_target_kinds(values, kind, classes, write) -> None:
    s = infer_target(pd.Series(values), "t")
    assert (s.kind, s.classes, s.write_classes) == (kind, classes, write)
    assert s.missing == sum(v is None for v in values)


def test_integers_with_many_values_are_regression_and_kinds_can_be_forced() -> None:
    counts = pd.Series(np.arange(30) % 25)
    assert infer_target(counts, "n").kind == "regression"
    assert infer_target(counts % 4, "n").kind == "multiclass"
    assert infer_target(counts % 4, "n", kind="regression").kind == "regression"
    s = infer_target(pd.Series([0.5, 2.0, 5.0, np.nan]), "r")
    assert (s.low, s.high, s.missing) == (0.5, 5.0, 1) and "range 0.5 .. 5" in s.lines()[0]


def test_unlearnable_targets_warn_and_are_left_out() -> None:
    assert infer_target(pd.Series([None, None], dtype=object), "e").kind is None
    single = infer_target(pd.Series([1, 1, None]), "s")
    assert single.kind is None and "one value only" in single.warnings[0]
    names = infer_target(pd.Series([f"n{i}" for i in range(30)]), "w")
    assert names.kind is None and "30 distinct names" in names.warnings[0]
    rare = infer_target(pd.Series(["a"] * 30 + ["b"] * 3), "r")
    assert rare.kind == "binary" and "class b (3)" in rare.warnings[0]
    assert "b: 3 (9%)" in rare.lines()[0]


def test_forced_kinds_are_checked() -> None:
    with pytest.raises(DataError, match=r"t\.csv: row 2, column 'g' has the class name 'high'"):
        infer_target(pd.Series([1.0, "high", 2.0]), "g", kind="regression", where="t.csv")
    with pytest.raises(DataError, match="3 distinct values"):
        infer_target(pd.Series([1, 2, 3]), "g", kind="binary")
    with pytest.raises(ConfigError, match="expected one of"):
        infer_target(pd.Series([1, 2, 3]), "g", kind="ranking")


def test_starter_config_lists_classes_and_leaves_out_what_cannot_be_learned(users_table) -> None:
    frame = pd.read_csv(users_table)
    starter = make_starter(frame, "customers.csv", ["churned", "segment", "spend", "stars", "flag"],
                           id_column="customer", kinds=["stars=regression"])
    cfg = yaml.safe_load(starter.config)
    assert cfg["data"]["targets"] == ["churned", "segment", "spend", "stars", "flag"]
    assert cfg["data"]["classes"] == {"segment": ["bronze", "gold", "silver"]}
    assert cfg["data"]["id_column"] == "customer"
    assert cfg["data"]["standardize_targets"] == ["spend", "stars"]
    tasks = {t["name"]: t for t in cfg["tasks"]}
    assert tasks == {"churned": {"name": "churned", "kind": "binary"},
                     "segment": {"name": "segment", "kind": "multiclass", "num_classes": 3},
                     "spend": {"name": "spend", "kind": "regression"},
                     "stars": {"name": "stars", "kind": "regression"}}
    assert "# left out: flag" in starter.config
    assert cfg["model"]["trunk"] == "mlp" and cfg["weighting"]["name"] == "uniform"
    assert starter.features.numeric == ["age", "x1", "x2"] and starter.features.categorical == {"region": 3}


def test_init_then_run_trains_from_a_users_csv(users_table, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "config.yaml"
    result = runner.invoke(app, ["init", users_table.name, "--targets", "churned,segment,spend",
                                 "--id-column", "customer", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "churned: binary, 25.0% missing; classes no:" in result.stdout
    assert "spend: regression, 20.0% missing; range" in result.stdout
    run = runner.invoke(app, ["run", str(out), "--out", "run", "-q", "--set", "training.epochs=1",
                              "--set", "training.threads=1"])
    assert run.exit_code == 0, run.output
    assert "churned (accuracy)" in run.stdout and "spend (mse)" in run.stdout
    pred = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert pred.columns[0] == "customer" and len(pred) == 24
    assert pred["customer"].str.startswith("c-").all()
    assert set(pred["churned"]) <= {"no", "yes"} and pred["churned_label"].isna().any()
    again = runner.invoke(app, ["init", users_table.name, "--targets", "churned", "--out", str(out)])
    assert again.exit_code == 2 and "already exists (use --force to overwrite)" in error_line(again)
    forced = runner.invoke(app, ["init", users_table.name, "--targets", "churned", "--out", str(out), "--force"])
    assert forced.exit_code == 0 and yaml.safe_load(out.read_text())["data"]["targets"] == ["churned"]


@pytest.mark.parametrize("args, expected", [
    (["nowhere.csv", "--targets", "a"], "nowhere.csv: file not found"),
    (["customers.csv", "--targets", "churned,nope"], "customers.csv: no column 'nope' (--targets"),
    (["customers.csv", "--targets", "flag"], "customers.csv: no target can be learned (flag)"),
    (["customers.csv", "--targets", "segment", "--kind", "segment=regression"],
     "customers.csv: row 1, column 'segment' has the class name"),
    (["customers.csv", "--targets", "spend", "--kind", "spend"], "--kind 'spend': expected TARGET=KIND"),
])
def test_init_bad_input_is_one_line_and_exit_2(users_table, tmp_path, monkeypatch, args, expected) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", *args, "--out", "c.yaml"])
    assert result.exit_code == 2
    assert expected in error_line(result)
    assert not (tmp_path / "c.yaml").exists()


def _config(tmp_path: Path, data: dict, tasks: list[dict]) -> Path:
    cfg = {"data": {"kind": "table", **data}, "tasks": tasks, "model": {"trunk": "mlp", "hidden": [4]},
           "training": {"epochs": 1, "threads": 1}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("data, tasks, expected", [
    ({"path": "gone.csv", "targets": ["spend"]}, [{"name": "spend", "kind": "regression"}], "gone.csv: file not found"),
    ({"path": "customers.csv", "targets": ["spend"]}, [{"name": "spend", "kind": "regression", "target": "spnd"}],
     "customers.csv: no column 'spnd'"),
    ({"path": "customers.csv", "targets": ["segment"]}, [{"name": "segment", "kind": "regression"}],
     "customers.csv: row 1, column 'segment' has the class name"),
    ({"path": "blank.csv", "targets": ["y"]}, [{"name": "y", "kind": "binary"}],
     "blank.csv: column 'y' has no label (every value is missing)"),
    ({"path": "customers.parquet", "targets": ["spend"]}, [{"name": "spend", "kind": "regression"}],
     "customers.parquet: reading Parquet needs pyarrow: pip install 'manytask[parquet]'"),
])
def test_run_on_bad_tables_is_one_line_and_exit_2(users_table, tmp_path, monkeypatch, data, tasks, expected) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blank.csv").write_text("x,y\n1,\n2,\n3,\n")
    (tmp_path / "customers.parquet").write_bytes(b"PAR1")
    if data["path"].endswith(".parquet"):
        monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    result = runner.invoke(app, ["run", str(_config(tmp_path, data, tasks)), "--out", "run", "-q"])
    assert result.exit_code == 2
    assert expected in error_line(result)


@pytest.mark.parametrize("name", ["table_yeast", "table_solarflare"])
def test_table_configs_validate_and_keep_labels_out_of_the_features(name) -> None:
    from manytask.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / f"{name}.yaml")
    assert cfg.data.kind == "table" and cfg.data.targets == [t.name for t in cfg.tasks]
