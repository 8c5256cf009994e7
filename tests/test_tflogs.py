"""TensorFlow's log lines: notices are dropped, fatal lines and everything else reach the user."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gru_lab import tflogs

NOTICE = "I0000 00:00:1795929311.740592    2279 port.cc:153] oneDNN custom operations are on."
WARNING = "W0000 00:00:1795929311.740592    2279 cuda_executor.cc:1] could not open file"
ERROR = "E0000 00:00:1795930049.493937   20285 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)"
FATAL = "F0000 00:00:1795930049.493937   20285 op_kernel.cc:1] Check failed: shape mismatch"


@pytest.mark.parametrize("line, dropped", [
    (NOTICE, True), (WARNING, True), (ERROR, True),
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", True),
    (FATAL, False), ("error: configs/x.yaml: 'model.units' must be an integer. Got 'x'.", False),
    ("Traceback (most recent call last):", False),
])
def test_which_lines_are_noise(line, dropped):
    assert tflogs.is_noise(line) is dropped


def test_the_stderr_filter_keeps_fatal_lines_and_drops_notices():
    """As TensorFlow does when it aborts: its notices, then a fatal line, then abort() with nothing flushed."""
    payload = ("\n".join([NOTICE, "plain line", ERROR, FATAL]) + "\n").encode()
    code = ("import os, sys\nfrom gru_lab import tflogs\ntflogs.filter_stderr()\n"
            f"sys.stderr.write('python line\\n')\nos.write(2, {payload!r})\nos.abort()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0  # aborted
    # the filter passes lines in their order; Python's own stderr bypasses it (so its place may vary)
    lines = proc.stderr.splitlines()
    assert "python line" in lines and [line for line in lines if line != "python line"] == ["plain line", FATAL]
