"""Labelled texts from the user's files (data.name: text): a CSV/TSV with a text and a label column, or a folder
with one sub-folder per class of .txt files (keras.utils.text_dataset_from_directory's layout).

Texts are encoded by keras.layers.TextVectorization itself, with a vocabulary adapted on the train split only:
0 = padding, 1 = out of vocabulary, the first maxlen tokens kept and 0s after. The run stores the layer's
settings and vocabulary in inputs.json, so `gru-lab predict` encodes new text with the very same layer and
`gru-lab export --text` bakes it into a model that takes raw strings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gru_lab.config import TextData
from gru_lab.data.base import Dataset, Samples
from gru_lab.data.files import decode, read_table
from gru_lab.errors import DataError

PAD, OOV = 0, 1  # TextVectorization's ids for "" and "[UNK]"


@dataclass
class Texts:
    """Texts with their labels (as written) and where each came from ("file:line" or the file)."""

    texts: list[str]
    labels: list[str]
    where: list[str]


def read_texts(path: str, cfg: TextData, key: str, classes: list[str] | None = None) -> Texts:
    """A file of rows or a folder of class folders; every text non-empty."""
    source = Path(path).expanduser()
    if source.is_dir():
        found = _read_folder(source, cfg, key, classes)
    elif not source.exists():
        raise DataError(f"{source}: '{key}' names a file or folder that does not exist.")
    else:
        found = _read_file(source, cfg, key)
    if not found.texts:
        raise DataError(f"{source}: '{key}' holds no texts.")
    return found


def _read_file(path: Path, cfg: TextData, key: str) -> Texts:
    table = read_table(path, key, cfg.separator, cfg.header, cfg.encoding)
    text_at = table.column_index(cfg.text_column, "'data.text_column' names it")
    label_at = table.column_index(cfg.label_column, "'data.label_column' names it")
    texts, labels, where = [], [], []
    for i, row in enumerate(table.rows):
        text, label = row[text_at], row[label_at].strip()
        if not text.strip():
            raise DataError(f"{table.where(i)}: the text (column {table.columns[text_at]!r}) is empty; "
                            "remove the row or give it text.")
        if not label:
            raise DataError(f"{table.where(i)}: the label (column {table.columns[label_at]!r}) is empty.")
        texts.append(text)
        labels.append(label)
        where.append(table.where(i))
    return Texts(texts, labels, where)


def class_folders(folder: Path, key: str, classes: list[str] | None) -> list[str]:
    """The class sub-folders to read: `classes` (each must exist) or every sub-folder, sorted."""
    try:
        found = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    except PermissionError:
        raise DataError(f"{folder}: permission denied listing '{key}'.") from None
    if classes is None:
        if not found:
            raise DataError(f"{folder}: '{key}' has no sub-folders; expected one folder of .txt files per class.")
        return found
    missing = [c for c in classes if c not in found]
    if missing:
        raise DataError(f"{folder}: no sub-folder {missing[0]!r} for data.classes; found {found}.")
    return list(classes)


def _read_folder(folder: Path, cfg: TextData, key: str, classes: list[str] | None) -> Texts:
    """Every .txt file under each class folder (sub-folders included), one text each, in sorted path order."""
    texts, labels, where = [], [], []
    for label in class_folders(folder, key, classes or cfg.classes):
        files = sorted(p for p in (folder / label).rglob("*.txt") if p.is_file())
        if not files:
            raise DataError(f"{folder / label}: no .txt files in class folder {label!r}.")
        for file in files:
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise DataError(f"{file}: cannot read ({exc.__class__.__name__}: {exc.strerror}).") from None
            text = decode(data, cfg.encoding, file)
            if not text.strip():
                raise DataError(f"{file}: the text is empty; remove the file or give it text.")
            texts.append(text)
            labels.append(label)
            where.append(str(file))
    return Texts(texts, labels, where)


def ordered_classes(labels: list[str]) -> list[str]:
    """Labels in their natural order: numerically when every label is a number ("2" before "10"), else as text."""
    unique = set(labels)
    try:
        return sorted(unique, key=float)
    except ValueError:
        return sorted(unique)


def class_names(cfg: TextData, train: Texts) -> list[str]:
    """data.classes, or every label of the train texts; two at least."""
    classes = list(cfg.classes) if cfg.classes else ordered_classes(train.labels)
    if len(classes) < 2:
        raise DataError(f"{cfg.path}: every text has the label {classes[0]!r}; classification needs two classes "
                        "or more.")
    return classes


def _label_ids(found: Texts, classes: list[str], what: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    for label, where in zip(found.labels, found.where):
        if label not in index:
            raise DataError(f"{where}: label {label!r} is not one of the {what} classes {classes}.")
    return np.array([index[label] for label in found.labels], dtype=np.int64)


def _stratified_split(y: np.ndarray, fraction: float, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """(kept rows, held-out rows): `fraction` of each class held out (at least one when a class has two)."""
    kept, held = [], []
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        n = int(round(len(rows) * fraction)) if fraction else 0
        n = min(max(n, 1 if fraction and len(rows) > 1 else 0), len(rows) - 1)
        held.append(rows[:n])
        kept.append(rows[n:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def _slice(y: np.ndarray, n: int | None, rng: np.random.RandomState, key: str, split: str) -> np.ndarray:
    """n rows with the class shares of y (stratified, seed-chosen), or all rows when n is None."""
    if n is None or n >= len(y):
        if n is not None and n > len(y):
            raise DataError(f"'{key}' is {n}, but the {split} split has {len(y)} texts; use a smaller {key} or "
                            "leave it unset.")
        return np.arange(len(y))
    _, held = _stratified_split(y, n / len(y), rng)
    return held


def vectorizer(settings: dict[str, Any], vocabulary: list[str] | None = None, maxlen: int | None = -1):
    """A keras.layers.TextVectorization with a run's settings; maxlen None gives every token (ragged)."""
    from keras import layers

    length = settings["maxlen"] if maxlen == -1 else maxlen
    standardize = None if settings["standardize"] == "none" else settings["standardize"]
    layer = layers.TextVectorization(max_tokens=settings["num_words"], standardize=standardize,
                                     split=settings["split"], output_mode="int",
                                     output_sequence_length=length, ragged=length is None, name="text_vectorization")
    if vocabulary is not None:
        # get_vocabulary() starts with the padding and out-of-vocabulary tokens; the layer adds those itself
        # (given again, a saved model's vocabulary would hold '' twice and not load).
        layer.set_vocabulary(vocabulary[2:] if vocabulary[:2] == ["", "[UNK]"] else vocabulary)
    return layer


def encode(layer, texts: list[str]) -> np.ndarray:
    import tensorflow as tf

    return layer(tf.constant(texts, dtype=tf.string)).numpy().astype(np.int32)


def token_counts(settings: dict[str, Any], vocabulary: list[str], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, out-of-vocabulary tokens) per text, before truncation to maxlen."""
    import tensorflow as tf

    ids = vectorizer(settings, vocabulary, maxlen=None)(tf.constant(texts, dtype=tf.string))
    tokens = ids.row_lengths().numpy()
    oov = tf.reduce_sum(tf.cast(tf.equal(ids, OOV), tf.int64), axis=1).numpy()
    return tokens, oov


def load(cfg: TextData, seed: int) -> Dataset:
    """The text Dataset: ids (n, maxlen) post-padded, labels 0/1 (binary) or 0..k-1 (multiclass)."""
    rng = np.random.RandomState(seed % 2**32)
    source = read_texts(cfg.path, cfg, "data.path")
    classes = class_names(cfg, source)
    y_all = _label_ids(source, classes, "data.classes" if cfg.classes else "train")
    if cfg.test_path:
        test = read_texts(cfg.test_path, cfg, "data.test_path", classes)
        y_test_all = _label_ids(test, classes, "train")
        train_rows, test_rows = np.arange(len(y_all)), np.arange(len(y_test_all))
        test_texts, test_where = test.texts, test.where
    else:
        train_rows, test_rows = _stratified_split(y_all, cfg.test_share, rng)
        if len(test_rows) == 0:
            raise DataError(f"{cfg.path}: no texts are left for testing; set data.test_fraction above 0 or give "
                            "data.test_path.")
        y_test_all, test_texts, test_where = y_all, source.texts, source.where
    # n_train slices the train texts before validation is held out of them (as train.validation_split would).
    train_rows = train_rows[_slice(y_all[train_rows], cfg.n_train, rng, "data.n_train", "train")]
    if cfg.val_path:
        val = read_texts(cfg.val_path, cfg, "data.val_path", classes)
        val_rows = np.arange(len(val.texts))
        y_val_all, val_texts = _label_ids(val, classes, "train"), val.texts
    elif cfg.val_share:
        kept, held = _stratified_split(y_all[train_rows], cfg.val_share, rng)
        train_rows, val_rows = train_rows[kept], train_rows[held]
        y_val_all, val_texts = y_all, source.texts
    train_rows = rng.permutation(train_rows)  # one shuffle: the classes are not in blocks
    test_rows = test_rows[_slice(y_test_all[test_rows], cfg.n_test, rng, "data.n_test", "test")]
    for split, rows, y in (("train", train_rows, y_all), ("test", test_rows, y_test_all)):
        present = np.unique(y[rows])
        if split == "train" and len(present) < len(classes):
            lost = [classes[i] for i in range(len(classes)) if i not in present]
            raise DataError(f"{cfg.path}: the train split has no text of class {lost[0]!r}; give more texts of it.")

    settings = {"num_words": cfg.num_words, "maxlen": cfg.maxlen, "standardize": cfg.standardize,
                "split": cfg.split}
    train_texts = [source.texts[i] for i in train_rows]
    layer = vectorizer(settings)
    import tensorflow as tf

    layer.adapt(tf.data.Dataset.from_tensor_slices(tf.constant(train_texts, dtype=tf.string)).batch(1024))
    vocabulary = [str(w) for w in layer.get_vocabulary()]
    # Keras saves a vocabulary one token a line and reads it back with str.splitlines(), which also breaks at
    # \x85, \u2028, \x0c and the like (TextVectorization's whitespace split keeps them in tokens): such a token
    # would make an exported model unloadable. It is left out: out of vocabulary, in training and after.
    kept = vocabulary[:2] + [w for w in vocabulary[2:] if w.splitlines() == [w]]
    if len(kept) < len(vocabulary):
        vocabulary = kept
        layer.set_vocabulary(vocabulary[2:])
    binary = len(classes) == 2
    label_dtype = np.float32 if binary else np.int32

    def arrays(texts: list[str], y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return encode(layer, texts), y.astype(label_dtype)

    x_train, y_train = arrays(train_texts, y_all[train_rows])
    x_test, y_test = arrays([test_texts[i] for i in test_rows], y_test_all[test_rows])
    x_val = y_val = None
    if cfg.val_path or cfg.val_share:
        x_val, y_val = arrays([val_texts[i] for i in val_rows], y_val_all[val_rows])

    shown = [test_texts[i] for i in test_rows]
    tokens, oov = token_counts(settings, vocabulary, shown)
    samples = Samples(tokens, tokens > cfg.maxlen, [test_where[i] for i in test_rows], shown.__getitem__)
    counts = np.bincount(y_train.astype(int), minlength=len(classes))
    majority = int(np.argmax(counts))
    extra = {
        "source": str(Path(cfg.path).expanduser()), "test_source": cfg.test_path, "val_source": cfg.val_path,
        "classes": classes,
        "texts": {"train": len(x_train), "validation": 0 if x_val is None else len(x_val), "test": len(x_test)},
        "train_class_counts": dict(zip(classes, counts.tolist())),
        "vocabulary": len(vocabulary),
        "maxlen": cfg.maxlen,
        "test_truncated_fraction": round(float(np.mean(tokens > cfg.maxlen)), 4),
        "test_oov_share": round(float(oov.sum() / max(tokens.sum(), 1)), 4),
        # The naive bar: always answer the train split's most frequent class.
        "majority_class": classes[majority],
        "majority_accuracy": float(np.mean(y_test.astype(int) == majority)),
    }
    inputs = {"kind": "text", "task": "binary" if binary else "multiclass", "classes": classes,
              "vectorizer": settings, "vocabulary": vocabulary}
    return Dataset(
        name="text", task="binary" if binary else "multiclass", input_kind="tokens",
        x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test,
        vocab_size=cfg.num_words, num_classes=None if binary else len(classes), padding="post",
        extra=extra, artifacts={"inputs": inputs}, samples=samples,
    )


def count_classes(cfg: TextData) -> int:
    """How many classes the data has, as cheaply as it can be known: data.classes, the class folders, or the
    distinct labels of the file's label column."""
    if cfg.classes:
        return len(cfg.classes)
    source = Path(cfg.path).expanduser()
    if source.is_dir():
        return len(class_folders(source, "data.path", None))
    return len(class_names(cfg, read_texts(cfg.path, cfg, "data.path")))
