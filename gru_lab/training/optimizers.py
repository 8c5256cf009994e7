"""The optimizer a run trains with: Keras's own, with Adam's update done by TensorFlow's fused kernel.

Keras 3's Adam updates each variable with about ten separate TensorFlow ops (the two slots, the power terms,
the step), each a pass over the variable's memory. For most weights that costs nothing, but an Embedding of
10,000 x 128 values is updated in full at every step (its gradient becomes dense there), and outside XLA those
passes took 5.3 ms a step on a 2-core CPU where TensorFlow's fused `ResourceApplyAdam` takes 1.5 ms and XLA's
fusion 2.5 ms (docs/benchmarks.md, "Where a small step's time goes"): at small sizes the update was most of a
gru-lab train step, and the reason the fused loop under XLA trained faster there.

ResourceApplyAdam computes Keras's formula term for term (alpha = lr sqrt(1 - b2^t) / (1 - b1^t);
m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); w -= alpha m / (sqrt(v) + eps)) on the same slot variables,
so checkpoints, resume and saved models are unchanged. Not bit for bit: the kernel forms 1 - b2 in float32
(0.00100005 for b2 = 0.999, where Keras's Python float gives 0.001), so v differs by up to ~5e-5 of itself and
each step by half that (tests/training/test_optimizers.py). The optimizer stays keras.optimizers.Adam (a saved
model names plain Adam, and loads without gru-lab); only this instance's update_step is replaced. Where the
fused op does not apply (amsgrad, a non-TensorFlow backend, a distribution strategy's mirrored variables, an
Embedding gradient whose rows repeat: see update_step) Keras's own update runs.
"""

from __future__ import annotations

import types
from typing import Any

from gru_lab.config import ExperimentConfig


def make_optimizer(cfg: ExperimentConfig, keras_updates: bool = False):
    """The optimizer of cfg.train; keras_updates=True keeps Keras's own update ops (the plain-Keras baselines)."""
    import keras

    t = cfg.train
    cls = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop, "sgd": keras.optimizers.SGD}[t.optimizer]
    kwargs: dict[str, Any] = {"learning_rate": t.learning_rate}
    if t.clipnorm is not None:
        kwargs["clipnorm"] = t.clipnorm
    optimizer = cls(**kwargs)
    if not keras_updates and t.optimizer == "adam":
        fuse_adam(optimizer)
    return optimizer


def fuse_adam(optimizer) -> bool:
    """Replace this Adam instance's update_step by TensorFlow's fused kernel; False where it cannot apply."""
    import keras

    if keras.backend.backend() != "tensorflow" or optimizer.amsgrad:
        return False
    keras_update = optimizer.update_step

    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf

        handle = _handle(variable)  # Keras's TensorFlow backend passes the tf.Variable under a Keras Variable
        if handle is None or tf.distribute.has_strategy() or tf.as_dtype(variable.dtype) != tf.float32:
            return keras_update(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        local_step = tf.cast(self.iterations + 1, tf.float32)
        beta_1, beta_2 = tf.cast(self.beta_1, tf.float32), tf.cast(self.beta_2, tf.float32)

        def fused(grad):
            tf.raw_ops.ResourceApplyAdam(
                var=handle, m=_handle(m), v=_handle(v), beta1_power=tf.pow(beta_1, local_step),
                beta2_power=tf.pow(beta_2, local_step), lr=tf.cast(learning_rate, tf.float32), beta1=beta_1,
                beta2=beta_2, epsilon=tf.cast(self.epsilon, tf.float32), grad=tf.cast(grad, tf.float32))
            return tf.constant(True)

        if not isinstance(gradient, tf.IndexedSlices):
            fused(gradient)
            return None
        # An Embedding's gradient arrives as slices. Keras's update squares the slices before adding up those of
        # a row (v gets g1^2 + g2^2 where a row was read twice), the fused op squares the row's sum: the same
        # only where no row repeats, which holds for the compiled loops' token table (each row read once).
        # Elsewhere Keras's own update runs, so that the values stay Keras's either way.
        indices = gradient.indices
        distinct = tf.equal(tf.size(tf.unique(indices).y), tf.size(indices))

        def keras_path():
            keras_update(gradient, variable, learning_rate)
            return tf.constant(False)

        tf.cond(distinct, lambda: fused(tf.convert_to_tensor(gradient)), keras_path)
        return None

    optimizer.update_step = types.MethodType(update_step, optimizer)
    return True


def _handle(variable):
    """The resource handle of a tf.Variable, or of the one inside a Keras Variable; None for anything else."""
    import keras

    if isinstance(variable, keras.Variable):
        variable = variable.value
    handle = getattr(variable, "handle", None)
    return None if handle is None or callable(handle) else handle
