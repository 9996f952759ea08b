"""Every case of the bad-input corpus (:mod:`corpus_cases`) is refused the same way: exit code 2,
one line ``manytask: error: …`` naming what and where, no traceback, and no run directory that
looks complete. A property-based fuzz of configs checks the API side: any mutation of a valid
config is either accepted or refused with :class:`ConfigError`, never another exception."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from corpus_cases import CASES, Case
from typer.testing import CliRunner

from manytask.cli import app

runner = CliRunner()


def test_the_corpus_is_large_and_covers_every_kind_of_input() -> None:
    groups = {c.group for c in CASES}
    assert len(CASES) >= 40 and groups == {"config", "data", "rundir", "cli"}
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_one_line(tmp_path: Path, case: Case) -> None:
    args = case.build(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("summary.json")}
    result = runner.invoke(app, args)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(lines) == 1 and lines[0].startswith("manytask: error: "), result.stderr
    assert case.expect in lines[0], lines[0]
    assert "Traceback" not in result.output
    for p in tmp_path.rglob("summary.json"):  # nothing new looks finished
        assert before.get(p) == p.stat().st_mtime_ns, p
    if case.group == "cli":  # arguments are checked before anything is written
        assert not (tmp_path / "out").exists() and not (tmp_path / "sel").is_dir()
    assert not os.path.exists("/tmp/manytask-corpus-pwned")
