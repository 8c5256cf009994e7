"""Cross-field rules no single key can check, each answering with (dotted key, one sentence)."""

from __future__ import annotations

import codecs
import difflib
import math
from typing import Any

from gru_lab.config.schema import (
    ArithmeticData,
    ExperimentConfig,
    ImdbData,
    SequencesData,
    SeriesData,
    SineData,
    TextData,
)
from gru_lab.names import logged_quantities


def check_combinations(cfg: ExperimentConfig) -> tuple[str, str] | None:
    """Cross-field rules no single field can check: (dotted key, sentence) for the first broken one."""
    m, d, t = cfg.model, cfg.data, cfg.train
    tokens = d.input_kind == "tokens" and not getattr(d, "as_real", False)
    if isinstance(m.units, list):
        if len(m.units) == 0:
            return "model.units", "'model.units' must be an integer or a non-empty list of integers. Got []."
        if any(u < 1 for u in m.units):
            return "model.units", f"'model.units' must all be >= 1. Got {m.units}."
        if "num_layers" in m.model_fields_set and m.num_layers != len(m.units):
            return "model.num_layers", (
                f"'model.num_layers' is {m.num_layers} but 'model.units' lists {len(m.units)} sizes; "
                "give one size per layer or drop num_layers.")
    elif m.units < 1:
        return "model.units", f"'model.units' must be >= 1. Got {m.units}."
    if tokens and m.embedding_dim is None:
        return "model.embedding_dim", (
            f"'model.embedding_dim' is required: data '{d.name}' gives token ids, which need an Embedding "
            "(or set data.as_real: true to feed raw ids as numbers).")
    if not tokens and m.embedding_dim is not None:
        return "model.embedding_dim", (
            f"'model.embedding_dim' cannot be used: data '{d.name}' is real-valued, not token ids. Remove it.")
    for key, unset in (("embedding_dropout", 0.0), ("embedding_init", "random"), ("embedding_trainable", True)):
        if not tokens and getattr(m, key) != unset:
            return f"model.{key}", (
                f"'model.{key}' applies to an Embedding; data '{d.name}' is real-valued, not token ids. Remove it.")
    if m.mask_zero and not tokens:
        return "model.mask_zero", (
            f"'model.mask_zero' needs token input with an Embedding; data '{d.name}' is real-valued.")
    if m.conv is not None and d.name == "sequences":
        return "model.conv", ("'model.conv' cannot be used with data 'sequences': Conv1D cannot carry the mask over "
                              "their padding steps. Remove it.")
    if m.mask_zero and m.conv is not None:
        return "model.mask_zero", (
            "'model.mask_zero' cannot be combined with 'model.conv': Conv1D cannot carry a padding mask.")
    if m.recurrent_activation is not None and m.cell == "simple_rnn":
        return "model.recurrent_activation", (
            "'model.recurrent_activation' applies to gru/lstm gates; simple_rnn has none.")
    own_val = _validation_source(d)
    if t.validation_split > 0 and own_val:
        return "train.validation_split", (
            f"'train.validation_split' is {t.validation_split} but data '{d.name}' already has a validation set "
            f"({own_val}); set one of them to 0.")
    has_val = t.validation_split > 0 or own_val is not None
    if t.early_stopping is not None and t.early_stopping.monitor.startswith("val_") and not has_val:
        return "train.early_stopping.monitor", (
            f"'train.early_stopping.monitor' is {t.early_stopping.monitor!r} but there is no validation data; "
            "set train.validation_split or data.n_val, or monitor 'loss'.")
    problem = _monitor_problem(cfg, has_val) or _split_problem(cfg)
    if problem:
        return problem
    if isinstance(d, ArithmeticData):
        if (d.starts is None) != (d.steps is None):
            key = "data.steps" if d.steps is None else "data.starts"
            return key, "'data.starts' and 'data.steps' go together: give both (a grid of progressions) or neither."
        for key, (lo, hi) in (("data.start_range", d.start_range), ("data.step_range", d.step_range)):
            if lo > hi:
                return key, f"'{key}' must be [low, high] with low <= high. Got {[lo, hi]}."
    if isinstance(d, SineData) and not 0 < d.period_range[0] <= d.period_range[1]:
        return "data.period_range", (
            f"'data.period_range' must be [low, high] with 0 < low <= high. Got {list(d.period_range)}.")
    if isinstance(d, (SeriesData, TextData)):
        problem = check_file_data(d)
        if problem:
            return problem
    if isinstance(d, SequencesData):
        problem = check_sequences_data(d)
        if problem:
            return problem
    if m.head == "none" and d.outputs is not None:  # text data: the classes are known once the file is read
        outputs = d.outputs
        last = m.layer_units()[-1] * (2 if m.bidirectional and m.merge_mode == "concat" else 1)
        if last != outputs:
            return "model.head", (
                f"'model.head' is 'none', so the last recurrent layer is the output and needs {outputs} unit(s) "
                f"for data '{d.name}'; it has {last}. Set the last of model.units to {outputs} or use head: dense.")
        if m.head_dropout > 0:
            return "model.head_dropout", "'model.head_dropout' needs the Dense head; 'model.head' is 'none'."
    if m.pooling != "last" and m.head == "none":
        return "model.pooling", (
            f"'model.pooling' is {m.pooling!r}, which feeds the Dense head; 'model.head' is 'none'. "
            "Use pooling: last or head: dense.")
    period = cfg.baseline.period
    if period is not None:
        if _task(d) != "regression":
            return "baseline.period", (
                f"'baseline.period' is for the seasonal-naive baseline of a regression; data '{d.name}' is a "
                f"{_task(d)} task. Remove it.")
        if cfg.baseline.kind == "none":
            return "baseline.period", "'baseline.period' has no baseline to serve: 'baseline.kind' is 'none'."
        if _timesteps(d) and period > _timesteps(d):
            return "baseline.period", (
                f"'baseline.period' is {period} but a window has {_timesteps(d)} steps; the seasonal-naive "
                "baseline looks one period back, so the period must be <= the window.")
    if m.conv is not None:
        steps_after = _timesteps(d) // m.conv.pool_size if _timesteps(d) else None
        if steps_after is not None and steps_after < 1:
            return "model.conv.pool_size", (
                f"'model.conv.pool_size' {m.conv.pool_size} leaves no time steps from {_timesteps(d)}; "
                "use a smaller pool.")
    return None


def _monitor_problem(cfg: ExperimentConfig, has_val: bool) -> tuple[str, str] | None:
    """A monitor the run will never log: Keras's EarlyStopping would die on it after the first epoch."""
    es, task = cfg.train.early_stopping, getattr(type(cfg.data), "task", None)
    if es is None or task is None:
        return None
    logged = logged_quantities(task, has_val)
    if es.monitor in logged:
        return None
    close = difflib.get_close_matches(es.monitor, logged, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return "train.early_stopping.monitor", (
        f"'train.early_stopping.monitor' must be a quantity this run logs: {logged} (data '{cfg.data.name}' is "
        f"{task}). Got {es.monitor!r}.{hint}")


def _split_problem(cfg: ExperimentConfig) -> tuple[str, str] | None:
    """A validation_split that leaves no training or no validation sample (Keras fails on either at run time)."""
    d, split = cfg.data, cfg.train.validation_split
    n = getattr(d, "n_train", None)
    if isinstance(d, ArithmeticData) and d.starts is not None and d.steps is not None:
        n = len(d.starts) * len(d.steps)  # the grid replaces n_train
    if not split or n is None:
        return None
    n_fit = int(math.floor(n * (1.0 - split)))  # Keras's split, as training.pipeline.split_validation makes it
    if n_fit < 1 or n_fit >= n:
        side = "no training sample" if n_fit < 1 else "no validation sample"
        return "train.validation_split", (
            f"'train.validation_split' {split} of {n} training sequences leaves {side}; "
            "use more data or another fraction.")
    return None


def _timesteps(d: Any) -> int | None:
    for attr in ("window", "length", "maxlen"):
        if getattr(d, attr, None) is not None:  # sequences' maxlen None: known once the file is read
            return int(getattr(d, attr))
    return None



def _validation_source(d: Any) -> str | None:
    """The data key that gives this dataset its own validation set, as the message shows it; None = none."""
    if getattr(d, "n_val", 0):
        return f"data.n_val={d.n_val}"
    if getattr(d, "val_path", None):
        return f"data.val_path={d.val_path}"
    share = d.val_share if isinstance(d, TextData) else getattr(d, "val_fraction", 0)
    if share:
        return f"data.val_fraction={share}"
    return None


def check_file_data(d: SeriesData | TextData) -> tuple[str, str] | None:
    """The rules of the file datasets (series, text) that no single key can check."""
    try:
        codecs.lookup(d.encoding)
    except LookupError:
        return "data.encoding", f"'data.encoding' {d.encoding!r} is not an encoding Python knows (utf-8, latin-1, ...)."
    if d.separator is not None and len(d.separator) != 1:
        return "data.separator", f"'data.separator' must be one character (e.g. ',' or '\\t'). Got {d.separator!r}."
    columns = _columns(d)
    if not d.header:
        for key, column in columns:
            if isinstance(column, str):
                return key, (f"'{key}' is {column!r}, a column name, but 'data.header' is false: name columns by "
                             "0-based position (0, 1, ...) or set header: true.")
    for key, column in columns:
        if isinstance(column, int) and column < 0:
            return key, f"'{key}' must be a column name or a position >= 0. Got {column}."
    seen: dict[Any, str] = {}
    for key, column in columns:
        if column in seen:
            return key, f"'{key}' names column {column!r}, which '{seen[column]}' already uses; a column has one role."
        seen[column] = key
    if isinstance(d, SeriesData):
        if not d.targets:
            return "data.targets", "'data.targets' needs at least one column to forecast."
        if d.val_fraction + d.test_fraction >= 1:
            return "data.test_fraction", (
                f"'data.val_fraction' + 'data.test_fraction' is {d.val_fraction + d.test_fraction:g}, which leaves "
                "no rows to train on; keep their sum below 1.")
        if d.time_format is not None and d.time_column is None:
            return "data.time_format", "'data.time_format' needs 'data.time_column': the column it parses."
        return None
    for split in ("test", "val"):
        if getattr(d, f"{split}_path") and getattr(d, f"{split}_fraction") is not None:
            return f"data.{split}_fraction", (
                f"'data.{split}_fraction' and 'data.{split}_path' both give a {split} split; keep one of them.")
    if d.classes is not None:
        if len(d.classes) < 2:
            return "data.classes", f"'data.classes' needs two or more classes to tell apart. Got {d.classes}."
        if len(set(d.classes)) != len(d.classes):
            return "data.classes", f"'data.classes' lists a class twice: {d.classes}."
    return None


def check_sequences_data(d: SequencesData) -> tuple[str, str] | None:
    """The rules of data.name: sequences that no single key can check."""
    from pathlib import Path

    if (d.path is None) == (d.builtin is None):
        return "data.path", "'data.path' and 'data.builtin' name the data: give one of them (a file, or digits)."
    if d.builtin is not None:
        for key in ("test_path", "val_path", "id_column", "order_column", "shape"):
            if getattr(d, key) is not None:
                return f"data.{key}", (f"'data.{key}' is for a file; 'data.builtin' {d.builtin!r} needs none. "
                                       "Remove it.")
    npz = d.path is not None and Path(d.path).suffix.lower() == ".npz"
    layout = d.layout
    if layout == "auto":
        layout = ("npz" if npz or d.builtin else "wide" if d.shape is not None
                  else "long" if d.id_column is not None else None)
        if layout is None:
            return "data.layout", ("'data.layout' cannot be told from the config: set data.id_column (a long table, "
                                   "one row per step) or data.shape (a wide table, one row per sequence).")
    if layout == "long" and d.id_column is None:
        return "data.id_column", "'data.id_column' is required for a long table: it names each row's sequence."
    if layout == "wide" and d.shape is None:
        return "data.shape", "'data.shape' is required for a wide table: [steps, features] of each row's cells."
    if layout != "long" and d.order_column is not None:
        return "data.order_column", f"'data.order_column' orders the rows of a long table; the layout is {layout!r}."
    if d.shape is not None and (layout != "wide" or min(d.shape) < 1):
        return "data.shape", (f"'data.shape' must be [steps, features], both >= 1, for a wide table. Got "
                              f"{list(d.shape)} with layout {layout!r}.")
    if layout == "npz" and (d.features or d.id_column is not None):
        key = "data.features" if d.features else "data.id_column"
        return key, f"'{key}' names table columns; an .npz holds X, y and lengths. Remove it."
    if layout != "npz" and not d.builtin:
        try:
            codecs.lookup(d.encoding)
        except LookupError:
            return "data.encoding", (f"'data.encoding' {d.encoding!r} is not an encoding Python knows (utf-8, "
                                     "latin-1, ...).")
        if d.separator is not None and len(d.separator) != 1:
            return "data.separator", (f"'data.separator' must be one character (e.g. ',' or '\\t'). Got "
                                      f"{d.separator!r}.")
        named = [(k, c) for k, c in (("data.id_column", d.id_column), ("data.order_column", d.order_column),
                                    ("data.label_column", d.label_column)) if c is not None]
        named += [("data.features", c) for c in d.features]
        seen: dict[Any, str] = {}
        for key, column in named:
            if not d.header and isinstance(column, str):
                return key, (f"'{key}' is {column!r}, a column name, but 'data.header' is false: name columns by "
                             "0-based position (0, 1, ...) or set header: true.")
            if isinstance(column, int) and column < 0:
                return key, f"'{key}' must be a column name or a position >= 0. Got {column}."
            if column in seen:
                return key, (f"'{key}' names column {column!r}, which '{seen[column]}' already uses; a column "
                             "has one role.")
            seen[column] = key
    for split in ("test", "val"):
        if getattr(d, f"{split}_path") and getattr(d, f"{split}_fraction") is not None:
            return f"data.{split}_fraction", (
                f"'data.{split}_fraction' and 'data.{split}_path' both give a {split} split; keep one of them.")
    if d.classes is not None:
        if d.task == "regression":
            return "data.classes", "'data.classes' is for classification; data.task is 'regression'. Remove it."
        if len(d.classes) < 2 or len(set(d.classes)) != len(d.classes):
            return "data.classes", f"'data.classes' needs two or more distinct classes. Got {d.classes}."
    return None


def _columns(d: SeriesData | TextData) -> list[tuple[str, Any]]:
    """(dotted key, column) for every column the config names, in the order a message should check them."""
    if isinstance(d, TextData):
        return [("data.text_column", d.text_column), ("data.label_column", d.label_column)]
    named = [("data.time_column", d.time_column)] if d.time_column is not None else []
    named += [("data.targets", c) for c in d.targets]
    return named + [("data.features", c) for c in d.features]


def _task(d: Any) -> str:
    """The task a data section gives: its own `task` where it has one, else IMDB's binary or regression."""
    return getattr(d, "task", None) or ("binary" if isinstance(d, ImdbData) else "regression")
