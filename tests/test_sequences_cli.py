"""Labelled sequences and trending series through the command line (issue 21): train on the long, wide and npz
layouts, predict one row per sequence id, export a stock-Keras model that scores as predict does, the user's
mistakes as one line; a trending series trains below the last-value forecast with data.transform: difference,
and the run's table shows both in the file's units. Small data, one or a few epochs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from gru_lab.cli import app
from tests.conftest import assert_user_error

MODEL = {"units": 4}
TRAIN = {"epochs": 1, "batch_size": 8}


def write_long(path, n=24, seed=0):
    """Two classes of sequences of 2-6 steps and 2 features: 'up' rises, 'down' falls."""
    rng = np.random.RandomState(seed)
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["seq", "t", "a", "b", "label"])
        for i in range(n):
            label, sign = ("up", 1) if i % 2 else ("down", -1)
            for t in range(rng.randint(2, 7)):
                out.writerow([f"s{i}", t, f"{sign * t + rng.normal(0, 0.1):.4f}", f"{rng.normal():.4f}", label])
    return path


def train(runner, write_config, tmp_path, data, model=MODEL, train=TRAIN, name="seq") -> tuple:
    config = write_config({"name": name, "data": {"name": "sequences", **data}, "model": model, "train": train})
    result = runner.invoke(app, ["train", str(config), "-q"])
    assert result.exit_code == 0, result.output
    (run,) = [p for p in (tmp_path / "results" / name).iterdir() if p.is_dir()]
    return run, json.loads((run / "metrics.json").read_text()), result.output


def predict_json(runner, run, file) -> dict:
    result = runner.invoke(app, ["predict", str(run), "--file", str(file), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_long_table_trains_predicts_one_row_per_id_and_exports_equal_scores(runner, write_config, tmp_path):
    import keras

    from gru_lab.data.sequences import read_sequences, to_model

    path = write_long(tmp_path / "seq.csv")
    run, metrics, shown = train(runner, write_config, tmp_path,
                                {"path": str(path), "id_column": "seq", "order_column": "t", "features": ["a", "b"],
                                 "test_fraction": 0.25, "val_fraction": 0.2})
    assert metrics["task"] == "binary" and metrics["data"]["layout"] == "long"
    assert "logistic regression on the padded sequence" in shown and "baseline accuracy (always" in shown
    inputs = json.loads((run / "inputs.json").read_text())
    assert inputs["kind"] == "sequences" and inputs["classes"] == ["down", "up"] and inputs["maxlen"] <= 6
    # The padding is masked: the kernels that ran are the plan's for masked real inputs (compiled where built).
    assert metrics["execution"]["kernels"][0]["kernel"] in ("compiled", "fused")

    answer = predict_json(runner, run, path)
    rows = answer["predictions"]
    assert [r["id"] for r in rows] == [f"s{i}" for i in range(24)]  # one row per sequence id, in file order
    assert all(r["label"] in ("down", "up") and r["P(up)"] == pytest.approx(1 - r["P(down)"]) for r in rows)
    assert [r["given"] for r in rows] == ["down", "up"] * 12
    # A new file may lack the label and hold other columns: the run reads the feature columns it trained on.
    with open(path) as fh:
        table = list(csv.reader(fh))
    unlabelled = tmp_path / "new.csv"
    with open(unlabelled, "w", newline="") as fh:
        csv.writer(fh).writerows([["note", *row[:4]] for row in table])
    again = predict_json(runner, run, unlabelled)["predictions"]
    assert [r["P(up)"] for r in again] == pytest.approx([r["P(up)"] for r in rows], abs=1e-6)
    assert "given" not in again[0]

    out = tmp_path / "exported.keras"
    result = runner.invoke(app, ["export", str(run), "--format", "keras", "--out", str(out)])
    assert result.exit_code == 0, result.output
    x, _ = to_model(read_sequences(path, inputs["reader"], "--file"), inputs)
    exported = keras.saving.load_model(out).predict(x, verbose=0).ravel()
    assert exported == pytest.approx([r["P(up)"] for r in rows], abs=1e-5)

    # evaluate reads labelled sequences of the run's layout the same way: its accuracy is predict's.
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(path), "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    evaluation = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert evaluation["n"] == 24
    assert evaluation["accuracy"] == pytest.approx(np.mean([r["label"] == r["given"] for r in rows]))


@pytest.mark.slow
def test_wide_table_with_shorter_rows_trains_and_predicts(runner, write_config, tmp_path):
    rng = np.random.RandomState(1)
    path = tmp_path / "wide.csv"
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["name", "kind", *[f"x_{i}" for i in range(8)]])
        for i in range(30):
            cells = [f"{v:.3f}" for v in rng.normal(i % 3, 1, 8)]
            if i % 4 == 0:
                cells[6:] = ["", ""]  # three steps, not four
            out.writerow([f"w{i}", ["a", "b", "c"][i % 3], *cells])
    run, metrics, _ = train(runner, write_config, tmp_path,
                            {"path": str(path), "shape": [4, 2], "id_column": "name", "label_column": "kind"})
    assert metrics["task"] == "multiclass" and metrics["data"]["lengths"]["train_min"] == 3
    rows = predict_json(runner, run, path)["predictions"]
    assert len(rows) == 30 and rows[0]["id"] == "w0" and rows[0]["steps"] == 3
    assert sum(rows[0][f"P({c})"] for c in "abc") == pytest.approx(1, abs=1e-5)


def test_npz_regression_answers_in_the_files_units(runner, write_config, tmp_path):
    rng = np.random.RandomState(2)
    x = rng.normal(size=(40, 5, 2)).astype("float32")
    y = 1000 + 50 * x[:, :, 0].sum(axis=1)
    np.savez(tmp_path / "d.npz", X=x, y=y, lengths=rng.randint(2, 6, 40))
    run, metrics, shown = train(runner, write_config, tmp_path,
                                {"path": str(tmp_path / "d.npz"), "task": "regression"})
    assert {"mse", "mse_units", "mae_units"} <= set(metrics["test"]) and "test mse (file units)" in shown
    assert "ridge on the padded sequence" in shown and "train mean" in shown
    np.savez(tmp_path / "new.npz", X=x[:3])  # no y: predict needs none
    rows = predict_json(runner, run, tmp_path / "new.npz")["predictions"]
    assert len(rows) == 3 and all(500 < r["prediction"] < 1500 for r in rows)  # the file's units, not scaled


CONFIG_ERRORS = [
    # (id, data keys, model keys, the key the line names, a fragment of it)
    ("no-layout", {"path": "seq.csv"}, {}, "data.layout", "cannot be told from the config"),
    ("path-and-builtin", {"path": "seq.csv", "builtin": "digits"}, {}, "data.path", "give one of them"),
    ("shape-on-npz", {"path": "d.npz", "shape": [2, 2]}, {}, "data.shape", "for a wide table"),
    ("conv", {"builtin": "digits"}, {"conv": {"filters": 4}}, "model.conv", "Conv1D cannot carry the mask"),
    ("classes-regression", {"builtin": "digits", "task": "regression", "classes": ["1", "2"]}, {}, "data.classes",
     "is for classification"),
]


@pytest.mark.parametrize("data,model,key,fragment", [c[1:] for c in CONFIG_ERRORS], ids=[c[0] for c in CONFIG_ERRORS])
def test_config_mistakes_are_one_line_naming_the_key(runner, write_config, tmp_path, data, model, key, fragment):
    config = write_config({"data": {"name": "sequences", **data}, "model": {**MODEL, **model}})
    line = assert_user_error(runner.invoke(app, ["train", str(config)]), tmp_path / "results")
    assert f"'{key}'" in line and fragment in line, line


DATA_ERRORS = [
    ("label-changes", "seq,a,label\ns1,1,x\ns1,2,y\ns2,1,y\n", {"id_column": "seq"},
     "seq.csv:3: sequence 's1' has label 'y' here but 'x'"),
    ("not-a-number", "seq,a,label\ns1,1,x\ns2,one,y\n", {"id_column": "seq"},
     "seq.csv:3: column 'a' holds 'one', which is not a number"),
    ("wide-columns", "a,b,c,label\n1,2,3,x\n2,3,4,y\n", {"shape": [2, 2]}, "seq.csv:1: 3 feature column(s)"),
]


@pytest.mark.parametrize("text,data,fragment", [c[1:] for c in DATA_ERRORS], ids=[c[0] for c in DATA_ERRORS])
def test_file_mistakes_are_one_line_naming_file_and_line(runner, write_config, tmp_path, text, data, fragment):
    (tmp_path / "seq.csv").write_text(text)
    config = write_config({"data": {"name": "sequences", "path": "seq.csv", **data}, "model": MODEL})
    line = assert_user_error(runner.invoke(app, ["train", str(config)]), tmp_path / "results")
    assert fragment in line, line


def test_npz_without_x_is_one_line(runner, write_config, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2, 1)), y=np.arange(4))
    config = write_config({"data": {"name": "sequences", "path": "d.npz"}, "model": MODEL})
    line = assert_user_error(runner.invoke(app, ["train", str(config)]), tmp_path / "results")
    assert "d.npz: no array 'X' in the .npz" in line, line


def trending_series(path, days=730, seed=0):
    """Two years of a daily series: a trend (0.05 a day), a weekly season and noise. Its test rows (the last
    15%) lie above anything the train rows hold, so scaling fitted on train rows extrapolates without a
    transform."""
    rng = np.random.RandomState(seed)
    t = np.arange(days)
    values = 10 + 0.05 * t + 2.0 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.3, days)
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["day", "sales"])
        out.writerows([[int(d), f"{v:.3f}"] for d, v in zip(t, values)])
    return path


def test_a_trending_series_differenced_beats_the_last_value_in_the_files_units(runner, write_config, tmp_path):
    path = trending_series(tmp_path / "trend.csv")
    config = write_config({"name": "trend", "data": {"name": "series", "path": str(path), "time_column": "day",
                                                     "targets": "sales", "window": 14, "transform": "difference"},
                           "model": {"units": 16}, "train": {"epochs": 8, "batch_size": 32, "learning_rate": 0.01}})
    result = runner.invoke(app, ["train", str(config), "-q"])
    assert result.exit_code == 0, result.output
    (run,) = list((tmp_path / "results" / "trend").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    data = metrics["data"]
    assert metrics["test"]["mse_units"] < data["last_value_mse_units"]
    assert metrics["test"]["mse"] < data["last_value_mse"]  # the same verdict in the model's (scaled) units
    assert "test mse (file units)" in result.output and "repeat the last value, file units" in result.output
    # The forecast table: the file's units (sales around 40-50 in the test period), at most six digits.
    shown = metrics["predictions"][0]
    assert 35 < shown["target"] < 55 and 35 < shown["prediction"] < 55
    assert len(str(shown["prediction"]).replace(".", "").lstrip("-0")) <= 6
    # predict reads the file the run's way: its forecasts over the test windows are the run's own.
    every = predict_json_series(runner, run, path)
    first_test = int(str(data["first_test_row"]).rsplit(":", 1)[-1]) - 2  # file line -> 0-based day (header: 1)
    forecast_for = {int(r["window_end"]): r["sales"] for r in every}
    assert forecast_for[first_test + 14 - 1] == pytest.approx(shown["prediction"], rel=1e-5)
    # The run's own evaluation judges against the level's last value too, and draws the file's units.
    own = json.loads((run / "evaluation" / "evaluation.json").read_text())
    assert own["naive_mse"] == pytest.approx(data["last_value_mse"], rel=1e-5)
    assert own["residuals"]["targets"]["sales"]["mae"] == pytest.approx(metrics["test"]["mae_units"], rel=1e-4)
    # evaluate differences the file as the run did: every window of the 729 differences, in the model's units.
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(path), "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    evaluation = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert evaluation["n"] == 730 - 1 - 14


def predict_json_series(runner, run, path) -> list:
    result = runner.invoke(app, ["predict", str(run), "--file", str(path), "--every-window", "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["predictions"]
