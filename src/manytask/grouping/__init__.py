"""Which tasks to train together (Standley et al. 2020; Fifty et al. 2021).

* :mod:`~manytask.grouping.table` — candidate networks and their losses (CSV / Parquet /
  Standley's text files);
* :mod:`~manytask.grouping.selection` — exact network selection under a budget, scoring,
  baselines, the higher-order approximation;
* :mod:`~manytask.grouping.analysis` — Standley's task-relationship tables (its ``affinity``
  function is re-exported here as :func:`pairwise_affinity`, because ``affinity`` names the
  affinity-measurement module);
* :mod:`~manytask.grouping.select_report` — budget sweeps of a table (``manytask select``);
* :mod:`~manytask.grouping.candidates` — which candidates, their measured costs, training them;
* :mod:`~manytask.grouping.jobs` — one candidate's training as a job for the shared runner
  (:mod:`manytask.runner`: sequential, process pool or Ray);
* :mod:`~manytask.grouping.affinity` — TAG lookahead and gradient-cosine affinities;
* :mod:`~manytask.grouping.search` — :func:`group_search`, the whole search (``manytask group``);
* :mod:`~manytask.grouping.selective_sharing` and :mod:`~manytask.grouping.sharing_controller` —
  online grouping while training (Strezoski et al. 2019): :class:`SelectiveSharing`.
"""

from __future__ import annotations

import importlib as _importlib
from typing import Any

from manytask.grouping import analysis as _analysis
from manytask.grouping import select_report as _select_report
from manytask.grouping import selection as _selection
from manytask.grouping import table as _table
from manytask.grouping.analysis import *  # noqa: F403
from manytask.grouping.select_report import *  # noqa: F403
from manytask.grouping.selection import *  # noqa: F403
from manytask.grouping.table import *  # noqa: F403

#: Standley's Table 3 (``manytask.grouping.analysis.affinity``) under a name that does not
#: hide the :mod:`manytask.grouping.affinity` module.
pairwise_affinity = _analysis.affinity
del affinity  # noqa: F821 - the name is the module, loaded on first use (below)

# The modules that train networks import torch; they are loaded on first use so that the
# table tools (``manytask select``: table, selection, analysis, reports) start without it.
_LAZY = ("affinity", "candidates", "jobs", "search", "sharing_controller")
_LIGHT = (_table, _selection, _analysis, _select_report)


def _lazy_module(name: str) -> Any:
    return _importlib.import_module(f"manytask.grouping.{name}")


def __getattr__(name: str) -> Any:
    if name == "__all__":
        names = set().union(*(m.__all__ for m in _LIGHT))
        for mod in _LAZY[:-1]:
            names |= set(_lazy_module(mod).__all__)
        all_ = sorted(names - {"affinity"} | {"pairwise_affinity", "SelectiveSharing"})
        globals()["__all__"] = all_
        return all_
    if name in _LAZY:
        return _lazy_module(name)
    if name == "SelectiveSharing":
        return _lazy_module("sharing_controller").SelectiveSharing
    for mod in _LAZY[1:-1]:
        m = _lazy_module(mod)
        if name in m.__all__:
            return getattr(m, name)
    aff = _lazy_module("affinity")
    if name in aff.__all__:
        return getattr(aff, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__getattr__("__all__")))
