"""``RunDir``: the directory every run writes, and everything downstream reads.

Layout::

    config.yaml          the validated config of the run
    history.jsonl        one JSON object per epoch (train losses, weights, val metrics, time)
    steps.jsonl          per-step task weights (and method scalars), one object per step
    summary.json         written last, atomically: best epoch, val and test metrics, status
    best.safetensors     model weights of the best epoch (chosen on validation)
    last.safetensors     model weights after the last finished epoch
    checkpoint.safetensors  the resumable unit: last and best weights plus the trainer state
                         (optimizer, weighting, scheduler, RNG, epoch) as tensors and JSON,
                         one file replaced atomically (see :mod:`manytask.training.checkpoint`)
    .lock                the owner's pid while a process trains into the directory

A run is finished when ``summary.json`` exists with ``"status": "complete"``; ``compare`` and
``group`` skip finished runs, so an interrupted sweep resumes where it stopped. Nothing in a
run directory is ever unpickled: a ``last_state.pt`` (the pickled state of older versions) is
refused, never loaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from manytask.atomic import atomic_replace, atomic_write_text
from manytask.errors import DataError, ManytaskError
from manytask.jsonable import to_jsonable
from manytask.training.checkpoint import (
    CHECKPOINT,
    CheckpointError,
    read_checkpoint,
    write_checkpoint,
)

LEGACY_STATE = "last_state.pt"


class RunDir:
    """A run's directory (created on first write)."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        #: read but never write (the processes other than rank 0 of a distributed run)
        self.readonly = readonly

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    # ---------------------------------------------------------------- config
    def write_config(self, config: Mapping[str, Any]) -> None:
        if self.readonly:
            return
        atomic_write_text(self.file("config.yaml"), yaml.safe_dump(to_jsonable(dict(config)), sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        p = self.file("config.yaml")
        try:
            doc = yaml.safe_load(p.read_text())
        except (yaml.YAMLError, UnicodeDecodeError):
            raise DataError(f"{p}: not valid YAML") from None
        if not isinstance(doc, dict):
            raise DataError(f"{p}: expected a mapping")
        return doc

    # ---------------------------------------------------------------- history
    def reset_logs(self) -> None:
        if self.readonly:
            return
        for name in ("history.jsonl", "steps.jsonl"):
            p = self.file(name)
            if p.exists():
                p.unlink()

    def append_jsonl(self, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if self.readonly:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.file(name), "a") as fh:
            fh.writelines(json.dumps(to_jsonable(dict(row))) + "\n" for row in rows)

    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        p = self.file(name)
        if not p.exists():
            return []
        rows = []
        lines = p.read_text(errors="replace").splitlines()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if i == len(lines) - 1:  # a line cut short by a killed writer: dropped on resume
                    break
                raise DataError(f"{p}: line {i + 1} is not valid JSON") from None
        return rows

    def history(self) -> list[dict[str, Any]]:
        return self.read_jsonl("history.jsonl")

    def truncate_history(self, epochs: int) -> None:
        """Keep only the first ``epochs`` epochs of the logs (used when resuming)."""
        if self.readonly:
            return
        rows = [r for r in self.history() if int(r["epoch"]) <= epochs]
        atomic_write_text(self.file("history.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))
        steps = [r for r in self.read_jsonl("steps.jsonl") if int(r["epoch"]) <= epochs]
        atomic_write_text(self.file("steps.jsonl"), "".join(json.dumps(r) + "\n" for r in steps))

    # ---------------------------------------------------------------- summary
    def write_summary(self, summary: Mapping[str, Any]) -> None:
        if self.readonly:
            return
        atomic_write_text(self.file("summary.json"), json.dumps(to_jsonable(dict(summary)), indent=2))

    def summary(self) -> dict[str, Any] | None:
        p = self.file("summary.json")
        if not p.exists():
            return None
        try:
            doc = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise DataError(f"{p}: not valid JSON (remove it to retrain this run)") from None
        if not isinstance(doc, dict):
            raise DataError(f"{p}: expected a JSON object")
        return doc

    def is_complete(self) -> bool:
        s = self.summary()
        return bool(s and s.get("status") == "complete")

    # ---------------------------------------------------------------- checkpoints
    def save_weights(self, name: str, module: torch.nn.Module) -> None:
        if self.readonly:
            return
        state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
        atomic_replace(self.file(f"{name}.safetensors"), lambda tmp: save_file(state, str(tmp)))

    def read_weights(self, name: str) -> dict[str, torch.Tensor]:
        """The tensors of ``<name>.safetensors``; :class:`CheckpointError` when the file is
        missing or corrupt (nothing is unpickled)."""
        p = self.file(f"{name}.safetensors")
        try:
            return load_file(str(p))
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{p}: not a readable safetensors file ({_first_line(err)})") from None

    def load_weights(self, name: str, module: torch.nn.Module) -> None:
        """Load ``<name>.safetensors`` into ``module``; :class:`CheckpointError` when the file is
        corrupt or does not fit the module."""
        load_module_state(module, self.read_weights(name), self.file(f"{name}.safetensors"))

    def has(self, name: str) -> bool:
        return self.file(name).exists()

    def save_checkpoint(self, model: Mapping[str, torch.Tensor], best: Mapping[str, torch.Tensor] | None,
                        state: Mapping[str, Any]) -> None:
        """Write the resumable unit (see :mod:`manytask.training.checkpoint`)."""
        if self.readonly:
            return
        write_checkpoint(self.file(CHECKPOINT), model, best, state)

    def load_checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, dict[str, Any]] | None:
        """``(last weights, best weights, state)``, or None when there is nothing to resume.
        A pickled ``last_state.pt`` is refused (loading it could run code)."""
        p = self.file(CHECKPOINT)
        if p.exists():
            return read_checkpoint(p)
        if self.has(LEGACY_STATE):
            raise CheckpointError(f"{self.file(LEGACY_STATE)}: refusing to load a pickled state file (it could run "
                                  f"code); only {CHECKPOINT} is resumed from")
        return None

    def clear_outputs(self) -> None:
        """Before a fresh run: remove what a previous run left (summary, checkpoints, logs)."""
        if self.readonly:
            return
        for name in ("summary.json", CHECKPOINT, LEGACY_STATE, "last.safetensors", "best.safetensors",
                     "predictions.csv", "history.jsonl", "steps.jsonl"):
            if self.has(name):
                self.file(name).unlink()

    # ---------------------------------------------------------------- ownership
    def lock(self) -> None:
        """Take the directory for this process (``.lock`` holds its pid); :class:`RunDirBusy` when
        another live process holds it. A lock left by a dead process is taken over."""
        if self.readonly:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        p = self.file(".lock")
        for _ in range(3):
            try:
                fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = _lock_owner(p)
                if owner is not None and owner != os.getpid() and _alive(owner):
                    raise RunDirBusy(f"{self.path}: in use by process {owner} (remove {p} if that is wrong)") from None
                if owner == os.getpid():
                    return
                p.unlink(missing_ok=True)  # stale: its owner is gone
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()}\n")
            return
        raise RunDirBusy(f"{self.path}: could not take {p}")

    def unlock(self) -> None:
        if self.readonly:
            return
        p = self.file(".lock")
        if _lock_owner(p) == os.getpid():
            p.unlink(missing_ok=True)


class RunDirBusy(ManytaskError):
    """Another live process is training into the same run directory."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_module_state(module: torch.nn.Module, state: Mapping[str, torch.Tensor], where: Path) -> None:
    """``module.load_state_dict(state)`` with a one-line :class:`CheckpointError` when they do not fit."""
    try:
        module.load_state_dict(dict(state))
    except (RuntimeError, KeyError, ValueError) as err:
        raise CheckpointError(f"{where}: weights do not fit the model ({_first_line(err)[:200]})") from None


def _lock_owner(p: Path) -> int | None:
    try:
        return int(p.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
