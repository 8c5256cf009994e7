"""gru-lab's compiled loops (rnn/kernels/*.cc): built once with the C++ compiler and TensorFlow's own
headers, loaded as TensorFlow ops, and called from here with the same results and gradients as Keras's loop.

`python -m gru_lab.rnn.compiled` builds them (make install does); otherwise the first run that wants them
builds them. The library file is keyed by the source, TensorFlow's version and this CPU, so an upgrade
rebuilds it. GRU_LAB_COMPILED=0 turns them off. Without a compiler, or where the build fails, the fused
TensorFlow loops run and status() says why. How the loops work: docs/design.md.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from gru_lab.rnn.fused import flat_matmul

SOURCE = Path(__file__).parent / "kernels" / "gru_op.cc"
ENV_VAR = "GRU_LAB_COMPILED"  # 0 turns the compiled loops off
LEGACY_ENV_VAR = "GRU_LAB_NATIVE"  # its earlier name, still honoured
# The first set that compiles wins: the native instruction set (Eigen's AVX-512 FP16 code does not compile
# with every g++, so that extension is left out), then the native set, then the compiler's default.
ARCH_FLAGS = (["-march=native", "-mno-avx512fp16"], ["-march=native"], [])

_state: dict[str, Any] = {"lib": None, "error": None, "tried": False}


def enabled_by_env() -> bool:
    value = os.environ.get(ENV_VAR, os.environ.get(LEGACY_ENV_VAR, "1"))
    return value.strip().lower() not in ("0", "off", "false", "no")


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
    """The loaded op module, built first if missing; None where GRU_LAB_COMPILED=0, or where the build or the
    load failed (status() says why). Tried once per process."""
    if _state["tried"]:
        return _state["lib"]
    _state["tried"] = True
    if not enabled_by_env():
        _state["error"] = f"{ENV_VAR}=0"
        return None
    try:
        import tensorflow as tf

        path = library_path()
        if not path.exists():
            build(path)
        _state["lib"] = tf.load_op_library(str(path))
    except Exception as e:  # any failure here only costs speed: the fused TensorFlow loops run instead
        _state["error"] = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        _state["lib"] = None
    return _state["lib"]


def status() -> dict[str, Any]:
    lib = load()
    return {"available": lib is not None, "reason": None if lib is not None else _state["error"]}


def _reset_for_tests() -> None:
    _state.update(lib=None, error=None, tried=False)


def unavailable_without_building() -> str | None:
    """Why the compiled loops cannot run here, found without building or loading them; None = they can (built,
    or buildable by the first run that wants them). For `inspect` and the kernel plan."""
    if _state["tried"]:
        return _state["error"]
    if not enabled_by_env():
        return f"{ENV_VAR}=0"
    try:
        if library_path().exists():
            return None
    except Exception as e:  # TensorFlow's build flags unreadable: the build would fail the same way
        return f"cannot read TensorFlow's build flags ({type(e).__name__})"
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler found ({compiler!r} is not on PATH)"
    return None


# ----------------------------------------------------------------------------- the ops, as Keras's loop returns


def run(x, states, cell, go_backwards: bool, return_sequences: bool, mask=None, zero_output_for_mask: bool = False,
        training: bool = True, token_ids=None, embeddings=None):
    """fused.run for a float32 GRU with the compiled loops: same results, same gradients.

    The input projection is one (T*B, d) @ (d, 3u) product; at inference from a token table the op reads
    each step's rows of E @ W + b itself, so no (T, B, 3u) array is made. The ops take the three gates
    side by side, since the compiled step multiplies h by the whole recurrent kernel at once. Gradients:
    the backward op returns each step's gate gradients, and dU, the recurrent bias's gradient and (through
    TensorFlow's own gradient of the projection) dW, the input bias's and the inputs' are large products
    over all steps."""
    import tensorflow as tf

    lib = load()
    kernel = tf.cast(cell.kernel, tf.float32)
    recurrent_kernel = tf.cast(cell.recurrent_kernel, tf.float32)
    bias = tf.cast(cell.bias, tf.float32)
    steps_mask = None if mask is None else tf.cast(tf.transpose(mask, [1, 0]), tf.float32)  # (T, B)
    if steps_mask is not None and go_backwards:
        steps_mask = tf.reverse(steps_mask, [0])
    m = tf.zeros([0]) if steps_mask is None else steps_mask  # the ops take an empty tensor for "no mask"
    h0 = tf.cast(states[0], tf.float32)
    if token_ids is not None:  # inference from the token table: the op gathers each step's rows itself
        ids = tf.transpose(tf.cast(token_ids, tf.int32), [1, 0])  # (T, B)
        if go_backwards:
            ids = tf.reverse(ids, [0])
        table = tf.matmul(tf.cast(embeddings, tf.float32), kernel) + bias[0]
        states_out = _table_loop(lib, table, ids, h0, recurrent_kernel, bias[1], m, return_sequences)
        hs, last = (states_out, states_out[-1]) if return_sequences else (None, states_out)
        return _outputs(hs, last, steps_mask, zero_output_for_mask, return_sequences)
    x = tf.transpose(x, [1, 0, 2])  # time-major: (T, B, d)
    if go_backwards:
        x = tf.reverse(x, [0])
    steps, batch, d = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    projected = tf.reshape(tf.matmul(tf.reshape(x, [-1, d]), kernel) + bias[0], [steps, batch, -1])
    hs = _loop(lib, projected, h0, recurrent_kernel, bias[1], m, save=training)
    return _outputs(hs, hs[-1], steps_mask, zero_output_for_mask, return_sequences)


def _loop(lib, projected, h0, recurrent_kernel, recurrent_bias, m, save: bool):
    """The states (T, B, u), differentiable. save=True (training) keeps each step's gates for the backward
    op; save=False (inference) does not, and a gradient asked for anyway runs the forward again with them."""
    import tensorflow as tf

    @tf.custom_gradient
    def loop(projected, h0, recurrent_kernel, recurrent_bias):
        hs, saved = lib.gru_lab_gru_forward(projected, h0, recurrent_kernel, recurrent_bias, m, save=save)

        def grad(d_hs):
            kept = saved if save else lib.gru_lab_gru_forward(projected, h0, recurrent_kernel, recurrent_bias, m,
                                                              save=True)[1]
            return _backward(lib, d_hs, hs, h0, kept, recurrent_kernel, m)

        return hs, grad

    return loop(projected, h0, recurrent_kernel, recurrent_bias)


def _backward(lib, d_hs, hs, h0, saved, recurrent_kernel, m):
    """(d projected, d h0, d recurrent kernel, d recurrent bias) from the backward op and two large reductions."""
    import tensorflow as tf

    d_projected, d_recurrent, d_h0 = lib.gru_lab_gru_backward(d_hs, hs, h0, saved, recurrent_kernel, m)
    # dU = sum_t h_{t-1}^T d_t, with h_{-1} = h0: split so that no (T, B, u) concatenation is copied
    # (slices along the first axis share the tensor's memory).
    d_u = tf.matmul(h0, d_recurrent[0], transpose_a=True) + flat_matmul(hs[:-1], d_recurrent[1:], transpose_a=True)
    return d_projected, d_h0, d_u, tf.reduce_sum(d_recurrent, axis=[0, 1])


def _table_loop(lib, table, ids, h0, recurrent_kernel, recurrent_bias, m, keep_sequence: bool):
    """States (T, B, u) (keep_sequence) or the last state (B, u), read from the token table; differentiable
    (a gradient, rare at inference, projects the sequence and runs the training ops)."""
    import tensorflow as tf

    @tf.custom_gradient
    def loop(table, h0, recurrent_kernel, recurrent_bias):
        out = lib.gru_lab_gru_table_forward(table, ids, h0, recurrent_kernel, recurrent_bias, m,
                                            keep_sequence=keep_sequence)

        def grad(d_out):
            projected = tf.gather(table, ids)
            hs, saved = lib.gru_lab_gru_forward(projected, h0, recurrent_kernel, recurrent_bias, m, save=True)
            d_hs = d_out if keep_sequence else tf.concat([tf.zeros_like(hs[:-1]), d_out[None]], axis=0)
            d_projected, *rest = _backward(lib, d_hs, hs, h0, saved, recurrent_kernel, m)
            d_table = tf.math.unsorted_segment_sum(tf.reshape(d_projected, [-1, tf.shape(table)[1]]),
                                                   tf.reshape(ids, [-1]), tf.shape(table)[0])
            return (d_table, *rest)

        return out, grad

    return loop(table, h0, recurrent_kernel, recurrent_bias)


def _outputs(hs, last, m, zero_output_for_mask: bool, return_sequences: bool):
    """(last_output, outputs, new_states) as fused.run returns them, from the states (T, B, u) or None and the last."""
    import tensorflow as tf

    new_states = [last]
    if m is not None and zero_output_for_mask:
        last = last * m[-1][:, None]
        hs = None if hs is None else hs * m[:, :, None]
    outputs = tf.transpose(hs, [1, 0, 2]) if return_sequences else last[:, None, :]
    return last, outputs, new_states



def main() -> int:
    path = library_path()
    if path.exists():
        print(f"gru-lab: compiled loops already built: {path}")
        return 0
    try:
        build(path)
    except RuntimeError as e:
        print(f"gru-lab: compiled loops not built: {e}; the fused TensorFlow loops will be used", file=sys.stderr)
        return 0  # not an error for the installation: everything works without it, only slower
    print(f"gru-lab: built {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
