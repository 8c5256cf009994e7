"""A finished run put to use: gru-lab predict (new data scored), evaluate (labelled data scored, one run or an
ensemble) and export (the model in stock Keras layers, for plain Keras or TF Serving)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from gru_lab.cli.common import err, out, user_errors
from gru_lab.errors import GruLabError


@user_errors
def predict(
    run_dir: Annotated[Path, typer.Argument(
        help="A finished run folder, e.g. results/imdb_gru/<run-id>.", show_default=False)],
    texts: Annotated[Optional[list[str]], typer.Argument(
        help="Text runs: texts to score, one argument each.", show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option(
        "--file", "-f", help="Text runs: a file with one text per line. Series runs: a CSV/TSV/Parquet file with "
                             "the run's columns.")] = None,
    every_window: Annotated[bool, typer.Option(
        "--every-window", help="Series runs: one forecast per window of the file, not only after its last row.")
    ] = False,
    fmt: Annotated[Optional[str], typer.Option(
        "--format", help="table, csv or json. Default: table, or what --out's suffix says (.csv, .json).",
        show_default=False)] = None,
    out_file: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Write the predictions to this file instead of the screen.")] = None,
) -> None:
    """Score new data with a trained model: texts get each class's probability, the share of their tokens out of
    the vocabulary and whether they were cut to maxlen; a series gets the forecast after its last window."""
    from gru_lab.report.predictions import FORMATS

    kind = fmt or (out_file.suffix.lstrip(".").lower() if out_file and out_file.suffix.lower() in (".csv", ".json")
                   else "table")
    if kind not in FORMATS:
        raise GruLabError(f"--format must be one of {list(FORMATS)}. Got {kind!r}.")
    from gru_lab.inference.predict import predict_run
    from gru_lab.inference.run import open_run

    predictions = predict_run(open_run(run_dir, "predict"), texts or [], file, every_window)
    from gru_lab.report.predictions import as_text, render

    if out_file is None:
        if kind == "table":
            out.print(render(predictions, kind))
        else:
            sys.stdout.write(render(predictions, kind))
        return
    from gru_lab.files import atomic_write_text

    try:
        atomic_write_text(out_file, as_text(predictions, kind))
    except OSError as exc:
        raise GruLabError(f"{out_file}: cannot write --out ({exc.__class__.__name__}: {exc.strerror}).") from None
    err.print(f"{len(predictions.frame)} prediction(s) written to {out_file}", soft_wrap=True, highlight=False)


@user_errors
def evaluate(
    run_dirs: Annotated[list[Path], typer.Argument(
        help="A finished run folder; several are scored as one ensemble (the mean of their probabilities or "
             "forecasts).", show_default=False)],
    data: Annotated[Optional[Path], typer.Option(
        "--data", "-d", help="Labelled data in the run's own format (a text table or class folders, a series file, "
                             "the IMDB archive or folder), or a config whose data.path names it. Omitted: the "
                             "run's own test split.", show_default=False)] = None,
    out_dir: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="A new folder for the files. Default: the run's evaluation/ (or evaluation-<time>/ "
                            "when it has one already).", show_default=False)] = None,
) -> None:
    """Score finished runs without retraining: confusion matrix, per-class precision/recall/F1, ROC and PR curves,
    calibration, the most confident mistakes, accuracy (or mse) by true length; for series the forecast on the
    file's time axis beside the naive last-value forecast. Writes evaluation.json, CSVs and PNGs."""
    from gru_lab.inference.evaluate import default_folder, evaluate_runs
    from gru_lab.report.evaluation import check_new_folder, print_evaluation, write_evaluation_folder

    folder = check_new_folder(out_dir or default_folder(run_dirs))
    ev = evaluate_runs(run_dirs, data)
    title = Path(run_dirs[0]).parent.name + (f" (ensemble of {len(run_dirs)})" if len(run_dirs) > 1 else "")
    files = write_evaluation_folder(ev, folder, title)
    print_evaluation(out, ev, files, folder)


@user_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.", show_default=False)],
    fmt: Annotated[str, typer.Option(
        "--format", help="keras (a .keras file) or savedmodel (a TensorFlow SavedModel folder, for TF Serving).")
    ] = "keras",
    out_path: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Where to write it. Default: <run-id>.keras or <run-id>.savedmodel here.",
        show_default=False)] = None,
    text: Annotated[bool, typer.Option(
        "--text", help="Text runs: bake the vocabulary in (a TextVectorization layer) so the model takes raw strings "
                       "and scores them as `gru-lab predict` does.")] = False,
) -> None:
    """Write the run's model made of stock Keras layers only (same weights): it loads with plain Keras or
    TensorFlow Serving where gru-lab is not installed."""
    from gru_lab.inference.export import FORMATS, export_run, takes
    from gru_lab.inference.run import open_run

    if fmt not in FORMATS:
        raise GruLabError(f"--format must be one of {list(FORMATS)}. Got {fmt!r}.")
    run = open_run(run_dir, "export")
    path = export_run(run, fmt, out_path, text)
    out.print(f"exported {run.label} ({fmt}, takes {takes(run, text)}): {path}", soft_wrap=True, highlight=False)
