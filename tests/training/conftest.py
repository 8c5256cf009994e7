"""A tiny run trained once for the training tests that only read one."""

from __future__ import annotations

import pytest

from tests.conftest import tiny_config


@pytest.fixture(scope="session")
def tiny_trained():
    """tiny_config() trained once in this process (a library call, no run folder): its TrainResult, model
    included. Tests read it and never change it; one that needs a fresh run trains its own."""
    from gru_lab.config import config_from_raw
    from gru_lab.data import load_dataset
    from gru_lab.training.fit import train

    cfg = config_from_raw(tiny_config(), "test")
    return train(cfg, load_dataset(cfg.data, cfg.seed))
