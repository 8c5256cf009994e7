"""Issue 19, item 1: texts shorter than maxlen with masked padding. gru-lab's loops trim each batch to its
longest text, so every batch is shorter than the model's maxlen; evaluation crashed with 'expected
shape=(None, 30), found shape=(60, 16)' after training had finished, and --resume crashed the same way."""

from __future__ import annotations

import json

import pytest

from gru_lab.cli import app
from tests.conftest import short_texts


@pytest.mark.parametrize("maxlen", [30, pytest.param(200, marks=pytest.mark.slow)],
                         ids=["maxlen-30", "maxlen-default-200"])
def test_short_texts_train_predict_and_export_with_gru_labs_loops(runner, write_config, tmp_path, maxlen):
    raw = short_texts(tmp_path)
    raw["data"]["maxlen"] = maxlen
    raw["model"]["dropout"] = 0.2
    result = runner.invoke(app, ["train", str(write_config(raw)), "-q"])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "results" / "short").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "finished" and 0 <= metrics["test"]["accuracy"] <= 1
    assert metrics["execution"]["batches"]["trim_padding"] == "post"  # the trimmed path, not a fallback
    texts = ["good great lovely", "awful bad sad poor"]
    result = runner.invoke(app, ["predict", str(run), *texts, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["predictions"]
    assert [r["text"] for r in rows] == texts and not any(r["truncated"] for r in rows)
    assert all(sum(r[f"P({c})"] for c in ("neg", "neu", "pos")) == pytest.approx(1, abs=1e-5) for r in rows)
    result = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "m.keras")])
    assert result.exit_code == 0, result.output
    import keras

    # Training takes batches of any length; what a run saves and exports declares maxlen, as predict feeds it.
    for path in (run / "model.keras", tmp_path / "m.keras"):
        assert tuple(keras.saving.load_model(path).input_shape) == (None, maxlen), path
