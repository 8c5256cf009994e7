"""End to end through the CLI: what a user types, what lands on disk."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gru_lab.cli import app
from gru_lab.config import load_config
from tests.conftest import ROOT, assert_user_error, tiny_config


def test_train_writes_a_complete_run_record(runner, write_config, tmp_path):
    path = write_config(tiny_config())
    result = runner.invoke(app, ["train", str(path), "--set", "model.units=5", "--set", "output.evaluation=true"])
    assert result.exit_code == 0, result.output
    runs = sorted((tmp_path / "results" / "tiny").iterdir())
    assert len(runs) == 1 and not runs[0].name.startswith(".")
    run = runs[0]
    assert {p.name for p in run.iterdir()} == {"config.yaml", "metrics.json", "history.csv", "model.keras",
                                               "inputs.json", "learning_curves.png", "evaluation"}
    # synthetic sine windows: residuals and mse by length (one length), no series time axis to draw on
    assert {p.name for p in (run / "evaluation").iterdir()} == {"evaluation.json", "by_length.csv", "by_length.png",
                                                                "predictions.npz", "residuals.png"}
    assert (run / "learning_curves.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((run / "inputs.json").read_text())["window"] == 8  # what predict reads: windows of 8 values

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
    # One verdict line against every baseline the record holds, won or lost as its numbers say.
    baselines = [metrics["data"]["baseline_mse"]] + [b["value"] for b in metrics["classical_baseline"]["items"]]
    verdict = [line for line in result.stdout.splitlines() if line.startswith("verdict: ")]
    beats = all(metrics["test"]["mse"] < b for b in baselines)
    assert len(verdict) == 1 and verdict[0].startswith("verdict: GRU(5) beats every baseline" if beats else
                                                       "verdict: GRU(5) loses to "), verdict


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
def test_second_run_never_overwrites_the_first(runner, write_config, tmp_path):
    path = write_config(tiny_config())
    for _ in range(2):
        assert runner.invoke(app, ["train", str(path), "-q"]).exit_code == 0
    runs = sorted((tmp_path / "results" / "tiny").iterdir())
    assert len(runs) == 2
    assert all((r / "metrics.json").exists() for r in runs)


def _ctrl_c(monkeypatch, epoch: int | None = None, batch: int | None = None):
    """Make the CLI's training stop as Ctrl-C would, right after `epoch` or in `batch` of the first epoch."""
    import gru_lab.training.fit as training

    real_train = training.train

    def train_then_ctrl_c(cfg, data, epoch_hook=None, batch_hook=None, workdir=None, epoch_sink=None):
        def on_epoch(e, logs, seconds):
            if e == epoch:
                raise KeyboardInterrupt

        def on_batch(b, steps):
            if b == batch:
                raise KeyboardInterrupt

        return real_train(cfg, data, epoch_hook=on_epoch, batch_hook=on_batch, workdir=workdir,
                          epoch_sink=epoch_sink)

    monkeypatch.setattr(training, "train", train_then_ctrl_c)


def _runs(folder):
    """(finished run folders, unfinished ones) under results/<name>/."""
    items = sorted(folder.iterdir()) if folder.exists() else []
    return [p for p in items if not p.name.startswith(".")], [p for p in items if p.name.startswith(".partial-")]


def test_interrupted_train_keeps_finished_epochs_and_resume_finishes_it(runner, write_config, tmp_path, monkeypatch,
                                                                       cli_tiny_run):
    """Ctrl-C after epoch 1 of 2: a run folder with the finished epoch (exit 130) and an unfinished folder
    that `train --resume` continues; the resumed run's numbers equal an uninterrupted run's (cli_tiny_run, the
    same config trained once for the session)."""
    path = write_config(tiny_config())
    with monkeypatch.context() as patch:
        _ctrl_c(patch, epoch=1)
        result = runner.invoke(app, ["train", str(path), "-q"])
    assert result.exit_code == 130
    assert f"`gru-lab train {path} --resume` continues from epoch 2" in result.stderr
    (kept,), (unfinished,) = _runs(tmp_path / "results" / "tiny")
    metrics = json.loads((kept / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["epochs_run"] == 1 and (kept / "model.keras").is_file()

    assert f"in {kept};" in result.stderr and "writes the finished run there" in result.stderr
    assert unfinished.name.startswith(f".partial-{kept.name}-")  # one run id for the record and its state

    resumed = runner.invoke(app, ["train", str(path), "-q", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming run {kept.name} after epoch 1 of 2 (its record: {kept})" in resumed.stderr
    # One run, one folder: the finished run replaced its interrupted record, and nothing else is left.
    finished = _runs(tmp_path / "results" / "tiny")[0]
    assert finished == [kept] and not _runs(tmp_path / "results" / "tiny")[1]
    assert [p.name for p in kept.parent.iterdir()] == [kept.name]
    ours = json.loads((finished[0] / "metrics.json").read_text())
    assert ours["status"] == "finished" and ours["resumed"] == [{"from_epoch": 2}] and ours["epochs_run"] == 2

    reference = cli_tiny_run
    theirs = json.loads((reference / "metrics.json").read_text())
    from gru_lab.config import to_yaml

    a, b = (load_config(p / "config.yaml") for p in (finished[0], reference))
    assert to_yaml(a.model_copy(update={"output": b.output})) == to_yaml(b)  # the same config but output.dir
    assert ours["test"] == pytest.approx(theirs["test"], abs=1e-5)
    rows = [list(csv.DictReader((p / "history.csv").open())) for p in (finished[0], reference)]
    assert len(rows[0]) == len(rows[1]) == 2
    for a, b in zip(*rows):
        assert float(a["val_loss"]) == pytest.approx(float(b["val_loss"]), abs=1e-5)


def test_ctrl_c_before_the_first_epoch_keeps_nothing(runner, write_config, tmp_path, monkeypatch):
    """No untrained model passes as a result: nothing is written, not even a resumable folder."""
    path = write_config(tiny_config())
    _ctrl_c(monkeypatch, batch=2)
    result = runner.invoke(app, ["train", str(path), "-q"])
    assert result.exit_code == 130 and "before the first epoch finished: nothing kept" in result.stderr
    assert _runs(tmp_path / "results" / "tiny") == ([], [])


def test_a_diverged_run_is_recorded_as_diverged_and_exits_1(runner, tmp_path):
    result = runner.invoke(app, ["train", str(ROOT / "configs" / "sine_gru.yaml"), "-q", "--set",
                                 "train.learning_rate=10", "--set", "train.optimizer=sgd",
                                 "--set", f"output.dir={tmp_path / 'results'}"])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: diverged at epoch 1, batch ") and "loss became inf" in line, line
    assert "try a lower train.learning_rate or train.clipnorm" in line and "Traceback" not in result.output
    (run,), unfinished = _runs(tmp_path / "results" / "sine_gru")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["diverged"]["epoch"] == 1 and "test" not in metrics
    assert not (run / "model.keras").exists() and not unfinished
    assert "diverged" in result.stdout  # the summary says so too


@pytest.mark.parametrize("where", ["under-proc", "a-file", "read-only"])
def test_an_output_folder_that_cannot_be_written_is_refused_before_training(runner, write_config, tmp_path, where):
    if where == "read-only" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; the other cases cover the message")
    target = {"under-proc": "/proc/gru-lab-cannot-be-here", "a-file": str(tmp_path / "file"),
              "read-only": str(tmp_path / "ro" / "results")}[where]
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "ro").mkdir(mode=0o500)
    path = write_config(tiny_config(), results=False)
    result = runner.invoke(app, ["train", str(path), "--set", f"output.dir={target}"])
    line = assert_user_error(result, tmp_path / "results")
    assert "cannot create the run folder" in line and "set output.dir to a folder you can write" in line


def test_a_run_that_cannot_fit_is_refused_before_tensorflow_starts(tmp_path):
    """units=200000 (1.2e11 weights) used to allocate until TensorFlow's ResourceExhaustedError traceback."""
    code = ("import sys\nfrom gru_lab.cli import app\n"
            f"try:\n    app(['train', {str(ROOT / 'configs' / 'sine_gru.yaml')!r}, '--set', 'model.units=200000',"
            f" '--set', 'output.dir={tmp_path / 'results'}'])\nexcept SystemExit as e:\n    code = e.code\n"
            "sys.exit(10 + code if 'tensorflow' in sys.modules else code)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr  # 12: TensorFlow was imported
    (line,) = proc.stderr.strip().splitlines()
    assert re.fullmatch(r"error: this run cannot fit in memory: needs ~\d+(\.\d)? TB, "
                        r"[\d.]+ [kMGT]?B available \(.+\)\. Use a smaller model.*", line), line
    assert not (tmp_path / "results").exists()


def test_machine_limits_while_running_are_one_line_exit_1(runner, write_config, tmp_path, monkeypatch):
    import keras
    import tensorflow as tf

    import gru_lab.data

    path = write_config(tiny_config())
    with monkeypatch.context() as patch:  # out of memory in the middle of training: recorded as failed
        patch.setattr(keras.Model, "fit", lambda *_, **__: (_ for _ in ()).throw(
            tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[64,800000]")))
        result = runner.invoke(app, ["train", str(path), "-q"])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: out of memory: TensorFlow could not allocate (OOM when allocating") and \
        "recorded in" in line
    (run,), unfinished = _runs(tmp_path / "results" / "tiny")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["error"].startswith("out of memory") and not unfinished
    assert not (run / "model.keras").exists()

    shutil.rmtree(tmp_path / "results")
    monkeypatch.setattr(gru_lab.data, "load_dataset", lambda *_: (_ for _ in ()).throw(MemoryError()))
    result = runner.invoke(app, ["train", str(path), "-q"])
    (run,), unfinished = _runs(tmp_path / "results" / "tiny")
    assert result.exit_code == 1 and result.stderr.strip() == f"error: out of memory (recorded in {run})"
    assert json.loads((run / "metrics.json").read_text())["error"] == "out of memory" and not unfinished
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "metrics.json"]  # nothing half written


def test_disk_full_while_writing_the_record_keeps_the_epochs_for_resume(runner, write_config, tmp_path, monkeypatch):
    import errno

    import gru_lab.runs.folder as folder

    path = write_config(tiny_config())
    with monkeypatch.context() as patch:
        def disk_full(model, target):
            raise OSError(errno.ENOSPC, "No space left on device", str(target))

        patch.setattr(folder, "save_model_atomic", disk_full)
        result = runner.invoke(app, ["train", str(path), "-q"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: no space left on device writing ") and f"`gru-lab train {path} --resume` writes" \
        " the record" in line
    finished, (unfinished,) = _runs(tmp_path / "results" / "tiny")
    assert not finished and not list(unfinished.glob("*.keras")) and not list(unfinished.glob(".*.tmp*"))

    again = runner.invoke(app, ["train", str(path), "-q", "--resume"])
    assert again.exit_code == 0, again.output
    (run,), left = _runs(tmp_path / "results" / "tiny")
    metrics = json.loads((run / "metrics.json").read_text())
    # every epoch had finished: the resumed run trained nothing more, it evaluated and wrote the record
    assert metrics["resumed"] == [{"from_epoch": 3}] and metrics["epochs_run"] == 2 and not left
    assert (run / "model.keras").is_file()


def test_report_counts_unfinished_folders_and_clean_removes_them(runner, tmp_path):
    from gru_lab.runs.folder import RunFolder, config_hash, lock

    cfg = load_config(ROOT / "configs" / "sine_gru.yaml", [f"output.dir={tmp_path}"])
    other = load_config(ROOT / "configs" / "sine_gru.yaml", [f"output.dir={tmp_path}", "seed=1"])

    def unfinished(c, epochs: int) -> Path:
        with RunFolder(tmp_path, c.name, f"run-{epochs}", c) as f:
            (f.workdir / "resume").mkdir()
            (f.workdir / "resume" / "state.json").write_text(json.dumps({"epochs_done": epochs}))
            return f.workdir

    stale, resumable, empty = unfinished(cfg, 3), unfinished(other, 2), unfinished(other, 0)
    twin = tmp_path / cfg.name / "finished-twin"  # a finished run of cfg, written after `stale` last saved
    twin.mkdir()
    (twin / "metrics.json").write_text(json.dumps({"status": "finished", "config_hash": config_hash(cfg),
                                                   "task": "regression", "test": {"mse": 0.1}}))
    os.utime(stale / "resume" / "state.json", (1, 1))
    busy = RunFolder(tmp_path, cfg.name, "busy", other, partial=empty.parent / ".partial-busy")
    busy.partial.mkdir()
    assert lock(busy)  # as a training in another process holds it

    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (f"4 unfinished run folder(s) left under {tmp_path}: 1 can resume (`gru-lab train CONFIG --resume`, or the "
            "same compare/sweep again); 1 older than a finished run of the same config; 1 in use by a running "
            f"training; 1 with no finished epoch. Remove them with `gru-lab report {tmp_path} --clean`."
            ) in " ".join(result.stderr.split())
    cleaned = runner.invoke(app, ["report", str(tmp_path), "--clean"])
    assert cleaned.exit_code == 0 and "removed 3 unfinished run folder(s); 1 in use" in cleaned.stderr
    assert not stale.exists() and not resumable.exists() and not empty.exists() and busy.partial.exists()
    busy._unlock()


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
    loop = "compiled" if compiled.unavailable_without_building() is None else "fused"
    # the compiled loops train from the batch's token table too (input dropout included); the fused ones do not
    train = "compiled-table" if loop == "compiled" else "fused"
    result = runner.invoke(app, ["inspect", imdb, "--no-build"])
    assert result.exit_code == 0, result.output
    assert re.search(rf"gru_1 +│ {train} +│ {loop}-table +│", result.stdout), result.stdout  # padded columns
    (layer,) = _inspect_json(runner, imdb)["kernels"]["planned"]
    assert (layer["layer"], layer["train"], layer["inference"]) == ("gru_1", train, f"{loop}-table")
    (layer,) = _inspect_json(runner, imdb, "--set", "model.embedding_dropout=0.1")["kernels"]["planned"]
    if loop == "compiled":  # each step's embedded input dropped on its own: no table in training, and why
        assert layer["train"] == "compiled" and any("embedding_dropout" in why for why in layer["train_why"])
    (layer,) = _inspect_json(runner, imdb, "--set", "model.loops=keras")["kernels"]["planned"]
    assert (layer["train"], layer["inference"]) == ("keras-loop", "keras-loop")
    assert layer["train_why"] == ["model.loops is 'keras'"]
    (layer,) = _inspect_json(runner, imdb, "--set", "model.cell=lstm", "--set", "train.xla=on")["kernels"]["planned"]
    assert layer["train"] == "fused"
    # and, where the loops cannot be built, why not (the second reason)
    assert layer["train_why"][0] == "train.xla is 'on' (the compiled ops have no XLA kernel)"
    assert len(layer["train_why"]) == (1 if loop == "compiled" else 2), layer["train_why"]


def test_help_and_config_errors_answer_without_tensorflow():
    code = ("import sys\nfrom gru_lab.cli import app\n"
            "try:\n    app(['train', 'no-such.yaml'])\nexcept SystemExit as e:\n    code = e.code\n"
            "sys.exit(10 + code if 'tensorflow' in sys.modules else code)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr  # 12: TensorFlow was imported
    assert proc.stderr.strip() == "error: no-such.yaml: config file not found."

    proc = subprocess.run([sys.executable, "-m", "gru_lab.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "train" in proc.stdout


@pytest.mark.slow  # a fresh process or a real-data export: the slow tier keeps make test within 3 minutes
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


@pytest.mark.parametrize("metrics,reason", [
    ({"status": "interrupted", "epochs_run": 0}, "'interrupted', not 'finished' (interrupted before its first epoch "
                                                 "finished: there is no trained model)"),
    ({"status": "diverged", "epochs_run": 2, "diverged": {"epoch": 3, "batch": 7, "quantity": "loss", "value": "nan"}},
     "'diverged', not 'finished' (diverged at epoch 3, batch 7: loss became nan"),
    ({"status": "failed", "epochs_run": 1, "error": "out of memory"}, "'failed', not 'finished' (out of memory)"),
], ids=["interrupted-at-once", "diverged", "failed"])
def test_predict_refuses_a_run_without_a_trained_model(runner, tmp_path, metrics, reason):
    """Such runs keep no model.keras (records written before this version kept an untrained one)."""
    from gru_lab.config import to_yaml

    run = tmp_path / "run"
    run.mkdir()
    cfg = load_config(ROOT / "configs" / "imdb_gru.yaml")
    (run / "config.yaml").write_text(to_yaml(cfg))
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "vocabulary.json").write_text(json.dumps({"word_index": {}, "num_words": 10, "maxlen": 5,
                                                     "padding": "pre", "truncating": "pre"}))
    result = runner.invoke(app, ["predict", str(run), "a fine film"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert f"the run's status is {reason}" in line and "predict needs a finished run's model" in line, line


def test_inspect_prints_the_memory_estimate(runner):
    from gru_lab.data import spec_for
    from gru_lab.models.memory import estimate, human_bytes

    path = str(ROOT / "configs" / "imdb_gru.yaml")
    expected = estimate(load_config(path), spec_for(load_config(path).data))
    memory = _inspect_json(runner, path)["memory"]
    assert memory["estimate_bytes"] == expected.record() and memory["estimate_bytes"]["total"] == expected.total
    result = runner.invoke(app, ["inspect", path, "--no-build"])
    assert "Memory estimate of a training run" in result.stdout
    assert f"total                │ {human_bytes(expected.total)}" in result.stdout.replace("┃", "│")
    huge = runner.invoke(app, ["inspect", path, "--set", "model.units=200000"])  # not built: it would not fit
    assert huge.exit_code == 0 and "not building the Keras model" in huge.stdout


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
def test_a_run_that_may_not_fit_gets_a_warning_and_runs(runner, write_config, tmp_path, monkeypatch):
    import gru_lab.training.memory as memory
    from gru_lab.data import spec_for
    from gru_lab.models.memory import estimate

    path = write_config(tiny_config())
    needed = estimate(load_config(path), spec_for(load_config(path).data)).total
    monkeypatch.setattr(memory, "available_memory", lambda: (int(needed * 0.75), "a test's cgroup"))
    result = runner.invoke(app, ["train", str(path), "-q"])
    assert result.exit_code == 0, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("warning: this run may not fit in memory: needs ~") and "(a test's cgroup)" in line


def test_inspect_refuses_a_bad_activation_in_one_line(runner, write_config, tmp_path):
    path = write_config({**tiny_config(), "model": {"activation": "rleu"}})
    line = assert_user_error(runner.invoke(app, ["inspect", str(path)]), tmp_path / "results")
    assert "'model.activation' must be one of" in line and "Did you mean 'relu'?" in line


def test_an_unfinished_folder_older_than_a_finished_run_of_its_config_is_removed(runner, write_config, tmp_path):
    """Killed, then trained again from the start instead of resumed: once that run is written, the killed one's
    folder can only repeat it, so it goes (one in use by a training would stay)."""
    from gru_lab.runs.folder import RunFolder, unfinished_folders

    path = write_config(tiny_config())
    cfg = load_config(path)
    with RunFolder(cfg.output.dir, cfg.name, "killed", cfg) as killed:
        (killed.workdir / "resume").mkdir()
        (killed.workdir / "resume" / "state.json").write_text(json.dumps({"epochs_done": 1}))
    assert [u.epochs_done for u in unfinished_folders(tmp_path / "results" / "tiny")] == [1]
    result = runner.invoke(app, ["train", str(path), "-q"])
    assert result.exit_code == 0, result.output
    assert not killed.workdir.exists() and _runs(tmp_path / "results" / "tiny")[1] == []
