"""The instruction set the bench measures on: what the CPU has (/proc/cpuinfo), and the cap a bench can put on
every library it times, so that an AVX-512 machine stands in for an AVX2-only one.

GRU_LAB_ISA=avx2 restricts gru-lab's compiled loops at build time (rnn/compiled.py) and, through ISA_CAPS, the
libraries' own kernels at run time: oneDNN's (TensorFlow's matmuls and PyTorch's), MKL's (PyTorch's BLAS) and
ATen's dispatch (PyTorch's elementwise kernels). Kernels a library compiled without a run-time switch (parts
of TensorFlow's Eigen code) keep whatever their wheel was built for; bench reports say so.
"""

from __future__ import annotations

import os
from pathlib import Path

from gru_lab.errors import GruLabError
from gru_lab.rnn import compiled
from gru_lab.rnn.compiled import ISA_FLAGS, ISA_VAR

# Each library's own switch, set in the environment of the bench's worker processes before they import it.
ISA_CAPS = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}
# /proc/cpuinfo flag -> the name reports use; the widest first.
ISA_NAMES = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2"))


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags (the first "flags" line of /proc/cpuinfo); empty where there is none."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def machine_isa(flags: set[str]) -> str:
    """The widest vector instruction set among the flags, e.g. "AVX-512"; "unknown" where none is listed."""
    return next((name for flag, name in ISA_NAMES if flag in flags), "unknown")


def requested_isa() -> str:
    """$GRU_LAB_ISA (lower case), "native" when unset; a value the build does not know is the user's mistake."""
    chosen = compiled.isa()
    if chosen not in ISA_FLAGS:
        raise GruLabError(f"{ISA_VAR}={chosen!r}: the instruction set must be one of {sorted(ISA_FLAGS)} "
                          "(unset = the machine's own).")
    return chosen


def worker_env(isa: str) -> dict[str, str]:
    """The environment variables that cap the libraries of a worker process at isa ({} for "native"); a cap the
    user set already stays theirs."""
    return {k: v for k, v in ISA_CAPS.get(isa, {}).items() if k not in os.environ}


def describe(flags: set[str], isa: str) -> str:
    """The header's line, e.g. "AVX-512 (avx512f, avx512_vnni, ...)" or "AVX2 cap on an AVX-512 CPU"."""
    have = machine_isa(flags)
    extras = sorted(f for f in flags if f.startswith("avx512") or f in ("avx2", "fma", "amx_tile", "avx_vnni"))
    own = f"{have} ({', '.join(extras) or 'no AVX flags'})"
    if isa == "native":
        return own
    return (f"{isa.upper()} cap ({ISA_VAR}={isa}: compiled loops built for it; "
            f"{', '.join(f'{k}={v}' for k, v in ISA_CAPS[isa].items())}) on a CPU with {own}")
