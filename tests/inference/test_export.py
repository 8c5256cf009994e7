"""Models that load anywhere: a run's own model.keras and `gru-lab export` load in a Python that cannot import
gru_lab (tests.conftest.run_without_gru_lab), and score what gru-lab scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gru_lab.cli import app
from tests.conftest import assert_user_error, run_without_gru_lab

REVIEWS = ["A great fun film.", "awful, boring and dull", "zorblax superb loved it", "hated it " * 5, "fine"]


@pytest.fixture(scope="module")
def exported(text_run, series_run, tmp_path_factory):
    """Every export of the two runs, plus what gru-lab predicts for them."""
    from typer.testing import CliRunner

    folder = tmp_path_factory.mktemp("exports")
    runner = CliRunner()
    paths = {}
    for name, run, args in [("text.keras", text_run, ["--text"]), ("text.savedmodel", text_run, ["--text"]),
                            ("ids.keras", text_run, []), ("series.savedmodel", series_run, [])]:
        fmt = "keras" if name.endswith(".keras") else "savedmodel"
        result = runner.invoke(app, ["export", str(run), "--format", fmt, "--out", str(folder / name), *args])
        assert result.exit_code == 0, result.output
        paths[name] = folder / name
    own_layers_model(text_run, folder / "own.keras")
    result = runner.invoke(app, ["predict", str(text_run), *REVIEWS, "--format", "json"])
    assert result.exit_code == 0, result.output
    scores = [r["P(pos)"] for r in json.loads(result.stdout)["predictions"]]
    return folder, paths, scores


LOAD_ALL = """
import json, numpy as np, keras, tensorflow as tf
texts = {texts!r}
out = {{}}
strings = np.array(texts, dtype=object)
out["text.keras"] = keras.saving.load_model("text.keras").predict(strings, verbose=0).ravel().tolist()
served = tf.saved_model.load("text.savedmodel")
out["text.savedmodel"] = served.signatures["serving_default"](tf.constant(texts))
out["text.savedmodel"] = next(iter(out["text.savedmodel"].values())).numpy().ravel().tolist()
ids = keras.saving.load_model("ids.keras")
out["ids_input"] = [str(ids.inputs[0].dtype), list(ids.inputs[0].shape)]
run = keras.saving.load_model({run_model!r})
out["run_layers"] = sorted({{type(layer).__module__.split(".")[0] for layer in run.layers}})
window = np.zeros((1, 6, 2), "float32")
served_series = tf.saved_model.load("series.savedmodel")  # kept: the signature needs its variables alive
out["series"] = served_series.serve(window).numpy().ravel().tolist()
out["series_run"] = keras.saving.load_model({series_model!r}).predict(window, verbose=0).ravel().tolist()
try:  # the control: a model saved with gru-lab's own layers, as runs were before
    keras.saving.load_model("own.keras")
    out["own"] = "loaded"
except Exception as exc:
    out["own"] = f"{{type(exc).__name__}}: {{exc}}"
assert "gru_lab" not in sys.modules
print(json.dumps(out))
"""


@pytest.mark.slow  # a fresh process or a real-data export: the slow tier keeps make test within 3 minutes
def test_exports_and_run_models_load_without_gru_lab_and_score_as_predict(exported, text_run, series_run):
    folder, _, scores = exported
    code = LOAD_ALL.format(texts=REVIEWS, run_model=str(text_run / "model.keras"),
                           series_model=str(series_run / "model.keras"))
    proc = run_without_gru_lab(code, cwd=folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["text.keras"] == pytest.approx(scores, abs=1e-5)  # raw strings in, predict's scores out
    assert out["text.savedmodel"] == pytest.approx(scores, abs=1e-5)
    assert out["ids_input"] == ["int32", [None, 6]]
    assert out["run_layers"] == ["keras"]  # the run's own model.keras: stock layers only
    assert out["series"] == pytest.approx(out["series_run"], abs=1e-5)
    # The same process fails on a model with gru-lab's layers: the check can fail.
    assert out["own"].startswith("TypeError") and "gru_lab" in out["own"]


def own_layers_model(run, path):
    """The run's model built with gru-lab's layers (as model.keras was saved before) and its weights."""
    import keras

    from gru_lab.config import load_config
    from gru_lab.data import spec_for
    from gru_lab.models.build import build_model

    cfg = load_config(run / "config.yaml")
    model = build_model(cfg.model, spec_for(cfg.data))
    model.set_weights(keras.saving.load_model(run / "model.keras").get_weights())
    assert any(type(layer).__module__.startswith("gru_lab") for layer in model.layers)
    model.save(path)
    return model


def test_stock_copy_of_gru_lab_layers_computes_the_same(text_run, tmp_path):
    from gru_lab.rnn.portable import stock_copy

    model = own_layers_model(text_run, tmp_path / "own.keras")
    stock = stock_copy(model)
    assert all(type(layer).__module__.startswith("keras") for layer in stock.layers)
    x = np.random.default_rng(0).integers(0, 50, (4, 6))
    assert np.abs(stock.predict(x, verbose=0) - model.predict(x, verbose=0)).max() < 1e-5


def test_export_refuses_what_it_cannot_do(runner, text_run, series_run, tmp_path):
    taken = tmp_path / "taken.keras"  # any file: export refuses to write over it (the module's exports run slow)
    taken.write_text("someone's model")
    cases = [
        (["export", str(text_run), "--out", str(taken)], "already exists; export never overwrites"),
        (["export", str(series_run), "--text"], "--text is for text runs"),
        (["export", str(text_run), "--format", "onnx"], "--format must be one of ['keras', 'savedmodel']"),
        (["export", str(text_run), "--out", str(tmp_path / "m.h5")], "must end in .keras"),
        (["export", str(text_run), "--out", str(tmp_path / "no" / "m.keras")], "folder not found"),
    ]
    for args, fragment in cases:
        assert fragment in assert_user_error(runner.invoke(app, args), tmp_path / "results"), args
    assert not (tmp_path / "m.h5").exists() and taken.read_text() == "someone's model"


def test_export_default_path_is_named_after_the_run(runner, text_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["export", str(text_run)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / f"{text_run.name}.keras").is_file() and "takes token ids" in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == [f"{text_run.name}.keras"]  # no temporary file left
