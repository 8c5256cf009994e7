"""The PyTorch peer of `gru-lab bench --peers torch`: the same model, the same initial weights, its rows and ratios.

Tests that run PyTorch skip with a reason where the peers extra is not installed (`make install-peers`)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from gru_lab.bench import bench, torch_peer
from gru_lab.bench.bench import BASELINE, GRU_LAB, TORCH, bench_data, ratios_frame, recipe_variant
from gru_lab.cli import app
from gru_lab.config import config_from_raw
from tests.bench.test_bench import tiny_bench_config

needs_torch = pytest.mark.skipif(not torch_peer.torch_installed(),
                                 reason="PyTorch is not installed (the peers extra: make install-peers)")


@needs_torch
@pytest.mark.parametrize("cell, units", [("gru", 6), ("lstm", [6, 3]), ("simple_rnn", 5)])
def test_the_peer_computes_what_the_keras_model_computes_from_the_same_initial_weights(tmp_path, cell, units):
    """Gate orders and biases converted right: before any training the two models give the same predictions."""
    import keras
    import torch

    from gru_lab.models.build import build_model

    raw = tiny_bench_config(tmp_path)
    cfg = config_from_raw({**raw, "model": {"cell": cell, "units": units, "embedding_dim": 4}}, "test")
    data = bench_data(cfg)
    keras.utils.set_random_seed(cfg.train_seed)  # as the baseline and gru-lab seed their models
    keras_model = build_model(cfg.model, data.spec)
    expected = keras_model.predict(data.x_test, verbose=0)
    model = torch_peer.torch_model(cfg, data.vocab_size, 1, 1)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in torch_peer.initial_weights(cfg, data).items()})
    with torch.inference_mode():
        got = torch.sigmoid(model(torch.from_numpy(data.x_test.astype(np.int64)))).numpy()
    assert got.shape == expected.shape == (40, 1)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.ptp(expected) > 1e-4  # the predictions differ between reviews: the comparison says something


def test_the_peer_process_imports_no_tensorflow():
    """Its peak RSS is reported as PyTorch's own: TensorFlow's runtime must not be in that process."""
    code = ("import sys, gru_lab.bench.torch_peer, gru_lab.bench.bench, gru_lab.training.fit, "
            "gru_lab.training.pipeline; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("changes, reason", [
    ({"model": {"bidirectional": True}}, "model.bidirectional"),
    ({"model": {"mask_zero": True}}, "model.mask_zero"),
    ({"model": {"dropout": 0.2}}, "model.dropout"),
    ({"model": {"activation": "relu"}}, "model.activation 'relu'"),
    ({"train": {"early_stopping": {"patience": 1}}}, "train.early_stopping"),
], ids=["bidirectional", "mask", "dropout", "relu", "early-stopping"])
def test_the_peer_names_what_it_cannot_build(tmp_path, changes, reason):
    raw = tiny_bench_config(tmp_path)
    assert torch_peer.unsupported(config_from_raw(raw, "test"), "binary") == []
    for section, values in changes.items():
        raw = {**raw, section: {**raw[section], **values}}
    (said,) = torch_peer.unsupported(config_from_raw(raw, "test"), "binary")
    assert said.startswith(reason)


def test_a_failed_peer_is_a_note_and_the_bench_goes_on(tmp_path, monkeypatch):
    def fail(cfg, data):
        raise RuntimeError("PyTorch peer failed (exit 1):\nImportError: libtorch_cpu.so: cannot open shared object")

    monkeypatch.setattr(torch_peer, "run_in_process", fail)
    notes: list[str] = []
    cfg = config_from_raw(tiny_bench_config(tmp_path), "test")
    assert bench._torch_row(cfg, None, "gru", {"torch": "ran"}, notes) is None
    assert notes == ["the PyTorch peer failed for gru (PyTorch peer failed (exit 1): ImportError: libtorch_cpu.so: "
                     "cannot open shared object): no pytorch row for it."]


@needs_torch
@pytest.mark.slow
def test_bench_with_the_torch_peer_and_a_masked_recipe(tmp_path, runner, write_config, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two threads' barriers crawl on a busy 2-core machine
    path = write_config(tiny_bench_config(tmp_path))
    masked = tiny_bench_config(tmp_path, padding="post")
    masked.update(name="tiny_masked", model={**masked["model"], "mask_zero": True})
    recipe = write_config(masked, name="masked.yaml")
    result = runner.invoke(app, ["bench", str(path), "--cells", "gru", "--set", "train.xla=off", "--peers", "torch",
                                 "--recipe", str(recipe)])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "results" / "bench").iterdir()
    rows = pd.read_csv(folder / "bench.csv")
    masked_variant = recipe_variant("tiny_masked")
    assert rows["variant"].tolist() == [BASELINE, GRU_LAB, masked_variant, TORCH]
    record = json.loads((folder / "bench.json").read_text())
    torch_row = next(r for r in record["rows"] if r["variant"] == TORCH)
    epochs = [torch_row["epoch_1_s"], torch_row["epoch_2_s"]]
    assert torch_row["epochs"] == 2 and torch_row["s_per_epoch"] == pytest.approx(statistics.median(epochs))
    assert all(e >= t for e, t in zip(epochs, [torch_row["epoch_1_train_s"], torch_row["epoch_2_train_s"]]))
    assert torch_row["train_samples_per_s"] == pytest.approx(
        72 / statistics.median([torch_row["epoch_1_train_s"], torch_row["epoch_2_train_s"]]))
    assert torch_row["test_accuracy"] * 40 == pytest.approx(round(torch_row["test_accuracy"] * 40), abs=1e-6)
    assert torch_row["kernel"] == "torch.nn.GRU" and torch_row["peak_rss_mib"] > 0
    assert torch_row["eval_batch"] == 1024
    assert record["meta"]["peers"]["torch"] == "ran" and record["meta"]["peers"]["torch_threads"] == 1

    ratios = pd.read_csv(folder / "ratios.csv")
    assert list(zip(ratios["variant"], ratios["reference"])) == [
        (GRU_LAB, BASELINE), (GRU_LAB, TORCH), (masked_variant, BASELINE), (masked_variant, TORCH),
        (masked_variant, GRU_LAB), (TORCH, BASELINE)]
    np.testing.assert_allclose(ratios.to_numpy()[:, 3:].astype(float),
                               ratios_frame(rows).to_numpy()[:, 3:].astype(float), rtol=1e-9)
    by = rows.set_index("variant")
    vs_torch = ratios[(ratios["variant"] == GRU_LAB) & (ratios["reference"] == TORCH)].iloc[0]
    assert vs_torch["epoch_speedup"] == pytest.approx(by.loc[TORCH, "s_per_epoch"] / by.loc[GRU_LAB, "s_per_epoch"])
    vs_literal = ratios[ratios["reference"] == GRU_LAB].iloc[0]
    assert vs_literal["epoch_speedup"] == pytest.approx(
        by.loc[GRU_LAB, "s_per_epoch"] / by.loc[masked_variant, "s_per_epoch"])

    md = (folder / "bench.md").read_text()
    assert "## Ratios to pytorch" in md and "## Other recipes against gru-lab's run" in md
    policy = os.environ.get("OMP_WAIT_POLICY") or "default"  # the peer keeps OpenMP's own, as a torch script does
    assert f"torch {record['meta']['peers']['torch_version']}, intra-op threads 1, OMP_WAIT_POLICY {policy}" in md
    assert "bench: ratios to pytorch" in result.output
