"""`gru-lab predict`: score new text or a series file with a finished run's model, read exactly as its training
data was (the run's inputs.json says how). Returns frames; report.predictions renders them.

Text: one row per text with the predicted class, every class's probability, and what the model could not see:
the share of tokens out of the vocabulary and whether the text was cut to maxlen. Series: the forecast of the
next `horizon` rows after the file's last window, or one forecast per window, in the file's own units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gru_lab.data.files import decode, read_bytes
from gru_lab.errors import DataError, RunError
from gru_lab.inference.run import Run, imdb_vocabulary, load_model

BATCH = 256


@dataclass
class Predictions:
    kind: str  # "text", "series" or "sequences"
    frame: Any  # pandas DataFrame, one row per text, window or forecast step
    meta: dict[str, Any] = field(default_factory=dict)  # run, classes, mode, notes: the JSON output's header


def read_lines(path: Path, encoding: str = "utf-8") -> list[tuple[str, str]]:
    """(source "file:line", text) for every non-blank line of a text file; blank lines are skipped but keep the
    numbering, so each source names the line it came from."""
    text = decode(read_bytes(path, "--file"), encoding, path)
    return [(f"{path}:{n}", line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def predict_run(run: Run, texts: list[str], file: Path | None, every_window: bool) -> Predictions:
    """What `gru-lab predict` scores: a series run's --file, or a text run's texts and --file lines."""
    if run.inputs.get("kind") == "sequences":
        if texts or file is None:
            raise RunError(f"predict: {run.folder} classifies sequences; pass them as --file in the run's layout "
                           f"({(run.inputs.get('reader') or {}).get('layout', 'npz')}).")
        return predict_sequences(run, file)
    if run.inputs.get("kind") == "series":
        if texts or file is None:
            raise RunError(f"predict: {run.folder} forecasts a series; pass its data as --file data.csv (the run's "
                           "columns, at least one window of rows).")
        return predict_series(run, file, every_window)
    items = [(f"arg {i}", t) for i, t in enumerate(texts, 1)]
    if file is not None:
        items += read_lines(file)
    if not items:
        raise RunError("predict: no text given; pass texts as arguments or --file texts.txt (one per line).")
    return predict_texts(run, items)


def predict_texts(run: Run, items: list[tuple[str, str]]) -> Predictions:
    """items: (source, text) pairs."""
    import pandas as pd

    kind = run.inputs.get("kind")
    if kind not in ("text", "imdb-text"):
        raise RunError(f"{run.folder}: the run trained on {run.cfg.data.name!r} data, which is not text; pass a "
                       "series file with --file data.csv instead.")
    texts = [t for _, t in items]
    classes = list(run.inputs["classes"])
    if kind == "text":
        from gru_lab.data.text import encode, token_counts, vectorizer

        settings, vocabulary = run.inputs["vectorizer"], run.inputs["vocabulary"]
        x = encode(vectorizer(settings, vocabulary), texts)
        tokens, oov = token_counts(settings, vocabulary, texts)
        maxlen, fits = settings["maxlen"], tokens
    else:
        from gru_lab.data.imdb import encode_texts, token_counts

        v = imdb_vocabulary(run)
        x = encode_texts(texts, v["word_index"], v["num_words"], v["maxlen"], v["padding"], v["truncating"])
        if getattr(run.cfg.data, "as_real", False):
            x = x[..., None].astype("float32")
        tokens, oov = token_counts(texts, v["word_index"], v["num_words"])
        maxlen, fits = v["maxlen"], tokens + 1  # the START id takes one place
    probabilities = np.asarray(load_model(run).predict(x, batch_size=BATCH, verbose=0), dtype="float64")
    if len(classes) == 2:
        positive = probabilities.reshape(-1)
        probabilities = np.stack([1 - positive, positive], axis=1)
    chosen = probabilities.argmax(axis=1)
    frame = pd.DataFrame({"source": [s for s, _ in items], "label": [classes[i] for i in chosen]})
    for i, name in enumerate(classes):
        frame[f"P({name})"] = probabilities[:, i]
    frame["tokens"] = tokens
    frame["oov_share"] = np.where(tokens > 0, oov / np.maximum(tokens, 1), 0.0)
    frame["truncated"] = fits > maxlen
    frame["text"] = texts
    meta = {"run": str(run.folder), "task": run.inputs.get("task"), "classes": classes, "maxlen": maxlen}
    return Predictions("text", frame, meta)


def predict_series(run: Run, path: Path, every_window: bool) -> Predictions:
    """The forecast after the file's last window (every_window False), or one per window of the file."""
    import pandas as pd

    from gru_lab.data.files import read_table
    from gru_lab.data.series import apply_transform, offset, read_series, scale, undo_transform, unscale, window_starts

    inputs = run.inputs
    if inputs.get("kind") != "series":
        raise RunError(f"{run.folder}: the run trained on text; pass texts as arguments or --file texts.txt "
                       "(one per line), not a series file.")
    window = int(inputs["window"])
    columns, targets = inputs.get("columns"), inputs.get("targets")
    if columns is None:  # synthetic windows: every column of the file is an input, in order
        table = _headless(read_table(path, "--file", None, False, "utf-8"))
        if len(table.columns) != inputs["features"]:
            raise DataError(f"{path}: {len(table.columns)} column(s), but the run's model reads "
                            f"{inputs['features']} value(s) per step; give one column per value.")
        columns = list(range(len(table.columns)))
        named_by = {c: "the run reads it" for c in columns}
    else:
        table = read_table(path, "--file", None, inputs.get("header", True), inputs.get("encoding", "utf-8"))
        named_by = {c: "the run was trained on it (inputs.json)" for c in columns}
    time_column = inputs.get("time_column")
    if time_column is not None:
        named_by[time_column] = "the run's time column (inputs.json)"
    series = read_series(table, columns, time_column, inputs.get("time_format"), inputs.get("missing", "error"),
                         named_by)
    raw = series.values
    transform = inputs.get("transform") or {"method": "none"}
    first = offset(transform)  # a differenced window needs the row before it
    if len(raw) < window + first:
        raise DataError(f"{path}: {len(raw)} usable row(s), but the model reads windows of {window} rows"
                        f"{' (and the row before, to difference)' if first else ''}; give at least {window + first}.")
    names = [str(c) for c in columns] if inputs.get("columns") is None else columns
    n_targets = len(targets or [])
    # A detrended run's line is in row numbers of its training file: the file's first row is taken as row 0.
    values = apply_transform(raw, n_targets, transform)
    scaling = inputs.get("scaling")
    if scaling:
        values = scale(values, scaling, names)
    starts = window_starts(len(values), window, 0, 1) if every_window else np.array([len(values) - window])
    x = values[starts[:, None] + np.arange(window)[None, :]].astype("float32")
    out = np.asarray(load_model(run).predict(x, batch_size=BATCH, verbose=0), dtype="float64")
    if targets is None:  # synthetic data: one output per model unit, not a forecast of a column
        targets, horizon = ["prediction"] if out.shape[1] == 1 else [f"prediction_{i}" for i in range(out.shape[1])], 1
    else:
        horizon = int(inputs["horizon"])
    out = out.reshape(len(starts), horizon, len(targets))
    if scaling and inputs.get("targets"):
        out = unscale(out, scaling, targets)
    ends = starts + first + window - 1  # each window's last row in the file
    if inputs.get("targets"):
        out = undo_transform(out, transform, raw[ends, :n_targets], ends[:, None] + 1 + np.arange(horizon)[None, :])
    after = [_when(series, i) for i in ends]
    if every_window:
        frame = pd.DataFrame({"window_end": after})
        for h in range(horizon):
            for j, name in enumerate(targets):
                frame[name if horizon == 1 else f"{name} (t+{h + 1})"] = out[:, h, j]
    else:
        frame = pd.DataFrame({"step": np.arange(1, horizon + 1)})
        future = _future_times(series, inputs.get("time_step"), horizon)
        if future is not None:
            frame["time"] = future
        for j, name in enumerate(targets):
            frame[name] = out[0, :, j]
    meta = {"run": str(run.folder), "task": "regression", "mode": "every window" if every_window else "next",
            "window": window, "horizon": horizon, "after": after[-1], "rows": len(raw),
            "file": str(path), **{k: v for k, v in series.notes.items() if k != "rows_read"}}
    return Predictions("series", frame, meta)


def _headless(table):
    """A table read without a header whose first row is a header after all (not numbers): that row dropped."""
    if table.rows:
        try:
            [float(v) for v in table.rows[0] if v.strip()]
        except ValueError:
            table.rows, table.lines = table.rows[1:], table.lines[1:]
    return table


def _when(series, i: int) -> Any:
    """The time of row i, or the file line it came from."""
    if series.times is not None:
        value = series.times.iloc[i]
        return str(value) if hasattr(value, "isoformat") else value.item() if hasattr(value, "item") else value
    return series.where[i]


def _future_times(series, step: Any, horizon: int) -> list | None:
    """The times of the next horizon rows after the last one (the training file's usual step); None without."""
    if series.times is None or step is None:
        return None
    import pandas as pd

    last = series.times.iloc[-1]
    if isinstance(last, pd.Timestamp):
        return [str(last + h * pd.Timedelta(step)) for h in range(1, horizon + 1)]
    return [last.item() + h * step if hasattr(last, "item") else last + h * step for h in range(1, horizon + 1)]


def predict_sequences(run: Run, path: Path) -> Predictions:
    """One row per sequence of the file (read in the run's layout; its label column, when present, shown beside
    the prediction): the class and each class's probability, or the number, in the file's units."""
    import pandas as pd

    from gru_lab.data.sequences import read_sequences, to_model

    inputs = run.inputs
    settings = dict(inputs.get("reader") or {"layout": "npz"})  # a builtin run's data: an .npz of the same shape
    if settings["layout"] != "npz" and Path(path).suffix.lower() == ".npz":
        settings = {"layout": "npz"}
    found = read_sequences(path, settings, "--file", labels=False)
    if not len(found):
        raise DataError(f"{path}: no sequences to predict.")
    x, lengths = to_model(found, inputs)
    out = np.asarray(load_model(run).predict(x, batch_size=BATCH, verbose=0), dtype="float64")
    frame = pd.DataFrame({"id": found.ids})
    if inputs["task"] == "regression":
        ts = inputs["target_scaling"]
        frame["prediction"] = out.reshape(-1) * ts["scale"] + ts["center"]
    else:
        classes = list(inputs["classes"])
        if len(classes) == 2:
            out = np.stack([1 - out.reshape(-1), out.reshape(-1)], axis=1)
        frame["label"] = [classes[i] for i in out.argmax(axis=1)]
        for i, name in enumerate(classes):
            frame[f"P({name})"] = out[:, i]
    if any(label is not None for label in found.labels):
        frame["given"] = found.labels  # the file's own label, to read beside the prediction
    frame["steps"] = lengths
    frame["cut"] = lengths > inputs["maxlen"]
    frame["source"] = found.where
    meta = {"run": str(run.folder), "task": inputs["task"], "classes": inputs.get("classes"),
            "maxlen": inputs["maxlen"], "file": str(path), "sequences": len(frame)}
    return Predictions("sequences", frame, meta)
