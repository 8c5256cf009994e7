"""gru-lab's compiled GRU loops (gru_lab/kernels/gru_op.cc): built once with the C++ compiler and
TensorFlow's own headers, then loaded as TensorFlow ops.

The recurrent loop is what a GRU train step spends most of its time in on a CPU: 200 steps of three small
(batch x u) @ (u x u) products and the gate math, forwards and backwards. The compiled loop runs each
step's three products as one (rows x u) @ (u x 3u) product with vectorised gate math, and splits the batch
rows between TensorFlow's intra-op threads for the whole sequence (rows never interact, so the threads
meet once per call, not once per step). fastrnn uses it for Keras GRU layers (reset_after=True, tanh,
sigmoid) in float32 when native_loops() is on; everything else keeps the TensorFlow loops.

`python -m gru_lab.native` builds it (make install does); otherwise the first run that wants it builds it
(about 25 s). The library file is keyed by the source, TensorFlow's version and this CPU, so an upgrade
rebuilds it. GRU_LAB_NATIVE=0 turns it off. Without a compiler, or where the build fails, gru-lab runs
the TensorFlow loops and says why (status()).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).parent / "kernels" / "gru_op.cc"
# The first set that compiles wins: the native instruction set (Eigen's AVX-512 FP16 code does not compile
# with every g++, so that extension is left out), then the native set, then the compiler's default.
ARCH_FLAGS = (["-march=native", "-mno-avx512fp16"], ["-march=native"], [])

_state: dict[str, Any] = {"lib": None, "error": None, "tried": False}


def enabled_by_env() -> bool:
    return os.environ.get("GRU_LAB_NATIVE", "1").strip().lower() not in ("0", "off", "false", "no")


def _tf_flags() -> tuple[list[str], list[str]]:
    import tensorflow as tf

    return list(tf.sysconfig.get_compile_flags()), list(tf.sysconfig.get_link_flags())


def _cpu_signature() -> str:
    """The CPU's feature flags: a library built with -march=native must not be loaded on another CPU."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_dir() -> Path:
    """Next to the source when that is writable (an editable install, a checkout), else the user's cache."""
    here = SOURCE.parent / "build"
    try:
        here.mkdir(exist_ok=True)
        if os.access(here, os.W_OK):
            return here
    except OSError:
        pass
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gru-lab" / "kernels"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def library_path() -> Path:
    import tensorflow as tf

    compile_flags, link_flags = _tf_flags()
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), tf.__version__.encode(), " ".join(compile_flags + link_flags).encode(),
                 _cpu_signature().encode()):
        key.update(part)
        key.update(b"\0")
    return build_dir() / f"gru_op-{key.hexdigest()[:16]}.so"


def build(path: Path | None = None) -> Path:
    """Compile the ops into path (default library_path()); atomic, so concurrent builds are harmless.
    Raises RuntimeError with the compiler's last lines when no flag set compiles."""
    path = path or library_path()
    compile_flags, link_flags = _tf_flags()
    compiler = os.environ.get("CXX", "g++")
    errors = []
    for arch in ARCH_FLAGS:
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
        os.close(fd)
        cmd = [compiler, "-shared", "-fPIC", "-O3", *arch, "-w", "-o", tmp, str(SOURCE), *compile_flags, *link_flags]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as e:  # no compiler at all
            os.unlink(tmp)
            raise RuntimeError(f"cannot run the C++ compiler {compiler!r}: {e}") from None
        if done.returncode == 0:
            os.replace(tmp, path)
            return path
        os.unlink(tmp)
        errors.append(" ".join(arch) or "default flags")
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
    raise RuntimeError(f"{compiler} could not build {SOURCE.name} (tried {'; '.join(errors)}): {last}")


def load():
    """The loaded op module, built first if missing; None where GRU_LAB_NATIVE=0, or where the build or the
    load failed (status() says why). Tried once per process."""
    if _state["tried"]:
        return _state["lib"]
    _state["tried"] = True
    if not enabled_by_env():
        _state["error"] = "GRU_LAB_NATIVE=0"
        return None
    try:
        import tensorflow as tf

        path = library_path()
        if not path.exists():
            build(path)
        _state["lib"] = tf.load_op_library(str(path))
    except Exception as e:  # any failure here only costs speed: the TensorFlow loops run instead
        _state["error"] = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        _state["lib"] = None
    return _state["lib"]


def status() -> dict[str, Any]:
    lib = load()
    return {"available": lib is not None, "reason": None if lib is not None else _state["error"]}


def _reset_for_tests() -> None:
    _state.update(lib=None, error=None, tried=False)


_ACTIVE = {"on": False}


@contextlib.contextmanager
def native_loops(enabled: bool = True):
    """Inside this block, GRU layers traced by fastrnn use the compiled loops (where they apply).

    Off by default because the compiled ops have no XLA kernel: a train step compiled with jit_compile
    must keep the TensorFlow loops. training.py turns it on exactly when it has turned XLA off."""
    previous = _ACTIVE["on"]
    _ACTIVE["on"] = bool(enabled) and load() is not None
    try:
        yield _ACTIVE["on"]
    finally:
        _ACTIVE["on"] = previous


def active() -> bool:
    return _ACTIVE["on"]


def main() -> int:
    path = library_path()
    if path.exists():
        print(f"gru-lab: compiled GRU loops already built: {path}")
        return 0
    try:
        build(path)
    except RuntimeError as e:
        print(f"gru-lab: native GRU loops not built: {e}; the TensorFlow loops will be used", file=sys.stderr)
        return 0  # not an error for the installation: everything works without it, only slower
    print(f"gru-lab: built {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
