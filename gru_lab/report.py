"""Presentation: results -> rich tables on the console (and, for comparisons, files and plots)."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def run_summary_table(metrics: dict[str, Any], title: str = "Run summary") -> Table:
    """One run at a glance: test metrics, timing, parameters, device."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("status", metrics.get("status", "?"))
    for key, value in (metrics.get("test") or {}).items():
        table.add_row(f"test {key}", _fmt(value))
    if metrics.get("data", {}).get("baseline_mse") is not None:
        table.add_row("baseline mse (predict the mean)", _fmt(metrics["data"]["baseline_mse"]))
    table.add_row("epochs run", _fmt(metrics.get("epochs_run")))
    table.add_row("best epoch", _fmt(metrics.get("best_epoch")))
    table.add_row("median s/epoch", _fmt(metrics.get("median_epoch_seconds"), 3))
    table.add_row("train samples/s", _fmt(metrics.get("train_samples_per_second"), 5))
    table.add_row("inference samples/s", _fmt(metrics.get("inference_samples_per_second"), 5))
    params = metrics.get("params") or {}
    table.add_row("parameters (total)", _fmt(params.get("total")))
    table.add_row("parameters (recurrent)", _fmt(params.get("recurrent")))
    cudnn = metrics.get("cudnn") or []
    if cudnn:
        table.add_row("cuDNN eligible", ", ".join(
            f"{c['layer']}: {'yes' if c['eligible'] else 'no (' + '; '.join(c['reasons']) + ')'}" for c in cudnn))
    env = metrics.get("environment") or {}
    table.add_row("device", f"{env.get('device', '?')} (TF {env.get('tensorflow', '?')}, Keras {env.get('keras', '?')})")
    return table


def predictions_table(predictions: list[dict[str, Any]]) -> Table:
    table = Table(title="Predictions on the first test samples", header_style="bold")
    table.add_column("input")
    table.add_column("target", justify="right")
    table.add_column("prediction", justify="right")
    for row in predictions:
        shown = row.get("input")
        table.add_row("-" if shown is None else _fmt_seq(shown), _fmt(row["target"]), _fmt(row["prediction"]))
    return table


def _fmt_seq(values: Any) -> str:
    text = str(_rounded(values))
    return text if len(text) <= 60 else text[:57] + "..."


def _rounded(values: Any) -> Any:
    if isinstance(values, list):
        return [_rounded(v) for v in values]
    return round(values, 3) if isinstance(values, float) else values


def layers_table(plans, verdicts) -> Table:
    """inspect: every layer with its parameter formula, and cuDNN eligibility of recurrent layers."""
    cudnn = {v.layer: v.describe() for v in verdicts}
    table = Table(title="Layers", header_style="bold")
    for col, justify in (("layer", "left"), ("kind", "left"), ("params", "right")):
        table.add_column(col, justify=justify, no_wrap=True)
    table.add_column("formula", no_wrap=True)  # a formula split over lines is hard to read (and to grep)
    table.add_column("cuDNN", overflow="fold")
    for p in plans:
        table.add_row(p.name, p.kind, f"{p.params:,}", p.formula, cudnn.get(p.name, ""))
    table.add_row("total", "", f"{sum(p.params for p in plans):,}", "", "")
    return table
