"""Classical baselines beside the recurrent runs: the simple method a practitioner would try first, fitted on
exactly the rows a recurrent run of the same config trains on and scored on the same test rows.

- text (a Dataset with documents, or token ids): TF-IDF of word 1-2-grams with sublinear tf + logistic
  regression (scikit-learn). It reads every word of each text (Dataset.documents), not the model's
  num_words / maxlen cut; without documents, the model's own ids with the padding left out.
- classification of real-valued sequences: logistic regression on the flattened window (standardized); for
  data.name sequences, the flattened, padded sequence with the padding steps as 0s (the train mean, once scaled).
- regression / forecasting: the window's last value, the value one period back (seasonal naive, where
  baseline.period is given), and ridge regression on the flattened window (its penalty chosen by
  leave-one-out on the training rows). A series with data.transform differenced or detrended: the last value
  of the series itself (its level, not the last difference). Regression of whole sequences (data.name
  sequences): the train mean and ridge on the flattened, padded sequence.

What a dataset must provide: task, input_kind, x_train/y_train/x_test/y_test (x_val/y_val when it has its
own validation set), and for text, documents (or token ids in x). Forecasting outputs follow the series
loader's layout (artifacts["inputs"]: "targets", "horizon"): the horizon's steps after the window,
horizon-major, each target continuing one of the first input features; without that record, one target,
the first feature.

compare and sweep fit a baseline once per distinct data (not per run), in their own process, after the
runs, and cache it atomically under <results>/<name>/baselines/ so that a re-run reuses it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gru_lab.config import ExperimentConfig
from gru_lab.data.base import MASK_VALUE, Dataset
from gru_lab.errors import GruLabError
from gru_lab.files import atomic_write_json
from gru_lab.runs.records import metric_of
from gru_lab.training.pipeline import fit_rows

# Part of the cache key: bump when a baseline's method changes, so that cached results are refitted.
VERSION = 1
# The ridge penalties leave-one-out chooses from (scaled inputs, so one grid serves every dataset).
RIDGE_ALPHAS = tuple(10.0 ** k for k in range(-4, 5))
TFIDF = dict(ngram_range=(1, 2), sublinear_tf=True, min_df=2)  # n-grams seen in one training text only are noise
LOGREG_C = 8.0  # inverse L2 penalty of the text model: chosen on IMDB's validation rows, never on test (docs/imdb.md)


@dataclass
class Baseline:
    name: str  # tfidf_logreg, window_logreg, last_value, seasonal_naive, ridge
    label: str  # how tables name it
    metric: str  # test_accuracy or test_mse, as the recurrent runs of the same data report
    value: float
    fit_seconds: float  # features and fit on the training rows
    size: int  # numbers the fitted model keeps (coefficients, intercepts, scaling); 0 for a rule
    sees: str  # what it reads, in words
    n_train: int  # rows fitted on: the recurrent run's training rows (validation rows held out alike)
    n_test: int


@dataclass
class Baselines:
    """The baselines of one data config: what compare, sweep and train show beside the recurrent rows."""

    key: str  # the cache key (data config, data seed, validation split, baseline settings, VERSION)
    items: list[Baseline]
    note: str | None = None  # why there is none, or what went wrong
    cached: bool = False

    def best(self) -> Baseline | None:
        """The strongest baseline on the test rows: the bar a recurrent model must clear."""
        if not self.items:
            return None
        higher = metric_of("binary" if self.items[0].metric == "test_accuracy" else "regression")[1]
        return (max if higher else min)(self.items, key=lambda b: b.value)

    def record(self) -> dict[str, Any]:
        return {"key": self.key, "version": VERSION, "items": [asdict(b) for b in self.items], "note": self.note}


def cache_key(cfg: ExperimentConfig) -> str:
    """Everything a baseline's result depends on: the data (and its seed), the rows held out for validation,
    the baseline settings. Not the model or train seed: every cell and seed of a compare shares it."""
    what = {"data": cfg.data.model_dump(mode="json"), "seed": cfg.seed,
            "validation_split": cfg.train.validation_split, "baseline": cfg.baseline.model_dump(mode="json"),
            "version": VERSION}
    return hashlib.sha256(yaml.safe_dump(what, sort_keys=True).encode()).hexdigest()[:12]


def fitted_rows(cfg: ExperimentConfig, data: Dataset) -> slice:
    """The training rows a recurrent run of cfg fits on: all of x_train, or the first part when Keras holds
    out train.validation_split (training.pipeline.fit_rows, as the run itself splits)."""
    if data.x_val is None and cfg.train.validation_split > 0:
        return slice(0, fit_rows(len(data.x_train), cfg.train.validation_split))
    return slice(0, len(data.x_train))


def fit_baselines(cfg: ExperimentConfig, data: Dataset) -> Baselines:
    """Fit and score the baselines of cfg's task on data (baseline.kind none: none)."""
    key = cache_key(cfg)
    if cfg.baseline.kind == "none":
        return Baselines(key, [], "baseline: none")
    rows = fitted_rows(cfg, data)
    try:
        if data.task in ("binary", "multiclass"):
            if len(np.unique(data.y_train[rows])) < 2:
                return Baselines(key, [], "no classical baseline: the training rows hold one class only")
            if data.documents is not None or data.input_kind == "tokens":
                return Baselines(key, [_tfidf_logreg(data, rows)])
            return Baselines(key, [_window_logreg(data, rows)])
        return Baselines(key, _regression(cfg, data, rows))
    except MemoryError:
        return Baselines(key, [], "no classical baseline: out of memory while fitting it")


# ----------------------------------------------------------------------------- classification


def _texts(data: Dataset, split: str, rows: slice | None = None) -> tuple[list[str], str]:
    """Each text as its token ids separated by spaces (ids are words: the same n-grams as the words),
    and what that is in words."""
    x = data.x_train if split == "train" else data.x_test
    if data.documents is not None:
        docs = data.documents[split]
        if rows is not None:
            docs = docs.rows(rows)
        return [" ".join(docs[i].astype(str)) for i in range(len(docs))], "every word of each text"
    if rows is not None:
        x = x[rows]
    x = np.asarray(x).reshape(len(x), -1).astype(np.int64)
    return [" ".join(r[r != 0].astype(str)) for r in x], "the model's token ids, padding left out"


def _tfidf_logreg(data: Dataset, rows: slice) -> Baseline:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    train, sees = _texts(data, "train", rows)
    vectorizer = TfidfVectorizer(token_pattern=r"\S+", lowercase=False, dtype=np.float32, **TFIDF)
    features = vectorizer.fit_transform(train)
    model = LogisticRegression(C=LOGREG_C, solver="liblinear" if data.task == "binary" else "lbfgs", max_iter=1000)
    model.fit(features, _classes(data.y_train[rows]))
    fit_seconds = time.perf_counter() - started
    test, _ = _texts(data, "test")
    accuracy = _accuracy(model.predict(vectorizer.transform(test)), data.y_test)
    n_features = features.shape[1]
    return Baseline("tfidf_logreg", "TF-IDF 1-2-grams + logistic regression", "test_accuracy", accuracy,
                    fit_seconds, int(model.coef_.size + model.intercept_.size), f"{sees} ({n_features:,} n-grams)",
                    len(train), len(test))


def _window_logreg(data: Dataset, rows: slice) -> Baseline:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    x = _flat(data.x_train[rows])
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(max_iter=1000).fit(scaler.transform(x), _classes(data.y_train[rows]))
    fit_seconds = time.perf_counter() - started
    accuracy = _accuracy(model.predict(scaler.transform(_flat(data.x_test))), data.y_test)
    size = int(model.coef_.size + model.intercept_.size + 2 * x.shape[1])
    label = "logistic regression on the padded sequence" if data.masked else "logistic regression on the window"
    return Baseline("window_logreg", label, "test_accuracy", accuracy, fit_seconds,
                    size, _window_words(data), len(x), len(data.x_test))


def _classes(y: np.ndarray) -> np.ndarray:
    return np.asarray(y).reshape(len(y)).astype(np.int64)


def _accuracy(predicted: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted).reshape(-1) == _classes(y)))


# ----------------------------------------------------------------------------- regression


def _regression(cfg: ExperimentConfig, data: Dataset, rows: slice) -> list[Baseline]:
    from sklearn.linear_model import RidgeCV
    from sklearn.preprocessing import StandardScaler

    targets, horizon = _layout(data)
    y_test = _targets(data.y_test)
    steps = data.x_test.shape[1]
    n_train, n_test = len(data.x_train[rows]), len(data.x_test)

    def scored(name: str, label: str, predicted: np.ndarray, seconds: float, size: int, sees: str) -> Baseline:
        mse = float(np.mean((predicted.reshape(y_test.shape) - y_test) ** 2))
        return Baseline(name, label, "test_mse", mse, seconds, size, sees, n_train, n_test)

    series = np.asarray(data.x_test, dtype=np.float64)[:, :, :targets]  # (n, steps, targets)
    which = "each target's" if targets > 1 else "the window's"
    if data.masked:  # whole sequences, one number each: no last value to repeat
        mean = np.full(y_test.shape, _targets(data.y_train[rows]).mean(axis=0))
        found = [scored("train_mean", "train mean", mean, 0.0, y_test.shape[1], "the train labels' mean")]
    elif data.units is not None and data.units.naive is not None:  # differenced or detrended: the level's last value
        found = [scored("last_value", "last value", data.units.naive, 0.0, 0, f"{which} last value in the file")]
    else:
        found = [scored("last_value", "last value", np.tile(series[:, -1, :], (1, horizon)), 0.0, 0,
                        f"{which} last value")]
    period = cfg.baseline.period
    if period is not None and not data.masked:
        ahead = np.arange(1, horizon + 1)  # steps after the window's last step, one per horizon step
        back = steps - 1 + ahead - period * np.ceil(ahead / period).astype(int)
        found.append(scored("seasonal_naive", f"seasonal naive (period {period})",
                            series[:, back, :].reshape(n_test, horizon * targets), 0.0, 0,
                            f"{which} value one period ({period} steps) back"))
    started = time.perf_counter()
    x = _flat(data.x_train[rows])
    scaler = StandardScaler().fit(x)
    model = RidgeCV(alphas=RIDGE_ALPHAS).fit(scaler.transform(x), _targets(data.y_train[rows]))
    seconds = time.perf_counter() - started
    size = int(np.size(model.coef_) + np.size(model.intercept_) + 2 * x.shape[1])
    where = "padded sequence" if data.masked else "window"
    found.append(scored("ridge", f"ridge on the {where} (alpha {model.alpha_:g})",
                        np.asarray(model.predict(scaler.transform(_flat(data.x_test)))), seconds, size,
                        _window_words(data)))
    return found


def _layout(data: Dataset) -> tuple[int, int]:
    """(targets, horizon) of a regression's outputs: y holds `horizon` steps after the window, horizon-major,
    each with one value per target, and the targets are the first input features (the series loader's layout,
    from its inputs record); any other regression: one target, the first feature, as many steps as y has."""
    inputs = data.artifacts.get("inputs") or {}
    targets = len(inputs.get("targets") or []) or 1
    return targets, int(inputs.get("horizon") or max(1, data.outputs // targets))


def _targets(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return y.reshape(len(y), -1)


def _flat(x: np.ndarray) -> np.ndarray:
    """Each input flattened; padding steps (MASK_VALUE, data.name sequences) as 0s."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return np.where(x == MASK_VALUE, 0.0, x)


def _window_words(data: Dataset) -> str:
    if data.masked:
        return (f"the flattened sequence, padded to {data.timesteps} steps x {data.features} feature(s), padding "
                "as 0s")
    return f"the model's input window, flattened ({data.timesteps} steps x {data.features} feature(s))"


# ----------------------------------------------------------------------------- once per compare or sweep


def with_settings(run_cfg: ExperimentConfig, base: ExperimentConfig) -> ExperimentConfig:
    """A planned run's config with the plan's baseline settings (planning leaves them out of a run's config,
    so that they never change its id)."""
    return run_cfg.model_copy(update={"baseline": base.baseline})


def of_run(run_cfg: ExperimentConfig, base: ExperimentConfig, found: dict[str, Baselines]) -> Baselines | None:
    """The baselines a planned run is judged against (found: baselines_for's answer)."""
    return found.get(cache_key(with_settings(run_cfg, base)))


def baselines_for(configs: list[ExperimentConfig], folder: Path, load=None, fit=True) -> dict[str, Baselines]:
    """The baselines of each distinct data config among configs, by cache key: read from
    <folder>/baselines/<key>.json when an earlier compare or sweep fitted them, else fitted here (data loaded
    once per key) and written there atomically. fit=False (an interrupted command) only reads the cache."""
    if load is None:
        from gru_lab.data import load_dataset as load
    found: dict[str, Baselines] = {}
    for cfg in configs:
        key = cache_key(cfg)
        if key in found:
            continue
        if cfg.baseline.kind == "none":
            found[key] = Baselines(key, [], "baseline: none")
            continue
        path = folder / "baselines" / f"{key}.json"
        cached = _read(path, key)
        if cached is not None or not fit:
            found[key] = cached or Baselines(key, [], "classical baseline not fitted: the command was interrupted")
            continue
        try:
            result = fit_baselines(cfg, load(cfg.data, cfg.seed))
        except GruLabError as exc:  # the data could not be loaded: the runs say the same
            found[key] = Baselines(key, [], f"classical baseline not fitted: {exc}")
            continue
        except MemoryError:  # a machine limit costs the baseline row, not the runs' table
            found[key] = Baselines(key, [], "classical baseline not fitted: out of memory loading the data")
            continue
        if result.items:
            try:
                atomic_write_json(path, result.record())
            except OSError as exc:  # a full disk costs the cache, not the table
                result.note = f"classical baseline not cached ({exc.__class__.__name__}: {exc})"
        found[key] = result
    return found


def _read(path: Path, key: str) -> Baselines | None:
    try:
        record = json.loads(path.read_text())
        if record.get("key") != key or record.get("version") != VERSION:
            return None
        return Baselines(key, [Baseline(**b) for b in record["items"]], record.get("note"), cached=True)
    except (OSError, ValueError, KeyError, TypeError):  # absent or damaged: fit again
        return None

