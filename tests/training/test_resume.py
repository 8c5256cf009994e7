"""Resume: a run stopped after epoch k and continued from its saved state gives the numbers of a run that was
never stopped (history and test metrics to 1e-5; here they are equal to the last bit), early stopping included.
The slow tests kill real processes with SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from gru_lab.config import config_from_raw
from gru_lab.data import load_dataset
from gru_lab.training.fit import train
from gru_lab.training.resume import STATE_DIR, load_state
from tests.conftest import ROOT, short_texts, tiny_config

LOGGED = ("loss", "mae", "val_loss", "val_mae")


def assert_same_run(a, b) -> None:
    """Two results with the same numbers: every logged value of every epoch and every test metric, to 1e-5."""
    assert [r["epoch"] for r in a.history] == [r["epoch"] for r in b.history]
    for ra, rb in zip(a.history, b.history):
        assert {k: rb[k] for k in LOGGED} == pytest.approx({k: ra[k] for k in LOGGED}, abs=1e-5, rel=1e-5)
    assert b.metrics["test"] == pytest.approx(a.metrics["test"], abs=1e-5, rel=1e-5)
    assert (b.metrics["best_epoch"], b.metrics["evaluated_epoch"]) == (a.metrics["best_epoch"],
                                                                       a.metrics["evaluated_epoch"])


def stop_after(k: int):
    def hook(epoch, logs, seconds):
        if epoch == k:
            raise KeyboardInterrupt  # Ctrl-C right after epoch k finished

    return hook


def test_a_stopped_run_resumed_from_its_state_equals_an_uninterrupted_run(tmp_path):
    """Dropout (its masks come from seed generators), early stopping with restored best weights, a validation
    set and the per-epoch reshuffle: every piece of state a continuation needs. The uninterrupted run stops
    early, so the resumed one must also carry early stopping's patience and best weights across."""
    raw = tiny_config(dropout=0.2)
    raw["train"] = {"epochs": 12, "batch_size": 16, "learning_rate": 0.03,
                    "early_stopping": {"patience": 2, "min_delta": 0.005, "restore_best_weights": True}}
    cfg = config_from_raw(raw, "test")
    data = load_dataset(cfg.data, cfg.seed)
    whole = train(cfg, data)
    assert whole.status == "finished" and 3 < whole.metrics["epochs_run"] < 12  # early stopping did stop it

    stopped = train(cfg, data, epoch_hook=stop_after(3), workdir=tmp_path)
    assert stopped.status == "interrupted" and len(stopped.history) == 3
    assert load_state(tmp_path).epochs_done == 3
    resumed = train(cfg, data, workdir=tmp_path)
    assert resumed.status == "finished" and resumed.metrics["resumed"] == [{"from_epoch": 4}]
    assert_same_run(whole, resumed)
    # the state holds the last epoch's variables and early stopping's best weights, nothing older
    assert sorted(p.name for p in (tmp_path / STATE_DIR).iterdir()) == sorted(
        ["state.json", f"variables-{whole.metrics['epochs_run']}.npz", f"best-{whole.metrics['best_epoch']}.npz"])


def text_config(tmp_path, epochs: int = 4, dropout: float = 0.2):
    """Issue 19's resumed text run: short texts, masked padding, batches bucketed by length and trimmed."""
    raw = short_texts(tmp_path)
    raw["model"]["dropout"] = dropout
    raw["train"]["epochs"] = epochs
    return config_from_raw(raw, "test")


@pytest.fixture(scope="module")
def text_stopped(tmp_path_factory):
    """text_config's run trained whole, and stopped after epoch 2 in a folder that each test copies before it
    resumes from it: (cfg, data, the whole run, that folder)."""
    tmp = tmp_path_factory.mktemp("text-resume")
    cfg = text_config(tmp)
    data = load_dataset(cfg.data, cfg.seed)
    whole = train(cfg, data)
    stopped = train(cfg, data, epoch_hook=stop_after(2), workdir=tmp / "stopped")
    assert stopped.status == "interrupted" and load_state(tmp / "stopped").epochs_done == 2
    return cfg, data, whole, tmp / "stopped"


def copy_of(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "run")


@pytest.mark.parametrize("make_text", [pytest.param(False, marks=pytest.mark.slow), True],
                         ids=["sine", "masked-text-bucketed"])
def test_a_resume_that_replays_epoch_1s_batches_would_differ(tmp_path, monkeypatch, request, make_text):
    """The check above can fail: a continuation that trains on epoch 1's batches instead of epoch k+1's
    diverges (shown by handing the resumed run a pipeline that ignores the epoch it starts at)."""
    from gru_lab.training import pipeline

    if make_text:  # stopped after epoch 2: the resumed run's epoch 3 gets epoch 1's batches
        cfg, data, whole, stopped = request.getfixturevalue("text_stopped")
        workdir, k = copy_of(stopped, tmp_path), 2
    else:
        cfg = config_from_raw({**tiny_config(), "train": {"epochs": 2, "batch_size": 16}}, "test")
        data = load_dataset(cfg.data, cfg.seed)
        whole = train(cfg, data)
        workdir, k = tmp_path / "run", 1
        train(cfg, data, epoch_hook=stop_after(k), workdir=workdir)
    real = pipeline.train_dataset

    def from_epoch_1(*args, first_epoch=0, **kwargs):
        return real(*args, **kwargs)  # first_epoch left at its default, 0

    monkeypatch.setattr(pipeline, "train_dataset", from_epoch_1)
    resumed = train(cfg, data, workdir=workdir)
    assert [r["loss"] for r in resumed.history[:k]] == [r["loss"] for r in whole.history[:k]]
    assert resumed.history[k]["loss"] != pytest.approx(whole.history[k]["loss"], abs=1e-7)


def test_a_resumed_text_run_with_dropout_equals_the_uninterrupted_one(tmp_path, text_stopped):
    """Issue 19: a masked text run with input dropout, stopped after epoch 2 and resumed, drifted from epoch 3
    on (the bucketed batches of a resumed run were not those of the uninterrupted one)."""
    cfg, data, whole, stopped = text_stopped
    assert whole.metrics["execution"]["batches"] == {"trim_padding": "post", "by_length": True}
    resumed = train(cfg, data, workdir=copy_of(stopped, tmp_path))
    assert resumed.metrics["resumed"] == [{"from_epoch": 3}]
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in whole.history]  # to the last bit
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in whole.history]
    assert resumed.metrics["test"] == whole.metrics["test"]


def test_an_interrupted_run_keeps_the_model_of_its_last_finished_epoch(tmp_path, tiny_trained):
    cfg = config_from_raw({**tiny_config(), "train": {"epochs": 3, "batch_size": 16}}, "test")
    data = load_dataset(cfg.data, cfg.seed)

    def ctrl_c_in_epoch_3(batch, steps):
        if len(calls) == 2 and batch == 2:  # halfway through epoch 3: its first batches changed the weights
            raise KeyboardInterrupt

    calls: list[int] = []
    stopped = train(cfg, data, epoch_hook=lambda e, *_: calls.append(e), batch_hook=ctrl_c_in_epoch_3,
                    workdir=tmp_path)
    two = tiny_trained  # the same config with epochs: 2
    assert two.metrics["epochs_run"] == 2
    assert stopped.status == "interrupted" and len(stopped.history) == 2
    for ours, theirs in zip(stopped.model.get_weights(), two.model.get_weights()):
        assert ours.tolist() == theirs.tolist()

    nothing = train(cfg, data, batch_hook=lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert nothing.status == "interrupted" and nothing.history == [] and nothing.model is None


# ----------------------------------------------------------------------------- killed processes (slow)


def _train_cmd(path, *extra):
    return [sys.executable, "-c", "from gru_lab.cli import run; run()", "train", str(path), "-q", *extra]


def _wait_for_state(results, epochs: int, proc, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for state in results.glob(f"*/.partial-*/{STATE_DIR}/state.json"):
            try:
                if json.loads(state.read_text())["epochs_done"] >= epochs:
                    return
            except (OSError, ValueError, KeyError):
                pass
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    raise AssertionError("no saved epoch in time")


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "simple_rnn"], ids=["gru-compiled-loops", "rnn-xla"])
def test_train_killed_mid_run_resumes_to_the_uninterrupted_numbers(write_config, tmp_path, cell):
    """SIGKILL `gru-lab train` after its third epoch was saved; `train --resume` finishes it; the record's
    history and test metrics equal an uninterrupted run's. simple_rnn trains under XLA (train.xla auto)."""
    raw = {**tiny_config(cell=cell, dropout=0.1), "train": {"epochs": 40, "batch_size": 16}}
    raw["data"]["n_train"] = 4096
    path = write_config(raw)
    results = tmp_path / "results"
    proc = subprocess.Popen(_train_cmd(path), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_state(results, 3, proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not [p for p in (results / "tiny").iterdir() if not p.name.startswith(".")]  # nothing finished
    done = subprocess.run(_train_cmd(path, "--resume"), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    (resumed,) = [p for p in (results / "tiny").iterdir() if not p.name.startswith(".")]
    assert not list((results / "tiny").glob(".partial-*"))  # the unfinished folder became the run folder

    whole = subprocess.run(_train_cmd(path, "--set", f"output.dir={tmp_path / 'whole'}"), cwd=ROOT,
                           capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    (reference,) = (tmp_path / "whole" / "tiny").iterdir()
    ours, theirs = (json.loads((p / "metrics.json").read_text()) for p in (resumed, reference))
    assert ours["resumed"][0]["from_epoch"] >= 4 and ours["epochs_run"] == theirs["epochs_run"] == 40
    assert ours["test"] == pytest.approx(theirs["test"], abs=1e-5, rel=1e-5)
    ours_rows, their_rows = (list(csv.DictReader((p / "history.csv").open())) for p in (resumed, reference))
    assert len(ours_rows) == len(their_rows) == 40
    for a, b in zip(ours_rows, their_rows):
        for key in ("loss", "val_loss"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-5, rel=1e-5)


@pytest.mark.slow
def test_ctrl_c_on_a_masked_text_run_with_dropout_and_the_printed_resume_give_the_uninterrupted_run(
        write_config, tmp_path):
    """Issue 19 as reported: a text run with model.dropout, SIGINT after an epoch was saved, continued with the
    printed --resume command: every epoch equals the uninterrupted run's exactly, and the finished record is in
    the folder the interruption named, with nothing else left beside it."""
    raw = short_texts(tmp_path, rows=400)
    raw["model"]["dropout"] = 0.2
    raw["train"]["epochs"] = 30
    path = write_config(raw)
    results = tmp_path / "results"
    proc = subprocess.Popen(_train_cmd(path), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_state(results, 3, proc)
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    (kept,) = [p for p in (results / "short").iterdir() if not p.name.startswith(".")]
    assert "kept" in stderr and str(kept) in stderr and "--resume` continues from epoch" in stderr
    done = subprocess.run(_train_cmd(path, "--resume"), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (results / "short").iterdir()] == [kept.name]  # one run, one folder

    whole = subprocess.run(_train_cmd(path, "--set", f"output.dir={tmp_path / 'whole'}"), cwd=ROOT,
                           capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    (reference,) = (tmp_path / "whole" / "short").iterdir()
    ours, theirs = (json.loads((p / "metrics.json").read_text()) for p in (kept, reference))
    assert ours["status"] == "finished" and ours["resumed"][0]["from_epoch"] >= 4
    assert ours["test"] == theirs["test"]
    ours_rows, their_rows = (list(csv.DictReader((p / "history.csv").open())) for p in (kept, reference))
    assert [(r["loss"], r["val_loss"]) for r in ours_rows] == [(r["loss"], r["val_loss"]) for r in their_rows]
