"""Config composition: `extends:` merges base configs deeply, relative to each file; circles are one error."""

from __future__ import annotations

import pytest
import yaml

from gru_lab.cli import app
from gru_lab.config import load_config, load_yaml, to_yaml
from gru_lab.config.loading import deep_merge
from gru_lab.errors import ConfigError
from gru_lab.runs.folder import config_hash
from tests.conftest import assert_user_error, tiny_config


def _write(path, content) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content, sort_keys=False) if isinstance(content, dict) else content)
    return str(path)


def test_deep_merge_later_wins_and_mappings_merge():
    base = {"model": {"cell": "gru", "units": 8}, "train": {"epochs": 3}, "tags": [1, 2]}
    top = {"model": {"units": 16}, "tags": [3]}
    assert deep_merge(base, top) == {"model": {"cell": "gru", "units": 16}, "train": {"epochs": 3}, "tags": [3]}
    assert base["model"]["units"] == 8  # inputs untouched


def test_extends_merges_a_list_in_order_and_the_file_last(tmp_path):
    _write(tmp_path / "base.yaml", tiny_config())
    _write(tmp_path / "wide.yaml", {"model": {"units": 16, "cell": "lstm"}, "train": {"epochs": 5}})
    _write(tmp_path / "exp" / "run.yaml", {"extends": ["../base.yaml", "../wide.yaml"], "model": {"cell": "rnn"}})
    cfg = load_config(tmp_path / "exp" / "run.yaml")
    assert (cfg.model.cell, cfg.model.units, cfg.train.epochs, cfg.data.window) == ("simple_rnn", 16, 5, 8)
    assert "extends" not in to_yaml(cfg)  # a run's config.yaml holds the merged result, which loads alone
    assert load_config(_write(tmp_path / "again.yaml", to_yaml(cfg))) == cfg


def test_a_config_without_extends_keeps_its_run_id(tmp_path):
    raw = tiny_config()
    plain = load_config(_write(tmp_path / "plain.yaml", raw))
    _write(tmp_path / "base.yaml", raw)
    composed = load_config(_write(tmp_path / "child.yaml", {"extends": "base.yaml"}))
    assert load_yaml(tmp_path / "plain.yaml") == raw
    assert config_hash(plain) == config_hash(composed)


def test_paths_are_relative_to_the_file_that_gives_them(tmp_path):
    _write(tmp_path / "shared" / "base.yaml", {"data": {"name": "text", "path": "texts.csv"},
                                               "model": {"embedding_dim": 4}})
    _write(tmp_path / "mine" / "exp.yaml", {"extends": "../shared/base.yaml", "data": {"test_path": "test.csv"}})
    cfg = load_config(tmp_path / "mine" / "exp.yaml")
    assert cfg.data.path == str(tmp_path / "shared" / "texts.csv")
    assert cfg.data.test_path == str(tmp_path / "mine" / "test.csv")


# (id, files: relative path -> content, the file to load, expected fragment of the message)
BAD = [
    ("circle", {"a.yaml": {"extends": "b.yaml"}, "b.yaml": {"extends": "a.yaml"}}, "a.yaml", "makes a circle"),
    ("itself", {"a.yaml": {"extends": "a.yaml"}}, "a.yaml", "makes a circle"),
    ("missing-base", {"a.yaml": {"extends": "nope.yaml"}}, "a.yaml", "nope.yaml: config file not found"),
    ("not-a-path", {"a.yaml": {"extends": 3}}, "a.yaml", "'extends' must be a config path"),
    ("empty-list", {"a.yaml": {"extends": []}}, "a.yaml", "'extends' must be a config path"),
    ("base-not-mapping", {"a.yaml": {"extends": "b.yaml"}, "b.yaml": "- 1\n"}, "a.yaml", "expected a mapping"),
]


@pytest.mark.parametrize("case_id,files,start,fragment", BAD, ids=[c[0] for c in BAD])
def test_bad_extends_is_one_line_exit_2(runner, tmp_path, case_id, files, start, fragment):
    for rel, content in files.items():
        if isinstance(content, dict):
            content = {**content, "output": {"dir": str(tmp_path / "results")}}
        _write(tmp_path / rel, content)
    with pytest.raises(ConfigError, match="extend"):
        load_config(tmp_path / start)
    line = assert_user_error(runner.invoke(app, ["train", str(tmp_path / start)]), tmp_path / "results")
    assert fragment in line, line
