"""`gru-lab predict`'s output: a console table, CSV or JSON of a Predictions frame (inference.predict)."""

from __future__ import annotations

import io
import json
import re
from typing import Any

from rich.table import Table

from gru_lab.report.console import data_notes
from gru_lab.report.format import fmt

FORMATS = ("table", "csv", "json")
_SPACE = re.compile(r"\s+")


def preview(text: str, width: int = 60) -> str:
    """One line of a text: whitespace folded, cut to width."""
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= width else text[:width - 3] + "..."


def render(pred, kind: str) -> Any:
    """kind table -> a rich Table; csv -> text; json -> text (meta and one record per row)."""
    if kind == "csv":
        return pred.frame.to_csv(index=False)
    if kind == "json":
        rows = json.loads(pred.frame.to_json(orient="records", double_precision=15))
        return json.dumps({**pred.meta, "predictions": rows}, indent=2, default=str) + "\n"
    if pred.kind == "sequences":
        return sequences_table(pred)
    return text_table(pred) if pred.kind == "text" else series_table(pred)


def as_text(pred, kind: str) -> str:
    """render() as text for a file: a table without colour codes."""
    shown = render(pred, kind)
    if kind != "table":
        return shown
    from rich.console import Console

    capture = Console(width=160, record=True, file=io.StringIO())
    capture.print(shown)
    return capture.export_text()


def text_table(pred) -> Table:
    """One row per text: where it came from, the label, its probability (binary: of the second class, as
    P(positive) reads), the out-of-vocabulary share and whether maxlen cut it."""
    classes = pred.meta["classes"]
    table = Table(title="Predictions", header_style="bold")
    table.add_column("source")
    score = f"P({classes[1]})" if len(classes) == 2 else "P(label)"
    table.add_column(score, justify="right")
    table.add_column("label")
    table.add_column("OOV", justify="right")
    table.add_column("cut", justify="center")
    table.add_column("text")
    for rec in pred.frame.to_dict(orient="records"):
        p = rec[score] if len(classes) == 2 else rec[f"P({rec['label']})"]
        source = str(rec["source"]).rsplit("/", 1)[-1]  # reviews.txt:3; CSV and JSON keep the whole path
        table.add_row(source, f"{p:.3f}", str(rec["label"]), f"{rec['oov_share']:.0%}",
                      "yes" if rec["truncated"] else "", preview(rec["text"]))
    table.caption = (f"run: {pred.meta['run']}. OOV: share of the text's tokens the vocabulary lacks; cut: longer "
                     f"than maxlen ({pred.meta['maxlen']}), so the model saw only part of it.")
    return table


def series_table(pred) -> Table:
    meta = pred.meta
    title = (f"Forecast after {meta['after']}" if meta["mode"] == "next"
             else f"One forecast per window of {meta['window']} rows")
    table = Table(title=title, header_style="bold")
    columns = list(pred.frame.columns)
    for c in columns:
        table.add_column(str(c), justify="left" if c in ("time", "window_end") else "right")
    for rec in pred.frame.to_dict(orient="records"):
        table.add_row(*[fmt(rec[c], 6) if isinstance(rec[c], float) else str(rec[c]) for c in columns])
    table.caption = "; ".join(filter(None, [f"run: {meta['run']}", data_notes(meta)]))
    return table


def sequences_table(pred) -> Table:
    """One row per sequence id: the label and its probability (binary: of the second class) or the number, the
    file's own label when it has one, the sequence's steps and whether maxlen cut it. CSV and JSON have every
    class's probability and where each sequence starts."""
    meta, classes = pred.meta, pred.meta.get("classes")
    table = Table(title="Predictions, one per sequence", header_style="bold")
    score = None if not classes else f"P({classes[1]})" if len(classes) == 2 else "P(label)"
    heads = ["id"] + (["label", score] if classes else ["prediction"])
    heads += [c for c in ("given", "steps", "cut") if c in pred.frame.columns]
    for c in heads:
        table.add_column(c, justify="left" if c in ("id", "label", "given") else "right")
    for rec in pred.frame.to_dict(orient="records"):
        if classes and len(classes) > 2:
            rec["P(label)"] = rec[f"P({rec['label']})"]
        cells = {c: fmt(rec[c], 4) if isinstance(rec[c], float) else str(rec[c]) for c in heads if c != "cut"}
        cells["cut"] = "yes" if rec["cut"] else ""
        table.add_row(*[cells[c] for c in heads])
    table.caption = (f"run: {meta['run']}. cut: longer than maxlen ({meta['maxlen']}), so the model saw only part "
                     "of it.")
    return table
