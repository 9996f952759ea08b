"""Evaluation: comparisons over seeds and training fractions, Δm, embeddings.

* :func:`compare` — single-task vs multi-task weighting methods over seeds and training-data
  fractions (Gong et al. 2019), resumable, with tables, CSV/JSON and plots.
  Its pieces: :mod:`~manytask.evaluation.method_spec` (method specs),
  :mod:`~manytask.evaluation.compare_run` (one run), :mod:`~manytask.evaluation.aggregate`
  (mean ± std and Δm over run records, pure) and :mod:`manytask.reporting.compare_report`
  (the files).
* :func:`delta_m` — the average relative gain over single-task baselines (Maninis et al. 2019).
* :class:`EmbeddingRecorder`, :func:`tsne_2d` — snapshots of the shared representation and
  their t-SNE projections.
"""

from manytask.cli_args import parse_fractions, parse_seeds
from manytask.evaluation.aggregate import (
    SummaryCell,
    aggregate,
    delta_m_table,
    mean_std,
)
from manytask.evaluation.compare import CompareResult, compare, epochs_for, plan_runs
from manytask.evaluation.delta_m import delta_m, relative_gain
from manytask.evaluation.embeddings import (
    EmbeddingRecorder,
    load_embeddings,
    tsne_2d,
    tsne_grid,
)
from manytask.evaluation.method_spec import STL, MethodSpec, display_name, parse_methods
from manytask.evaluation.records import RunRecord, RunSpec

__all__ = [
    "STL",
    "CompareResult",
    "EmbeddingRecorder",
    "MethodSpec",
    "RunRecord",
    "RunSpec",
    "SummaryCell",
    "aggregate",
    "compare",
    "delta_m",
    "delta_m_table",
    "display_name",
    "epochs_for",
    "load_embeddings",
    "mean_std",
    "parse_fractions",
    "parse_methods",
    "parse_seeds",
    "plan_runs",
    "relative_gain",
    "tsne_2d",
    "tsne_grid",
]
