"""Models made of stock Keras layers only, so that plain Keras (and TensorFlow Serving) loads them without gru-lab.

gru-lab's layers (gru_lab.rnn.layers) subclass Keras's and keep their arguments and weights; only their
serialized name differs ("gru_lab>GRU"). A stock copy is the same model config with those names replaced by
Keras's own, built and given the same weights, so it computes what the original computes.
"""

from __future__ import annotations

from typing import Any

from gru_lab.rnn.layers import PACKAGE


def stock_config(config: Any) -> Any:
    """A serialized Keras object with every gru-lab layer swapped for the Keras layer it subclasses. Layers with
    no stock twin (models.pooling.TimePooling, registered as gru_lab.models>) stay: such a model needs gru-lab."""
    if isinstance(config, dict):
        if str(config.get("module", "")).startswith(f"{PACKAGE}.rnn") or str(
                config.get("registered_name", "")).startswith(f"{PACKAGE}>"):
            config = {**config, "module": "keras.layers", "registered_name": None}
        return {k: stock_config(v) for k, v in config.items()}
    if isinstance(config, list):
        return [stock_config(v) for v in config]
    return config


def fixed_steps(config: Any, steps: int) -> Any:
    """A serialized model whose inputs of any length (batch_shape (None, None, ...)) take `steps` steps."""
    if isinstance(config, dict):
        if config.get("class_name") == "InputLayer":
            shape = list(config.get("config", {}).get("batch_shape") or [])
            if len(shape) >= 2 and shape[1] is None:
                shape[1] = steps
                return {**config, "config": {**config["config"], "batch_shape": shape}}
        return {k: fixed_steps(v, steps) for k, v in config.items()}
    if isinstance(config, list):
        return [fixed_steps(v, steps) for v in config]
    return config


def stock_copy(model, steps: int | None = None):
    """The model rebuilt from stock Keras layers, with the same weights (the model itself when it has no gru-lab
    layer and nothing to fix). The copy runs Keras's own loops. steps: the input length to declare where the model
    takes any (a masked input trains on batches trimmed to their longest sequence; a model a run saves or exports
    declares its maxlen, which is what predict and a serving signature feed it)."""
    import keras

    config = keras.saving.serialize_keras_object(model)
    stock = stock_config(config)
    if steps is not None:
        stock = fixed_steps(stock, steps)
    if stock == config:
        return model
    copy = keras.saving.deserialize_keras_object(stock)
    copy.set_weights(model.get_weights())
    return copy
