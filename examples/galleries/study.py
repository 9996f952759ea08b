"""The gallery study of Gutelman & Levin (2020) on galleries of real MNIST digits, end to end.

    python examples/galleries/study.py --out runs/galleries_study [--docs] [--quick]

Steps (every run directory that is finished is reused, so an interrupted study resumes):

1. item pretraining: ``small_vgg`` classifying single digits (``kind: mnist``, ``source: t10k``:
   the 10,000 MNIST test digits shipped with the package, disjoint from the 5,000 bundled
   digits the galleries are drawn from), the stand-in for the paper's ImageNet-trained VGG16;
2. multi-task gallery encoders (configs/galleries_mnist.yaml, pseudo-uniform, seeds 0-2, and
   configs/galleries_mnist_uncertainty.yaml, seed 0), the item encoder initialised from (1)
   (``model.options.init_from``) with its first ``freeze_blocks`` blocks frozen;
3. the held-out task (Table 2) at 20/40/60/80/100 % of its training labels × seeds:
   (a) the embeddings of the MTL encoder of the same seed + a probe, (b) the mean of the item
   features of (1) (a ``set_encoder`` with mean pooling initialised from (1), untrained) + the
   same probe, (c) the same set encoder (also initialised from (1)) trained end to end on the
   held-out task alone (:func:`manytask.evaluation.heldout.train_end_to_end`);
4. single-task runs of every training task (seed 0) for Figures 5 and 6.

Every run uses the same data splits (``data.seed: 0``); seeds change initialisation, batch
order and which training rows are labelled in (3). Writes into ``--out``: ``heldout.md/.csv/
.json``, ``per_task.md``, ``figures.json`` (the data of every figure), ``timings.json`` and
the PNGs (also into ``docs/`` with ``--docs``). ``--quick``: tiny sizes, a smoke run of a
minute.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from manytask.config import ExperimentConfig, load_config, parse_config
from manytask.evaluation.heldout import (
    FRACTIONS,
    embed_sets,
    heldout_markdown,
    heldout_table,
    labels_of,
    nested_rows,
    probe_sweep,
    train_end_to_end,
    write_heldout,
)
from manytask.evaluation.per_task import (
    balance_vs_benefit,
    compare_tasks,
    minority_share,
)
from manytask.evaluation.probe import fit_probe
from manytask.evaluation.run_model import load_run_model
from manytask.experiment import build_data, input_shape, run_experiment
from manytask.jsonable import to_jsonable
from manytask.models import build_trunk
from manytask.reporting.per_task_plots import (
    plot_balance_vs_benefit,
    plot_heldout,
    plot_relative_errors,
)
from manytask.training import RunDir

ROOT = Path(__file__).resolve().parents[2]
HELDOUT = "heldout"
SIZES: dict[str, dict[str, Any]] = {
    "full": {"train": 1500, "val": 300, "test": 500, "epochs": 4, "item": (3000, 1000, 1000), "item_epochs": 3,
             "seeds": (0, 1, 2), "uncertainty_seeds": (0,), "fractions": FRACTIONS, "stl_tasks": None},
    "quick": {"train": 40, "val": 20, "test": 20, "epochs": 1, "item": (200, 50, 50), "item_epochs": 1,
              "seeds": (0, 1), "uncertainty_seeds": (0,), "fractions": (0.5, 1.0), "stl_tasks": 3},
}
PNG = {"heldout": "galleries_heldout.png", "per_task": "galleries_per_task.png", "balance": "galleries_balance.png"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def item_config(sz: dict[str, Any]) -> ExperimentConfig:
    """Single digits, the item trunk of the gallery configs, a 10-way digit head."""
    tr, va, te = sz["item"]
    return parse_config({
        "name": "galleries_item_pretrain", "seed": 0,
        "data": {"kind": "mnist", "source": "t10k", "train_size": tr, "val_size": va, "test_size": te},
        "tasks": [{"name": "digit", "kind": "multiclass", "num_classes": 10}],
        "model": {"trunk": "small_vgg", "width": 0.5, "features": 64, "head_hidden": 64},
        "weighting": {"name": "uniform"},
        "training": {"epochs": sz["item_epochs"], "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.002},
                     "threads": 1},
    }, where="item pretraining config")


def gallery_config(name: str, sz: dict[str, Any], item_dir: Path) -> ExperimentConfig:
    """``configs/<name>.yaml`` at the study's sizes, one data seed, item encoder from ``item_dir``."""
    return load_config(ROOT / "configs" / f"{name}.yaml", {
        "data.train_size": sz["train"], "data.val_size": sz["val"], "data.test_size": sz["test"],
        "data.seed": 0, "training.epochs": sz["epochs"], "training.threads": 1,
        "model.options.init_from": str(item_dir)})


def heldout_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """The same data, model and schedule with the held-out task as the only task."""
    from manytask.data.galleries import HELDOUT_CLASSES

    doc = cfg.to_dict()
    doc["name"] = f"{cfg.name}_heldout_only"
    doc["tasks"] = [{"name": HELDOUT, "kind": "multiclass", "num_classes": HELDOUT_CLASSES}]
    return parse_config(doc, where="held-out config")


def train(cfg: ExperimentConfig, run_dir: Path, timings: dict[str, float], **kw: Any) -> dict[str, Any]:
    """Run (unless finished) and return the run's summary."""
    rd = RunDir(run_dir)
    if not rd.is_complete():
        start = time.perf_counter()
        run_experiment(cfg, run_dir, progress=False, **kw)
        timings[str(run_dir)] = time.perf_counter() - start
        log(f"trained {run_dir} in {timings[str(run_dir)]:.1f} s")
    summary = rd.summary()
    assert summary is not None
    return summary


def cached_embeddings(path: Path, encode: Any, splits: Any) -> dict[str, Any]:
    """Embeddings and held-out labels of the three splits (computed once, kept in ``path``)."""
    if path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    out: dict[str, Any] = {}
    seconds = []
    for split in ("train", "val", "test"):
        ds = getattr(splits, split)
        x, sec = embed_sets(encode, ds)
        y, rows = labels_of(ds, HELDOUT)
        out[f"x_{split}"], out[f"y_{split}"] = x[rows], y
        seconds.append(sec)
    out["seconds_per_instance"] = np.array(seconds[2])  # timed on the test split
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def probe_records(method: str, emb: dict[str, Any], seeds: Any, fractions: Any) -> list[Any]:
    xy = lambda s: (emb[f"x_{s}"], emb[f"y_{s}"])  # noqa: E731
    return probe_sweep(method, xy("train"), xy("val"), xy("test"), fractions, seeds,
                       embed_seconds=float(emb["seconds_per_instance"]))


def heldout_study(out: Path, sz: dict[str, Any], item_dir: Path, mtl_dirs: dict[int, Path],
                  timings: dict[str, float]) -> list[Any]:
    """(a), (b), (c) at every fraction and seed."""
    cfg = gallery_config("galleries_mnist", sz, item_dir)
    splits = build_data(cfg, [HELDOUT])
    records: list[Any] = []
    fit_probe(np.zeros((2, 1)), np.array([0, 1]), np.zeros((2, 1)), np.array([0, 1]), max_epochs=1)  # warm-up:
    # torch's first optimizer step pays a one-off start-up cost that would land in one probe's fit time
    for seed, run in mtl_dirs.items():  # (a): each seed's probes on that seed's MTL encoder
        model, _, _ = load_run_model(run)
        emb = cached_embeddings(out / "embeddings" / f"mtl_seed{seed}.npz", model.encode, splits)
        records += probe_records("a", emb, [seed], sz["fractions"])
    trunk = build_trunk(cfg.model.trunk, input_shape(splits), cfg.model.trunk_spec()).eval()  # (b)
    emb = cached_embeddings(out / "embeddings" / "item_mean.npz", trunk, splits)
    records += probe_records("b", emb, sz["seeds"], sz["fractions"])
    log("probes (a), (b) done")
    hcfg = heldout_config(cfg)
    for seed in sz["seeds"]:  # (c)
        for f, rows in nested_rows(len(splits.train), sz["fractions"], seed).items():
            run = out / "end_to_end" / f"f{f:g}_seed{seed}"
            fresh, start = not RunDir(run).is_complete(), time.perf_counter()
            records.append(train_end_to_end(hcfg, rows, seed, run, f))
            if fresh:  # a run read back keeps the time of its training
                timings[str(run)] = time.perf_counter() - start
        log(f"(c) seed {seed} done")
    return records


def longer_end_to_end(out: Path, sz: dict[str, Any], item_dir: Path, epochs: int,
                      timings: dict[str, float]) -> tuple[list[Any], str]:
    """(c) again with ``epochs`` epochs, at the smallest and the largest fraction: is (c) held
    back by the short schedule? Records under method ``c{epochs}``."""
    cfg = gallery_config("galleries_mnist", sz, item_dir)
    n = len(build_data(cfg, [HELDOUT]).train)
    hcfg = heldout_config(cfg.model_copy(update={"training": cfg.training.model_copy(update={"epochs": epochs})}))
    ends = (min(sz["fractions"]), max(sz["fractions"]))
    records = []
    for seed in sz["seeds"]:
        for f, rows in nested_rows(n, ends, seed).items():
            rec = train_end_to_end(hcfg, rows, seed, out / f"end_to_end_{epochs}ep" / f"f{f:g}_seed{seed}", f)
            timings.setdefault(str(out / f"end_to_end_{epochs}ep" / f"f{f:g}_seed{seed}"), rec.train_seconds)
            rec.method = f"c{epochs}"
            records.append(rec)
    log(f"(c) with {epochs} epochs done")
    return records, f"(c) the same, {epochs} epochs instead of {sz['epochs']}"


def _mean_metrics(summaries: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Test metrics per task averaged over runs (a metric written as null, e.g. R² of a constant
    test column, stays NaN)."""
    tasks = summaries[0]["test"]
    val = lambda v: np.nan if v is None else float(v)  # noqa: E731
    return {t: {k: float(np.mean([val(s["test"][t][k]) for s in summaries])) for k in tasks[t]} for t in tasks}


def per_task_study(out: Path, sz: dict[str, Any], item_dir: Path, mtl: dict[str, list[dict[str, Any]]],
                   timings: dict[str, float]) -> dict[str, Any]:
    """Single-task runs, then Figure 5 (relative errors) and Figure 6 (balance) per MTL method."""
    cfg = gallery_config("galleries_mnist", sz, item_dir)
    tasks = cfg.build_tasks()
    chosen = tasks if sz["stl_tasks"] is None else tasks[:: max(1, len(tasks) // sz["stl_tasks"])][: sz["stl_tasks"]]
    stl = {}
    for t in chosen:
        stl[t.name] = train(cfg, out / "stl" / t.name / "seed0", timings, task_names=[t.name], seed=0)["test"][t.name]
    binary = [t.name for t in tasks if t.kind == "binary"]
    train_split = build_data(cfg, binary).train
    balance = {c: minority_share(train_split.targets[c].numpy()) for c in binary}
    kinds = {t.name: t.kind for t in tasks}
    rows = {m: compare_tasks(kinds, _mean_metrics(runs), stl, balance) for m, runs in mtl.items()}
    return {"rows": rows, "fig6": {m: balance_vs_benefit(r) for m, r in rows.items()}, "balance": balance}


def per_task_markdown(result: dict[str, Any], mtl: dict[str, list[dict[str, Any]]]) -> str:
    methods = list(result["rows"])
    by = {m: {r.task: r for r in result["rows"][m]} for m in methods}
    first = result["rows"][methods[0]]
    head = "| task | kind | balance | STL error | " + " | ".join(
        f"{m} error ({len(mtl[m])} seed{'s' * (len(mtl[m]) > 1)}) | {m} relative" for m in methods) + " |"
    lines = [head, "|---|---|---:|---:|" + "---:|---:|" * len(methods)]
    for r in first:
        bal = result["balance"].get(r.task)
        cells = " | ".join(f"{by[m][r.task].e_mtl:.4f} | {100 * by[m][r.task].relative:+.1f}%" for m in methods)
        lines.append(f"| {r.task} | {r.kind} | {'' if bal is None else f'{bal:.3f}'} | {r.e_stl:.4f} | {cells} |")
    for m, fig in result["fig6"].items():
        better = sum(1 for r in result["rows"][m] if r.relative < 0)
        lines.append(f"\n{m}: better than single-task on {better} of {len(result['rows'][m])} tasks; "
                     f"binary tasks, balance vs relative error: Pearson r = {fig['r']:.3f}, p = {fig['p']:.3g} "
                     f"(n = {fig['n']})")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "galleries_study")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--docs", action="store_true", help="also write the PNGs into docs/")
    ap.add_argument("--end-to-end-epochs", type=int, default=0,
                    help="also train (c) for this many epochs at the smallest and largest fraction")
    ap.add_argument("--skip-stl", action="store_true", help="no single-task runs (no Figures 5, 6)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sz = SIZES["quick" if args.quick else "full"]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    tpath = out / "timings.json"
    timings: dict[str, float] = json.loads(tpath.read_text()) if tpath.is_file() else {}
    item_dir = out / "item_pretrain"
    item = train(item_config(sz), item_dir, timings)
    log(f"item pretraining: digit test accuracy {item['test']['digit']['accuracy']:.4f}")
    mtl: dict[str, list[dict[str, Any]]] = {"pseudo_uniform": [], "uncertainty": []}
    mtl_dirs: dict[int, Path] = {}
    for method, name, seeds in (("pseudo_uniform", "galleries_mnist", sz["seeds"]),
                                ("uncertainty", "galleries_mnist_uncertainty", sz["uncertainty_seeds"])):
        for seed in seeds:
            run = out / "mtl" / method / f"seed{seed}"
            mtl[method].append(train(gallery_config(name, sz, item_dir), run, timings, seed=seed))
            if method == "pseudo_uniform":
                mtl_dirs[seed] = run
    tpath.write_text(json.dumps(timings, indent=2))
    records = heldout_study(out, sz, item_dir, mtl_dirs, timings)
    labels = {}
    if args.end_to_end_epochs:
        more, labels[f"c{args.end_to_end_epochs}"] = longer_end_to_end(out, sz, item_dir, args.end_to_end_epochs,
                                                                       timings)
        records += more
    tpath.write_text(json.dumps(timings, indent=2))
    write_heldout(records, out, n_train=sz["train"], labels=labels)
    table = heldout_table(records, labels)
    pngs = [plot_heldout(table, out / PNG["heldout"])]
    figures: dict[str, Any] = {"table2": table, "sizes": sz}
    log("held-out table:\n" + heldout_markdown(table, sz["train"]))
    if not args.skip_stl:
        res = per_task_study(out, sz, item_dir, mtl, timings)
        tpath.write_text(json.dumps(timings, indent=2))
        (out / "per_task.md").write_text(per_task_markdown(res, mtl))
        pngs.append(plot_relative_errors(res["rows"], out / PNG["per_task"]))
        pngs.append(plot_balance_vs_benefit(res["fig6"], out / PNG["balance"]))
        figures["figure5"] = {m: [vars(r) for r in rows] for m, rows in res["rows"].items()}
        figures["figure6"] = res["fig6"]
        log("per task:\n" + per_task_markdown(res, mtl))
    figures["timings_seconds"] = timings
    (out / "figures.json").write_text(json.dumps(to_jsonable(figures), indent=2))
    if args.docs:
        for p in pngs:
            (ROOT / "docs" / p.name).write_bytes(p.read_bytes())
    return figures


if __name__ == "__main__":
    main()
