"""output.mlflow with the local store: one tiny run logged while it trains, read back through MLflow's own client;
backfill without duplicates; a store that is down; the extra missing; MLflow never imported when tracking is off."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from gru_lab.config import config_from_raw
from tests.conftest import tiny_config

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install 'gru-lab[mlflow]')")


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A tiny run trained through the executor's path (as compare's and sweep's workers train) into a local
    store under its results folder: (run folder, store URI, its MLflow run)."""
    from gru_lab.experiments.executor import train_and_save
    from gru_lab.tracking.store import local_store

    results = tmp_path_factory.mktemp("mlflow") / "results"
    cfg = config_from_raw({**tiny_config(), "output": {"dir": str(results), "mlflow": True}}, "test")
    folder = train_and_save(cfg, "tiny-s3")
    uri = local_store(results)
    (run,) = mlflow.MlflowClient(uri).search_runs([client_experiment(uri, "tiny")])
    return folder, uri, run


def client_experiment(uri: str, name: str) -> str:
    return mlflow.MlflowClient(uri).get_experiment_by_name(name).experiment_id


def test_a_run_logs_its_config_epochs_test_metrics_and_tags(logged):
    from gru_lab.tracking.runs import flat_params

    folder, uri, run = logged
    client = mlflow.MlflowClient(uri)
    metrics = json.loads((folder / "metrics.json").read_text())
    from gru_lab.config import load_config

    assert run.info.status == "FINISHED"
    assert run.data.params == flat_params(load_config(folder / "config.yaml"))
    assert (run.data.params["model.units"], run.data.params["output.mlflow"]) == ("4", "True")
    with open(folder / "history.csv", newline="") as fh:
        history = list(csv.DictReader(fh))
    for key in ("loss", "val_loss", "mae"):
        points = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in points] == [int(r["epoch"]) for r in history]
        assert [m.value for m in points] == pytest.approx([float(r[key]) for r in history])
    for key, value in metrics["test"].items():
        assert run.data.metrics[f"test_{key}"] == pytest.approx(value)
    baseline = {b["name"]: b["value"] for b in metrics["classical_baseline"]["items"]} if "classical_baseline" in \
        metrics else {}
    for name, value in baseline.items():
        assert run.data.metrics[f"baseline.{name}.test_mse"] == pytest.approx(value)
    tags = run.data.tags
    assert (tags["cell"], tags["seed"], tags["data.name"], tags["gru_lab.run_id"]) == ("gru", "3", "sine", folder.name)
    assert tags["kernels"] == ", ".join(sorted({k["kernel"] for k in metrics["execution"]["kernels"]}))
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.json", "history.csv", "learning_curves.png", "model"} <= files
    assert "model.keras" not in files  # the model is there once, in MLflow's flavour
    assert json.loads((folder / "mlflow.json").read_text())["run_id"] == run.info.run_id


def test_the_logged_model_scores_as_the_run_folder_model(logged):
    import keras

    folder, uri, run = logged
    mlflow.set_tracking_uri(uri)
    served = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    x = np.random.default_rng(0).normal(size=(5, 8, 1)).astype("float32")
    expected = keras.models.load_model(folder / "model.keras").predict(x, verbose=0)
    assert np.asarray(served.predict(x)) == pytest.approx(expected, abs=1e-5)


def test_backfill_logs_nothing_twice(logged, tmp_path):
    from gru_lab.tracking.runs import backfill_tree

    folder, uri, _ = logged
    root = folder.parent.parent
    assert backfill_tree(root, uri)[1] == {"present": 1}
    record = (folder / "mlflow.json").read_text()
    (folder / "mlflow.json").unlink()  # the record lost: the store is searched by the run's id instead
    assert backfill_tree(root, uri)[1] == {"present": 1}
    assert len(mlflow.MlflowClient(uri).search_runs([client_experiment(uri, "tiny")])) == 1
    (folder / "mlflow.json").write_text(record)


@pytest.mark.slow  # a second store: MLflow creates its SQLite tables in ~6 s
def test_backfill_to_another_store_logs_once(logged, tmp_path):
    from gru_lab.tracking.runs import backfill_tree

    folder, uri, _ = logged
    root = folder.parent.parent
    record = (folder / "mlflow.json").read_text()
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert backfill_tree(root, other)[1] == {"logged": 1}  # another store: logged there once
    assert backfill_tree(root, other)[1] == {"present": 1}
    (run,) = mlflow.MlflowClient(other).search_runs([client_experiment(other, "tiny")])
    assert [m.step for m in mlflow.MlflowClient(other).get_metric_history(run.info.run_id, "loss")] == [1, 2]
    (folder / "mlflow.json").write_text(record)


def test_a_resumed_run_continues_its_mlflow_run(logged, tmp_path):
    from gru_lab.tracking.runs import RunTracker

    uri = logged[1]  # the module's store: a new one costs ~6 s of MLflow creating its tables
    cfg = config_from_raw({**tiny_config(), "name": "resumed", "output": {"dir": str(tmp_path), "mlflow": uri}},
                          "test")
    first = RunTracker.start(cfg, "r1", tmp_path)
    first.log_epoch(1, {"loss": 0.5})
    first.stop("KILLED")
    again = RunTracker.start(cfg, "r1", tmp_path)  # the same unfinished folder, as a resume opens it
    again.log_epoch(2, {"loss": 0.4})
    again.flush()  # epochs go to the store in the background; finish and stop wait for them
    assert again.mlflow_run_id == first.mlflow_run_id
    client = mlflow.MlflowClient(again.store.uri)
    assert client.get_run(again.mlflow_run_id).info.status == "RUNNING"
    assert [(m.step, m.value) for m in client.get_metric_history(again.mlflow_run_id, "loss")] == [(1, 0.5), (2, 0.4)]


def test_a_store_that_is_down_is_one_warning_and_the_run_goes_on(tmp_path):
    import socket

    from gru_lab.tracking.runs import RunTracker

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    warnings: list[str] = []
    cfg = config_from_raw({**tiny_config(), "output": {"dir": str(tmp_path), "mlflow": f"http://127.0.0.1:{port}"}},
                          "test")
    tracker = RunTracker.start(cfg, "r1", tmp_path, warnings.append)
    tracker.log_epoch(1, {"loss": 0.5})
    tracker.stop()
    assert len(warnings) == 1 and f"127.0.0.1:{port}" in warnings[0] and "report" in warnings[0]
    assert "MlflowException" in warnings[0]  # the connection refused, not a mistake of ours on the way
    record = json.loads((tmp_path / "mlflow.json").read_text())
    assert record["logged"] is False and record["run_id"] is None and "problem" in record


def test_tracking_uri_is_not_part_of_the_run_id():
    from gru_lab.runs.folder import config_hash

    plain = config_from_raw(tiny_config(), "test")
    raw = tiny_config()
    tracked = config_from_raw({**raw, "output": {**raw.get("output", {}), "mlflow": "http://example:5000"}}, "test")
    assert config_hash(plain) == config_hash(tracked)
    assert config_hash(plain) != config_hash(config_from_raw({**tiny_config(), "seed": 4}, "test"))


@pytest.mark.parametrize("args", [["train"], ["compare", "gru"], ["sweep", "x.yaml", "--grid", "model.units=2,3"],
                                  ["report", "."]], ids=["train", "compare", "sweep", "report"])
def test_without_the_extra_tracking_is_one_line_exit_2(runner, tmp_path, monkeypatch, args):
    import importlib.util

    import yaml

    import gru_lab.training.device
    from gru_lab.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    monkeypatch.setattr(gru_lab.training.device, "build_compiled_loops",  # said before anything is built or run
                        lambda *_: pytest.fail("the compiled loops were built before tracking was checked"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "metrics.json").write_text("{}")
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(tiny_config()))
    result = runner.invoke(app, [*args, "--mlflow", "true", *([] if args[0] == "report" else
                                                               ["--set", f"output.dir={tmp_path / 'r'}"])])
    assert result.exit_code == 2, result.output
    assert "pip install 'gru-lab[mlflow]'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("metrics.json"))


def test_mlflow_is_not_imported_without_tracking():
    code = ("import sys, gru_lab.cli, gru_lab.tracking.runs, gru_lab.experiments.executor;"
            "assert 'mlflow' not in sys.modules, 'mlflow imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow  # two trainings through the command line
def test_train_stopped_and_resumed_continues_its_mlflow_run(logged, runner, write_config, tmp_path, monkeypatch):
    from gru_lab.cli import app
    from tests.test_cli import _ctrl_c

    uri = logged[1]
    path = write_config({**tiny_config(), "name": "stopped", "train": {"epochs": 3, "batch_size": 16}})
    with monkeypatch.context() as patch:
        _ctrl_c(patch, epoch=2)
        assert runner.invoke(app, ["train", str(path), "-q", "--mlflow", uri]).exit_code == 130
    resumed = runner.invoke(app, ["train", str(path), "-q", "--resume", "--mlflow", uri])
    assert resumed.exit_code == 0, resumed.output
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client_experiment(uri, "stopped")])  # one MLflow run, not one an attempt
    assert run.info.status == "FINISHED" and run.data.tags["gru_lab.logged"] == "true"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3]
