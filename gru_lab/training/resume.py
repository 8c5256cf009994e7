"""A run's resume state: written after every finished epoch inside the run's unfinished folder, read back
to continue the run where it stopped, with the numbers an uninterrupted run gives.

What makes the continuation exact (tests/training/test_resume.py compares histories to 1e-5):
- every variable of the model (weights, and the state of the seed generators that draw dropout masks)
  and of the optimizer (its step count and slots), saved as arrays, not through a model file;
- early stopping's state (best value, best epoch, epochs waited, the best weights it would restore);
- the shuffled order of the epochs to come: the train pipeline draws a fresh seeded order each time an
  iterator is made (one per epoch), so a resumed run makes k iterators first and epoch k+1 gets its own
  order (training.fit does that);
- the history and timing rows of the finished epochs.

Layout: resume/state.json names the arrays files of the epoch it describes (variables-<epoch>.npz,
best-<epoch>.npz); each file is written to a temporary name and renamed, state.json last, so a kill at
any moment leaves the previous epoch's state or the new one, never a mix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STATE_DIR = "resume"
STATE_FILE = "state.json"
VERSION = 1


@dataclass
class SavedState:
    folder: Path
    epochs_done: int
    complete: bool  # training has ended (every epoch ran, or early stopping stopped it): evaluate next
    history: list[dict[str, float]]
    fit_seconds: float
    variables: str  # file name under folder
    early_stopping: dict[str, Any] | None = None
    resumed: list[dict[str, Any]] = field(default_factory=list)


def state_folder(workdir: Path) -> Path:
    return Path(workdir) / STATE_DIR


def load_state(workdir: Path | None) -> SavedState | None:
    """The state a run saved in workdir, or None when it saved none (or it cannot be read)."""
    if workdir is None:
        return None
    folder = state_folder(workdir)
    try:
        raw = json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if raw.get("version") != VERSION or not (folder / raw.get("variables", "")).is_file():
        return None
    return SavedState(folder, int(raw["epochs_done"]), bool(raw["complete"]), raw["history"],
                      float(raw["fit_seconds"]), raw["variables"], raw.get("early_stopping"),
                      raw.get("resumed", []))


def _arrays(variables) -> list[np.ndarray]:
    return [np.asarray(v.numpy() if hasattr(v, "numpy") else v) for v in variables]


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from gru_lab.files import atomic_writer

    with atomic_writer(path) as fh:
        np.savez(fh, **arrays)


def save_state(workdir: Path, model, epochs_done: int, complete: bool, history: list[dict[str, float]],
               fit_seconds: float, early_stopping=None, resumed: list[dict[str, Any]] | None = None) -> None:
    """Write the state after `epochs_done` finished epochs (see the module docstring)."""
    from gru_lab.files import atomic_write_json

    folder = state_folder(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    previous = load_state(workdir)
    variables = f"variables-{epochs_done}.npz"
    arrays = {f"m{i}": a for i, a in enumerate(_arrays(model.variables))}
    arrays.update({f"o{i}": a for i, a in enumerate(_arrays(model.optimizer.variables))})
    _write_npz(folder / variables, arrays)
    es_state = None
    if early_stopping is not None:
        es_state = early_stopping.get_state()
        kept = (previous.early_stopping or {}) if previous else {}
        if early_stopping.best_weights is not None and kept.get("best_epoch") != es_state["best_epoch"]:
            best = f"best-{epochs_done}.npz"
            _write_npz(folder / best, {f"w{i}": np.asarray(a) for i, a in enumerate(early_stopping.best_weights)})
            es_state["best_file"] = best
        else:
            es_state["best_file"] = kept.get("best_file")
    atomic_write_json(folder / STATE_FILE, {
        "version": VERSION, "epochs_done": epochs_done, "complete": complete, "history": history,
        "fit_seconds": fit_seconds, "variables": variables, "early_stopping": es_state, "resumed": resumed or []})
    keep = {STATE_FILE, variables, (es_state or {}).get("best_file")}
    for path in folder.iterdir():
        if path.name not in keep and not path.name.startswith("."):
            path.unlink(missing_ok=True)


def restore(model, state: SavedState, early_stopping=None) -> None:
    """Put the saved variables back into a freshly built, compiled model (its optimizer built here), and
    early stopping's state into its callback (applied when training begins)."""
    with np.load(state.folder / state.variables) as saved:
        model_values = [saved[f"m{i}"] for i in range(len(model.variables))]
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        optimizer_values = [saved[f"o{i}"] for i in range(len(model.optimizer.variables))]
    for variable, value in zip(model.variables, model_values):
        variable.assign(value)
    for variable, value in zip(model.optimizer.variables, optimizer_values):
        variable.assign(value)
    if early_stopping is not None and state.early_stopping is not None:
        best = None
        if state.early_stopping.get("best_file"):
            with np.load(state.folder / state.early_stopping["best_file"]) as saved:
                best = [saved[f"w{i}"] for i in range(len(saved.files))]
        early_stopping.set_state(state.early_stopping, best)


def restore_weights(model, state: SavedState) -> None:
    """Only the model's variables, as they were after the last finished epoch (an interrupted run's model)."""
    with np.load(state.folder / state.variables) as saved:
        for i, variable in enumerate(model.variables):
            variable.assign(saved[f"m{i}"])
