"""The ``manytask`` command line.

Every command reports bad input as one line ``manytask: error: …`` and exits with code 2.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import typer
import yaml

from manytask.errors import ConfigError, ManytaskError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="manytask: multi-task learning — train, compare weightings, group tasks.")

F = TypeVar("F", bound=Callable[..., Any])

def fail(message: str, code: int = 2) -> None:
    typer.echo(f"manytask: error: {message}", err=True)
    raise typer.Exit(code)


def guarded(fn: F) -> F:
    """Turn ManytaskError (and a few user-caused OS errors) into one line and exit code 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ManytaskError as err:
            fail(str(err).splitlines()[0] if str(err) else type(err).__name__, err.exit_code)
        except FileNotFoundError as err:
            fail(f"{err.filename}: file not found")
        except PermissionError as err:
            fail(f"{err.filename}: permission denied")
        except (NotADirectoryError, IsADirectoryError, FileExistsError) as err:
            fail(f"{err.filename}: {(err.strerror or type(err).__name__).lower()}")
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper  # type: ignore[return-value]


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``--set training.epochs=3`` → {"training.epochs": 3} (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set '{item}': expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--set '{item}': value is not valid YAML") from None
    return out


def default_run_dir(output_dir: str, name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(output_dir) / f"{name}-{stamp}"


@app.command()
@guarded
def run(
    config: Path = typer.Argument(..., help="YAML config file"),
    out: Path | None = typer.Option(None, "--out", "-o", help="run directory (default: OUTPUT_DIR/NAME-TIME)"),
    set_: list[str] | None = typer.Option(None, "--set", help="override a config value, e.g. training.epochs=3"),
    resume: bool = typer.Option(False, help="continue an interrupted run in --out from its last epoch"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Train one model as the config says and write a RunDir."""
    from manytask.config import load_config
    from manytask.experiment import run_experiment
    from manytask.reporting.tables import metrics_table

    cfg = load_config(config, parse_overrides(set_))
    rd = out or default_run_dir(cfg.output_dir, cfg.name)
    if resume and out is None:
        raise ConfigError("--resume needs --out naming the run directory to continue")
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    try:
        result = run_experiment(cfg, rd, progress=not quiet, resume=resume)
    except ManytaskError as err:  # errors found after loading still name the config file
        if str(config) not in str(err):
            err.args = (f"{config}: {err}",)
        raise
    rows = {f"{cfg.weighting.name} (epoch {result.best_epoch})": result.test or {}}
    typer.echo(metrics_table(rows, cfg.build_tasks(), title=f"test metrics — {cfg.name}"))
    if cfg.grouping.method == "selective_sharing":
        from manytask.grouping.sharing_controller import describe_sharing

        typer.echo(describe_sharing(Path(rd) / "summary.json"))
    typer.echo(f"run directory: {rd}")


@app.command()
@guarded
def init(
    data: Path = typer.Argument(..., help="a CSV or Parquet table, one row per sample"),
    targets: str = typer.Option(..., "--targets", "-t", help="label columns, comma-separated (one task each)"),
    features: str | None = typer.Option(None, "--features", help="feature columns, comma-separated "
                                        "(default: every column that is not a target, id or split column)"),
    id_column: str | None = typer.Option(None, "--id-column", help="column naming each row (kept with predictions)"),
    split_column: str | None = typer.Option(None, "--split-column", help="column with train / val / test per row "
                                            "(default: a random split)"),
    kind: list[str] | None = typer.Option(None, "--kind", help="a target's kind instead of the inferred one, "
                                          "e.g. count=regression (binary, multiclass, regression)"),
    max_classes: int = typer.Option(20, "--max-classes", min=2, help="most distinct values of a class target"),
    out: Path = typer.Option(Path("config.yaml"), "--out", "-o", help="where to write the config"),
    force: bool = typer.Option(False, "--force", help="overwrite --out if it exists"),
) -> None:
    """Write a commented starter config for a table: the kind of each target, inferred."""
    from manytask.atomic import atomic_write_text
    from manytask.cli_args import parse_names
    from manytask.data.sources.table import read_table
    from manytask.data.starter import make_starter

    if out.exists() and not force:
        raise ConfigError(f"{out}: already exists (use --force to overwrite)")
    frame = read_table(data, text_columns=[c for c in (id_column, split_column) if c])
    starter = make_starter(frame, str(data), parse_names(targets),
                           features=parse_names(features) if features else None,
                           id_column=id_column, split_column=split_column, kinds=kind or [],
                           max_classes=max_classes, name=data.name.split(".")[0] or "table")
    for line in starter.lines():
        typer.echo(line)
    atomic_write_text(out, starter.config)
    typer.echo(f"wrote {out}; train with: manytask run {out}")


@app.command()
@guarded
def demo(
    out: Path = typer.Option(Path("runs"), "--out", "-o", help="parent directory of the demo's runs"),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="trainings run at once (worker processes)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
) -> None:
    """MultiMNIST from the bundled real digits: STL-left, STL-right and uniform MTL."""
    from manytask.config import load_config
    from manytask.demo import run_demo
    from manytask.reporting.tables import metrics_table

    root = default_run_dir(str(out), "demo")
    typer.echo(f"training STL per task and MTL on MultiMNIST ({jobs} at a time) ...", err=True)
    result = run_demo(root, jobs=jobs, progress=not quiet)
    tasks = load_config(result.config_path).build_tasks()
    typer.echo(metrics_table(result.rows, tasks, title="MultiMNIST (bundled real digits): test accuracy"))
    typer.echo(f"wall time: {result.seconds:.1f} s")
    typer.echo("run directories:")
    for d in result.run_dirs:
        typer.echo(f"  {d}")
    typer.echo(f"reproduce the MTL row: manytask run {result.config_path} --out RUN_DIR")


@app.command()
@guarded
def compare(
    config: Path = typer.Argument(..., help="YAML config file (training.epochs = epochs at fraction 1)"),
    methods: str = typer.Option("stl,uniform,dwa,uncertainty,revised_uncertainty", "--methods",
                                help="comma-separated: stl (one single-task run per task) and weighting names, "
                                     "optionally with hyperparameters: famo\\[update_on=next_batch]"),
    seeds: str = typer.Option("10", "--seeds", help="a count (10 = seeds 0..9) or a list (0,3,7)"),
    fractions: str = typer.Option("1,0.25,0.1", "--fractions", help="training-data fractions, comma-separated"),
    out: Path | None = typer.Option(None, "--out", "-o", help="comparison directory (default: OUTPUT_DIR/compare-NAME); "
                                    "rerunning into it skips finished runs"),
    epochs_scaling: str = typer.Option("constant", "--epochs-scaling",
                                       help="constant, or inverse: epochs = round(training.epochs / fraction) (Gong et al.)"),
    max_epochs: int | None = typer.Option(None, "--max-epochs", help="cap on the epochs of inverse scaling"),
    tsne_epochs: str = typer.Option("", "--tsne-epochs",
                                    help="epochs to snapshot the shared representation, e.g. 1,5,10 (first seed, "
                                         "largest fraction) and draw tsne.png"),
    tsne_samples: int = typer.Option(1000, "--tsne-samples", help="validation samples in the t-SNE plot"),
    executor: str | None = typer.Option(None, "--executor", help="sequential (default), pool or ray"),
    workers: int | None = typer.Option(None, "--workers", help="pool processes / local Ray CPUs (default 2)"),
    ray_address: str | None = typer.Option(None, "--ray-address", help="address of an existing Ray cluster"),
    jobs: int = typer.Option(1, "--jobs", "-j", help="N > 1: short for --executor pool --workers N"),
    set_: list[str] | None = typer.Option(None, "--set", help="override a config value, e.g. training.epochs=3"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars and no per-run lines"),
) -> None:
    """Single-task vs multi-task weightings over seeds and training fractions (Gong et al. 2019)."""
    from manytask.cli_args import parse_fractions, parse_int_list, parse_seeds
    from manytask.config import load_config
    from manytask.evaluation.compare import compare as run_compare
    from manytask.evaluation.compare import resolve_executor
    from manytask.evaluation.method_spec import parse_methods

    cfg = load_config(config, parse_overrides(set_))
    method_list = parse_methods(methods)
    seed_list = parse_seeds(seeds)
    fraction_list = parse_fractions(fractions)
    tsne = parse_int_list(tsne_epochs, "--tsne-epochs")
    chosen, n_workers = resolve_executor(executor, jobs, workers)
    root = out or Path(cfg.output_dir) / f"compare-{cfg.name}"
    result = run_compare(cfg, method_list, seed_list, fraction_list, root, epochs_scaling=epochs_scaling,
                         max_epochs=max_epochs, tsne_epochs=tsne, tsne_samples=tsne_samples, executor=chosen,
                         workers=n_workers, ray_address=ray_address, progress=not quiet)
    typer.echo(result.table)
    typer.echo("")
    typer.echo(f"outputs in {root}:")
    for key, path in result.files.items():
        typer.echo(f"  {key:12s} {path}")


@app.command("weightings")
def list_weightings() -> None:
    """List the registered weighting methods."""
    from manytask.weighting import available, get

    for name in available():
        cls = get(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        typer.echo(f"{name:22s} {cls.display_name:24s} {doc[0] if doc else ''}")


@app.command("sources")
def list_sources() -> None:
    """List the registered data sources (data.kind)."""
    from manytask.data.sources import available_sources, source_class

    for kind in available_sources():
        cls = source_class(kind)
        doc = (cls.__doc__ or "").strip().splitlines()
        typer.echo(f"{kind:12s} {cls.summary or (doc[0] if doc else '')}")


@app.command("trunks")
def list_trunks() -> None:
    """List the registered trunks (model.trunk); an import path module:function also works."""
    from manytask.models.registry import available_trunks, resolve_trunk

    for name in available_trunks():
        doc = (resolve_trunk(name).__doc__ or "").strip().splitlines()
        typer.echo(f"{name:12s} {doc[0] if doc else ''}")


@app.command()
@guarded
def group(
    config: Path = typer.Argument(..., help="YAML config file (its tasks are the ones to group)"),
    method: str = typer.Option("exhaustive", "--method", "-m", help="exhaustive, esa, esa_epochs, hoa, tag or cosine"),
    budgets: str = typer.Option("", "--budgets", help="inference budgets in full-network units, e.g. 1:5:0.5 "
                                "(default: 1 to the number of tasks, step 0.5)"),
    executor: str = typer.Option("sequential", "--executor", help="sequential, pool or ray"),
    workers: int = typer.Option(2, "--workers", help="pool processes / local Ray CPUs"),
    ray_address: str | None = typer.Option(None, "--ray-address", help="address of an existing Ray cluster"),
    out: Path | None = typer.Option(None, "--out", "-o", help="output folder (default: OUTPUT_DIR/group-NAME); "
                                    "shared by all methods, rerunning skips finished candidates"),
    normalize: str = typer.Option("single_task", "--normalize", help="single_task, prior or none"),
    esa_fraction: float = typer.Option(0.2, "--esa-fraction", help="esa: share of ONE epoch's steps each candidate "
                                       "trains (of the full schedule); esa_epochs: share of the schedule (epochs)"),
    tag_every: int | None = typer.Option(None, "--tag-every", help="tag/cosine: sample affinities every N steps "
                                         "(default: the variant's; authors: 1, plain: 10)"),
    tag_variant: str = typer.Option("authors", "--tag-variant", help="tag/cosine: authors (Fifty et al.'s code) "
                                    "or plain (SGD lookahead, unscaled, a task alone scores 0)"),
    set_: list[str] | None = typer.Option(None, "--set", help="override a config value, e.g. training.epochs=3"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no per-candidate lines"),
) -> None:
    """Which tasks to train together: candidates, selection per budget, baselines (Standley et al. 2020)."""
    from manytask.config import load_config
    from manytask.grouping.search import group_search
    from manytask.grouping.select_report import parse_budgets

    cfg = load_config(config, parse_overrides(set_))
    budget_list = parse_budgets(budgets) if budgets.strip() else None
    root = out or Path(cfg.output_dir) / f"group-{cfg.name}"
    result = group_search(cfg, method, budget_list, executor, root, workers=workers, ray_address=ray_address,
                          esa_fraction=esa_fraction, tag_every=tag_every, tag_variant=tag_variant, normalize=normalize,
                          progress=not quiet)
    for b, g in zip(result.budgets, result.groupings()):
        what = "infeasible" if g is None else "  ".join("{" + ", ".join(t) + "}" for t in g)
        typer.echo(f"budget {b:g}: {what}")
    typer.echo("")
    typer.echo(result.budget_table())
    typer.echo("")
    typer.echo(result.compute_table())
    typer.echo("")
    typer.echo(f"outputs in {root}:")
    for key, path in result.files.items():
        typer.echo(f"  {key:16s} {path}")


@app.command()
@guarded
def select(
    table: Path = typer.Argument(..., help="candidate table: .csv, .parquet or a Standley .txt file"),
    budgets: str = typer.Option("1:5:0.5", "--budgets", help="budgets, e.g. 1:5:0.5 or 1,2,3"),
    test: Path | None = typer.Option(None, "--test", help="table to score the chosen networks on "
                                     "(e.g. Standley's results_test.txt)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="write selection.md/.csv/.json and budget_curves.png here"),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="all-in-one, independent, random, worst"),
    random_samples: int = typer.Option(2000, "--random-samples", help="samples of the random-groupings baseline"),
    seed: int = typer.Option(0, "--seed", help="seed of the random-groupings baseline"),
    time_limit: float | None = typer.Option(None, "--time-limit", help="seconds for the selection "
                                            "(many tasks); past it: best found and a lower bound"),
) -> None:
    """Optimal networks per budget from a candidate table trained elsewhere (exact selection)."""
    from manytask.grouping.select_report import parse_budgets, run_select
    from manytask.reporting.tables import markdown_table

    res = run_select(str(table), parse_budgets(budgets), str(test) if test else None,
                     str(out) if out else None, baselines=baselines, n_random=random_samples, seed=seed,
                     time_limit=time_limit)
    fmt = lambda x: "—" if x is None else f"{x:.5f}"  # noqa: E731
    rows = []
    for r in res["selections"]:
        if not r["feasible"]:
            rows.append([f"{r['budget']:g}", "infeasible", "—", "—"])
            continue
        nets = "; ".join(f"{lab} → {'+'.join(g) if g else '(unused)'}" for lab, g in r["serves"].items())
        rows.append([f"{r['budget']:g}", nets, fmt(r["val_loss"]), fmt(r["test_loss"])])
    typer.echo(markdown_table(["budget", "networks", "val loss", "test loss"], rows,
                              title=f"optimal networks — {table.name}"))
    typer.echo("")
    names = list(res["curves"])
    curve_rows = [[f"{b:g}"] + [fmt(res["curves"][n][i]) for n in names] for i, b in enumerate(res["budgets"])]
    typer.echo(markdown_table(["budget"] + names, curve_rows, title="total loss per budget"))
    for note in res["notes"]:
        typer.echo(f"note: {note}")
    for key, path in res["files"].items():
        typer.echo(f"{key}: {path}")


@app.command()
@guarded
def embed(
    run_dir: Path = typer.Argument(..., help="a run directory (manytask run)"),
    data: Path | None = typer.Option(None, "--data", help="embed this data config (YAML or run directory) "
                                     "instead of the run's own; its tasks give the labels"),
    split: str = typer.Option("test", "--split", help="train, val, test or all"),
    columns: str = typer.Option("", "--columns", help="also store these data columns as labels, comma-separated "
                                "(e.g. a held-out column no task reads)"),
    out: Path = typer.Option(Path("embeddings.npz"), "--out", "-o", help="FILE.npz or FILE.parquet"),
    weights: str = typer.Option("best", "--weights", help="best or last"),
) -> None:
    """Embeddings of the run's shared representation, with ids, split and task labels."""
    from manytask.cli_args import parse_names
    from manytask.evaluation.embed import (
        compute_embeddings,
        embeddings_suffix,
        write_embeddings,
    )

    embeddings_suffix(out)
    emb = compute_embeddings(run_dir, data_config=data, split=split, which=weights,
                             columns=parse_names(columns))
    write_embeddings(out, emb)
    typer.echo(f"{len(emb)} rows x {emb.embeddings.shape[1]} dims ({split}); labels: "
               f"{', '.join(emb.labels) or 'none'}; wrote {out}")


@app.command()
@guarded
def search(
    embeddings: Path = typer.Argument(..., help="an embeddings file (manytask embed)"),
    seed_ids: str | None = typer.Option(None, "--seed-ids", help="query: ids of seed rows, comma-separated"),
    seed_images: str | None = typer.Option(None, "--seed-images", help="query: image files forming one gallery, "
                                           "comma-separated (needs --run)"),
    run: Path | None = typer.Option(None, "--run", help="run directory whose model embeds --seed-images"),
    k: int = typer.Option(10, "--k", help="results to list"),
    index: str = typer.Option("exact", "--index", help="exact (cosine), lsh (sign random projections, Hamming) "
                              "or brp (bucketed random projections, the paper's LSH)"),
    nbits: int | None = typer.Option(None, "--nbits", help="lsh: bits per code (default 256)"),
    tables: int | None = typer.Option(None, "--tables", help="brp: hash tables (default 32)"),
    projections: int | None = typer.Option(None, "--projections", help="brp: projections per table (default 8)"),
    bucket_width: float | None = typer.Option(None, "--bucket-width", help="brp: bucket width on unit vectors "
                                              "(default 0.5)"),
    rerank: int = typer.Option(10, "--rerank", help="lsh: order the RERANK x k nearest codes by exact cosine "
                               "(1 = Hamming ranking alone)"),
    grid: Path | None = typer.Option(None, "--grid", help="also draw the results' images into this PNG"),
    data: Path | None = typer.Option(None, "--data", help="--grid: the data config or run directory holding the items"),
) -> None:
    """Rows most similar to seed galleries (by id) or to seed images."""
    from manytask.cli_args import parse_names
    from manytask.evaluation.embed import search_file

    if grid is not None and data is None and run is None:
        raise ConfigError("--grid needs --data (a config or run directory) to find the items")
    found = search_file(embeddings, seed_ids=parse_names(seed_ids), seed_images=parse_names(seed_images), run_dir=run,
                        k=k, index=index, nbits=nbits, rerank=rerank, tables=tables, projections=projections,
                        bucket_width=bucket_width)
    score = "hamming  cosine" if index == "lsh" else "cosine"
    typer.echo(f"rank  {found.emb.id_name:20s} {score}")
    for rank, (row, s, c) in enumerate(zip(found.rows, found.scores, found.cosine), start=1):
        extra = f"{int(s):7d}  {c:6.4f}" if index == "lsh" else f"{s:8.4f}"
        typer.echo(f"{rank:4d}  {found.emb.ids[row]:20s} {extra}")
    if grid is not None:
        from manytask.reporting.galleries_plots import draw_search_grid

        typer.echo(f"grid: {draw_search_grid(found, data or run, grid, seed_images=parse_names(seed_images))}")


@app.command("map")
@guarded
def map_(
    embeddings: Path = typer.Argument(..., help="an embeddings file (manytask embed)"),
    color_by: str = typer.Option(..., "--color-by", help="the task whose labels colour the points"),
    method: str = typer.Option("tsne", "--method", help="tsne (scikit-learn) or umap (needs umap-learn)"),
    out: Path = typer.Option(Path("map.png"), "--out", "-o", help="PNG file"),
    max_points: int = typer.Option(5000, "--max-points", min=4, help="project at most this many rows (random)"),
    seed: int = typer.Option(0, "--seed", help="seed of the row sample and the projection"),
) -> None:
    """2-D map (t-SNE or UMAP) of the embeddings coloured by a task's labels."""
    from manytask.evaluation.embed import project_2d, read_embeddings
    from manytask.reporting.galleries_plots import plot_map

    emb = read_embeddings(embeddings)
    xy, labels = project_2d(emb, color_by, method=method, max_points=max_points, seed=seed)
    plot_map(xy, labels, out, label_name=color_by, classes=emb.classes.get(color_by, ()),
             title=f"{method} of {embeddings.name}, coloured by {color_by}")
    typer.echo(f"{len(xy)} points; wrote {out}")


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:
    return f"manytask: warning: {message}\n"


def main() -> None:
    """Console entry point (warnings are printed as one line each)."""
    import warnings

    warnings.formatwarning = _one_line_warning  # type: ignore[assignment]
    app(prog_name="manytask")


if __name__ == "__main__":  # pragma: no cover
    main()
