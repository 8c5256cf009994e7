"""A faster CPU path for GRU, LSTM and SimpleRNN layers that keeps Keras's weights, outputs and checkpoints.

Keras's generic recurrent loop runs the cell once per time step: per step it multiplies the inputs by the
input kernel and the state by the recurrent kernel, and TensorFlow's automatic gradient of that loop
does the same again backwards, with small matrix products and per-step bookkeeping. Here:

- the input projections of all time steps are one large matrix product before the loop (x @ W for
  B*T rows at once), so only h @ U stays inside the loop;
- the backward pass is written by hand (backpropagation through time, as cuDNN does it): per step it
  does one small product (d_gates @ U^T), and the weight gradients dU, dW and the input gradient
  become large products over all steps after the loop;
- the loop is a plain tf.while_loop, so XLA can compile the whole train step (training.py turns
  jit_compile on for CPU).

gru_lab.fastrnn.GRU, LSTM and SimpleRNN subclass keras.layers.GRU/LSTM/SimpleRNN: same constructor,
same weights (cell.kernel, cell.recurrent_kernel, cell.bias), same config, so checkpoints load either way.
They fall back to the Keras loop whenever the fast path does not apply (models.fast_path_eligibility): a
padding mask, recurrent_dropout, other activations, unroll, stateful, GRU with reset_after=False, no
bias, a backend other than TensorFlow, or a GPU (where Keras's cuDNN kernel is faster and is used
instead). Input dropout is supported: the same per-call mask Keras's cell applies to every step.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

PACKAGE = "gru_lab"


def _activation_name(fn: Any) -> str:
    return getattr(fn, "__name__", str(fn))


class _FastMixin:
    """The shared decision: run the fused TensorFlow loop, or hand over to Keras's own inner_loop."""

    _fast_cell = ""

    def _use_fast_path(self, mask, training) -> bool:
        if keras.backend.backend() != "tensorflow" or mask is not None or self.unroll or self.stateful:
            return False
        if getattr(self.cell, "recurrent_dropout", 0):
            return False
        if training and self.cell.dropout and getattr(self.cell, "implementation", 2) != 2:
            return False  # implementation 1 draws one input mask per gate; the fused loop has one projection
        if _activation_name(self.cell.activation) != "tanh" or not self.cell.use_bias:
            return False
        if self._fast_cell != "simple_rnn" and _activation_name(self.cell.recurrent_activation) != "sigmoid":
            return False
        if self._fast_cell == "gru" and not self.cell.reset_after:
            return False
        import tensorflow as tf

        # On a GPU, Keras's cuDNN kernel beats any loop of ours; it also decides the non-cuDNN cases there.
        return not tf.config.list_logical_devices("GPU")

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self._use_fast_path(mask, training):
            self.fast_path_used = False
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        self.fast_path_used = True
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if training and self.cell.dropout:
            # Keras's cells (implementation 2) multiply every step's input by one mask drawn per call; the
            # cell caches it, so this is the very mask Keras's own loop would use.
            mask_ = self.cell.get_dropout_mask(sequences[:, 0, :])
            sequences = sequences * keras.ops.expand_dims(mask_, 1)
        return _run(self._fast_cell, sequences, states, self.cell, self.go_backwards, bool(training),
                    self.return_sequences)


# The classes keep Keras's names on purpose: Keras's weight files (.weights.h5, and the weights inside
# model.keras) address each layer by its snake-cased class name, so a FastGRU class could not read a
# keras.layers.GRU checkpoint. Serialized configs tell them apart by package: "gru_lab>GRU".
@keras.saving.register_keras_serializable(package=PACKAGE)
class GRU(_FastMixin, layers.GRU):
    """keras.layers.GRU with the fused CPU path (same arguments, weights and outputs)."""

    _fast_cell = "gru"


@keras.saving.register_keras_serializable(package=PACKAGE)
class LSTM(_FastMixin, layers.LSTM):
    """keras.layers.LSTM with the fused CPU path (same arguments, weights and outputs)."""

    _fast_cell = "lstm"


@keras.saving.register_keras_serializable(package=PACKAGE)
class SimpleRNN(_FastMixin, layers.SimpleRNN):
    """keras.layers.SimpleRNN with the fused CPU path (same arguments, weights and outputs)."""

    _fast_cell = "simple_rnn"


FAST_CLASSES = {"gru": GRU, "lstm": LSTM, "simple_rnn": SimpleRNN}


# ----------------------------------------------------------------------------- the TensorFlow loops


def _run(cell_kind: str, sequences, states, cell, go_backwards: bool, training: bool, return_sequences: bool):
    """(last_output, outputs (B, T, u), new_states) exactly as keras.src.backend.tensorflow.rnn returns them.

    Training runs the loop with the hand-written gradient (it keeps the gates of every step for the
    backward pass). Inference runs a forward-only loop that keeps nothing but the outputs it must
    return; TensorFlow can still differentiate it, just more slowly."""
    import tensorflow as tf

    x = tf.convert_to_tensor(sequences)
    dtype = x.dtype
    kernel = tf.cast(cell.kernel, dtype)
    recurrent_kernel = tf.cast(cell.recurrent_kernel, dtype)
    bias = tf.cast(cell.bias, dtype)
    x = tf.transpose(x, [1, 0, 2])  # time-major: (T, B, d); cheaper to move d columns than 3u or 4u
    if go_backwards:
        x = tf.reverse(x, [0])
    steps, batch, d = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    if cell_kind == "gru":
        input_bias, recurrent_bias = bias[0], bias[1]
    else:
        input_bias, recurrent_bias = bias, None
    # The hoisted input projection: one (T*B, d) @ (d, gates*u) product for the whole sequence.
    projected = tf.reshape(tf.matmul(tf.reshape(x, [-1, d]), kernel) + input_bias, [steps, batch, -1])
    h0 = tf.cast(states[0], dtype)
    if not training:
        c0 = tf.cast(states[1], dtype) if cell_kind == "lstm" else None
        last, c_last, hs = _forward_only(cell_kind, projected, h0, c0, recurrent_kernel, recurrent_bias,
                                         return_sequences)
        outputs = tf.transpose(hs, [1, 0, 2]) if return_sequences else last[:, None, :]
        return last, outputs, ([last, c_last] if cell_kind == "lstm" else [last])
    if cell_kind == "gru":
        hs = _gru_loop(projected, h0, recurrent_kernel, recurrent_bias)
        new_states = [hs[-1]]
    elif cell_kind == "lstm":
        hs, c_last = _lstm_loop(projected, h0, tf.cast(states[1], dtype), recurrent_kernel)
        new_states = [hs[-1], c_last]
    else:
        hs = _simple_loop(projected, h0, recurrent_kernel)
        new_states = [hs[-1]]
    return hs[-1], tf.transpose(hs, [1, 0, 2]), new_states


def _forward_only(cell_kind, projected, h0, c0, u, recurrent_bias, return_sequences):
    """The same recurrences as the training loops below, keeping only the outputs that are returned."""
    import tensorflow as tf

    def step(xp, carry):
        h, c = carry
        if cell_kind == "gru":
            xz, xr, xn = tf.split(xp, 3, axis=-1)
            rz, rr, rn = tf.split(tf.matmul(h, u) + recurrent_bias, 3, axis=-1)
            z = tf.sigmoid(xz + rz)
            h = z * h + (1.0 - z) * tf.tanh(xn + tf.sigmoid(xr + rr) * rn)
        elif cell_kind == "lstm":
            gi, gf, gg, go = tf.split(xp + tf.matmul(h, u), 4, axis=-1)
            c = tf.sigmoid(gf) * c + tf.sigmoid(gi) * tf.tanh(gg)
            h = tf.sigmoid(go) * tf.tanh(c)
        else:
            h = tf.tanh(xp + tf.matmul(h, u))
        return (h, c), ((h,) if return_sequences else ())

    c_init = c0 if c0 is not None else tf.zeros([0], projected.dtype)  # SimpleRNN/GRU carry no cell state
    (last, c_last), stacked = _scan(step, projected, (h0, c_init), 1 if return_sequences else 0)
    return last, (c_last if c0 is not None else None), (stacked[0] if return_sequences else None)


def _scan(step, elems, init, extra_arrays: int):
    """Run step over time with a tf.while_loop; returns (final carry, stacked per-step outputs)."""
    import tensorflow as tf

    n = tf.shape(elems)[0]
    arrays = tuple(tf.TensorArray(elems.dtype, size=n, element_shape=None) for _ in range(extra_arrays))

    def body(t, carry, arrays):
        new_carry, outs = step(elems[t], carry)
        return t + 1, new_carry, tuple(a.write(t, o) for a, o in zip(arrays, outs))

    _, carry, arrays = tf.while_loop(lambda t, *_: t < n, body, (tf.constant(0), init, arrays),
                                     maximum_iterations=n)
    return carry, [a.stack() for a in arrays]


def _scan_back(step, elems, init, extra_arrays: int):
    """Like _scan but from the last time step to the first; outputs are stored at their own time index."""
    import tensorflow as tf

    n = tf.shape(elems[0])[0]
    arrays = tuple(tf.TensorArray(elems[0].dtype, size=n) for _ in range(extra_arrays))

    def body(t, carry, arrays):
        i = n - 1 - t
        new_carry, outs = step(tuple(e[i] for e in elems), carry)
        return t + 1, new_carry, tuple(a.write(i, o) for a, o in zip(arrays, outs))

    _, carry, arrays = tf.while_loop(lambda t, *_: t < n, body, (tf.constant(0), init, arrays),
                                     maximum_iterations=n)
    return carry, [a.stack() for a in arrays]


def _flat_matmul(a, b, transpose_a=False):
    """(T, B, m) and (T, B, n) -> a^T b summed over all T*B rows: one large product."""
    import tensorflow as tf

    return tf.matmul(tf.reshape(a, [-1, tf.shape(a)[-1]]), tf.reshape(b, [-1, tf.shape(b)[-1]]),
                     transpose_a=transpose_a)


def _gru_loop(projected, h0, recurrent_kernel, recurrent_bias):
    """Keras GRU (reset_after=True): z, r = sigmoid(x_zr + h U_zr + b_zr); n = tanh(x_n + r * (h U_n + b_n));
    h' = z * h + (1 - z) * n. Gate order in the weights: z, r, n."""
    import tensorflow as tf

    @tf.custom_gradient
    def loop(projected, h0, u, b):
        def step(xp, h):
            rec = tf.matmul(h, u) + b
            xz, xr, xn = tf.split(xp, 3, axis=-1)
            rz, rr, rn = tf.split(rec, 3, axis=-1)
            z = tf.sigmoid(xz + rz)
            r = tf.sigmoid(xr + rr)
            n = tf.tanh(xn + r * rn)
            h_new = z * h + (1.0 - z) * n
            return h_new, (h_new, z, r, n, rn)

        _, (hs, zs, rs, ns, rns) = _scan(step, projected, h0, 5)

        def grad(dhs):
            h_prev = tf.concat([h0[None], hs[:-1]], axis=0)

            def back(elems, dh_carry):
                dh_out, hp, z, r, n, rn = elems
                dh = dh_out + dh_carry
                dn = dh * (1.0 - z) * (1.0 - n * n)
                dz = dh * (hp - n) * z * (1.0 - z)
                dr = dn * rn * r * (1.0 - r)
                d_rec = tf.concat([dz, dr, dn * r], axis=-1)
                d_x = tf.concat([dz, dr, dn], axis=-1)
                return dh * z + tf.matmul(d_rec, u, transpose_b=True), (d_x, d_rec)

            dh0, (d_projected, d_recs) = _scan_back(back, (dhs, h_prev, zs, rs, ns, rns), tf.zeros_like(h0), 2)
            du = _flat_matmul(h_prev, d_recs, transpose_a=True)
            db = tf.reduce_sum(d_recs, axis=[0, 1])
            return d_projected, dh0, du, db

        return hs, grad

    return loop(projected, h0, recurrent_kernel, recurrent_bias)


def _lstm_loop(projected, h0, c0, recurrent_kernel):
    """Keras LSTM: i, f, o = sigmoid(.), g = tanh(.) of x W + h U + b; c' = f c + i g; h' = o tanh(c').
    Gate order in the weights: i, f, g (Keras calls it c), o."""
    import tensorflow as tf

    @tf.custom_gradient
    def loop(projected, h0, c0, u):
        def step(xp, carry):
            h, c = carry
            gi, gf, gg, go = tf.split(xp + tf.matmul(h, u), 4, axis=-1)
            i, f, g, o = tf.sigmoid(gi), tf.sigmoid(gf), tf.tanh(gg), tf.sigmoid(go)
            c_new = f * c + i * g
            tc = tf.tanh(c_new)
            h_new = o * tc
            return (h_new, c_new), (h_new, c_new, i, f, g, o, tc)

        (_, c_last), (hs, cs, i_s, fs, gs, os_, tcs) = _scan(step, projected, (h0, c0), 7)

        def grad(dhs, dc_last):
            h_prev = tf.concat([h0[None], hs[:-1]], axis=0)
            c_prev = tf.concat([c0[None], cs[:-1]], axis=0)

            def back(elems, carry):
                dh_out, cp, i, f, g, o, tc = elems
                dh_carry, dc_carry = carry
                dh = dh_out + dh_carry
                dc = dc_carry + dh * o * (1.0 - tc * tc)
                d_gates = tf.concat([dc * g * i * (1.0 - i), dc * cp * f * (1.0 - f),
                                     dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], axis=-1)
                return (tf.matmul(d_gates, u, transpose_b=True), dc * f), (d_gates,)

            dc_init = tf.zeros_like(c0) if dc_last is None else dc_last
            (dh0, dc0), (d_gates,) = _scan_back(back, (dhs, c_prev, i_s, fs, gs, os_, tcs),
                                                (tf.zeros_like(h0), dc_init), 1)
            return d_gates, dh0, dc0, _flat_matmul(h_prev, d_gates, transpose_a=True)

        return (hs, c_last), grad

    return loop(projected, h0, c0, recurrent_kernel)


def _simple_loop(projected, h0, recurrent_kernel):
    """Keras SimpleRNN: h' = tanh(x W + b + h U)."""
    import tensorflow as tf

    @tf.custom_gradient
    def loop(projected, h0, u):
        def step(xp, h):
            h_new = tf.tanh(xp + tf.matmul(h, u))
            return h_new, (h_new,)

        _, (hs,) = _scan(step, projected, h0, 1)

        def grad(dhs):
            h_prev = tf.concat([h0[None], hs[:-1]], axis=0)

            def back(elems, dh_carry):
                dh_out, h = elems
                da = (dh_out + dh_carry) * (1.0 - h * h)
                return tf.matmul(da, u, transpose_b=True), (da,)

            dh0, (das,) = _scan_back(back, (dhs, hs), tf.zeros_like(h0), 1)
            return das, dh0, _flat_matmul(h_prev, das, transpose_a=True)

        return hs, grad

    return loop(projected, h0, recurrent_kernel)
