"""The kernel plan (models.kernels): cuDNN rules, the token table, and per layer the kernel training and
inference run, with what a real run records."""

from __future__ import annotations

import pytest

from gru_lab.config import ModelConfig, config_from_raw
from gru_lab.data.base import InputSpec
from gru_lab.errors import GruLabError
from gru_lab.models.kernels import Facts, cudnn_blockers, kernel_text, plan_kernels, table_blockers, tier

REAL = InputSpec("regression", "real", timesteps=7, features=3, outputs=1)
TOKENS = InputSpec("binary", "tokens", timesteps=20, features=1, outputs=1, vocab_size=50, padding="pre")
CUDNN = [
    ("gru-defaults", dict(cell="gru"), REAL, True, ""),
    ("lstm-defaults", dict(cell="lstm"), REAL, True, ""),
    ("simple-rnn", dict(cell="simple_rnn"), REAL, False, "no cuDNN kernel"),
    ("relu", dict(cell="gru", activation="relu"), REAL, False, "activation is 'relu'"),
    ("hard-sigmoid", dict(cell="lstm", recurrent_activation="hard_sigmoid"), REAL, False, "recurrent_activation"),
    ("recurrent-dropout", dict(cell="gru", recurrent_dropout=0.2), REAL, False, "recurrent_dropout"),
    ("unroll", dict(cell="gru", unroll=True), REAL, False, "unroll"),
    ("left-padded-mask", dict(cell="gru", embedding_dim=4, mask_zero=True), TOKENS, False, "left-padded"),
    ("right-padded-mask", dict(cell="gru", embedding_dim=4, mask_zero=True),
     InputSpec("binary", "tokens", 20, 1, 1, vocab_size=50, padding="post"), True, ""),
    ("dropout-is-fine", dict(cell="gru", dropout=0.3, bidirectional=True, num_layers=2), REAL, True, ""),
]


@pytest.mark.parametrize("kwargs,spec,eligible,reason", [c[1:] for c in CUDNN], ids=[c[0] for c in CUDNN])
def test_cudnn_eligibility(kwargs, spec, eligible, reason):
    why = cudnn_blockers(ModelConfig(**kwargs), spec)
    assert (not why) is eligible
    if reason:
        assert any(reason in r for r in why), why


@pytest.mark.parametrize("model, data, reason", [
    (dict(), dict(vocab_size=10_000, timesteps=200), None),
    (dict(conv={"filters": 8}), dict(vocab_size=10_000, timesteps=200), "a Conv1D sits between"),
    (dict(), dict(vocab_size=200 * 256 + 1, timesteps=200), "vocabulary 51,201 > 256 x 200 time steps"),
    (dict(loops="keras"), dict(vocab_size=100, timesteps=20), "model.loops is 'keras'"),
    (dict(bidirectional=True, units=[8, 4]), dict(vocab_size=100, timesteps=20), None),
])
def test_token_table_rules_say_why(model, data, reason):
    spec = InputSpec("binary", "tokens", data["timesteps"], 1, 1, vocab_size=data["vocab_size"], padding="pre")
    why = table_blockers(ModelConfig(cell="gru", embedding_dim=8, **model), spec)
    assert (not why) is (reason is None)
    assert reason is None or any(reason in r for r in why)
    cfg = config_from_raw({"data": {"name": "imdb", "num_words": data["vocab_size"], "maxlen": data["timesteps"]},
                           "model": {"cell": "gru", "embedding_dim": 8, **model}}, "test")
    first = plan_kernels(cfg, spec, Facts(compiled="test: none"))
    assert first.layers[0].layer.startswith("bigru_1" if model.get("bidirectional") else "gru_1")
    assert first.layers[0].inference.endswith("-table") is (reason is None)


IMDB = {"name": "imdb", "num_words": 60_000, "maxlen": 200}  # a vocabulary past the fused table's break-even
TOKEN_PLANS = [
    # id, model, facts, per-layer (train, inference), a reason training gives for no table (None: none)
    ("compiled", dict(cell="lstm"), Facts(), [("compiled-table", "compiled-table")], None),
    ("compiled-stacked", dict(cell="gru", units=[8, 4]), Facts(),
     [("compiled-table", "compiled-table"), ("compiled", "compiled")], None),
    ("compiled-bidirectional", dict(cell="simple_rnn", bidirectional=True), Facts(),
     [("compiled-table", "compiled-table")] * 2, None),
    ("input-dropout", dict(cell="gru", dropout=0.2), Facts(), [("compiled-table", "compiled-table")], None),
    ("embedding-dropout", dict(cell="lstm", embedding_dropout=0.1), Facts(), [("compiled", "compiled-table")],
     "model.embedding_dropout > 0"),
    ("conv", dict(cell="gru", conv={"filters": 8}), Facts(), [("compiled", "compiled")], "a Conv1D sits between"),
    ("fused", dict(cell="gru"), Facts(compiled="test: none"), [("fused", "keras-loop")], None),
]


@pytest.mark.parametrize("model, facts, layers, reason", [p[1:] for p in TOKEN_PLANS],
                         ids=[p[0] for p in TOKEN_PLANS])
def test_the_compiled_loops_read_the_batch_token_table_in_training_and_inference(model, facts, layers, reason):
    """The compiled loops' table is the batch's own (each distinct token projected once), so no vocabulary is
    too large for it and training reads it too, unless each step's embedded input is dropped out on its own
    (input dropout's one mask a row is fine); the fused loops' table (the whole vocabulary, inference only)
    is left out past its break-even."""
    cfg = config_from_raw({"data": IMDB, "model": {"embedding_dim": 8, **model}}, "test")
    plan = plan_kernels(cfg, _spec(cfg), facts)
    assert [(layer.train, layer.inference) for layer in plan.layers] == layers
    first = plan.layers[0]
    if reason is not None:
        assert any(reason in why for why in first.train_why), first.train_why
    elif first.train == "compiled-table":
        assert first.train_why == [] and first.inference_why == []


def test_no_token_table_for_real_valued_inputs():
    assert table_blockers(ModelConfig(cell="gru"), InputSpec("regression", "real", 10, 1, 1)) is None


def _cfg(model=None, train=None, data=None):
    data = data or {"name": "sine", "window": 6, "n_train": 32, "n_val": 8, "n_test": 8}
    return config_from_raw({"data": data, "model": {"units": 4, **(model or {})},
                            "train": {"epochs": 1, "batch_size": 16, **(train or {})}}, "test")


def _spec(cfg):
    from gru_lab.data import spec_for

    return spec_for(cfg.data)


PLANS = [
    # id, model, train, facts, device, xla (train, inference), compiled, per-layer (train, inference)
    ("gru-cpu", dict(cell="gru"), {}, Facts(), "cpu", (False, False), True, [("compiled", "compiled")]),
    ("gru-no-compiler", dict(cell="gru"), {}, Facts(compiled="no C++ compiler found ('g++' is not on PATH)"),
     "cpu", (True, True), False, [("fused", "keras-loop")]),
    ("gru-compiled-off", dict(cell="gru"), {}, Facts(compiled="GRU_LAB_COMPILED=0"), "cpu", (True, True), False,
     [("fused", "keras-loop")]),
    ("gru-xla-on", dict(cell="gru"), dict(xla="on"), Facts(), "cpu", (True, True), False, [("fused", "keras-loop")]),
    ("lstm-cpu", dict(cell="lstm"), {}, Facts(), "cpu", (False, False), True, [("compiled", "compiled")]),
    ("lstm-no-compiler", dict(cell="lstm"), {}, Facts(compiled="no C++ compiler found"), "cpu", (False, True), False,
     [("fused", "keras-loop")]),
    ("lstm-xla-on", dict(cell="lstm"), dict(xla="on"), Facts(), "cpu", (True, True), False, [("fused", "keras-loop")]),
    ("rnn-cpu", dict(cell="simple_rnn"), {}, Facts(), "cpu", (False, False), True, [("compiled", "compiled")]),
    ("rnn-no-compiler", dict(cell="simple_rnn"), {}, Facts(compiled="no C++ compiler found"), "cpu", (True, True),
     False, [("fused", "keras-loop")]),
    ("recurrent-dropout", dict(cell="gru", recurrent_dropout=0.1), {}, Facts(), "cpu", (True, True), False,
     [("keras-loop", "keras-loop")]),
    ("loops-keras", dict(cell="lstm", loops="keras"), {}, Facts(), "cpu", (False, True), False,
     [("keras-loop", "keras-loop")]),
    ("bi-stacked", dict(cell="gru", units=[4, 3], bidirectional=True), {}, Facts(), "cpu", (False, False), True,
     [("compiled", "compiled")] * 4),
    ("gpu-visible-cpu-asked", dict(cell="gru"), dict(device="cpu"), Facts(gpu=True), "cpu", (False, False), True,
     [("compiled", "compiled")]),
    ("gpu", dict(cell="gru"), {}, Facts(gpu=True), "gpu", (False, False), False, [("cudnn", "cudnn")]),
    ("gpu-relu", dict(cell="lstm", activation="relu"), {}, Facts(gpu=True), "gpu", (False, False), False,
     [("keras-loop", "keras-loop")]),
]


@pytest.mark.parametrize("model, train, facts, device, xla, compiled, layers", [p[1:] for p in PLANS],
                         ids=[p[0] for p in PLANS])
def test_kernel_plan(model, train, facts, device, xla, compiled, layers):
    cfg = _cfg(model, train)
    plan = plan_kernels(cfg, _spec(cfg), facts)
    assert (plan.device, (plan.xla, plan.xla_inference), plan.compiled) == (device, xla, compiled)
    assert [(layer.train, layer.inference) for layer in plan.layers] == layers
    for layer in plan.layers:  # a layer below the top tier of its device says why
        best = "cudnn" if device == "gpu" else "compiled"
        assert (tier(layer.train) == best) or layer.train_why, layer


def test_kernel_plan_names_each_direction_of_bidirectional_layers():
    cfg = _cfg(dict(cell="gru", units=[4, 3], bidirectional=True))
    names = [layer.layer for layer in plan_kernels(cfg, _spec(cfg), Facts()).layers]
    assert names == ["bigru_1/forward", "bigru_1/backward", "bigru_2/forward", "bigru_2/backward"]


def test_a_gpu_run_without_a_gpu_is_a_user_error():
    cfg = _cfg(train=dict(device="gpu"))
    with pytest.raises(GruLabError, match="TensorFlow sees no GPU"):
        plan_kernels(cfg, _spec(cfg), Facts(gpu=False))


def test_kernel_text_and_tiers_read_old_and_new_records():
    assert kernel_text({"xla": True, "kernels": [{"kernel": "fused"}, {"kernel": "fused"}]}) == "fused+xla"
    assert kernel_text({"xla": False, "kernels": [{"kernel": "native-cpu"}, {"kernel": "keras-loop"}]}) == \
        "compiled/keras-loop"  # "native-cpu" is what records said before the loops had one name
    assert kernel_text(None) is None and kernel_text({"xla": False, "kernels": []}) is None
    both = {"xla": False, "xla_inference": True, "kernels": [{"kernel": "fused-cpu", "inference": "fused-table"}]}
    assert (kernel_text(both), kernel_text(both, inference=True)) == ("fused", "fused-table+xla")
    assert [tier(k) for k in ("compiled", "fused+xla", "fused-table", "compiled/keras-loop", None)] == \
        ["compiled", "fused", "fused", None, None]
