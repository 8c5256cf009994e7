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
# Absolute: a test's config file lives in a temporary folder, and a config's relative data path is relative to it
# (make test sets GRU_LAB_IMDB relative to the checkout).
REAL_IMDB = Path(os.environ.get("GRU_LAB_IMDB") or ROOT.parent / "shared/data/aclImdb_v1_labeled.tar.gz").resolve()
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
        # evaluation/ costs 1-3 s a run (scikit-learn, four PNGs): tests/inference/test_evaluate.py checks it
        "output": {"evaluation": False},
    }


@pytest.fixture(scope="session")
def cli_tiny_run(tmp_path_factory) -> Path:
    """tiny_config() trained once through `gru-lab train` (CliRunner, in this process): its finished run
    folder, for tests that only read one. Tests never change it."""
    from typer.testing import CliRunner

    from gru_lab.cli import app

    tmp = tmp_path_factory.mktemp("cli-tiny")
    raw = tiny_config()
    raw["output"] = {**raw["output"], "dir": str(tmp / "results")}
    path = tmp / "exp.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = CliRunner().invoke(app, ["train", str(path), "-q"])
    assert result.exit_code == 0, result.output
    (run,) = (tmp / "results" / "tiny").iterdir()
    return run


def short_texts(folder: Path, rows: int = 150, seed: int = 0) -> dict:
    """A config dict for a TSV of one-line texts of three classes (2-12 words) written into folder, read with
    maxlen 30 and masked padding: gru-lab's loops trim every batch to its longest text, always shorter than
    maxlen (issue 19: such texts crashed at evaluation). Trains in a few seconds."""
    import numpy as np

    rng = np.random.default_rng(seed)
    words = {"pos": "good great fine lovely".split(), "neg": "bad awful poor sad".split(),
             "neu": "table chair lamp door".split()}
    common = "the a it is was this very".split()
    lines = ["text\tlabel"]
    for _ in range(rows):
        label = str(rng.choice(list(words)))
        pool = words[label] + common
        lines.append(" ".join(str(rng.choice(pool)) for _ in range(rng.integers(2, 13))) + "\t" + label)
    (folder / "short.tsv").write_text("\n".join(lines) + "\n")
    return {"name": "short", "seed": 0,
            "data": {"name": "text", "path": str(folder / "short.tsv"), "maxlen": 30},
            "model": {"cell": "gru", "units": 8, "embedding_dim": 8, "mask_zero": True},
            "train": {"epochs": 2, "batch_size": 32}}


# A Python process that cannot import gru_lab: -I (no user site, no PYTHONPATH, no script folder), -S (site-packages'
# .pth files are not run, so gru-lab's editable-install hook never loads), only site-packages itself on sys.path, and
# a finder that refuses gru_lab. The script first proves `import gru_lab` fails, then runs the caller's code.
_NO_GRU_LAB = """
import sys
sys.path[:0] = {site!r}
class _Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "gru_lab":
            raise ImportError("gru_lab is refused in this process")
sys.meta_path.insert(0, _Refuse())
try:
    import gru_lab  # noqa
    sys.exit("gru_lab imported: the check would prove nothing")
except ImportError:
    pass
"""


def run_without_gru_lab(code: str, cwd: Path):
    """Run code in a fresh interpreter that cannot import gru_lab; returns the CompletedProcess. The code should
    end by checking that 'gru_lab' is still not in sys.modules."""
    import subprocess
    import sys
    import sysconfig

    site = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    script = _NO_GRU_LAB.format(site=list(dict.fromkeys(site))) + code
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)
