"""Reading run records: the numbers a table shows, every run under a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gru_lab import cells


def metric_of(task: str) -> tuple[str, bool]:
    """(test metric shown in tables, higher is better) for a task."""
    return ("accuracy", True) if task in ("binary", "multiclass") else ("mse", False)


def measured(m: dict[str, Any], task: str) -> dict[str, Any]:
    """The numbers a table shows for one run, from its metrics.json (empty values when it has none)."""
    metric, _ = metric_of(m.get("task") or task)
    params = m.get("params") or {}
    memory = m.get("peak_memory") or {}
    return {
        "metric": f"test_{metric}", "value": (m.get("test") or {}).get(metric),
        "baseline_mse": (m.get("data") or {}).get("baseline_mse"),
        "s_per_epoch": m.get("median_epoch_seconds"), "fit_seconds": m.get("fit_seconds"),
        "train_samples_per_s": m.get("train_samples_per_second"),
        "infer_samples_per_s": m.get("inference_samples_per_second"),
        "infer_ms_per_sample": m.get("inference_ms_per_sample"),
        "best_epoch": m.get("best_epoch"), "evaluated_epoch": m.get("evaluated_epoch"),
        "epochs_run": m.get("epochs_run"),
        "params_total": params.get("total"), "params_recurrent": params.get("recurrent"),
        "peak_rss_mib": memory.get("rss_mib"), "peak_gpu_mib": memory.get("gpu_mib"),
    }


def stopped_reason(m: dict[str, Any]) -> str | None:
    """Why a run record has no result, in one line (None for a finished run): where it diverged, or the
    machine limit it hit."""
    if m.get("status") == "diverged":
        d = m.get("diverged") or {}
        where = f"epoch {d.get('epoch')}" + (f", batch {d['batch']}" if d.get("batch") else "")
        return (f"diverged at {where}: {d.get('quantity', 'loss')} became {d.get('value', 'nan')}; "
                "try a lower train.learning_rate or train.clipnorm")
    if m.get("status") == "failed":
        return m.get("error") or "failed"
    return None


def find_run_folders(root: str | Path) -> list[Path]:
    """Every run folder under root (one holding metrics.json), hidden partial folders skipped, sorted."""
    root = Path(root)
    found = []
    for metrics in root.rglob("metrics.json"):
        folder = metrics.parent
        if not any(part.startswith(".") for part in folder.relative_to(root).parts):
            found.append(folder)
    return sorted(found)


# Described by the leaderboard's model column already, or not a setting of the run: never a column of their own.
NOT_VARIED = ("name", "data.", "output.", "model.cell", "model.units", "model.num_layers", "model.bidirectional",
              "model.pooling")
SLICES = ("n_train", "n_val", "n_test")  # the data keys that take a slice of the same data


def flatten(node: Any, prefix: str = "") -> dict[str, str]:
    """A config (or any nested mapping) as dotted keys -> text: model.units -> "64", lists and mappings as JSON."""
    out: dict[str, str] = {}
    if isinstance(node, dict) and node:
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    else:
        out[prefix] = json.dumps(node) if isinstance(node, (list, dict)) else str(node)
    return out


def data_identity(data: dict[str, Any], seed: Any) -> tuple[str, str]:
    """(label, key) of the data a run trained and was tested on: runs rank against each other only on the same
    data. The key is every data setting and the data's seed; the label names the dataset, its file, its
    sequence size and its slice (n_train ...)."""
    size = next((f"{label}={data[k]}" for k, label in (("length", "T"), ("window", "window"), ("maxlen", "maxlen"))
                 if k in data), "")
    parts = [str(data.get("name", "?"))]
    if data.get("path"):
        parts.append(Path(str(data["path"])).name)
    parts += [size] if size else []
    parts += [f"{k}={data[k]}" for k in SLICES if data.get(k) is not None and k != "n_val"]
    key = json.dumps({"data": data, "seed": seed}, sort_keys=True, default=str)
    return " ".join(parts), key


def leaderboard_frame(root: Path):
    """Every run folder under root: one row each, grouped by the data's identity (runs.records.data_identity),
    best test metric first, and a column for each setting that differs between the runs of a group
    (df.attrs["varied"])."""
    import pandas as pd
    import yaml

    rows = []
    settings: list[dict[str, str]] = []
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
        metric, higher = metric_of(m.get("task") or "regression")
        label, key = data_identity(data, cfg.get("seed"))
        settings.append(flatten(cfg))
        rows.append({
            "dataset": label, "_data": key, "name": m.get("name", folder.parent.name),
            "run_id": m.get("run_id", folder.name), "cell": model.get("cell", "?"),
            "units": units_text(model.get("units")), "model": _model_text(model), "status": m.get("status"),
            "metric": metric,
            "value": (m.get("test") or {}).get(metric), "higher_is_better": higher,
            "params": (m.get("params") or {}).get("total"), "s_per_epoch": m.get("median_epoch_seconds"),
            "folder": str(folder.relative_to(root)),
        })
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    # Two data configs that read alike (a setting the label leaves out differs) stay apart, and say so.
    for label, keys in df.groupby("dataset")["_data"].unique().items():
        if len(keys) > 1:
            for i, key in enumerate(keys, 1):
                df.loc[df._data == key, "dataset"] = f"{label} (data {i})"
    varied: list[str] = []
    for _, group in df.groupby("_data"):
        members = [settings[i] for i in group.index]
        for k in sorted({k for s in members for k in s}):
            if k not in varied and not k.startswith(NOT_VARIED) and len({s.get(k) for s in members}) > 1:
                varied.append(k)
    for k in varied:
        df[k] = [s.get(k, "") for s in settings]
    # Best first within a dataset: accuracy descending, mse ascending; unfinished runs last.
    df["_key"] = [(-v if h else v) if not missing(v) else float("inf") for v, h in zip(df.value, df.higher_is_better)]
    df = df.sort_values(["dataset", "_key", "name", "run_id"]).drop(columns=["_key", "higher_is_better", "_data"])
    df.insert(1, "rank", df.groupby("dataset").cumcount() + 1)
    df = df.reset_index(drop=True)
    df.attrs["varied"] = varied
    return df


def _model_text(model: dict) -> str:
    """A run's model as tables name it (cells.describe), from its config.yaml's model section."""
    try:
        return cells.describe(model.get("cell", "?"), model.get("units", "?"), model.get("num_layers", 1),
                              bool(model.get("bidirectional")), model.get("pooling", "last"))
    except (TypeError, ValueError):  # a hand-edited config.yaml: show what is there
        return f"{model.get('cell', '?')}({units_text(model.get('units'))})"


def units_text(units: Any) -> str:
    """model.units as a table shows it: 64, or 50,1 for stacked layers."""
    return ",".join(str(u) for u in units) if isinstance(units, list) else str(units)


def missing(value: Any) -> bool:
    """None or NaN (pandas' empty cell)."""
    return value is None or (isinstance(value, float) and value != value)
