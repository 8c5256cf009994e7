"""The leaderboard's groups: runs rank together only on the same data (file, slice, sizes), and the settings that
differ between a group's runs are columns."""

from __future__ import annotations

import json

import yaml

from gru_lab.runs.records import leaderboard_frame


def write_run(root, run_id: str, accuracy: float, data: dict, epochs: int = 2, units: int = 8, seed: int = 0):
    folder = root / "reviews" / run_id
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({
        "name": "reviews", "seed": seed, "data": {"name": "text", "maxlen": 20, **data},
        "model": {"cell": "gru", "units": units}, "train": {"epochs": epochs, "batch_size": 16}}))
    (folder / "metrics.json").write_text(json.dumps({"status": "finished", "task": "binary", "name": "reviews",
                                                     "run_id": run_id, "test": {"accuracy": accuracy}}))


def test_runs_rank_within_their_data_and_show_what_differs(tmp_path):
    write_run(tmp_path, "a", 0.80, {"path": "data/a.csv"}, epochs=2)
    write_run(tmp_path, "b", 0.85, {"path": "data/a.csv"}, epochs=3, units=16)
    write_run(tmp_path, "c", 0.95, {"path": "data/a.csv", "n_train": 100})  # a slice: its own group
    write_run(tmp_path, "d", 0.70, {"path": "data/b.csv"})  # another file
    write_run(tmp_path, "e", 0.60, {"path": "data/b.csv", "encoding": "latin-1"})  # reads alike, is not alike
    board = leaderboard_frame(tmp_path)
    groups = {g: list(rows.run_id) for g, rows in board.groupby("dataset", sort=False)}
    assert groups == {"text a.csv maxlen=20": ["b", "a"], "text a.csv maxlen=20 n_train=100": ["c"],
                      "text b.csv maxlen=20 (data 1)": ["d"], "text b.csv maxlen=20 (data 2)": ["e"]}
    assert list(board["rank"]) == [1, 2, 1, 1, 1]
    # epochs differ within a group: a column; units too, but the model column names them already
    assert board.attrs["varied"] == ["train.epochs"]
    assert dict(zip(board.run_id, board["train.epochs"])) == {"a": "2", "b": "3", "c": "2", "d": "2", "e": "2"}


def test_report_shows_the_varied_settings(runner, tmp_path):
    from gru_lab.cli import app

    write_run(tmp_path, "a", 0.80, {"path": "a.csv"}, epochs=2)
    write_run(tmp_path, "b", 0.85, {"path": "a.csv"}, epochs=3)
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "train.epochs" in result.stdout
    assert "train.epochs" in (tmp_path / "leaderboard.md").read_text().splitlines()[4]
