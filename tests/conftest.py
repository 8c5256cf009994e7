"""Shared fixtures: a CLI runner, config writers and a results folder per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
# The real data, where this checkout sits beside shared/ (as in CI); GRU_LAB_IMDB points elsewhere.
REAL_IMDB = Path(os.environ.get("GRU_LAB_IMDB") or ROOT.parent / "shared/data/aclImdb_v1_labeled.tar.gz")
needs_real_imdb = pytest.mark.skipif(
    not REAL_IMDB.exists(), reason=f"real IMDB archive not found at {REAL_IMDB}; set GRU_LAB_IMDB to run these")


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory) -> Path:
    """One encoded-IMDB cache for the whole session: the real archive is tokenized once (~12 s)."""
    return tmp_path_factory.mktemp("imdb-cache")


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture
def write_config(tmp_path):
    """write_config(dict_or_text, name='exp.yaml') -> path of a config whose output.dir is tmp_path/results."""

    def write(content, name: str = "exp.yaml", results: bool = True) -> Path:
        path = tmp_path / name
        if isinstance(content, dict):
            content = dict(content)
            if results:
                content.setdefault("output", {}).setdefault("dir", str(tmp_path / "results"))
            content = yaml.safe_dump(content, sort_keys=False)
        path.write_text(content)
        return path

    return write


def assert_user_error(result, results_dir: Path) -> str:
    """The CLI's answer to a user mistake: exit code 2, one line on stderr, no traceback, nothing written
    under results_dir. Returns that line for the caller's own checks."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    assert not results_dir.exists(), "a user mistake must write nothing"
    return lines[0]


def tiny_config(**model) -> dict:
    """A config that trains in about a second: 64 short sine windows, 2 epochs."""
    return {
        "name": "tiny",
        "seed": 3,
        "data": {"name": "sine", "window": 8, "n_train": 64, "n_val": 16, "n_test": 16},
        "model": {"cell": "gru", "units": 4, **model},
        "train": {"epochs": 2, "batch_size": 16},
    }
