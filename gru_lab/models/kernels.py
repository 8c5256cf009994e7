"""The kernel plan: for each recurrent layer (each direction of a bidirectional one), which kernel its
training and its inference run, and why not a faster one; with the run settings that decide it (device,
XLA, mixed precision).

plan_kernels() is the one place these rules live. It is pure: the machine comes in as Facts (does
TensorFlow see a GPU; can the compiled loops run here). `train` applies the plan and records it beside
what the layers report they ran; `inspect` prints it; `compare` and `bench` read the records.

Kernels, the fastest first on their device: "cudnn" (Keras's cuDNN kernel, GPU), "compiled" (gru-lab's
C++ loops), "fused" (gru-lab's TensorFlow loops), "keras-loop" (Keras's generic step-by-step loop).
"compiled-table" (training and inference) and "fused-table" (inference) read the first recurrent layer's
input projections from a token table instead of projecting each step's embedded input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gru_lab.config import ExperimentConfig, ModelConfig
from gru_lab.data.base import InputSpec
from gru_lab.errors import GruLabError
from gru_lab.models.plan import plan_layers
from gru_lab.rnn import support

# The tier a kernel belongs to: runs compare fairly on speed only within one tier.
TIER = {"cudnn": "cudnn", "compiled": "compiled", "compiled-table": "compiled", "fused": "fused",
        "fused-table": "fused", "keras-loop": "keras-loop"}
# Kernel names in records written before the loops had one name.
LEGACY_NAMES = {"native-cpu": "compiled", "native-table": "compiled-table", "fused-cpu": "fused"}


@dataclass(frozen=True)
class Facts:
    """What the plan needs to know about the machine (training.device.machine_facts() reads it)."""

    gpu: bool = False  # TensorFlow sees a GPU
    compiled: str | None = None  # why gru-lab's compiled loops cannot run here; None = they can


@dataclass
class LayerKernels:
    layer: str  # "gru_1", or "bigru_1/forward" and "bigru_1/backward"
    train: str
    inference: str
    train_why: list[str] = field(default_factory=list)  # why training does not run a faster kernel
    inference_why: list[str] = field(default_factory=list)  # why inference does not


@dataclass
class KernelPlan:
    device: str  # "cpu" or "gpu": where the run's ops are placed
    xla: bool  # the train steps (and validation during fit) are XLA-compiled
    xla_inference: bool  # the final evaluate/predict steps are
    mixed_precision: bool  # float16 compute, float32 weights
    compiled: bool  # the run turns gru-lab's compiled loops on
    layers: list[LayerKernels]
    notes: list[str] = field(default_factory=list)  # why a request was not honoured, if it was not

    def record(self) -> dict[str, Any]:
        return {"device": self.device, "xla": self.xla, "xla_inference": self.xla_inference,
                "compiled_loops": self.compiled, "mixed_precision": self.mixed_precision, "notes": self.notes,
                "planned": [vars(layer) for layer in self.layers]}


def loop_blockers(m: ModelConfig) -> list[str]:
    """What keeps a model's recurrent layers from gru-lab's loops on any device; empty = nothing."""
    reasons = ["model.loops is 'keras'"] if m.loops == "keras" else []
    return reasons + support.loop_blockers(m.cell, m.activation, m.recurrent_activation or "sigmoid",
                                           m.recurrent_dropout, m.unroll)


def cudnn_blockers(m: ModelConfig, spec: InputSpec) -> list[str]:
    """What keeps Keras 3 from running the recurrent layers with the cuDNN kernel on a GPU; empty = nothing."""
    if m.cell == "simple_rnn":
        return ["SimpleRNN has no cuDNN kernel in Keras"]
    reasons = []
    if m.activation != "tanh":
        reasons.append(f"activation is {m.activation!r}, cuDNN needs 'tanh'")
    if (m.recurrent_activation or "sigmoid") != "sigmoid":
        reasons.append(f"recurrent_activation is {m.recurrent_activation!r}, cuDNN needs 'sigmoid'")
    if m.recurrent_dropout > 0:
        reasons.append("recurrent_dropout > 0")
    if m.unroll:
        reasons.append("unroll is true")
    if (m.mask_zero or spec.masked) and spec.padding == "pre":
        reasons.append("mask on left-padded (pre) sequences: cuDNN needs right padding, set data.padding: post")
    return reasons


def table_blockers(m: ModelConfig, spec: InputSpec, kernel: str = "fused", training: bool = False) -> list[str] | None:
    """Why the first recurrent layer, on this kernel ("compiled" or "fused"), does not read its input
    projections from a token table in training (training=True) or at inference; None without token inputs.

    The compiled loops read the batch's own table (each distinct token of the batch projected once; with input
    dropout, whose mask is one per batch row, each distinct (row, token) pair), which never costs more than
    projecting the batch, in training and at inference; the fused loops read a table of
    the whole vocabulary, at inference only, where it pays (support.table_blockers)."""
    if spec.input_kind != "tokens":
        return None
    reasons = loop_blockers(m)
    if m.conv is not None:
        reasons.append("a Conv1D sits between the Embedding and the recurrent layer")
    if kernel != "compiled":
        return reasons + (["the fused loops read a token table at inference only"] if training
                          else support.table_blockers(spec.vocab_size or 0, spec.timesteps))
    if training and m.embedding_dropout > 0:
        reasons.append("model.embedding_dropout > 0 (each step's embedded input differs in training)")
    return reasons


def compiled_blockers(cfg: ExperimentConfig, facts: Facts) -> list[str]:
    """Why a CPU run of this config does not run the compiled loops (given gru-lab's loops apply)."""
    reasons = support.compiled_blockers(cfg.model.cell)
    if cfg.train.xla == "on":
        reasons.append("train.xla is 'on' (the compiled ops have no XLA kernel)")
    if facts.compiled:
        reasons.append(facts.compiled)
    return reasons


def plan_kernels(cfg: ExperimentConfig, spec: InputSpec, facts: Facts) -> KernelPlan:
    """The kernel plan of a run of cfg on data of this spec, on a machine with these facts."""
    t, m = cfg.train, cfg.model
    if t.device == "gpu" and not facts.gpu:
        raise GruLabError("'train.device' is 'gpu' but TensorFlow sees no GPU on this machine; "
                          "use 'auto' or 'cpu', or install the GPU build (pip install -e '.[gpu]').")
    device = "gpu" if facts.gpu and t.device != "cpu" else "cpu"
    notes: list[str] = []
    blocked = loop_blockers(m)
    not_compiled = compiled_blockers(cfg, facts)
    compiled = device == "cpu" and not blocked and not not_compiled
    if (device == "cpu" and not blocked and not support.compiled_blockers(m.cell) and t.xla != "on"
            and facts.compiled and "=0" not in facts.compiled):
        notes.append(f"compiled loops unavailable ({facts.compiled}); the fused TensorFlow loops run instead")
    xla, xla_inference = _xla(cfg, device, compiled, notes)
    mixed = bool(t.mixed_precision)
    if mixed and device == "cpu":
        notes.append("mixed_precision requested but the run is on a CPU, where float16 is slower: not used")
        mixed = False
    layers = _layer_kernels(cfg, spec, device, blocked, not_compiled)
    return KernelPlan(device, xla, xla_inference, mixed, compiled, layers, notes)


def _xla(cfg: ExperimentConfig, device: str, compiled: bool, notes: list[str]) -> tuple[bool, bool]:
    """(train steps under XLA, evaluate/predict under XLA). Why each choice: docs/benchmarks.md."""
    setting = cfg.train.xla
    if setting == "auto" and compiled:
        # The compiled ops have no XLA kernel, and they beat the fused loop under XLA.
        notes.append("xla auto: the recurrent layers run gru-lab's compiled loops (faster than the fused loop "
                     "under XLA), so XLA is off")
        return False, False
    if setting == "auto":
        # CPU: XLA fuses the fused loops' gate math: GRU and SimpleRNN train faster with it, and every cell
        # evaluates and predicts faster with it; LSTM's train step measured slower under XLA, so LSTM trains
        # without it. GPU: Keras's cuDNN kernels cannot be XLA-compiled; XLA would silently cost cuDNN.
        xla_inference = device == "cpu"
        xla = xla_inference and cfg.model.cell != "lstm"
        if xla_inference and not xla:
            notes.append("xla auto: LSTM trains without XLA (measured slower with it); evaluate/predict use it")
        return xla, xla_inference
    xla = setting == "on"
    if xla and device == "gpu":
        notes.append("xla on a GPU: Keras turns XLA off for any layer that runs the cuDNN kernel")
    return xla, xla


def _layer_kernels(cfg: ExperimentConfig, spec: InputSpec, device: str, blocked: list[str],
                   not_compiled: list[str]) -> list[LayerKernels]:
    m = cfg.model
    recurrent = [p for p in plan_layers(m, spec) if p.recurrent]
    rows = []
    for index, plan in enumerate(recurrent):
        if device == "gpu":
            why = cudnn_blockers(m, spec)
            train = inference = "keras-loop" if why else "cudnn"
            train_why, inference_why = why, list(why)
        elif blocked:
            train = inference = "keras-loop"
            train_why, inference_why = list(blocked), list(blocked)
        else:
            loop = "fused" if not_compiled else "compiled"
            if loop == "compiled":
                train_why = _table_why(m, spec, index, loop, training=True)
                train = "compiled" if train_why else "compiled-table"
            else:
                train, train_why = "fused", []
            inference_why = _table_why(m, spec, index, loop, training=False)
            inference = f"{loop}-table" if not inference_why else loop if loop == "compiled" else "keras-loop"
            train_why, inference_why = train_why + not_compiled, inference_why + not_compiled
        parts = [f"{plan.name}/forward", f"{plan.name}/backward"] if m.bidirectional else [plan.name]
        rows += [LayerKernels(name, train, inference, list(train_why), list(inference_why)) for name in parts]
    return rows


def _table_why(m: ModelConfig, spec: InputSpec, index: int, loop: str, training: bool) -> list[str]:
    """Why recurrent layer number index (0: the first) does not read a token table on this loop."""
    if index:
        return ["only the first recurrent layer reads its inputs from a token table"]
    why = table_blockers(m, spec, loop, training)
    return ["the inputs are not token ids"] if why is None else why


def kernel_text(execution: dict | None, inference: bool = False) -> str | None:
    """The recurrent kernel(s) a run record's training steps ran (inference=True: its evaluation and
    prediction), from metrics.json's execution, e.g. "compiled" or "fused+xla"; None for a record
    without kernels. Records from before the loops had one name read in today's names."""
    if not execution or not execution.get("kernels"):
        return None
    key, xla = ("inference", "xla_inference") if inference else ("kernel", "xla")
    kinds = {LEGACY_NAMES.get(k.get(key, k["kernel"]), k.get(key, k["kernel"])) for k in execution["kernels"]}
    return "/".join(sorted(kinds)) + ("+xla" if execution.get(xla) else "")


def tier(kernel: str | None) -> str | None:
    """The tier of a kernel text (kernel_text), e.g. "fused+xla" -> "fused"; None when unknown or mixed."""
    if not kernel:
        return None
    tiers = {TIER.get(LEGACY_NAMES.get(k, k)) for k in kernel.removesuffix("+xla").split("/")}
    return tiers.pop() if len(tiers) == 1 and None not in tiers else None
