"""From a validated config to a finished RunDir: data → model → trainer.

This is the glue the CLI uses; each piece is also usable alone::

    cfg = load_config("configs/multimnist_demo.yaml")
    splits = build_data(cfg, columns_for(cfg.build_tasks()))
    model = build_model(cfg, cfg.build_tasks(), input_shape(splits))
    summary = run_experiment(cfg, "runs/demo")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from manytask.config import ExperimentConfig
from manytask.data.batch import Splits, TensorDataset
from manytask.errors import ConfigError, DataError
from manytask.grouping.sharing_controller import (
    SelectiveSharing,
    sharing_from_config,
    write_sharing,
)
from manytask.models import MultiTaskModel, build_trunk
from manytask.models.branches import branched_model
from manytask.tasks import Task
from manytask.training import FitResult, OptimizerSpec, RunDir, Trainer
from manytask.training.predictions import write_predictions
from manytask.weighting import WeightingMethod, create_from_train

_DATA_CACHE: dict[tuple[Any, ...], Splits] = {}


def columns_for(tasks: Sequence[Task]) -> list[str]:
    """The data columns the tasks read (in task order, without repeats)."""
    return list(dict.fromkeys(t.column for t in tasks))


def data_seed(cfg: ExperimentConfig, seed: int | None = None) -> int:
    """The seed that fixes the data: ``data.seed``, else ``seed``, else the experiment's."""
    if cfg.data.seed is not None:
        return int(cfg.data.seed)
    return int(cfg.seed if seed is None else seed)


def build_data(cfg: ExperimentConfig, columns: Sequence[str], seed: int | None = None) -> Splits:
    """Build (and cache in memory) the splits that the ``data`` source names, with ``columns``."""
    source = cfg.data
    dseed = data_seed(cfg, seed)
    key = (source.model_dump_json(), tuple(columns), dseed)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = source.build(list(columns), dseed)
    return _DATA_CACHE[key]


def task_splits(splits: Splits, tasks: Sequence[Task]) -> Splits:
    """Splits whose targets are keyed by task name, with the tasks' labels checked."""
    out = splits.select({t.name: t.column for t in tasks})
    for ds in (out.train, out.val, out.test):  # one-vs-all tasks: 0/1 from a class column
        for t in (t for t in tasks if t.positive is not None):
            ds.targets[t.name] = t.prepare_target(ds.targets[t.name])
            ds.codings.pop(t.name, None)
    for t in tasks:
        coding = out.train.codings.get(t.name)
        if coding is not None and t.kind in ("regression", "reconstruction"):
            raise DataError(f"{coding.origin}; task '{t.name}' ({t.kind}) needs numbers")
    for name, ds in (("train", out.train), ("validation", out.val), ("test", out.test)):
        for t in tasks:
            t.check_target(ds.targets[t.name], where=f"{name} split")
    return out


def input_shape(data: TensorDataset | Splits) -> tuple[int, ...]:
    ds = data.train if isinstance(data, Splits) else data
    return ds.sample_shape


def build_model(cfg: ExperimentConfig, tasks: Sequence[Task], shape: Sequence[int],
                width: float | None = None) -> MultiTaskModel:
    """The configured trunk (at ``width``, default ``model.width``) with a head per task."""
    m = cfg.model
    trunk = build_trunk(m.trunk, shape, m.trunk_spec(width))
    if m.branches:  # one identical branch per task, a linear output layer per task
        return branched_model(trunk, tasks, m.branches)
    return MultiTaskModel(trunk, tasks, head_hidden=m.head_hidden)


def build_weighting(name: str, params: dict[str, Any], tasks: Sequence[Task],
                    train: TensorDataset) -> WeightingMethod:
    """A registered weighting method built for ``train`` (:meth:`WeightingMethod.from_train`:
    methods that need training-label statistics compute them there)."""
    return create_from_train(name, tasks, train, **params)


def make_trainer(cfg: ExperimentConfig, tasks: Sequence[Task], model: torch.nn.Module,
                 train: TensorDataset, *, weighting: str | None = None,
                 weighting_params: dict[str, Any] | None = None, seed: int | None = None,
                 run_dir: RunDir | None = None, epochs: int | None = None,
                 progress: bool = True, callbacks: Sequence[Any] = (),
                 max_steps: int | None = None) -> Trainer:
    t = cfg.training
    if t.threads:
        torch.set_num_threads(t.threads)
    wname = weighting or cfg.weighting.name
    wparams = cfg.weighting.params if weighting is None else (weighting_params or {})
    seed = cfg.seed if seed is None else seed
    # seed before building the weighting (learnable method parameters are initialised there)
    torch.manual_seed(seed)
    method = build_weighting(wname, wparams, tasks, train)
    o = t.optimizer
    spec = OptimizerSpec(name=o.name, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                         schedule=o.schedule, step_size=o.step_size, gamma=o.gamma)
    return Trainer(model, tasks, method, spec, epochs=epochs or t.epochs, batch_size=t.batch_size,
                   patience=t.patience, monitor=t.monitor, device=t.device, seed=seed,
                   deterministic=t.deterministic, run_dir=run_dir, progress=progress, nonfinite=t.nonfinite,
                   precision=t.precision, tensorboard=t.tensorboard,
                   callbacks=callbacks, weighting_optimizer=cfg.weighting.optimizer.model_dump(),
                   max_steps=max_steps)


def run_experiment(cfg: ExperimentConfig, run_dir: str | Path | RunDir | None = None, *,
                   task_names: Sequence[str] | None = None, weighting: str | None = None,
                   weighting_params: dict[str, Any] | None = None, seed: int | None = None,
                   fraction: float | None = None, width: float | None = None,
                   epochs: int | None = None, progress: bool = True, resume: bool = False,
                   callbacks: Sequence[Any] = (), max_steps: int | None = None) -> FitResult:
    """Train the configured model (optionally on a subset of the tasks, another weighting,
    seed, training fraction or trunk width; ``max_steps``: stop after that many optimizer steps
    of the ``epochs``-epoch schedule) and write ``run_dir`` (with ``predictions.csv``: the best
    epoch's predictions for the test split)."""
    if fraction is not None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"fraction": fraction})})
    all_tasks = cfg.build_tasks()
    if task_names is not None:
        unknown = [n for n in task_names if n not in {t.name for t in all_tasks}]
        if unknown:
            raise ConfigError(f"tasks: unknown task(s) {', '.join(unknown)}")
        tasks = [t for t in all_tasks if t.name in set(task_names)]
    else:
        tasks = all_tasks
    seed = cfg.seed if seed is None else seed
    splits = task_splits(build_data(cfg, columns_for(tasks)), tasks)
    torch.manual_seed(seed)
    model = build_model(cfg, tasks, input_shape(splits), width=width)
    rd = RunDir(run_dir) if isinstance(run_dir, (str, Path)) else run_dir
    sharing: SelectiveSharing | None = sharing_from_config(cfg.grouping, model)
    if sharing is not None and resume:
        raise ConfigError("--resume: not available with grouping.method selective_sharing "
                          "(branches merged while training do not fit the model built at the start)")
    trainer = make_trainer(cfg, tasks, model, splits.train, weighting=weighting,
                           weighting_params=weighting_params, seed=seed, run_dir=rd, epochs=epochs,
                           progress=progress, callbacks=[*callbacks, *([sharing] if sharing else [])],
                           max_steps=max_steps)
    record = cfg.to_dict()
    record["run"] = {"tasks": [t.name for t in tasks], "weighting": trainer.weighting.name,
                     "weighting_params": weighting_params if weighting else cfg.weighting.params,
                     "seed": seed, "fraction": cfg.data.fraction, "width": width or cfg.model.width,
                     "epochs": epochs or cfg.training.epochs,
                     **({"max_steps": max_steps} if max_steps is not None else {})}
    result = trainer.fit(splits.train, splits.val, splits.test, resume=resume, config=record)
    if rd is not None and not rd.readonly:  # in a torchrun job only rank 0 writes
        write_predictions(rd.file("predictions.csv"), tasks, trainer.predict(splits.test), splits.test)
        if sharing is not None:
            write_sharing(rd, sharing)
    return result
