"""Random candidate tables with pairwise task affinities, for exercising network selection.

Task ``t`` has a base loss ``b_t ~ U(base)`` and an affinity ``A[t, u] ~ N(0, affinity_std²)``
to every other task. A network trained on the group ``g`` gives ``t ∈ g`` the loss

    b_t · exp(−mean_{u ∈ g, u ≠ t} A[t, u] + size_penalty · (|g| − 1) + ε),  ε ~ N(0, noise²),

so tasks with positive affinity help each other, as in Standley et al.'s tables. Every task
subset of at most ``max_size`` tasks is a network; ``cost(rng, |g|)`` gives its cost (drawn
after its losses). Seeded: the same generator state gives the same candidates.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from manytask.grouping.table import Candidate

__all__ = ["affinity_candidates"]

CostFn = Callable[[np.random.Generator, int], float]


def affinity_candidates(rng: np.random.Generator, n: int, max_size: int, cost: CostFn, *,
                        base: tuple[float, float] = (0.02, 0.3), affinity_std: float = 0.08,
                        noise: float = 0.02, size_penalty: float = 0.01,
                        names: str = "t{:02d}") -> tuple[list[str], list[Candidate], np.ndarray]:
    """Task names (``names.format(i)``), the candidates (module docstring) and the base losses
    ``b``, drawn from ``rng`` in that order; build the table with
    ``CandidateTable(tasks, candidates)`` after adding any candidates of your own."""
    tasks = [names.format(i) for i in range(n)]
    b = rng.uniform(base[0], base[1], n)
    aff = rng.normal(0.0, affinity_std, (n, n))
    cands = []
    for s in range(1, max_size + 1):
        for g in itertools.combinations(range(n), s):
            losses = {}
            for t in g:
                others = [u for u in g if u != t]
                eff = float(np.mean(aff[t, others])) if others else 0.0
                losses[tasks[t]] = float(b[t] * np.exp(-eff + size_penalty * len(others) + rng.normal(0, noise)))
            cands.append(Candidate(frozenset(tasks[t] for t in g), cost(rng, s), losses))
    return tasks, cands, b
