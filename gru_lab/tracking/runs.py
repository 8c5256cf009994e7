"""One gru-lab run as one MLflow run, and a compare's, sweep's or tune's parent run with its runs nested under it.

A run logs its flattened config as parameters, every epoch's metrics with the epoch as the step (while it
trains), then its test metrics and the baseline's, tags, the run folder's files as artifacts and its model in
MLflow's Keras flavour. The MLflow run's id is kept in the run folder (mlflow.json): a resumed run continues
its MLflow run, and a finished folder already logged to a store is not logged there again. Backfill (`gru-lab
report --mlflow`, and a compare or sweep that reuses finished runs) finds a run in the store by its gru-lab run
id too, so a run logged halfway (the server went down) is completed, never duplicated.

Tune uses the same two pieces as compare and sweep (docs/mlflow.md): its parent is keyed by its study's folder,
its trials nest under it as they train, and each trial's run is tagged with the trial's state.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import yaml

from gru_lab.config import ExperimentConfig, load_config, to_yaml
from gru_lab.files import atomic_write_json
from gru_lab.runs.folder import DONE  # the runs that are results: finished or diverged
from gru_lab.tracking.store import OFF_ENV, PARENT_ENV, Store, Warn, require_mlflow, tracking_uri

RECORD = "mlflow.json"  # in the run folder: the store, experiment and MLflow run it is logged to, and whether wholly
MODEL_ARTIFACT = "model"  # runs:/<id>/model: what mlflow.pyfunc.load_model and `mlflow models serve` take
NOT_ARTIFACTS = {"model.keras", RECORD}  # the model goes in MLflow's flavour; the record is the store's own
BATCH = 100  # MLflow's log_batch takes at most 100 params (and 1000 metrics) a call
HISTORY_RENAMES = {"seconds": "epoch_seconds"}  # history.csv column -> the metric name the live run logs


def flat_params(cfg: ExperimentConfig) -> dict[str, str]:
    """The resolved config as dotted keys (model.units -> "64"), what a run logs as parameters."""
    from gru_lab.runs.records import flatten

    return {k: v[:6000] for k, v in flatten(yaml.safe_load(to_yaml(cfg))).items()}  # MLflow's limit on a value


_COMMIT: list[str | None] = []


def git_commit() -> str | None:
    """gru-lab's own git commit where it runs from a checkout, else None."""
    if not _COMMIT:
        root = Path(__file__).resolve().parents[2]
        try:
            done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                  timeout=5)
            _COMMIT.append(done.stdout.strip() if done.returncode == 0 and (root / ".git").exists() else None)
        except (OSError, subprocess.SubprocessError):
            _COMMIT.append(None)
    return _COMMIT[0]


def run_tags(cfg: ExperimentConfig, run_id: str, metrics: dict[str, Any] | None = None) -> dict[str, str]:
    from gru_lab import __version__

    data = cfg.data
    tags = {"gru_lab.run_id": run_id, "gru_lab.name": cfg.name, "gru_lab.version": __version__,
            "cell": cfg.model.cell, "seed": str(cfg.train_seed), "data.name": data.name,
            "mlflow.runName": run_id}
    for key in ("path", "n_train", "length", "window"):
        value = getattr(data, key, None)
        if value is not None:
            tags[f"data.{key}"] = str(value)
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if metrics:
        tags["gru_lab.status"] = str(metrics.get("status"))
        kernels = (metrics.get("execution") or {}).get("kernels") or []
        if kernels:
            tags["kernels"] = ", ".join(sorted({k.get("kernel", "?") for k in kernels}))
            tags["kernels.inference"] = ", ".join(sorted({k.get("inference", "?") for k in kernels}))
    return tags


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """What a finished run logs once: test metrics, the baseline's, and its summary numbers."""
    out = {f"test_{k}": v for k, v in (metrics.get("test") or {}).items()}
    for key in ("best_epoch", "evaluated_epoch", "epochs_run", "median_epoch_seconds", "train_samples_per_second",
                "inference_samples_per_second", "fit_seconds"):
        out[key] = metrics.get(key)
    out["params_total"] = (metrics.get("params") or {}).get("total")
    out.update(baseline_metrics(metrics.get("classical_baseline")))
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def baseline_metrics(record: dict[str, Any] | None) -> dict[str, float]:
    """baseline.<name>.<metric> for each classical baseline of a record (experiments.baselines)."""
    return {f"baseline.{b['name']}.{b['metric']}": float(b["value"]) for b in (record or {}).get("items", [])
            if isinstance(b.get("value"), (int, float))}


def read_record(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(folder) / RECORD).read_text())
    except (OSError, ValueError):
        return {}


class RunTracker:
    """The MLflow run of one gru-lab run while it trains (open it with `start`)."""

    def __init__(self, store: Store, cfg: ExperimentConfig, run_id: str, workdir: Path, parent_id: str | None):
        self.store, self.cfg, self.run_id, self.workdir, self.parent_id = store, cfg, run_id, workdir, parent_id
        self.mlflow_run_id: str | None = None
        self.experiment_id: str | None = None
        self.pending: list = []  # the epochs' metrics on their way (MLflow's asynchronous logging)

    @classmethod
    def start(cls, cfg: ExperimentConfig, run_id: str, workdir: Path, warn: Warn | None = None,
              setting: bool | str | None = None) -> "RunTracker | None":
        """The tracker of a run about to train in workdir (None when tracking is off): a new MLflow run, or the
        one its earlier attempt started (workdir's mlflow.json), continued. setting: output.mlflow's value
        (default: the config's)."""
        uri = tracking_uri(cfg.output.mlflow if setting is None else setting, cfg.output.dir)
        if uri is None:
            return None
        require_mlflow()
        tracker = cls(Store(uri, warn), cfg, run_id, Path(workdir), os.environ.get(PARENT_ENV) or None)
        tracker._open()
        return tracker

    def _open(self) -> None:
        store = self.store
        self.experiment_id = store.experiment_id(self.cfg.name)
        if self.experiment_id is None:
            self._write(False)
            return
        earlier = read_record(self.workdir)
        if earlier.get("tracking_uri") == store.uri and earlier.get("run_id"):
            store.call("resuming its MLflow run", store.client.update_run, earlier["run_id"], "RUNNING")
            if store.on:
                self.mlflow_run_id = earlier["run_id"]
        if self.mlflow_run_id is None and store.on:
            tags = run_tags(self.cfg, self.run_id)
            if self.parent_id:
                tags["mlflow.parentRunId"] = self.parent_id
            run = store.call("creating the run", store.client.create_run, self.experiment_id, tags=tags,
                             run_name=self.run_id)
            if run is not None:
                self.mlflow_run_id = run.info.run_id
                log_params(store, self.mlflow_run_id, flat_params(self.cfg))
        self._write(False)

    def _write(self, logged: bool, folder: Path | None = None) -> None:
        record = {"tracking_uri": self.store.uri, "experiment_id": self.experiment_id, "run_id": self.mlflow_run_id,
                  "parent_run_id": self.parent_id, "logged": logged}
        if self.store.problem:
            record["problem"] = self.store.problem
        try:
            atomic_write_json((folder or self.workdir) / RECORD, record)
        except OSError:  # the record is a convenience: backfill finds the run by its id tag without it
            pass

    def log_epoch(self, epoch: int, values: dict[str, float]) -> None:
        """An epoch_sink for training.fit.train: every value with the epoch as the step. Sent in the background
        (MLflow's asynchronous logging), so the next epoch does not wait for the store; flush() waits for it."""
        if self.mlflow_run_id is not None:
            operation = log_metrics(self.store, self.mlflow_run_id, values, step=epoch, synchronous=False)
            if operation is not None:
                self.pending.append(operation)

    def flush(self) -> None:
        """Wait for the epochs' metrics to reach the store (a failure there is the one warning)."""
        pending, self.pending = self.pending, []
        for operation in pending:
            self.store.call("logging an epoch's metrics", operation.wait)

    def stop(self, status: str = "KILLED") -> None:
        """The run ended without a result (Ctrl-C, out of memory): its MLflow run says so; a resume continues it."""
        self.flush()
        if self.mlflow_run_id is not None:
            self.store.call("ending the run", self.store.client.set_terminated, self.mlflow_run_id, status)

    def finish(self, folder: Path, metrics: dict[str, Any]) -> bool:
        """The run folder is written: log what only a finished run has and end the MLflow run. True when the
        run is wholly logged."""
        logged = False
        self.flush()
        if self.mlflow_run_id is not None:
            logged = log_finished(self.store, self.mlflow_run_id, Path(folder), self.cfg, metrics)
        self._write(logged, Path(folder))
        return logged


def log_params(store: Store, run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), BATCH):
        store.call("logging parameters", store.client.log_batch, run_id, params=items[i:i + BATCH])


def log_metrics(store: Store, run_id: str, values: dict[str, float], step: int = 0, synchronous: bool = True):
    """One log_batch call (a run's metrics are far fewer than its limit of 1000); asynchronous: the operation
    to wait for."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step) for k, v in values.items()][:10 * BATCH]
    return store.call("logging metrics", store.client.log_batch, run_id, metrics=items, synchronous=synchronous)


def log_finished(store: Store, run_id: str, folder: Path, cfg: ExperimentConfig, metrics: dict[str, Any]) -> bool:
    """Test metrics, tags, the folder's files, the model; then the MLflow run ends. True when all of it went."""
    client = store.client
    log_metrics(store, run_id, final_metrics(metrics))
    for key, value in run_tags(cfg, folder.name, metrics).items():
        store.call("tagging the run", client.set_tag, run_id, key, value)
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name not in NOT_ARTIFACTS and not path.name.startswith("."):
            rel = path.relative_to(folder).parent.as_posix()
            store.call("logging the run folder's files", client.log_artifact, run_id, str(path),
                       None if rel == "." else rel)
    if (folder / "model.keras").is_file():
        store.call("logging the model", log_model, client, run_id, folder / "model.keras")
    store.call("tagging the run", client.set_tag, run_id, "gru_lab.logged", "true")
    store.call("ending the run", client.set_terminated, run_id, "FINISHED")
    return store.on


def log_model(client, run_id: str, path: Path) -> None:
    """model.keras (stock Keras layers) in MLflow's Keras flavour, with a signature from one zero input, and
    pip requirements given (inferring them loads the model again in a subprocess: ~10 s a run)."""
    import tempfile

    import keras
    import mlflow.keras
    import numpy as np
    import tensorflow as tf
    from mlflow.models import infer_signature

    model = keras.models.load_model(str(path), compile=False)
    shape = [d or 1 for d in model.inputs[0].shape[1:]]
    dtype = str(getattr(model.inputs[0].dtype, "name", model.inputs[0].dtype))
    example = np.zeros([1, *shape], dtype=dtype)
    signature = infer_signature(example, np.asarray(model.predict(example, verbose=0)))
    with tempfile.TemporaryDirectory(prefix="gru-lab-mlflow-") as tmp:
        mlflow.keras.save_model(model, str(Path(tmp) / MODEL_ARTIFACT), signature=signature,
                                pip_requirements=[f"keras=={keras.__version__}", f"tensorflow=={tf.__version__}"])
        client.log_artifacts(run_id, str(Path(tmp) / MODEL_ARTIFACT), MODEL_ARTIFACT)


def history_rows(folder: Path) -> list[dict[str, float]]:
    try:
        with open(folder / "history.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return []
    out = []
    for row in rows:
        values = {}
        for key, value in row.items():
            try:
                values[HISTORY_RENAMES.get(key, key)] = float(value)
            except (TypeError, ValueError):
                continue
        if "epoch" in values:
            out.append(values)
    return out


def backfill(store: Store, folder: Path, parent_id: str | None = None) -> str:
    """Log a finished run folder to the store unless it is there already: "logged", "present", "skipped" (not a
    result: interrupted, failed, unreadable) or "failed" (the store failed; store.problem says how)."""
    folder = Path(folder)
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
        cfg = load_config(folder / "config.yaml", [])
    except Exception:  # not a run folder this version can read: not logged, never a reason to stop
        return "skipped"
    if metrics.get("status") not in DONE:
        return "skipped"
    record = read_record(folder)
    if record.get("tracking_uri") == store.uri and record.get("logged"):
        return "present"
    if not store.on:
        return "failed"
    experiment_id = store.experiment_id(cfg.name)
    if experiment_id is None:
        return "failed"
    found = runs_named(store, experiment_id, folder.name)
    if found is None:
        return "failed"
    tracker = RunTracker(store, cfg, folder.name, folder, parent_id)
    tracker.experiment_id = experiment_id
    run = next((r for r in found if r.data.tags.get("gru_lab.logged") == "true"), None)
    if run is not None:
        tracker.mlflow_run_id = run.info.run_id
        tracker._write(True, folder)
        return "present"
    logged_steps: set[int] = set()
    if found:  # logged halfway while it trained: complete that run
        tracker.mlflow_run_id = found[0].info.run_id
        history = store.call("reading the run", store.client.get_metric_history, tracker.mlflow_run_id, "loss") or []
        logged_steps = {m.step for m in history}
        if parent_id and found[0].data.tags.get("mlflow.parentRunId") != parent_id:
            store.call("tagging the run", store.client.set_tag, tracker.mlflow_run_id, "mlflow.parentRunId", parent_id)
    else:
        tags = run_tags(cfg, folder.name)
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        run = store.call("creating the run", store.client.create_run, experiment_id, tags=tags,
                         run_name=folder.name)
        if run is None:
            return "failed"
        tracker.mlflow_run_id = run.info.run_id
        log_params(store, tracker.mlflow_run_id, flat_params(cfg))
    for row in history_rows(folder):
        epoch = int(row.pop("epoch"))
        if epoch not in logged_steps:
            tracker.log_epoch(epoch, row)
    return "logged" if tracker.finish(folder, metrics) else "failed"


def runs_named(store: Store, experiment_id: str, run_id: str) -> list | None:
    """The experiment's MLflow runs of one gru-lab run (its gru_lab.run_id tag); None where the store failed."""
    return store.call("searching for the run", store.client.search_runs, [experiment_id],
                      f"tags.`gru_lab.run_id` = '{run_id}'", max_results=5)


class ParentRun:
    """The MLflow run a compare, sweep or tune logs its tables and plots to; its runs nest under it."""

    def __init__(self, store: Store, run_id: str | None):
        self.store, self.run_id = store, run_id

    def log_child(self, folder: Path) -> str:
        """A run of the plan, logged under this parent unless it is in the store already (backfill)."""
        return backfill(self.store, folder, self.run_id)

    def tag_child(self, folder: Path, key: str, value: str) -> None:
        """A tag on a run of the plan once it is logged (tune: the trial's state)."""
        run_id = read_record(folder).get("run_id")
        if run_id and read_record(folder).get("tracking_uri") == self.store.uri:
            self.store.call("tagging a run", self.store.client.set_tag, run_id, key, value)

    def tag_folderless(self, experiment: str, run_id: str, key: str, value: str) -> None:
        """A tag on a run of the plan that left no run folder (tune: a pruned trial, whose folder is removed),
        found by its gru_lab.run_id among this parent's children."""
        experiment_id = self.store.experiment_id(experiment) if self.run_id and self.store.on else None
        if experiment_id is None:
            return
        for run in runs_named(self.store, experiment_id, run_id) or []:
            if run.data.tags.get("mlflow.parentRunId") == self.run_id:
                self.store.call("tagging a run", self.store.client.set_tag, run.info.run_id, key, value)

    def log_files(self, paths) -> None:
        for path in paths:
            if self.run_id and Path(path).is_file():
                self.store.call("logging the tables and plots", self.store.client.log_artifact, self.run_id, str(path))

    def log_metrics(self, values: dict[str, float]) -> None:
        if self.run_id:
            log_metrics(self.store, self.run_id, values)

    def log_plan(self, folders, files=(), baselines=()) -> dict[str, int]:
        """After a plan's runs: every finished run folder logged under this parent (once: those its worker
        logged are skipped at no cost), the tables and plots, and the baselines' metrics; counts by outcome."""
        counts: dict[str, int] = {}
        for folder in folders:
            if folder is not None:
                outcome = self.log_child(folder)
                counts[outcome] = counts.get(outcome, 0) + 1
        self.log_files(files)
        for record in baselines:
            self.log_metrics(baseline_metrics(record))
        return counts


@contextlib.contextmanager
def parent_run(setting: bool | str | None, output_dir: str | Path, experiment: str, kind: str, label: str,
               key: str, params: dict[str, Any] | None = None, warn: Warn | None = None) -> Iterator[ParentRun | None]:
    """The parent MLflow run of a compare, sweep or tune (None when tracking is off). A re-run of the same plan
    (same key: its run ids) continues its parent. While the block runs, runs trained in this process or its
    worker processes nest under it; a parent whose store failed tells them not to try (one warning, not one a
    run)."""
    uri = tracking_uri(setting, output_dir)
    if uri is None:
        yield None
        return
    require_mlflow()
    store = Store(uri, warn)
    run_id = None
    experiment_id = store.experiment_id(experiment)
    if experiment_id is not None:
        found = store.call("searching for the parent run", store.client.search_runs, [experiment_id],
                           f"tags.`gru_lab.plan` = '{key}'", max_results=1) or []
        if found:
            run_id = found[0].info.run_id
            store.call("resuming the parent run", store.client.update_run, run_id, "RUNNING")
        elif store.on:
            from gru_lab import __version__

            tags = {"gru_lab.plan": key, "gru_lab.kind": kind, "gru_lab.name": experiment,
                    "gru_lab.version": __version__, "mlflow.runName": label}
            if git_commit():
                tags["mlflow.source.git.commit"] = git_commit()
            run = store.call("creating the parent run", store.client.create_run, experiment_id, tags=tags,
                             run_name=label)
            run_id = run.info.run_id if run is not None else None
            if run_id and params:
                log_params(store, run_id, {k: str(v)[:6000] for k, v in params.items()})
    saved = {name: os.environ.get(name) for name in (PARENT_ENV, OFF_ENV)}
    if run_id:
        os.environ[PARENT_ENV] = run_id
    elif store.problem:
        os.environ[OFF_ENV] = store.problem
    status = "FAILED"
    try:
        yield ParentRun(store, run_id)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if run_id:
            store.call("ending the parent run", store.client.set_terminated, run_id, status)


def plan_parent(plan, kind: str, warn: Warn | None = None, setting: bool | str | None = None):
    """parent_run for a compare, sweep or tune plan (duck-typed: base, name, runs with run_id and cfg): the
    runs' experiment, the base config as parameters, and the plan's run ids as its key, so a re-run of the same
    plan continues the same parent."""
    import hashlib

    base = plan.base
    runs = plan.runs
    if getattr(plan, "space", None) is not None:  # a tune: its trials come as it goes; its study's folder is its key
        experiment = base.name
        key = hashlib.sha256(f"{kind}:{Path(plan.folder).resolve()}".encode()).hexdigest()[:16]
        params = {**flat_params(base), "plan.kind": kind, "plan.trials": plan.trials}
        for name in ("sampler", "pruner", "metric"):
            params[f"plan.{name}"] = getattr(plan, name)
        params["plan.space"] = json.dumps([p.record() for p in plan.space], default=str)
    else:
        experiment = runs[0].cfg.name if runs else plan.name
        key = hashlib.sha256("\n".join(sorted(r.run_id for r in runs)).encode()).hexdigest()[:16]
        params = {**flat_params(base), "plan.kind": kind, "plan.runs": len(runs)}
    for name, values in (getattr(plan, "axes", None) or {}).items():
        params[f"plan.axis.{name}"] = json.dumps(values, default=str)
    for name in ("cells", "seeds", "lengths"):
        if getattr(plan, name, None) is not None:
            params[f"plan.{name}"] = json.dumps(getattr(plan, name), default=str)
    return parent_run(base.output.mlflow if setting is None else setting, base.output.dir, experiment, kind,
                      f"{kind} {plan.name}", key, params, warn)


def backfill_tree(root: Path, setting: bool | str, warn: Warn | None = None) -> tuple[str, dict[str, int]]:
    """`gru-lab report <root> --mlflow URI`: every finished run folder under root logged to the store unless it
    is there already; (the store's URI, counts by backfill's outcome)."""
    uri = tracking_uri(setting, root)
    require_mlflow()
    store = Store(uri, warn)
    counts: dict[str, int] = {}
    for metrics in sorted(Path(root).rglob("metrics.json")):
        folder = metrics.parent
        if any(part.startswith(".") for part in folder.relative_to(root).parts):
            continue  # unfinished runs, and the local store's own copies of run files
        outcome = backfill(store, folder)
        counts[outcome] = counts.get(outcome, 0) + 1
    return uri, counts
