"""`report` on a pipe or a narrow terminal: at 80 columns the leaderboard's run ids and metrics stay whole."""

from __future__ import annotations

import json

import pytest
import yaml

from gru_lab import cli
from gru_lab.cli import common

RUNS = [("adding_long_experiment_name", "units=32-learning_rate=0.003-s0-af78bbbf64", 0.002305, 3489),
        ("adding_long_experiment_name", "units=64-learning_rate=0.003-s0-022ee51d8c", 0.006833, 13185)]


def results(tmp_path):
    for name, run_id, mse, params in RUNS:
        folder = tmp_path / name / run_id
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({
            "status": "finished", "task": "regression", "name": name, "run_id": run_id, "test": {"mse": mse},
            "params": {"total": params}, "median_epoch_seconds": 0.143}))
        (folder / "config.yaml").write_text(yaml.safe_dump({
            "name": name, "data": {"name": "adding", "length": 20}, "model": {"cell": "gru", "units": 32}}))
    return tmp_path


@pytest.mark.parametrize("width", [80, 100], ids=["80-columns", "100-columns"])
def test_report_at_narrow_widths_keeps_run_ids_and_metrics_whole(runner, tmp_path, monkeypatch, width):
    monkeypatch.setattr(common.out, "width", width)  # the console as a pipe or terminal of this width sets it
    result = runner.invoke(cli.app, ["report", str(results(tmp_path))], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    for _name, run_id, mse, _params in RUNS:
        assert run_id in result.stdout and f"mse {mse:.4g}" in result.stdout, result.stdout
    board = result.stdout.split("\ncsv: ")[0].splitlines()  # the file paths after it are as long as they are
    assert max(len(line) for line in board) <= width


def test_a_wide_console_keeps_the_table(runner, tmp_path, monkeypatch):
    monkeypatch.setattr(common.out, "width", 200)
    result = runner.invoke(cli.app, ["report", str(results(tmp_path))])
    header = next(line for line in result.stdout.splitlines() if "run id" in line)
    assert "test metric" in header and "s/epoch" in header
    assert any(RUNS[0][1] in line and "mse 0.002305" in line for line in result.stdout.splitlines())
