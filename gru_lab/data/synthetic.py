"""Synthetic datasets made from the seed alone: arithmetic progressions, noisy sines, the adding problem.

Every generator is a pure function of (config, seed): the same inputs give the same arrays.
"""

from __future__ import annotations

import itertools

import numpy as np

from gru_lab.config import AddingData, ArithmeticData, SineData
from gru_lab.data.base import Dataset


def _rng(seed: int, split: str) -> np.random.Generator:
    # One independent stream per split, so changing n_test never changes the training set.
    return np.random.default_rng([seed, {"train": 0, "val": 1, "test": 2}[split]])


def _progressions(starts: np.ndarray, steps: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    terms = starts[:, None] + steps[:, None] * np.arange(window + 1)[None, :]
    x = terms[:, :window, None].astype("float32")
    y = terms[:, window].astype("float32")
    return x, y


def arithmetic(cfg: ArithmeticData, seed: int) -> Dataset:
    def draw(n: int, split: str) -> tuple[np.ndarray, np.ndarray]:
        rng = _rng(seed, split)
        return _progressions(rng.uniform(*cfg.start_range, n), rng.uniform(*cfg.step_range, n), cfg.window)

    if cfg.starts is not None and cfg.steps is not None:
        # The time-series GRU tutorial's form: every (start, step) pair, in order, e.g. [1,2,3], [2,3,4], [3,4,5].
        pairs = np.array(list(itertools.product(cfg.starts, cfg.steps)), dtype="float64").reshape(-1, 2)
        x_train, y_train = _progressions(pairs[:, 0], pairs[:, 1], cfg.window)
    else:
        x_train, y_train = draw(cfg.n_train, "train")
    x_val, y_val = draw(cfg.n_val, "val") if cfg.n_val else (None, None)
    x_test, y_test = (x_train, y_train) if cfg.evaluate_on == "train" else draw(cfg.n_test, "test")
    return Dataset(
        name="arithmetic", task="regression", input_kind="real",
        x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test,
        extra={"evaluated_on": cfg.evaluate_on, "baseline_mse": _baseline_mse(y_train, y_test)},
    )


def sine(cfg: SineData, seed: int) -> Dataset:
    def draw(n: int, split: str) -> tuple[np.ndarray, np.ndarray]:
        rng = _rng(seed, split)
        period = rng.uniform(*cfg.period_range, (n, 1))
        phase = rng.uniform(0, 2 * np.pi, (n, 1))
        t = np.arange(cfg.window + 1)[None, :]
        clean = np.sin(2 * np.pi * t / period + phase)
        x = clean[:, : cfg.window] + rng.normal(0.0, cfg.noise, (n, cfg.window))
        return x[:, :, None].astype("float32"), clean[:, cfg.window].astype("float32")

    x_train, y_train = draw(cfg.n_train, "train")
    x_val, y_val = draw(cfg.n_val, "val") if cfg.n_val else (None, None)
    x_test, y_test = draw(cfg.n_test, "test")
    return Dataset(
        name="sine", task="regression", input_kind="real",
        x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test,
        extra={"baseline_mse": _baseline_mse(y_train, y_test)},
    )


def adding_problem(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Channel 0: uniform values; channel 1: two markers, one in each half. Target: the sum of the marked values."""
    values = rng.uniform(0.0, 1.0, (n, length))
    half = length // 2
    first = rng.integers(0, half, n)
    second = rng.integers(half, length, n)
    markers = np.zeros((n, length))
    markers[np.arange(n), first] = 1.0
    markers[np.arange(n), second] = 1.0
    x = np.stack([values, markers], axis=-1).astype("float32")
    y = (values[np.arange(n), first] + values[np.arange(n), second]).astype("float32")
    return x, y


def adding(cfg: AddingData, seed: int) -> Dataset:
    x_train, y_train = adding_problem(cfg.n_train, cfg.length, _rng(seed, "train"))
    x_val, y_val = adding_problem(cfg.n_val, cfg.length, _rng(seed, "val")) if cfg.n_val else (None, None)
    x_test, y_test = adding_problem(cfg.n_test, cfg.length, _rng(seed, "test"))
    return Dataset(
        name="adding", task="regression", input_kind="real",
        x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test,
        # Always predicting the mean sum scores about 1/6: a model must beat that to have learned anything.
        extra={"baseline_mse": _baseline_mse(y_train, y_test), "length": cfg.length},
    )


def _baseline_mse(y_train: np.ndarray, y_test: np.ndarray) -> float:
    """MSE of always predicting the training mean: the bar a regression model must clear."""
    return float(np.mean((y_test - np.mean(y_train)) ** 2))
