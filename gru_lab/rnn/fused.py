"""gru-lab's fused loops: the recurrences of Keras's GRU, LSTM and SimpleRNN as TensorFlow while loops,
with a hand-written backward pass, giving Keras's results and gradients.

- the input projections of all time steps are large matrix products before the loop (x @ W_gate for
  B*T rows at once, one per gate), so only h @ U_gate stays inside the loop. Each gate keeps its own
  arrays and products: XLA's CPU code runs a step several times slower when the gate math slices
  one (B, 3u) product along its last axis (docs/benchmarks.md);
- the backward pass is written by hand (backpropagation through time, as cuDNN does it): per step one
  small product per gate (d_gate @ U_gate^T, with U^T transposed once outside the loop); the weight
  gradients dU, dW and the input gradient are large products over all steps after it;
- the loop is a plain tf.while_loop, so XLA can compile the whole train step;
- at inference, a layer fed directly by gru-lab's Embedding can read each gate's projection of the
  whole vocabulary (E @ W_gate + b) from a table instead of projecting every step (forward only).

A padding mask works as in Keras: a masked step keeps the previous state, and its output is that state
(or zeros with zero_output_for_mask, which Bidirectional sets).
"""

from __future__ import annotations

from gru_lab import cells


def _columns(w, gates: int):
    """The per-gate column blocks of a Keras weight (..., gates * units), in Keras's gate order."""
    import tensorflow as tf

    return tf.split(w, gates, axis=-1) if gates > 1 else [w]


def run(cell_kind: str, sequences, states, cell, go_backwards: bool, return_sequences: bool,
        mask=None, zero_output_for_mask: bool = False, training: bool = True, token_ids=None, embeddings=None):
    """(last_output, outputs (B, T, u), new_states) exactly as keras.src.backend.tensorflow.rnn returns them.

    Every gate has its own (T, B, u) input projection and its own h @ U_gate product in the loop (see the
    module docstring). training=True runs the loop that keeps every step's gates for the hand-written backward pass;
    training=False a forward-only loop that keeps the states alone (all of them only for
    return_sequences). With token_ids (B, T) and the embedding matrix, the inputs are not projected
    at all: each gate's table E @ W_gate + b (vocabulary x u) is computed once and every step gathers
    its rows (forward only). A padding mask (B, T) works as in Keras: a masked step keeps the previous
    state, and its output is that state (or zeros with zero_output_for_mask, which Bidirectional sets)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(sequences)
    dtype = x.dtype
    gates = cells.CELLS[cell_kind].gates
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


def flat_matmul(a, b, transpose_a=False):
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

    Takes the U_gate^T already transposed (once, outside the loop): cheaper than transpose_b inside it."""
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


def _gru_loop(projected, m, h0, _c0, u, recurrent_bias):
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
            d_u = [flat_matmul(h_prev, d, transpose_a=True) for d in (dzs, drs, drns)]
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


def _lstm_loop(projected, m, h0, c0, u, _recurrent_bias=None):
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
            return (*d_gates, dh0, dc0, *[flat_matmul(h_prev, d, transpose_a=True) for d in d_gates])

        return (hs, c_last), grad

    return loop(*projected, h0, c0, *u)


def _simple_loop(projected, m, h0, _c0, u, _recurrent_bias=None):
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
            return das, dh0, flat_matmul(h_prev, das, transpose_a=True)

        return hs, grad

    return loop(projected[0], h0, u[0]), None

