"""Hyperparameter search with Optuna: a base config, a search space (experiments.space), a sampler and a
pruner; trials run as compare and sweep runs do (one worker process each, locally or on Ray) and share one
study.

Owns: the search settings (the config's `tune:` section, then the flags), the trial loop (ask a point,
validate it, train its runs, feed the per-epoch validation metric to the pruner, tell the result), resume (a
trial left running by a killed command is taken over by the next one on this machine and continues from its
runs' last finished epoch, under its own trial number), the base config's own score, the classical baseline,
the summary and verdict. The study itself (storage, sampler, pruner, the settings a second command must
match, trial owners) is experiments.study's; tables and plots are report.tune's.

The objective is a validation metric only; the test split's score is read for the best trial alone, at the
end. Optuna is an optional extra, imported inside functions.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import importlib.util
import json
import re
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from gru_lab import names
from gru_lab.config import ExperimentConfig, TuneConfig, apply_overrides, config_from_raw, load_yaml
from gru_lab.errors import ConfigError, TuneError
from gru_lab.experiments.executor import (
    RunFailed,
    RunOutcome,
    _stop_live,
    execute_runs,
    isolation_of,
    run_in_subprocess,
)
from gru_lab.experiments.planning import PlannedRun, local_workers, placement, plan_runs, results_folder
from gru_lab.experiments.space import Param, build_space, check_space, value_text
from gru_lab.experiments.study import Owner, file_lock, open_study, optuna_choices
from gru_lab.runs.folder import find_finished, unfinished_folders
from gru_lab.training import interrupt

INSTALL = "pip install 'gru-lab[tune]' (or pip install 'optuna>=4')"
DEFAULT_TRIALS = 20
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr)?\s*$")


def optuna_available() -> bool:
    return importlib.util.find_spec("optuna") is not None


def parse_duration(text: str, what: str) -> float:
    """'90s', '30m', '2h', '45' (seconds) -> seconds."""
    match = _DURATION.match(str(text))
    if not match or float(match[1]) <= 0:
        raise TuneError(f"{what} must be a positive duration such as 90s, 30m or 2h. Got {text!r}.")
    return float(match[1]) * {"s": 1, "sec": 1, None: 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}[match[2]]


# ----------------------------------------------------------------------------- planning


@dataclass
class TunePlan:
    name: str
    source: str  # the base config's path
    folder: Path  # <output.dir>/<name>/: the trials' run folders, the study journal and the tune files
    base: ExperimentConfig
    raw: dict[str, Any]  # the base config as written, overrides applied
    space: list[Param]
    trials: int  # trials the study holds when the search is done
    timeout_s: float | None  # this command starts no trial after this many seconds
    sampler: str
    pruner: str
    metric: str  # a val_* quantity
    direction: str  # "minimize" or "maximize"
    seeds: list[int]
    backend: str
    workers: int | None
    threads: int | None
    storage: str | None  # a database URL, or None for the journal file in folder
    ray_address: str | None
    num_cpus: float
    num_gpus: float
    base_runs: list[PlannedRun] = field(default_factory=list)  # the base config itself, one run per seed
    notes: list[str] = field(default_factory=list)

    @property
    def runs(self) -> list[PlannedRun]:
        """What the pre-flight checks look at (memory, compiled loops): the base config's runs."""
        return self.base_runs

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "maximize"

    def settings(self) -> dict[str, Any]:
        """What makes a study this search: a second command on it must agree on every item."""
        return {"space": [p.record() for p in self.space], "metric": self.metric, "direction": self.direction,
                "seeds": self.seeds, "sampler": self.sampler, "pruner": self.pruner,
                "epochs": self.base.train.epochs}


def default_metric(cfg: ExperimentConfig) -> str:
    """The monitor follows the task: val_accuracy for classification, val_loss for regression."""
    from gru_lab.data import spec_for

    return "val_accuracy" if spec_for(cfg.data).task in ("binary", "multiclass") else "val_loss"


def _has_validation(cfg: ExperimentConfig) -> bool:
    from gru_lab.config.rules import _validation_source

    return cfg.train.validation_split > 0 or _validation_source(cfg.data) is not None


def plan_tune(config: str | Path, overrides: list[str] | None = None, params: list[str] | None = None,
              trials: int | None = None, timeout: str | None = None, sampler: str | None = None,
              pruner: str | None = None, metric: str | None = None, seeds: int | None = None,
              workers: int | None = None, backend: str | None = None, storage: str | None = None,
              ray_address: str | None = None, num_cpus: float | None = None, num_gpus: float | None = None,
              name: str | None = None) -> TunePlan:
    """The whole search, checked before anything is written or trained: raises GruLabError (exit 2)."""
    if not optuna_available():
        raise TuneError(f"gru-lab tune needs Optuna, an optional extra: {INSTALL}.")
    source = str(config)
    raw = load_yaml(config)
    base = config_from_raw(raw, source, overrides or [])
    raw, _ = apply_overrides(raw, overrides or [], source)
    section = base.tune or TuneConfig()
    raw_section = (raw.get("tune") or {}) if isinstance(raw.get("tune"), dict) else {}
    for key in ("tune", "sweep", "baseline"):
        raw.pop(key, None)  # not part of a trial's config: they must not change its run ids
    space = build_space(raw_section.get("space") or {}, params, source)
    check_space(space, raw, source)

    sampler = (sampler or section.sampler).lower()
    if sampler not in TuneConfig.model_fields["sampler"].annotation.__args__:
        raise TuneError(f"--sampler must be one of {list(TuneConfig.model_fields['sampler'].annotation.__args__)}. "
                        f"Got {sampler!r}.")
    pruner = (pruner or section.pruner).lower()
    if pruner not in TuneConfig.model_fields["pruner"].annotation.__args__:
        raise TuneError(f"--pruner must be one of {list(TuneConfig.model_fields['pruner'].annotation.__args__)}. "
                        f"Got {pruner!r}.")
    if not _has_validation(base):
        raise TuneError(f"{source}: tune chooses on a validation metric, and this config has no validation data; "
                        "set data.n_val (or val_fraction) or train.validation_split.")
    from gru_lab.data import spec_for

    task = spec_for(base.data).task
    metric = metric or section.metric or default_metric(base)
    allowed = [q for q in names.logged_quantities(task, True) if q.startswith("val_")]
    if metric not in allowed:
        hint = " The test split is never used to choose." if metric.startswith("test") else ""
        raise TuneError(f"--metric must be a validation quantity of this {task} task, one of {allowed}. "
                        f"Got {metric!r}.{hint}")
    direction = "maximize" if names.monitor_mode(metric) == "max" else "minimize"

    timeout = timeout if timeout is not None else section.timeout
    timeout_s = parse_duration(timeout, "--timeout") if timeout is not None else None
    trials = trials if trials is not None else section.trials
    if trials is not None and trials < 1:
        raise TuneError(f"--trials must be >= 1. Got {trials}.")
    if sampler == "grid":
        size = 1
        for param in space:
            size *= len(param.grid())
        trials = min(trials or size, size)
    elif trials is None:
        trials = 100_000 if timeout_s is not None else DEFAULT_TRIALS
    placed = placement(section, TuneError, "search", seeds, backend, workers, ray_address, num_cpus, num_gpus)
    seeds, backend, workers, num_cpus, num_gpus = (placed.seeds, placed.backend, placed.workers, placed.num_cpus,
                                                   placed.num_gpus)
    storage = storage or section.storage
    if storage is not None and "://" not in storage:
        raise TuneError(f"--storage must be a database URL such as sqlite:///tune.db or postgresql://host/db. "
                        f"Got {storage!r}.")

    name = name or section.name or base.name
    seed_list = [base.train_seed + i for i in range(seeds)]
    base_runs = plan_runs(raw, [{}], seed_list, lambda _p, _s: (source, {}), lambda _p: "base",
                          lambda _p, s: f"base config, seed {s}", name=name, seeds_from="--seeds")
    notes: list[str] = []
    threads = None
    if backend == "local":
        workers, threads, local_notes = local_workers(workers)
        notes += local_notes
    else:
        notes.append("on Ray, trials report no per-epoch values, so the pruner does not act: each trial trains "
                     "to its end")
    if seeds > 1:
        notes.append(f"a trial scores the mean over {seeds} seeds; the pruner watches its first seed")
    return TunePlan(name, source, results_folder(base, name), base, raw, space, trials, timeout_s, sampler, pruner,
                    metric, direction, seed_list, backend, workers, threads, storage,
                    ray_address if ray_address is not None else section.ray_address, num_cpus, num_gpus,
                    base_runs, notes)


# ----------------------------------------------------------------------------- trials

TRIAL_STATES = ("finished", "pruned", "failed", "invalid", "running")


class Pruned(Exception):
    """Raised from a run's epoch event when the pruner stops its trial; the runner stops the worker."""


@dataclass
class TrialRecord:
    """One trial as the tables show it."""

    number: int
    state: str  # one of TRIAL_STATES
    params: dict[str, Any]
    value: float | None  # the objective: best validation metric, mean over seeds
    best_epoch: int | None
    epochs: int  # epochs trained, every seed
    seconds: float | None
    kernels: str | None
    message: str | None  # why it is invalid, failed or pruned
    run_ids: list[str]
    resumed: int = 0  # times a later command took it over after a kill
    last_value: float | None = None  # a pruned trial: the value the pruner stopped it on


def history_rows(folder: Path) -> list[dict[str, float]]:
    try:
        with open(folder / "history.csv", newline="") as fh:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]
    except OSError:
        return []


def best_of(rows: list[dict[str, float]], metric: str, higher: bool) -> tuple[float | None, int | None]:
    """(best value of metric over the epochs, its epoch); the first epoch wins ties."""
    best, epoch = None, None
    for row in rows:
        value = row.get(metric)
        if value is None:
            continue
        if best is None or (value > best if higher else value < best):
            best, epoch = value, int(row["epoch"])
    return best, epoch


TrialEvent = Callable[[str, dict[str, Any]], None]  # (kind, info): kinds in run_tune


@dataclass
class TuneResult:
    plan: TunePlan
    trials: list[TrialRecord]
    base: list[RunOutcome]  # the base config's runs
    interrupted: bool
    seconds: float
    isolation: str
    backend: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    importances: dict[str, float] = field(default_factory=dict)
    importance_note: str | None = None

    @property
    def best(self) -> TrialRecord | None:
        done = [t for t in self.trials if t.state == "finished" and t.value is not None]
        if not done:
            return None
        return (max if self.plan.higher_is_better else min)(done, key=lambda t: t.value)

    def base_value(self) -> float | None:
        values = []
        for outcome in self.base:
            if outcome.ok and outcome.folder is not None:
                value, _ = best_of(history_rows(outcome.folder), self.plan.metric, self.plan.higher_is_better)
                if value is not None:
                    values.append(value)
        return statistics.fmean(values) if values else None


class _Search:
    """The trial loop of one command: `workers` threads, each asking the study for a trial (or taking over one
    a killed command left), training its runs through the runner, and telling the study the result."""

    def __init__(self, plan: TunePlan, study, runner, on_event: TrialEvent | None, deadline: float | None):
        self.plan, self.study, self.runner, self.deadline = plan, study, runner, deadline
        self.on_event = on_event
        self.owner = Owner.me()
        self.ask_lock = threading.Lock()
        self.event_lock = threading.Lock()
        self.stopping = threading.Event()

    def emit(self, kind: str, info: dict[str, Any]) -> None:
        if self.on_event:
            with self.event_lock:
                self.on_event(kind, info)

    def _next_trial(self):
        """(trial, its point, taken over?) or None when the budget is spent. Under a lock in this process and a
        file lock across processes on this machine, so no trial is taken over twice."""
        import optuna
        from optuna.trial import TrialState

        with self.ask_lock, file_lock(self.plan.folder / ".tune.lock"):
            if self.stopping.is_set() or (self.deadline is not None and time.monotonic() > self.deadline):
                return None
            trials = self.study.get_trials(deepcopy=False)
            for frozen in trials:
                if frozen.state != TrialState.RUNNING:
                    continue
                owner = frozen.user_attrs.get("owner")
                if owner is None or Owner(**owner).alive() is False:
                    trial = optuna.trial.Trial(self.study, frozen._trial_id)
                    trial.set_user_attr("owner", self.owner.record())
                    trial.set_user_attr("resumed", int(frozen.user_attrs.get("resumed", 0)) + 1)
                    return trial, self._point(trial), True
            if len(trials) >= self.plan.trials:
                return None
            trial = self.study.ask()
            trial.set_user_attr("owner", self.owner.record())
            return trial, self._point(trial), False

    def loop(self) -> None:
        while not self.stopping.is_set():
            found = self._next_trial()
            if found is None:
                return
            trial, point, taken_over = found
            self.run_trial(trial, point, taken_over)

    def _point(self, trial) -> dict[str, Any]:
        """The trial's values: suggested (a new trial) or the ones it was given (a trial taken over)."""
        point = {}
        for p in self.plan.space:
            if p.kind == "categorical":
                options = optuna_choices(p)
                point[p.key] = p.choices[options.index(trial.suggest_categorical(p.key, options))]
            elif p.kind == "int":
                point[p.key] = trial.suggest_int(p.key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
            else:
                value = trial.suggest_float(p.key, p.low, p.high, step=p.step, log=p.log)
                # low + k * step in floating point (0.30000000000000004): the value the user means
                point[p.key] = round(value, 12) if p.step else value
        return point

    def run_trial(self, trial, point: dict[str, Any], taken_over: bool) -> None:
        from optuna.trial import TrialState

        plan = self.plan
        before = int(trial.user_attrs.get("epochs", 0)) if taken_over else 0
        label = ", ".join(f"{k}={value_text(v)}" for k, v in point.items())
        try:
            runs = plan_runs(plan.raw, [point], plan.seeds, lambda _p, _s: (f"trial {trial.number}", {}),
                             lambda _p: f"t{trial.number:04d}",
                             lambda _p, s: f"trial {trial.number}: {label}, seed {s}", name=plan.name,
                             seeds_from="--seeds")
        except ConfigError as exc:
            trial.set_user_attr("state", "invalid")
            trial.set_user_attr("message", exc.message)
            self.study.tell(trial, state=TrialState.FAIL)
            self.emit("end", {"number": trial.number, "state": "invalid", "label": label, "message": exc.message})
            return
        trial.set_user_attr("run_ids", [r.run_id for r in runs])
        self.emit("start", {"number": trial.number, "label": label, "epochs": plan.base.train.epochs,
                            "taken_over": taken_over})
        started = time.perf_counter()
        values, best_epoch, kernels, state, message = [], None, None, "finished", None
        trained = [0]  # epochs trained by this command, every seed
        for index, run in enumerate(runs):

            def on_epoch(info: dict[str, Any], index=index) -> None:
                trained[0] += 1
                trial.set_user_attr("epochs", before + trained[0])  # kept if this command is killed
                self.emit("epoch", {"number": trial.number, **info})
                value = (info.get("logs") or {}).get(plan.metric)
                # Stopping after the last epoch would save nothing: the pruner judges the epochs before it.
                if index == 0 and value is not None and int(info["epoch"]) < plan.base.train.epochs:
                    trial.report(float(value), int(info["epoch"]))
                    if trial.should_prune():
                        raise Pruned(f"pruned after epoch {info['epoch']}: {plan.metric} {float(value):.4g}")

            try:
                folder = find_finished(plan.folder, run.run_id) or self.runner(run, on_epoch)
            except Pruned as exc:
                state, message = "pruned", str(exc)
                _remove_unfinished(plan.folder, run.run_id)
                break
            except RunFailed as exc:
                state, message = "failed", str(exc)
                break
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # an inline run's error: recorded on the trial, the search goes on
                state, message = "failed", f"{type(exc).__name__}: {exc}"
                break
            metrics = json.loads((folder / "metrics.json").read_text())
            if metrics.get("status") != "finished":
                state, message = "failed", f"{metrics.get('status')}: {metrics.get('error') or metrics.get('diverged')}"
                break
            rows = history_rows(folder)
            value, epoch = best_of(rows, plan.metric, plan.higher_is_better)
            if value is None:
                state, message = "failed", f"the run logged no {plan.metric}"
                break
            values.append(value)
            if index == 0:
                best_epoch = epoch
                from gru_lab.models.kernels import kernel_text

                kernels = kernel_text(metrics.get("execution"))
        seconds = time.perf_counter() - started
        trial.set_user_attr("state", state)
        trial.set_user_attr("epochs", before + trained[0])
        trial.set_user_attr("seconds", seconds)
        if kernels:
            trial.set_user_attr("kernels", kernels)
        if best_epoch is not None:
            trial.set_user_attr("best_epoch", best_epoch)
        if message:
            trial.set_user_attr("message", message)
        if state == "finished":
            self.study.tell(trial, statistics.fmean(values))
        elif state == "pruned":
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, state=TrialState.FAIL)
        self.emit("end", {"number": trial.number, "state": state, "label": label, "message": message,
                          "value": statistics.fmean(values) if state == "finished" else None})


def _remove_unfinished(folder: Path, run_id: str) -> None:
    """A pruned run's unfinished folder: its finished epochs will never be continued."""
    import shutil

    for u in unfinished_folders(folder):
        if u.run_id == run_id and not u.in_use:
            shutil.rmtree(u.path, ignore_errors=True)


def trial_records(study, plan: TunePlan) -> list[TrialRecord]:
    """Every trial of the study, as the tables show it: a trial running in a live command is "running"."""
    from optuna.trial import TrialState

    records = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        if t.state == TrialState.COMPLETE:
            state = "finished"
        elif t.state == TrialState.PRUNED:
            state = "pruned"
        elif t.state == TrialState.RUNNING:
            state = "running"
        else:
            state = attrs.get("state") if attrs.get("state") in ("invalid", "failed") else "failed"
        params = {}
        for p in plan.space:
            if p.key in t.params:
                value = t.params[p.key]
                if p.kind == "categorical" and value not in p.choices:
                    value = next((c for c in p.choices if value_text(c) == value), value)
                params[p.key] = value
        records.append(TrialRecord(t.number, state, params, t.value if state == "finished" else None,
                                   attrs.get("best_epoch"), int(attrs.get("epochs", 0)), attrs.get("seconds"),
                                   attrs.get("kernels"), attrs.get("message"), list(attrs.get("run_ids", [])),
                                   int(attrs.get("resumed", 0)),
                                   t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values
                                   else None))
    return records


def execute_tune(plan: TunePlan, runner=None, on_event: TrialEvent | None = None, fit_baselines: bool = True,
                 shared_fs: bool | None = None) -> TuneResult:
    """Score the base config, then run trials until the study holds plan.trials of them (or the time is up, or
    Ctrl-C); continue a study an earlier command started. A given runner (tests) runs in this process."""
    started = time.perf_counter()
    deadline = time.monotonic() + plan.timeout_s if plan.timeout_s is not None else None
    plan.folder.mkdir(parents=True, exist_ok=True)
    study = open_study(plan)
    with contextlib.ExitStack() as stack:
        if plan.backend == "ray" and runner is None:
            from gru_lab.experiments.ray_runner import connect

            runner, info = stack.enter_context(connect(plan, shared_fs))
            workers = info["in_flight"]
        else:
            # die_with_parent: a search killed with SIGKILL leaves no training behind to hold its runs' locks
            runner = runner or functools.partial(run_in_subprocess, threads=plan.threads, die_with_parent=True)
            workers = plan.workers or 1
            info = {"name": "local", "workers": workers, "threads": plan.threads}

        def base_event(kind: str, run, data: dict[str, Any]) -> None:
            if on_event:
                on_event(f"base-{kind}", {"label": run.label, **data})

        base, interrupted = execute_runs(plan.base_runs, plan.folder, runner, base_event, min(workers, len(plan.seeds)))
        search = _Search(plan, study, runner, on_event, deadline)
        if not interrupted:
            interrupted = _drive(search, workers)
    trials = trial_records(study, plan)
    baselines = {}
    if plan.base.baseline.kind != "none":
        from gru_lab.experiments.baselines import baselines_for

        baselines = baselines_for([plan.base], plan.folder, fit=fit_baselines and not interrupted)
    result = TuneResult(plan, trials, base, interrupted, time.perf_counter() - started, isolation_of(runner),
                        info, baselines)
    result.importances, result.importance_note = importances(study, plan, trials)
    return result


def _drive(search: _Search, workers: int) -> bool:
    """Run the search's loop on `workers` threads; True when Ctrl-C stopped it."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    try:
        with interrupt.remembered() as pressed:
            if workers <= 1:
                search.loop()
                if pressed.is_set():
                    raise KeyboardInterrupt
                return False
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gru-lab-trial")
            pending = {pool.submit(search.loop) for _ in range(workers)}
            try:
                while pending:
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    if pressed.is_set():
                        raise KeyboardInterrupt
                    for future in done:
                        future.result()
            except BaseException:
                search.stopping.set()
                pool.shutdown(wait=False, cancel_futures=True)
                _stop_live(pending)
                raise
            pool.shutdown(wait=True)
            return False
    except KeyboardInterrupt:
        search.stopping.set()
        return True


def importances(study, plan: TunePlan, trials: list[TrialRecord]) -> tuple[dict[str, float], str | None]:
    """Optuna's parameter importances (its default evaluator) over the finished trials, or why there are none."""
    done = [t for t in trials if t.state == "finished"]
    varied = [p for p in plan.space if len({value_text(t.params.get(p.key)) for t in done}) > 1]
    if len(done) < 2 or not varied:
        return {}, f"parameter importances need two finished trials that differ; this study has {len(done)}"
    import optuna

    try:
        return dict(optuna.importance.get_param_importances(study)), None
    except (RuntimeError, ValueError) as exc:
        return {}, f"parameter importances not computed: {exc}"


# ----------------------------------------------------------------------------- the summary


@dataclass
class TuneSummary:
    table: Any  # pandas DataFrame: one row per trial, then the base config and the classical baseline(s)
    best: TrialRecord | None
    best_config: ExperimentConfig | None  # the best trial's first-seed config: best.yaml
    best_test: float | None  # the best trial's test metric (mean over its seeds), read at the end only
    base_value: float | None
    base_test: float | None
    verdict: Any  # experiments.verdicts.Verdict, or None with no finished trial
    counts: dict[str, int]
    epochs: int  # epochs trained by every trial together
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


def trial_config(plan: TunePlan, trial: TrialRecord) -> ExperimentConfig:
    """The config of a trial's first seed, as its run trained it (seed included)."""
    runs = plan_runs(plan.raw, [trial.params], plan.seeds[:1], lambda _p, _s: (f"trial {trial.number}", {}),
                     lambda _p: f"t{trial.number:04d}", lambda _p, _s: f"trial {trial.number}", name=plan.name,
                     seeds_from="--seeds")
    return runs[0].cfg


def _test_of(folder: Path, run_ids: list[str], metric: str) -> float | None:
    values = []
    for run_id in run_ids:
        done = find_finished(folder, run_id)
        if done is None:
            return None
        value = (json.loads((done / "metrics.json").read_text()).get("test") or {}).get(metric)
        if value is None:
            return None
        values.append(float(value))
    return statistics.fmean(values) if values else None


def summarize(result: TuneResult) -> TuneSummary:
    """The tune table and the verdict: every number from the study and the runs' records."""
    import pandas as pd

    from gru_lab.experiments.baselines import of_run
    from gru_lab.experiments.tables import task_of
    from gru_lab.experiments.verdicts import FAILS, HOLDS, INCONCLUSIVE, Verdict
    from gru_lab.runs.records import metric_of

    plan = result.plan
    test_metric, _ = metric_of(task_of(plan.base))
    best = result.best
    best_test = _test_of(plan.folder, best.run_ids, test_metric) if best else None
    base_value = result.base_value()
    base_test = _test_of(plan.folder, [r.run_id for r in plan.base_runs], test_metric)
    rows = []
    for t in result.trials:
        rows.append({"trial": t.number, "kind": "trial", "state": t.state,
                     **{p.key: _cell(t.params.get(p.key)) for p in plan.space},
                     plan.metric: t.value, "best_epoch": t.best_epoch, "epochs": t.epochs,
                     "seconds": t.seconds, "kernels": t.kernels,
                     f"test_{test_metric}": best_test if best is not None and t.number == best.number else None,
                     "note": t.message or (f"taken over {t.resumed}x after a kill" if t.resumed else None)})
    base_epochs = sum(len(history_rows(o.folder)) for o in result.base if o.folder is not None)
    rows.append({"trial": None, "kind": "base config", "state": "finished" if base_value is not None else "-",
                 **{p.key: _cell(_at(plan.base.model_dump(mode="json"), p.key)) for p in plan.space},
                 plan.metric: base_value,
                 "epochs": base_epochs, f"test_{test_metric}": base_test, "note": "the config as given"})
    found = of_run(plan.base, plan.base, result.baselines) if result.baselines else None
    for b in (found.items if found else []):
        rows.append({"trial": None, "kind": "classical baseline", "state": b.label,
                     f"test_{test_metric}": b.value, "seconds": b.fit_seconds, "note": f"sees {b.sees}"})
    table = pd.DataFrame(rows)
    counts = {s: sum(t.state == s for t in result.trials) for s in TRIAL_STATES}
    epochs = sum(t.epochs for t in result.trials)
    verdict = None
    if best is not None:
        claim = "the best trial beats the base config on validation"
        better = "higher" if plan.higher_is_better else "lower"
        tested = (f" Its test {test_metric}: {best_test:.4g}" if best_test is not None else "") + (
            f" (base config: {base_test:.4g})." if base_test is not None else ".")
        if base_value is None:
            verdict = Verdict(claim, INCONCLUSIVE, f"trial {best.number}: {plan.metric} {best.value:.4g}; the base "
                              "config has no score (its run did not finish)." + tested)
        else:
            gain = best.value - base_value
            wins = gain > 0 if plan.higher_is_better else gain < 0
            where = ", ".join(f"{k}={value_text(v)}" for k, v in best.params.items())
            verdict = Verdict(claim, HOLDS if wins else FAILS,
                              f"trial {best.number} ({where}): {plan.metric} {best.value:.4g} vs the base config's "
                              f"{base_value:.4g} ({gain:+.4g}; {better} is better)." + tested,
                              {"best": best.value, "base": base_value, "difference": gain, "best_test": best_test,
                               "base_test": base_test})
    notes = list(plan.notes)
    notes.append(f"trials choose on {plan.metric} (best epoch, mean over {len(plan.seeds)} seed(s)); the test "
                 f"{test_metric} is read for the best trial and the base config only, after the search")
    if result.importance_note:
        notes.append(result.importance_note)
    return TuneSummary(table, best, trial_config(plan, best) if best else None, best_test, base_value, base_test,
                       verdict, counts, epochs, notes)


def _cell(value: Any) -> Any:
    return value if value is None or isinstance(value, (int, float, str, bool)) else value_text(value)


def _at(raw: dict[str, Any], key: str) -> Any:
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
