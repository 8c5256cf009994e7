"""A GPU check (gru_lab.bench.gpu_check.run_check) on the console and in gpu_check.md and gpu_check.json."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from gru_lab.files import atomic_write_json, atomic_write_text
from gru_lab.report.format import markdown_table, new_folder, notes_section, num

HEADERS = ["job", "GPU: kernel per layer (train / inference)", "GPU s/epoch", "CPU s/epoch",
           "CPU s/epoch\n÷ GPU s/epoch", "CPU: kernel per layer", "check (GPU; CPU)"]


def _cells(check) -> list[list[str]]:
    rows = []
    for job in check.jobs:
        verdict = job["gpu_check"] if job["cpu_check"] == "ok" else f"{job['gpu_check']}; CPU: {job['cpu_check']}"
        rows.append([job["job"], job["gpu_kernels"] or "-", num(job["gpu_s_per_epoch"], "{:.1f}"),
                     num(job["cpu_s_per_epoch"], "{:.1f}"), num(job["gpu_speedup"], "{:.1f}x"),
                     job["cpu_kernels"] or "-", verdict])
    return rows


def gpu_check_markdown(check) -> str:
    m = check.meta
    env = m.get("environment") or {}
    lines = [f"# gru-lab gpu-check ({m['started']})", "",
             f"- machine: {', '.join(env.get('gpus') or []) or 'no GPU'}; {env.get('cpu_count')} CPU core(s); "
             f"TensorFlow {env.get('tensorflow')}, Keras {env.get('keras')}, cuDNN {m.get('cudnn') or '?'}",
             f"- each job trained {m.get('epochs')} epoch(s) on the GPU and again with `train.device: cpu`, each "
             "run in a fresh process; s/epoch is the median epoch (the first includes tracing and cuDNN's setup)",
             "- check: every recurrent layer ran the kernels the kernel plan named (on the GPU, cuDNN wherever "
             "the layer is eligible; SimpleRNN has no cuDNN kernel in Keras)", "",
             markdown_table(HEADERS, _cells(check))]
    return "\n".join(lines + notes_section(check.notes))


def write_gpu_check(check) -> dict[str, Path]:
    """gpu_check.md and gpu_check.json in a new folder, each written atomically; never over an earlier check."""
    folder = check.folder
    new_folder(folder, "gpu-check")
    files = {"md": folder / "gpu_check.md", "json": folder / "gpu_check.json"}
    atomic_write_text(files["md"], gpu_check_markdown(check))
    atomic_write_json(files["json"], {"meta": check.meta, "jobs": check.jobs, "runs": check.rows,
                                      "notes": check.notes, "failed": check.failed})
    return files


def print_gpu_check(console, check) -> None:
    table = Table(title="gpu-check: kernels and s/epoch, GPU against CPU", header_style="bold")
    for h in HEADERS:
        table.add_column(h, justify="right" if "s/epoch" in h else "left")
    for row in _cells(check):
        table.add_row(*(escape(c) for c in row))
    console.print(table)
    for note in check.notes:
        console.print(f"note: {note}", soft_wrap=True, markup=False, highlight=False)
