"""The embedded default (`gru-lab train` with no config, `make demo`) shows the recurrent model's point: its GRU
beats every baseline it prints, and says so in its verdict line."""

from __future__ import annotations

import json

import pytest

from gru_lab.cli import app


@pytest.mark.slow  # ~10 s on 2 cores: 8 epochs of the adding problem at T=20
def test_the_default_gru_beats_every_baseline_it_prints(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the embedded default writes results/ under the working folder
    result = runner.invoke(app, ["train", "-q"])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "results" / "demo_adding_gru").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    printed = {"predict the mean": metrics["data"]["baseline_mse"]}
    printed.update({b["label"]: b["value"] for b in metrics["classical_baseline"]["items"]})
    assert {"predict the mean", "last value"} <= set(printed) and any(k.startswith("ridge") for k in printed)
    mse = metrics["test"]["mse"]
    assert all(mse < value for value in printed.values()), (mse, printed)
    # Not by a hair: the margin to the strongest baseline is what the demo is for.
    assert mse < 0.25 * min(printed.values()), (mse, printed)
    assert "verdict: GRU(32) beats every baseline" in result.stdout
