"""The tf.data pipelines: Keras's validation split, seeded reshuffling, no autotuning, exact padding trim."""

from __future__ import annotations

import numpy as np
import pytest

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
    ds = pipeline.train_dataset(x, y, 16, seed=7, epochs=2)
    assert int(ds.cardinality()) == 2 * pipeline.train_steps(50, 16) == 8  # Keras reads where the data ends
    batches = _batches(ds)
    epoch1, epoch2 = batches[:4], batches[4:]
    assert [len(b[0]) for b in epoch1] == [16, 16, 16, 2]
    order1 = np.concatenate([b[1] for b in epoch1])
    order2 = np.concatenate([b[1] for b in epoch2])
    assert sorted(order1) == list(range(50)) and sorted(order2) == list(range(50))
    assert list(order1) != list(order2)  # reshuffled each epoch
    np.testing.assert_array_equal(np.concatenate([b[0][:, 0] for b in epoch1]), order1)  # x and y stay paired
    again = pipeline.train_dataset(x, y, 16, seed=7)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in _batches(again)]), order1)  # same seed, same order
    other = pipeline.train_dataset(x, y, 16, seed=8)
    assert np.concatenate([b[1] for b in _batches(other)]).tolist() != order1.tolist()


@pytest.mark.parametrize("bucket", [False, True], ids=["shuffled", "bucketed"])
def test_a_dataset_started_at_epoch_k_gives_the_batches_of_epoch_k(bucket):
    """What makes a resumed run's epochs those of an uninterrupted run: the batches are a function of (seed,
    epoch), not of how many iterators were made before (a shuffle feeding another shuffle is not advanced by an
    iterator that is never read, which made resumed bucketed runs drift)."""
    lengths = np.random.default_rng(2).integers(1, 30, 90)
    x, y = _reviews(lengths, 30, "post"), np.arange(90, dtype=np.float32)
    whole = [b[1].tolist() for b in _batches(pipeline.train_dataset(x, y, 8, 5, "post", bucket, epochs=3))]
    for k in (1, 2):
        later = pipeline.train_dataset(x, y, 8, 5, "post", bucket, epochs=3, first_epoch=k)
        assert [b[1].tolist() for b in _batches(later)] == whole[k * 12:]
    assert whole[:12] != whole[12:24]


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


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_sequence_lengths_are_what_a_trim_keeps(padding):
    x = np.array([[3, 0, 4, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 2, 0]])
    expected = {"post": [3, 0, 5, 4], "pre": [5, 0, 5, 2]}[padding]
    assert pipeline.sequence_lengths(x, padding).tolist() == expected


def _reviews(lengths, steps: int, padding: str) -> np.ndarray:
    x = np.zeros((len(lengths), steps), np.int32)
    for i, n in enumerate(lengths):
        if padding == "post":
            x[i, :n] = 7
        else:
            x[i, steps - n:] = 7
    return x


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_bucketed_batches_hold_neighbouring_lengths_in_a_new_order_each_epoch(padding):
    """One window of batches of 4 whose reviews have distinct lengths 1, 2, ...: sorting the window makes
    each batch four consecutive lengths, trimmed to the longest; the batches come in a new seeded order
    every epoch, and the same seed repeats it."""
    n = 4 * pipeline.BUCKET_WINDOW_BATCHES  # one window
    lengths = np.random.default_rng(0).permutation(np.arange(1, n + 1))
    x, y = _reviews(lengths, n, padding), lengths.astype(np.float32)

    def epochs(count):
        ds = pipeline.train_dataset(x, y, 4, seed=3, trim_padding=padding, bucket=True, epochs=count)
        assert int(ds.cardinality()) == count * pipeline.BUCKET_WINDOW_BATCHES  # Keras reads where the data ends
        batches = _batches(ds)
        return [batches[i:i + pipeline.BUCKET_WINDOW_BATCHES] for i in range(0, len(batches),
                                                                           pipeline.BUCKET_WINDOW_BATCHES)]

    first, second = epochs(2)
    for epoch in (first, second):
        groups = sorted(sorted(b[1].astype(int).tolist()) for b in epoch)
        assert groups == [list(range(k, k + 4)) for k in range(1, n + 1, 4)]
        for xb, yb in epoch:  # trimmed to the batch's longest review, rounded up to 16; x and y stay paired
            assert xb.shape[1] == min(n, -(-int(yb.max()) // 16) * 16)
            assert sorted((xb != 0).sum(axis=1).tolist()) == sorted(yb.astype(int).tolist())
    assert [b[1].tolist() for b in first] != [b[1].tolist() for b in second]
    assert [b[1].tolist() for b in epochs(1)[0]] == [b[1].tolist() for b in first]


def test_bucketing_keeps_every_sample_once_over_several_windows():
    lengths = np.random.default_rng(1).integers(0, 40, 300)
    x = _reviews(lengths, 40, "post")
    ds = pipeline.train_dataset(x, np.arange(300, dtype=np.float32), 8, seed=0, trim_padding="post", bucket=True)
    batches = _batches(ds)
    assert len(batches) == int(ds.cardinality()) == 38
    assert sorted(np.concatenate([b[1] for b in batches]).astype(int).tolist()) == list(range(300))


def test_evaluation_by_length_is_sorted_and_predict_keeps_the_order():
    lengths = [5, 1, 9, 3]
    x, y = _reviews(lengths, 10, "post"), np.arange(4, dtype=np.float32)
    batches = _batches(pipeline.eval_dataset(x, y, 2, trim_padding="post", by_length=True))
    assert [b[1].tolist() for b in batches] == [[1, 3], [0, 2]]  # lengths 1, 3 then 5, 9
    assert [b[0].shape[1] for b in batches] == [10, 10]  # 3 and 9 rounded up to 16, capped at 10
    with pytest.raises(ValueError, match="labels"):
        pipeline.eval_dataset(x, None, 2, trim_padding="post", by_length=True)


@pytest.mark.parametrize("masked, padding, xla, setting, expected", [
    (True, "post", False, "auto", ("post", True)),
    (True, "pre", False, "off", ("pre", False)),
    (True, "post", True, "auto", (None, False)),  # XLA: one compilation per trimmed length
    (False, "pre", False, "auto", (None, False)),  # unmasked padding is input, never trimmed
])
def test_when_batches_are_trimmed_and_grouped(masked, padding, xla, setting, expected):
    assert pipeline.batching(masked, padding, xla, setting) == expected


@pytest.mark.parametrize("make", ["train", "evaluate", "predict"])
def test_batches_are_read_from_the_arrays_not_from_a_copy(make):
    """Datasets read each batch's rows from the NumPy arrays themselves (a tensor a dataset function captured
    would be copied: three copies of IMDB's training tokens, ~60 MB, in one run). Shown by writing to the
    arrays after the dataset is made: the batches see it."""
    x = np.arange(40, dtype="int32").reshape(10, 4)
    y = np.zeros(10, dtype="float32")
    ds = {"train": lambda: pipeline.train_dataset(x, y, 5, seed=0),
          "evaluate": lambda: pipeline.eval_dataset(x, y, 5),
          "predict": lambda: pipeline.eval_dataset(x, None, 5)}[make]()
    x[:] = -x
    y[:] = 7.0
    batches = list(ds)
    xs = np.concatenate([b[0].numpy() for b in batches])
    assert sorted(xs[:, 0].tolist()) == sorted((-np.arange(0, 40, 4)).tolist())
    assert xs.shape == (10, 4) and batches[0][0].shape.as_list() == [5, 4]
    if make != "predict":
        assert np.concatenate([b[1].numpy() for b in batches]).tolist() == [7.0] * 10


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_masked_real_sequences_are_trimmed_to_their_steps(padding):
    """data.name: sequences pads with MASK_VALUE behind a Masking layer: lengths and trims read those steps as
    padding, and a real step of zeros stays."""
    from gru_lab.data.base import MASK_VALUE
    from gru_lab.data.sequences import pad

    rng = np.random.default_rng(0)
    lengths = [3, 1, 7, 2, 5, 40]
    steps = [rng.normal(size=(n, 2)) for n in lengths]
    for s in steps:
        s[0] = 0.0  # an all-zero step is a step, not padding
    x = pad(steps, 40, padding, 2)
    assert pipeline.sequence_lengths(x, padding).tolist() == lengths
    (batch,) = _batches(pipeline.eval_dataset(x[:5], None, 5, trim_padding=padding))
    assert batch[0].shape == (5, 16, 2)  # longest 7, rounded up to 16
    assert (batch[0] != MASK_VALUE).all(axis=2).sum() == sum(lengths[:5])  # no step lost


def test_a_run_on_masked_real_sequences_scores_trimmed_batches_as_the_whole_arrays(tmp_path):
    """Trimmed, length-sorted batches (left padding: the trim cuts from the front) give the test loss of the
    whole padded arrays: a masked step leaves the state as it was."""
    from gru_lab.config import config_from_raw
    from gru_lab.data import load_dataset
    from gru_lab.training.fit import train

    rng = np.random.default_rng(0)
    padding = "pre"
    path = tmp_path / "s.csv"
    rows = ["id,t,a,label"] + [f"s{i},{t},{rng.normal():.4f},{i % 2}" for i in range(40)
                                for t in range(int(rng.integers(1, 40)))]
    path.write_text("\n".join(rows) + "\n")
    cfg = config_from_raw({"data": {"name": "sequences", "path": str(path), "id_column": "id", "order_column": "t",
                                    "padding": padding, "val_fraction": 0},
                           "model": {"units": 3}, "train": {"epochs": 1, "batch_size": 4}}, "test")
    data = load_dataset(cfg.data, cfg.seed)
    result = train(cfg, data)
    m = result.metrics
    assert m["execution"]["batches"] == {"trim_padding": padding, "by_length": True}
    p = np.asarray(result.model(data.x_test, training=False)).reshape(-1).astype("float64")
    y = data.y_test.astype("float64")
    loss = -np.mean(y * np.log(np.clip(p, 1e-7, 1 - 1e-7)) + (1 - y) * np.log(np.clip(1 - p, 1e-7, 1 - 1e-7)))
    assert m["test"]["loss"] == pytest.approx(loss, abs=1e-5)
