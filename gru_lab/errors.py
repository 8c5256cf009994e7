"""User-facing errors: a GruLabError is a user's mistake (one line, exit code 2), anything else is a bug."""

from __future__ import annotations


class GruLabError(Exception):
    """A mistake the user can fix. str(error) is the whole one-line message."""

    exit_code = 2


class ConfigError(GruLabError):
    """A config file or --set override that cannot be used."""

    def __init__(self, source: str, message: str, key: str | None = None):
        self.source = source
        self.key = key
        self.message = message
        super().__init__(f"{source}: {message}")


class DataError(GruLabError):
    """Data that is missing, unreadable or of the wrong layout."""


class RunError(GruLabError):
    """A run folder that is missing or does not hold what a command needs."""


class CompareError(GruLabError):
    """A compare invocation that cannot be planned: unknown cells, bad --seeds/--lengths/--budget."""


class SweepError(GruLabError):
    """A sweep that cannot be planned: a bad --grid axis, --seeds, --workers or backend setting."""


class TuneError(GruLabError):
    """A search that cannot be planned: a bad --param spec, budget, sampler, pruner or study."""


class MachineError(GruLabError):
    """A limit of this machine found before anything runs: a run that cannot fit in memory, an output folder
    that cannot be created or written."""


class RunStopped(GruLabError):
    """A run that ended without a result, for a reason stated in one line: it diverged, or the machine ran out
    of memory or disk while it ran. Exit code 1: the command ran, the run did not succeed."""

    exit_code = 1


# errno -> what a full or locked-down disk is called in a message
_DISK_ERRORS = {28: "no space left on device", 122: "disk quota exceeded", 30: "read-only file system",
                13: "permission denied", 1: "operation not permitted"}


def machine_limit(exc: BaseException) -> str | None:
    """One line for an error that is a limit of the machine rather than a bug (out of memory, a full or
    read-only disk, no permission), or None. TensorFlow's ResourceExhaustedError is known by name, so
    that this module never imports TensorFlow."""
    if isinstance(exc, MemoryError):
        return f"out of memory{f' ({exc})' if str(exc) else ''}"
    if type(exc).__name__ == "ResourceExhaustedError":
        first = next((ln.strip() for ln in str(getattr(exc, "message", exc)).splitlines() if ln.strip()), "")
        return f"out of memory: TensorFlow could not allocate ({first[:200]})"
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRORS:
        where = f" writing {exc.filename}" if exc.filename else ""
        return f"{_DISK_ERRORS[exc.errno]}{where}"
    return None
