"""A finished run folder, opened for predict and export: its config, metrics, `inputs` description and model.

Every way a path can be the wrong thing (a config file, a folder that is not a run, a run that did not finish,
one saved without its model) is one RunError line that says what to pass instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gru_lab.config import ExperimentConfig, load_config
from gru_lab.errors import RunError

MODEL_FILE = "model.keras"


@dataclass
class Run:
    folder: Path
    cfg: ExperimentConfig
    metrics: dict[str, Any]
    inputs: dict[str, Any]  # inputs.json: what the model reads, and how to read it from a file

    @property
    def label(self) -> str:
        return f"{self.cfg.name}/{self.folder.name}"


def open_run(path: str | Path, command: str) -> Run:
    """The run at path, checked: a finished run folder with its model; a RunError line otherwise."""
    path = Path(path)
    if path.is_file():
        if (path.parent / "metrics.json").is_file():
            raise RunError(f"{path}: is a file of a run folder; pass the folder itself: {path.parent}")
        if path.suffix.lower() in (".yaml", ".yml"):
            raise RunError(f"{path}: is a config file, not a run folder; train it first (gru-lab train {path}) "
                           f"and pass the run folder it prints, results/<name>/<run-id>/, to {command}.")
        raise RunError(f"{path}: is a file, not a run folder; expected results/<name>/<run-id>/ from `gru-lab train`.")
    if not path.is_dir():
        raise RunError(f"{path}: run folder not found; expected results/<name>/<run-id>/ from `gru-lab train`.")
    for name in ("config.yaml", "metrics.json"):
        if not (path / name).is_file():
            raise RunError(f"{path}: not a finished run folder ({name} is missing); expected "
                           "results/<name>/<run-id>/ from `gru-lab train`.")
    try:
        metrics = json.loads((path / "metrics.json").read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"{path / 'metrics.json'}: unreadable ({exc.__class__.__name__}).") from None
    status = metrics.get("status")
    if status != "finished":
        from gru_lab.runs.records import stopped_reason

        why = stopped_reason(metrics) or ("interrupted before its first epoch finished: there is no trained model"
                                          if status == "interrupted" and not metrics.get("epochs_run") else None)
        raise RunError(f"{path}: the run's status is {status!r}, not 'finished'{f' ({why})' if why else ''}; "
                       f"{command} needs a finished run's model (train again, or resume the run until it finishes).")
    if not (path / MODEL_FILE).is_file():
        raise RunError(f"{path}: {MODEL_FILE} is missing (the run had output.save_model: false); retrain to {command}.")
    cfg = load_config(path / "config.yaml")
    return Run(path, cfg, metrics, _inputs(path, cfg))


def _inputs(folder: Path, cfg: ExperimentConfig) -> dict[str, Any]:
    """inputs.json; for runs written before it existed, the same description from their other files."""
    path = folder / "inputs.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise RunError(f"{path}: unreadable ({exc.__class__.__name__}).") from None
    if cfg.data.name in ("series", "text"):
        raise RunError(f"{folder}: inputs.json is missing; the run cannot say what its model reads.")
    from gru_lab.data import describe_inputs, spec_for

    return describe_inputs(spec_for(cfg.data), imdb_vocabulary=(folder / "vocabulary.json").is_file())


def imdb_vocabulary(run: Run) -> dict[str, Any]:
    path = run.folder / run.inputs.get("vocabulary", "vocabulary.json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: unreadable vocabulary ({exc.__class__.__name__}).") from None


def load_model(run: Run):
    """The run's model.keras. Runs saved before models were stock Keras name gru-lab's layers: registering
    them (importing gru_lab.rnn.layers) lets those load too."""
    import keras

    import gru_lab.models.pooling  # noqa: F401  model.pooling's layer, which has no stock Keras twin
    import gru_lab.rnn.layers  # noqa: F401

    try:
        return keras.saving.load_model(run.folder / MODEL_FILE)
    except (OSError, ValueError) as exc:
        raise RunError(f"{run.folder / MODEL_FILE}: cannot be loaded ({exc.__class__.__name__}: "
                       f"{' '.join(str(exc).split())[:200]}).") from None
