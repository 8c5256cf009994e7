"""Presentation: results -> rich tables on the console (and, for comparisons, files and plots)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
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


def layers_table(plans, verdicts, fast_verdicts=()) -> Table:
    """inspect: every layer with its parameter formula, cuDNN eligibility (GPU) and the fused loop (CPU)
    for recurrent layers."""
    cudnn = {v.layer: v.describe() for v in verdicts}
    fast = {v.layer: v.describe() for v in fast_verdicts}
    table = Table(title="Layers", header_style="bold")
    table.add_column("layer", no_wrap=True)
    table.add_column("kind")
    table.add_column("params", justify="right", no_wrap=True, min_width=9)
    table.add_column("formula", min_width=24)
    table.add_column("cuDNN", overflow="fold")
    if fast:
        table.add_column("fused CPU loop", overflow="fold")
    for p in plans:
        table.add_row(p.name, p.kind, f"{p.params:,}", p.formula, cudnn.get(p.name, ""),
                      *([fast.get(p.name, "")] if fast else []))
    table.add_row("total", "", f"{sum(p.params for p in plans):,}", "", "", *([""] if fast else []))
    return table


def predictions_text_table(texts: list[str], probabilities: list[float]) -> Table:
    """predict: one row per review with P(positive) and the label at the 0.5 threshold."""
    table = Table(title="Predictions", header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("P(positive)", justify="right")
    table.add_column("label")
    table.add_column("review")
    for i, (text, p) in enumerate(zip(texts, probabilities), 1):
        label = "positive" if p >= 0.5 else "negative"
        table.add_row(str(i), f"{p:.3f}", label, text if len(text) <= 70 else text[:67] + "...")
    return table


# ----------------------------------------------------------------------------- compare

CELL_COLOR = {"simple_rnn": "tab:gray", "lstm": "tab:blue", "gru": "tab:orange"}
CELL_LABEL = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
VERDICT_STYLE = {"holds": "green", "does not hold": "red", "inconclusive": "yellow"}
PLOTS = {"learning_curves": "Learning curves (validation metric per epoch, mean and min-max over seeds)",
         "metric_vs_time": "Test metric against training time (one point per run)",
         "params": "Parameters by cell"}

# comparison column -> header on the console and in comparison.md (the CSV/JSON keep the column names)
HEADERS = {
    "cell": "cell", "length": "T", "units": "units", "runs": "runs", "params_total": "params",
    "params_recurrent": "recurrent", "recurrent_vs_lstm_pct": "rec. vs\nLSTM", "s_per_epoch": "s/epoch",
    "train_samples_per_s": "train\nsamples/s", "infer_samples_per_s": "infer\nsamples/s",
    "infer_ms_per_sample": "infer\nms/sample", "metric_mean": "test {metric}\n(mean ± sd)",
    "mse_vs_baseline": "mse /\nbaseline", "best_epoch": "best\nepoch", "cudnn": "cuDNN",
    "peak_rss_mib": "peak RSS\nMiB", "peak_gpu_mib": "peak GPU\nMiB", "errors": "errors",
}
# The console shows the comparison as two tables that fit 120 columns; comparison.md has one.
CONSOLE_GROUPS = {
    "size and speed": ("cell", "length", "units", "params_total", "params_recurrent", "recurrent_vs_lstm_pct",
                       "s_per_epoch", "train_samples_per_s", "infer_samples_per_s", "infer_ms_per_sample",
                       "peak_rss_mib", "peak_gpu_mib"),
    "test metric over seeds": ("cell", "length", "units", "runs", "metric_mean", "mse_vs_baseline", "best_epoch",
                               "cudnn", "errors"),
}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _comparison_cells(df, only: tuple[str, ...] | None = None) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells of a comparison frame, shared by rich and Markdown."""
    columns = [c for c in HEADERS if c in df.columns and (only is None or c in only)
               and not (c == "errors" and df[c].isna().all())]
    metric = str(df["metric"].iloc[0]).removeprefix("test_") if len(df) else "metric"
    headers = [HEADERS[c].format(metric=metric) for c in columns]
    rows = []
    for rec in df.to_dict(orient="records"):
        rows.append([CELL_LABEL.get(rec[c], rec[c]) if c == "cell" else _format_cell(c, rec.get(c), rec)
                     for c in columns])
    return headers, rows


def _format_cell(column: str, value: Any, rec: dict[str, Any]) -> str:
    """One cell of a comparison or sweep table, formatted the same way in both (rich and Markdown)."""
    if column == "metric_mean":
        sd = rec.get("metric_std")
        return "-" if _missing(value) else f"{value:.4g}" + ("" if _missing(sd) else f" ± {sd:.2g}")
    if _missing(value):
        return "-"
    if column == "recurrent_vs_lstm_pct":
        return f"{value:.1f}%"
    if column in ("params_total", "params_recurrent", "length"):
        return f"{int(value):,}"
    if column in ("peak_rss_mib", "peak_gpu_mib", "train_samples_per_s", "infer_samples_per_s"):
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def comparison_tables(df, title: str) -> list[Table]:
    tables = []
    for group, columns in CONSOLE_GROUPS.items():
        headers, rows = _comparison_cells(df, columns)
        table = Table(title=f"{title}: {group}", header_style="bold")
        for h in headers:
            wide = h in ("cuDNN", "errors")
            table.add_column(h, justify="left" if h in ("cell", "units", "runs") or wide else "right",
                             overflow="fold", no_wrap=not wide)
        for row in rows:
            table.add_row(*(escape(c) for c in row))
        tables.append(table)
    return tables


def verdicts_table(verdicts) -> Table:
    table = Table(title="Claims checked against these runs", header_style="bold", show_lines=True)
    table.add_column("claim")
    table.add_column("verdict", no_wrap=True)
    table.add_column("numbers", overflow="fold")
    for v in verdicts:
        table.add_row(escape(v.claim), f"[{VERDICT_STYLE[v.status]}]{v.status}[/]", escape(v.detail))
    return table


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


@dataclass
class Comparison:
    """What `compare` shows and writes: the tables, the verdicts, and the files written."""

    table: Any  # pandas DataFrame, one row per cell (and length)
    runs: Any  # pandas DataFrame, one row per planned run
    verdicts: list
    notes: list[str]
    files: dict[str, Path]


def build_comparison(result) -> Comparison:
    from gru_lab.compare import check_claims, comparison_frame, lstm_reference_note, runs_frame

    plan = result.plan
    notes = list(plan.notes)
    note = lstm_reference_note(plan, result)
    if note:
        notes.append(note)
    if result.isolation == "inline":
        notes.append("runs trained inline (one process): peak RSS is the process's high-water mark, not per run.")
    else:
        notes.append("peak RSS: each run's own worker process (ru_maxrss), so it includes TensorFlow's runtime.")
    return Comparison(comparison_frame(result), runs_frame(result), check_claims(result), notes, {})


def write_comparison(result) -> Comparison:
    """comparison.csv/.md/.json and the plots under the compare folder, each written atomically."""
    comp = build_comparison(result)
    folder = result.plan.folder
    folder.mkdir(parents=True, exist_ok=True)
    plots = write_plots(result, comp, folder)
    comp.files.update(plots)
    comp.files.update(_write_table_files(folder / "comparison", comp.table, comparison_markdown(result, comp),
                                         comparison_record(result, comp)))
    return comp


def _write_table_files(stem, table, markdown: str, record) -> dict:
    """<stem>.csv, .md and .json, each written atomically; returns {"csv"|"md"|"json": path}."""
    from gru_lab.runs import atomic_write_json, atomic_write_text

    paths = {kind: stem.with_name(f"{stem.name}.{kind}") for kind in ("csv", "md", "json")}
    atomic_write_text(paths["csv"], table.to_csv(index=False))
    atomic_write_text(paths["md"], markdown)
    atomic_write_json(paths["json"], record)
    return paths


def _records(df) -> list[dict[str, Any]]:
    return [{k: (None if _missing(v) else v) for k, v in rec.items()} for rec in df.to_dict(orient="records")]


def comparison_record(result, comp: Comparison) -> dict[str, Any]:
    plan = result.plan
    env = next((o.metrics.get("environment") for o in result.outcomes if o.metrics), None)
    return {
        "name": plan.name, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": plan.source,
        "cells": plan.cells, "seeds": plan.seeds, "lengths": plan.lengths, "units": plan.units,
        "equal_params": plan.equal_params, "budget": plan.budget, "isolation": result.isolation,
        "interrupted": result.interrupted, "compare_seconds": result.seconds, "environment": env,
        "table": _records(comp.table), "runs": _records(comp.runs),
        "verdicts": [{"claim": v.claim, "status": v.status, "detail": v.detail, "numbers": v.numbers}
                     for v in comp.verdicts],
        "notes": comp.notes, "plots": {k: p.name for k, p in comp.files.items() if k in PLOTS},
    }


def comparison_markdown(result, comp: Comparison) -> str:
    plan = result.plan
    counts = comp.runs.status.value_counts().to_dict()
    lengths = f", T in {plan.lengths}" if plan.lengths else ""
    budget = f", equal recurrent budgets of {plan.budget:,}" if plan.equal_params else ""
    lines = [f"# Comparison: {plan.name}", "",
             f"Base config: {plan.source} (data: {plan.base.data.name}{lengths}); cells "
             f"{', '.join(CELL_LABEL[c] for c in plan.cells)}; train seeds {plan.seeds}{budget}. "
             f"Runs: {', '.join(f'{n} {s}' for s, n in counts.items())}"
             + (" (interrupted: run the same command again to finish)." if result.interrupted else "."), "",
             "## Table", "", markdown_table(*_comparison_cells(comp.table))]
    lines += [f"- {n}" for n in comp.notes] + [""]
    lines += ["## Verdicts", ""]
    lines += [f"- **{v.claim}**: {v.status}. {v.detail}" for v in comp.verdicts] + [""]
    if any(k in PLOTS for k in comp.files):
        lines += ["## Plots", ""]
        lines += [f"![{PLOTS[k]}]({p.name})" + "\n" for k, p in comp.files.items() if k in PLOTS]
    lines += ["## Runs", ""]
    run_rows = [[r["run_id"], CELL_LABEL[r["cell"]], "-" if _missing(r["length"]) else str(int(r["length"])),
                 str(r["seed"]), r["status"], "-" if _missing(r["value"]) else f"{r['value']:.4g}",
                 r["error"] or ("-" if _missing(r["s_per_epoch"]) else f"{r['s_per_epoch']:.3g} s/epoch")]
                for r in comp.runs.to_dict(orient="records")]
    lines.append(markdown_table(["run id", "cell", "T", "seed", "status", str(comp.runs.metric.iloc[0]), "s/epoch or error"],
                                run_rows))
    failed = [o for o in result.outcomes if o.status == "failed"]
    if failed:
        lines += ["Failed runs keep their log under `failures/` and are retried by the next compare.", ""]
    return "\n".join(lines)


def print_comparison(console, result, comp: Comparison) -> None:
    for table in comparison_tables(comp.table, title=f"{result.plan.name} ({result.plan.base.data.name})"):
        console.print(table)
    for note in comp.notes:
        console.print(f"[dim]- {escape(note)}[/]", soft_wrap=True)
    console.print(verdicts_table(comp.verdicts))
    for key in ("md", "csv", "json"):
        if key in comp.files:
            console.print(f"{key}: {comp.files[key]}", soft_wrap=True, highlight=False)


# ----------------------------------------------------------------------------- plots


def _save_figure(fig, path: Path) -> None:
    import io

    from gru_lab.runs import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def write_plots(result, comp: Comparison, folder: Path) -> dict[str, Path]:
    """The three PNGs, drawn with matplotlib's object API (no pyplot, no display needed)."""
    written = {}
    done = [o for o in result.outcomes if o.ok]
    if not done:
        return written
    for key, draw in (("learning_curves", _plot_learning_curves), ("metric_vs_time", _plot_metric_vs_time),
                      ("params", _plot_params)):
        path = folder / f"{key}.png"
        _save_figure(draw(result, comp), path)
        written[key] = path
    return written


def _history(folder: Path):
    import pandas as pd

    return pd.read_csv(folder / "history.csv")


def _plot_learning_curves(result, comp: Comparison):
    import pandas as pd
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    plan = result.plan
    lengths = plan.lengths or [None]
    fig = Figure(figsize=(5.5 * len(lengths), 4))
    axes = fig.subplots(1, len(lengths), squeeze=False)[0]
    classification = str(comp.table["metric"].iloc[0]) == "test_accuracy"
    for ax, length in zip(axes, lengths):
        label = None
        for cell in plan.cells:
            curves = []
            for o in result.outcomes:
                if o.ok and o.run.cell == cell and o.run.length == length:
                    h = _history(o.folder).set_index("epoch")
                    key = next(k for k in (("val_accuracy", "accuracy") if classification else ("val_loss", "loss"))
                               if k in h.columns)
                    label = label or key
                    curves.append(h[key])
            if not curves:
                continue
            frame = pd.concat(curves, axis=1)
            ax.plot(frame.index, frame.mean(axis=1), color=CELL_COLOR[cell], label=f"{CELL_LABEL[cell]} (n={len(curves)})")
            if len(curves) > 1:
                ax.fill_between(frame.index, frame.min(axis=1), frame.max(axis=1), color=CELL_COLOR[cell], alpha=0.2)
        name = {"val_loss": "validation mse", "loss": "training mse", "val_accuracy": "validation accuracy",
                "accuracy": "training accuracy"}.get(label or "", label or "")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        if not classification:
            ax.set_yscale("log")
        ax.set_title(plan.base.data.name + ("" if length is None else f", T={length}"))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def _plot_metric_vs_time(result, comp: Comparison):
    from matplotlib.figure import Figure

    runs = comp.runs[comp.runs.status.isin(["finished", "reused"])]
    metric = str(comp.table["metric"].iloc[0])
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    markers = dict(zip(result.plan.lengths or [None], "osD^v<>p*h"))
    for (cell, length), group in runs.groupby(["cell", "length"], dropna=False, sort=False):
        length = None if _missing(length) else int(length)
        ax.scatter(group.fit_seconds, group.value, color=CELL_COLOR[cell], marker=markers.get(length, "o"),
                   label=CELL_LABEL[cell] + ("" if length is None else f" T={length}"))
    ax.set_xlabel("training time (s, all epochs)")
    ax.set_ylabel(metric.replace("_", " "))
    if metric == "test_mse":
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _plot_params(result, comp: Comparison):
    from matplotlib.figure import Figure

    table = comp.table.drop_duplicates("cell")  # parameter counts do not depend on the sequence length
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    x = range(len(table))
    width = 0.4
    for offset, column, name in ((-width / 2, "params_total", "total"), (width / 2, "params_recurrent", "recurrent layers")):
        bars = ax.bar([i + offset for i in x], table[column], width, label=name,
                      color=[CELL_COLOR[c] for c in table.cell], alpha=1.0 if column == "params_recurrent" else 0.5)
        ax.bar_label(bars, labels=[f"{int(v):,}" for v in table[column]], fontsize="small")
    ax.set_xticks(list(x), [f"{CELL_LABEL[c]}\n(units {u})" for c, u in zip(table.cell, table.units)])
    ax.set_ylabel("parameters")
    ax.set_title("Parameters by cell (light: total, dark: recurrent)")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- leaderboard


def leaderboard_frame(root: Path):
    """Every run folder under root: one row each, grouped by dataset, best test metric first."""
    import json

    import pandas as pd
    import yaml

    from gru_lab.runs import find_run_folders

    rows = []
    for folder in find_run_folders(root):
        try:
            m = json.loads((folder / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        try:
            cfg = yaml.safe_load((folder / "config.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            cfg = {}
        data, model = cfg.get("data") or {}, cfg.get("model") or {}
        metric, higher = ("accuracy", True) if m.get("task") in ("binary", "multiclass") else ("mse", False)
        size = next((f"{label}={data[k]}" for k, label in (("length", "T"), ("window", "window"), ("maxlen", "maxlen"))
                     if k in data), "")
        rows.append({
            "dataset": f"{data.get('name', '?')} {size}".strip(), "name": m.get("name", folder.parent.name),
            "run_id": m.get("run_id", folder.name), "cell": model.get("cell", "?"),
            "units": _fmt_units(model.get("units")), "status": m.get("status"), "metric": metric,
            "value": (m.get("test") or {}).get(metric), "higher_is_better": higher,
            "params": (m.get("params") or {}).get("total"), "s_per_epoch": m.get("median_epoch_seconds"),
            "folder": str(folder.relative_to(root)),
        })
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    # Best first within a dataset: accuracy descending, mse ascending; unfinished runs last.
    df["_key"] = [(-v if h else v) if not _missing(v) else float("inf") for v, h in zip(df.value, df.higher_is_better)]
    df = df.sort_values(["dataset", "_key", "name", "run_id"]).drop(columns=["_key", "higher_is_better"])
    df.insert(1, "rank", df.groupby("dataset").cumcount() + 1)
    return df.reset_index(drop=True)


def _fmt_units(units: Any) -> str:
    return ",".join(str(u) for u in units) if isinstance(units, list) else str(units)


def _leaderboard_cells(df) -> tuple[list[str], list[list[str]]]:
    headers = ["dataset", "#", "name", "run id", "cell(units)", "test metric", "params", "s/epoch"]
    rows = []
    for r in df.to_dict(orient="records"):
        value = "-" if _missing(r["value"]) else f"{r['metric']} {r['value']:.4g}"
        if r["status"] != "finished":
            value += f" ({r['status']})"
        rows.append([r["dataset"], str(r["rank"]), r["name"], r["run_id"],
                     f"{CELL_LABEL.get(r['cell'], r['cell'])}({r['units']})", value,
                     "-" if _missing(r["params"]) else f"{int(r['params']):,}",
                     "-" if _missing(r["s_per_epoch"]) else f"{r['s_per_epoch']:.3g}"])
    return headers, rows


def leaderboard_table(df, title: str) -> Table:
    headers, rows = _leaderboard_cells(df)
    table = Table(title=title, header_style="bold")
    for h in headers:
        table.add_column(h, justify="right" if h in ("#", "params", "s/epoch") else "left",
                         no_wrap=h in ("run id", "dataset", "test metric"), overflow="fold")
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    return table


def write_leaderboard(df, root: Path) -> dict[str, Path]:
    """<root>/leaderboard.csv and .md: derived views, rewritten each time; no run folder is touched."""
    from gru_lab.runs import atomic_write_text

    paths = {"csv": root / "leaderboard.csv", "md": root / "leaderboard.md"}
    atomic_write_text(paths["csv"], df.to_csv(index=False))
    atomic_write_text(paths["md"], f"# Leaderboard: {root}\n\n{len(df)} runs, best test metric first within each "
                                   f"dataset (accuracy: higher, mse: lower).\n\n" + markdown_table(*_leaderboard_cells(df)))
    return paths


# ----------------------------------------------------------------------------- sweep

# sweep column -> header on the console and in sweep.md (the CSV/JSON keep the column names); the
# grid's axes come first, headed by their dotted keys.
SWEEP_HEADERS = {
    "runs": "runs", "params_total": "params", "params_recurrent": "recurrent", "s_per_epoch": "s/epoch",
    "fit_seconds": "fit s\n(mean)", "metric_mean": "test {metric}\n(mean ± sd)", "mse_vs_baseline": "mse /\nbaseline",
    "best_epoch": "best\nepoch", "errors": "errors",
}


@dataclass
class SweepReport:
    """What `sweep` shows and writes: the tables, notes, and the files written."""

    table: Any  # pandas DataFrame, one row per grid point
    runs: Any  # pandas DataFrame, one row per planned run
    notes: list[str]
    files: dict[str, Path]


def _axis_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if _missing(value) else str(value)


def _sweep_cells(df, axes: list[str]) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells of a sweep frame, shared by rich and Markdown."""
    columns = axes + [c for c in SWEEP_HEADERS if c in df.columns
                      and not (c in ("errors", "mse_vs_baseline") and df[c].isna().all())]
    metric = str(df["metric"].iloc[0]).removeprefix("test_") if len(df) else "metric"
    headers = [c if c in axes else SWEEP_HEADERS[c].format(metric=metric) for c in columns]
    rows = [[_axis_text(rec.get(c)) if c in axes else _format_cell(c, rec.get(c), rec) for c in columns]
            for rec in df.to_dict(orient="records")]
    return headers, rows


def sweep_table(df, axes: list[str], title: str) -> Table:
    headers, rows = _sweep_cells(df, axes)
    table = Table(title=title, header_style="bold")
    for h in headers:
        left = h in axes or h in ("runs", "errors")
        table.add_column(h, justify="left" if left else "right", overflow="fold", no_wrap=h != "errors")
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    return table


def build_sweep(result) -> SweepReport:
    from gru_lab.sweep import best_point, runs_frame, sweep_frame

    plan, info = result.plan, result.backend
    table = sweep_frame(result)
    notes = list(plan.notes)
    if info.get("name") == "ray":
        notes.append(f"Ray {info['ray']} ({info['address']}): {info['nodes']} node(s), {info['cluster_cpus']:g} CPU(s), "
                     f"{info['cluster_gpus']:g} GPU(s); {info['in_flight']} run(s) in flight, each reserving "
                     f"{info['num_cpus']:g} CPU(s) ({info['threads']} TensorFlow thread(s)) and {info['num_gpus']:g} GPU(s).")
    if result.isolation == "inline":
        notes.append("runs trained inline (one process): peak memory and timings are not per run.")
    best = best_point(table)
    if best is not None:
        where = ", ".join(f"{k}={_axis_text(best[k])}" for k in plan.axes)
        sd = "" if _missing(best.get("metric_std")) else f" ± {best['metric_std']:.2g}"
        notes.append(f"best: {where}: {best['metric'].replace('_', ' ')} {best['metric_mean']:.4g}{sd} "
                     f"({best['runs']} runs)")
    return SweepReport(table, runs_frame(result), notes, {})


def write_sweep(result) -> SweepReport:
    """sweep.csv/.md/.json and sweep.png under the sweep folder, each written atomically."""
    rep = build_sweep(result)
    folder = result.plan.folder
    folder.mkdir(parents=True, exist_ok=True)
    if rep.table.metric_mean.notna().any():
        _save_figure(_plot_sweep(result, rep), folder / "sweep.png")
        rep.files["plot"] = folder / "sweep.png"
    rep.files.update(_write_table_files(folder / "sweep", rep.table, sweep_markdown(result, rep),
                                        sweep_record(result, rep)))
    return rep


def sweep_record(result, rep: SweepReport) -> dict[str, Any]:
    from gru_lab.sweep import value_text

    plan = result.plan
    env = next((o.metrics.get("environment") for o in result.outcomes if o.metrics), None)
    return {
        "name": plan.name, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": plan.source,
        "axes": {k: [value_text(v) for v in values] for k, values in plan.axes.items()}, "seeds": plan.seeds,
        "backend": result.backend, "isolation": result.isolation, "interrupted": result.interrupted,
        "sweep_seconds": result.seconds, "environment": env,
        "table": _records(rep.table), "runs": _records(rep.runs), "notes": rep.notes,
        "plot": rep.files["plot"].name if "plot" in rep.files else None,
    }


def sweep_markdown(result, rep: SweepReport) -> str:
    plan = result.plan
    counts = rep.runs.status.value_counts().to_dict()
    axes = "; ".join(f"`{k}` in {', '.join(_axis_text(v) for v in values)}" for k, values in plan.axes.items())
    lines = [f"# Sweep: {plan.name}", "",
             f"Base config: {plan.source} (data: {plan.base.data.name}); grid: {axes}; train seeds {plan.seeds}: "
             f"{len(plan.points)} point(s) x {len(plan.seeds)} seed(s) = {len(plan.runs)} runs on the "
             f"{result.backend.get('name', plan.backend)} backend. "
             f"Runs: {', '.join(f'{n} {s}' for s, n in counts.items())}"
             + (" (interrupted: run the same command again to finish)" if result.interrupted else "")
             + f"; this invocation took {result.seconds:.0f} s wall, and the finished runs' training "
             f"(model.fit) {rep.runs.fit_seconds.sum():.0f} s in all.", "",
             "## Table", "", markdown_table(*_sweep_cells(rep.table, list(plan.axes)))]
    lines += [f"- {n}" for n in rep.notes] + [""]
    if "plot" in rep.files:
        lines += ["## Plot", "", f"![test metric against each swept axis]({rep.files['plot'].name})", ""]
    lines += ["## Runs", ""]
    run_rows = [[r["run_id"], str(r["seed"]), r["status"], "-" if _missing(r["value"]) else f"{r['value']:.4g}",
                 r["error"] or ("-" if _missing(r["s_per_epoch"]) else f"{r['s_per_epoch']:.3g} s/epoch")]
                for r in rep.runs.to_dict(orient="records")]
    lines.append(markdown_table(["run id", "seed", "status", str(rep.runs.metric.iloc[0]), "s/epoch or error"], run_rows))
    if any(o.status == "failed" for o in result.outcomes):
        lines += ["Failed runs keep their log under `failures/` and are retried by the next sweep.", ""]
    return "\n".join(lines)


def print_sweep(console, result, rep: SweepReport) -> None:
    plan = result.plan
    title = (f"{plan.name}: {len(plan.points)} grid point(s) x {len(plan.seeds)} seed(s), "
             f"{result.backend.get('name', plan.backend)}, {result.seconds:.0f} s wall this time")
    console.print(sweep_table(rep.table, list(plan.axes), title))
    for note in rep.notes:
        console.print(f"[dim]- {escape(note)}[/]", soft_wrap=True)
    for key in ("md", "csv", "json", "plot"):
        if key in rep.files:
            console.print(f"{key}: {rep.files[key]}", soft_wrap=True, highlight=False)


def _plot_sweep(result, rep: SweepReport):
    """One panel per swept axis: the mean test metric (error bars: sd over seeds) against the axis's
    values, one line per combination of the other axes (their mean when there are too many to tell apart)."""
    from matplotlib.figure import Figure

    plan, table = result.plan, rep.table
    axes = list(plan.axes)
    fig = Figure(figsize=(4.8 * len(axes), 3.8))
    panels = fig.subplots(1, len(axes), squeeze=False)[0]
    metric = str(table["metric"].iloc[0])
    for ax, key in zip(panels, axes):
        values = [_axis_text(v) for v in plan.axes[key]]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in plan.axes[key])
        position = {text: (float(v) if numeric else i) for i, (text, v) in enumerate(zip(values, plan.axes[key]))}
        others = [k for k in axes if k != key]
        groups = table.groupby([table[k].map(_axis_text) for k in others], sort=False) if others else [((), table)]
        groups = list(groups)
        if len(groups) > 8:  # too many lines to read: the mean over the other axes
            mean = table.groupby(table[key].map(_axis_text), sort=False).metric_mean.mean()
            xs = [position[t] for t in mean.index]
            ax.plot(xs, mean.values, marker="o", label="mean over the other axes")
        else:
            for name, group in groups:
                name = name if isinstance(name, tuple) else (name,)
                label = ", ".join(f"{k.rsplit('.', 1)[-1]}={n}" for k, n in zip(others, name)) or None
                group = group.assign(_x=group[key].map(lambda v: position[_axis_text(v)])).sort_values("_x")
                ax.errorbar(group._x, group.metric_mean, yerr=group.metric_std.fillna(0), marker="o", capsize=3,
                            label=label)
        if numeric:
            vals = [float(v) for v in plan.axes[key]]
            if min(vals) > 0 and max(vals) / min(vals) >= 10:
                ax.set_xscale("log")
                ax.minorticks_off()
            ax.set_xticks(vals, values)
        else:
            ax.set_xticks(list(position.values()), values)
        ax.set_xlabel(key)
        ax.set_ylabel(metric.replace("_", " ") + " (mean ± sd over seeds)")
        shown = [float(v) for v in table.metric_mean.dropna()]
        baselines = rep.runs.baseline_mse.dropna() if metric == "test_mse" else []
        baseline = float(baselines.mean()) if len(baselines) else None
        if baseline:
            ax.axhline(baseline, color="gray", linestyle="--", linewidth=1, label=f"predicting the mean ({baseline:.3g})")
            shown.append(baseline)
        if metric == "test_mse" and shown and min(shown) > 0 and max(shown) / min(shown) > 5:
            ax.set_yscale("log")  # mse across a grid often spans decades; a narrow range reads better linear
        ax.grid(alpha=0.3)
        if others or baseline:
            ax.legend(fontsize="small")
    fig.suptitle(f"{plan.name}: {metric.replace('_', ' ')} against each swept axis")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- bench

# bench column -> header (the CSV keeps the column names)
BENCH_HEADERS = {
    "cell": "cell", "variant": "variant", "epochs": "epochs", "epoch_s": "s/epoch (each epoch)",
    "s_per_epoch": "s/epoch\n(median)", "train_samples_per_s": "train\nsamples/s", "infer_samples_per_s": "infer\nsamples/s",
    "eval_s": "evaluate\ns", "eval_batch": "eval\nbatch", "test_metric": "test {metric}", "peak_rss_mib": "peak RSS\nMiB",
    "kernel": "recurrent kernel", "load": "load avg\nbefore/after",
}
RATIO_HEADERS = {
    "cell": "cell", "variant": "variant", "train_speedup": "train samples/s\n÷ baseline",
    "epoch_speedup": "baseline s/epoch\n÷ this", "infer_speedup": "infer samples/s\n÷ baseline",
    "metric_diff_points": "test {metric}\n- baseline (points)", "peak_rss_ratio": "peak RSS\n÷ baseline",
}


# The console table fits 120 columns; bench.md and bench.csv have everything.
BENCH_CONSOLE = ("cell", "variant", "epoch_s", "train_samples_per_s", "infer_samples_per_s", "test_metric",
                 "peak_rss_mib", "kernel")


def _bench_cells(rows, only: tuple[str, ...] | None = None) -> tuple[list[str], list[list[str]]]:
    metric_col = next((c for c in rows.columns if c.startswith("test_")), "test_metric")
    metric = metric_col.removeprefix("test_")
    columns = [c for c in BENCH_HEADERS if only is None or c in only]
    headers = [BENCH_HEADERS[c].format(metric=metric) for c in columns]
    table = []
    for rec in rows.to_dict(orient="records"):
        epochs = [rec[f"epoch_{i}_s"] for i in range(1, int(rec["epochs"]) + 1) if not _missing(rec.get(f"epoch_{i}_s"))]
        cells = {
            "cell": CELL_LABEL.get(rec["cell"], rec["cell"]), "variant": rec["variant"], "epochs": str(rec["epochs"]),
            "epoch_s": " / ".join(f"{s:.1f}" for s in epochs),
            "s_per_epoch": _num(rec["s_per_epoch"], "{:.1f}"), "train_samples_per_s": _num(rec["train_samples_per_s"], "{:,.0f}"),
            "infer_samples_per_s": _num(rec["infer_samples_per_s"], "{:,.0f}"), "eval_s": _num(rec["eval_s"], "{:.1f}"),
            "eval_batch": str(rec["eval_batch"]), "test_metric": _num(rec.get(metric_col), "{:.4f}"),
            "peak_rss_mib": _num(rec["peak_rss_mib"], "{:,.0f}"), "kernel": str(rec["kernel"]).replace(" (xla)", "+xla"),
            "load": f"{_num(rec['load_before'], '{:.2f}')} / {_num(rec['load_after'], '{:.2f}')}",
        }
        table.append([cells[c] for c in columns])
    return headers, table


def _ratio_cells(ratios) -> tuple[list[str], list[list[str]]]:
    metric_col = next((c for c in ratios.columns if c.endswith("_diff_points")), "metric_diff_points")
    metric = metric_col.removesuffix("_diff_points").removeprefix("test_")
    headers = [h.format(metric=metric) for h in RATIO_HEADERS.values()]
    table = []
    for rec in ratios.to_dict(orient="records"):
        table.append([CELL_LABEL.get(rec["cell"], rec["cell"]), rec["variant"], _num(rec["train_speedup"], "{:.2f}x"),
                      _num(rec["epoch_speedup"], "{:.2f}x"), _num(rec["infer_speedup"], "{:.2f}x"),
                      _num(rec.get(metric_col), "{:+.2f}"), _num(rec["peak_rss_ratio"], "{:.2f}")])
    return headers, table


def _num(value: Any, fmt: str) -> str:
    return "-" if _missing(value) else fmt.format(value)


def bench_markdown(result) -> str:
    """bench.md: the workload, the measured table, the ratios and the notes."""
    m = result.meta
    env = m.get("environment") or {}
    lines = [f"# gru-lab bench: {m['config']} ({m['started']})", "",
             f"- workload: {m['data']}; {m['n_train_fit']:,} train + {m['n_val']:,} validation samples, "
             f"{m['n_test']:,} test; {m['timesteps']} time steps; batch {m['batch_size']}; {m['epochs']} epoch(s); "
             f"units {m['units']}, embedding {m['embedding_dim']}",
             f"- machine: {env.get('cpu_count')} CPU core(s), device {env.get('device')}; TensorFlow {env.get('tensorflow')}, "
             f"Keras {env.get('keras')}",
             f"- keras baseline: Keras layers, model.fit on NumPy arrays with validation_split, evaluate/predict at "
             f"Keras's default batch (32), as seed 000's script; gru-lab: `gru-lab train`'s path", ""]
    headers, rows = _bench_cells(result.rows)
    lines += ["## Measured", "", markdown_table(headers, rows)]
    if len(result.ratios):
        headers, rows = _ratio_cells(result.ratios)
        lines += ["## Ratios (from the measured rows above)", "", markdown_table(headers, rows)]
    if result.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    return "\n".join(lines)


def write_bench(result) -> dict[str, Path]:
    """bench.csv, ratios.csv, bench.md and bench.json in a new folder, each written atomically."""
    from gru_lab.runs import atomic_write_json, atomic_write_text

    folder = result.folder
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} already holds a bench; a bench never overwrites another")
    folder.mkdir(parents=True, exist_ok=True)
    files = {"csv": folder / "bench.csv", "ratios": folder / "ratios.csv", "md": folder / "bench.md",
             "json": folder / "bench.json"}
    atomic_write_text(files["csv"], result.rows.to_csv(index=False))
    atomic_write_text(files["ratios"], result.ratios.to_csv(index=False))
    atomic_write_text(files["md"], bench_markdown(result))
    atomic_write_json(files["json"], {"meta": result.meta, "rows": _records(result.rows),
                                      "ratios": _records(result.ratios), "notes": result.notes})
    return files


def print_bench(console, result) -> None:
    for title, (headers, rows) in (("bench: measured", _bench_cells(result.rows, BENCH_CONSOLE)),
                                   ("bench: ratios to the keras baseline", _ratio_cells(result.ratios))):
        if not rows:
            continue
        table = Table(title=title, header_style="bold")
        for h in headers:
            table.add_column(h, justify="left" if h in ("cell", "variant", "recurrent kernel") else "right",
                             no_wrap=h in ("cell", "variant"))
        for row in rows:
            table.add_row(*(escape(c) for c in row))
        console.print(table)
    for note in result.notes:
        console.print(f"note: {note}", soft_wrap=True, markup=False, highlight=False)
