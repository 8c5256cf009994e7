"""TimePooling: a recurrent layer's outputs pooled over time (model.pooling), padding steps left out.

Keras's GlobalMaxPooling1D ignores a mask, so under masked padding it would pool the padding steps'
outputs too (zeros, or the last real step's output repeated); this layer takes the mask. Registered
with Keras so that a saved model.keras loads again (imported by models.build and runs.records).
"""

from __future__ import annotations

import keras
from keras import ops

MODES = ("max", "mean", "max_mean")


# Not "gru_lab": rnn.portable swaps layers of that package for their stock twins, and Keras has none for this one.
@keras.saving.register_keras_serializable(package="gru_lab.models")
class TimePooling(keras.layers.Layer):
    """(batch, steps, features) -> (batch, features), or (batch, 2 * features) for max_mean (max first)."""

    def __init__(self, mode: str = "max", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"TimePooling mode must be one of {list(MODES)}. Got {mode!r}.")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs, mask=None):
        steps = ops.shape(inputs)[1]
        if mask is None:
            valid = ops.ones((ops.shape(inputs)[0], steps, 1), dtype="bool")
        else:
            valid = ops.expand_dims(ops.cast(mask, "bool"), -1)
        count = ops.sum(ops.cast(valid, inputs.dtype), axis=1)  # (batch, 1): real steps per row
        parts = []
        if self.mode in ("max", "max_mean"):
            lowest = ops.full_like(inputs, float("-inf"))
            peak = ops.max(ops.where(valid, inputs, lowest), axis=1)
            parts.append(ops.where(count > 0, peak, ops.zeros_like(peak)))  # a row of padding only pools to 0
        if self.mode in ("mean", "max_mean"):
            total = ops.sum(ops.where(valid, inputs, ops.zeros_like(inputs)), axis=1)
            parts.append(total / ops.maximum(count, 1))
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None  # the time axis is gone

    def compute_output_shape(self, input_shape):
        features = input_shape[-1]
        return (input_shape[0], None if features is None else features * (2 if self.mode == "max_mean" else 1))

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
