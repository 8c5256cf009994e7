"""Run ids, run folders and atomic writes.

A run is built in a hidden `.partial-*` folder and renamed into place only when every file is
written, so `results/<name>/<run-id>/` is either complete or absent; an earlier run is never
overwritten.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from gru_lab.config import ExperimentConfig, load_config, to_yaml
from gru_lab.errors import RunError

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: os.umask can only be read by setting it

RECORD_FILES = ("config.yaml", "metrics.json", "history.csv")


def config_hash(cfg: ExperimentConfig) -> str:
    """A short, stable hash of the resolved config (every default filled in)."""
    return hashlib.sha256(to_yaml(cfg).encode()).hexdigest()[:10]


def new_run_id(cfg: ExperimentConfig) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{config_hash(cfg)[:6]}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes 0600 files; a result file should be as readable as any file the user writes.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


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


def save_run(cfg: ExperimentConfig, result, data, run_id: str | None = None, base_dir: str | Path | None = None) -> Path:
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


def metric_of(task: str) -> tuple[str, bool]:
    """(test metric shown in tables, higher is better) for a task."""
    return ("accuracy", True) if task in ("binary", "multiclass") else ("mse", False)


def measured(m: dict[str, Any], task: str) -> dict[str, Any]:
    """The numbers a table shows for one run, from its metrics.json (empty values when it has none)."""
    metric, _ = metric_of(m.get("task") or task)
    params = m.get("params") or {}
    memory = m.get("peak_memory") or {}
    return {
        "metric": f"test_{metric}", "value": (m.get("test") or {}).get(metric),
        "baseline_mse": (m.get("data") or {}).get("baseline_mse"),
        "s_per_epoch": m.get("median_epoch_seconds"), "fit_seconds": m.get("fit_seconds"),
        "train_samples_per_s": m.get("train_samples_per_second"),
        "infer_samples_per_s": m.get("inference_samples_per_second"),
        "infer_ms_per_sample": m.get("inference_ms_per_sample"),
        "best_epoch": m.get("best_epoch"), "epochs_run": m.get("epochs_run"),
        "params_total": params.get("total"), "params_recurrent": params.get("recurrent"),
        "peak_rss_mib": memory.get("rss_mib"), "peak_gpu_mib": memory.get("gpu_mib"),
    }


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """metrics.json of a finished run folder."""
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def load_for_prediction(run_dir: str | Path):
    """(config, keras model, vocabulary) of a finished token run, or a RunError saying what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: run folder not found; expected results/<name>/<run-id>/ from `gru-lab train`.")
    for name in ("config.yaml", "metrics.json"):
        if not (run_dir / name).is_file():
            raise RunError(f"{run_dir}: not a finished run folder ({name} is missing).")
    cfg = load_config(run_dir / "config.yaml")
    vocab_path = run_dir / "vocabulary.json"
    if not vocab_path.is_file():
        raise RunError(f"{run_dir}: predict needs a text model's vocabulary.json; this run trained on "
                       f"'{cfg.data.name}', which has no text to encode.")
    if not (run_dir / "model.keras").is_file():
        raise RunError(f"{run_dir}: model.keras is missing (the run had output.save_model: false); retrain to predict.")
    try:
        vocabulary = json.loads(vocab_path.read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"{vocab_path}: unreadable vocabulary ({exc}).") from None
    import keras

    import gru_lab.fastrnn  # noqa: F401  registers gru_lab>GRU/LSTM/SimpleRNN, which model.keras may name

    model = keras.saving.load_model(run_dir / "model.keras")
    return cfg, model, vocabulary


def find_run_folders(root: str | Path) -> list[Path]:
    """Every run folder under root (one holding metrics.json), hidden partial folders skipped, sorted."""
    root = Path(root)
    found = []
    for metrics in root.rglob("metrics.json"):
        folder = metrics.parent
        if not any(part.startswith(".") for part in folder.relative_to(root).parts):
            found.append(folder)
    return sorted(found)
