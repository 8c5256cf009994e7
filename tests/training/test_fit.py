"""Training: reproducible, faithful to a plain Keras script, honest about interruptions."""

from __future__ import annotations

import numpy as np
import pytest

from gru_lab.bench.bench import synthetic_tokens
from gru_lab.config import config_from_raw, load_config
from gru_lab.data import load_dataset
from gru_lab.data.base import Dataset
from gru_lab.training.fit import train
from tests.conftest import CONFIGS, tiny_config


def run(raw: dict, **hooks):
    cfg = config_from_raw(raw, "test")
    return train(cfg, load_dataset(cfg.data, cfg.seed), **hooks)


def test_same_config_and_seed_give_the_same_numbers(tiny_trained):
    a, b = tiny_trained, run(tiny_config())  # a: the session's run of the same config
    assert a.metrics["test"] == b.metrics["test"]
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    c = run({**tiny_config(), "seed": 4})
    assert c.metrics["test"] != a.metrics["test"]


def test_record_has_timing_params_and_environment(tiny_trained):
    r = tiny_trained
    m = r.metrics
    assert m["status"] == "finished" and m["epochs_run"] == 2 and len(m["epoch_seconds"]) == 2
    assert all(s > 0 for s in m["epoch_seconds"]) and m["train_samples_per_second"] > 0
    assert m["inference_samples_per_second"] > 0 and m["eval_seconds"] > 0
    # GRU(4) on 1 feature: 3*4*(1+4+2) = 84; Dense(4->1): 5.
    assert m["params"]["total"] == 89 and m["params"]["recurrent"] == 84
    assert {"mse", "mae", "loss"} <= set(m["test"])
    assert m["environment"]["device"] in ("cpu", "gpu") and m["environment"]["tensorflow"]
    assert [row["epoch"] for row in r.history] == [1, 2] and "val_loss" in r.history[0]


@pytest.mark.slow
def test_the_time_series_tutorial_config_matches_its_plain_keras_script():
    """configs/timeseries_gru.yaml must do what the time-series GRU tutorial's script does: same seed, same
    predictions."""
    import keras

    cfg = load_config(CONFIGS / "timeseries_gru.yaml")
    result = train(cfg, load_dataset(cfg.data, cfg.seed))
    ours = [p["prediction"] for p in result.metrics["predictions"]]
    assert [p["input"] for p in result.metrics["predictions"]] == [[1, 2, 3], [2, 3, 4], [3, 4, 5]]

    # The tutorial's script, line for line (plus the random seed, which it leaves unset).
    keras.utils.set_random_seed(cfg.seed)
    X = np.array([[1, 2, 3], [2, 3, 4], [3, 4, 5]], dtype="float32").reshape(3, 3, 1)
    y = np.array([4, 5, 6], dtype="float32")
    model = keras.Sequential([keras.Input((3, 1)), keras.layers.GRU(50, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, y, epochs=200, verbose=0)
    theirs = model.predict(X, verbose=0).ravel().tolist()

    assert ours == pytest.approx(theirs, abs=1e-4)
    # And the fit is real: each prediction within 1 of its target and in the right order.
    assert ours == sorted(ours)
    assert all(abs(p - t) < 1.0 for p, t in zip(ours, [4, 5, 6]))
    assert result.metrics["test"]["mse"] < result.metrics["data"]["baseline_mse"]


def test_interrupt_keeps_finished_epochs():
    def stop_after_first(epoch, logs, seconds):
        if epoch == 1:
            raise KeyboardInterrupt

    r = run({**tiny_config(), "train": {"epochs": 5, "batch_size": 16}}, epoch_hook=stop_after_first)
    assert r.status == "interrupted" and r.metrics["status"] == "interrupted"
    assert len(r.history) == 1 and "test" not in r.metrics


def test_early_stopping_stops():
    raw = tiny_config()
    raw["train"] = {"epochs": 50, "batch_size": 16,
                    "early_stopping": {"patience": 1, "monitor": "val_loss", "min_delta": 1000.0}}
    # No epoch can beat the first by 1000, so patience 1 ends training after epoch 2.
    r = run(raw)
    assert r.metrics["epochs_run"] == 2


def test_multiclass_head_and_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5, 2)).astype("float32")
    y = (x[:, :, 0].sum(axis=1) > 0).astype("int32") + (x[:, :, 1].sum(axis=1) > 0).astype("int32")
    data = Dataset("toy", "multiclass", "real", x[:40], y[:40], x[40:], y[40:], num_classes=3)
    cfg = config_from_raw({**tiny_config(), "data": {"name": "sine", "n_val": 0}}, "test")
    r = train(cfg, data)
    assert r.model.output_shape == (None, 3)
    assert 0.0 <= r.metrics["test"]["accuracy"] <= 1.0


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
@pytest.mark.parametrize("cell", ["gru", "simple_rnn", "lstm"])
def test_xla_auto_on_cpu_compiles_what_measured_faster(cell):
    """train.xla auto on a CPU: every cell runs gru-lab's compiled loops (when they built) and so no XLA at all;
    otherwise evaluate/predict are always XLA-compiled, and the train step too, except for LSTM (measured
    slower under XLA). The switch after an un-compiled fit must give the same test numbers."""
    from gru_lab.rnn import compiled
    from gru_lab.rnn.support import COMPILED_CELLS
    from gru_lab.training.device import prepare

    native_on = cell in COMPILED_CELLS and compiled.load() is not None
    xla_train, xla_inference = (cell != "lstm") and not native_on, not native_on
    raw = {"name": "tokens", "seed": 2,
           "data": {"name": "imdb", "path": "/no/such/archive.tar.gz", "num_words": 30, "maxlen": 10, "n_train": 64,
                    "n_test": 48},
           "model": {"cell": cell, "units": 4, "embedding_dim": 4, "mask_zero": True},
           "train": {"epochs": 1, "batch_size": 16, "validation_split": 0.25}}
    cfg = config_from_raw(raw, "test")
    plan = prepare(cfg, synthetic_tokens(cfg, cfg.seed).spec).plan
    if plan.device != "cpu":
        pytest.skip("a GPU is visible: XLA auto is off there")
    assert (plan.xla, plan.xla_inference, plan.compiled) == (xla_train, xla_inference, native_on)
    assert any("LSTM trains without XLA" in n for n in plan.notes) is (cell == "lstm" and not native_on)

    data = synthetic_tokens(cfg, cfg.seed)
    result = train(cfg, data)
    m = result.metrics
    assert (m["execution"]["xla"], m["execution"]["xla_inference"]) == (xla_train, xla_inference)
    assert m["execution"]["compiled_loops"] is native_on
    # masked tokens: batches grouped by length and trimmed wherever XLA does not compile the train step
    assert m["execution"]["batches"] == {"trim_padding": None if xla_train else data.spec.padding,
                                         "by_length": not xla_train}
    assert bool(result.model.jit_compile) is xla_inference
    kind = "compiled" if native_on else "fused"
    # the compiled loops train from the batch's token table too; the fused loops read one at inference only
    assert {k["kernel"] for k in m["execution"]["kernels"]} == {"compiled-table" if native_on else "fused"}
    assert {k["inference"] for k in m["execution"]["kernels"]} == {kind + "-table"}
    # the test numbers are the model's: recompute the loss and accuracy from Keras's uncompiled forward pass
    p = np.asarray(result.model(data.x_test, training=False)).reshape(-1).astype("float64")
    y = data.y_test.astype("float64")
    eps = 1e-7
    loss = -np.mean(y * np.log(np.clip(p, eps, 1 - eps)) + (1 - y) * np.log(np.clip(1 - p, eps, 1 - eps)))
    assert m["test"]["loss"] == pytest.approx(loss, abs=1e-4)
    assert m["test"]["accuracy"] == pytest.approx(np.mean((p > 0.5) == (y > 0.5)), abs=1e-6)
    for name in ("xla", "xla_inference"):
        raw_off = {**raw, "train": {**raw["train"], "xla": "off"}}
        off = prepare(config_from_raw(raw_off, "test"), data.spec).plan
        assert getattr(off, name) is False


# ----------------------------------------------------------------------------- divergence, failure, best epoch


def test_a_nan_or_inf_loss_stops_the_run_at_once_as_diverged():
    """The issue's case: sine_gru with sgd at learning rate 10 used to train all its epochs with loss=nan and
    report itself finished. Now the run stops in the batch where the loss stops being finite."""
    cfg = load_config(CONFIGS / "sine_gru.yaml", ["train.learning_rate=10", "train.optimizer=sgd"])
    batches: list[tuple[int, int]] = []
    epochs: list[int] = []
    r = train(cfg, load_dataset(cfg.data, cfg.seed), epoch_hook=lambda e, *_: epochs.append(e),
              batch_hook=lambda b, _n: batches.append(b))
    assert r.status == r.metrics["status"] == "diverged"
    where = r.metrics["diverged"]
    assert where["quantity"] == "loss" and where["value"] in ("nan", "inf", "-inf")
    # it stopped in the batch it names: no later batch ran, and no epoch after the one it names finished
    assert where["epoch"] == len(epochs) + 1 == len(r.history) + 1
    assert batches[-1] == where["batch"] < cfg.train.epochs * 16
    assert "test" not in r.metrics and r.model is None  # no test of broken weights, no model to keep
    assert all(np.isfinite(row["loss"]) for row in r.history)


def test_running_out_of_memory_ends_the_run_as_failed_with_its_reason(monkeypatch):
    import keras
    import tensorflow as tf

    def oom(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[200000,600000]")

    monkeypatch.setattr(keras.Model, "fit", oom)
    r = run(tiny_config())
    assert r.status == r.metrics["status"] == "failed" and r.model is None
    assert r.metrics["error"].startswith("out of memory: TensorFlow could not allocate (OOM when allocating")

    monkeypatch.setattr(keras.Model, "fit", lambda *_, **__: (_ for _ in ()).throw(ValueError("a bug")))
    with pytest.raises(ValueError, match="a bug"):  # anything else stays a traceback
        run(tiny_config())


def test_best_epoch_follows_the_monitor_min_delta_and_the_restored_weights():
    """Early stopping (patience 2, min_delta 0.005) stops after epoch 7 and restores epoch 5's weights, although
    epoch 7's val_loss is the lowest (it beat epoch 5 by less than min_delta). The record says 5, and its test
    numbers are exactly a 5-epoch run's."""
    raw = tiny_config()
    raw["train"] = {"epochs": 12, "batch_size": 16, "learning_rate": 0.03,
                    "early_stopping": {"patience": 2, "min_delta": 0.005, "restore_best_weights": True}}
    r = run(raw)
    losses = [row["val_loss"] for row in r.history]
    lowest = 1 + losses.index(min(losses))
    best = r.metrics["best_epoch"]
    assert best != lowest and losses[lowest - 1] > losses[best - 1] - 0.005  # min_delta decided it
    assert r.metrics["evaluated_epoch"] == best and r.metrics["epochs_run"] == best + 2
    assert r.metrics["best_epoch_rule"] == {"monitor": "val_loss", "mode": "min", "min_delta": 0.005}
    # the record's validation numbers are the tested epoch's, not the last or the lowest
    assert r.metrics["val"] == {k.removeprefix("val_"): v for k, v in r.history[best - 1].items()
                                if k.startswith("val_")} and r.metrics["val"]["loss"] == losses[best - 1]
    short = run({**raw, "train": {"epochs": best, "batch_size": 16, "learning_rate": 0.03}})
    assert r.metrics["test"] == pytest.approx(short.metrics["test"], abs=1e-6)

    kept = run({**raw, "train": {**raw["train"], "early_stopping": {**raw["train"]["early_stopping"],
                                                                   "restore_best_weights": False}}})
    assert kept.metrics["best_epoch"] == best and kept.metrics["evaluated_epoch"] == kept.metrics["epochs_run"]
    assert kept.metrics["val"]["loss"] == kept.history[-1]["val_loss"]


@pytest.mark.parametrize("monitor,values", [
    ("val_loss", [0.5, 0.49, 0.485, 0.47, 0.471, 0.46]),
    ("val_accuracy", [0.5, 0.6, 0.605, 0.62, 0.7, 0.699]),
    ("loss", [1.0, 1.2, 0.9, 0.9, 0.95, 0.8]),
], ids=["loss-down", "accuracy-up", "plateaus"])
@pytest.mark.parametrize("min_delta", [0.0, 0.01])
def test_best_epoch_is_the_one_kerass_early_stopping_picks(monitor, values, min_delta):
    """The pure rule (used without early stopping) against Keras's own EarlyStopping fed the same logs."""
    import keras

    from gru_lab.names import monitor_mode
    from gru_lab.training.fit import best_epoch

    es = keras.callbacks.EarlyStopping(monitor=monitor, min_delta=min_delta, patience=100, mode=monitor_mode(monitor))
    es.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    es.on_train_begin()
    for epoch, value in enumerate(values):
        es.on_epoch_end(epoch, {monitor: value})
    history = [{"epoch": i + 1, monitor: v} for i, v in enumerate(values)]
    assert best_epoch(history, monitor, monitor_mode(monitor), min_delta) == es.best_epoch + 1


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
def test_svd_embedding_init_starts_from_the_fit_splits_word_vectors():
    """model.embedding_init: svd: the Embedding starts from svd_vectors of the reviews the model is fitted on
    (not the validation rows); model.embedding_trainable: false keeps it there through training. A random init
    does not start there, and a trainable embedding moves away."""
    from gru_lab.models.word_vectors import svd_vectors
    from gru_lab.training.pipeline import split_validation

    raw = {"name": "tokens", "seed": 2,
           "data": {"name": "imdb", "path": "/no/such/archive.tar.gz", "num_words": 40, "maxlen": 12, "n_train": 64,
                    "n_test": 16},
           "model": {"cell": "gru", "units": 4, "embedding_dim": 6, "mask_zero": True, "embedding_init": "svd",
                     "embedding_trainable": False},
           "train": {"epochs": 1, "batch_size": 16, "validation_split": 0.25, "learning_rate": 0.01}}
    cfg = config_from_raw(raw, "test")
    data = synthetic_tokens(cfg, cfg.seed)
    x_fit = split_validation(data.x_train, data.y_train, 0.25)[0]
    expected = svd_vectors(x_fit, 40, 6, seed=cfg.train_seed)
    result = train(cfg, data)
    np.testing.assert_array_equal(result.model.get_layer("embedding").get_weights()[0], expected)
    assert result.metrics["embedding_init_seconds"] >= 0
    for init, trainable in (("random", False), ("svd", True)):
        other = train(config_from_raw({**raw, "model": {**raw["model"], "embedding_init": init,
                                                        "embedding_trainable": trainable}}, "test"), data)
        weights = other.model.get_layer("embedding").get_weights()[0]
        assert not np.allclose(weights, expected, atol=1e-3), init
        assert ("embedding_init_seconds" in other.metrics) is (init == "svd")


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
def test_lr_decay_multiplies_the_learning_rate_after_every_epoch():
    """train.lr_decay: epoch e trains at learning_rate * lr_decay^(e-1); the losses differ from a constant rate."""
    import keras

    raw = {**tiny_config(), "train": {"epochs": 2, "batch_size": 16, "learning_rate": 0.01, "lr_decay": 0.5}}
    decayed, constant = run(raw), run({**raw, "train": {**raw["train"], "lr_decay": 1.0}})
    rate = float(keras.ops.convert_to_numpy(decayed.model.optimizer.learning_rate))
    assert rate == pytest.approx(0.01 * 0.5)
    assert float(keras.ops.convert_to_numpy(constant.model.optimizer.learning_rate)) == pytest.approx(0.01)
    assert decayed.history[0]["loss"] == constant.history[0]["loss"]  # the first epoch runs at the full rate
    assert decayed.history[1]["loss"] != constant.history[1]["loss"]
