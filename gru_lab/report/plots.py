"""The plots: a comparison's learning curves, metric against time and parameters; a sweep's metric against
each axis. matplotlib's object API (no pyplot, no display needed); every PNG written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gru_lab import cells as cell_names
from gru_lab.experiments.sweep import axis_text
from gru_lab.files import save_figure
from gru_lab.report.format import missing

if TYPE_CHECKING:
    from gru_lab.experiments.compare import Comparison
    from gru_lab.experiments.sweep import SweepReport


CELL_COLOR = {"simple_rnn": "tab:gray", "lstm": "tab:blue", "gru": "tab:orange"}
BASELINE_STYLE = {"color": "black", "linewidth": 1}  # classical baselines: black, one dash pattern each

PLOTS = {"learning_curves": "Learning curves (validation metric per epoch, mean and min-max over seeds)",
         "metric_vs_time": "Test metric against training time (one point per run)",
         "params": "Parameters by cell"}

# comparison column -> header on the console and in comparison.md (the CSV/JSON keep the column names)

def write_plots(result, comp: Comparison, folder: Path) -> dict[str, Path]:
    """The three PNGs, drawn with matplotlib's object API (no pyplot, no display needed)."""
    written = {}
    done = [o for o in result.outcomes if o.ok]
    if not done:
        return written
    for key, draw in (("learning_curves", _plot_learning_curves), ("metric_vs_time", _plot_metric_vs_time),
                      ("params", _plot_params)):
        path = folder / f"{key}.png"
        save_figure(draw(result, comp), path)
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
            ax.plot(frame.index, frame.mean(axis=1), color=CELL_COLOR[cell],
                    label=f"{cell_names.label(cell)} (n={len(curves)})")
            if len(curves) > 1:
                ax.fill_between(frame.index, frame.min(axis=1), frame.max(axis=1), color=CELL_COLOR[cell], alpha=0.2)
        name = {"val_loss": "validation mse", "loss": "training mse", "val_accuracy": "validation accuracy",
                "accuracy": "training accuracy"}.get(label or "", label or "")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        if not classification:
            ax.set_yscale("log")
        for b, dashes in zip(_baselines_at(comp, length), ("--", "-.", (0, (5, 5)), (0, (1, 3)))):
            ax.axhline(b["metric_mean"], **{**BASELINE_STYLE, "linestyle": dashes}, label=f"{b['model']} (test)")
        ax.set_title(plan.base.data.name + ("" if length is None else f", T={length}"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
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
        length = None if missing(length) else int(length)
        ax.scatter(group.fit_seconds, group.value, color=CELL_COLOR[cell], marker=markers.get(length, "o"),
                   label=group.model.iloc[0] + ("" if length is None else f" T={length}"))
    shapes = iter("*XPd^v" * 8)  # one marker a classical baseline (several for regression, one a length)
    for length in result.plan.lengths or [None]:
        for b in _baselines_at(comp, length):
            ax.scatter([b["fit_seconds"]], [b["metric_mean"]], color="black", marker=next(shapes), s=80,
                       label=f"{b['model']}" + ("" if length is None else f" T={length}"))
    ax.set_xlabel("training time (s, all epochs)")
    ax.set_ylabel(metric.replace("_", " "))
    if metric == "test_mse":
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _plot_params(_result, comp: Comparison):
    from matplotlib.figure import Figure

    # Parameter counts do not depend on the sequence length: one bar group a model.
    table = comp.table[comp.table.cell != "baseline"].drop_duplicates("cell")
    baselines = comp.table[comp.table.cell == "baseline"].drop_duplicates("model")
    fig = Figure(figsize=(6 + 1.2 * len(baselines), 4))
    ax = fig.subplots()
    x = range(len(table))
    width = 0.4
    for offset, column, name in ((-width / 2, "params_total", "total"),
                                 (width / 2, "params_recurrent", "recurrent layers")):
        bars = ax.bar([i + offset for i in x], table[column], width, label=name,
                      color=[CELL_COLOR[c] for c in table.cell], alpha=1.0 if column == "params_recurrent" else 0.5)
        ax.bar_label(bars, labels=[f"{int(v):,}" for v in table[column]], fontsize="small")
    ticks = [m.replace(", ", ",\n") for m in table.model]
    for i, b in enumerate(baselines.to_dict(orient="records"), start=len(table)):
        bars = ax.bar([i], [b["params_total"]], width, color="white", edgecolor="black", hatch="//")
        ax.bar_label(bars, labels=[f"{int(b['params_total']):,}"], fontsize="small")
        ticks.append(_wrapped(b["model"]))
    ax.set_xticks(list(range(len(ticks))), ticks, fontsize="small")
    ax.set_ylabel("parameters (a baseline: numbers it keeps)")
    ax.set_title("Parameters by model (light: total, dark: recurrent; hatched: classical baseline)")
    fig.tight_layout()
    return fig


def _baselines_at(comp: Comparison, length) -> list[dict]:
    """The classical-baseline rows of a comparison table at one length (None: a compare without lengths)."""
    rows = comp.table[comp.table.cell == "baseline"]
    if "length" in rows.columns and length is not None:
        rows = rows[rows.length == length]
    return rows.to_dict(orient="records")


def _wrapped(text: str, width: int = 16) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def plot_sweep(result, rep: SweepReport):
    """One panel per swept axis: the mean test metric (error bars: sd over seeds) against the axis's
    values, one line per combination of the other axes (their mean when there are too many to tell apart)."""
    from matplotlib.figure import Figure

    plan = result.plan
    table = rep.table[rep.table.kind == "recurrent"]
    classical = rep.table[rep.table.kind == "baseline"].to_dict(orient="records")
    axes = list(plan.axes)
    fig = Figure(figsize=(4.8 * len(axes), 3.8))
    panels = fig.subplots(1, len(axes), squeeze=False)[0]
    metric = str(table["metric"].iloc[0])
    for ax, key in zip(panels, axes):
        values = [axis_text(v) for v in plan.axes[key]]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in plan.axes[key])
        position = {text: (float(v) if numeric else i) for i, (text, v) in enumerate(zip(values, plan.axes[key]))}
        others = [k for k in axes if k != key]
        groups = table.groupby([table[k].map(axis_text) for k in others], sort=False) if others else [((), table)]
        groups = list(groups)
        if len(groups) > 8:  # too many lines to read: the mean over the other axes
            mean = table.groupby(table[key].map(axis_text), sort=False).metric_mean.mean()
            xs = [position[t] for t in mean.index]
            ax.plot(xs, mean.values, marker="o", label="mean over the other axes")
        else:
            for name, group in groups:
                name = name if isinstance(name, tuple) else (name,)
                label = ", ".join(f"{k.rsplit('.', 1)[-1]}={n}" for k, n in zip(others, name)) or None
                group = group.assign(_x=[position[axis_text(v)] for v in group[key]]).sort_values("_x")
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
            ax.axhline(baseline, color="gray", linestyle=":", linewidth=1,
                       label=f"predicting the mean ({baseline:.3g})")
            shown.append(baseline)
        for b, dashes in zip(classical, ("--", "-.", (0, (5, 5)), (0, (1, 3))) * 8):
            where = ", ".join(f"{k.rsplit('.', 1)[-1]}={b[k]}" for k in axes if b[k] != "-")
            ax.axhline(b["metric_mean"], **{**BASELINE_STYLE, "linestyle": dashes},
                       label=f"{b['model']}{f' ({where})' if where else ''}: {b['metric_mean']:.4g}")
            shown.append(b["metric_mean"])
        if metric == "test_mse" and shown and min(shown) > 0 and max(shown) / min(shown) > 5:
            ax.set_yscale("log")  # mse across a grid often spans decades; a narrow range reads better linear
        ax.grid(alpha=0.3)
        if others or baseline or classical:
            ax.legend(fontsize="small")
    fig.suptitle(f"{plan.name}: {metric.replace('_', ' ')} against each swept axis")
    fig.tight_layout()
    return fig
