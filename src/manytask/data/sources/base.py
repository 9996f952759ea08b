"""Data sources as plug-ins: each ``kind`` of the ``data`` config section is one class.

A source is a pydantic model that owns its config fields and their validation, and builds
the train / validation / test splits for the target columns the tasks read::

    @register_source
    class MySource(DataSource):
        kind: Literal["mine"] = "mine"
        path: str

        def build(self, columns, seed):
            ...
            return Splits(train, val, test)

Registering makes ``data: {kind: mine, path: ...}`` valid in every config (the ``data``
section is a union over the registered sources, discriminated by ``kind``). Common to every
source: ``fraction`` (share of the training split kept, nested across fractions) and ``seed``
(fixes which samples land in which split; default: the experiment's seed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from manytask.data.batch import Splits
from manytask.errors import ConfigError

__all__ = [
    "DataSource",
    "HeldOutFractions",
    "available_sources",
    "parse_source",
    "register_source",
    "source_class",
    "validation_message",
]

S = TypeVar("S", bound=type["DataSource"])
_SOURCES: dict[str, type[DataSource]] = {}


class DataSource(BaseModel):
    """Base class of every data source (one config section ``data``)."""

    model_config = ConfigDict(extra="forbid")

    #: one line shown by ``manytask sources`` and in error messages
    summary: ClassVar[str] = ""

    kind: str
    fraction: float = Field(1.0, gt=0, le=1)
    seed: int | None = Field(None, ge=0)

    def build(self, columns: Sequence[str], seed: int) -> Splits:
        """The splits with the named target ``columns`` (raise ``DataError`` / ``ConfigError``
        naming the file, row or column when the data cannot serve them)."""
        raise NotImplementedError

    def available_columns(self) -> list[str] | None:
        """Target columns this source can provide, when known without reading data."""
        return None

    def check_columns(self, columns: Sequence[str], available: Sequence[str]) -> None:
        """Raise a ConfigError naming the columns that ``available`` lacks."""
        missing = [c for c in columns if c not in available]
        if missing:
            raise ConfigError(
                f"tasks: column(s) {', '.join(missing)} not in the {self.kind} data "
                f"(available: {', '.join(available)})"
            )


def register_source(cls: S) -> S:
    """Class decorator: make ``cls`` a ``data.kind`` (its ``kind`` field's default)."""
    field = cls.model_fields.get("kind")
    kind = None if field is None else field.default
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{cls.__name__}: a data source needs a 'kind' field with a string default")
    if kind in _SOURCES and _SOURCES[kind] is not cls:
        raise ValueError(f"data source kind '{kind}' is already registered by {_SOURCES[kind].__name__}")
    _SOURCES[kind] = cls
    return cls


def available_sources() -> list[str]:
    """Registered ``data.kind`` names, sorted."""
    return sorted(_SOURCES)


def source_class(kind: str) -> type[DataSource]:
    if kind not in _SOURCES:
        raise ConfigError(f"kind: unknown data kind '{kind}' (expected one of {', '.join(available_sources())})")
    return _SOURCES[kind]


def validation_message(err: ValidationError) -> str:
    """The first problem of a pydantic error as ``field: message`` (plus a count of the rest)."""
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "missing":
        msg = "field required"
    elif e["type"] == "extra_forbidden":
        msg = "unknown field"
    more = f" (and {len(err.errors()) - 1} more problem(s))" if len(err.errors()) > 1 else ""
    if loc == "data" and re.match(r"[\w.]+: ", msg):  # a data source's own field
        loc, msg = msg.split(": ", 1)
        loc = f"data.{loc}"
    return f"{loc}: {msg}{more}" if loc else f"{msg}{more}"


def parse_source(value: Any, default_kind: str = "multimnist") -> DataSource:
    """A mapping (or a source) as the registered source its ``kind`` names.

    Raises:
        ConfigError: unknown kind or invalid fields, as one line ``field: problem``.
    """
    if isinstance(value, DataSource):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected a mapping with a 'kind', got {type(value).__name__}")
    kind = value.get("kind", default_kind)
    if not isinstance(kind, str):
        raise ConfigError(f"kind: expected a name, got {kind!r}")
    cls = source_class(kind)
    try:
        return cls.model_validate({**value, "kind": kind})
    except ValidationError as err:
        raise ConfigError(validation_message(err)) from None


class HeldOutFractions(DataSource):
    """A source whose rows are split at random: ``test_fraction`` of them for testing,
    ``val_fraction`` for validation, the rest for training (seeded; see
    :func:`manytask.data.tabular.tabular_split_indices`)."""

    kind: str
    val_fraction: float = Field(0.15, ge=0, lt=1)
    test_fraction: float = Field(0.2, ge=0, lt=1)
