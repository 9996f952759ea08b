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

from manytask.grouping import analysis as _analysis
from manytask.grouping import candidates as _candidates
from manytask.grouping import jobs as _jobs
from manytask.grouping import search as _search
from manytask.grouping import select_report as _select_report
from manytask.grouping import selection as _selection
from manytask.grouping import table as _table
from manytask.grouping.affinity import *  # noqa: F403
from manytask.grouping.analysis import *  # noqa: F403
from manytask.grouping.candidates import *  # noqa: F403
from manytask.grouping.jobs import *  # noqa: F403
from manytask.grouping.search import *  # noqa: F403
from manytask.grouping.select_report import *  # noqa: F403
from manytask.grouping.selection import *  # noqa: F403
from manytask.grouping.sharing_controller import SelectiveSharing
from manytask.grouping.table import *  # noqa: F403

#: Standley's Table 3 (``manytask.grouping.analysis.affinity``) under a name that does not
#: hide the :mod:`manytask.grouping.affinity` module.
pairwise_affinity = _analysis.affinity
affinity = _importlib.import_module("manytask.grouping.affinity")  # type: ignore[assignment]

__all__ = sorted(
    (
        set(_table.__all__)
        | set(_selection.__all__)
        | set(_analysis.__all__)
        | set(_select_report.__all__)
        | set(_candidates.__all__)
        | set(_jobs.__all__)
        | set(affinity.__all__)  # type: ignore[attr-defined]
        | set(_search.__all__)
    )
    - {"affinity"}
    | {"pairwise_affinity", "SelectiveSharing"}
)
