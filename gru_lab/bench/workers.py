"""A measured job in a process of its own: the bench's variants, its PyTorch peer and the GPU check each run
`python -m MODULE JOB.json ANSWER.json` and read back a JSON answer; the machine's load is read around each."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def load_average() -> float | None:
    """The 1-minute load average, or None where the system keeps none."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover
        return None


def worker_answer(module: str, job: dict[str, Any], what: str, arrays: dict[str, np.ndarray] | None = None,
                  env: dict[str, str] | None = None) -> dict:
    """Run `python -m MODULE JOB.json ANSWER.json` in a fresh process and return its JSON answer. With arrays,
    they go along as a .npz file whose path is job["arrays"]; env adds to the worker's environment (set before
    it imports any library). A failed worker raises RuntimeError with the end of its stderr (its last line last)."""
    import json
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gru-lab-worker-") as tmp:
        job_path, answer = Path(tmp) / "job.json", Path(tmp) / "answer.json"
        if arrays is not None:
            job = {**job, "arrays": str(Path(tmp) / "arrays.npz")}
            np.savez(job["arrays"], **arrays)
        job_path.write_text(json.dumps(job))
        proc = subprocess.run([sys.executable, "-m", module, str(job_path), str(answer)], capture_output=True,
                              text=True, env={**os.environ, **env} if env else None)
        if proc.returncode != 0 or not answer.is_file():
            raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(answer.read_text())
