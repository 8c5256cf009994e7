"""The `gru-lab` command line: each command parses, calls the library, prints.

TensorFlow is imported only inside commands that train or load models, so `--help` and
config errors answer at once.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from gru_lab import __version__
from gru_lab.errors import GruLabError

# TensorFlow's C++ start-up chatter hides the one line a user needs; keep real errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

app = typer.Typer(
    help="A lab for recurrent networks (SimpleRNN, LSTM, GRU) on Keras 3: train, compare, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)
for _console in (out, err):
    # Piped into a file or a CI log there is no terminal width to respect; 80 columns would fold tables.
    if not _console.is_terminal:
        _console.width = max(_console.width, 120)

SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override a config key, e.g. --set model.units=64 (repeatable)."),
]


def user_errors(fn: Callable) -> Callable:
    """A GruLabError becomes one line on stderr and exit code 2; anything else stays a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GruLabError as exc:
            # escape: a message may hold brackets that rich would read as markup (pip install 'gru-lab[ray]')
            err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(code=exc.exit_code) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        out.print(f"gru-lab {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """gru-lab: run and compare recurrent-network experiments from YAML configs."""


def _load(config: Optional[Path], overrides: Optional[list[str]]):
    from gru_lab.config import EMBEDDED_DEFAULT, load_config

    return load_config(config or EMBEDDED_DEFAULT, overrides or [])


@app.command()
@user_errors
def train(
    config: Annotated[Optional[Path], typer.Argument(
        help="Experiment YAML. Omitted: the embedded default (GRU on synthetic sine waves, no download).")] = None,
    set_: SetOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Train one model from a config and write results/<name>/<run-id>/."""
    cfg = _load(config, set_)
    from gru_lab.data import load_dataset

    with err.status(f"loading data '{cfg.data.name}'...", spinner="dots") if not quiet else _nullcontext():
        data = load_dataset(cfg.data, cfg.seed)
    from gru_lab.runs import save_run

    result = _train_with_progress(cfg, data, quiet)
    with err.status("writing the run record...") if not quiet else _nullcontext():
        run_dir = save_run(cfg, result, data)
    _print_run(result.metrics, run_dir)
    if result.status == "interrupted":
        err.print(f"[yellow]interrupted:[/] kept {len(result.history)} finished epoch(s) in {run_dir}")
        raise typer.Exit(code=130)


def _progress():
    """The progress display train, compare and sweep share: a bar per task with its latest logs, on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[logs]}"), console=err, transient=False)


def _train_with_progress(cfg, data, quiet: bool):
    from gru_lab.training import train as run_training

    if quiet:
        return run_training(cfg, data)
    with _progress() as progress:
        epochs = progress.add_task(f"{cfg.name}: epochs", total=cfg.train.epochs, logs="")
        batches = progress.add_task("  batches", total=None, logs="")

        def on_batch(batch: int, total: int) -> None:
            progress.update(batches, completed=batch, total=total)

        def on_epoch(epoch: int, logs: dict, seconds: float) -> None:
            shown = "  ".join(f"{k}={v:.4g}" for k, v in logs.items())
            progress.update(epochs, completed=epoch, logs=f"{seconds:.1f}s  {shown}")
            progress.update(batches, completed=0)

        result = run_training(cfg, data, epoch_hook=on_epoch, batch_hook=on_batch)
        progress.update(batches, visible=False)
    return result


def _print_run(metrics: dict, run_dir: Path) -> None:
    from gru_lab.report import predictions_table, run_summary_table

    out.print(run_summary_table(metrics, title=f"{metrics.get('name')} - {metrics.get('run_id')}"))
    if metrics.get("predictions"):
        out.print(predictions_table(metrics["predictions"]))
    out.print(f"run folder: {run_dir}", soft_wrap=True)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@app.command()
@user_errors
def inspect(
    config: Annotated[Optional[Path], typer.Argument(help="Experiment YAML (omitted: the embedded default).")] = None,
    set_: SetOption = None,
    build: Annotated[bool, typer.Option("--build/--no-build", help="Also build the Keras model and print its summary.")] = True,
) -> None:
    """Show the model a config builds: layers, exact parameter formulas, cuDNN eligibility. Trains nothing."""
    cfg = _load(config, set_)
    from gru_lab.data import spec_for
    from gru_lab.models import (build_model, cudnn_eligibility, fast_path_eligibility, plan_layers,
                                token_table_eligibility)
    from gru_lab.report import layers_table

    spec = spec_for(cfg.data)
    plans = plan_layers(cfg.model, spec)
    out.print(layers_table(plans, cudnn_eligibility(cfg.model, spec), fast_path_eligibility(cfg.model, spec)))
    table = token_table_eligibility(cfg.model, spec)
    if table is not None:
        out.print(f"Inference on a CPU: {table.layer} reads its input projections from a token table: {table.describe()}",
                  markup=False, highlight=False)
    out.print(f"Training and inference on a CPU with gru-lab's compiled GRU loops: {_native_verdict(cfg)}",
              markup=False, highlight=False)
    if build:
        model = build_model(cfg.model, spec)
        model.summary(print_fn=lambda line, **_: out.print(line, markup=False, highlight=False))
        keras_total = model.count_params()
        formula_total = sum(p.params for p in plans)
        if keras_total != formula_total:  # a bug, not a user error: the formulas must match Keras
            raise RuntimeError(f"Keras counts {keras_total} parameters, the formulas {formula_total}")


def _native_verdict(cfg) -> str:
    """yes, or no with the reasons (models.native_loop_blockers, the run settings, the build); builds nothing."""
    from gru_lab import native
    from gru_lab.models import native_loop_blockers

    reasons = native_loop_blockers(cfg.model)
    if cfg.train.xla == "on":
        reasons.append("train.xla is 'on' (the compiled ops have no XLA kernel)")
    if cfg.train.device == "gpu":
        reasons.append("train.device is 'gpu' (Keras's cuDNN kernels run there)")
    if not native.enabled_by_env():
        reasons.append("GRU_LAB_NATIVE=0")
    elif not native.library_path().exists():
        reasons.append("not built yet (`python -m gru_lab.native`, or the first run that needs it, builds it)")
    return "yes" if not reasons else "no: " + "; ".join(reasons)


@app.command()
@user_errors
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder of a text model, e.g. results/imdb_gru/<run-id>.")],
    texts: Annotated[Optional[list[str]], typer.Argument(help="Reviews to score, one argument each.")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="A text file with one review per line.")] = None,
) -> None:
    """Score new reviews with a trained model: probability of positive, and the label."""
    reviews = list(texts or [])
    if file is not None:
        if not file.is_file():
            raise GruLabError(f"{file}: --file not found; expected a text file with one review per line.")
        try:
            reviews += [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise GruLabError(f"{file}: cannot read --file ({exc.__class__.__name__}).") from None
    if not reviews:
        raise GruLabError("predict: no text given; pass reviews as arguments or --file reviews.txt.")
    from gru_lab.runs import load_for_prediction

    cfg, model, vocabulary = load_for_prediction(run_dir)
    from gru_lab.data.imdb import encode_texts
    from gru_lab.report import predictions_text_table

    x = encode_texts(reviews, vocabulary["word_index"], vocabulary["num_words"], vocabulary["maxlen"],
                     vocabulary["padding"], vocabulary["truncating"])
    if getattr(cfg.data, "as_real", False):
        x = x[..., None].astype("float32")
    probabilities = model.predict(x, batch_size=256, verbose=0).reshape(-1)
    out.print(predictions_text_table(reviews, probabilities.tolist()))


@app.command()
@user_errors
def compare(
    cells: Annotated[Optional[list[str]], typer.Argument(
        help="Cells to compare: gru, lstm, simple_rnn (aliases rnn, simplernn). Omitted: rnn lstm gru.",
        show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option(
        "--config", "-c", help="Base experiment YAML. Omitted: the embedded default (the adding problem at "
                               "T=10 and T=40, synthetic, a few minutes on 2 CPU cores).")] = None,
    set_: SetOption = None,
    seeds: Annotated[int, typer.Option(
        "--seeds", help="Runs per cell, with train seeds seed, seed+1, ...; 2 is the fewest that shows a spread.")] = 2,
    lengths: Annotated[Optional[list[str]], typer.Option(
        "--lengths", help="Adding problem only: the sequence lengths T to run, e.g. 10,40. "
                          "Default: the config's data.length (the embedded default: 10,40).")] = None,
    equal_params: Annotated[bool, typer.Option(
        "--equal-params", help="Choose units per cell so every model's recurrent parameter count is as close "
                               "as possible to one budget.")] = False,
    budget: Annotated[Optional[int], typer.Option(
        "--budget", help="Recurrent-parameter budget for --equal-params (implies it). "
                         "Default: the base config's count with a GRU.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Train each cell on the same base config (same data, seeds, hyperparameters); write and show the
    comparison table, plots and verdicts under results/<name>/. Finished runs are reused on a re-run."""
    from gru_lab.compare import plan_compare

    plan = plan_compare(config, set_, cells, seeds, lengths, equal_params, budget)
    result = _compare_with_progress(plan, quiet)
    from gru_lab.report import print_comparison, write_comparison

    comp = write_comparison(result)
    print_comparison(out, result, comp)
    _exit_for_runs(result, plan.folder, "compare")


def _exit_for_runs(result, folder: Path, command: str) -> None:
    """After the tables are written and shown: exit 130 when Ctrl-C stopped the runs, 1 when one failed."""
    failed = [o for o in result.outcomes if o.status == "failed"]
    if result.interrupted:
        done = sum(o.ok for o in result.outcomes)
        err.print(f"[yellow]interrupted:[/] {done} of {len(result.outcomes)} runs finished and kept; "
                  "run the same command again to do the rest.")
        raise typer.Exit(code=130)
    if failed:
        err.print(f"[red]{len(failed)} run(s) failed[/] (logs in {folder / 'failures'}); "
                  f"the next {command} retries them.", soft_wrap=True)
        raise typer.Exit(code=1)


def _compare_with_progress(plan, quiet: bool):
    from gru_lab.compare import execute

    if quiet:
        return execute(plan)
    with _progress() as progress:
        runs = progress.add_task(f"{plan.name}: runs", total=len(plan.runs), logs="")
        epochs = progress.add_task("  epochs", total=None, logs="")

        def on_event(kind: str, run, info: dict) -> None:
            if kind == "reuse":
                progress.advance(runs)
                progress.update(runs, logs=f"reused {run.run_id}")
            elif kind == "start":
                progress.update(epochs, description=f"  {run.label}", completed=0, total=run.cfg.train.epochs, logs="")
            elif kind == "epoch":
                shown = "  ".join(f"{k}={v:.4g}" for k, v in info["logs"].items())
                progress.update(epochs, completed=info["epoch"], logs=f"{info['seconds']:.1f}s  {shown}")
            elif kind == "finish":
                progress.advance(runs)
            elif kind == "fail":
                progress.advance(runs)
                progress.console.print(f"[red]failed:[/] {run.label} ({run.run_id}): {info['error']}",
                                       soft_wrap=True, highlight=False)

        result = execute(plan, on_event=on_event)
        progress.update(epochs, visible=False)
    return result


@app.command()
@user_errors
def sweep(
    config: Annotated[Path, typer.Argument(
        help="Base experiment YAML; its optional `sweep:` section holds defaults for every flag below.")],
    grid: Annotated[Optional[list[str]], typer.Option(
        "--grid", "-g", help="An axis: KEY=V1,V2,... with YAML values, e.g. model.units=32,64 (repeatable). "
                             "The sweep runs every combination of the axes.")] = None,
    set_: SetOption = None,
    seeds: Annotated[Optional[int], typer.Option(
        "--seeds", help="Runs per grid point, with train seeds seed, seed+1, ... (default: 1)", show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", "-w", help="Local: runs at once, one worker process each, with cores // workers TensorFlow "
                                "threads (default: 1). Ray: runs in flight (default: what the cluster fits).",
        show_default=False)] = None,
    backend: Annotated[Optional[str], typer.Option(
        "--backend", help="local (worker processes on this machine; the default) or ray (one task a run on a "
                          "Ray cluster; needs gru-lab's ray extra).", show_default=False)] = None,
    ray_address: Annotated[Optional[str], typer.Option(
        "--ray-address", help="Ray cluster: auto (the one this machine belongs to) or ray://host:10001. "
                              "Omitted: a local Ray instance for this sweep.")] = None,
    num_cpus: Annotated[Optional[float], typer.Option(
        "--num-cpus", help="Ray: CPUs each run reserves, also its TensorFlow threads (default: 1).",
        show_default=False)] = None,
    num_gpus: Annotated[Optional[float], typer.Option(
        "--num-gpus", help="Ray: GPUs each run reserves; 0.5 lets two runs share one (default: 0).",
        show_default=False)] = None,
    name: Annotated[Optional[str], typer.Option(
        "--name", help="Folder of the sweep under output.dir. Default: the config's name.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Train every combination of the --grid axes (x seeds) and write the sweep table and plot under
    results/<name>/. Finished runs are reused on a re-run; failed ones are retried."""
    from gru_lab.sweep import plan_sweep

    plan = plan_sweep(config, set_, grid, seeds, workers, backend, ray_address, num_cpus, num_gpus, name)
    result = _sweep_with_progress(plan, quiet)
    from gru_lab.report import print_sweep, write_sweep

    rep = write_sweep(result)
    print_sweep(out, result, rep)
    _exit_for_runs(result, plan.folder, "sweep")


def _sweep_with_progress(plan, quiet: bool):
    from gru_lab.sweep import execute_sweep

    if quiet:
        return execute_sweep(plan)
    with _progress() as progress:
        runs = progress.add_task(f"{plan.name}: runs", total=len(plan.runs), logs="")
        active: dict[str, int] = {}  # run id -> its progress line, while it runs

        def on_event(kind: str, run, info: dict) -> None:
            if kind == "reuse":
                progress.advance(runs)
                progress.update(runs, logs=f"reused {run.run_id}")
            elif kind == "start":
                # Ray tasks report no epochs: their line says the run is on the cluster until it returns.
                epochs = run.cfg.train.epochs if plan.backend == "local" else None
                active[run.run_id] = progress.add_task(f"  {run.label}", total=epochs,
                                                       logs="" if epochs else "on the Ray cluster")
            elif kind == "epoch":
                shown = "  ".join(f"{k}={v:.4g}" for k, v in info["logs"].items())
                progress.update(active[run.run_id], completed=info["epoch"], logs=f"{info['seconds']:.1f}s  {shown}")
            elif kind in ("finish", "fail"):
                progress.remove_task(active.pop(run.run_id))
                progress.advance(runs)
                if kind == "fail":
                    progress.console.print(f"[red]failed:[/] {run.label} ({run.run_id}): {info['error']}",
                                           soft_wrap=True, highlight=False)

        return execute_sweep(plan, on_event=on_event)


@app.command()
@user_errors
def report(
    results: Annotated[Path, typer.Argument(help="Folder to scan for run folders (metrics.json + config.yaml).")] = Path("results"),
) -> None:
    """One leaderboard of every run under a folder: printed, and written to <folder>/leaderboard.csv and .md."""
    from gru_lab.errors import RunError
    from gru_lab.report import leaderboard_frame, leaderboard_table, write_leaderboard

    if not results.is_dir():
        raise RunError(f"{results}: folder not found; expected the results folder that train and compare write.")
    df = leaderboard_frame(results)
    if df.empty:
        raise RunError(f"{results}: no run folders found (a run folder holds metrics.json); train or compare first.")
    out.print(leaderboard_table(df, title=f"Leaderboard: {results} ({len(df)} runs)"))
    for kind, path in write_leaderboard(df, results).items():
        out.print(f"{kind}: {path}", soft_wrap=True, highlight=False)


BENCH_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "imdb_gru_literal.yaml"  # seed 000 to the letter


@app.command()
@user_errors
def bench(
    config: Annotated[Optional[Path], typer.Argument(
        help="Experiment YAML. Omitted: configs/imdb_gru_literal.yaml (seed 000), on real IMDB when GRU_LAB_IMDB or "
             "data.path names it, else on IMDB-shaped synthetic tokens.")] = None,
    cells: Annotated[str, typer.Option("--cells", help="Comma-separated cells to bench: rnn, lstm, gru.")] = "rnn,lstm,gru",
    set_: SetOption = None,
    ablation: Annotated[bool, typer.Option(
        "--ablation", help="Also run gru-lab with the fused layers and/or XLA switched off.")] = False,
    quick: Annotated[bool, typer.Option(
        "--quick", help="A small workload (2,000 train / 1,000 test reviews, 2 epochs): checks the bench, not the speed.")] = False,
    isolate: Annotated[bool, typer.Option(
        "--isolate", help="Run each variant in its own fresh process, so that each peak RSS is its own.")] = False,
) -> None:
    """Time gru-lab's training path against a plain Keras baseline written the seed's way, per cell, in one
    process: s/epoch, train and inference samples/s, test metric, peak memory, and the ratios.
    Writes results/bench/<time>/bench.md, bench.csv, ratios.csv, bench.json."""
    from gru_lab.config import CELL_ALIASES, load_config

    if config is None and not BENCH_CONFIG.is_file():
        raise GruLabError(f"bench: the default config {BENCH_CONFIG} is missing; pass a CONFIG.")
    overrides = list(set_ or [])
    if quick:
        overrides = ["data.n_train=2000", "data.n_test=1000", "train.epochs=2"] + overrides
    cfg = load_config(config or BENCH_CONFIG, overrides)
    chosen = [CELL_ALIASES.get(c.strip().lower(), c.strip().lower()) for c in cells.split(",") if c.strip()]
    from gru_lab.bench import run_bench
    from gru_lab.report import print_bench, write_bench

    with err.status("bench: loading data...") as status:
        def on_variant(cell: str, variant: str) -> None:
            status.update(f"bench: {cell}, {variant} (training and timing)...")

        result = run_bench(cfg, chosen, ablation=ablation, overrides=overrides, on_variant=on_variant, isolate=isolate)
    files = write_bench(result)
    print_bench(out, result)
    out.print(f"bench folder: {result.folder} ({', '.join(p.name for p in files.values())})", soft_wrap=True)


_ABSL_LINE = re.compile(rb"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]|WARNING: All log messages before absl::InitializeLog)")


def _filter_native_logs() -> None:
    """Keep TensorFlow's native log lines (oneDNN notices, CUDA probing, tf.data attribute warnings)
    off the terminal. TF 2.21 writes them through absl, which ignores TF_CPP_MIN_LOG_LEVEL, so file
    descriptor 2 goes through a filter thread that drops absl-formatted lines and passes everything
    else on. Python's own stderr (our messages, tracebacks) bypasses the filter. GRU_LAB_NATIVE_LOGS=1
    turns the filter off."""
    if os.environ.get("GRU_LAB_NATIVE_LOGS"):
        return
    import io
    import threading

    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = io.TextIOWrapper(os.fdopen(real, "wb", buffering=0), encoding="utf-8",
                                  errors="backslashreplace", line_buffering=True, write_through=True)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not _ABSL_LINE.match(line):
                    os.write(real, line)

    threading.Thread(target=pump, name="native-log-filter", daemon=True).start()


def run() -> None:  # console-script entry point
    _filter_native_logs()
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
