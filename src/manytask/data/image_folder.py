"""Reading a folder of image files and a CSV of their labels (the ``images`` source's I/O).

* :func:`read_label_csv` — the CSV's file names and the requested columns as text cells,
  with the line number of every row (for messages).
* :func:`list_image_files` — image files under a folder, as paths relative to it.
* :func:`match_files` — every file the CSV names must exist; images without a CSV row are
  reported (the source ignores them with a warning).
* :func:`decode_images` — decode, convert (``L`` / ``RGB``) and resize with Pillow into one
  preallocated uint8 array ``(N, C, H, W)``, refusing before allocating if it would exceed
  a memory cap.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from manytask.errors import ConfigError, DataError

__all__ = ["IMAGE_SUFFIXES", "LabelTable", "decode_images", "list_image_files", "match_files", "read_label_csv"]

#: File name endings treated as images when listing a folder.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})


def _file_id(name: str) -> str:
    """A file name as a normalised relative POSIX path (``./a\\b.png`` -> ``a/b.png``)."""
    return str(PurePosixPath(name.strip().replace("\\", "/")))


@dataclass(frozen=True)
class LabelTable:
    """What :func:`read_label_csv` read: one entry per data row, in file order."""

    path: Path
    files: list[str]
    lines: list[int]
    cells: dict[str, list[str]]

    def line(self, i: int) -> str:
        """How row ``i`` is named in messages."""
        return f"line {self.lines[i]}"


def read_label_csv(path: Path, file_column: str, columns: Sequence[str]) -> LabelTable:
    """The file names and the text cells of ``columns`` of the CSV at ``path``.

    Raises:
        DataError: the file is missing or unreadable, a column is absent (the message lists
            the header), a row has the wrong number of fields, or a file name is empty or
            repeated (the message names the line).
    """
    if not path.is_file():
        raise DataError(f"{path}: labels file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            wanted = list(dict.fromkeys([file_column, *columns]))
            missing = [c for c in wanted if c not in header]
            if missing:
                raise DataError(f"{path}: no column '{missing[0]}' (columns: {', '.join(header) or 'none'})")
            pos = {c: header.index(c) for c in wanted}
            files: list[str] = []
            lines: list[int] = []
            cells: dict[str, list[str]] = {c: [] for c in columns}
            seen: dict[str, int] = {}
            for row in reader:
                if not row or all(not f.strip() for f in row):
                    continue
                line = reader.line_num
                if len(row) != len(header):
                    raise DataError(f"{path}: line {line}: {len(row)} fields, but the header has {len(header)}")
                name = _file_id(row[pos[file_column]]) if row[pos[file_column]].strip() else ""
                if not name:
                    raise DataError(f"{path}: line {line}: column '{file_column}' is empty")
                if name in seen:
                    raise DataError(f"{path}: line {line}: file '{name}' is already listed on line {seen[name]}")
                seen[name] = line
                files.append(name)
                lines.append(line)
                for c in columns:
                    cells[c].append(row[pos[c]])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the CSV ({exc})") from None
    if not files:
        raise DataError(f"{path}: no data rows")
    return LabelTable(path, files, lines, cells)


def list_image_files(root: Path) -> set[str]:
    """Files under ``root`` (recursively) whose names end in an image suffix, as relative
    POSIX paths."""
    found = set()
    for p in root.rglob("*"):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            found.add(p.relative_to(root).as_posix())
    return found


def _some(names: Sequence[str], k: int = 3) -> str:
    shown = ", ".join(names[:k])
    return shown + (", ..." if len(names) > k else "")


def match_files(table: LabelTable, root: Path, on_disk: set[str], file_column: str) -> list[str]:
    """Check that every file the CSV names is an image under ``root``; return the images
    under ``root`` that have no CSV row (sorted).

    Raises:
        DataError: names the first few files the CSV lists but ``root`` lacks, and counts them.
    """
    missing = [f for f in table.files if f not in on_disk]
    if missing:
        first = table.files.index(missing[0])
        raise DataError(
            f"{table.path}: {len(missing)} file(s) in column '{file_column}' are not images under {root} "
            f"(first on {table.line(first)}): {_some(missing)}"
        )
    return sorted(on_disk.difference(table.files))


def _open(path: Path, mode: str, size: tuple[int, int] | None, resample: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as source:
            im = source.convert(mode)
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), resample=resample)
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot decode the image ({type(exc).__name__}: {exc})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def first_image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of the image at ``path`` (header only)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return int(im.size[1]), int(im.size[0])
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise DataError(f"{path}: cannot decode the image ({type(exc).__name__}: {exc})") from None


def decode_images(root: Path, files: Sequence[str], *, size: tuple[int, int] | None, mode: str,
                  resample: str = "bilinear", max_bytes: float | None = None) -> np.ndarray:
    """Decode ``root/files[i]`` into one uint8 array ``(N, C, H, W)`` (C = 1 for ``L``,
    3 for ``RGB``), resized to ``size = (H, W)``.

    Without ``size`` every image must have the first image's size. ``max_bytes`` is checked
    before anything is allocated.

    Raises:
        DataError: an image does not decode, or (without ``size``) differs in size.
        ConfigError: the array would exceed ``max_bytes`` (the message gives its size).
    """
    from PIL import Image

    filters = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST}
    if resample not in filters:
        raise ConfigError(f"resample: expected bilinear or nearest, got {resample!r}")
    channels = {"L": 1, "RGB": 3}[mode]
    n = len(files)
    hw = size if size is not None else (first_image_size(root / files[0]) if n else (1, 1))
    nbytes = n * channels * hw[0] * hw[1]
    if max_bytes is not None and nbytes > max_bytes:
        raise ConfigError(
            f"data.max_memory_gb: {n} images of {channels}x{hw[0]}x{hw[1]} would take {nbytes / 2**30:.2f} GiB "
            f"as uint8, over the cap of {max_bytes / 2**30:g} GiB (raise max_memory_gb or set a smaller size)"
        )
    out = np.empty((n, channels, hw[0], hw[1]), dtype=np.uint8)
    for i, name in enumerate(files):
        arr = _open(root / name, mode, size, filters[resample])
        if arr.shape[1:] != out.shape[2:]:
            raise DataError(
                f"{root / name}: image is {arr.shape[1]}x{arr.shape[2]}, but {files[0]} is "
                f"{hw[0]}x{hw[1]} (set data.size to resize every image)"
            )
        out[i] = arr
    return out
