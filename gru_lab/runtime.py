"""How a run executes: CPU or GPU, XLA or not, mixed precision, and which recurrent kernel really ran.

train() asks plan_execution() once per run; the decisions and their reasons go into metrics.json
("execution"), so a record always says how its timings were obtained.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from gru_lab.errors import GruLabError


@dataclass
class Execution:
    device: str  # "cpu" or "gpu": where this run's ops are placed
    xla: bool  # the train steps (and validation during fit) are XLA-compiled (Keras jit_compile)
    mixed_precision: bool  # float16 compute, float32 weights (Keras mixed_float16)
    notes: list[str] = field(default_factory=list)  # why a request was not honoured, if it was not
    pin_cpu: bool = False  # GPUs could not be hidden (TensorFlow had started): place ops with tf.device
    xla_inference: bool | None = None  # the final evaluate/predict steps; None = same as xla
    native: bool = False  # GRU layers run gru-lab's compiled loops (gru_lab.native); never together with XLA

    def __post_init__(self):
        if self.xla_inference is None:
            self.xla_inference = self.xla

    def record(self) -> dict[str, Any]:
        return {"device": self.device, "xla": self.xla, "xla_inference": self.xla_inference,
                "native_loops": self.native, "mixed_precision": self.mixed_precision, "notes": self.notes}


def plan_execution(train_cfg, cell: str | None = None, native_eligible: bool = False) -> Execution:
    """Decide device, XLA, compiled loops and precision for a run from train.device/xla/mixed_precision,
    the model's cell, whether its recurrent layers can run gru-lab's compiled loops (native_eligible: a
    GRU model with no fast-path blocker) and the GPUs TF sees.

    Call it before anything else touches TensorFlow in the run: hiding the GPUs for device "cpu" only
    works before TensorFlow's runtime starts."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")  # physical: asking does not start the runtime
    notes: list[str] = []
    pin_cpu = False
    if train_cfg.device == "gpu" and not gpus:
        raise GruLabError("'train.device' is 'gpu' but TensorFlow sees no GPU on this machine; "
                          "use 'auto' or 'cpu', or install the GPU build (pip install -e '.[gpu]').")
    device = "gpu" if gpus and train_cfg.device != "cpu" else "cpu"
    if gpus and device == "cpu":
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            pin_cpu = True
            notes.append("TensorFlow had already started, so the GPUs stay visible; ops are pinned to CPU:0")
    # The compiled GRU loops have no XLA kernel: a run uses them only with XLA off. Under xla auto they
    # win (seed 000's train step, batch 64: 56-59 ms with them, 83 ms fused under XLA), so auto turns XLA
    # off for such a model; xla on keeps XLA and the TensorFlow loops.
    native_ok = device == "cpu" and native_eligible and train_cfg.xla != "on" and _native_available(notes)
    if train_cfg.xla == "auto" and native_ok:
        xla = xla_inference = False
        notes.append("xla auto: GRU layers run gru-lab's compiled loops (faster than the fused loop under XLA), "
                     "so XLA is off")
    elif train_cfg.xla == "auto":
        # CPU: XLA fuses the recurrent step's elementwise gate math: GRU and SimpleRNN train faster with
        # it (fused layers, batch 64, T=200: 83 vs 87 and 28 vs 37 ms a step) and every cell evaluates
        # and predicts faster with it. LSTM's train step measured slower under XLA (110 vs 96 ms), so
        # LSTM models train without it and compile only their evaluation and prediction.
        # GPU: Keras's cuDNN kernels cannot be XLA-compiled; XLA there would silently cost cuDNN.
        xla_inference = device == "cpu"
        xla = xla_inference and cell != "lstm"
        if xla_inference and not xla:
            notes.append("xla auto: LSTM trains without XLA (measured slower with it); evaluate/predict use it")
    else:
        xla = xla_inference = train_cfg.xla == "on"
    if xla and device == "gpu":
        notes.append("xla on a GPU: Keras turns XLA off for any layer that runs the cuDNN kernel")
    mixed = bool(train_cfg.mixed_precision)
    if mixed and device == "cpu":
        notes.append("mixed_precision requested but the run is on a CPU, where float16 is slower: not used")
        mixed = False
    return Execution(device=device, xla=xla, mixed_precision=mixed, notes=notes, pin_cpu=pin_cpu,
                     xla_inference=xla_inference, native=native_ok)


def _native_available(notes: list[str]) -> bool:
    from gru_lab import native

    state = native.status()
    if not state["available"] and state["reason"] != "GRU_LAB_NATIVE=0":
        notes.append(f"compiled GRU loops unavailable ({state['reason']}); the TensorFlow loops run instead")
    return state["available"]


@contextlib.contextmanager
def executing(execution: Execution):
    """Device placement and precision policy for the duration of one run, restored afterwards."""
    import keras
    import tensorflow as tf

    from gru_lab import native

    previous = keras.mixed_precision.global_policy().name
    if execution.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with tf.device("/CPU:0") if execution.pin_cpu else contextlib.nullcontext(), \
                native.native_loops(execution.native):
            yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def kernels_used(model, execution: Execution) -> list[dict[str, str]]:
    """For each recurrent layer (each direction of a bidirectional one): the kernel its training steps
    ran ("kernel") and the one its last evaluation/prediction ran ("inference").

    "fused-cpu": gru-lab's fused loop (fastrnn); "fused-table": the forward-only fused loop reading each
    gate's projection of the vocabulary from a table (a layer right after gru-lab's Embedding, at
    inference); "native-cpu" / "native-table": the same with gru-lab's compiled GRU loops (gru_lab.native);
    "cudnn": Keras's cuDNN kernel; "keras-loop": Keras's generic step-by-step loop."""
    from keras import layers

    rows = []
    for layer in model.layers:
        parts = [(layer.name, layer)]
        if isinstance(layer, layers.Bidirectional):
            parts = [(f"{layer.name}/forward", layer.forward_layer), (f"{layer.name}/backward", layer.backward_layer)]
        for name, part in parts:
            if not isinstance(part, layers.RNN):
                continue
            # Keras marks a layer not XLA-compilable exactly when it took the cuDNN path
            cudnn = execution.device == "gpu" and isinstance(part, (layers.GRU, layers.LSTM)) and not part.supports_jit
            plain = "cudnn" if cudnn else "keras-loop"
            native = "native-" if getattr(part, "native_used", False) else "fused-"
            kernel = native + "cpu" if getattr(part, "fast_path_used", False) else plain
            if getattr(part, "table_inference_used", False):
                inference = native + "table"
            else:
                inference = "native-cpu" if getattr(part, "native_inference_used", False) else plain
            rows.append({"layer": name, "class": f"{type(part).__module__}.{type(part).__name__}", "kernel": kernel,
                         "inference": inference})
    return rows


def kernel_text(execution: dict | None, inference: bool = False) -> str | None:
    """The recurrent kernel(s) a run record's training steps ran (inference=True: its evaluation and
    prediction), from metrics.json's execution, e.g. "native-cpu" or "fused-cpu (xla)"; None for a record
    without kernels."""
    if not execution or not execution.get("kernels"):
        return None
    key, xla = ("inference", "xla_inference") if inference else ("kernel", "xla")
    kinds = "+".join(sorted({k.get(key, k["kernel"]) for k in execution["kernels"]}))
    return kinds + (" (xla)" if execution.get(xla) else "")
