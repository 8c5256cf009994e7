"""The layer plan: every layer a config builds, with its exact parameter count and formula.

Pure (no TensorFlow), so `inspect`, `compare --equal-params` and the tests can reason about a model
without building it; models.build turns the same plan into Keras layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gru_lab import cells
from gru_lab.config import ModelConfig
from gru_lab.data.base import InputSpec


@dataclass
class LayerPlan:
    name: str
    kind: str  # Embedding, Conv1D, MaxPooling1D, GRU, LSTM, SimpleRNN, LayerNormalization, TimePooling, Dropout, Dense
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
                               options={"input_dim": v, "output_dim": e, "mask_zero": m.mask_zero,
                                        "trainable": m.embedding_trainable}))
        dim = e
        if m.embedding_dropout > 0:
            # One draw per token (noise shape batch x steps x 1): a dropped word loses its whole vector.
            plans.append(LayerPlan("embedding_dropout", "Dropout", 0, "0", e,
                                   options={"rate": m.embedding_dropout, "noise_shape": (None, None, 1)}))
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
        cell = cells.CELLS[m.cell]
        p = cell.params(dim, u) * directions
        formula = cell.formula(dim, u) + (" (x2 directions)" if m.bidirectional else "")
        out = 2 * u if (m.bidirectional and m.merge_mode == "concat") else u
        name = f"{'bi' if m.bidirectional else ''}{m.cell}_{i}"
        plans.append(LayerPlan(name, cell.keras_class, p, formula, out, recurrent=True,
                               options={"units": u, "input_dim": dim,
                                        "return_sequences": i < len(units) or m.pooling != "last"}))
        dim = out
        if m.layer_norm:
            plans.append(LayerPlan(f"layer_norm_{i}", "LayerNormalization", 2 * dim, f"2*dim = 2*{dim}", dim))
    if m.head == "none":
        # The stacked-GRU tutorial: GRU(50) -> GRU(1) fed straight to the loss. Its tanh output is not a probability;
        # Keras clips it into (0, 1) for binary cross-entropy, which is why that model trains poorly.
        return plans
    if m.pooling != "last":
        # Over the last recurrent layer's outputs at every step; padding steps are left out under a mask.
        out = 2 * dim if m.pooling == "max_mean" else dim
        plans.append(LayerPlan("pooling", "TimePooling", 0, "0", out, options={"mode": m.pooling}))
        dim = out
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
