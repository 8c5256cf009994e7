"""The `gru-lab` command line: each command parses, calls the library, prints.

TensorFlow is imported only inside commands that train or load models, so `--help` and
config errors answer at once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from gru_lab import __version__
from gru_lab.errors import GruLabError, RunStopped, machine_limit

# TensorFlow's C++ start-up chatter hides the one line a user needs (gru_lab.tflogs keeps its fatal lines).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

app = typer.Typer(
    help="A lab for recurrent networks (SimpleRNN, LSTM, GRU) on Keras 3: train, compare, report.",
    no_args_is_help=True,
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
MlflowOption = Annotated[Optional[str], typer.Option(
    "--mlflow", help="Also log to MLflow (the mlflow extra): a tracking URI such as http://127.0.0.1:5000, or true "
                     "for $MLFLOW_TRACKING_URI or else the local store <output.dir>/mlflow.db (output.mlflow).",
    show_default=False)]


def _with_mlflow(set_: Optional[list[str]], mlflow: Optional[str]) -> Optional[list[str]]:
    """--mlflow URI is output.mlflow=URI; it is not part of a run's id (runs.folder.config_hash)."""
    return set_ if mlflow is None else [*(set_ or []), f"output.mlflow={mlflow}"]


def _warn(line: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


def _tracking_first(cfg) -> None:
    """Tracking asked for without the mlflow extra: one line and exit code 2, before anything runs or builds."""
    from gru_lab.tracking.store import require_mlflow, tracking_uri

    if tracking_uri(cfg.output.mlflow, cfg.output.dir):
        require_mlflow()


def user_errors(fn: Callable) -> Callable:
    """A GruLabError becomes one line on stderr and its exit code (2: a user's mistake); a limit of the machine
    (out of memory, disk full, no permission) one line and exit code 1; anything else stays a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GruLabError as exc:
            _error_line(str(exc))
            raise typer.Exit(code=exc.exit_code) from None
        except Exception as exc:
            line = machine_limit(exc)
            if line is None:
                raise
            _error_line(line)
            raise typer.Exit(code=1) from None

    return wrapper


def _error_line(text: str) -> None:
    # escape: a message may hold brackets that rich would read as markup (pip install 'gru-lab[ray]')
    err.print(f"[bold red]error:[/] {escape(text)}", markup=True, highlight=False, soft_wrap=True)


def _preflight(cfgs, concurrent: int = 1, what: str = "this run") -> None:
    """Refuse runs that cannot fit in memory (exit code 2), warn about runs that may not; before anything runs."""
    from gru_lab.training.memory import preflight

    warning = preflight(cfgs, concurrent, what)
    if warning:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"gru-lab {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """gru-lab: run and compare recurrent-network experiments from YAML configs."""


def _load(config: Optional[Path], overrides: Optional[list[str]]):
    from gru_lab.config import EMBEDDED_DEFAULT, load_config

    return load_config(config or EMBEDDED_DEFAULT, overrides or [])


@app.command()
@user_errors
def train(
    config: Annotated[Optional[Path], typer.Argument(
        help="Experiment YAML. Omitted: the embedded default (a GRU on the adding problem, synthetic, "
             "no download).")] = None,
    set_: SetOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the newest unfinished run of this config (killed or stopped with Ctrl-C) from "
                         "its last finished epoch; with none, train from the start.")] = False,
    mlflow: MlflowOption = None,
) -> None:
    """Train one model from a config and write results/<name>/<run-id>/."""
    set_ = _with_mlflow(set_, mlflow)
    cfg = _load(config, set_)
    _preflight([cfg])
    _tracking_first(cfg)
    from gru_lab.data import load_dataset
    from gru_lab.runs.folder import open_run, save_failure, save_run
    from gru_lab.runs.records import stopped_reason
    from gru_lab.tracking.runs import RunTracker
    from gru_lab.training.resume import load_state

    again = shlex.join(["gru-lab", "train", *([str(config)] if config else []),
                        *[a for o in set_ or [] for a in ("--set", o)], "--resume"])
    with open_run(cfg, resume=resume) as folder:
        state = load_state(folder.workdir) if folder.resumed else None
        if state is not None:
            err.print(f"resuming run {folder.run_id} after epoch {state.epochs_done} of {cfg.train.epochs} "
                      f"(its record: {folder.parent / folder.run_id})", highlight=False, soft_wrap=True)
        elif resume:
            err.print(f"nothing to resume for this config under {folder.parent}: training from the first epoch",
                      highlight=False, soft_wrap=True)
        with err.status(f"loading data '{cfg.data.name}'...", spinner="dots") if not quiet else \
                contextlib.nullcontext():
            try:
                data = load_dataset(cfg.data, cfg.seed)
            except Exception as exc:  # out of memory loading the data: recorded as a failed run, one line
                if machine_limit(exc) is None or state is not None:
                    raise
                raise RunStopped(f"{machine_limit(exc)} (recorded in {save_failure(cfg, folder, machine_limit(exc))})"
                                 ) from None
        _compiled_loops_first([cfg])
        tracker = RunTracker.start(cfg, folder.run_id, folder.workdir, _warn)  # None without output.mlflow
        result = _train_with_progress(cfg, data, quiet, folder.workdir, tracker.log_epoch if tracker else None)
        if tracker and result.status in ("interrupted", "failed"):
            tracker.stop("KILLED" if result.status == "interrupted" else "FAILED")
        if result.status == "interrupted":
            _interrupted(cfg, result, data, again, folder.run_id)
        if result.status == "finished" and cfg.baseline.kind != "none":
            from gru_lab.experiments.baselines import fit_baselines

            with err.status("fitting the classical baseline...") if not quiet else contextlib.nullcontext():
                result.metrics["classical_baseline"] = fit_baselines(cfg, data).record()
        with err.status("writing the run record...") if not quiet else contextlib.nullcontext():
            try:
                run_dir = save_run(cfg, result, data, folder=folder)
            except OSError as exc:
                if machine_limit(exc) is None or load_state(folder.workdir) is None:
                    raise
                raise RunStopped(f"{machine_limit(exc)}; the finished epochs are kept in {folder.workdir}: "
                                  f"make room, then `{again}` writes the record.") from None
        if tracker and result.status in ("finished", "diverged"):
            with err.status("logging to MLflow...") if not quiet else contextlib.nullcontext():
                if tracker.finish(run_dir, result.metrics):
                    err.print(f"MLflow: logged to {tracker.store.uri} (run {tracker.mlflow_run_id})",
                              highlight=False, soft_wrap=True, markup=False)
    _print_run(result.metrics, run_dir)
    if result.status == "finished":
        _print_run_verdict(cfg, result.metrics)
    if cfg.output.tensorboard and (run_dir / "tensorboard").is_dir():
        _tensorboard_line(run_dir / "tensorboard", "this run's curves")
    if result.status in ("diverged", "failed"):
        raise RunStopped(f"{stopped_reason(result.metrics)} (recorded in {run_dir})")


def _print_run_verdict(cfg, metrics: dict) -> None:
    """One line: the run against every baseline its record holds (naive and classical), won or lost."""
    from gru_lab.experiments.tables import model_text
    from gru_lab.experiments.verdicts import run_verdict
    from gru_lab.report.compare import VERDICT_STYLE

    verdict = run_verdict(model_text(cfg.model), metrics)
    if verdict is not None:
        out.print(f"[{VERDICT_STYLE[verdict.status]}]verdict:[/] {escape(verdict.detail)}", soft_wrap=True,
                  highlight=False)


def _interrupted(cfg, result, data, again: str, run_id: str) -> None:
    """Ctrl-C: the finished epochs become the run's record (status interrupted, under the run's own id) and stay
    resumable; the resumed run's record replaces it in the same folder. Exit 130."""
    from gru_lab.runs.folder import save_run

    if not result.history:
        err.print("[yellow]interrupted[/] before the first epoch finished: nothing kept.")
        raise typer.Exit(code=130)
    run_dir = save_run(cfg, result, data, run_id=run_id)
    _print_run(result.metrics, run_dir)
    err.print(f"[yellow]interrupted:[/] kept {len(result.history)} finished epoch(s) in {run_dir}; "
              f"`{escape(again)}` continues from epoch {len(result.history) + 1} and writes the finished run "
              "there.", highlight=False, soft_wrap=True)
    raise typer.Exit(code=130)


def _compiled_loops_first(cfgs) -> None:
    """Build gru-lab's compiled loops before the runs that want them, saying so once (later runs find them
    built, or their failure remembered); without this the first epoch would silently include the build."""
    from gru_lab.training.device import build_compiled_loops

    def notify(line: str) -> None:
        err.print(f"gru-lab: {line}", markup=False, highlight=False, soft_wrap=True)

    why = build_compiled_loops(cfgs, notify)
    if why:
        notify(f"compiled loops not built: {why}; the fused TensorFlow loops run instead")


def _train_with_progress(cfg, data, quiet: bool, workdir: Path | None = None, epoch_sink=None):
    from gru_lab.training.fit import train as run_training

    if quiet:
        return run_training(cfg, data, workdir=workdir, epoch_sink=epoch_sink)
    from gru_lab.report import progress

    if not err.is_terminal:  # a live bar would show nothing until the end: plain epoch lines instead
        return run_training(cfg, data, epoch_hook=progress.training_lines(err, cfg.name, cfg.train.epochs),
                            workdir=workdir)

    with progress.display(err) as bars:
        on_epoch, on_batch, done = progress.training_hooks(bars, cfg.name, cfg.train.epochs)
        result = run_training(cfg, data, epoch_hook=on_epoch, batch_hook=on_batch, workdir=workdir,
                              epoch_sink=epoch_sink)
        done()
    return result


def _runs_with_progress(plan, quiet: bool, execute, one_line: bool):
    """execute(plan, on_event=...) with the runs' progress on stderr (none with quiet)."""
    if quiet:
        return execute(plan)
    from gru_lab.report import progress

    if not err.is_terminal:  # a live bar would show nothing until the end: plain lines instead
        on_event, _ = progress.runs_lines(err, plan)
        return execute(plan, on_event=on_event)
    with progress.display(err) as bars:
        on_event, done = progress.runs_hook(bars, plan, one_line)
        result = execute(plan, on_event=on_event)
        done()
    return result


def _print_run(metrics: dict, run_dir: Path) -> None:
    from gru_lab.report.console import predictions_table, run_summary_table

    out.print(run_summary_table(metrics, title=f"{metrics.get('name')} - {metrics.get('run_id')}"))
    if metrics.get("predictions"):
        out.print(predictions_table(metrics["predictions"]))
    out.print(f"run folder: {run_dir}", soft_wrap=True)


@app.command()
@user_errors
def inspect(
    config: Annotated[Optional[Path], typer.Argument(help="Experiment YAML (omitted: the embedded default).")] = None,
    set_: SetOption = None,
    build: Annotated[bool, typer.Option(
        "--build/--no-build", help="Also build the Keras model and print its summary.")] = True,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the layer and kernel plans as JSON, nothing else.")] = False,
) -> None:
    """Show the model a config builds: layers, exact parameter formulas, and the kernel each recurrent layer
    will run here, and why. Trains nothing."""
    cfg = _load(config, set_)
    from gru_lab.data import spec_for
    from gru_lab.models.kernels import cudnn_blockers, plan_kernels
    from gru_lab.models.memory import estimate, human_bytes
    from gru_lab.models.plan import plan_layers
    from gru_lab.training.device import machine_facts
    from gru_lab.training.memory import available_memory

    spec = spec_for(cfg.data)
    plans = plan_layers(cfg.model, spec)
    kernel_plan = plan_kernels(cfg, spec, machine_facts())
    memory, available = estimate(cfg, spec), available_memory()
    if as_json:
        import json

        layers = [{"name": p.name, "kind": p.kind, "params": p.params, "formula": p.formula} for p in plans]
        out.print_json(json.dumps({"layers": layers, "cudnn_blockers": cudnn_blockers(cfg.model, spec),
                                   "kernels": kernel_plan.record(),
                                   "memory": {"estimate_bytes": memory.record(),
                                              "available_bytes": available[0] if available else None,
                                              "available_from": available[1] if available else None}}))
        return
    from gru_lab.report.console import kernels_table, layers_table, memory_table

    out.print(layers_table(plans, cudnn_blockers(cfg.model, spec)))
    out.print(kernels_table(kernel_plan))
    for note in kernel_plan.notes:
        out.print(f"- {note}", markup=False, highlight=False, soft_wrap=True)
    from gru_lab.rnn import compiled

    if kernel_plan.compiled and compiled.pending_build():  # only where they can be built (else a note says why)
        out.print("- the compiled loops are not built yet: the first run builds them, once (about a minute)")
    out.print(memory_table(memory, available))
    room = available[0] if available else 8 * 2**30
    if build and 2 * memory.parts["weights"] > room:  # building allocates the weights (Keras's summary: once more)
        build = False
        out.print("- not building the Keras model: its weights alone would take "
                  f"{human_bytes(memory.parts['weights'])}", markup=False, highlight=False)
    if build:
        from gru_lab.models.build import build_model

        model = build_model(cfg.model, spec)
        model.summary(print_fn=lambda line, **_: out.print(line, markup=False, highlight=False))
        keras_total = model.count_params()
        formula_total = sum(p.params for p in plans)
        if keras_total != formula_total:  # a bug, not a user error: the formulas must match Keras
            raise RuntimeError(f"Keras counts {keras_total} parameters, the formulas {formula_total}")


@app.command()
@user_errors
def predict(
    run_dir: Annotated[Path, typer.Argument(
        help="A finished run folder, e.g. results/imdb_gru/<run-id>.", show_default=False)],
    texts: Annotated[Optional[list[str]], typer.Argument(
        help="Text runs: texts to score, one argument each.", show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option(
        "--file", "-f", help="Text runs: a file with one text per line. Series runs: a CSV/TSV/Parquet file with "
                             "the run's columns.")] = None,
    every_window: Annotated[bool, typer.Option(
        "--every-window", help="Series runs: one forecast per window of the file, not only after its last row.")
    ] = False,
    fmt: Annotated[Optional[str], typer.Option(
        "--format", help="table, csv or json. Default: table, or what --out's suffix says (.csv, .json).",
        show_default=False)] = None,
    out_file: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Write the predictions to this file instead of the screen.")] = None,
) -> None:
    """Score new data with a trained model: texts get each class's probability, the share of their tokens out of
    the vocabulary and whether they were cut to maxlen; a series gets the forecast after its last window."""
    from gru_lab.report.predictions import FORMATS

    kind = fmt or (out_file.suffix.lstrip(".").lower() if out_file and out_file.suffix.lower() in (".csv", ".json")
                   else "table")
    if kind not in FORMATS:
        raise GruLabError(f"--format must be one of {list(FORMATS)}. Got {kind!r}.")
    from gru_lab.inference.predict import predict_run
    from gru_lab.inference.run import open_run

    predictions = predict_run(open_run(run_dir, "predict"), texts or [], file, every_window)
    from gru_lab.report.predictions import as_text, render

    if out_file is None:
        if kind == "table":
            out.print(render(predictions, kind))
        else:
            sys.stdout.write(render(predictions, kind))
        return
    from gru_lab.files import atomic_write_text

    try:
        atomic_write_text(out_file, as_text(predictions, kind))
    except OSError as exc:
        raise GruLabError(f"{out_file}: cannot write --out ({exc.__class__.__name__}: {exc.strerror}).") from None
    err.print(f"{len(predictions.frame)} prediction(s) written to {out_file}", soft_wrap=True, highlight=False)


@app.command()
@user_errors
def evaluate(
    run_dirs: Annotated[list[Path], typer.Argument(
        help="A finished run folder; several are scored as one ensemble (the mean of their probabilities or "
             "forecasts).", show_default=False)],
    data: Annotated[Optional[Path], typer.Option(
        "--data", "-d", help="Labelled data in the run's own format (a text table or class folders, a series file, "
                             "the IMDB archive or folder), or a config whose data.path names it. Omitted: the "
                             "run's own test split.", show_default=False)] = None,
    out_dir: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="A new folder for the files. Default: the run's evaluation/ (or evaluation-<time>/ "
                            "when it has one already).", show_default=False)] = None,
) -> None:
    """Score finished runs without retraining: confusion matrix, per-class precision/recall/F1, ROC and PR curves,
    calibration, the most confident mistakes, accuracy (or mse) by true length; for series the forecast on the
    file's time axis beside the naive last-value forecast. Writes evaluation.json, CSVs and PNGs."""
    from gru_lab.inference.evaluate import default_folder, evaluate_runs
    from gru_lab.report.evaluation import check_new_folder, print_evaluation, write_evaluation_folder

    folder = check_new_folder(out_dir or default_folder(run_dirs))
    ev = evaluate_runs(run_dirs, data)
    title = Path(run_dirs[0]).parent.name + (f" (ensemble of {len(run_dirs)})" if len(run_dirs) > 1 else "")
    files = write_evaluation_folder(ev, folder, title)
    print_evaluation(out, ev, files, folder)


@app.command()
@user_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.", show_default=False)],
    fmt: Annotated[str, typer.Option(
        "--format", help="keras (a .keras file) or savedmodel (a TensorFlow SavedModel folder, for TF Serving).")
    ] = "keras",
    out_path: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Where to write it. Default: <run-id>.keras or <run-id>.savedmodel here.",
        show_default=False)] = None,
    text: Annotated[bool, typer.Option(
        "--text", help="Text runs: bake the vocabulary in (a TextVectorization layer) so the model takes raw strings "
                       "and scores them as `gru-lab predict` does.")] = False,
) -> None:
    """Write the run's model made of stock Keras layers only (same weights): it loads with plain Keras or
    TensorFlow Serving where gru-lab is not installed."""
    from gru_lab.inference.export import FORMATS, export_run, takes
    from gru_lab.inference.run import open_run

    if fmt not in FORMATS:
        raise GruLabError(f"--format must be one of {list(FORMATS)}. Got {fmt!r}.")
    run = open_run(run_dir, "export")
    path = export_run(run, fmt, out_path, text)
    out.print(f"exported {run.label} ({fmt}, takes {takes(run, text)}): {path}", soft_wrap=True, highlight=False)


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
    mlflow: MlflowOption = None,
) -> None:
    """Train each cell on the same base config (same data, seeds, hyperparameters); write and show the
    comparison table, plots and verdicts under results/<name>/. Finished runs are reused on a re-run."""
    from gru_lab.experiments.compare import execute, plan_compare

    plan = plan_compare(config, _with_mlflow(set_, mlflow), cells, seeds, lengths, equal_params, budget)
    _tracking_first(plan.base)
    _before_runs(plan, 1)
    from gru_lab.report.compare import print_comparison, write_comparison
    from gru_lab.tracking.runs import plan_parent

    with plan_parent(plan, "compare", _warn) as parent:  # None without output.mlflow
        result = _runs_with_progress(plan, quiet, execute, one_line=True)
        comp = write_comparison(result)
        _log_plan(parent, result, comp.files.values())
    print_comparison(out, result, comp)
    _tensorboard_views(plan, result)
    _exit_for_runs(result, plan.folder, "compare")


def _log_plan(parent, result, files) -> None:
    """A compare's or sweep's runs (those their workers did not log: reused, or logged halfway), tables, plots
    and baselines to its parent MLflow run; one line saying where."""
    if parent is None:
        return
    counts = parent.log_plan([o.folder for o in result.outcomes], files,
                             [b.record() for b in result.baselines.values()])
    if parent.run_id and parent.store.on:
        logged = sum(n for k, n in counts.items() if k in ("logged", "present"))
        err.print(f"MLflow: {logged} run(s) under parent run {parent.run_id} at {parent.store.uri}",
                  highlight=False, soft_wrap=True, markup=False)


def _tensorboard_line(logdir: Path, what: str) -> None:
    """How to open the event files output.tensorboard wrote (and how to get TensorBoard where it is missing)."""
    from gru_lab.experiments.hparams import INSTALL, available

    line = f"TensorBoard: {what}: tensorboard --logdir {logdir}"
    err.print(line + ("" if available() else f" (needs the tensorboard extra: {INSTALL})"), highlight=False,
              soft_wrap=True, markup=False)


def _tensorboard_views(plan, result) -> None:
    """output.tensorboard on a compare or sweep: its HParams sessions, and how to open them with the curves."""
    if not plan.base.output.tensorboard:
        return
    from gru_lab.config import load_config
    from gru_lab.experiments.hparams import available, write_hparams

    if available():
        done = [o for o in result.outcomes if o.folder is not None and o.metrics]
        write_hparams(plan.folder, [(o.folder.name, load_config(o.folder / "config.yaml"), o.metrics) for o in done])
    _tensorboard_line(plan.folder, "the runs' curves" + (" and the HParams view" if available() else ""))


def _before_runs(plan, concurrent: int) -> None:
    """Before any run of a compare or sweep starts: a results folder that cannot be written and runs that
    cannot fit in memory are refused (exit code 2)."""
    from gru_lab.runs.folder import check_writable

    _preflight([r.cfg for r in plan.runs], concurrent, "the largest run")
    check_writable(plan.folder)
    _compiled_loops_first(r.cfg for r in plan.runs)


def _exit_for_runs(result, folder: Path, command: str) -> None:
    """After the tables are written and shown: exit 130 when Ctrl-C stopped the runs, 1 when one failed or
    diverged (a diverged run is kept and reused: the same config and seed diverge again)."""
    failed = [o for o in result.outcomes if o.status == "failed"]
    if result.interrupted:
        done = sum(o.ok for o in result.outcomes)
        err.print(f"[yellow]interrupted:[/] {done} of {len(result.outcomes)} runs finished and kept; "
                  "run the same command again to do the rest.")
        raise typer.Exit(code=130)
    diverged = [o for o in result.outcomes if o.status == "diverged"]
    for o in diverged:
        err.print(f"[red]diverged:[/] {escape(o.run.label)} ({o.run.run_id}): {escape(o.error or '')}",
                  highlight=False, soft_wrap=True)
    if failed:
        err.print(f"[red]{len(failed)} run(s) failed[/] (logs in {folder / 'failures'}); "
                  f"the next {command} retries them.", soft_wrap=True)
    if failed or diverged:
        raise typer.Exit(code=1)


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
        "--seeds", help="Runs per grid point, with train seeds seed, seed+1, ... (default: 1)",
        show_default=False)] = None,
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
    mlflow: MlflowOption = None,
) -> None:
    """Train every combination of the --grid axes (x seeds) and write the sweep table and plot under
    results/<name>/. Finished runs are reused on a re-run; failed ones are retried."""
    from gru_lab.experiments.sweep import execute_sweep, plan_sweep

    plan = plan_sweep(config, _with_mlflow(set_, mlflow), grid, seeds, workers, backend, ray_address, num_cpus,
                      num_gpus, name)
    _tracking_first(plan.base)
    _before_runs(plan, min(plan.workers or 1, len(plan.runs)) if plan.backend == "local" else 1)
    from gru_lab.report.sweep import print_sweep, write_sweep
    from gru_lab.tracking.runs import plan_parent

    with plan_parent(plan, "sweep", _warn) as parent:  # None without output.mlflow
        result = _runs_with_progress(plan, quiet, execute_sweep, one_line=False)
        rep = write_sweep(result)
        _log_plan(parent, result, rep.files.values())
    print_sweep(out, result, rep)
    _tensorboard_views(plan, result)
    _exit_for_runs(result, plan.folder, "sweep")


@app.command()
@user_errors
def tune(
    config: Annotated[Path, typer.Argument(
        help="Base experiment YAML; its optional `tune:` section holds the space and defaults for every flag below.")],
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", "-p", help="A parameter: KEY=SPEC with a range 16..128, 1e-4..1e-2:log, 0.1..0.5:step=0.1, or "
                              "choices \\[rnn,lstm,gru] (YAML values); repeatable; replaces tune.space's KEY.")] = None,
    set_: SetOption = None,
    trials: Annotated[Optional[int], typer.Option(
        "--trials", "-n", help="Trials the study holds when done, earlier commands' included (default: 20, or "
                               "no limit with --timeout; grid: every point).", show_default=False)] = None,
    timeout: Annotated[Optional[str], typer.Option(
        "--timeout", help="No trial starts after this long, e.g. 30m, 2h, 90s.", show_default=False)] = None,
    sampler: Annotated[Optional[str], typer.Option(
        "--sampler", help="tpe (default), random or grid.", show_default=False)] = None,
    pruner: Annotated[Optional[str], typer.Option(
        "--pruner", help="hyperband (default), halving, median or none: stops poor trials early on the "
                         "per-epoch validation metric.", show_default=False)] = None,
    metric: Annotated[Optional[str], typer.Option(
        "--metric", help="Validation quantity to optimise (default: val_accuracy for classification, val_loss "
                         "for regression).", show_default=False)] = None,
    seeds: Annotated[Optional[int], typer.Option(
        "--seeds", help="A trial scores the mean over this many train seeds (default: 1).",
        show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", "-w", help="Trials at once, one worker process each, sharing the study (default: 1). "
                                "Ray: trials in flight.", show_default=False)] = None,
    backend: Annotated[Optional[str], typer.Option(
        "--backend", help="local (default) or ray (one task a trial; needs gru-lab's ray extra).",
        show_default=False)] = None,
    storage: Annotated[Optional[str], typer.Option(
        "--storage", help="The study's database URL (sqlite:///tune.db, postgresql://...) for several machines. "
                          "Default: a journal file in the tune folder.", show_default=False)] = None,
    ray_address: Annotated[Optional[str], typer.Option(
        "--ray-address", help="Ray cluster: auto or ray://host:10001. Omitted: a local Ray instance.")] = None,
    num_cpus: Annotated[Optional[float], typer.Option(
        "--num-cpus", help="Ray: CPUs each trial reserves (default: 1).", show_default=False)] = None,
    num_gpus: Annotated[Optional[float], typer.Option(
        "--num-gpus", help="Ray: GPUs each trial reserves (default: 0).", show_default=False)] = None,
    name: Annotated[Optional[str], typer.Option(
        "--name", help="Folder and study name under output.dir. Default: the config's name.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Search hyperparameters with Optuna (TPE and a pruner on the per-epoch validation metric), trials in worker
    processes sharing one study; write tune.csv/.md/.json, best.yaml and plots under results/<name>/. The same
    command again continues the study: trials left by a kill continue from their last finished epoch."""
    from gru_lab.experiments.tune import execute_tune, plan_tune

    plan = plan_tune(config, set_, param, trials, timeout, sampler, pruner, metric, seeds, workers, backend, storage,
                     ray_address, num_cpus, num_gpus, name)
    _before_runs(plan, min(plan.workers or 1, plan.trials) if plan.backend == "local" else 1)
    from gru_lab.report.tune import print_tune, progress_hook, write_tune

    def line(text: str) -> None:
        err.print(text, markup=False, highlight=False, soft_wrap=True)

    if quiet:
        result = execute_tune(plan)
    elif not err.is_terminal:
        on_event = progress_hook(None, plan, True, line)
        result = execute_tune(plan, on_event=on_event)
    else:
        from gru_lab.report import progress

        with progress.display(err) as bars:
            on_event = progress_hook(bars, plan, False, bars.console.print)
            result = execute_tune(plan, on_event=on_event)
    summary = write_tune(result)
    print_tune(out, result, summary)
    if result.interrupted:
        err.print("[yellow]interrupted:[/] finished trials are kept; run the same command again to continue "
                  "the study (a trial cut short continues from its last finished epoch).")
        raise typer.Exit(code=130)


@app.command()
@user_errors
def report(
    results: Annotated[Path, typer.Argument(
        help="Folder to scan for run folders (metrics.json + config.yaml).")] = Path("results"),
    clean: Annotated[bool, typer.Option(
        "--clean", help="Remove the unfinished run folders (hidden .partial-*: killed or stopped runs, kept so "
                        "they can resume) that no process is training in.")] = False,
    mlflow: Annotated[Optional[str], typer.Option(
        "--mlflow", help="Also log every finished run folder under the folder to MLflow (a tracking URI, or true "
                         "for $MLFLOW_TRACKING_URI or else <folder>/mlflow.db); runs already there are not logged "
                         "again.", show_default=False)] = None,
) -> None:
    """One leaderboard of every run under a folder: printed, and written to <folder>/leaderboard.csv and .md;
    then how many unfinished run folders are left there, and how to resume or remove them."""
    from gru_lab.errors import RunError
    from gru_lab.experiments.selection import rank_on_validation
    from gru_lab.report.leaderboard import RANK_RULE, leaderboard_view, unfinished_text, write_leaderboard
    from gru_lab.runs.folder import all_unfinished, remove_unfinished
    from gru_lab.runs.records import leaderboard_frame

    if not results.is_dir():
        raise RunError(f"{results}: folder not found; expected the results folder that train and compare write.")
    if clean:
        removed, busy = remove_unfinished(results)
        err.print(f"removed {removed} unfinished run folder(s)" + (f"; {busy} in use by a running training, kept"
                                                                    if busy else ""), highlight=False)
    df = rank_on_validation(leaderboard_frame(results), results)
    left = all_unfinished(results)
    if df.empty and not left and not clean:
        raise RunError(f"{results}: no run folders found (a run folder holds metrics.json); train or compare first.")
    if not df.empty:
        out.print(leaderboard_view(df, f"Leaderboard: {results} ({len(df)} runs)", out.width), highlight=False)
        out.print(f"ranked by {RANK_RULE}", highlight=False, style="dim")
        for kind, path in write_leaderboard(df, results).items():
            out.print(f"{kind}: {path}", soft_wrap=True, highlight=False)
    if left:
        err.print(unfinished_text(left, results), highlight=False, soft_wrap=True)
    if mlflow is not None:
        import yaml

        from gru_lab.tracking.runs import backfill_tree

        with err.status("logging run folders to MLflow..."):
            uri, counts = backfill_tree(results, yaml.safe_load(mlflow), _warn)
        err.print(f"MLflow ({uri}): {counts.get('logged', 0)} run(s) logged, {counts.get('present', 0)} already there"
                  + (f", {counts['failed']} not logged" if counts.get("failed") else "")
                  + (f", {counts['skipped']} not results (interrupted or failed)" if counts.get("skipped") else ""),
                  highlight=False, soft_wrap=True, markup=False)


@app.command()
@user_errors
def bench(
    config: Annotated[Optional[Path], typer.Argument(
        help="Experiment YAML. Omitted: the IMDB GRU tutorial to the letter (configs/imdb_gru_literal.yaml), on real "
             "IMDB when GRU_LAB_IMDB or data.path names it, else on IMDB-shaped synthetic tokens.")] = None,
    cells: Annotated[str, typer.Option(
        "--cells", help="Comma-separated cells to bench: rnn, lstm, gru.")] = "rnn,lstm,gru",
    set_: SetOption = None,
    ablation: Annotated[bool, typer.Option(
        "--ablation", help="Also run gru-lab with the fused layers and/or XLA switched off.")] = False,
    quick: Annotated[bool, typer.Option(
        "--quick", help="A small workload (2,000 train / 1,000 test reviews, 2 epochs): checks the bench, "
                        "not the speed.")] = False,
    isolate: Annotated[bool, typer.Option(
        "--isolate", help="Run each variant in its own fresh process, so that each peak RSS is its own.")] = False,
    peers: Annotated[str, typer.Option(
        "--peers", help="Also train the same model in another framework, in its own process: torch (the 'peers' "
                        "extra). Without it installed the bench says how to get it and goes on.")] = "",
    recipe: Annotated[Optional[list[Path]], typer.Option(
        "--recipe", exists=True, dir_okay=False,
        help="Also time gru-lab's path on this config (model.cell set to each cell; repeatable), e.g. "
             "configs/imdb_gru.yaml, the masked recipe, beside the literal one.")] = None,
    sizes: Annotated[bool, typer.Option(
        "--sizes", help="Instead: train-step and inference throughput over a grid of units x steps x batch, token "
                        "and real-valued inputs, against plain Keras (and --peers torch); a reduced grid (about 20 "
                        "minutes on 2 cores), --quick a few sizes, --full all 18. Writes results/bench-sizes/<time>/."
                        " GRU_LAB_ISA=avx2 caps every library at AVX2.")] = False,
    full: Annotated[bool, typer.Option("--full", help="With --sizes: the full grid (long).")] = False,
    alternatives: Annotated[bool, typer.Option(
        "--alternatives", help="With --sizes: also gru-lab's fused loops under XLA, to check that the kernel plan "
                               "chose the faster of its kernels at each size.")] = False,
    only: Annotated[Optional[list[str]], typer.Option(
        "--only", help="With --sizes: cut the grid to some of its values, KEY=V[,V...] with KEY units, steps, batch "
                       "or inputs (repeatable), e.g. --only steps=2000 --only inputs=real.")] = None,
) -> None:
    """Time gru-lab's training path against a plain Keras baseline written the tutorial's way (and with --peers
    torch, the same model in PyTorch), per cell: s/epoch, train and inference samples/s, test metric, peak memory,
    and the ratios.
    Writes results/bench/<time>/bench.md, bench.csv, ratios.csv, bench.json."""
    from gru_lab import cells as cell_names
    from gru_lab.bench.bench import DEFAULT_CONFIG
    from gru_lab.config import load_config

    if sizes or full or alternatives or only:
        given = [name for name, value in (("CONFIG", config), ("--set", set_), ("--ablation", ablation),
                                          ("--isolate", isolate), ("--recipe", recipe)) if value]
        if given or not sizes:
            raise GruLabError(f"bench: {', '.join(given) or '--full/--alternatives/--only'} cannot be used "
                              f"{'with' if sizes else 'without'} --sizes.")
        if quick and full:
            raise GruLabError("bench --sizes: --quick (a few sizes) and --full (every size) exclude each other; "
                              "give one of them, or neither for the reduced grid.")
        _bench_sizes([cell_names.canonical(c) for c in cells.split(",") if c.strip()],
                     "quick" if quick else "full" if full else "reduced",
                     "torch" in [p.strip() for p in peers.split(",")], alternatives, only)
        return
    from gru_lab.bench.isa import requested_isa, worker_env

    os.environ.update(worker_env(requested_isa()))  # GRU_LAB_ISA's cap, before TensorFlow or a worker starts
    overrides = list(set_ or [])
    if quick:
        overrides = ["data.n_train=2000", "data.n_test=1000", "train.epochs=2"] + overrides
    cfg = load_config(config or DEFAULT_CONFIG, overrides)
    recipes = [load_config(path, overrides) for path in recipe or []]
    chosen = [cell_names.canonical(c) for c in cells.split(",") if c.strip()]
    chosen_peers = [p.strip() for p in peers.split(",") if p.strip()]
    from gru_lab.bench import torch_peer
    from gru_lab.bench.bench import check_cells, run_bench
    from gru_lab.report.bench import print_bench, write_bench

    check_cells(chosen)  # before the compiled loops are built for them

    if "torch" in chosen_peers and not torch_peer.torch_installed():
        err.print(f"note: {torch_peer.INSTALL}", markup=False, highlight=False, soft_wrap=True)
    _compiled_loops_first([load_config(config or DEFAULT_CONFIG, overrides + [f"model.cell={c}"]) for c in chosen]
                          + recipes)

    with err.status("bench: loading data...") as status:
        def on_variant(cell: str, variant: str) -> None:
            status.update(f"bench: {cell}, {variant} (training and timing)...")

        result = run_bench(cfg, chosen, ablation=ablation, overrides=overrides, on_variant=on_variant, isolate=isolate,
                           peers=chosen_peers, recipes=recipes)
    files = write_bench(result)
    print_bench(out, result)
    out.print(f"bench folder: {result.folder} ({', '.join(p.name for p in files.values())})", soft_wrap=True)


def _bench_sizes(cells: list[str], grid: str, torch: bool, alternatives: bool, only: list[str] | None = None) -> None:
    """bench --sizes: each (cell, inputs, variant) over the grid in its own process; the table, the heat maps."""
    from gru_lab.bench import torch_peer
    from gru_lab.bench.isa import requested_isa
    from gru_lab.bench.sizes import GRU_LAB, Size, parse_only, plan_jobs, point_config, run_sizes
    from gru_lab.report.sizes import print_sizes, write_sizes

    isa = requested_isa()
    cut = parse_only(only)
    plan_jobs(cells, grid, only=cut)  # the user's mistakes first, before anything is built
    if torch and not torch_peer.torch_installed():
        err.print(f"note: {torch_peer.INSTALL}", markup=False, highlight=False, soft_wrap=True)
    _compiled_loops_first([point_config(c, "real", Size(32, 50, 16), GRU_LAB) for c in cells])
    with err.status("bench --sizes: starting...") as status:
        def on_job(cell: str, inputs: str, variant: str) -> None:
            status.update(f"bench --sizes: {cell}, {inputs} inputs, {variant} (every size, in its own process)...")

        result = run_sizes(cells, grid, torch=torch, isa=isa, alternatives=alternatives, on_job=on_job, only=cut)
    files = write_sizes(result)
    print_sizes(out, result)
    out.print(f"bench folder: {result.folder} ({', '.join(p.name for p in files.values())})", soft_wrap=True)


@app.command("gpu-check")
@user_errors
def gpu_check(
    configs: Annotated[Optional[list[Path]], typer.Argument(
        exists=True, dir_okay=False,
        help="Configs to check, each with its own cell. Omitted (and no --compare): the IMDB GRU tutorial to the "
             "letter (configs/imdb_gru_literal.yaml).")] = None,
    compare: Annotated[Optional[list[Path]], typer.Option(
        "--compare", exists=True, dir_okay=False,
        help="A config to check with each of SimpleRNN, LSTM and GRU (repeatable), e.g. "
             "configs/imdb_compare.yaml.")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs per run.")] = 1,
    set_: SetOption = None,
) -> None:
    """On a machine with a GPU: train each config on the GPU and with train.device: cpu (each run in a fresh
    process), check that every recurrent layer ran the kernel the kernel plan named (cuDNN where eligible), and
    compare s/epoch. Writes results/gpu-check/<time>/gpu_check.md and gpu_check.json; exit 1 when a check fails."""
    from gru_lab.bench.bench import DEFAULT_CONFIG
    from gru_lab.bench.gpu_check import plan_jobs, require_gpu, run_check
    from gru_lab.config import load_config
    from gru_lab.report.gpu_check import print_gpu_check, write_gpu_check

    overrides = list(set_ or [])
    singles = [load_config(p, overrides) for p in (configs or ([] if compare else [DEFAULT_CONFIG]))]
    compares = [load_config(p, overrides) for p in compare or []]
    jobs = plan_jobs(singles, compares, epochs)
    require_gpu()
    with err.status("gpu-check: starting...") as status:
        result = run_check(jobs, on_run=lambda job, device: status.update(f"gpu-check: {job} on the {device}..."),
                           output_dir=(singles or compares)[0].output.dir)
    files = write_gpu_check(result)
    print_gpu_check(out, result)
    out.print(f"gpu-check folder: {result.folder} ({', '.join(p.name for p in files.values())})", soft_wrap=True)
    if result.failed:
        err.print("gpu-check: some layer did not run the planned kernel, or a run failed (see the check column)",
                  markup=False, highlight=False)
        raise typer.Exit(code=1)


def run() -> None:  # console-script entry point
    from gru_lab import tflogs

    tflogs.filter_stderr()
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
