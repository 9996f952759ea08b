"""Method specs of ``compare``: ``stl``, a weighting name, or a name with hyperparameters.

``famo[update_on=next_batch,beta=0.05]`` names the FAMO weighting with two hyperparameters;
the same method may appear several times with different hyperparameters, each its own run
directory (:attr:`MethodSpec.dir_name`, ``famo-update_on=next_batch-beta=0.05``) and its own
table row (:attr:`MethodSpec.display`, ``FAMO [update_on=next_batch,beta=0.05]``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from manytask.errors import ConfigError

__all__ = ["STL", "MethodSpec", "display_name", "method_dir_name", "parse_method_spec", "parse_methods"]

#: The method name that stands for single-task learning (one run per task).
STL = "stl"

def _label(name: str) -> str:
    """``stl`` → ``Single task``; a registered weighting → its class's ``display_name``."""
    from manytask.weighting import available, get

    if name == STL:
        return "Single task"
    return get(name).display_name if name in available() else name


def _read_params(spec: str, inner: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in inner.split(","):
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise ConfigError(f"--methods: '{item.strip()}' in '{spec}' is not key=value")
        if key in params:
            raise ConfigError(f"--methods: '{key}' is given twice in '{spec}'")
        try:
            params[key] = yaml.safe_load(raw.strip()) if raw.strip() else ""
        except yaml.YAMLError:
            raise ConfigError(f"--methods: cannot read the value of '{key}' in '{spec}'") from None
    return params


@dataclass(frozen=True)
class MethodSpec:
    """One approach of a comparison.

    Attributes:
        text: the spec as written (``famo[update_on=next_batch]``); the key of the approach in
            records, tables and files.
        name: ``stl`` or the registered weighting name.
        params: the hyperparameters given in brackets (values read as YAML scalars).
    """

    text: str
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> MethodSpec:
        """Read ``name`` or ``name[key=value,key=value]``.

        Raises:
            ConfigError: malformed brackets or ``key=value`` pairs.
        """
        spec = spec.strip()
        if "[" not in spec:
            if "]" in spec:
                raise ConfigError(f"--methods: unmatched ']' in '{spec}'")
            return cls(spec, spec, {})
        name, _, rest = spec.partition("[")
        if not rest.endswith("]") or "[" in rest[:-1] or "]" in rest[:-1]:
            raise ConfigError(f"--methods: '{spec}' should look like name[key=value,key=value]")
        return cls(spec, name.strip(), _read_params(spec, rest[:-1]))

    @property
    def is_stl(self) -> bool:
        return self.name == STL

    @property
    def dir_name(self) -> str:
        """The run-directory name: ``famo[update_on=next_batch]`` → ``famo-update_on=next_batch``."""
        if not self.params:
            return self.name
        return self.name + "".join(f"-{k}={v}" for k, v in self.params.items()).replace("/", "_").replace(" ", "")

    @property
    def display(self) -> str:
        """The table row label: ``stl`` → ``Single task``, ``famo[beta=0.1]`` → ``FAMO [beta=0.1]``."""
        label = _label(self.name)
        if "[" in self.text:
            return f"{label} [{self.text.partition('[')[2]}"
        return label

    def check(self) -> None:
        """Check the name against ``stl`` and the registered weightings, and the hyperparameter
        names against the weighting's constructor."""
        from manytask.weighting import available, get

        if self.is_stl:
            if self.params:
                raise ConfigError(f"--methods: '{self.text}': stl takes no hyperparameters")
            return
        known = available()
        if self.name not in known:
            raise ConfigError(f"--methods: unknown method '{self.name}' (available: {', '.join([STL, *known])})")
        accepted = [p for p in inspect.signature(get(self.name)).parameters if p != "tasks"]
        for key in self.params:
            if key not in accepted:
                raise ConfigError(f"--methods: '{self.name}' has no hyperparameter '{key}' "
                                  f"(it takes: {', '.join(accepted) or 'none'})")


def parse_method_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"famo[update_on=next_batch,beta=0.05]"`` → ``("famo", {"update_on": "next_batch", "beta": 0.05})``."""
    parsed = MethodSpec.parse(spec)
    return parsed.name, dict(parsed.params)


def method_dir_name(spec: str) -> str:
    """The run-directory name of a method spec (see :attr:`MethodSpec.dir_name`)."""
    return MethodSpec.parse(spec).dir_name


def display_name(method: str) -> str:
    """The row label of an approach in the table (see :attr:`MethodSpec.display`)."""
    return MethodSpec(method, method.partition("[")[0]).display


def _split_top_level(value: str) -> list[str]:
    """Split on commas that are not inside ``[...]``."""
    parts: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(value):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"--methods: unmatched ']' in '{value}'")
        elif ch == "," and depth == 0:
            parts.append(value[start:i])
            start = i + 1
    if depth != 0:
        raise ConfigError(f"--methods: unmatched '[' in '{value}'")
    parts.append(value[start:])
    return parts


def parse_methods(value: str | Sequence[str]) -> list[str]:
    """``"stl,uniform,dwa,famo[update_on=next_batch]"`` → method specs, each checked by
    :meth:`MethodSpec.check` (repeats dropped, order kept).

    Raises:
        ConfigError: no method, an unknown name or hyperparameter (the message lists the
            available ones), or two specs that give the same run directory.
    """
    items = _split_top_level(value) if isinstance(value, str) else list(value)
    methods = list(dict.fromkeys(m.strip() for m in items if m and m.strip()))
    if not methods:
        raise ConfigError("--methods: no method given")
    specs = [MethodSpec.parse(m) for m in methods]
    for s in specs:
        s.check()
    if len({s.dir_name for s in specs}) != len(specs):
        raise ConfigError("--methods: two specs give the same method and hyperparameters")
    return methods
