"""sweep: grids validated before anything starts, local worker processes and Ray giving the same table,
a sweep killed mid-way and re-run, a killed worker that loses nothing, the Ctrl-C pool, and
train.distribute: mirrored on two logical CPUs."""

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
from gru_lab.config import TrainConfig, config_from_raw
from gru_lab.errors import GruLabError
from gru_lab.experiments import executor
from gru_lab.experiments.executor import RunFailed, execute_runs
from gru_lab.experiments.sweep import execute_sweep, parse_axis, plan_sweep
from gru_lab.runs.folder import config_hash
from tests.conftest import ROOT, assert_user_error

# XLA compilation, where this version has it, costs more than these tiny runs themselves.
FAST = {"xla": "off"} if "xla" in TrainConfig.model_fields else {}
GRID = ["--grid", "model.cell=gru,lstm", "--grid", "model.units=2,3", "--seeds", "2"]  # 2 x 2 x 2 seeds


def tiny(results: Path, **extra) -> dict:
    """A sweep base that trains in about a second a run: 32 short sine windows, 1 epoch."""
    return {
        "name": "sw", "seed": 3,
        "data": {"name": "sine", "window": 6, "n_train": 32, "n_val": 8, "n_test": 8},
        "model": {"cell": "gru", "units": 3},
        "train": {"epochs": 1, "batch_size": 16, **FAST},
        # evaluation/ costs a second or more a run, and no sweep test reads it (tests/inference does)
        "output": {"dir": str(results), "save_model": False, "evaluation": False},
        **extra,
    }


def write(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def finished_runs(folder: Path) -> set[str]:
    found = set()
    for metrics in folder.glob("*/metrics.json"):
        if metrics.parent.name.startswith("."):  # an unfinished folder: metrics.json is written just before its rename
            continue
        try:
            if json.loads(metrics.read_text()).get("status") == "finished":
                found.add(metrics.parent.name)
        except ValueError:  # being written
            pass
    return found


def stamps(folder: Path) -> dict:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in folder.iterdir()}


# ----------------------------------------------------------------------------- planning and validation


@pytest.mark.parametrize("text,key,values", [
    ("model.units=32,64", "model.units", [32, 64]),
    ("model.cell=gru, lstm", "model.cell", ["gru", "lstm"]),
    ("train.learning_rate=1e-3,3e-3,0.01", "train.learning_rate", [0.001, 0.003, 0.01]),
    ("model.units=[64,32],[32]", "model.units", [[64, 32], [32]]),
    ("model.conv={filters: 8},null", "model.conv", [{"filters": 8}, None]),
    ("model.bidirectional=true,false", "model.bidirectional", [True, False]),
], ids=["ints", "strings", "exponents", "lists", "mappings", "bools"])
def test_grid_values_are_yaml(text, key, values):
    assert parse_axis(text) == (key, values)


def test_plan_merges_the_yaml_section_and_flags_and_ids_are_stable(tmp_path):
    raw = tiny(tmp_path / "r", sweep={"grid": {"model.units": [2, 4], "train.learning_rate": ["1e-3", 0.01]},
                                      "seeds": 2, "workers": 3})
    path = write(tmp_path / "b.yaml", raw)
    plan = plan_sweep(path, grid=["model.units=5,6,7"], seeds=1, name="renamed")
    # --grid replaces the section's axis of the same key; the section's other axes stay; flags beat keys.
    assert plan.axes == {"model.units": [5, 6, 7], "train.learning_rate": [0.001, 0.01]}
    assert (len(plan.points) == 6 and plan.seeds == [3] and plan.workers == 3
            and plan.folder == tmp_path / "r" / "renamed")
    assert plan.threads == max(1, len(os.sched_getaffinity(0)) // 3)
    run = plan.runs[0]
    assert run.run_id == f"units=5-learning_rate=0.001-s3-{config_hash(run.cfg)}"
    assert run.cfg.sweep is None and "sweep" not in run.raw  # sweep settings never change a run's id
    assert [r.run_id for r in plan_sweep(path, grid=["model.units=5,6,7"], seeds=1, workers=1, name="renamed").runs] \
        == [r.run_id for r in plan.runs]
    # A run's hash is the hash `train` would give the same resolved config.
    alone = {k: v for k, v in raw.items() if k != "sweep"}
    alone.update(name="renamed", model={"cell": "gru", "units": 5},
                 train={**raw["train"], "seed": 3, "learning_rate": 0.001})
    assert config_hash(config_from_raw(alone, "x")) == config_hash(run.cfg)


BAD = [
    ("no-grid", [], "nothing to sweep"),
    ("no-equals", ["--grid", "model.units"], "--grid model.units: expected KEY=V1,V2"),
    ("empty-axis", ["--grid", "model.units="], "--grid model.units=: empty axis"),
    ("empty-value", ["--grid", "model.units=2,,4"], "cannot read the values as a YAML list"),
    ("unknown-key", ["--grid", "model.unitz=2,4"],
     "(--grid model.unitz=2): unknown key 'model.unitz'. Did you mean 'model.units'?"),
    ("bad-value", ["--grid", "model.units=4,0"], "(--grid model.units=0): 'model.units' must be >= 1. Got 0."),
    ("bad-cell", ["--grid", "model.cell=gru,gru2"],
     "'model.cell' must be one of ['gru', 'lstm', 'simple_rnn']. Got 'gru2'."),
    ("repeated-value", ["--grid", "model.cell=gru,gru"], "'model.cell' lists gru twice"),
    ("same-config", ["--grid", "model.cell=rnn,simple_rnn"], "give the same config"),
    ("axis-twice", ["--grid", "model.units=2", "--grid", "model.units=4"], "'model.units' is already an axis"),
    ("output-axis", ["--grid", "output.dir=a,b"], "'output.dir' cannot be swept"),
    ("seed-axis", ["--grid", "train.seed=1,2"], "--seeds sets it"),
    ("baseline-axis", ["--grid", "baseline.kind=auto,none"], "'baseline.kind' cannot be swept: the classical baseline"),
    ("not-a-section", ["--grid", "model.units.x=1"], "'model.units' is not a section"),
    ("zero-seeds", ["--grid", "model.units=2", "--seeds", "0"], "--seeds must be >= 1. Got 0."),
    ("zero-workers", ["--grid", "model.units=2", "--workers", "0"], "--workers must be >= 1. Got 0."),
    ("bad-backend", ["--grid", "model.units=2", "--backend", "slurm"], "--backend must be one of ['local', 'ray']"),
    ("ray-flag-locally", ["--grid", "model.units=2", "--ray-address", "auto"],
     "--ray-address applies to --backend ray"),
    ("bad-name", ["--grid", "model.units=2", "--name", "a b"],
     "(--name a b): 'name' must start with a letter or digit"),
    ("bad-set", ["--grid", "model.units=2", "--set", "train.epochz=1"], "unknown key 'train.epochz'"),
    ("yaml-unknown-key", ["{yaml_typo}"], "unknown key 'sweep.grdi'. Did you mean 'sweep.grid'?"),
    ("yaml-empty-axis", ["{yaml_empty}"], "sweep.grid: empty axis; give one or more values for 'model.units'"),
    ("missing-config", ["{missing}", "--grid", "model.units=2"], "config file not found"),
]


@pytest.mark.parametrize("args,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_sweeps_are_one_line_exit_2_and_write_nothing(runner, tmp_path, args, message):
    base = write(tmp_path / "b.yaml", tiny(tmp_path / "results"))
    files = {"yaml_typo": write(tmp_path / "t.yaml", tiny(tmp_path / "results", sweep={"grdi": {}})),
             "yaml_empty": write(tmp_path / "e.yaml", tiny(tmp_path / "results", sweep={"grid": {"model.units": []}})),
             "missing": tmp_path / "missing.yaml"}
    args = [a.format(**files) for a in args]
    if not args or not args[0].endswith(".yaml"):
        args = [str(base), *args]
    result = runner.invoke(app, ["sweep", *args])
    line = assert_user_error(result, tmp_path / "results")
    assert message in line, line


def test_ray_backend_without_ray_says_how_to_get_it(runner, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    path = write(tmp_path / "b.yaml", tiny(tmp_path / "r"))
    with pytest.raises(GruLabError, match=r"needs Ray, an optional extra: pip install 'gru-lab\[ray\]'"):
        plan_sweep(path, grid=["model.units=2"], backend="ray")
    result = runner.invoke(app, ["sweep", str(path), "--grid", "model.units=2", "--backend", "ray"])
    assert result.exit_code == 2 and "pip install 'gru-lab[ray]'" in result.stderr  # not eaten as markup


def test_sweep_table_and_files_come_from_the_run_records(tmp_path):
    """The default tier's sweep end to end, trained inline: one row per grid point, every number from the runs'
    metrics.json, the files written and the best point named."""
    from gru_lab.report.sweep import write_sweep

    plan = plan_sweep(write(tmp_path / "b.yaml", tiny(tmp_path / "results")), grid=["model.cell=gru,lstm"], seeds=2)
    result = execute_sweep(plan, runner=executor.run_inline)
    rep = write_sweep(result)
    assert [o.status for o in result.outcomes] == ["finished"] * 4
    table = rep.table[rep.table.kind == "recurrent"].to_dict(orient="records")
    assert [row["model.cell"] for row in table] == ["gru", "lstm"] and table[0]["model"] == "GRU(3)"
    classical = rep.table[rep.table.kind == "baseline"].to_dict(orient="records")  # one data config: fitted once
    assert [row["model.cell"] for row in classical] == ["-", "-"] and classical[0]["model"] == "last value"
    assert [v.claim for v in rep.verdicts] == ["GRU(3) (model.cell=gru) beats the classical baseline",
                                               "LSTM(3) (model.cell=lstm) beats the classical baseline"]
    for row in table:
        records = [o.metrics for o in result.outcomes if o.run.values["model.cell"] == row["model.cell"]]
        assert row["runs"] == "2/2" and row["metric_mean"] == pytest.approx(sum(m["test"]["mse"] for m in records) / 2)
        assert row["params_recurrent"] == records[0]["params"]["recurrent"]
    assert table[0]["params_recurrent"] == 3 * 3 * (1 + 3 + 2) and table[1]["params_recurrent"] == 4 * 3 * (1 + 3 + 1)
    best = min(table, key=lambda row: row["val_mean"])  # mse: the lowest validation mean, never the test's
    assert any(note.startswith(f"best: model.cell={best['model.cell']} ") for note in rep.notes)
    folder = plan.folder
    assert {p.name for p in folder.iterdir() if p.is_file()} == {"sweep.csv", "sweep.md", "sweep.json", "sweep.png"}
    assert (folder / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((folder / "sweep.json").read_text())["table"][0]["runs"] == "2/2"


def test_a_diverged_point_shows_as_diverged_is_reused_and_exits_1(runner, tmp_path):
    """sgd at learning rate 10 on sine_gru's data and model diverges in the first epoch; at 0.01 it trains.
    The table never averages the diverged run; a re-run reuses it (the same config and seed diverge again)."""
    from gru_lab.report.sweep import write_sweep

    raw = tiny(tmp_path / "results")
    raw["data"] = {"name": "sine", "window": 40, "n_train": 1000, "n_val": 64, "n_test": 64}
    raw["model"]["units"] = 64
    raw["train"].update({"batch_size": 64, "optimizer": "sgd"})
    path = write(tmp_path / "b.yaml", raw)
    grid = ["train.learning_rate=0.01,10"]
    result = execute_sweep(plan_sweep(path, grid=grid), runner=executor.run_inline)
    assert [o.status for o in result.outcomes] == ["finished", "diverged"]
    diverged = result.outcomes[1]
    assert diverged.metrics["diverged"]["epoch"] == 1 and diverged.metrics["diverged"]["quantity"] == "loss"
    assert diverged.error.startswith("diverged at epoch 1, batch ")
    assert "try a lower train.learning_rate" in diverged.error
    rep = write_sweep(result)
    good, bad = rep.table[rep.table.kind == "recurrent"].to_dict(orient="records")
    assert good["runs"] == "1/1" and good["metric_mean"] == result.outcomes[0].metrics["test"]["mse"]
    assert bad["runs"] == "0/1 (1 diverged)" and bad["diverged"] == 1
    assert bad["metric_mean"] != bad["metric_mean"]  # NaN: nothing averaged
    assert "diverged at epoch 1" in bad["errors"]
    assert "| 10 | GRU(64) | 0/1 (1 diverged) |" in (plan_sweep(path, grid=grid).folder / "sweep.md").read_text()

    def never(run, on_epoch=None):
        raise AssertionError(f"{run.run_id} was trained again")

    again = execute_sweep(plan_sweep(path, grid=grid), runner=never)
    assert [o.status for o in again.outcomes] == ["reused", "diverged"]
    cli = runner.invoke(app, ["sweep", str(path), "--grid", grid[0], "-q"])  # reuses both: no worker starts
    assert cli.exit_code == 1, cli.output
    assert "diverged: train.learning_rate=10" in cli.stderr and "loss became" in cli.stderr


# ----------------------------------------------------------------------------- local workers, kill and resume
# Marked slow: real worker processes killed with SIGKILL (make test-slow).


def _worker_pids() -> list[int]:
    """This process's worker children (python -m gru_lab.experiments.executor --worker)."""
    me, pids = os.getpid(), []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me and b"gru_lab.experiments.executor" in cmdline:
            pids.append(int(proc.name))
    return pids


def _kill_first_worker(killed: list[int], stop: threading.Event) -> None:
    while not stop.is_set() and not killed:
        for pid in _worker_pids():
            os.kill(pid, signal.SIGKILL)  # as the out-of-memory killer would
            killed.append(pid)
            break
        time.sleep(0.05)


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """A 2x2x2-seed sweep with --workers 2, killed mid-way (SIGKILL to the whole process group), re-run
    while one of its workers is killed, then re-run once more. Returns what each step left behind."""
    tmp = tmp_path_factory.mktemp("sweep")
    path = write(tmp / "b.yaml", tiny(tmp / "results"))
    folder = tmp / "results" / "sw"
    args = ["sweep", str(path), *GRID, "--workers", "2", "-q"]
    steps = {}

    # 1. Killed mid-way: the sweep and its workers die at once, with no chance to clean up.
    proc = subprocess.Popen([sys.executable, "-m", "gru_lab.cli", *args], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(finished_runs(folder)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    steps["killed"] = {"finished": finished_runs(folder),
                       "stamps": {r: stamps(folder / r) for r in finished_runs(folder)}}

    # 2. Re-run; one of its workers is killed as it starts.
    from typer.testing import CliRunner

    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_first_worker, args=(killed, stop), daemon=True)
    watcher.start()
    result = CliRunner().invoke(app, args)
    stop.set()
    assert (folder / "sweep.json").exists(), (result.exit_code, result.output, repr(result.exception))
    steps["rerun"] = {"result": result, "killed": killed, "record": json.loads((folder / "sweep.json").read_text()),
                      "failures": sorted(p.name for p in (folder / "failures").glob("*.log")),
                      "stamps": {r: stamps(folder / r) for r in steps["killed"]["finished"]}}

    # 3. Re-run again: only the failed run trains.
    result = CliRunner().invoke(app, args)
    steps["retry"] = {"result": result, "record": json.loads((folder / "sweep.json").read_text())}
    steps["folder"] = folder
    return steps


@pytest.mark.slow
def test_a_killed_sweep_rerun_finishes_only_the_missing_runs(local_sweep):
    before = local_sweep["killed"]["finished"]
    assert 2 <= len(before) < 8, before  # killed with work left
    rerun = local_sweep["rerun"]
    assert rerun["result"].exit_code == 1, rerun["result"].output  # one worker was killed
    status = {r["run_id"]: r["status"] for r in rerun["record"]["runs"]}
    assert len(status) == 8
    assert {rid for rid, s in status.items() if s == "reused"} == before
    assert sorted(s for rid, s in status.items() if rid not in before) == ["failed"] + ["finished"] * (7 - len(before))
    assert rerun["stamps"] == local_sweep["killed"]["stamps"]  # runs finished before the kill are untouched


@pytest.mark.slow
def test_a_killed_worker_is_recorded_loses_nothing_and_is_retried(local_sweep):
    rerun, retry, folder = local_sweep["rerun"], local_sweep["retry"], local_sweep["folder"]
    assert len(rerun["killed"]) == 1
    (failed,) = [r for r in rerun["record"]["runs"] if r["status"] == "failed"]
    assert "worker killed by SIGKILL" in failed["error"] and rerun["failures"] == [f"{failed['run_id']}.log"]
    row = next(r for r in rerun["record"]["table"] if r["runs"] == "1/2")  # its grid point keeps the other seed
    assert "SIGKILL" in row["errors"] and row["metric_mean"] is not None
    assert "1 run(s) failed" in rerun["result"].stderr

    assert retry["result"].exit_code == 0, retry["result"].output
    status = {r["run_id"]: r["status"] for r in retry["record"]["runs"]}
    assert status.pop(failed["run_id"]) == "finished" and set(status.values()) == {"reused"}
    assert not (folder / "failures").exists()


@pytest.mark.slow
def test_local_sweep_table_files_and_threads(local_sweep):
    folder, record = local_sweep["folder"], local_sweep["retry"]["record"]
    table = [r for r in record["table"] if r["kind"] == "recurrent"]
    assert [(r["model.cell"], r["model.units"]) for r in table] == [("gru", 2), ("gru", 3), ("lstm", 2), ("lstm", 3)]
    assert all(r["runs"] == "2/2" and r["metric"] == "test_mse" and r["metric_std"] is not None for r in table)
    assert all(r["mse_vs_baseline"] > 0 for r in table)  # regression: against predicting the mean
    assert table[0]["params_recurrent"] == 3 * 2 * (1 + 2 + 2) and table[3]["params_recurrent"] == 4 * 3 * (1 + 3 + 1)
    for row in table:  # the table's numbers are the runs' own records
        runs = [json.loads((folder / r["run_id"] / "metrics.json").read_text()) for r in record["runs"]
                if (r["model.cell"], r["model.units"]) == (row["model.cell"], row["model.units"])]
        values = [m["test"]["mse"] for m in runs]
        assert row["metric_mean"] == pytest.approx(sum(values) / 2)
        assert row["fit_seconds"] == pytest.approx(sum(m["fit_seconds"] for m in runs) / 2)
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert {r["threads"] for r in record["runs"]} == {threads}  # each worker's TensorFlow pools, from metrics.json
    assert record["backend"] == {"name": "local", "workers": 2, "threads": threads}
    assert (folder / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (folder / "sweep.md").read_text()
    assert "| model.cell | model.units | model | runs |" in md and "](sweep.png)" in md and "best: " in md
    assert "model.cell" in local_sweep["retry"]["result"].stdout  # the rich table
    assert (folder / "sweep.csv").read_text().count("\n") == 5 + 2  # + last value and ridge, fitted once


# ----------------------------------------------------------------------------- Ray
# Marked slow: a local Ray instance takes seconds to start and its tasks run in worker processes.


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance: 2 CPUs, no dashboard, no usage stats, no network."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'gru-lab[ray]' to run the Ray tests")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_sweep_gives_the_same_table_as_local_workers(local_sweep, ray_instance, runner, tmp_path):
    path = write(tmp_path / "b.yaml", tiny(tmp_path / "results"))
    result = runner.invoke(app, ["sweep", str(path), *GRID, "--backend", "ray", "-q"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "results" / "sw"
    record = json.loads((folder / "sweep.json").read_text())
    local = local_sweep["retry"]["record"]
    assert [list(r) for r in record["table"]] == [list(r) for r in local["table"]]  # same columns
    assert [(r["model.cell"], r["model.units"], r["runs"]) for r in record["table"]] == \
        [(r["model.cell"], r["model.units"], r["runs"]) for r in local["table"]]
    assert {r["status"] for r in record["runs"]} == {"finished"} and len(finished_runs(folder)) == 8
    assert record["backend"]["name"] == "ray" and record["backend"]["in_flight"] == 2
    assert {r["threads"] for r in record["runs"]} == {1}  # num_cpus=1 per run
    # One TensorFlow thread a run on both backends, the same configs and seeds: the same numbers.
    for ours, theirs in zip(record["table"], local["table"]):
        assert ours["metric_mean"] == pytest.approx(theirs["metric_mean"], rel=1e-5)
    assert not list(folder.glob(".ray-token-*"))  # the shared-filesystem token is cleaned up


@pytest.mark.slow
def test_ray_runs_from_a_node_without_the_results_folder_come_back_through_the_driver(local_sweep, ray_instance,
                                                                                      tmp_path):
    """shared_fs=False: the task trains into a scratch folder and returns the files; the driver writes them."""
    plan = plan_sweep(write(tmp_path / "b.yaml", tiny(tmp_path / "results")), grid=["model.units=2,3"], backend="ray")
    result = execute_sweep(plan, shared_fs=False)
    assert [o.status for o in result.outcomes] == ["finished", "finished"]
    # Every file a run written in place has (the same tiny config, trained by the local workers) comes back.
    local_run = local_sweep["folder"] / local_sweep["retry"]["record"]["runs"][0]["run_id"]
    expected = {p.name for p in local_run.iterdir()}
    assert {"config.yaml", "metrics.json", "history.csv"} <= expected
    for o in result.outcomes:
        assert o.folder == plan.folder / o.run.run_id
        assert {p.name for p in o.folder.iterdir()} == expected
        assert json.loads((o.folder / "metrics.json").read_text())["run_id"] == o.run.run_id
    # Nothing partial: the runs and the classical baseline's cache, nothing else.
    assert sorted(p.name for p in plan.folder.iterdir()) == sorted([r.run_id for r in plan.runs] + ["baselines"])


@pytest.mark.slow
def test_ctrl_c_cancels_the_ray_tasks_in_flight_and_keeps_nothing_half_done(ray_instance, tmp_path):
    """Ctrl-C reaching only this process (Ray's workers are not in the terminal's process group): the
    tasks are cancelled and their worker processes stop at once, though Ray's workers block SIGINT."""
    import _thread

    raw = tiny(tmp_path / "results")
    raw["data"]["n_train"], raw["train"]["epochs"] = 256, 1000  # minutes of training, unless stopped
    plan = plan_sweep(write(tmp_path / "b.yaml", raw), grid=["model.units=2,3,4"], backend="ray")
    pressed: list[float] = []

    def ctrl_c() -> None:
        pressed.append(time.monotonic())
        _thread.interrupt_main()

    def press_once_training() -> None:
        # Ctrl-C while the workers train, which is what the test is about: once a run has saved its first epoch's
        # state. A fixed delay pressed it while a loaded machine was still starting TensorFlow in the workers.
        deadline = time.monotonic() + 120
        while not list(plan.folder.glob(".partial-*/resume/state.json")) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not stop_watching.wait(1.0):
            ctrl_c()

    stop_watching = threading.Event()
    timer = threading.Thread(target=press_once_training, daemon=True)

    def on_event(kind, run, info):
        if kind == "start" and timer.ident is None:  # start the watcher once
            timer.start()

    started = time.monotonic()
    try:
        result = execute_sweep(plan, on_event=on_event)
        stopped = time.monotonic()
    finally:
        stop_watching.set()
    statuses = [o.status for o in result.outcomes]
    assert result.interrupted and statuses == ["not run"] * 3, (statuses, pressed, stopped - started)
    assert stopped - pressed[0] < 10  # a polite stop: not the 20 s grace before a kill, nor the runs' minutes
    time.sleep(2)
    assert not [p for p in plan.folder.iterdir() if not p.name.startswith(".")]  # no run was finished or kept


# ----------------------------------------------------------------------------- Ctrl-C in a pool


class Blocking:
    """A runner without TensorFlow: run 0 finishes, run 1 is stopped by Ctrl-C (its worker exits 130),
    the others wait until execute_runs asks them to stop."""

    def __init__(self, folder: Path):
        self.folder, self.started, self.stopped = folder, [], []

    def __call__(self, run, on_epoch=None):
        self.started.append(run.run_id)
        if run.run_id == "r0":
            out = self.folder / "r0"
            out.mkdir(parents=True)
            (out / "metrics.json").write_text('{"status": "finished"}')
            return out
        if run.run_id == "r1":
            time.sleep(0.3)
            raise KeyboardInterrupt
        asked = threading.Event()
        executor.track(run.run_id, lambda _force: asked.set())
        try:
            if not asked.wait(10):
                raise RunFailed("never asked to stop", "")
            self.stopped.append(run.run_id)
            raise KeyboardInterrupt
        finally:
            executor.track(run.run_id, None)


def test_ctrl_c_in_a_pool_stops_every_worker_and_keeps_finished_runs(tmp_path):
    class Run:
        def __init__(self, i):
            self.run_id, self.label = f"r{i}", f"run {i}"

    runner = Blocking(tmp_path)
    outcomes, interrupted = execute_runs([Run(i) for i in range(6)], tmp_path, runner, workers=3)
    assert interrupted
    assert [o.status for o in outcomes[:2]] == ["finished", "not run"]
    # Three threads: r2 and r3 (and perhaps r4, on r1's freed thread) were running and were asked to stop.
    assert {"r0", "r1", "r2", "r3"} <= set(runner.started) <= {"r0", "r1", "r2", "r3", "r4"}
    assert set(runner.stopped) == set(runner.started) - {"r0", "r1"}
    assert all(o.status == "not run" for o in outcomes[2:])  # r5 never starts


def test_a_ctrl_c_whose_interrupt_is_swallowed_still_stops_every_run(tmp_path):
    """A KeyboardInterrupt can land in a finalizer or callback that swallows it; the pool must stop anyway.
    Here the SIGINT handler runs in the second run's own thread once both runs are going, and that thread
    swallows what it raises: only the handler's mark remains."""
    class Run:
        def __init__(self, i):
            self.run_id, self.label = f"r{i}", f"run {i}"

    stopped: list[str] = []
    swallowed: list[str] = []
    going: list[str] = []
    lock = threading.Lock()

    def press_and_swallow() -> None:
        try:
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        except KeyboardInterrupt:
            swallowed.append("KeyboardInterrupt")

    def runner(run, on_epoch=None):
        asked = threading.Event()
        executor.track(run.run_id, lambda _force: asked.set())
        try:
            with lock:
                going.append(run.run_id)
                both = len(going) == 2
            if both:
                press_and_swallow()
            if not asked.wait(10):
                raise RunFailed("never asked to stop", "")
            stopped.append(run.run_id)
            raise KeyboardInterrupt
        finally:
            executor.track(run.run_id, None)

    # The command line's own state: Python's handler, which raises KeyboardInterrupt (whatever an earlier test
    # in this process left there).
    original = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        outcomes, interrupted = execute_runs([Run(i) for i in range(3)], tmp_path, runner, workers=2)
        assert swallowed == ["KeyboardInterrupt"]  # the handler raised, and nothing above it saw that
        assert interrupted and [o.status for o in outcomes] == ["not run"] * 3
        assert sorted(stopped) == ["r0", "r1"]  # both running runs were asked to stop; r2 never started
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the command's own handler is back
    finally:
        signal.signal(signal.SIGINT, original)


# ----------------------------------------------------------------------------- one run, two devices


@pytest.mark.slow
def test_mirrored_strategy_trains_one_run_on_two_logical_cpus(tmp_path):
    script = f"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from gru_lab.config import config_from_raw
from gru_lab.experiments.executor import train_and_save
raw = {tiny(tmp_path / "results")!r}
raw["train"]["distribute"] = "mirrored"
folder = train_and_save(config_from_raw(raw, "mirrored test"), "mirrored")
print(json.dumps(json.loads((folder / "metrics.json").read_text())["distribute"]))
"""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["strategy"] == "MirroredStrategy" and record["replicas"] == 2
    assert [d.rsplit("/", 1)[-1] for d in record["devices"]] == ["device:CPU:0", "device:CPU:1"]
