"""The memory estimate: its exact parts against Keras, and the whole against measured peak RSS (slow tier)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gru_lab.config import config_from_raw
from gru_lab.data import spec_for
from gru_lab.models.memory import BYTES, OPTIMIZER_SLOTS, estimate, human_bytes
from gru_lab.models.plan import count_params
from gru_lab.training.memory import ESTIMATE_FACTOR
from tests.conftest import ROOT, tiny_config


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZER_SLOTS))
def test_weights_and_optimizer_slots_are_what_keras_allocates(optimizer):
    import keras

    from gru_lab.models.build import build_model
    from gru_lab.training.fit import make_optimizer

    cfg = config_from_raw({**tiny_config(units=[6, 3], bidirectional=True),
                           "train": {"optimizer": optimizer, "early_stopping": {"restore_best_weights": True}}}, "t")
    spec = spec_for(cfg.data)
    parts = estimate(cfg, spec).parts
    model = build_model(cfg.model, spec)
    opt = make_optimizer(cfg)
    opt.build(model.trainable_variables)
    params = count_params(cfg.model, spec)["total"]
    assert parts["weights"] == parts["gradients"] == BYTES * params == BYTES * model.count_params()
    # the optimizer's own variables beyond its slots are a few scalars (iterations, learning rate)
    slot_values = sum(int(keras.ops.size(v)) for v in opt.variables if len(v.shape) > 0)
    assert parts["optimizer slots"] == BYTES * slot_values
    # best weights (restore_best_weights) + the resume state's copy of the weights and the slots
    assert parts["weight copies"] == BYTES * (1 + 1 + OPTIMIZER_SLOTS[optimizer]) * params


def test_the_issue_s_huge_model_needs_terabytes():
    cfg = config_from_raw({**tiny_config(), "model": {"units": 200_000}}, "t")
    memory = estimate(cfg, spec_for(cfg.data))
    assert memory.parts["weights"] == BYTES * 3 * 200_000 * (1 + 200_000 + 2) + BYTES * (200_000 + 1)
    assert memory.total > 1e12 and human_bytes(memory.total).endswith("TB")


def test_human_bytes():
    assert [human_bytes(n) for n in (512, 23.4e9, 1.4e12, 150e6)] == ["512 B", "23 GB", "1.4 TB", "150 MB"]


# ----------------------------------------------------------------------------- against measured peak RSS (slow)
# Each config trains once in its own `gru-lab train` process, whose metrics.json records its peak RSS. They span
# where the memory goes: the runtime alone, wide weights, long sequences' activations, Keras's own loop, a big
# evaluation batch, a stacked bidirectional model. Measured 2026-11-29: docs/memory-estimate-2026-11-29.md.

MEASURED = {
    "tiny": {"data": {"name": "sine", "window": 8, "n_train": 64, "n_val": 16, "n_test": 16},
             "model": {"units": 4}, "train": {"epochs": 1, "batch_size": 16}},
    "gru_wide_weights": {"data": {"name": "sine", "window": 10, "n_train": 64, "n_val": 0, "n_test": 32},
                         "model": {"units": 3072}, "train": {"epochs": 1, "batch_size": 32}},
    "gru_long_activations": {"data": {"name": "sine", "window": 200, "n_train": 512, "n_val": 0, "n_test": 64},
                             "model": {"units": 256}, "train": {"epochs": 1, "batch_size": 512, "eval_batch_size": 64}},
    "lstm_keras_loop": {"data": {"name": "adding", "length": 200, "n_train": 256, "n_val": 0, "n_test": 64},
                        "model": {"cell": "lstm", "units": 256, "loops": "keras"},
                        "train": {"epochs": 1, "batch_size": 256, "eval_batch_size": 64}},
    "gru_eval_batch": {"data": {"name": "sine", "window": 200, "n_train": 64, "n_val": 0, "n_test": 2048},
                       "model": {"units": 256}, "train": {"epochs": 1, "batch_size": 64, "eval_batch_size": 2048}},
    "rnn_stacked_bi": {"data": {"name": "adding", "length": 100, "n_train": 512, "n_val": 128, "n_test": 128},
                       "model": {"cell": "rnn", "units": [256, 256], "bidirectional": True},
                       "train": {"epochs": 1, "batch_size": 256}},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MEASURED))
def test_the_estimate_is_within_its_stated_factor_of_measured_peak_rss(name, write_config, tmp_path):
    raw = {"name": name, "seed": 0, **MEASURED[name], "output": {"dir": str(tmp_path / "results"),
                                                                 "save_model": False}}
    path = write_config(raw)
    cfg = config_from_raw(raw, name)
    needed = estimate(cfg, spec_for(cfg.data)).total
    proc = subprocess.run([sys.executable, "-c", "from gru_lab.cli import run; run()", "train", str(path), "-q"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (metrics,) = (tmp_path / "results" / name).glob("*/metrics.json")
    measured = json.loads(metrics.read_text())["peak_memory"]["rss_mib"] * 2**20
    assert 1 / ESTIMATE_FACTOR <= measured / needed <= ESTIMATE_FACTOR, (measured / 2**20, needed / 2**20)
