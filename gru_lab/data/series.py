"""Time series from the user's file (data.name: series): windows of past rows -> the next `horizon` values.

The rows are put in time order (by time_column when there is one), cleaned of empty cells as data.missing says,
split in time order into train, validation and test (no window crosses a split), scaled with statistics of
the train rows only, and cut into windows. The run keeps what prediction needs in inputs.json: the columns,
the window, the horizon, the scaling and the time step, so `gru-lab predict` reads a new file the same way and
answers in the file's own units.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from gru_lab.config import SeriesData
from gru_lab.data.base import Dataset, Samples, Units
from gru_lab.data.files import Table, read_table
from gru_lab.errors import DataError


@dataclass
class Series:
    """A file's series in time order: values (rows x input columns), the time of each row (or None), and
    where each row came from (for messages)."""

    values: np.ndarray  # float64 (rows, inputs): the targets first, then the features
    times: Any  # pandas Series of times (datetime or number) in row order, or None
    where: list[str]  # "file:line" of each row
    notes: dict[str, Any]  # what reading did: rows dropped or filled, gaps


def column_names(table: Table, columns: list[str | int]) -> list[str]:
    """Columns as the run records them: header names, or positions as text without a header."""
    return [table.columns[c] if isinstance(c, int) else c for c in columns]


def read_series(table: Table, inputs: list[str | int], time_column: str | int | None, time_format: str | None,
                missing: str, named_by: dict[str | int, str]) -> Series:
    """The input columns of a table as numbers in time order, with missing cells handled as `missing` says.

    named_by: for each column, who asks for it, to end a message ("'data.targets' names it")."""

    index = [table.column_index(c, named_by[c]) for c in inputs]
    where = [table.where(i) for i in range(len(table.rows))]
    values = np.full((len(table.rows), len(index)), np.nan)
    for j, col in enumerate(index):
        raw = [row[col].strip() for row in table.rows]
        parsed, bad = _numbers(raw)
        if len(bad) and table.separator not in (",", None):
            # A file separated by ; (or tab) may write decimals with a comma: 7,5. Taken so when every cell reads.
            comma, comma_bad = _numbers([r.replace(",", ".") for r in raw])
            if not len(comma_bad):
                parsed, bad = comma, comma_bad
        if len(bad):
            i = int(bad[0])
            raise DataError(f"{where[i]}: column {table.columns[col]!r} holds {raw[i][:40]!r}, which is not a number.")
        values[:, j] = parsed

    notes: dict[str, Any] = {"rows_read": len(values)}
    times = None
    if time_column is not None:
        times, order = _times(table, time_column, time_format, named_by[time_column], where)
        values, where = values[order], [where[i] for i in order]
        times = times.iloc[order].reset_index(drop=True)

    empty = np.isnan(values)
    if empty.any():
        values, keep, filled = _fill(values, empty, missing, where, [table.columns[c] for c in index])
        where = [w for w, k in zip(where, keep) if k]
        if times is not None:
            times = times[keep].reset_index(drop=True)
        notes.update(filled)
    if times is not None:
        notes["time"] = time_facts(times)
    return Series(values, times, where, notes)


_NA = {"na", "nan", "n/a", "null", "none", "-", "?"}  # cells that say "no value" in words


def _numbers(raw: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(values with NaN for empty cells, rows whose text is not a number)."""
    import pandas as pd

    empty = np.array([r == "" or r.lower() in _NA for r in raw], dtype=bool)
    parsed = pd.to_numeric(pd.Series(raw, dtype=object).where(~empty, None), errors="coerce").to_numpy(float)
    return parsed, np.flatnonzero(np.isnan(parsed) & ~empty)


def _times(table: Table, column: str | int, time_format: str | None, named_by: str, where: list[str]):
    """(parsed times, the row order that sorts them); unparseable or repeated times name their line."""
    import pandas as pd

    col = table.column_index(column, named_by)
    raw = pd.Series([row[col].strip() for row in table.rows], dtype=object)
    with warnings.catch_warnings():  # pandas warns when it parses dates one by one; a failure is reported below
        warnings.simplefilter("ignore", UserWarning)
        dates = pd.to_datetime(raw, format=time_format, errors="coerce")
    numeric = pd.to_numeric(raw, errors="coerce")
    # Numbers (years, seconds) unless a format is given or dates read more of the column than numbers do.
    use_dates = time_format is not None or dates.isna().sum() < numeric.isna().sum()
    times = dates if use_dates else numeric
    bad = np.flatnonzero(times.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        how = f"a date in time_format {time_format!r}" if time_format else "a date" if use_dates else "a number"
        hint = "" if time_format or not use_dates else "; set data.time_format"
        raise DataError(f"{where[i]}: time column {table.columns[col]!r} holds {raw[i][:40]!r}, which is not "
                        f"{how}{hint}.")
    order = np.argsort(times.to_numpy(), kind="stable")
    ordered = times.iloc[order].to_numpy()
    repeated = np.flatnonzero(ordered[1:] == ordered[:-1])
    if len(repeated):
        a, b = order[repeated[0]], order[repeated[0] + 1]
        raise DataError(f"{where[b]}: time {raw[b]!r} appears twice in column {table.columns[col]!r} (also at "
                        f"{where[a]}); one row per time.")
    return times, order


def time_facts(times) -> dict[str, Any]:
    """The series' start, end, usual step (the median gap) and its gaps: steps over 1.5 x the usual one."""
    values = times.to_numpy()
    facts: dict[str, Any] = {"start": _time_text(values[0]), "end": _time_text(values[-1]), "step": None, "gaps": 0}
    if len(values) < 2:
        return facts
    steps = np.diff(values)
    step = np.median(steps) if steps.dtype.kind != "m" else np.sort(steps)[len(steps) // 2]
    gaps = np.flatnonzero(steps > step * 1.5)
    facts.update({"step": _step_text(step), "gaps": int(len(gaps)),
                  "largest_gap": _step_text(steps.max()) if len(gaps) else None,
                  "first_gaps": [[_time_text(values[i]), _time_text(values[i + 1])] for i in gaps[:3]]})
    return facts


def _time_text(value: Any) -> Any:
    import pandas as pd

    if isinstance(value, np.datetime64):
        return str(pd.Timestamp(value))
    return value.item() if hasattr(value, "item") else value


def _step_text(step: Any) -> Any:
    import pandas as pd

    if isinstance(step, np.timedelta64):
        return str(pd.Timedelta(step))
    return step.item() if hasattr(step, "item") else step


def _fill(values: np.ndarray, empty: np.ndarray, missing: str, where: list[str], names: list[str]):
    """(values, rows kept, what was done) for data.missing: error, drop, interpolate or ffill."""
    first_row, first_col = (int(v[0]) for v in np.nonzero(empty))
    if missing == "error":
        raise DataError(f"{where[first_row]}: column {names[first_col]!r} is empty (data.missing is 'error'; "
                        "set it to drop, interpolate or ffill).")
    keep = np.ones(len(values), dtype=bool)
    if missing == "drop":
        keep = ~empty.any(axis=1)
        return values[keep], keep, {"rows_dropped": int((~keep).sum())}
    import pandas as pd

    frame = pd.DataFrame(values)
    if missing == "interpolate":
        # Linear between neighbours; before the first and after the last value, the nearest value.
        frame = frame.interpolate(method="linear", limit_direction="both")
    else:
        frame = frame.ffill()
        still = np.isnan(frame.to_numpy())
        if still.any():
            row, col = (int(v[0]) for v in np.nonzero(still))
            raise DataError(f"{where[row]}: column {names[col]!r} is empty and no earlier row has a value to repeat "
                            "(data.missing is 'ffill'); use interpolate or drop.")
    return frame.to_numpy(), keep, {"cells_filled": int(empty.sum())}


# ----------------------------------------------------------------------------- windows and scaling


def fit_scaling(train: np.ndarray, method: str, names: list[str]) -> dict[str, Any]:
    """Per-column center and scale from the train rows: (x - center) / scale. A constant column keeps scale 1."""
    if method == "standard":
        center, scale = train.mean(axis=0), train.std(axis=0)
    elif method == "minmax":
        center, scale = train.min(axis=0), train.max(axis=0) - train.min(axis=0)
    else:
        center, scale = np.zeros(train.shape[1]), np.ones(train.shape[1])
    scale = np.where(scale > 0, scale, 1.0)
    return {"method": method, "center": dict(zip(names, center.tolist())), "scale": dict(zip(names, scale.tolist()))}


def scale(values: np.ndarray, scaling: dict[str, Any], names: list[str]) -> np.ndarray:
    center = np.array([scaling["center"][n] for n in names])
    return (values - center) / np.array([scaling["scale"][n] for n in names])


def unscale(values: np.ndarray, scaling: dict[str, Any], names: list[str]) -> np.ndarray:
    """values (..., len(names)) back in the file's units."""
    return values * np.array([scaling["scale"][n] for n in names]) + np.array([scaling["center"][n] for n in names])


def window_starts(rows: int, window: int, horizon: int, stride: int) -> np.ndarray:
    """First row of every window that fits with its horizon inside `rows` rows (horizon 0: inputs only)."""
    return np.arange(0, max(rows - window - horizon + 1, 0), stride)


def make_windows(values: np.ndarray, n_targets: int, window: int, horizon: int, stride: int):
    """x (n, window, inputs) float32 and y (n, horizon * targets) float32, each y row ordered horizon-major."""
    starts = window_starts(len(values), window, horizon, stride)
    steps = np.arange(window)
    x = values[starts[:, None] + steps[None, :]]
    ahead = starts[:, None] + window + np.arange(horizon)[None, :]
    y = values[ahead][:, :, :n_targets].reshape(len(starts), horizon * n_targets)
    return x.astype("float32"), y.astype("float32")


def split_rows(rows: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(end of train, end of validation) row indices: train first, then validation, then test, in time order."""
    n_test = int(round(rows * test_fraction))
    n_val = int(round(rows * val_fraction))
    return rows - n_val - n_test, rows - n_test


# ----------------------------------------------------------------------------- the Dataset


def _named_by(cfg: SeriesData) -> dict[str | int, str]:
    named = {c: "'data.features' names it" for c in cfg.features}
    named.update({c: "'data.targets' names it" for c in cfg.targets})
    if cfg.time_column is not None:
        named[cfg.time_column] = "'data.time_column' names it"
    return named


def fit_transform(values: np.ndarray, n_targets: int, train_rows: int, method: str) -> dict[str, Any]:
    """data.transform's parameters, from the train rows only: detrend fits a straight line (value against row
    number) to each target column; difference has none."""
    if method != "detrend":
        return {"method": method}
    t = np.arange(train_rows)
    fits = [np.polyfit(t, values[:train_rows, j], 1) for j in range(n_targets)]
    return {"method": method, "slope": [float(f[0]) for f in fits], "intercept": [float(f[1]) for f in fits]}


def offset(transform: dict[str, Any]) -> int:
    """Rows the transform drops at the start: a difference needs the row before."""
    return 1 if transform["method"] == "difference" else 0


def trend(transform: dict[str, Any], rows: np.ndarray) -> np.ndarray:
    """The detrend line at these row numbers: (*rows.shape, targets)."""
    return np.asarray(rows)[..., None] * np.array(transform["slope"]) + np.array(transform["intercept"])


def apply_transform(values: np.ndarray, n_targets: int, transform: dict[str, Any]) -> np.ndarray:
    """The target columns differenced (each row minus the one before; the first row dropped) or detrended (row
    number r of the file minus the line at r); the feature columns as they are (their first row dropped too
    when differencing, so rows stay aligned)."""
    method = transform["method"]
    if method == "none":
        return values
    out = values[offset(transform):].copy()
    if method == "difference":
        out[:, :n_targets] = np.diff(values[:, :n_targets], axis=0)
    else:
        out[:, :n_targets] -= trend(transform, np.arange(len(values)))
    return out


def undo_transform(out: np.ndarray, transform: dict[str, Any], level: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Forecasts (n, horizon, targets), already unscaled, back in the file's units: a difference added up from the
    window's last value (level: (n, targets)); a detrended value plus the line at its row number (rows: (n,
    horizon), the file's row numbers of the forecast rows)."""
    if transform["method"] == "difference":
        return level[:, None, :] + np.cumsum(out, axis=1)
    if transform["method"] == "detrend":
        return out + trend(transform, rows)
    return out


def redo_transform(units: np.ndarray, transform: dict[str, Any], level: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """undo_transform's inverse: forecasts in the file's units (n, horizon, targets) -> the transformed values."""
    if transform["method"] == "difference":
        return np.diff(np.concatenate([level[:, None, :], units], axis=1), axis=1)
    if transform["method"] == "detrend":
        return units - trend(transform, rows)
    return units


def range_note(transformed: np.ndarray, train_end: int, val_end: int, names: list[str], method: str) -> str | None:
    """One line when the test rows hold values outside the range of the train rows the scaling was fitted on."""
    lo, hi = transformed[:train_end].min(axis=0), transformed[:train_end].max(axis=0)
    test = transformed[val_end:]
    for j, name in enumerate(names):
        below, above = test[:, j].min() < lo[j], test[:, j].max() > hi[j]
        if below or above:
            value = test[:, j].min() if below else test[:, j].max()
            what = "values" if method == "none" else f"{method}d values"
            hint = "; data.transform: difference or detrend may help" if method == "none" and j == 0 else ""
            return (f"the test rows' {what} of {name!r} reach {value:.4g}, outside the {lo[j]:.4g} to {hi[j]:.4g} "
                    f"that the scaling saw on the train rows{hint}")
    return None


def window_units(raw: np.ndarray, starts: np.ndarray, window: int, horizon: int, targets: list[str],
                 scaling: dict[str, Any] | None, transform: dict[str, Any]) -> Units:
    """The windows starting at these rows of the file (raw: the file's values, targets first) in the file's units:
    their targets, the conversion of the model's outputs (unscaled, the transform undone), and the last-value
    forecast (in the model's units too, where the transform makes it other than the window's last step)."""
    k = len(targets)
    last = starts + window - 1  # each window's last row
    ahead = last[:, None] + 1 + np.arange(horizon)[None, :]  # (n, horizon)
    level = raw[last, :k]
    naive_units = np.repeat(level[:, None, :], horizon, axis=1)

    def convert(p: np.ndarray) -> np.ndarray:
        out = np.asarray(p, dtype=np.float64).reshape(len(p), horizon, k)
        out = unscale(out, scaling, targets) if scaling else out
        return undo_transform(out, transform, level, ahead).reshape(len(p), -1)

    naive = None
    if transform["method"] != "none":  # the window's last step is a difference or a residual: the level's last value
        naive = redo_transform(naive_units, transform, level, ahead)
        naive = (scale(naive, scaling, targets) if scaling else naive).reshape(len(level), -1)
    return Units(y=raw[ahead][:, :, :k].reshape(len(level), -1), convert=convert, naive=naive,
                 naive_units=naive_units.reshape(len(level), -1), x=raw[starts[:, None] + np.arange(window)[None, :]])


def load(cfg: SeriesData, seed: int) -> Dataset:  # noqa: ARG001  the splits are in time order: no randomness
    table = read_table(cfg.path, "data.path", cfg.separator, cfg.header, cfg.encoding)
    inputs = [*cfg.targets, *cfg.features]
    series = read_series(table, inputs, cfg.time_column, cfg.time_format, cfg.missing, _named_by(cfg))
    names = column_names(table, inputs)
    targets = names[:len(cfg.targets)]
    k = len(targets)
    raw = series.values
    first = 1 if cfg.transform == "difference" else 0  # the row a difference needs before the first
    rows = len(raw) - first
    train_end, val_end = split_rows(rows, cfg.val_fraction, cfg.test_fraction)
    need = cfg.window + cfg.horizon
    for split, a, b in (("train", 0, train_end), ("validation", train_end, val_end), ("test", val_end, rows)):
        if b - a < need and not (split == "validation" and cfg.val_fraction == 0):
            raise DataError(f"{table.path}: the {split} split has {b - a} of the {rows} rows, fewer than window + "
                            f"horizon = {need}; use a smaller window or horizon, or a larger {split} fraction.")
    transform = fit_transform(raw, k, train_end, cfg.transform)
    transformed = apply_transform(raw, k, transform)
    scaling = fit_scaling(transformed[:train_end], cfg.scaling, names)
    scaled = scale(transformed, scaling, names)
    windows = {}
    for split, a, b in (("train", 0, train_end), ("val", train_end, val_end), ("test", val_end, rows)):
        windows[split] = make_windows(scaled[a:b], k, cfg.window, cfg.horizon, cfg.stride)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = windows["train"], windows["val"], windows["test"]
    if cfg.val_fraction == 0:
        x_val = y_val = None

    # The test windows in the file's units: row numbers of the file (raw) for each window's inputs and targets.
    starts = val_end + first + window_starts(rows - val_end, cfg.window, cfg.horizon, cfg.stride)
    units = window_units(raw, starts, cfg.window, cfg.horizon, targets, scaling, transform)
    ahead = starts + cfg.window  # each window's first forecast row
    naive = units.naive
    last_value = last_values(x_test, k, cfg.horizon) if naive is None else naive
    extra = {
        "source": str(table.path), **series.notes, "rows": len(raw),
        "split_rows": {"train": train_end + first, "validation": val_end - train_end, "test": rows - val_end},
        "windows": {"train": len(x_train), "validation": 0 if x_val is None else len(x_val), "test": len(x_test)},
        "first_test_row": series.where[val_end + first],
        # Both baselines in the scaled units the test mse is in: the train mean, and the last value seen.
        "baseline_mse": float(np.mean((y_test - y_train.mean(axis=0)) ** 2)),
        "last_value_mse": float(np.mean((y_test - last_value) ** 2)),
        # The last value again in the file's units, beside the run's test mse_units.
        "last_value_mse_units": float(np.mean((units.y - units.naive_units) ** 2)),
        "scaling": cfg.scaling, "transform": cfg.transform,
    }
    note = range_note(transformed, train_end, val_end, names, cfg.transform)
    if note:
        extra["range_note"] = note
    inputs_record = {
        "kind": "series", "task": "regression", "columns": names, "targets": targets,
        "window": cfg.window, "horizon": cfg.horizon, "scaling": scaling, "missing": cfg.missing,
        "time_column": None if cfg.time_column is None else column_names(table, [cfg.time_column])[0],
        "time_format": cfg.time_format, "time_step": (series.notes.get("time") or {}).get("step"),
        "header": cfg.header, "encoding": cfg.encoding, "separator": cfg.separator, "transform": transform,
    }
    time_label = inputs_record["time_column"] or "file line"
    # ahead: each test window's first forecast row in the file (a difference drops the file's first row).
    samples = Samples(np.full(len(x_test), cfg.window), times=forecast_times(series, ahead),
                      time_label=time_label)
    return Dataset(
        name="series", task="regression", input_kind="real",
        x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test,
        extra=extra, artifacts={"inputs": inputs_record}, units=units, samples=samples,
    )


def forecast_times(series: Series, rows: np.ndarray) -> list[Any]:
    """The time of each of these rows (a timestamp as text, or a number), or without a time column the file line
    it came from."""
    if series.times is not None:
        return [_time_text(series.times.to_numpy()[i]) for i in rows]
    return [int(series.where[i].rsplit(" ", 1)[-1].rsplit(":", 1)[-1]) for i in rows]


def last_values(x: np.ndarray, n_targets: int, horizon: int) -> np.ndarray:
    """The naive forecast: each target's last value in the window, repeated over the horizon (horizon-major)."""
    return np.tile(x[:, -1, :n_targets], (1, horizon))
