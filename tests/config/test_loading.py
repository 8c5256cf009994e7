"""The config schema: good configs load, every user mistake is one line with the file and the key, exit 2."""

from __future__ import annotations

import pytest

from gru_lab.cli import app
from gru_lab.config import ExperimentConfig, config_from_raw, load_config, parse_override, to_yaml
from gru_lab.errors import ConfigError
from tests.conftest import CONFIGS, assert_user_error, tiny_config

GOOD = tiny_config()


def with_(path: str, value):
    """A copy of the tiny config with one dotted key set (or deleted when value is DELETE)."""
    import copy

    cfg = copy.deepcopy(GOOD)
    node = cfg
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if value is DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return cfg


DELETE = object()
SERIES = {"name": "series", "path": "s.csv", "targets": ["y"], "val_fraction": 0.1}
TEXT = {"name": "text", "path": "t.csv"}

# (id, config content (dict or raw text, or None for a missing file), --set overrides, expected key, message fragment)
BAD = [
    ("missing-file", None, [], None, "config file not found"),
    ("yaml-syntax", "name: x\ndata:\n  name: sine\n   window: 3\n", [], None, "YAML syntax error"),
    ("empty-file", "", [], None, "Got an empty file"),
    ("top-level-list", "- 1\n- 2\n", [], None, "Got a list"),
    ("unknown-top-key", {**GOOD, "modle": {}}, [], "modle", "Did you mean 'model'"),
    ("unknown-nested-key", with_("model.unit", 8), [], "model.unit", "Did you mean 'model.units'"),
    ("unknown-data-key", with_("data.windw", 8), [], "data.windw", "Did you mean 'data.window'"),
    ("key-of-other-dataset", with_("data.maxlen", 8), [], "data.maxlen", "unknown key 'data.maxlen'"),
    ("wrong-type-int", with_("model.units", "abc"), [], "model.units", "must be an integer"),
    ("wrong-type-bool", with_("model.bidirectional", "maybe"), [], "model.bidirectional", "must be true or false"),
    ("wrong-type-float", with_("train.learning_rate", "fast"), [], "train.learning_rate", "must be a number"),
    ("section-not-mapping", with_("train", 5), [], "train", "must be a mapping"),
    ("out-of-range-dropout", with_("model.dropout", 1.5), [], "model.dropout", "must be < 1"),
    ("out-of-range-units", with_("model.units", 0), [], "model.units", "must be >= 1"),
    ("out-of-range-epochs", with_("train.epochs", 0), [], "train.epochs", "must be >= 1"),
    ("negative-seed", with_("seed", -1), [], "seed", "must be >= 0"),
    ("bad-cell", with_("model.cell", "gru2"), [], "model.cell",
     "must be one of ['gru', 'lstm', 'simple_rnn']. Got 'gru2'"),
    ("bad-optimizer", with_("train.optimizer", "adamw"), [], "train.optimizer",
     "must be one of ['adam', 'rmsprop', 'sgd']"),
    ("bad-dataset", with_("data.name", "mnist"), [], "data.name",
     "must be one of ['adding', 'arithmetic', 'imdb', 'sequences', 'series', 'sine', 'text']"),
    ("missing-dataset-name", with_("data.name", DELETE), [], "data.name", "'data.name' is required"),
    ("missing-data", with_("data", DELETE), [], "data", "'data' is required"),
    ("bad-run-name", with_("name", "../escape"), [], "name", "'name' must start with a letter or digit"),
    ("embedding-on-real-data", with_("model.embedding_dim", 16), [], "model.embedding_dim", "is real-valued"),
    ("mask-on-real-data", with_("model.mask_zero", True), [], "model.mask_zero", "needs token input"),
    ("imdb-without-embedding", {**GOOD, "data": {"name": "imdb"}}, [], "model.embedding_dim", "is required"),
    ("mask-with-conv", {**GOOD, "data": {"name": "imdb"}, "model": {"embedding_dim": 8, "mask_zero": True, "conv": {}}},
     [], "model.mask_zero", "cannot be combined with 'model.conv'"),
    ("rnn-with-gate-activation", with_("model.recurrent_activation", "hard_sigmoid") | {}, ["model.cell=rnn"],
     "model.recurrent_activation", "simple_rnn has none"),
    ("two-validation-sources", with_("train.validation_split", 0.2), [], "train.validation_split",
     "already has a validation set"),
    ("early-stop-without-val", with_("data.n_val", 0) | {"train": {"early_stopping": {"monitor": "val_loss"}}}, [],
     "train.early_stopping.monitor", "no validation data"),
    ("units-list-vs-layers", with_("model.units", [8, 4]), ["model.num_layers=3"], "model.num_layers", "lists 2 sizes"),
    ("starts-without-steps", {**GOOD, "data": {"name": "arithmetic", "starts": [1, 2]}}, [], "data.steps",
     "go together"),
    ("pool-too-large", with_("model.conv", {"pool_size": 9}), [], "model.conv.pool_size", "leaves no time steps"),
    ("head-none-wrong-units", with_("model.head", "none"), [], "model.head", "needs 1 unit(s)"),
    ("horizon-on-text", {**GOOD, "data": {**TEXT, "horizon": 2}, "model": {"embedding_dim": 4}}, [], "data.horizon",
     "unknown key 'data.horizon'. It belongs to data 'series'."),
    ("series-targets-required", {**GOOD, "data": {"name": "series", "path": "s.csv"}}, [], "data.targets",
     "'data.targets' is required"),
    ("series-no-targets", {**GOOD, "data": {**SERIES, "targets": []}}, [], "data.targets", "at least one column"),
    ("series-window-zero", {**GOOD, "data": {**SERIES, "window": 0}}, [], "data.window", "must be >= 1"),
    ("series-horizon-zero", {**GOOD, "data": {**SERIES, "horizon": 0}}, [], "data.horizon", "must be >= 1"),
    ("series-bad-missing", {**GOOD, "data": {**SERIES, "missing": "zero"}}, [], "data.missing",
     "must be one of ['drop', 'error', 'ffill', 'interpolate']"),
    ("series-bad-scaling", {**GOOD, "data": {**SERIES, "scaling": "log"}}, [], "data.scaling",
     "must be one of ['minmax', 'none', 'standard']"),
    ("series-fractions-leave-nothing", {**GOOD, "data": {**SERIES, "val_fraction": 0.5, "test_fraction": 0.5}}, [],
     "data.test_fraction", "leaves no rows to train on"),
    ("series-time-format-alone", {**GOOD, "data": {**SERIES, "time_format": "%Y"}}, [], "data.time_format",
     "needs 'data.time_column'"),
    ("series-column-twice", {**GOOD, "data": {**SERIES, "features": ["y"]}}, [], "data.features",
     "names column 'y', which 'data.targets' already uses"),
    ("series-name-without-header", {**GOOD, "data": {**SERIES, "header": False}}, [], "data.targets",
     "a column name, but 'data.header' is false"),
    ("series-negative-position", {**GOOD, "data": {**SERIES, "targets": [-1]}}, [], "data.targets",
     "a position >= 0"),
    ("series-bad-encoding", {**GOOD, "data": {**SERIES, "encoding": "utf-99"}}, [], "data.encoding",
     "not an encoding Python knows"),
    ("series-long-separator", {**GOOD, "data": {**SERIES, "separator": "::"}}, [], "data.separator",
     "must be one character"),
    ("series-embedding", {**GOOD, "data": SERIES, "model": {"embedding_dim": 4}}, [], "model.embedding_dim",
     "is real-valued"),
    ("text-without-embedding", {**GOOD, "data": TEXT}, [], "model.embedding_dim", "is required"),
    ("text-test-path-and-fraction", {**GOOD, "data": {**TEXT, "test_path": "t2.csv", "test_fraction": 0.2},
                                     "model": {"embedding_dim": 4}}, [], "data.test_fraction",
     "both give a test split"),
    ("text-one-class", {**GOOD, "data": {**TEXT, "classes": ["pos"]}, "model": {"embedding_dim": 4}}, [],
     "data.classes", "two or more classes"),
    ("text-same-column", {**GOOD, "data": {**TEXT, "label_column": "text"}, "model": {"embedding_dim": 4}}, [],
     "data.label_column", "which 'data.text_column' already uses"),
    ("text-validation-twice", {**GOOD, "data": TEXT, "model": {"embedding_dim": 4}, "train": {"validation_split": 0.2}},
     [], "train.validation_split", "already has a validation set (data.val_fraction=0.1)"),
    ("text-bad-standardize", {**GOOD, "data": {**TEXT, "standardize": "upper"}, "model": {"embedding_dim": 4}}, [],
     "data.standardize", "must be one of ['lower', 'lower_and_strip_punctuation', 'none', 'strip_punctuation']"),
    ("text-fraction-one", {**GOOD, "data": {**TEXT, "test_fraction": 1.0}, "model": {"embedding_dim": 4}}, [],
     "data.test_fraction", "must be < 1"),
    ("tensorboard-not-bool", with_("output.tensorboard", "maybe"), [], "output.tensorboard", "must be true or false"),
    ("bad-pooling", with_("model.pooling", "attention"), [], "model.pooling",
     "must be one of ['last', 'max', 'max_mean', 'mean']"),
    ("pooling-without-head", with_("model.pooling", "max") | {}, ["model.head=none", "model.units=1"],
     "model.pooling", "feeds the Dense head"),
    ("bad-baseline-word", {**GOOD, "baseline": "tfidf"}, [], "baseline.kind", "must be one of ['auto', 'none']"),
    ("unknown-baseline-key", {**GOOD, "baseline": {"perod": 3}}, [], "baseline.perod",
     "Did you mean 'baseline.period'"),
    ("baseline-not-mapping", {**GOOD, "baseline": 3}, [], "baseline", "must be a mapping"),
    ("baseline-period-zero", {**GOOD, "baseline": {"period": 0}}, [], "baseline.period", "must be >= 1"),
    ("baseline-period-longer-than-window", {**GOOD, "baseline": {"period": 9}}, [], "baseline.period",
     "a window has 8 steps"),
    ("baseline-period-on-classification", {**GOOD, "data": {"name": "imdb"}, "model": {"embedding_dim": 8},
                                           "baseline": {"period": 3}}, [], "baseline.period", "is a binary task"),
    ("baseline-period-without-baseline", {**GOOD, "baseline": {"kind": "none", "period": 3}}, [], "baseline.period",
     "'baseline.kind' is 'none'"),
    ("bad-bucketing", with_("train.bucketing", "sometimes"), [], "train.bucketing",
     "must be one of ['auto', 'off']. Got 'sometimes'"),
    ("embedding-dropout-on-real-data", with_("model.embedding_dropout", 0.2), [], "model.embedding_dropout",
     "applies to an Embedding; data 'sine' is real-valued"),
    ("embedding-dropout-one", {**GOOD, "data": {"name": "imdb"}, "model": {"embedding_dim": 8}},
     ["model.embedding_dropout=1"], "model.embedding_dropout", "must be < 1"),
    ("bad-embedding-init", {**GOOD, "data": {"name": "imdb"}, "model": {"embedding_dim": 8}},
     ["model.embedding_init=glove"], "model.embedding_init", "must be one of ['random', 'svd']"),
    ("embedding-init-on-real-data", with_("model.embedding_init", "svd"), [], "model.embedding_init",
     "applies to an Embedding"),
    ("embedding-trainable-on-real-data", with_("model.embedding_trainable", False), [], "model.embedding_trainable",
     "applies to an Embedding"),
    ("lr-decay-zero", GOOD, ["train.lr_decay=0"], "train.lr_decay", "must be > 0"),
    ("lr-decay-growing", GOOD, ["train.lr_decay=1.5"], "train.lr_decay", "must be <= 1"),
    ("set-unknown-key", GOOD, ["model.unitz=3"], "model.unitz", "--set model.unitz=3"),
    ("set-wrong-type", GOOD, ["model.units=lots"], "model.units", "--set model.units=lots"),
    ("set-no-equals", GOOD, ["model.units"], None, "expected KEY=VALUE"),
    ("set-into-scalar", GOOD, ["seed.x=1"], "seed", "'seed' is not a section"),
    # names Keras would only reject once the run is under way, and keys given without their section
    ("bad-activation", with_("model.activation", "rleu"), [], "model.activation", "Got 'rleu'. Did you mean 'relu'?"),
    ("bad-gate-activation", GOOD, ["model.recurrent_activation=sigmod"], "model.recurrent_activation",
     "Did you mean 'sigmoid'?"),
    ("optimizer-did-you-mean", GOOD, ["train.optimizer=adamw"], "train.optimizer", "Did you mean 'adam'?"),
    ("monitor-not-logged", GOOD, ["train.early_stopping.monitor=val_acc"], "train.early_stopping.monitor",
     "must be a quantity this run logs: ['loss', 'mae', 'val_loss', 'val_mae']"),
    ("monitor-of-another-task", GOOD, ["train.early_stopping.monitor=accuracy"], "train.early_stopping.monitor",
     "(data 'sine' is regression). Got 'accuracy'."),
    ("monitor-did-you-mean", {**GOOD, "data": {"name": "imdb"}, "model": {"embedding_dim": 8},
                              "train": {"validation_split": 0.2, "early_stopping": {"monitor": "val_acc"}}},
     [], "train.early_stopping.monitor", "Did you mean 'val_accuracy'?"),
    ("split-leaves-no-training", with_("data.n_val", 0) | {}, ["data.n_train=1", "train.validation_split=0.5"],
     "train.validation_split", "leaves no training sample"),
    ("set-key-without-section", GOOD, ["units=3"], "units", "Did you mean 'model.units'?"),
    ("set-key-in-wrong-section", GOOD, ["train.units=3"], "train.units", "Did you mean 'model.units'?"),
    ("nested-key-without-section", GOOD, ["patience=3"], "patience", "Did you mean 'train.early_stopping.patience'?"),
]


@pytest.mark.parametrize("case_id,content,overrides,key,fragment", BAD, ids=[c[0] for c in BAD])
def test_bad_config_is_one_line_exit_2_and_writes_nothing(runner, write_config, tmp_path,
                                                          case_id, content, overrides, key, fragment):
    path = tmp_path / "missing.yaml" if content is None else write_config(content)
    args = ["train", str(path)]
    for o in overrides:
        args += ["--set", o]
    result = runner.invoke(app, args)
    line = assert_user_error(result, tmp_path / "results")
    assert line.startswith("error: ") and str(path) in line, line
    if key:
        assert f"'{key}'" in line, line
    assert fragment in line, line


def test_yaml_error_names_the_line(runner, write_config):
    path = write_config("name: x\ndata:\n  name: sine\n   window: 3\n")
    result = runner.invoke(app, ["train", str(path)])
    assert f"{path}:4:" in result.stderr


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates_and_round_trips(path):
    cfg = load_config(path)
    again = config_from_raw(__import__("yaml").safe_load(to_yaml(cfg)), "resolved")
    assert again == cfg


def test_every_shipped_config_comments_every_key():
    for path in CONFIGS.glob("*.yaml"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped and not stripped.startswith("#") and ":" in stripped and not stripped.endswith(":"):
                assert "#" in line, f"{path.name}:{n} has no comment: {line!r}"


def test_embedded_default_loads():
    from gru_lab.config import EMBEDDED_DEFAULT

    cfg = load_config(EMBEDDED_DEFAULT)
    assert cfg.data.name == "adding" and cfg.model.cell == "gru"


def test_overrides_are_parsed_as_yaml_and_validated_like_the_file(write_config):
    path = write_config(GOOD)
    cfg = load_config(path, ["model.units=[8, 4]", "model.cell=rnn", "train.learning_rate=3e-3",
                             "model.bidirectional=true", "train.early_stopping.patience=2"])
    assert cfg.model.layer_units() == [8, 4]
    assert cfg.model.cell == "simple_rnn"  # alias resolved
    assert cfg.train.learning_rate == pytest.approx(3e-3)
    assert cfg.model.bidirectional is True
    assert cfg.train.early_stopping.patience == 2 and cfg.train.early_stopping.monitor == "val_loss"


def test_parse_override():
    assert parse_override("a.b=1") == ("a.b", 1)
    assert parse_override("a=x=y") == ("a", "x=y")
    assert parse_override("a=") == ("a", None)
    with pytest.raises(ValueError):
        parse_override("a..b=1")


def test_config_error_carries_the_key():
    with pytest.raises(ConfigError) as info:
        config_from_raw(with_("model.units", -1), "x.yaml")
    assert info.value.key == "model.units"


def test_new_keys_at_their_defaults_keep_every_run_id():
    """model.pooling and baseline are written to config.yaml only when set, so no config's hash changes."""
    import yaml

    for path in CONFIGS.glob("*.yaml"):
        raw, text = yaml.safe_load(path.read_text()), to_yaml(load_config(path))
        assert ("pooling" in text) == ("pooling" in raw["model"]), path.name
        assert ("baseline" in text) == ("baseline" in raw), path.name
    cfg = config_from_raw({**GOOD, "baseline": "none"}, "x")
    assert cfg.baseline.kind == "none" and "baseline: {kind: none, period: null}" in to_yaml(cfg)
    assert config_from_raw({**GOOD, "baseline": "auto"}, "x") == config_from_raw(GOOD, "x")


def test_defaults_fill_in():
    cfg = ExperimentConfig.model_validate({"data": {"name": "adding"}})
    assert cfg.model.cell == "gru" and cfg.train.optimizer == "adam" and cfg.data.length == 50


def test_config_import_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys, gru_lab.cli, gru_lab.config, gru_lab.cells, gru_lab.models.plan, gru_lab.models.kernels, "
            "gru_lab.rnn.support, gru_lab.runs.folder, gru_lab.runs.records, gru_lab.experiments.planning; "
            "sys.exit(1 if 'tensorflow' in sys.modules or 'keras' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_data_paths_resolve_against_the_config_files_folder(tmp_path, monkeypatch):
    import yaml

    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "exp.yaml").write_text(yaml.safe_dump({
        "data": {"name": "text", "path": "texts/train.csv", "test_path": "../shared/test.csv",
                 "val_path": "/abs/v.csv"},
        "model": {"embedding_dim": 4}, "output": {"dir": "out"}}))
    monkeypatch.chdir(tmp_path)
    cfg = load_config("experiments/exp.yaml")
    assert cfg.data.path == str(folder / "texts" / "train.csv")
    assert cfg.data.test_path == str(tmp_path / "shared" / "test.csv")
    assert cfg.data.val_path == "/abs/v.csv"
    assert cfg.output.dir == "out"  # results go where the command runs
    # A path typed on the command line is relative to where it was typed.
    assert load_config("experiments/exp.yaml", ["data.path=here.csv"]).data.path == "here.csv"
    # The resolved config, as a run folder keeps it, loads to the same paths from anywhere.
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "config.yaml").write_text(to_yaml(cfg))
    assert load_config(tmp_path / "elsewhere" / "config.yaml").data == cfg.data


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_new_keys_leave_existing_run_ids_alone(path):
    """Run ids hash the resolved config: keys added since (output.tensorboard) are written only when set."""
    text = to_yaml(load_config(path))
    assert "tensorboard" not in text
    assert "tensorboard: true" in to_yaml(load_config(path, ["output.tensorboard=true"]))
    import yaml

    raw = yaml.safe_load(path.read_text())
    for section, key in (("model", "embedding_dropout"), ("model", "embedding_init"), ("model", "embedding_trainable"),
                         ("train", "lr_decay"), ("output", "evaluation"), ("output", "mlflow"), ("data", "transform")):
        assert (f" {key}:" in text) == (key in (raw.get(section) or {})), (path.name, key)
    assert ("\ntune:" in text) == ("tune" in raw), path.name  # this round's keys, like the others
