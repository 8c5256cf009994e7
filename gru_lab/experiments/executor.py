"""Running planned runs: each in its own worker process, up to N at a time, locally or on Ray.

Shared by compare and sweep. A planned run is any object with `run_id`, `raw` (the config as written
plus the run's own keys; the worker validates it again), `cfg` (the validated config) and `label`.
Owns: reuse and resume (a run whose folder already holds a finished or diverged metrics.json is reused,
never redone or overwritten; a half-done one continues from its last saved epoch), failures (recorded
under failures/<run-id>.log and retried next time; one failing or killed worker never costs another run
its result), Ctrl-C (stops the workers, keeps every finished run and every finished epoch). The Ray
runner (ray_runner.py) plugs into the same loop.

The worker entry point (`python -m gru_lab.experiments.executor --worker`) trains one run per process, so a
crash cannot take the other runs down and each run's peak memory is its own.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gru_lab import tflogs
from gru_lab.config import ExperimentConfig, config_from_raw
from gru_lab.errors import GruLabError, machine_limit
from gru_lab.runs.folder import find_finished
from gru_lab.runs.records import stopped_reason
from gru_lab.training import interrupt

WORKER_FLAG = "--worker"
STOP_GRACE_S = 20  # after Ctrl-C a worker saves nothing and exits at once; one that hangs is killed after this


class RunFailed(Exception):
    """A run that ended without a finished run folder; `log` holds what it wrote to stderr."""

    def __init__(self, message: str, log: str):
        super().__init__(message)
        self.log = log


EpochEvent = Callable[[dict[str, Any]], None]  # {"epoch", "epochs", "seconds", "logs"}
Runner = Callable[[Any, "EpochEvent | None"], Path]  # (planned run, epoch events) -> finished run folder
EventHook = Callable[[str, Any, dict[str, Any]], None]  # (kind, run, info); kinds in execute_runs


@dataclass
class RunOutcome:
    run: Any  # the planned run
    status: str  # "finished" (trained now), "reused" (finished earlier), "diverged" (now or earlier: its record
    # says where), "failed", "not run" (interrupted)
    folder: Path | None = None
    metrics: dict[str, Any] | None = None
    error: str | None = None
    log: Path | None = None  # failures/<run-id>.log for a failed run
    seconds: float | None = None  # wall time of this attempt, process start-up included

    @property
    def ok(self) -> bool:
        return self.status in ("finished", "reused")


def train_and_save(cfg: ExperimentConfig, run_id: str, on_epoch: EpochEvent | None = None,
                   base_dir: str | None = None) -> Path:
    """Load data, train, write the run folder. The run trains in its unfinished folder, continuing from the
    state an earlier attempt left there (killed, or stopped with Ctrl-C); an interrupted fit keeps that
    state and re-raises Ctrl-C; a run stopped by the machine (out of memory) raises RunFailed."""
    from gru_lab.data import load_dataset
    from gru_lab.runs.folder import open_run, save_run
    from gru_lab.tracking.runs import RunTracker
    from gru_lab.training.fit import train

    def hook(epoch: int, logs: dict, seconds: float) -> None:
        if on_epoch:
            on_epoch({"epoch": epoch, "epochs": cfg.train.epochs, "seconds": seconds,
                      "logs": {k: float(v) for k, v in logs.items()}})

    with open_run(cfg, run_id, base_dir, resume=True) as folder:
        # output.mlflow: this run's MLflow run (nested under the compare's or sweep's); a store that fails is
        # recorded in the run folder's mlflow.json, and the parent logs the run later
        tracker = RunTracker.start(cfg, run_id, folder.workdir)
        data = load_dataset(cfg.data, cfg.seed)
        result = train(cfg, data, epoch_hook=hook, workdir=folder.workdir,
                       epoch_sink=tracker.log_epoch if tracker else None)
        if result.status == "interrupted":
            if tracker:
                tracker.stop("KILLED")
            # A planned run is all or nothing: its finished epochs stay in the unfinished folder for the re-run.
            raise KeyboardInterrupt
        if result.status == "failed":
            if tracker:
                tracker.stop("FAILED")
            raise RunFailed(result.metrics.get("error", "failed"), "")
        path = save_run(cfg, result, data, run_id=run_id, base_dir=base_dir, folder=folder)
        if tracker:
            tracker.finish(path, result.metrics)
        return path


def run_inline(run, on_epoch: EpochEvent | None = None) -> Path:
    """Train in this process (tests, debugging): no isolation, and peak memory is the process's."""
    return train_and_save(run.cfg, run.run_id, on_epoch)


# Ways to stop what is running now, so that Ctrl-C reaches every run of a pool:
# key -> stop(force); force=False asks politely (SIGINT, ray.cancel), force=True kills.
_LIVE: dict[object, Callable[[bool], None]] = {}
_LIVE_LOCK = threading.Lock()


def track(key: object, stop: Callable[[bool], None] | None) -> None:
    with _LIVE_LOCK:
        if stop is None:
            _LIVE.pop(key, None)
        else:
            _LIVE[key] = stop


def run_in_subprocess(run, on_epoch: EpochEvent | None = None, threads: int | None = None,
                      base_dir: str | None = None, die_with_parent: bool = False) -> Path:
    """Train in a fresh `python -m gru_lab.experiments.executor --worker`; epoch events come back as JSON lines.

    threads: TensorFlow's intra- and inter-op thread pools in the worker (None = TensorFlow's default,
    one thread a core), so that N workers side by side do not oversubscribe the cores.
    base_dir: write the run folder there instead of output.dir (see runs.save_run).
    die_with_parent: the worker is killed when this process dies (Linux), so that a Ray task killed by
    ray.cancel(force=True) leaves no training behind on CPUs Ray believes free.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # NumPy/BLAS in data generation share the same budget
    payload = json.dumps({"raw": run.raw, "run_id": run.run_id, "source": f"run {run.run_id}",
                          "threads": threads, "base_dir": base_dir, "die_with_parent": die_with_parent})
    oom_before = oom_kill_count()
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "gru_lab.experiments.executor", WORKER_FLAG],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env, text=True)
        track(proc, lambda force: _signal(proc, signal.SIGKILL if force else signal.SIGINT))
        folder: Path | None = None
        try:
            proc.stdin.write(payload)
            proc.stdin.close()
            for line in _lines(proc):
                event = _parse_event(line)
                if event is None:
                    continue
                if event.get("event") == "epoch" and on_epoch:
                    on_epoch(event)
                elif event.get("event") == "saved":
                    folder = Path(event["folder"])
            code = proc.wait()
        except BaseException:
            _stop(proc)
            raise
        finally:
            track(proc, None)
        stderr.seek(0)
        log = stderr.read().decode("utf-8", errors="replace")
    if code == 0 and folder is not None:
        return folder
    if code in (130, -signal.SIGINT):
        raise KeyboardInterrupt
    oom_after = oom_kill_count()
    oom_kills = (oom_after - oom_before) if oom_after is not None and oom_before is not None else 0
    raise RunFailed(_failure_line(code, log, oom_kills), log)


run_in_subprocess.isolation = "process"  # type: ignore[attr-defined]

LINE_TICK = 0.25  # seconds: how often _lines wakes while the worker prints nothing


def _lines(proc: subprocess.Popen, tick: float = LINE_TICK):
    """The worker's stdout, line by line as it comes, waking every `tick` seconds while nothing comes.

    A thread blocked in a plain read of the pipe runs no Python until the next line, so an exception raised in
    it from outside (Ray's cancel of the task, which is how a sweep's Ctrl-C reaches a Ray worker) would wait
    for the worker's next epoch; waking lets it land within a tick."""
    fd = proc.stdout.fileno()
    pending = b""
    while True:
        if not select.select([fd], [], [], tick)[0]:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            if pending:
                yield pending.decode("utf-8", errors="replace")
            return
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            yield line.decode("utf-8", errors="replace") + "\n"


def isolation_of(runner: Runner) -> str:
    """"process" when each run has its own worker process (peak memory per run), else "inline"."""
    return getattr(getattr(runner, "func", runner), "isolation", "inline")  # func: a functools.partial


def _signal(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:  # ended between poll and send
            pass


def _parse_event(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _stop(proc: subprocess.Popen) -> None:
    """Ctrl-C reaches the worker too (same process group); give it a moment to stop, then make sure."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _failure_line(code: int, log: str, oom_kills: int = 0) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip() and not tflogs.is_noise(ln)]
    last = lines[-1] if lines else "no error output"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        if -code == signal.SIGKILL and oom_kills > 0:
            return (f"worker killed by the kernel's out-of-memory killer ({name}); use a smaller model or batch, "
                    "or fewer --workers; last output: " + last)
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"worker killed by {name}{hint}; last output: {last}"
    return f"exit code {code}: {last}"


def oom_kill_count(cgroup: str = "/sys/fs/cgroup") -> int | None:
    """How many processes the kernel's out-of-memory killer has killed in this cgroup (v2 memory.events, v1
    memory.oom_control), or None where the kernel does not say."""
    for path, key in ((f"{cgroup}/memory.events", "oom_kill"), (f"{cgroup}/memory/memory.oom_control", "oom_kill")):
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.strip().partition(" ")
                    if name == key:
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def execute_runs(runs: list, folder: Path, runner: Runner | None = None, on_event: EventHook | None = None,
                 workers: int = 1) -> tuple[list[RunOutcome], bool]:
    """Run what is not finished yet, in plan order, `workers` at a time; (outcomes, interrupted).

    A failed run is recorded and the rest go on; Ctrl-C stops every running worker and keeps every
    finished run. With workers > 1 each run is driven by a thread of this process, and the runner
    does the work elsewhere (a worker process, a Ray task); events then come from those threads, one
    at a time.

    Events: ("reuse" | "start", run, {}), ("epoch", run, epoch info), ("finish", run, {"folder", "metrics",
    "seconds"}), ("fail", run, {"error"}).
    """
    runner = runner or run_in_subprocess
    lock = threading.Lock()

    def emit(kind: str, run, info: dict[str, Any]) -> None:
        if on_event:
            with lock:
                on_event(kind, run, info)

    outcomes = [RunOutcome(run, "not run") for run in runs]
    failures = folder / "failures"
    stopping = threading.Event()

    def attempt(outcome: RunOutcome) -> None:
        run = outcome.run
        if stopping.is_set():
            return
        done = find_finished(folder, run.run_id)
        if done is not None:
            outcome.folder, outcome.metrics = done, _load_metrics(done)
            outcome.status = "diverged" if outcome.metrics.get("status") == "diverged" else "reused"
            outcome.error = stopped_reason(outcome.metrics)
            emit("reuse", run, {"folder": done})
            return
        emit("start", run, {})
        t0 = time.perf_counter()
        try:
            path = runner(run, lambda info, run=run: emit("epoch", run, info))
        except RunFailed as exc:
            outcome.status, outcome.error = "failed", str(exc)
            outcome.log = _write_failure(failures, run, str(exc), exc.log)
        except Exception as exc:  # inline runs: one broken run must not lose the others
            outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
            outcome.log = _write_failure(failures, run, outcome.error, traceback.format_exc())
        else:
            outcome.folder, outcome.metrics = path, _load_metrics(path)
            outcome.status = "diverged" if outcome.metrics.get("status") == "diverged" else "finished"
            outcome.error = stopped_reason(outcome.metrics)
            (failures / f"{run.run_id}.log").unlink(missing_ok=True)
        outcome.seconds = time.perf_counter() - t0
        if outcome.status == "failed":
            emit("fail", run, {"error": outcome.error})
        else:
            emit("finish", run, {"folder": outcome.folder, "metrics": outcome.metrics, "seconds": outcome.seconds})

    interrupted = False
    try:
        with interrupt.remembered() as pressed:
            if workers <= 1:
                for outcome in outcomes:
                    attempt(outcome)
                    if pressed.is_set():
                        raise KeyboardInterrupt
            else:
                _run_pool(outcomes, attempt, workers, stopping, pressed)
    except KeyboardInterrupt:
        interrupted = True
    # A failure log of a run that has finished since (here or by another process) is stale.
    for outcome in outcomes:
        if outcome.folder is not None:
            (failures / f"{outcome.run.run_id}.log").unlink(missing_ok=True)
    if failures.is_dir() and not any(failures.iterdir()):
        failures.rmdir()
    return outcomes, interrupted


def _run_pool(outcomes: list[RunOutcome], attempt: Callable[[RunOutcome], None], workers: int,
              stopping: threading.Event, pressed: threading.Event | None = None) -> None:
    """attempt() each outcome on `workers` threads; Ctrl-C (here, or a worker stopped by it) stops all."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gru-lab-run")
    pending = {pool.submit(attempt, o) for o in outcomes}
    try:
        while pending:
            # A timeout keeps the main thread responsive to Ctrl-C while the threads wait on their runs.
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            if pressed is not None and pressed.is_set():
                raise KeyboardInterrupt  # pressed, though its KeyboardInterrupt was swallowed on the way
            for future in done:
                future.result()  # a run stopped by Ctrl-C re-raises KeyboardInterrupt here; a bug, its traceback
    except BaseException:
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        _stop_live(pending)
        raise
    pool.shutdown(wait=True)


def _stop_live(pending) -> None:
    """Ask every running run to stop (Ctrl-C in a terminal has reached worker processes already, a Ray
    task it has not), kill what still runs after STOP_GRACE_S, and wait for the pool's threads."""
    asked: set[int] = set()
    deadline = time.monotonic() + STOP_GRACE_S
    while any(not f.done() for f in pending):
        with _LIVE_LOCK:
            live = list(_LIVE.items())
        for key, stop in live:
            if id(key) not in asked:  # also a run that started while we were stopping
                asked.add(id(key))
                stop(False)
            elif time.monotonic() > deadline:
                stop(True)
        time.sleep(0.2)


def _load_metrics(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "metrics.json").read_text())


def _write_failure(failures: Path, run, message: str, log: str) -> Path:
    from gru_lab.files import atomic_write_text

    path = failures / f"{run.run_id}.log"
    atomic_write_text(path, f"run {run.run_id} ({run.label}) failed: {message}\n\n{log}")
    return path


def set_threads(threads: int) -> None:
    """Size TensorFlow's thread pools; only possible before TensorFlow runs its first op."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _die_with_parent() -> None:
    """SIGKILL this process when its parent dies (Linux prctl PR_SET_PDEATHSIG; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _worker() -> int:
    """One run, in its own process: the raw config and run id arrive as JSON on stdin."""
    # Ctrl-C must reach this process even when its parent blocked SIGINT (Ray's workers do, and the
    # mask is inherited): stopping a run politely is a SIGINT.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    payload = json.loads(sys.stdin.read())
    if payload.get("die_with_parent"):
        _die_with_parent()
    try:
        if payload.get("threads"):
            set_threads(int(payload["threads"]))
        cfg = config_from_raw(payload["raw"], payload.get("source", "worker"))

        def on_epoch(info: dict[str, Any]) -> None:
            print(json.dumps({"event": "epoch", **info}), flush=True)

        folder = train_and_save(cfg, payload["run_id"], on_epoch, payload.get("base_dir"))
    except GruLabError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except RunFailed as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a machine limit (out of memory, disk full) is one line; anything else a traceback
        line = machine_limit(exc)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps({"event": "saved", "folder": str(folder)}), flush=True)
    return 0


if __name__ == "__main__" and WORKER_FLAG in sys.argv[1:]:
    sys.exit(_worker())
