"""gru-lab's compiled loops (gru_lab.rnn.compiled): same outputs, states and gradients as keras.layers.GRU,
LSTM and SimpleRNN, the same checkpoints, the build and its fallback, and when a run uses them."""

from __future__ import annotations

import contextlib
import functools
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gru_lab.config import ModelConfig, config_from_raw
from gru_lab.data import spec_for
from gru_lab.data.base import InputSpec
from gru_lab.models.build import build_model
from gru_lab.rnn import compiled as native
from gru_lab.rnn.layers import CLASSES, running
from gru_lab.rnn.support import COMPILED_CELLS
from gru_lab.training import device
from tests.rnn.test_fused import (
    KERAS_CLASSES,
    TOKEN_VARIANTS,
    TOL,
    _first_recurrent,
    _outputs_and_grads,
    _pair,
    _token_twins,
    _twin_and_reference,
    padding_mask_matches_keras,
)


@pytest.fixture(scope="module")
def lib():
    """The built ops. Where a C++ compiler exists they must build: a failure there is a bug, not a skip."""
    loaded = native.load()
    if loaded is None:
        if native.compiler() is not None:  # the compiler a build runs ($CXX, else g++/c++/clang++ on PATH)
            pytest.fail(f"a C++ compiler is here but the compiled loops did not load: {native.status()['reason']}")
        pytest.skip(f"no C++ compiler on this machine, so no compiled loops: {native.status()['reason']}")
    return loaded


@pytest.fixture
def compiled(lib):
    with running(loops=True, compiled_loops=True) as on:
        assert on
        yield


def _close(got, expected):
    np.testing.assert_allclose(got, expected, atol=TOL * max(1.0, float(np.abs(expected).max())), rtol=0)


CELLS = pytest.mark.parametrize("cell", COMPILED_CELLS)


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backwards"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@CELLS
def test_same_outputs_states_and_gradients_as_keras(compiled, cell, return_sequences, go_backwards, training):
    fast, x, (ref_out, ref_grads) = _twin_and_reference(cell, training, return_sequences=return_sequences,
                                                        go_backwards=go_backwards, return_state=True)
    fast_out, fast_grads = _outputs_and_grads(fast, x, training)
    assert (fast.trained_with if training else fast.inferred_with) == "compiled"
    assert len(fast_out) == len(ref_out) == (3 if cell == "lstm" else 2)  # output + states (h, and c for LSTM)
    for a, b in zip(ref_out, fast_out):
        assert a.shape == b.shape
        _close(b, a)
    for a, b in zip(ref_grads, fast_grads):
        _close(b, a)


@contextlib.contextmanager
def _op_threads(lib, threads: int):
    """The recurrence ops called with this `threads` attribute (0: their own rule, which keeps a small call on one
    thread; k > 0: blocks for k threads, at least 8 rows each), as compiled.run calls them."""
    names = [n for n in dir(lib) if n.startswith("gru_lab_") and "gradient" not in n]
    saved = {n: getattr(lib, n) for n in names}
    for n in names:
        setattr(lib, n, functools.partial(saved[n], threads=threads))
    try:
        yield
    finally:
        for n in names:
            setattr(lib, n, saved[n])


@pytest.mark.parametrize("batch, steps, units", [(1, 1, 3), (7, 5, 4), (8, 3, 16), (17, 6, 5), (64, 12, 33)])
@CELLS
def test_every_batch_split_between_threads_matches_keras(compiled, lib, cell, batch, steps, units):
    """The batch rows are split between the intra-op threads (blocks of at least 8 rows): uneven splits,
    a single block and odd unit counts give Keras's numbers (these small calls split only when asked to)."""
    with _op_threads(lib, 2):
        _split_matches_keras(cell, batch, steps, units)


@settings(max_examples=12, deadline=None, derandomize=True, database=None)
@given(cell=st.sampled_from(COMPILED_CELLS), batch=st.integers(1, 72), steps=st.integers(1, 4),
       units=st.integers(1, 40), threads=st.sampled_from([0, 1, 2, 3]))
@example(cell="gru", batch=16, steps=3, units=40, threads=2)  # two blocks of 8 rows: in place, one pass
@example(cell="lstm", batch=40, steps=2, units=37, threads=2)  # blocks of 20: three passes; 148 columns, a ragged tail
@example(cell="simple_rnn", batch=72, steps=2, units=24, threads=2)  # blocks of 36: Eigen's product
@example(cell="gru", batch=3, steps=2, units=9, threads=0)  # one block of 3 rows, 27 columns: 16 + 8 + 3 singly
@example(cell="lstm", batch=64, steps=4, units=40, threads=0)  # 64 rows on one thread (too little work to split)
def test_the_step_product_gives_keras_numbers_at_any_block_and_width(lib, cell, batch, steps, units, threads):
    """The step's product (step_product.h) multiplies a block of a few rows in place and more rows with Eigen's
    GEMM, in tiles of 16, 8 and 4 columns and the last ones singly: any batch and thread count (so any block
    size), any width gives Keras's outputs and gradients."""
    with running(loops=True, compiled_loops=True), _op_threads(lib, threads):
        _split_matches_keras(cell, batch, steps, units)


def _split_matches_keras(cell, batch, steps, units):
    rng = np.random.default_rng(batch)
    ref, fast = KERAS_CLASSES[cell](units, return_sequences=True), CLASSES[cell](units, return_sequences=True)
    x = tf.constant(rng.normal(size=(batch, steps, 3)).astype("float32"))
    ref(x), fast(x)
    # SimpleRNN's recurrence with large random weights is chaotic: rounding differences of 1e-7 grow about 3x a
    # step (at 33 units and 12 steps Keras's own loop is 1.6e-5 from a float64 reference); weights that
    # contract keep this a test of the loops, not of the rounding.
    scale = 0.15 if cell == "simple_rnn" else 0.5
    fast.set_weights([rng.normal(scale=scale, size=w.shape).astype("float32") for w in ref.get_weights()])
    ref.set_weights(fast.get_weights())
    ref_out, ref_grads = _outputs_and_grads(ref, x, True)
    fast_out, fast_grads = _outputs_and_grads(fast, x, True)
    assert fast.trained_with == "compiled"
    _close(fast_out[0], ref_out[0])
    for a, b in zip(ref_grads, fast_grads):
        _close(b, a)


@pytest.mark.parametrize("padding", ["post", "pre"])
@CELLS
def test_padding_mask_same_as_keras(compiled, cell, padding):
    padding_mask_matches_keras(cell, padding, trained_with="compiled", inferred_with="compiled")


def test_a_block_of_padding_rows_skips_its_steps_and_keeps_keras_numbers(compiled):
    """A row block whose rows are all padding at a step skips it (the loops stop at a block's longest
    sequence): 24 rows in blocks of 8 with lengths 2, 5 and 9 (post) or the same from the left (pre),
    and whole blocks of padding-only rows, still give Keras's outputs, last c and gradients."""
    rng = np.random.default_rng(7)
    lengths = np.repeat([2, 5, 9, 0], 8)[:, None]  # the last block: rows without a real step at all
    for padding in ("post", "pre"):
        steps = np.arange(9)[None, :]
        mask = tf.constant(steps < lengths if padding == "post" else steps >= 9 - lengths)
        x = tf.constant(rng.normal(size=(32, 9, 3)).astype("float32"))
        for cell in COMPILED_CELLS:
            ref, fast = KERAS_CLASSES[cell](5, return_sequences=True, return_state=True), CLASSES[cell](
                5, return_sequences=True, return_state=True)
            ref(x), fast(x)
            fast.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.get_weights()])
            ref.set_weights(fast.get_weights())
            outs = []
            for layer in (ref, fast):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    out = layer(x, mask=mask, training=True)
                    loss = sum(tf.reduce_sum(tf.square(o) * tf.range(1.0, 6.0)) for o in out)
                outs.append(([o.numpy() for o in out], tape.gradient(loss, [x] + layer.trainable_weights)))
            assert fast.trained_with == "compiled"
            for a, b in zip(outs[0][0] + outs[0][1], outs[1][0] + outs[1][1]):
                _close(np.asarray(b), np.asarray(a))


@pytest.mark.parametrize("padding", [None, "post", "pre"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@CELLS
def test_in_a_graph_the_ops_reuse_their_inputs_buffers_and_keep_keras_numbers(compiled, cell, return_sequences,
                                                                               padding):
    """In a tf.function TensorFlow hands a buffer that nothing else reads to the op that asks for it: the
    forward op writes the gates over the projection, the backward op its gradients over the gates (SimpleRNN:
    the states over the projection, d projected over d states), and without return_sequences the backward op
    gets the last state's gradient alone. Outputs, states and gradients stay Keras's (eager tests cannot see
    this: there the caller still holds every input)."""
    rng = np.random.default_rng(8)
    x = tf.constant(rng.normal(size=(24, 9, 3)).astype("float32"))
    lengths = np.repeat([2, 9, 5], 8)[:, None]
    steps = np.arange(9)[None, :]
    mask = None if padding is None else tf.constant(steps < lengths if padding == "post" else steps >= 9 - lengths)
    ref = KERAS_CLASSES[cell](5, return_sequences=return_sequences, return_state=True)
    fast = CLASSES[cell](5, return_sequences=return_sequences, return_state=True)
    ref(x), fast(x)
    fast.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.get_weights()])
    ref.set_weights(fast.get_weights())

    def outputs_and_grads(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer(x, mask=mask, training=True)
            loss = sum(tf.reduce_sum(tf.square(o) * tf.range(1.0, 6.0)) for o in out)
        return list(out) + tape.gradient(loss, [x] + layer.trainable_weights)

    expected = outputs_and_grads(ref)
    got = tf.function(lambda: outputs_and_grads(fast))()
    assert fast.trained_with == "compiled"
    for a, b in zip(expected, got):
        _close(b.numpy(), a.numpy())


@CELLS
def test_input_dropout_uses_the_same_mask_as_keras(compiled, cell):
    fast, x, ((ref_out,), ref_grads) = _twin_and_reference(cell, True, dropout=0.4, return_sequences=True)
    (fast_out,), fast_grads = _outputs_and_grads(fast, x, training=True)
    assert fast.trained_with == "compiled"
    _close(fast_out, ref_out)
    for a, b in zip(ref_grads, fast_grads):
        _close(b, a)


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
@TOKEN_VARIANTS
@CELLS
def test_stacked_token_models_train_and_predict_as_keras(compiled, cell, variant):
    """gru-lab's Embedding -> cell(6, sequences) -> cell(4) -> Dense: the first layer predicts from the token
    table, the second from its own projection, and a training step's gradients are Keras's."""
    fused, plain, x = _token_twins(cell, **variant)
    y = np.linspace(0, 1, len(x)).reshape(-1, 1).astype("float32")

    def grads(model):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        return loss.numpy(), [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, model.trainable_weights)]

    def grads_at_inference(model):
        with tf.GradientTape() as tape:
            out = tf.reduce_sum(model(x, training=False) * y)
        return tape.gradient(out, model.trainable_weights)

    (ref_loss, ref_g), (loss, g) = grads(plain), grads(fused)
    assert abs(ref_loss - loss) < TOL
    for a, b in zip(ref_g, g):
        _close(b, a)
    _close(fused.predict(x, verbose=0), plain.predict(x, verbose=0))
    # a gradient at inference (saliency, say) runs through the table op too
    for a, b in zip(grads_at_inference(plain), grads_at_inference(fused)):
        _close(np.asarray(tf.convert_to_tensor(b)), np.asarray(tf.convert_to_tensor(a)))
    first = _first_recurrent(fused)
    assert all(part.inferred_with == "compiled-table" and part.trained_with == "compiled-table" for part in first)


def _token_grads(model, x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
    return [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, model.trainable_weights)]


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
@CELLS
def test_the_batch_token_table_trains_bit_for_bit_repeatably_with_any_vocabulary(compiled, cell):
    """The batch's table holds only the tokens it uses, so a vocabulary far past the whole-vocabulary table's
    break-even (256 x 11 steps here) is no reason to project every step; training and inference read it,
    gradients equal Keras's (a token repeated many times sums its steps' gradients) and repeat bit for bit."""
    fused, plain, x = _token_twins(cell, vocab=4_000, mask_zero=True, padding="post")
    x[:, ::2] = np.where(x[:, ::2] > 0, 7, 0)  # one token at every other step: many steps share one table row
    y = np.linspace(0, 1, len(x)).reshape(-1, 1).astype("float32")
    expected, got = _token_grads(plain, x, y), _token_grads(fused, x, y)
    for a, b in zip(expected, got):
        _close(b, a)
    again = _token_grads(fused, x, y)
    assert all(np.array_equal(a, b) for a, b in zip(got, again))
    _close(fused.predict(x, verbose=0), plain.predict(x, verbose=0))
    (first,) = _first_recurrent(fused)
    assert (first.trained_with, first.inferred_with) == ("compiled-table", "compiled-table")


@CELLS
def test_input_dropout_on_token_inputs_trains_from_the_table_with_keras_mask(compiled, cell):
    """Input dropout's mask is one per batch row for all its steps (Keras's cells cache it), so a row's token
    still has one projection: the table holds each distinct (row, token) pair, scaled by that row's mask, and
    a training step's gradients equal Keras's with the same mask (both models draw it from the same seed)."""
    spec = InputSpec("binary", "tokens", 11, 1, 1, vocab_size=40, padding="post")
    model = dict(cell=cell, units=[6, 4], embedding_dim=8, dropout=0.4, mask_zero=True)
    keras.utils.set_random_seed(0)
    fused = build_model(ModelConfig(**model), spec)
    keras.utils.set_random_seed(0)
    plain = build_model(ModelConfig(loops="keras", **model), spec)
    rng = np.random.default_rng(6)
    weights = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in fused.get_weights()]
    fused.set_weights(weights)
    plain.set_weights(weights)
    x = rng.integers(1, 6, (9, 11)).astype("int32")  # 5 tokens: every row repeats them
    x[:, 8:] = 0
    y = np.linspace(0, 1, len(x)).reshape(-1, 1).astype("float32")
    expected, got = _token_grads(plain, x, y), _token_grads(fused, x, y)
    for a, b in zip(expected, got):
        _close(b, a)
    first = _first_recurrent(fused)[0]
    assert first.trained_with == "compiled-table"
    without = build_model(ModelConfig(**{**model, "dropout": 0.0}), spec)
    without.set_weights(weights)
    assert not np.allclose(_token_grads(without, x, y)[1], got[1])  # the mask did act: the layer's dW differs


def test_a_token_outside_the_vocabulary_stops_training_with_an_error(compiled):
    fused, _, x = _token_twins("lstm")
    x[2, 3] = 40  # the vocabulary is 0 .. 39
    with pytest.raises(tf.errors.InvalidArgumentError):
        _token_grads(fused, x, np.zeros((len(x), 1), "float32"))


@CELLS
def test_checkpoints_load_both_ways(compiled, cell, tmp_path):
    """A model on the compiled loops saves a model.keras that a plain Keras model loads and that loads again
    as gru-lab's, and it loads a plain Keras model's weights: same outputs every way."""
    fused, plain, x = _token_twins(cell, mask_zero=True, padding="post")
    with tf.GradientTape():
        fused(x, training=True)
    assert _first_recurrent(fused)[0].trained_with == "compiled-table"
    fused.save(tmp_path / "model.keras")
    plain.set_weights([w + np.float32(0.1) for w in plain.get_weights()])  # differs until it loads the file
    plain.load_weights(tmp_path / "model.keras")
    _close(plain(x).numpy(), fused(x).numpy())
    assert _first_recurrent(fused)[0].inferred_with == "compiled-table"
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(_first_recurrent(loaded)[0]) is CLASSES[cell]
    _close(loaded(x).numpy(), fused(x).numpy())
    plain.set_weights([w - np.float32(0.05) for w in plain.get_weights()])
    plain.save_weights(tmp_path / "plain.weights.h5")
    fused.load_weights(tmp_path / "plain.weights.h5")
    _close(fused(x).numpy(), plain(x).numpy())


def test_outside_a_run_the_fused_loops_run(lib):
    """Off by default: a graph compiled with XLA must not contain the compiled ops (they have no XLA kernel)."""
    ref, fast, x = _pair("gru")
    compiled_step = tf.function(lambda batch: fast(batch, training=True), jit_compile=True)
    _close(compiled_step(x).numpy(), ref(x, training=True).numpy())
    assert fast.trained_with == "fused"


def _op_inputs(cell: str, rng):
    """Random inputs of a cell's forward op (projected, states..., recurrent weights..., no mask), T=20, B=33, u=4."""
    gates = {"gru": 3, "lstm": 4, "simple_rnn": 1}[cell]
    p = tf.constant(rng.normal(size=(20, 33, 4 * gates)).astype("float32"))
    states = [tf.constant(rng.normal(size=(33, 4)).astype("float32")) for _ in range(2 if cell == "lstm" else 1)]
    weights = [tf.constant(rng.normal(size=(4, 4 * gates)).astype("float32"))]
    if cell == "gru":
        weights.append(tf.constant(rng.normal(size=(4 * gates,)).astype("float32")))
    return p, states, weights


def _flat(outputs) -> list:
    """An op wrapper's outputs with what it saves for the backward op (a tuple) spread out, Nones left out."""
    spread = [part for o in outputs for part in (o if isinstance(o, tuple) else (o,))]
    return [o for o in spread if o is not None]


@CELLS
def test_the_ops_are_deterministic(lib, cell):
    """Forward and backward, bit for bit, call after call (the batch split over threads changes nothing)."""
    p, states, weights = _op_inputs(cell, np.random.default_rng(0))
    ops = native._CELLS[cell]
    m = tf.zeros([0])
    runs = [_flat(ops.forward(lib, p, states, weights, m, True)) for _ in range(3)]
    for run in runs[1:]:
        assert len(run) == len(runs[0])
        for a, b in zip(run, runs[0]):
            assert np.array_equal(a.numpy(), b.numpy())
    hs, c_last, saved = ops.forward(lib, p, states, weights, m, True)
    d_c = None if c_last is None else tf.ones_like(c_last)
    grads = [ops.backward(lib, tf.ones_like(hs), d_c, hs, states, saved, weights, m) for _ in range(2)]
    for a, b in zip(*grads):
        assert np.array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("padding", [None, "post"])
@CELLS
def test_the_last_states_gradient_alone_is_a_sequence_of_zeros_but_the_last(lib, cell, padding):
    """The backward ops take d states (B, u) as the last state's gradient alone: the same numbers, bit for
    bit, as a (T, B, u) gradient that is zero but at the last step, masked or not."""
    rng = np.random.default_rng(3)
    p, states, weights = _op_inputs(cell, rng)
    m = tf.zeros([0]) if padding is None else tf.constant((np.arange(20)[:, None] < rng.integers(1, 21, 33))
                                                          .astype("float32"))
    ops = native._CELLS[cell]
    hs, c_last, saved = ops.forward(lib, p, states, weights, m, True)
    d_last = tf.constant(rng.normal(size=tuple(hs.shape[1:])).astype("float32"))
    d_c = None if c_last is None else tf.constant(rng.normal(size=tuple(c_last.shape)).astype("float32"))
    d_seq = tf.concat([tf.zeros_like(hs[:-1]), d_last[None]], axis=0)
    alone = ops.backward(lib, d_last, d_c, hs, states, saved, weights, m)
    padded = ops.backward(lib, d_seq, d_c, hs, states, saved, weights, m)
    assert len(alone) == len(padded)
    for a, b in zip(alone, padded):
        assert np.array_equal(a.numpy(), b.numpy())
    assert np.abs(alone[0].numpy()).max() > 0  # a gradient reached the inputs


@CELLS
def test_a_token_id_outside_the_vocabulary_is_an_error_not_a_wrong_row(lib, cell):
    _, states, weights = _op_inputs(cell, np.random.default_rng(1))
    gates = {"gru": 3, "lstm": 4, "simple_rnn": 1}[cell]
    table = tf.zeros((5, 4 * gates))
    ids = tf.constant(np.full((20, 33), 4, dtype="int32") + np.eye(20, 33, dtype="int32"))  # a 5 on the diagonal
    with pytest.raises(tf.errors.InvalidArgumentError, match="token id 5 is outside the vocabulary"):
        native._CELLS[cell].table(lib, table, ids, states, weights, tf.zeros([0]), False, False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="token id 5 is outside the vocabulary"):
        lib.gru_lab_table_gradient(tf.zeros((20, 33, 4 * gates)), ids, 5)


@CELLS
def test_training_from_a_table_saves_what_the_projection_would(lib, cell):
    """The table ops' training mode (save) reads each step's row and keeps the same states and saved gates,
    bit for bit, as the forward op on the gathered projection."""
    rng = np.random.default_rng(2)
    _, states, weights = _op_inputs(cell, rng)
    gates = {"gru": 3, "lstm": 4, "simple_rnn": 1}[cell]
    table = tf.constant(rng.normal(size=(9, 4 * gates)).astype("float32"))
    ids = tf.constant(rng.integers(0, 9, (20, 33)).astype("int32"))
    mask = tf.constant((rng.random((20, 33)) > 0.2).astype("float32"))
    ops = native._CELLS[cell]
    from_table = _flat(ops.table(lib, table, ids, states, weights, mask, True, True))
    projected = _flat(ops.forward(lib, tf.gather(table, ids), states, weights, mask, True))
    assert len(from_table) == len(projected)
    for a, b in zip(from_table, projected):
        assert np.array_equal(a.numpy(), b.numpy())
    # the shapes a graph knows before it runs (the ops' shape functions) are the ones they return
    graph = tf.function(lambda t, i: _flat(ops.table(lib, t, i, states, weights, mask, True, True))
                        ).get_concrete_function(table, ids)
    assert [o.shape.as_list() for o in graph.outputs] == [list(o.shape) for o in from_table]
    forward = tf.function(lambda q: _flat(ops.forward(lib, q, states, weights, mask, True))
                          ).get_concrete_function(tf.gather(table, ids))
    assert [o.shape.as_list() for o in forward.outputs] == [list(o.shape) for o in projected]


def test_the_table_gradient_sums_each_rows_steps_whatever_the_thread_count(lib):
    rng = np.random.default_rng(4)
    d_rows = tf.constant(rng.normal(size=(30, 40, 12)).astype("float32"))
    ids = tf.constant(rng.integers(0, 50, (30, 40)).astype("int32"))  # rows 0 .. 54: some read by no step
    expected = tf.math.unsorted_segment_sum(d_rows, ids, 55).numpy()
    sums = [lib.gru_lab_table_gradient(d_rows, ids, 55, threads=k).numpy() for k in (1, 2, 3, 0)]
    np.testing.assert_allclose(sums[0], expected, rtol=0, atol=1e-5)
    assert not sums[0][50:].any()
    assert all(np.array_equal(s, sums[0]) for s in sums[1:])


@st.composite
def _dropout_batches(draw):
    """A batch of token ids (T, B) with padding id 0 at the rows' ends, and a dropout mask (B, d) as Keras draws
    it (each value 0 or 1/(1-p) in float32), some rows dropping no feature."""
    batch, steps, d = draw(st.integers(1, 9)), draw(st.integers(1, 12)), draw(st.integers(1, 12))
    return dict(batch=batch, steps=steps, d=d, width=draw(st.integers(1, 10)), vocab=draw(st.integers(1, 30)),
                rate=draw(st.sampled_from([0.01, 0.2, 0.35, 0.5])), seed=draw(st.integers(0, 2**31)),
                whole=draw(st.lists(st.booleans(), min_size=batch, max_size=batch)))


def _table_rows(direct, ids, embeddings, kernel, bias, mask, weights, lib=None):
    """Each step's projection (T, B, G) as read from the batch's table (direct: as Keras computes it, each
    step's embedded input masked by its row, times W), and the gradients of sum(rows * weights) with respect
    to the embeddings, the kernel and the bias."""
    with tf.GradientTape() as tape:
        tape.watch([embeddings, kernel, bias])
        if direct:
            rows = tf.matmul(tf.gather(embeddings, ids) * mask[None], kernel) + bias
        else:
            table, index = native._batch_table(ids, embeddings, kernel, bias, mask, lib)
            assert index.shape == ids.shape
            rows = tf.gather(table, index)
        loss = tf.reduce_sum(rows * weights)
    grads = tape.gradient(loss, [embeddings, kernel, bias])
    if not direct:  # one slice a distinct token, as without dropout (what Adam's fused update needs)
        assert isinstance(grads[0], tf.IndexedSlices)
        assert sorted(grads[0].indices.numpy()) == sorted(np.unique(ids.numpy()))
    return [rows.numpy()] + [tf.convert_to_tensor(g).numpy() for g in grads]


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(case=_dropout_batches())
@example(case=dict(batch=1, steps=7, d=5, width=3, vocab=4, rate=0.5, seed=1, whole=[False]))
@example(case=dict(batch=4, steps=6, d=8, width=4, vocab=9, rate=0.2, seed=2, whole=[True] * 4))
@example(case=dict(batch=6, steps=12, d=12, width=8, vocab=3, rate=0.5, seed=3, whole=[True, False] * 3))
def test_the_dropout_table_gives_keras_rows_and_gradients(case, lib):
    """Input dropout's batch table (a row per distinct (batch row, token) pair) reads each step the row Keras
    projects, (E[v] * m_b) @ W + b, and gives the same gradients for the embeddings, the kernel and the bias:
    a batch of one, rows that drop nothing (a batch where none does), rates up to 0.5, padding id 0 read by
    many rows."""
    rng = np.random.default_rng(case["seed"])
    batch, steps, d, width = case["batch"], case["steps"], case["d"], case["width"]
    ids = rng.integers(0, case["vocab"], (steps, batch))
    ids[np.arange(steps)[:, None] >= rng.integers(1, steps + 1, batch)] = 0  # padding at each row's end
    scale = np.float32(1 / (1 - case["rate"]))  # as TensorFlow's dropout scales the kept inputs
    mask = np.where(rng.random((batch, d)) >= case["rate"], scale, np.float32(0))
    mask[np.array(case["whole"])] = scale
    inputs = [tf.constant(ids.astype("int32"))] + [
        tf.constant(rng.normal(size=shape).astype("float32"))
        for shape in ((case["vocab"], d), (d, width), (width,))]
    weights = tf.constant(rng.normal(size=(steps, batch, width)).astype("float32"))
    expected = _table_rows(True, *inputs, tf.constant(mask), weights)
    got = _table_rows(False, *inputs, tf.constant(mask), weights, lib)  # the pairs' gradients summed by lib's op
    for a, b in zip(expected, got):
        assert a.shape == b.shape
        _close(b, a)


# ----------------------------------------------------------------------------- build and fallback


def test_a_missing_compiler_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    with pytest.raises(RuntimeError, match="no-such-g\\+\\+"):
        native.build(tmp_path / "gru_op.so")
    assert not list(tmp_path.glob("*.so"))  # nothing half written


TINY = {"data": {"name": "sine", "window": 6, "n_train": 32, "n_val": 8, "n_test": 8}, "model": {"units": 4}}


@pytest.fixture
def fresh_build_state():
    """The compiled library's load state as a new process has it; restored afterwards."""
    saved = dict(native._state)
    native._reset_for_tests()
    yield
    native._state.update(saved)


def test_a_failed_build_falls_back_to_the_fused_loops_and_says_why(tmp_path, monkeypatch, fresh_build_state):
    monkeypatch.setattr(native, "build_dir", lambda: tmp_path)  # nothing built there yet
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    assert "no-such-g++" in native.unavailable_without_building()  # what inspect says, before any build
    cfg = config_from_raw(TINY, "test")
    setup = device.prepare(cfg, spec_for(cfg.data))
    assert not setup.plan.compiled and setup.plan.xla  # fused TensorFlow loops under XLA
    assert any("compiled loops unavailable" in note and "no-such-g++" in note for note in setup.plan.notes)
    assert native.load() is None and "no-such-g++" in native.status()["reason"]
    with running(loops=True, compiled_loops=True) as on:
        assert not on


@pytest.mark.parametrize("name", ["GRU_LAB_COMPILED", "GRU_LAB_NATIVE"])
def test_the_environment_variable_turns_them_off(monkeypatch, fresh_build_state, name):
    monkeypatch.delenv("GRU_LAB_COMPILED", raising=False)
    monkeypatch.setenv(name, "0")
    cfg = config_from_raw(TINY, "test")
    setup = device.prepare(cfg, spec_for(cfg.data))
    assert not setup.plan.compiled and setup.plan.xla and not setup.plan.notes
    assert setup.plan.layers[0].train_why == ["GRU_LAB_COMPILED=0"]


def test_evaluation_batch_default_follows_the_loops():
    from gru_lab.training.fit import eval_batch

    t = SimpleNamespace(eval_batch_size=None, batch_size=64)
    assert (eval_batch(t, compiled=True), eval_batch(t, compiled=False)) == (256, 1024)
    assert eval_batch(SimpleNamespace(eval_batch_size=None, batch_size=512), compiled=True) == 512
    assert eval_batch(SimpleNamespace(eval_batch_size=100, batch_size=64), compiled=False) == 100
