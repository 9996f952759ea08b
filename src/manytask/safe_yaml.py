"""Strict YAML reading for config files: UTF-8 only, no duplicate keys, safe tags only.

``yaml.safe_load`` keeps the last of two equal keys silently and reads any byte string it is
given; a config is refused instead, with one line naming the file (and the line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from manytask.errors import ConfigError

__all__ = ["load_yaml_text", "read_yaml_file"]


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses a mapping with the same key twice."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            continue  # an unhashable key: the base constructor reports it
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (first on line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)  # type: ignore[arg-type]


def load_yaml_text(text: str, where: str) -> Any:
    """Parse YAML ``text``; :class:`ConfigError` ``"<where>: line N: …"`` when it is not valid."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = str(getattr(err, "problem", None) or "").strip()
        raise ConfigError(f"{where}:{line} is not valid YAML" + (f" ({problem})" if problem else "")) from None


def read_yaml_file(path: str | Path) -> Any:
    """Read a YAML file as UTF-8 text (a UTF-16 or other non-UTF-8 file is refused)."""
    p = Path(path)
    raw = p.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ConfigError(f"{p}: not UTF-8 text (it starts with a UTF-16 byte-order mark); save it as UTF-8")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(f"{p}: line {line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); save it as UTF-8") from None
    if "\x00" in text:
        raise ConfigError(f"{p}: not UTF-8 text (it holds NUL bytes; UTF-16?); save it as UTF-8")
    return load_yaml_text(text, str(p))
