"""Small finished runs to predict from and export: a text classifier and a series forecaster, trained once."""

from __future__ import annotations

import math

import pytest
import yaml

from gru_lab.cli import app
from tests.data.test_text import texts_of, write_csv

TEXT_MAXLEN = 6


def train_run(folder, config: dict):
    from typer.testing import CliRunner

    config = {**config, "output": {"dir": str(folder / "results"), **config.get("output", {})}}
    path = folder / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["train", str(path), "-q"])
    assert result.exit_code == 0, result.output
    (run,) = (folder / "results" / config["name"]).iterdir()
    return run


@pytest.fixture(scope="session")
def text_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text-run")
    rows = [(t, "pos") for t in texts_of("pos", 40)] + [(t, "neg") for t in texts_of("neg", 40)]
    write_csv(folder / "reviews.csv", rows)
    return train_run(folder, {
        "name": "reviews", "seed": 0,
        "data": {"name": "text", "path": "reviews.csv", "maxlen": TEXT_MAXLEN, "num_words": 50},
        "model": {"cell": "gru", "units": 4, "embedding_dim": 4, "mask_zero": True},
        "train": {"epochs": 2, "batch_size": 16}})


@pytest.fixture(scope="session")
def series_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("series-run")
    lines = ["day,temp,hum"] + [f"2024-01-{1 + i % 28:02d}T{i // 28:02d}:00,{20 + 5 * math.sin(i / 4):.3f},{50 + i % 7}"
                                for i in range(120)]
    (folder / "weather.csv").write_text("\n".join(lines) + "\n")
    return train_run(folder, {
        "name": "weather", "seed": 0,
        "data": {"name": "series", "path": "weather.csv", "time_column": "day", "targets": "temp",
                 "features": ["hum"], "window": 6, "horizon": 2},
        "model": {"cell": "gru", "units": 4},
        "train": {"epochs": 2, "batch_size": 16},
        # no test reads this run's own evaluation/ (text_run's is checked; `evaluate` scores this one again)
        "output": {"evaluation": False}})
