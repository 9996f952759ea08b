"""A trained model back from its run directory: config, task subset, width and weights.

``manytask run`` (and ``compare`` / ``group``) write ``config.yaml`` (the validated config plus
a ``run`` record: the tasks the run trained on, the trunk width, the seed, ...) and the
weights ``best.safetensors`` / ``last.safetensors``. :func:`load_run_model` rebuilds the same
network with :func:`manytask.experiment.build_model` and loads the weights with
:meth:`RunDir.load_weights` (safetensors only: nothing is ever unpickled).

The trunk builder needs the input shape of one sample. It is not stored in the run
directory; it is the ``sample_shape`` of the data the config builds (for galleries:
``(largest gallery, *item_shape)``). Callers that build the data anyway (``manytask embed``)
pass its shape; otherwise the run's own data is built from its config.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from manytask.config import ExperimentConfig, parse_config
from manytask.data.batch import Splits
from manytask.errors import ConfigError, DataError
from manytask.models import MultiTaskModel
from manytask.tasks import Task
from manytask.training.rundir import RunDir

__all__ = ["load_run_config", "load_run_model", "run_data", "run_record"]

WEIGHTS = ("best", "last")


def _run_dir(run_dir: str | Path) -> RunDir:
    p = Path(run_dir)
    if not p.exists():
        raise DataError(f"{p}: run directory not found")
    if not p.is_dir():
        raise DataError(f"{p}: not a directory (expected a run directory written by manytask run)")
    if not (p / "config.yaml").is_file():
        raise DataError(f"{p}: no config.yaml (not a run directory written by manytask run)")
    return RunDir(p)


def run_record(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(config mapping without 'run', the 'run' record)`` of a run directory's config.yaml."""
    rd = _run_dir(run_dir)
    doc = rd.read_config()
    run = doc.pop("run", None) or {}
    if not isinstance(run, dict):
        raise DataError(f"{rd.file('config.yaml')}: 'run' is not a mapping")
    return doc, run


def load_run_config(path: str | Path) -> ExperimentConfig:
    """The config of a run directory (its ``config.yaml`` without the ``run`` record) or of a
    YAML config file."""
    p = Path(path)
    if p.is_dir():
        doc, _ = run_record(p)
        return parse_config(doc, where=str(p / "config.yaml"))
    from manytask.config import load_config

    return load_config(p)


def _run_tasks(cfg: ExperimentConfig, run: dict[str, Any], where: Path) -> list[Task]:
    all_tasks = cfg.build_tasks()
    names = run.get("tasks")
    if names is None:
        return all_tasks
    known = {t.name for t in all_tasks}
    unknown = [str(n) for n in names if n not in known]
    if unknown:
        raise DataError(f"{where}: run.tasks names task(s) {', '.join(unknown)} that the config does not define")
    return [t for t in all_tasks if t.name in set(names)]


def run_data(cfg: ExperimentConfig, tasks: Sequence[Task]) -> Splits:
    """The splits of ``cfg``'s data with targets keyed by the names of ``tasks`` (labels checked)."""
    from manytask.experiment import build_data, columns_for, task_splits

    return task_splits(build_data(cfg, columns_for(tasks)), tasks)


def load_run_model(run_dir: str | Path, which: str = "best", *,
                   shape: Sequence[int] | None = None) -> tuple[MultiTaskModel, ExperimentConfig, list[Task]]:
    """Rebuild the model a run trained and load its weights.

    Args:
        run_dir: a directory written by ``manytask run`` (``config.yaml`` + weights).
        which: ``best`` (the epoch chosen on validation) or ``last``.
        shape: the input shape of one sample; default: that of the run's own data (built
            from its config).

    Returns:
        ``(model in eval mode on the CPU, config, the tasks the run trained on)``.

    Raises:
        DataError: the directory, its config or its weights file is missing, or the weights do
            not fit the model (:class:`~manytask.errors.CheckpointError`); one line each.
    """
    from manytask.experiment import build_model, input_shape

    if which not in WEIGHTS:
        raise ConfigError(f"weights: expected best or last, got {which!r}")
    rd = _run_dir(run_dir)
    doc, run = run_record(rd.path)
    cfg = parse_config(doc, where=str(rd.file("config.yaml")))
    tasks = _run_tasks(cfg, run, rd.file("config.yaml"))
    weights = rd.file(f"{which}.safetensors")
    if not weights.is_file():
        raise DataError(f"{weights}: not found (the run has not finished an epoch, or was written elsewhere)")
    if shape is None:
        shape = input_shape(run_data(cfg, tasks))
    width = run.get("width")
    model = build_model(cfg, tasks, tuple(int(s) for s in shape), width=None if width is None else float(width))
    rd.load_weights(which, model)
    model.eval()
    return model, cfg, tasks
