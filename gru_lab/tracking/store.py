"""Where runs are tracked, and a client that never stops a run: the tracking URI a config or flag asks for,
the mlflow extra's presence (a user's mistake without it: one line, exit code 2), and MLflow's client wrapped
so that a server that is down or refuses costs one warning and switches tracking off for the rest of the run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

from gru_lab.errors import GruLabError

INSTALL = "MLflow tracking needs the mlflow extra: pip install 'gru-lab[mlflow]' (or pip install 'mlflow>=3')"
LOCAL_STORE = "mlflow.db"  # the embedded store under output.dir: SQLite, what `mlflow ui` opens
ARTIFACTS = ".mlartifacts"  # its artifact root, beside it (hidden: report and the tables skip it)
# A compare's or sweep's parent MLflow run, for the runs its worker processes log (they inherit the environment).
PARENT_ENV = "GRU_LAB_MLFLOW_PARENT"
OFF_ENV = "GRU_LAB_MLFLOW_OFF"  # set by a parent whose server failed: its workers do not try again, run by run
# MLflow's HTTP client retries 7 times with backoff and waits up to 120 s a request: minutes before a run learns
# that the server is down. These are its own settings, so a user who sets them keeps theirs.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}

Warn = Callable[[str], None]


class TrackingError(GruLabError):
    """Tracking asked for where it cannot run: the mlflow extra is missing, or the URI is not one."""


def tracking_uri(setting: bool | str | None, output_dir: str | Path) -> str | None:
    """The tracking URI output.mlflow (or --mlflow) asks for; None when tracking is off.

    true: $MLFLOW_TRACKING_URI when set, else the local store <output.dir>/mlflow.db (absolute, so worker
    processes and `mlflow ui` find the same one). A string is a URI (http://host:5000, sqlite:///x.db, or a
    folder, which gets the local store's layout)."""
    if setting is None or setting is False:
        return None
    if setting is True:
        env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
        return env or local_store(output_dir)
    value = str(setting).strip()
    if not value:
        raise TrackingError("output.mlflow: an empty tracking URI; use true (the local store) or a URI such as "
                            "http://127.0.0.1:5000.")
    if "://" not in value and not value.startswith(("sqlite:", "file:", "databricks")):
        return local_store(value)
    return value


def local_store(folder: str | Path) -> str:
    return f"sqlite:///{(Path(folder) / LOCAL_STORE).resolve()}"


def artifact_root(uri: str) -> str | None:
    """Where a local SQLite store keeps its artifacts (beside the database, not MLflow's default ./mlruns in
    whatever folder the command ran from); None for a server, which has its own."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / ARTIFACTS).resolve().as_uri()
    return None


def require_mlflow() -> None:
    """A TrackingError (exit code 2) saying how to install the extra when mlflow cannot be imported."""
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        raise TrackingError(INSTALL)


def quiet_mlflow() -> None:
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    import mlflow  # noqa: F401  (its import sets its loggers' levels: ours come after)

    # MLflow logs its database migrations and model-signature hints at INFO/WARNING on every first use, and the
    # failures of its background logging at ERROR: Store.fail says those once, in one line.
    logging.getLogger("mlflow").setLevel(logging.CRITICAL)
    logging.getLogger("alembic").setLevel(logging.ERROR)


class Store:
    """MLflow's client for one tracking URI. Every call goes through call(): the first failure is one warning
    (warn) and turns the store off, so that the run goes on, recorded in its folder as always."""

    def __init__(self, uri: str, warn: Warn | None = None):
        self.uri = uri
        self.warn = warn
        self.problem: str | None = os.environ.get(OFF_ENV) or None
        self._client = None

    @property
    def on(self) -> bool:
        return self.problem is None

    @property
    def client(self):
        if self._client is None:
            quiet_mlflow()
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def call(self, what: str, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """fn(*args, **kwargs), or None once tracking has failed (the first failure warns)."""
        if not self.on:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # a server down, refusing, or a store that cannot be written: never the run's end
            self.fail(what, exc)
            return None

    def fail(self, what: str, exc: BaseException) -> None:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        self.problem = f"MLflow tracking at {self.uri} failed {what} ({type(exc).__name__}: {first[:160]})"
        if self.warn:
            self.warn(f"{self.problem}; tracking is off for the rest of this run, which goes on and is kept in its "
                      f"folder: `gru-lab report <results> --mlflow {self.uri}` logs it later.")

    def experiment_id(self, name: str) -> str | None:
        """The experiment of that name, created (with the local store's artifact root) when missing."""

        def find_or_create() -> str:
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                return found.experiment_id
            try:
                return self.client.create_experiment(name, artifact_location=artifact_root(self.uri))
            except Exception:  # another worker created it between the two calls
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise
                return found.experiment_id

        return self.call(f"opening experiment {name!r}", find_or_create)
