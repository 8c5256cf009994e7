"""gru-lab train: one model from a config, its progress, its run record, and what to do when it is stopped."""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from gru_lab.cli.common import (
    MlflowOption,
    SetOption,
    compiled_loops_first,
    err,
    load,
    out,
    preflight,
    tensorboard_line,
    tracking_first,
    user_errors,
    warn,
    with_mlflow,
)
from gru_lab.errors import RunStopped, machine_limit


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
    set_ = with_mlflow(set_, mlflow)
    cfg = load(config, set_)
    preflight([cfg])
    tracking_first(cfg)
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
        compiled_loops_first([cfg])
        tracker = RunTracker.start(cfg, folder.run_id, folder.workdir, warn)  # None without output.mlflow
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
        tensorboard_line(run_dir / "tensorboard", "this run's curves")
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


def _print_run(metrics: dict, run_dir: Path) -> None:
    from gru_lab.report.console import predictions_table, run_summary_table

    out.print(run_summary_table(metrics, title=f"{metrics.get('name')} - {metrics.get('run_id')}"))
    if metrics.get("predictions"):
        out.print(predictions_table(metrics["predictions"]))
    out.print(f"run folder: {run_dir}", soft_wrap=True)
