"""Config -> keras.Model, following the layer plan (models.plan) layer by layer."""

from __future__ import annotations

from typing import Any

from gru_lab import cells
from gru_lab.config import ModelConfig
from gru_lab.data.base import InputSpec
from gru_lab.models.kernels import loop_blockers
from gru_lab.models.plan import plan_layers


def build_model(m: ModelConfig, spec: InputSpec):
    """The Keras model for this config and data; layer names and sizes follow plan_layers()."""
    import keras
    from keras import layers

    if spec.input_kind == "tokens":
        inputs = keras.Input(shape=(input_steps(m, spec),), dtype="int32", name="tokens")
    else:
        inputs = keras.Input(shape=(input_steps(m, spec), spec.features), dtype="float32", name="sequence")
    # A left-padded mask makes Keras's cuDNN path fail at run time; run those layers without cuDNN.
    use_cudnn = "auto" if not ((m.mask_zero or spec.masked) and spec.padding == "pre") else False
    own_loops = not loop_blockers(m)  # the layers check the rest (device, compiled or fused) when called
    x = inputs
    if spec.masked:
        from gru_lab.data.base import MASK_VALUE

        # Steps whose every feature is MASK_VALUE are padding: masked, so the recurrent layers skip them.
        x = layers.Masking(mask_value=MASK_VALUE, name="masking")(x)
    for plan in plan_layers(m, spec):
        o = plan.options
        if plan.kind == "Embedding":
            embedding = layers.Embedding
            if own_loops:
                from gru_lab.rnn.layers import Embedding as embedding  # lets the layer after it use a token table
            layer = embedding(o["input_dim"], o["output_dim"], mask_zero=o["mask_zero"], trainable=o["trainable"],
                              name=plan.name)
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
            cell_layer = getattr(layers, cells.CELLS[m.cell].keras_class)
            if own_loops:
                from gru_lab.rnn.layers import CLASSES

                cell_layer = CLASSES[m.cell]  # a subclass: same arguments and weights, gru-lab's loops on a CPU
            if m.bidirectional:
                layer = layers.Bidirectional(cell_layer(**kwargs), merge_mode=m.merge_mode, name=plan.name)
            else:
                layer = cell_layer(name=plan.name, **kwargs)
        elif plan.kind == "TimePooling":
            from gru_lab.models.pooling import TimePooling

            layer = TimePooling(o["mode"], name=plan.name)
        elif plan.kind == "LayerNormalization":
            layer = layers.LayerNormalization(name=plan.name)
        elif plan.kind == "Dropout":
            layer = layers.Dropout(o["rate"], noise_shape=o.get("noise_shape"), name=plan.name)
        elif plan.kind == "Dense":
            # Under mixed precision the output stays float32: a float16 sigmoid/softmax loses the loss's precision.
            head_dtype = "float32" if keras.mixed_precision.global_policy().name == "mixed_float16" else None
            layer = layers.Dense(spec.outputs, activation=o["activation"], name=plan.name, dtype=head_dtype)
        else:  # pragma: no cover - plan_layers only emits the kinds above
            raise RuntimeError(f"unknown layer kind {plan.kind}")
        x = layer(x)
    return keras.Model(inputs, x, name=f"{m.cell}_model")


def input_steps(m: ModelConfig, spec: InputSpec) -> int | None:
    """The input's length: None (any) where padding is masked (token ids with mask_zero, or the real-valued
    sequences of data.name: sequences behind their Masking layer), since gru-lab's pipelines then trim each
    batch to its longest sequence (training.pipeline) and short ones make batches shorter than maxlen; Keras's
    predict checks the concrete batch against the input's shape. Unrolled loops need the length fixed."""
    masked = m.mask_zero if spec.input_kind == "tokens" else spec.masked
    return None if masked and not m.unroll else spec.timesteps


def layer_params(model) -> list[dict[str, Any]]:
    """Per-layer parameter counts as Keras counts them (input layer excluded)."""
    return [{"name": layer.name, "class": layer.__class__.__name__, "params": int(layer.count_params())}
            for layer in model.layers if layer.__class__.__name__ != "InputLayer"]
