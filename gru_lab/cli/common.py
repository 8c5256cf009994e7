"""What every command module shares: the two consoles, the options several commands take, a user's mistake as
one line and its exit code, and the checks made before anything runs (memory, tracking, a writable results
folder, the compiled loops)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from gru_lab.errors import GruLabError, machine_limit

out = Console()
err = Console(stderr=True)
for _console in (out, err):
    # Piped into a file or a CI log there is no terminal width to respect; 80 columns would fold tables.
    if not _console.is_terminal:
        _console.width = max(_console.width, 120)

SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override a config key, e.g. --set model.units=64 (repeatable)."),
]
MlflowOption = Annotated[Optional[str], typer.Option(
    "--mlflow", help="Also log to MLflow (the mlflow extra): a tracking URI such as http://127.0.0.1:5000, or true "
                     "for $MLFLOW_TRACKING_URI or else the local store <output.dir>/mlflow.db (output.mlflow).",
    show_default=False)]


def user_errors(fn: Callable) -> Callable:
    """A GruLabError becomes one line on stderr and its exit code (2: a user's mistake); a limit of the machine
    (out of memory, disk full, no permission) one line and exit code 1; anything else stays a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GruLabError as exc:
            _error_line(str(exc))
            raise typer.Exit(code=exc.exit_code) from None
        except Exception as exc:
            line = machine_limit(exc)
            if line is None:
                raise
            _error_line(line)
            raise typer.Exit(code=1) from None

    return wrapper


def _error_line(text: str) -> None:
    # escape: a message may hold brackets that rich would read as markup (pip install 'gru-lab[ray]')
    err.print(f"[bold red]error:[/] {escape(text)}", markup=True, highlight=False, soft_wrap=True)


def warn(line: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


def load(config: Optional[Path], overrides: Optional[list[str]]):
    """The config at CONFIG (omitted: the embedded default) with the --set overrides."""
    from gru_lab.config import EMBEDDED_DEFAULT, load_config

    return load_config(config or EMBEDDED_DEFAULT, overrides or [])


def with_mlflow(set_: Optional[list[str]], mlflow: Optional[str]) -> Optional[list[str]]:
    """--mlflow URI is output.mlflow=URI; it is not part of a run's id (runs.folder.config_hash)."""
    return set_ if mlflow is None else [*(set_ or []), f"output.mlflow={mlflow}"]


def tracking_first(cfg) -> None:
    """Tracking asked for without the mlflow extra: one line and exit code 2, before anything runs or builds."""
    from gru_lab.tracking.store import require_mlflow, tracking_uri

    if tracking_uri(cfg.output.mlflow, cfg.output.dir):
        require_mlflow()


def preflight(cfgs, concurrent: int = 1, what: str = "this run") -> None:
    """Refuse runs that cannot fit in memory (exit code 2), warn about runs that may not; before anything runs."""
    from gru_lab.training import memory

    warning = memory.preflight(cfgs, concurrent, what)
    if warning:
        warn(warning)


def compiled_loops_first(cfgs) -> None:
    """Build gru-lab's compiled loops before the runs that want them, saying so once (later runs find them
    built, or their failure remembered); without this the first epoch would silently include the build."""
    from gru_lab.training.device import build_compiled_loops

    def notify(line: str) -> None:
        err.print(f"gru-lab: {line}", markup=False, highlight=False, soft_wrap=True)

    why = build_compiled_loops(cfgs, notify)
    if why:
        notify(f"compiled loops not built: {why}; the fused TensorFlow loops run instead")


def before_runs(plan, concurrent: int) -> None:
    """Before any run of a compare, sweep or tune starts: a results folder that cannot be written and runs that
    cannot fit in memory are refused (exit code 2)."""
    from gru_lab.runs.folder import check_writable

    preflight([r.cfg for r in plan.runs], concurrent, "the largest run")
    check_writable(plan.folder)
    compiled_loops_first(r.cfg for r in plan.runs)


def tensorboard_line(logdir: Path, what: str) -> None:
    """How to open the event files output.tensorboard wrote (and how to get TensorBoard where it is missing)."""
    from gru_lab.experiments.hparams import INSTALL, available

    line = f"TensorBoard: {what}: tensorboard --logdir {logdir}"
    err.print(line + ("" if available() else f" (needs the tensorboard extra: {INSTALL})"), highlight=False,
              soft_wrap=True, markup=False)
