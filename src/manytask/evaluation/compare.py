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

Runs are independent jobs for the shared runner (:mod:`manytask.runner`): ``executor``
``sequential`` (default), ``pool`` (``workers`` processes) or ``ray``; ``jobs=N`` is short for
the pool with N workers. Every run carries its own seed and the parent alone writes the
outputs, so the numbers do not depend on the executor.

This module plans the runs and drives them; the pieces live beside it:
:mod:`~manytask.evaluation.method_spec` (``--methods`` specs), :mod:`~manytask.cli_args`
(seeds, fractions), :mod:`~manytask.evaluation.compare_run` (one run, resume checks),
:mod:`~manytask.evaluation.aggregate` (mean ± std, Δm) and
:mod:`manytask.reporting.compare_report` (the files).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from manytask.cli_args import parse_fractions, parse_int_list, parse_seeds
from manytask.config import ExperimentConfig
from manytask.errors import ConfigError
from manytask.evaluation.aggregate import (
    SummaryCell,
    aggregate,
    delta_m_table,
    mean_seconds,
)
from manytask.evaluation.compare_run import (
    CompareJob,
    default_tsne_label,
    is_settled,
    run_compare_job,
    run_one,
)
from manytask.evaluation.method_spec import STL, MethodSpec, parse_methods
from manytask.evaluation.records import REUSED, TRAINED, RunRecord, RunSpec
from manytask.runner import EXECUTORS, Executor, make_executor
from manytask.tasks import Task

if TYPE_CHECKING:
    from manytask.reporting.compare_report import CompareReport

__all__ = [
    "EPOCHS_SCALINGS",
    "CompareResult",
    "compare",
    "epochs_for",
    "plan_runs",
    "resolve_executor",
]

EpochsScaling = Literal["constant", "inverse"]
EPOCHS_SCALINGS: tuple[str, ...] = ("constant", "inverse")

Log = Callable[[str], None]


def _frac_dir(fraction: float) -> str:
    return f"f{fraction:g}"


# ---------------------------------------------------------------------- plan
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


def _check_hyperparameters(cfg: ExperimentConfig, tasks: Sequence[Task], methods: Sequence[str]) -> None:
    """Build every method of a spec with hyperparameters once, for the full training split
    (``create_from_train``), so that a bad value stops the comparison before anything is
    trained or written."""
    from manytask.experiment import build_data, columns_for, task_splits
    from manytask.weighting import create_from_train

    train = None
    for m in methods:
        spec = MethodSpec.parse(m)
        if spec.is_stl or not spec.params:
            continue
        if train is None:
            train = task_splits(build_data(cfg, columns_for(tasks)), tasks).train
        try:
            create_from_train(spec.name, tasks, train, **dict(spec.params))
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f"--methods: '{m}': {exc}") from None


def _runs_of(cfg: ExperimentConfig, tasks: Sequence[Task], method: str, fraction: float, seed: int,
             base: Path, epochs: int, snap: tuple[int, ...]) -> list[RunSpec]:
    """The runs of one approach at one fraction and seed: one per task for ``stl``, else one."""
    spec = MethodSpec.parse(method)
    if spec.is_stl:
        return [RunSpec(fraction, seed, STL, (t.name,), f"stl-{t.name}", base / f"stl-{t.name}", epochs,
                        "uniform", {}, snap) for t in tasks]
    # a bare name takes the config's hyperparameters when it is the config's method
    params = dict(cfg.weighting.params) if method == cfg.weighting.name else dict(spec.params)
    return [RunSpec(fraction, seed, method, tuple(t.name for t in tasks), spec.dir_name, base / spec.dir_name,
                    epochs, spec.name, params, snap)]


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
            for m in methods:
                specs += _runs_of(cfg, tasks, m, f, s, out / _frac_dir(f) / f"s{s}", epochs, snap)
    return specs


# ---------------------------------------------------------------------- running
def resolve_executor(executor: str | Executor | None, jobs: int = 1,
                     workers: int | None = None) -> tuple[str | Executor, int]:
    """The executor and worker count of a comparison from ``--executor``, ``--jobs`` and
    ``--workers``: ``jobs=N`` (N > 1) is short for ``executor="pool", workers=N``; without
    either, runs train one after the other here (``sequential``). Default workers: 2.

    Raises:
        ConfigError: an unknown executor, a count below 1, or ``jobs`` combined with another
            executor or another worker count.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if isinstance(executor, str) and executor not in EXECUTORS:
        raise ConfigError(f"--executor: unknown executor '{executor}' (expected one of {', '.join(EXECUTORS)})")
    if jobs == 1:
        return executor or "sequential", workers or 2
    name = executor.name if isinstance(executor, Executor) else executor
    if name not in (None, "pool"):
        raise ConfigError(f"--jobs {jobs} is short for --executor pool --workers {jobs}; "
                          f"it cannot be combined with --executor {name}")
    if workers is not None and workers != jobs:
        raise ConfigError(f"--jobs {jobs} is short for --workers {jobs}; "
                          f"it cannot be combined with --workers {workers}")
    return executor or "pool", jobs


def _describe(rec: RunRecord) -> str:
    if rec.status == TRAINED:
        return f"trained in {rec.seconds or 0.0:.1f} s"
    return "complete, reused" if rec.status == REUSED else f"diverged ({rec.message})"


@dataclass(frozen=True)
class _RunSettings:
    """How the runs of one comparison are executed."""

    executor: str | Executor
    workers: int
    ray_address: str | None
    tsne_samples: int
    tsne_label: str | None
    progress: bool


def _train_runs(cfg: ExperimentConfig, specs: Sequence[RunSpec], how: _RunSettings, log: Log) -> list[RunRecord]:
    """Every run's record, in plan order. Runs that are only read back (finished or diverged
    before) are read here; the others go to the executor."""
    done: dict[int, RunRecord] = {}

    def note(i: int, rec: RunRecord) -> None:
        done[i] = rec
        log(f"[{len(done)}/{len(specs)}] {rec.spec.describe()}: {_describe(rec)}")

    pending = []
    for i, spec in enumerate(specs):
        if is_settled(spec):
            note(i, run_one(cfg, spec, tsne_samples=how.tsne_samples, tsne_label=how.tsne_label))
        else:
            pending.append(i)
    if pending:
        threads = cfg.training.threads
        ex = make_executor(how.executor, workers=how.workers, ray_address=how.ray_address, threads=threads)
        here = how.progress and ex.name == "sequential"
        jobs = [CompareJob.of(cfg, specs[i], tsne_samples=how.tsne_samples, tsne_label=how.tsne_label,
                              threads=threads, progress=here) for i in pending]
        try:
            for k, rec in ex.run(run_compare_job, jobs):
                note(pending[k], replace(rec, spec=specs[pending[k]]))  # the path as planned
        finally:
            if ex is not how.executor:
                ex.close()
    return [done[i] for i in range(len(specs))]


# ---------------------------------------------------------------------- driver
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


def _tsne_settings(cfg: ExperimentConfig, tsne: Sequence[int], samples: int, label: str | None) -> str | None:
    """The column that colours the t-SNE plot (checked), or ``label`` as given without t-SNE."""
    if not tsne:
        return label
    if samples < 4:
        raise ConfigError(f"--tsne-samples must be >= 4, got {samples}")
    label = label or default_tsne_label(cfg)
    from manytask.data.multimnist import MULTIMNIST_COLUMNS

    if cfg.data.kind == "multimnist" and label not in MULTIMNIST_COLUMNS:
        raise ConfigError(f"--tsne-label: unknown column '{label}'")
    return label


def _summarise(cfg: ExperimentConfig, records: list[RunRecord], methods: Sequence[str], seeds: Sequence[int],
               fractions: Sequence[float], epochs: dict[float, int], settings: dict[str, Any]) -> CompareReport:
    from manytask.reporting.compare_report import CompareReport, format_table

    tasks = cfg.build_tasks()
    cells = aggregate(records, tasks, methods, fractions)
    deltas = delta_m_table(cells, tasks, methods, fractions)
    seconds = {m: mean_seconds(records, m) for m in methods}
    title = f"{cfg.name}: test metrics, mean ± std over {len(seeds)} seed(s)"
    table = format_table(cells, deltas, tasks, methods, fractions, len(seeds), seconds, title)
    return CompareReport(cfg, methods, seeds, fractions, epochs, records, cells, deltas, seconds, table, settings)


def compare(cfg: ExperimentConfig, methods: Sequence[str] | str, seeds: Sequence[int] | int | str,
            fractions: Sequence[float] | str, out_dir: str | Path, *, epochs_scaling: str = "constant",
            max_epochs: int | None = None, tsne_epochs: Sequence[int] | str = (), tsne_samples: int = 1000,
            tsne_label: str | None = None, jobs: int = 1, executor: str | Executor | None = None,
            workers: int | None = None, ray_address: str | None = None, progress: bool = True,
            log: Log | None = None) -> CompareResult:
    """Run (or resume) a comparison and write its table, CSVs, JSON and plots into ``out_dir``.

    Args:
        cfg: the experiment config (data, tasks, model, training; ``training.epochs`` is the
            epoch count at fraction 1).
        methods: ``stl`` and/or method specs (``"stl,uniform,famo[beta=0.1]"`` or a list).
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
        jobs: N > 1 is short for ``executor="pool", workers=N``.
        executor: ``sequential`` (default), ``pool``, ``ray`` or an
            :class:`~manytask.runner.Executor` (not closed here). Each run trains with
            ``training.threads`` torch threads (one in workers when unset).
        workers: pool processes / CPUs of a local Ray (default 2).
        ray_address: an existing Ray cluster (``--out`` must then be on a shared file system).
        progress: progress bars (sequential executor only) and one line per run.
        log: called with one line per run; default: print to stderr when ``progress`` is on,
            nothing otherwise.

    Returns:
        A :class:`CompareResult`.
    """
    if log is None:
        log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda msg: None)
    method_list, seed_list = parse_methods(methods), parse_seeds(seeds)
    fraction_list = parse_fractions(fractions)
    tsne = parse_int_list(tsne_epochs, "--tsne-epochs")
    chosen, n_workers = resolve_executor(executor, jobs, workers)
    tsne_label = _tsne_settings(cfg, tsne, tsne_samples, tsne_label)
    out = Path(out_dir)
    specs = plan_runs(cfg, method_list, seed_list, fraction_list, out, epochs_scaling=epochs_scaling,
                      max_epochs=max_epochs, tsne_epochs=tsne)
    epochs = {f: epochs_for(cfg.training.epochs, f, epochs_scaling, max_epochs) for f in fraction_list}
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    how = _RunSettings(chosen, n_workers, ray_address, tsne_samples, tsne_label, progress)
    records = _train_runs(cfg, specs, how, log)
    settings = {"epochs_scaling": epochs_scaling, "max_epochs": max_epochs, "base_epochs": cfg.training.epochs,
                "tsne_epochs": tsne, "tsne_samples": tsne_samples if tsne else None, "tsne_label": tsne_label,
                "wall_seconds": time.perf_counter() - t0}
    from manytask.reporting.compare_report import plot_tsne, write_compare_report

    report = _summarise(cfg, records, method_list, seed_list, fraction_list, epochs, settings)
    files = write_compare_report(report, out)
    if tsne:
        log("t-SNE of the saved representations ...")
        p = plot_tsne(cfg, specs, out, tsne_label or "label")
        if p is not None:
            files["tsne"] = p
    return CompareResult(out_dir=out, records=records, cells=report.cells, delta_m=dict(report.deltas),
                         mean_train_seconds=dict(report.seconds), table=report.table, files=files, epochs=epochs)
