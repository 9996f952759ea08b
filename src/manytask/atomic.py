"""Atomic file writes: every report, table and run file goes through :func:`atomic_write`.

A file is written to a temporary name in its own folder and renamed into place
(:func:`os.replace`), so a reader (or a resumed command) never sees it half-written.
:func:`atomic_write_text`, :func:`atomic_write_json` and :func:`atomic_write_csv` are the
text, JSON and CSV forms of it.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_replace", "atomic_write", "atomic_write_csv", "atomic_write_json", "atomic_write_text"]


def atomic_replace(path: str | os.PathLike[str], fill: Callable[[Path], Any], *, fsync: bool = False) -> Path:
    """Call ``fill(tmp)`` to write a temporary file beside ``path``, then rename it to ``path``.

    For writers that take a file name (safetensors, NumPy); :func:`atomic_write` is the same for
    writers that take an open handle. A reader never sees a half-written ``path``: it sees the
    old file or the new one.

    Args:
        path: the file to (re)place; its folder is created when missing.
        fill: writes the content to the temporary file it is given.
        fsync: flush the content to disk before the rename.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        fill(Path(tmp))
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], Any], *, binary: bool = False,
                 fsync: bool = False) -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path``, then rename it to ``path``.

    Args:
        path: the file to (re)place; its folder is created when missing.
        write: writes the content to the open file handle.
        binary: open the temporary file in binary mode (text mode is UTF-8, no newline
            translation).
        fsync: flush the content to disk before the rename.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    def fill(tmp: Path) -> None:
        with (open(tmp, "wb") if binary else open(tmp, "w", newline="", encoding="utf-8")) as fh:
            write(fh)

    return atomic_replace(path, fill, fsync=fsync)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(text))


def atomic_write_json(path: str | os.PathLike[str], doc: Any, *, indent: int = 2) -> Path:
    """Write ``doc`` as indented JSON (numpy values, paths and NaN made JSON-safe) plus a newline."""
    from manytask.jsonable import to_jsonable

    return atomic_write_text(path, json.dumps(to_jsonable(doc), indent=indent) + "\n")


def _csv_cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def atomic_write_csv(path: str | os.PathLike[str], header: Sequence[str], rows: Sequence[Sequence[Any]], *,
                     fsync: bool = False) -> Path:
    """Write a CSV file (``\\n`` line ends) with a header row; ``None`` and NaN cells are left empty."""

    def write(fh: IO[str]) -> None:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows([_csv_cell(v) for v in row] for row in rows)

    return atomic_write(path, write, fsync=fsync)
