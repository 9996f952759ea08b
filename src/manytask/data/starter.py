"""``manytask init``: what each target column of a table is, and a starter config for it.

Pure functions over a pandas table (reading and writing files is the caller's job):

* :func:`infer_target` — a target's kind from its values, with a summary and warnings;
* :func:`plan_features` — which of the other columns become numeric or categorical features,
  and which are left out (too many categories to one-hot);
* :func:`render_config` — a commented YAML config that ``manytask run`` trains as it is.

Rules for a target's kind (``--kind NAME=KIND`` overrides them):

1. every value missing, or one distinct value → not learnable (left out, with a warning);
2. two distinct values (or booleans) → ``binary``;
3. text, or integral numbers, with at most ``max_classes`` distinct values → ``multiclass``;
4. other numbers → ``regression``; other text → not learnable (too many names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import yaml

from manytask.data.encoding import (
    BOOLEAN_NAMES,
    is_numeric_column,
    shown,
    sorted_names,
    value_key,
)
from manytask.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FeaturePlan", "Starter", "TargetSummary", "infer_target", "make_starter", "plan_features",
           "render_config"]

KINDS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class TargetSummary:
    """What ``manytask init`` found in one target column."""

    name: str
    kind: str | None  # None: cannot be learned
    rows: int
    missing: int
    classes: tuple[str, ...] = ()  # class names in index order (binary / multiclass)
    counts: tuple[int, ...] = ()  # labelled rows per class
    write_classes: bool = False  # the config must list the classes (data.classes)
    low: float | None = None  # regression: smallest, largest, mean value
    high: float | None = None
    mean: float | None = None
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def share_missing(self) -> float:
        return self.missing / self.rows if self.rows else 1.0

    def lines(self) -> list[str]:
        """A human summary: one headline, then warnings and notes."""
        head = f"{self.name}: {self.kind or 'left out'}, {100 * self.share_missing:.1f}% missing"
        if self.classes:
            labelled = self.rows - self.missing
            balance = ", ".join(f"{c}: {n} ({100 * n / labelled:.0f}%)" for c, n in zip(self.classes, self.counts))
            head += f"; classes {balance}"
        elif self.kind == "regression":
            head += f"; range {self.low:g} .. {self.high:g}, mean {self.mean:.4g}"
        return [head] + [f"  warning: {w}" for w in self.warnings] + [f"  note: {n}" for n in self.notes]


def _numbers(values: pd.Series) -> tuple[bool, bool]:
    """(numeric, integral) of a column's present values."""
    import numpy as np

    if not is_numeric_column(values):
        return False, False
    present = values.dropna().to_numpy(dtype=float)
    return True, bool(np.all(np.equal(np.mod(present, 1), 0)))


def _classes(keys: pd.Series, numeric: bool) -> tuple[list[str], bool]:
    """Class names in index order and whether the config has to list them."""
    found = set(keys)
    lowered = {k.lower() for k in found}
    for pair in BOOLEAN_NAMES:
        if not numeric and lowered <= set(pair):
            return list(pair), False
    names = sorted_names(found)
    if numeric:
        return names, names != [str(i) for i in range(len(names))]
    return names, True


def infer_target(values: pd.Series, name: str, *, kind: str | None = None, max_classes: int = 20,
                 min_class_rows: int = 10, where: str = "data") -> TargetSummary:
    """The kind of target column ``values`` (rules in the module docstring), or ``kind`` if
    given, with its summary.

    Raises:
        DataError: ``kind`` is given but the values cannot serve it (names the column, and
            the row of a class name in a regression target).
    """
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"--kind {name}={kind}: expected one of {', '.join(KINDS)}")
    rows, present = len(values), values.dropna()
    base = TargetSummary(name=name, kind=None, rows=rows, missing=rows - len(present))
    if present.empty:
        return replace(base, warnings=("every value is missing: cannot be learned; left out",))
    keys = present.map(value_key)
    distinct = keys.nunique()
    if distinct == 1:
        return replace(base, warnings=(f"one value only ({keys.iloc[0]}): nothing to learn; left out",))
    numeric, integral = _numbers(values)
    if kind == "regression" and not numeric:
        text = present[[not _is_number(v) for v in present]]
        raise DataError(f"{where}: row {int(text.index[0]) + 1}, column '{name}' has the class name "
                        f"{shown(text.iloc[0])}, so it cannot be a regression target")
    if kind == "binary" and distinct > 2:
        raise DataError(f"{where}: column '{name}' has {distinct} distinct values, so it cannot be a binary target")
    if kind is None:
        if distinct <= 2:
            kind = "binary"
        elif (integral or not numeric) and distinct <= max_classes:
            kind = "multiclass"
        elif numeric:
            kind = "regression"
        else:
            why = f"{distinct} distinct names: too many for classes (--max-classes {max_classes}) and not numbers"
            return replace(base, warnings=(f"{why}; left out",))
    if kind == "regression":
        as_float = present.astype(float)
        return replace(base, kind=kind, low=float(as_float.min()), high=float(as_float.max()),
                       mean=float(as_float.mean()))
    return _class_summary(keys, kind, numeric, integral, min_class_rows, base)


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _class_summary(keys: pd.Series, kind: str, numeric: bool, integral: bool, min_class_rows: int,
                   base: TargetSummary) -> TargetSummary:
    names, write = _classes(keys, numeric)
    lookup = (lambda k: k.lower()) if names in [list(p) for p in BOOLEAN_NAMES] else (lambda k: k)
    counts = keys.map(lookup).value_counts()
    counted = tuple(int(counts.get(n, 0)) for n in names)
    rare = [f"{n} ({c})" for n, c in zip(names, counted) if c < min_class_rows]
    warnings = (f"fewer than {min_class_rows} labelled rows in class {', '.join(rare)}",) if rare else ()
    notes: tuple[str, ...] = ()
    if kind == "multiclass" and numeric and integral:
        notes = (f"integer values; to predict it as a number: --kind {base.name}=regression",)
    return replace(base, kind=kind, classes=tuple(names), counts=counted, write_classes=write,
                   warnings=warnings, notes=notes)


@dataclass
class FeaturePlan:
    """The feature columns of a table: numbers, categories, and those left out (with why)."""

    numeric: list[str] = field(default_factory=list)
    categorical: dict[str, int] = field(default_factory=dict)  # column -> distinct values
    excluded: dict[str, str] = field(default_factory=dict)  # column -> reason

    def lines(self) -> list[str]:
        out = [f"features: {len(self.numeric)} numeric, {len(self.categorical)} categorical"
               + (f" ({', '.join(f'{c}: {n} values' for c, n in self.categorical.items())})" if self.categorical else "")]
        return out + [f"  left out: {c} ({why})" for c, why in self.excluded.items()]


def plan_features(frame: pd.DataFrame, columns: Sequence[str], *, max_categories: int = 100) -> FeaturePlan:
    """Numeric and categorical features among ``columns``; columns with no value, text columns
    with more than ``max_categories`` distinct values, and text columns with a different value
    in each of at least 20 rows (ids) are left out."""
    plan = FeaturePlan()
    for c in columns:
        values = frame[c]
        if values.isna().all():
            plan.excluded[c] = "every value is missing"
        elif is_numeric_column(values):
            plan.numeric.append(c)
        else:
            present = values.dropna().map(value_key)
            distinct = int(present.nunique())
            if distinct == len(present) >= 20:
                plan.excluded[c] = "a different value in every row: an id? (--id-column)"
            elif distinct > max_categories:
                plan.excluded[c] = f"{distinct} distinct values, more than data.max_categories {max_categories}"
            else:
                plan.categorical[c] = distinct
    return plan


def _flow(value: Any) -> str:
    """A YAML scalar or flow-style list on one line."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def _class_values(summary: TargetSummary, numeric: bool) -> list[Any]:
    return [int(c) if numeric and c.lstrip("-").isdigit() else c for c in summary.classes]


def _task_line(s: TargetSummary) -> str:
    spec: dict[str, Any] = {"name": s.name, "kind": s.kind}
    if s.kind == "multiclass":
        spec["num_classes"] = len(s.classes)
    return _flow(spec)


def render_config(path: str, targets: Sequence[TargetSummary], plan: FeaturePlan, *, rows: int,
                  numeric_targets: Mapping[str, bool], features: Sequence[str] | None = None,
                  id_column: str | None = None, split_column: str | None = None,
                  name: str = "table") -> str:
    """The commented starter config (see ``docs/data.md``) for the learnable ``targets``."""
    learn = [t for t in targets if t.kind is not None]
    if not learn:
        raise DataError(f"{path}: no target can be learned ({', '.join(t.name for t in targets)})")
    regression = any(t.kind == "regression" for t in learn)
    out = [f"# Starter config written by `manytask init` from {path} ({rows} rows).",
           "# Train:  manytask run THIS_FILE      Fields: docs/data.md", "",
           f"name: {_flow(name)}", "seed: 0", "output_dir: runs", "data:", "  kind: table",
           f"  path: {_flow(path)}    # relative paths are read from the folder manytask runs in",
           f"  targets: {_flow([t.name for t in targets])}    # label columns: never used as features"]
    if features is not None:
        out.append(f"  features: {_flow([c for c in features if c not in plan.excluded])}")
    else:
        shown = ", ".join((plan.numeric + list(plan.categorical))[:6])
        count = len(plan.numeric) + len(plan.categorical)
        out.append(f"  # features: every other column ({count}: {shown}{', ...' if count > 6 else ''})")
    if plan.excluded and features is None:
        out.append(f"  exclude: {_flow(list(plan.excluded))}    # " + "; ".join(plan.excluded.values()))
    if plan.categorical:
        out.append("  categorical_encoding: onehot    # text columns: one 0/1 column per training category; or codes")
    if id_column:
        out.append(f"  id_column: {_flow(id_column)}    # kept with the test predictions (predictions.csv)")
    if split_column:
        out.append(f"  split_column: {_flow(split_column)}    # values train / val / test (data.split_names)")
    else:
        out += ["  val_fraction: 0.15    # rows drawn at random for validation (best epoch) ...",
                "  test_fraction: 0.2     # ... and for the test metrics"]
    listed = [t for t in learn if t.write_classes]
    if listed:
        out.append("  classes:    # label value -> class index, in this order")
        out += [f"    {_flow(t.name)}: {_flow(_class_values(t, numeric_targets.get(t.name, False)))}" for t in listed]
    scaled = [t.name for t in learn if t.kind == "regression"]
    if scaled:
        out += [f"  standardize_targets: {_flow(scaled)}",
                "  # ^ trained on (value - mean) / std of the training rows: metrics in those units (mse = share",
                "  #   of the training variance), predictions.csv in the column's own units"]
    out.append("tasks:")
    for t in targets:
        out.append(f"  # {t.lines()[0]}")
        out.append(f"  {'- ' if t.kind else '# left out: '}{_task_line(t) if t.kind else t.name}")
    out += ["model:", "  trunk: mlp           # a shared MLP over the features; a two-layer head per task",
            "  hidden: [128, 64]", "  head_hidden: 32", "  dropout: 0.1",
            "training:", "  epochs: 50", "  batch_size: 64", "  optimizer: {name: adam, lr: 0.001}",
            "  patience: 10        # stop after 10 epochs without a better validation score",
            f"  monitor: auto       # {'summed validation loss (a regression task)' if regression else 'mean validation accuracy'}",
            "weighting:",
            "  name: uniform       # every task's loss counts once; manytask weightings lists the others"]
    return "\n".join(out) + "\n"


@dataclass
class Starter:
    """What ``manytask init`` reports and writes."""

    targets: list[TargetSummary]
    features: FeaturePlan
    config: str

    def lines(self) -> list[str]:
        out = [line for t in self.targets for line in t.lines()]
        return out + self.features.lines()


def _parse_kinds(items: Sequence[str], targets: Sequence[str]) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for item in items:
        column, sep, kind = item.partition("=")
        if not sep or column.strip() not in targets:
            raise ConfigError(f"--kind '{item}': expected TARGET=KIND with TARGET one of {', '.join(targets)}")
        kinds[column.strip()] = kind.strip()
    return kinds


def make_starter(frame: pd.DataFrame, path: str, targets: Sequence[str], *, features: Sequence[str] | None = None,
                 id_column: str | None = None, split_column: str | None = None, kinds: Sequence[str] = (),
                 max_classes: int = 20, name: str = "table") -> Starter:
    """Summaries of the ``targets`` of ``frame`` (read from ``path``) and their starter config.

    Raises:
        DataError: a named column is not in the table, or no target can be learned.
        ConfigError: ``targets`` is empty or a ``kinds`` item is malformed.
    """
    if not targets:
        raise ConfigError("--targets: name at least one label column")
    named = [(c, "--targets") for c in targets] + [(c, "--features") for c in features or []]
    named += [(c, opt) for c, opt in ((id_column, "--id-column"), (split_column, "--split-column")) if c]
    for c, option in named:
        if c not in frame.columns:
            raise DataError(f"{path}: no column '{c}' ({option}; the table has {', '.join(map(str, frame.columns[:12]))}"
                            f"{', ...' if frame.shape[1] > 12 else ''})")
    forced = _parse_kinds(kinds, targets)
    summaries = [infer_target(frame[c], c, kind=forced.get(c), max_classes=max_classes, where=path) for c in targets]
    reserved = set(targets) | {id_column, split_column}
    candidates = list(features) if features is not None else [c for c in frame.columns if c not in reserved]
    plan = plan_features(frame, candidates)
    numeric_targets = {c: is_numeric_column(frame[c]) for c in targets}
    config = render_config(path, summaries, plan, rows=len(frame), numeric_targets=numeric_targets,
                           features=features, id_column=id_column, split_column=split_column, name=name)
    return Starter(summaries, plan, config)
