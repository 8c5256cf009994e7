"""Run ids and run folders.

A run is built in a hidden unfinished folder (`.partial-<run-id>-*`), created before training, and
renamed into place only when every file is written, so `results/<name>/<run-id>/` is either complete
or absent; an earlier run is never overwritten. While the run trains, the unfinished folder holds
run.json (its id and config hash), config.yaml, a lock (held by the process that trains it) and the
resume state after every finished epoch (training.resume), so a killed run can be continued:
`gru-lab train --resume`, or compare and sweep on a re-run. An unfinished folder with nothing to
resume is removed when its run stops; one older than a finished run of the same config is stale and
removed when that run is committed; `gru-lab report` lists the rest (and `--clean` removes them).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gru_lab.config import ExperimentConfig, to_yaml
from gru_lab.errors import MachineError
from gru_lab.files import UMASK, atomic_write_bytes, atomic_write_json, atomic_write_text, rows_to_csv
from gru_lab.runs.curves import write_learning_curves

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locks, so in_use() cannot see another process's training
    fcntl = None

PARTIAL = ".partial-"  # prefix of unfinished run folders (hidden: report and the tables skip them)
LOCK = ".lock"
RESUME_STATE = "resume"  # training.resume.STATE_DIR: the per-epoch state, dropped when the run is committed
DONE = ("finished", "diverged")  # a run with one of these statuses is a result: reused, never redone
EVALUATION = "evaluation"  # a finished run's evaluation of its test split (inference.evaluate)


def config_hash(cfg: ExperimentConfig) -> str:
    """A short, stable hash of the resolved config (every default filled in). Where a run is tracked
    (output.mlflow) is not part of it: switching tracking on reuses the finished runs of a compare or sweep."""
    if cfg.output.mlflow is not False:
        cfg = cfg.model_copy(update={"output": cfg.output.model_copy(update={"mlflow": False})})
    return hashlib.sha256(to_yaml(cfg).encode()).hexdigest()[:10]


def new_run_id(cfg: ExperimentConfig) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{config_hash(cfg)[:6]}"


def save_model_atomic(model, path: Path) -> None:
    # Keras insists on the .keras suffix, so the temporary file keeps it.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class RunFolder:
    """Collects a run's files in a hidden unfinished folder; commit() renames it into place.

    Used as a context manager, which creates the folder (and, with cfg, writes run.json and config.yaml
    and takes the lock): a folder that cannot be created or written is a MachineError (exit code 2)
    before anything runs. Leaving the block without a commit removes the folder unless it holds a resume
    state: an error never leaves a half-written run behind, and a stopped run keeps its finished epochs.
    `partial` opens an existing unfinished folder (a run being resumed) instead of a new one.
    """

    def __init__(self, base_dir: str | Path, name: str, run_id: str, cfg: ExperimentConfig | None = None,
                 partial: Path | None = None):
        self.parent = Path(base_dir) / name
        self.run_id = run_id
        self.cfg = cfg
        self.partial = partial
        self.resumed = partial is not None
        self.final: Path | None = None
        self._lock = None
        self._created = False
        self._made: list[Path] = []  # folders above the run's that entering made, deepest first

    def __enter__(self) -> "RunFolder":
        try:
            missing = self.parent
            while not missing.exists() and missing != missing.parent:
                self._made.append(missing)
                missing = missing.parent
            self.parent.mkdir(parents=True, exist_ok=True)
            if self.partial is None:
                self.partial = Path(tempfile.mkdtemp(prefix=f"{PARTIAL}{self.run_id}-", dir=self.parent))
                self._created = True
                os.chmod(self.partial, 0o777 & ~UMASK)  # mkdtemp makes 0700; a run folder is as readable as any
            if not lock(self):
                raise MachineError(f"{self.partial}: another process is training this run; wait for it to end.")
            if self.cfg is not None and not self.resumed:
                atomic_write_text(self.partial / "config.yaml", to_yaml(self.cfg))
                atomic_write_json(self.partial / "run.json", {"run_id": self.run_id,
                                                              "config_hash": config_hash(self.cfg),
                                                              "started": time.time()})
        except OSError as exc:
            if self._created:
                self._discard()
            self._unlock()
            where = self.partial or self.parent
            raise MachineError(f"{where}: cannot create the run folder ({exc.strerror or exc}); set output.dir "
                               "to a folder you can write (--set output.dir=...).") from None
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.final is None and not (self.partial / RESUME_STATE / "state.json").is_file():
            self._discard()
        self._unlock()

    def _discard(self) -> None:
        """Remove the unfinished folder, and the empty folders above it that entering made: a run stopped by
        a mistake (data not found) leaves nothing behind."""
        if self.partial is not None and self.partial.exists():
            shutil.rmtree(self.partial, ignore_errors=True)
        for folder in self._made:
            try:
                folder.rmdir()
            except OSError:  # not empty: another run writes there now
                break
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the lock
            self._lock = None

    @property
    def workdir(self) -> Path:
        """Where training writes while it runs (training.fit.train's workdir)."""
        return self.partial

    def path(self, name: str) -> Path:
        return self.partial / name

    def write_text(self, name: str, text: str) -> None:
        atomic_write_text(self.partial / name, text)

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.partial / name, obj)

    def commit_record(self, metrics: dict[str, Any]) -> Path:
        """Write metrics.json last (its presence marks the record complete), rename into place, and keep
        metrics["run_id"] equal to the folder name when a clash added a suffix. The record of this same run
        stopped with Ctrl-C (status interrupted, same run id and config) is replaced: one run, one folder."""
        self.write_json("metrics.json", metrics)
        final = self.commit(replaces=lambda found: _interrupted_record_of(found, metrics))
        if final.name != self.run_id:
            metrics["run_id"] = final.name
            atomic_write_json(final / "metrics.json", metrics)
        return final

    def commit(self, replaces=None) -> Path:
        """Rename into results/<name>/<run-id>; a clash (same second, same config) gets a suffix, unless
        replaces(existing folder) says the folder there is an earlier record of this same run: it is moved
        aside (hidden), this one renamed into place, then the old one removed. The resume state and run.json
        are not part of the record; the lock goes with the folder and is removed after."""
        shutil.rmtree(self.partial / RESUME_STATE, ignore_errors=True)
        (self.partial / "run.json").unlink(missing_ok=True)
        candidate, n = self.parent / self.run_id, 1
        if replaces is not None and candidate.is_dir() and replaces(candidate):
            aside = candidate.with_name(f".replaced-{candidate.name}-{os.getpid()}")
            os.rename(candidate, aside)
            try:
                os.rename(self.partial, candidate)
            except OSError:
                os.rename(aside, candidate)
                raise
            shutil.rmtree(aside, ignore_errors=True)
            self.final = candidate
            (candidate / LOCK).unlink(missing_ok=True)
            self._unlock()
            return candidate
        while True:
            try:
                # os.rename onto an existing non-empty directory fails, so a clash can never overwrite.
                if candidate.exists():
                    raise FileExistsError(candidate)
                os.rename(self.partial, candidate)
                self.final = candidate
                break
            except (FileExistsError, OSError):
                if not candidate.exists():
                    raise
                n += 1
                candidate = self.parent / f"{self.run_id}-{n}"
        (candidate / LOCK).unlink(missing_ok=True)
        self._unlock()
        return candidate


def _interrupted_record_of(found: Path, metrics: dict[str, Any]) -> bool:
    """Whether the record in found is this run's, stopped with Ctrl-C: status interrupted, same id and config."""
    try:
        old = json.loads((found / "metrics.json").read_text())
    except (OSError, ValueError):
        return False
    return (old.get("status") == "interrupted" and old.get("run_id") == metrics.get("run_id")
            and old.get("config_hash") == metrics.get("config_hash"))


def lock(folder: RunFolder) -> bool:
    """Take the folder's lock (held until the process ends or the folder is committed); False when another
    process holds it."""
    if fcntl is None:
        return True
    handle = open(folder.partial / LOCK, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return False
    folder._lock = handle
    return True


def in_use(partial: Path) -> bool:
    """Whether a process holds this unfinished folder's lock (it is training there now)."""
    if fcntl is None or not (partial / LOCK).exists():
        return False
    try:
        with open(partial / LOCK, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return True
    return False


@dataclass
class Unfinished:
    """An unfinished run folder, as found on disk."""

    path: Path
    run_id: str | None
    config_hash: str | None
    epochs_done: int  # finished epochs its resume state holds (0: nothing to resume)
    updated: float  # when it last saved (or was created)
    in_use: bool  # a process is training there now
    stale: bool = False  # a finished run of the same config is newer: resuming it would redo that run


def unfinished_folders(parent: Path) -> list[Unfinished]:
    """Every unfinished run folder directly under parent (results/<name>/), newest first.

    Other processes commit (rename) and remove these folders while this one lists them (a sweep's runs start
    beside each other's commits): a folder gone before it was read is not listed."""
    found = []
    for path in sorted(Path(parent).glob(f"{PARTIAL}*")):
        try:
            if not path.is_dir():
                continue
            try:
                meta = json.loads((path / "run.json").read_text())
            except (OSError, ValueError):
                meta = {}
            state = path / RESUME_STATE / "state.json"
            try:
                epochs = int(json.loads(state.read_text())["epochs_done"])
                updated = state.stat().st_mtime
            except (OSError, ValueError, KeyError, TypeError):
                epochs, updated = 0, path.stat().st_mtime
        except FileNotFoundError:  # committed or removed since the listing
            continue
        found.append(Unfinished(path, meta.get("run_id"), meta.get("config_hash"), epochs, updated, in_use(path)))
    finished = _finished_by_hash(parent)
    for u in found:
        u.stale = u.config_hash is not None and finished.get(u.config_hash, 0.0) > u.updated
    return sorted(found, key=lambda u: u.updated, reverse=True)


def _finished_by_hash(parent: Path) -> dict[str, float]:
    """config hash -> when the newest finished run (a result: finished or diverged) of it was written."""
    newest: dict[str, float] = {}
    for metrics in Path(parent).glob("*/metrics.json"):
        if metrics.parent.name.startswith("."):  # an unfinished folder (its record is written just before the rename)
            continue
        try:
            m = json.loads(metrics.read_text())
            written = metrics.stat().st_mtime
        except (OSError, ValueError):  # unreadable, or replaced since the listing (a re-run's record)
            continue
        if m.get("status") in DONE and m.get("config_hash"):
            newest[m["config_hash"]] = max(newest.get(m["config_hash"], 0.0), written)
    return newest


def resumable(parent: Path, digest: str, run_id: str | None = None) -> Unfinished | None:
    """The newest unfinished folder of this config (and run id, when given) with epochs to resume from,
    not in use and not stale."""
    for u in unfinished_folders(parent):
        if u.config_hash == digest and (run_id is None or u.run_id == run_id) and u.epochs_done > 0 \
                and not u.in_use and not u.stale:
            return u
    return None


def open_run(cfg: ExperimentConfig, run_id: str | None = None, base_dir: str | Path | None = None,
             resume: bool = False) -> RunFolder:
    """The run folder a training writes into (not yet entered): with resume, the newest resumable
    unfinished folder of this config (and run_id, when given) if there is one, else a new one."""
    parent = Path(base_dir or cfg.output.dir) / cfg.name
    found = resumable(parent, config_hash(cfg), run_id) if resume and parent.is_dir() else None
    if found is not None:
        return RunFolder(base_dir or cfg.output.dir, cfg.name, found.run_id or run_id or new_run_id(cfg), cfg,
                         partial=found.path)
    return RunFolder(base_dir or cfg.output.dir, cfg.name, run_id or new_run_id(cfg), cfg)


def remove_stale(parent: Path, digest: str) -> int:
    """Remove the unfinished folders of this config that a finished run has made stale; how many."""
    removed = 0
    for u in unfinished_folders(parent):
        if u.config_hash == digest and u.stale and not u.in_use:
            shutil.rmtree(u.path, ignore_errors=True)
            removed += 1
    return removed


def save_run(cfg: ExperimentConfig, result, data, run_id: str | None = None,
             base_dir: str | Path | None = None, folder: RunFolder | None = None) -> Path:
    """Write config.yaml, metrics.json, history.csv, model.keras, learning_curves.png, the data artifacts
    (inputs.json, vocabulary.json) and the TensorBoard logs a scratch folder holds; return the run folder.

    folder: the run's unfinished folder (open_run, already entered), committed with the record; None = a
    new one. base_dir replaces output.dir (a Ray task on another machine writes to a scratch folder)
    without changing the config, and so the run's config hash.
    """
    if folder is None:
        with RunFolder(base_dir or cfg.output.dir, cfg.name, run_id or new_run_id(cfg)) as new:
            return save_run(cfg, result, data, folder=new)
    metrics = result.metrics  # updated in place so the caller prints the same record
    metrics.update({"run_id": folder.run_id, "name": cfg.name, "config_hash": config_hash(cfg)})
    folder.write_text("config.yaml", to_yaml(cfg))
    folder.write_text("history.csv", rows_to_csv(result.history))
    for key, obj in data.artifacts.items():
        folder.write_json(f"{key}.json", obj)
    if cfg.output.save_model and result.model is not None:
        from gru_lab.rnn.portable import stock_copy

        # Stock Keras layers, same weights: plain Keras loads model.keras where gru-lab is not installed.
        save_model_atomic(stock_copy(result.model, steps=data.spec.timesteps), folder.path("model.keras"))
        metrics["model_file"] = "model.keras"
    write_learning_curves(result.history, metrics.get("task", ""), f"{cfg.name} - {folder.run_id}",
                          folder.path("learning_curves.png"))
    if cfg.output.evaluation and getattr(result, "test_predictions", None) is not None \
            and metrics.get("status") == "finished":
        write_test_evaluation(folder.path(EVALUATION), cfg, data, result.test_predictions, metrics)
    scratch = getattr(result, "scratch", None)  # files written during training without a workdir (tensorboard/)
    if scratch is not None:
        if (scratch / "tensorboard").is_dir() and not folder.path("tensorboard").exists():
            shutil.copytree(scratch / "tensorboard", folder.path("tensorboard"))
        shutil.rmtree(scratch, ignore_errors=True)
    final = folder.commit_record(metrics)
    if metrics.get("status") in DONE:
        remove_stale(folder.parent, config_hash(cfg))
    return final


def write_test_evaluation(path: Path, cfg: ExperimentConfig, data, predictions, metrics: dict[str, Any]) -> None:
    """evaluation/ for the test split, from the predictions training made: like learning_curves.png, part of
    every finished run's record (inference.evaluate computes it, report.evaluation draws it; imported here, one
    layer up, because the record is written here). Its seconds go into metrics.json."""
    from gru_lab.inference.evaluate import write_run_evaluation

    started = time.perf_counter()
    write_run_evaluation(path, data, predictions, data.artifacts.get("inputs") or {}, f"{cfg.name}")
    metrics["evaluation_seconds"] = round(time.perf_counter() - started, 3)


def save_failure(cfg: ExperimentConfig, folder: RunFolder, error: str) -> Path:
    """Commit the record of a run that failed before training (out of memory loading its data): its config
    and status "failed" with the reason, nothing else."""
    folder.write_text("config.yaml", to_yaml(cfg))
    return folder.commit_record({"status": "failed", "error": error, "seed": cfg.train_seed, "epochs_run": 0,
                                 "run_id": folder.run_id, "name": cfg.name, "config_hash": config_hash(cfg)})


def run_files(folder: Path) -> dict[str, bytes]:
    """Every file of a finished run folder, by relative path: a run shipped from another machine."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def save_run_files(base_dir: str | Path, name: str, run_id: str, files: dict[str, bytes]) -> Path:
    """Write a run made elsewhere (run_files) as <base_dir>/<name>/<run-id>/, as atomically as save_run."""
    with RunFolder(base_dir, name, run_id) as folder:
        for rel, data in files.items():
            if rel != "metrics.json":
                atomic_write_bytes(folder.path(rel), data)
        return folder.commit_record(json.loads(files["metrics.json"]))


def find_finished(folder: Path, run_id: str) -> Path | None:
    """The folder of a finished run with this id, if one exists (a clash suffix -2, -3 included); a diverged
    run is finished too: the same config and seed diverge again."""
    for candidate in [folder / run_id, *sorted(folder.glob(f"{run_id}-*"))]:
        try:
            metrics = json.loads((candidate / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        if metrics.get("status") in DONE:
            return candidate
    return None


def check_writable(parent: Path) -> None:
    """Refuse (MachineError, exit code 2) an output folder that cannot be created or written, before a
    command that writes many runs there starts any of them."""
    try:
        Path(parent).mkdir(parents=True, exist_ok=True)
        Path(tempfile.mkdtemp(prefix=".write-check-", dir=parent)).rmdir()
    except OSError as exc:
        raise MachineError(f"{parent}: cannot create or write the results folder ({exc.strerror or exc}); set "
                           "output.dir to a folder you can write (--set output.dir=...).") from None


def all_unfinished(root: Path) -> list[Unfinished]:
    """Every unfinished run folder under root (results/ or one results/<name>/), newest first."""
    parents = {p.parent for p in Path(root).rglob(f"{PARTIAL}*")
               if p.is_dir() and not any(part.startswith(PARTIAL) for part in p.parent.relative_to(root).parts)}
    found = [u for parent in parents for u in unfinished_folders(parent)]
    return sorted(found, key=lambda u: u.updated, reverse=True)


def remove_unfinished(root: Path) -> tuple[int, int]:
    """Remove every unfinished run folder under root that no process is training in: (removed, left in use)."""
    removed = in_use_left = 0
    for u in all_unfinished(root):
        if u.in_use:
            in_use_left += 1
        else:
            shutil.rmtree(u.path, ignore_errors=True)
            removed += 1
    return removed, in_use_left
