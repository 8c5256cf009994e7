"""tune: a tiny pruned study, best.yaml reproducing its trial, invalid trials, two searches sharing one study,
a trial left by a killed command taken over (not duplicated), and a SIGKILL mid-trial (slow tier)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from gru_lab.cli import app
from gru_lab.config import TrainConfig, load_config
from gru_lab.errors import TuneError
from gru_lab.experiments.tune import execute_tune, history_rows, open_study, plan_tune
from gru_lab.files import atomic_write_json, atomic_write_text, rows_to_csv
from tests.conftest import ROOT, assert_user_error

optuna = pytest.importorskip("optuna", reason="the tune extra: pip install 'gru-lab[tune]'")

FAST = {"xla": "off"} if "xla" in TrainConfig.model_fields else {}


def tiny(results: Path, epochs: int = 3, **tune) -> dict:
    return {
        "name": "tn", "seed": 3,
        "data": {"name": "sine", "window": 6, "n_train": 48, "n_val": 16, "n_test": 8},
        "model": {"cell": "gru", "units": 3},
        "train": {"epochs": epochs, "batch_size": 16, **FAST},
        # evaluation/ costs a second or more a run, and no tune test reads it (tests/inference does)
        "output": {"dir": str(results), "save_model": False, "evaluation": False},
        "baseline": "none",
        "tune": {"space": {"model.units": {"low": 2, "high": 8}, "train.learning_rate": [0.001, 0.01, 0.05]},
                 "trials": 4, **tune},
    }


def write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "tn.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class FakeRunner:
    """A runner that trains nothing: each run's val_loss curve is a formula of its units and learning rate, written
    as a finished run folder; the epochs it 'trains' and the runs it is asked for are counted."""

    isolation = "inline"

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.calls: list[str] = []
        self.epochs = 0
        self.lock = threading.Lock()

    @staticmethod
    def curve(cfg) -> list[float]:
        units, lr, seed = cfg.model.units, cfg.train.learning_rate, cfg.train_seed
        return [abs(units - 6) / 10 + abs(lr - 0.01) + 1.0 / epoch + seed / 1000
                for epoch in range(1, cfg.train.epochs + 1)]

    def __call__(self, run, on_epoch=None) -> Path:
        with self.lock:
            self.calls.append(run.run_id)
        rows = []
        for epoch, value in enumerate(self.curve(run.cfg), start=1):
            time.sleep(self.delay)
            rows.append({"epoch": epoch, "loss": value, "val_loss": value})
            with self.lock:
                self.epochs += 1
            if on_epoch:
                on_epoch({"epoch": epoch, "epochs": run.cfg.train.epochs, "seconds": 0.0,
                          "logs": {"loss": value, "val_loss": value}})
        folder = Path(run.cfg.output.dir) / run.cfg.name / run.run_id
        atomic_write_text(folder / "history.csv", rows_to_csv(rows))
        atomic_write_json(folder / "metrics.json", {"status": "finished", "test": {"mse": rows[-1]["val_loss"]}})
        return folder


def test_a_tiny_pruned_study_and_its_files(tmp_path):
    """halving prunes deterministically here: a trial worse than the first at epoch 1 stops there."""
    plan = plan_tune(write(tmp_path, tiny(tmp_path / "results", epochs=4, pruner="halving", trials=6)))
    runner = FakeRunner()
    result = execute_tune(plan, runner=runner)
    states = [t.state for t in result.trials]
    assert len(states) == 6 and "pruned" in states and "finished" in states
    for t in result.trials:
        curve = FakeRunner.curve(load_config(plan.source, [f"{k}={v}" for k, v in t.params.items()]))
        if t.state == "pruned":
            assert t.epochs < 4 and t.value is None and t.message.startswith("pruned after epoch")
        else:
            assert t.epochs == 4 and t.value == pytest.approx(min(curve)) and t.best_epoch == 4
    # the pruned trials trained fewer epochs in all, and the runner saw exactly the epochs the table counts
    assert runner.epochs == sum(t.epochs for t in result.trials) + 4  # + the base config's run
    best = result.best
    assert best.value == min(t.value for t in result.trials if t.state == "finished")

    from gru_lab.report.tune import write_tune

    summary = write_tune(result)
    folder = plan.folder
    for name in ("tune.csv", "tune.md", "tune.json", "best.yaml", "history.png", "importances.png",
                 "slice_model_units.png", "slice_train_learning_rate.png"):
        assert (folder / name).is_file(), name
    record = json.loads((folder / "tune.json").read_text())
    assert record["best_trial"] == best.number and record["counts"]["pruned"] == states.count("pruned")
    assert summary.verdict.status in ("holds", "does not hold")
    table = summary.table
    assert list(table[table.kind == "base config"].val_loss) == [pytest.approx(result.base_value())]
    # the test metric is shown for the best trial (and the base config) only
    shown = table[table.kind == "trial"].test_mse.notna()
    assert list(table[table.kind == "trial"].trial[shown]) == [best.number]
    cfg = load_config(folder / "best.yaml")
    assert cfg.model.units == best.params["model.units"] and cfg.train.seed == 3

    # The same command again: the study is done, nothing is trained again.
    again = FakeRunner()
    result = execute_tune(plan_tune(plan.source), runner=again)
    assert again.calls == [] and len(result.trials) == 6


def test_invalid_points_are_recorded_and_the_search_goes_on(tmp_path):
    """model.recurrent_activation on simple_rnn is an impossible combination: an invalid trial with the rule's
    message, never a traceback."""
    config = tiny(tmp_path / "results", epochs=2, sampler="grid", pruner="none")
    config["tune"]["space"] = {"model.cell": ["rnn", "gru"], "model.recurrent_activation": ["hard_sigmoid"]}
    config["tune"].pop("trials")
    plan = plan_tune(write(tmp_path, config))
    assert plan.trials == 2
    result = execute_tune(plan, runner=FakeRunner())
    by_cell = {t.params["model.cell"]: t for t in result.trials}
    assert by_cell["rnn"].state == "invalid" and "simple_rnn has none" in by_cell["rnn"].message
    assert by_cell["gru"].state == "finished"


def test_two_searches_share_one_study(tmp_path):
    """Two commands on one study at once (here two threads, each with its own study object and 2 workers):
    together they run exactly the trials asked for, each once."""
    plan = plan_tune(write(tmp_path, tiny(tmp_path / "results", trials=6, pruner="none")), workers=2)
    runner = FakeRunner(delay=0.02)
    results = []
    threads = [threading.Thread(target=lambda: results.append(execute_tune(plan_tune(plan.source, workers=2),
                                                                           runner=runner))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    trials = results[-1].trials
    assert len(trials) == 6 and all(t.state == "finished" for t in trials)
    trial_runs = [c for c in runner.calls if c.startswith("t")]
    assert sorted(trial_runs) == sorted({r for t in trials for r in t.run_ids})  # each trial's run trained once


def test_a_study_made_by_another_search_is_one_line(runner, tmp_path):
    path = write(tmp_path, tiny(tmp_path / "results", trials=1, pruner="none"))
    execute_tune(plan_tune(path), runner=FakeRunner())
    with pytest.raises(TuneError, match="made by another search"):
        plan = plan_tune(path, params=["model.units=2..16"])
        open_study(plan)


def test_a_trial_left_running_by_a_killed_command_is_taken_over(tmp_path):
    """A RUNNING trial whose owner process is gone is finished by the next command under its own number."""
    plan = plan_tune(write(tmp_path, tiny(tmp_path / "results", trials=2, pruner="none")))
    study = open_study(plan)
    trial = study.ask()
    trial.suggest_int("model.units", 2, 8)
    trial.suggest_categorical("train.learning_rate", [0.001, 0.01, 0.05])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    trial.set_user_attr("owner", {"host": os.uname().nodename, "pid": int(dead.stdout), "started": 0.0})
    trial.set_user_attr("epochs", 1)
    runner = FakeRunner()
    result = execute_tune(plan, runner=runner)
    assert len(result.trials) == 2
    first = result.trials[0]
    assert first.number == trial.number and first.state == "finished" and first.resumed == 1
    assert first.epochs == 1 + 3  # the epoch its killed command trained, and the ones this one did


def test_seeds_average_and_the_timeout_stops_asking(tmp_path):
    plan = plan_tune(write(tmp_path, tiny(tmp_path / "results", trials=2, pruner="none")), seeds=2)
    result = execute_tune(plan, runner=FakeRunner())
    for t in result.trials:
        cfg = load_config(plan.source, [f"{k}={v}" for k, v in t.params.items()])
        seed_1 = load_config(plan.source, [f"{k}={v}" for k, v in t.params.items()] + ["train.seed=4"])
        assert len(t.run_ids) == 2
        assert t.value == pytest.approx((min(FakeRunner.curve(cfg)) + min(FakeRunner.curve(seed_1))) / 2)
    timed = plan_tune(plan.source, trials=50, timeout="1s", name="timed")
    assert timed.timeout_s == 1
    result = execute_tune(timed, runner=FakeRunner(delay=0.2))  # a trial takes 0.6 s: one or two start in 1 s
    assert 1 <= len(result.trials) <= 3


def test_the_command_prints_a_line_per_trial_and_its_table(runner, tmp_path, monkeypatch):
    """Through the CLI (not a terminal): one line per trial with the counts and the best so far, then the table;
    the runs go through a fake worker here."""
    import gru_lab.experiments.tune as tune

    fake = FakeRunner()
    monkeypatch.setattr(tune, "run_in_subprocess", lambda run, on_epoch=None, **_: fake(run, on_epoch))
    path = write(tmp_path, tiny(tmp_path / "results", trials=3, pruner="none"))
    result = runner.invoke(app, ["tune", str(path), "--param", "model.units=[4, 6]"])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("trial ")]
    assert len(lines) == 3 and all("finished" in ln for ln in lines) and "best val_loss" in lines[-1]
    assert "beats the base config on validation" in result.stdout
    assert (tmp_path / "results" / "tn" / "best.yaml").is_file()


def test_ctrl_c_keeps_the_finished_trials_and_leaves_the_cut_one_to_the_next_command(tmp_path):
    plan = plan_tune(write(tmp_path, tiny(tmp_path / "results", trials=3, pruner="none")))
    fake = FakeRunner()

    def runner(run, on_epoch=None):
        if run.run_id.startswith("t0001"):
            raise KeyboardInterrupt  # what the runner raises when Ctrl-C stopped its worker
        return fake(run, on_epoch)

    result = execute_tune(plan, runner=runner)
    assert result.interrupted and [t.state for t in result.trials] == ["finished", "running"]
    from gru_lab.report.tune import write_tune

    assert write_tune(result).counts == {"finished": 1, "pruned": 0, "failed": 0, "invalid": 0, "running": 1}


def test_without_optuna_tune_says_how_to_install_it(runner, tmp_path, monkeypatch):
    import gru_lab.experiments.tune as tune

    monkeypatch.setattr(tune, "optuna_available", lambda: False)
    line = assert_user_error(runner.invoke(app, ["tune", str(write(tmp_path, tiny(tmp_path / "results")))]),
                             tmp_path / "results")
    assert "pip install 'gru-lab[tune]'" in line


def test_a_real_pruned_study_and_best_yaml_reproducing_its_trial_exactly(tmp_path):
    """Real training, in this process: a trial pruned inside Keras's fit, and `gru-lab train best.yaml` (its
    library call) giving the best trial's validation metric again, to the last digit."""
    from gru_lab.experiments.executor import run_inline, train_and_save
    from gru_lab.report.tune import write_tune

    # The grid (seed 3) asks for 0.05 first; 1e-6 then trails it after epoch 1 and successive halving stops it.
    config = tiny(tmp_path / "results", epochs=2, sampler="grid", pruner="halving")
    config["tune"]["space"] = {"train.learning_rate": [0.000001, 0.05]}
    config["data"]["n_train"] = 32
    plan = plan_tune(write(tmp_path, config))
    result = execute_tune(plan, runner=run_inline)
    summary = write_tune(result)
    best = summary.best
    assert [(t.params["train.learning_rate"], t.state, t.epochs) for t in result.trials] == [
        (0.05, "finished", 2), (0.000001, "pruned", 1)]  # stopped inside fit after its first epoch
    assert not list(plan.folder.glob(".partial-*"))  # and its unfinished folder removed
    cfg = load_config(plan.folder / "best.yaml", [f"output.dir={tmp_path / 'again'}"])
    folder = train_and_save(cfg, "again")
    rows = history_rows(folder)
    assert min(r["val_loss"] for r in rows) == best.value


@pytest.mark.slow
def test_tune_logs_to_mlflow_one_parent_with_its_trials_nested_and_tagged(runner, tmp_path, monkeypatch):
    """--mlflow: one parent run for the study (its space, sampler and pruner as parameters, tune.md as an
    artifact); the finished trial's run and the base config's run nested under it, the trial's tagged with its
    state; the same command again continues that parent (still one). Slow tier: real training, in this process."""
    mlflow = pytest.importorskip("mlflow", reason="the mlflow extra: pip install 'gru-lab[mlflow]'")
    import gru_lab.experiments.tune as tune
    from gru_lab.experiments.executor import run_inline

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(tune, "run_in_subprocess", lambda run, on_epoch=None, **_: run_inline(run, on_epoch))
    config = tiny(tmp_path / "results", epochs=2, sampler="grid", pruner="halving")
    config["tune"]["space"] = {"train.learning_rate": [0.000001, 0.05]}
    config["data"]["n_train"] = 32
    path = write(tmp_path, config)
    for _ in range(2):
        result = runner.invoke(app, ["tune", str(path), "--mlflow", "true", "-q"])
        assert result.exit_code == 0, result.output
    uri = f"sqlite:///{(tmp_path / 'results' / 'mlflow.db').resolve()}"
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("tn").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("gru_lab.kind") == "tune"]
    assert parent.data.params["plan.pruner"] == "halving" and parent.data.params["plan.sampler"] == "grid"
    assert "train.learning_rate" in parent.data.params["plan.space"]
    assert "tune.md" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    tagged = {r.data.tags["gru_lab.run_id"]: r.data.tags["gru_lab.trial_state"] for r in children
              if "gru_lab.trial_state" in r.data.tags}
    record = json.loads((tmp_path / "results" / "tn" / "tune.json").read_text())
    states = sorted(r["state"] for r in record["table"] if r.get("kind") == "trial")
    assert states == ["finished", "pruned"]  # lr 1e-6 is pruned after epoch 1
    # every trial's run carries its state, the pruned one's too, although its folder is removed
    trial_runs = {r.data.tags["gru_lab.run_id"] for r in children if r.data.tags["gru_lab.run_id"].startswith("t")}
    assert sorted(tagged.values()) == states and set(tagged) == trial_runs
    (pruned,) = [run_id for run_id, state in tagged.items() if state == "pruned"]
    assert not list((tmp_path / "results" / "tn").glob(f"*{pruned}*"))
    finished = [r for r in record["table"] if r.get("kind") == "trial" and r.get("state") == "finished"]
    base = [r for r in children if r.data.tags.get("gru_lab.trial_state") is None
            and r.data.params.get("train.learning_rate") == str(config["train"].get("learning_rate", 0.001))]
    assert len(finished) == 1 and len(base) == 1


# ----------------------------------------------------------------------------- slow tier


def _trial_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("t*") if (p / "metrics.json").is_file())


@pytest.mark.slow
def test_sigkill_mid_trial_then_rerun_finishes_the_same_trials_none_from_scratch(tmp_path):
    """The CLI in a process, killed with SIGKILL while a trial trains; the same command again finishes with the
    trials an uninterrupted search has, and the killed trial continues from its last finished epoch."""
    config = tiny(tmp_path / "results", epochs=8, trials=3, pruner="none")
    config["data"]["n_train"] = 4000  # slow enough epochs to kill one in the middle
    path = write(tmp_path, config)
    cmd = [sys.executable, "-m", "gru_lab.cli", "tune", str(path), "--quiet"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, "-c", "from gru_lab.cli import run; run()", *cmd[3:]], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = tmp_path / "results" / "tn"
    deadline = time.monotonic() + 300
    # wait for the first trial's second epoch to be saved
    while time.monotonic() < deadline:
        states = list(folder.glob(".partial-t0000-*/resume/state.json"))
        if states and json.loads(states[0].read_text())["epochs_done"] >= 2:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the first trial never saved two epochs")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = subprocess.run([sys.executable, "-c", "from gru_lab.cli import run; run()", *cmd[3:]], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    record = json.loads((folder / "tune.json").read_text())
    assert record["counts"]["finished"] == 3 and len([r for r in record["table"] if r["kind"] == "trial"]) == 3
    killed = next(p for p in _trial_folders(folder) if p.name.startswith("t0000-"))
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["resumed"][0]["from_epoch"] >= 3  # continued, not trained again from the first epoch
    assert len(_trial_folders(folder)) == 3 and not list(folder.glob(".partial-*"))


@pytest.mark.slow
def test_tune_on_ray_runs_its_trials_as_tasks(runner, tmp_path):
    """--backend ray: each trial a Ray task on a local instance, against the same study; no pruning there."""
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'gru-lab[ray]' to run the Ray tests")
    path = write(tmp_path, tiny(tmp_path / "results", epochs=2, trials=2, pruner="hyperband"))
    result = runner.invoke(app, ["tune", str(path), "--backend", "ray", "--num-cpus", "1", "-q"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "results" / "tn" / "tune.json").read_text())
    assert record["backend"]["name"] == "ray" and record["counts"]["finished"] == 2
    assert len(_trial_folders(tmp_path / "results" / "tn")) == 2
