"""Many runs and their tables: gru-lab compare (cells on one config), sweep (a grid), tune (an Optuna search) and
report (one leaderboard of every run under a folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from gru_lab.cli.common import (
    MlflowOption,
    SetOption,
    before_runs,
    err,
    out,
    tensorboard_line,
    tracking_first,
    user_errors,
    warn,
    with_mlflow,
)


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

    plan = plan_compare(config, with_mlflow(set_, mlflow), cells, seeds, lengths, equal_params, budget)
    tracking_first(plan.base)
    before_runs(plan, 1)
    from gru_lab.report.compare import print_comparison, write_comparison
    from gru_lab.tracking.runs import plan_parent

    with plan_parent(plan, "compare", warn) as parent:  # None without output.mlflow
        result = _runs_with_progress(plan, quiet, execute, one_line=True)
        comp = write_comparison(result)
        _log_plan(parent, [o.folder for o in result.outcomes], comp.files.values(), result.baselines)
    print_comparison(out, result, comp)
    _tensorboard_views(plan, result)
    _exit_for_runs(result, plan.folder, "compare")


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

    plan = plan_sweep(config, with_mlflow(set_, mlflow), grid, seeds, workers, backend, ray_address, num_cpus,
                      num_gpus, name)
    tracking_first(plan.base)
    before_runs(plan, min(plan.workers or 1, len(plan.runs)) if plan.backend == "local" else 1)
    from gru_lab.report.sweep import print_sweep, write_sweep
    from gru_lab.tracking.runs import plan_parent

    with plan_parent(plan, "sweep", warn) as parent:  # None without output.mlflow
        result = _runs_with_progress(plan, quiet, execute_sweep, one_line=False)
        rep = write_sweep(result)
        _log_plan(parent, [o.folder for o in result.outcomes], rep.files.values(), result.baselines)
    print_sweep(out, result, rep)
    _tensorboard_views(plan, result)
    _exit_for_runs(result, plan.folder, "sweep")


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


def _log_plan(parent, folders, files, baselines) -> None:
    """A compare's, sweep's or tune's runs (those their workers did not log: reused, or logged halfway), tables,
    plots and baselines to its parent MLflow run; one line saying where."""
    if parent is None:
        return
    counts = parent.log_plan(folders, files, [b.record() for b in baselines.values()])
    if parent.run_id and parent.store.on:
        logged = sum(n for k, n in counts.items() if k in ("logged", "present"))
        err.print(f"MLflow: {logged} run(s) under parent run {parent.run_id} at {parent.store.uri}",
                  highlight=False, soft_wrap=True, markup=False)


def _tensorboard_views(plan, result) -> None:
    """output.tensorboard on a compare or sweep: its HParams sessions, and how to open them with the curves."""
    if not plan.base.output.tensorboard:
        return
    from gru_lab.config import load_config
    from gru_lab.experiments.hparams import available, write_hparams

    if available():
        done = [o for o in result.outcomes if o.folder is not None and o.metrics]
        write_hparams(plan.folder, [(o.folder.name, load_config(o.folder / "config.yaml"), o.metrics) for o in done])
    tensorboard_line(plan.folder, "the runs' curves" + (" and the HParams view" if available() else ""))


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
    mlflow: MlflowOption = None,
) -> None:
    """Search hyperparameters with Optuna (TPE and a pruner on the per-epoch validation metric), trials in worker
    processes sharing one study; write tune.csv/.md/.json, best.yaml and plots under results/<name>/. The same
    command again continues the study: trials left by a kill continue from their last finished epoch."""
    from gru_lab.experiments.tune import execute_tune, plan_tune

    plan = plan_tune(config, with_mlflow(set_, mlflow), param, trials, timeout, sampler, pruner, metric, seeds,
                     workers, backend, storage, ray_address, num_cpus, num_gpus, name)
    tracking_first(plan.base)
    before_runs(plan, min(plan.workers or 1, plan.trials) if plan.backend == "local" else 1)
    from gru_lab.report.tune import print_tune, progress_hook, write_tune
    from gru_lab.tracking.runs import plan_parent

    def line(text: str) -> None:
        err.print(text, markup=False, highlight=False, soft_wrap=True)

    with plan_parent(plan, "tune", warn) as parent:  # None without output.mlflow
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
        if parent is not None:
            from gru_lab.runs.folder import find_finished

            trials = [(t.state, run_id, find_finished(plan.folder, run_id)) for t in result.trials
                      for run_id in t.run_ids]
            _log_plan(parent, [f for *_, f in trials] + [o.folder for o in result.base], summary.files.values(),
                      result.baselines)
            for state, run_id, folder in trials:
                if folder is not None:
                    parent.tag_child(folder, "gru_lab.trial_state", state)
                elif state in ("pruned", "failed"):  # no folder (a pruned run's is removed): found by its run id
                    parent.tag_folderless(plan.name, run_id, "gru_lab.trial_state", state)
    print_tune(out, result, summary)
    if result.interrupted:
        err.print("[yellow]interrupted:[/] finished trials are kept; run the same command again to continue "
                  "the study (a trial cut short continues from its last finished epoch).")
        raise typer.Exit(code=130)


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
            uri, counts = backfill_tree(results, yaml.safe_load(mlflow), warn)
        err.print(f"MLflow ({uri}): {counts.get('logged', 0)} run(s) logged, {counts.get('present', 0)} already there"
                  + (f", {counts['failed']} not logged" if counts.get("failed") else "")
                  + (f", {counts['skipped']} not results (interrupted or failed)" if counts.get("skipped") else ""),
                  highlight=False, soft_wrap=True, markup=False)
