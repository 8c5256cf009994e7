"""Ctrl-C remembered: a KeyboardInterrupt that Python swallows (raised inside a finalizer) still stops a fit."""

from __future__ import annotations

import signal

import keras
import numpy as np
import pytest

from gru_lab.training.callbacks import StopWhenPressed
from gru_lab.training.interrupt import remembered


@pytest.fixture
def python_ctrl_c():
    """Python's own SIGINT handler for the test (another test or library may have left a different one)."""
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, saved)


def test_ctrl_c_sets_the_event_raises_as_before_and_the_handler_is_restored(python_ctrl_c):
    before = signal.getsignal(signal.SIGINT)
    with remembered() as pressed:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert pressed.is_set()
    assert signal.getsignal(signal.SIGINT) is before


class _SwallowedCtrlC:
    """Ctrl-C landing while Python runs this object's finalizer: the KeyboardInterrupt is reported and lost."""

    def __del__(self):
        signal.raise_signal(signal.SIGINT)


class _CtrlCInAFinalizer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.batches == 2:
            _SwallowedCtrlC()  # made and dropped at once: its __del__ runs here


@pytest.mark.parametrize("guarded", [True, False], ids=["stops", "without-the-guard-trains-on"])
def test_a_swallowed_ctrl_c_still_stops_the_fit_at_the_next_batch(guarded, python_ctrl_c):
    x, y = np.zeros((64, 3), "float32"), np.zeros((64, 1), "float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    seen = _CtrlCInAFinalizer()
    with remembered() as pressed:
        callbacks = [seen] + ([StopWhenPressed(pressed)] if guarded else [])
        if guarded:
            with pytest.raises(KeyboardInterrupt):
                model.fit(x, y, batch_size=8, epochs=2, callbacks=callbacks, verbose=0)
            assert seen.batches == 2  # stopped right after the batch whose finalizer swallowed Ctrl-C
        else:
            model.fit(x, y, batch_size=8, epochs=2, callbacks=callbacks, verbose=0)
            assert seen.batches == 16  # the interrupt was lost: every batch of both epochs ran
        assert pressed.is_set()
