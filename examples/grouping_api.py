"""Which tasks to train together, from Python (Standley et al. 2020; Fifty et al. 2021).

A 3-task slice of ``configs/grouping_multimnist5.yaml`` (left digit, left-digit parity, right
digit image) with little data, so that the whole script runs in well under a minute on CPU:

    python examples/grouping_api.py [OUT_DIR]

1. the whole search in one call (exhaustive, then ESA and TAG reusing its trained networks);
2. the same pieces by hand: candidates with measured costs, training them into a table,
   normalising, exact selection per budget, scoring on test losses;
3. affinities of one all-task run.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from manytask.config import load_config
from manytask.grouping import (
    affinity_table,
    build_candidates,
    describe_selection,
    group_search,
    normalize_table,
    reference_losses,
    run_affinity,
    score,
    select_many,
    train_candidates,
)

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="grouping-api-"))
    cfg = load_config(ROOT / "configs" / "grouping_multimnist5.yaml", {
        "data.train_size": 600, "data.val_size": 300, "data.test_size": 300, "training.epochs": 3,
    })
    cfg = cfg.model_copy(update={"tasks": [t for t in cfg.tasks if t.name in ("left", "left_odd", "right_image")]})
    budgets = [1.0, 1.5, 2.0, 3.0]

    # 1. the whole search: candidates, selection per budget, full training of the chosen
    #    networks, test scores and baselines, report files in out/<method>/
    for method in ("exhaustive", "esa", "tag"):
        res = group_search(cfg, method, budgets, executor="sequential", out_dir=out / "search", n_random=500)
        print(f"\n== {method}: compute {res.compute['total']:.2f} full-training equivalents "
              f"(exhaustive: {res.compute['exhaustive']:.2f})")
        for b, groups in zip(res.budgets, res.groupings()):
            print(f"  budget {b:g}: {groups}  test total {res.curves[method + ' (test)'][res.budgets.index(b)]:.4f}")
    print("\n" + res.budget_table())
    print(f"\nreports: {out / 'search'}/<method>/report.md")

    # 2. by hand: 3 tasks -> 7 full-size subsets + 3 half-size single-task networks
    specs = build_candidates(cfg)
    for s in specs[-1:]:
        print(f"\nhalf-size network: width {s.width:g}, measured cost {s.cost:.4f} of the full trunk")
    table = train_candidates(cfg, specs, out / "by_hand", executor="sequential")  # resumable
    val_ref, test_ref = reference_losses(table, "val"), reference_losses(table, "test")
    normed = normalize_table(table, val_ref, test_ref)  # 1.0 = as good as the half-size network
    for sel in select_many(normed, budgets):
        if sel is not None:
            print(describe_selection(sel))
            print(f"  test total {score(sel, kind='test').total_loss:.4f}")

    # 3. TAG lookahead affinity of one all-task run, and the groups it predicts
    aff = run_affinity(cfg, out / "affinity", kind="tag", every=5)
    print("\nTAG inter-task affinity Z[i -> j]:\n" + aff.to_markdown())
    predicted = affinity_table(aff, specs)
    best = select_many(predicted, [2.0])[0]
    print("TAG's choice for 2 networks:", [sorted(n.tasks) for n in best.networks] if best else None)


if __name__ == "__main__":  # the pool and Ray executors need this guard (spawned workers)
    main()
