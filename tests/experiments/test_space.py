"""tune's search space: specs from the config and --param parse to ranges and choices, and every mistake in a
space is one line naming it (exit 2) before anything is written."""

from __future__ import annotations

import pytest

from gru_lab.cli import app
from gru_lab.errors import TuneError
from gru_lab.experiments.space import Param, build_space, parse_param
from tests.conftest import assert_user_error, tiny_config

# (id, --param text, expected Param fields)
GOOD = [
    ("int-range", "model.units=16..128", dict(kind="int", low=16, high=128, log=False, step=None)),
    ("int-step", "model.units=16..128:step=16", dict(kind="int", low=16, high=128, step=16)),
    ("float-log", "train.learning_rate=1e-4..1e-2:log", dict(kind="float", low=1e-4, high=1e-2, log=True)),
    ("float-step", "model.dropout=0.0..0.5:step=0.1", dict(kind="float", low=0.0, high=0.5, step=0.1)),
    ("yaml-range", "model.dropout={low: 0, high: 0.5}", dict(kind="float", low=0.0, high=0.5)),
    ("choices", "model.cell=[rnn,lstm,gru]", dict(kind="categorical", choices=("rnn", "lstm", "gru"))),
    ("list-choices", "model.units=[[8, 4], 6]", dict(kind="categorical", choices=([8, 4], 6))),
    ("number-choices", "train.learning_rate=[1e-3, 3e-3]", dict(kind="categorical", choices=(1e-3, 3e-3))),
]


@pytest.mark.parametrize("case_id,text,fields", GOOD, ids=[c[0] for c in GOOD])
def test_param_specs_parse(case_id, text, fields):
    param = parse_param(text)
    assert isinstance(param, Param) and param.key == text.split("=")[0]
    for name, value in fields.items():
        assert getattr(param, name) == value, (name, getattr(param, name))


def test_grid_values_of_ranges():
    assert parse_param("model.units=2..8:step=3").grid() == [2, 5, 8]
    assert parse_param("model.dropout=0.0..0.3:step=0.1").grid() == [0.0, 0.1, 0.2, 0.3]
    with pytest.raises(TuneError, match="needs a finite set"):
        parse_param("model.dropout=0.0..0.3").grid()


def test_a_param_replaces_the_sections_key():
    space = build_space({"model.units": [4, 8], "model.cell": ["gru", "lstm"]}, ["model.units=2..6"], "c.yaml")
    assert [(p.key, p.kind) for p in space] == [("model.units", "int"), ("model.cell", "categorical")]


# (id, config's tune section or None, --param options, fragment of the one-line message)
BAD = [
    ("no-space", None, [], "nothing to search"),
    ("no-equals", None, ["model.units"], "expected KEY=SPEC"),
    ("empty-spec", None, ["model.units="], "empty spec"),
    ("unknown-key", None, ["model.unit=2..8"], "unknown key 'model.unit'. Did you mean 'model.units'?"),
    ("unknown-section", None, ["modle.units=2..8"], "Did you mean 'model.units'?"),
    ("fixed-key", None, ["train.seed=1..4"], "'train.seed' cannot be searched"),
    ("low-above-high", None, ["model.units=8..2"], "needs low < high"),
    ("log-from-zero", None, ["model.dropout=0.0..0.5:log"], "low must be > 0"),
    ("log-and-step", None, ["train.learning_rate=0.001..0.01:log:step=0.001"], "log or step, not both"),
    ("bad-option", None, ["model.units=2..8:fast"], "unknown option ':fast'"),
    ("bad-yaml", None, ["model.cell=[rnn, gru"], "cannot read the spec as YAML"),
    ("duplicate-choice", None, ["model.cell=[gru, gru]"], "lists gru twice"),
    ("empty-choices", None, ["model.cell=[]"], "no choices"),
    ("value-schema-refuses", None, ["model.cell=[gru, gru2]"], "gru2 is not a value of 'model.cell'"),
    ("range-out-of-schema", None, ["model.dropout=0.1..1.5"], "1.5 is not a value of 'model.dropout'"),
    ("section-bad-spec", {"space": {"model.units": "lots"}}, [], "tune.space.model.units"),
    ("section-missing-high", {"space": {"model.units": {"low": 2}}}, [], "a range of 'model.units' is {low, high}"),
    ("section-unknown-key", {"space": {"model.unitz": [2, 4]}}, [], "Did you mean 'model.units'?"),
    ("bad-sampler", {"space": {"model.units": [2, 4]}, "sampler": "cmaes"}, [], "'tune.sampler' must be one of"),
    ("metric-not-validation", {"space": {"model.units": [2, 4]}, "metric": "loss"}, [],
     "--metric must be a validation quantity"),
    ("metric-test", {"space": {"model.units": [2, 4]}, "metric": "test_mse"}, [], "never used to choose"),
    ("bad-timeout", {"space": {"model.units": [2, 4]}, "timeout": "soon"}, [], "--timeout must be a positive"),
    ("storage-not-url", {"space": {"model.units": [2, 4]}, "storage": "tune.db"}, [], "--storage must be a database"),
]


@pytest.mark.parametrize("case_id,section,params,fragment", BAD, ids=[c[0] for c in BAD])
def test_bad_space_is_one_line_exit_2_and_writes_nothing(runner, write_config, tmp_path, case_id, section, params,
                                                         fragment):
    config = tiny_config()
    if section is not None:
        config["tune"] = section
    path = write_config(config)
    args = ["tune", str(path)]
    for text in params:
        args += ["--param", text]
    line = assert_user_error(runner.invoke(app, args), tmp_path / "results")
    assert fragment in line, line


def test_tune_needs_validation_data(runner, write_config, tmp_path):
    config = tiny_config()
    config["data"]["n_val"] = 0
    line = assert_user_error(runner.invoke(app, ["tune", str(write_config(config)), "--param", "model.units=2..4"]),
                             tmp_path / "results")
    assert "no validation data" in line
