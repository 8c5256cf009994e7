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


def train_dataset(x, y, batch_size: int, seed: int, trim_padding: str | None = None, bucket: bool = False):
    """Reshuffled every epoch (a fresh, seeded permutation each pass), then batched: same seed, same order.

    bucket (with trim_padding): the shuffled order is sorted by length within windows of
    BUCKET_WINDOW_BATCHES batches and the batches of each window are shuffled, so each batch, trimmed to its
    longest sequence, carries little padding."""
    import tensorflow as tf

    order = tf.data.Dataset.range(len(x)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if not bucket:
        return _batched(x, y, order.batch(batch_size), trim_padding)
    lengths = tf.constant(sequence_lengths(x, trim_padding))
    sorted_windows = order.batch(batch_size * BUCKET_WINDOW_BATCHES).map(
        lambda idx: tf.gather(idx, tf.argsort(tf.gather(lengths, idx), stable=True)))
    index_batches = sorted_windows.unbatch().batch(batch_size).shuffle(
        BUCKET_WINDOW_BATCHES, seed=seed + 1, reshuffle_each_iteration=True)
    # unbatch() hides the count from tf.data; Keras needs it to know where an epoch ends without running dry.
    index_batches = index_batches.apply(tf.data.experimental.assert_cardinality(-(-len(x) // batch_size)))
    return _batched(x, y, index_batches, trim_padding)


def eval_dataset(x, y, batch_size: int, trim_padding: str | None = None, by_length: bool = False):
    """For evaluate (with y) and predict (y=None): in order, or, with by_length (evaluate only: its metrics do
    not depend on the order), sorted by length so that trimmed batches carry little padding."""
    import tensorflow as tf

    if by_length and (y is None or trim_padding is None):
        raise ValueError("by_length needs labels (evaluate, not predict) and a padding to trim")
    order = np.argsort(sequence_lengths(x, trim_padding), kind="stable") if by_length else np.arange(len(x))
    return _batched(x, y, tf.data.Dataset.from_tensor_slices(order.astype("int64")).batch(batch_size), trim_padding)
