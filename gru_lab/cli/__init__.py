"""The `gru-lab` command line: each command parses, calls the library, prints.

This module is the app: its own options, and every command, registered in the order `gru-lab --help` lists
them. The commands live one group a module: training (train), models (inspect), inference (predict,
evaluate, export), experiments (compare, sweep, tune, report) and bench (bench, gpu-check); common holds
what they share (the consoles, the shared options, a user's mistake as one line).

TensorFlow is imported only inside commands that train or load models, so `--help` and
config errors answer at once.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from gru_lab import __version__
from gru_lab.cli import bench, experiments, inference, models, training
from gru_lab.cli.common import out

# TensorFlow's C++ start-up chatter hides the one line a user needs (gru_lab.tflogs keeps its fatal lines).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

app = typer.Typer(
    help="A lab for recurrent networks (SimpleRNN, LSTM, GRU) on Keras 3: train, compare, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        out.print(f"gru-lab {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """gru-lab: run and compare recurrent-network experiments from YAML configs."""


# One run, its model and its use; then many runs; then gru-lab measuring itself (--help keeps this order).
app.command()(training.train)
app.command()(models.inspect)
app.command()(inference.predict)
app.command()(inference.evaluate)
app.command()(inference.export)
app.command()(experiments.compare)
app.command()(experiments.sweep)
app.command()(experiments.tune)
app.command()(experiments.report)
app.command()(bench.bench)
app.command("gpu-check")(bench.gpu_check)


def run() -> None:  # console-script entry point
    from gru_lab import tflogs

    tflogs.filter_stderr()
    app()

