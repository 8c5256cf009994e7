"""Cross-field rules no single key can check, each answering with (dotted key, one sentence)."""

from __future__ import annotations

import difflib
import math
from typing import Any

from gru_lab.config.schema import ArithmeticData, ExperimentConfig, SineData
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
    if m.mask_zero and not tokens:
        return "model.mask_zero", (
            f"'model.mask_zero' needs token input with an Embedding; data '{d.name}' is real-valued.")
    if m.mask_zero and m.conv is not None:
        return "model.mask_zero", (
            "'model.mask_zero' cannot be combined with 'model.conv': Conv1D cannot carry a padding mask.")
    if m.recurrent_activation is not None and m.cell == "simple_rnn":
        return "model.recurrent_activation", (
            "'model.recurrent_activation' applies to gru/lstm gates; simple_rnn has none.")
    if t.validation_split > 0 and getattr(d, "n_val", 0):
        return "train.validation_split", (
            f"'train.validation_split' is {t.validation_split} but data '{d.name}' already has a validation set "
            f"(data.n_val={d.n_val}); set one of them to 0.")
    has_val = t.validation_split > 0 or getattr(d, "n_val", 0) > 0
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
    if m.head == "none":
        outputs = d.outputs
        last = m.layer_units()[-1] * (2 if m.bidirectional and m.merge_mode == "concat" else 1)
        if last != outputs:
            return "model.head", (
                f"'model.head' is 'none', so the last recurrent layer is the output and needs {outputs} unit(s) "
                f"for data '{d.name}'; it has {last}. Set the last of model.units to {outputs} or use head: dense.")
        if m.head_dropout > 0:
            return "model.head_dropout", "'model.head_dropout' needs the Dense head; 'model.head' is 'none'."
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
        if hasattr(d, attr):
            return int(getattr(d, attr))
    return None

