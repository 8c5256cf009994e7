"""A real tracking server (slow tier): `mlflow server` on 127.0.0.1 with a SQLite backend and a local artifact root
under tmp_path; a compare of rnn, lstm and gru logs a parent with its three runs nested under it, every epoch's
metrics and models that MLflow serves as gru-lab predicts; a re-run logs nothing twice; a server stopped
mid-compare loses no run (the compare goes on, one warning line, and `gru-lab report --mlflow` logs the rest)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.data.test_text import texts_of, write_csv

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install 'gru-lab[mlflow]')")
pytestmark = pytest.mark.slow

GRU_LAB = [str(Path(sys.executable).parent / "gru-lab")]  # the console script of the interpreter running the tests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`mlflow server` in a process of its own; start() waits until /health answers."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port, self.proc = folder, port, None
        self.uri = f"http://127.0.0.1:{port}"

    def start(self) -> "Server":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
             "--artifacts-destination", str(self.folder / "artifacts"), "--workers", "1"],
            cwd=self.folder, stdout=open(self.folder / "server.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.folder / "server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        raise AssertionError("mlflow server did not start: " + (self.folder / "server.log").read_text()[-2000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)  # its own session: the server and the workers it started
            self.proc.wait(timeout=30)


@pytest.fixture
def server(tmp_path):
    folder = tmp_path / "server"
    folder.mkdir()
    srv = Server(folder, free_port()).start()
    yield srv
    srv.stop()


def text_compare(tmp_path: Path) -> Path:
    rows = [(t, "pos") for t in texts_of("pos", 40)] + [(t, "neg") for t in texts_of("neg", 40)]
    write_csv(tmp_path / "reviews.csv", rows)
    path = tmp_path / "reviews.yaml"
    path.write_text(yaml.safe_dump({
        "name": "reviews", "seed": 0,
        "data": {"name": "text", "path": "reviews.csv", "maxlen": 6, "num_words": 50},
        "model": {"cell": "gru", "units": 4, "embedding_dim": 4, "mask_zero": True},
        "train": {"epochs": 2, "batch_size": 16}, "output": {"dir": str(tmp_path / "results")}}))
    return path


def compare(config: Path, uri: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([*GRU_LAB, "compare", "rnn", "lstm", "gru", "--config", str(config), "--seeds", "1",
                             "--mlflow", uri, "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=config.parent, **popen)


def children(uri: str) -> tuple[object, list]:
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("reviews").experiment_id
    runs = client.search_runs([experiment])
    (parent,) = [r for r in runs if r.data.tags.get("gru_lab.kind") == "compare"]
    return parent, [r for r in runs if r is not parent]


def test_compare_against_a_live_server(server, tmp_path):
    config = text_compare(tmp_path)
    proc = compare(config, server.uri)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    assert "warning" not in err
    parent, runs = children(server.uri)
    client = mlflow.MlflowClient(server.uri)
    assert parent.info.status == "FINISHED"
    assert sorted(r.data.tags["cell"] for r in runs) == ["gru", "lstm", "simple_rnn"]
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"comparison.csv", "comparison.json"}
    folders = {p.name: p for p in (tmp_path / "results" / "reviews").iterdir() if (p / "metrics.json").is_file()}
    assert sorted(folders) == sorted(r.data.tags["gru_lab.run_id"] for r in runs)
    for run in runs:
        folder = folders[run.data.tags["gru_lab.run_id"]]
        history = [line.split(",") for line in (folder / "history.csv").read_text().splitlines()]
        loss = history[0].index("val_loss")
        points = client.get_metric_history(run.info.run_id, "val_loss")
        assert [(m.step, m.value) for m in points] == [(int(row[0]), pytest.approx(float(row[loss])))
                                                      for row in history[1:]]
        test = json.loads((folder / "metrics.json").read_text())["test"]
        assert run.data.metrics["test_accuracy"] == pytest.approx(test["accuracy"])
        assert run.info.status == "FINISHED" and run.data.tags["gru_lab.logged"] == "true"

    # the served model scores as `gru-lab predict` does, to 1e-5
    from gru_lab.data.text import encode, vectorizer

    run = next(r for r in runs if r.data.tags["cell"] == "gru")
    folder = folders[run.data.tags["gru_lab.run_id"]]
    texts = ["A wonderful, great film", "A dull film, awful", "film number3 unknownword"]
    (tmp_path / "new.txt").write_text("\n".join(texts) + "\n")
    predicted = subprocess.run([*GRU_LAB, "predict", str(folder), "--file", str(tmp_path / "new.txt"), "--format",
                                "json"], capture_output=True, text=True, check=True).stdout
    expected = [row["P(pos)"] for row in json.loads(predicted)["predictions"]]
    inputs = json.loads((folder / "inputs.json").read_text())
    x = encode(vectorizer(inputs["vectorizer"], inputs["vocabulary"]), texts)
    mlflow.set_tracking_uri(server.uri)
    served = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert np.asarray(served.predict(x)).reshape(-1) == pytest.approx(expected, abs=1e-5)

    # a re-run reuses the finished runs and logs nothing twice
    proc = compare(config, server.uri)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    again_parent, again = children(server.uri)
    assert again_parent.info.run_id == parent.info.run_id
    assert sorted(r.info.run_id for r in again) == sorted(r.info.run_id for r in runs)


def test_a_server_stopped_mid_compare_loses_no_run(server, tmp_path):
    config = text_compare(tmp_path)
    proc = compare(config, server.uri)
    results = tmp_path / "results" / "reviews"
    deadline = time.monotonic() + 600
    while not any(results.glob("*/metrics.json")):  # the first run is finished and logged: stop the server
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.5)
    server.stop()
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and server.uri in warnings[0], err
    folders = [p for p in results.iterdir() if (p / "metrics.json").is_file()]
    assert len(folders) == 3  # every run finished and was kept in its folder

    server.start()  # back, with the same store: report logs what the compare could not, once
    done = subprocess.run([*GRU_LAB, "report", str(tmp_path / "results"), "--mlflow", server.uri],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "already there" in done.stderr
    client = mlflow.MlflowClient(server.uri)
    experiment = client.get_experiment_by_name("reviews").experiment_id
    logged = [r for r in client.search_runs([experiment]) if "gru_lab.run_id" in r.data.tags]
    assert sorted(r.data.tags["gru_lab.run_id"] for r in logged) == sorted(p.name for p in folders)
    assert all(r.data.tags.get("gru_lab.logged") == "true" for r in logged)
    for run in logged:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
