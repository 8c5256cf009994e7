"""The Keras callbacks a run adds beside its timing: divergence (a NaN or infinite loss stops the run at
once), early stopping whose state survives a resume, the per-epoch resume state, the epoch hook
(last, so that a hook that stops the run sees the epoch already saved), and a Ctrl-C that Python swallowed."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import keras

WATCHED = ("loss", "val_loss")  # a non-finite value of these means the weights are gone


class Diverged(Exception):
    """Training produced a NaN or infinite loss; carries where."""

    def __init__(self, epoch: int, batch: int | None, quantity: str, value: float):
        super().__init__(f"{quantity} became {value} at epoch {epoch}" + (f", batch {batch}" if batch else ""))
        self.epoch, self.batch, self.quantity, self.value = epoch, batch, quantity, value

    def record(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch": self.batch, "quantity": self.quantity, "value": str(self.value)}


class DivergenceWatch(keras.callbacks.Callback):
    """Keras's TerminateOnNaN stops only after the batch, then still validates and ends the epoch; this
    raises at the first non-finite training loss (the running mean of the epoch's batches: one NaN batch
    makes it NaN), or validation loss, so no NaN epoch is recorded or saved."""

    def __init__(self):
        super().__init__()
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, None)

    def _check(self, logs, batch: int | None) -> None:
        for key in WATCHED:
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                raise Diverged(self.epoch, batch, key, float(value))


class EarlyStop(keras.callbacks.EarlyStopping):
    """Keras's EarlyStopping (its rule: improvement by more than min_delta, patience, best weights restored
    at the end of training) with a state that a resumed run puts back after on_train_begin resets it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._restored: tuple[dict[str, Any], list | None] | None = None

    def get_state(self) -> dict[str, Any]:
        best = None if self.best is None else float(self.best)
        return {"wait": int(self.wait), "best": best, "best_epoch": int(self.best_epoch),
                "stopped_epoch": int(self.stopped_epoch)}

    def set_state(self, state: dict[str, Any], best_weights: list | None) -> None:
        self._restored = (state, best_weights)

    @property
    def restored(self) -> bool:
        return self._restored is not None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._restored is not None:
            self.apply_restored()

    def apply_restored(self) -> None:
        state, best_weights = self._restored
        self.wait, self.best = state["wait"], state["best"]
        self.best_epoch, self.stopped_epoch = state["best_epoch"], state["stopped_epoch"]
        self.best_weights = best_weights


class StateSaver(keras.callbacks.Callback):
    """After every finished epoch: the resume state (training.resume) into workdir."""

    def __init__(self, workdir: Path, rows: list[dict[str, float]], epochs: int, early_stopping: EarlyStop | None,
                 fit_seconds_before: float, resumed: list[dict[str, Any]]):
        super().__init__()
        self.workdir, self.rows, self.epochs, self.es = workdir, rows, epochs, early_stopping
        self.fit_seconds_before, self.resumed = fit_seconds_before, resumed
        self._started = time.time()

    def on_train_begin(self, logs=None):
        self._started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        from gru_lab.training.resume import save_state

        complete = epoch + 1 >= self.epochs or bool(self.model.stop_training)
        save_state(self.workdir, self.model, epoch + 1, complete, self.rows,
                   self.fit_seconds_before + time.time() - self._started, self.es, self.resumed)


class EpochHook(keras.callbacks.Callback):
    """Calls hook(epoch, logs, seconds) with the timing row of the epoch just finished."""

    def __init__(self, hook: Callable[[int, dict[str, float], float], None], rows: list[dict[str, float]]):
        super().__init__()
        self.hook, self.rows = hook, rows

    def on_epoch_end(self, epoch, logs=None):
        self.hook(epoch + 1, dict(logs or {}), self.rows[-1]["seconds"] if self.rows else 0.0)


class StopWhenPressed(keras.callbacks.Callback):
    """Raises KeyboardInterrupt at the next batch once Ctrl-C was pressed (training.interrupt.remembered): the
    interrupt Python raised may have been swallowed by a finalizer, and the run must stop all the same."""

    def __init__(self, pressed):
        super().__init__()
        self.pressed = pressed

    def _check(self) -> None:
        if self.pressed.is_set():
            raise KeyboardInterrupt

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_end(self, epoch, logs=None):
        self._check()
