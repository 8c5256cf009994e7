"""A sweep (experiments.sweep.summarize) on the console, in sweep.csv/.md/.json, and sweep.png."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from gru_lab.experiments.sweep import SweepReport, axis_text, summarize, value_text
from gru_lab.files import save_figure
from gru_lab.report.compare import MSE_HEADER, VERDICT_STYLE
from gru_lab.report.format import (
    format_cell,
    markdown_table,
    missing,
    record_header,
    records,
    write_report,
)
from gru_lab.report.plots import plot_sweep

SWEEP_HEADERS = {
    "model": "model", "runs": "runs", "params_total": "params", "params_recurrent": "recurrent",
    "s_per_epoch": "s/epoch", "fit_seconds": "train s\n(mean)", "val_rank": "rank\n(val)",
    "val_mean": "{val_metric}\n(mean ± sd)", "metric_mean": "test {metric}\n(mean ± sd)",
    "beats_baseline": "beats\nbaseline",
    "mse_vs_baseline": MSE_HEADER, "best_epoch": "best\nepoch", "errors": "errors",
}


# The console table leaves these to sweep.md/.csv, so that the validation and test columns fit 120 columns.
CONSOLE_LEAVES = ("params_recurrent", "fit_seconds", "mse_vs_baseline")


def _sweep_cells(df, axes: list[str], leave: tuple[str, ...] = ()) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells of a sweep frame, shared by rich and Markdown (leave: columns not shown)."""
    columns = axes + [c for c in SWEEP_HEADERS if c in df.columns and c not in leave
                      and not (c in ("errors", "mse_vs_baseline") and df[c].isna().all())]
    metric = str(df["metric"].iloc[0]).removeprefix("test_") if len(df) else "metric"
    val_metric = next((str(v) for v in df.get("val_metric", []) if not missing(v)), "validation")
    headers = [c if c in axes else SWEEP_HEADERS[c].format(metric=metric, val_metric=val_metric) for c in columns]
    rows = [[axis_text(rec.get(c)) if c in axes else format_cell(c, rec.get(c), rec) for c in columns]
            for rec in df.to_dict(orient="records")]
    return headers, rows


def sweep_table(df, axes: list[str], title: str) -> Table:
    headers, rows = _sweep_cells(df, axes, CONSOLE_LEAVES)
    table = Table(title=title, header_style="bold")
    for h in headers:
        left = h in axes or h in ("model", "runs", "errors", "beats\nbaseline", "rank\n(val)")
        # Words may wrap (a baseline's long label, "does not hold"); numbers and run counts stay whole.
        wraps = h in ("errors", "model", "beats\nbaseline")
        table.add_column(h, justify="left" if left else "right", overflow="fold", no_wrap=not wraps)
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    return table


def write_sweep(result) -> SweepReport:
    """sweep.csv/.md/.json and sweep.png under the sweep folder, each written atomically."""
    rep = summarize(result)

    def plots(folder):
        if not rep.table[rep.table.kind == "recurrent"].metric_mean.notna().any():
            return {}
        save_figure(plot_sweep(result, rep), folder / "sweep.png")
        return {"plot": folder / "sweep.png"}

    return write_report(result, rep, "sweep", plots, sweep_markdown, sweep_record)


def sweep_record(result, rep: SweepReport) -> dict[str, Any]:
    plan = result.plan
    return {
        **record_header(result, {"axes": {k: [value_text(v) for v in values] for k, values in plan.axes.items()},
                                 "seeds": plan.seeds, "backend": result.backend, "sweep_seconds": result.seconds}),
        "table": records(rep.table), "runs": records(rep.runs), "notes": rep.notes,
        "baselines": [b.record() for b in result.baselines.values()],
        "verdicts": [{"claim": v.claim, "status": v.status, "finding": v.finding, "detail": v.detail,
                      "numbers": v.numbers} for v in rep.verdicts],
        "plot": rep.files["plot"].name if "plot" in rep.files else None,
    }


def sweep_markdown(result, rep: SweepReport) -> str:
    plan = result.plan
    counts = rep.runs.status.value_counts().to_dict()
    axes = "; ".join(f"`{k}` in {', '.join(axis_text(v) for v in values)}" for k, values in plan.axes.items())
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
    if rep.verdicts:
        lines += ["## Against the classical baseline", ""]
        lines += [f"- **{v.claim}**: {v.text}. {v.detail}" for v in rep.verdicts] + [""]
    if "plot" in rep.files:
        lines += ["## Plot", "", f"![test metric against each swept axis]({rep.files['plot'].name})", ""]
    lines += ["## Runs", ""]
    run_rows = [[r["run_id"], str(r["seed"]), r["status"], "-" if missing(r["value"]) else f"{r['value']:.4g}",
                 r["error"] or ("-" if missing(r["s_per_epoch"]) else f"{r['s_per_epoch']:.3g} s/epoch")]
                for r in rep.runs.to_dict(orient="records")]
    lines.append(markdown_table(["run id", "seed", "status", str(rep.runs.metric.iloc[0]), "s/epoch or error"],
                                run_rows))
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
    for v in rep.verdicts:
        finding = f" - {escape(v.finding)}" if v.finding else ""
        console.print(f"[{VERDICT_STYLE[v.status]}]{v.status}[/]: {escape(v.claim)}{finding}. {escape(v.detail)}",
                      soft_wrap=True)
    for key in ("md", "csv", "json", "plot"):
        if key in rep.files:
            console.print(f"{key}: {rep.files[key]}", soft_wrap=True, highlight=False)
