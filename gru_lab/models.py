"""Config -> keras.Model, the exact parameter formulas, and the cuDNN eligibility rules.

plan_layers() is pure (no TensorFlow): it lists every layer with its parameter count and formula,
so `inspect`, `compare --equal-params` and the tests can reason about a model without building it.
build_model() turns the same plan into Keras layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gru_lab.config import ModelConfig
from gru_lab.data.base import InputSpec

CELL_CLASS = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def recurrent_params(cell: str, input_dim: int, units: int) -> int:
    """Weights of one recurrent layer (one direction) with d inputs and u units.

    SimpleRNN: u(d+u) + u. LSTM: 4u(d+u+1). GRU with reset_after=True (Keras's default, the
    cuDNN-compatible form): 3u(d+u+2), because it keeps separate input and recurrent biases.
    """
    d, u = input_dim, units
    if cell == "simple_rnn":
        return u * (d + u) + u
    if cell == "lstm":
        return 4 * u * (d + u + 1)
    if cell == "gru":
        return 3 * u * (d + u + 2)
    raise ValueError(f"cell must be one of {sorted(CELL_CLASS)}. Got {cell!r}.")


def recurrent_formula(cell: str, d: int, u: int) -> str:
    return {"simple_rnn": f"u(d+u)+u = {u}*({d}+{u})+{u}",
            "lstm": f"4u(d+u+1) = 4*{u}*({d}+{u}+1)",
            "gru": f"3u(d+u+2) = 3*{u}*({d}+{u}+2)"}[cell]


@dataclass
class LayerPlan:
    name: str
    kind: str  # Embedding, Conv1D, MaxPooling1D, GRU, LSTM, SimpleRNN, LayerNormalization, Dropout, Dense
    params: int
    formula: str
    output_dim: int
    recurrent: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def plan_layers(m: ModelConfig, spec: InputSpec) -> list[LayerPlan]:
    """Every layer the model will have, in order, with its exact parameter count."""
    plans: list[LayerPlan] = []
    dim = spec.features
    if spec.input_kind == "tokens":
        v, e = spec.vocab_size, m.embedding_dim
        plans.append(LayerPlan("embedding", "Embedding", v * e, f"V*E = {v}*{e}", e,
                               options={"input_dim": v, "output_dim": e, "mask_zero": m.mask_zero}))
        dim = e
    if m.conv is not None:
        k, f = m.conv.kernel_size, m.conv.filters
        plans.append(LayerPlan("conv1d", "Conv1D", k * dim * f + f, f"k*d*f+f = {k}*{dim}*{f}+{f}", f,
                               options={"filters": f, "kernel_size": k}))
        dim = f
        if m.conv.pool_size > 1:
            plans.append(LayerPlan("max_pooling1d", "MaxPooling1D", 0, "0", f, options={"pool_size": m.conv.pool_size}))
    units = m.layer_units()
    directions = 2 if m.bidirectional else 1
    for i, u in enumerate(units, start=1):
        p = recurrent_params(m.cell, dim, u) * directions
        formula = recurrent_formula(m.cell, dim, u) + (" (x2 directions)" if m.bidirectional else "")
        out = 2 * u if (m.bidirectional and m.merge_mode == "concat") else u
        name = f"{'bi' if m.bidirectional else ''}{m.cell}_{i}"
        plans.append(LayerPlan(name, CELL_CLASS[m.cell], p, formula, out, recurrent=True,
                               options={"units": u, "input_dim": dim, "return_sequences": i < len(units)}))
        dim = out
        if m.layer_norm:
            plans.append(LayerPlan(f"layer_norm_{i}", "LayerNormalization", 2 * dim, f"2*dim = 2*{dim}", dim))
    if m.head == "none":
        # Seed 001: GRU(50) -> GRU(1) fed straight to the loss. Its tanh output is not a probability;
        # Keras clips it into (0, 1) for binary cross-entropy, which is why that model trains poorly.
        return plans
    if m.head_dropout > 0:
        plans.append(LayerPlan("head_dropout", "Dropout", 0, "0", dim, options={"rate": m.head_dropout}))
    o = spec.outputs
    plans.append(LayerPlan("head", "Dense", (dim + 1) * o, f"(d+1)*o = ({dim}+1)*{o}", o,
                           options={"activation": head_activation(spec.task)}))
    return plans


def head_activation(task: str) -> str | None:
    return {"binary": "sigmoid", "multiclass": "softmax", "regression": None}[task]


def count_params(m: ModelConfig, spec: InputSpec) -> dict[str, int]:
    plans = plan_layers(m, spec)
    return {"total": sum(p.params for p in plans), "recurrent": sum(p.params for p in plans if p.recurrent)}


# ----------------------------------------------------------------------------- cuDNN


@dataclass
class CudnnVerdict:
    layer: str
    eligible: bool
    reasons: list[str]

    def describe(self) -> str:
        return "yes" if self.eligible else "no: " + "; ".join(self.reasons)


def cudnn_eligibility(m: ModelConfig, spec: InputSpec) -> list[CudnnVerdict]:
    """For each recurrent layer: can Keras 3 run it with the cuDNN kernel on a GPU, and if not, why."""
    reasons: list[str] = []
    if m.cell == "simple_rnn":
        reasons.append("SimpleRNN has no cuDNN kernel in Keras")
    else:
        if m.activation != "tanh":
            reasons.append(f"activation is {m.activation!r}, cuDNN needs 'tanh'")
        if (m.recurrent_activation or "sigmoid") != "sigmoid":
            reasons.append(f"recurrent_activation is {m.recurrent_activation!r}, cuDNN needs 'sigmoid'")
        if m.recurrent_dropout > 0:
            reasons.append("recurrent_dropout > 0")
        if m.unroll:
            reasons.append("unroll is true")
        if m.mask_zero and spec.padding == "pre":
            reasons.append("mask on left-padded (pre) sequences: cuDNN needs right padding, set data.padding: post")
    verdicts = []
    for plan in plan_layers(m, spec):
        if plan.recurrent:
            verdicts.append(CudnnVerdict(plan.name, not reasons, list(reasons)))
    return verdicts


def fast_path_eligibility(m: ModelConfig, spec: InputSpec) -> list[CudnnVerdict]:
    """For each recurrent layer: does it run gru-lab's fused CPU loop (fastrnn), and if not, why.
    On a GPU the layer runs Keras's cuDNN kernel instead (see cudnn_eligibility)."""
    reasons = fast_path_static_blockers(m)
    return [CudnnVerdict(plan.name, not reasons, list(reasons)) for plan in plan_layers(m, spec) if plan.recurrent]


# The token table costs vocabulary x d x gates*u multiply-adds per inference call; projecting the batch
# costs batch x T x d x gates*u. It is used where it pays from this batch size up (fastrnn reads it).
TABLE_BREAK_EVEN_BATCH = 256


def token_table_eligibility(m: ModelConfig, spec: InputSpec) -> CudnnVerdict | None:
    """At evaluation/prediction on a CPU, does the first recurrent layer read its input projections from
    a token table (fastrnn: E @ W_gate + b looked up per token), and if not, why. None without tokens."""
    if spec.input_kind != "tokens":
        return None
    first = next(p for p in plan_layers(m, spec) if p.recurrent)
    reasons = list(fast_path_static_blockers(m))
    if m.conv is not None:
        reasons.append("a Conv1D sits between the Embedding and the recurrent layer")
    vocabulary = spec.vocab_size or 0
    if vocabulary > spec.timesteps * TABLE_BREAK_EVEN_BATCH:
        reasons.append(f"vocabulary {vocabulary:,} > {TABLE_BREAK_EVEN_BATCH} x {spec.timesteps} time steps: "
                       "projecting each batch costs less")
    return CudnnVerdict(first.name, not reasons, reasons)


def native_loop_blockers(m: ModelConfig) -> list[str]:
    """What keeps a model's recurrent layers from gru-lab's compiled GRU loops (gru_lab.native); empty = none.
    The run settings (train.xla on, a GPU) and whether the ops built are runtime.plan_execution's part."""
    reasons = [] if m.cell == "gru" else [f"cell is {m.cell!r}; the compiled loops are GRU's"]
    return reasons + fast_path_static_blockers(m)


def fast_path_static_blockers(m: ModelConfig) -> list[str]:
    """Settings that keep a layer from ever running fused; with none, build_model builds the fused class."""
    reasons = []
    if m.fast_path == "off":
        reasons.append("model.fast_path is 'off'")
    if m.activation != "tanh":
        reasons.append(f"activation is {m.activation!r}, the fused loop needs 'tanh'")
    if m.cell != "simple_rnn" and (m.recurrent_activation or "sigmoid") != "sigmoid":
        reasons.append(f"recurrent_activation is {m.recurrent_activation!r}, the fused loop needs 'sigmoid'")
    if m.recurrent_dropout > 0:
        reasons.append("recurrent_dropout > 0")
    if m.unroll:
        reasons.append("unroll is true")
    return reasons


# ----------------------------------------------------------------------------- build


def build_model(m: ModelConfig, spec: InputSpec):
    """The Keras model for this config and data; layer names and sizes follow plan_layers()."""
    import keras
    from keras import layers

    if spec.input_kind == "tokens":
        inputs = keras.Input(shape=(spec.timesteps,), dtype="int32", name="tokens")
    else:
        inputs = keras.Input(shape=(spec.timesteps, spec.features), dtype="float32", name="sequence")
    # A left-padded mask makes Keras's cuDNN path fail at run time; run those layers without cuDNN.
    use_cudnn = "auto" if not (m.mask_zero and spec.padding == "pre") else False
    x = inputs
    for plan in plan_layers(m, spec):
        o = plan.options
        if plan.kind == "Embedding":
            embedding = layers.Embedding
            if not fast_path_static_blockers(m):
                from gru_lab.fastrnn import Embedding as embedding  # lets the fused layer after it use a token table
            layer = embedding(o["input_dim"], o["output_dim"], mask_zero=o["mask_zero"], name=plan.name)
        elif plan.kind == "Conv1D":
            layer = layers.Conv1D(o["filters"], o["kernel_size"], padding="same", activation="relu", name=plan.name)
        elif plan.kind == "MaxPooling1D":
            layer = layers.MaxPooling1D(o["pool_size"], name=plan.name)
        elif plan.recurrent:
            kwargs: dict[str, Any] = dict(
                units=o["units"], activation=m.activation, dropout=m.dropout,
                recurrent_dropout=m.recurrent_dropout, return_sequences=o["return_sequences"], unroll=m.unroll,
            )
            if m.cell != "simple_rnn":
                kwargs["recurrent_activation"] = m.recurrent_activation or "sigmoid"
                kwargs["use_cudnn"] = use_cudnn
            cell_layer = getattr(layers, CELL_CLASS[m.cell])
            if not fast_path_static_blockers(m):
                from gru_lab.fastrnn import FAST_CLASSES

                cell_layer = FAST_CLASSES[m.cell]  # a subclass: same arguments and weights, faster loop on CPU
            if m.bidirectional:
                layer = layers.Bidirectional(cell_layer(**kwargs), merge_mode=m.merge_mode, name=plan.name)
            else:
                layer = cell_layer(name=plan.name, **kwargs)
        elif plan.kind == "LayerNormalization":
            layer = layers.LayerNormalization(name=plan.name)
        elif plan.kind == "Dropout":
            layer = layers.Dropout(o["rate"], name=plan.name)
        elif plan.kind == "Dense":
            # Under mixed precision the output stays float32: a float16 sigmoid/softmax loses the loss's precision.
            head_dtype = "float32" if keras.mixed_precision.global_policy().name == "mixed_float16" else None
            layer = layers.Dense(spec.outputs, activation=o["activation"], name=plan.name, dtype=head_dtype)
        else:  # pragma: no cover - plan_layers only emits the kinds above
            raise RuntimeError(f"unknown layer kind {plan.kind}")
        x = layer(x)
    return keras.Model(inputs, x, name=f"{m.cell}_model")


def layer_params(model) -> list[dict[str, Any]]:
    """Per-layer parameter counts as Keras counts them (input layer excluded)."""
    return [{"name": layer.name, "class": layer.__class__.__name__, "params": int(layer.count_params())}
            for layer in model.layers if layer.__class__.__name__ != "InputLayer"]
