"""Adam's fused update (training.optimizers) against Keras's own: the same weights and slots, step by step.

Not bit for bit: TensorFlow's kernel forms 1 - beta_2 in float32 (0.00100005 where Keras's Python float gives
0.001), so the second moment differs by up to ~5e-5 of itself and the step by half that; hence RTOL."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gru_lab.config import config_from_raw
from gru_lab.training.optimizers import fuse_adam, make_optimizer

RTOL, ATOL = 1e-4, 1e-7


@pytest.fixture
def fused_calls(monkeypatch) -> list:
    """Each call of TensorFlow's fused Adam op (at trace time inside a tf.function), so that a test can tell the
    fused update from Keras's own one that it falls back to."""
    calls, real = [], tf.raw_ops.ResourceApplyAdam

    def counted(**kwargs):
        calls.append(tuple(kwargs["grad"].shape))
        return real(**kwargs)

    monkeypatch.setattr(tf.raw_ops, "ResourceApplyAdam", counted)
    return calls


def _cfg(optimizer="adam", clipnorm=None):
    raw = {"name": "t", "data": {"name": "adding", "length": 5},
           "model": {"cell": "gru", "units": 4},
           "train": {"optimizer": optimizer, "learning_rate": 0.01, **({"clipnorm": clipnorm} if clipnorm else {})}}
    return config_from_raw(raw, "test")


def _train(fused: bool, steps: int, seed: int, learning_rate: float, clipnorm, rows: int, jit: bool | None,
           repeat: bool = True):
    """A dense (rows, 3) weight and an embedding-like (rows, 5) one whose gradient is IndexedSlices (a gather's:
    of rows + 1 ids, so that some row repeats, or with repeat=False of distinct rows, as the compiled loops' token
    table reads them), updated `steps` times from the same values and gradients; returns every variable after,
    slots included."""
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    dense = keras.Variable(rng.standard_normal((rows, 3)).astype("float32"))
    table = keras.Variable(rng.standard_normal((rows, 5)).astype("float32"))
    kwargs = {"learning_rate": learning_rate, **({"clipnorm": clipnorm} if clipnorm else {})}
    opt = keras.optimizers.Adam(**kwargs)
    if fused:
        assert fuse_adam(opt)
    opt.build([dense, table])
    grads = [rng.standard_normal((rows, 3)).astype("float32") * 10 ** rng.uniform(-3, 1) for _ in range(steps)]
    picks = [(rng.integers(0, rows, rows + 1) if repeat else rng.permutation(rows)[:rng.integers(1, rows + 1)])
             .astype("int32") for _ in range(steps)]

    def step(g, ids):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(table.value, ids) ** 2)
        (g_table,) = tape.gradient(loss, [table.value])
        opt.apply([tf.convert_to_tensor(g), g_table], [dense, table])

    if jit is not None:  # None: eagerly, op by op
        step = tf.function(step, jit_compile=jit)
    for g, ids in zip(grads, picks):
        step(g, ids)
    return [np.array(v) for v in [dense, table, *opt.variables]]


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.integers(1, 4), seed=st.integers(0, 2**16), learning_rate=st.sampled_from([1e-4, 1e-3, 0.05]),
       clipnorm=st.sampled_from([None, 0.5]), rows=st.integers(1, 9), repeat=st.booleans())
def test_fused_adam_equals_keras_adam(steps, seed, learning_rate, clipnorm, rows, repeat):
    calls = []
    real = tf.raw_ops.ResourceApplyAdam
    tf.raw_ops.ResourceApplyAdam = lambda **kw: calls.append(1) or real(**kw)
    try:
        fused_values = _train(True, steps, seed, learning_rate, clipnorm, rows, jit=None, repeat=repeat)
    finally:
        tf.raw_ops.ResourceApplyAdam = real
    # The dense weight every step; the slices only where no row repeats (elsewhere Keras's update, see
    # training.optimizers): the fused op ran where it should, not Keras's fallback everywhere.
    assert len(calls) == steps * (1 if repeat else 2)
    keras_values = _train(False, steps, seed, learning_rate, clipnorm, rows, jit=None, repeat=repeat)
    assert len(keras_values) == len(fused_values)
    for expected, got in zip(keras_values, fused_values):  # a weight's error is relative to how far it moved
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL + RTOL * learning_rate * steps)


def test_fused_adam_under_xla_equals_keras_adam(fused_calls):
    keras_values = _train(False, 3, 7, 1e-3, None, 6, jit=True, repeat=False)
    assert not fused_calls
    fused_values = _train(True, 3, 7, 1e-3, None, 6, jit=True, repeat=False)
    assert fused_calls  # traced into the XLA-compiled step
    for expected, got in zip(keras_values, fused_values):
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_the_fused_update_moves_the_weights_as_keras_does_not_merely_runs():
    """The comparison above could pass if neither update ran: the weights must have moved."""
    rng_start = _train(False, 0, 3, 1e-2, None, 4, jit=None)
    after = _train(True, 2, 3, 1e-2, None, 4, jit=None, repeat=False)
    assert not np.allclose(after[0], rng_start[0])
    assert not np.allclose(after[1], rng_start[1])


def test_make_optimizer_fuses_adam_only_and_keeps_plain_keras_for_baselines():
    import keras

    fused = make_optimizer(_cfg())
    plain = make_optimizer(_cfg(), keras_updates=True)
    assert isinstance(fused, keras.optimizers.Adam) and type(fused) is keras.optimizers.Adam
    assert "update_step" in vars(fused) and "update_step" not in vars(plain)
    drop_name = lambda c: {k: v for k, v in c.items() if k != "name"}  # noqa: E731
    assert drop_name(fused.get_config()) == drop_name(plain.get_config())  # a saved model names plain Adam
    assert "update_step" not in vars(make_optimizer(_cfg("rmsprop")))
    assert make_optimizer(_cfg(clipnorm=1.0)).clipnorm == 1.0


def test_amsgrad_keeps_keras_update():
    import keras

    opt = keras.optimizers.Adam(amsgrad=True)
    assert fuse_adam(opt) is False and "update_step" not in vars(opt)


@pytest.mark.parametrize("jit", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_a_model_trains_to_the_same_weights_with_the_fused_update(jit, fused_calls):
    """End to end through Model.fit: an Embedding + GRU model on gru-lab's loops as a run uses them (the compiled
    loops' token table, whose embedding gradient has distinct rows; under XLA the fused loops', whose rows
    repeat), the fused update against Keras's own."""
    import keras

    from gru_lab.rnn.layers import GRU, Embedding, running

    rng = np.random.default_rng(0)
    x = rng.integers(1, 50, (32, 7)).astype("int32")
    y = rng.integers(0, 2, (32, 1)).astype("float32")
    weights = []
    for fused in (False, True):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((7,), dtype="int32"), Embedding(50, 8), GRU(6),
                                  keras.layers.Dense(1, activation="sigmoid")])
        opt = keras.optimizers.Adam(0.01)
        if fused:
            fuse_adam(opt)
        model.compile(optimizer=opt, loss="binary_crossentropy", jit_compile=jit)
        with running(loops=True, compiled_loops=not jit):
            model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
            assert model.layers[1].trained_with == ("fused" if jit else "compiled-table")
        weights.append(model.get_weights())
        assert bool(fused_calls) == fused  # every trainable weight: embedding, GRU's three, Dense's two
        assert not fused or len(fused_calls) >= 6
    for expected, got in zip(*weights):
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-6)
