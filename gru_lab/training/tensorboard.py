"""output.tensorboard: per-epoch scalars in TensorBoard's event format, written during training.

Keras's TensorBoard callback needs the tensorboard package for tf.summary.scalar; this one writes the same
records with TensorFlow's own tf.summary.write and the scalars plugin's metadata, so runs can be watched with
`tensorboard --logdir results` without gru-lab depending on it. The layout is Keras's: <log_dir>/train and
<log_dir>/validation, tags epoch_<metric>, the learning rate as epoch_learning_rate, one step per epoch.
"""

from __future__ import annotations

from pathlib import Path


def callback(log_dir: Path):
    import keras
    import tensorflow as tf

    class TensorBoardScalars(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.writers: dict[str, tf.summary.SummaryWriter] = {}

        def _writer(self, split: str):
            if split not in self.writers:
                self.writers[split] = tf.summary.create_file_writer(str(log_dir / split))
            return self.writers[split]

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            metadata = tf.compat.v1.SummaryMetadata()
            metadata.plugin_data.plugin_name = "scalars"  # what tensorboard's own scalar summaries carry
            for split in ("train", "validation"):
                values = {k[4:] if split == "validation" else k: v for k, v in logs.items()
                          if k.startswith("val_") == (split == "validation")}
                if not values:
                    continue
                with self._writer(split).as_default():
                    for name, value in values.items():
                        tf.summary.write(f"epoch_{name}", tf.constant(float(value), tf.float32), step=epoch,
                                         metadata=metadata)
                self._writer(split).flush()

        def on_train_end(self, logs=None):
            for writer in self.writers.values():
                writer.close()

    return TensorBoardScalars()
