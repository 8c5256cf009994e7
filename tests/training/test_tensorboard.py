"""output.tensorboard: per-epoch scalars and the learning rate in TensorBoard's format, in every run folder,
compare's and sweep's runs too."""

from __future__ import annotations

import csv

import pytest

from gru_lab.config import config_from_raw
from gru_lab.data import load_dataset
from tests.conftest import tiny_config


def scalars(run) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """{(split, tag): [(step, value), ...]} from the run's event files, read with TensorFlow alone."""
    import tensorflow as tf

    found: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for events in sorted((run / "tensorboard").glob("*/events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(events)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                found.setdefault((events.parent.name, value.tag), []).append(
                    (event.step, float(tf.make_ndarray(value.tensor))))
    return found


def test_tensorboard_scalars_match_the_history(tmp_path):
    from gru_lab.runs.folder import save_run
    from gru_lab.training.fit import train

    raw = {**tiny_config(), "train": {"epochs": 3, "batch_size": 16, "learning_rate": 0.002},
           "output": {"dir": str(tmp_path / "results"), "tensorboard": True}}
    cfg = config_from_raw(raw, "test")
    data = load_dataset(cfg.data, cfg.seed)
    result = train(cfg, data)
    run = save_run(cfg, result, data)
    assert result.scratch is not None and not result.scratch.exists()  # moved into the run folder, then removed
    history = list(csv.DictReader((run / "history.csv").open()))
    found = scalars(run)
    assert [s for s, _ in found[("train", "epoch_loss")]] == [0, 1, 2]
    assert [v for _, v in found[("train", "epoch_loss")]] == pytest.approx([float(r["loss"]) for r in history])
    assert [v for _, v in found[("validation", "epoch_loss")]] == pytest.approx(
        [float(r["val_loss"]) for r in history])
    assert [v for _, v in found[("train", "epoch_learning_rate")]] == pytest.approx([0.002] * 3)


@pytest.mark.slow  # default tier: see docs/benchmarks.md, the test tiers
def test_sweep_runs_write_tensorboard_too(tmp_path):
    """compare and sweep train through executor.train_and_save: the same path a worker process takes."""
    import yaml

    from gru_lab.experiments import executor
    from gru_lab.experiments.sweep import execute_sweep, plan_sweep

    raw = {**tiny_config(), "train": {"epochs": 2, "batch_size": 16},
           "output": {"dir": str(tmp_path / "results"), "tensorboard": True, "save_model": False}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    plan = plan_sweep(path, None, ["model.units=2,3"], None, None, None, None, None, None, None)
    result = execute_sweep(plan, runner=executor.run_inline)
    assert len(result.outcomes) == 2 and all(o.ok for o in result.outcomes)
    for outcome in result.outcomes:
        assert [s for s, _ in scalars(outcome.folder)[("train", "epoch_loss")]] == [0, 1]
        assert (outcome.folder / "learning_curves.png").is_file()
    # the HParams view: one session a run with the setting that differs, and its test numbers
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    from gru_lab.config import load_config
    from gru_lab.experiments.hparams import write_hparams

    root = write_hparams(plan.folder, [(o.folder.name, load_config(o.folder / "config.yaml"), o.metrics)
                                       for o in result.outcomes])
    sessions = {}
    for outcome in result.outcomes:
        found = {}
        for events in (root / outcome.folder.name).glob("events.out.tfevents.*"):
            for record in tf.data.TFRecordDataset(str(events)):
                for value in tf.compat.v1.Event.FromString(record.numpy()).summary.value:
                    if value.metadata.plugin_data.plugin_name == "hparams":
                        data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                        found["units"] = data.session_start_info.hparams["model.units"].number_value
                    elif value.tag == "test_loss":
                        found["test_loss"] = float(tf.make_ndarray(value.tensor))
        sessions[outcome.folder.name] = found
    assert sorted(s["units"] for s in sessions.values()) == [2.0, 3.0]
    for outcome in result.outcomes:
        assert sessions[outcome.folder.name]["test_loss"] == pytest.approx(outcome.metrics["test"]["loss"])
