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
