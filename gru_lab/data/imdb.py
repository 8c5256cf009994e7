"""IMDB movie-review sentiment: raw aclImdb text (folder or .tar.gz) or keras.datasets.imdb, as a Dataset.

Ids follow keras.datasets.imdb so that configs, results and seeds carry over between the two sources:
0 = padding, 1 = start of review (prepended to every review), 2 = out of vocabulary, and the word of
frequency rank r (1 = most frequent in the TRAIN split; ties broken alphabetically) is r + 3. Ids
>= num_words become 2. Reviews are truncated/padded to maxlen like keras.utils.pad_sequences and none is
ever dropped (Keras's own load_data(maxlen=...) drops long reviews; we never pass it).

Tokenizing 50,000 raw reviews takes tens of seconds, so the encoded full-vocabulary sequences are cached
as one .npz keyed by the source's content and TOKENIZER_VERSION; num_words, maxlen, padding, slicing and
shuffling are applied after the cache, cheaply.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from gru_lab.config import ImdbData
from gru_lab.data.base import Dataset, Documents, Samples
from gru_lab.errors import DataError
from gru_lab.files import atomic_writer

PAD, START, OOV = 0, 1, 2
INDEX_FROM = 3  # rank r -> id r + 3, as keras.datasets.imdb(index_from=3)
# Bump whenever tokenize() or the encoding changes: it is part of the cache key and of vocabulary.json.
TOKENIZER_VERSION = "gru-lab-imdb-1"
ENV_VAR = "GRU_LAB_IMDB"
SPLITS = ("train", "test")
LABELS = {"neg": 0, "pos": 1}
DOWNLOAD_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
LAYOUT = f"aclImdb/{{train,test}}/{{pos,neg}}/*.txt (download {DOWNLOAD_URL})"
HINT = f"set data.path or {ENV_VAR} to an aclImdb folder or aclImdb_v1.tar.gz (download {DOWNLOAD_URL})"

_BREAK = re.compile(r"<br\s*/?>")
# A token is a run of letters/digits in any script; an apostrophe is kept only between two such runs
# ("don't", "o'brien"), so quotes, hyphens, underscores and all other punctuation separate tokens.
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
# Member or relative path of one review: [prefix/]aclImdb/<split>/<label>/<file>.txt
_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/([^/]+\.txt)$")


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens of one review; <br />, <br/> and <br> count as spaces."""
    return _WORD.findall(_BREAK.sub(" ", text.lower()))


@dataclass
class _Split:
    """Many variable-length reviews in two flat arrays (cheap to cache, no object arrays)."""

    ids: np.ndarray  # int32: every review's ids one after another, each starting with START
    offsets: np.ndarray  # int64 (n + 1,): review i is ids[offsets[i]:offsets[i + 1]]
    labels: np.ndarray  # int8 (n,): 0 = neg, 1 = pos

    @classmethod
    def from_lists(cls, seqs: Iterable[Iterable[int]], labels: Iterable[int]) -> "_Split":
        arrays = [np.asarray(s, dtype=np.int32) for s in seqs]
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum([len(a) for a in arrays], out=offsets[1:])
        ids = np.concatenate(arrays) if arrays else np.zeros(0, np.int32)
        return cls(ids.astype(np.int32, copy=False), offsets, np.asarray(list(labels), dtype=np.int8))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def _pad(split: _Split, rows: np.ndarray, num_words: int, maxlen: int, padding: str, truncating: str) -> np.ndarray:
    """int32 (len(rows), maxlen) like keras.utils.pad_sequences, with ids >= num_words set to OOV."""
    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise ValueError(f"padding and truncating must be 'pre' or 'post'. Got {padding!r}, {truncating!r}.")
    out = np.zeros((len(rows), maxlen), dtype=np.int32)
    for row, i in enumerate(rows):
        seq = split.ids[split.offsets[i]:split.offsets[i + 1]]
        seq = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
        if padding == "pre":
            out[row, maxlen - len(seq):] = seq
        else:
            out[row, :len(seq)] = seq
    out[out >= num_words] = OOV
    return out


def encode_texts(texts: list[str], word_index: dict[str, int], num_words: int, maxlen: int,
                 padding: str, truncating: str) -> np.ndarray:
    """New reviews -> int32 (n, maxlen) with a run's saved word_index, exactly as its training data was encoded."""
    seqs = [[START] + [word_index.get(w, OOV) for w in tokenize(t)] for t in texts]
    split = _Split.from_lists(seqs, [0] * len(seqs))
    return _pad(split, np.arange(len(seqs)), num_words, maxlen, padding, truncating)


def tensorflow_encoder(vocabulary: dict):
    """encode_texts in TensorFlow ops, for a SavedModel that takes raw reviews: (the StringLookup layer the
    SavedModel must track, encode(strings) -> int32 (n, maxlen)). tokenize's pattern in RE2: every run of
    characters that are not letters, digits or apostrophes is a space, then apostrophes not between two such
    characters go too. The same ids as encode_texts (tested), wherever Python's and TensorFlow's Unicode
    tables agree on letters and lower case."""
    import keras
    import tensorflow as tf

    num_words, maxlen = vocabulary["num_words"], vocabulary["maxlen"]
    padding, truncating = vocabulary["padding"], vocabulary["truncating"]
    words = [w for w, i in sorted(vocabulary["word_index"].items(), key=lambda item: item[1]) if i < num_words]
    # Lookup index 0 is out of vocabulary, index k the k-th word, whose id is k + INDEX_FROM.
    lookup = keras.layers.StringLookup(vocabulary=words, num_oov_indices=1, mask_token=None, output_mode="int")

    def tokens(strings):
        t = tf.strings.lower(strings, encoding="utf-8")
        for pattern in (r"<br\s*/?>", r"[^\pL\pN']+", r"''+", r"(^|\s)'+", r"'+(\s|$)"):
            t = tf.strings.regex_replace(t, pattern, " ")
        return tf.strings.split(t)

    def encode(strings):
        index = tf.cast(lookup(tokens(strings)), tf.int32)
        ids = tf.ragged.map_flat_values(lambda v: tf.where(v == 0, OOV, v + INDEX_FROM), index)
        ids = tf.concat([tf.fill([ids.nrows(), 1], START), ids], axis=1)
        ids = ids[:, -maxlen:] if truncating == "pre" else ids[:, :maxlen]
        dense = ids.to_tensor(PAD, shape=[None, maxlen])
        if padding == "pre":  # shift each row right by its padding
            lengths = tf.cast(ids.row_lengths(), tf.int32)
            source = tf.range(maxlen)[None, :] - (maxlen - lengths)[:, None]
            dense = tf.where(source >= 0, tf.gather(dense, tf.maximum(source, 0), batch_dims=1), PAD)
        return dense

    return lookup, encode


def token_counts(texts: list[str], word_index: dict[str, int], num_words: int) -> tuple[np.ndarray, np.ndarray]:
    """(words, out-of-vocabulary words) per review, before truncation; the model sees words + 1 (START) ids."""
    words = [tokenize(t) for t in texts]
    oov = [sum(1 for w in ws if word_index.get(w, OOV) >= num_words or w not in word_index) for ws in words]
    return np.array([len(ws) for ws in words]), np.array(oov)


def resolve_source(cfg: ImdbData) -> str | None:
    """data.path, else $GRU_LAB_IMDB, else None (download with keras.datasets.imdb)."""
    path = cfg.path or os.environ.get(ENV_VAR) or None
    return os.path.expanduser(path) if path else None


# ----------------------------------------------------------------------------- reading raw aclImdb


def _origin(cfg: ImdbData, source: str) -> str:
    """How the user named the source, for error messages."""
    return f"data.path {source}" if cfg.path else f"{ENV_VAR}={source}"


def _dir_root(path: Path, where: str) -> Path:
    """The aclImdb folder: path itself or path/aclImdb; checks the four review folders exist."""
    root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
    try:
        if not any(path.iterdir()):
            raise DataError(f"{where}: the folder is empty; expected {LAYOUT}.")
    except PermissionError:
        raise DataError(f"{where}: permission denied reading the folder; expected {LAYOUT}.") from None
    missing = [f"{s}/{c}" for s in SPLITS for c in LABELS if not (root / s / c).is_dir()]
    if missing:
        raise DataError(f"{where}: missing folder(s) {', '.join(f'{root}/{m}' for m in missing)}; "
                        f"expected {LAYOUT}.")
    return root


def _dir_files(root: Path, where: str) -> list[tuple[str, str, str, Path, os.stat_result]]:
    """(split, label, file name, path, stat) of every review, sorted so that listing order never matters."""
    files = []
    for split in SPLITS:
        for label in LABELS:
            folder = root / split / label
            try:
                entries = [e for e in os.scandir(folder) if e.name.endswith(".txt") and e.is_file()]
            except PermissionError:
                raise DataError(f"{where}: permission denied listing {folder}.") from None
            if not entries:
                raise DataError(f"{where}: no *.txt reviews in {folder}; expected {LAYOUT}.")
            files += [(split, label, e.name, Path(e.path), e.stat()) for e in entries]
    return sorted(files, key=lambda f: f[:3])


def _dir_fingerprint(files) -> str:
    """Changes when any review is added, removed, resized or touched; cheaper than hashing 50k files."""
    h = hashlib.sha256()
    for split, label, name, _, st in files:
        h.update(f"{split}/{label}/{name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return "dir:" + h.hexdigest()


def _read_dir(files, where: str) -> Iterator[tuple[str, str, str, str]]:
    for split, label, name, path, _ in files:
        try:
            data = path.read_bytes()
        except OSError as exc:  # PermissionError, or a file removed while we read
            raise DataError(f"{where}: cannot read review {path} ({exc.__class__.__name__}: {exc.strerror}).") from None
        yield split, label, name, data.decode("utf-8", errors="replace")


def _archive_fingerprint(path: Path, where: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise DataError(f"{where}: cannot read the archive ({exc.__class__.__name__}: {exc.strerror}).") from None
    return "tar:" + h.hexdigest()


def _read_archive(path: Path, where: str) -> Iterator[tuple[str, str, str, str]]:
    """Reviews straight from the .tar.gz members, never extracted to disk."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                match = _MEMBER.search(member.name)
                if match and member.isfile():
                    data = tar.extractfile(member).read()
                    yield match[1], match[2], match[3], data.decode("utf-8", errors="replace")
    except PermissionError:
        raise DataError(f"{where}: permission denied reading the archive.") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        # gzip.BadGzipFile is an OSError; a truncated download ends in EOFError or zlib.error.
        raise DataError(f"{where}: not a readable gzip-compressed tar archive ({exc.__class__.__name__}: {exc}); "
                        f"expected a .tar.gz of {LAYOUT}.") from None


# ----------------------------------------------------------------------------- encoding + cache


def _encode(reviews: Iterable[tuple[str, str, str, str]], where: str) -> tuple[dict[str, _Split], list[str]]:
    """Tokenize every review once; rank words by train frequency; map to ids. Review order: sorted names."""
    provisional: dict[str, int] = {}  # word -> id by first occurrence; final ids need the full train count
    records: dict[str, list[tuple[str, str, np.ndarray]]] = {s: [] for s in SPLITS}
    for split, label, name, text in reviews:
        ids = [provisional.setdefault(w, len(provisional)) for w in tokenize(text)]
        records[split].append((label, name, np.asarray(ids, dtype=np.int32)))
    missing = [f"aclImdb/{s}/{c}" for s in SPLITS for c in LABELS if not any(r[0] == c for r in records[s])]
    if missing:
        raise DataError(f"{where}: no reviews under {', '.join(missing)}; expected {LAYOUT}.")

    words = list(provisional)
    train_ids = np.concatenate([r[2] for r in records["train"]])
    counts = np.bincount(train_ids, minlength=len(words)).tolist()
    # Alphabetical tie-break: independent of file order, so a folder and its archive give the same ids.
    ranked = sorted((i for i in range(len(words)) if counts[i] > 0), key=lambda i: (-counts[i], words[i]))
    final = np.full(len(words), OOV, dtype=np.int32)  # words seen only in test stay OOV
    final[ranked] = np.arange(len(ranked), dtype=np.int32) + INDEX_FROM + 1

    splits = {}
    for split in SPLITS:
        rows = sorted(records[split], key=lambda r: r[:2])
        splits[split] = _Split.from_lists(
            (np.concatenate([[START], final[r[2]]]) for r in rows), (LABELS[r[0]] for r in rows))
    return splits, [words[i] for i in ranked]


def _cache_dir(cfg: ImdbData) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "gru-lab" / "imdb"


def _read_cache(path: Path, key: str) -> tuple[dict[str, _Split], list[str]] | None:
    """The cached encoding, or None when it is missing, stale or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            splits = {s: _Split(z[f"{s}_ids"], z[f"{s}_offsets"], z[f"{s}_labels"]) for s in SPLITS}
            vocab = bytes(z["vocab"]).decode("utf-8").split("\n") if z["vocab"].size else []
        for s in splits.values():
            if s.offsets[-1] != len(s.ids) or len(s.labels) != len(s.offsets) - 1:
                return None
        return splits, vocab
    except Exception:  # any damage (truncated zip, missing key, bad dtype) just means: rebuild
        return None


def _write_cache(path: Path, key: str, splits: dict[str, _Split], vocab: list[str]) -> None:
    """Written atomically: an interrupted write never leaves a corrupt cache."""
    arrays = {"key": np.array(key), "vocab": np.frombuffer("\n".join(vocab).encode("utf-8"), dtype=np.uint8)}
    for name, s in splits.items():
        arrays.update({f"{name}_ids": s.ids, f"{name}_offsets": s.offsets, f"{name}_labels": s.labels})
    with atomic_writer(path) as f:
        np.savez_compressed(f, **arrays)


def _load_raw(cfg: ImdbData, source: str) -> tuple[dict[str, _Split], list[str], dict]:
    where = _origin(cfg, source)
    path = Path(source)
    if path.is_dir():
        files = _dir_files(_dir_root(path, where), where)
        fingerprint, reviews = _dir_fingerprint(files), _read_dir(files, where)
    elif path.is_file():
        fingerprint, reviews = _archive_fingerprint(path, where), _read_archive(path, where)
    else:
        raise DataError(f"{where}: no such file or folder; expected an aclImdb folder or aclImdb_v1.tar.gz "
                        f"(download {DOWNLOAD_URL}).")
    key = hashlib.sha256(f"{TOKENIZER_VERSION}\n{fingerprint}".encode()).hexdigest()[:24]
    cache = _cache_dir(cfg) / f"imdb-{key}.npz"
    extra = {"cache_file": str(cache)}
    cached = _read_cache(cache, key)
    extra["cache_hit"] = cached is not None
    if cached is None:
        cached = _encode(reviews, where)
        try:
            _write_cache(cache, key, *cached)
        except OSError as exc:  # a read-only home must not stop the run; it is just slower next time
            extra["cache_error"] = f"{exc.__class__.__name__}: {exc}"
    return cached[0], cached[1], extra


# ----------------------------------------------------------------------------- keras.datasets.imdb


def _load_keras(cfg: ImdbData) -> tuple[dict[str, _Split], dict[str, int], dict]:
    from keras.datasets import imdb as keras_imdb

    try:
        # No maxlen here: Keras's maxlen DROPS longer reviews. We truncate/pad ourselves.
        (x_train, y_train), (x_test, y_test) = keras_imdb.load_data(num_words=cfg.num_words)
    except Exception as exc:  # Keras reports a failed download as a bare Exception
        reason = " ".join(f"{exc.__class__.__name__}: {exc}".split())
        raise DataError(f"IMDB could not be downloaded by keras.datasets.imdb ({reason}); {HINT}.") from None
    splits = {"train": _Split.from_lists(x_train, y_train), "test": _Split.from_lists(x_test, y_test)}
    extra = {"cache_hit": False}
    try:
        ranks = keras_imdb.get_word_index()
        word_index = {w: r + INDEX_FROM for w, r in ranks.items() if r + INDEX_FROM < cfg.num_words}
    except Exception as exc:
        word_index = {}
        extra["word_index"] = " ".join(
            f"unavailable, predict sees only OOV ids ({exc.__class__.__name__}: {exc})".split())
    return splits, word_index, extra


# ----------------------------------------------------------------------------- the Dataset


def _stratified(split: _Split, n: int | None, rng: np.random.RandomState, key: str, name: str) -> np.ndarray:
    """Indices of n reviews, half of them positive (the odd one negative), or all when n is None."""
    if n is None:
        return np.arange(len(split.labels))
    picked = []
    for label, want in ((1, n // 2), (0, n - n // 2)):
        have = np.flatnonzero(split.labels == label)
        if want > len(have):
            raise DataError(f"'{key}' is {n}, which needs {want} {'pos' if label else 'neg'} reviews, "
                            f"but the {name} split has {len(have)}; use a smaller {key} or leave it unset.")
        picked.append(rng.choice(have, size=want, replace=False))
    return np.sort(np.concatenate(picked))


def load(cfg: ImdbData, seed: int) -> Dataset:
    """The IMDB Dataset for one run: x ids (or raw ids as one real feature), y 0/1, vocabulary artifact.

    Train is shuffled once with RandomState(seed); test keeps the source's order (raw source: neg then pos,
    each by file name). n_train/n_test take stratified, seed-determined slices of the full splits.
    """
    started = time.perf_counter()
    source = resolve_source(cfg)
    vocab: list[str] = []
    if source is None:
        splits, word_index, extra = _load_keras(cfg)
        train_vocabulary = None
    else:
        splits, vocab, extra = _load_raw(cfg, source)
        limit = max(0, cfg.num_words - INDEX_FROM - 1)  # ids 4 .. num_words-1
        word_index = {w: i + INDEX_FROM + 1 for i, w in enumerate(vocab[:limit])}
        train_vocabulary = len(vocab)

    # Seeds may be any int; RandomState wants 0 <= seed < 2**32. The test slice gets its own stream so
    # that it does not depend on whether (or how) train was sliced.
    rng = np.random.RandomState(seed % 2**32)
    train_rows = _stratified(splits["train"], cfg.n_train, rng, "data.n_train", "train")
    # Shuffle train once: Keras's validation_split takes the LAST fraction, which must not be all one class.
    train_rows = rng.permutation(train_rows)
    test_rows = _stratified(splits["test"], cfg.n_test, np.random.RandomState((seed + 1) % 2**32),
                            "data.n_test", "test")

    pad = dict(num_words=cfg.num_words, maxlen=cfg.maxlen, padding=cfg.padding, truncating=cfg.truncating)
    x_train = _pad(splits["train"], train_rows, **pad)
    x_test = _pad(splits["test"], test_rows, **pad)
    y_train = splits["train"].labels[train_rows].astype(np.float32)
    y_test = splits["test"].labels[test_rows].astype(np.float32)
    if cfg.as_real:  # the stacked-GRU tutorial feeds the raw ids as one number per step, without an Embedding
        x_train, x_test = (x[..., None].astype(np.float32) for x in (x_train, x_test))

    # Lengths count the START marker, which is what the model sees: a review fits if words + 1 <= maxlen.
    lengths = np.concatenate([splits["train"].lengths[train_rows], splits["test"].lengths[test_rows]])
    extra = {
        "source": source or "keras.datasets.imdb",
        "n_train": int(len(train_rows)),
        "n_test": int(len(test_rows)),
        "reviews_available": {s: int(len(splits[s].labels)) for s in SPLITS},
        "num_words": cfg.num_words,
        "train_vocabulary": train_vocabulary,  # distinct words in the whole train split (raw source only)
        "maxlen": cfg.maxlen,
        "truncated_fraction": round(float(np.mean(lengths > cfg.maxlen)), 4),
        "mean_review_tokens": round(float(np.mean(lengths - 1)), 1),
        **extra,
        "load_seconds": round(time.perf_counter() - started, 3),
    }
    vocabulary = {"word_index": word_index, "num_words": cfg.num_words, "maxlen": cfg.maxlen,
                  "padding": cfg.padding, "truncating": cfg.truncating, "tokenizer": TOKENIZER_VERSION}
    return Dataset(
        name="imdb", task="binary", input_kind="real" if cfg.as_real else "tokens",
        x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        vocab_size=None if cfg.as_real else cfg.num_words,  # no Embedding for raw ids, as base.Dataset says
        padding=cfg.padding, extra=extra, artifacts={"vocabulary": vocabulary},
        documents={"train": _documents(splits["train"], train_rows), "test": _documents(splits["test"], test_rows)},
        samples=_samples(splits["test"], test_rows, cfg.maxlen, vocab, word_index),
    )


def _samples(split: _Split, rows: np.ndarray, maxlen: int, vocab: list[str], word_index: dict[str, int]) -> Samples:
    """The test reviews' lengths as the model sees them (START included) and their words, decoded from the ids
    only for the rows an evaluation shows. The cache keeps no file names: a review is named by its split,
    label and place in file-name order."""
    lengths = split.lengths[rows]
    words = vocab or [w for w, _ in sorted(word_index.items(), key=lambda item: item[1])]
    first = INDEX_FROM + 1 if vocab else min(word_index.values(), default=INDEX_FROM + 1)
    labels = split.labels[rows]
    rank = rows - np.where(labels == 1, np.flatnonzero(split.labels == 1)[:1].tolist() or [0], 0)

    def text(i: int) -> str:
        ids = split.ids[split.offsets[rows[i]] + 1:split.offsets[rows[i] + 1]]
        return " ".join(words[j - first] if 0 <= j - first < len(words) else "[?]" for j in ids.tolist())

    if vocab:
        sources = [f"aclImdb/test/{'pos' if y else 'neg'} review {r + 1} (file-name order)"
                   for y, r in zip(labels.tolist(), rank.tolist())]
    else:
        sources = [f"keras.datasets.imdb test row {r + 1}" for r in rows.tolist()]
    return Samples(lengths, lengths > maxlen, sources, text)


def _documents(split: _Split, rows: np.ndarray) -> Documents:
    """Every word of these reviews as ids (no num_words or maxlen cut, the START marker left out): the
    text the baselines see, tokenized as the model's input is. Words that occur only in test are OOV (2)."""
    return Documents(split.ids, split.offsets[rows] + 1, split.offsets[rows + 1])
