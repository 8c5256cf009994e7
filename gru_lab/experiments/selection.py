"""Choosing among runs on the validation split only: a run's validation numbers (from its history.csv, at the
epoch whose weights were tested) and the one rule that picks a best row of a sweep table, ties included.

The test metric is reported beside the choice and never read by it: choosing on test and reporting test would
report the luck of the choice.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from gru_lab.runs.records import metric_of, missing

# Said in every table note that names a best row, so a reader can redo the choice by hand.
TIE_RULE = "ties broken by lower validation loss, then fewer parameters, then plan order"
# The leaderboard has no plan: its runs' last resort is their name and run id (a run id starts with its time).
BOARD_TIE_RULE = TIE_RULE.replace("plan order", "name and run id")


def validation_metric(task: str) -> tuple[str, str]:
    """(history column, what a table calls it) of the validation counterpart of a task's test metric: accuracy
    is val_accuracy; mse is val_loss (regression trains on the mse, and records no separate val_mse)."""
    metric, _ = metric_of(task)
    return ("val_accuracy", "val_accuracy") if metric == "accuracy" else ("val_loss", "val_mse")


def validation_of(folder: str | Path | None, metrics: dict[str, Any] | None, task: str) -> dict[str, Any]:
    """A run's validation numbers at the epoch its test metric was taken at (metrics' evaluated_epoch, else the
    last epoch of its history.csv): {"val_value": ..., "val_loss": ...}, None where the run has none (no
    validation split, no history, not finished)."""
    empty = {"val_value": None, "val_loss": None}
    if folder is None or not metrics:
        return empty
    try:
        with open(Path(folder) / "history.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError:
        return empty
    if not rows:
        return empty
    epoch = metrics.get("evaluated_epoch")
    row = next((r for r in rows if not missing(epoch) and _number(r.get("epoch")) == int(epoch)), rows[-1])
    column, _ = validation_metric(metrics.get("task") or task)
    return {"val_value": _number(row.get(column)), "val_loss": _number(row.get("val_loss"))}


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if value != value else value


def ranking(rows: list[dict[str, Any]], higher_is_better: bool) -> list[int]:
    """Positions of the rows that have a validation value, best first: by each row's "val_mean" (its validation
    metric over seeds), then TIE_RULE ("val_loss_mean", "params_total", then position). Rows without a
    validation value are left out: they are never chosen. Nothing here reads a test number."""

    def key(i: int) -> tuple:
        r = rows[i]
        value = _rounded(r["val_mean"])
        loss, params = r.get("val_loss_mean"), r.get("params_total")
        return (-value if higher_is_better else value,
                float("inf") if missing(loss) else _rounded(loss),
                float("inf") if missing(params) else params, i)

    return sorted((i for i, r in enumerate(rows) if not missing(r.get("val_mean"))), key=key)


def _rounded(value: float) -> float:
    # Means over seeds summed in another order differ in the last bits; equal to 12 digits is a tie.
    return float(f"{float(value):.12g}")


def rank_on_validation(board, root: str | Path):
    """A leaderboard (runs.records.leaderboard_frame: one row per run folder under root) re-ranked within each
    dataset by each run's validation metric at its tested epoch (validation_of), BOARD_TIE_RULE after it; the test
    metric stays beside it, never used to rank. Adds val_metric and val_value; runs without a validation value
    come last in each dataset, unranked (rank None), by name and run id."""
    import json

    import pandas as pd

    if board.empty:
        return board
    attrs = dict(board.attrs)  # what the frame says of itself (the settings that vary within a dataset)
    found = []
    for row in board.itertuples():
        folder = Path(root) / row.folder
        try:
            metrics = json.loads((folder / "metrics.json").read_text())
        except (OSError, ValueError):
            metrics = {}
        task = metrics.get("task") or "regression"
        numbers = validation_of(folder, metrics, task) if metrics.get("status") == "finished" else {}
        found.append({"val_metric": validation_metric(task)[1], "val_value": numbers.get("val_value"),
                      "_val_loss": numbers.get("val_loss")})
    board = pd.concat([board.reset_index(drop=True), pd.DataFrame(found)], axis=1)
    parts = []
    # Sorted by name and run id first: the frame comes best test first, and a tie must not fall back on test.
    board = board.sort_values(["dataset", "name", "run_id"], kind="stable")
    for _, group in board.groupby("dataset", sort=True):
        higher = metric_of("binary" if group.metric.iloc[0] == "accuracy" else "regression")[1]
        rows = [{"val_mean": v, "val_loss_mean": loss, "params_total": p}
                for v, loss, p in zip(group.val_value, group._val_loss, group.params)]
        order = ranking(rows, higher)
        rest = [i for i in range(len(group)) if i not in order]
        ranked = group.iloc[order + rest].copy()
        ranked["rank"] = pd.array(list(range(1, len(order) + 1)) + [None] * len(rest), dtype="Int64")
        parts.append(ranked)
    ranked = pd.concat(parts).drop(columns="_val_loss").reset_index(drop=True)
    ranked.attrs.update(attrs)
    return ranked
