"""learning_curves.png, part of every run record: loss per epoch (training and validation) and, for a classifier,
accuracy. Drawn with matplotlib's object API (no pyplot, no display) when the run folder is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gru_lab.files import save_figure

# (log key, label) pairs per panel; a key the history lacks is skipped.
PANELS = {"loss": [("loss", "training"), ("val_loss", "validation")],
          "accuracy": [("accuracy", "training"), ("val_accuracy", "validation")]}


def draw_learning_curves(history: list[dict[str, Any]], task: str, title: str):
    """The figure, or None when no epoch finished."""
    if not history:
        return None
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = ["loss"] + (["accuracy"] if task in ("binary", "multiclass") else [])
    fig = Figure(figsize=(5 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    epochs = [row["epoch"] for row in history]
    loss_name = "mse" if task == "regression" else "cross-entropy"
    for ax, panel in zip(axes, panels):
        for key, label in PANELS[panel]:
            if key in history[0]:
                ax.plot(epochs, [row[key] for row in history], marker="o" if len(epochs) < 30 else None, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(loss_name if panel == "loss" else "accuracy")
        if panel == "loss" and task == "regression" and all(row["loss"] > 0 for row in history):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def write_learning_curves(history: list[dict[str, Any]], task: str, title: str, path: Path) -> bool:
    """Write the PNG; False when there was nothing to draw."""
    fig = draw_learning_curves(history, task, title)
    if fig is None:
        return False
    save_figure(fig, path)
    return True
