"""Labelled numeric sequences from the user's files (data.name: sequences): each sequence of feature vectors gets
one label, a class or a number.

Three layouts, read into the same Sequences record:
- long: a CSV/TSV/Parquet table with one row per step, an id column naming each row's sequence, an optional
  order column, feature columns and a label column (the same on every row of a sequence);
- wide: one row per sequence, its steps x features cells step-major (x_0 ... x_63 for shape [8, 8]); a
  sequence may end early: its last steps' cells left empty;
- npz: NumPy arrays X (N, T, F), y (N,) and optionally lengths (N,) (X[i, :lengths[i]] are its steps).

Every sequence is one sample: splits never cut one. Class labels are split stratified by class. The steps the
model sees are cut to maxlen (truncating: pre keeps the last maxlen steps, post the first), scaled per feature
with statistics of the train sequences' steps only, and padded (pre or post) with MASK_VALUE, which the model's
Masking layer hides from the recurrent layers. inputs.json keeps the reader's settings, the classes, maxlen and
the scaling, so `gru-lab predict --file` reads a new file of the same layout the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gru_lab.config import SequencesData
from gru_lab.data.base import MASK_VALUE, Dataset, InputSpec, Samples, Units
from gru_lab.data.files import read_bytes, read_table
from gru_lab.data.series import _numbers, fit_scaling, scale
from gru_lab.data.text import _stratified_split, ordered_classes
from gru_lab.errors import DataError

READER_KEYS = ("layout", "id_column", "order_column", "label_column", "features", "shape", "separator", "header",
               "encoding")


@dataclass
class Sequences:
    """Sequences as read: each one's id, steps (float64, steps x features), label as written (None when the file
    has no label column and none is needed) and where it starts ("file:line")."""

    ids: list[str]
    steps: list[np.ndarray]
    labels: list[str | None]
    where: list[str]
    features: list[str]  # the feature names, in order

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows) -> "Sequences":
        return Sequences([self.ids[i] for i in rows], [self.steps[i] for i in rows], [self.labels[i] for i in rows],
                         [self.where[i] for i in rows], self.features)


def reader_settings(cfg: SequencesData) -> dict[str, Any]:
    """What reading a file takes, as inputs.json keeps it for predict; layout auto resolved."""
    settings = {k: getattr(cfg, k) for k in READER_KEYS}
    settings["features"] = list(cfg.features)
    settings["shape"] = None if cfg.shape is None else list(cfg.shape)
    settings["layout"] = layout_of(cfg.layout, cfg.path, cfg.id_column, cfg.shape)
    return settings


def layout_of(layout: str, path: str | None, id_column, shape) -> str:
    if layout != "auto":
        return layout
    if path is not None and Path(path).suffix.lower() == ".npz":
        return "npz"
    return "wide" if shape is not None else "long" if id_column is not None else "auto"  # a long table needs no shape


def read_sequences(path: str | Path, settings: dict[str, Any], key: str, labels: bool = True) -> Sequences:
    """A file in the layout settings give; labels=False (predict) takes a file without the label column."""
    layout = settings["layout"]
    if layout == "npz":
        return _read_npz(Path(path).expanduser(), key, labels)
    table = read_table(path, key, settings["separator"], settings["header"], settings["encoding"])
    if not table.rows:
        raise DataError(f"{table.path}: '{key}' has a header but no rows of data.")
    return (_read_long if layout == "long" else _read_wide)(table, settings, labels)


def _label_index(table, settings: dict[str, Any], labels: bool) -> int | None:
    column = settings["label_column"]
    if not labels and (isinstance(column, int) and column >= len(table.columns) or
                       isinstance(column, str) and column not in table.columns):
        return None
    return table.column_index(column, "'data.label_column' names it")


def _feature_indexes(table, settings: dict[str, Any], taken: list[int | None]) -> list[int]:
    if settings["features"]:
        return [table.column_index(c, "'data.features' names it") for c in settings["features"]]
    found = [i for i in range(len(table.columns)) if i not in taken]
    if not found:
        raise DataError(f"{table.path}:1: no feature columns: every column is the id, order or label column.")
    return found


def _column_numbers(table, col: int) -> np.ndarray:
    """A column as numbers, NaN where empty; a cell that is not a number names its line and column."""
    raw = [row[col].strip() for row in table.rows]
    parsed, bad = _numbers(raw)
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{table.where(i)}: column {table.columns[col]!r} holds {raw[i][:40]!r}, which is not a "
                        "number.")
    return parsed


def _read_long(table, settings: dict[str, Any], labels: bool) -> Sequences:
    id_at = table.column_index(settings["id_column"], "'data.id_column' names it")
    order_at = None if settings["order_column"] is None else \
        table.column_index(settings["order_column"], "'data.order_column' names it")
    label_at = _label_index(table, settings, labels)
    feature_at = _feature_indexes(table, settings, [id_at, order_at, label_at])
    values = np.stack([_column_numbers(table, c) for c in feature_at], axis=1)
    empty = np.argwhere(np.isnan(values))
    if len(empty):
        i, j = (int(v) for v in empty[0])
        raise DataError(f"{table.where(i)}: column {table.columns[feature_at[j]]!r} is empty; every step needs "
                        "every feature.")
    order = None if order_at is None else _column_numbers(table, order_at)
    if order is not None and np.isnan(order).any():
        i = int(np.flatnonzero(np.isnan(order))[0])
        raise DataError(f"{table.where(i)}: the order column {table.columns[order_at]!r} is empty.")
    rows_of: dict[str, list[int]] = {}
    for i, row in enumerate(table.rows):
        sid = row[id_at].strip()
        if not sid:
            raise DataError(f"{table.where(i)}: the id column {table.columns[id_at]!r} is empty.")
        rows_of.setdefault(sid, []).append(i)
    ids, steps, found, where = [], [], [], []
    for sid, rows in rows_of.items():
        rows = np.array(rows)
        if order is not None:
            rows = rows[np.argsort(order[rows], kind="stable")]
            same = np.flatnonzero(order[rows][1:] == order[rows][:-1])
            if len(same):
                a, b = rows[same[0]], rows[same[0] + 1]
                raise DataError(f"{table.where(max(a, b))}: sequence {sid!r} has order {table.rows[b][order_at]!r} "
                                f"twice (also at {table.where(min(a, b))}); one row per step.")
        label = None
        if label_at is not None:
            first = int(rows.min())
            label = table.rows[first][label_at].strip()
            if not label:
                raise DataError(f"{table.where(first)}: the label (column {table.columns[label_at]!r}) is empty.")
            for r in sorted(rows.tolist()):
                other = table.rows[r][label_at].strip()
                if other != label:
                    raise DataError(f"{table.where(r)}: sequence {sid!r} has label {other!r} here but {label!r} at "
                                    f"{table.where(first)}; a sequence has one label.")
        ids.append(sid)
        steps.append(values[rows])
        found.append(label)
        where.append(table.where(int(min(rows))))
    return Sequences(ids, steps, found, where, [table.columns[c] for c in feature_at])


def _read_wide(table, settings: dict[str, Any], labels: bool) -> Sequences:
    id_at = None if settings["id_column"] is None else table.column_index(settings["id_column"],
                                                                         "'data.id_column' names it")
    label_at = _label_index(table, settings, labels)
    feature_at = _feature_indexes(table, settings, [id_at, label_at])
    n_steps, n_features = settings["shape"]
    if len(feature_at) != n_steps * n_features:
        raise DataError(f"{table.path}:1: {len(feature_at)} feature column(s), but 'data.shape' "
                        f"{[n_steps, n_features]} needs steps x features = {n_steps * n_features}.")
    values = np.stack([_column_numbers(table, c) for c in feature_at], axis=1).reshape(-1, n_steps, n_features)
    ids, steps, found, where = [], [], [], []
    for i, row in enumerate(table.rows):
        empty = np.isnan(values[i])
        filled = ~empty.all(axis=1)  # a step with no value at all: the sequence has ended
        length = int(np.flatnonzero(filled)[-1]) + 1 if filled.any() else 0
        if length == 0:
            raise DataError(f"{table.where(i)}: every feature cell is empty; a sequence needs a step.")
        if empty[:length].any():
            t, f = (int(v) for v in np.argwhere(empty[:length])[0])
            col = table.columns[feature_at[t * n_features + f]]
            raise DataError(f"{table.where(i)}: column {col!r} (step {t}, feature {f}) is empty inside the sequence; "
                            "only a sequence's last steps may be left empty (it is shorter).")
        label = None
        if label_at is not None:
            label = row[label_at].strip()
            if not label:
                raise DataError(f"{table.where(i)}: the label (column {table.columns[label_at]!r}) is empty.")
        ids.append(row[id_at].strip() if id_at is not None else str(table.lines[i]))
        steps.append(values[i, :length])
        found.append(label)
        where.append(table.where(i))
    if id_at is not None:
        _unique_ids(ids, where)
    return Sequences(ids, steps, found, where, [f"f{j}" for j in range(n_features)])


def _unique_ids(ids: list[str], where: list[str]) -> None:
    seen: dict[str, str] = {}
    for sid, w in zip(ids, where):
        if sid in seen:
            raise DataError(f"{w}: sequence id {sid!r} appears twice (also at {seen[sid]}); one row per sequence.")
        seen[sid] = w


def _read_npz(path: Path, key: str, labels: bool) -> Sequences:
    read_bytes(path, key)  # the same messages for a missing or unreadable file
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc.__class__.__name__}: {exc}).") from None
    if "X" not in arrays:
        raise DataError(f"{path}: no array 'X' in the .npz (found {sorted(arrays)}); expected X (N, T, F), y (N,) "
                        "and optionally lengths (N,).")
    x = arrays["X"]
    if x.ndim == 2:
        x = x[:, :, None]  # (N, T): one feature a step
    if x.ndim != 3 or x.dtype.kind not in "iuf":
        raise DataError(f"{path}: array 'X' has shape {x.shape} and dtype {x.dtype}; expected numbers, (N, T, F).")
    n, t = x.shape[:2]
    y = arrays.get("y")
    if y is None and labels:
        raise DataError(f"{path}: no array 'y' in the .npz (found {sorted(arrays)}); it holds each sequence's label.")
    if y is not None and (y.ndim != 1 or len(y) != n):
        raise DataError(f"{path}: array 'y' has shape {y.shape}; expected ({n},), one label per sequence of X.")
    lengths = arrays.get("lengths")
    if lengths is None:
        lengths = np.full(n, t)
    elif lengths.shape != (n,) or lengths.dtype.kind not in "iu":
        raise DataError(f"{path}: array 'lengths' has shape {lengths.shape} and dtype {lengths.dtype}; expected ({n},) "
                        "integers.")
    bad = np.flatnonzero((lengths < 1) | (lengths > t))
    if len(bad):
        raise DataError(f"{path}: lengths[{bad[0]}] is {lengths[bad[0]]}; each length must be 1 to {t} (X's steps).")
    steps, where = [], []
    for i in range(n):
        seq = np.asarray(x[i, :lengths[i]], dtype=np.float64)
        if not np.isfinite(seq).all():
            s, f = (int(v) for v in np.argwhere(~np.isfinite(seq))[0])
            raise DataError(f"{path}: X[{i}, {s}, {f}] is {seq[s, f]}; every step needs finite numbers.")
        steps.append(seq)
        where.append(f"{path}: sequence {i}")
    found = [None] * n if y is None else [_label_text(v) for v in y.tolist()]
    return Sequences([str(i) for i in range(n)], steps, found, where, [f"f{j}" for j in range(x.shape[2])])


def _label_text(value: Any) -> str:
    """A label as text: 3 and 3.0 both "3", so integer classes read the same from any layout."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ----------------------------------------------------------------------------- arrays


def cut(steps: np.ndarray, maxlen: int, truncating: str) -> np.ndarray:
    """At most maxlen steps: the last ones (truncating pre) or the first (post)."""
    return steps[-maxlen:] if truncating == "pre" else steps[:maxlen]


def pad(steps: list[np.ndarray], maxlen: int, padding: str, n_features: int) -> np.ndarray:
    """float32 (n, maxlen, features): each sequence's steps, MASK_VALUE in the padding (before or after)."""
    x = np.full((len(steps), maxlen, n_features), MASK_VALUE, dtype=np.float32)
    for i, s in enumerate(steps):
        if padding == "post":
            x[i, :len(s)] = s
        else:
            x[i, maxlen - len(s):] = s
    return x


def to_model(found: Sequences, inputs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(x for the model, each sequence's length before the cut) of sequences read with a run's settings."""
    n_features = len(inputs["features"])
    lengths = np.array([len(s) for s in found.steps])
    for s, w in zip(found.steps, found.where):
        if s.shape[1] != n_features:
            raise DataError(f"{w}: {s.shape[1]} feature(s) a step, but the run's model reads {n_features} "
                            f"({', '.join(inputs['features'])}).")
    names = inputs["features"]
    steps = [scale(cut(s, inputs["maxlen"], inputs["truncating"]), inputs["scaling"], names) for s in found.steps]
    x = pad(steps, inputs["maxlen"], inputs["padding"], n_features)
    clash = [i for i, s in enumerate(steps) if (np.asarray(s, dtype=np.float32) == MASK_VALUE).all(axis=1).any()]
    if clash:
        raise DataError(f"{found.where[clash[0]]}: a step whose every scaled feature is {MASK_VALUE:g}, the padding "
                        "value; rescale the data.")
    return x, lengths


# ----------------------------------------------------------------------------- the Dataset


def _digits() -> Sequences:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float64)  # (1797, 8, 8): rows are steps, pixels features
    return Sequences([str(i) for i in range(len(images))], list(images), [str(int(v)) for v in digits.target],
                     [f"sklearn load_digits: image {i}" for i in range(len(images))], [f"px{j}" for j in range(8)])


def _read(cfg: SequencesData, path: str | None, key: str) -> Sequences:
    if path is None:
        return _digits()
    found = read_sequences(path, reader_settings(cfg), key)
    if not len(found):
        raise DataError(f"{path}: '{key}' holds no sequences.")
    return found


_CACHE: dict[Any, Sequences] = {}


def _source(cfg: SequencesData) -> Sequences:
    """data.path's sequences; read once per process for spec_for and load (inspect, then train)."""
    key = (cfg.path, cfg.builtin, repr(reader_settings(cfg)), _mtime(cfg.path))  # a rewritten file is read again
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = _read(cfg, cfg.path, "data.path")
    return _CACHE[key]


def _mtime(path: str | None) -> float | None:
    try:
        return Path(path).expanduser().stat().st_mtime if path else None
    except OSError:
        return None


def _reader_record(cfg: SequencesData, names: list[str]) -> dict[str, Any] | None:
    """The reader's settings as inputs.json keeps them; a long table's feature columns by the names training
    read, so a file for predict may hold other columns too."""
    if cfg.builtin is not None:
        return None
    settings = reader_settings(cfg)
    if settings["layout"] == "long":
        settings["features"] = list(names)
    return settings


def class_names(cfg: SequencesData, found: Sequences) -> list[str]:
    classes = list(cfg.classes) if cfg.classes else ordered_classes([str(v) for v in found.labels])
    if len(classes) < 2:
        raise DataError(f"{cfg.path or cfg.builtin}: every sequence has the label {classes[0]!r}; classification "
                        "needs two classes or more (or set data.task: regression).")
    return classes


def _targets(found: Sequences, classes: list[str] | None, what: str) -> np.ndarray:
    """Class ids (classification) or numbers (regression), one per sequence."""
    if classes is None:
        y = np.full(len(found), np.nan)
        for i, (label, w) in enumerate(zip(found.labels, found.where)):
            try:
                y[i] = float(label)
            except ValueError:
                raise DataError(f"{w}: label {label!r} is not a number (data.task is 'regression').") from None
            if not np.isfinite(y[i]):
                raise DataError(f"{w}: label {label!r} is not a finite number (data.task is 'regression').")
        return y
    index = {c: i for i, c in enumerate(classes)}
    for label, w in zip(found.labels, found.where):
        if label not in index:
            raise DataError(f"{w}: label {label!r} is not one of the {what} classes {classes}.")
    return np.array([index[label] for label in found.labels], dtype=np.int64)


def count(cfg: SequencesData) -> int:
    """Sequences of data.path (test_path's and val_path's not counted: they are read only by load)."""
    return len(_source(cfg))


def longest(cfg: SequencesData) -> int:
    return cfg.maxlen or max(len(s) for s in _source(cfg).steps)


def spec(cfg: SequencesData) -> InputSpec:
    """The InputSpec without splitting or scaling: data.path read (once), its classes and longest sequence."""
    found = _source(cfg)
    if cfg.task == "regression":
        task, outputs = "regression", 1
    else:
        classes = len(class_names(cfg, found))
        task, outputs = ("binary", 1) if classes == 2 else ("multiclass", classes)
    return InputSpec(task, "real", longest(cfg), found.steps[0].shape[1], outputs, None, cfg.padding, True)


def load(cfg: SequencesData, seed: int) -> Dataset:
    rng = np.random.RandomState(seed % 2**32)
    source = _source(cfg)
    regression = cfg.task == "regression"
    classes = None if regression else class_names(cfg, source)
    what = "data.classes" if cfg.classes else "data.path's"
    y_all = _targets(source, classes, what)
    strata = np.zeros(len(y_all), dtype=np.int64) if regression else y_all  # regression: a plain random split
    if cfg.test_path:
        test = _read(cfg, cfg.test_path, "data.test_path")
        train_rows = np.arange(len(source))
        y_test = _targets(test, classes, what)
    else:
        train_rows, test_rows = _stratified_split(strata, cfg.test_share, rng)
        if len(test_rows) == 0:
            raise DataError(f"{cfg.path or cfg.builtin}: no sequences are left for testing; give more sequences, a "
                            "larger data.test_fraction or data.test_path.")
        test, y_test = source.take(test_rows), y_all[test_rows]
    val = None
    if cfg.val_path:
        val = _read(cfg, cfg.val_path, "data.val_path")
        y_val = _targets(val, classes, what)
    elif cfg.val_share:
        kept, held = _stratified_split(strata[train_rows], cfg.val_share, rng)
        val, y_val = source.take(train_rows[held]), y_all[train_rows[held]]
        train_rows = train_rows[kept]
    train_rows = rng.permutation(train_rows)
    if cfg.id_column is not None:  # ids name sequences: one in two files would sit in two splits
        for other, key in ((test, "data.test_path") if cfg.test_path else (None, ""),
                           (val, "data.val_path") if cfg.val_path else (None, "")):
            if other is not None:
                both = sorted(set(other.ids) & set(source.ids))
                if both:
                    w = other.where[other.ids.index(both[0])]
                    raise DataError(f"{w}: sequence {both[0]!r} is in {key} and in data.path too; a sequence "
                                    "belongs to one split.")
    train, y_train = source.take(train_rows), y_all[train_rows]
    if not regression:
        lost = sorted(set(range(len(classes))) - set(y_train.tolist()))
        if lost:
            raise DataError(f"{cfg.path or cfg.builtin}: the train split has no sequence of class "
                            f"{classes[lost[0]]!r}; give more sequences of it.")
    n_features = train.steps[0].shape[1]
    for part in (train, test, val):
        for s, w in zip(part.steps if part else [], part.where if part else []):
            if s.shape[1] != n_features:
                raise DataError(f"{w}: {s.shape[1]} feature(s) a step where the train sequences have {n_features}.")
    maxlen = longest(cfg)
    names = list(source.features)
    scaling = fit_scaling(np.concatenate([cut(s, maxlen, cfg.truncating) for s in train.steps]), cfg.scaling, names)
    inputs = {"kind": "sequences", "task": None, "classes": classes, "features": names, "maxlen": maxlen,
              "truncating": cfg.truncating, "padding": cfg.padding, "scaling": scaling, "mask_value": MASK_VALUE,
              "reader": _reader_record(cfg, names), "builtin": cfg.builtin,
              "target_scaling": None}
    binary = classes is not None and len(classes) == 2
    task = "regression" if regression else "binary" if binary else "multiclass"
    inputs["task"] = task
    if regression:
        center, spread = float(y_train.mean()), float(y_train.std()) or 1.0
        inputs["target_scaling"] = {"center": center, "scale": spread}

    def targets(y: np.ndarray) -> np.ndarray:
        if regression:
            return ((y - inputs["target_scaling"]["center"]) / inputs["target_scaling"]["scale"]).astype(np.float32)
        return y.astype(np.float32 if binary else np.int32)

    x_train, len_train = to_model(train, inputs)
    x_test, len_test = to_model(test, inputs)
    x_val = y_val_model = None
    if val is not None:
        x_val, _ = to_model(val, inputs)
        y_val_model = targets(y_val)
    extra: dict[str, Any] = {
        "source": cfg.builtin or str(Path(cfg.path).expanduser()), "test_source": cfg.test_path,
        "val_source": cfg.val_path, "layout": "builtin" if cfg.builtin else reader_settings(cfg)["layout"],
        "classes": classes, "features": names, "maxlen": maxlen,
        "sequences": {"train": len(x_train), "validation": 0 if x_val is None else len(x_val), "test": len(x_test)},
        "lengths": {"train_min": int(len_train.min()), "train_max": int(len_train.max()),
                    "test_min": int(len_test.min()), "test_max": int(len_test.max())},
        "test_truncated_fraction": round(float(np.mean(len_test > maxlen)), 4),
    }
    units = None
    if regression:
        # The naive bar of a regression: the train mean, in the file's units.
        extra["baseline_mse_units"] = float(np.mean((y_test - y_train.mean()) ** 2))
        ts = inputs["target_scaling"]

        def convert(p: np.ndarray) -> np.ndarray:
            return np.asarray(p, dtype=np.float64).reshape(len(p), -1) * ts["scale"] + ts["center"]

        units = Units(y=y_test.reshape(-1, 1).astype(np.float64), convert=convert)
    else:
        counts = np.bincount(y_train, minlength=len(classes))
        majority = int(np.argmax(counts))
        extra.update({"train_class_counts": dict(zip(classes, counts.tolist())), "majority_class": classes[majority],
                      "majority_accuracy": float(np.mean(y_test == majority))})
    return Dataset(
        name="sequences", task=task, input_kind="real",
        x_train=x_train, y_train=targets(y_train), x_val=x_val, y_val=y_val_model, x_test=x_test,
        y_test=targets(y_test), num_classes=None if binary or regression else len(classes), padding=cfg.padding,
        extra=extra, artifacts={"inputs": inputs}, masked=True, units=units,
        samples=Samples(len_test, len_test > maxlen, list(test.where)),
    )
