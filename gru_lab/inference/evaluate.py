"""`gru-lab evaluate`: a finished run (or several, as one ensemble) scored on its own test split or on new labelled
data in its own format, without retraining; and the same evaluation every finished run writes for its test split
from the predictions training already made.

Classification: confusion matrix (counts and row-normalized), per-class precision / recall / F1, ROC and
precision-recall curves with their areas (one-vs-rest for several classes), the reliability of the top-class
probability with the expected calibration error, and the most confident mistakes. Regression: mse and mae, error
by horizon step beside the naive last-value forecast, residuals, and (series) the forecast on the file's time axis.
Both: the metric by true input length, in quantile buckets. Every number comes from scikit-learn or numpy here;
report.evaluation draws and writes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gru_lab.data.base import Dataset, Samples
from gru_lab.errors import DataError, RunError

BUCKETS = 4  # quartiles of length: the shortest and the longest quarter are what compare's verdict reads
CALIBRATION_BINS = 10  # equal-width bins of the top-class probability
MISTAKES = 10  # rows of the confident-mistakes table
CURVE_POINTS = 200  # points of each ROC/PR curve kept in evaluation.json (the plots draw every point)


@dataclass
class Scored:
    """Predictions on labelled rows, with what the evaluation shows of each row."""

    task: str  # "binary", "multiclass" or "regression"
    y: np.ndarray  # class ids int (n,), or targets float (n, outputs) in the model's (scaled) units
    scores: np.ndarray  # probabilities (n, classes), or forecasts (n, outputs)
    samples: Samples
    classes: list[str] | None = None
    series: dict[str, Any] | None = None  # targets, horizon, scaling, naive (n, outputs): series runs only
    source: str = "the run's test split"
    runs: list[str] = field(default_factory=list)

    @property
    def identity(self) -> str:
        """A digest of the labelled rows (labels and lengths): two runs' scores can be averaged only when equal."""
        h = hashlib.sha256(np.ascontiguousarray(self.y, dtype="float64").tobytes())
        h.update(np.ascontiguousarray(self.samples.lengths, dtype="int64").tobytes())
        return h.hexdigest()[:16]


def probabilities(raw: np.ndarray, classes: int) -> np.ndarray:
    """A classifier's output as (n, classes) probabilities: a sigmoid's (n, 1) becomes [1 - p, p]."""
    raw = np.asarray(raw, dtype="float64")
    if classes == 2 and (raw.ndim == 1 or raw.shape[1] == 1):
        positive = raw.reshape(-1)
        return np.stack([1 - positive, positive], axis=1)
    return raw


def scored_from_data(data: Dataset, predictions: np.ndarray, inputs: dict[str, Any],
                     source: str = "the run's test split") -> Scored:
    """The test split of a loaded Dataset with the model's predictions on it (training's, or a fresh predict)."""
    n = len(data.y_test)
    samples = data.samples or Samples(np.full(n, data.timesteps))
    if data.task == "regression":
        y = np.asarray(data.y_test, dtype="float64").reshape(n, -1)
        forecasts = np.asarray(predictions, dtype="float64").reshape(n, -1)
        series = None
        if inputs.get("kind") == "series" and inputs.get("targets"):
            from gru_lab.data.series import last_values

            targets, horizon = list(inputs["targets"]), int(inputs["horizon"])
            units = data.units  # a transformed run's last value is the level's, and its outputs need it undone
            naive = units.naive if units is not None and units.naive is not None else \
                last_values(data.x_test, len(targets), horizon)
            series = {"targets": targets, "horizon": horizon, "scaling": inputs.get("scaling"),
                      "naive": np.asarray(naive, dtype="float64"),
                      "convert": None if units is None else units.convert}
        return Scored("regression", y, forecasts, samples, series=series, source=source)
    classes = list(inputs.get("classes") or data.extra.get("classes") or
                   (["neg", "pos"] if data.task == "binary" else [str(i) for i in range(data.outputs)]))
    return Scored(data.task, np.asarray(data.y_test).astype(int).reshape(-1),
                  probabilities(predictions, len(classes)), samples, classes=classes, source=source)


# ----------------------------------------------------------------------------- the numbers


@dataclass
class Evaluation:
    """What report.evaluation writes and shows: the JSON record, the tables, and the full curves for the plots."""

    record: dict[str, Any]
    tables: dict[str, Any]  # name -> pandas DataFrame (per_class, by_length, mistakes, by_horizon)
    curves: dict[str, Any]  # arrays the plots draw
    scored: Scored | None = None  # the predictions themselves (predictions.npz: compare's ensembles read them)


def evaluate_scored(s: Scored, buckets: int = BUCKETS, mistakes: int = MISTAKES) -> Evaluation:
    if s.task == "regression":
        ev = _regression(s)
        per_row = ((s.scores - s.y) ** 2).mean(axis=1)
        metric = "mse"
    else:
        ev = _classification(s, mistakes)
        per_row = (s.scores.argmax(axis=1) == s.y).astype("float64")
        metric = "accuracy"
    frame = length_buckets(s.samples.lengths, per_row, s.samples.truncated, metric, buckets)
    ev.tables["by_length"] = frame
    ev.record["by_length"] = frame.to_dict(orient="records")
    ev.record = {"source": s.source, "runs": s.runs, "task": s.task, "n": int(len(s.y)),
                 "test_identity": s.identity, **ev.record}
    ev.scored = s
    return ev


def length_buckets(lengths: np.ndarray, values: np.ndarray, truncated: np.ndarray | None, metric: str,
                   buckets: int = BUCKETS):
    """The mean of per-row values (1/0 correct, or squared error) in quantile buckets of true length: one row a
    bucket with its shortest and longest length, count, metric and the share of rows cut to maxlen. Tied lengths
    never straddle a bucket edge, so there are fewer buckets when many rows share a length (one when all do)."""
    import pandas as pd

    lengths = np.asarray(lengths, dtype="int64")
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, buckets + 1)[1:-1], method="lower"))
    # A row of length L goes to the first bucket whose upper edge is >= L; the last bucket is open above.
    which = np.searchsorted(edges, lengths, side="left")
    rows = []
    for b in np.unique(which):
        at = which == b
        rows.append({"bucket": len(rows) + 1, "min_length": int(lengths[at].min()),
                     "max_length": int(lengths[at].max()), "count": int(at.sum()),
                     "share": float(at.mean()), metric: float(np.mean(values[at])),
                     "truncated_share": float(np.mean(truncated[at])) if truncated is not None else 0.0})
    return pd.DataFrame(rows)


def _thin(*arrays: np.ndarray, points: int = CURVE_POINTS) -> list[list[float]]:
    """Curves for the JSON record: at most `points` points, the first and the last kept."""
    n = len(arrays[0])
    keep = np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(int)) if n else np.arange(0)
    return [np.asarray(a)[keep].round(6).tolist() for a in arrays]


def _classification(s: Scored, mistakes: int) -> Evaluation:
    import pandas as pd
    from sklearn import metrics

    k = len(s.classes)
    labels = list(range(k))
    predicted = s.scores.argmax(axis=1)
    counts = metrics.confusion_matrix(s.y, predicted, labels=labels)
    totals = counts.sum(axis=1, keepdims=True)
    normalized = np.divide(counts, totals, out=np.zeros(counts.shape, dtype="float64"), where=totals > 0)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(s.y, predicted, labels=labels,
                                                                             zero_division=0)
    per_class = pd.DataFrame({"class": s.classes, "precision": precision, "recall": recall, "f1": f1,
                              "support": support.astype(int)})

    # One-vs-rest curves: for two classes only the positive (second) class, whose curve is the binary one.
    roc, pr, curves = {}, {}, {"roc": {}, "pr": {}}
    for c in ([1] if k == 2 else labels):
        truth = (s.y == c).astype(int)
        if truth.min() == truth.max():  # a class absent (or alone) in these rows has no curve
            continue
        fpr, tpr, _ = metrics.roc_curve(truth, s.scores[:, c])
        precision_c, recall_c, _ = metrics.precision_recall_curve(truth, s.scores[:, c])
        name = s.classes[c]
        roc[name] = {"auc": float(metrics.roc_auc_score(truth, s.scores[:, c])), "fpr_tpr": _thin(fpr, tpr)}
        pr[name] = {"average_precision": float(metrics.average_precision_score(truth, s.scores[:, c])),
                    "auc": float(metrics.auc(recall_c, precision_c)), "recall_precision": _thin(recall_c, precision_c)}
        curves["roc"][name] = (fpr, tpr, roc[name]["auc"])
        curves["pr"][name] = (recall_c, precision_c, pr[name]["average_precision"])

    confidence = s.scores.max(axis=1)
    correct = predicted == s.y
    reliability, ece = calibration(confidence, correct)
    curves["reliability"] = reliability

    wrong = np.flatnonzero(~correct)
    worst = wrong[np.argsort(-confidence[wrong], kind="stable")][:mistakes]
    sources = s.samples.sources
    table = pd.DataFrame({
        "source": [sources[i] if sources else f"row {i + 1}" for i in worst],
        "true": [s.classes[s.y[i]] for i in worst], "predicted": [s.classes[predicted[i]] for i in worst],
        "score": confidence[worst], "length": s.samples.lengths[worst].astype(int),
        "text": [_short(s.samples.text(int(i))) if s.samples.text else "" for i in worst]})

    record = {
        "classes": s.classes, "accuracy": float(metrics.accuracy_score(s.y, predicted)),
        "confusion": {"counts": counts.tolist(), "row_normalized": normalized.round(6).tolist(),
                      "rows": "true class", "columns": "predicted class"},
        "per_class": per_class.to_dict(orient="records"),
        "macro_f1": float(np.mean(f1)),
        "roc": roc, "pr": pr,
        "calibration": {"confidence": "probability of the predicted class", "bins": reliability.to_dict("records"),
                        "ece": ece},
        "mistakes": table.to_dict(orient="records"),
    }
    curves["confusion"] = (counts, normalized)
    return Evaluation(record, {"per_class": per_class, "mistakes": table}, curves)


def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS):
    """(bins frame, expected calibration error): rows in equal-width bins of confidence over [0, 1] (a
    confidence of exactly 1 in the last bin); ECE = sum over bins of (rows in bin / rows) x |accuracy - mean
    confidence|. Empty bins are left out."""
    import pandas as pd

    which = np.minimum((confidence * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        at = which == b
        if not at.any():
            continue
        accuracy, mean_confidence = float(np.mean(correct[at])), float(np.mean(confidence[at]))
        rows.append({"low": b / bins, "high": (b + 1) / bins, "count": int(at.sum()), "confidence": mean_confidence,
                     "accuracy": accuracy})
        ece += at.sum() / len(confidence) * abs(accuracy - mean_confidence)
    return pd.DataFrame(rows), float(ece)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _regression(s: Scored) -> Evaluation:
    import pandas as pd

    error = s.scores - s.y
    record: dict[str, Any] = {"mse": float(np.mean(error ** 2)), "mae": float(np.mean(np.abs(error))),
                              "units": "the model's (scaled) units, as metrics.json's test mse"}
    tables, curves = {}, {}
    if s.series:
        targets, horizon = s.series["targets"], s.series["horizon"]
        naive = s.series["naive"]
        n = len(s.y)
        model_sq = (error ** 2).reshape(n, horizon, len(targets)).mean(axis=(0, 2))
        naive_sq = ((naive - s.y) ** 2).reshape(n, horizon, len(targets)).mean(axis=(0, 2))
        by_horizon = pd.DataFrame({"step": np.arange(1, horizon + 1), "mse": model_sq, "naive_mse": naive_sq})
        tables["by_horizon"] = by_horizon
        record["naive_mse"] = float(np.mean((naive - s.y) ** 2))
        record["by_horizon"] = by_horizon.to_dict(orient="records")
        actual, forecast, last = (in_file_units(a, s.series) for a in (s.y, s.scores, naive))
        residuals = actual - forecast  # (n, horizon, targets), the file's units
        record["residuals"] = {"units": "the file's units", "targets": {
            t: {"mean": float(residuals[:, :, j].mean()), "sd": float(residuals[:, :, j].std()),
                "mae": float(np.abs(residuals[:, :, j]).mean()),
                "naive_mae": float(np.abs(actual[:, :, j] - last[:, :, j]).mean())} for j, t in enumerate(targets)}}
        curves["series"] = {"times": s.samples.times, "time_label": s.samples.time_label, "targets": targets,
                            "actual": actual, "forecast": forecast, "naive": last}
    else:
        curves["residuals"] = (s.y - s.scores).reshape(-1)
    return Evaluation(record, tables, curves)


def in_file_units(values: np.ndarray, series: dict[str, Any]) -> np.ndarray:
    """(n, horizon * targets) horizon-major values, scaled as the model reads them -> (n, horizon, targets) in
    the file's units."""
    from gru_lab.data.series import unscale

    targets = series["targets"]
    if series.get("convert") is not None:  # the dataset's own conversion: scaling and data.transform undone
        values = series["convert"](np.asarray(values, dtype="float64").reshape(len(values), -1))
        return np.asarray(values).reshape(len(values), series["horizon"], len(targets))
    out = np.asarray(values, dtype="float64").reshape(len(values), series["horizon"], len(targets))
    return unscale(out, series["scaling"], targets) if series.get("scaling") else out


# ----------------------------------------------------------------------------- runs and data


def ensemble(parts: list[Scored]) -> Scored:
    """The mean of several runs' probabilities (or forecasts) on the same labelled rows."""
    first = parts[0]
    for other in parts[1:]:
        if other.task != first.task or other.classes != first.classes:
            raise RunError(f"{other.runs[0]}: a {other.task} run with classes {other.classes}, but "
                           f"{first.runs[0]} is a {first.task} run with classes {first.classes}; an ensemble "
                           "needs runs of one task and one set of classes.")
        if other.identity != first.identity:
            raise RunError(f"{other.runs[0]}: scored other rows than {first.runs[0]} (its test split differs: "
                           "another data seed or data section); pass the same labelled data to both with --data.")
    scores = np.mean([p.scores for p in parts], axis=0)
    return Scored(first.task, first.y, scores, first.samples, first.classes, first.series, first.source,
                  [r for p in parts for r in p.runs])


def score_run(run, data: str | Path | None = None) -> Scored:
    """A finished run's model on its own test split (data None) or on labelled data at a path, or named by a
    config's data section: a text table or class folders, a series file, the IMDB archive or folder."""
    from gru_lab.inference.run import load_model

    if data is None:
        from gru_lab.data import load_dataset

        dataset = load_dataset(run.cfg.data, run.cfg.seed)
        x, source = dataset.x_test, "the run's test split"
    else:
        path = _data_path(run, Path(data))
        dataset, source = _labelled(run, path), str(path)
        x = dataset.x_test
    model = load_model(run)
    predictions = model.predict(x, batch_size=256, verbose=0)
    scored = scored_from_data(dataset, predictions, run.inputs, source)
    scored.runs = [str(run.folder)]
    return scored


def _data_path(run, path: Path) -> Path:
    """--data as a path; a config names its data file (its test file when it has one). A config for another
    kind of data is refused."""
    if path.suffix.lower() not in (".yaml", ".yml"):
        return path
    from gru_lab.config import load_config

    cfg = load_config(path)
    if cfg.data.name != run.cfg.data.name:
        raise RunError(f"{path}: data.name is {cfg.data.name!r}, but {run.folder} was trained on "
                       f"{run.cfg.data.name!r} data; evaluate needs labelled data of the run's own kind.")
    named = getattr(cfg.data, "test_path", None) or getattr(cfg.data, "path", None)
    if not named:
        raise RunError(f"{path}: data.path is not set; evaluate reads the labelled data a config's data.path "
                       "(or data.test_path) names.")
    return Path(named).expanduser()


def _labelled(run, path: Path) -> Dataset:
    """New labelled data read exactly as the run's training data was, as a Dataset whose test split is all of it."""
    kind = run.inputs.get("kind")
    if kind == "text":
        return _text(run, path)
    if kind == "imdb-text":
        return _imdb(run, path)
    if kind == "series" and run.inputs.get("targets"):
        return _series(run, path)
    if kind == "sequences":
        return _sequences(run, path)
    raise RunError(f"{run.folder}: the run trained on synthetic {run.cfg.data.name!r} data, which has no file to "
                   "read; evaluate scores its own test split without --data.")


def _empty() -> np.ndarray:
    return np.zeros((0,), dtype="float32")


def _text(run, path: Path) -> Dataset:
    from gru_lab.data.text import encode, read_texts, token_counts, vectorizer

    if path.is_file() and _looks_numeric(path):
        raise DataError(f"{path}: holds numbers only, like a series file; {run.folder} classifies text: pass "
                        "labelled texts in its own format (a table with its text and label columns, or class folders).")
    found = read_texts(str(path), run.cfg.data, "--data", None)
    classes = list(run.inputs["classes"])
    unknown = next(((label, where) for label, where in zip(found.labels, found.where) if label not in classes), None)
    if unknown:
        raise DataError(f"{unknown[1]}: label {unknown[0]!r} is not one of the run's classes {classes}.")
    settings, vocabulary = run.inputs["vectorizer"], run.inputs["vocabulary"]
    x = encode(vectorizer(settings, vocabulary), found.texts)
    tokens, _ = token_counts(settings, vocabulary, found.texts)
    y = np.array([classes.index(label) for label in found.labels])
    task = run.inputs.get("task", "binary" if len(classes) == 2 else "multiclass")
    return Dataset("text", task, "tokens", x[:0], _empty(), x, y,
                   samples=Samples(tokens, tokens > settings["maxlen"], found.where, found.texts.__getitem__),
                   extra={"classes": classes})


def _looks_numeric(path: Path) -> bool:
    """A file whose second line is only numbers and separators (a series), read cheaply."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = [fh.readline() for _ in range(2)]
    except OSError:
        return False
    line = lines[1].strip() if len(lines) > 1 else ""
    return bool(line) and all(ch.isdigit() or ch in ".,;\t|-+eE :T" for ch in line)


def _imdb(run, path: Path) -> Dataset:
    """The test reviews of an aclImdb folder or archive, encoded with the run's vocabulary, named by file."""
    from gru_lab.data import imdb
    from gru_lab.inference.run import imdb_vocabulary

    where = f"--data {path}"
    if path.is_dir():
        reviews = imdb._read_dir(imdb._dir_files(imdb._dir_root(path, where), where), where)
    elif path.is_file():
        reviews = imdb._read_archive(path, where)
    else:
        raise DataError(f"{path}: --data names a file or folder that does not exist.")
    found = sorted((label, name, text) for split, label, name, text in reviews if split == "test")
    if not found:
        raise DataError(f"{path}: no aclImdb/test reviews in it; expected {imdb.LAYOUT}.")
    v = imdb_vocabulary(run)
    texts = [t for _, _, t in found]
    x = imdb.encode_texts(texts, v["word_index"], v["num_words"], v["maxlen"], v["padding"], v["truncating"])
    if getattr(run.cfg.data, "as_real", False):
        x = x[..., None].astype("float32")
    words, _ = imdb.token_counts(texts, v["word_index"], v["num_words"])
    lengths = words + 1  # the START mark, as the run's own test split counts it
    y = np.array([imdb.LABELS[label] for label, _, _ in found])
    sources = [f"aclImdb/test/{label}/{name}" for label, name, _ in found]
    return Dataset("imdb", "binary", "real" if x.ndim == 3 else "tokens", x[:0], _empty(), x, y,
                   samples=Samples(lengths, lengths > v["maxlen"], sources, texts.__getitem__))


def _series(run, path: Path) -> Dataset:
    """Every window of a series file (stride 1) with its next `horizon` rows, read, transformed and scaled as
    training was (the metrics in the model's units, as the run's own test split reports them)."""
    from gru_lab.data.files import read_table
    from gru_lab.data.series import (
        apply_transform,
        forecast_times,
        make_windows,
        offset,
        read_series,
        scale,
        window_units,
    )

    inputs = run.inputs
    columns, window, horizon = inputs["columns"], int(inputs["window"]), int(inputs["horizon"])
    if path.is_dir():
        raise DataError(f"{path}: --data is a folder; {run.folder} forecasts a series: pass a CSV/TSV/Parquet "
                        f"file with the columns {columns}.")
    table = read_table(path, "--data", inputs.get("separator"), inputs.get("header", True),
                       inputs.get("encoding", "utf-8"))
    named_by = {c: f"{run.folder} was trained on it (inputs.json)" for c in columns}
    time_column = inputs.get("time_column")
    if time_column is not None:
        named_by[time_column] = f"{run.folder}'s time column (inputs.json)"
    series = read_series(table, columns, time_column, inputs.get("time_format"), inputs.get("missing", "error"),
                         named_by)
    transform = inputs.get("transform") or {"method": "none"}  # data.transform, fitted on the run's train rows
    skip = offset(transform)
    if len(series.values) < window + horizon + skip:
        raise DataError(f"{path}: {len(series.values)} usable row(s), fewer than the run's window + horizon = "
                        f"{window + horizon}{' (and the row a difference needs before them)' if skip else ''}.")
    values = apply_transform(series.values, len(inputs["targets"]), transform)
    values = scale(values, inputs["scaling"], columns) if inputs.get("scaling") else values
    x, y = make_windows(values, len(inputs["targets"]), window, horizon, 1)
    first = np.arange(len(x)) + window + skip
    samples = Samples(np.full(len(x), window), times=forecast_times(series, first),
                      time_label=time_column or "file line")
    units = window_units(series.values, first - window, window, horizon, list(inputs["targets"]),
                         inputs.get("scaling"), transform)
    return Dataset("series", "regression", "real", x[:0], _empty(), x, y, samples=samples, units=units)


def _sequences(run, path: Path) -> Dataset:
    """Labelled sequences in the run's layout, cut, scaled and padded as training was (data.sequences)."""
    from gru_lab.data.sequences import read_sequences, to_model

    inputs = run.inputs
    settings = dict(inputs.get("reader") or {"layout": "npz"})  # a builtin run's data: an .npz of the same shape
    if settings["layout"] != "npz" and path.suffix.lower() == ".npz":
        settings = {"layout": "npz"}
    found = read_sequences(path, settings, "--data")
    if not len(found):
        raise DataError(f"{path}: no sequences to evaluate.")
    x, lengths = to_model(found, inputs)
    classes = inputs.get("classes")
    if inputs["task"] == "regression":
        ts = inputs["target_scaling"]
        try:
            y = (np.array([float(label) for label in found.labels]) - ts["center"]) / ts["scale"]
        except ValueError:
            raise DataError(f"{path}: a label is not a number; {run.folder} predicts a number.") from None
    else:
        unknown = next(((label, w) for label, w in zip(found.labels, found.where) if label not in classes), None)
        if unknown:
            raise DataError(f"{unknown[1]}: label {unknown[0]!r} is not one of the run's classes {classes}.")
        y = np.array([classes.index(label) for label in found.labels])
    return Dataset("sequences", inputs["task"], "real", x[:0], _empty(), x, y, masked=True,
                   samples=Samples(lengths, lengths > inputs["maxlen"], found.where),
                   extra={"classes": classes} if classes else {})


def write_run_evaluation(folder: Path, data: Dataset, predictions: np.ndarray, inputs: dict[str, Any],
                         title: str) -> dict[str, Path]:
    """evaluation/ of a finished run, from the test predictions training made (report.evaluation draws it)."""
    from gru_lab.report.evaluation import write_evaluation

    return write_evaluation(evaluate_scored(scored_from_data(data, predictions, inputs)), folder, title)


def evaluate_runs(paths: list[Path], data: str | Path | None = None) -> Evaluation:
    """`gru-lab evaluate`: one run, or several scored as one ensemble (the mean of their probabilities or
    forecasts), on their own test split or on --data. Every run is checked before any model is loaded."""
    from gru_lab.inference.run import open_run

    if not paths:
        raise RunError("evaluate: no run folder given; pass results/<name>/<run-id>/ (several: one ensemble).")
    runs = [open_run(path, "evaluate") for path in paths]
    kinds = {(r.inputs.get("kind"), r.cfg.data.name) for r in runs}
    if len(kinds) > 1:
        raise RunError(f"{runs[-1].folder}: trained on {runs[-1].cfg.data.name!r} data, {runs[0].folder} on "
                       f"{runs[0].cfg.data.name!r}; an ensemble needs runs of the same data.")
    parts = [score_run(run, data) for run in runs]
    return evaluate_scored(parts[0] if len(parts) == 1 else ensemble(parts))


def default_folder(paths: list[Path]) -> Path:
    """Where `gru-lab evaluate` writes without --out: the run's evaluation/ when it has none yet, else a new
    evaluation-<UTC time>/ beside it (an earlier evaluation is never overwritten); an ensemble's goes beside
    its first run."""
    import time

    first = Path(paths[0])
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    if len(paths) > 1:
        return first.parent / f"ensemble-{stamp}"
    return first / "evaluation" if not (first / "evaluation").exists() else first / f"evaluation-{stamp}"
