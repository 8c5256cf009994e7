"""compare on a small text task with two seeds, end to end: the runs' evaluation/ feeds the length table and the
ensemble rows, whose accuracy is the mean of the seeds' saved probabilities, recomputed here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from gru_lab.cli import app
from tests.data.test_text import texts_of, write_csv


@pytest.mark.slow  # four small runs, each in its own worker process (~2 min on 2 cores)
def test_compare_writes_lengths_and_ensembles_from_the_runs_predictions(runner, tmp_path):
    rows = [(t, "pos") for t in texts_of("pos", 40)] + [(t, "neg") for t in texts_of("neg", 40)]
    rows += [(t + " and more words here to make it longer", label) for t, label in rows[::3]]
    write_csv(tmp_path / "reviews.csv", rows)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({
        "name": "lengths", "seed": 0,
        "data": {"name": "text", "path": str(tmp_path / "reviews.csv"), "maxlen": 8, "num_words": 60},
        "model": {"cell": "gru", "units": 4, "embedding_dim": 4},
        "train": {"epochs": 3, "batch_size": 16}, "output": {"dir": str(tmp_path / "results")}}))
    result = runner.invoke(app, ["compare", "rnn", "gru", "--config", str(tmp_path / "base.yaml"), "--seeds", "2",
                                 "-q"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "results" / "lengths"
    record = json.loads((folder / "comparison.json").read_text())
    assert {r["cell"] for r in record["by_length"]} == {"simple_rnn", "gru"}
    assert (folder / "by_length.png").is_file() and (folder / "comparison_ensembles.csv").is_file()
    for cell in ("simple_rnn", "gru"):
        runs = [r for r in record["runs"] if r["cell"] == cell]
        saved = [np.load(folder / r["run_id"] / "evaluation" / "predictions.npz") for r in runs]
        mean = np.mean([s["scores"] for s in saved], axis=0)
        (ens,) = [e for e in record["ensembles"] if e["cell"] == cell]
        assert ens["accuracy"] == pytest.approx(float(np.mean(mean.argmax(axis=1) == saved[0]["y"])))
        assert ens["seeds_accuracy_mean"] == pytest.approx(np.mean([r["value"] for r in runs]), abs=1e-6)
    claims = [v["claim"] for v in record["verdicts"]]
    assert "SimpleRNN struggles with long inputs (test accuracy by length)" in claims
    assert "GRU, ensemble of 2 seeds beats the classical baseline" in claims
    assert "## Accuracy by input length" in (folder / "comparison.md").read_text()
