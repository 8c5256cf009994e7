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


# ----------------------------------------------------------------------------- before a run: will it fit?

ESTIMATE_FACTOR = 2.0  # measured peak RSS / estimate stays within [1/2, 2] (tests/models/test_memory.py, docs)


def available_memory(proc: str = "/proc", cgroup: str = "/sys/fs/cgroup") -> tuple[int, str] | None:
    """(bytes a new run can use, where that number comes from): the smaller of MemAvailable and the room
    left under this process's cgroup limit (v2 memory.max or v1 memory.limit_in_bytes, less what the
    group uses, its reclaimable file cache not counted). None when neither can be read."""
    found: list[tuple[int, str]] = []
    try:
        with open(f"{proc}/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append((int(line.split()[1]) * 1024, "MemAvailable"))
    except (OSError, ValueError, IndexError):
        pass
    for folder, limit_file, usage_file, stat_key in (
            (cgroup, "memory.max", "memory.current", "inactive_file"),  # v2
            (f"{cgroup}/memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")):  # v1
        limit, usage = _read_int(f"{folder}/{limit_file}"), _read_int(f"{folder}/{usage_file}")
        if limit is None or usage is None or limit >= 2**60:  # "max", or v1's "no limit" (a huge number)
            continue
        cache = _stat_value(f"{folder}/memory.stat", stat_key) or 0
        found.append((max(0, limit - usage + cache), f"cgroup limit {limit / 1e9:.3g} GB"))
        break
    return min(found) if found else None


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _stat_value(path: str, key: str) -> int | None:
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return None


def check_fits(needed: int, available: tuple[int, str] | None, what: str) -> str | None:
    """Refuse (MachineError, exit code 2) a run whose estimate cannot fit even if it is ESTIMATE_FACTOR too
    high; a warning line when it may not fit (the estimate is above what is available, or within
    ESTIMATE_FACTOR of it); None when it fits or nothing is known about the machine."""
    from gru_lab.errors import MachineError
    from gru_lab.models.memory import human_bytes

    if available is None:
        return None
    room, source = available
    numbers = f"needs ~{human_bytes(needed)}, {human_bytes(room)} available ({source})"
    if needed > ESTIMATE_FACTOR * room:
        raise MachineError(f"{what} cannot fit in memory: {numbers}. Use a smaller model, batch or "
                           "train.eval_batch_size (`gru-lab inspect` shows where the memory goes).")
    if needed * ESTIMATE_FACTOR > room:
        return f"{what} may not fit in memory: {numbers}; the estimate is good to a factor of {ESTIMATE_FACTOR:g}."
    return None


def preflight(cfgs, concurrent: int = 1, what: str = "this run") -> str | None:
    """check_fits for the largest of some runs' estimates (models.memory), `concurrent` of them at once (each
    in its own process): a MachineError when they cannot fit, a warning line when they may not."""
    from gru_lab.data import spec_for
    from gru_lab.models.memory import estimate

    largest = max(estimate(cfg, spec_for(cfg.data)).total for cfg in cfgs)
    if concurrent > 1:
        what = f"{what} ({concurrent} at once)"
    return check_fits(largest * concurrent, available_memory(), what)
