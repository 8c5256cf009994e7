"""The console views of one run: its summary, predictions, and `inspect`'s layer and kernel tables."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from gru_lab.report.format import fmt


def run_summary_table(metrics: dict[str, Any], title: str = "Run summary") -> Table:
    """One run at a glance: test metrics, timing, parameters, device."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("status", metrics.get("status", "?"))
    for key, value in (metrics.get("test") or {}).items():
        table.add_row(f"test {key.removesuffix('_units')}{' (file units)' if key.endswith('_units') else ''}",
                      fmt(value))
    data = metrics.get("data") or {}
    if data.get("baseline_mse") is not None:
        table.add_row("baseline mse (predict the mean)", fmt(data["baseline_mse"]))
    if data.get("last_value_mse") is not None:
        table.add_row("baseline mse (repeat the last value)", fmt(data["last_value_mse"]))
    if data.get("last_value_mse_units") is not None:
        table.add_row("baseline mse (repeat the last value, file units)", fmt(data["last_value_mse_units"]))
    if data.get("baseline_mse_units") is not None:
        table.add_row("baseline mse (predict the train mean, file units)", fmt(data["baseline_mse_units"]))
    if data.get("majority_accuracy") is not None:
        table.add_row(f"baseline accuracy (always '{data.get('majority_class')}')", fmt(data["majority_accuracy"]))
    notes = data_notes(data)
    if notes:
        table.add_row("data notes", notes)
    classical = metrics.get("classical_baseline") or {}
    for b in classical.get("items", []):
        table.add_row(f"classical baseline: {b['label']}",
                      f"{b['metric'].removeprefix('test_')} {fmt(b['value'])} (fit {b['fit_seconds']:.3g} s, "
                      f"{b['size']:,} numbers)")
    if classical.get("note"):
        table.add_row("classical baseline", classical["note"])
    table.add_row("epochs run", fmt(metrics.get("epochs_run")))
    table.add_row("best epoch", fmt(metrics.get("best_epoch")))
    table.add_row("median s/epoch", fmt(metrics.get("median_epoch_seconds"), 3))
    table.add_row("train samples/s", fmt(metrics.get("train_samples_per_second"), 5))
    table.add_row("inference samples/s", fmt(metrics.get("inference_samples_per_second"), 5))
    params = metrics.get("params") or {}
    table.add_row("parameters (total)", fmt(params.get("total")))
    table.add_row("parameters (recurrent)", fmt(params.get("recurrent")))
    cudnn = metrics.get("cudnn") or []
    if cudnn:
        table.add_row("cuDNN eligible (on a GPU)", ", ".join(
            f"{c['layer']}: {'yes' if c['eligible'] else 'no (' + '; '.join(c['reasons']) + ')'}" for c in cudnn))
    env = metrics.get("environment") or {}
    table.add_row("device", f"{env.get('device', '?')} (TF {env.get('tensorflow', '?')}, "
                            f"Keras {env.get('keras', '?')})")
    return table


def data_notes(data: dict[str, Any]) -> str:
    """What reading a file did that a user should know: gaps in time, cells filled, rows dropped, test rows outside
    the range the scaling saw, test sequences cut to maxlen."""
    notes = []
    gaps = (data.get("time") or {}).get("gaps")
    if gaps:
        notes.append(f"{gaps} gap(s) in time, the largest {data['time']['largest_gap']} (usual step "
                     f"{data['time']['step']})")
    if data.get("cells_filled"):
        notes.append(f"{data['cells_filled']} empty cell(s) filled")
    if data.get("rows_dropped"):
        notes.append(f"{data['rows_dropped']} row(s) with empty cells dropped")
    if data.get("range_note"):
        notes.append(data["range_note"])
    if data.get("test_truncated_fraction"):
        notes.append(f"{100 * data['test_truncated_fraction']:.1f}% of the test sequences cut to maxlen "
                     f"{data.get('maxlen')}")
    return "; ".join(notes)


def predictions_table(predictions: list[dict[str, Any]]) -> Table:
    table = Table(title="Predictions on the first test samples", header_style="bold")
    table.add_column("input")
    table.add_column("target", justify="right")
    table.add_column("prediction", justify="right")
    for row in predictions:
        shown = row.get("input")
        table.add_row("-" if shown is None else _fmt_seq(shown), fmt(row["target"]), fmt(row["prediction"]))
    return table


def _fmt_seq(values: Any) -> str:
    text = str(_rounded(values))
    return text if len(text) <= 60 else text[:57] + "..."


def _rounded(values: Any) -> Any:
    if isinstance(values, list):
        return [_rounded(v) for v in values]
    return round(values, 3) if isinstance(values, float) else values


def layers_table(plans, cudnn_why: list[str]) -> Table:
    """inspect: every layer with its exact parameter formula; recurrent layers with their cuDNN eligibility,
    which is about a GPU whatever this machine has."""
    cudnn = "yes" if not cudnn_why else "no: " + "; ".join(cudnn_why)
    table = Table(title="Layers", header_style="bold")
    table.add_column("layer", no_wrap=True)
    table.add_column("kind")
    table.add_column("params", justify="right", no_wrap=True, min_width=9)
    table.add_column("formula", min_width=24)
    table.add_column("cuDNN eligible (on a GPU)", overflow="fold")
    for p in plans:
        table.add_row(p.name, p.kind, f"{p.params:,}", p.formula, cudnn if p.recurrent else "")
    table.add_row("total", "", f"{sum(p.params for p in plans):,}", "", "")
    return table


def kernels_table(plan) -> Table:
    """inspect: the kernel plan (models.kernels): per recurrent layer, what its training and its inference
    will run on this machine, and why not a faster kernel."""
    xla = f"XLA: training {'on' if plan.xla else 'off'}, inference {'on' if plan.xla_inference else 'off'}"
    table = Table(title=f"Recurrent kernels on this machine ({plan.device}; {xla})", header_style="bold")
    table.add_column("layer", no_wrap=True)
    table.add_column("training", no_wrap=True)
    table.add_column("inference", no_wrap=True)
    table.add_column("why not faster", overflow="fold")
    for layer in plan.layers:
        why = list(dict.fromkeys(layer.train_why + layer.inference_why))
        table.add_row(layer.layer, layer.train, layer.inference, "; ".join(why) or "-")
    return table


def memory_table(memory, available: tuple[int, str] | None) -> Table:
    """inspect: the run's estimated peak memory, part by part (models.memory), against what this machine has."""
    from gru_lab.models.memory import human_bytes

    room = f"{human_bytes(available[0])} available ({available[1]})" if available else "available memory unknown"
    table = Table(title=f"Memory estimate of a training run ({room})", header_style="bold")
    table.add_column("part")
    table.add_column("bytes", justify="right")
    for part, size in memory.parts.items():
        table.add_row(part, human_bytes(size))
    table.add_row("total", human_bytes(memory.total))
    return table
