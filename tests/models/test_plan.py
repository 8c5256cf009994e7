"""The layer plan and the builder: Keras's parameter counts equal the exact formulas, layer by layer."""

from __future__ import annotations

import pytest

from gru_lab.config import ModelConfig
from gru_lab.data.base import InputSpec
from gru_lab.models.build import build_model, layer_params
from gru_lab.models.plan import count_params, plan_layers

REAL = InputSpec("regression", "real", timesteps=7, features=3, outputs=1)
TOKENS = InputSpec("binary", "tokens", timesteps=20, features=1, outputs=1, vocab_size=50, padding="pre")
MULTI = InputSpec("multiclass", "real", timesteps=5, features=2, outputs=4)


from tests.test_cells import formula  # noqa: E402


def test_the_imdb_gru_tutorials_model_has_1379201_parameters():
    # Embedding(10000,128) + GRU(128) + Dense(1): 1,280,000 + 99,072 + 129.
    spec = InputSpec("binary", "tokens", 200, 1, 1, vocab_size=10_000)
    m = ModelConfig(cell="gru", units=128, embedding_dim=128)
    assert count_params(m, spec)["total"] == 1_379_201
    assert build_model(m, spec).count_params() == 1_379_201


CASES = [
    ("gru-1", dict(cell="gru", units=8), REAL),
    ("lstm-1", dict(cell="lstm", units=8), REAL),
    ("rnn-1", dict(cell="simple_rnn", units=8), REAL),
    ("gru-stacked-3", dict(cell="gru", units=6, num_layers=3), REAL),
    ("lstm-stacked-list", dict(cell="lstm", units=[9, 5]), REAL),
    ("bigru-stacked", dict(cell="gru", units=4, num_layers=2, bidirectional=True), REAL),
    ("bilstm-sum", dict(cell="lstm", units=4, num_layers=2, bidirectional=True, merge_mode="sum"), REAL),
    ("birnn-layernorm", dict(cell="simple_rnn", units=5, num_layers=2, bidirectional=True, layer_norm=True), REAL),
    ("conv-gru", dict(cell="gru", units=6, conv={"filters": 10, "kernel_size": 3, "pool_size": 2}), REAL),
    ("tokens-gru", dict(cell="gru", units=6, embedding_dim=12), TOKENS),
    ("tokens-bilstm-conv-ln", dict(cell="lstm", units=6, embedding_dim=12, bidirectional=True, layer_norm=True,
                                   conv={"filters": 8, "kernel_size": 5, "pool_size": 1}, head_dropout=0.2), TOKENS),
    ("multiclass-gru", dict(cell="gru", units=7), MULTI),
    ("bigru-max-mean-pooled", dict(cell="gru", units=5, embedding_dim=6, bidirectional=True, mask_zero=True,
                                   pooling="max_mean", head_dropout=0.1), TOKENS),
    ("bigru-embedding-dropout", dict(cell="gru", units=5, embedding_dim=6, bidirectional=True, mask_zero=True,
                                     embedding_dropout=0.3, pooling="max"), TOKENS),
    ("lstm-stacked-max-pooled", dict(cell="lstm", units=[6, 4], pooling="max", layer_norm=True), REAL),
    ("rnn-mean-pooled", dict(cell="simple_rnn", units=3, pooling="mean"), MULTI),
]


@pytest.mark.parametrize("kwargs,spec", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_keras_counts_equal_formulas_per_layer(kwargs, spec):
    m = ModelConfig(**kwargs)
    model = build_model(m, spec)
    keras_layers = {row["name"]: row["params"] for row in layer_params(model)}
    plans = plan_layers(m, spec)
    assert [p.name for p in plans] == list(keras_layers)
    for plan in plans:
        assert keras_layers[plan.name] == plan.params, plan
    assert model.count_params() == sum(p.params for p in plans)
    assert model.output_shape == (None, spec.outputs)


def test_bidirectional_doubles_and_feeds_2u_to_the_next_layer():
    m = ModelConfig(cell="gru", units=4, num_layers=2, bidirectional=True)
    plans = [p for p in plan_layers(m, REAL) if p.recurrent]
    assert plans[0].params == 2 * formula("gru", 3, 4)
    assert plans[1].params == 2 * formula("gru", 8, 4)  # input is the 2u = 8 concatenated states
    assert [p.options["return_sequences"] for p in plans] == [True, False]


def test_stacked_layers_feed_u_to_the_next():
    m = ModelConfig(cell="lstm", units=[10, 3])
    rec = [p.params for p in plan_layers(m, REAL) if p.recurrent]
    assert rec == [formula("lstm", 3, 10), formula("lstm", 10, 3)]


def test_gru_has_fewer_parameters_than_lstm():
    spec = InputSpec("binary", "tokens", 200, 1, 1, vocab_size=10_000)
    gru = count_params(ModelConfig(cell="gru", units=128, embedding_dim=128), spec)["recurrent"]
    lstm = count_params(ModelConfig(cell="lstm", units=128, embedding_dim=128), spec)["recurrent"]
    assert gru / lstm == pytest.approx(3 * (128 + 128 + 2) / (4 * (128 + 128 + 1)))


def test_head_matches_the_task():
    assert plan_layers(ModelConfig(units=3), MULTI)[-1].options["activation"] == "softmax"
    assert plan_layers(ModelConfig(units=3, embedding_dim=4), TOKENS)[-1].options["activation"] == "sigmoid"
    assert plan_layers(ModelConfig(units=3), REAL)[-1].options["activation"] is None


def test_left_padded_mask_builds_without_cudnn():
    model = build_model(ModelConfig(cell="gru", units=4, embedding_dim=4, mask_zero=True), TOKENS)
    assert model.get_layer("gru_1").use_cudnn is False
    model = build_model(ModelConfig(cell="gru", units=4, embedding_dim=4, mask_zero=True),
                        InputSpec("binary", "tokens", 20, 1, 1, vocab_size=50, padding="post"))
    assert model.get_layer("gru_1").use_cudnn == "auto"


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_pooling_leaves_the_padding_out_and_loads_back(padding, tmp_path):
    """max and mean over the real steps only, whichever side the padding is on; model.keras loads again."""
    import keras
    import numpy as np

    spec = InputSpec("binary", "tokens", timesteps=9, features=1, outputs=1, vocab_size=30, padding=padding)
    m = ModelConfig(cell="gru", units=3, embedding_dim=4, bidirectional=True, mask_zero=True, pooling="max_mean")
    model = build_model(m, spec)
    x = np.zeros((3, 9), "int32")
    lengths = [4, 9, 1]
    for row, n in enumerate(lengths):
        ids = np.arange(1, n + 1) + row
        x[row, :n] = ids if padding == "post" else 0
        if padding == "pre":
            x[row, 9 - n:] = ids
    outputs = keras.Model(model.input, [model.get_layer("bigru_1").output, model.get_layer("pooling").output])
    sequence, pooled = (np.asarray(a) for a in outputs(x))
    for row, n in enumerate(lengths):
        real = sequence[row, :n] if padding == "post" else sequence[row, 9 - n:]
        np.testing.assert_allclose(pooled[row], np.concatenate([real.max(axis=0), real.mean(axis=0)]), rtol=1e-6)
    path = tmp_path / "pooled.keras"
    model.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path)(x), model(x), rtol=1e-6)


def test_embedding_dropout_drops_whole_tokens_in_training_only_and_loads_back(tmp_path):
    import keras
    import numpy as np

    spec = InputSpec("binary", "tokens", timesteps=40, features=1, outputs=1, vocab_size=30, padding="post")
    m = ModelConfig(cell="gru", units=3, embedding_dim=8, mask_zero=True, embedding_dropout=0.5, pooling="mean")
    model = build_model(m, spec)
    x = np.random.default_rng(0).integers(1, 30, (16, 40)).astype("int32")
    embedded = np.asarray(model.get_layer("embedding")(x))
    dropout = model.get_layer("embedding_dropout")
    np.testing.assert_array_equal(np.asarray(dropout(embedded, training=False)), embedded)
    dropped = np.asarray(dropout(embedded, training=True))
    zero = (dropped == 0).all(axis=-1)  # (batch, steps): a token is dropped whole or kept whole, scaled by 1/(1-p)
    np.testing.assert_allclose(dropped[~zero], embedded[~zero] * 2, rtol=1e-6)
    assert 0.3 < zero.mean() < 0.7
    path = tmp_path / "dropout.keras"
    model.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path)(x), model(x), rtol=1e-6)
