"""`gru-lab gpu-check` (`make gpu-check`): on a machine with a GPU, does each recurrent layer run the kernel the
kernel plan says (cuDNN where a layer is eligible), and how do its epochs compare with `train.device: cpu` there?

Each job (a config, or one cell of a compare config) trains for a few epochs (one by default) twice, on the GPU
and with `train.device: cpu`, each run in a fresh process (the GPUs can only be hidden before TensorFlow starts).
A run's answer is what its record says: the kernel plan (execution.planned), the kernels the layers report they
ran (execution.kernels), the epochs' seconds, the test metrics. Returns plain values; report/gpu_check.py
writes gpu_check.md and gpu_check.json.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from gru_lab import cells as cell_names
from gru_lab.config import ExperimentConfig, config_from_raw
from gru_lab.errors import GruLabError

DEVICES = ("gpu", "cpu")
COMPARE_CELLS = ("simple_rnn", "lstm", "gru")  # imdb_compare's three cells
NO_GPU = ("gpu-check: TensorFlow sees no GPU on this machine, so there is no kernel to check; run it where one "
          "is (pip install -e '.[gpu]' installs TensorFlow's CUDA build). Nothing was run.")

RunHook = Callable[[str, str], None]  # (job label, device) as each run starts


@dataclass
class Job:
    label: str  # "imdb_gru_literal (GRU)"
    cfg: ExperimentConfig  # device left to each run


@dataclass
class GpuCheck:
    rows: list[dict[str, Any]]  # one per (job, device): check_row
    jobs: list[dict[str, Any]]  # one per job: its GPU and CPU rows side by side (pair_rows)
    meta: dict[str, Any]
    folder: Path
    failed: bool = False  # some layer did not run what the plan said, or a run failed
    notes: list[str] = field(default_factory=list)


def plan_jobs(configs: list[ExperimentConfig], compare: list[ExperimentConfig], epochs: int) -> list[Job]:
    """Each config with its own cell, and each compare config with each of the three cells; `epochs` epochs."""
    jobs = [(cfg, cfg.model.cell) for cfg in configs] + [(cfg, cell) for cfg in compare for cell in COMPARE_CELLS]
    out = []
    for cfg, cell in jobs:
        raw = cfg.model_dump(mode="json")
        raw["model"]["cell"] = cell
        raw["train"]["epochs"] = epochs
        raw["output"]["save_model"] = False
        out.append(Job(f"{cfg.name} ({cell_names.label(cell)})", config_from_raw(raw, f"gpu-check ({cfg.name})")))
    return out


def require_gpu() -> None:
    from gru_lab.training.device import machine_facts

    if not machine_facts().gpu:
        raise GruLabError(NO_GPU)


def check_row(label: str, device: str, answer: dict[str, Any]) -> dict[str, Any]:
    """One run's line of the report: what ran per layer against the plan, and its epochs.

    "check" is "ok" when every layer's training and inference kernels are the planned ones (on the GPU: cuDNN
    wherever the plan found the layer eligible), else it says which layer differed."""
    execution = answer["execution"]
    planned = {p["layer"]: p for p in execution.get("planned", [])}
    mismatches, layers = [], []
    for ran in execution.get("kernels", []):
        plan = planned.get(ran["layer"], {})
        layers.append({"layer": ran["layer"], "kernel": ran["kernel"], "inference": ran["inference"],
                       "planned": plan.get("train"), "planned_inference": plan.get("inference"),
                       "why_not_faster": plan.get("train_why", [])})
        if (ran["kernel"], ran["inference"]) != (plan.get("train"), plan.get("inference")):
            mismatches.append(f"{ran['layer']} ran {ran['kernel']} / {ran['inference']}, planned "
                              f"{plan.get('train')} / {plan.get('inference')}")
    if not layers:
        mismatches.append("the record names no recurrent kernel")
    seconds = [r["seconds"] for r in answer["history"]]
    return {
        "job": label, "device": device, "record_device": execution.get("device"), "layers": layers,
        "kernels": "; ".join(f"{x['layer']}: {x['kernel']} / {x['inference']}" for x in layers),
        "epoch_s": seconds, "s_per_epoch": statistics.median(seconds) if seconds else None,
        "test": answer.get("test", {}), "check": "ok" if not mismatches else "; ".join(mismatches),
    }


def pair_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per job: the GPU run's kernels and check beside both devices' s/epoch, and CPU s/epoch / GPU s/epoch."""
    by_job: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_job.setdefault(row["job"], {})[row["device"]] = row
    out = []
    for job, runs in by_job.items():
        gpu, cpu = runs.get("gpu", {}), runs.get("cpu", {})
        g, c = gpu.get("s_per_epoch"), cpu.get("s_per_epoch")
        out.append({"job": job, "gpu_kernels": gpu.get("kernels"), "gpu_check": gpu.get("check"),
                    "gpu_s_per_epoch": g, "cpu_kernels": cpu.get("kernels"), "cpu_check": cpu.get("check"),
                    "cpu_s_per_epoch": c, "gpu_speedup": c / g if g and c else None})
    return out


def run_check(jobs: list[Job], folder: Path | None = None, on_run: RunHook | None = None,
              output_dir: str = "results") -> GpuCheck:
    """Every job on the GPU and on the CPU, each in a fresh process; a failed run is recorded, never fatal."""
    from gru_lab.bench.workers import worker_answer
    from gru_lab.training.fit import device_info

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows, notes = [], []
    for job in jobs:
        for device in DEVICES:
            if on_run:
                on_run(job.label, device)
            raw = job.cfg.model_dump(mode="json")
            raw["train"]["device"] = device
            try:
                answer = worker_answer("gru_lab.bench.gpu_check", {"config": raw}, f"{job.label} on {device}")
            except RuntimeError as exc:
                last = (str(exc).strip().splitlines() or ["no output"])[-1]
                rows.append({"job": job.label, "device": device, "layers": [], "kernels": None, "epoch_s": [],
                             "s_per_epoch": None, "test": {}, "check": f"run failed: {last}"})
                continue
            if not notes:
                notes.append(f"data: {answer['data']}")
            rows.append(check_row(job.label, device, answer))
    folder = folder or Path(output_dir) / "gpu-check" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    meta = {"started": started, "environment": device_info(), "cudnn": _cudnn_version(),
            "epochs": jobs[0].cfg.train.epochs if jobs else None, "jobs": [j.label for j in jobs]}
    failed = any(r["check"] != "ok" for r in rows)
    return GpuCheck(rows=rows, jobs=pair_rows(rows), meta=meta, folder=folder, failed=failed, notes=notes)


def _cudnn_version() -> str | None:
    import tensorflow as tf

    info = tf.sysconfig.get_build_info()
    return info.get("cudnn_version")


def _worker(job_path: str, answer_path: str) -> None:
    """One run: train (the device setup from the kernel plan) and answer with what its record says."""
    import json

    from gru_lab.bench.bench import bench_data
    from gru_lab.training.fit import train

    job = json.loads(Path(job_path).read_text())
    cfg = config_from_raw(job["config"], "gpu-check worker")
    data = bench_data(cfg)
    result = train(cfg, data)
    m = result.metrics
    answer = {"history": result.history, "execution": m["execution"], "test": m.get("test", {}),
              "peak_memory": m.get("peak_memory"), "data": data.extra.get("source", data.name)}
    Path(answer_path).write_text(json.dumps(answer, default=str))


if __name__ == "__main__":  # python -m gru_lab.bench.gpu_check JOB.json ANSWER.json
    import os
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _worker(sys.argv[1], sys.argv[2])
