"""Grid sweeps: a base config x the product of the grid's axes x seeds, run locally or on Ray.

Owns: parsing `--grid key=v1,v2` (values are YAML), the sweep settings (the config's `sweep:`
section, then the flags), planning (every grid point validated before anything starts; each run's id
is its grid values, its seed and its resolved config's hash, so a re-run reuses finished runs as
compare does), choosing the backend (local worker processes with TensorFlow's thread pools split
between them, or one Ray task a run), and the sweep table as a pandas DataFrame. Running is
gru_lab.execution's; files, tables and plots are report.py's.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import itertools
import logging
import os
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from gru_lab.config import (ExperimentConfig, SweepConfig, apply_overrides, config_from_raw, load_yaml, set_key,
                            split_assignment, validate)
from gru_lab.errors import SweepError
from gru_lab.execution import EventHook, RunOutcome, Runner, execute_runs, isolation_of, run_in_subprocess
from gru_lab.runs import config_hash, measured, metric_of

BACKENDS = ("local", "ray")
# Keys a grid cannot sweep, and why: one sweep writes one folder, and --seeds owns train.seed.
FIXED_KEYS = {
    "name": "every run of a sweep goes to one folder; name the sweep with --name",
    "output": "every run of a sweep goes to one folder",
    "sweep": "it holds the sweep's own settings",
    "train.seed": "--seeds sets it (seed, seed+1, ...); sweep the data seed with 'seed'",
}
RAY_HINT = "pip install 'gru-lab[ray]' (or pip install 'ray>=2.9')"

# ----------------------------------------------------------------------------- planning


@dataclass
class SweepRun:
    run_id: str  # <key=value>-...-s<seed>-<config hash>: the same config and seed give the same id
    point: int  # index of its grid point in SweepPlan.points
    values: dict[str, Any]  # dotted key -> this point's value
    seed: int  # train.seed: weight init and shuffling
    raw: dict[str, Any]  # the config as written + this run's keys; the worker validates it again
    cfg: ExperimentConfig

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={value_text(v)}" for k, v in self.values.items()) + f", seed {self.seed}"


@dataclass
class SweepPlan:
    name: str
    source: str  # the base config's path
    folder: Path  # <output.dir>/<name>/: the runs' folders and the sweep files
    base: ExperimentConfig
    axes: dict[str, list[Any]]  # dotted key -> values, in the order the user gave them
    points: list[dict[str, Any]]  # the grid: every combination of the axes' values
    seeds: list[int]
    runs: list[SweepRun]
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

    axes = {key: [_number(v) for v in values] for key, values in section.grid.items()}
    for key, values in axes.items():
        _check_axis(key, values, f"{source}: sweep.grid")
    cli_axes = parse_grid(grid)
    for key, values in cli_axes.items():
        _check_axis(key, values, f"--grid {key}={','.join(value_text(v) for v in values)}")
    # Where each axis came from, for error messages: the flag or the section.
    given = {key: "sweep.grid" for key in axes} | {key: "--grid" for key in cli_axes}
    axes.update(cli_axes)
    if not axes:
        raise SweepError(f"{source}: nothing to sweep; give --grid KEY=V1,V2 (e.g. --grid model.units=32,64) "
                         "or a sweep.grid section.")

    seeds = section.seeds if seeds is None else seeds
    if seeds < 1:
        raise SweepError(f"--seeds must be >= 1. Got {seeds}.")
    backend = (backend or section.backend).lower()
    if backend not in BACKENDS:
        raise SweepError(f"--backend must be one of {list(BACKENDS)}. Got {backend!r}.")
    workers = section.workers if workers is None else workers
    if workers is not None and workers < 1:
        raise SweepError(f"--workers must be >= 1. Got {workers}.")
    for flag, value in (("--ray-address", ray_address), ("--num-cpus", num_cpus), ("--num-gpus", num_gpus)):
        if value is not None and backend != "ray":
            raise SweepError(f"{flag} applies to --backend ray; this sweep runs locally. Add --backend ray or drop {flag}.")
    num_cpus = section.num_cpus if num_cpus is None else num_cpus
    num_gpus = section.num_gpus if num_gpus is None else num_gpus
    if num_cpus <= 0:
        raise SweepError(f"--num-cpus must be > 0 (CPUs each run reserves on the Ray cluster). Got {num_cpus}.")
    if num_gpus < 0:
        raise SweepError(f"--num-gpus must be >= 0. Got {num_gpus}.")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise SweepError(f"--backend ray needs Ray, an optional extra: {RAY_HINT}.")

    origin = {"name": f"--name {name}"} if name else {"name": "sweep.name"} if section.name else {}
    name = name or section.name or base.name
    seed_list = [base.train_seed + i for i in range(seeds)]
    points = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]

    runs: list[SweepRun] = []
    by_hash: dict[str, SweepRun] = {}
    for seed in seed_list:  # seed outermost: an interrupted sweep already holds whole grids
        for index, point in enumerate(points):
            run_raw = copy.deepcopy(raw)
            run_raw.pop("sweep", None)  # sweep settings are not part of a run: they must not change its id
            run_raw["name"] = name
            run_origin = dict(origin)
            for key, value in point.items():
                what = f"{given[key]} {key}={value_text(value)}"
                set_key(run_raw, key, copy.deepcopy(value), source, what)
                run_origin[key] = what
            set_key(run_raw, "train.seed", seed, source, "--seeds")
            cfg = validate(run_raw, source, run_origin)
            digest = config_hash(cfg)
            run = SweepRun(_run_id(point, seed, digest), index, point, seed, run_raw, cfg)
            if digest in by_hash:
                raise SweepError(f"{source}: grid points ({by_hash[digest].label}) and ({run.label}) give the same "
                                 "config (an alias, or a value equal to another); drop one of them.")
            by_hash[digest] = run
            runs.append(run)

    notes: list[str] = []
    threads = None
    if backend == "local":
        workers = workers or 1
        cores = _cores()
        threads = max(1, cores // workers)
        notes.append(f"{workers} worker process(es) at a time on {cores} core(s), {threads} TensorFlow "
                     f"thread(s) each (intra- and inter-op)")
        if workers > cores:
            notes.append(f"more workers ({workers}) than cores ({cores}): the runs share cores and each runs slower.")
    folder = Path(base.output.dir) / name
    return SweepPlan(name, source, folder, base, axes, points, seed_list, runs, backend, workers, threads,
                     ray_address if ray_address is not None else section.ray_address, num_cpus, num_gpus, notes)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _slug(value: Any) -> str:
    text = "_".join(value_text(v) for v in value) if isinstance(value, list) else value_text(value)
    return re.sub(r"[^A-Za-z0-9._]", "", text)[:24] or "x"


def _run_id(point: dict[str, Any], seed: int, digest: str) -> str:
    parts = [f"{key.rsplit('.', 1)[-1]}={_slug(value)}" for key, value in point.items()]
    return "-".join(parts)[:120] + f"-s{seed}-{digest}"


# ----------------------------------------------------------------------------- running


@dataclass
class SweepResult:
    plan: SweepPlan
    outcomes: list[RunOutcome]
    interrupted: bool
    isolation: str  # "process" (one worker process a run, local or on a Ray node) or "inline"
    seconds: float  # wall time of the whole sweep, reused runs included
    backend: dict[str, Any] = field(default_factory=dict)  # what ran it: workers, threads, Ray cluster


def execute_sweep(plan: SweepPlan, runner: Runner | None = None, on_event: EventHook | None = None,
                  shared_fs: bool | None = None) -> SweepResult:
    """Run what is not finished yet. Locally: plan.workers worker processes at a time. On Ray: one
    task a run, as many in flight as the cluster fits (or plan.workers). A given runner (tests) runs
    locally, one run at a time unless plan.workers says otherwise.

    shared_fs: Ray only; see execution.RayRunner (None = find out).
    """
    started = time.perf_counter()
    if plan.backend == "ray" and runner is None:
        with ray_runner(plan, shared_fs) as (ray_run, info):
            outcomes, interrupted = execute_runs(plan.runs, plan.folder, ray_run, on_event, info["in_flight"])
        return SweepResult(plan, outcomes, interrupted, isolation_of(ray_run), time.perf_counter() - started, info)
    runner = runner or functools.partial(run_in_subprocess, threads=plan.threads)
    workers = plan.workers or 1
    outcomes, interrupted = execute_runs(plan.runs, plan.folder, runner, on_event, workers)
    info = {"name": "local", "workers": workers, "threads": plan.threads}
    return SweepResult(plan, outcomes, interrupted, isolation_of(runner), time.perf_counter() - started, info)


@contextlib.contextmanager
def ray_runner(plan: SweepPlan, shared_fs: bool | None = None):
    """(RayRunner, backend info) on the cluster at plan.ray_address: "auto" = the cluster this machine
    belongs to, None = a local instance started here (and shut down after). An instance this process
    has already started (ray.init in a notebook or a test) is used as it is."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a lab tool does not report usage unasked
    import ray

    from gru_lab.execution import RayRunner

    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"address": plan.ray_address} if plan.ray_address else {"include_dashboard": False}
        try:
            ray.init(log_to_driver=False, logging_level=logging.ERROR, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SweepError(f"cannot connect to Ray at {plan.ray_address or 'a new local instance'!r}: {first} "
                             "(start a cluster with `ray start --head`, or drop --ray-address for a local one).") from None
    try:
        resources = ray.cluster_resources()
        fits = int(resources.get("CPU", 0) // plan.num_cpus)
        if plan.num_gpus:
            fits = min(fits, int(resources.get("GPU", 0) // plan.num_gpus))
        in_flight = plan.workers or max(1, fits)
        info = {"name": "ray", "address": plan.ray_address or ("local instance" if started_here else "existing instance"),
                "cluster_cpus": resources.get("CPU"), "cluster_gpus": resources.get("GPU", 0.0),
                "nodes": len([n for n in ray.nodes() if n.get("Alive")]), "num_cpus": plan.num_cpus,
                "num_gpus": plan.num_gpus, "in_flight": in_flight, "threads": max(1, int(plan.num_cpus)),
                "ray": ray.__version__}
        if fits < 1:
            raise SweepError(f"the Ray cluster has {resources.get('CPU', 0):g} CPU(s) and {resources.get('GPU', 0):g} "
                             f"GPU(s); a run asks for {plan.num_cpus:g} CPU(s) and {plan.num_gpus:g} GPU(s), so none "
                             "would ever start. Lower --num-cpus/--num-gpus.")
        with RayRunner(plan.num_cpus, plan.num_gpus, shared_fs) as runner:
            yield runner, info
    finally:
        if started_here:
            ray.shutdown()


# ----------------------------------------------------------------------------- the table


def _task(cfg: ExperimentConfig) -> str:
    from gru_lab.data import spec_for

    return spec_for(cfg.data).task


def _axis_cell(value: Any) -> Any:
    """A grid value in a table cell: numbers and strings as they are, lists and mappings as YAML text."""
    return value if isinstance(value, (int, float, str, bool)) else value_text(value)


def runs_frame(result: SweepResult):
    """One row per planned run: its grid values, seed, status and what it measured."""
    import pandas as pd

    rows = []
    for o in result.outcomes:
        m = o.metrics or {}
        threads = ((m.get("environment") or {}).get("threads") or {}).get("intra_op")
        rows.append({
            "run_id": o.run.run_id, "point": o.run.point, **{k: _axis_cell(v) for k, v in o.run.values.items()},
            "seed": o.run.seed, "status": o.status, **measured(m, _task(o.run.cfg)), "threads": threads,
            "run_seconds": o.seconds, "folder": str(o.folder) if o.folder else None, "error": o.error,
        })
    return pd.DataFrame(rows)


def sweep_frame(result: SweepResult):
    """One row per grid point: its values, parameters, time, and the test metric over seeds.

    Every number comes from the runs' metrics.json; a point with no finished run gets its parameter
    counts from the formulas (the same ones training records) and empty measurements.
    """
    import pandas as pd

    from gru_lab.data import spec_for
    from gru_lab.models import count_params

    plan = result.plan
    runs = runs_frame(result)
    rows = []
    for index, point in enumerate(plan.points):
        group = runs[runs.point == index]
        done = group[group.status.isin(["finished", "reused"])]
        cfg = next(r.cfg for r in plan.runs if r.point == index)
        metric, _ = metric_of(_task(cfg))
        values = [float(v) for v in done.value.dropna()]
        if len(done) and not done.params_total.isna().all():
            total, recurrent = int(done.params_total.iloc[0]), int(done.params_recurrent.iloc[0])
        else:
            counts = count_params(cfg.model, spec_for(cfg.data))
            total, recurrent = counts["total"], counts["recurrent"]
        failed = group[group.status == "failed"]
        rows.append({
            **{k: _axis_cell(v) for k, v in point.items()},
            "runs": f"{len(done)}/{len(group)}",
            "params_total": total,
            "params_recurrent": recurrent,
            "s_per_epoch": _median(done.s_per_epoch),
            "fit_seconds": _mean(done.fit_seconds),
            "metric": f"test_{metric}",
            "metric_mean": statistics.fmean(values) if values else None,
            "metric_std": statistics.stdev(values) if len(values) > 1 else None,
            # mse / the mse of predicting the mean: 1 = learned nothing, 0 = perfect
            "mse_vs_baseline": (statistics.fmean(values) / _mean(done.baseline_mse)
                                if metric == "mse" and values and _mean(done.baseline_mse) else None),
            "best_epoch": ", ".join(str(int(e)) for e in done.best_epoch.dropna()) or None,
            "errors": "; ".join(f"{r.run_id}: {r.error}" for r in failed.itertuples()) or None,
        })
    return pd.DataFrame(rows)


def best_point(table) -> dict[str, Any] | None:
    """The row with the best mean test metric (accuracy highest, mse lowest), if any finished."""
    scored = table.dropna(subset=["metric_mean"])
    if scored.empty:
        return None
    higher = metric_of("binary" if scored.metric.iloc[0] == "test_accuracy" else "regression")[1]
    row = scored.loc[scored.metric_mean.idxmax() if higher else scored.metric_mean.idxmin()]
    return row.to_dict()


def _median(series) -> float | None:
    values = [float(v) for v in series.dropna()]
    return statistics.median(values) if values else None


def _mean(series) -> float | None:
    values = [float(v) for v in series.dropna()]
    return statistics.fmean(values) if values else None
