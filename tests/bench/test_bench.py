"""gru-lab bench end to end on a tiny synthetic workload: structure of the files, ratios from the rows.

Never asserts on speed: the bench measures it, the tests only check that it measures and reports."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from gru_lab.bench import torch_peer
from gru_lab.bench.bench import BASELINE, GRU_LAB, bench_data, ratios_frame, recipe_variant, synthetic_tokens
from gru_lab.cli import app
from gru_lab.config import config_from_raw
from gru_lab.rnn import compiled


def tiny_bench_config(tmp_path, **data) -> dict:
    return {
        "name": "tiny_bench", "seed": 1,
        "data": {"name": "imdb", "path": str(tmp_path / "no-such-archive.tar.gz"), "num_words": 50, "maxlen": 12,
                 "n_train": 96, "n_test": 40, **data},
        "model": {"cell": "gru", "units": 4, "embedding_dim": 4},
        "train": {"epochs": 2, "batch_size": 32, "validation_split": 0.25},
        "output": {"dir": str(tmp_path / "results")},
    }


def test_without_the_archive_the_bench_uses_imdb_shaped_synthetic_tokens(tmp_path):
    cfg = config_from_raw(tiny_bench_config(tmp_path, maxlen=300), "test")
    data = bench_data(cfg)
    assert data.extra["source"].startswith("synthetic")
    assert data.x_train.shape == (96, 300) and data.x_test.shape == (40, 300) and data.x_train.dtype == np.int32
    assert 0 <= data.x_train.min() and data.x_train.max() < 50
    assert set(np.unique(data.y_train)) <= {0.0, 1.0}
    assert (data.x_train[:, 0] == 0).any() and (data.x_train[:, -1] != 0).all()  # pre-padded, as IMDB's seed
    again = synthetic_tokens(cfg, cfg.seed)
    np.testing.assert_array_equal(again.x_train, data.x_train)  # same seed, same tokens


@pytest.mark.parametrize("num_words", [4, 9, 30])
def test_synthetic_tokens_stay_inside_a_small_vocabulary(tmp_path, num_words):
    """Sentiment words once reached id 43 whatever the vocabulary: an Embedding outside XLA rejects that."""
    data = synthetic_tokens(config_from_raw(tiny_bench_config(tmp_path, num_words=num_words), "test"), 0)
    assert data.x_train.max() < num_words and data.x_test.max() < num_words


@pytest.mark.slow  # a fresh process or a real-data export: the slow tier keeps make test within 3 minutes
def test_bench_cli_writes_measured_rows_and_ratios_computed_from_them(tmp_path, runner, write_config, monkeypatch):
    path = write_config(tiny_bench_config(tmp_path))
    masked = {**tiny_bench_config(tmp_path, padding="post"), "name": "tiny_masked"}
    masked["model"] = {**masked["model"], "mask_zero": True}
    recipe = write_config(masked, name="masked.yaml")  # the masked recipe beside the literal one, as `make bench`
    monkeypatch.setattr(torch_peer, "torch_installed", lambda: False)  # as where the peers extra is not installed
    # XLA off only to keep the test short (XLA compiles each step function once per batch shape).
    result = runner.invoke(app, ["bench", str(path), "--cells", "rnn,gru", "--set", "train.xla=off", "--peers", "torch",
                                 "--recipe", str(recipe)])
    assert result.exit_code == 0, result.output
    # without PyTorch: one line that says how to get it, and the bench goes on without its rows
    assert [line for line in result.stderr.splitlines() if "PyTorch" in line] == [f"note: {torch_peer.INSTALL}"]
    assert "make install-peers" in torch_peer.INSTALL
    (folder,) = (tmp_path / "results" / "bench").iterdir()
    assert {p.name for p in folder.iterdir()} == {"bench.csv", "ratios.csv", "bench.md", "bench.json"}

    rows = pd.read_csv(folder / "bench.csv")
    masked_variant = recipe_variant("tiny_masked")
    assert list(zip(rows["cell"], rows["variant"])) == [
        (cell, variant) for cell in ("simple_rnn", "gru") for variant in (BASELINE, GRU_LAB, masked_variant)]
    assert (rows["epochs"] == 2).all()
    for column in ("s_per_epoch", "train_samples_per_s", "infer_samples_per_s", "epoch_1_s", "epoch_2_s",
                   "epoch_1_train_s", "test_accuracy", "peak_rss_mib"):
        assert rows[column].notna().all(), column
    # s/epoch is the median of the epochs' seconds, and each accuracy a count of the 40 test reviews
    np.testing.assert_allclose(rows["s_per_epoch"], rows[["epoch_1_s", "epoch_2_s"]].median(axis=1), rtol=1e-9)
    np.testing.assert_allclose(rows["test_accuracy"] * 40, np.round(rows["test_accuracy"] * 40), atol=1e-4)
    # train samples/s is the fitted samples (72 of 96 after the 25% validation split) over the median train time
    median_train = rows[["epoch_1_train_s", "epoch_2_train_s"]].median(axis=1)
    np.testing.assert_allclose(rows["train_samples_per_s"], 72 / median_train, rtol=1e-9)
    assert rows["kernel"].tolist()[::3] == ["keras-loop", "keras-loop"]
    # the token table at evaluate/predict (xla off here), and in training on the compiled loops where they
    # built; the masked recipe's data is its own (post-padded) and its layers run the same kernels
    kind = "compiled" if compiled.load() is not None else "fused"
    expected = [f"{'compiled-table' if kind == 'compiled' else kind}, inference {kind}-table"] * 2
    assert rows["kernel"].tolist()[1::3] == rows["kernel"].tolist()[2::3] == expected

    ratios = pd.read_csv(folder / "ratios.csv")
    # no pytorch rows to compare with; the other recipe against the baseline and against gru-lab's run
    assert list(zip(ratios["variant"], ratios["reference"])) == 2 * [
        (GRU_LAB, BASELINE), (masked_variant, BASELINE), (masked_variant, GRU_LAB)]
    np.testing.assert_allclose(ratios.to_numpy()[:, 3:].astype(float),
                               ratios_frame(rows).to_numpy()[:, 3:].astype(float), rtol=1e-9)
    gru = rows[rows["cell"] == "gru"].set_index("variant")
    (gru_ratio,) = ratios[(ratios["cell"] == "gru") & (ratios["variant"] == GRU_LAB)].to_dict(orient="records")
    assert gru_ratio["train_speedup"] == pytest.approx(
        gru.loc[GRU_LAB, "train_samples_per_s"] / gru.loc[BASELINE, "train_samples_per_s"])
    assert gru_ratio["infer_speedup"] == pytest.approx(
        gru.loc[GRU_LAB, "infer_samples_per_s"] / gru.loc[BASELINE, "infer_samples_per_s"])
    assert gru_ratio["accuracy_diff_points"] == pytest.approx(
        100 * (gru.loc[GRU_LAB, "test_accuracy"] - gru.loc[BASELINE, "test_accuracy"]))
    (masked_ratio,) = ratios[(ratios["cell"] == "gru") & (ratios["reference"] == GRU_LAB)].to_dict(orient="records")
    assert masked_ratio["epoch_speedup"] == pytest.approx(
        gru.loc[GRU_LAB, "s_per_epoch"] / gru.loc[masked_variant, "s_per_epoch"])

    md = (folder / "bench.md").read_text()
    assert "## Measured" in md and "## Ratios to the keras baseline" in md and "synthetic" in md
    assert "; ISA " in md  # the instruction set the bench ran on (GRU_LAB_ISA's cap where set)
    assert f"- pytorch: {torch_peer.INSTALL}" in md and "## Ratios to pytorch" not in md
    assert "## Other recipes against gru-lab's run" in md and "- gru-lab (tiny_masked): " in md
    record = json.loads((folder / "bench.json").read_text())
    assert record["meta"]["n_train_fit"] == 72 and record["meta"]["cells"] == ["simple_rnn", "gru"]
    assert record["meta"]["peers"] == {"torch": torch_peer.INSTALL}
    assert "bench: ratios to the keras baseline" in result.output


@pytest.mark.parametrize("args, message", [
    (["--cells", "gru,transformer"], "cells must be among"),
    (["--set", "train.xla=maybe"], "'train.xla' must be one of"),
    (["--peers", "torch,jax"], "--peers must be among ['torch']. Got ['jax']."),
    (["--recipe", "{tmp}/no-such.yaml"], "does not exist"),
    (["--recipe", "{tmp}/exp.yaml", "--recipe", "{tmp}/exp.yaml"], "each --recipe config needs a name of its own"),
    (["--recipe", "{tmp}/bad.yaml"], "unknown key 'model.unitz'"),
], ids=["unknown-cell", "bad-override", "unknown-peer", "missing-recipe", "recipe-twice", "bad-recipe"])
def test_bench_mistakes_are_one_line_and_exit_2(tmp_path, runner, write_config, args, message):
    path = write_config(tiny_bench_config(tmp_path))
    write_config({**tiny_bench_config(tmp_path), "model": {"unitz": 3}}, name="bad.yaml")
    result = runner.invoke(app, ["bench", str(path), *(a.format(tmp=tmp_path) for a in args)])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "results" / "bench").exists()


def test_keras_repeats_its_batch_order_under_a_global_seed_and_the_baseline_releases_it():
    """Why run_baseline calls release_shuffle_seed: under keras.utils.set_random_seed, fit on NumPy arrays
    serves the same batches every epoch; unseeded (the IMDB GRU tutorial's script) it reshuffles every epoch."""
    from gru_lab.bench.bench import release_shuffle_seed

    def batch_orders(release: bool):
        seen = []

        class Recorder(keras.Model):
            def train_step(self, data):
                seen.append(tuple(np.asarray(data[0]).ravel().astype(int)))
                return super().train_step(data)

        keras.utils.set_random_seed(0)
        tf.config.experimental.enable_op_determinism()  # as an earlier gru-lab run in this process may leave it
        inputs = keras.Input((1,))
        model = Recorder(inputs, keras.layers.Dense(1)(inputs))
        model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
        if release:
            release_shuffle_seed()
        x = np.arange(12, dtype="float32").reshape(-1, 1)
        model.fit(x, np.zeros_like(x), batch_size=4, epochs=3, verbose=0)
        return [tuple(seen[e * 3:(e + 1) * 3]) for e in range(3)]

    seeded = batch_orders(release=False)
    assert seeded[0] == seeded[1] == seeded[2]
    released = batch_orders(release=True)
    assert len(set(released)) > 1  # 3 epochs of 12 samples: equal orders by chance about 1 in 10^8
