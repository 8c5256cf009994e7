"""IMDB end to end on a slice of the real reviews: train through the CLI, then predict new text."""

from __future__ import annotations

import json

import pytest

from gru_lab.cli import app
from gru_lab.config import load_config
from tests.conftest import CONFIGS, REAL_IMDB, needs_real_imdb, run_without_gru_lab

POSITIVE = "This movie was wonderful, I loved every minute of it. Brilliant acting and a great story."
NEGATIVE = "Terrible. Boring and awful, the worst film I have seen, a waste of time."


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, real_cache):
    """A small GRU trained on 4,000 real reviews (about 20 s): good enough to tell clear reviews apart."""
    from typer.testing import CliRunner

    tmp = tmp_path_factory.mktemp("imdb-run")
    cfg = tmp / "imdb_small.yaml"
    cfg.write_text(f"""
name: imdb_small
seed: 0
data: {{name: imdb, path: "{REAL_IMDB}", n_train: 4000, n_test: 1000, num_words: 5000, maxlen: 100,
        padding: post, truncating: post, cache_dir: "{real_cache}"}}
model: {{cell: gru, units: 16, embedding_dim: 32, mask_zero: true, pooling: max}}
train: {{epochs: 3, batch_size: 32, learning_rate: 0.005}}
output: {{dir: "{tmp / 'results'}"}}
""")
    result = CliRunner().invoke(app, ["train", str(cfg), "-q"])
    assert result.exit_code == 0, result.output
    (run,) = (tmp / "results" / "imdb_small").iterdir()
    return run


@pytest.mark.slow  # trains on 4,000 real reviews after tokenizing the archive (~15 s): the slow tier
@needs_real_imdb
def test_imdb_run_folder_carries_what_predict_needs(trained_run):
    assert {"config.yaml", "metrics.json", "history.csv", "model.keras", "vocabulary.json"} <= {
        p.name for p in trained_run.iterdir()}
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["data"]["n_train"] == 4000 and metrics["n_test"] == 1000
    # 1,000 balanced test reviews: chance is 0.5 +- 0.016; a model that learned anything is far above.
    assert metrics["test"]["accuracy"] > 0.62
    # The TF-IDF baseline on the same 4,000 training and 1,000 test reviews, every word of each (not 100 ids).
    (tfidf,) = metrics["classical_baseline"]["items"]
    assert tfidf["name"] == "tfidf_logreg" and (tfidf["n_train"], tfidf["n_test"]) == (4000, 1000)
    assert tfidf["value"] > 0.75 and "every word of each text" in tfidf["sees"]
    vocab = json.loads((trained_run / "vocabulary.json").read_text())
    assert vocab["word_index"]["the"] == 4 and vocab["maxlen"] == 100


@pytest.mark.slow  # trains on 4,000 real reviews after tokenizing the archive (~15 s): the slow tier
@needs_real_imdb
def test_predict_labels_clear_reviews(runner, trained_run, tmp_path):
    result = runner.invoke(app, ["predict", str(trained_run), POSITIVE, NEGATIVE])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("│ ")]
    assert " pos " in rows[0] and " neg " in rows[1]
    reviews = tmp_path / "reviews.txt"
    reviews.write_text(f"{NEGATIVE}\n\n{POSITIVE}\n")
    result = runner.invoke(app, ["predict", str(trained_run), "--file", str(reviews)])
    rows = [line for line in result.stdout.splitlines() if line.startswith("│ ")]
    assert len(rows) == 2 and " neg " in rows[0] and " pos " in rows[1]
    assert "reviews.txt:1" in rows[0] and "reviews.txt:3" in rows[1]  # the blank line 2 keeps the numbering


PREDICT_ERRORS = [
    ("no-run-folder", lambda _run, tmp: [str(tmp / "nope"), "x"], "run folder not found"),
    ("no-text", lambda run, _tmp: [str(run)], "no text given"),
    ("missing-file", lambda run, tmp: [str(run), "--file", str(tmp / "none.txt")], "does not exist"),
]


@pytest.mark.slow  # trains on 4,000 real reviews after tokenizing the archive (~15 s): the slow tier
@needs_real_imdb
@pytest.mark.parametrize("args,fragment", [c[1:] for c in PREDICT_ERRORS], ids=[c[0] for c in PREDICT_ERRORS])
def test_predict_errors_are_one_line(runner, trained_run, tmp_path, args, fragment):
    result = runner.invoke(app, ["predict", *args(trained_run, tmp_path)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert fragment in result.stderr


def test_predict_on_a_non_text_run_says_why_and_reads_a_csv_of_values(runner, cli_tiny_run, tmp_path):
    import numpy as np

    run = cli_tiny_run  # tiny_config(): windows of 8 sine values
    result = runner.invoke(app, ["predict", str(run), "great film"])
    assert result.exit_code == 2 and "forecasts a series; pass its data as --file" in result.stderr
    values = tmp_path / "wave.csv"
    values.write_text("value\n" + "".join(f"{np.sin(i / 3):.4f}\n" for i in range(10)))
    result = runner.invoke(app, ["predict", str(run), "--file", str(values), "--format", "json"])
    assert result.exit_code == 0, result.output
    import keras

    x = np.sin(np.arange(10) / 3).round(4)[-8:].reshape(1, 8, 1).astype("float32")
    expected = float(keras.saving.load_model(run / "model.keras").predict(x, verbose=0)[0, 0])
    assert json.loads(result.stdout)["predictions"][0]["prediction"] == pytest.approx(expected, abs=1e-5)


def test_missing_imdb_data_is_one_line(runner, write_config, tmp_path):
    path = write_config({"name": "x", "data": {"name": "imdb", "path": str(tmp_path / "nowhere")},
                         "model": {"embedding_dim": 8}})
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "nowhere" in result.stderr
    assert not (tmp_path / "results").exists()


def test_imdb_gru_config_has_the_tutorials_parameter_count():
    from gru_lab.data import spec_for
    from gru_lab.models.plan import count_params

    cfg = load_config(CONFIGS / "imdb_gru.yaml")
    assert count_params(cfg.model, spec_for(cfg.data))["total"] == 1_379_201


def test_stacked_gru_config_is_two_stacked_grus_without_a_head():
    from gru_lab.data import spec_for
    from gru_lab.models.build import build_model

    cfg = load_config(CONFIGS / "imdb_stacked_gru.yaml")
    model = build_model(cfg.model, spec_for(cfg.data))
    assert [layer.name for layer in model.layers[1:]] == ["gru_1", "gru_2"]
    assert model.input_shape == (None, 300, 1) and model.output_shape == (None, 1)
    # GRU(50) on 1 feature + GRU(1) on 50: 3*50*(1+50+2) + 3*1*(50+1+2)
    assert model.count_params() == 7950 + 159


@pytest.mark.slow  # a fresh process or a real-data export: the slow tier keeps make test within 3 minutes
@needs_real_imdb
def test_imdb_savedmodel_takes_raw_reviews_and_scores_as_predict(runner, trained_run, tmp_path):
    reviews = [POSITIVE, NEGATIVE, "It's a <br />so-so film; the actors' work isn't bad.", "Naïve, but charming"]
    out = tmp_path / "imdb.savedmodel"
    result = runner.invoke(app, ["export", str(trained_run), "--format", "savedmodel", "--text", "--out", str(out)])
    assert result.exit_code == 0, result.output
    code = (f"import json, tensorflow as tf\nserved = tf.saved_model.load({str(out)!r})\n"
            f"print(json.dumps(served.serve(tf.constant({reviews!r})).numpy().ravel().tolist()))\n"
            "assert 'gru_lab' not in sys.modules\n")
    proc = run_without_gru_lab(code, cwd=tmp_path)  # TensorFlow alone serves it
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    result = runner.invoke(app, ["predict", str(trained_run), *reviews, "--format", "json"])
    predicted = [row["P(pos)"] for row in json.loads(result.stdout)["predictions"]]
    assert scores == pytest.approx(predicted, abs=1e-5)
    result = runner.invoke(app, ["export", str(trained_run), "--text", "--out", str(tmp_path / "m.keras")])
    assert result.exit_code == 2 and "Use --format savedmodel" in result.stderr


@pytest.mark.slow  # scores all 25,000 test reviews of the archive (~45 s on 2 cores)
@needs_real_imdb
def test_evaluate_an_imdb_run_on_the_archive_names_each_review_by_file(trained_run, tmp_path):
    import numpy as np
    from sklearn import metrics as sk
    from typer.testing import CliRunner

    own = json.loads((trained_run / "evaluation" / "evaluation.json").read_text())
    recorded = json.loads((trained_run / "metrics.json").read_text())
    assert own["accuracy"] == pytest.approx(recorded["test"]["accuracy"], abs=1e-6) and own["n"] == 1000
    result = CliRunner().invoke(app, ["evaluate", str(trained_run), "--data", str(REAL_IMDB),
                                      "--out", str(tmp_path / "all")])
    assert result.exit_code == 0, result.output
    ev = json.loads((tmp_path / "all" / "evaluation.json").read_text())
    saved = np.load(tmp_path / "all" / "predictions.npz")
    assert ev["n"] == 25000 and int(saved["y"].sum()) == 12500
    assert ev["roc"]["pos"]["auc"] == pytest.approx(sk.roc_auc_score(saved["y"], saved["scores"][:, 1]))
    assert all(m["source"].startswith("aclImdb/test/") and m["source"].endswith(".txt") for m in ev["mistakes"])
    # maxlen 100 (START included): a review is cut when it has more; the longest quarter all are
    assert np.array_equal(saved["truncated"], saved["lengths"] > 100)
    assert ev["by_length"][-1]["truncated_share"] == 1.0
    assert sum(b["truncated_share"] * b["count"] for b in ev["by_length"]) == pytest.approx(saved["truncated"].sum())
