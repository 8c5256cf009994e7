"""Grid sweeps: a base config x the product of the grid's axes x seeds, run locally or on Ray.

Owns: parsing `--grid key=v1,v2` (values are YAML), the sweep settings (the config's `sweep:`
section, then the flags), planning (every grid point validated before anything starts; each run's id
is its grid values, its seed and its resolved config's hash, so a re-run reuses finished runs as
compare does), choosing the backend (local worker processes with TensorFlow's thread pools split
between them, or one Ray task a run), and the sweep table as a pandas DataFrame. Running is
experiments.executor's (and experiments.ray_runner's); files, tables and plots are report's.
"""

from __future__ import annotations

import functools
import itertools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from gru_lab.config import ExperimentConfig, SweepConfig, apply_overrides, config_from_raw, load_yaml, split_assignment
from gru_lab.errors import SweepError
from gru_lab.experiments import tables
from gru_lab.experiments.baselines import Baselines, baselines_for, of_run, with_settings
from gru_lab.experiments.executor import EventHook, Runner, RunOutcome, execute_runs, isolation_of, run_in_subprocess
from gru_lab.experiments.planning import PlannedRun, local_workers, placement, plan_runs, results_folder
from gru_lab.experiments.selection import TIE_RULE, ranking
from gru_lab.experiments.verdicts import Verdict, baseline_verdict
from gru_lab.runs.records import metric_of, missing

# Keys a grid cannot sweep, and why: one sweep writes one folder, and --seeds owns train.seed.
FIXED_KEYS = {
    "name": "every run of a sweep goes to one folder; name the sweep with --name",
    "output": "every run of a sweep goes to one folder",
    "sweep": "it holds the sweep's own settings",
    "train.seed": "--seeds sets it (seed, seed+1, ...); sweep the data seed with 'seed'",
    "baseline": "the classical baseline is fitted once per data config, not per run; set it in the config",
}

# ----------------------------------------------------------------------------- planning


@dataclass
class SweepPlan:
    name: str
    source: str  # the base config's path
    folder: Path  # <output.dir>/<name>/: the runs' folders and the sweep files
    base: ExperimentConfig
    axes: dict[str, list[Any]]  # dotted key -> values, in the order the user gave them
    points: list[dict[str, Any]]  # the grid: every combination of the axes' values
    seeds: list[int]
    runs: list[PlannedRun]
    backend: str  # "local" or "ray"
    workers: int | None  # local: runs at once; ray: runs in flight (None = what the cluster fits)
    threads: int | None  # local: TensorFlow threads a worker (cores // workers)
    ray_address: str | None
    num_cpus: float
    num_gpus: float
    notes: list[str] = field(default_factory=list)


def value_text(value: Any) -> str:
    """A grid value as the user would type it: 32, gru, 0.001, [64, 32]."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()


_EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _number(value: Any) -> Any:
    """YAML 1.1 reads 1e-3 as a string; a grid of learning rates means the number."""
    if isinstance(value, str) and _EXPONENT.match(value.strip()):
        return float(value)
    if isinstance(value, list):
        return [_number(v) for v in value]
    return value


def parse_axis(text: str) -> tuple[str, list[Any]]:
    """'model.units=32,64' -> ('model.units', [32, 64]); values are YAML ([64,32] is a list, 1e-3 a number)."""
    if "=" not in text:
        raise SweepError(f"--grid {text}: expected KEY=V1,V2,... (e.g. --grid model.units=32,64).")
    try:
        key, values = split_assignment(text)
    except ValueError as exc:
        raise SweepError(f"--grid {text}: {exc}") from None
    if not values.strip():
        raise SweepError(f"--grid {text}: empty axis; give one or more values, e.g. --grid {key}=32,64.")
    try:
        parsed = yaml.safe_load(f"[{values}]")
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise SweepError(f"--grid {text}: cannot read the values as a YAML list ({problem}); "
                         "separate values with commas, e.g. 32,64 or [64,32],[32].") from None
    return key, [_number(v) for v in parsed]


def parse_grid(texts: Iterable[str] | None) -> dict[str, list[Any]]:
    """Repeated --grid options -> {key: values}; a key given twice is an error."""
    axes: dict[str, list[Any]] = {}
    for text in texts or []:
        key, values = parse_axis(text)
        if key in axes:
            raise SweepError(f"--grid {text}: '{key}' is already an axis; give each key once with all its values.")
        axes[key] = values
    return axes


def _check_axis(key: str, values: list[Any], what: str) -> None:
    for fixed, why in FIXED_KEYS.items():
        if key == fixed or key.startswith(fixed + "."):
            raise SweepError(f"{what}: '{key}' cannot be swept: {why}.")
    if not values:
        raise SweepError(f"{what}: empty axis; give one or more values for '{key}'.")
    seen: dict[str, Any] = {}
    for value in values:
        text = value_text(value)
        if text in seen:
            raise SweepError(f"{what}: '{key}' lists {text} twice; give each value once.")
        seen[text] = value


def plan_sweep(config: str | Path, overrides: list[str] | None = None, grid: Iterable[str] | None = None,
               seeds: int | None = None, workers: int | None = None, backend: str | None = None,
               ray_address: str | None = None, num_cpus: float | None = None, num_gpus: float | None = None,
               name: str | None = None) -> SweepPlan:
    """Every run of the sweep, each config validated; raises GruLabError before anything is written.

    The flags (arguments) override the config's `sweep:` section key by key; a --grid axis replaces
    the section's axis of the same key.
    """
    source = str(config)
    raw = load_yaml(config)
    base = config_from_raw(raw, source, overrides or [])  # errors name the file's or the --set's key
    raw, _ = apply_overrides(raw, overrides or [], source)
    section = base.sweep or SweepConfig()

    axes, given = _axes(source, section, grid)
    placed = placement(section, SweepError, "sweep", seeds, backend, workers, ray_address, num_cpus, num_gpus)
    seeds, backend, workers, num_cpus, num_gpus = (placed.seeds, placed.backend, placed.workers, placed.num_cpus,
                                                   placed.num_gpus)

    origin = {"name": f"--name {name}"} if name else {"name": "sweep.name"} if section.name else {}
    name = name or section.name or base.name
    seed_list = [base.train_seed + i for i in range(seeds)]
    points = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]

    def describe(point: dict[str, Any], _seed: int) -> tuple[str, dict[str, str]]:
        return source, {**origin, **{key: f"{given[key]} {key}={value_text(v)}" for key, v in point.items()}}

    def label(point: dict[str, Any], seed: int) -> str:
        return ", ".join(f"{k}={value_text(v)}" for k, v in point.items()) + f", seed {seed}"

    def prefix(point: dict[str, Any]) -> str:
        return "-".join(f"{key.rsplit('.', 1)[-1]}={_slug(value)}" for key, value in point.items())[:120]

    runs = plan_runs(raw, points, seed_list, describe, prefix, label, name=name, seeds_from="--seeds")
    by_digest: dict[str, PlannedRun] = {}
    for run in runs:
        if run.digest in by_digest:
            raise SweepError(f"{source}: grid points ({by_digest[run.digest].label}) and ({run.label}) give the same "
                             "config (an alias, or a value equal to another); drop one of them.")
        by_digest[run.digest] = run

    notes: list[str] = []
    threads = None
    if backend == "local":
        workers, threads, notes = local_workers(workers)
    folder = results_folder(base, name)
    return SweepPlan(name, source, folder, base, axes, points, seed_list, runs, backend, workers, threads,
                     ray_address if ray_address is not None else section.ray_address, num_cpus, num_gpus, notes)


def _axes(source: str, section: SweepConfig, grid: Iterable[str] | None) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """(the grid's axes, where each came from: "sweep.grid" or "--grid"); a --grid axis replaces the
    section's axis of the same key."""
    axes = {key: [_number(v) for v in values] for key, values in section.grid.items()}
    for key, values in axes.items():
        _check_axis(key, values, f"{source}: sweep.grid")
    cli_axes = parse_grid(grid)
    for key, values in cli_axes.items():
        _check_axis(key, values, f"--grid {key}={','.join(value_text(v) for v in values)}")
    given = {key: "sweep.grid" for key in axes} | {key: "--grid" for key in cli_axes}
    axes.update(cli_axes)
    if not axes:
        raise SweepError(f"{source}: nothing to sweep; give --grid KEY=V1,V2 (e.g. --grid model.units=32,64) "
                         "or a sweep.grid section.")
    return axes, given


def _slug(value: Any) -> str:
    text = "_".join(value_text(v) for v in value) if isinstance(value, list) else value_text(value)
    return re.sub(r"[^A-Za-z0-9._]", "", text)[:24] or "x"


# ----------------------------------------------------------------------------- running


@dataclass
class SweepResult:
    plan: SweepPlan
    outcomes: list[RunOutcome]
    interrupted: bool
    isolation: str  # "process" (one worker process a run, local or on a Ray node) or "inline"
    seconds: float  # wall time of the whole sweep, reused runs included
    backend: dict[str, Any] = field(default_factory=dict)  # what ran it: workers, threads, Ray cluster
    baselines: dict[str, Baselines] = field(default_factory=dict)  # by cache key: experiments.baselines


def execute_sweep(plan: SweepPlan, runner: Runner | None = None, on_event: EventHook | None = None,
                  shared_fs: bool | None = None) -> SweepResult:
    """Run what is not finished yet. Locally: plan.workers worker processes at a time. On Ray: one
    task a run, as many in flight as the cluster fits (or plan.workers). A given runner (tests) runs
    locally, one run at a time unless plan.workers says otherwise.

    shared_fs: Ray only; see ray_runner.RayRunner (None = find out).
    """
    started = time.perf_counter()
    if plan.backend == "ray" and runner is None:
        from gru_lab.experiments.ray_runner import connect

        with connect(plan, shared_fs) as (ray_run, info):
            outcomes, interrupted = execute_runs(plan.runs, plan.folder, ray_run, on_event, info["in_flight"])
        isolation = isolation_of(ray_run)
    else:
        runner = runner or functools.partial(run_in_subprocess, threads=plan.threads)
        workers = plan.workers or 1
        outcomes, interrupted = execute_runs(plan.runs, plan.folder, runner, on_event, workers)
        info = {"name": "local", "workers": workers, "threads": plan.threads}
        isolation = isolation_of(runner)
    # In this process after the runs (never beside a timed run), once per distinct data config, cached.
    baselines = baselines_for([with_settings(r.cfg, plan.base) for r in plan.runs], plan.folder,
                              fit=not interrupted)
    return SweepResult(plan, outcomes, interrupted, isolation, time.perf_counter() - started, info, baselines)


# ----------------------------------------------------------------------------- the table


def _axis_cell(value: Any) -> Any:
    """A grid value in a table cell: numbers and strings as they are, lists and mappings as YAML text."""
    return value if isinstance(value, (int, float, str, bool)) else value_text(value)


def runs_frame(result: SweepResult):
    """One row per planned run: its grid values, seed, status and what it measured."""
    return tables.runs_frame(result.outcomes, lambda run: {k: _axis_cell(v) for k, v in run.values.items()})


COLUMNS = ("runs", "params_total", "params_recurrent", "s_per_epoch", "fit_seconds", "val_metric", "val_mean",
           "val_std", "val_loss_mean", "metric", "metric_mean", "metric_std", "beats_baseline", "mse_vs_baseline",
           "best_epoch", "errors", "diverged")


def sweep_frame(result: SweepResult):
    """One row per grid point: its values, the model, parameters, time, the validation metric and beside it the
    test metric over seeds (experiments.tables), its rank on validation (experiments.selection; 1 is the
    point best_point names) and whether it beats its data's classical baseline; then one row per classical
    baseline, its axis cells showing the values its grid points share ("-" where they differ)."""
    import pandas as pd

    plan = result.plan
    runs = runs_frame(result)
    verdicts = point_verdicts(result, runs)
    rows, by_key = [], {}
    for index, point in enumerate(plan.points):
        cfg = next(r.cfg for r in plan.runs if r.point == index)
        stats = tables.group_stats(runs[runs.point == index], cfg)
        stats["beats_baseline"] = verdicts[index].status if verdicts[index] else None
        rows.append({**{k: _axis_cell(v) for k, v in point.items()}, "kind": "recurrent",
                     "model": tables.model_text(cfg.model),
                     **{c: stats[c] for c in COLUMNS}})
        found = of_run(cfg, plan.base, result.baselines)
        if found is not None:
            by_key.setdefault(found.key, (found, []))[1].append(point)
    for found, points in by_key.values():
        shared = {k: _axis_cell(points[0][k]) if all(value_text(p[k]) == value_text(points[0][k]) for p in points)
                  else "-" for k in plan.axes}
        rows += [{**shared, **tables.baseline_row(b)} for b in found.items]
    recurrent = rows[:len(plan.points)]
    for rank, index in enumerate(ranking(recurrent, metric_of(tables.task_of(plan.base))[1]), start=1):
        recurrent[index]["val_rank"] = rank
    frame = pd.DataFrame(rows)
    if "val_rank" not in frame:
        frame["val_rank"] = None
    return frame.drop(columns=[c for c in ("beats_baseline",) if frame[c].isna().all()])


def point_verdicts(result: SweepResult, runs=None) -> list[Verdict | None]:
    """Per grid point: does its model beat the strongest classical baseline of its data (None: baseline none)?"""
    plan = result.plan
    runs = runs_frame(result) if runs is None else runs
    metric, higher = metric_of(tables.task_of(plan.base))
    found = []
    for index, point in enumerate(plan.points):
        cfg = next(r.cfg for r in plan.runs if r.point == index)
        baselines = of_run(cfg, plan.base, result.baselines)
        if baselines is None or plan.base.baseline.kind == "none":
            found.append(None)
            continue
        done = runs[(runs.point == index) & runs.status.isin(tables.DONE)]
        where = ", ".join(f"{k}={value_text(v)}" for k, v in point.items())
        values = [float(v) for v in done.value.dropna()]
        found.append(baseline_verdict(f"{tables.model_text(cfg.model)} ({where})", values, baselines.best(), metric,
                                      higher, baselines.note))
    return found


def best_point(table) -> dict[str, Any] | None:
    """The grid point ranked first on validation (sweep_frame's val_rank: experiments.selection's rule), if
    any finished with a validation value. Its test metric is reported, never used to choose."""
    chosen = table[(table.kind == "recurrent") & (table.val_rank == 1)]
    return None if chosen.empty else chosen.iloc[0].to_dict()


# ----------------------------------------------------------------------------- what a sweep says


@dataclass
class SweepReport:
    """What `sweep` shows and writes: the tables, notes (and the files, once written)."""

    table: Any  # pandas DataFrame, one row per grid point, then one per classical baseline
    runs: Any  # pandas DataFrame, one row per planned run
    notes: list[str]
    files: dict[str, Path] = field(default_factory=dict)
    verdicts: list = field(default_factory=list)  # per grid point: does it beat the classical baseline


def summarize(result: SweepResult) -> SweepReport:
    plan, info = result.plan, result.backend
    table = sweep_frame(result)
    notes = list(plan.notes) + tables.baseline_notes(result.baselines.values())
    if info.get("name") == "ray":
        notes.append(f"Ray {info['ray']} ({info['address']}): {info['nodes']} node(s), "
                     f"{info['cluster_cpus']:g} CPU(s), {info['cluster_gpus']:g} GPU(s); "
                     f"{info['in_flight']} run(s) in flight, each reserving {info['num_cpus']:g} CPU(s) "
                     f"({info['threads']} TensorFlow thread(s)) and {info['num_gpus']:g} GPU(s).")
    if result.isolation == "inline":
        notes.append("runs trained inline (one process): peak memory and timings are not per run.")
    best = best_point(table)
    if best is not None:
        notes.append(best_note(best, list(plan.axes)))
    elif (table.kind == "recurrent").any() and table[table.kind == "recurrent"].metric_mean.notna().any():
        notes.append("best: none chosen: no finished run has a validation value (data.n_val is 0?), and a sweep "
                     "never chooses on the test split.")
    return SweepReport(table, runs_frame(result), notes, verdicts=[v for v in point_verdicts(result) if v])


def best_note(best: dict[str, Any], axes: list[str]) -> str:
    """The best point, what chose it (validation) and what it scored on test (reported, not chosen on)."""
    where = ", ".join(f"{k}={axis_text(best[k])}" for k in axes)
    val_sd = "" if missing(best.get("val_std")) else f" ± {best['val_std']:.2g}"
    sd = "" if missing(best.get("metric_std")) else f" ± {best['metric_std']:.2g}"
    test = "-" if missing(best["metric_mean"]) else f"{best['metric_mean']:.4g}"
    return (f"best: {where} (rank 1 on validation): chosen on mean {best['val_metric']} {best['val_mean']:.4g}{val_sd} "
            f"at the epoch each run was tested, {TIE_RULE}; its {best['metric'].replace('_', ' ')} "
            f"{test}{sd} ({best['runs']} runs) is reported, never used to choose.")


def axis_text(value: Any) -> str:
    """A grid value as a table shows it: floats compactly, a missing value as '-'."""
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if missing(value) else str(value)
