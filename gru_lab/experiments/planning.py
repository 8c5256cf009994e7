"""The planning step compare and sweep share: a base config, points (dotted key -> value) and train seeds
become validated runs, each with an id that the same config and seed always give (which is what resume
relies on). Nothing is written and no run starts until every run of a plan has validated.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gru_lab.config import ExperimentConfig, set_key, validate
from gru_lab.runs.folder import config_hash


@dataclass
class PlannedRun:
    run_id: str  # the command's own prefix, then -s<seed>-<config hash>
    point: int  # index of its point in the plan's points
    values: dict[str, Any]  # dotted key -> this point's value
    seed: int  # train.seed: weight init and shuffling (the data seed stays the base config's)
    raw: dict[str, Any]  # the config as written + this run's keys; the worker validates it again
    cfg: ExperimentConfig
    label: str  # how progress lines and failure logs name the run

    @property
    def cell(self) -> str:
        return self.cfg.model.cell

    @property
    def length(self) -> int | None:
        """The adding problem's T when the plan varies it."""
        return self.values.get("data.length")

    @property
    def digest(self) -> str:
        return self.run_id.rsplit("-", 1)[-1]


# (point, seed) -> (source for error messages, {dotted key: the setting that gave it}) / the run id's prefix / label
Describe = Callable[[dict[str, Any], int], tuple[str, dict[str, str]]]
Prefix = Callable[[dict[str, Any]], str]
Label = Callable[[dict[str, Any], int], str]


def plan_runs(raw: dict[str, Any], points: list[dict[str, Any]], seeds: list[int], describe: Describe,
              prefix: Prefix, label: Label, name: str | None = None,
              seeds_from: str = "train.seed") -> list[PlannedRun]:
    """Every (seed, point) run of a plan, seed outermost (an interrupted plan already holds whole rounds),
    each validated: a ConfigError names the key and the setting that caused it (describe; seeds_from names
    what set train.seed)."""
    runs = []
    for seed in seeds:
        for index, point in enumerate(points):
            source, origin = describe(point, seed)
            run_raw = copy.deepcopy(raw)
            run_raw.pop("sweep", None)  # sweep settings are not part of a run: they must not change its id
            run_raw.pop("baseline", None)  # nor is the classical baseline, which the plan fits once (baselines.py)
            if name is not None:
                run_raw["name"] = name
            for key, value in point.items():
                set_key(run_raw, key, copy.deepcopy(value), source, origin.get(key, key))
            set_key(run_raw, "train.seed", seed, source, seeds_from)
            cfg = validate(run_raw, source, origin)
            run_id = f"{prefix(point)}-s{seed}-{config_hash(cfg)}"
            runs.append(PlannedRun(run_id, index, point, seed, run_raw, cfg, label(point, seed)))
    return runs


def results_folder(base: ExperimentConfig, name: str | None = None) -> Path:
    """<output.dir>/<name>/: where a plan's runs and tables go."""
    return Path(base.output.dir) / (name or base.name)


BACKENDS = ("local", "ray")
RAY_HINT = "pip install 'gru-lab[ray]' (or pip install 'ray>=2.9')"


@dataclass
class Placement:
    """Where a sweep's or tune's runs go, from its config section and the command line's flags (flags win)."""

    seeds: int
    backend: str  # local worker processes or Ray tasks
    workers: int | None
    num_cpus: float
    num_gpus: float


def placement(section, error: type, what: str, seeds: int | None, backend: str | None, workers: int | None,
              ray_address: str | None, num_cpus: float | None, num_gpus: float | None) -> Placement:
    """The flags sweep and tune share, checked the one way: a wrong value raises error (a GruLabError) with one
    line naming the flag; `what` names the command's work in the message ("sweep", "search")."""
    seeds = section.seeds if seeds is None else seeds
    if seeds < 1:
        raise error(f"--seeds must be >= 1. Got {seeds}.")
    backend = (backend or section.backend).lower()
    if backend not in BACKENDS:
        raise error(f"--backend must be one of {list(BACKENDS)}. Got {backend!r}.")
    workers = section.workers if workers is None else workers
    if workers is not None and workers < 1:
        raise error(f"--workers must be >= 1. Got {workers}.")
    for flag, value in (("--ray-address", ray_address), ("--num-cpus", num_cpus), ("--num-gpus", num_gpus)):
        if value is not None and backend != "ray":
            raise error(f"{flag} applies to --backend ray; this {what} runs locally. Add --backend ray or drop {flag}.")
    num_cpus = section.num_cpus if num_cpus is None else num_cpus
    num_gpus = section.num_gpus if num_gpus is None else num_gpus
    if num_cpus <= 0:
        raise error(f"--num-cpus must be > 0 (CPUs each run reserves on the Ray cluster). Got {num_cpus}.")
    if num_gpus < 0:
        raise error(f"--num-gpus must be >= 0. Got {num_gpus}.")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise error(f"--backend ray needs Ray, an optional extra: {RAY_HINT}.")
    return Placement(seeds, backend, workers, num_cpus, num_gpus)


def cores() -> int:
    """The cores this process may use (containers, taskset), which local workers share."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def local_workers(workers: int | None) -> tuple[int, int, list[str]]:
    """(workers, TensorFlow threads each, notes) for runs in local worker processes: the cores are shared out so
    that workers side by side do not oversubscribe them; the notes say so, and warn when workers outnumber cores."""
    workers = workers or 1
    count = cores()
    threads = max(1, count // workers)
    notes = [f"{workers} worker process(es) at a time on {count} core(s), {threads} TensorFlow thread(s) each "
             "(intra- and inter-op)"]
    if workers > count:
        notes.append(f"more workers ({workers}) than cores ({count}): the runs share cores and each runs slower.")
    return workers, threads, notes
