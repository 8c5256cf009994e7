"""A comparison (experiments.compare.summarize) on the console, in comparison.csv/.md/.json, with its plots."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from gru_lab import cells as cell_names
from gru_lab.experiments.compare import Comparison, summarize
from gru_lab.report.compare_lengths import length_markdown, print_lengths, write_length_files
from gru_lab.report.format import format_cell, markdown_table, missing, record_header, records, write_report
from gru_lab.report.plots import PLOTS, write_plots

VERDICT_STYLE = {"holds": "green", "does not hold": "red", "inconclusive": "yellow"}
# Eligibility for Keras's cuDNN kernel is a fact about a GPU run, whatever machine these runs had.
CUDNN_HEADER = "cuDNN eligible\n(on a GPU)"
MSE_HEADER = "mse / mse of\npredicting the mean"

HEADERS = {
    "model": "model", "length": "T", "runs": "runs", "params_total": "params",
    "params_recurrent": "recurrent", "recurrent_vs_lstm_pct": "rec. vs\nLSTM", "s_per_epoch": "s/epoch",
    "fit_seconds": "train s\n(mean)", "train_samples_per_s": "train\nsamples/s",
    "infer_samples_per_s": "infer\nsamples/s", "infer_ms_per_sample": "infer\nms/sample",
    "val_mean": "{val_metric}\n(mean ± sd)", "metric_mean": "test {metric}\n(mean ± sd)",
    "beats_baseline": "beats\nbaseline",
    "mse_vs_baseline": MSE_HEADER, "best_epoch": "best\nepoch", "cudnn": CUDNN_HEADER,
    "peak_rss_mib": "peak RSS\nMiB", "peak_gpu_mib": "peak GPU\nMiB", "errors": "errors",
}
# The console shows the comparison as two tables that fit 120 columns; comparison.md has one.

CONSOLE_GROUPS = {
    "size and speed": ("model", "length", "params_total", "params_recurrent", "recurrent_vs_lstm_pct",
                       "s_per_epoch", "fit_seconds", "train_samples_per_s", "infer_samples_per_s",
                       "infer_ms_per_sample", "peak_rss_mib", "peak_gpu_mib"),
    "validation and test over seeds": ("model", "length", "runs", "val_mean", "metric_mean", "beats_baseline",
                                       "mse_vs_baseline", "best_epoch", "cudnn", "errors"),
}


def _comparison_cells(df, only: tuple[str, ...] | None = None) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells of a comparison frame, shared by rich and Markdown."""
    columns = [c for c in HEADERS if c in df.columns and (only is None or c in only)
               and not (c == "errors" and df[c].isna().all())]
    metric = str(df["metric"].iloc[0]).removeprefix("test_") if len(df) else "metric"
    val_metric = next((str(v) for v in df.get("val_metric", []) if not missing(v)), "validation")
    headers = [HEADERS[c].format(metric=metric, val_metric=val_metric) for c in columns]
    rows = []
    for rec in df.to_dict(orient="records"):
        rows.append([format_cell(c, rec.get(c), rec) for c in columns])
    return headers, rows


def comparison_tables(df, title: str) -> list[Table]:
    tables = []
    for group, columns in CONSOLE_GROUPS.items():
        headers, rows = _comparison_cells(df, columns)
        table = Table(title=f"{title}: {group}", header_style="bold")
        for h in headers:
            wide = h in (CUDNN_HEADER, "errors")
            table.add_column(h, justify="left" if h in ("model", "runs", "beats\nbaseline") or wide else "right",
                             overflow="fold", no_wrap=not wide)
        for row in rows:
            table.add_row(*(escape(c) for c in row))
        tables.append(table)
    return tables


def verdicts_table(verdicts) -> Table:
    table = Table(title="Claims checked against these runs", header_style="bold", show_lines=True)
    table.add_column("claim")
    table.add_column("verdict")
    table.add_column("numbers", overflow="fold")
    for v in verdicts:
        finding = f": {escape(v.finding)}" if v.finding else ""
        table.add_row(escape(v.claim), f"[{VERDICT_STYLE[v.status]}]{v.status}[/]{finding}", escape(v.detail))
    return table


def write_comparison(result) -> Comparison:
    """comparison.csv/.md/.json and the plots under the compare folder, each written atomically."""
    comp = summarize(result)
    return write_report(result, comp, "comparison",
                        lambda folder: {**write_plots(result, comp, folder),
                                        **write_length_files(comp.lengths, folder)},
                        comparison_markdown, comparison_record)


def comparison_record(result, comp: Comparison) -> dict[str, Any]:
    plan = result.plan
    return {
        **record_header(result, {"cells": plan.cells, "seeds": plan.seeds, "lengths": plan.lengths,
                                 "units": plan.units, "equal_params": plan.equal_params, "budget": plan.budget,
                                 "compare_seconds": result.seconds}),
        "table": records(comp.table), "runs": records(comp.runs),
        "verdicts": [{"claim": v.claim, "status": v.status, "finding": v.finding, "detail": v.detail,
                      "numbers": v.numbers} for v in comp.verdicts],
        "notes": comp.notes, "plots": {k: p.name for k, p in comp.files.items() if k in PLOTS},
        **({"by_length": records(comp.lengths.table), "ensembles": records(comp.lengths.ensembles)}
           if comp.lengths is not None else {}),
    }


def comparison_markdown(result, comp: Comparison) -> str:
    plan = result.plan
    counts = comp.runs.status.value_counts().to_dict()
    lengths = f", T in {plan.lengths}" if plan.lengths else ""
    budget = f", equal recurrent budgets of {plan.budget:,}" if plan.equal_params else ""
    lines = [f"# Comparison: {plan.name}", "",
             f"Base config: {plan.source} (data: {plan.base.data.name}{lengths}); cells "
             f"{', '.join(cell_names.label(c) for c in plan.cells)}; train seeds {plan.seeds}{budget}. "
             f"Runs: {', '.join(f'{n} {s}' for s, n in counts.items())}"
             + (" (interrupted: run the same command again to finish)." if result.interrupted else "."), "",
             "## Table", "", markdown_table(*_comparison_cells(comp.table))]
    lines += [f"- {n}" for n in comp.notes] + [""]
    lines += ["## Verdicts", ""]
    lines += [f"- **{v.claim}**: {v.text}. {v.detail}" for v in comp.verdicts] + [""]
    if any(k in PLOTS for k in comp.files):
        lines += ["## Plots", ""]
        lines += [f"![{PLOTS[k]}]({p.name})" + "\n" for k, p in comp.files.items() if k in PLOTS]
    lines += length_markdown(comp.lengths)
    lines += ["## Runs", ""]
    run_rows = [[r["run_id"], r["model"], "-" if missing(r["length"]) else str(int(r["length"])),
                 str(r["seed"]), r["status"], "-" if missing(r["value"]) else f"{r['value']:.4g}",
                 r["error"] or ("-" if missing(r["s_per_epoch"]) else f"{r['s_per_epoch']:.3g} s/epoch")]
                for r in comp.runs.to_dict(orient="records")]
    lines.append(markdown_table(["run id", "model", "T", "seed", "status", str(comp.runs.metric.iloc[0]),
                                 "s/epoch or error"], run_rows))
    failed = [o for o in result.outcomes if o.status == "failed"]
    if failed:
        lines += ["Failed runs keep their log under `failures/` and are retried by the next compare.", ""]
    return "\n".join(lines)


def print_comparison(console, result, comp: Comparison) -> None:
    for table in comparison_tables(comp.table, title=f"{result.plan.name} ({result.plan.base.data.name})"):
        console.print(table)
    for note in comp.notes:
        console.print(f"[dim]- {escape(note)}[/]", soft_wrap=True)
    print_lengths(console, comp.lengths)
    console.print(verdicts_table(comp.verdicts))
    for key in ("md", "csv", "json"):
        if key in comp.files:
            console.print(f"{key}: {comp.files[key]}", soft_wrap=True, highlight=False)
