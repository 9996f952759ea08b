"""``RunDir``: the directory every run writes, and everything downstream reads.

Layout::

    config.yaml          the validated config of the run
    history.jsonl        one JSON object per epoch (train losses, weights, val metrics, time)
    steps.jsonl          per-step task weights (and method scalars), one object per step
    summary.json         written last, atomically: best epoch, val and test metrics, status
    best.safetensors     model weights of the best epoch (chosen on validation)
    last.safetensors     model weights after the last finished epoch
    last_state.pt        optimizer, weighting, scheduler, RNG state, epoch (exact resume)

A run is finished when ``summary.json`` exists with ``"status": "complete"``; ``compare`` and
``group`` skip finished runs, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from manytask.atomic import atomic_write_text
from manytask.jsonable import to_jsonable


class RunDir:
    """A run's directory (created on first write)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    # ---------------------------------------------------------------- config
    def write_config(self, config: Mapping[str, Any]) -> None:
        atomic_write_text(self.file("config.yaml"), yaml.safe_dump(to_jsonable(dict(config)), sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        return yaml.safe_load(self.file("config.yaml").read_text())

    # ---------------------------------------------------------------- history
    def reset_logs(self) -> None:
        for name in ("history.jsonl", "steps.jsonl"):
            p = self.file(name)
            if p.exists():
                p.unlink()

    def append_jsonl(self, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.file(name), "a") as fh:
            for row in rows:
                fh.write(json.dumps(to_jsonable(dict(row))) + "\n")

    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        p = self.file(name)
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]

    def history(self) -> list[dict[str, Any]]:
        return self.read_jsonl("history.jsonl")

    def truncate_history(self, epochs: int) -> None:
        """Keep only the first ``epochs`` epochs of the logs (used when resuming)."""
        rows = [r for r in self.history() if int(r["epoch"]) <= epochs]
        atomic_write_text(self.file("history.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))
        steps = [r for r in self.read_jsonl("steps.jsonl") if int(r["epoch"]) <= epochs]
        atomic_write_text(self.file("steps.jsonl"), "".join(json.dumps(r) + "\n" for r in steps))

    # ---------------------------------------------------------------- summary
    def write_summary(self, summary: Mapping[str, Any]) -> None:
        atomic_write_text(self.file("summary.json"), json.dumps(to_jsonable(dict(summary)), indent=2))

    def summary(self) -> dict[str, Any] | None:
        p = self.file("summary.json")
        return json.loads(p.read_text()) if p.exists() else None

    def is_complete(self) -> bool:
        s = self.summary()
        return bool(s and s.get("status") == "complete")

    # ---------------------------------------------------------------- checkpoints
    def save_weights(self, name: str, module: torch.nn.Module) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
        tmp = self.file(f".{name}.tmp")
        save_file(state, str(tmp))
        os.replace(tmp, self.file(f"{name}.safetensors"))

    def load_weights(self, name: str, module: torch.nn.Module) -> None:
        state = load_file(str(self.file(f"{name}.safetensors")))
        module.load_state_dict(state)

    def has(self, name: str) -> bool:
        return self.file(name).exists()

    def save_state(self, state: Mapping[str, Any]) -> None:
        tmp = self.file(".last_state.pt.tmp")
        torch.save(dict(state), tmp)
        os.replace(tmp, self.file("last_state.pt"))

    def load_state(self) -> dict[str, Any] | None:
        p = self.file("last_state.pt")
        return torch.load(p, weights_only=False) if p.exists() else None
