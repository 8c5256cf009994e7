"""End to end through the CLI: what a user types, what lands on disk."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from gru_lab.cli import app
from gru_lab.config import load_config
from tests.conftest import ROOT, tiny_config


def test_train_writes_a_complete_run_record(runner, write_config, tmp_path):
    path = write_config(tiny_config())
    result = runner.invoke(app, ["train", str(path), "--set", "model.units=5"])
    assert result.exit_code == 0, result.output
    runs = sorted((tmp_path / "results" / "tiny").iterdir())
    assert len(runs) == 1 and not runs[0].name.startswith(".")
    run = runs[0]
    assert {p.name for p in run.iterdir()} == {"config.yaml", "metrics.json", "history.csv", "model.keras"}

    resolved = load_config(run / "config.yaml")  # the resolved config loads again and holds the override
    assert resolved.model.units == 5 and resolved.train.epochs == 2

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["run_id"] == run.name and metrics["name"] == "tiny" and metrics["status"] == "finished"
    assert metrics["params"]["total"] == 3 * 5 * (1 + 5 + 2) + 6  # GRU(5) on 1 feature + Dense(5->1)
    assert len(metrics["epoch_seconds"]) == 2

    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[-1]["seconds"]) == metrics["epoch_seconds"][-1] and float(rows[-1]["val_loss"]) > 0

    import keras

    model = keras.saving.load_model(run / "model.keras")
    assert model.count_params() == metrics["params"]["total"]
    from gru_lab.data import load_dataset

    data = load_dataset(resolved.data, resolved.seed)  # the test set again, from the seed: the saved model scores it
    predicted = model.predict(data.x_test, verbose=0).reshape(-1)
    assert metrics["test"]["mse"] == pytest.approx(float(((predicted - data.y_test) ** 2).mean()), rel=1e-4)
    assert "test mse" in result.stdout and str(run) in result.stdout


def test_second_run_never_overwrites_the_first(runner, write_config, tmp_path):
    path = write_config(tiny_config())
    for _ in range(2):
        assert runner.invoke(app, ["train", str(path), "-q"]).exit_code == 0
    runs = sorted((tmp_path / "results" / "tiny").iterdir())
    assert len(runs) == 2
    assert all((r / "metrics.json").exists() for r in runs)


def test_interrupted_train_keeps_finished_epochs_and_exits_130(runner, write_config, tmp_path, monkeypatch):
    import gru_lab.training.fit as training

    real_train = training.train

    def train_then_ctrl_c(cfg, data, epoch_hook=None, batch_hook=None):
        def hook(epoch, logs, seconds):
            if epoch == 2:
                raise KeyboardInterrupt

        return real_train(cfg, data, epoch_hook=hook)

    monkeypatch.setattr(training, "train", train_then_ctrl_c)
    path = write_config({**tiny_config(), "train": {"epochs": 6, "batch_size": 16}})
    result = runner.invoke(app, ["train", str(path), "-q"])
    assert result.exit_code == 130
    (run,) = (tmp_path / "results" / "tiny").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["epochs_run"] == 2


def test_inspect_shows_formulas_and_cudnn(runner):
    result = runner.invoke(app, ["inspect", str(ROOT / "configs" / "timeseries_gru.yaml")])
    assert result.exit_code == 0, result.output
    assert "3u(d+u+2) = 3*50*(1+50+2)" in result.stdout and "'relu'" in result.stdout
    assert "8,001" in result.stdout  # 3*50*(1+50+2) + 51
    (layer,) = _inspect_json(runner, str(ROOT / "configs" / "timeseries_gru.yaml"))["kernels"]["planned"]
    assert (layer["inference"] == "keras-loop"
            and "activation is 'relu', gru-lab's loops need 'tanh'" in layer["train_why"])
    (layer,) = _inspect_json(runner, str(ROOT / "configs" / "sine_gru.yaml"))["kernels"]["planned"]
    assert layer["inference"] in ("compiled", "keras-loop") and "the inputs are not token ids" in layer["inference_why"]


def _inspect_json(runner, *args) -> dict:
    result = runner.invoke(app, ["inspect", *args, "--no-build", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_inspect_shows_the_kernel_plan_and_why(runner):
    from gru_lab.rnn import compiled

    imdb = str(ROOT / "configs" / "imdb_gru.yaml")
    train = "compiled" if compiled.unavailable_without_building() is None else "fused"
    result = runner.invoke(app, ["inspect", imdb, "--no-build"])
    assert result.exit_code == 0, result.output
    assert f"gru_1 │ {train} │ {train}-table" in result.stdout
    (layer,) = _inspect_json(runner, imdb)["kernels"]["planned"]
    assert (layer["layer"], layer["train"], layer["inference"]) == ("gru_1", train, f"{train}-table")
    (layer,) = _inspect_json(runner, imdb, "--set", "model.loops=keras")["kernels"]["planned"]
    assert (layer["train"], layer["inference"]) == ("keras-loop", "keras-loop")
    assert layer["train_why"] == ["model.loops is 'keras'"]
    (layer,) = _inspect_json(runner, imdb, "--set", "model.cell=lstm", "--set", "train.xla=on")["kernels"]["planned"]
    assert layer["train"] == "fused" and "cell is 'lstm'; the compiled loops are gru's" in layer["train_why"]
    assert "train.xla is 'on' (the compiled ops have no XLA kernel)" in layer["train_why"]


def test_help_and_config_errors_answer_without_tensorflow():
    code = ("import sys\nfrom gru_lab.cli import app\n"
            "try:\n    app(['train', 'no-such.yaml'])\nexcept SystemExit as e:\n    code = e.code\n"
            "sys.exit(10 + code if 'tensorflow' in sys.modules else code)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr  # 12: TensorFlow was imported
    assert proc.stderr.strip() == "error: no-such.yaml: config file not found."

    proc = subprocess.run([sys.executable, "-m", "gru_lab.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "train" in proc.stdout


def test_console_script_filters_native_tf_logs(tmp_path, write_config):
    """The installed `gru-lab` keeps TensorFlow's absl start-up lines off stderr but keeps our own lines."""
    path = write_config(tiny_config())
    exe = ROOT / ".venv" / "bin" / "gru-lab"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from gru_lab.cli import run; run()"]
    proc = subprocess.run(cmd + ["train", str(path), "-q"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "oneDNN" not in proc.stderr and "absl::InitializeLog" not in proc.stderr
    proc = subprocess.run(cmd + ["train", str(path), "--set", "model.units=x"], capture_output=True, text=True)
    assert proc.returncode == 2 and "'model.units' must be an integer" in proc.stderr


def test_shell_completion_installs(tmp_path):
    """`gru-lab --install-completion` (Typer's) writes the completion script for the user's shell. In a terminal
    Typer detects the shell; here (under make's sh) the shell is named, as Typer's own tests do."""
    env = {**os.environ, "HOME": str(tmp_path), "SHELL": "/bin/bash",
           "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    exe = ROOT / ".venv" / "bin" / "gru-lab"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from gru_lab.cli import run; run()"]
    proc = subprocess.run(cmd + ["--install-completion", "bash"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    scripts = list((tmp_path / ".bash_completions").glob("*.sh"))
    assert scripts and "_gru_lab_completion" in scripts[0].read_text()
    assert "bash_completions" in (tmp_path / ".bashrc").read_text()
