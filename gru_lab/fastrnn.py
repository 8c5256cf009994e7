"""A faster CPU path for GRU, LSTM and SimpleRNN layers that keeps Keras's weights, outputs and checkpoints.

Keras's generic recurrent loop runs the cell once per time step: per step it multiplies the inputs by the
input kernel and the state by the recurrent kernel, and TensorFlow's automatic gradient of that loop
does the same again backwards, with small matrix products and per-step bookkeeping. Here:

- the input projections of all time steps are large matrix products before the loop (x @ W_gate for
  B*T rows at once, one per gate), so only h @ U_gate stays inside the loop. Each gate keeps its own
  arrays and products: XLA's CPU code runs a step about three times slower when the gate math slices
  one (B, 3u) product along its last axis;
- the backward pass is written by hand (backpropagation through time, as cuDNN does it): per step it
  does one small product per gate (d_gate @ U_gate^T, with U^T transposed once outside the loop), and
  the weight gradients dU, dW and the input gradient become large products over all steps after it;
- the loop is a plain tf.while_loop, so XLA can compile the whole train step (training.py turns
  jit_compile on for CPU).

At inference (training=False) a layer fed directly by gru_lab's Embedding skips the input projection
altogether: each gate's projection of the whole vocabulary (E @ W_gate + b, vocabulary x u) is computed
once per call and every step gathers its tokens' rows, which halves a forward pass's multiply-adds
(used where the vocabulary is at most TABLE_BREAK_EVEN_BATCH times the sequence length). Other
inference calls run Keras's own loop, which XLA compiles about as fast as a fused forward loop.

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

from gru_lab import native
from gru_lab.models import TABLE_BREAK_EVEN_BATCH  # models imports this module only inside build_model

PACKAGE = "gru_lab"


def _activation_name(fn: Any) -> str:
    return getattr(fn, "__name__", str(fn))


TOKEN_IDS = "_gru_lab_token_ids"  # attribute gru_lab's Embedding puts on its output: (ids, embedding layer)


class _FastMixin:
    """The shared decision: run the fused TensorFlow loop, or hand over to Keras's own inner_loop."""

    _fast_cell = ""
    fast_path_used = False  # whether the last training call ran the fused loop (runtime.kernels_used reads it)
    table_inference_used = False  # whether the last inference call looked its inputs up in a projected table
    native_used = False  # whether the last training call's fused loop was the compiled one (gru_lab.native)
    native_inference_used = False  # the same for the last inference call

    def _fused_supported(self) -> bool:
        """Whether the fused loops compute exactly what Keras's loop computes for this layer."""
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

    def _use_fast_path(self, mask, training) -> bool:
        """Training steps run fused wherever that is exact (see _fused_supported)."""
        return bool(training) and self._fused_supported()

    def _token_table(self, sequences):
        """(ids, embedding layer) when these inputs are a gru_lab Embedding's output and a table pays, else None.

        Inference only. The attribute sits on the very tensor the Embedding returned, so any op between
        the two layers (a new tensor) drops it and the layer simply runs the ordinary way."""
        found = getattr(sequences, TOKEN_IDS, None)
        if found is None or not self._fused_supported():
            return None
        ids, embedding = found
        steps, vocabulary = ids.shape[1], embedding.input_dim
        if steps is None or vocabulary > steps * TABLE_BREAK_EVEN_BATCH:
            return None
        return found

    def _native(self, sequences) -> bool:
        """Whether _run hands this call to the compiled GRU loops (gru_lab.native)."""
        return _native_applies(self._fast_cell, sequences.dtype) and self._fused_supported()

    def inner_loop(self, sequences, initial_state, mask, training=False):
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if not training:
            table = self._token_table(sequences)
            self.table_inference_used = table is not None
            self.native_inference_used = self._native(sequences)
            if table is None and self.native_inference_used:
                return _run(self._fast_cell, sequences, states, self.cell, self.go_backwards, self.return_sequences,
                            mask, self.zero_output_for_mask, training=False)
            if table is not None:
                # Forward only, straight from the token ids: each gate's input projection of every
                # vocabulary row (E @ W_gate + b) is computed once per call and each step looks its rows
                # up, which halves the multiply-adds of a forward pass. Same values as projecting the
                # embedded rows (each row's dot product is the same sum; measured within 2e-7).
                ids, embedding = table
                return _run(self._fast_cell, sequences, states, self.cell, self.go_backwards, self.return_sequences,
                            mask, self.zero_output_for_mask, training=False, token_ids=ids,
                            embeddings=embedding.embeddings)
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        if not self._use_fast_path(mask, training):
            self.fast_path_used = False
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        self.fast_path_used = True
        self.native_used = self._native(sequences)
        if self.cell.dropout:
            # Keras's cells (implementation 2) multiply every step's input by one mask drawn per call; the
            # cell caches it, so this is the very mask Keras's own loop would use.
            dropout_mask = self.cell.get_dropout_mask(sequences[:, 0, :])
            sequences = sequences * keras.ops.expand_dims(dropout_mask, 1)
        return _run(self._fast_cell, sequences, states, self.cell, self.go_backwards, self.return_sequences,
                    mask, self.zero_output_for_mask)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Embedding(layers.Embedding):
    """keras.layers.Embedding that marks its output with the token ids it came from.

    A fused recurrent layer that receives this very tensor at inference can then look up each gate's
    projection of the vocabulary instead of multiplying the embedded sequence by its input kernel.
    Same arguments, weights and outputs as keras.layers.Embedding."""

    def call(self, inputs):
        outputs = super().call(inputs)
        if self.quantization_mode is None and not self.lora_enabled:
            try:
                setattr(outputs, TOKEN_IDS, (inputs, self))
            except AttributeError:  # a tensor type that takes no attributes: no table, same results
                pass
        return outputs


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


GATES = {"gru": 3, "lstm": 4, "simple_rnn": 1}


def _columns(w, gates: int):
    """The per-gate column blocks of a Keras weight (..., gates * units), in Keras's gate order."""
    import tensorflow as tf

    return tf.split(w, gates, axis=-1) if gates > 1 else [w]


def _native_applies(cell_kind: str, dtype) -> bool:
    """The compiled loops cover GRU in float32, and run only inside native.native_loops() (never under XLA)."""
    return cell_kind == "gru" and getattr(dtype, "name", str(dtype)) == "float32" and native.active()


def _run(cell_kind: str, sequences, states, cell, go_backwards: bool, return_sequences: bool,
         mask=None, zero_output_for_mask: bool = False, training: bool = True, token_ids=None, embeddings=None):
    """(last_output, outputs (B, T, u), new_states) exactly as keras.src.backend.tensorflow.rnn returns them.

    Every gate has its own (T, B, u) input projection and its own h @ U_gate product in the loop: XLA's
    CPU code slows the whole step down about threefold when the gate math slices one (B, 3u) product
    along its last axis (measured: 42 ms against 14 ms for 200 steps of GRU(128) at batch 64).
    training=True runs the loop that keeps every step's gates for the hand-written backward pass;
    training=False a forward-only loop that keeps the states alone (all of them only for
    return_sequences). With token_ids (B, T) and the embedding matrix, the inputs are not projected
    at all: each gate's table E @ W_gate + b (vocabulary x u) is computed once and every step gathers
    its rows (forward only). A padding mask (B, T) works as in Keras: a masked step keeps the previous
    state, and its output is that state (or zeros with zero_output_for_mask, which Bidirectional sets)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(sequences)
    dtype = x.dtype
    if _native_applies(cell_kind, dtype):
        return _run_native(native.load(), x, states, cell, go_backwards, return_sequences, mask,
                           zero_output_for_mask, training, token_ids, embeddings)
    gates = GATES[cell_kind]
    kernel = tf.cast(cell.kernel, dtype)
    recurrent_kernel = tf.cast(cell.recurrent_kernel, dtype)
    bias = tf.cast(cell.bias, dtype)
    m = None if mask is None else tf.cast(tf.transpose(mask, [1, 0]), dtype)[:, :, None]  # (T, B, 1)
    if cell_kind == "gru":
        input_bias, recurrent_bias = _columns(bias[0], gates), _columns(bias[1], gates)
    else:
        input_bias, recurrent_bias = _columns(bias, gates), None
    if token_ids is not None:
        ids = tf.transpose(tf.cast(token_ids, tf.int32), [1, 0])  # (T, B)
        sources = [tf.reverse(ids, [0]) if go_backwards else ids]
        tables = [tf.matmul(tf.cast(embeddings, dtype), w) + b for w, b in zip(_columns(kernel, gates), input_bias)]

        def inputs_at(step_ids):
            return [tf.gather(table, step_ids[0]) for table in tables]
    else:
        x = tf.transpose(x, [1, 0, 2])  # time-major: (T, B, d); cheaper to move d columns than 3u or 4u
        if go_backwards:
            x = tf.reverse(x, [0])
        steps, batch, d = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
        # The hoisted input projections: one (T*B, d) @ (d, u) product per gate for the whole sequence.
        flat = tf.reshape(x, [-1, d])
        sources = [tf.reshape(tf.matmul(flat, w) + b, [steps, batch, -1])
                   for w, b in zip(_columns(kernel, gates), input_bias)]

        def inputs_at(step_sources):
            return list(step_sources)
    if m is not None and go_backwards:
        m = tf.reverse(m, [0])
    u = _columns(recurrent_kernel, gates)
    h0 = tf.cast(states[0], dtype)
    c0 = tf.cast(states[1], dtype) if cell_kind == "lstm" else None
    if training:
        if token_ids is not None:
            raise ValueError("the token-table path is forward only")
        loop = {"gru": _gru_loop, "lstm": _lstm_loop, "simple_rnn": _simple_loop}[cell_kind]
        hs, c_last = loop(sources, m, h0, c0, u, recurrent_bias)
        last = hs[-1]
    else:
        hs, last, c_last = _forward(cell_kind, sources, inputs_at, m, h0, c0, u, recurrent_bias, return_sequences)
    new_states = [last, c_last] if cell_kind == "lstm" else [last]
    if m is not None and zero_output_for_mask:
        last = last * m[-1]
        hs = None if hs is None else hs * m
    outputs = tf.transpose(hs, [1, 0, 2]) if return_sequences else last[:, None, :]
    return last, outputs, new_states


def _run_native(lib, x, states, cell, go_backwards: bool, return_sequences: bool, mask, zero_output_for_mask: bool,
                training: bool, token_ids, embeddings):
    """_run for a float32 GRU with the compiled loops (gru_lab.native): same results, same gradients.

    The input projection is one (T*B, d) @ (d, 3u) product; at inference from a token table the op reads
    each step's rows of E @ W + b itself, so no (T, B, 3u) array is made. The ops take the three gates
    side by side, since the compiled step multiplies h by the whole recurrent kernel at once. Gradients:
    the backward op returns each step's gate gradients, and dU, the recurrent bias's gradient and (through TensorFlow's own gradient of the
    projection) dW, the input bias's and the inputs' are large products over all steps."""
    import tensorflow as tf

    kernel = tf.cast(cell.kernel, tf.float32)
    recurrent_kernel = tf.cast(cell.recurrent_kernel, tf.float32)
    bias = tf.cast(cell.bias, tf.float32)
    steps_mask = None if mask is None else tf.cast(tf.transpose(mask, [1, 0]), tf.float32)  # (T, B)
    if steps_mask is not None and go_backwards:
        steps_mask = tf.reverse(steps_mask, [0])
    m = tf.zeros([0]) if steps_mask is None else steps_mask  # the ops take an empty tensor for "no mask"
    h0 = tf.cast(states[0], tf.float32)
    if token_ids is not None:  # inference from the token table: the op gathers each step's rows itself
        ids = tf.transpose(tf.cast(token_ids, tf.int32), [1, 0])  # (T, B)
        if go_backwards:
            ids = tf.reverse(ids, [0])
        table = tf.matmul(tf.cast(embeddings, tf.float32), kernel) + bias[0]
        states_out = _native_table_loop(lib, table, ids, h0, recurrent_kernel, bias[1], m, return_sequences)
        hs, last = (states_out, states_out[-1]) if return_sequences else (None, states_out)
        return _native_outputs(hs, last, steps_mask, zero_output_for_mask, return_sequences)
    x = tf.transpose(x, [1, 0, 2])  # time-major: (T, B, d)
    if go_backwards:
        x = tf.reverse(x, [0])
    steps, batch, d = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    projected = tf.reshape(tf.matmul(tf.reshape(x, [-1, d]), kernel) + bias[0], [steps, batch, -1])
    hs = _native_loop(lib, projected, h0, recurrent_kernel, bias[1], m, save=training)
    return _native_outputs(hs, hs[-1], steps_mask, zero_output_for_mask, return_sequences)


def _native_loop(lib, projected, h0, recurrent_kernel, recurrent_bias, m, save: bool):
    """The states (T, B, u), differentiable. save=True (training) keeps each step's gates for the backward
    op; save=False (inference) does not, and a gradient asked for anyway runs the forward again with them."""
    import tensorflow as tf

    @tf.custom_gradient
    def loop(projected, h0, recurrent_kernel, recurrent_bias):
        hs, saved = lib.gru_lab_gru_forward(projected, h0, recurrent_kernel, recurrent_bias, m, save=save)

        def grad(d_hs):
            kept = saved if save else lib.gru_lab_gru_forward(projected, h0, recurrent_kernel, recurrent_bias, m,
                                                              save=True)[1]
            return _native_backward(lib, d_hs, hs, h0, kept, recurrent_kernel, m)

        return hs, grad

    return loop(projected, h0, recurrent_kernel, recurrent_bias)


def _native_backward(lib, d_hs, hs, h0, saved, recurrent_kernel, m):
    """(d projected, d h0, d recurrent kernel, d recurrent bias) from the backward op and two large reductions."""
    import tensorflow as tf

    d_projected, d_recurrent, d_h0 = lib.gru_lab_gru_backward(d_hs, hs, h0, saved, recurrent_kernel, m)
    # dU = sum_t h_{t-1}^T d_t, with h_{-1} = h0: split so that no (T, B, u) concatenation is copied
    # (slices along the first axis share the tensor's memory).
    d_u = tf.matmul(h0, d_recurrent[0], transpose_a=True) + _flat_matmul(hs[:-1], d_recurrent[1:], transpose_a=True)
    return d_projected, d_h0, d_u, tf.reduce_sum(d_recurrent, axis=[0, 1])


def _native_table_loop(lib, table, ids, h0, recurrent_kernel, recurrent_bias, m, keep_sequence: bool):
    """States (T, B, u) (keep_sequence) or the last state (B, u), read from the token table; differentiable
    (a gradient, rare at inference, projects the sequence and runs the training ops)."""
    import tensorflow as tf

    @tf.custom_gradient
    def loop(table, h0, recurrent_kernel, recurrent_bias):
        out = lib.gru_lab_gru_table_forward(table, ids, h0, recurrent_kernel, recurrent_bias, m,
                                            keep_sequence=keep_sequence)

        def grad(d_out):
            projected = tf.gather(table, ids)
            hs, saved = lib.gru_lab_gru_forward(projected, h0, recurrent_kernel, recurrent_bias, m, save=True)
            d_hs = d_out if keep_sequence else tf.concat([tf.zeros_like(hs[:-1]), d_out[None]], axis=0)
            d_projected, *rest = _native_backward(lib, d_hs, hs, h0, saved, recurrent_kernel, m)
            d_table = tf.math.unsorted_segment_sum(tf.reshape(d_projected, [-1, tf.shape(table)[1]]),
                                                   tf.reshape(ids, [-1]), tf.shape(table)[0])
            return (d_table, *rest)

        return out, grad

    return loop(table, h0, recurrent_kernel, recurrent_bias)


def _native_outputs(hs, last, m, zero_output_for_mask: bool, return_sequences: bool):
    """(last_output, outputs, new_states) as _run returns them, from the states (T, B, u) or None and the last."""
    import tensorflow as tf

    new_states = [last]
    if m is not None and zero_output_for_mask:
        last = last * m[-1][:, None]
        hs = None if hs is None else hs * m[:, :, None]
    outputs = tf.transpose(hs, [1, 0, 2]) if return_sequences else last[:, None, :]
    return last, outputs, new_states


def _forward(cell_kind: str, sources, inputs_at, m, h0, c0, u, recurrent_bias, keep_sequence: bool):
    """The forward-only loop: (states (T, B, u) or None, last h, last c or None)."""
    import tensorflow as tf

    def step(elems, carry):
        *step_sources, mt = elems
        xs = inputs_at(step_sources)
        if cell_kind == "lstm":
            h, c = carry
            h_cand, c_cand = _lstm_cell(h, c, *xs, *u)[:2]
            h_new = _blend(mt, h_cand, h)
            new_carry = (h_new, _blend(mt, c_cand, c))
        elif cell_kind == "gru":
            h_new = _blend(mt, _gru_cell(carry, *xs, *u, *recurrent_bias)[0], carry)
            new_carry = h_new
        else:
            h_new = _blend(mt, tf.tanh(xs[0] + tf.matmul(carry, u[0])), carry)
            new_carry = h_new
        return new_carry, ((h_new,) if keep_sequence else ())

    init = (h0, c0) if cell_kind == "lstm" else h0
    carry, arrays = _scan(step, (*sources, m), init, 1 if keep_sequence else 0, dtype=h0.dtype)
    h_last, c_last = carry if cell_kind == "lstm" else (carry, None)
    return (arrays[0] if keep_sequence else None), h_last, c_last


def _blend(m, new, old):
    """Keras's masking: where the step is masked (m = 0) the state stays what it was."""
    return new if m is None else m * new + (1.0 - m) * old


def _scan(step, elems, init, extra_arrays: int, dtype=None):
    """Run step over time with a tf.while_loop; returns (final carry, stacked per-step outputs).

    elems is a tuple of time-major tensors (None entries are passed through as None); the per-step
    outputs are stored as dtype (default: elems[0]'s)."""
    import tensorflow as tf

    n = tf.shape(elems[0])[0]
    arrays = tuple(tf.TensorArray(dtype or elems[0].dtype, size=n) for _ in range(extra_arrays))

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


def _back_through(d_gates, u_transposed):
    """sum over gates of d_gate @ U_gate^T: the gradient a step's gates send to the previous state.

    Takes the U_gate^T already transposed (once, outside the loop): XLA's CPU dot with transpose_b
    inside the loop ran 10-15% slower."""
    import tensorflow as tf

    total = None
    for d, w in zip(d_gates, u_transposed):
        term = tf.matmul(d, w)
        total = term if total is None else total + term
    return total


def _gru_cell(h, xz, xr, xn, uz, ur, un, bz, br, bn):
    """Keras GRU (reset_after=True): z, r = sigmoid(x_zr + h U_zr + b_zr); n = tanh(x_n + r * (h U_n + b_n));
    h' = z * h + (1 - z) * n. Gate order in the weights: z, r, n."""
    import tensorflow as tf

    z = tf.sigmoid(xz + tf.matmul(h, uz) + bz)
    r = tf.sigmoid(xr + tf.matmul(h, ur) + br)
    rn = tf.matmul(h, un) + bn
    n = tf.tanh(xn + r * rn)
    return z * h + (1.0 - z) * n, z, r, n, rn


def _gru_loop(projected, m, h0, c0, u, recurrent_bias):
    """Returns (states (T, B, u), None)."""
    import tensorflow as tf

    @tf.custom_gradient
    def loop(pz, pr, pn, h0, uz, ur, un, bz, br, bn):
        def step(elems, h):
            xz, xr, xn, mt = elems
            h_cand, z, r, n, rn = _gru_cell(h, xz, xr, xn, uz, ur, un, bz, br, bn)
            h_new = _blend(mt, h_cand, h)
            return h_new, (h_new, z, r, n, rn)

        _, (hs, zs, rs, ns, rns) = _scan(step, (pz, pr, pn, m), h0, 5)

        def grad(dhs):
            h_prev = tf.concat([h0[None], hs[:-1]], axis=0)
            u_t = [tf.transpose(w) for w in (uz, ur, un)]

            def back(elems, dh_carry):
                dh_out, mt, hp, z, r, n, rn = elems
                dh, dh_direct = _split_mask(mt, dh_out + dh_carry)
                dn = dh * (1.0 - z) * (1.0 - n * n)
                dz = dh * (hp - n) * z * (1.0 - z)
                dr = dn * rn * r * (1.0 - r)
                drn = dn * r
                return _plus(dh * z + _back_through((dz, dr, drn), u_t), dh_direct), (dz, dr, dn, drn)

            dh0, (dzs, drs, dns, drns) = _scan_back(back, (dhs, m, h_prev, zs, rs, ns, rns), tf.zeros_like(h0), 4)
            d_u = [_flat_matmul(h_prev, d, transpose_a=True) for d in (dzs, drs, drns)]
            d_b = [tf.reduce_sum(d, axis=[0, 1]) for d in (dzs, drs, drns)]
            return (dzs, drs, dns, dh0, *d_u, *d_b)

        return hs, grad

    return loop(*projected, h0, *u, *recurrent_bias), None


def _lstm_cell(h, c, xi, xf, xg, xo, ui, uf, ug, uo):
    """Keras LSTM: i, f, o = sigmoid(.), g = tanh(.) of x W + h U + b; c' = f c + i g; h' = o tanh(c').
    Gate order in the weights: i, f, g (Keras calls it c), o."""
    import tensorflow as tf

    i = tf.sigmoid(xi + tf.matmul(h, ui))
    f = tf.sigmoid(xf + tf.matmul(h, uf))
    g = tf.tanh(xg + tf.matmul(h, ug))
    o = tf.sigmoid(xo + tf.matmul(h, uo))
    c_new = f * c + i * g
    tc = tf.tanh(c_new)
    return o * tc, c_new, i, f, g, o, tc


def _lstm_loop(projected, m, h0, c0, u, recurrent_bias=None):
    """Returns (states (T, B, u), last c)."""
    import tensorflow as tf

    @tf.custom_gradient
    def loop(pi, pf, pg, po, h0, c0, ui, uf, ug, uo):
        def step(elems, carry):
            xi, xf, xg, xo, mt = elems
            h, c = carry
            h_cand, c_cand, i, f, g, o, tc = _lstm_cell(h, c, xi, xf, xg, xo, ui, uf, ug, uo)
            h_new, c_new = _blend(mt, h_cand, h), _blend(mt, c_cand, c)
            return (h_new, c_new), (h_new, c_new, i, f, g, o, tc)

        (_, c_last), (hs, cs, i_s, fs, gs, os_, tcs) = _scan(step, (pi, pf, pg, po, m), (h0, c0), 7)

        def grad(dhs, dc_last):
            h_prev = tf.concat([h0[None], hs[:-1]], axis=0)
            u_t = [tf.transpose(w) for w in (ui, uf, ug, uo)]
            c_prev = tf.concat([c0[None], cs[:-1]], axis=0)

            def back(elems, carry):
                dh_out, mt, cp, i, f, g, o, tc = elems
                dh_carry, dc_carry = carry
                dh, dh_direct = _split_mask(mt, dh_out + dh_carry)
                dc, dc_direct = _split_mask(mt, dc_carry)
                dc = dc + dh * o * (1.0 - tc * tc)
                d_gates = (dc * g * i * (1.0 - i), dc * cp * f * (1.0 - f), dc * i * (1.0 - g * g),
                           dh * tc * o * (1.0 - o))
                return (_plus(_back_through(d_gates, u_t), dh_direct), _plus(dc * f, dc_direct)), d_gates

            dc_init = tf.zeros_like(c0) if dc_last is None else dc_last
            (dh0, dc0), d_gates = _scan_back(back, (dhs, m, c_prev, i_s, fs, gs, os_, tcs),
                                             (tf.zeros_like(h0), dc_init), 4)
            return (*d_gates, dh0, dc0, *[_flat_matmul(h_prev, d, transpose_a=True) for d in d_gates])

        return (hs, c_last), grad

    return loop(*projected, h0, c0, *u)


def _simple_loop(projected, m, h0, c0, u, recurrent_bias=None):
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
            u_t = tf.transpose(u)

            def back(elems, dh_carry):
                dh_out, mt, h_cand = elems
                dh, dh_direct = _split_mask(mt, dh_out + dh_carry)
                da = dh * (1.0 - h_cand * h_cand)
                return _plus(tf.matmul(da, u_t), dh_direct), (da,)

            dh0, (das,) = _scan_back(back, (dhs, m, cands), tf.zeros_like(h0), 1)
            return das, dh0, _flat_matmul(h_prev, das, transpose_a=True)

        return hs, grad

    return loop(projected[0], h0, u[0]), None

