"""Runs as Ray tasks: each planned run trains in a worker process (executor.run_in_subprocess) on the
Ray node the cluster picks; the executor's loop (resume, failures, Ctrl-C) drives them as it drives local
workers."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gru_lab.errors import SweepError
from gru_lab.experiments.executor import EpochEvent, RunFailed, run_in_subprocess, track


class RayRunner:
    """Each run as one Ray task that trains it in a worker process (as above) on a cluster node.

    Results come back to the same run folders either way: where the node sees the driver's results
    folder (a local instance, or a cluster on a shared filesystem; checked with a token file the
    driver writes there), the worker writes the run folder in place; elsewhere it trains into a
    scratch folder on the node, the task returns the folder's files, and the driver writes them
    with the same atomic code (runs.save_run_files). shared_fs=True/False skips the check.

    Needs `ray.init()` first. Use as a context manager: leaving it removes the token files.
    """

    isolation = "process"

    def __init__(self, num_cpus: float = 1.0, num_gpus: float = 0.0, shared_fs: bool | None = None):
        import ray

        # max_retries=0: a crashed run is recorded as failed and retried by the next sweep, as locally.
        self._task = ray.remote(_ray_task).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)
        self.threads = max(1, int(num_cpus))  # a run's CPUs are its TensorFlow threads
        self.shared_fs = shared_fs
        self._tokens: dict[Path, Path] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> "RayRunner":
        return self

    def __exit__(self, *exc) -> None:
        for token in self._tokens.values():
            token.unlink(missing_ok=True)

    def _token(self, folder: Path) -> str:
        with self._lock:
            if folder not in self._tokens:
                path = folder / f".ray-token-{uuid.uuid4().hex}"
                folder.mkdir(parents=True, exist_ok=True)
                path.touch()
                self._tokens[folder] = path
            return self._tokens[folder].name

    def __call__(self, run, on_epoch: EpochEvent | None = None) -> Path:
        import ray
        from ray.exceptions import RayError, TaskCancelledError

        from gru_lab.runs.folder import save_run_files

        base = Path(run.cfg.output.dir).resolve()
        token = None if self.shared_fs is False else self._token(base / run.cfg.name)
        from gru_lab.tracking.store import OFF_ENV, PARENT_ENV

        # a Ray node does not share this process's environment: the MLflow parent run travels with the task
        tracking = {k: os.environ[k] for k in (PARENT_ENV, OFF_ENV) if k in os.environ}
        payload = {"raw": run.raw, "run_id": run.run_id, "name": run.cfg.name, "env": tracking}
        ref = self._task.remote(payload, self.threads, str(base), token, self.shared_fs)
        track(ref, lambda force: ray.cancel(ref, force=force))
        try:
            reply = ray.get(ref)
        except TaskCancelledError:
            raise KeyboardInterrupt from None
        except RayError as exc:  # the task's worker died (out of memory, node lost) or the task raised
            text = str(exc)
            lines = [ln for ln in text.splitlines() if ln.strip()]
            raise RunFailed(f"ray: {type(exc).__name__}: {lines[-1] if lines else ''}".strip(), text) from None
        finally:
            track(ref, None)
        if reply["status"] == "interrupted":
            raise KeyboardInterrupt
        if reply["status"] == "failed":
            raise RunFailed(reply["error"], reply["log"])
        if "files" in reply:
            return save_run_files(base, run.cfg.name, run.run_id, reply["files"])
        return Path(reply["folder"])


def _ray_task(payload: dict[str, Any], threads: int, base_dir: str, token: str | None,
              shared_fs: bool | None) -> dict[str, Any]:
    """Runs on a Ray node: one run in a worker process; a plain dict back (a folder, or its files)."""
    if shared_fs is None:
        shared_fs = token is not None and (Path(base_dir) / payload["name"] / token).is_file()
    scratch = None if shared_fs else tempfile.mkdtemp(prefix="gru-lab-run-")
    run = SimpleNamespace(run_id=payload["run_id"], raw=payload["raw"])
    saved = {k: os.environ.get(k) for k in payload.get("env", {})}
    os.environ.update(payload.get("env", {}))  # the worker process inherits it (run_in_subprocess)
    try:
        try:
            folder = run_in_subprocess(run, None, threads=threads, base_dir=base_dir if shared_fs else scratch,
                                       die_with_parent=True)
        except RunFailed as exc:
            return {"status": "failed", "error": str(exc), "log": exc.log}
        except KeyboardInterrupt:
            return {"status": "interrupted"}
        if shared_fs:
            return {"status": "finished", "folder": str(folder)}
        from gru_lab.runs.folder import run_files

        return {"status": "finished", "files": run_files(folder)}
    finally:
        for key, value in saved.items():  # a Ray worker runs other tasks after this one
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def connect(plan, shared_fs: bool | None = None):
    """(RayRunner, backend info) for a sweep plan, on the cluster at plan.ray_address: "auto" = the cluster this machine
    belongs to, None = a local instance started here (and shut down after). An instance this process
    has already started (ray.init in a notebook or a test) is used as it is."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a lab tool does not report usage unasked
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"address": plan.ray_address} if plan.ray_address else {"include_dashboard": False}
        try:
            ray.init(log_to_driver=False, logging_level=logging.ERROR, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SweepError(f"cannot connect to Ray at {plan.ray_address or 'a new local instance'!r}: {first} "
                             "(start a cluster with `ray start --head`, "
                             "or drop --ray-address for a local one).") from None
    try:
        resources = ray.cluster_resources()
        fits = int(resources.get("CPU", 0) // plan.num_cpus)
        if plan.num_gpus:
            fits = min(fits, int(resources.get("GPU", 0) // plan.num_gpus))
        in_flight = plan.workers or max(1, fits)
        info = {"name": "ray",
                "address": plan.ray_address or ("local instance" if started_here else "existing instance"),
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
