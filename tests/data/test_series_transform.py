"""data.transform for series: differences or a linear trend fitted on the train rows, undone exactly for the
forecasts and metrics in the file's units; a line when the test rows leave the range the scaling saw."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gru_lab.config import config_from_raw
from gru_lab.data import load_dataset
from gru_lab.data.series import apply_transform, fit_transform, redo_transform, undo_transform


def write_series(path, values, features=None):
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["y"] + (["f"] if features is not None else []))
        for i, v in enumerate(values):
            out.writerow([f"{v:.6f}"] + ([f"{features[i]:.6f}"] if features is not None else []))
    return path


def series_cfg(path, **data):
    return config_from_raw({"data": {"name": "series", "path": str(path), "targets": "y", **data}}, "t").data


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(transform=st.sampled_from(["none", "difference", "detrend"]), window=st.integers(1, 6),
       horizon=st.integers(1, 4), stride=st.integers(1, 3), slope=st.floats(-2, 2), seed=st.integers(0, 999),
       scaling=st.sampled_from(["standard", "minmax", "none"]))
def test_the_test_targets_come_back_in_the_files_units(tmp_path, transform, window, horizon, stride, slope, seed,
                                                      scaling):
    """units.convert(y_test) is the file's own values for every transform, window, horizon and stride; the
    last-value forecast in the model's units is the level's last value, not the last difference."""
    rng = np.random.RandomState(seed)
    values = 5 + slope * np.arange(120) + rng.normal(0, 1, 120)
    path = write_series(tmp_path / f"s{seed}.csv", values, features=rng.normal(size=120))
    data = load_dataset(series_cfg(path, features="f", window=window, horizon=horizon, stride=stride,
                                   transform=transform, scaling=scaling), seed=0)
    units = data.units
    assert np.allclose(units.convert(data.y_test), units.y, atol=1e-3)
    assert set(units.y.ravel()) <= {float(f"{v:.6f}") for v in values}  # the numbers as the file writes them
    if transform != "none":
        assert np.allclose(units.convert(units.naive), units.naive_units, atol=1e-3)
    assert data.extra["last_value_mse_units"] == pytest.approx(float(np.mean((units.y - units.naive_units) ** 2)))


def test_transforms_are_inverse_and_fitted_on_train_rows_only():
    rng = np.random.RandomState(0)
    values = np.stack([3 + 0.5 * np.arange(50) + rng.normal(0, 0.1, 50), rng.normal(size=50)], axis=1)
    line = fit_transform(values, 1, 30, "detrend")
    assert line["slope"][0] == pytest.approx(np.polyfit(np.arange(30), values[:30, 0], 1)[0])
    for method in ("difference", "detrend"):
        t = fit_transform(values, 1, 30, method)
        out = apply_transform(values, 1, t)
        assert np.array_equal(out[:, 1], values[len(values) - len(out):, 1])  # features untouched
        first = len(values) - len(out)
        rows = np.arange(first + 10, first + 13)[None, :]  # three rows after row first + 9
        level = values[first + 9, :1][None, :]
        back = undo_transform(out[None, 10:13, :1], t, level, rows)
        assert np.allclose(back[0, :, 0], values[first + 10:first + 13, 0])
        assert np.allclose(redo_transform(back, t, level, rows), out[None, 10:13, :1])


def test_test_rows_outside_the_scaled_range_are_one_line_and_difference_removes_it(tmp_path):
    path = write_series(tmp_path / "trend.csv", 10 + 0.05 * np.arange(400) + np.sin(np.arange(400)))
    note = load_dataset(series_cfg(path, window=7), seed=0).extra["range_note"]
    assert note.startswith("the test rows' values of 'y' reach") and "data.transform: difference" in note
    assert "\n" not in note
    assert "range_note" not in load_dataset(series_cfg(path, window=7, transform="difference"), seed=0).extra
