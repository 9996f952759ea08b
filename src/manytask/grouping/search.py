"""Which tasks to train together: one call from a config to chosen groupings per budget.

:func:`group_search` runs one of five methods, chooses networks at every inference budget with
exact selection (:func:`manytask.grouping.selection.select_many`, Standley et al. 2020,
sec. 5.2), trains the chosen networks fully, scores them on their **test** losses, and compares
with the baselines of the paper's Figure 2.

Methods
-------
``exhaustive``  (Standley, sec. 5) train every candidate (all ``2^n - 1`` task subsets at full
                size + the ``n`` half-size single-task networks) fully; select on their
                validation losses.
``esa``         early-stopping approximation (sec. 5.3.1) as the paper defines it: every
                candidate starts the real training run (the same optimizer and learning-rate
                schedule as the full ``epochs``-epoch run) and is stopped after
                ``max(1, ceil(esa_fraction * steps_per_epoch))`` optimizer steps, one pass over
                ``esa_fraction`` (default 0.2) of the training data; selection uses the
                validation losses at that point, then the chosen networks are trained fully
                and scored.
``esa_epochs``  the variant this library used first: every candidate trained for
                ``max(1, ceil(esa_fraction * epochs))`` whole epochs of a schedule *compressed*
                to that length (a cosine schedule anneals fully), ``esa_fraction`` a share of
                the schedule; about ``1 / esa_fraction`` cheaper than exhaustive, not 20x.
``hoa``         higher-order approximation (sec. 5.3.2): train the networks with <= 2 tasks
                fully; predict each >= 3-task network's per-task loss as the mean over the
                pair networks inside it (:func:`~manytask.grouping.selection.higher_order_approximation`);
                select; train the chosen >= 3-task networks fully and score.
``tag``         lookahead inter-task affinity (Fifty et al. 2021) measured during one all-task
                run (:mod:`manytask.grouping.affinity`; ``tag_variant`` ``authors``: as in
                the authors' code, or ``plain``); predicted relative losses ``1 - S_G(j)``
                for every full-size group; select (maximises total affinity under the
                budget); train the chosen groups fully and score.
``cosine``      the same with the mean cosine similarity of the per-task gradients.

Making tasks comparable (``normalize``)
---------------------------------------
The candidate tables store each task's validation / test loss **as recorded** (raw). Raw
losses of different kinds are not comparable (a reconstruction MSE of 0.05 next to a
cross-entropy of 1.2), and the total loss ``L(S) = sum_t L(S, t)`` would ignore the small ones.
So selection and scoring use per-task normalised losses ``L(n, t) / r_t``:

* ``"single_task"`` (default): ``r_t`` = the loss of task ``t``'s cheapest single-task network
  (the half-size one in Standley's candidate set), on the same split (validation losses by its
  validation loss, test losses by its test loss), in the same table: the early-stopped one for
  ESA's selection, the fully trained one for scoring. ``L = 1`` means "as good as the half-size
  single-task network", so the independent half-size baseline totals ``n`` exactly: the
  relative-performance scale of Standley's Tables 1-7. Methods that do not train those
  networks anyway (ESA, TAG, cosine) train them fully for scoring; that compute is reported
  separately as ``reference``.
* ``"prior"``: ``r_t`` = the loss of the best constant prediction on the training labels
  (class-prior cross-entropy, label variance for MSE, ...): no training needed.
* ``"none"``: raw losses (what Standley's released tables hold).

Compute accounting
------------------
In full-training equivalents (FTE): a full-size (cost 1) network trained for the config's
``epochs`` counts 1; a network of cost ``c`` trained for ``e`` epochs counts ``e * c / epochs``.
``search`` = what the method trains to choose (ESA: every candidate for the steps it really
took, ``steps_run / (steps_per_epoch * epochs)`` each; ``esa_epochs``: its short schedule;
HOA: every <= 2-task network; TAG/cosine: one all-task run plus the measurement's extra
forward/backward passes, see :class:`~manytask.grouping.affinity.AffinityResult`);
``final`` = training the chosen networks (union over budgets) that the search did not already
train fully; ``reference`` = single-task networks trained only to normalise the scores. The
accounting is logical: a network found already trained in the output folder (e.g. by an
earlier exhaustive search) is counted as if trained, but not trained again.

Output folder
-------------
``out_dir/search.json`` (config and seed of the folder; a different config is refused),
``out_dir/full/`` (candidates.csv + runs/: every fully trained network, shared by all methods,
so an exhaustive run makes the other methods' final training free), ``out_dir/esa-<N>steps/``
(``esa``), ``out_dir/esa-<E>ep/`` (``esa_epochs``),
``out_dir/affinity-<kind>/affinity.json``, and per method ``out_dir/<method>/``:
``result.json``, ``report.md`` (groupings in words, totals per budget, compute, Standley's
analyses), ``selection_table.csv`` (what selection saw), ``budget_curves.png`` (the ``plain``
TAG variant: ``out_dir/tag-plain/``, ``out_dir/cosine-plain/``).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from manytask.atomic import atomic_write_json, atomic_write_text
from manytask.config import ExperimentConfig
from manytask.errors import ConfigError, DataError
from manytask.grouping.affinity import (
    TAG_VARIANTS,
    AffinityResult,
    affinity_table,
    run_affinity,
)
from manytask.grouping.candidates import (
    HALF,
    CandidateSpec,
    build_candidates,
    ceil_epochs,
    compute_equivalents,
    esa_steps,
    pin_data_seed,
    steps_per_epoch,
    train_candidates,
)
from manytask.grouping.selection import (
    Selection,
    all_in_one_selection,
    higher_order_approximation,
    independent_selection,
    random_groupings,
    score,
    select_many,
    worst_selection,
)
from manytask.grouping.table import Candidate, CandidateTable
from manytask.jsonable import to_jsonable
from manytask.reporting.tables import markdown_table
from manytask.runner import EXECUTORS, Executor, make_executor

__all__ = [
    "METHODS",
    "NORMALIZATIONS",
    "GroupSearchResult",
    "default_budgets",
    "group_search",
    "normalize_table",
    "prior_losses",
    "reference_losses",
]

Method = Literal["exhaustive", "esa", "esa_epochs", "hoa", "tag", "cosine"]
METHODS: tuple[str, ...] = ("exhaustive", "esa", "esa_epochs", "hoa", "tag", "cosine")
Normalize = Literal["single_task", "prior", "none"]
NORMALIZATIONS: tuple[str, ...] = ("single_task", "prior", "none")
_WORST_MAX_CANDIDATES = 64


# ---------------------------------------------------------------------------- normalisation
def _reference_specs(specs: Sequence[CandidateSpec], tasks: Sequence[str]) -> dict[str, CandidateSpec]:
    """Per task, its cheapest single-task candidate (ties: the first in canonical order)."""
    out: dict[str, CandidateSpec] = {}
    for s in specs:
        if len(s.tasks) == 1:
            t = s.tasks[0]
            if t not in out or s.cost < out[t].cost:
                out[t] = s
    missing = [t for t in tasks if t not in out]
    if missing:
        raise ConfigError(f"normalize 'single_task': no single-task candidate for task(s) {', '.join(missing)} "
                          "(add them, or use normalize 'prior' or 'none')")
    return out


def reference_losses(table: CandidateTable, kind: Literal["val", "test"] = "val") -> dict[str, float]:
    """``r_t`` = the ``kind`` loss of each task's cheapest single-task network in ``table``."""
    best: dict[str, Candidate] = {}
    for c in table:
        if len(c.tasks) == 1:
            (t,) = c.tasks
            if t not in best or c.cost < best[t].cost:
                best[t] = c
    out: dict[str, float] = {}
    for t in table.tasks:
        if t not in best:
            raise DataError(f"{table.source or 'table'}: no single-task network for task '{t}' to normalise by")
        losses = best[t].losses(kind)
        if t not in losses:
            raise DataError(f"{table.source or 'table'}: {best[t].label} has no {kind} loss")
        out[t] = float(losses[t])
    return out


def normalize_table(table: CandidateTable, val_ref: Mapping[str, float],
                    test_ref: Mapping[str, float] | None = None, *, source: str | None = None) -> CandidateTable:
    """A copy with ``val_loss[t] / val_ref[t]`` and ``test_loss[t] / test_ref[t]``."""
    test_ref = val_ref if test_ref is None else test_ref
    for name, ref in (("validation", val_ref), ("test", test_ref)):
        for t in table.tasks:
            if t not in ref or not (math.isfinite(ref[t]) and ref[t] > 0):
                raise DataError(f"normalisation: {name} reference loss of task '{t}' is {ref.get(t)} (need > 0)")
    out = [c.replace(val_loss={t: v / val_ref[t] for t, v in c.val_loss.items()},
                     test_loss={t: v / test_ref[t] for t, v in c.test_loss.items()}) for c in table]
    return CandidateTable(table.tasks, out, source=source or table.source)


def prior_losses(cfg: ExperimentConfig) -> dict[str, float]:
    """Loss of the best constant prediction on the training labels, per task
    (:meth:`manytask.tasks.Task.constant_baseline` on the training split: the label entropy
    for the classification kinds, about the label variance for MSE, ...)."""
    from manytask.experiment import build_data, columns_for, task_splits

    cfg = pin_data_seed(cfg)
    tasks = cfg.build_tasks()
    train = task_splits(build_data(cfg, columns_for(tasks)), tasks).train
    return {t.name: t.constant_baseline(train.targets[t.name], train.masks.get(t.name)) for t in tasks}


# ---------------------------------------------------------------------------- result
@dataclass
class GroupSearchResult:
    """What :func:`group_search` found (everything also written to ``out_dir/<method>/``).

    Attributes:
        method, tasks, budgets, normalize: the search.
        selections: per budget, the networks chosen on the method's (normalised, possibly
            predicted or early-stopped) validation losses; None where infeasible.
        scored: the same networks fully trained, scored on normalised **test** losses
            (each task takes its lowest loss among the chosen networks, as in the paper).
        scored_val: the same on the fully trained networks' normalised validation losses.
        curves: total normalised test loss per budget: the method, and baselines where the
            trained networks allow them (``None`` = not available / infeasible).
        compute: training compute in full-training equivalents (``search``, ``final``,
            ``reference``, ``total``) and the exhaustive search's for comparison.
        selection_table: the table selection saw; full_table: every fully trained network
            (raw losses); affinity: the measured affinities (``tag`` / ``cosine``).
    """

    method: str
    tasks: tuple[str, ...]
    budgets: list[float]
    normalize: str
    selections: list[Selection | None]
    scored: list[Selection | None]
    scored_val: list[Selection | None]
    curves: dict[str, list[float | None]]
    compute: dict[str, float | int | None]
    selection_table: CandidateTable
    full_table: CandidateTable
    affinity: AffinityResult | None = None
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    timing: dict[str, float | None] = field(default_factory=dict)

    def groupings(self) -> list[list[tuple[str, ...]] | None]:
        """Per budget, the chosen networks' task sets (what to train together)."""
        return [None if s is None else [tuple(t for t in s.tasks if t in n.tasks) for n in s.networks]
                for s in self.selections]

    def budget_table(self) -> str:
        """Markdown: per budget the chosen networks (``tasks@cost``), the total loss selection
        predicted, the realised validation total, and every curve (test totals)."""
        names = list(self.curves)
        rows = []
        for i, b in enumerate(self.budgets):
            sel, sv = self.selections[i], self.scored_val[i]
            nets = ("; ".join("+".join(t for t in sel.tasks if t in n.tasks) + f"@{n.cost:.3g}" for n in sel.networks)
                    if sel is not None else "infeasible")
            rows.append([f"{b:g}", nets, _fmt(sel.total_loss if sel else None), _fmt(sv.total_loss if sv else None),
                         *(_fmt(self.curves[n][i]) for n in names)])
        return markdown_table(["budget", "networks", "predicted (val)", "realised (val)", *names], rows, pad=False)

    def compute_table(self) -> str:
        """Markdown: training compute in full-training equivalents."""
        c = self.compute
        row = [_fmt(c["search"], 3), f"{_fmt(c['final'], 3)} ({c['final_networks']} networks)",
               f"{_fmt(c['reference'], 3)} ({c['reference_networks']} networks)", _fmt(c["total"], 3),
               _fmt(c["exhaustive"], 3)]
        return markdown_table(["search", "final (chosen networks)", "reference (normalisation)", "total",
                               "exhaustive search"], [row], pad=False)

    def to_dict(self) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        for b, sel, sc, sv in zip(self.budgets, self.selections, self.scored, self.scored_val):
            if sel is None:
                rows.append({"budget": b, "feasible": False})
                continue
            rows.append({
                "budget": b, "feasible": True, "networks": sel.labels,
                "groups": [list(t for t in sel.tasks if t in n.tasks) for n in sel.networks],
                "serves": {lab: list(g) for lab, g in zip(sel.labels, sel.groups)},
                "total_cost": sel.total_cost, "predicted_val_loss": sel.total_loss,
                "val_loss": None if sv is None else sv.total_loss,
                "test_loss": None if sc is None else sc.total_loss,
                "task_test_losses": None if sc is None else dict(sc.task_losses),
            })
        out: dict[str, Any] = {
            "method": self.method, "tasks": list(self.tasks), "budgets": list(self.budgets),
            "normalize": self.normalize, "selections": rows, "curves": self.curves, "compute": self.compute,
            "timing": self.timing, "notes": self.notes, "files": self.files,
        }
        if self.affinity is not None:
            out["affinity"] = {"kind": self.affinity.kind, "tasks": list(self.affinity.tasks),
                               "matrix": to_jsonable(self.affinity.matrix.tolist()), "samples": self.affinity.samples,
                               "every": self.affinity.every}
        return to_jsonable(out)


def default_budgets(n_tasks: int) -> list[float]:
    """Standley's sweep: 1, 1.5, ..., n."""
    return [1.0 + 0.5 * i for i in range(2 * n_tasks - 1)]


# ---------------------------------------------------------------------------- the search
def _check_folder(out: Path, cfg: ExperimentConfig, seed: int) -> None:
    meta = {"config": cfg.to_dict(), "seed": seed}
    meta = json.loads(json.dumps(meta))
    p = out / "search.json"
    if p.exists():
        try:
            old = json.loads(p.read_text())
        except ValueError:
            raise DataError(f"{p}: not a JSON file") from None
        if old != meta:
            what = "seed" if old.get("config") == meta["config"] else "config"
            raise DataError(f"{out}: holds a search with another {what}; use another --out folder")
        return
    atomic_write_json(p, meta)


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr)


def _nominal(table: CandidateTable, specs: Sequence[CandidateSpec]) -> CandidateTable:
    """Half-size candidates at their nominal cost 0.5 (Standley's 1/2-SNT), for the analyses."""
    half = {s.key for s in specs if s.size == HALF}
    return CandidateTable(table.tasks, [c.replace(cost=0.5) if c.key in half else c for c in table],
                          source=table.source)


def group_search(
    cfg: ExperimentConfig,
    method: str = "exhaustive",
    budgets: Sequence[float] | None = None,
    executor: str | Executor = "sequential",
    out_dir: str | Path = "runs/grouping",
    *,
    workers: int = 2,
    ray_address: str | None = None,
    seed: int | None = None,
    esa_fraction: float = 0.2,
    tag_every: int | None = None,
    tag_variant: str = "authors",
    affinity_epochs: int | None = None,
    normalize: str = "single_task",
    candidates: Iterable[tuple[Sequence[str], float | str]] | None = None,
    half_size: bool = True,
    threads: int = 1,
    n_random: int = 2000,
    progress: bool = False,
    on_result: Callable[..., None] | None = None,
) -> GroupSearchResult:
    """Find which tasks to train together at each budget (module docstring for the methods).

    Args:
        cfg: the experiment config (tasks, data, trunk, schedule, weighting).
        method: ``exhaustive``, ``esa``, ``esa_epochs``, ``hoa``, ``tag`` or ``cosine``.
        budgets: inference budgets in full-network units (default 1, 1.5, ..., n).
        executor: ``sequential``, ``pool``, ``ray`` or an :class:`Executor`.
        out_dir: output folder (reused across methods and resumed; see the module docstring).
        workers: pool processes / local Ray CPUs. ray_address: an existing Ray cluster.
        seed: base seed of the candidates (default: the config's seed).
        esa_fraction: ``esa``: the share of ONE epoch's optimizer steps each candidate trains
            (rounded up, at least 1; default 0.2 = one pass over 20% of the training data);
            ``esa_epochs``: the share of the schedule (whole epochs, rounded up).
        tag_every: affinity sampling period in optimizer steps (default: the variant's;
            ``authors``: every step).
        tag_variant: ``authors`` (Fifty et al.'s code: the optimizer's own update, affinity
            divided by the learning rate, a task alone never serves itself) or ``plain``
            (plain SGD lookahead, unscaled, a task alone scores 0, every 10th step); see
            :data:`~manytask.grouping.affinity.TAG_VARIANTS`.
        affinity_epochs: length of the affinity run (default: the config's epochs).
        normalize: ``single_task``, ``prior`` or ``none``.
        candidates: ``None`` = Standley's candidate set; else ``(tasks, width)`` pairs.
        half_size: include the half-size single-task networks (default set only).
        threads: torch threads per training job.
        n_random: samples of the random-groupings baseline.
        on_result: called after each newly trained candidate is saved (may raise to stop).
    """
    if method not in METHODS:
        raise ConfigError(f"method: unknown method '{method}' (expected one of {', '.join(METHODS)})")
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"normalize: unknown value '{normalize}' (expected one of {', '.join(NORMALIZATIONS)})")
    cfg = pin_data_seed(cfg)
    base = cfg.seed if seed is None else int(seed)
    names = [t.name for t in cfg.build_tasks()]
    if len(names) < 2:
        raise ConfigError("grouping needs at least two tasks")
    budgets = list(default_budgets(len(names)) if budgets is None else budgets)
    if not budgets:
        raise ConfigError("budgets: no budget given")
    E = cfg.training.epochs
    if method == "esa_epochs":
        ceil_epochs(E, esa_fraction)  # checks esa_fraction before anything is written
    elif method == "esa":
        esa_steps(1, esa_fraction, E)
    if tag_variant not in TAG_VARIANTS:
        raise ConfigError(f"tag_variant: unknown variant '{tag_variant}' (expected one of {', '.join(TAG_VARIANTS)})")
    if method in ("tag", "cosine") and tag_every is not None and tag_every < 1:
        raise ConfigError(f"tag_every: must be >= 1, got {tag_every}")
    if isinstance(executor, str):
        if executor not in EXECUTORS:
            raise ConfigError(f"executor: unknown executor '{executor}' (expected one of {', '.join(EXECUTORS)})")
        if executor != "sequential" and workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ConfigError(f"--out {out_dir}: already exists and is not a directory")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_folder(out, cfg, base)
    specs = build_candidates(cfg, candidates, half_size=half_size)
    by_key = {s.key: s for s in specs}
    full_dir = out / "full"
    notes: list[str] = []
    own = not isinstance(executor, Executor)
    ex = make_executor(executor, workers=workers, ray_address=ray_address, threads=threads)

    def train(which: Sequence[CandidateSpec], stage: Path, epochs: int) -> CandidateTable:
        if which:
            _log(progress, f"training {len(which)} candidate(s) in {stage} ({epochs} epochs, executor {ex.name})")
        return train_candidates(cfg, which, stage, epochs=epochs, executor=ex, seed=base, threads=threads,
                                progress=progress, on_result=on_result)

    aff: AffinityResult | None = None
    searched_full: set[tuple[frozenset[str], float]] = set()
    try:
        # ---- 1. what selection sees (raw losses, or predicted relative losses)
        if method == "exhaustive":
            raw = train(specs, full_dir, E)
            search_fte = compute_equivalents(raw, E)
            searched_full = {c.key for c in raw}
        elif method == "esa":
            per_epoch = steps_per_epoch(cfg)
            n = esa_steps(per_epoch, esa_fraction, E)
            stage = out / f"esa-{n}steps"
            _log(progress, f"training {len(specs)} candidate(s) in {stage} ({n} of {per_epoch * E} steps, "
                           f"executor {ex.name})")
            raw = train_candidates(cfg, specs, stage, epochs=E, executor=ex, seed=base, threads=threads,
                                   progress=progress, on_result=on_result, max_steps=n)
            search_fte = compute_equivalents(raw, E, per_epoch)
            notes.append(f"ESA: every candidate stopped after {n} of {per_epoch * E} optimizer steps of the full "
                         f"schedule ({esa_fraction:g} of an epoch of {per_epoch} steps)")
        elif method == "esa_epochs":
            e = ceil_epochs(E, esa_fraction)
            raw = train(specs, out / f"esa-{e}ep", e)
            search_fte = compute_equivalents(raw, E)
            notes.append(f"ESA (epochs variant): every candidate trained {e} of {E} epochs of a schedule "
                         f"compressed to {e} (esa_fraction {esa_fraction:g})")
        elif method == "hoa":
            low = [s for s in specs if len(s.tasks) <= 2]
            trained = train(low, full_dir, E)
            search_fte = compute_equivalents(trained, E)
            searched_full = {c.key for c in trained}
            high = [Candidate(frozenset(s.tasks), s.cost, {t: 0.0 for t in s.tasks},
                              extra={"name": s.name, "width": repr(s.width)})
                    for s in specs if len(s.tasks) >= 3]
            raw = higher_order_approximation(CandidateTable(names, list(trained) + high, source="hoa input"))
            left_out = [c for c in high if raw.index_of(c) is None]
            if left_out:
                notes.append("HOA could not predict (no pair network of the same cost inside): "
                             + ", ".join(c.extra["name"] for c in left_out))
        else:
            folder = out / (f"affinity-{method}" if tag_variant == "authors" else f"affinity-{method}-{tag_variant}")
            aff = run_affinity(cfg, folder, kind=method, every=tag_every, epochs=affinity_epochs, seed=base,
                               threads=threads, progress=progress, variant=tag_variant)
            raw = affinity_table(aff, specs, single_task=TAG_VARIANTS[tag_variant].single_task)
            search_fte = aff.compute_equivalents(E)
            notes.append(f"{method} ({tag_variant} variant): {aff.samples} sampled steps (every {aff.every}) in one "
                         f"all-task run of {aff.epochs_run} epochs; predicted relative loss 1 - S_G(j) for each "
                         "full-size group")

        # ---- 2. normalise and select
        if method in ("tag", "cosine"):
            sel_table = CandidateTable(names, list(raw), source=f"{method} predicted")
        elif normalize == "single_task":
            sel_table = normalize_table(raw, reference_losses(raw, "val"), source=f"{method} (normalised)")
        elif normalize == "prior":
            pr = prior_losses(cfg)
            sel_table = normalize_table(raw, pr, pr, source=f"{method} (prior-normalised)")
        else:
            sel_table = CandidateTable(names, list(raw), source=f"{method}")
        selections = select_many(sel_table, budgets)

        # ---- 3. train the chosen networks fully (and the normalisation references)
        chosen: dict[tuple[frozenset[str], float], CandidateSpec] = {}
        for sel in selections:
            for n in sel.networks if sel is not None else ():
                chosen.setdefault(n.key, by_key[n.key])
        final_specs = [s for k, s in chosen.items() if k not in searched_full]
        ref_specs: list[CandidateSpec] = []
        if normalize == "single_task":
            ref_specs = [s for s in _reference_specs(specs, names).values()
                         if s.key not in searched_full and s.key not in chosen]
        full_all = train(final_specs + ref_specs, full_dir, E)
        full = CandidateTable.read(full_dir / "candidates.csv") if (full_dir / "candidates.csv").exists() \
            else full_all
        got = {c.key: c for c in full}
        final_fte = compute_equivalents([got[s.key] for s in final_specs], E)
        ref_fte = compute_equivalents([got[s.key] for s in ref_specs], E)
    finally:
        if own:
            ex.close()

    # ---- 4. score on fully trained networks, baselines
    if normalize == "single_task":
        refs = _reference_specs(specs, names)
        val_ref = {t: got[refs[t].key].val_loss[t] for t in names}
        test_ref = {t: got[refs[t].key].test_loss[t] for t in names}
        full_n = normalize_table(full, val_ref, test_ref, source="fully trained (normalised)")
    elif normalize == "prior":
        pr = prior_losses(cfg)
        full_n = normalize_table(full, pr, pr, source="fully trained (prior-normalised)")
    else:
        full_n = CandidateTable(names, list(full), source="fully trained")
    scored = [None if s is None else score(s, full_n, kind="test") for s in selections]
    scored_val = [None if s is None else score(s, full_n, kind="val") for s in selections]
    curves: dict[str, list[float | None]] = {f"{method} (test)": [None if s is None else s.total_loss for s in scored]}
    complete = all(s.key in got for s in specs)
    mine = full_n.filter(lambda c: c.key in by_key)

    def test_total(sel: Selection | None) -> float | None:
        return None if sel is None else score(sel, None, kind="test").total_loss

    if complete:
        if method != "exhaustive":
            opt = select_many(mine, budgets)
            curves["exhaustive optimum (test)"] = [test_total(s) for s in opt]
    else:
        notes.append("exhaustive optimum, random and worst baselines need every candidate trained fully "
                     "(run method 'exhaustive' in the same folder)")
    curves["all-in-one (test)"] = [test_total(all_in_one_selection(mine, b)) for b in budgets]
    curves["independent (test)"] = [test_total(independent_selection(mine, b)) for b in budgets]
    if complete:
        rnd = []
        for b in budgets:
            r = random_groupings(mine, b, score_table=mine.test_as_val(), n_samples=n_random, seed=base)
            rnd.append(None if r is None else r.mean)
        curves["random groupings (test)"] = rnd
        if len(mine) <= _WORST_MAX_CANDIDATES:
            curves["worst choice (test)"] = [None if w is None else w.total_loss
                                             for w in (worst_selection(mine, b, kind="test") for b in budgets)]
    exhaustive_fte = compute_equivalents(mine, E) if complete else None
    compute: dict[str, float | int | None] = {
        "search": search_fte, "final": final_fte, "reference": ref_fte,
        "total": search_fte + final_fte + ref_fte,
        "exhaustive": exhaustive_fte,
        "final_networks": len(final_specs), "reference_networks": len(ref_specs),
    }
    if aff is not None:
        compute["affinity_overhead"] = aff.overhead_equivalents(E)
    fulls = [c for c in full if c.key in by_key and c.train_seconds is not None and by_key[c.key].width == 1.0]
    timing = {
        "mean_full_size_candidate_seconds": float(np.mean([c.train_seconds for c in fulls])) if fulls else None,
        "max_full_size_candidate_seconds": float(np.max([c.train_seconds for c in fulls])) if fulls else None,
        "affinity_run_seconds": aff.seconds if aff is not None else None,
    }
    result = GroupSearchResult(
        method=method, tasks=tuple(names), budgets=budgets, normalize=normalize, selections=selections, scored=scored, scored_val=scored_val, curves=curves,
        compute=compute, selection_table=sel_table, full_table=full, affinity=aff, notes=notes, timing=timing,
    )
    report = method if method not in ("tag", "cosine") or tag_variant == "authors" else f"{method}-{tag_variant}"
    result.files = _write_outputs(out / report, result, specs, cfg)
    return result


# ---------------------------------------------------------------------------- report
def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _words(sel: Selection, scored: Selection | None) -> str:
    from manytask.grouping.analysis import describe_selection

    text = describe_selection(sel)
    if scored is not None:
        text += f"\n  Fully trained, these networks score a total test loss of {scored.total_loss:.4f}."
    return text


def _write_outputs(folder: Path, res: GroupSearchResult, specs: Sequence[CandidateSpec],
                   cfg: ExperimentConfig) -> dict[str, str]:
    from manytask.grouping.analysis import affinity as standley_affinity
    from manytask.grouping.analysis import (
        multitask_vs_independent,
        pairwise_relative_performance,
    )
    from manytask.reporting.plots_budget import plot_budget_curves

    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    p = res.selection_table.write(folder / "selection_table.csv")
    files["selection_table"] = str(p)
    files["full_table"] = str(folder.parent / "full" / "candidates.csv")
    unit = {"single_task": "relative to each task's cheapest single-task network",
            "prior": "relative to the best constant prediction", "none": "raw losses"}[res.normalize]
    L: list[str] = [f"# Task grouping: {cfg.name}, method {res.method}", ""]
    L.append(f"Tasks: {', '.join(res.tasks)}. Losses: per-task test loss {unit}; total = sum over tasks "
             "(each task takes its lowest loss among the chosen networks). Networks chosen on validation "
             "losses" + (" predicted from affinities" if res.method in ("tag", "cosine") else "")
             + (" predicted by the higher-order approximation" if res.method == "hoa" else "")
             + (" after the short ESA run" if res.method in ("esa", "esa_epochs") else "") + ".")
    L += ["", "## Chosen groupings", ""]
    for b, sel, sc in zip(res.budgets, res.selections, res.scored):
        if sel is None:
            L.append(f"Budget {b:g}: infeasible.")
        else:
            L.append(_words(sel, sc))
        L.append("")
    L += ["## Total test loss per budget", "", res.budget_table(), "",
          "## Training compute (full-training equivalents)", "", res.compute_table()]
    c = res.compute
    if "affinity_overhead" in c:
        L.append(f"\nAffinity measurement overhead (included in search): {_fmt(c['affinity_overhead'], 3)} FTE.")
    t = res.timing
    if t.get("mean_full_size_candidate_seconds") is not None:
        L.append(f"\nMeasured training time of a full-size candidate: mean {t['mean_full_size_candidate_seconds']:.2f} s, "
                 f"max {t['max_full_size_candidate_seconds']:.2f} s (torch threads per job: 1).")
    if res.affinity is not None:
        L += ["", f"## {res.affinity.kind} affinity (row i, column j)", "", res.affinity.to_markdown()]
    # Standley's analyses on the fully trained networks' test losses
    full = _nominal(res.full_table.filter(lambda c: any(c.key == s.key for s in specs)), specs)
    L += ["", "## Task relationships (Standley et al. 2020, Tables 1-3; fully trained networks, test losses)", ""]
    try:
        pw = pairwise_relative_performance(full, kind="test", pair_cost=1.0, single_cost=0.5)
        if np.isfinite(pw.values).any():
            L += ["Relative performance of each column task when trained with the row task, against its "
                  "half-size single-task network (positive = better):", "", pw.to_markdown(corner="trained with"), "",
                  "Multi-task affinity (mean of the table and its transpose):", "",
                  standley_affinity(pw).to_markdown(averages=False), ""]
        else:
            L.append("(pairwise tables need the two-task and half-size single-task networks fully trained)")
    except ConfigError as err:
        L.append(f"(pairwise tables not available: {err})")
    try:
        rows = multitask_vs_independent(full, kind="test")
        L += ["k-task networks against single-task networks (mean relative performance, %):", "",
              markdown_table(["tasks per network", "networks", "vs 1-size single-task each",
                              "vs 1/k-size (same total compute)"],
                             [[r["k"], r["n_networks"], _fmt(r["each"], 2), _fmt(r["total"], 2)] for r in rows],
                             pad=False)]
    except ConfigError as err:
        L.append(f"(n-task table not available: {err})")
    if res.notes:
        L += ["", "## Notes", ""] + [f"- {n}" for n in res.notes]
    md = folder / "report.md"
    atomic_write_text(md, "\n".join(L) + "\n")
    files["report"] = str(md)
    if any(v is not None for ys in res.curves.values() for v in ys):
        png = plot_budget_curves(res.curves, res.budgets, folder / "budget_curves.png",
                                 title=f"{cfg.name}: total test loss vs budget ({res.method})",
                                 ylabel=f"Total test loss ({res.normalize}-normalised)")
        files["plot"] = str(png)
    js = folder / "result.json"
    files["json"] = str(js)
    res.files = files
    atomic_write_json(js, res.to_dict())
    return files


