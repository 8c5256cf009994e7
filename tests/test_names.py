"""gru_lab.names holds what Keras accepts without importing it; these tests hold it to Keras itself."""

from __future__ import annotations

import numpy as np
import pytest

from gru_lab.names import ACTIVATIONS, TASK_METRICS, logged_quantities, monitor_mode


def test_activations_are_every_keras_activation_a_recurrent_cell_can_take():
    import keras
    from keras.src.activations import ALL_OBJECTS_DICT

    x = keras.ops.convert_to_tensor(np.linspace(-2, 2, 12).reshape(2, 2, 3).astype("float32"))
    working = []
    for name in ALL_OBJECTS_DICT:
        try:
            y = keras.activations.get(name)(x)
        except (TypeError, ValueError):
            continue
        if tuple(y.shape) == tuple(x.shape):
            working.append(name)
    assert sorted(ACTIVATIONS) == sorted(working)
    layer = keras.layers.GRU(3, activation="relu6", recurrent_activation="hard_sigmoid")  # one through a real cell
    assert tuple(layer(x).shape) == (2, 3)


@pytest.mark.parametrize("task", sorted(TASK_METRICS))
def test_logged_quantities_are_what_keras_logs_and_monitor_modes_what_it_infers(task):
    import keras

    from gru_lab.training.fit import loss_and_metrics

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype("float32")
    y = {"binary": rng.integers(0, 2, 8).astype("float32"), "multiclass": rng.integers(0, 3, 8),
         "regression": rng.normal(size=8).astype("float32")}[task]
    outputs = {"binary": 1, "multiclass": 3, "regression": 1}[task]
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(outputs)])
    loss, metrics = loss_and_metrics(task)
    model.compile(optimizer="sgd", loss=loss, metrics=metrics)
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y))
    assert sorted(history.history) == sorted(logged_quantities(task, validation=True))
    assert logged_quantities(task, validation=False) == [n for n in logged_quantities(task, True) if "val_" not in n]
    for monitor in logged_quantities(task, validation=True):
        es = keras.callbacks.EarlyStopping(monitor=monitor, mode="auto")
        es.set_model(model)
        es._set_monitor_op()
        assert monitor_mode(monitor) == ("max" if es.monitor_op is keras.ops.greater else "min"), monitor
