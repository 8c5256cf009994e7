"""Per-epoch metrics for a run tracker (output.mlflow): a Keras callback that hands every finished epoch's
numbers, the learning rate and the epoch's seconds included, to a sink, with the 1-based epoch as the step.

The sink is the tracker's (gru_lab.tracking.runs): this module imports nothing of MLflow, so a run without
tracking never loads it."""

from __future__ import annotations

from typing import Callable

EpochSink = Callable[[int, dict[str, float]], None]  # (epoch 1-based, metric name -> value)


def callback(sink: EpochSink, rows: list[dict[str, float]] | None = None):
    """rows: the timing callback's rows (training.fit), which hold the epoch's wall and training seconds; it
    runs before this one, so the last row is this epoch's."""
    import keras

    class EpochMetrics(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            values = {k: float(v) for k, v in (logs or {}).items()}
            optimizer = getattr(self.model, "optimizer", None)
            if optimizer is not None:
                values["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
            if rows and rows[-1].get("epoch") == epoch + 1:
                values["epoch_seconds"] = float(rows[-1]["seconds"])
                values["train_seconds"] = float(rows[-1]["train_seconds"])
            sink(epoch + 1, values)

    return EpochMetrics()
