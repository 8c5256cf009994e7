"""Synthetic datasets: deterministic given the seed, and what they claim to be."""

from __future__ import annotations

import numpy as np
import pytest

from gru_lab.config import AddingData, ArithmeticData, SineData
from gru_lab.data import load_dataset, spec_for
from gru_lab.data.synthetic import adding, adding_problem, arithmetic, sine


def same(a, b) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("x_train", "y_train", "x_test", "y_test"))


@pytest.mark.parametrize("cfg", [ArithmeticData(name="arithmetic"), SineData(name="sine"),
                                 AddingData(name="adding", length=20)],
                         ids=["arithmetic", "sine", "adding"])
def test_deterministic_given_seed_and_different_across_seeds(cfg):
    a, b, c = load_dataset(cfg, 1), load_dataset(cfg, 1), load_dataset(cfg, 2)
    assert same(a, b)
    assert not same(a, c)
    assert a.spec == spec_for(cfg)  # the spec known without loading matches the loaded data
    assert a.x_train.dtype == np.float32 and a.x_train.ndim == 3


def test_the_time_series_tutorials_grid_is_exact():
    d = arithmetic(ArithmeticData(name="arithmetic", window=3, starts=[1, 2, 3], steps=[1], n_val=0,
                                  evaluate_on="train"), 0)
    assert d.x_train[:, :, 0].tolist() == [[1, 2, 3], [2, 3, 4], [3, 4, 5]]
    assert d.y_train.tolist() == [4, 5, 6]
    assert d.x_val is None
    assert np.array_equal(d.x_test, d.x_train)


def test_arithmetic_targets_continue_the_progression():
    d = arithmetic(ArithmeticData(name="arithmetic", window=5, n_train=50), 0)
    x = d.x_train[:, :, 0]
    step = x[:, 1] - x[:, 0]
    assert np.allclose(np.diff(x, axis=1), step[:, None], atol=1e-4)
    assert np.allclose(d.y_train, x[:, -1] + step, atol=1e-4)


def test_changing_test_size_leaves_train_alone():
    a = sine(SineData(name="sine", n_test=10), 0)
    b = sine(SineData(name="sine", n_test=30), 0)
    assert np.array_equal(a.x_train, b.x_train) and len(b.x_test) == 30


def test_sine_targets_are_the_next_clean_value():
    d = sine(SineData(name="sine", noise=0.0, window=10, n_train=20), 0)
    assert np.all(np.abs(d.y_train) <= 1.0)
    assert d.x_train.shape == (20, 10, 1)


def test_adding_problem_target_is_the_sum_of_the_marked_values():
    x, y = adding_problem(100, 30, np.random.default_rng(0))
    assert x.shape == (100, 30, 2)
    assert np.all(x[:, :, 1].sum(axis=1) == 2)
    marked = (x[:, :, 0] * x[:, :, 1]).sum(axis=1)
    assert np.allclose(marked, y)
    first = x[:, :15, 1].sum(axis=1)
    assert np.all(first == 1)  # one mark in each half


def test_adding_baseline_is_about_one_sixth():
    d = adding(AddingData(name="adding", length=10, n_train=4000, n_test=4000), 0)
    assert d.extra["baseline_mse"] == pytest.approx(1 / 6, rel=0.1)
