"""`gru-lab predict` on text and series runs: what it scores, what it says it could not read, every format."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest

from gru_lab.cli import app
from tests.conftest import assert_user_error
from tests.inference.conftest import TEXT_MAXLEN


def _model(run):
    import keras

    return keras.saving.load_model(run / "model.keras")


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_text_predictions_carry_oov_share_truncation_and_file_lines(runner, text_run, tmp_path):
    from gru_lab.data.text import encode, vectorizer

    inputs = json.loads((text_run / "inputs.json").read_text())
    long = " ".join(["great"] * (TEXT_MAXLEN + 3)) + " Terrible."
    texts = tmp_path / "texts.txt"
    texts.write_text("A great fun film.\n\n   \nzorblax great qwxyz boring\n" + long + "\n")
    data = _json(runner.invoke(app, ["predict", str(text_run), "awful dull", "--file", str(texts), "--format", "json"]))
    rows = data["predictions"]
    assert [r["source"] for r in rows] == ["arg 1", f"{texts}:1", f"{texts}:4", f"{texts}:5"]  # blank lines 2-3 skipped
    # OOV share and truncation from the run's own vocabulary: 2 of 4 tokens unknown; the long one is cut.
    assert rows[2]["tokens"] == 4 and rows[2]["oov_share"] == 0.5 and not rows[2]["truncated"]
    assert rows[3]["tokens"] == TEXT_MAXLEN + 4 and rows[3]["truncated"]
    # The probabilities are the saved model's on the run's own encoding.
    layer = vectorizer(inputs["vectorizer"], inputs["vocabulary"])
    texts_scored = ["awful dull", "A great fun film.", "zorblax great qwxyz boring", long]
    p = _model(text_run).predict(encode(layer, texts_scored), verbose=0).reshape(-1)
    assert [r["P(pos)"] for r in rows] == pytest.approx(p.tolist(), abs=1e-6)
    assert [r["label"] for r in rows] == ["pos" if q >= 0.5 else "neg" for q in p]
    assert all(r["P(neg)"] + r["P(pos)"] == pytest.approx(1.0) for r in rows)
    assert data["classes"] == ["neg", "pos"] and data["maxlen"] == TEXT_MAXLEN


def test_text_table_csv_and_out_file(runner, text_run, tmp_path):
    result = runner.invoke(app, ["predict", str(text_run), "great fun", "awful"])
    assert result.exit_code == 0, result.output
    assert "P(pos)" in result.stdout and "arg 2" in result.stdout and "OOV" in result.stdout
    result = runner.invoke(app, ["predict", str(text_run), "great fun", "--format", "csv"])
    (row,) = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["source"] == "arg 1" and set(row) >= {"label", "P(neg)", "P(pos)", "oov_share", "truncated", "text"}
    out = tmp_path / "scores.json"
    result = runner.invoke(app, ["predict", str(text_run), "great fun", "--out", str(out)])  # format from suffix
    assert result.exit_code == 0 and result.stdout == ""
    assert json.loads(out.read_text())["predictions"][0]["source"] == "arg 1"
    out = tmp_path / "scores.txt"
    assert runner.invoke(app, ["predict", str(text_run), "great fun", "--out", str(out)]).exit_code == 0
    assert "P(pos)" in out.read_text() and "\x1b[" not in out.read_text()  # a plain-text table, no colour codes


def test_series_forecast_after_the_last_window_in_the_files_units(runner, series_run):
    inputs = json.loads((series_run / "inputs.json").read_text())
    data_file = series_run.parent.parent.parent / "weather.csv"
    data = _json(runner.invoke(app, ["predict", str(series_run), "--file", str(data_file), "--format", "json"]))
    assert [r["step"] for r in data["predictions"]] == [1, 2]
    assert data["after"] == "2024-01-28 03:00:00"
    assert [r["time"] for r in data["predictions"]] == ["2024-01-28 04:00:00", "2024-01-28 05:00:00"]
    assert data["time"]["gaps"] == 27  # the nights between the days' hours, as training reported them
    # By hand: the file's last 6 rows in time order, scaled with the run's statistics, through the model, unscaled.
    import pandas as pd

    frame = pd.read_csv(data_file, parse_dates=["day"]).sort_values("day")
    s = inputs["scaling"]
    window = np.stack([(frame[c].to_numpy()[-6:] - s["center"][c]) / s["scale"][c] for c in ("temp", "hum")], -1)
    out = _model(series_run).predict(window[None].astype("float32"), verbose=0)[0]
    expected = out * s["scale"]["temp"] + s["center"]["temp"]
    assert [r["temp"] for r in data["predictions"]] == pytest.approx(expected.tolist(), abs=1e-4)


def test_series_every_window(runner, series_run):
    data_file = series_run.parent.parent.parent / "weather.csv"
    result = runner.invoke(app, ["predict", str(series_run), "--file", str(data_file), "--every-window",
                                 "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 120 - 6 + 1 and list(rows[0]) == ["window_end", "temp (t+1)", "temp (t+2)"]
    last = _json(runner.invoke(app, ["predict", str(series_run), "--file", str(data_file), "--format", "json"]))
    assert float(rows[-1]["temp (t+1)"]) == pytest.approx(last["predictions"][0]["temp"], abs=1e-6)


def _copy(run, tmp_path, name: str):
    copy = tmp_path / name
    shutil.copytree(run, copy)
    return copy


@pytest.mark.parametrize("case", ["config", "run-file", "unfinished", "no-model", "missing-folder"])
def test_what_is_not_a_finished_run_is_one_line(runner, text_run, tmp_path, case):
    target = {"config": lambda: text_run.parent.parent.parent / "reviews.yaml",
              "run-file": lambda: text_run / "metrics.json",
              "missing-folder": lambda: tmp_path / "nope"}.get(case, lambda: _copy(text_run, tmp_path, "copy"))()
    if case == "unfinished":
        metrics = json.loads((target / "metrics.json").read_text())
        (target / "metrics.json").write_text(json.dumps({**metrics, "status": "diverged"}))
    if case == "no-model":
        (target / "model.keras").unlink()
    expected = {"config": "is a config file, not a run folder; train it first",
                "run-file": f"pass the folder itself: {text_run}",
                "unfinished": "the run's status is 'diverged', not 'finished'",
                "no-model": "model.keras is missing", "missing-folder": "run folder not found"}[case]
    for command in (["predict", str(target), "great"], ["export", str(target)]):
        line = assert_user_error(runner.invoke(app, command), tmp_path / "results")
        assert expected in line, line


def test_wrong_inputs_are_one_line(runner, text_run, series_run, tmp_path):
    data_file = series_run.parent.parent.parent / "weather.csv"
    other = tmp_path / "other.csv"
    other.write_text("day,temperature\n2024-01-01T00:00,1\n")
    short = tmp_path / "short.csv"
    short.write_text("day,temp,hum\n2024-01-01T00:00,1,2\n2024-01-01T01:00,1,2\n")
    cases = [
        (["predict", str(series_run), "--file", str(other)], "no column 'temp' in the header ('day', 'temperature')"),
        (["predict", str(series_run), "--file", str(short)], "2 usable row(s), but the model reads windows of 6 rows"),
        (["predict", str(series_run), "great film"], "forecasts a series; pass its data as --file"),
        (["predict", str(text_run), "--file", str(data_file), "--every-window"], None),  # lines of text: fine
        (["predict", str(text_run)], "no text given"),
        (["predict", str(text_run), "x", "--format", "xml"], "--format must be one of ['table', 'csv', 'json']"),
        (["predict", str(text_run), "--file", str(tmp_path / "none.txt")], "does not exist"),
    ]
    for args, fragment in cases:
        result = runner.invoke(app, args)
        if fragment is None:
            assert result.exit_code == 0, result.output
            continue
        assert fragment in assert_user_error(result, tmp_path / "results"), args
