"""Candidate networks for task grouping: which to train, what they cost, and training them.

Standley et al. (ICML 2020, sec. 5.1) train one network per non-empty subset of the ``n``
tasks at full size (``2^n - 1`` networks) plus one half-size network per task (``n`` more):
36 networks for 5 tasks. A :class:`CandidateSpec` is one of them: a task subset and a trunk
width multiplier, with its measured inference cost.

Cost (Standley's SNT unit)
--------------------------
``cost = MACs(trunk at width w) / MACs(trunk at width 1)``, where ``MACs`` is
:func:`manytask.models.multiply_adds` of the *trunk* (shared encoder) for one example. The task
heads are **not** counted: Standley et al. define the network cost by its encoder (a 5-task
network with five decoders costs 1 SNT, and the half-size single-task networks keep a standard
decoder), so a network's cost does not depend on how many tasks it predicts.

The half-size width is found by measurement, not assumed: multiply-adds do not scale linearly
with a width multiplier (an MLP layer between two scaled layers scales with ``w^2``, the first
layer with ``w``), so :func:`width_for_cost` bisects on the measured multiply-adds for the
width whose cost is closest to ``0.5`` without exceeding it (layer sizes are integers, so the
cost is a step function of the width; e.g. width 0.52, cost 0.497 for the MLP of
``configs/grouping_multimnist5.yaml``).

Training
--------
:func:`train_candidates` trains the candidates with
:func:`manytask.experiment.run_experiment` (the config's weighting; the default ``uniform``
is the sum of the included task losses, i.e. Standley's unweighted mean times the number of
tasks, the same optimum direction), one :class:`~manytask.training.RunDir` per candidate, and
records per task the validation and test **loss** at the best epoch (from ``summary.json``:
``val[task]["loss"]``, ``test[task]["loss"]``) in a
:class:`~manytask.grouping.table.CandidateTable` that is rewritten atomically after every
finished candidate. The losses are stored as recorded (raw, per task); making tasks
comparable (normalisation) is a choice of the search, see :mod:`manytask.grouping.search`.

Resume: candidates already in the table are not trained again; a candidate whose RunDir is
complete is read back; a partial RunDir resumes from its last finished epoch (exactly, the
trainer checkpoints optimizer and RNG state). So an interrupted search, restarted with the same
arguments, trains only what is missing and produces the same table.

Every candidate is seeded by :func:`candidate_seed` from the base seed and its name, so its
result does not depend on the executor, on the order of training, or on which other
candidates are trained; and the data splits are the same for every candidate (the data seed is
fixed to the config's seed when the config leaves it unset).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from manytask.config import ExperimentConfig
from manytask.errors import ConfigError, DataError
from manytask.grouping.jobs import TrainJob, TrainOutcome, run_job
from manytask.grouping.table import Candidate, CandidateTable
from manytask.runner import Executor, make_executor

__all__ = [
    "FULL",
    "HALF",
    "CandidateSpec",
    "build_candidates",
    "candidate_seed",
    "ceil_epochs",
    "compute_equivalents",
    "enumerate_subsets",
    "esa_steps",
    "input_shape_of",
    "pin_data_seed",
    "spec_for",
    "steps_per_epoch",
    "train_candidates",
    "trunk_multiply_adds",
    "width_for_cost",
]

FULL = "full"
HALF = "half"
TABLE_FILE = "candidates.csv"
RUNS_DIR = "runs"


@dataclass(frozen=True)
class CandidateSpec:
    """One candidate network: a task subset and a trunk width, with its measured cost.

    Attributes:
        tasks: the tasks it predicts, in config order.
        width: trunk width multiplier.
        cost: trunk multiply-adds relative to the full-size trunk (SNT units).
        macs: trunk multiply-adds per example.
        size: ``"full"``, ``"half"`` or ``"w<width>"`` (used in names).
    """

    tasks: tuple[str, ...]
    width: float
    cost: float
    macs: int
    size: str

    @property
    def name(self) -> str:
        """``left+right@full``: the candidate's identity and run-directory name."""
        return "+".join(self.tasks) + "@" + self.size

    @property
    def key(self) -> tuple[frozenset[str], float]:
        """The :class:`~manytask.grouping.table.Candidate` key (task set, cost)."""
        return (frozenset(self.tasks), round(float(self.cost), 9))

    def order_key(self, task_order: Sequence[str]) -> tuple[float, int, tuple[int, ...]]:
        """Canonical order: wider networks first, then fewer tasks, then config task order."""
        pos = {t: i for i, t in enumerate(task_order)}
        return (-self.width, len(self.tasks), tuple(sorted(pos[t] for t in self.tasks)))


# ---------------------------------------------------------------------------------- costs
def pin_data_seed(cfg: ExperimentConfig) -> ExperimentConfig:
    """The config with ``data.seed`` set (to ``cfg.seed`` when unset), so that every candidate,
    whatever its own seed, trains and is scored on the same splits."""
    if cfg.data.seed is not None:
        return cfg
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"seed": cfg.seed})})


def input_shape_of(cfg: ExperimentConfig) -> tuple[int, ...]:
    """Shape of one input example of the configured data (builds the data, cached)."""
    from manytask.experiment import build_data, columns_for, input_shape

    cfg = pin_data_seed(cfg)
    return input_shape(build_data(cfg, columns_for(cfg.build_tasks())))


def trunk_multiply_adds(cfg: ExperimentConfig, shape: Sequence[int], width: float) -> int:
    """Multiply-adds of the configured trunk at ``width`` for one example of ``shape``."""
    from manytask.experiment import build_model
    from manytask.models import multiply_adds

    model = build_model(cfg, cfg.build_tasks()[:1], shape, width=width)
    return multiply_adds(model.trunk, shape)


def width_for_cost(cfg: ExperimentConfig, shape: Sequence[int], fraction: float = 0.5, *,
                   iterations: int = 50, not_above: bool = True) -> float:
    """The trunk width whose measured multiply-adds are closest to ``fraction`` of width 1.

    ``r(w) = MACs(w) / MACs(1)`` is a non-decreasing step function of ``w`` (layer sizes are
    rounded to integers). Bisection keeps ``lo`` with ``r(lo) < fraction <= r(hi)`` and ends
    with the two neighbouring steps. With ``not_above`` (default) the answer is the step just
    below ``fraction`` (or exactly on it): the closest cost that does not exceed it, so that a
    half-size network fits the paper's half-unit budget grid (a 0.501-cost network would not
    fit next to a full one in a budget of 1.5, nor five of them in 2.5). Without it the closer
    of the two steps wins (ties: the larger). The shortest decimal width inside the chosen step
    is returned, so configs and tables show e.g. ``0.52`` instead of ``0.5215301513671875``.
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"cost fraction must be in (0, 1], got {fraction}")
    full = trunk_multiply_adds(cfg, shape, 1.0)
    if full <= 0:
        raise ConfigError("model: the trunk has no multiply-adds to measure (no Conv/Linear layer)")
    ratio = lambda w: trunk_multiply_adds(cfg, shape, w) / full  # noqa: E731
    if fraction == 1:
        return 1.0
    lo, hi = 1e-6, 1.0
    if ratio(lo) >= fraction:
        return lo
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if ratio(mid) < fraction:
            lo = mid
        else:
            hi = mid
    r_lo, r_hi = ratio(lo), ratio(hi)
    if not_above:
        best, target = (hi, r_hi) if r_hi == fraction else (lo, r_lo)
    else:
        best, target = (hi, r_hi) if abs(r_hi - fraction) <= abs(fraction - r_lo) else (lo, r_lo)
    for digits in range(1, 10):
        w = round(best, digits)
        if 0 < w <= 1 and ratio(w) == target:
            return w
    return best


def enumerate_subsets(task_names: Sequence[str]) -> list[tuple[str, ...]]:
    """All ``2^n - 1`` non-empty subsets, by size, then in the order of ``task_names``."""
    names = list(task_names)
    return [s for k in range(1, len(names) + 1) for s in itertools.combinations(names, k)]


def spec_for(cfg: ExperimentConfig, tasks: Sequence[str], width: float, shape: Sequence[int],
             size: str | None = None, full_macs: int | None = None) -> CandidateSpec:
    """Measure one candidate (tasks in config order)."""
    order = [t.name for t in cfg.build_tasks()]
    unknown = [t for t in tasks if t not in order]
    if unknown:
        raise ConfigError(f"candidates: unknown task(s) {', '.join(unknown)} (config tasks: {', '.join(order)})")
    if not tasks:
        raise ConfigError("candidates: a candidate needs at least one task")
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"candidates: repeated task in {list(tasks)}")
    if not width > 0:
        raise ConfigError(f"candidates: width must be > 0, got {width}")
    full = full_macs if full_macs is not None else trunk_multiply_adds(cfg, shape, 1.0)
    macs = trunk_multiply_adds(cfg, shape, width)
    ordered = tuple(t for t in order if t in set(tasks))
    return CandidateSpec(tasks=ordered, width=float(width), cost=macs / full, macs=macs,
                         size=size or (FULL if width == 1.0 else f"w{width:g}"))


def build_candidates(cfg: ExperimentConfig, candidates: Iterable[tuple[Sequence[str], float | str]] | None = None, *,
                     half_size: bool = True, shape: Sequence[int] | None = None) -> list[CandidateSpec]:
    """The candidate networks of a search, in canonical order.

    Args:
        cfg: the experiment config (its tasks, trunk and data).
        candidates: ``None`` = Standley's set: every non-empty subset at full width and, with
            ``half_size``, every single task at the half-size width. Otherwise a list of
            ``(tasks, width)`` pairs, ``width`` a number or ``"full"`` / ``"half"``.
        half_size: add the half-size single-task networks (default candidates only).
        shape: input shape of one example (default: measured on the configured data).
    """
    shape = tuple(shape) if shape is not None else input_shape_of(cfg)
    names = [t.name for t in cfg.build_tasks()]
    full = trunk_multiply_adds(cfg, shape, 1.0)
    half_w: float | None = None

    def half() -> float:
        nonlocal half_w
        if half_w is None:
            half_w = width_for_cost(cfg, shape, 0.5)
        return half_w

    specs: list[CandidateSpec] = []
    if candidates is None:
        specs = [spec_for(cfg, s, 1.0, shape, FULL, full) for s in enumerate_subsets(names)]
        if half_size:
            specs += [spec_for(cfg, (t,), half(), shape, HALF, full) for t in names]
    else:
        for item in candidates:
            try:
                tasks, width = item
            except (TypeError, ValueError):
                raise ConfigError(f"candidates: expected (tasks, width) pairs, got {item!r}") from None
            if isinstance(tasks, str):
                tasks = [t for t in tasks.replace(",", "+").split("+") if t]
            if width == FULL:
                specs.append(spec_for(cfg, tasks, 1.0, shape, FULL, full))
            elif width == HALF:
                specs.append(spec_for(cfg, tasks, half(), shape, HALF, full))
            else:
                try:
                    w = float(width)
                except (TypeError, ValueError):
                    raise ConfigError(f"candidates: width must be a number, 'full' or 'half', got {width!r}") from None
                specs.append(spec_for(cfg, tasks, w, shape, None, full))
    seen: dict[tuple[frozenset[str], float], CandidateSpec] = {}
    for s in specs:
        if s.key in seen:
            raise ConfigError(f"candidates: {s.name} and {seen[s.key].name} have the same tasks and cost")
        seen[s.key] = s
    return sorted(specs, key=lambda s: s.order_key(names))


def candidate_seed(base_seed: int, name: str) -> int:
    """Seed of one candidate: ``sha256("<base_seed>/<name>")`` reduced to 31 bits.

    Deterministic across processes and machines (unlike ``hash``), and independent of the
    other candidates, so the same candidate trained by any method or executor is the same run.
    """
    digest = hashlib.sha256(f"{int(base_seed)}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**31 - 1)


# ---------------------------------------------------------------------------------- training
def _to_candidate(spec: CandidateSpec, out: TrainOutcome, epochs: int, seed: int, run: str,
                  max_steps: int | None = None) -> Candidate:
    extra = {"name": spec.name, "width": repr(spec.width), "macs": str(spec.macs), "epochs": str(epochs),
             "epochs_run": str(out.epochs_run), "best_epoch": str(out.best_epoch), "seed": str(seed), "run": run}
    if max_steps is not None:
        extra.update(max_steps=str(max_steps), steps_run=str(out.steps_run if out.steps_run is not None else max_steps))
    return Candidate(frozenset(spec.tasks), spec.cost, dict(out.val_loss), test_loss=dict(out.test_loss),
                     train_seconds=out.train_seconds, extra=extra)


def _write(path: Path, tasks: Sequence[str], cands: Iterable[Candidate], order: Callable[[Candidate], Any]) -> CandidateTable:
    table = CandidateTable(tasks, sorted(cands, key=order), source=str(path))
    table.write(path)
    return table


def train_candidates(
    cfg: ExperimentConfig,
    specs: Sequence[CandidateSpec],
    stage_dir: str | Path,
    *,
    epochs: int | None = None,
    executor: str | Executor = "sequential",
    workers: int = 2,
    ray_address: str | None = None,
    seed: int | None = None,
    threads: int = 1,
    progress: bool = False,
    on_result: Callable[[CandidateSpec, Candidate, TrainOutcome], None] | None = None,
    max_steps: int | None = None,
) -> CandidateTable:
    """Train the candidates that ``stage_dir/candidates.csv`` does not hold yet.

    Layout: ``stage_dir/candidates.csv`` (the table, all candidates trained so far in this
    stage, canonical order) and ``stage_dir/runs/<name>/`` (one RunDir per candidate).
    The table is rewritten atomically after every finished candidate, by this process only.

    Args:
        cfg: the experiment config (``data.seed`` is pinned, see :func:`pin_data_seed`).
        specs: the candidates wanted.
        stage_dir: the stage's folder (e.g. ``out/full`` or ``out/esa``).
        epochs: training epochs (default: the config's).
        executor: ``sequential``, ``pool``, ``ray`` or an :class:`Executor` (not closed here).
        seed: base seed (default: the config's); candidate seeds by :func:`candidate_seed`.
        threads: torch threads per training job.
        on_result: called after each newly finished candidate is persisted (may raise to stop).
        max_steps: stop every candidate after this many optimizer steps of the ``epochs``-epoch
            schedule (the early-stopping approximation; recorded in the ``max_steps`` and
            ``steps_run`` columns).

    Returns:
        The table of the requested candidates (in canonical order) with their losses.
    """
    cfg = pin_data_seed(cfg)
    names = [t.name for t in cfg.build_tasks()]
    epochs = int(epochs or cfg.training.epochs)
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    base = cfg.seed if seed is None else int(seed)
    stage = Path(stage_dir)
    path = stage / TABLE_FILE
    have: dict[tuple[frozenset[str], float], Candidate] = {}
    if path.exists():
        old = CandidateTable.read(path)
        if tuple(old.tasks) != tuple(names):
            raise DataError(f"{path}: has tasks {list(old.tasks)}, the config has {names}; use another output folder")
        have = {c.key: c for c in old}
    pos = {t: i for i, t in enumerate(names)}

    def order(c: Candidate) -> tuple[float, int, tuple[int, ...]]:
        w = float(c.extra.get("width", c.cost))
        return (-w, len(c.tasks), tuple(sorted(pos[t] for t in c.tasks)))

    for s in specs:
        c = have.get(s.key)
        if c is not None and c.extra.get("epochs") not in (None, str(epochs)):
            raise DataError(f"{path}: {s.name} was trained for {c.extra.get('epochs')} epochs, not {epochs}; "
                            "use another output folder")
        if c is not None and c.extra.get("max_steps") != (None if max_steps is None else str(max_steps)):
            raise DataError(f"{path}: {s.name} was trained with max_steps {c.extra.get('max_steps')}, not {max_steps}; "
                            "use another output folder")
    todo = [s for s in specs if s.key not in have]
    config = cfg.to_dict()
    if config["data"].get("idx_dir"):  # workers (Ray) may run in another working directory
        config["data"]["idx_dir"] = str(Path(config["data"]["idx_dir"]).expanduser().resolve())
    jobs = [TrainJob(index=i, name=s.name, config=config, tasks=s.tasks, width=s.width,
                     seed=candidate_seed(base, s.name), epochs=epochs,
                     run_dir=str((stage / RUNS_DIR / s.name).resolve()), threads=threads, max_steps=max_steps)
            for i, s in enumerate(todo)]
    if jobs:
        own = not isinstance(executor, Executor)
        ex = make_executor(executor, workers=workers, ray_address=ray_address, threads=threads)
        try:
            for k, (_, out) in enumerate(ex.run(run_job, jobs), start=1):
                spec = todo[out.index]
                cand = _to_candidate(spec, out, epochs, jobs[out.index].seed, f"{RUNS_DIR}/{spec.name}", max_steps)
                have[cand.key] = cand
                _write(path, names, have.values(), order)
                if progress:
                    what = "read finished run" if out.reused else f"{out.train_seconds:.1f} s"
                    loss = " ".join(f"{t}={v:.4g}" for t, v in out.val_loss.items())
                    print(f"[{stage.name} {k}/{len(jobs)}] {spec.name} ({what}) val loss {loss}", file=sys.stderr)
                if on_result is not None:
                    on_result(spec, cand, out)
        finally:
            if own:
                ex.close()
    wanted = {s.key for s in specs}
    return CandidateTable(names, sorted((c for k, c in have.items() if k in wanted), key=order), source=str(path))


def compute_equivalents(table: CandidateTable | Iterable[Candidate], full_epochs: int,
                        steps_per_epoch: int | None = None) -> float:
    """Training compute of the trained networks in full-training equivalents:
    ``sum_n epochs(n) * cost(n) / full_epochs`` (a full-size network trained for the whole
    schedule counts 1), ``epochs(n)`` = the candidate's ``epochs_run`` column, or, for a run
    stopped after a number of steps (a ``steps_run`` column) and with ``steps_per_epoch`` given,
    ``steps_run / steps_per_epoch``: the steps it really took."""
    total = 0.0
    for c in table:
        steps = c.extra.get("steps_run")
        if steps is not None and steps_per_epoch:
            run: Any = float(steps) / float(steps_per_epoch)
        else:
            run = c.extra.get("epochs_run")
        if run is None:
            raise DataError(f"candidate {c.label}: no 'epochs_run' column to account its training compute")
        total += float(run) * float(c.cost) / float(full_epochs)
    return total


def steps_per_epoch(cfg: ExperimentConfig) -> int:
    """Optimizer steps of one epoch of ``cfg``: ``ceil(training examples / batch size)``."""
    from manytask.experiment import build_data, columns_for, task_splits

    cfg = pin_data_seed(cfg)
    tasks = cfg.build_tasks()
    n = len(task_splits(build_data(cfg, columns_for(tasks)), tasks).train)
    if n < 1:
        raise ConfigError("training split is empty")
    return math.ceil(n / cfg.training.batch_size)


def esa_steps(per_epoch: int, fraction: float, epochs: int) -> int:
    """The early-stopping approximation's length in optimizer steps:
    ``max(1, ceil(fraction * per_epoch))`` (Standley et al.: one pass over 20% of the training
    data, ``fraction = 0.2``), at most the whole schedule (``fraction`` in ``(0, epochs]``)."""
    if not 0 < fraction <= epochs:
        raise ConfigError(f"esa_fraction must be in (0, epochs = {epochs}] (a share of one epoch), got {fraction}")
    return min(per_epoch * epochs, max(1, math.ceil(fraction * per_epoch - 1e-9)))


def ceil_epochs(epochs: int, fraction: float) -> int:
    """``max(1, ceil(fraction * epochs))`` (the ``esa_epochs`` variant's compressed schedule)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"esa_fraction must be in (0, 1], got {fraction}")
    return max(1, math.ceil(fraction * epochs - 1e-9))
