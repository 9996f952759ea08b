"""Evaluation: comparisons over seeds and training fractions, Δm, embeddings.

* :func:`compare` — single-task vs multi-task weighting methods over seeds and training-data
  fractions (Gong et al. 2019), resumable, with tables, CSV/JSON and plots.
* :func:`delta_m` — the average relative gain over single-task baselines (Maninis et al. 2019).
* :class:`EmbeddingRecorder`, :func:`tsne_2d` — snapshots of the shared representation and
  their t-SNE projections.
"""

from manytask.evaluation.compare import (
    STL,
    CompareResult,
    RunRecord,
    RunSpec,
    SummaryCell,
    aggregate,
    compare,
    epochs_for,
    format_table,
    parse_fractions,
    parse_methods,
    parse_seeds,
    plan_runs,
)
from manytask.evaluation.delta_m import delta_m, relative_gain
from manytask.evaluation.embeddings import EmbeddingRecorder, load_embeddings, tsne_2d, tsne_grid

__all__ = [
    "STL",
    "CompareResult",
    "EmbeddingRecorder",
    "RunRecord",
    "RunSpec",
    "SummaryCell",
    "aggregate",
    "compare",
    "delta_m",
    "epochs_for",
    "format_table",
    "load_embeddings",
    "parse_fractions",
    "parse_methods",
    "parse_seeds",
    "plan_runs",
    "relative_gain",
    "tsne_2d",
    "tsne_grid",
]
