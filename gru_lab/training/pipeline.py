"""tf.data input pipelines for fit, evaluate and predict: shuffled batches, prefetch, padding trimmed.

Every pipeline turns tf.data's autotuning off. An autotuned iterator runs a background optimisation
thread that sleeps 10 ms, 20 ms, 40 ms, ... up to 10 s between passes, and destroying the iterator
waits for that sleep to end: each Keras fit/evaluate on NumPy arrays (one iterator per epoch and one
per validation pass) can stall for up to 10 s with the CPU idle. A fixed prefetch depth does the same
job without the thread (measured: docs/benchmarks.md).
"""

from __future__ import annotations

import math

import numpy as np

PREFETCH_BATCHES = 2  # one batch in the model, one ready: the gather of a batch takes microseconds
TRIM_MULTIPLE = 16  # trimmed lengths are rounded up to this, so XLA compiles a few shapes, not one per length


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

    Only exact where the model masks padding (mask_zero): a masked step leaves the state unchanged,
    so removing steps that are padding in every row changes no output. Without a mask the padding
    tokens are real inputs to the recurrence and must stay, so callers pass padding=None then."""
    import tensorflow as tf

    def trim(x, *rest):
        steps = tf.shape(x)[1]
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


def _batched(x, y, batch_size: int, order=None, trim_padding: str | None = None):
    """Batches gathered from the in-memory arrays by index: one gather per batch, not per sample."""
    import tensorflow as tf

    arrays = (tf.constant(x),) if y is None else (tf.constant(x), tf.constant(y))
    indices = tf.data.Dataset.range(len(x)) if order is None else order
    ds = indices.batch(batch_size).map(lambda idx: tuple(tf.gather(a, idx) for a in arrays))
    if trim_padding is not None:
        ds = ds.map(_trimmer(trim_padding))
    return ds.prefetch(PREFETCH_BATCHES).with_options(_options())


def train_dataset(x, y, batch_size: int, seed: int, trim_padding: str | None = None):
    """Reshuffled every epoch (a fresh, seeded permutation each pass), then batched: same seed, same order."""
    import tensorflow as tf

    order = tf.data.Dataset.range(len(x)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return _batched(x, y, batch_size, order, trim_padding)


def eval_dataset(x, y, batch_size: int, trim_padding: str | None = None):
    """In order, for evaluate (with y) and predict (y=None)."""
    return _batched(x, y, batch_size, None, trim_padding)
