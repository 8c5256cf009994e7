"""gru-lab's compiled loops (rnn/kernels/*.cc): built once with the C++ compiler and TensorFlow's own
headers, loaded as TensorFlow ops, and called from here with the same results and gradients as Keras's loop.

`python -m gru_lab.rnn.compiled` builds them (make install does); otherwise the first run that wants them
builds them (the command line says so first). The library file is keyed by the sources, TensorFlow's
version and this CPU, so an upgrade rebuilds it; a failed build is remembered beside it, keyed the same way
and by the compiler, so that later runs and workers do not each try again. GRU_LAB_COMPILED=0 turns them
off. Without a compiler, or where the build fails, the fused TensorFlow loops run and status() says why.
How the loops work: docs/design.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from gru_lab.files import atomic_write_text
from gru_lab.rnn.fused import flat_matmul

KERNELS = Path(__file__).parent / "kernels"
SOURCES = tuple(sorted(KERNELS.glob("*.cc")))
HEADERS = tuple(sorted(KERNELS.glob("*.h")))
ENV_VAR = "GRU_LAB_COMPILED"  # 0 turns the compiled loops off
LEGACY_ENV_VAR = "GRU_LAB_NATIVE"  # its earlier name, still honoured
BUILD_DIR_VAR = "GRU_LAB_BUILD_DIR"  # where the library is built and looked for, instead of the default
COMPILERS = ("g++", "c++", "clang++")  # tried in this order where $CXX is not set
# The whole build (all sources and the link), several times what it takes on a busy 2-core machine
# (docs/benchmarks.md, the build); a compiler that hangs must not hold a run forever.
BUILD_TIMEOUT_S = 900
# The first set that compiles wins: the native instruction set (Eigen's AVX-512 FP16 code does not compile
# with every g++, so that extension is left out), then the native set, then the compiler's default.
ARCH_FLAGS = (["-march=native", "-mno-avx512fp16"], ["-march=native"], [])
# GRU_LAB_ISA=avx2 builds for AVX2 and FMA only (x86-64-v3: Haswell's set, also AMD EPYC's), so that a machine
# with AVX-512 can stand in for an AVX2-only one (`gru-lab bench --sizes` caps TensorFlow's and PyTorch's own
# kernels likewise). Tuning stays native: -mtune changes scheduling, never the instructions used.
ISA_VAR = "GRU_LAB_ISA"
ISA_FLAGS = {"native": ARCH_FLAGS, "avx2": (["-march=x86-64-v3", "-mtune=native"], ["-mavx2", "-mfma"])}
# TensorFlow's and Eigen's headers are included as system headers (-isystem), so their own hundreds of
# warnings stay out and the build log shows this code's. -Wno-maybe-uninitialized: g++ 12 reports it from
# inside its own AVX-512 intrinsics as Eigen inlines them (about 500 lines, none in this code).
WARNINGS = ["-Wall", "-Wextra", "-Wno-maybe-uninitialized"]

_state: dict[str, Any] = {"lib": None, "error": None, "tried": False}


def isa() -> str:
    """The instruction set the compiled loops are built for: $GRU_LAB_ISA (avx2), else "native"."""
    return os.environ.get(ISA_VAR, "").strip().lower() or "native"


def arch_flags() -> tuple[list[str], ...]:
    """The flag sets the build tries, first that compiles wins; raises RuntimeError for an unknown $GRU_LAB_ISA."""
    chosen = isa()
    if chosen not in ISA_FLAGS:
        raise RuntimeError(f"{ISA_VAR}={chosen!r} is not one of {sorted(ISA_FLAGS)}")
    return ISA_FLAGS[chosen]


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
    """$GRU_LAB_BUILD_DIR; else next to the sources when that is writable (an editable install, a checkout),
    else the user's cache."""
    if os.environ.get(BUILD_DIR_VAR):
        chosen = Path(os.environ[BUILD_DIR_VAR]).expanduser()
        chosen.mkdir(parents=True, exist_ok=True)
        return chosen
    here = KERNELS / "build"
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
    for part in (*(f.read_bytes() for f in SOURCES + HEADERS), tf.__version__.encode(),
                 " ".join(compile_flags + link_flags + WARNINGS).encode(), _cpu_signature().encode(),
                 *([] if isa() == "native" else [f"isa={isa()}".encode()])):
        key.update(part)
        key.update(b"\0")
    return build_dir() / f"loops-{key.hexdigest()[:16]}.so"


def log_path(path: Path | None = None) -> Path:
    """The build log beside the library: each compiler command, its exit status and everything it printed."""
    return (path or library_path()).with_suffix(".log")


def compiler() -> str | None:
    """The C++ compiler a build would run: $CXX, else the first of COMPILERS on PATH; None where there is none."""
    wanted = os.environ.get("CXX")
    if wanted:
        return shutil.which(wanted)
    return next((found for name in COMPILERS if (found := shutil.which(name))), None)


def _no_compiler() -> str:
    wanted = os.environ.get("CXX")
    if wanted:
        return f"no C++ compiler found ($CXX is {wanted!r}, which is not an executable on PATH)"
    return f"no C++ compiler found (none of {', '.join(COMPILERS)} is on PATH; set CXX to use another)"


def _failure_marker(path: Path, cxx: str) -> Path:
    """Where a failed build of this library with this compiler is remembered (the reason, one line)."""
    try:
        stamp = f"{cxx}\0{os.stat(cxx).st_mtime_ns}"
    except OSError:
        stamp = cxx
    return path.with_name(f"{path.stem}.{hashlib.sha256(stamp.encode()).hexdigest()[:8]}.failed")


def _remembered_failure(path: Path, cxx: str) -> str | None:
    try:
        return _failure_marker(path, cxx).read_text().strip() or "an earlier build failed"
    except OSError:
        return None


def _commands(cxx: str, arch: list[str], objects: dict[Path, Path], out: str) -> tuple[list[list[str]], list[str]]:
    """(one compile command a source, the link command)."""
    compile_flags, link_flags = _tf_flags()
    includes = []
    for flag in compile_flags:
        includes += ["-isystem", flag[2:]] if flag.startswith("-I") else [flag]
    compiles = [[cxx, "-c", "-fPIC", "-O3", *arch, *WARNINGS, *includes, "-o", str(obj), str(src)]
                for src, obj in objects.items()]
    # macOS links a shared library only when every symbol resolves now, unless told that TensorFlow's
    # process will provide them when it loads the library.
    macos = ["-undefined", "dynamic_lookup"] if platform.system() == "Darwin" else []
    link = [cxx, "-shared", "-fPIC", *arch, "-o", out, *map(str, objects.values()), *link_flags, *macos]
    return compiles, link


def _run(cmd: list[str], log: list[str], deadline: float) -> tuple[int, str]:
    """(exit status, output) of cmd, whose output also goes to the log; raises TimeoutError past the deadline
    (the process is killed)."""
    with tempfile.TemporaryFile(mode="w+") as output:
        try:
            code = subprocess.run(cmd, stdout=output, stderr=subprocess.STDOUT, text=True,
                                  timeout=max(0.1, deadline - time.monotonic())).returncode
        except subprocess.TimeoutExpired:
            code = None
        output.seek(0)
        text = output.read()
    log.append(f"$ {' '.join(cmd)}\n{text}[exit status {'timed out' if code is None else code}]\n\n")
    if code is None:
        raise TimeoutError
    return code, text


def _reason(output: str) -> str:
    """The line of a failed compiler run that says why: its first error, else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "(no output)")


def build(path: Path | None = None) -> Path:
    """Compile the ops into path (default library_path()), the sources side by side on the cores, and write
    the build log beside it; atomic, so concurrent builds are harmless. Raises RuntimeError with the reason
    (the compiler's first error, a timeout, no compiler) when no flag set builds."""
    path = path or library_path()
    cxx = compiler()
    if cxx is None:
        raise RuntimeError(_no_compiler())
    log: list[str] = []
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    tried, why = [], "(no output)"
    try:
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".build-") as work:
            for arch in arch_flags():
                objects = {src: Path(work) / f"{src.stem}.o" for src in SOURCES}
                out = Path(work) / path.name
                compiles, link = _commands(cxx, arch, objects, str(out))
                with ThreadPoolExecutor(max_workers=max(1, min(len(compiles), os.cpu_count() or 1))) as pool:
                    results = list(pool.map(lambda cmd: _run(cmd, log, deadline), compiles))
                failed = [text for code, text in results if code]
                if not failed:
                    code, text = _run(link, log, deadline)
                    if code == 0:
                        os.replace(out, path)
                        return path
                    failed = [text]
                tried.append(" ".join(arch) or "default flags")
                why = _reason(failed[0])
    except TimeoutError:
        raise RuntimeError(f"{Path(cxx).name} did not finish building within {BUILD_TIMEOUT_S} s "
                           f"(log: {log_path(path)})") from None
    finally:
        with contextlib.suppress(OSError):
            atomic_write_text(log_path(path), "".join(log))
    raise RuntimeError(f"{Path(cxx).name} could not build the compiled loops (tried {'; '.join(tried)}): {why} "
                       f"(log: {log_path(path)})")


@contextlib.contextmanager
def _build_lock(path: Path):
    """One build at a time per library across processes (compare and sweep workers start together)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): concurrent builds stay harmless, only wasteful
        yield
        return
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_once(path: Path, notify: Callable[[str], None] | None) -> None:
    """Build path unless another process did, or a build with this compiler failed before (raises its reason)."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError(_no_compiler())
    with _build_lock(path):
        if path.exists():
            return
        remembered = _remembered_failure(path, cxx)
        if remembered:
            raise RuntimeError(remembered)
        if notify:
            notify(f"compiling gru-lab's C++ loops for this CPU, once (about a minute; log: {log_path(path)})")
        try:
            build(path)
        except RuntimeError as e:
            atomic_write_text(_failure_marker(path, cxx), f"{e}; `python -m gru_lab.rnn.compiled` tries again\n")
            raise


def load(notify: Callable[[str], None] | None = None):
    """The loaded op module, built first if missing (notify gets one line before a build starts); None where
    GRU_LAB_COMPILED=0, or where the build or the load failed (status() says why). Tried once per process."""
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
            _build_once(path, notify)
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
    """Why the compiled loops cannot run here, found without building or loading them: no compiler, a build
    that failed before, GRU_LAB_COMPILED=0; None = they can (built, or buildable by the first run that
    wants them). For `inspect` and the kernel plan."""
    if _state["tried"]:
        return _state["error"]
    if not enabled_by_env():
        return f"{ENV_VAR}=0"
    try:
        path = library_path()
    except Exception as e:  # TensorFlow's build flags unreadable: the build would fail the same way
        return f"cannot read TensorFlow's build flags ({type(e).__name__})"
    if path.exists():
        return None
    cxx = compiler()
    if cxx is None:
        return _no_compiler()
    return _remembered_failure(path, cxx)


def pending_build() -> bool:
    """True where the compiled loops are not built yet but can be: the first run that wants them builds them."""
    if _state["tried"] or unavailable_without_building() is not None:
        return False
    return not library_path().exists()


# ----------------------------------------------------------------------------- the ops, as Keras's loop returns


def run(cell_kind: str, sequences, states, cell, go_backwards: bool, return_sequences: bool, mask=None,
        zero_output_for_mask: bool = False, training: bool = True, token_ids=None, embeddings=None, row_scale=None):
    """fused.run for a float32 GRU, LSTM or SimpleRNN with the compiled loops: same results, same gradients.

    The input projection (with the input bias) is one (T*B, d) @ (d, gates*u) product. With token_ids (B, T)
    and the embedding matrix (a layer fed by gru-lab's Embedding), in training and at inference, it is the
    batch's own token table instead: each distinct token's row E[v] @ W + b, once, which the table ops read
    step by step, so no (T, B, gates*u) array is made; row_scale (B, d), input dropout's mask, scales each
    batch row's embedded inputs (the table then holds each distinct (row, token) pair). The ops take the
    gates side by side, since the compiled step multiplies h by the whole recurrent kernel at once.
    Gradients: the backward op returns each step's gate gradients, and dU, the recurrent bias's gradient, dW,
    the input bias's and the inputs' (or, from the table, the table's) are large products.

    Memory (a train step holds what the backward op needs and little else): without return_sequences only the
    last state leaves the loop, so its gradient is (B, u), not a (T, B, u) of zeros; the projection is made
    inside the loop's gradient function, its forward op its one reader, so that the op writes the gates over
    it, and the backward op writes the gradients over the gates."""
    import tensorflow as tf

    lib = load()
    ops = _CELLS[cell_kind]
    kernel = tf.cast(cell.kernel, tf.float32)
    bias = tf.cast(cell.bias, tf.float32)
    input_bias, weights = ops.split(tf.cast(cell.recurrent_kernel, tf.float32), bias)
    steps_mask = None if mask is None else tf.cast(tf.transpose(mask, [1, 0]), tf.float32)  # (T, B)
    if steps_mask is not None and go_backwards:
        steps_mask = tf.reverse(steps_mask, [0])
    m = tf.zeros([0]) if steps_mask is None else steps_mask  # the ops take an empty tensor for "no mask"
    state = tuple(tf.cast(s, tf.float32) for s in states[:ops.states])
    if token_ids is not None:  # the batch's own token table: each distinct token projected once
        ids = tf.transpose(tf.cast(token_ids, tf.int32), [1, 0])  # (T, B)
        if go_backwards:
            ids = tf.reverse(ids, [0])
        table, ids = _batch_table(ids, embeddings, kernel, input_bias, row_scale, lib)
        out, c_last = _table_loop(ops, lib, table, ids, state, weights, m, return_sequences, save=training)
    else:
        x = tf.transpose(sequences, [1, 0, 2])  # time-major: (T, B, d)
        if go_backwards:
            x = tf.reverse(x, [0])
        out, c_last = _loop(ops, lib, x, kernel, input_bias, state, weights, m, return_sequences, save=training)
    hs, last = (out, out[-1]) if return_sequences else (None, out)
    return _outputs(hs, last, c_last, steps_mask, zero_output_for_mask, return_sequences)


class _Gru:
    """GRU (reset_after=True): bias (2, 3u) = input and recurrent rows; the ops keep (gates z, r, n; h U_n + b_n)."""

    states = 1

    @staticmethod
    def split(recurrent_kernel, bias):
        return bias[0], (recurrent_kernel, bias[1])

    @staticmethod
    def forward(lib, projected, state, weights, m, save: bool):
        hs, gates, rn = lib.gru_lab_gru_forward(projected, state[0], *weights, m, save=save)
        return hs, None, (gates, rn)

    @staticmethod
    def table(lib, table, ids, state, weights, m, keep: bool, save: bool):
        out, gates, rn = lib.gru_lab_gru_table_forward(table, ids, state[0], *weights, m, keep_sequence=keep,
                                                       save=save)
        return out, None, (gates, rn)

    @staticmethod
    def backward(lib, d_hs, _d_c_last, hs, state, saved, weights, m):
        """(d projected, d h0, d recurrent kernel, d recurrent bias). The recurrent side's gradients are dz, dr
        (d projected's) and d(rn) = dn r: dU's and the bias's z and r columns come from d projected, whose
        product's n block (u x u per row, a third more than dU needs) is dropped, rather than copying the z and
        r columns into a (T, B, 2u) array of their own."""
        import tensorflow as tf

        d_projected, d_rn, d_h0 = lib.gru_lab_gru_backward(d_hs, hs, state[0], *saved, weights[0], m)
        zr = 2 * tf.shape(hs)[2]
        d_kernel = tf.concat([_d_recurrent_kernel(state[0], hs, d_projected)[:, :zr],
                              _d_recurrent_kernel(state[0], hs, d_rn)], axis=1)
        d_bias = tf.concat([tf.reduce_sum(d_projected, [0, 1])[:zr], tf.reduce_sum(d_rn, [0, 1])], axis=0)
        return d_projected, d_h0, d_kernel, d_bias


class _OneBias:
    """Cells with one bias, added to the input projection; the ops take the recurrent kernel alone."""

    @staticmethod
    def split(recurrent_kernel, bias):
        return bias, (recurrent_kernel,)


class _Lstm(_OneBias):
    """LSTM: one bias (4u); states h and c; the ops keep (gates i, f, g, o; tanh c and c)."""

    states = 2

    @staticmethod
    def forward(lib, projected, state, weights, m, save: bool):
        hs, c_last, gates, cells = lib.gru_lab_lstm_forward(projected, *state, weights[0], m, save=save)
        return hs, c_last, (gates, cells)

    @staticmethod
    def table(lib, table, ids, state, weights, m, keep: bool, save: bool):
        out, c_last, gates, cells = lib.gru_lab_lstm_table_forward(table, ids, *state, weights[0], m,
                                                                   keep_sequence=keep, save=save)
        return out, c_last, (gates, cells)

    @staticmethod
    def backward(lib, d_hs, d_c_last, hs, state, saved, weights, m):
        """(d projected, d h0, d c0, d recurrent kernel)."""
        import tensorflow as tf

        d_c_last = tf.zeros_like(state[1]) if d_c_last is None else d_c_last
        d_projected, d_h0, d_c0 = lib.gru_lab_lstm_backward(d_hs, d_c_last, state[1], *saved, weights[0], m)
        return d_projected, d_h0, d_c0, _d_recurrent_kernel(state[0], hs, d_projected)


class _SimpleRnn(_OneBias):
    """SimpleRNN: one bias (u); the backward op needs only the states."""

    states = 1

    @staticmethod
    def forward(lib, projected, state, weights, m, _save: bool):
        return lib.gru_lab_rnn_forward(projected, state[0], weights[0], m), None, None

    @staticmethod
    def table(lib, table, ids, state, weights, m, keep: bool, _save: bool):
        """(out, None, None): the backward op needs only the states, which keep gives."""
        return lib.gru_lab_rnn_table_forward(table, ids, state[0], weights[0], m, keep_sequence=keep), None, None

    @staticmethod
    def backward(lib, d_hs, _d_c_last, hs, state, _saved, weights, m):
        """(d projected, d h0, d recurrent kernel)."""
        d_projected, d_h0 = lib.gru_lab_rnn_backward(d_hs, hs, weights[0], m)
        return d_projected, d_h0, _d_recurrent_kernel(state[0], hs, d_projected)


_CELLS = {"gru": _Gru, "lstm": _Lstm, "simple_rnn": _SimpleRnn}


def _batch_table(ids, embeddings, kernel, input_bias, row_scale=None, lib=None):
    """(table, ids into it): the input projection E[v] @ W + b of each distinct token v of the batch (ids
    (T, B)), once, and each step's row numbers in that table. A batch of IMDB reviews (64 x 200 tokens)
    holds ~2,200 distinct tokens, so this does a sixth of the projection's arithmetic (and of dW's and the
    inputs' gradient) at the same values: each row is the same dot products. With row_scale (B, d) the
    rows are (E[v] * row_scale[b]) @ W + b, one for each distinct (batch row b, token v) pair; each distinct
    token's embedding is still gathered once, so that the embedding's gradient has one row per token, as
    without dropout (Adam's fused update then applies: training.optimizers), and the pairs read those rows
    with _take (lib: the compiled library, whose table gradient sums the pairs' gradients; needed with
    row_scale).

    Tried and measured slower (docs/benchmarks.md, input dropout's table): each pair's row as the no-dropout
    row s E[v] @ W less the product of its batch row's dropped features (s = 1/(1-p)), a batched product per
    row. At IMDB's shapes it does ~0.7x the multiply-adds, but its small products and the gathers and sums
    around them run at memory's speed; a train step took longer (the code: commit 3aa96c1)."""
    import tensorflow as tf

    embeddings = tf.cast(embeddings, tf.float32)
    flat = tf.reshape(ids, [-1])  # time-major: entry i is batch row i % B
    if row_scale is None:
        distinct, index = tf.unique(flat)
        rows = tf.gather(embeddings, distinct)
    else:
        batch = tf.cast(tf.shape(ids)[1], tf.int64)
        tokens, token_of = tf.unique(flat)
        keys = tf.cast(token_of, tf.int64) * batch + tf.range(tf.size(flat, out_type=tf.int64)) % batch
        distinct, index = tf.unique(keys)
        by_token = _take(lib, tf.gather(embeddings, tokens), tf.cast(distinct // batch, tf.int32))
        rows = by_token * tf.gather(tf.stop_gradient(tf.cast(row_scale, tf.float32)), distinct % batch)
    table = tf.matmul(rows, kernel) + input_bias
    return table, tf.reshape(index, tf.shape(ids))


def _take(lib, params, index):
    """tf.gather(params (n, w), index (m,)), whose gradient sums the gathered rows' gradients with the compiled
    table gradient (deterministic, on all threads)."""
    import tensorflow as tf

    @tf.custom_gradient
    def take(params):
        def grad(d_taken):
            return lib.gru_lab_table_gradient(d_taken[None], index[None], tf.shape(params)[0])

        return tf.gather(params, index), grad

    return take(params)


def _d_recurrent_kernel(h0, hs, d_gates):
    """dU = sum_t h_{t-1}^T d_t, with h_{-1} = h0: split so that no (T, B, u) concatenation is copied
    (slices along the first axis share the tensor's memory)."""
    import tensorflow as tf

    return tf.matmul(h0, d_gates[0], transpose_a=True) + flat_matmul(hs[:-1], d_gates[1:], transpose_a=True)


def _project(x, kernel, input_bias):
    """x (T, B, d) @ W + b: (T, B, gates*u), one (T*B, d) @ (d, gates*u) product."""
    import tensorflow as tf

    steps, batch, d = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    return tf.reshape(tf.matmul(tf.reshape(x, [-1, d]), kernel) + input_bias, [steps, batch, -1])


def _loop(ops, lib, x, kernel, input_bias, state, weights, m, sequence: bool, save: bool):
    """(states (T, B, u) (sequence) or the last state (B, u), last c or None) from the time-major inputs x,
    differentiable. save=True (training) keeps each step's gates for the backward op; save=False (inference)
    does not, and a gradient asked for anyway runs the forward again.

    The projection is made here, inside the custom gradient, so that the forward op is its one reader and may
    write the gates over it; the projection's gradients (dW, the input bias's, the inputs') are therefore made
    here too, the same large products TensorFlow's own gradient of it would make."""
    import tensorflow as tf

    n = len(state)

    @tf.custom_gradient
    def loop(x, kernel, input_bias, *tensors):
        state, weights = tensors[:n], tensors[n:]
        hs, c_last, saved = ops.forward(lib, _project(x, kernel, input_bias), state, weights, m, save)
        out = hs if sequence else hs[-1]

        def grad(d_out, d_c_last=None):
            kept = saved if save else ops.forward(lib, _project(x, kernel, input_bias), state, weights, m, True)[2]
            d_projected, *rest = ops.backward(lib, d_out, d_c_last, hs, state, kept, weights, m)
            rows = tf.reshape(d_projected, [-1, tf.shape(d_projected)[2]])
            d_x = tf.reshape(tf.matmul(rows, kernel, transpose_b=True), tf.shape(x))
            d_kernel = tf.matmul(tf.reshape(x, [-1, tf.shape(x)[2]]), rows, transpose_a=True)
            return (d_x, d_kernel, tf.reduce_sum(rows, 0), *rest)

        return ((out, c_last) if c_last is not None else out), grad

    out = loop(x, kernel, input_bias, *state, *weights)
    return out if isinstance(out, (list, tuple)) else (out, None)


def _table_loop(ops, lib, table, ids, state, weights, m, sequence: bool, save: bool = False):
    """(states (T, B, u) (sequence) or the last state (B, u), last c or None), read from the token table;
    differentiable. save=True (training) keeps every state and each step's gates for the backward op;
    without it a gradient (rare at inference) runs the forward again with saving on. The table's gradient
    sums the gradients of the steps that read each row (GruLabTableGradient)."""
    import tensorflow as tf

    n = len(state)

    @tf.custom_gradient
    def loop(table, *tensors):
        state, weights = tensors[:n], tensors[n:]
        out, c_last, saved = ops.table(lib, table, ids, state, weights, m, sequence or save, save)
        result = out[-1] if save and not sequence else out

        def grad(d_out, d_c_last=None):
            hs, kept = out, saved
            if not save:
                hs, kept = ops.table(lib, table, ids, state, weights, m, True, True)[::2]
            d_projected, *rest = ops.backward(lib, d_out, d_c_last, hs, state, kept, weights, m)
            return (lib.gru_lab_table_gradient(d_projected, ids, tf.shape(table)[0]), *rest)

        return ((result, c_last) if c_last is not None else result), grad

    out = loop(table, *state, *weights)
    return out if isinstance(out, (list, tuple)) else (out, None)


def _outputs(hs, last, c_last, m, zero_output_for_mask: bool, return_sequences: bool):
    """(last_output, outputs, new_states) as fused.run returns them, from the states (T, B, u) or None, the
    last h and the last c (LSTM; else None)."""
    import tensorflow as tf

    new_states = [last] if c_last is None else [last, c_last]
    if m is not None and zero_output_for_mask:
        last = last * m[-1][:, None]
        hs = None if hs is None else hs * m[:, :, None]
    outputs = tf.transpose(hs, [1, 0, 2]) if return_sequences else last[:, None, :]
    return last, outputs, new_states


def main() -> int:
    """Build the compiled loops now (make install runs this); a build that failed before is tried again."""
    path = library_path()
    if path.exists():
        print(f"gru-lab: compiled loops already built: {path}")
        return 0
    cxx = compiler()
    if cxx is not None:
        _failure_marker(path, cxx).unlink(missing_ok=True)
    try:
        _build_once(path, notify=None)
    except RuntimeError as e:
        print(f"gru-lab: compiled loops not built: {e}; the fused TensorFlow loops will be used", file=sys.stderr)
        return 0  # not an error for the installation: everything works without it, only slower
    warnings = log_path(path).read_text().count("warning:")
    print(f"gru-lab: built {path}" + (f" ({warnings} compiler warnings, see {log_path(path)})" if warnings else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
