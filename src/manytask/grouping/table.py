"""Candidate networks and their per-task losses: the input of network selection.

A *candidate* is one trained (or predicted) network: the set of tasks it predicts, its
inference cost ``c_n`` (e.g. in Standard Network Times, SNT: multiply-adds relative to a
reference network), its per-task validation losses ``L(n, t)`` and optionally per-task test
losses, training time and free-form extra columns (Standley et al., ICML 2020, section 5).
A :class:`CandidateTable` is an ordered list of candidates over a fixed, ordered task set.

File layouts
------------
CSV / Parquet (one row per candidate; column order is free, names are exact):

=====================  ==============================================================
``tasks``              required; the predicted tasks joined with ``+``, e.g. ``a+b+c``
``cost``               required; inference cost, a finite number >= 0
``val_loss/<task>``    one column per task of the table (this defines the task set and
                       its order); a number for every predicted task, empty otherwise
``test_loss/<task>``   optional, same rule (an empty cell = not measured yet)
``train_seconds``      optional; empty = unknown
anything else          kept verbatim as an *extra* column (strings in CSV)
=====================  ==============================================================

Standley's tab-separated text format (``network_selection/results*.txt`` of the public
repository tstandley/taskgrouping): ``k`` columns = ``k`` tasks, an empty cell = the network
does not predict that task; line 1 holds the ``k`` half-size single-task networks (cost 0.5),
every further line one full-size network (cost 1) whose task subset is the set of its
non-empty cells. See :func:`read_standley`.

Writes are atomic (a temporary file in the same folder, then :func:`os.replace`), so a
training process can :func:`upsert_file` candidates one by one as they finish and a crash
never leaves a half-written table; the single-writer case is the supported one.

Every problem with the input raises :class:`manytask.errors.DataError` with one line that
names the file, the row and the column.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from manytask.atomic import atomic_write, atomic_write_csv
from manytask.errors import DataError

__all__ = [
    "STANDLEY_TASK_SET_1",
    "STANDLEY_TASK_SET_2",
    "Candidate",
    "CandidateTable",
    "LossKind",
    "read_standley",
    "read_table",
    "upsert_file",
]

LossKind = Literal["val", "test"]

#: Task Set 1 of Standley et al. (settings 1-3), in the column order of their tables:
#: semantic segmentation, depth, surface normals, SURF keypoints, Canny edges (s, d, n, k, e).
STANDLEY_TASK_SET_1: tuple[str, ...] = ("semseg", "depth", "normals", "keypoints", "edges")
#: Task Set 2 (setting 4): autoencoder, normals, occlusion edges, reshading, principal curvature.
STANDLEY_TASK_SET_2: tuple[str, ...] = (
    "autoencoder",
    "normals",
    "occlusion_edges",
    "reshading",
    "principal_curvature",
)

_SEP = "+"
_VAL = "val_loss/"
_TEST = "test_loss/"
_RESERVED = ("tasks", "cost", "train_seconds")


def _fmt_cost(cost: float) -> str:
    return f"{cost:g}"


@dataclass(frozen=True, eq=False)
class Candidate:
    """One candidate network.

    Attributes:
        tasks: the tasks the network predicts (non-empty).
        cost: inference cost ``c_n`` (finite, >= 0).
        val_loss: ``{task: loss}`` for every predicted task (finite numbers); these are the
            losses that selection minimises.
        test_loss: ``{task: loss}`` measured on held-out data, or empty when unknown.
        train_seconds: training time, if known.
        extra: free-form extra columns.
    """

    tasks: frozenset[str]
    cost: float
    val_loss: Mapping[str, float]
    test_loss: Mapping[str, float] = field(default_factory=dict)
    train_seconds: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tasks = frozenset(self.tasks)
        object.__setattr__(self, "tasks", tasks)
        if not tasks:
            raise DataError("candidate: a network must predict at least one task")
        for t in tasks:
            if not isinstance(t, str) or not t or _SEP in t or "/" in t:
                raise DataError(f"candidate: bad task name {t!r} (non-empty, no '+' or '/')")
        cost = float(self.cost)
        if not math.isfinite(cost) or cost < 0:
            raise DataError(f"candidate {self.label}: cost must be finite and >= 0, got {cost}")
        object.__setattr__(self, "cost", cost)
        val = {str(k): float(v) for k, v in dict(self.val_loss).items()}
        if set(val) != set(tasks):
            raise DataError(
                f"candidate {self.label}: val_loss tasks {sorted(val)} != predicted tasks "
                f"{sorted(tasks)}"
            )
        for k, v in val.items():
            if not math.isfinite(v):
                raise DataError(f"candidate {self.label}: val_loss of {k!r} is {v}")
        object.__setattr__(self, "val_loss", val)
        test = {str(k): float(v) for k, v in dict(self.test_loss).items()}
        for k, v in test.items():
            if k not in tasks:
                raise DataError(f"candidate {self.label}: test_loss for unpredicted task {k!r}")
            if not math.isfinite(v):
                raise DataError(f"candidate {self.label}: test_loss of {k!r} is {v}")
        object.__setattr__(self, "test_loss", test)
        if self.train_seconds is not None:
            object.__setattr__(self, "train_seconds", float(self.train_seconds))
        object.__setattr__(self, "extra", dict(self.extra))

    @property
    def label(self) -> str:
        """``a+b@1`` (tasks sorted by name, then ``@cost``); see :meth:`CandidateTable.label`."""
        return _SEP.join(sorted(self.tasks)) + "@" + _fmt_cost(float(self.cost))

    @property
    def key(self) -> tuple[frozenset[str], float]:
        """Identity of a candidate across tables: its task set and cost (Standley's matching)."""
        return (self.tasks, round(float(self.cost), 9))

    def losses(self, kind: LossKind = "val") -> Mapping[str, float]:
        """The validation (``"val"``) or test (``"test"``) losses."""
        if kind == "val":
            return self.val_loss
        if kind == "test":
            return self.test_loss
        raise ValueError(f"loss kind must be 'val' or 'test', got {kind!r}")

    def replace(self, **changes: Any) -> Candidate:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Candidate):
            return NotImplemented
        return (
            self.tasks == other.tasks
            and self.cost == other.cost
            and dict(self.val_loss) == dict(other.val_loss)
            and dict(self.test_loss) == dict(other.test_loss)
            and self.train_seconds == other.train_seconds
            and dict(self.extra) == dict(other.extra)
        )

    def __hash__(self) -> int:
        return hash((self.tasks, self.cost))


class CandidateTable:
    """An ordered list of candidates over an ordered task set.

    Candidates are unique by :attr:`Candidate.key` (task set, cost): :meth:`append` refuses a
    duplicate, :meth:`upsert` replaces it in place.

    Args:
        tasks: the task names, in column order.
        candidates: the candidates; each must predict only tasks of ``tasks``.
        source: where the table came from (used in messages).
    """

    def __init__(
        self,
        tasks: Sequence[str],
        candidates: Iterable[Candidate] = (),
        *,
        source: str | None = None,
    ) -> None:
        self.tasks: tuple[str, ...] = tuple(str(t) for t in tasks)
        if not self.tasks:
            raise DataError(f"{source or 'table'}: no tasks")
        if len(set(self.tasks)) != len(self.tasks):
            raise DataError(f"{source or 'table'}: duplicate task names in {list(self.tasks)}")
        for t in self.tasks:
            if not t or _SEP in t or "/" in t:
                raise DataError(f"{source or 'table'}: bad task name {t!r} (no '+' or '/')")
        self.source = source
        self._candidates: list[Candidate] = []
        self._index: dict[tuple[frozenset[str], float], int] = {}
        for c in candidates:
            self.append(c)

    # -- container protocol -------------------------------------------------------------
    @property
    def candidates(self) -> tuple[Candidate, ...]:
        return tuple(self._candidates)

    def __len__(self) -> int:
        return len(self._candidates)

    def __iter__(self) -> Iterator[Candidate]:
        return iter(self._candidates)

    def __getitem__(self, i: int) -> Candidate:
        return self._candidates[i]

    def __repr__(self) -> str:
        return f"CandidateTable(tasks={list(self.tasks)}, {len(self)} candidates)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CandidateTable):
            return NotImplemented
        return self.tasks == other.tasks and self._candidates == other._candidates

    # -- editing --------------------------------------------------------------------------
    def _check(self, c: Candidate) -> None:
        unknown = sorted(c.tasks - set(self.tasks))
        if unknown:
            raise DataError(
                f"{self.source or 'table'}: candidate {c.label} predicts unknown task(s) "
                f"{unknown}; table tasks are {list(self.tasks)}"
            )

    def index_of(self, key: tuple[frozenset[str], float] | Candidate) -> int | None:
        """Row of the candidate with this key (task set, cost), or None."""
        if isinstance(key, Candidate):
            key = key.key
        tasks, cost = key
        return self._index.get((frozenset(tasks), round(float(cost), 9)))

    def require_index(self, candidate: Candidate, label: str, role: str = "table") -> int:
        """Row of the network matching ``candidate`` by task set and cost; a one-line
        DataError naming this table (``role`` when it has no source) and ``label`` if none."""
        i = self.index_of(candidate.key)
        if i is None:
            raise DataError(f"{self.source or role}: no network {label} (matched by task set and cost)")
        return i

    def append(self, candidate: Candidate) -> int:
        """Add a candidate; a duplicate key (same task set and cost) is a DataError."""
        self._check(candidate)
        if candidate.key in self._index:
            raise DataError(
                f"{self.source or 'table'}: duplicate candidate {self.label(candidate)} "
                f"(row {self._index[candidate.key] + 1})"
            )
        self._index[candidate.key] = len(self._candidates)
        self._candidates.append(candidate)
        return len(self._candidates) - 1

    def upsert(self, candidate: Candidate) -> int:
        """Replace the candidate with the same key in place, or append it; returns its row."""
        self._check(candidate)
        i = self._index.get(candidate.key)
        if i is None:
            return self.append(candidate)
        self._candidates[i] = candidate
        return i

    def copy(self) -> CandidateTable:
        return CandidateTable(self.tasks, self._candidates, source=self.source)

    def filter(self, keep: Any) -> CandidateTable:
        """The candidates for which ``keep(candidate)`` is true, in order."""
        return CandidateTable(self.tasks, [c for c in self if keep(c)], source=self.source)

    # -- views used by the algorithms ----------------------------------------------------
    def label(self, c: Candidate) -> str:
        """``a+b@1`` with the tasks in table order."""
        return _SEP.join(t for t in self.tasks if t in c.tasks) + "@" + _fmt_cost(c.cost)

    def costs(self) -> np.ndarray:
        """Costs, shape (m,)."""
        return np.array([c.cost for c in self._candidates], dtype=float)

    def masks(self) -> list[int]:
        """Task sets as bit masks (bit i = ``self.tasks[i]``)."""
        pos = {t: i for i, t in enumerate(self.tasks)}
        return [sum(1 << pos[t] for t in c.tasks) for c in self._candidates]

    def has_test_losses(self) -> bool:
        """True when every candidate has a test loss for every task it predicts."""
        return len(self) > 0 and all(set(c.test_loss) == set(c.tasks) for c in self)

    def loss_matrix(self, kind: LossKind = "val") -> np.ndarray:
        """Losses, shape (m, n): ``L[i, j]`` = loss of candidate i on ``tasks[j]``, ``inf``
        where the candidate does not predict the task.

        Raises DataError when ``kind="test"`` and a predicted task has no test loss.
        """
        out = np.full((len(self), len(self.tasks)), np.inf)
        for i, c in enumerate(self._candidates):
            losses = c.losses(kind)
            for j, t in enumerate(self.tasks):
                if t in c.tasks:
                    if t not in losses:
                        raise DataError(
                            f"{self.source or 'table'}: row {i + 1} ({self.label(c)}) has no "
                            f"{kind}_loss for task {t!r}"
                        )
                    out[i, j] = losses[t]
        return out

    def test_as_val(self) -> CandidateTable:
        """A copy whose main (validation) losses are this table's test losses: what the
        random-grouping baseline selects on when it is scored on test."""
        return CandidateTable(self.tasks, [c.replace(val_loss=dict(c.test_loss)) for c in self],
                              source=self.source)

    def with_test_losses(self, test: CandidateTable) -> CandidateTable:
        """A copy whose test losses are ``test``'s validation losses, matched by key.

        This is how a Standley validation file and its test file become one table.
        """
        if set(test.tasks) != set(self.tasks):
            raise DataError(
                f"{test.source or 'test table'}: tasks {list(test.tasks)} differ from "
                f"{list(self.tasks)} of {self.source or 'table'}"
            )
        out = []
        for c in self._candidates:
            j = test.require_index(c, self.label(c), "test table")
            out.append(c.replace(test_loss=dict(test[j].val_loss)))
        return CandidateTable(self.tasks, out, source=self.source)

    # -- rows -----------------------------------------------------------------------------
    def extra_columns(self) -> list[str]:
        cols: list[str] = []
        for c in self._candidates:
            for k in c.extra:
                if k not in cols:
                    cols.append(k)
        return cols

    def columns(self) -> list[str]:
        """The file column layout of this table."""
        cols = ["tasks", "cost"] + [_VAL + t for t in self.tasks]
        if any(c.test_loss for c in self._candidates):
            cols += [_TEST + t for t in self.tasks]
        if any(c.train_seconds is not None for c in self._candidates):
            cols.append("train_seconds")
        return cols + self.extra_columns()

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per candidate in the documented column layout (None = empty cell)."""
        cols = self.columns()
        rows = []
        for c in self._candidates:
            row: dict[str, Any] = {"tasks": _SEP.join(t for t in self.tasks if t in c.tasks)}
            row["cost"] = c.cost
            for t in self.tasks:
                row[_VAL + t] = c.val_loss.get(t)
                if _TEST + t in cols:
                    row[_TEST + t] = c.test_loss.get(t)
            if "train_seconds" in cols:
                row["train_seconds"] = c.train_seconds
            for k in self.extra_columns():
                row[k] = c.extra.get(k)
            rows.append(row)
        return rows

    @classmethod
    def from_rows(
        cls, header: Sequence[str], rows: Iterable[Mapping[str, Any]], *, source: str
    ) -> CandidateTable:
        """Build a table from rows in the documented layout; errors name source/row/column.

        Rows are numbered from 1 (the first data row); for CSV files the line number is
        one more (the header is line 1).
        """
        header = [str(h) for h in header]
        for col in ("tasks", "cost"):
            if col not in header:
                raise DataError(f"{source}: missing column {col!r} (columns: {header})")
        if len(set(header)) != len(header):
            dup = sorted({h for h in header if header.count(h) > 1})
            raise DataError(f"{source}: duplicate column(s) {dup}")
        tasks = [h[len(_VAL) :] for h in header if h.startswith(_VAL)]
        if not tasks:
            raise DataError(f"{source}: no '{_VAL}<task>' column")
        for h in header:
            if h.startswith(_TEST) and h[len(_TEST) :] not in tasks:
                raise DataError(
                    f"{source}: column {h!r} names unknown task {h[len(_TEST):]!r} "
                    f"(no '{_VAL}{h[len(_TEST):]}' column)"
                )
        extras = [h for h in header if h not in _RESERVED and not h.startswith((_VAL, _TEST))]
        table = cls(tasks, source=source)
        for r, row in enumerate(rows, start=1):
            where = f"{source}: row {r}"
            raw_tasks = _cell(row.get("tasks"))
            if raw_tasks is None:
                raise DataError(f"{where}, column 'tasks': empty")
            pred = [t.strip() for t in str(raw_tasks).split(_SEP)]
            for t in pred:
                if t not in tasks:
                    raise DataError(
                        f"{where}, column 'tasks': unknown task {t!r} (known: {tasks})"
                    )
            if len(set(pred)) != len(pred):
                raise DataError(f"{where}, column 'tasks': repeated task in {raw_tasks!r}")
            cost = _number(row.get("cost"), f"{where}, column 'cost'")
            if cost is None:
                raise DataError(f"{where}, column 'cost': empty")
            if not math.isfinite(cost) or cost < 0:
                raise DataError(f"{where}, column 'cost': must be finite and >= 0, got {cost}")
            val: dict[str, float] = {}
            test: dict[str, float] = {}
            for t in tasks:
                for prefix, dest, required in ((_VAL, val, True), (_TEST, test, False)):
                    col = prefix + t
                    if col not in header:
                        continue
                    x = _number(row.get(col), f"{where}, column {col!r}")
                    if t in pred:
                        if x is None:
                            if required:
                                raise DataError(
                                    f"{where}, column {col!r}: empty but task {t!r} is in "
                                    f"'tasks'"
                                )
                            continue
                        if not math.isfinite(x):
                            raise DataError(f"{where}, column {col!r}: loss must be finite")
                        dest[t] = x
                    elif x is not None and not math.isnan(x):
                        raise DataError(
                            f"{where}, column {col!r}: a loss is given but task {t!r} is not "
                            f"in 'tasks'"
                        )
            secs = None
            if "train_seconds" in header:
                secs = _number(row.get("train_seconds"), f"{where}, column 'train_seconds'")
            extra = {k: row.get(k) for k in extras if _cell(row.get(k)) is not None}
            cand = Candidate(
                frozenset(pred), cost, val, test_loss=test, train_seconds=secs, extra=extra
            )
            if cand.key in table._index:
                raise DataError(
                    f"{where}: duplicate of row {table._index[cand.key] + 1} "
                    f"({table.label(cand)}: same tasks and cost)"
                )
            table.append(cand)
        return table

    # -- files ----------------------------------------------------------------------------
    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the table as CSV (atomically)."""
        cols = self.columns()
        rows = [["" if row[c] is None else _csv_value(row[c]) for c in cols] for row in self.to_rows()]
        return atomic_write_csv(path, cols, rows, fsync=True)

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write the table as Parquet (atomically); needs ``pyarrow``."""
        pa, pq = _pyarrow(str(path))
        cols = self.columns()
        rows = self.to_rows()
        arrays = {}
        for c in cols:
            values = [r[c] for r in rows]
            if c == "tasks":
                arrays[c] = pa.array(values, type=pa.string())
            elif c == "cost" or c == "train_seconds" or c.startswith((_VAL, _TEST)):
                arrays[c] = pa.array(values, type=pa.float64())
            else:
                arrays[c] = pa.array([None if v is None else str(v) for v in values], pa.string())
        tbl = pa.table(arrays)
        return atomic_write(path, lambda f: pq.write_table(tbl, f), binary=True, fsync=True)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write by extension: ``.csv`` or ``.parquet`` / ``.pq``."""
        suffix = Path(path).suffix.lower()
        if suffix == ".csv":
            return self.to_csv(path)
        if suffix in (".parquet", ".pq"):
            return self.to_parquet(path)
        raise DataError(f"{path}: unknown table format {suffix!r} (use .csv or .parquet)")

    @classmethod
    def read_csv(cls, path: str | os.PathLike[str]) -> CandidateTable:
        """Read a CSV file in the documented layout."""
        p = Path(path)
        if not p.is_file():
            raise DataError(f"{p}: file not found")
        with p.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            try:
                header = next(reader)
            except StopIteration:
                raise DataError(f"{p}: empty file (no header line)") from None
            rows = []
            for line_no, values in enumerate(reader, start=2):
                if not values or all(not v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    raise DataError(
                        f"{p}: row {line_no - 1} (line {line_no}): {len(values)} cells, "
                        f"header has {len(header)}"
                    )
                rows.append(dict(zip(header, values)))
        return cls.from_rows([h.strip() for h in header], _strip_keys(rows), source=str(p))

    @classmethod
    def read_parquet(cls, path: str | os.PathLike[str]) -> CandidateTable:
        """Read a Parquet file in the documented layout; needs ``pyarrow``."""
        p = Path(path)
        if not p.is_file():
            raise DataError(f"{p}: file not found")
        _, pq = _pyarrow(str(p))
        try:
            tbl = pq.read_table(p)
        except Exception as e:  # pyarrow raises several types for corrupt files
            raise DataError(f"{p}: not a readable Parquet file ({e.__class__.__name__})") from e
        return cls.from_rows(tbl.column_names, tbl.to_pylist(), source=str(p))

    @classmethod
    def read(cls, path: str | os.PathLike[str], **standley: Any) -> CandidateTable:
        """Read by extension: ``.csv``, ``.parquet`` / ``.pq``, or Standley ``.txt`` / ``.tsv``
        (keyword arguments go to :func:`read_standley`)."""
        return read_table(path, **standley)


def read_table(path: str | os.PathLike[str], **standley: Any) -> CandidateTable:
    """Read a candidate table by file extension (see the module docstring for layouts)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    if suffix == ".csv":
        return CandidateTable.read_csv(p)
    if suffix in (".parquet", ".pq"):
        return CandidateTable.read_parquet(p)
    if suffix in (".txt", ".tsv"):
        return read_standley(p, **standley)
    raise DataError(f"{p}: unknown table format {suffix!r} (use .csv, .parquet or Standley .txt)")


def read_standley(
    path: str | os.PathLike[str],
    task_names: Sequence[str] | None = None,
    *,
    half_cost: float = 0.5,
    full_cost: float = 1.0,
) -> CandidateTable:
    """Read one of Standley et al.'s tab-separated loss tables.

    Line 1 holds the ``k`` half-size single-task networks (cost ``half_cost``), one loss per
    column; every further non-blank line is one full-size network (cost ``full_cost``)
    predicting exactly the tasks of its non-empty cells (the subset is inferred, so missing
    or reordered lines are fine). Lines must have ``k`` cells (trailing empty cells count).

    Args:
        task_names: names of the ``k`` columns. Default: by file name, Standley's
            ``results_alt*`` files are :data:`STANDLEY_TASK_SET_2` and the other
            ``results*`` files :data:`STANDLEY_TASK_SET_1`; anything else ``task1..taskk``.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    lines = [ln.rstrip("\r\n") for ln in p.read_text(encoding="utf-8").split("\n")]
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    if not numbered:
        raise DataError(f"{p}: empty file")
    k = len(numbered[0][1].split("\t"))
    if task_names is None:
        name = p.name.lower()
        if name.startswith("results_alt") and k == 5:
            task_names = STANDLEY_TASK_SET_2
        elif name.startswith("results") and k == 5:
            task_names = STANDLEY_TASK_SET_1
        else:
            task_names = tuple(f"task{i + 1}" for i in range(k))
    task_names = tuple(task_names)
    if len(task_names) != k:
        raise DataError(f"{p}: line 1 has {k} columns but {len(task_names)} task names given")
    table = CandidateTable(task_names, source=str(p))
    for n_line, (line_no, line) in enumerate(numbered):
        cells = line.split("\t")
        if len(cells) != k:
            raise DataError(f"{p}: row {line_no}: {len(cells)} tab-separated cells, expected {k}")
        values: dict[str, float] = {}
        for j, cell in enumerate(cells):
            x = _number(cell, f"{p}: row {line_no}, column {j + 1} ({task_names[j]})")
            if x is None:
                continue
            if not math.isfinite(x) or x < 0:
                raise DataError(
                    f"{p}: row {line_no}, column {j + 1} ({task_names[j]}): bad loss {cell!r}"
                )
            values[task_names[j]] = x
        if not values:
            raise DataError(f"{p}: row {line_no}: no loss in any column")
        if n_line == 0:
            if len(values) != k:
                missing = [t for t in task_names if t not in values]
                raise DataError(
                    f"{p}: row {line_no}: the half-size single-task line lacks {missing}"
                )
            for t in task_names:
                table.append(Candidate(frozenset([t]), half_cost, {t: values[t]}))
        else:
            cand = Candidate(frozenset(values), full_cost, values)
            prev = table.index_of(cand)
            if prev is not None:
                raise DataError(
                    f"{p}: row {line_no}: duplicate network {table.label(cand)} "
                    f"(same non-empty columns as an earlier row)"
                )
            table.append(cand)
    return table


def upsert_file(
    path: str | os.PathLike[str],
    candidate: Candidate,
    *,
    tasks: Sequence[str] | None = None,
) -> CandidateTable:
    """Insert or replace one candidate in a CSV / Parquet table file, atomically.

    The file is created when missing (then ``tasks`` gives the table's task set, in order);
    otherwise it is read, :meth:`CandidateTable.upsert` is applied and the whole table is
    written to a temporary file and moved over the old one, so a reader or a crash never sees
    a partial table. Safe for one writer (a training loop appending as runs finish and
    resuming later); concurrent writers need an external lock.
    """
    p = Path(path)
    if p.exists():
        table = CandidateTable.read(p)
        if tasks is not None and tuple(tasks) != table.tasks:
            raise DataError(f"{p}: has tasks {list(table.tasks)}, not {list(tasks)}")
    else:
        if tasks is None:
            raise DataError(f"{p}: does not exist yet; pass tasks= to create it")
        table = CandidateTable(tasks, source=str(p))
    table.upsert(candidate)
    table.write(p)
    return table


# -- helpers -------------------------------------------------------------------------------
def _cell(x: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, str) and not x.strip():
        return None
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def _number(x: Any, where: str) -> float | None:
    """Parse a numeric cell; None for an empty cell (or a missing value of a Parquet/pandas
    column); a NaN written out as text stays NaN, so that callers refuse it as a loss or cost
    instead of reading it as a missing network; DataError for anything else."""
    x = _cell(x)
    if x is None:
        return None
    if isinstance(x, bool):
        raise DataError(f"{where}: non-numeric value {x!r}")
    if isinstance(x, (int, float, np.integer, np.floating)):
        v = float(x)
    else:
        s = str(x).strip()
        try:
            v = float(s)
        except ValueError:
            raise DataError(f"{where}: non-numeric value {s!r}") from None
        return v
    return None if math.isnan(v) else v


def _csv_value(x: Any) -> str:
    if isinstance(x, float):
        return repr(x) if math.isfinite(x) else str(x)
    return str(x)


def _strip_keys(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k.strip(): v for k, v in r.items()} for r in rows]


def _pyarrow(where: str) -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a declared optional dependency
        raise DataError(f"{where}: Parquet needs pyarrow (pip install pyarrow)") from None
    return pa, pq
