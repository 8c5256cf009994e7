"""An evaluation (inference.evaluate) as files and on the console: evaluation.json, its tables as CSV, the
predictions as predictions.npz, and the plots (confusion matrix, ROC and precision-recall curves, reliability
diagram, metric by length; for series the forecast on the file's time axis, error by horizon step, residuals).
matplotlib's object API, no display; every file written atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from rich.table import Table

from gru_lab.files import atomic_write_bytes, atomic_write_json, atomic_write_text, rows_to_csv, save_figure

PLOTS = {"confusion": "Confusion matrix: counts and share of each true class",
         "roc_pr": "ROC and precision-recall curves",
         "reliability": "Reliability of the predicted class's probability",
         "by_length": "Metric by true input length",
         "forecast": "Forecast against the actual series, with the last-value forecast",
         "errors": "Error by horizon step, and the residuals",
         "residuals": "Residuals"}


def write_evaluation(ev, folder: Path, title: str) -> dict[str, Path]:
    """Every file of an evaluation under folder; name -> path."""
    folder = Path(folder)
    files: dict[str, Path] = {}
    for name, frame in ev.tables.items():
        path = folder / f"{name}.csv"
        atomic_write_text(path, rows_to_csv(frame.to_dict(orient="records")))
        files[name] = path
    if ev.scored is not None:
        s = ev.scored
        arrays = {"y": s.y, "scores": s.scores, "lengths": s.samples.lengths}
        if s.samples.truncated is not None:
            arrays["truncated"] = s.samples.truncated
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(folder / "predictions.npz", buf.getvalue())
        files["predictions"] = folder / "predictions.npz"
    for key, draw in _drawings(ev):
        fig = draw(ev, title)
        if fig is not None:
            save_figure(fig, folder / f"{key}.png")
            files[key] = folder / f"{key}.png"
    record = {**ev.record, "files": {k: p.name for k, p in files.items()}}
    atomic_write_json(folder / "evaluation.json", record)
    files["json"] = folder / "evaluation.json"
    return files


def _drawings(ev):
    if ev.record["task"] == "regression":
        if "series" in ev.curves:
            return [("forecast", _forecast), ("errors", _errors), ("by_length", _by_length)]
        return [("residuals", _residuals), ("by_length", _by_length)]
    return [("confusion", _confusion), ("roc_pr", _roc_pr), ("reliability", _reliability), ("by_length", _by_length)]


def _figure(width: float, height: float, panels: int = 1, rows: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(rows, panels, squeeze=False)


def _confusion(ev, title: str):
    counts, normalized = ev.curves["confusion"]
    classes = ev.record["classes"]
    k = len(classes)
    size = max(3.6, 0.5 * k + 2.5)
    fig, axes = _figure(2 * size + 0.8, size, 2)
    for ax, values, what in ((axes[0, 0], counts, "counts"), (axes[0, 1], normalized, "share of the true class")):
        image = ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                text = f"{values[i, j]:,}" if what == "counts" else f"{values[i, j]:.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=9,
                        color="white" if normalized[i, j] > 0.6 else "black")
        ax.set_xticks(range(k), classes, rotation=45 if k > 4 else 0)
        ax.set_yticks(range(k), classes)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(what)
    fig.colorbar(image, ax=axes[0, 1], fraction=0.046, label="share of the true class's rows")
    fig.suptitle(f"{title}: confusion matrix ({ev.record['n']:,} rows, accuracy {ev.record['accuracy']:.4f})")
    fig.tight_layout()
    return fig


def _roc_pr(ev, title: str):
    if not ev.curves["roc"]:
        return None
    fig, axes = _figure(10, 4.4, 2)
    roc, pr = axes[0, 0], axes[0, 1]
    one_vs_rest = len(ev.record["classes"]) > 2
    for name, (fpr, tpr, area) in ev.curves["roc"].items():
        roc.plot(fpr, tpr, label=f"{name if one_vs_rest else 'positive: ' + name} (AUC {area:.3f})")
    roc.plot([0, 1], [0, 1], color="gray", linestyle=":", label="chance")
    roc.set_xlabel("false positive rate")
    roc.set_ylabel("true positive rate (recall)")
    roc.set_title("ROC" + (" (each class against the rest)" if one_vs_rest else ""))
    for name, (recall, precision, ap) in ev.curves["pr"].items():
        pr.plot(recall, precision, label=f"{name if one_vs_rest else 'positive: ' + name} (AP {ap:.3f})")
    pr.set_xlabel("recall")
    pr.set_ylabel("precision")
    pr.set_title("precision-recall")
    for ax in (roc, pr):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left" if ax is pr else "lower right")
    fig.suptitle(f"{title}: ROC and precision-recall")
    fig.tight_layout()
    return fig


def _reliability(ev, title: str):
    bins = ev.curves["reliability"]
    fig, axes = _figure(5.2, 5.6, 1, 2)
    top, bottom = axes[0, 0], axes[1, 0]
    width = 1 / len(bins) if len(bins) else 0.1
    width = float(bins.high.iloc[0] - bins.low.iloc[0]) if len(bins) else width
    top.bar(bins.low, bins.accuracy, width=width, align="edge", edgecolor="black", alpha=0.7,
            label="accuracy in the bin")
    top.plot(bins.confidence, bins.accuracy, "o", color="tab:red", label="at the bin's mean probability")
    top.plot([0, 1], [0, 1], color="gray", linestyle=":", label="perfectly calibrated")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.02)
    top.set_ylabel("accuracy")
    top.set_title(f"reliability (ECE {ev.record['calibration']['ece']:.4f})")
    top.legend(fontsize=8, loc="upper left")
    top.grid(alpha=0.3)
    bottom.bar(bins.low, bins["count"], width=width, align="edge", edgecolor="black", color="tab:gray")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("probability of the predicted class")
    bottom.set_ylabel("rows")
    fig.suptitle(f"{title}: calibration")
    fig.tight_layout()
    return fig


def _by_length(ev, title: str):
    frame = ev.tables["by_length"]
    metric = "mse" if ev.record["task"] == "regression" else "accuracy"
    fig, axes = _figure(max(5.0, 1.3 * len(frame) + 2.5), 4.2)
    ax = axes[0, 0]
    labels = [f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}" for lo, hi in zip(frame.min_length, frame.max_length)]
    bars = ax.bar(range(len(frame)), frame[metric], color="tab:blue", alpha=0.8)
    for bar, n, cut in zip(bars, frame["count"], frame.truncated_share):
        note = f"n={n:,}" + (f"\n{cut:.0%} cut" if cut else "")
        ax.annotate(note, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                    fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(frame)), labels)
    unit = "tokens" if ev.record["task"] != "regression" else "steps"
    cut = "; cut: share truncated to maxlen" if frame.truncated_share.any() else ""
    ax.set_xlabel(f"true length before padding ({unit}; quantile buckets{cut})")
    ax.set_ylabel(f"test {metric}")
    if metric == "accuracy":
        ax.set_ylim(0, 1.12)
    else:
        ax.set_ylim(0, float(frame[metric].max()) * 1.25 or 1)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(f"{title}: {metric} by length" + (" (every input has the same length)" if len(frame) == 1 else ""))
    fig.tight_layout()
    return fig


def _time_axis(times: list[Any]):
    import pandas as pd

    if times and isinstance(times[0], str):
        return pd.to_datetime(pd.Series(times)).to_numpy()
    return np.asarray(times)


def _forecast(ev, title: str):
    c = ev.curves["series"]
    targets = c["targets"][:3]
    when = _time_axis(c["times"])
    horizon = c["actual"].shape[1]
    fig, axes = _figure(10, 3.2 * len(targets) + 2.4, 1, len(targets) + 1)
    order = np.argsort(when, kind="stable")
    for j, target in enumerate(targets):
        ax = axes[j, 0]
        ax.plot(when[order], c["actual"][order, 0, j], color="black", linewidth=1.4, label="actual")
        ax.plot(when[order], c["forecast"][order, 0, j], color="tab:orange", label="model forecast (1 step ahead)")
        ax.plot(when[order], c["naive"][order, 0, j], color="tab:gray", linestyle="--",
                label="naive: last value seen")
        ax.set_ylabel(f"{target} (file units)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    residual_ax = axes[len(targets), 0]
    for j, target in enumerate(targets):
        residual_ax.plot(when[order], (c["actual"] - c["forecast"])[order, 0, j], label=f"{target}")
    residual_ax.axhline(0, color="gray", linewidth=1)
    residual_ax.set_ylabel("actual - forecast")
    residual_ax.set_xlabel(c["time_label"] or "time")
    residual_ax.legend(fontsize=8)
    residual_ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    extra = f", horizon {horizon} (step 1 drawn)" if horizon > 1 else ""
    fig.suptitle(f"{title}: test period forecast{extra}")
    fig.tight_layout()
    return fig


def _errors(ev, title: str):
    frame = ev.tables["by_horizon"]
    c = ev.curves["series"]
    fig, axes = _figure(10, 4, 2)
    ax, hist = axes[0, 0], axes[0, 1]
    steps = frame.step.to_numpy()
    ax.bar(steps - 0.2, frame.mse, width=0.4, label="model", color="tab:orange")
    ax.bar(steps + 0.2, frame.naive_mse, width=0.4, label="naive: last value", color="tab:gray")
    ax.set_xticks(steps)
    ax.set_xlabel("horizon step (rows ahead)")
    ax.set_ylabel("mse (scaled units, as the run's test mse)")
    ax.set_title("error by horizon step")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    for j, target in enumerate(c["targets"][:3]):
        hist.hist((c["actual"] - c["forecast"])[:, :, j].reshape(-1), bins=30, alpha=0.6, label=target)
    hist.axvline(0, color="black", linewidth=1)
    hist.set_xlabel("residual: actual - forecast (file units, every step)")
    hist.set_ylabel("forecasts")
    hist.set_title("residuals")
    hist.legend(fontsize=8)
    fig.suptitle(f"{title}: forecast errors")
    fig.tight_layout()
    return fig


def _residuals(ev, title: str):
    residuals = ev.curves["residuals"]
    fig, axes = _figure(5.5, 4)
    ax = axes[0, 0]
    ax.hist(residuals, bins=30, color="tab:blue", alpha=0.8)
    ax.axvline(0, color="black", linewidth=1)
    ax.set_xlabel("residual: target - prediction")
    ax.set_ylabel("test rows")
    ax.set_title(f"{title}: residuals (mse {ev.record['mse']:.4g})")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- console


def evaluation_tables(ev) -> list[Table]:
    """The summary, per-class, by-length and confident-mistakes tables."""
    r = ev.record
    tables = []
    summary = Table(title=f"Evaluation: {r['source']} ({r['n']:,} rows" +
                    (f", ensemble of {len(r['runs'])} runs)" if len(r["runs"]) > 1 else ")"), header_style="bold")
    if r["task"] == "regression":
        heads = [("mse", r["mse"]), ("mae", r["mae"])] + ([("naive last-value mse", r["naive_mse"])]
                                                          if "naive_mse" in r else [])
    else:
        auc = [v["auc"] for v in r["roc"].values()]
        heads = [("accuracy", r["accuracy"]), ("macro F1", r["macro_f1"]),
                 ("ROC AUC" + (" (mean one-vs-rest)" if len(r["classes"]) > 2 else ""),
                  float(np.mean(auc)) if auc else None),
                 ("ECE", r["calibration"]["ece"])]
    for name, _ in heads:
        summary.add_column(name, justify="right")
    summary.add_row(*("-" if v is None else f"{v:.4f}" for _, v in heads))
    tables.append(summary)
    for name, frame in ev.tables.items():
        if name == "mistakes" and frame.empty:
            continue
        table = Table(title={"per_class": "Per class", "by_length": "By true length (quantile buckets)",
                             "mistakes": "Most confident mistakes", "by_horizon": "By horizon step"}[name],
                      header_style="bold")
        for column in frame.columns:
            table.add_column(column, overflow="fold", max_width=60 if column == "text" else None,
                             justify="left" if column in ("class", "source", "text", "true", "predicted") else "right")
        for rec in frame.head(5 if name == "mistakes" else len(frame)).to_dict(orient="records"):
            table.add_row(*(escape(_cell(v)) for v in rec.values()))
        tables.append(table)
    return tables


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return str(value)


def print_evaluation(console, ev, files: dict[str, Path], folder: Path) -> None:
    for table in evaluation_tables(ev):
        console.print(table)
    console.print(f"evaluation folder: {folder} ({', '.join(sorted(p.name for p in files.values()))})",
                  soft_wrap=True, highlight=False)


def check_new_folder(folder: Path) -> Path:
    """A folder evaluate may write: absent, or empty. Checked before any model is loaded."""
    from gru_lab.errors import RunError

    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise RunError(f"{folder}: --out exists and is not an empty folder; evaluate never overwrites an earlier "
                       "evaluation: name a new folder.")
    return folder


def write_evaluation_folder(ev, folder: Path, title: str) -> dict[str, Path]:
    """A new folder holding the evaluation, written in a hidden folder beside it and renamed into place: it is
    complete or absent, and an existing folder with files is never written into."""
    import os
    import shutil
    import tempfile

    from gru_lab.errors import MachineError

    folder = check_new_folder(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    except OSError as exc:
        raise MachineError(f"{folder}: cannot create the evaluation folder ({exc.strerror or exc}).") from None
    try:
        os.chmod(partial, 0o755)
        written = write_evaluation(ev, partial, title)
        if folder.exists():
            folder.rmdir()  # empty, checked above
        os.rename(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return {k: folder / p.name for k, p in written.items()}
