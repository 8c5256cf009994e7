"""`gru-lab gpu-check` on a machine without a GPU: the one-line refusal, the kernel plan it checks against,
the CPU half of a run, and the report from records shaped as a GPU run writes them."""

from __future__ import annotations

import json

import pytest

from gru_lab.bench import gpu_check
from gru_lab.cli import app
from gru_lab.config import load_config
from gru_lab.data.base import InputSpec
from gru_lab.models.kernels import Facts, plan_kernels
from gru_lab.report.gpu_check import gpu_check_markdown, write_gpu_check
from gru_lab.training.device import machine_facts
from tests.bench.test_bench import tiny_bench_config
from tests.conftest import CONFIGS, assert_user_error

no_gpu_here = pytest.mark.skipif(machine_facts().gpu, reason="TensorFlow sees a GPU here: make gpu-check runs")


@no_gpu_here
def test_without_a_gpu_it_says_so_in_one_line_and_runs_nothing(tmp_path, runner, write_config):
    path = write_config(tiny_bench_config(tmp_path))
    result = runner.invoke(app, ["gpu-check", str(path), "--compare", str(path)])
    line = assert_user_error(result, tmp_path / "results")
    assert line == f"error: {gpu_check.NO_GPU}"


def test_the_makefiles_jobs_are_planned_on_cudnn_where_keras_has_it():
    """What `make gpu-check` checks against: on a GPU, cuDNN for GRU and LSTM; SimpleRNN has no cuDNN kernel."""
    jobs = gpu_check.plan_jobs([load_config(CONFIGS / "imdb_gru_literal.yaml")],
                               [load_config(CONFIGS / "imdb_compare.yaml")], epochs=1)
    assert [j.label for j in jobs] == ["imdb_gru_literal (GRU)", "imdb_compare (SimpleRNN)", "imdb_compare (LSTM)",
                                       "imdb_compare (GRU)"]
    assert {j.cfg.train.epochs for j in jobs} == {1} and not any(j.cfg.output.save_model for j in jobs)
    planned = {}
    for job in jobs:
        d = job.cfg.data
        spec = InputSpec("binary", "tokens", d.maxlen, 1, 1, d.num_words, d.padding)  # what IMDB loads as
        plan = plan_kernels(job.cfg, spec, Facts(gpu=True))
        planned[job.label] = (plan.device, [(k.train, k.inference) for k in plan.layers])
    assert planned == {
        "imdb_gru_literal (GRU)": ("gpu", [("cudnn", "cudnn")]),
        "imdb_compare (SimpleRNN)": ("gpu", [("keras-loop", "keras-loop")]),
        "imdb_compare (LSTM)": ("gpu", [("cudnn", "cudnn")]),
        "imdb_compare (GRU)": ("gpu", [("cudnn", "cudnn")]),
    }


def test_the_cpu_half_of_a_run_reports_its_kernels_and_epochs(tmp_path):
    """The worker trains as `train` does and answers with the record's plan and kernels (here on the CPU)."""
    raw = tiny_bench_config(tmp_path)
    raw["train"] = {**raw["train"], "device": "cpu", "xla": "off"}
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"config": raw}))
    gpu_check._worker(str(job), str(tmp_path / "answer.json"))
    answer = json.loads((tmp_path / "answer.json").read_text())
    row = gpu_check.check_row("tiny (GRU)", "cpu", answer)
    assert row["check"] == "ok" and row["record_device"] == "cpu"
    assert len(row["epoch_s"]) == 2 and row["s_per_epoch"] == pytest.approx(sum(row["epoch_s"]) / 2)
    (layer,) = row["layers"]
    assert layer["kernel"] == layer["planned"] and layer["inference"] == layer["planned_inference"]
    assert answer["data"].startswith("synthetic")


def gpu_answer(kernel: str, planned: str, seconds: list[float]) -> dict:
    """A worker's answer shaped as a GPU run's record: the plan, and what the layer reported it ran."""
    return {"history": [{"epoch": i + 1, "seconds": s} for i, s in enumerate(seconds)], "test": {"accuracy": 0.8},
            "execution": {"device": "gpu", "planned": [{"layer": "gru_1", "train": planned, "inference": planned,
                                                        "train_why": [], "inference_why": []}],
                          "kernels": [{"layer": "gru_1", "kernel": kernel, "inference": kernel}]}}


def test_the_report_pairs_devices_flags_a_layer_off_its_plan_and_never_overwrites(tmp_path):
    rows = [gpu_check.check_row("literal (GRU)", "gpu", gpu_answer("cudnn", "cudnn", [4.0])),
            gpu_check.check_row("literal (GRU)", "cpu", gpu_answer("compiled", "compiled", [30.0])),
            gpu_check.check_row("compare (LSTM)", "gpu", gpu_answer("keras-loop", "cudnn", [9.0, 5.0])),
            gpu_check.check_row("compare (LSTM)", "cpu", gpu_answer("fused", "fused", [40.0, 36.0]))]
    assert [r["check"] for r in rows] == [
        "ok", "ok", "gru_1 ran keras-loop / keras-loop, planned cudnn / cudnn", "ok"]
    jobs = gpu_check.pair_rows(rows)
    assert [(j["job"], j["gpu_s_per_epoch"], j["cpu_s_per_epoch"]) for j in jobs] == [
        ("literal (GRU)", 4.0, 30.0), ("compare (LSTM)", 7.0, 38.0)]
    assert [j["gpu_speedup"] for j in jobs] == [pytest.approx(30.0 / 4.0), pytest.approx(38.0 / 7.0)]

    check = gpu_check.GpuCheck(rows=rows, jobs=jobs, folder=tmp_path / "check", failed=True,
                               meta={"started": "2026-11-29T00:00:00Z", "epochs": 1, "cudnn": "9",
                                     "environment": {"gpus": ["/physical_device:GPU:0"], "cpu_count": 16}})
    md = gpu_check_markdown(check)
    assert "| literal (GRU) | gru_1: cudnn / cudnn | 4.0 | 30.0 | 7.5x | gru_1: compiled / compiled | ok |" in md
    assert "planned cudnn / cudnn" in md and "/physical_device:GPU:0" in md
    files = write_gpu_check(check)
    assert json.loads(files["json"].read_text())["failed"] is True
    assert files["md"].read_text() == md
    with pytest.raises(FileExistsError):
        write_gpu_check(check)
