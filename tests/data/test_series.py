"""data.name: series: a time series from the user's file, windowed, split in time order, scaled on train only."""

from __future__ import annotations

import numpy as np
import pytest

from gru_lab.config import config_from_raw
from gru_lab.data import load_dataset, spec_for
from gru_lab.data.series import make_windows, split_rows
from gru_lab.errors import DataError
from tests.conftest import ROOT

SUNSPOTS = ROOT / "data" / "sunspots.csv"
CO2 = ROOT / "data" / "co2.csv"


def series_cfg(path, **data):
    return config_from_raw({"data": {"name": "series", "path": str(path), **data}}, "test").data


def write(tmp_path, text: str, name: str = "s.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_windows_are_exact_slices():
    values = np.arange(20, dtype=float).reshape(10, 2)  # column 0: 0, 2, 4, ...; column 1: 1, 3, 5, ...
    x, y = make_windows(values, n_targets=1, window=3, horizon=2, stride=2)
    assert x.shape == (3, 3, 2) and y.shape == (3, 2)  # starts 0, 2, 4: 4 + 3 + 2 <= 10
    assert x[1].tolist() == values[2:5].tolist()
    assert y[1].tolist() == [values[5, 0], values[6, 0]]  # the next two rows of the target only


def test_sunspots_split_in_time_order_scaled_on_train_only():
    cfg = series_cfg(SUNSPOTS, time_column="YEAR", targets="SUNACTIVITY", window=5, horizon=2)
    data = load_dataset(cfg, seed=0)
    assert spec_for(cfg) == data.spec  # known from the config alone
    raw = np.loadtxt(SUNSPOTS, delimiter=",", skiprows=1)[:, 1]
    train_end, val_end = split_rows(len(raw), cfg.val_fraction, cfg.test_fraction)
    assert data.extra["split_rows"] == {"train": train_end, "validation": val_end - train_end,
                                        "test": len(raw) - val_end}
    scaling = data.artifacts["inputs"]["scaling"]
    assert scaling["center"]["SUNACTIVITY"] == pytest.approx(raw[:train_end].mean())
    assert scaling["scale"]["SUNACTIVITY"] == pytest.approx(raw[:train_end].std())
    scaled = (raw - raw[:train_end].mean()) / raw[:train_end].std()
    # No window crosses a split: the first test window starts on the first test row.
    assert data.x_test[0, :, 0] == pytest.approx(scaled[val_end:val_end + 5], abs=1e-6)
    assert data.y_test[-1] == pytest.approx(scaled[-2:], abs=1e-6)
    assert len(data.x_test) == (len(raw) - val_end) - 5 - 2 + 1
    last = np.repeat(data.x_test[:, -1, :1], 2, axis=1)
    assert data.extra["last_value_mse"] == pytest.approx(float(np.mean((data.y_test - last) ** 2)), rel=1e-5)
    assert data.extra["time"]["gaps"] == 0 and data.extra["time"]["step"] == 1


def test_co2_dates_and_missing_weeks():
    cfg = series_cfg(CO2, time_column="date", time_format="%Y%m%d", targets="co2", missing="interpolate")
    data = load_dataset(cfg, seed=0)
    assert data.extra["cells_filled"] == 59 and data.extra["time"]["step"] == "7 days 00:00:00"
    assert data.extra["time"]["start"].startswith("1958-03-29")
    with pytest.raises(DataError, match=r"co2\.csv:8: column 'co2' is empty \(data.missing is 'error'"):
        load_dataset(series_cfg(CO2, time_column="date", time_format="%Y%m%d", targets="co2"), seed=0)


@pytest.mark.parametrize("missing,expected", [
    ("interpolate", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
    ("ffill", [1.0, 2.0, 2.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
    ("drop", [1.0, 2.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
])
def test_missing_values(tmp_path, missing, expected):
    path = write(tmp_path, "t,y\n" + "".join(f"{t},{'' if t == 3 else t}\n" for t in range(1, 9)))
    cfg = series_cfg(path, time_column="t", targets="y", window=1, scaling="none", missing=missing,
                     val_fraction=0, test_fraction=0.25)
    data = load_dataset(cfg, seed=0)
    seen = np.concatenate([data.x_train[:, 0, 0], data.y_train[-1:, 0], data.x_test[:, 0, 0], data.y_test[-1:, 0]])
    assert seen.tolist() == expected


def test_ffill_cannot_fill_a_leading_gap(tmp_path):
    path = write(tmp_path, "y,x\n\n,1\n1,2\n2,3\n")  # line 2 is blank (skipped), line 3 has an empty y
    with pytest.raises(DataError, match=r"s\.csv:3: column 'y' is empty and no earlier row"):
        load_dataset(series_cfg(path, targets="y", window=1, missing="ffill"), seed=0)


def test_time_column_sorts_reports_gaps_and_refuses_repeats(tmp_path):
    rows = [5, 1, 2, 3, 4, 9, 10, 11, 12, 13, 14, 6]  # unsorted, with 7 and 8 missing
    path = write(tmp_path, "when;value\n" + "".join(f"{t};{t * 10},5\n" for t in rows))  # ; and decimal commas
    data = load_dataset(series_cfg(path, time_column="when", targets="value", window=2, scaling="none",
                                   val_fraction=0, test_fraction=0.25), seed=0)
    assert data.x_train[0, :, 0].tolist() == [10.5, 20.5]  # sorted by time, 10,5 read as 10.5
    assert data.extra["time"]["gaps"] == 1 and data.extra["time"]["largest_gap"] == 3
    assert data.extra["time"]["first_gaps"] == [[6, 9]]
    repeated = write(tmp_path, "when,value\n1,1\n2,2\n1,3\n", "r.csv")
    with pytest.raises(DataError, match=r"r\.csv:4: time '1' appears twice .* \(also at .*r\.csv:2\)"):
        load_dataset(series_cfg(repeated, time_column="when", targets="value", window=1), seed=0)


def test_features_are_inputs_and_targets_come_first(tmp_path):
    path = write(tmp_path, "a,b,c\n" + "".join(f"{i},{100 + i},{-i}\n" for i in range(20)))
    cfg = series_cfg(path, targets=["c"], features=["a"], window=3, horizon=1, scaling="none", val_fraction=0,
                     test_fraction=0.3)
    data = load_dataset(cfg, seed=0)
    assert data.x_train[0].tolist() == [[0, 0], [-1, 1], [-2, 2]] and data.y_train[0].tolist() == [-3]
    assert data.artifacts["inputs"]["columns"] == ["c", "a"] and spec_for(cfg) == data.spec


def test_headerless_file_by_position(tmp_path):
    path = write(tmp_path, "".join(f"{i}\t{i * 2}\n" for i in range(30)), "s.tsv")
    cfg = series_cfg(path, header=False, targets=[1], window=4, scaling="none", val_fraction=0, test_fraction=0.3)
    data = load_dataset(cfg, seed=0)
    assert data.x_train[0, :, 0].tolist() == [0, 2, 4, 6]
    assert data.artifacts["inputs"]["columns"] == ["1"]


BAD_FILES = [
    ("not-a-number", "t,y\n1,2\n2,x\n", dict(targets="y"), r"s\.csv:3: column 'y' holds 'x', which is not a number"),
    ("unknown-column", "t,y\n1,2\n", dict(targets="z"), r"no column 'z' in the header \('t', 'y'\)"),
    ("bad-time", "t,y\n1,2\nnoon,3\n", dict(targets="y", time_column="t"),
     r"s\.csv:3: time column 't' holds 'noon', which is not a number"),
    ("too-short", "y\n" + "1\n" * 20, dict(targets="y", window=10),
     r"the validation split has 3 of the 20 rows, fewer than window \+ horizon = 11"),
    ("missing-file", None, dict(targets="y"), r"does not exist"),
]


@pytest.mark.parametrize("text,data,fragment", [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_series_files_are_one_line(tmp_path, text, data, fragment):
    path = write(tmp_path, text) if text is not None else tmp_path / "s.csv"
    with pytest.raises(DataError, match=fragment) as info:
        load_dataset(series_cfg(path, **data), seed=0)
    assert "\n" not in str(info.value)
