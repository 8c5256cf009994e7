"""The tf.data pipelines: Keras's validation split, seeded reshuffling, no autotuning, exact padding trim."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gru_lab.training import pipeline


def _batches(ds):
    return [tuple(t.numpy() for t in batch) for batch in ds]


@pytest.mark.parametrize("n, fraction", [(100, 0.2), (25_000, 0.2), (7, 0.3), (10, 0.05)])
def test_validation_split_is_keras_s(n, fraction):
    """Keras holds out the last part, split at ceil(n * (1 - fraction)), before shuffling."""
    from keras.src.trainers.data_adapters.array_slicing import train_validation_split

    x, y = np.arange(n)[:, None], np.arange(n) % 2
    x_fit, y_fit, x_val, y_val = pipeline.split_validation(x, y, fraction)
    (kx_fit, ky_fit), (kx_val, ky_val) = train_validation_split((x, y), validation_split=fraction)
    np.testing.assert_array_equal(x_fit, kx_fit)
    np.testing.assert_array_equal(x_val, kx_val)
    np.testing.assert_array_equal(y_fit, ky_fit)


def test_train_batches_cover_every_sample_in_a_new_seeded_order_each_epoch():
    x = np.arange(50, dtype=np.int32)[:, None].repeat(3, axis=1)
    y = np.arange(50, dtype=np.float32)
    tf.random.set_seed(0)  # as train() does (keras.utils.set_random_seed) before it builds the pipelines
    ds = pipeline.train_dataset(x, y, 16, seed=7)
    epoch1, epoch2 = _batches(ds), _batches(ds)
    assert [len(b[0]) for b in epoch1] == [16, 16, 16, 2]
    order1 = np.concatenate([b[1] for b in epoch1])
    order2 = np.concatenate([b[1] for b in epoch2])
    assert sorted(order1) == list(range(50)) and sorted(order2) == list(range(50))
    assert list(order1) != list(order2)  # reshuffled each epoch
    np.testing.assert_array_equal(np.concatenate([b[0][:, 0] for b in epoch1]), order1)  # x and y stay paired
    tf.random.set_seed(0)
    again = pipeline.train_dataset(x, y, 16, seed=7)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in _batches(again)]), order1)  # same seed, same order


def test_no_pipeline_autotunes():
    """An autotuned iterator's teardown waits for its optimisation thread's sleep (up to 10 s): see pipeline.py."""
    x, y = np.zeros((10, 4), np.int32), np.zeros(10, np.float32)
    for ds in (pipeline.train_dataset(x, y, 4, seed=0), pipeline.eval_dataset(x, y, 4),
               pipeline.eval_dataset(x, None, 4)):
        assert ds.options().autotune.enabled is False
        assert ds.options().deterministic is True


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_trim_drops_only_steps_that_are_padding_in_every_row(padding):
    lengths = [3, 20, 17]
    x = np.zeros((3, 40), np.int32)
    for i, n in enumerate(lengths):
        if padding == "post":
            x[i, :n] = 5
        else:
            x[i, 40 - n:] = 5
    (xb,) = _batches(pipeline.eval_dataset(x, None, 3, trim_padding=padding))[0]
    assert xb.shape == (3, 32)  # longest review 20, rounded up to a multiple of 16
    kept = x[:, :32] if padding == "post" else x[:, 8:]
    np.testing.assert_array_equal(xb, kept)
    assert (xb != 0).sum() == sum(lengths)  # no token lost
