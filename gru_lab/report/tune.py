"""A search (experiments.tune.summarize) on the console, in tune.csv/.md/.json, best.yaml and its plots: the
optimization history with the best so far, parameter importances and one slice plot per parameter. Also the
progress display fed by the search's events."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from rich.markup import escape
from rich.table import Table

from gru_lab.config import to_yaml
from gru_lab.experiments.space import value_text
from gru_lab.experiments.tune import TuneResult, TuneSummary, summarize
from gru_lab.files import atomic_write_text, save_figure
from gru_lab.report.compare import VERDICT_STYLE
from gru_lab.report.format import fmt, markdown_table, missing, records, write_table_files

STATE_STYLE = {"finished": "green", "pruned": "yellow", "failed": "red", "invalid": "magenta", "running": "cyan"}
STATE_COLOR = {"finished": "tab:blue", "pruned": "tab:orange", "failed": "tab:red", "invalid": "tab:purple",
               "running": "tab:gray"}


def _columns(result: TuneResult, summary: TuneSummary) -> list[str]:
    plan = result.plan
    test = [c for c in summary.table.columns if c.startswith("test_")]
    return (["trial", "kind", "state"] + [p.key for p in plan.space] + [plan.metric, "best_epoch", "epochs", "seconds"]
            + test + ["kernels", "note"])


def _cells(result: TuneResult, summary: TuneSummary, console: bool = False) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of the tune table; the console's drops the kernels and notes and names the rows that are
    not trials in the trial column."""
    columns = [c for c in _columns(result, summary) if c in summary.table.columns
               and not (console and c in ("kind", "kernels", "note"))]
    rows = []
    for rec in summary.table.to_dict(orient="records"):
        row = []
        for c in columns:
            value = rec.get(c)
            if c == "trial" and console and rec.get("kind") != "trial":
                row.append({"base config": "base", "classical baseline": "baseline"}[rec["kind"]])
            elif missing(value):
                row.append("-")
            elif c in ("trial", "best_epoch", "epochs"):
                row.append(str(int(value)))
            elif c == "seconds":
                row.append(f"{value:.1f}")
            else:
                row.append(fmt(value))
        rows.append(row)
    headers = [c.replace("_", " ") if c in ("best_epoch",) else c for c in columns]
    return headers, rows


def tune_table(result: TuneResult, summary: TuneSummary, title: str) -> Table:
    headers, rows = _cells(result, summary, console=True)
    table = Table(title=title, header_style="bold")
    for h in headers:
        table.add_column(h.replace(".", ".\n").replace("_", "\n", 1) if h.startswith(("val_", "test_")) else
                         h.replace(".", ".\n"), overflow="fold", justify="left" if h == "state" else "right")
    for row in rows:
        state = row[headers.index("state")]
        table.add_row(*(escape(c) for c in row), style=STATE_STYLE.get(state, "") if state != "finished" else "")
    return table


def write_tune(result: TuneResult) -> TuneSummary:
    """tune.csv/.md/.json, best.yaml and the plots under the tune folder, each written atomically."""
    summary = summarize(result)
    folder = result.plan.folder
    folder.mkdir(parents=True, exist_ok=True)
    if summary.best_config is not None:
        best = summary.best
        head = (f"# The best trial ({best.number}) of the search {result.plan.name}: {result.plan.metric} "
                f"{best.value:.6g} (seed {summary.best_config.train_seed}, best epoch {best.best_epoch}).\n"
                "# `gru-lab train best.yaml` trains it again.\n")
        atomic_write_text(folder / "best.yaml", head + to_yaml(summary.best_config))
        summary.files["best"] = folder / "best.yaml"
    summary.files.update(write_plots(result, summary, folder))
    summary.files.update(write_table_files(folder / "tune", summary.table, tune_markdown(result, summary),
                                           tune_record(result, summary)))
    return summary


def tune_record(result: TuneResult, summary: TuneSummary) -> dict[str, Any]:
    plan = result.plan
    env = next((o.metrics.get("environment") for o in result.base if o.metrics), None)
    v = summary.verdict
    return {
        "name": plan.name, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": plan.source,
        "space": [p.record() for p in plan.space], "metric": plan.metric, "direction": plan.direction,
        "sampler": plan.sampler, "pruner": plan.pruner, "seeds": plan.seeds, "trials_wanted": plan.trials,
        "timeout_s": plan.timeout_s, "backend": result.backend, "isolation": result.isolation,
        "interrupted": result.interrupted, "tune_seconds": result.seconds, "counts": summary.counts,
        "epochs_trained": summary.epochs, "best_trial": summary.best.number if summary.best else None,
        "best_value": summary.best.value if summary.best else None, "best_test": summary.best_test,
        "base_value": summary.base_value, "base_test": summary.base_test,
        "importances": result.importances, "table": records(summary.table), "notes": summary.notes,
        "verdict": {"claim": v.claim, "status": v.status, "detail": v.detail, "numbers": v.numbers} if v else None,
        "files": {k: p.name for k, p in summary.files.items()}, "environment": env,
    }


def tune_markdown(result: TuneResult, summary: TuneSummary) -> str:
    plan = result.plan
    space = "; ".join(f"`{p.key}` {p.text()}" for p in plan.space)
    counts = ", ".join(f"{n} {s}" for s, n in summary.counts.items() if n)
    lines = [f"# Search: {plan.name}", "",
             f"Base config: {plan.source} (data: {plan.base.data.name}); space: {space}. Sampler {plan.sampler}, "
             f"pruner {plan.pruner}, objective {plan.metric} ({plan.direction}), seeds {plan.seeds}, "
             f"{result.backend.get('name', plan.backend)} backend. Trials: {counts or 'none'}"
             + (" (interrupted: run the same command again to continue)" if result.interrupted else "")
             + f"; {summary.epochs} epochs trained by the trials in all; this invocation took {result.seconds:.0f} s.",
             ""]
    if summary.verdict:
        v = summary.verdict
        lines += ["## Verdict", "", f"- **{v.claim}**: {v.status}. {v.detail}", ""]
    lines += ["## Table", "", markdown_table(*_cells(result, summary))]
    lines += [f"- {n}" for n in summary.notes] + [""]
    if "best" in summary.files:
        lines += ["`best.yaml` holds the best trial's full config; `gru-lab train best.yaml` trains it again.", ""]
    for key, caption in PLOT_CAPTIONS.items():
        for name, path in summary.files.items():
            if name == key or name.startswith(key + ":"):
                lines += [f"![{caption}]({path.name})", ""]
    return "\n".join(lines)


def print_tune(console, result: TuneResult, summary: TuneSummary) -> None:
    plan = result.plan
    title = (f"{plan.name}: {len(result.trials)} trial(s), {plan.sampler} + {plan.pruner}, {plan.metric}, "
             f"{result.seconds:.0f} s wall this time")
    console.print(tune_table(result, summary, title))
    for note in summary.notes:
        console.print(f"[dim]- {escape(note)}[/]", soft_wrap=True)
    if summary.verdict:
        v = summary.verdict
        console.print(f"[{VERDICT_STYLE[v.status]}]{v.status}[/]: {escape(v.claim)}. {escape(v.detail)}",
                      soft_wrap=True)
    for key in ("md", "csv", "json", "best", "history", "importances"):
        if key in summary.files:
            console.print(f"{key}: {summary.files[key]}", soft_wrap=True, highlight=False)


# ----------------------------------------------------------------------------- plots

PLOT_CAPTIONS = {"history": "optimization history: each trial's objective and the best so far",
                 "importances": "parameter importances (Optuna's default evaluator)",
                 "slice": "slice plot: the objective against one parameter"}


def write_plots(result: TuneResult, summary: TuneSummary, folder: Path) -> dict[str, Path]:
    done = [t for t in result.trials if t.state == "finished"]
    if not done:
        return {}
    from matplotlib.figure import Figure

    plan = result.plan
    files: dict[str, Path] = {}
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    xs = [t.number for t in done]
    ax.scatter(xs, [t.value for t in done], color=STATE_COLOR["finished"], label="finished trial", zorder=3)
    best, line = None, []
    for t in sorted(done, key=lambda t: t.number):
        if best is None or (t.value > best if plan.higher_is_better else t.value < best):
            best = t.value
        line.append((t.number, best))
    ax.step([x for x, _ in line], [y for _, y in line], where="post", color="tab:green", label="best so far")
    pruned = [t for t in result.trials if t.state == "pruned" and t.last_value is not None]
    if pruned:
        ax.scatter([t.number for t in pruned], [t.last_value for t in pruned], marker="x",
                   color=STATE_COLOR["pruned"], label=f"pruned, at its last value ({len(pruned)})")
    if summary.base_value is not None:
        ax.axhline(summary.base_value, color="black", linewidth=1, linestyle="--", label="base config")
    shown = [t.value for t in done] + [t.last_value for t in pruned] + [summary.base_value]
    shown = [v for v in shown if v is not None]
    if min(shown) > 0 and max(shown) / min(shown) > 50:  # a loss falling by orders of magnitude
        ax.set_yscale("log")
    ax.set_xlabel("trial")
    ax.set_ylabel(plan.metric)
    ax.set_title(f"{plan.name}: optimization history ({plan.sampler}, pruner {plan.pruner})")
    ax.legend(fontsize=8)
    save_figure(fig, folder / "history.png")
    files["history"] = folder / "history.png"
    if result.importances:
        fig = Figure(figsize=(6, 0.6 + 0.45 * len(result.importances)))
        ax = fig.add_subplot()
        keys = list(result.importances)[::-1]
        ax.barh(keys, [result.importances[k] for k in keys], color="tab:blue")
        ax.set_xlabel(f"importance for {plan.metric} (share, sums to 1)")
        ax.set_title("parameter importances (fANOVA over the finished trials)")
        save_figure(fig, folder / "importances.png")
        files["importances"] = folder / "importances.png"
    for p in plan.space:
        fig = Figure(figsize=(5, 3.5))
        ax = fig.add_subplot()
        if p.kind == "categorical":
            labels = [value_text(c) for c in p.choices]
            x = [labels.index(value_text(t.params[p.key])) for t in done if p.key in t.params]
            ax.set_xticks(range(len(labels)), labels)
        else:
            x = [t.params[p.key] for t in done if p.key in t.params]
            if p.log:
                ax.set_xscale("log")
        ax.scatter(x, [t.value for t in done if p.key in t.params], c=[t.number for t in done if p.key in t.params],
                   cmap="viridis")
        ax.set_xlabel(p.key)
        ax.set_ylabel(plan.metric)
        ax.set_title(f"slice: {p.key} (colour: trial number)")
        path = folder / f"slice_{p.key.replace('.', '_')}.png"
        save_figure(fig, path)
        files[f"slice:{p.key}"] = path
    return files


# ----------------------------------------------------------------------------- progress


def progress_hook(progress, plan, one_line: bool, print_line: Callable[[str], None]) -> Callable:
    """The event hook for execute_tune. In a terminal: a bar of trials (finished / pruned / failed /
    invalid / running, best so far) and a line per running trial; elsewhere (one_line) one line per trial."""
    counts = {s: 0 for s in ("finished", "pruned", "failed", "invalid")}
    running: dict[int, Any] = {}
    best: list[float | None] = [None]
    bar = None if one_line else progress.add_task(f"{plan.name}: trials", total=plan.trials if plan.trials < 100_000
                                                  else None, logs="")

    def status() -> str:
        text = " ".join(f"{n} {s}" for s, n in counts.items()) + f" {len(running)} running"
        return text + (f"; best {plan.metric} {best[0]:.4g}" if best[0] is not None else "")

    def on_event(kind: str, info: dict) -> None:
        if kind.startswith("base-"):
            if kind in ("base-finish", "base-reuse", "base-fail"):
                what = {"base-finish": "trained", "base-reuse": "reused", "base-fail": "failed"}[kind]
                text = f"base config ({info['label']}): {what}" + (f": {info['error']}" if "error" in info else "")
                print_line(text)
            return
        number = info["number"]
        if kind == "start":
            if bar is not None:
                running[number] = progress.add_task(f"  trial {number}: {info['label'][:60]}", total=info["epochs"],
                                                    logs="taken over after a kill" if info["taken_over"] else "")
            else:
                running[number] = None
        elif kind == "epoch" and bar is not None and number in running:
            value = (info.get("logs") or {}).get(plan.metric)
            progress.update(running[number], completed=info["epoch"],
                            logs=f"{plan.metric}={value:.4g}" if value is not None else "")
        elif kind == "end":
            task = running.pop(number, None)
            if task is not None:
                progress.remove_task(task)
            counts[info["state"]] = counts.get(info["state"], 0) + 1
            value = info.get("value")
            if value is not None and (best[0] is None or (value > best[0] if plan.higher_is_better
                                                          else value < best[0])):
                best[0] = value
            line = f"trial {number} {info['state']}: {info['label']}" + (
                f" -> {plan.metric} {value:.4g}" if value is not None else "") + (
                f" ({info['message']})" if info.get("message") else "")
            print_line(f"{line}  [{status()}]")
        if bar is not None:
            progress.update(bar, completed=sum(counts.values()), logs=status())

    return on_event
