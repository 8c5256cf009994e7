"""gru-lab's layers with the fused loops: same outputs, gradients, weights and checkpoints as Keras's."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from gru_lab.config import ModelConfig
from gru_lab.data.base import InputSpec
from gru_lab.models.build import build_model
from gru_lab.models.kernels import table_blockers
from gru_lab.rnn.layers import CLASSES, Embedding
from gru_lab.rnn.support import TABLE_BREAK_EVEN_BATCH

KERAS_CLASSES = {"gru": layers.GRU, "lstm": layers.LSTM, "simple_rnn": layers.SimpleRNN}
CELLS = sorted(KERAS_CLASSES)
TOL = 1e-5


def _pair(cell: str, **kwargs):
    """A Keras layer and its fused twin, built on the same input shape and holding the same random weights."""
    rng = np.random.default_rng(1)
    keras.utils.set_random_seed(0)  # each layer's dropout seed comes from the global seed at construction
    ref = KERAS_CLASSES[cell](5, **kwargs)
    keras.utils.set_random_seed(0)
    fast = CLASSES[cell](5, **kwargs)
    x = rng.normal(size=(4, 9, 3)).astype("float32")
    ref(x), fast(x)
    weights = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.get_weights()]
    ref.set_weights(weights)
    fast.set_weights(weights)
    return ref, fast, tf.constant(x)


_REFERENCES: dict = {}


def _twin_and_reference(cell: str, training: bool, **kwargs):
    """_pair's fused twin, its input, and Keras's (outputs, gradients) on it. The fused and the compiled tests
    compare their twins with the same Keras layer (the same seeds give the same weights and input), so each
    reference is built and computed once a session; the twin is always a fresh layer."""
    key = (cell, training, tuple(sorted(kwargs.items())))
    if key not in _REFERENCES:
        ref, fast, x = _pair(cell, **kwargs)
        _REFERENCES[key] = ref.get_weights(), x, _outputs_and_grads(ref, x, training)
        return fast, x, _REFERENCES[key][2]
    weights, x, reference = _REFERENCES[key]
    keras.utils.set_random_seed(0)  # as _pair: the dropout seed comes from the global seed at construction
    fast = CLASSES[cell](5, **kwargs)
    fast(x)
    fast.set_weights(weights)
    return fast, x, reference


def _outputs_and_grads(layer, x, training: bool):
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x, training=training)
        out = out if isinstance(out, (list, tuple)) else [out]
        # Weight each output element differently so that every gradient path is exercised.
        loss = sum(tf.reduce_sum(tf.square(o) * tf.range(1.0, 1.0 + o.shape[-1])) for o in out)
    grads = tape.gradient(loss, [x] + layer.trainable_weights)
    return [o.numpy() for o in out], [g.numpy() for g in grads]


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backwards"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("cell", CELLS)
def test_same_outputs_states_and_gradients_as_keras(cell, return_sequences, go_backwards, training):
    fast, x, (ref_out, ref_grads) = _twin_and_reference(cell, training, return_sequences=return_sequences,
                                                        go_backwards=go_backwards, return_state=True)
    fast_out, fast_grads = _outputs_and_grads(fast, x, training)
    assert (fast.trained_with == "fused") is training and fast.inferred_with is None  # inference: Keras's loop
    assert len(fast_out) == len(ref_out) == (3 if cell == "lstm" else 2)  # output + states
    for a, b in zip(ref_out, fast_out):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, atol=TOL, rtol=0)
    for a, b in zip(ref_grads, fast_grads):
        np.testing.assert_allclose(b, a, atol=TOL * max(1.0, float(np.abs(a).max())), rtol=0)


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
@pytest.mark.parametrize("cell", CELLS)
def test_stacked_model_same_outputs_and_gradients(cell):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 12, 4)).astype("float32")
    y = rng.normal(size=(3, 1)).astype("float32")

    def stack(classes):
        return keras.Sequential([keras.Input((12, 4)), classes[cell](6, return_sequences=True), classes[cell](5),
                                 layers.Dense(1)])

    ref, fast = stack(KERAS_CLASSES), stack(CLASSES)
    fast.set_weights(ref.get_weights())

    def grads(model):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        return loss.numpy(), [g.numpy() for g in tape.gradient(loss, model.trainable_weights)]

    (ref_loss, ref_g), (fast_loss, fast_g) = grads(ref), grads(fast)
    assert abs(ref_loss - fast_loss) < TOL
    for a, b in zip(ref_g, fast_g):
        np.testing.assert_allclose(b, a, atol=TOL * max(1.0, float(np.abs(a).max())), rtol=0)
    np.testing.assert_allclose(fast.predict(x, verbose=0), ref.predict(x, verbose=0), atol=TOL)


def test_bidirectional_wraps_the_fused_layer():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 7, 3)).astype("float32")
    ref = keras.Sequential([keras.Input((7, 3)), layers.Bidirectional(layers.GRU(4, return_sequences=True))])
    fast = keras.Sequential([keras.Input((7, 3)), layers.Bidirectional(CLASSES["gru"](4, return_sequences=True))])
    fast.set_weights(ref.get_weights())
    np.testing.assert_allclose(fast(x, training=True).numpy(), ref(x, training=True).numpy(), atol=TOL)
    assert fast.layers[0].backward_layer.trained_with == "fused" and fast.layers[0].backward_layer.go_backwards


@pytest.mark.parametrize("cell", CELLS)
def test_input_dropout_while_training_uses_the_same_mask_as_keras(cell):
    fast, x, ((ref_out,), ref_grads) = _twin_and_reference(cell, True, dropout=0.4, return_sequences=True)
    (fast_out,), fast_grads = _outputs_and_grads(fast, x, training=True)
    assert fast.trained_with == "fused"
    np.testing.assert_allclose(fast_out, ref_out, atol=TOL)
    for a, b in zip(ref_grads, fast_grads):
        np.testing.assert_allclose(b, a, atol=TOL * max(1.0, float(np.abs(a).max())), rtol=0)


LENGTHS = np.array([[9], [5], [3], [1]])  # four sequences of 9 steps with 9, 5, 3 and 1 real steps


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
@pytest.mark.parametrize("padding", ["post", "pre"])
@pytest.mark.parametrize("cell", CELLS)
def test_padding_mask_same_as_keras(cell, padding):
    """A masked step keeps the state, as in Keras: right- and left-padded batches, last output and whole
    sequences, forwards and backwards; training gradients and the inference loop."""
    padding_mask_matches_keras(cell, padding, trained_with="fused")


def padding_mask_matches_keras(cell: str, padding: str, trained_with: str, inferred_with: str | None = None):
    """The padding-mask check, shared with tests/rnn/test_compiled.py: trained_with / inferred_with are the
    loops the layer must report after the training / inference call."""
    steps = np.arange(9)[None, :]
    mask = tf.constant(steps < LENGTHS if padding == "post" else steps >= 9 - LENGTHS)
    for return_sequences in (False, True):
        for go_backwards in (False, True):
            ref, fast, x = _pair(cell, return_sequences=return_sequences, go_backwards=go_backwards)

            def run(layer, x=x):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    out = layer(x, mask=mask, training=True)
                    loss = tf.reduce_sum(tf.square(out) * tf.range(1.0, 6.0))
                return out.numpy(), [g.numpy() for g in tape.gradient(loss, [x] + layer.trainable_weights)]

            (ref_out, ref_grads), (fast_out, fast_grads) = run(ref), run(fast)
            assert fast.trained_with == trained_with
            np.testing.assert_allclose(fast_out, ref_out, atol=TOL)
            for a, b in zip(ref_grads, fast_grads):
                np.testing.assert_allclose(b, a, atol=TOL * max(1.0, float(np.abs(a).max())), rtol=0)
            np.testing.assert_allclose(fast(x, mask=mask, training=False).numpy(), ref_out, atol=TOL)
            assert fast.inferred_with == inferred_with


def test_bidirectional_with_a_mask_zeroes_masked_outputs_as_keras_does():
    rng = np.random.default_rng(5)
    x = rng.integers(1, 20, (4, 9)) * (np.arange(9)[None, :] < LENGTHS)

    def model(cls):
        return keras.Sequential([keras.Input((9,), dtype="int32"), layers.Embedding(20, 3, mask_zero=True),
                                 layers.Bidirectional(cls(4, return_sequences=True)), layers.Bidirectional(cls(2))])

    ref, fast = model(layers.LSTM), model(CLASSES["lstm"])
    fast.set_weights(ref.get_weights())
    np.testing.assert_allclose(fast(x, training=True).numpy(), ref(x, training=True).numpy(), atol=TOL)
    assert all(layer.forward_layer.trained_with == "fused" for layer in fast.layers[1:])


@pytest.mark.parametrize("case", ["recurrent_dropout", "relu"])
def test_falls_back_to_keras_where_the_fused_loop_does_not_apply(case):
    """Recurrent dropout and other activations run Keras's own loop: same results as Keras."""
    kwargs = {"recurrent_dropout": {"recurrent_dropout": 0.5}, "relu": {"activation": "relu"}}[case]
    ref, fast, x = _pair("gru", **kwargs)
    training = case == "recurrent_dropout"
    a = ref(x, training=training).numpy()
    b = fast(x, training=training).numpy()
    assert fast.trained_with is None and fast.inferred_with is None
    np.testing.assert_allclose(b, a, atol=TOL)


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
def test_model_keras_file_and_weights_round_trip(tmp_path):
    """A model.keras holding fused layers loads again (gru_lab registers them), and weights move both ways
    between a Keras model and a fused one: the checkpoints are the same."""
    spec = InputSpec("binary", "tokens", 15, 1, 1, vocab_size=50, padding="pre")
    fused = build_model(ModelConfig(cell="lstm", units=[6, 4], embedding_dim=8), spec)
    plain = build_model(ModelConfig(cell="lstm", units=[6, 4], embedding_dim=8, loops="keras"), spec)
    assert ([type(layer).__module__ for layer in fused.layers if isinstance(layer, layers.LSTM)]
            == ["gru_lab.rnn.layers"] * 2)
    assert ([type(layer).__module__ for layer in plain.layers if isinstance(layer, layers.LSTM)]
            == ["keras.src.layers.rnn.lstm"] * 2)
    x = np.random.default_rng(4).integers(0, 50, (5, 15)).astype("int32")

    fused.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.get_layer("lstm_1")) is CLASSES["lstm"]
    assert type(loaded.get_layer("embedding")) is Embedding and type(plain.get_layer("embedding")) is layers.Embedding
    np.testing.assert_allclose(loaded.predict(x, verbose=0), fused.predict(x, verbose=0), atol=TOL)

    plain.save_weights(tmp_path / "plain.weights.h5")
    fused.load_weights(tmp_path / "plain.weights.h5")
    np.testing.assert_allclose(fused.predict(x, verbose=0), plain.predict(x, verbose=0), atol=TOL)
    keras.utils.set_random_seed(9)
    other = build_model(ModelConfig(cell="lstm", units=[6, 4], embedding_dim=8, loops="keras"), spec)
    other.load_weights(tmp_path / "model.keras")  # a fused model's file feeds a plain Keras model
    np.testing.assert_allclose(other.predict(x, verbose=0), loaded.predict(x, verbose=0), atol=TOL)


def _token_twins(cell: str, vocab: int = 40, steps: int = 11, **model):
    """A gru-lab token model (gru_lab Embedding -> fused layers) and the plain Keras model, same weights."""
    padding = model.pop("padding", "pre")
    spec = InputSpec("binary", "tokens", steps, 1, 1, vocab_size=vocab, padding=padding)
    keras.utils.set_random_seed(3)
    fused = build_model(ModelConfig(cell=cell, units=[6, 4], embedding_dim=8, **model), spec)
    plain = build_model(ModelConfig(cell=cell, units=[6, 4], embedding_dim=8, loops="keras", **model), spec)
    rng = np.random.default_rng(5)
    weights = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in fused.get_weights()]
    fused.set_weights(weights)
    plain.set_weights(weights)
    x = rng.integers(1, vocab, (7, steps)).astype("int32")
    for row, length in enumerate([steps, 1, 3, steps - 2, 5, steps, 2]):  # padded reviews of several lengths
        if padding == "pre":
            x[row, :steps - length] = 0
        else:
            x[row, length:] = 0
    return fused, plain, x


def _first_recurrent(model):
    layer = next(layer for layer in model.layers if isinstance(layer, (layers.RNN, layers.Bidirectional)))
    return [layer.forward_layer, layer.backward_layer] if isinstance(layer, layers.Bidirectional) else [layer]


# Token models with and without a padding mask, one or two directions (tests/rnn/test_compiled.py uses them too).
TOKEN_VARIANTS = pytest.mark.parametrize("variant", [
    dict(),
    dict(mask_zero=True, padding="pre"),
    dict(mask_zero=True, padding="post", bidirectional=True),
    dict(bidirectional=True, merge_mode="sum"),
], ids=["no-mask", "mask-pre", "mask-post-bidirectional", "bidirectional-sum"])


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
@TOKEN_VARIANTS
@pytest.mark.parametrize("cell", CELLS)
def test_inference_from_a_token_table_same_as_keras(cell, variant):
    """At inference the first recurrent layer reads each gate's projection of the vocabulary from a table
    (E @ W_gate + b) instead of projecting the embedded sequence: the predictions stay Keras's."""
    fused, plain, x = _token_twins(cell, **variant)
    expected = plain.predict(x, verbose=0)
    got = fused.predict(x, verbose=0)
    assert all(part.inferred_with == "fused-table" for part in _first_recurrent(fused))
    assert not any(isinstance(part, tuple(CLASSES.values())) for part in _first_recurrent(plain))
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)
    # and under XLA, as gru-lab compiles evaluate/predict on a CPU
    compiled = tf.function(lambda batch: fused(batch, training=False), jit_compile=True)
    np.testing.assert_allclose(compiled(tf.constant(x)).numpy(), expected, atol=TOL, rtol=0)


def test_no_table_where_the_vocabulary_costs_more_than_projecting_the_batch():
    steps = 2
    fused, plain, x = _token_twins("gru", vocab=steps * TABLE_BREAK_EVEN_BATCH + 1, steps=steps)
    np.testing.assert_allclose(fused.predict(x, verbose=0), plain.predict(x, verbose=0), atol=TOL, rtol=0)
    assert _first_recurrent(fused)[0].inferred_with is None
    # what `gru-lab inspect` says agrees with what the layer did, on both sides of the line

    for vocab, used in ((steps * TABLE_BREAK_EVEN_BATCH + 1, False), (steps * TABLE_BREAK_EVEN_BATCH, True)):
        spec = InputSpec("binary", "tokens", steps, 1, 1, vocab_size=vocab, padding="pre")
        assert (not table_blockers(ModelConfig(cell="gru", units=[6, 4], embedding_dim=8), spec)) is used
    fused, _, x = _token_twins("gru", vocab=steps * TABLE_BREAK_EVEN_BATCH, steps=steps)
    fused.predict(x, verbose=0)
    assert _first_recurrent(fused)[0].inferred_with == "fused-table"


def test_no_table_when_a_layer_sits_between_the_embedding_and_the_recurrent_layer():
    fused, plain, x = _token_twins("gru", conv={"filters": 4, "kernel_size": 3, "pool_size": 1})
    np.testing.assert_allclose(fused.predict(x, verbose=0), plain.predict(x, verbose=0), atol=TOL, rtol=0)
    assert _first_recurrent(fused)[0].inferred_with is None


@pytest.mark.parametrize("model, eligible, reason", [
    (dict(), True, None),
    (dict(loops="keras"), False, "model.loops is 'keras'"),
    (dict(activation="relu"), False, "activation is 'relu'"),
    (dict(recurrent_activation="hard_sigmoid"), False, "recurrent_activation is 'hard_sigmoid'"),
    (dict(recurrent_dropout=0.2), False, "recurrent_dropout > 0"),
    (dict(unroll=True), False, "unroll is true"),
    (dict(mask_zero=True, embedding_dim=8), True, None),
    (dict(dropout=0.2), True, None),
], ids=["default", "keras", "relu", "hard_sigmoid", "recurrent_dropout", "unroll", "mask", "dropout"])
def test_the_rules_the_plan_states_are_the_rules_the_layer_follows(model, eligible, reason):
    """models.kernels.loop_blockers (what `inspect` says) and the built layer (what runs) agree."""
    from gru_lab.models.kernels import loop_blockers

    tokens = "embedding_dim" in model
    spec = InputSpec("binary", "tokens" if tokens else "real", 10, 1, 1, vocab_size=20 if tokens else None,
                     padding="post")
    m = ModelConfig(cell="gru", units=4, **model)
    why = loop_blockers(m)
    assert (not why) is eligible
    if reason:
        assert any(reason in r for r in why), why
    built = build_model(m, spec)
    layer = next(layer for layer in built.layers if isinstance(layer, layers.RNN))
    x = np.ones((2, 10) if tokens else (2, 10, 1), dtype="int32" if tokens else "float32")
    with tf.GradientTape():
        built(x, training=True)
    assert (getattr(layer, "trained_with", None) == "fused") is eligible
