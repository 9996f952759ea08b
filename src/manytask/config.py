"""The config schema (pydantic) and its loader.

A config file is YAML with the sections ``data``, ``tasks``, ``model``, ``training`` and
``weighting``; see ``configs/multimnist_demo.yaml`` for a commented example. ``data`` is one
of the registered data sources, chosen by its ``kind`` (:mod:`manytask.data.sources`). Every error is
reported as one line naming the file, the field and the problem (:class:`ConfigError`).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from manytask.data.sources import DataSource, parse_source
from manytask.data.sources.base import validation_message
from manytask.data.sources.multimnist import MultiMNISTSource
from manytask.errors import ConfigError
from manytask.models.registry import TrunkSpec
from manytask.safe_yaml import read_yaml_file
from manytask.tasks import TASK_KINDS, Task, one_vs_all

#: the widest layer a config may ask for (a typo such as ``features: 10**12`` is refused before
#: anything is allocated)
MAX_WIDTH = 65536
#: seeds must fit the random generators (a signed 64-bit integer)
MAX_SEED = 2**63 - 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TaskConfig(_Strict):
    name: str
    kind: str
    num_classes: int | None = None
    dim: int | None = None
    loss: str | None = None
    target: str | None = None
    positive: int | None = Field(None, ge=0)
    #: K: this entry stands for K binary tasks ``{name}_{k}``, class k of column ``target``
    #: (default ``name``) against the rest (homogeneous multi-task learning)
    one_vs_all: int | None = Field(None, ge=2)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        bad = [c for c in (".", "/") if c in v]
        if not v.strip() or bad or any(not c.isprintable() for c in v):
            why = f"contains '{bad[0]}'" if bad else "is empty or unprintable"
            raise ValueError(f"task name {v!r} {why} (use letters, digits, '_' or '-')")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in TASK_KINDS:
            raise ValueError(f"unknown task kind '{v}' (expected one of {', '.join(TASK_KINDS)})")
        return v

    def build(self) -> Task:
        return Task(name=self.name, kind=self.kind, num_classes=self.num_classes,  # type: ignore[arg-type]
                    dim=self.dim, loss_name=self.loss, target=self.target, positive=self.positive)

    def build_all(self) -> list[Task]:
        """The task, or the ``one_vs_all`` binary tasks it stands for."""
        if self.one_vs_all is None:
            return [self.build()]
        if self.kind != "binary" or self.positive is not None:
            raise ConfigError(f"task '{self.name}': one_vs_all makes binary tasks (kind: binary, no positive)")
        return one_vs_all(self.target or self.name, self.one_vs_all, prefix=self.name)


class ModelConfig(_Strict):
    """The network: a trunk (a registered name such as ``lenet``, ``mlp``, ``resnet``, or an
    import path ``package.module:function`` naming a builder, see
    :mod:`manytask.models.registry`) and a two-layer head per task."""

    trunk: str = "lenet"
    width: float = Field(1.0, gt=0)
    features: int = Field(50, ge=1, le=MAX_WIDTH)
    hidden: list[Annotated[int, Field(ge=1, le=MAX_WIDTH)]] = Field(default_factory=lambda: [256, 128])
    head_hidden: int = Field(50, ge=1, le=MAX_WIDTH)
    dropout: float = Field(0.0, ge=0, lt=1)
    options: dict[str, Any] = Field(default_factory=dict)
    #: hidden widths of one identical, identically initialised branch per task (Selective
    #: Sharing); each task's head is then one linear output layer. Empty: no branches.
    branches: list[int] = Field(default_factory=list)

    @field_validator("trunk")
    @classmethod
    def _trunk(cls, v: str) -> str:
        from manytask.models.registry import available_trunks, is_trunk_reference

        if not is_trunk_reference(v):
            raise ValueError(f"unknown trunk '{v}' (expected one of {', '.join(available_trunks())}, "
                             "or an import path module:function)")
        return v

    def trunk_spec(self, width: float | None = None) -> TrunkSpec:
        return TrunkSpec(width=self.width if width is None else width, features=self.features,
                         hidden=tuple(self.hidden), dropout=self.dropout, options=dict(self.options))


class OptimizerConfig(_Strict):
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.005, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["none", "step", "cosine", "plateau"] = "none"
    step_size: int = Field(10, ge=1)
    gamma: float = Field(0.5, gt=0, le=1)


class TrainingConfig(_Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)  # type: ignore[arg-type]
    patience: int | None = Field(None, ge=1)
    monitor: str = "auto"
    device: str = "auto"
    deterministic: bool = True
    threads: int | None = Field(None, ge=1)
    #: a NaN/inf training loss: stop the run (default) or skip the step and count it
    nonfinite: Literal["stop", "skip"] = "stop"
    #: fp32, or bf16: forward passes in bfloat16 autocast (losses and weights stay float32)
    precision: Literal["fp32", "bf16"] = "fp32"
    #: also write every epoch's history as TensorBoard scalars under RUN_DIR/tensorboard
    tensorboard: bool = False


class MethodOptimizerConfig(_Strict):
    """The optimiser group of the weighting method's own learnable parameters (uncertainty
    log-variances, GradNorm's weights). A setting left out takes the method's default
    (``param_optimizer`` on its class), else the network's (``training.optimizer``)."""

    lr: float | None = Field(None, gt=0)
    momentum: float | None = Field(None, ge=0, lt=1)
    weight_decay: float | None = Field(None, ge=0)


class WeightingConfig(_Strict):
    name: str = "uniform"
    params: dict[str, Any] = Field(default_factory=dict)
    optimizer: MethodOptimizerConfig = Field(default_factory=MethodOptimizerConfig)  # type: ignore[arg-type]


class GroupingConfig(_Strict):
    """Online task grouping while training (``grouping.method: selective_sharing``, see
    :mod:`manytask.grouping.selective_sharing`); needs ``model.branches``."""

    method: Literal["none", "selective_sharing"] = "none"
    criterion: Literal["similarity", "dissimilarity", "variance"] = "similarity"
    merge: Literal["lowest_loss", "mean", "max", "min"] = "lowest_loss"
    rank: int = Field(4, ge=1)
    slots: int = Field(8, ge=1)
    min_samples: int = Field(1, ge=1)
    patience: int = Field(3, ge=1)
    start_epoch: int = Field(1, ge=1)


class ExperimentConfig(_Strict):
    """A whole experiment: one config file.

    ``plugins`` lists modules to import first (a user's own data sources, trunks or
    weighting methods, registered on import); they must be importable (on ``PYTHONPATH``)
    wherever the config is run, worker processes included.
    """

    name: str = "experiment"
    plugins: list[str] = Field(default_factory=list)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    output_dir: str = "runs"
    data: SerializeAsAny[DataSource] = Field(default_factory=MultiMNISTSource)

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, v: Any) -> DataSource:
        try:
            return parse_source(v)
        except ConfigError as err:
            raise ValueError(str(err)) from None
    tasks: list[TaskConfig]
    model: ModelConfig = Field(default_factory=ModelConfig)  # type: ignore[arg-type]
    training: TrainingConfig = Field(default_factory=TrainingConfig)  # type: ignore[arg-type]
    weighting: WeightingConfig = Field(default_factory=WeightingConfig)
    grouping: GroupingConfig = Field(default_factory=GroupingConfig)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _tasks(self) -> ExperimentConfig:
        if not self.tasks:
            raise ValueError("tasks: at least one task is required")
        names = [t.name for t in self.tasks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"tasks: duplicate task name(s) {', '.join(dup)}")
        return self

    def build_tasks(self) -> list[Task]:
        return [task for t in self.tasks for task in t.build_all()]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _format_error(err: ValidationError, where: str) -> str:
    return f"{where}: {validation_message(err)}"


def parse_config(data: Any, where: str = "config") -> ExperimentConfig:
    """Validate a config mapping; raise :class:`ConfigError` with one line on failure."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level, got {type(data).__name__}")
    import_plugins(data.get("plugins"), where)
    try:
        cfg = ExperimentConfig.model_validate(data)
        cfg.build_tasks()
    except ValidationError as err:
        raise ConfigError(_format_error(err, where)) from None
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    return cfg


def import_plugins(modules: Any, where: str = "config") -> None:
    """Import the modules a config's ``plugins`` names, so that the data sources, trunks and
    weighting methods they register are known before the config is validated."""
    if modules is None:
        return
    if not isinstance(modules, list) or not all(isinstance(m, str) and m for m in modules):
        raise ConfigError(f"{where}: plugins: expected a list of module names, got {modules!r}")
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(f"{where}: plugins: cannot import module '{name}' ({err})") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Read and validate a YAML config file (``overrides``: dotted keys → values)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    data = read_yaml_file(p)
    if data is None:
        raise ConfigError(f"{p}: empty config file (expected a mapping with at least 'tasks')")
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return parse_config(data, where=str(p))


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``key = 'a.b'`` (creating mappings on the way)."""
    parts = key.split(".")
    cur = data
    for part in parts[:-1]:
        nxt = cur.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override '{key}': '{part}' is not a mapping")
        cur = nxt
    cur[parts[-1]] = value
