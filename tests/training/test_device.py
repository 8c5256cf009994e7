"""The kernel plan a run applies: what `gru-lab inspect` says each recurrent layer will run is what the run
records that it ran, across the settings that change it."""

from __future__ import annotations

import json

import pytest

from gru_lab.cli import app
from gru_lab.models.kernels import Facts
from gru_lab.rnn import compiled
from gru_lab.training import device
from tests.conftest import tiny_config

TOKENS = {"name": "imdb", "num_words": 30, "maxlen": 10}  # with data.path: the fake aclImdb tree of tests/data

CASES = [
    ("gru", {}, {}, None),
    ("lstm", {"cell": "lstm"}, {}, None),
    ("simple-rnn-stacked-bidirectional", {"cell": "simple_rnn", "units": [4, 3], "bidirectional": True}, {}, None),
    ("gru-xla-on", {}, {"xla": "on"}, None),
    ("gru-recurrent-dropout", {"recurrent_dropout": 0.2}, {}, None),
    ("gru-loops-keras", {"loops": "keras"}, {}, None),
    ("tokens-mask-pre", {"embedding_dim": 4, "mask_zero": True}, {}, "pre"),
    ("tokens-mask-post-bidirectional", {"cell": "lstm", "embedding_dim": 4, "mask_zero": True, "bidirectional": True},
     {}, "post"),
    ("gpu-visible-device-cpu", {}, {"device": "cpu"}, "gpu"),
    ("compiled-off", {}, {}, "GRU_LAB_COMPILED=0"),
    ("no-compiler", {"units": [4, 3]}, {}, "no compiler"),
    ("no-compiler-xla-off", {"units": [4, 3]}, {"xla": "off"}, "no compiler"),
    ("lstm-no-compiler", {"cell": "lstm"}, {}, "no compiler"),
    ("simple-rnn-xla-on", {"cell": "simple_rnn"}, {"xla": "on"}, None),
    ("lstm-tokens-mask-post-dropout", {"cell": "lstm", "embedding_dim": 4, "mask_zero": True, "dropout": 0.2}, {},
     "post"),
]


@pytest.fixture
def fresh_build_state():
    saved = dict(compiled._state)
    compiled._reset_for_tests()
    yield
    compiled._state.update(saved)


# The default tier runs a few cases (a compiled cell, masked tokens both ways, a fallback); the slow tier all.
# Its fallback runs without XLA: with train.xla auto the fused loops train under XLA, whose compilation cost
# ~5 s of CPU here; "no-compiler" (slow) keeps that plan checked.
DEFAULT_CASES = {"gru", "tokens-mask-post-bidirectional", "no-compiler-xla-off"}


@pytest.mark.parametrize("model, train, special", [
    pytest.param(*c[1:], id=c[0], marks=() if c[0] in DEFAULT_CASES else pytest.mark.slow) for c in CASES])
def test_what_inspect_says_is_what_the_run_recorded(runner, write_config, tmp_path, monkeypatch, fresh_build_state,
                                                    model, train, special):
    raw = tiny_config(**model)
    raw["train"].update(train, epochs=1)
    if special in ("pre", "post"):
        from tests.data.test_imdb import write_tree

        raw["data"] = dict(TOKENS, padding=special, path=str(write_tree(tmp_path)), cache_dir=str(tmp_path / "cache"))
    if special == "gpu":  # a GPU that TensorFlow sees, which train.device: cpu must hide
        real = device.machine_facts
        monkeypatch.setattr(device, "machine_facts", lambda: Facts(gpu=True, compiled=real().compiled))
    if special == "GRU_LAB_COMPILED=0":
        monkeypatch.setenv("GRU_LAB_COMPILED", "0")
    if special == "no compiler":
        monkeypatch.setattr(compiled, "build_dir", lambda: tmp_path)  # nothing built there
        monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    path = write_config(raw)
    inspected = runner.invoke(app, ["inspect", str(path), "--no-build", "--json"])
    assert inspected.exit_code == 0, inspected.output
    planned = json.loads(inspected.stdout)["kernels"]
    trained = runner.invoke(app, ["train", str(path), "-q"])
    assert trained.exit_code == 0, trained.output
    (run,) = (tmp_path / "results" / "tiny").iterdir()
    record = json.loads((run / "metrics.json").read_text())["execution"]
    ran = [(k["layer"], k["kernel"], k["inference"]) for k in record["kernels"]]
    assert ran == [(p["layer"], p["train"], p["inference"]) for p in planned["planned"]]
    assert record["planned"] == planned["planned"]  # the run records its plan too
    assert (record["xla"], record["xla_inference"], record["compiled_loops"]) == \
        (planned["xla"], planned["xla_inference"], planned["compiled_loops"])
    if special in ("GRU_LAB_COMPILED=0", "no compiler"):
        assert not record["compiled_loops"] and {k for _, k, _ in ran} == {"fused"}
