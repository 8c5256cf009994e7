"""The Optuna side of `gru-lab tune`: the study's storage (a journal file in the tune folder, or a database URL),
its sampler and pruner, the settings a study was made with (a second command must match them), and which
command owns a running trial. Optuna is imported inside functions: it is an optional extra.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gru_lab.errors import TuneError
from gru_lab.experiments.space import Param, value_text

if TYPE_CHECKING:
    from gru_lab.experiments.tune import TunePlan

STUDY_ATTR = "gru_lab"  # the study's user attribute holding the settings it was made with
JOURNAL = "study.journal"

def storage_of(plan: TunePlan):
    """The study's storage: the URL given, else a journal file in the tune folder (no server, safe for several
    processes on this machine)."""
    import optuna

    if plan.storage:
        return plan.storage
    from optuna.storages.journal import JournalFileBackend

    plan.folder.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(plan.folder / JOURNAL)))


def make_sampler(plan: TunePlan):
    import optuna

    if plan.sampler == "grid":
        grid = {p.key: optuna_choices(p) if p.kind == "categorical" else p.grid() for p in plan.space}
        return _GridSampler(grid, seed=plan.base.seed)
    if plan.sampler == "random":
        return optuna.samplers.RandomSampler(seed=plan.base.seed)
    # A few random trials first, then TPE; constant_liar keeps parallel workers from asking the same point.
    startup = max(2, min(10, plan.trials // 3))
    return optuna.samplers.TPESampler(seed=plan.base.seed, n_startup_trials=startup, constant_liar=True)


def _grid_sampler_class():
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """Optuna's grid sampler, minus its study.stop() once the grid is done: that works only inside
        study.optimize, and this search asks and tells; plan.trials (the grid's size) ends it instead."""

        def after_trial(self, study, trial, state, values) -> None:
            pass

    return GridSampler


def _GridSampler(*args, **kwargs):  # noqa: N802 - reads as the class it builds
    return _grid_sampler_class()(*args, **kwargs)


def optuna_choices(param: Param) -> list[Any]:
    """A categorical parameter's choices as Optuna stores them: plain values as they are, others (lists,
    mappings) by their text."""
    if all(c is None or isinstance(c, (bool, int, float, str)) for c in param.choices):
        return list(param.choices)
    return [value_text(c) for c in param.choices]


def make_pruner(plan: TunePlan):
    import optuna

    epochs = plan.base.train.epochs
    if plan.pruner == "none" or epochs < 2:
        return optuna.pruners.NopPruner()
    if plan.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if plan.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)


def open_study(plan: TunePlan):
    """The plan's study, created on first use; one made with other settings is a TuneError naming them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = storage_of(plan)
    try:
        study = optuna.create_study(study_name=plan.name, storage=storage, direction=plan.direction,
                                    sampler=make_sampler(plan), pruner=make_pruner(plan), load_if_exists=True)
    except (ImportError, ModuleNotFoundError) as exc:
        raise TuneError(f"--storage {plan.storage}: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.startswith(("sqlalchemy", "optuna")):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TuneError(f"cannot open the study {plan.name!r} in {plan.storage or plan.folder / JOURNAL}: "
                            f"{first}") from None
        raise
    wanted = json.loads(json.dumps(plan.settings()))  # as stored: lists, not tuples
    made = study.user_attrs.get(STUDY_ATTR)
    if made is None:
        study.set_user_attr(STUDY_ATTR, wanted)
    elif made != wanted:
        differ = [k for k in wanted if made.get(k) != wanted[k]]
        raise TuneError(f"the study {plan.name!r} in {plan.storage or plan.folder / JOURNAL} was made by another "
                        f"search (its {', '.join(differ)} differ); continue it with the same settings, or start a "
                        "new one with --name.")
    return study


@dataclass
class Owner:
    """Which command runs a trial: a trial whose owner is gone (killed) is taken over by the next command."""

    host: str
    pid: int
    started: float  # the owner process's start (boot-relative ticks where /proc says, else 0): pids are reused

    @classmethod
    def me(cls) -> "Owner":
        return cls(socket.gethostname(), os.getpid(), _process_start(os.getpid()))

    def record(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "started": self.started}

    def alive(self) -> bool | None:
        """True/False on this host; None elsewhere (another machine's commands are left alone)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _process_start(self.pid) == self.started


def _process_start(pid: int) -> float:
    try:
        return float(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0.0


@contextlib.contextmanager
def file_lock(path: Path):
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: one command at a time
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
