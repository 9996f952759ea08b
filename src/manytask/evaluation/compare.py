"""``compare``: single-task vs multi-task weighting methods over seeds and training fractions.

This is the experimental protocol of Gong et al. 2019 ("A comparison of loss weighting
strategies for multi task learning in deep neural networks", Tables 1–2 and Figure 1):

* For every training-data fraction ``f`` and seed ``s``, train

  - one **single-task** model per task (``stl``; the same trainer and network with one head),
  - one **multi-task** model per weighting method (``uniform`` = vanilla MTL, ``dwa``,
    ``uncertainty``, ``revised_uncertainty``, … any registered name, optionally with
    hyperparameters: ``famo[update_on=next_batch]``, ``cagrad[c=0.2]``; a bare name takes the
    config's ``weighting.params`` when it is the config's method, the defaults otherwise),

  each in its own run directory ``OUT/f{f}/s{s}/{stl-<task>|<method>}`` (``famo-update_on=next_batch``
  for a method with hyperparameters). The seed sets the
  network initialisation and the shuffling; the data (which samples, which digits) is fixed by
  the config's seed, and the ``f`` training sets are nested (10% ⊂ 25% ⊂ 100%).
* The best epoch is chosen on the validation split (by the trainer); the table reports the
  **test** primary metric of that epoch (accuracy for classification, MSE for regression and
  reconstruction).
* A run whose directory is complete (``summary.json`` with status ``complete``) is not trained
  again: its summary is read back. An interrupted comparison therefore resumes where it stopped;
  a reused run must have been made with the same settings, otherwise :class:`ConfigError`.
  Unfinished runs are retrained from scratch. A run whose training loss becomes infinite or
  NaN is recorded as diverged (``diverged.json``) and left out of the means.
* Epochs: ``epochs_scaling="constant"`` trains every fraction for ``training.epochs``;
  ``"inverse"`` follows Gong et al. ("each time we reduce the training sample size by half we
  double the training time"): ``epochs = round(training.epochs / f)``, capped at
  ``max_epochs`` when given, so the number of optimisation steps stays about the same.

Outputs (all in ``OUT``): ``table.md`` (the Gong et al. table: mean ± std over seeds, with
Δm against single-task learning and the mean training time per run), ``runs.csv`` (one row per
run and task), ``summary.csv`` (mean, std, n per fraction × approach × task, and Δm),
``compare.json`` (everything), ``metrics.png`` (metric vs fraction with ±std error bars) and,
with ``tsne_epochs``, ``tsne.png`` (t-SNE of the shared representation, Figure 1).

Standard deviations are sample standard deviations (``ddof=1``) over the seeds.
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from manytask.config import ExperimentConfig, parse_config
from manytask.errors import ConfigError
from manytask.evaluation.delta_m import delta_m
from manytask.jsonable import to_jsonable
from manytask.tasks import METRICS, Task
from manytask.training.rundir import RunDir, atomic_write_text

__all__ = [
    "STL",
    "CompareResult",
    "RunRecord",
    "RunSpec",
    "SummaryCell",
    "aggregate",
    "compare",
    "delta_m_table",
    "display_name",
    "epochs_for",
    "format_table",
    "parse_fractions",
    "parse_int_list",
    "parse_methods",
    "parse_method_spec",
    "method_dir_name",
    "parse_seeds",
    "plan_runs",
    "run_one",
]

#: The method name that stands for single-task learning (one run per task).
STL = "stl"

EpochsScaling = Literal["constant", "inverse"]
EPOCHS_SCALINGS: tuple[str, ...] = ("constant", "inverse")

DIVERGED_FILE = "diverged.json"
Log = Callable[[str], None]


def display_name(method: str) -> str:
    """The row label of an approach in the table (``stl`` → ``Single task``; hyperparameters of a
    spec such as ``famo[update_on=next_batch]`` follow the name: ``FAMO [update_on=next_batch]``)."""
    if "[" in method:
        name, _, rest = method.partition("[")
        return f"{_label(name)} [{rest}"
    return _label(method)


def _label(name: str) -> str:
    """``stl`` → ``Single task``; a registered weighting → its class's ``display_name``."""
    from manytask.weighting import available, get

    if name == STL:
        return "Single task"
    return get(name).display_name if name in available() else name


def _frac_dir(fraction: float) -> str:
    return f"f{fraction:g}"


def _frac_label(fraction: float) -> str:
    return f"{100 * fraction:g}%"


# ---------------------------------------------------------------------- arguments
def parse_seeds(value: str | int | Sequence[int]) -> list[int]:
    """Seeds from the command line: ``"10"`` (or 10) → 0..9; ``"0,3,7"`` → [0, 3, 7]."""
    if isinstance(value, bool):
        raise ConfigError(f"--seeds: expected a count (10) or a list (0,3,7), got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"--seeds: need at least one seed, got {value}")
        return list(range(value))
    if not isinstance(value, str):
        seeds = [int(v) for v in value]
    else:
        text = value.strip()
        if "," not in text:
            try:
                count = int(text)
            except ValueError:
                raise ConfigError(f"--seeds: expected a count (10) or a list (0,3,7), got '{value}'") from None
            return parse_seeds(count)
        seeds = parse_int_list(text, "--seeds")
    if not seeds:
        raise ConfigError("--seeds: no seed given")
    if any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds: seeds must be >= 0, got {seeds}")
    return list(dict.fromkeys(seeds))


def parse_int_list(value: str | Sequence[int], what: str) -> list[int]:
    """``"1,5,10"`` → [1, 5, 10] (empty items ignored); errors name ``what``."""
    if not isinstance(value, str):
        return [int(v) for v in value]
    out = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(int(item))
        except ValueError:
            raise ConfigError(f"{what}: '{item}' is not an integer") from None
    return out


def parse_fractions(value: str | Sequence[float]) -> list[float]:
    """``"1,0.25,0.1"`` → [1.0, 0.25, 0.1]; each must lie in (0, 1]; order kept, repeats dropped."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[float] = []
    for item in items:
        if isinstance(item, str):
            item = item.strip()
            if not item:
                continue
        try:
            f = float(item)
        except (TypeError, ValueError):
            raise ConfigError(f"--fractions: '{item}' is not a number") from None
        if not (0.0 < f <= 1.0) or math.isnan(f):
            raise ConfigError(f"--fractions: each fraction must be in (0, 1], got {item}")
        out.append(f)
    if not out:
        raise ConfigError("--fractions: no fraction given")
    return list(dict.fromkeys(out))


def _split_top_level(value: str) -> list[str]:
    """Split on commas that are not inside ``[...]``."""
    parts: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(value):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"--methods: unmatched ']' in '{value}'")
        elif ch == "," and depth == 0:
            parts.append(value[start:i])
            start = i + 1
    if depth != 0:
        raise ConfigError(f"--methods: unmatched '[' in '{value}'")
    parts.append(value[start:])
    return parts


def parse_method_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"famo[update_on=next_batch,beta=0.05]"`` → ``("famo", {"update_on": "next_batch", "beta": 0.05})``.

    A bare name gives no parameters. Values are read as YAML scalars (numbers, booleans, strings).

    Raises:
        ConfigError: malformed brackets or ``key=value`` pairs.
    """
    spec = spec.strip()
    if "[" not in spec:
        if "]" in spec:
            raise ConfigError(f"--methods: unmatched ']' in '{spec}'")
        return spec, {}
    name, _, rest = spec.partition("[")
    if not rest.endswith("]") or "[" in rest[:-1] or "]" in rest[:-1]:
        raise ConfigError(f"--methods: '{spec}' should look like name[key=value,key=value]")
    params: dict[str, Any] = {}
    for item in rest[:-1].split(","):
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise ConfigError(f"--methods: '{item.strip()}' in '{spec}' is not key=value")
        if key in params:
            raise ConfigError(f"--methods: '{key}' is given twice in '{spec}'")
        try:
            params[key] = yaml.safe_load(raw.strip()) if raw.strip() else ""
        except yaml.YAMLError:
            raise ConfigError(f"--methods: cannot read the value of '{key}' in '{spec}'") from None
    return name.strip(), params


def method_dir_name(spec: str) -> str:
    """The run-directory name of a method spec: ``famo[update_on=next_batch]`` → ``famo-update_on=next_batch``."""
    name, params = parse_method_spec(spec)
    if not params:
        return name
    return name + "".join(f"-{k}={v}" for k, v in params.items()).replace("/", "_").replace(" ", "")


def parse_methods(value: str | Sequence[str]) -> list[str]:
    """``"stl,uniform,dwa,famo[update_on=next_batch]"`` → method specs, checked against ``stl``,
    the registered weightings and each weighting's hyperparameter names.

    A spec is a registered name, optionally with hyperparameters in brackets: the same method may
    appear with different hyperparameters (each is its own row of the table).

    Raises:
        ConfigError: an unknown name or hyperparameter (the message lists the available ones).
    """
    from manytask.weighting import available, get

    items = _split_top_level(value) if isinstance(value, str) else list(value)
    methods = list(dict.fromkeys(m.strip() for m in items if m and m.strip()))
    if not methods:
        raise ConfigError("--methods: no method given")
    known = available()
    for m in methods:
        name, params = parse_method_spec(m)
        if name == STL:
            if params:
                raise ConfigError(f"--methods: '{m}': stl takes no hyperparameters")
            continue
        if name not in known:
            raise ConfigError(f"--methods: unknown method '{name}' (available: {', '.join([STL, *known])})")
        accepted = [p for p in inspect.signature(get(name)).parameters if p != "tasks"]
        for key in params:
            if key not in accepted:
                raise ConfigError(f"--methods: '{name}' has no hyperparameter '{key}' "
                                  f"(it takes: {', '.join(accepted) or 'none'})")
    if len({method_dir_name(m) for m in methods}) != len(methods):
        raise ConfigError("--methods: two specs give the same method and hyperparameters")
    return methods


def epochs_for(base_epochs: int, fraction: float, scaling: str = "constant",
               max_epochs: int | None = None) -> int:
    """Epochs to train at a training fraction.

    ``constant``: ``base_epochs``. ``inverse`` (Gong et al.): ``round(base_epochs / fraction)``
    (halves rounded up), at most ``max_epochs`` when given, at least 1.
    """
    if base_epochs < 1:
        raise ConfigError(f"training.epochs must be >= 1, got {base_epochs}")
    if scaling not in EPOCHS_SCALINGS:
        raise ConfigError(f"--epochs-scaling: unknown scaling '{scaling}' (expected {', '.join(EPOCHS_SCALINGS)})")
    if max_epochs is not None and max_epochs < 1:
        raise ConfigError(f"--max-epochs must be >= 1, got {max_epochs}")
    if scaling == "constant":
        epochs = base_epochs
    else:
        epochs = int(math.floor(base_epochs / fraction + 0.5 + 1e-9))
    if max_epochs is not None:
        epochs = min(epochs, max_epochs)
    return max(1, epochs)


# ---------------------------------------------------------------------- plan
@dataclass(frozen=True)
class RunSpec:
    """One training run of a comparison.

    Attributes:
        fraction, seed: the training fraction and the run seed.
        method: ``stl`` or the weighting method's name.
        tasks: the tasks this run trains (one for ``stl``).
        name: the directory name: ``stl-<task>``, ``<method>`` or ``<method>-<key>=<value>…``.
        path: the run directory.
        epochs: epochs to train.
        weighting, weighting_params: the weighting actually used (``uniform`` for STL).
        tsne_epochs: epochs after which the shared representation is saved.
    """

    fraction: float
    seed: int
    method: str
    tasks: tuple[str, ...]
    name: str
    path: Path
    epochs: int
    weighting: str
    weighting_params: Mapping[str, Any] = field(default_factory=dict)
    tsne_epochs: tuple[int, ...] = ()

    def describe(self) -> str:
        return f"fraction {self.fraction:g}, seed {self.seed}, {self.name}"


def _check_hyperparameters(cfg: ExperimentConfig, tasks: Sequence[Task], methods: Sequence[str]) -> None:
    """Build every method of a spec with hyperparameters once, so that a bad value stops the
    comparison before anything is trained or written (for the full training split, through
    ``create_from_train``)."""
    from manytask.experiment import build_data, columns_for, task_splits
    from manytask.weighting import create_from_train

    train = None
    for m in methods:
        name, params = parse_method_spec(m)
        if name == STL or not params:
            continue
        if train is None:
            train = task_splits(build_data(cfg, columns_for(tasks)), tasks).train
        try:
            create_from_train(name, tasks, train, **params)
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f"--methods: '{m}': {exc}") from None


def plan_runs(cfg: ExperimentConfig, methods: Sequence[str], seeds: Sequence[int],
              fractions: Sequence[float], out_dir: str | Path, *,
              epochs_scaling: str = "constant", max_epochs: int | None = None,
              tsne_epochs: Sequence[int] = ()) -> list[RunSpec]:
    """Every run of the comparison, in the order they are trained (fraction, seed, method).

    t-SNE snapshots are taken only in the runs of the first seed at the largest fraction.
    """
    out = Path(out_dir)
    tasks = cfg.build_tasks()
    tsne = tuple(sorted({int(e) for e in tsne_epochs}))
    full = max(fractions)
    if tsne:
        top = epochs_for(cfg.training.epochs, full, epochs_scaling, max_epochs)
        too_late = [e for e in tsne if e < 1 or e > top]
        if too_late:
            raise ConfigError(
                f"--tsne-epochs: epoch {too_late[0]} is outside 1..{top} (the epochs trained at fraction {full:g})"
            )
    _check_hyperparameters(cfg, tasks, methods)
    specs: list[RunSpec] = []
    for f in fractions:
        epochs = epochs_for(cfg.training.epochs, f, epochs_scaling, max_epochs)
        for s in seeds:
            snap = tsne if (f == full and s == seeds[0]) else ()
            base = out / _frac_dir(f) / f"s{s}"
            for m in methods:
                if m == STL:
                    for t in tasks:
                        specs.append(RunSpec(f, s, STL, (t.name,), f"stl-{t.name}", base / f"stl-{t.name}",
                                             epochs, "uniform", {}, snap))
                else:
                    name, params = parse_method_spec(m)
                    if m == cfg.weighting.name:  # a bare name: the config's hyperparameters, if its method
                        params = dict(cfg.weighting.params)
                    d = method_dir_name(m)
                    specs.append(RunSpec(f, s, m, tuple(t.name for t in tasks), d, base / d, epochs, name,
                                         params, snap))
    return specs


# ---------------------------------------------------------------------- one run
@dataclass
class RunRecord:
    """What one run gave: its spec, status and the numbers from its ``summary.json``.

    ``status`` is ``trained`` (trained now), ``reused`` (complete before, read back) or
    ``diverged`` (training loss became NaN/inf; no metrics).
    """

    spec: RunSpec
    status: str
    best_epoch: int | None = None
    epochs_run: int | None = None
    train_seconds: float | None = None
    seconds: float | None = None
    test: dict[str, dict[str, float]] = field(default_factory=dict)
    message: str = ""


def _run_config(cfg: ExperimentConfig, spec: RunSpec) -> ExperimentConfig:
    """The config as the run sees it: a monitor naming a task the run lacks falls back to ``auto``."""
    t = cfg.training
    monitor = t.monitor
    tasks = [x for x in cfg.build_tasks() if x.name in spec.tasks]
    task_part = monitor.partition(".")[0] if "." in monitor else None
    if task_part is not None and task_part not in spec.tasks:
        monitor = "auto"
    if monitor == "mean_accuracy" and not all(x.is_classification for x in tasks):
        monitor = "auto"
    if monitor == t.monitor:
        return cfg
    return cfg.model_copy(update={"training": t.model_copy(update={"monitor": monitor})})


def _expected_record(cfg: ExperimentConfig, spec: RunSpec) -> dict[str, Any]:
    """What ``run_experiment`` writes to ``config.yaml`` for this run (see :func:`_settings`)."""
    rc = _run_config(cfg, spec)
    rec = rc.to_dict()
    rec["data"]["fraction"] = spec.fraction
    rec["run"] = {"tasks": list(spec.tasks), "weighting": spec.weighting,
                  "weighting_params": dict(spec.weighting_params), "seed": spec.seed,
                  "fraction": spec.fraction, "width": rc.model.width, "epochs": spec.epochs}
    return rec


_IGNORED = {("name",), ("output_dir",), ("training", "threads"), ("training", "device"),
            ("training", "epochs"), ("weighting",), ("seed",)}


def _settings(record: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a run's recorded config that change its result (names, output folders,
    threads and device do not; the run section holds the actual epochs, seed, weighting).
    The top-level seed only matters as the data seed, which is compared via ``run`` and ``data``."""
    clean = json.loads(json.dumps(dict(record), default=str))
    for path in _IGNORED:
        cur = clean
        for key in path[:-1]:
            cur = cur.get(key, {}) if isinstance(cur, dict) else {}
        if isinstance(cur, dict):
            cur.pop(path[-1], None)
    clean["data_seed"] = record.get("data", {}).get("seed")
    if clean["data_seed"] is None:
        clean["data_seed"] = record.get("seed")
    return clean


def _first_difference(a: Any, b: Any, where: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            sub = f"{where}.{key}" if where else str(key)
            if key not in a or key not in b:
                return sub
            d = _first_difference(a[key], b[key], sub)
            if d is not None:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return where
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_difference(x, y, f"{where}.{i}")
            if d is not None:
                return d
        return None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return None if float(a) == float(b) or (math.isnan(float(a)) and math.isnan(float(b))) else where
    return None if a == b else where


def _check_same_settings(rd: RunDir, spec: RunSpec, cfg: ExperimentConfig) -> None:
    if not rd.has("config.yaml"):
        return
    found = _settings(rd.read_config())
    wanted = _settings(_expected_record(cfg, spec))
    diff = _first_difference(wanted, found)
    if diff is not None:
        raise ConfigError(
            f"{rd.path}: this finished run was made with other settings ({diff} differs); "
            "use another --out or delete that run directory"
        )


def _record_from_summary(spec: RunSpec, summary: Mapping[str, Any], status: str) -> RunRecord:
    test = {t: {m: (math.nan if v is None else float(v)) for m, v in ms.items()}
            for t, ms in (summary.get("test") or {}).items()}
    return RunRecord(spec=spec, status=status, best_epoch=summary.get("best_epoch"),
                     epochs_run=summary.get("epochs_run"), train_seconds=summary.get("train_seconds"),
                     seconds=summary.get("seconds"), test=test)


def _snapshots_present(spec: RunSpec) -> bool:
    from manytask.evaluation.embeddings import embedding_path

    return all(embedding_path(spec.path, e).is_file() for e in spec.tsne_epochs)


def default_tsne_label(cfg: ExperimentConfig) -> str:
    """The data column that colours t-SNE plots: the first multiclass task's (e.g. ``left``)."""
    tasks = cfg.build_tasks()
    for kinds in (("multiclass",), ("binary",)):
        for t in tasks:
            if t.kind in kinds:
                return t.column
    raise ConfigError("--tsne-epochs: no multiclass or binary task to colour the t-SNE plot by")


def _recorder(cfg: ExperimentConfig, spec: RunSpec, samples: int, label: str) -> Any:
    """An :class:`EmbeddingRecorder` over the first ``samples`` validation samples."""
    from manytask.evaluation.embeddings import EmbeddingRecorder, fixed_subset
    from manytask.experiment import build_data, columns_for

    run_cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"fraction": spec.fraction})})
    tasks = [t for t in cfg.build_tasks() if t.name in spec.tasks]
    splits = build_data(run_cfg, list(dict.fromkeys([*columns_for(tasks), label])))
    sub, index = fixed_subset(splits.val, samples)
    return EmbeddingRecorder(sub, sub.targets[label], spec.tsne_epochs, label_name=label, index=index)


def run_one(cfg: ExperimentConfig, spec: RunSpec, *, progress: bool = False, tsne_samples: int = 1000,
            tsne_label: str | None = None) -> RunRecord:
    """Train one run of a comparison, or read it back if its RunDir is already complete."""
    from manytask.experiment import run_experiment

    rd = RunDir(spec.path)
    marker = rd.file(DIVERGED_FILE)
    if rd.is_complete() and _snapshots_present(spec):
        _check_same_settings(rd, spec, cfg)
        return _record_from_summary(spec, rd.summary() or {}, "reused")
    if marker.is_file() and not rd.is_complete():
        _check_same_settings(rd, spec, cfg)
        return RunRecord(spec=spec, status="diverged", message=json.loads(marker.read_text()).get("error", ""))
    for name in ("summary.json", DIVERGED_FILE):  # a half-done retrain never leaves a stale summary
        if rd.has(name):
            rd.file(name).unlink()
    callbacks = []
    if spec.tsne_epochs:
        callbacks.append(_recorder(cfg, spec, tsne_samples, tsne_label or default_tsne_label(cfg)))
    try:
        run_experiment(_run_config(cfg, spec), rd, task_names=list(spec.tasks), weighting=spec.weighting,
                       weighting_params=dict(spec.weighting_params), seed=spec.seed, fraction=spec.fraction,
                       epochs=spec.epochs, progress=progress, callbacks=callbacks)
    except FloatingPointError as err:
        atomic_write_text(marker, json.dumps({"status": "diverged", "error": str(err)}))
        return RunRecord(spec=spec, status="diverged", message=str(err))
    return _record_from_summary(spec, rd.summary() or {}, "trained")


def _worker(cfg_dict: dict[str, Any], spec: RunSpec, tsne_samples: int, tsne_label: str | None,
            threads: int) -> RunRecord:
    """Process-pool entry point: one run in a fresh process (torch threads limited)."""
    import torch

    torch.set_num_threads(threads)
    cfg = parse_config(cfg_dict, where="compare")
    return run_one(cfg, spec, progress=False, tsne_samples=tsne_samples, tsne_label=tsne_label)


# ---------------------------------------------------------------------- aggregation
@dataclass(frozen=True)
class SummaryCell:
    """Mean and sample standard deviation (ddof=1; NaN for one seed) of one task's test
    primary metric for one approach at one fraction, over ``n`` seeds."""

    fraction: float
    method: str
    task: str
    metric: str
    mean: float
    std: float
    n: int
    higher_is_better: bool


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample std with ddof=1, n) of the finite values; std is NaN when n < 2."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    n = int(v.size)
    if n == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), (float(v.std(ddof=1)) if n >= 2 else math.nan), n


def _value(record: RunRecord, task: Task) -> float:
    return float(record.test.get(task.name, {}).get(task.primary_metric, math.nan))


def aggregate(records: Sequence[RunRecord], tasks: Sequence[Task], methods: Sequence[str],
              fractions: Sequence[float]) -> list[SummaryCell]:
    """Mean ± std over seeds of every (fraction, approach, task); diverged runs are left out."""
    cells: list[SummaryCell] = []
    for f in fractions:
        for m in methods:
            for t in tasks:
                vals = [_value(r, t) for r in records
                        if r.spec.fraction == f and r.spec.method == m and t.name in r.spec.tasks
                        and r.status != "diverged"]
                mean, std, n = mean_std(vals)
                cells.append(SummaryCell(f, m, t.name, t.primary_metric, mean, std, n, t.higher_is_better))
    return cells


def delta_m_table(cells: Sequence[SummaryCell], tasks: Sequence[Task], methods: Sequence[str],
                  fractions: Sequence[float]) -> dict[str, dict[float, float]]:
    """Δm (percent, positive = better than STL) of each multi-task method at each fraction,
    from the seed means; empty without ``stl`` among the methods."""
    if STL not in methods:
        return {}
    index = {(c.fraction, c.method, c.task): c.mean for c in cells}
    higher = {t.name: t.higher_is_better for t in tasks}
    out: dict[str, dict[float, float]] = {}
    for m in methods:
        if m == STL:
            continue
        out[m] = {}
        for f in fractions:
            base = {t.name: index[(f, STL, t.name)] for t in tasks}
            mine = {t.name: index[(f, m, t.name)] for t in tasks}
            try:
                out[m][f] = delta_m(mine, base, higher)
            except ConfigError:  # a zero baseline
                out[m][f] = math.nan
    return out


def mean_seconds(records: Sequence[RunRecord], method: str, fraction: float | None = None) -> float:
    """Mean training time per run (``train_seconds`` of the summary: the training passes,
    without evaluation) of an approach, over seeds (and fractions when ``fraction`` is None)."""
    vals = [r.train_seconds for r in records if r.spec.method == method and r.train_seconds is not None
            and (fraction is None or r.spec.fraction == fraction)]
    return float(np.mean(vals)) if vals else math.nan


# ---------------------------------------------------------------------- table
def _percent(metric: str) -> bool:
    """Whether ``metric`` is shown as a percentage (:data:`manytask.tasks.METRICS`)."""
    spec = METRICS.get(metric)
    return spec is not None and spec.percent


def _decimals(value: float) -> int:
    """Decimals that show ``value`` with 4 significant digits (at least 2)."""
    if value == 0 or not math.isfinite(value):
        return 4
    return max(2, 3 - int(math.floor(math.log10(abs(value)))))


def _fmt(value: float, metric: str, digits: int | None = None) -> str:
    if value is None or math.isnan(value):
        return "—"
    if _percent(metric):
        return f"{100 * value:.2f}"
    return f"{value:.{_decimals(value) if digits is None else digits}f}"


def _metric_label(metric: str) -> str:
    spec = METRICS.get(metric)
    return spec.label if spec is not None else metric


def _cell_text(c: SummaryCell, seeds: int) -> str:
    if c.n == 0:
        return "—"
    digits = None if _percent(c.metric) else _decimals(c.mean)
    text = _fmt(c.mean, c.metric, digits)
    if not math.isnan(c.std):
        text += f" ± {_fmt(c.std, c.metric, digits)}"
    if c.n < seeds:
        text += f" (n={c.n})"
    return text


def format_table(cells: Sequence[SummaryCell], deltas: Mapping[str, Mapping[float, float]],
                 tasks: Sequence[Task], methods: Sequence[str], fractions: Sequence[float], seeds: int,
                 seconds: Mapping[str, float] | None = None, title: str | None = None) -> str:
    """The markdown table of Gong et al. (Tables 1–2): rows = approaches, columns = task ×
    fraction (mean ± std over seeds), then Δm per fraction and the mean training time per run."""
    from manytask.reporting.tables import markdown_table

    index = {(c.fraction, c.method, c.task): c for c in cells}
    header = ["approach"]
    header += [f"{t.name} {_metric_label(t.primary_metric)} @{_frac_label(f)}" for t in tasks for f in fractions]
    show_dm = bool(deltas)
    if show_dm:
        header += [f"Δm % @{_frac_label(f)}" for f in fractions]
    if seconds is not None:
        header.append("train s/run")
    rows = []
    for m in methods:
        row = [display_name(m)]
        row += [_cell_text(index[(f, m, t.name)], seeds) for t in tasks for f in fractions]
        if show_dm:
            if m == STL:
                row += ["0 (ref)"] * len(fractions)
            else:
                row += ["—" if math.isnan(deltas[m][f]) else f"{deltas[m][f]:+.2f}" for f in fractions]
        if seconds is not None:
            s = seconds.get(m, math.nan)
            row.append("—" if math.isnan(s) else f"{s:.1f}")
        rows.append(row)
    return markdown_table(header, rows, title)


# ---------------------------------------------------------------------- outputs
def _csv_value(x: Any) -> Any:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return x


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows:
            w.writerow([_csv_value(v) for v in r])
    os.replace(tmp, path)


RUNS_HEADER = ("fraction", "seed", "method", "run", "task", "metric", "value", "best_epoch", "epochs_run",
               "train_seconds", "seconds", "status", "run_dir")
SUMMARY_HEADER = ("fraction", "method", "task", "metric", "mean", "std", "n", "mean_train_seconds")


@dataclass
class CompareResult:
    """Everything a comparison produced (see the module docstring for the files)."""

    out_dir: Path
    records: list[RunRecord]
    cells: list[SummaryCell]
    delta_m: dict[str, dict[float, float]]
    mean_train_seconds: dict[str, float]
    table: str
    files: dict[str, Path]
    epochs: dict[float, int]


def _write_outputs(cfg: ExperimentConfig, out: Path, records: Sequence[RunRecord], cells: Sequence[SummaryCell],
                   deltas: Mapping[str, Mapping[float, float]], seconds: Mapping[str, float], table: str,
                   methods: Sequence[str], seeds: Sequence[int], fractions: Sequence[float],
                   epochs: Mapping[float, int], settings: Mapping[str, Any]) -> dict[str, Path]:
    from manytask.reporting.plots import plot_metric_vs_fraction

    tasks = cfg.build_tasks()
    files: dict[str, Path] = {}
    files["table"] = out / "table.md"
    notes = [
        "",
        f"Cells: test {', '.join(sorted({_metric_label(t.primary_metric) for t in tasks}))} at the epoch with the best "
        f"validation score, mean ± sample std (ddof=1) over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}); "
        "(n=k) marks cells where runs diverged.",
        "Δm: mean over tasks of the relative difference to single-task learning, in %, signed so that "
        "positive = better than STL (Maninis et al. 2019).",
        "Epochs per fraction: " + ", ".join(f"{_frac_label(f)}: {epochs[f]}" for f in fractions)
        + f" ({settings['epochs_scaling']} scaling). train s/run: mean training time of one run.",
    ]
    atomic_write_text(files["table"], table + "\n" + "\n".join(notes) + "\n")

    by_task = {t.name: t for t in tasks}
    rows = []
    for r in records:
        for name in r.spec.tasks:
            t = by_task[name]
            rows.append([r.spec.fraction, r.spec.seed, r.spec.method, r.spec.name, name, t.primary_metric,
                         _value(r, t) if r.status != "diverged" else math.nan, r.best_epoch, r.epochs_run,
                         r.train_seconds, r.seconds, r.status, str(r.spec.path)])
    files["runs_csv"] = out / "runs.csv"
    _write_csv(files["runs_csv"], RUNS_HEADER, rows)

    srows: list[list[Any]] = [[c.fraction, c.method, c.task, c.metric, c.mean, c.std, c.n,
                               mean_seconds(records, c.method, c.fraction)] for c in cells]
    for m, per in deltas.items():
        for f, v in per.items():
            n = min((c.n for c in cells if c.fraction == f and c.method in (m, STL)), default=0)
            srows.append([f, m, "(all)", "delta_m_percent", v, math.nan, n, mean_seconds(records, m, f)])
    files["summary_csv"] = out / "summary.csv"
    _write_csv(files["summary_csv"], SUMMARY_HEADER, srows)

    series: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    ylabels: dict[str, str] = {}
    for t in tasks:
        scale = 100.0 if _percent(t.primary_metric) else 1.0
        ylabels[t.name] = f"test {_metric_label(t.primary_metric)}"
        series[t.name] = {}
        for m in methods:
            pts = [(c.fraction, c.mean * scale, c.std * scale) for c in cells if c.method == m and c.task == t.name]
            series[t.name][display_name(m)] = pts
    files["plot"] = out / "metrics.png"
    plot_metric_vs_fraction(series, files["plot"], ylabels=ylabels,
                            title=f"{cfg.name}: mean ± std over {len(seeds)} seed(s)")

    files["json"] = out / "compare.json"
    doc = {
        "name": cfg.name,
        "config": cfg.to_dict(),
        "methods": list(methods),
        "seeds": list(seeds),
        "fractions": list(fractions),
        "epochs": {f"{f:g}": e for f, e in epochs.items()},
        **dict(settings),
        "std_ddof": 1,
        "summary": [c.__dict__ for c in cells],
        "delta_m_percent": {m: {f"{f:g}": v for f, v in per.items()} for m, per in deltas.items()},
        "mean_train_seconds_per_run": dict(seconds),
        "runs": [{"fraction": r.spec.fraction, "seed": r.spec.seed, "method": r.spec.method, "run": r.spec.name,
                  "tasks": list(r.spec.tasks), "epochs": r.spec.epochs, "status": r.status,
                  "best_epoch": r.best_epoch, "epochs_run": r.epochs_run, "train_seconds": r.train_seconds,
                  "seconds": r.seconds, "test": r.test, "message": r.message, "run_dir": str(r.spec.path)}
                 for r in records],
        "table_markdown": table,
        "files": {k: str(v) for k, v in files.items()},
    }
    atomic_write_text(files["json"], json.dumps(to_jsonable(doc), indent=2))
    return files


def _tsne_plot(cfg: ExperimentConfig, specs: Sequence[RunSpec], records: Sequence[RunRecord], out: Path,
               label: str) -> Path | None:
    from manytask.evaluation.embeddings import tsne_grid
    from manytask.reporting.plots import plot_tsne_grid

    chosen = [s for s in specs if s.tsne_epochs]
    if not chosen:
        return None
    run_dirs = {(display_name(STL) + f" ({s.tasks[0]})" if s.method == STL else display_name(s.method)): s.path
                for s in chosen}
    grid = tsne_grid(run_dirs, chosen[0].tsne_epochs, seed=0)
    path = out / "tsne.png"
    return plot_tsne_grid(grid, path, label_name=f"{label} digit" if cfg.data.kind == "multimnist" else label,
                          title=f"{cfg.name}: t-SNE of the shared representation "
                                f"(fraction {chosen[0].fraction:g}, seed {chosen[0].seed})")


# ---------------------------------------------------------------------- driver
def compare(cfg: ExperimentConfig, methods: Sequence[str] | str, seeds: Sequence[int] | int | str,
            fractions: Sequence[float] | str, out_dir: str | Path, *, epochs_scaling: str = "constant",
            max_epochs: int | None = None, tsne_epochs: Sequence[int] | str = (), tsne_samples: int = 1000,
            tsne_label: str | None = None, jobs: int = 1, progress: bool = True,
            log: Log | None = None) -> CompareResult:
    """Run (or resume) a comparison and write its table, CSVs, JSON and plots into ``out_dir``.

    Args:
        cfg: the experiment config (data, tasks, model, training; ``training.epochs`` is the
            epoch count at fraction 1).
        methods: ``stl`` and/or registered weighting names (``"stl,uniform,dwa"`` or a list).
        seeds: a count (``10`` → 0..9) or a list of seeds.
        fractions: training-data fractions in (0, 1].
        out_dir: the comparison directory (runs live in ``f{f}/s{s}/{run}`` below it).
        epochs_scaling: ``constant`` or ``inverse`` (Gong et al.: half the data, twice the
            epochs); see :func:`epochs_for`.
        max_epochs: cap on the epochs of ``inverse`` scaling.
        tsne_epochs: epochs at which to save the shared representation (first seed, largest
            fraction only) and draw ``tsne.png``.
        tsne_samples: how many validation samples to embed (the first ones of the split).
        tsne_label: the data column that colours the t-SNE plot (default: the first
            multiclass task's column).
        jobs: runs trained at once in separate processes (each with ``training.threads`` or
            1 torch thread).
        progress: progress bars (only with ``jobs == 1``).
        log: called with one line per run; default: print to stderr when ``progress`` is on,
            nothing otherwise.

    Returns:
        A :class:`CompareResult`.
    """
    if log is None:
        log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda msg: None)
    method_list = parse_methods(methods)
    seed_list = parse_seeds(seeds)
    fraction_list = parse_fractions(fractions)
    tsne = parse_int_list(tsne_epochs, "--tsne-epochs") if isinstance(tsne_epochs, str) else [int(e) for e in tsne_epochs]
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if tsne:
        if tsne_samples < 4:
            raise ConfigError(f"--tsne-samples must be >= 4, got {tsne_samples}")
        tsne_label = tsne_label or default_tsne_label(cfg)
        from manytask.data.multimnist import MULTIMNIST_COLUMNS

        if cfg.data.kind == "multimnist" and tsne_label not in MULTIMNIST_COLUMNS:
            raise ConfigError(f"--tsne-label: unknown column '{tsne_label}'")
    tasks = cfg.build_tasks()
    out = Path(out_dir)
    specs = plan_runs(cfg, method_list, seed_list, fraction_list, out, epochs_scaling=epochs_scaling,
                      max_epochs=max_epochs, tsne_epochs=tsne)
    epochs = {f: epochs_for(cfg.training.epochs, f, epochs_scaling, max_epochs) for f in fraction_list}
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    records: list[RunRecord] = []
    total = len(specs)

    def report(i: int, rec: RunRecord, secs: float) -> None:
        what = {"trained": f"trained in {secs:.1f} s", "reused": "complete, reused",
                "diverged": f"diverged ({rec.message})"}[rec.status]
        log(f"[{i}/{total}] {rec.spec.describe()}: {what}")

    if jobs == 1:
        for i, spec in enumerate(specs, 1):
            ts = time.perf_counter()
            rec = run_one(cfg, spec, progress=progress, tsne_samples=tsne_samples, tsne_label=tsne_label)
            records.append(rec)
            report(i, rec, time.perf_counter() - ts)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        threads = cfg.training.threads or 1
        done: dict[int, RunRecord] = {}
        pending: list[tuple[int, RunSpec]] = []
        for i, spec in enumerate(specs):  # reused runs are read here; only the rest go to workers
            rd = RunDir(spec.path)
            if rd.is_complete() and _snapshots_present(spec):
                done[i] = run_one(cfg, spec, tsne_samples=tsne_samples, tsne_label=tsne_label)
                report(len(done), done[i], 0.0)
            else:
                pending.append((i, spec))
        if pending:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
                started = {pool.submit(_worker, cfg.to_dict(), spec, tsne_samples, tsne_label, threads): (i, time.perf_counter())
                           for i, spec in pending}
                from concurrent.futures import as_completed

                for fut in as_completed(started):
                    i, ts = started[fut]
                    done[i] = fut.result()
                    report(len(done), done[i], done[i].seconds or (time.perf_counter() - ts))
        records = [done[i] for i in range(len(specs))]
    wall = time.perf_counter() - t0

    cells = aggregate(records, tasks, method_list, fraction_list)
    deltas = delta_m_table(cells, tasks, method_list, fraction_list)
    seconds = {m: mean_seconds(records, m) for m in method_list}
    title = (f"{cfg.name}: test metrics, mean ± std over {len(seed_list)} seed(s)")
    table = format_table(cells, deltas, tasks, method_list, fraction_list, len(seed_list), seconds, title)
    settings = {"epochs_scaling": epochs_scaling, "max_epochs": max_epochs, "base_epochs": cfg.training.epochs,
                "tsne_epochs": tsne, "tsne_samples": tsne_samples if tsne else None, "tsne_label": tsne_label,
                "wall_seconds": wall}
    files = _write_outputs(cfg, out, records, cells, deltas, seconds, table, method_list, seed_list,
                           fraction_list, epochs, settings)
    if tsne:
        log("t-SNE of the saved representations ...")
        p = _tsne_plot(cfg, specs, records, out, tsne_label or "label")
        if p is not None:
            files["tsne"] = p
    return CompareResult(out_dir=out, records=records, cells=cells, delta_m=deltas, mean_train_seconds=seconds,
                         table=table, files=files, epochs=epochs)
