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

Only training steps run fused: evaluation and prediction (training=False) run Keras's own loop, which
XLA compiles into a faster forward pass than the fused one (see _use_fast_path).

gru_lab.fastrnn.GRU, LSTM and SimpleRNN subclass keras.layers.GRU/LSTM/SimpleRNN: same constructor,
same weights (cell.kernel, cell.recurrent_kernel, cell.bias), same config, so checkpoints load either way.
They fall back to the Keras loop whenever the fast path does not apply (models.fast_path_eligibility):
recurrent_dropout, other activations, unroll, stateful, GRU with reset_after=False, no bias, a backend
other than TensorFlow, or a GPU (where Keras's cuDNN kernel is faster and is used instead). Supported
as Keras does them: input dropout (the same per-call mask Keras's cell applies to every step), padding
masks (a masked step keeps the state; Bidirectional's zero_output_for_mask), go_backwards, stacking.
One difference: with a user-supplied non-zero initial state AND a masked first step, Keras outputs
zeros for that step and the fused loop the initial state (gru-lab never passes an initial state).
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
    fast_path_used = False  # whether the last training call ran the fused loop (runtime.kernels_used reads it)

    def _use_fast_path(self, mask, training) -> bool:
        if not training:
            # Forward only there is no backward pass to save, and under XLA Keras's own loop ran
            # 2,000-2,600 samples/s against the fused loop's 1,840 (GRU(128), T=200, batch 256): the
            # hoisted projection's (T, B, 3u) buffer costs more than it saves. Inference is Keras's.
            return False
        if keras.backend.backend() != "tensorflow" or self.unroll or self.stateful:
            return False
        if getattr(self.cell, "recurrent_dropout", 0):
            return False
        if self.cell.dropout and getattr(self.cell, "implementation", 2) != 2:
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
            if training:
                self.fast_path_used = False
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        self.fast_path_used = True
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if self.cell.dropout:
            # Keras's cells (implementation 2) multiply every step's input by one mask drawn per call; the
            # cell caches it, so this is the very mask Keras's own loop would use.
            dropout_mask = self.cell.get_dropout_mask(sequences[:, 0, :])
            sequences = sequences * keras.ops.expand_dims(dropout_mask, 1)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        return _run(self._fast_cell, sequences, states, self.cell, self.go_backwards, self.return_sequences,
                    mask, self.zero_output_for_mask)


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


def _run(cell_kind: str, sequences, states, cell, go_backwards: bool, return_sequences: bool,
         mask=None, zero_output_for_mask: bool = False):
    """(last_output, outputs (B, T, u), new_states) exactly as keras.src.backend.tensorflow.rnn returns them.

    The loop keeps the gates of every step for its hand-written backward pass. A padding mask (B, T)
    works as in Keras: a masked step keeps the previous state, and its output is that state (or zeros
    with zero_output_for_mask, which Bidirectional sets)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(sequences)
    dtype = x.dtype
    kernel = tf.cast(cell.kernel, dtype)
    recurrent_kernel = tf.cast(cell.recurrent_kernel, dtype)
    bias = tf.cast(cell.bias, dtype)
    x = tf.transpose(x, [1, 0, 2])  # time-major: (T, B, d); cheaper to move d columns than 3u or 4u
    m = None if mask is None else tf.cast(tf.transpose(mask, [1, 0]), dtype)[:, :, None]  # (T, B, 1)
    if go_backwards:
        x = tf.reverse(x, [0])
        m = None if m is None else tf.reverse(m, [0])
    steps, batch, d = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    if cell_kind == "gru":
        input_bias, recurrent_bias = bias[0], bias[1]
    else:
        input_bias, recurrent_bias = bias, None
    # The hoisted input projection: one (T*B, d) @ (d, gates*u) product for the whole sequence.
    projected = tf.reshape(tf.matmul(tf.reshape(x, [-1, d]), kernel) + input_bias, [steps, batch, -1])
    h0 = tf.cast(states[0], dtype)
    c0 = tf.cast(states[1], dtype) if cell_kind == "lstm" else None
    loop = {"gru": _gru_loop, "lstm": _lstm_loop, "simple_rnn": _simple_loop}[cell_kind]
    hs, c_last = loop(projected, m, h0, c0, recurrent_kernel, recurrent_bias)
    last = hs[-1]
    new_states = [last, c_last] if cell_kind == "lstm" else [last]
    if m is not None and zero_output_for_mask:
        last = last * m[-1]
        hs = hs * m
    outputs = tf.transpose(hs, [1, 0, 2]) if return_sequences else last[:, None, :]
    return last, outputs, new_states


def _blend(m, new, old):
    """Keras's masking: where the step is masked (m = 0) the state stays what it was."""
    return new if m is None else m * new + (1.0 - m) * old


def _scan(step, elems, init, extra_arrays: int):
    """Run step over time with a tf.while_loop; returns (final carry, stacked per-step outputs).

    elems is a tuple of time-major tensors (None entries are passed through as None)."""
    import tensorflow as tf

    n = tf.shape(elems[0])[0]
    arrays = tuple(tf.TensorArray(elems[0].dtype, size=n) for _ in range(extra_arrays))

    def body(t, carry, arrays):
        new_carry, outs = step(tuple(None if e is None else e[t] for e in elems), carry)
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
        new_carry, outs = step(tuple(None if e is None else e[i] for e in elems), carry)
        return t + 1, new_carry, tuple(a.write(i, o) for a, o in zip(arrays, outs))

    _, carry, arrays = tf.while_loop(lambda t, *_: t < n, body, (tf.constant(0), init, arrays),
                                     maximum_iterations=n)
    return carry, [a.stack() for a in arrays]


def _flat_matmul(a, b, transpose_a=False):
    """(T, B, m) and (T, B, n) -> a^T b summed over all T*B rows: one large product."""
    import tensorflow as tf

    return tf.matmul(tf.reshape(a, [-1, tf.shape(a)[-1]]), tf.reshape(b, [-1, tf.shape(b)[-1]]),
                     transpose_a=transpose_a)


def _split_mask(m, dh):
    """(gradient reaching the step's candidate state, gradient passing straight to the previous state)."""
    return (dh, None) if m is None else (m * dh, (1.0 - m) * dh)


def _plus(a, b):
    return a if b is None else a + b


def _gru_loop(projected, m, h0, c0, recurrent_kernel, recurrent_bias):
    """Keras GRU (reset_after=True): z, r = sigmoid(x_zr + h U_zr + b_zr); n = tanh(x_n + r * (h U_n + b_n));
    h' = z * h + (1 - z) * n. Gate order in the weights: z, r, n. Returns (states (T, B, u), None)."""
    import tensorflow as tf

    @tf.custom_gradient
    def loop(projected, h0, u, b):
        def step(elems, h):
            xp, mt = elems
            rec = tf.matmul(h, u) + b
            xz, xr, xn = tf.split(xp, 3, axis=-1)
            rz, rr, rn = tf.split(rec, 3, axis=-1)
            z = tf.sigmoid(xz + rz)
            r = tf.sigmoid(xr + rr)
            n = tf.tanh(xn + r * rn)
            h_new = _blend(mt, z * h + (1.0 - z) * n, h)
            return h_new, (h_new, z, r, n, rn)

        _, (hs, zs, rs, ns, rns) = _scan(step, (projected, m), h0, 5)

        def grad(dhs):
            h_prev = tf.concat([h0[None], hs[:-1]], axis=0)

            def back(elems, dh_carry):
                dh_out, mt, hp, z, r, n, rn = elems
                dh, dh_direct = _split_mask(mt, dh_out + dh_carry)
                dn = dh * (1.0 - z) * (1.0 - n * n)
                dz = dh * (hp - n) * z * (1.0 - z)
                dr = dn * rn * r * (1.0 - r)
                d_rec = tf.concat([dz, dr, dn * r], axis=-1)
                d_x = tf.concat([dz, dr, dn], axis=-1)
                return _plus(dh * z + tf.matmul(d_rec, u, transpose_b=True), dh_direct), (d_x, d_rec)

            dh0, (d_projected, d_recs) = _scan_back(back, (dhs, m, h_prev, zs, rs, ns, rns), tf.zeros_like(h0), 2)
            du = _flat_matmul(h_prev, d_recs, transpose_a=True)
            db = tf.reduce_sum(d_recs, axis=[0, 1])
            return d_projected, dh0, du, db

        return hs, grad

    return loop(projected, h0, recurrent_kernel, recurrent_bias), None


def _lstm_loop(projected, m, h0, c0, recurrent_kernel, recurrent_bias=None):
    """Keras LSTM: i, f, o = sigmoid(.), g = tanh(.) of x W + h U + b; c' = f c + i g; h' = o tanh(c').
    Gate order in the weights: i, f, g (Keras calls it c), o. Returns (states (T, B, u), last c)."""
    import tensorflow as tf

    @tf.custom_gradient
    def loop(projected, h0, c0, u):
        def step(elems, carry):
            xp, mt = elems
            h, c = carry
            gi, gf, gg, go = tf.split(xp + tf.matmul(h, u), 4, axis=-1)
            i, f, g, o = tf.sigmoid(gi), tf.sigmoid(gf), tf.tanh(gg), tf.sigmoid(go)
            c_cand = f * c + i * g
            tc = tf.tanh(c_cand)
            h_new, c_new = _blend(mt, o * tc, h), _blend(mt, c_cand, c)
            return (h_new, c_new), (h_new, c_new, i, f, g, o, tc)

        (_, c_last), (hs, cs, i_s, fs, gs, os_, tcs) = _scan(step, (projected, m), (h0, c0), 7)

        def grad(dhs, dc_last):
            h_prev = tf.concat([h0[None], hs[:-1]], axis=0)
            c_prev = tf.concat([c0[None], cs[:-1]], axis=0)

            def back(elems, carry):
                dh_out, mt, cp, i, f, g, o, tc = elems
                dh_carry, dc_carry = carry
                dh, dh_direct = _split_mask(mt, dh_out + dh_carry)
                dc, dc_direct = _split_mask(mt, dc_carry)
                dc = dc + dh * o * (1.0 - tc * tc)
                d_gates = tf.concat([dc * g * i * (1.0 - i), dc * cp * f * (1.0 - f),
                                     dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], axis=-1)
                return (_plus(tf.matmul(d_gates, u, transpose_b=True), dh_direct), _plus(dc * f, dc_direct)), (d_gates,)

            dc_init = tf.zeros_like(c0) if dc_last is None else dc_last
            (dh0, dc0), (d_gates,) = _scan_back(back, (dhs, m, c_prev, i_s, fs, gs, os_, tcs),
                                                (tf.zeros_like(h0), dc_init), 1)
            return d_gates, dh0, dc0, _flat_matmul(h_prev, d_gates, transpose_a=True)

        return (hs, c_last), grad

    return loop(projected, h0, c0, recurrent_kernel)


def _simple_loop(projected, m, h0, c0, recurrent_kernel, recurrent_bias=None):
    """Keras SimpleRNN: h' = tanh(x W + b + h U). Returns (states (T, B, u), None)."""
    import tensorflow as tf

    @tf.custom_gradient
    def loop(projected, h0, u):
        def step(elems, h):
            xp, mt = elems
            h_cand = tf.tanh(xp + tf.matmul(h, u))
            h_new = _blend(mt, h_cand, h)
            return h_new, (h_new, h_cand)

        _, (hs, cands) = _scan(step, (projected, m), h0, 2)

        def grad(dhs):
            h_prev = tf.concat([h0[None], hs[:-1]], axis=0)

            def back(elems, dh_carry):
                dh_out, mt, h_cand = elems
                dh, dh_direct = _split_mask(mt, dh_out + dh_carry)
                da = dh * (1.0 - h_cand * h_cand)
                return _plus(tf.matmul(da, u, transpose_b=True), dh_direct), (da,)

            dh0, (das,) = _scan_back(back, (dhs, m, cands), tf.zeros_like(h0), 1)
            return das, dh0, _flat_matmul(h_prev, das, transpose_a=True)

        return hs, grad

    return loop(projected, h0, recurrent_kernel), None
