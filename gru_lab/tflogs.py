"""TensorFlow's native log lines: recognising them, and keeping the harmless ones off the terminal.

TF 2.x writes its C++ start-up notices (oneDNN, CUDA probing, tf.data attribute warnings) through absl,
which ignores TF_CPP_MIN_LOG_LEVEL. Fatal lines (F...) are never dropped: when TensorFlow aborts, the
user sees why. GRU_LAB_TF_LOGS=1 shows every line.
"""

from __future__ import annotations

import os
import re
import sys

# An absl-formatted info, warning or error line ("I0000 00:00:1795929311.740592    2279 port.cc:153] ..."),
# or absl's one-time notice; fatal lines ("F...") are left out on purpose.
_DROPPED = r"^(?:[IWE]\d{4} [\d:.]+\s+\d+ \S+:\d+\]|WARNING: All log messages before absl::InitializeLog)"
_DROPPED_TEXT = re.compile(_DROPPED)
ENV_VAR = "GRU_LAB_TF_LOGS"
LEGACY_ENV_VAR = "GRU_LAB_NATIVE_LOGS"  # its earlier name, still honoured


def is_noise(line: str) -> bool:
    """Whether a line of a worker's stderr is one of TensorFlow's notices (not an error a user needs)."""
    return bool(_DROPPED_TEXT.match(line))


# The filter runs in its own small process: when TensorFlow aborts this one (after its fatal line), the
# filter still holds the pipe, reads everything written before the abort, and passes the fatal line on.
_PUMP = """
import os, re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the command; the filter drains what it wrote
dropped = re.compile(sys.argv[1].encode())
for line in sys.stdin.buffer:
    if not dropped.match(line):
        os.write(1, line)
"""


def filter_stderr() -> None:
    """Route file descriptor 2 through a filter process that drops TensorFlow's notices and passes everything
    else on. Python's own stderr (gru-lab's messages, tracebacks) bypasses the filter."""
    if os.environ.get(ENV_VAR) or os.environ.get(LEGACY_ENV_VAR):
        return
    import io
    import subprocess

    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    try:
        subprocess.Popen([sys.executable, "-c", _PUMP, _DROPPED], stdin=read_end, stdout=real, close_fds=True)
    except OSError:  # no filter rather than no command
        for fd in (read_end, write_end, real):
            os.close(fd)
        return
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = io.TextIOWrapper(os.fdopen(real, "wb", buffering=0), encoding="utf-8",
                                  errors="backslashreplace", line_buffering=True, write_through=True)
