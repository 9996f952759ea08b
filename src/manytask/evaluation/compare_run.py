"""One run of a comparison: train it, or read it back when its RunDir is already finished.

A finished run is reused only if it was made with the same settings (:func:`check_same_settings`);
a run whose training loss became NaN or infinite leaves ``diverged.json`` and is not retried.
:func:`run_compare_job` is the module-level entry point the shared runner
(:mod:`manytask.runner`) calls, in this process or in a pool / Ray worker.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from manytask.atomic import atomic_write_json
from manytask.config import ExperimentConfig, parse_config
from manytask.errors import ConfigError
from manytask.evaluation.records import DIVERGED, REUSED, TRAINED, RunRecord, RunSpec
from manytask.training.resume import config_differences
from manytask.training.rundir import RunDir

__all__ = ["DIVERGED_FILE", "CompareJob", "default_tsne_label", "is_settled", "run_compare_job", "run_one"]

DIVERGED_FILE = "diverged.json"


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


def _check_same_settings(rd: RunDir, spec: RunSpec, cfg: ExperimentConfig) -> None:
    if not rd.has("config.yaml"):
        return
    found = _settings(rd.read_config())
    wanted = _settings(_expected_record(cfg, spec))
    diffs = config_differences(found, wanted, ignore_resumable=False)
    if diffs:
        raise ConfigError(
            f"{rd.path}: this finished run was made with other settings ({diffs[0][0]} differs); "
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


def is_settled(spec: RunSpec) -> bool:
    """True when :func:`run_one` would only read the run back: it is complete (with its t-SNE
    snapshots), or it diverged before."""
    rd = RunDir(spec.path)
    if rd.is_complete():
        return _snapshots_present(spec)
    return rd.file(DIVERGED_FILE).is_file()


def run_one(cfg: ExperimentConfig, spec: RunSpec, *, progress: bool = False, tsne_samples: int = 1000,
            tsne_label: str | None = None) -> RunRecord:
    """Train one run of a comparison, or read it back if its RunDir is already complete."""
    from manytask.experiment import run_experiment

    rd = RunDir(spec.path)
    marker = rd.file(DIVERGED_FILE)
    if rd.is_complete() and _snapshots_present(spec):
        _check_same_settings(rd, spec, cfg)
        return _record_from_summary(spec, rd.summary() or {}, REUSED)
    if marker.is_file() and not rd.is_complete():
        _check_same_settings(rd, spec, cfg)
        return RunRecord(spec=spec, status=DIVERGED, message=json.loads(marker.read_text()).get("error", ""))
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
        atomic_write_json(marker, {"status": DIVERGED, "error": str(err)})
        return RunRecord(spec=spec, status=DIVERGED, message=str(err))
    return _record_from_summary(spec, rd.summary() or {}, TRAINED)


@dataclass(frozen=True)
class CompareJob:
    """One run of a comparison as a job for the shared runner.

    Attributes:
        config: the experiment config as a plain mapping (``ExperimentConfig.to_dict()``).
        spec: the run (its path made absolute, so that a worker in another folder finds it).
        tsne_samples, tsne_label: the t-SNE snapshot settings.
        threads: torch threads while training (``None``: the config's, or unchanged).
        progress: progress bars (only when training in this process).
    """

    config: dict[str, Any]
    spec: RunSpec
    tsne_samples: int = 1000
    tsne_label: str | None = None
    threads: int | None = None
    progress: bool = False

    @property
    def label(self) -> str:
        """How errors name the job."""
        return f"run {self.spec.describe()}"

    @classmethod
    def of(cls, cfg: ExperimentConfig, spec: RunSpec, **settings: Any) -> CompareJob:
        return cls(cfg.to_dict(), replace(spec, path=Path(spec.path).resolve()), **settings)


def run_compare_job(job: CompareJob) -> RunRecord:
    """Train (or read back) one run of a comparison: the function the runner calls."""
    cfg = parse_config(job.config, where="compare")
    return run_one(cfg, job.spec, progress=job.progress, tsne_samples=job.tsne_samples, tsne_label=job.tsne_label)
