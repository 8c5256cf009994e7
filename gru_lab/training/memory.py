"""Memory a run used: the process's peak resident memory and TensorFlow's peak GPU allocation."""

from __future__ import annotations

import sys
from typing import Any


def _maxrss_mib() -> float | None:
    """ru_maxrss in MiB: the process's peak since it started (bytes on macOS, KiB on Linux)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset this process's peak resident memory (Linux: VmHWM via /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float | None:
    """VmHWM (peak RSS since the last reset_peak_rss) in MiB, or ru_maxrss (since start) where /proc has none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _maxrss_mib()


def _gpu_names() -> list[str]:
    import tensorflow as tf

    return [f"GPU:{i}" for i, _ in enumerate(tf.config.list_logical_devices("GPU"))]


def reset_gpu_peak() -> None:
    import tensorflow as tf

    for name in _gpu_names():
        try:
            tf.config.experimental.reset_memory_stats(name)
        except (ValueError, RuntimeError):  # no allocator statistics: the peak then counts from process start
            pass


def peak_memory() -> dict[str, Any]:
    """The process's peak resident memory so far (ru_maxrss: TensorFlow's runtime, the data and the
    model), and the peak GPU memory TensorFlow allocated during this run. Per run only when the process
    trains one run, as `gru-lab train` and each `compare` worker do."""
    record: dict[str, Any] = {"rss_mib": _maxrss_mib(), "gpu_mib": None,
                              "measured": "process peak RSS (ru_maxrss); GPU: TensorFlow's peak allocation "
                                          "since the run began"}
    import tensorflow as tf

    gpus = _gpu_names()
    if gpus:
        try:
            record["gpu_mib"] = sum(tf.config.experimental.get_memory_info(n)["peak"] for n in gpus) / 2**20
        except (ValueError, RuntimeError):  # an allocator without statistics: leave it unmeasured
            pass
    return record
