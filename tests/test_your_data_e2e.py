"""Real public data through the generic readers, end to end from the configs in configs/: the sunspot series
(data/sunspots.csv) and the IMDB reviews read as plain class folders and as a TSV table. Each trains, beats
the naive baseline on its test split, predicts from its run folder, and exports a model that a Python without
gru-lab loads and that scores as `gru-lab predict` does. Slow: real trainings (`make test-slow`)."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile

import pytest

from gru_lab.cli import app
from tests.conftest import CONFIGS, REAL_IMDB, ROOT, needs_real_imdb, run_without_gru_lab

pytestmark = pytest.mark.slow

REVIEWS = ["This movie was wonderful, I loved every minute of it. Brilliant acting and a great story.",
           "Terrible. Boring and awful, the worst film I have seen, a waste of time.",
           "An average film: some good scenes, some dull ones.",
           "I expected more from this director, but the ending surprised me in a good way."]


def train(runner, config, tmp_path, *overrides) -> tuple:
    result = runner.invoke(app, ["train", str(config), "-q", "--set", f"output.dir={tmp_path / 'results'}",
                                 *[a for o in overrides for a in ("--set", o)]])
    assert result.exit_code == 0, result.output
    (run,) = [p for p in (tmp_path / "results").glob("*/*") if p.is_dir()]
    return run, json.loads((run / "metrics.json").read_text())


def exported_scores(run, tmp_path, texts: list[str]) -> dict:
    from typer.testing import CliRunner

    for fmt in ("keras", "savedmodel"):
        out = tmp_path / f"exported.{fmt}"
        result = CliRunner().invoke(app, ["export", str(run), "--format", fmt, "--out", str(out), "--text"])
        assert result.exit_code == 0, result.output
    code = f"""
import json, numpy as np, keras, tensorflow as tf
texts = {texts!r}
scores = {{"keras": keras.saving.load_model("exported.keras").predict(np.array(texts, dtype=object), verbose=0)}}
served = tf.saved_model.load("exported.savedmodel")
scores["savedmodel"] = served.serve(tf.constant(texts)).numpy()
run = keras.saving.load_model({str(run / "model.keras")!r})
assert "gru_lab" not in sys.modules
print(json.dumps({{k: v.ravel().tolist() for k, v in scores.items()}}))
"""
    proc = run_without_gru_lab(code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sunspots_beat_the_last_value_predict_and_export(runner, tmp_path):
    run, metrics = train(runner, CONFIGS / "sunspots_gru.yaml", tmp_path)
    assert metrics["test"]["mse"] < metrics["data"]["last_value_mse"]
    result = runner.invoke(app, ["predict", str(run), "--file", str(ROOT / "data" / "sunspots.csv"), "--format",
                                 "json"])
    assert result.exit_code == 0, result.output
    forecast = json.loads(result.stdout)
    assert forecast["after"] == 2008 and forecast["predictions"][0]["time"] == 2009
    assert 0 <= forecast["predictions"][0]["SUNACTIVITY"] < 200  # sunspot numbers, not scaled units
    result = runner.invoke(app, ["export", str(run), "--format", "savedmodel", "--out", str(tmp_path / "sm")])
    assert result.exit_code == 0, result.output
    code = f"""
import json, numpy as np, keras, tensorflow as tf
x = np.linspace(-1, 1, 11, dtype="float32").reshape(1, 11, 1)
served = tf.saved_model.load("sm")
own = keras.saving.load_model({str(run / 'model.keras')!r})
out = [served.serve(x).numpy().ravel().tolist(), own.predict(x, verbose=0).ravel().tolist()]
assert "gru_lab" not in sys.modules
print(json.dumps(out))
"""
    proc = run_without_gru_lab(code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served, own = json.loads(proc.stdout.strip().splitlines()[-1])
    assert served == pytest.approx(own, abs=1e-5)


@pytest.fixture(scope="module")
def acl_imdb(tmp_path_factory):
    """The real archive unpacked: aclImdb/{train,test}/{neg,pos}/*.txt, a plain class-folder layout."""
    folder = tmp_path_factory.mktemp("acl")
    with tarfile.open(REAL_IMDB, "r:gz") as tar:
        tar.extractall(folder, filter="data")
    return folder / "aclImdb"


def _text_run_checks(runner, run, metrics, tmp_path):
    # 2,000 balanced test reviews: the majority class scores 0.5; a model that learned anything is well above.
    assert metrics["data"]["majority_accuracy"] == pytest.approx(0.5)
    assert metrics["test"]["accuracy"] > metrics["data"]["majority_accuracy"] + 0.1
    result = runner.invoke(app, ["predict", str(run), *REVIEWS, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["predictions"]
    assert rows[0]["label"] == "pos" and rows[1]["label"] == "neg"
    exported = exported_scores(run, tmp_path, REVIEWS)
    predicted = [r["P(pos)"] for r in rows]
    assert exported["keras"] == pytest.approx(predicted, abs=1e-5)
    assert exported["savedmodel"] == pytest.approx(predicted, abs=1e-5)


SMALL = ["data.n_train=5000", "data.n_test=2000", "model.units=32", "model.embedding_dim=32", "train.epochs=3"]


@needs_real_imdb
def test_imdb_as_class_folders(runner, acl_imdb, tmp_path):
    run, metrics = train(runner, CONFIGS / "imdb_text_folder.yaml", tmp_path, f"data.path={acl_imdb / 'train'}",
                         f"data.test_path={acl_imdb / 'test'}", *SMALL)
    assert metrics["data"]["classes"] == ["neg", "pos"]
    _text_run_checks(runner, run, metrics, tmp_path)


@needs_real_imdb
def test_imdb_as_tsv_tables(runner, acl_imdb, tmp_path):
    script = ROOT / "data" / "imdb_tables.py"
    (tmp_path / "data").mkdir()
    copy = tmp_path / "data" / "imdb_tables.py"
    copy.write_text(script.read_text())  # writes its tables beside itself: here, not in the repository
    subprocess.run([sys.executable, str(copy), str(acl_imdb)], check=True, capture_output=True)
    config = tmp_path / "configs" / "imdb_text_tsv.yaml"
    config.parent.mkdir()
    config.write_text((CONFIGS / "imdb_text_tsv.yaml").read_text())  # its relative paths find ../data/*.tsv
    run, metrics = train(runner, config, tmp_path, *SMALL)
    assert metrics["data"]["texts"]["test"] == 2000
    _text_run_checks(runner, run, metrics, tmp_path)
