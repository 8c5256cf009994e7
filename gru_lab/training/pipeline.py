"""tf.data input pipelines for fit, evaluate and predict: shuffled batches, prefetch, padding trimmed, and
batches of similar lengths where padding is masked.

Every pipeline turns tf.data's autotuning off. An autotuned iterator runs a background optimisation
thread that sleeps 10 ms, 20 ms, 40 ms, ... up to 10 s between passes, and destroying the iterator
waits for that sleep to end: each Keras fit/evaluate on NumPy arrays (one iterator per epoch and one
per validation pass) can stall for up to 10 s with the CPU idle. A fixed prefetch depth does the same
job without the thread (measured: docs/benchmarks.md).
"""

from __future__ import annotations

import math

import numpy as np

from gru_lab.data.base import MASK_VALUE

PREFETCH_BATCHES = 2  # one batch in the model, one ready: the gather of a batch takes microseconds
TRIM_MULTIPLE = 16  # trimmed lengths are rounded up to this, so XLA compiles a few shapes, not one per length
# Bucketing sorts the shuffled order by length within windows of this many batches, then shuffles the batches
# of a window: batches hold reviews of similar lengths, and which reviews meet in a batch still changes
# every epoch. Larger windows leave less padding but make batches more alike: on IMDB (batch 64) 8 kept
# the accuracy of unsorted batches and most of the saving, 32 cost accuracy (docs/benchmarks.md, fourth round).
BUCKET_WINDOW_BATCHES = 8


def batching(masked: bool, padding: str | None, xla: bool, bucketing: str) -> tuple[str | None, bool]:
    """(padding to trim from each batch or None, whether batches are grouped by length) for a run whose padding
    is masked (masked: token ids with mask_zero, or real-valued sequences behind a Masking layer) or not.

    Trimming is exact only where the model masks padding (a masked step leaves the state unchanged, so steps
    that are padding in every row of a batch change nothing); it is off under XLA, which would compile the
    step once per trimmed length. Grouping by length only pays where batches are trimmed."""
    trim = padding if masked and not xla else None
    return trim, trim is not None and bucketing == "auto"


def _used(x: np.ndarray) -> np.ndarray:
    """(rows, steps): which steps are not padding. Token ids: padding is 0; real-valued sequences
    (data.name: sequences, x of rank 3): a step whose every feature is MASK_VALUE."""
    x = np.asarray(x)
    return (x != MASK_VALUE).any(axis=2) if x.ndim == 3 else x != 0


def sequence_lengths(x: np.ndarray, padding: str) -> np.ndarray:
    """Per row, the steps a trim keeps for it: up to its last token (post padding) or from its first (pre)."""
    used = _used(x)
    steps = used.shape[1]
    if padding == "post":
        lengths = steps - np.argmax(used[:, ::-1], axis=1)
    else:
        lengths = steps - np.argmax(used, axis=1)
    return np.where(used.any(axis=1), lengths, 0).astype("int64")


def fit_rows(n: int, fraction: float) -> int:
    """How many of n training rows are fitted on when the last `fraction` is held out for validation, as
    Keras 3's validation_split does (floor(n * (1 - fraction))); the classical baselines fit on the same rows."""
    return int(math.floor(n * (1.0 - fraction)))


def split_validation(x: np.ndarray, y: np.ndarray, fraction: float):
    """(x_fit, y_fit, x_val, y_val): the last `fraction` held out, before any shuffling (fit_rows)."""
    split_at = fit_rows(len(x), fraction)
    return x[:split_at], y[:split_at], x[split_at:], y[split_at:]


def _options():
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    return options


def _trimmer(padding: str | None):
    """A batch map that drops the time steps that are padding in every row of the batch.

    Only exact where the model masks padding (mask_zero, or the Masking layer of data.name: sequences): a masked
    step leaves the state unchanged,
    so removing steps that are padding in every row changes no output. Without a mask the padding
    tokens are real inputs to the recurrence and must stay, so callers pass padding=None then."""
    import tensorflow as tf

    def trim(x, *rest):
        steps = tf.shape(x)[1]
        if x.shape.rank == 3:  # real-valued steps: padding is MASK_VALUE in every feature
            used = tf.reduce_any(tf.not_equal(x, MASK_VALUE), axis=[0, 2])
        else:
            used = tf.reduce_any(tf.not_equal(x, 0), axis=0)  # (T,): a step is kept if any row has a token there
        positions = tf.range(steps)
        if padding == "post":
            length = tf.reduce_max(tf.where(used, positions + 1, 0))
        else:
            length = steps - tf.reduce_min(tf.where(used, positions, steps))
        length = tf.minimum(steps, (length + TRIM_MULTIPLE - 1) // TRIM_MULTIPLE * TRIM_MULTIPLE)
        length = tf.maximum(length, 1)
        x = x[:, :length] if padding == "post" else x[:, steps - length:]
        return (x, *rest)

    return trim


def _batched(x, y, index_batches, trim_padding: str | None = None):
    """Batches gathered from the in-memory arrays by index: one gather per batch, not per sample.

    The rows are taken from the NumPy arrays themselves, never from a TensorFlow copy of them: a dataset
    function that captures a tensor keeps a copy of its own, so tf.constant(x) cost three copies of the data
    for every dataset (IMDB's 25,000 x 200 tokens: ~60 MB each for train, evaluate and predict)."""
    import tensorflow as tf

    arrays = (np.asarray(x),) if y is None else (np.asarray(x), np.asarray(y))
    dtypes = [tf.as_dtype(a.dtype) for a in arrays]

    def rows(idx):
        return tuple(a[idx] for a in arrays)

    def gather(idx):
        out = tf.numpy_function(rows, [idx], dtypes, stateful=False)
        for tensor, a in zip(out, arrays):
            tensor.set_shape((None, *a.shape[1:]))
        return tuple(out)

    ds = index_batches.map(gather)
    if trim_padding is not None:
        ds = ds.map(_trimmer(trim_padding))
    return ds.prefetch(PREFETCH_BATCHES).with_options(_options())


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int,
                  lengths: np.ndarray | None = None) -> list[np.ndarray]:
    """The row indices of each batch of one epoch (0-based): a pure function of (seed, epoch), so a resumed run
    makes the very batches of the epochs it continues, however many iterators anything made before.

    A seeded permutation of the n rows, cut into batches. With lengths (bucketing), the permutation is sorted by
    length within windows of BUCKET_WINDOW_BATCHES batches and the full batches of each window come in a seeded
    order; the last, partial batch of the epoch stays last."""
    rng = np.random.default_rng((seed % 2**32, epoch))
    order = rng.permutation(n)
    if lengths is None:
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    lengths = np.asarray(lengths)
    window = batch_size * BUCKET_WINDOW_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, n, window):
        part = order[start:start + window]
        part = part[np.argsort(lengths[part], kind="stable")]
        cut = [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
        full = [b for b in cut if len(b) == batch_size]
        batches.extend(full[i] for i in rng.permutation(len(full)))
        batches.extend(b for b in cut if len(b) < batch_size)
    return batches


def train_dataset(x, y, batch_size: int, seed: int, trim_padding: str | None = None, bucket: bool = False,
                  epochs: int = 1, first_epoch: int = 0):
    """The batches of epochs first_epoch .. epochs-1 (0-based) one after another, each epoch in its own seeded
    order (epoch_batches): fit with steps_per_epoch = train_steps(len(x), batch_size), so that Keras keeps one
    iterator for the whole fit, and a resumed run passes first_epoch = the epochs it has done.

    bucket (with trim_padding): batches hold sequences of similar lengths, each trimmed to its longest."""
    import tensorflow as tf

    n = len(x)
    lengths = sequence_lengths(x, trim_padding) if bucket else None

    def table(epoch):  # the epoch's batches as rows of indices, -1 past a short batch's end
        rows = np.full((train_steps(n, batch_size), batch_size), -1, dtype="int64")
        for i, idx in enumerate(epoch_batches(n, batch_size, seed, int(epoch), lengths)):
            rows[i, :len(idx)] = idx
        return rows

    def one_epoch(epoch):
        rows = tf.numpy_function(table, [epoch], tf.int64, stateful=False)
        rows.set_shape((None, batch_size))
        return tf.data.Dataset.from_tensor_slices(rows).map(lambda row: tf.boolean_mask(row, row >= 0))

    index_batches = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
    # flat_map hides the count from tf.data; Keras needs it to know where the data ends.
    index_batches = index_batches.apply(
        tf.data.experimental.assert_cardinality(max(0, epochs - first_epoch) * train_steps(n, batch_size)))
    return _batched(x, y, index_batches, trim_padding)


def train_steps(n: int, batch_size: int) -> int:
    """Batches in one epoch of n rows (the last one may be short)."""
    return -(-n // batch_size)


def eval_dataset(x, y, batch_size: int, trim_padding: str | None = None, by_length: bool = False):
    """For evaluate (with y) and predict (y=None): in order, or, with by_length (evaluate only: its metrics do
    not depend on the order), sorted by length so that trimmed batches carry little padding."""
    import tensorflow as tf

    if by_length and (y is None or trim_padding is None):
        raise ValueError("by_length needs labels (evaluate, not predict) and a padding to trim")
    order = np.argsort(sequence_lengths(x, trim_padding), kind="stable") if by_length else np.arange(len(x))
    return _batched(x, y, tf.data.Dataset.from_tensor_slices(order.astype("int64")).batch(batch_size), trim_padding)
