"""Run ids and run folders.

A run is built in a hidden `.partial-*` folder and renamed into place only when every file is
written, so `results/<name>/<run-id>/` is either complete or absent; an earlier run is never
overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from gru_lab.config import ExperimentConfig, to_yaml
from gru_lab.runs.files import atomic_write_bytes, atomic_write_json, atomic_write_text, rows_to_csv


def config_hash(cfg: ExperimentConfig) -> str:
    """A short, stable hash of the resolved config (every default filled in)."""
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
    """Collects a run's files in a hidden partial folder; commit() renames it into place.

    Used as a context manager: leaving the block with an exception removes the partial folder,
    so an error never leaves a half-written run behind.
    """

    def __init__(self, base_dir: str | Path, name: str, run_id: str):
        self.parent = Path(base_dir) / name
        self.run_id = run_id
        self.partial = self.parent / f".partial-{run_id}-{os.getpid()}"
        self.final: Path | None = None

    def __enter__(self) -> "RunFolder":
        self.parent.mkdir(parents=True, exist_ok=True)
        self.partial.mkdir()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.partial.exists():
            shutil.rmtree(self.partial, ignore_errors=True)

    def path(self, name: str) -> Path:
        return self.partial / name

    def write_text(self, name: str, text: str) -> None:
        atomic_write_text(self.partial / name, text)

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.partial / name, obj)

    def commit_record(self, metrics: dict[str, Any]) -> Path:
        """Write metrics.json last (its presence marks the record complete), rename into place, and keep
        metrics["run_id"] equal to the folder name when a clash added a suffix."""
        self.write_json("metrics.json", metrics)
        final = self.commit()
        if final.name != self.run_id:
            metrics["run_id"] = final.name
            atomic_write_json(final / "metrics.json", metrics)
        return final

    def commit(self) -> Path:
        """Rename into results/<name>/<run-id>; a clash (same second, same config) gets a suffix."""
        candidate, n = self.parent / self.run_id, 1
        while True:
            try:
                # os.rename onto an existing non-empty directory fails, so a clash can never overwrite.
                if candidate.exists():
                    raise FileExistsError(candidate)
                os.rename(self.partial, candidate)
                self.final = candidate
                return candidate
            except (FileExistsError, OSError):
                if not candidate.exists():
                    raise
                n += 1
                candidate = self.parent / f"{self.run_id}-{n}"


def save_run(cfg: ExperimentConfig, result, data, run_id: str | None = None,
             base_dir: str | Path | None = None) -> Path:
    """Write config.yaml, metrics.json, history.csv, model.keras and data artifacts; return the run folder.

    base_dir replaces output.dir (a Ray task on another machine writes to a scratch folder) without
    changing the config, and so the run's config hash.
    """
    run_id = run_id or new_run_id(cfg)
    with RunFolder(base_dir or cfg.output.dir, cfg.name, run_id) as folder:
        metrics = result.metrics  # updated in place so the caller prints the same record
        metrics.update({"run_id": run_id, "name": cfg.name, "config_hash": config_hash(cfg)})
        folder.write_text("config.yaml", to_yaml(cfg))
        folder.write_text("history.csv", rows_to_csv(result.history))
        for key, obj in data.artifacts.items():
            folder.write_json(f"{key}.json", obj)
        if cfg.output.save_model and result.model is not None:
            save_model_atomic(result.model, folder.path("model.keras"))
            metrics["model_file"] = "model.keras"
        return folder.commit_record(metrics)


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
    """The folder of a finished run with this id, if one exists (a clash suffix -2, -3 included)."""
    for candidate in [folder / run_id, *sorted(folder.glob(f"{run_id}-*"))]:
        try:
            metrics = json.loads((candidate / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        if metrics.get("status") == "finished":
            return candidate
    return None
