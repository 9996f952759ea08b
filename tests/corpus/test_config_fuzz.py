"""Property-based fuzz of configs: whatever a config file holds, reading it either gives a valid
:class:`ExperimentConfig` or raises :class:`ConfigError` with one line; never another exception."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml
from corpus_cases import table_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manytask.config import load_config, parse_config
from manytask.errors import ConfigError

BASE = table_config(Path("/nonexistent"), Path("/nonexistent/t.csv"))
BASE["weighting"] = {"name": "dwa", "params": {"temperature": 2.0}}
BASE["training"]["optimizer"] = {"name": "adam", "lr": 0.01}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["binary", "multiclass", "mlp", "lenet", "sgd", "uniform", "a.b", "", "table", "auto"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


PATHS = _paths(BASE)


def _mutate(cfg: dict[str, Any], path: tuple[Any, ...], action: str, value: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    parent: Any = cfg
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "delete" and isinstance(parent, dict):
        parent.pop(last)
    elif action == "add" and isinstance(parent, dict):
        parent[f"{last}_extra"] = value
    else:
        parent[last] = value
    return cfg


def _check(cfg: Any) -> None:
    try:
        parse_config(cfg, where="fuzz.yaml")
    except ConfigError as err:
        assert str(err).startswith("fuzz.yaml") and "\n" not in str(err), str(err)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), st.sampled_from(["set", "delete", "add"]), values),
                min_size=1, max_size=3))
def test_mutated_configs_are_accepted_or_refused_with_one_line(mutations) -> None:
    cfg = BASE
    for path, action, value in mutations:
        try:
            cfg = _mutate(cfg, path, action, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the path
    _check(cfg)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                 st.builds(lambda c, junk: (yaml.safe_dump(c) + junk).encode(), st.just(BASE), st.text(max_size=30))))
def test_arbitrary_config_files_are_read_or_refused_with_one_line(tmp_path_factory, content: bytes) -> None:
    p = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    p.write_bytes(content)
    try:
        load_config(p)
    except ConfigError as err:
        assert str(err).startswith(str(p)) and "\n" not in str(err), str(err)


def test_the_fuzz_reaches_valid_configs_too() -> None:
    cfg = parse_config(copy.deepcopy(BASE), where="fuzz.yaml")
    assert cfg.training.optimizer.lr == 0.01 and not math.isnan(cfg.training.optimizer.lr)
