"""``kind: table`` — a CSV or Parquet table of your own: feature columns and label columns.

Every task reads one label column (its ``target``, default its name). Missing label cells
are missing labels, masked per task. See ``docs/data.md`` for every field.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from manytask.data.batch import Splits, TensorDataset
from manytask.data.encoding import SPLIT_NAMES, encode_label_columns
from manytask.data.sources.base import HeldOutFractions, register_source
from manytask.errors import ConfigError, DataError

if TYPE_CHECKING:  # pandas is imported when a table is read, not when a config is checked
    import pandas as pd

__all__ = ["TableSource", "read_table", "table_format"]

_PARQUET_SUFFIXES = (".parquet", ".pq")


def table_format(path: str | Path, fmt: str = "auto") -> str:
    """``csv`` or ``parquet``: ``fmt``, or for ``auto`` the file's suffix (``.parquet``/``.pq``)."""
    if fmt != "auto":
        return fmt
    return "parquet" if Path(path).suffix.lower() in _PARQUET_SUFFIXES else "csv"


def read_table(path: str | Path, fmt: str = "auto", *, text_columns: Sequence[str] = (),
               delimiter: str = ",") -> pd.DataFrame:
    """Read a CSV (any compression pandas infers from the suffix) or Parquet file.

    Args:
        text_columns: columns read as text (ids, split names), so ``007`` stays ``007``.

    Raises:
        DataError: the file is missing or unreadable, has no row, or is Parquet while pyarrow
            is not installed (names the extra to install).
    """
    import pandas as pd

    from manytask.data.encoding import MISSING_TEXT, value_key

    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if not p.is_file():
        raise DataError(f"{p}: not a file")
    kind = table_format(p, fmt)
    try:
        if kind == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise DataError(f"{p}: reading Parquet needs pyarrow: pip install 'manytask[parquet]'") from None
            frame = pd.read_parquet(p, engine="pyarrow")
            for c in text_columns:
                if c in frame.columns:
                    frame[c] = frame[c].map(value_key, na_action="ignore")
        else:
            frame = pd.read_csv(p, sep=delimiter, dtype={c: str for c in text_columns},
                                na_values=list(MISSING_TEXT), keep_default_na=False)
    except DataError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{p}: cannot read as {kind} ({detail})") from None
    if len(frame) == 0:
        raise DataError(f"{p}: the table has no data row")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _missing_column(where: str, column: str, role: str, frame: pd.DataFrame) -> DataError:
    shown = ", ".join(list(frame.columns)[:12]) + (", ..." if frame.shape[1] > 12 else "")
    return DataError(f"{where}: no column '{column}' ({role}; the table has {shown})")


class SplitNames(BaseModel):
    """The values of ``split_column`` that name each split (compared in lower case; defaults:
    :data:`manytask.data.encoding.SPLIT_NAMES`)."""

    model_config = ConfigDict(extra="forbid")

    train: list[str] = Field(default_factory=lambda: list(SPLIT_NAMES["train"]))
    val: list[str] = Field(default_factory=lambda: list(SPLIT_NAMES["val"]))
    test: list[str] = Field(default_factory=lambda: list(SPLIT_NAMES["test"]))


@register_source
class TableSource(HeldOutFractions):
    """A CSV or Parquet file: one row per sample, feature columns and label columns.

    Rows are split at random (``val_fraction``, ``test_fraction``) or by a ``split_column``.
    Features: ``features`` (default: every column that is not a target, id, split or
    ``exclude`` column); text and boolean columns are categorical (or the ``categorical``
    list), encoded ``onehot`` or as ordinal ``codes`` from the training rows' categories;
    numbers are standardised with training statistics, missing numbers get the training mean.
    Labels: numbers as they are (``standardize_targets``: standardised with training
    statistics), names as class indices (``classes``, else sorted), missing cells as missing
    labels.
    """

    summary: ClassVar[str] = "a CSV or Parquet table of your own (feature and label columns)"

    kind: Literal["table"] = "table"
    path: str
    format: Literal["auto", "csv", "parquet"] = "auto"
    delimiter: str = Field(",", min_length=1)
    targets: list[str] | None = None
    features: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)
    categorical: list[str] | None = None
    categorical_encoding: Literal["onehot", "codes"] = "onehot"
    max_categories: int = Field(100, ge=1)
    standardize: bool = True
    classes: dict[str, list[str | int | float | bool]] = Field(default_factory=dict)
    standardize_targets: list[str] = Field(default_factory=list)
    id_column: str | None = None
    split_column: str | None = None
    split_names: SplitNames = Field(default_factory=SplitNames)

    @model_validator(mode="after")
    def _consistent(self) -> TableSource:
        if self.split_column and {"val_fraction", "test_fraction"} & self.model_fields_set:
            raise ValueError("split_column: the rows are split by this column; "
                             "remove val_fraction / test_fraction")
        if self.features is None and self.targets is None:
            raise ValueError("targets: list every label column of the table (or list the features), "
                             "so that no label is used as a feature")
        for name, cls_list in self.classes.items():
            if len(cls_list) < 2 or len({str(c) for c in cls_list}) != len(cls_list):
                raise ValueError(f"classes.{name}: expected at least two distinct classes, got {cls_list}")
        return self

    # ---------------------------------------------------------------- columns
    def label_columns(self, columns: Sequence[str]) -> list[str]:
        """The columns never used as features: ``targets`` and the columns asked for."""
        return list(dict.fromkeys([*(self.targets or []), *columns]))

    def feature_columns(self, frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
        """The feature columns (checked against the table and the label columns)."""
        where = self.path
        reserved = set(self.label_columns(columns)) | {self.id_column, self.split_column}
        if self.features is None:
            return [c for c in frame.columns if c not in reserved and c not in set(self.exclude)]
        for c in self.features:
            if c not in frame.columns:
                raise _missing_column(where, c, "data.features", frame)
            if c in reserved:
                raise ConfigError(f"data.features: column '{c}' is also a label, id or split column")
        return list(self.features)

    def _check_columns(self, frame: pd.DataFrame, columns: Sequence[str]) -> None:
        named = [(c, "a task's target") for c in columns]
        named += [(c, "data.targets") for c in self.targets or []]
        named += [(c, f"data.{role}") for role, c in (("id_column", self.id_column),
                                                      ("split_column", self.split_column)) if c]
        named += [(c, "data.categorical") for c in self.categorical or []]
        named += [(c, "data.exclude") for c in self.exclude]
        for c, role in named:
            if c not in frame.columns:
                raise _missing_column(self.path, c, role, frame)
        for field, names in (("classes", list(self.classes)), ("standardize_targets", self.standardize_targets)):
            for c in names:
                if c not in self.label_columns(columns):
                    raise ConfigError(f"data.{field}: '{c}' is not a label column (data.targets)")

    # ---------------------------------------------------------------- build
    def _split(self, frame: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from manytask.data.encoding import Place, split_rows
        from manytask.data.tabular import tabular_split_indices

        if not self.split_column:
            return tabular_split_indices(len(frame), val_fraction=self.val_fraction,
                                         test_fraction=self.test_fraction, fraction=self.fraction, seed=seed)
        return split_rows(frame[self.split_column], Place(self.path, self.split_column),
                          names=self.split_names.model_dump(), fraction=self.fraction, seed=seed,
                          setting="data.split_names")

    def _encoder(self, frame: pd.DataFrame, features: list[str], train: np.ndarray) -> Any:
        from manytask.data.encoding import is_numeric_column
        from manytask.data.table_encoding import FeatureEncoder

        if self.categorical is None:
            categorical = [c for c in features if not is_numeric_column(frame[c])]
        else:
            categorical = [c for c in features if c in set(self.categorical)]
        numeric = [c for c in features if c not in set(categorical)]
        return FeatureEncoder.fit(frame, train, numeric=numeric, categorical=categorical,
                                  encoding=self.categorical_encoding, standardize=self.standardize,
                                  max_categories=self.max_categories, where=self.path)

    def build(self, columns: Sequence[str], seed: int) -> Splits:
        frame = read_table(self.path, self.format, delimiter=self.delimiter,
                           text_columns=[c for c in (self.id_column, self.split_column) if c])
        self._check_columns(frame, columns)
        features = self.feature_columns(frame, columns)
        if not features:
            raise ConfigError(f"data.features: {self.path} has no column left to use as a feature")
        train, val, test = self._split(frame, seed)
        encoder = self._encoder(frame, features, train)
        inputs = torch.from_numpy(encoder.transform(frame, where=self.path))
        labels, codings, scales = encode_label_columns(frame, columns, train, self.path, classes=self.classes,
                                                       standardize=self.standardize_targets)
        targets = {c: torch.from_numpy(y) for c, y in labels.items()}
        if self.id_column:
            ids = frame[self.id_column].to_numpy(dtype=object)
        else:
            ids = np.arange(1, len(frame) + 1)
        id_name = self.id_column or "row"

        def part(idx: np.ndarray) -> TensorDataset:
            t = torch.from_numpy(idx)
            return TensorDataset(inputs[t], {k: v[t] for k, v in targets.items()}, ids=ids[idx],
                                 id_name=id_name, codings=codings, scales=scales)

        return Splits(part(train), part(val), part(test))
